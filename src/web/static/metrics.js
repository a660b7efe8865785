// SPDX-License-Identifier: MIT
// Reads Prometheus' text format (what /metrics serves) into samples: a pure module the
// operator page uses and the e2e tests import in Node.

// Parses the text into [{name, labels: {k: v}, value}], skipping comments and bad lines.
export function parseMetrics(text) {
  const samples = [];
  for (const line of String(text).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

// The value of the first sample called name whose labels include those given, or undefined.
export function metricValue(samples, name, labels = {}) {
  const s = samples.find((x) => x.name === name &&
    Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}
