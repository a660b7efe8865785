// SPDX-License-Identifier: MIT
// The chat page's script: picks a model (/v1/models, with sizes from /api/tags and the loaded
// ones from /api/ps), streams answers from /v1/chat/completions (SSE read from fetch, usage
// included), stops them by aborting the fetch (the server cancels the generation when the
// connection closes), renders answers with the safe renderer of markdown.js, and keeps
// conversations in localStorage and an API key in sessionStorage.
import { renderMarkdown } from './markdown.js';

const $ = (id) => document.getElementById(id);
const STORE = 'garlic.conversations';
const CURRENT = 'garlic.current';
const SETTINGS = 'garlic.settings';
const KEY = 'garlic.apiKey';

let conversations = load(STORE, []);
let currentId = localStorage.getItem(CURRENT);
let controller = null; // the running answer's AbortController
let renderPending = false;

function load(name, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(name));
    return v ?? fallback;
  } catch {
    return fallback;
  }
}

function save() {
  localStorage.setItem(STORE, JSON.stringify(conversations));
  if (currentId) localStorage.setItem(CURRENT, currentId);
}

function current() {
  let c = conversations.find((x) => x.id === currentId);
  if (!c) {
    c = { id: String(Date.now()) + Math.random().toString(16).slice(2, 6), title: 'New chat', messages: [] };
    conversations.unshift(c);
    currentId = c.id;
  }
  return c;
}

function headers() {
  const h = { 'Content-Type': 'application/json' };
  const key = sessionStorage.getItem(KEY);
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// Asks for the API key in a dialog; resolves true when one was given.
function askKey() {
  return new Promise((resolve) => {
    const dialog = $('key-dialog');
    $('api-key').value = '';
    dialog.onclose = () => {
      const key = $('api-key').value.trim();
      if (dialog.returnValue === 'ok' && key) sessionStorage.setItem(KEY, key);
      resolve(dialog.returnValue === 'ok' && !!key);
    };
    dialog.showModal();
  });
}

// fetch with the key; a 401 asks for the key once and tries again.
async function api(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(path, { ...options, headers: headers() });
    if (res.status !== 401 || attempt > 0 || !(await askKey())) return res;
  }
}

function formatSize(bytes) {
  if (!bytes) return '';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  for (; bytes >= 1000 && i < units.length - 1; i++) bytes /= 1000;
  return `${bytes.toFixed(bytes < 10 ? 1 : 0)} ${units[i]}`;
}

async function loadModels() {
  const select = $('model');
  try {
    const res = await api('/v1/models');
    if (!res.ok) throw new Error(await errorText(res));
    const ids = (await res.json()).data.map((m) => m.id);
    const [tags, ps] = await Promise.all([
      api('/api/tags').then((r) => (r.ok ? r.json() : { models: [] })).catch(() => ({ models: [] })),
      api('/api/ps').then((r) => (r.ok ? r.json() : { models: [] })).catch(() => ({ models: [] })),
    ]);
    const size = new Map(tags.models.map((m) => [m.name, m.size]));
    const loaded = new Set(ps.models.map((m) => m.name));
    const wanted = load(SETTINGS, {}).model ?? current().model;
    select.replaceChildren(...ids.map((id) => {
      const o = document.createElement('option');
      o.value = id;
      const parts = [loaded.has(id) ? 'loaded' : 'not loaded', formatSize(size.get(id))].filter(Boolean);
      o.textContent = `${id} (${parts.join(', ')})`;
      o.selected = id === wanted;
      return o;
    }));
    setStatus(ids.length ? '' : 'The server has no models.');
  } catch (e) {
    setStatus(`Cannot list models: ${e.message}`);
  }
}

function setStatus(text) {
  $('status').textContent = text;
}

async function errorText(res) {
  try {
    const j = await res.json();
    return j.error?.message ?? j.error ?? res.statusText;
  } catch {
    return `${res.status} ${res.statusText}`;
  }
}

function copyButton(getText) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'copy';
  b.textContent = 'Copy';
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(getText());
      b.textContent = 'Copied';
    } catch {
      b.textContent = 'Copy failed';
    }
    setTimeout(() => (b.textContent = 'Copy'), 1500);
  });
  return b;
}

