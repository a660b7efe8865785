#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Takes the screenshots of the built-in pages that docs/web.md and the README show
// (docs/screenshots/*.png): the chat page after two real answers of the repository's
// TinyStories model (the second shaped by the page's grammar setting so that it shows
// reasoning, Markdown and a code block) and the operator page, at 1280x800 and 375x812.
// Needs ./garlic, chromium and tests/e2e/node_modules (tools/setup.sh installs both).
// Run from the repository root: node tools/web_screenshots.mjs
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.resolve('tests/e2e/package.json'));
const { chromium } = require('playwright-core');
const out = 'docs/screenshots';

const proc = spawn('./garlic', ['serve', '--port', '0', '--no-store', '--threads', '1', '-q',
  '-m', 'models/stories260K.gguf=stories260K', '--chat-template-file', 'tests/data/templates/hermes-think.jinja'],
{ stdio: ['ignore', 'ignore', 'pipe'] });
const url = await new Promise((resolve) => {
  let log = '';
  proc.stderr.on('data', (d) => {
    log += d;
    const m = log.match(/listening on (http:\/\/[\d.:]+)/);
    if (m) resolve(m[1]);
  });
});
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector('body[data-ready=true]');
  const answered = async (n) => page.waitForFunction((k) => document.querySelectorAll('#messages .msg.assistant .stats').length === k, n);
  await page.fill('#prompt', 'Once upon a time');
  await page.press('#prompt', 'Enter');
  await answered(1);
  await page.click('#toggle-settings');
  await page.click('details summary');
  await page.fill('#grammar', 'root ::= "<think>The user wants code.</think>Here is **a loop** in `C`:\\n\\n```c\\nfor (int i = 0; i < 3; i++)\\n    puts(\\"garlic\\");\\n```\\n"');
  await page.click('#toggle-settings');
  await page.fill('#prompt', 'Show me a loop in C');
  await page.press('#prompt', 'Enter');
  await answered(2);
  await page.screenshot({ path: `${out}/chat-1280.png` });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.screenshot({ path: `${out}/chat-375.png` });
  await page.goto(`${url}/ops`);
  await page.waitForSelector('#models td');
  await page.screenshot({ path: `${out}/ops-375.png` });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: `${out}/ops-1280.png` });
} finally {
  await browser.close();
  proc.kill('SIGTERM');
}
