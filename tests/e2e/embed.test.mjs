// SPDX-License-Identifier: MIT
// Embeddings through the real clients: the openai client's embeddings.create (its default
// base64 transfer, which it decodes to floats, and encoding_format "float") and the ollama
// client's embed and embeddings, on the encoder test_server.c serves as GARLIC_EMBED_MODEL at
// GARLIC_EMBED_URL (default GARLIC_URL). Skipped when GARLIC_EMBED_MODEL is unset.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ollama } from 'ollama';
import OpenAI from 'openai';

import { url } from './common.mjs';

const embedModel = process.env.GARLIC_EMBED_MODEL;
const embedUrl = process.env.GARLIC_EMBED_URL ?? url;
const skip = embedModel ? false : 'GARLIC_EMBED_MODEL is not set';
const client = new OpenAI({ baseURL: `${embedUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
const ollama = new Ollama({ host: embedUrl });

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const maxDiff = (a, b) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));

test('openai embeddings.create: base64 by default, float on request, the same vectors', { skip },
  async () => {
    const input = ['hello world', 'the cat sat on the mat'];
    const byDefault = await client.embeddings.create({ model: embedModel, input });
    const floats = await client.embeddings.create({ model: embedModel, input, encoding_format: 'float' });
    assert.equal(byDefault.data.length, 2);
    assert.equal(byDefault.model, embedModel);
    assert.ok(byDefault.usage.prompt_tokens > 0);
    for (let i = 0; i < 2; i++) {
      const a = byDefault.data[i].embedding, b = floats.data[i].embedding;
      assert.ok(Array.isArray(a) && a.length === b.length && a.length > 0);
      assert.equal(byDefault.data[i].index, i);
      assert.ok(Math.abs(norm(a) - 1) < 1e-5, `norm ${norm(a)}`);
      assert.ok(maxDiff(a, b) < 1e-6, `base64 and float differ by ${maxDiff(a, b)}`);
    }
    assert.ok(maxDiff(floats.data[0].embedding, floats.data[1].embedding) > 1e-3);
    const cut = await client.embeddings.create({ model: embedModel, input: 'hello world', dimensions: 8 });
    assert.equal(cut.data[0].embedding.length, 8);
    assert.ok(Math.abs(norm(cut.data[0].embedding) - 1) < 1e-5);
  });

test('openai embeddings.create refuses an unknown model and a bad field', { skip }, async () => {
  await assert.rejects(client.embeddings.create({ model: 'no-such-model', input: 'x' }),
    (e) => e.status === 404);
  await assert.rejects(client.embeddings.create({ model: embedModel, input: 'x', dimensions: 0 }),
    (e) => e.status === 400);
});

test('ollama embed and embeddings agree with openai', { skip }, async () => {
  const r = await ollama.embed({ model: embedModel, input: ['hello world', 'the cat sat on the mat'] });
  assert.equal(r.model, embedModel);
  assert.equal(r.embeddings.length, 2);
  assert.ok(r.prompt_eval_count > 0);
  const floats = await client.embeddings.create({ model: embedModel, input: 'hello world', encoding_format: 'float' });
  assert.ok(maxDiff(r.embeddings[0], floats.data[0].embedding) < 1e-6);
  const one = await ollama.embed({ model: embedModel, input: 'hello world', truncate: true });
  assert.ok(maxDiff(one.embeddings[0], r.embeddings[0]) < 1e-6);
  const old = await ollama.embeddings({ model: embedModel, prompt: 'hello world' });
  assert.ok(maxDiff(old.embedding, r.embeddings[0]) < 1e-6);
});
