// SPDX-License-Identifier: MIT
// The built-in pages in a real browser (playwright-core driving Debian's chromium) and
// browser clients on other origins. The file starts its own garlic servers (GARLIC_BIN): one
// with the default CORS policy serving the repository's TinyStories model (with the
// Hermes-style template, so <think> becomes reasoning) and a slower random model for stopping
// an answer mid-way; one with --cors-origin and --api-key. Model text is forced where it
// matters by the page's grammar setting. A tiny Node server plays the other origin (its
// page imports the openai SDK from node_modules); chromium resolves foreign.test to
// 127.0.0.1 so that origin is not a localhost one. Skips with a message without chromium,
// playwright-core or GARLIC_BIN.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const garlic = process.env.GARLIC_BIN;

let chromium = null;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  chromium = null;
}

function findChromium() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const dir of ['/usr/bin', ...(process.env.PATH ?? '').split(':')]) {
    for (const name of ['chromium', 'chromium-browser']) {
      const p = path.join(dir, name);
      if (fs.existsSync(p)) return p;
    }
  }
  return null;
}
const executablePath = findChromium();
const skip = !chromium ? 'playwright-core is not installed (npm ci --prefix tests/e2e)'
  : !executablePath ? 'chromium is not installed (tools/setup.sh installs it)'
    : !garlic ? 'needs GARLIC_BIN (tests/server/test_server.c sets it)' : false;

// `garlic serve` on a free port; resolves with its URL once it says where it listens.
function serve(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(garlic, ['serve', '--port', '0', '--no-store', '-q', '--threads', '1', ...args],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on (http:\/\/[\d.:]+)/);
      if (m) resolve({ url: m[1], proc, log: () => log });
    });
    proc.on('exit', (code) => reject(new Error(`garlic serve exited ${code}: ${log}`)));
  });
}

// The other origin's page: calls a garlic server with the openai SDK (served from
// node_modules) and the Ollama API with fetch, and reports what happened.
const crossPage = `<!doctype html><meta charset="utf-8"><title>other origin</title>
<script type="module">
import { OpenAI } from '/openai/client.mjs';
window.callGarlic = async (base, key) => {
  const out = {};
  try {
    const client = new OpenAI({ baseURL: base + '/v1', apiKey: key, dangerouslyAllowBrowser: true });
    out.models = (await client.models.list()).data.map((m) => m.id);
    const r = await client.chat.completions.create({ model: 'stories', max_tokens: 4,
      messages: [{ role: 'user', content: 'hi' }] });
    out.finish = r.choices[0].finish_reason;
    let chunks = 0;
    const stream = await client.chat.completions.create({ model: 'stories', max_tokens: 4,
      stream: true, messages: [{ role: 'user', content: 'hi' }] });
    for await (const c of stream) chunks++;
    out.chunks = chunks;
  } catch (e) {
    out.openaiError = String(e);
  }
  try {
    const headers = { 'Content-Type': 'application/json', Authorization: 'Bearer ' + key };
    out.tags = (await (await fetch(base + '/api/tags', { headers })).json()).models.map((m) => m.name);
    const res = await fetch(base + '/api/chat', { method: 'POST', headers, body: JSON.stringify({
      model: 'stories', stream: false, messages: [{ role: 'user', content: 'hi' }],
      options: { num_predict: 4 } }) });
    out.ollamaDone = (await res.json()).done;
  } catch (e) {
    out.ollamaError = String(e);
  }
  return out;
};
document.title = 'ready';
</script>`;

