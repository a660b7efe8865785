// SPDX-License-Identifier: MIT
// Shared set-up of the e2e tests: where the server is (GARLIC_URL), which model to ask for
// (GARLIC_MODEL), and the garlic binary and model file for tokenizer checks. The cmocka test
// tests/server/test_server.c starts the server and sets these variables.
import { execFileSync } from 'node:child_process';

export const url = process.env.GARLIC_URL ?? 'http://127.0.0.1:8686';
export const model = process.env.GARLIC_MODEL ?? 'tiny';
export const modelPath = process.env.GARLIC_MODEL_PATH;
export const garlic = process.env.GARLIC_BIN ?? './garlic';

// The synthesized test model's end-of-sequence token is id 2: banning it makes a
// generation run to max_tokens, so counts are exact.
export const noEos = { 2: -100 };

// Token ids of text as the model's own tokenizer gives them (with BOS), via `garlic tokenize`.
export function tokenize(text) {
  const out = execFileSync(garlic, ['tokenize', modelPath, text, '--ids'], { encoding: 'utf8' });
  return out.trim().split(/\s+/).map(Number);
}
