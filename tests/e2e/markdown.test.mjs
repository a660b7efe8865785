// SPDX-License-Identifier: MIT
// The chat page's pure modules in Node: the Markdown renderer (every tag it writes is its own;
// model text never becomes markup) and the Prometheus text parser of the operator page.
// Needs no server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeHtml, renderMarkdown } from '../../src/web/static/markdown.js';
import { metricValue, parseMetrics } from '../../src/web/static/metrics.js';

// The tags of an HTML string, in order.
const tags = (html) => [...html.matchAll(/<\/?([a-z0-9]+)[^>]*>/g)].map((m) => m[0]);

test('code blocks, inline code, emphasis, lists, headings and links', () => {
  const html = renderMarkdown('# Title\n\nSome **bold**, *italic* and `a < b`.\n\n```python\nif a < b:\n    print("**not bold**")\n```\n- one\n- two\n\n1. first\n\n> quoted\n\nSee [docs](https://example.com/a?b=1&c=2).');
  assert.match(html, /<h1>Title<\/h1>/);
  assert.match(html, /<strong>bold<\/strong>/);
  assert.match(html, /<em>italic<\/em>/);
  assert.match(html, /<code>a &lt; b<\/code>/);
  assert.match(html, /<pre><code class="language-python">if a &lt; b:\n {4}print\(&quot;\*\*not bold\*\*&quot;\)<\/code><\/pre>/);
  assert.match(html, /<ul>\n<li>one<\/li>\n<li>two<\/li>\n<\/ul>/);
  assert.match(html, /<ol>\n<li>first<\/li>\n<\/ol>/);
  assert.match(html, /<blockquote>quoted<\/blockquote>/);
  assert.match(html, /<a href="https:\/\/example.com\/a\?b=1&amp;c=2" rel="noopener noreferrer" target="_blank">docs<\/a>/);
  assert.match(renderMarkdown('a `**x**` b'), /<code>\*\*x\*\*<\/code>/);
  assert.equal(renderMarkdown('line one\nline two'), '<p>line one<br>line two</p>');
  assert.equal(renderMarkdown('```\nunclosed <x>'), '<pre><code>unclosed &lt;x&gt;</code></pre>');
});

test('hostile text stays text: no tag or attribute of its own', () => {
  const allowed = /^<\/?(p|br|h[1-6]|ul|ol|li|blockquote|pre|code|strong|em)>$|^<code class="language-[\w+#.-]+">$|^<a href="https?:\/\/[^"<>]*" rel="noopener noreferrer" target="_blank">$|^<\/a>$/;
  const hostile = [
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    '**<img src=x onerror=alert(1)>**',
    '[x](javascript:alert(1))',
    '[x](https://a.example/"onmouseover="alert(1))',
    '[<img src=x onerror=alert(1)>](https://a.example)',
    '```"><script>alert(1)</script>\ncode\n```',
    '```js" onclick="alert(1)\nx\n```',
    '`</code><script>alert(1)</script>`',
    '# <svg onload=alert(1)>',
    '- <iframe src=javascript:alert(1)>',
    '> <a href="javascript:alert(1)">x</a>',
    'a\u0000<b>\u00000\u0000',
    '[a](https://x.example/\u0000)',
  ];
  for (const text of hostile) {
    const html = renderMarkdown(text);
    for (const tag of tags(html)) assert.match(tag, allowed, `${JSON.stringify(text)} gave ${tag} in ${html}`);
    assert.ok(!/<(script|img|svg|iframe)/i.test(html), html);
    assert.ok(!/javascript:/.test(html.replace(/>[^<]*</g, '><')), `a javascript: URL in an attribute: ${html}`);
  }
  assert.equal(escapeHtml(`<&>"'`), '&lt;&amp;&gt;&quot;&#39;');
});

test('the operator page reads Prometheus text', () => {
  const samples = parseMetrics('# HELP x\n# TYPE x gauge\ngarlic_memory_bytes 15257496\ngarlic_memory_budget_bytes 2.02e+10\ngarlic_model_kv_used_bytes{model="a\\"b"} 42\ngarlic_model_kv_used_bytes{model="c"} 7\nbroken line\n');
  assert.equal(metricValue(samples, 'garlic_memory_bytes'), 15257496);
  assert.equal(metricValue(samples, 'garlic_memory_budget_bytes'), 2.02e10);
  assert.equal(metricValue(samples, 'garlic_model_kv_used_bytes', { model: 'a"b' }), 42);
  assert.equal(metricValue(samples, 'garlic_model_kv_used_bytes', { model: 'c' }), 7);
  assert.equal(metricValue(samples, 'garlic_queue_length'), undefined);
});