function startCrossServer() {
  const sdk = path.join(here, 'node_modules/openai');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end(crossPage);
    }
    const file = path.join(sdk, path.normalize(url.pathname.replace(/^\/openai\//, '')));
    if (!url.pathname.startsWith('/openai/') || !file.startsWith(sdk) || !fs.existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'Content-Type': 'text/javascript' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

let main, guarded, cross, crossPort, browser;
const thinkGrammar = 'root ::= "<think>I plan.</think>Hello **world**\\n\\n```js\\nlet x = 1;\\n```\\n"';
const hostileGrammar = 'root ::= "<img src=x onerror=window.pwned=1><script>window.pwned=2</script> done"';

before(async () => {
  if (skip) return;
  const slow = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'garlic-web-')), 'slow.gguf');
  // About 300 tokens/s on one thread: an answer runs long enough to be stopped.
  execFileSync(garlic, ['synth', slow, '--dim', '512', '--layers', '8', '--heads', '8',
    '--kv-heads', '8', '--ffn', '1536', '--ctx', '4096']);
  cross = await startCrossServer();
  crossPort = cross.address().port;
  const template = 'tests/data/templates/hermes-think.jinja';
  [main, guarded] = await Promise.all([
    serve(['-m', 'models/stories260K.gguf=stories', '-m', `${slow}=slow`, '--chat-template-file', template]),
    serve(['-m', 'models/stories260K.gguf=stories', '--api-key', 'k3y',
      '--cors-origin', `http://foreign.test:${crossPort}`]),
  ]);
  browser = await chromium.launch({
    executablePath, args: ['--no-sandbox', '--host-resolver-rules=MAP foreign.test 127.0.0.1'],
  });
});

after(async () => {
  await browser?.close();
  cross?.close();
  for (const s of [main, guarded]) s?.proc.kill('SIGTERM');
});

async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

// A fresh page of the chat at the given size, ready (its script ran, models listed).
async function chatPage(base, viewport = { width: 1280, height: 800 }, init) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  if (init) await page.addInitScript(init);
  await page.goto(`${base}/`);
  await page.waitForSelector('body[data-ready=true]');
  return { page, context, errors };
}

async function settings(page, values) {
  if ((await page.getAttribute('#toggle-settings', 'aria-expanded')) !== 'true') await page.click('#toggle-settings');
  if (!(await page.isVisible('#grammar'))) await page.click('details summary');
  for (const [id, v] of Object.entries(values)) await page.fill(`#${id}`, v);
}

async function ask(page, text) {
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
}

const lastAnswer = '#messages li.msg.assistant:last-child';

test('chat: pick a model, a streamed answer with reasoning folded and Markdown rendered, kept over a reload', { skip }, async () => {
  const { page, context, errors } = await chatPage(main.url);
  const options = await page.$$eval('#model option', (os) => os.map((o) => o.value));
  assert.deepEqual(options.sort(), ['slow', 'stories'], `the page says: ${await page.textContent('#status')}`);
  await page.selectOption('#model', 'stories');
  await settings(page, { grammar: thinkGrammar, 'max-tokens': '200', extra: '' });
  await ask(page, 'Say hello');
  await page.waitForSelector(`${lastAnswer} .stats`);
  await page.waitForFunction(() => !document.querySelector('#stop:not([hidden])'));
  assert.equal(await page.textContent(`${lastAnswer} pre code`), 'let x = 1;');
  assert.equal(await page.textContent(`${lastAnswer} .body strong`), 'world');
  assert.equal(await page.textContent(`${lastAnswer} details summary`), 'Reasoning');
  assert.equal(await page.getAttribute(`${lastAnswer} details`, 'open'), null, 'reasoning starts folded');
  assert.match(await page.textContent(`${lastAnswer} details`), /I plan\./);
  const stats = await page.textContent(`${lastAnswer} .stats`);
  assert.match(stats, /first token \d+ ms/);
  assert.match(stats, /tokens\/s/);
  assert.match(stats, /context \d+ tokens/);
  assert.equal(await page.textContent('#messages li.msg.user .body'), 'Say hello');

  await page.reload();
  await page.waitForSelector('body[data-ready=true]');
  assert.equal(await page.textContent('#messages li.msg.user .body'), 'Say hello');
  assert.equal(await page.textContent(`${lastAnswer} pre code`), 'let x = 1;');
  assert.match(await page.textContent('#conversation-list'), /Say hello/);

  // Regenerate replaces the answer; edit-last puts the question back in the box.
  await page.click('#regenerate');
  await page.waitForFunction(() => document.querySelectorAll('#messages li.msg').length === 2 &&
    document.querySelector('#messages li.msg.assistant .stats'));
  await page.waitForFunction(() => !document.querySelector('#stop:not([hidden])'));
  await page.click('#edit-last');
  assert.equal(await page.inputValue('#prompt'), 'Say hello');
  assert.equal(await page.$$eval('#messages li.msg', (l) => l.length), 0);
  assert.deepEqual(errors, []);
  await context.close();
});

