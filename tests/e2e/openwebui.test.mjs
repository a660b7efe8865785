// SPDX-License-Identifier: MIT
// The request sequence Open WebUI's backend sends to a garlic server, scripted with fetch
// (docs/open-webui.md describes it): as an Ollama connection (verify with /api/version, list
// with /api/tags and /api/ps, /api/show, a streamed /api/chat, a non-streamed task request for
// the title, unload with /api/generate keep_alive 0) and as an OpenAI connection (/v1/models,
// streamed and non-streamed /v1/chat/completions). Headers as Open WebUI sends them (a JSON
// Content-Type even on GET, its X-OpenWebUI-User-* headers). Against the repository's
// TinyStories model (GARLIC_AGENT_URL, set by tests/server/test_server.c); skips without it.
import assert from 'node:assert/strict';
import { test } from 'node:test';

const url = process.env.GARLIC_AGENT_URL;
const skip = url ? false : 'needs GARLIC_AGENT_URL (tests/server/test_server.c)';
const model = 'stories';
const headers = {
  'Content-Type': 'application/json',
  'X-OpenWebUI-User-Name': 'Ada',
  'X-OpenWebUI-User-Id': 'u-1',
  'X-OpenWebUI-User-Role': 'admin',
};

async function get(path) {
  const res = await fetch(`${url}${path}`, { headers });
  assert.equal(res.status, 200, `GET ${path}`);
  return res.json();
}

async function post(path, body) {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  assert.equal(res.status, 200, `POST ${path}: ${res.status}`);
  return res;
}

const titlePrompt = '### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.\n' +
  '### Output:\nJSON format: { "title": "your concise title here" }\n### Chat History:\n<chat_history>\nUSER: Tell me a story\n</chat_history>';

test('Open WebUI as an Ollama connection: verify, list, show, stream a chat, a title, unload', { skip }, async () => {
  // verify: the version must parse as Open WebUI parses it (digits after removing v and -suffix)
  const { version } = await get('/api/version');
  const parts = version.replace(/^v|-.*/g, '').split('.').map(Number);
  assert.ok(parts.length >= 2 && parts.every(Number.isInteger), version);
  // the model list: Open WebUI keys models by "model" and shows "name", "size", "details"
  const tags = await get('/api/tags');
  const entry = tags.models.find((m) => m.model === model);
  assert.ok(entry, JSON.stringify(tags));
  assert.equal(entry.name, model);
  assert.ok(entry.size > 0 && entry.details.family && entry.modified_at);
  // /api/ps: loaded models' expires_at, read as an ISO date
  for (const m of (await get('/api/ps')).models) assert.ok(!Number.isNaN(Date.parse(m.expires_at)), m.expires_at);
  const show = await (await post('/api/show', { model })).json();
  assert.ok(show.details && typeof show.template === 'string' && show.model_info);

  // a chat, streamed as NDJSON with the options Open WebUI maps its settings to
  const res = await post('/api/chat', {
    model, stream: true, keep_alive: '5m',
    messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me a story' }],
    options: { temperature: 0.8, top_p: 0.9, num_predict: 12, num_ctx: 1024, seed: 7 },
  });
  assert.match(res.headers.get('content-type'), /application\/x-ndjson/);
  const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.length >= 2);
  const last = lines.at(-1);
  assert.equal(last.done, true);
  assert.ok(last.eval_count >= 1 && last.eval_count <= 12, String(last.eval_count));
  assert.ok(lines.slice(0, -1).every((l) => l.done === false && typeof l.message.content === 'string'));

  // the title: a task prompt sent as a non-streamed chat
  const title = await (await post('/api/chat', {
    model, stream: false, messages: [{ role: 'user', content: titlePrompt }], options: { num_predict: 10 },
  })).json();
  assert.equal(title.done, true);
  assert.equal(typeof title.message.content, 'string');
  // the same through /api/generate, as Ollama-API title helpers ask it
  const gen = await (await post('/api/generate', { model, prompt: titlePrompt, stream: false, options: { num_predict: 10 } })).json();
  assert.equal(gen.done, true);
  assert.equal(typeof gen.response, 'string');

  // unload: /api/generate with keep_alive 0 and an empty prompt
  const unload = await (await post('/api/generate', { model, keep_alive: 0, prompt: '' })).json();
  // (that the model then leaves /api/ps is checked by browser.test.mjs on a server of its own:
  // the agents tests share this one and may load it again at once)
  assert.equal(unload.done, true);
  assert.equal(unload.done_reason, 'unload');
});

test('Open WebUI as an OpenAI connection: list, stream a chat, a title', { skip }, async () => {
  const list = await get('/v1/models');
  assert.ok(list.data.some((m) => m.id === model));
  const res = await post('/v1/chat/completions', {
    model, stream: true, stream_options: { include_usage: true }, max_tokens: 8,
    messages: [{ role: 'user', content: 'Tell me a story' }],
  });
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  const events = (await res.text()).split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  const used = chunks.at(-1).usage.completion_tokens;
  assert.ok(used >= 1 && used <= 8, String(used));
  const title = await (await post('/v1/chat/completions', {
    model, stream: false, max_tokens: 10, messages: [{ role: 'user', content: titlePrompt }],
  })).json();
  assert.equal(typeof title.choices[0].message.content, 'string');
});
