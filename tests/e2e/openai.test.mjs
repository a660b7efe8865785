// SPDX-License-Identifier: MIT
// garlic serve through the real `openai` npm client: model listing, chat and completions
// with and without streaming, usage against the tokenizer, stop sequences, seeds, n.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';

import { model, modelPath, noEos, tokenize, url } from './common.mjs';

const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });

test('models.list names the served model', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes(model), `models: ${ids}`);
});

test('chat completion, not streamed', async () => {
  const r = await client.chat.completions.create({
    model,
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello' }],
    max_tokens: 7,
    logit_bias: noEos,
    temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 7);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 7);
});

test('chat completion streamed equals the whole answer', async () => {
  const request = {
    model,
    messages: [{ role: 'user', content: 'tell me a story' }],
    max_tokens: 10,
    temperature: 0,
    logit_bias: noEos,
  };
  const whole = await client.chat.completions.create(request);
  const stream = await client.chat.completions.create({
    ...request,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, whole.usage);
});

test('completion usage matches the tokenizer', async (t) => {
  if (!modelPath) return t.skip('GARLIC_MODEL_PATH is not set');
  const prompt = 'hello world, once upon a time';
  const r = await client.completions.create({ model, prompt, max_tokens: 5, logit_bias: noEos });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.usage.prompt_tokens, tokenize(prompt).length);
  assert.equal(r.usage.completion_tokens, 5);
  assert.equal(r.choices[0].finish_reason, 'length');
});

test('completion streamed', async () => {
  const request = { model, prompt: 'abc', max_tokens: 8, temperature: 0, logit_bias: noEos };
  const whole = await client.completions.create(request);
  const stream = await client.completions.create({ ...request, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, whole.choices[0].text);
});

test('stop sequences end the text before them', async () => {
  const request = { model, prompt: 'xyz', max_tokens: 24, temperature: 0, logit_bias: noEos };
  const text = (await client.completions.create(request)).choices[0].text;
  const m = text.slice(1).match(/[A-Za-z]/);
  assert.ok(m, `no letter to stop at in ${JSON.stringify(text)}`);
  const stop = m[0];
  const r = await client.completions.create({ ...request, stop: [stop, 'never-there'] });
  assert.equal(r.choices[0].text, text.slice(0, text.indexOf(stop)));
  assert.equal(r.choices[0].finish_reason, 'stop');
  const chat = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'q' }], max_tokens: 24, temperature: 0,
    logit_bias: noEos,
  });
  const ct = chat.choices[0].message.content;
  const cm = ct.slice(1).match(/[A-Za-z]/);
  if (cm) {
    const stopped = await client.chat.completions.create({
      model, messages: [{ role: 'user', content: 'q' }], max_tokens: 24, temperature: 0,
      logit_bias: noEos, stop: cm[0],
    });
    assert.equal(stopped.choices[0].message.content, ct.slice(0, ct.indexOf(cm[0])));
  }
});

test('the same seed gives the same text', async () => {
  const request = { model, prompt: 'seed', max_tokens: 16, temperature: 1.5, top_p: 1, logit_bias: noEos };
  const a = await client.completions.create({ ...request, seed: 7 });
  const b = await client.completions.create({ ...request, seed: 7 });
  const c = await client.completions.create({ ...request, seed: 8 });
  assert.equal(a.choices[0].text, b.choices[0].text);
  assert.notEqual(a.choices[0].text, c.choices[0].text);
});

test('n gives several choices', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'hi' }], n: 3, max_tokens: 4, seed: 1,
    logit_bias: noEos,
  });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(r.usage.completion_tokens, 12);
});

test('errors come back as API errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 404 && e.code === 'model_not_found',
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }),
    (e) => e.status === 400 && e.param === 'temperature',
  );
});

test('a prompt longer than the context is a 400 stating both lengths', async () => {
  const content = 'ab cd '.repeat(3000);
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'user', content }], max_tokens: 4 }),
    (e) => e.status === 400 && e.code === 'context_length_exceeded' && e.param === 'messages' &&
      /maximum context length is \d+ tokens\. However, your request has \d+ prompt tokens/.test(e.message),
  );
});
