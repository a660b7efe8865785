// SPDX-License-Identifier: MIT
// garlic serve through the real `ollama` npm client: version, list, show, ps, generate and
// chat with and without streaming, options, the timing fields, loading and unloading with an
// empty prompt, and a prompt longer than the context (cut to fit).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ollama } from 'ollama';

import { model } from './common.mjs';

const ollama = new Ollama({ host: process.env.GARLIC_URL ?? 'http://127.0.0.1:8686' });

test('version, list, show and ps', async () => {
  const v = await ollama.version();
  assert.equal(typeof v.version, 'string');
  const list = await ollama.list();
  assert.ok(list.models.some((m) => m.name === model));
  const show = await ollama.show({ model });
  assert.equal(typeof show.template, 'string');
  assert.equal(show.details.format, 'gguf');
  const ps = await ollama.ps();
  assert.ok(ps.models.some((m) => m.name === model));
});

test('generate, not streamed, with options', async () => {
  const r = await ollama.generate({
    model, prompt: 'once upon a time', stream: false, keep_alive: '5m',
    options: { num_predict: 6, temperature: 0, top_k: 20, top_p: 0.9, min_p: 0.01, repeat_penalty: 1.1, seed: 3, num_ctx: 1024 },
  });
  assert.equal(r.done, true);
  assert.equal(typeof r.response, 'string');
  assert.ok(['stop', 'length'].includes(r.done_reason));
  assert.ok(r.prompt_eval_count > 0);
  assert.ok(r.eval_count <= 6);
  for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration'])
    assert.ok(Number.isInteger(r[k]) && r[k] >= 0, `${k} = ${r[k]}`);
});

test('generate streamed equals not streamed', async () => {
  const request = { model, prompt: 'abc', options: { num_predict: 8, temperature: 0 } };
  const whole = await ollama.generate({ ...request, stream: false });
  let text = '';
  let last = null;
  for await (const part of await ollama.generate({ ...request, stream: true })) {
    text += part.response;
    last = part;
  }
  assert.equal(text, whole.response);
  assert.equal(last.done, true);
  assert.equal(last.eval_count, whole.eval_count);
});

test('chat streamed and not', async () => {
  const request = { model, messages: [{ role: 'user', content: 'hello' }], options: { num_predict: 6, temperature: 0 } };
  const whole = await ollama.chat({ ...request, stream: false });
  assert.equal(whole.message.role, 'assistant');
  assert.equal(whole.done, true);
  let text = '';
  for await (const part of await ollama.chat({ ...request, stream: true })) text += part.message.content;
  assert.equal(text, whole.message.content);
});

test('seeds are deterministic', async () => {
  const request = { model, prompt: 'seed', stream: false, options: { num_predict: 10, temperature: 1.5, top_p: 1, seed: 11 } };
  const a = await ollama.generate(request);
  const b = await ollama.generate(request);
  assert.equal(a.response, b.response);
});

test('an unknown model is an error', async () => {
  await assert.rejects(ollama.generate({ model: 'no-such-model', prompt: 'x', stream: false }),
    (e) => e.status_code === 404 || /not/.test(e.message));
});

test('an empty prompt loads the model, and with keep_alive 0 unloads it', async () => {
  const loaded = await ollama.generate({ model, prompt: '', stream: false });
  assert.equal(loaded.done, true);
  assert.equal(loaded.done_reason, 'load');
  assert.equal(loaded.response, '');
  const unloaded = await ollama.chat({ model, messages: [], keep_alive: 0, stream: false });
  assert.equal(unloaded.done_reason, 'unload');
  assert.equal(unloaded.message.content, '');
  const again = await ollama.chat({ model, messages: [], stream: false });
  assert.equal(again.done_reason, 'load');
});

test('a prompt longer than the context is cut to fit', async () => {
  const r = await ollama.generate({
    model, prompt: 'ab cd '.repeat(3000), raw: true, stream: false, options: { num_predict: 3 },
  });
  assert.equal(r.done, true);
  assert.ok(r.prompt_eval_count > 0);
  assert.ok(r.prompt_eval_count + 3 <= 4096, `prompt_eval_count ${r.prompt_eval_count}`);
  await assert.rejects(
    ollama.generate({ model, prompt: 'ab cd '.repeat(3000), raw: true, stream: false, truncate: false }),
    (e) => e.status_code === 400 && /maximum context length/.test(e.message),
  );
});
