// SPDX-License-Identifier: MIT
// Model management with the real ollama and openai npm clients against a garlic serve whose
// model store starts empty: pull (streamed and not) from the test mirror (tests/store/mirror.py,
// an Ollama registry and a Hugging Face hub), list, show, copy, create with a system message
// and default parameters that generation then follows, delete, the errors the clients show,
// and models.list / models.retrieve. tests/store/test_serve_store.c starts the mirror and the
// server and sets GARLIC_URL, GARLIC_MIRROR (host:port) and GARLIC_MIRROR_ROOT; without them
// (the main e2e run) this file skips.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Ollama } from 'ollama';
import OpenAI from 'openai';

const mirror = process.env.GARLIC_MIRROR;
const root = process.env.GARLIC_MIRROR_ROOT;
const url = process.env.GARLIC_URL;
const skip = !mirror || !root || !url ? 'needs GARLIC_MIRROR (tests/store/test_serve_store.c)' : false;
const ollama = new Ollama({ host: url });
const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none' });

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');
const names = async () => (await ollama.list()).models.map((m) => m.name);

test('model management with the ollama and openai clients', { skip }, async (t) => {
  await t.test('the store starts empty', async () => {
    assert.deepEqual(await names(), []);
  });

  await t.test('a streamed pull from an Ollama registry reports progress, then success', async () => {
    const name = `${mirror}/library/stories:q8_0`;
    const parts = [];
    for await (const part of await ollama.pull({ model: name, insecure: true, stream: true }))
      parts.push(part);
    assert.equal(parts[0].status, 'pulling manifest');
    assert.equal(parts.at(-1).status, 'success');
    const digest = `sha256:${sha256(`${root}/library/stories/stories-Q8_0.gguf`)}`;
    const blob = parts.filter((p) => p.digest === digest);
    assert.ok(blob.length > 0, JSON.stringify(parts));
    assert.equal(blob.at(-1).completed, blob.at(-1).total);
    assert.ok(blob.every((p, i) => i === 0 || p.completed >= blob[i - 1].completed));
    assert.ok((await names()).includes(name));
  });

  await t.test('a pull from a Hugging Face hub, not streamed', async () => {
    const done = await ollama.pull({ model: 'hf.co/test/tiny:Q8_0' });
    assert.equal(done.status, 'success');
    const listed = (await ollama.list()).models.find((m) => m.name === 'hf.co/test/tiny:Q8_0');
    assert.ok(listed);
    assert.equal(listed.digest, sha256(`${root}/test/tiny/tiny-Q8_0.gguf`));
    assert.equal(listed.details.format, 'gguf');
    assert.ok(listed.size > 0);
  });

  await t.test('a cut download is resumed and still verified', async () => {
    const done = await ollama.pull({ model: 'hf.co/test/cut:Q8_0' });
    assert.equal(done.status, 'success');
    const listed = (await ollama.list()).models.find((m) => m.name === 'hf.co/test/cut:Q8_0');
    assert.equal(listed.digest, sha256(`${root}/test/cut/cut-Q8_0.gguf`));
  });

  await t.test('failed pulls say why, and leave nothing listed', async () => {
    const before = await names();
    await assert.rejects(ollama.pull({ model: 'hf.co/test/badsum:Q8_0' }), /checksum mismatch/);
    await assert.rejects(
      (async () => {
        for await (const part of await ollama.pull({ model: 'hf.co/test/badsum:Q8_0', stream: true }))
          void part;
      })(),
      /checksum mismatch/,
    );
    await assert.rejects(ollama.pull({ model: 'hf.co/test/absent:Q8_0' }), /not found/);
    await assert.rejects(ollama.pull({ model: 'no/such/thing/here' }), /model name|too many/);
    assert.deepEqual(await names(), before);
  });

  await t.test('show, generate, copy and delete a pulled model', async () => {
    const shown = await ollama.show({ model: 'hf.co/test/tiny:Q8_0' });
    assert.equal(shown.details.family, 'llama');
    const out = await ollama.generate({ model: 'hf.co/test/tiny:Q8_0', prompt: 'Hello', options: { num_predict: 3 } });
    assert.equal(out.done, true);

    assert.deepEqual(await ollama.copy({ source: 'hf.co/test/tiny:Q8_0', destination: 'tiny2' }), { status: 'success' });
    assert.ok((await names()).includes('tiny2:latest'));
    const copied = await ollama.generate({ model: 'tiny2', prompt: 'Hello', options: { num_predict: 3 } });
    assert.equal(copied.done, true);

    await ollama.delete({ model: 'tiny2' });
    assert.ok(!(await names()).includes('tiny2:latest'));
    assert.ok((await names()).includes('hf.co/test/tiny:Q8_0')); // the shared blob stays
    await assert.rejects(ollama.generate({ model: 'tiny2', prompt: 'Hello' }), /does not exist|not found/);
    await assert.rejects(ollama.delete({ model: 'tiny2' }), /not found/);
    await assert.rejects(ollama.copy({ source: 'absent', destination: 'x' }), /not found/);
  });

  await t.test('create: a system message and default parameters that generation follows', async () => {
    const done = await ollama.create({
      model: 'terse',
      from: 'hf.co/test/tiny:Q8_0',
      system: 'You are terse.',
      parameters: { temperature: 0, num_predict: 4, stop: ['zzzzzz'] },
    });
    assert.equal(done.status, 'success');
    const shown = await ollama.show({ model: 'terse' });
    assert.equal(shown.system, 'You are terse.');
    assert.match(shown.parameters, /temperature\s+0/);
    assert.match(shown.parameters, /stop\s+"zzzzzz"/);
    assert.match(shown.modelfile, /SYSTEM """You are terse\."""/);

    const a = await ollama.generate({ model: 'terse', prompt: 'Once' });
    const b = await ollama.generate({ model: 'terse', prompt: 'Once' });
    assert.equal(a.eval_count, 4); // num_predict from the model
    assert.equal(a.response, b.response); // temperature 0 from the model
    const longer = await ollama.generate({ model: 'terse', prompt: 'Once', options: { num_predict: 7 } });
    assert.equal(longer.eval_count, 7); // the request's own option wins

    // The system message is in the prompt: more prompt tokens than the plain model's.
    const plain = await ollama.generate({ model: 'hf.co/test/tiny:Q8_0', prompt: 'Once', options: { num_predict: 1 } });
    assert.ok(a.prompt_eval_count > plain.prompt_eval_count, `${a.prompt_eval_count} vs ${plain.prompt_eval_count}`);

    // Created over: replaced, and streamed this time.
    const parts = [];
    for await (const p of await ollama.create({ model: 'terse', from: 'terse', parameters: { num_predict: 2 }, stream: true }))
      parts.push(p.status);
    assert.equal(parts.at(-1), 'success');
    const again = await ollama.generate({ model: 'terse', prompt: 'Once' });
    assert.equal(again.eval_count, 2);
    assert.equal(again.response, a.response.slice(0, again.response.length)); // still temperature 0
  });

  await t.test('create refuses what garlic does not do, by name', async () => {
    await assert.rejects(ollama.create({ model: 'q', from: 'terse', quantize: 'q4_K_M' }), /'quantize' is not supported/);
    await assert.rejects(ollama.create({ model: 'q', from: 'terse', parameters: { mirostat: 1 } }), /mirostat/);
    await assert.rejects(ollama.create({ model: 'q', from: 'terse', template: '{{ .Prompt }}' }), /Jinja/);
    await assert.rejects(ollama.create({ model: 'q', from: 'absent-model' }), /absent-model/);
    assert.ok(!(await names()).includes('q:latest'));
  });

  await t.test('openai: models.list and models.retrieve', async () => {
    const ids = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    assert.ok(ids.includes('hf.co/test/tiny:Q8_0'));
    assert.ok(ids.includes('terse:latest'));
    const one = await openai.models.retrieve('hf.co/test/tiny:Q8_0');
    assert.equal(one.id, 'hf.co/test/tiny:Q8_0');
    assert.equal(one.object, 'model');
    assert.equal((await openai.models.retrieve('terse')).id, 'terse:latest');
    await assert.rejects(openai.models.retrieve('absent'), (e) => e.status === 404);
    const chat = await openai.chat.completions.create({
      model: 'terse', messages: [{ role: 'user', content: 'Hi' }],
    });
    assert.equal(chat.usage.completion_tokens, 2); // the model's num_predict
  });
});