test('chat: Stop (and Esc) cancel a long answer mid-way; /metrics counts it cancelled', { skip }, async () => {
  const { page, context } = await chatPage(main.url);
  await page.selectOption('#model', 'slow');
  await settings(page, { grammar: '', 'max-tokens': '3000', extra: '{"logit_bias": {"2": -100}}' });
  for (const how of ['button', 'escape']) {
    const before = await metric(main.url, 'garlic_generations_cancelled_total');
    await ask(page, `Tell a long story (${how})`);
    await page.waitForFunction((sel) => document.querySelector(sel)?.querySelector('.body')?.textContent.length > 0, lastAnswer);
    const first = (await page.textContent(`${lastAnswer} .body`)).length;
    // streamed: more text arrives while the answer runs
    await page.waitForFunction(([sel, n]) => document.querySelector(sel).querySelector('.body').textContent.length > n, [lastAnswer, first]);
    if (how === 'button') await page.click('#stop');
    else await page.keyboard.press('Escape');
    await page.waitForSelector(`${lastAnswer} .stats`);
    assert.match(await page.textContent(`${lastAnswer} .stats`), /stopped/);
    let after = before;
    for (let i = 0; i < 50 && after <= before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await metric(main.url, 'garlic_generations_cancelled_total');
    }
    assert.ok(after > before, `garlic_generations_cancelled_total ${before} -> ${after}`);
    const usage = await page.textContent(`${lastAnswer} .body`);
    assert.ok(usage.length > first && usage.length < 3000 * 8, 'stopped before the end');
  }
  assert.equal(await page.textContent('#send:not([hidden])'), 'Send');
  await context.close();
});

test('chat: model text with <script> and <img onerror> shows as text, streamed or stored', { skip }, async () => {
  const stored = JSON.stringify([{ id: 'x1', title: 'stored <b>title</b>', messages: [
    { role: 'user', content: '<img src=x onerror="window.pwned=3">' },
    { role: 'assistant', content: '<script>window.pwned=4</script> [click](javascript:window.pwned=5) **<img src=x onerror=window.pwned=6>**',
      reasoning: '<img src=x onerror=window.pwned=7>' },
  ] }]);
  const { page, context, errors } = await chatPage(main.url, undefined, `
    if (!sessionStorage.getItem('seeded')) {
      localStorage.setItem('garlic.conversations', ${JSON.stringify(stored)});
      localStorage.setItem('garlic.current', 'x1');
      sessionStorage.setItem('seeded', '1');
    }`);
  const noTags = () => page.$$eval('#messages img, #messages script, #messages a[href^=javascript], #conversation-list b', (l) => l.length);
  assert.equal(await noTags(), 0);
  assert.match(await page.textContent('#messages li.msg.assistant .body'), /<script>window\.pwned=4<\/script>/);
  assert.match(await page.textContent('#messages li.msg.user .body'), /<img src=x onerror/);
  assert.match(await page.textContent('#conversation-list'), /stored <b>title<\/b>/);
  await page.selectOption('#model', 'stories');
  await settings(page, { grammar: hostileGrammar, 'max-tokens': '200', extra: '' });
  await ask(page, 'be nasty');
  await page.waitForFunction(() => document.querySelectorAll('#messages li.msg.assistant').length === 2 &&
    document.querySelector('#messages li.msg.assistant:last-child .stats'));
  assert.equal(await page.textContent(`${lastAnswer} .body`), '<img src=x onerror=window.pwned=1><script>window.pwned=2</script> done');
  assert.equal(await noTags(), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.deepEqual(errors, []);
  await context.close();
});

test('chat at phone width (375 px): no sideways scrolling, composer usable', { skip }, async () => {
  const { page, context } = await chatPage(main.url, { width: 375, height: 812 });
  assert.ok(await page.isVisible('#prompt'));
  assert.ok(await page.isVisible('#send'));
  assert.ok(await page.isVisible('#model'));
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 375);
  await page.click('#toggle-list');
  assert.ok(await page.isVisible('#new-chat'));
  await context.close();
});

