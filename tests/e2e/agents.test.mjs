// SPDX-License-Identifier: MIT
// Agents and structured output with the real openai and ollama clients against a server of the
// repository's TinyStories model with tests/data/templates/hermes-think.jinja (a Hermes-style
// template with <tool_call> and <think>): tool calls forced by tool_choice (streamed and not,
// any or a named function), the tool history rendered, structured output by JSON schema
// (the openai parse helper, Ollama's format), Ollama's think and tool_calls. The model writes
// noise; constrained sampling makes every answer here valid all the same.
// tests/server/test_server.c starts the server and sets GARLIC_AGENT_URL; without it this
// file skips.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ollama } from 'ollama';
import OpenAI from 'openai';

const url = process.env.GARLIC_AGENT_URL;
const skip = url ? false : 'needs GARLIC_AGENT_URL (tests/server/test_server.c)';
const model = 'stories';
const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none' });
const ollama = new Ollama({ host: url });

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', maxLength: 20 }, days: { type: 'integer', minimum: 1, maximum: 7 } },
        required: ['city', 'days'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'get_time',
      parameters: { type: 'object', properties: { zone: { enum: ['UTC', 'CET'] } }, required: ['zone'] },
    },
  },
];

function checkWeather(args) {
  assert.equal(typeof args.city, 'string');
  assert.ok(args.city.length <= 20);
  assert.ok(Number.isInteger(args.days) && args.days >= 1 && args.days <= 7, JSON.stringify(args));
}

const person = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 30 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    pets: { type: 'array', items: { enum: ['cat', 'dog', 'bird'] }, maxItems: 3 },
  },
  required: ['name', 'age', 'pets'],
  additionalProperties: false,
};

function checkPerson(p) {
  assert.deepEqual(Object.keys(p).sort(), ['age', 'name', 'pets']);
  assert.equal(typeof p.name, 'string');
  assert.ok(Number.isInteger(p.age) && p.age >= 0 && p.age <= 150);
  assert.ok(Array.isArray(p.pets) && p.pets.length <= 3);
  for (const pet of p.pets) assert.ok(['cat', 'dog', 'bird'].includes(pet));
}

test('agents: tool calls, structured output, thinking', { skip }, async (t) => {
  const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];

  await t.test('openai: a required tool call, whole', async () => {
    const r = await openai.chat.completions.create({ model, messages, tools, tool_choice: 'required', max_tokens: 200 });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.match(call.id, /^call_/);
    assert.equal(call.type, 'function');
    assert.ok(['get_weather', 'get_time'].includes(call.function.name));
    const args = JSON.parse(call.function.arguments);
    if (call.function.name === 'get_weather') checkWeather(args);
    else assert.ok(['UTC', 'CET'].includes(args.zone));
  });

  await t.test('openai: a named tool call, streamed', async () => {
    const stream = await openai.chat.completions.create({
      model, messages, tools, stream: true, max_tokens: 200,
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    const calls = [];
    let finish = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      for (const d of c.delta.tool_calls ?? []) {
        calls[d.index] ??= { id: '', name: '', arguments: '' };
        if (d.id) calls[d.index].id = d.id;
        if (d.function?.name) calls[d.index].name = d.function.name;
        calls[d.index].arguments += d.function?.arguments ?? '';
      }
      finish = c.finish_reason ?? finish;
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].name, 'get_weather');
    assert.match(calls[0].id, /^call_/);
    checkWeather(JSON.parse(calls[0].arguments));
  });

  await t.test('openai: the tool history is rendered, and "none" leaves calls alone', async () => {
    const history = [
      ...messages,
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":1}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"sky":"clear"}' },
    ];
    const r = await openai.chat.completions.create({ model, messages: history, tools, tool_choice: 'none', max_tokens: 8 });
    assert.equal(r.choices[0].message.tool_calls, undefined);
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.ok(r.usage.prompt_tokens > 100); // the tools and the history are in the prompt
  });

  await t.test('openai: structured output with the parse helper', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await openai.chat.completions.parse({
        model, messages: [{ role: 'user', content: 'Describe someone.' }], max_tokens: 300, temperature: 1.5,
        response_format: { type: 'json_schema', json_schema: { name: 'person', schema: person, strict: true } },
      });
      assert.equal(r.choices[0].finish_reason, 'stop');
      checkPerson(r.choices[0].message.parsed);
    }
    await assert.rejects(
      openai.chat.completions.create({
        model, messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', patternProperties: { a: {} } } } },
      }),
      (e) => e.status === 400 && /patternProperties/.test(e.message),
    );
  });

  await t.test('ollama: format with a schema, and "json"', async () => {
    const r = await ollama.chat({ model, messages: [{ role: 'user', content: 'Someone?' }], format: person, options: { num_predict: 300 } });
    checkPerson(JSON.parse(r.message.content));
    // Any object, within a budget: the grammar steers the text to an end in time.
    for (const n of [8, 40, 120]) {
      const j = await ollama.generate({ model, prompt: 'JSON please', format: 'json', options: { num_predict: n } });
      assert.equal(j.done_reason, 'stop');
      assert.ok(j.eval_count <= n);
      assert.equal(typeof JSON.parse(j.response), 'object');
    }
  });

  await t.test('ollama: think', async () => {
    const on = await ollama.chat({ model, messages, think: true, options: { num_predict: 12 } });
    assert.ok(on.message.thinking.length > 0); // the template opened <think>: the answer starts there
    assert.equal(on.message.content, '');
    const off = await ollama.chat({ model, messages, think: false, options: { num_predict: 12 } });
    assert.equal(off.message.thinking, undefined);
    assert.ok(off.message.content.length > 0);
  });

  await t.test('ollama: tool_calls, whole and streamed', async () => {
    // Ollama's API has no tool_choice: garlic's grammar field makes the noise a call.
    const grammar = 'root ::= "<tool_call>\\n{\\"name\\": \\"get_weather\\", \\"arguments\\": {\\"city\\": \\"Paris\\", \\"days\\": 2}}\\n</tool_call>"';
    const r = await ollama.chat({ model, messages, tools, grammar });
    assert.equal(r.message.tool_calls.length, 1);
    assert.equal(r.message.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(r.message.tool_calls[0].function.arguments, { city: 'Paris', days: 2 });
    const calls = [];
    for await (const part of await ollama.chat({ model, messages, tools, grammar, stream: true }))
      calls.push(...(part.message.tool_calls ?? []));
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0].function.arguments, { city: 'Paris', days: 2 });
  });
});