function statsText(s) {
  if (!s) return '';
  const parts = [];
  if (s.ttft != null) parts.push(`first token ${(s.ttft * 1000).toFixed(0)} ms`);
  if (s.tps != null) parts.push(`${s.tps.toFixed(1)} tokens/s`);
  if (s.prompt != null) parts.push(`context ${s.prompt + s.completion} tokens (${s.prompt} prompt + ${s.completion} answer)`);
  if (s.stopped) parts.push('stopped');
  if (s.finish && s.finish !== 'stop') parts.push(`finish: ${s.finish}`);
  return parts.join(' · ');
}

// One message as a list item; an assistant's text goes through the escaping renderer only.
function messageNode(m) {
  const li = document.createElement('li');
  li.className = `msg ${m.role}${m.error ? ' error' : ''}`;
  const who = document.createElement('div');
  who.className = 'who';
  const name = document.createElement('span');
  name.textContent = m.role === 'user' ? 'You' : 'Assistant';
  who.append(name, copyButton(() => m.content));
  li.append(who);
  if (m.reasoning) {
    const d = document.createElement('details');
    const s = document.createElement('summary');
    s.textContent = 'Reasoning';
    const text = document.createElement('div');
    text.textContent = m.reasoning;
    d.append(s, text);
    li.append(d);
  }
  const body = document.createElement('div');
  body.className = 'body';
  if (m.role === 'user' || m.error) {
    body.textContent = m.error ?? m.content;
  } else {
    body.innerHTML = renderMarkdown(m.content); // escaped by the renderer
    for (const pre of body.querySelectorAll('pre')) {
      const code = pre.querySelector('code');
      pre.append(copyButton(() => code.textContent));
    }
  }
  li.append(body);
  const st = statsText(m.stats);
  if (st) {
    const p = document.createElement('div');
    p.className = 'stats';
    p.textContent = st;
    li.append(p);
  }
  return li;
}

function render() {
  const c = current();
  const list = $('messages');
  list.replaceChildren(...c.messages.map(messageNode));
  list.scrollTop = list.scrollHeight;
  const items = conversations.map((x) => {
    const li = document.createElement('li');
    if (x.id === currentId) li.className = 'current';
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'open';
    open.textContent = x.title;
    open.addEventListener('click', () => {
      if (controller) return;
      currentId = x.id;
      save();
      render();
    });
    const del = document.createElement('button');
    del.type = 'button';
    del.textContent = '×';
    del.setAttribute('aria-label', `Delete ${x.title}`);
    del.addEventListener('click', () => {
      if (controller && x.id === currentId) return;
      conversations = conversations.filter((y) => y !== x);
      if (x.id === currentId) currentId = null;
      save();
      render();
    });
    li.append(open, del);
    return li;
  });
  $('conversation-list').replaceChildren(...items);
}

function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    render();
  });
}

function readSettings() {
  const s = {
    model: $('model').value,
    system: $('system').value,
    temperature: Number($('temperature').value),
    top_p: Number($('top-p').value),
    max_tokens: Number($('max-tokens').value),
    grammar: $('grammar').value,
    extra: $('extra').value,
  };
  localStorage.setItem(SETTINGS, JSON.stringify(s));
  return s;
}

function applySettings() {
  const s = load(SETTINGS, {});
  if (s.system != null) $('system').value = s.system;
  if (s.temperature != null) $('temperature').value = s.temperature;
  if (s.top_p != null) $('top-p').value = s.top_p;
  if (s.max_tokens != null) $('max-tokens').value = s.max_tokens;
  if (s.grammar != null) $('grammar').value = s.grammar;
  if (s.extra != null) $('extra').value = s.extra;
}

// Reads an SSE body and calls onEvent with each data line's JSON until [DONE].
async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, cut).replace(/\r$/, '');
      buffer = buffer.slice(cut + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return;
      onEvent(JSON.parse(data));
    }
  }
}

function setBusy(busy) {
  $('send').hidden = busy;
  $('stop').hidden = !busy;
  $('regenerate').disabled = busy;
  $('edit-last').disabled = busy;
}

