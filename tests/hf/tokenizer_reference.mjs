// SPDX-License-Identifier: MIT
// The reference ids of one Hugging Face tokenizer for tests/hf/test_tokenizer_json.c: encodes
// the strings of tokenizer_strings.mjs with @huggingface/tokenizers (from tests/e2e's
// node_modules) and writes one JSON line per string:
//   {"hex": UTF-8 of the string in hex,
//    "special": ids, special-token texts recognised (the library's encode, nothing added),
//    "plain": ids, special-token texts left as text (special added tokens taken out of
//             added_tokens; non-special ones are always recognised, as in HF),
//    "add": ids as the model sees a prompt: "special" with BOS/EOS added}
//
//   node tests/hf/tokenizer_reference.mjs DIR OUT
//
// DIR holds tokenizer.json and, if there is one, tokenizer_config.json. BOS/EOS: the
// library adds what the post-processor says; where tokenizer_config.json sets add_bos_token
// or add_eos_token, those decide instead, as transformers' Llama and Gemma tokenizers (which
// rebuild the post-processor from them) and llama.cpp's converter do.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { testStrings } from './tokenizer_strings.mjs';

const require = createRequire(new URL('../e2e/node_modules/', import.meta.url));
const tokenizers = await import(require.resolve('@huggingface/tokenizers'));
const Tokenizer = tokenizers.Tokenizer ?? tokenizers.default.Tokenizer;

const [dir, out] = process.argv.slice(2);
if (!dir || !out) {
    console.error('usage: node tests/hf/tokenizer_reference.mjs DIR OUT');
    process.exit(2);
}
const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
const configPath = path.join(dir, 'tokenizer_config.json');
const config = fs.existsSync(configPath) ? JSON.parse(fs.readFileSync(configPath, 'utf8')) : {};

const full = new Tokenizer(json, config);
const plainJson = { ...json, added_tokens: json.added_tokens.filter((t) => !t.special) };
const plain = new Tokenizer(plainJson, config);

// BOS/EOS as tokenizer_config.json's add_bos_token/add_eos_token say, when it says.
const content = (t) => (typeof t === 'string' ? t : t?.content);
const idOf = (t) => full.token_to_id(content(t));
function withSpecials(text, ids) {
    if (typeof config.add_bos_token !== 'boolean' && typeof config.add_eos_token !== 'boolean')
        return full.encode(text, { add_special_tokens: true }).ids;
    const bos = config.add_bos_token ? [idOf(config.bos_token)] : [];
    const eos = config.add_eos_token ? [idOf(config.eos_token)] : [];
    return [...bos, ...ids, ...eos];
}

const specials = json.added_tokens.map((t) => t.content);
const lines = [];
for (const s of testStrings(specials)) {
    const ids = full.encode(s, { add_special_tokens: false }).ids;
    lines.push(JSON.stringify({
        hex: Buffer.from(s, 'utf8').toString('hex'),
        special: ids,
        plain: plain.encode(s, { add_special_tokens: false }).ids,
        add: withSpecials(s, ids),
    }));
}
fs.writeFileSync(out, lines.join('\n') + '\n');