test('operator page: loaded models, memory against the budget, Unload', { skip }, async () => {
  await fetch(`${main.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'stories', prompt: 'x', stream: false, options: { num_predict: 1 } }) });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${main.url}/ops`);
  await page.waitForSelector('#models td:text-is("stories")');
  assert.match(await page.textContent('#memory'), /\d+(\.\d)? (KB|MB|GB)/);
  assert.match(await page.textContent('#budget'), /of \d+(\.\d)? (MB|GB|TB) budget/);
  assert.match(await page.textContent('#running'), /^\d+$/);
  assert.match(await page.textContent('#queued'), /^\d+$/);
  const updated = await page.getAttribute('body', 'data-updated');
  await page.waitForFunction((u) => document.body.dataset.updated !== u, updated, { timeout: 5000 });
  // at phone width the table still fits, Unload button included
  await page.setViewportSize({ width: 375, height: 812 });
  const box = await page.locator('button[aria-label="Unload stories"]').boundingBox();
  assert.ok(box && box.x + box.width <= 375, `the Unload button ends at ${box && box.x + box.width} px`);
  await page.click('button[aria-label="Unload stories"]');
  await page.waitForFunction(() => ![...document.querySelectorAll('#models td')].some((td) => td.textContent === 'stories'), null, { timeout: 8000 });
  const ps = await (await fetch(`${main.url}/api/ps`)).json();
  assert.ok(!ps.models.some((m) => m.name === 'stories'));
  await context.close();
});

test('chat with --api-key: the page asks for the key once and keeps it for the tab', { skip }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${guarded.url}/`);
  await page.waitForSelector('#key-dialog[open]');
  await page.fill('#api-key', 'k3y');
  await page.click('#key-ok');
  await page.waitForSelector('#model option[value=stories]', { state: 'attached' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('garlic.apiKey')), 'k3y');
  await page.reload();
  await page.waitForSelector('#model option[value=stories]', { state: 'attached' });
  assert.equal(await page.$('#key-dialog[open]'), null);
  await context.close();
});

async function callFrom(origin, base, key) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => document.title === 'ready');
  const out = await page.evaluate(([b, k]) => window.callGarlic(b, k), [base, key]);
  await context.close();
  return out;
}

test('another origin: the openai SDK and fetch of the Ollama API from a localhost page (default policy)', { skip }, async () => {
  const out = await callFrom(`http://localhost:${crossPort}`, main.url, 'none');
  assert.equal(out.openaiError, undefined);
  assert.ok(out.models.includes('stories'));
  assert.equal(out.finish, 'length');
  assert.ok(out.chunks >= 2);
  assert.equal(out.ollamaError, undefined);
  assert.ok(out.tags.includes('stories'));
  assert.equal(out.ollamaDone, true);
});

test('another origin: a foreign page is refused by default and allowed with --cors-origin', { skip }, async () => {
  const refused = await callFrom(`http://foreign.test:${crossPort}`, main.url, 'none');
  assert.match(refused.openaiError ?? '', /Connection error|fetch/i);
  assert.match(refused.ollamaError ?? '', /Failed to fetch/);
  const allowed = await callFrom(`http://foreign.test:${crossPort}`, guarded.url, 'k3y');
  assert.equal(allowed.openaiError, undefined);
  assert.deepEqual(allowed.models, ['stories']);
  assert.ok(allowed.chunks >= 2);
  assert.equal(allowed.ollamaError, undefined);
  assert.equal(allowed.ollamaDone, true);
});