// Streams the model's answer to the conversation as it stands into a new assistant message.
async function answer() {
  const c = current();
  const s = readSettings();
  if (!s.model) {
    setStatus('Pick a model first.');
    return;
  }
  let extra = {};
  try {
    if (s.extra.trim()) extra = JSON.parse(s.extra);
    if (typeof extra !== 'object' || Array.isArray(extra) || !extra) throw new Error('not an object');
  } catch (e) {
    setStatus(`Extra request fields: ${e.message}`);
    return;
  }
  c.model = s.model;
  const messages = [];
  if (s.system.trim()) messages.push({ role: 'system', content: s.system });
  for (const m of c.messages) if (!m.error) messages.push({ role: m.role, content: m.content });
  const reply = { role: 'assistant', content: '', reasoning: '', stats: {} };
  c.messages.push(reply);
  const body = {
    model: s.model, messages, stream: true, stream_options: { include_usage: true },
    temperature: s.temperature, top_p: s.top_p, max_tokens: s.max_tokens,
  };
  if (s.grammar.trim()) body.grammar = s.grammar;
  Object.assign(body, extra);
  controller = new AbortController();
  setBusy(true);
  setStatus('Waiting for the model…');
  scheduleRender();
  const t0 = performance.now();
  let tFirst = null;
  try {
    const res = await api('/v1/chat/completions', {
      method: 'POST', body: JSON.stringify(body), signal: controller.signal,
    });
    if (!res.ok) throw new Error(await errorText(res));
    setStatus('Answering… (Esc stops)');
    await readEvents(res, (chunk) => {
      const delta = chunk.choices?.[0]?.delta ?? {};
      if ((delta.content || delta.reasoning_content) && tFirst == null) tFirst = performance.now();
      if (delta.content) reply.content += delta.content;
      if (delta.reasoning_content) reply.reasoning += delta.reasoning_content;
      if (chunk.choices?.[0]?.finish_reason) reply.stats.finish = chunk.choices[0].finish_reason;
      if (chunk.usage) {
        reply.stats.prompt = chunk.usage.prompt_tokens;
        reply.stats.completion = chunk.usage.completion_tokens;
      }
      scheduleRender();
    });
    setStatus('');
  } catch (e) {
    if (e.name === 'AbortError') {
      reply.stats.stopped = true;
      setStatus('Stopped.');
    } else {
      if (!reply.content) reply.error = `Error: ${e.message}`;
      setStatus(`Error: ${e.message}`);
    }
  } finally {
    const tEnd = performance.now();
    if (tFirst != null) {
      reply.stats.ttft = (tFirst - t0) / 1000;
      const n = reply.stats.completion;
      // After the first token; when the whole answer came in one read (a fast model, a busy
      // machine), over the whole request instead.
      if (n > 1 && tEnd > tFirst) reply.stats.tps = (n - 1) / ((tEnd - tFirst) / 1000);
      else if (n > 0 && tEnd > t0) reply.stats.tps = n / ((tEnd - t0) / 1000);
    }
    controller = null;
    setBusy(false);
    save();
    render();
    loadModels(); // the model is loaded now
  }
}

function send() {
  const text = $('prompt').value;
  if (!text.trim() || controller) return;
  const c = current();
  if (!c.messages.length) c.title = text.trim().slice(0, 40);
  c.messages.push({ role: 'user', content: text });
  $('prompt').value = '';
  save();
  answer();
}

function stop() {
  if (controller) controller.abort();
}

function regenerate() {
  const c = current();
  if (controller || !c.messages.length) return;
  if (c.messages[c.messages.length - 1].role === 'assistant') c.messages.pop();
  if (c.messages.length) answer();
}

function editLast() {
  const c = current();
  if (controller) return;
  const i = c.messages.map((m) => m.role).lastIndexOf('user');
  if (i < 0) return;
  $('prompt').value = c.messages[i].content;
  c.messages.splice(i);
  save();
  render();
  $('prompt').focus();
}

function toggle(button, target, className) {
  const open = button.getAttribute('aria-expanded') !== 'true';
  button.setAttribute('aria-expanded', String(open));
  if (className) target.classList.toggle(className, open);
  else target.hidden = !open;
}

function init() {
  applySettings();
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && controller) stop();
  });
  $('stop').addEventListener('click', stop);
  $('regenerate').addEventListener('click', regenerate);
  $('edit-last').addEventListener('click', editLast);
  $('new-chat').addEventListener('click', () => {
    if (controller) return;
    currentId = null;
    current();
    save();
    render();
    $('prompt').focus();
  });
  $('toggle-settings').addEventListener('click', () => toggle($('toggle-settings'), $('settings')));
  $('toggle-list').addEventListener('click', () => toggle($('toggle-list'), $('conversations'), 'open'));
  $('forget-key').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    setStatus('API key forgotten.');
  });
  $('model').addEventListener('change', () => readSettings());
  render();
  loadModels();
  document.body.dataset.ready = 'true';
}

init();
