// SPDX-License-Identifier: MIT
// The operator page's script: every 2 seconds reads /api/ps (the loaded models) and /metrics
// (memory against the budget, requests running and queued, KV per model) and redraws; the
// Unload button asks Ollama's way: POST /api/generate with keep_alive 0.
import { parseMetrics, metricValue } from './metrics.js';

const $ = (id) => document.getElementById(id);
const KEY = 'garlic.apiKey';
let asking = null;

function headers() {
  const h = { 'Content-Type': 'application/json' };
  const key = sessionStorage.getItem(KEY);
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

function askKey() {
  asking ??= new Promise((resolve) => {
    const dialog = $('key-dialog');
    dialog.onclose = () => {
      const key = $('api-key').value.trim();
      if (dialog.returnValue === 'ok' && key) sessionStorage.setItem(KEY, key);
      asking = null;
      resolve(dialog.returnValue === 'ok' && !!key);
    };
    dialog.showModal();
  });
  return asking;
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: headers() });
  if (res.status === 401 && (await askKey())) return fetch(path, { ...options, headers: headers() });
  return res;
}

function formatBytes(bytes) {
  if (bytes == null || Number.isNaN(bytes)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  for (; bytes >= 1000 && i < units.length - 1; i++) bytes /= 1000;
  return `${bytes.toFixed(bytes < 10 && i ? 1 : 0)} ${units[i]}`;
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

async function unload(name, button) {
  button.disabled = true;
  const res = await api('/api/generate', {
    method: 'POST', body: JSON.stringify({ model: name, keep_alive: 0 }),
  });
  $('status').textContent = res.ok ? `Unloading ${name}…` : `Unload failed: ${res.status}`;
  refresh();
}

function drawModels(ps, samples) {
  const rows = ps.models.map((m) => {
    const tr = document.createElement('tr');
    const kvUsed = metricValue(samples, 'garlic_model_kv_used_bytes', { model: m.name });
    const kvPool = m.garlic?.kv_cache_bytes;
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Unload';
    b.setAttribute('aria-label', `Unload ${m.name}`);
    b.addEventListener('click', () => unload(m.name, b));
    const action = document.createElement('td');
    action.append(b);
    tr.append(cell(m.name), cell(formatBytes(m.size)),
      cell(`${formatBytes(kvUsed ?? m.garlic?.kv_cache_used_bytes)} / ${formatBytes(kvPool)}`),
      cell(String(m.garlic?.requests ?? 0)),
      cell(m.expires_at ? new Date(m.expires_at).toLocaleTimeString() : ''), action);
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement('tr');
    const td = cell('No model is loaded.');
    td.colSpan = 6;
    tr.append(td);
    rows.push(tr);
  }
  $('models').replaceChildren(...rows);
}

function drawServer(samples) {
  const used = metricValue(samples, 'garlic_memory_bytes');
  const budget = metricValue(samples, 'garlic_memory_budget_bytes');
  $('memory').textContent = formatBytes(used);
  $('budget').textContent = `of ${formatBytes(budget)} budget`;
  const share = budget ? Math.min(1, used / budget) : 0;
  $('memory-meter').firstElementChild.style.width = `${(share * 100).toFixed(1)}%`;
  $('memory-meter').setAttribute('aria-valuenow', (share * 100).toFixed(1));
  $('running').textContent = String(metricValue(samples, 'garlic_requests_running') ?? '–');
  $('queued').textContent = String(metricValue(samples, 'garlic_queue_length') ?? '–');
  $('generations').textContent = String(metricValue(samples, 'garlic_generations_total') ?? '–');
  const cancelled = metricValue(samples, 'garlic_generations_cancelled_total');
  $('cancelled').textContent = cancelled != null ? `${cancelled} cancelled` : '';
}

async function refresh() {
  try {
    const [psRes, metricsRes] = await Promise.all([api('/api/ps'), api('/metrics')]);
    if (!psRes.ok || !metricsRes.ok) throw new Error(`status ${psRes.status}/${metricsRes.status}`);
    const samples = parseMetrics(await metricsRes.text());
    drawServer(samples);
    drawModels(await psRes.json(), samples);
    if (!$('status').textContent.startsWith('Unloading')) $('status').textContent = '';
    document.body.dataset.updated = new Date().toISOString();
  } catch (e) {
    $('status').textContent = `Cannot read the server: ${e.message}`;
  }
}

refresh();
setInterval(refresh, 2000);
