// SPDX-License-Identifier: MIT
// Writes tests/data/tokenizer/bert-bge-wordpiece.{inp,out}: several hundred strings and the ids
// Hugging Face's BERT tokenizer (BertNormalizer + BertPreTokenizer + WordPiece, as the
// @huggingface/tokenizers package runs them) gives for them with the vocabulary of
// ../shared/tokenizer/ggml-vocab-bert-bge.gguf. tests/tokenizer compares garlic with every line.
//
//   node tools/reference/gen_wordpiece_reference.mjs ../shared/tokenizer/ggml-vocab-bert-bge.gguf \
//       tests/data/tokenizer [tokenizer.json]
//
// (NODE_PATH defaults to tests/e2e/node_modules, where `npm ci` in tests/e2e installs the
// package.) The GGUF's vocabulary is turned back into the tokenizer.json it was converted from:
// llama.cpp's converter wrote a word-initial token "x" as "▁x", a continuation "##x" as "x" and
// kept "[...]" tokens as they were. The normalizer is bge's: clean_text, handle_chinese_chars,
// lowercase, strip_accents null (so it follows lowercase); the model cuts words of at most 100
// characters, unknown token [UNK]. Ids are without [CLS]/[SEP] (as ../shared's .out files), and
// the strings never spell the special tokens (which HF would match in text).
//
// Two departures from the JavaScript port, so that the reference is the Rust library that
// sentence-transformers runs for bge (and the one llama.cpp follows): (1) CJK ideographs are
// found by code point; the port tests UTF-16 units and so never splits an ideograph beyond
// U+FFFF (the ranges themselves, which include those planes, are the port's). (2) Lowercasing is
// character by character (Rust's char::to_lowercase); the port's String.toLowerCase applies
// the final-sigma rule (word-final "Σ" -> "ς" instead of "σ"). The script prints how many
// strings the unpatched port tokenizes differently. The strings come from a seeded generator,
// so the same command writes the same files.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [gguf, outDir, jsonOut] = process.argv.slice(2);
if (!gguf || !outDir) {
    console.error('usage: node tools/reference/gen_wordpiece_reference.mjs VOCAB.gguf OUT_DIR [tokenizer.json]');
    process.exit(2);
}
const modules = process.env.NODE_PATH || path.resolve('tests/e2e/node_modules');
const require = createRequire(path.join(modules, 'x'));
const lib = await import(require.resolve('@huggingface/tokenizers'));
const { Tokenizer, BertNormalizer } = lib.Tokenizer ? lib : lib.default;

// Reads the metadata key/value pairs of a GGUF file (v2/v3): enough for tokenizer.ggml.*.
function readGgufMetadata(file) {
    const buf = fs.readFileSync(file);
    let p = 0;
    const u32 = () => ((p += 4), buf.readUInt32LE(p - 4));
    const u64 = () => ((p += 8), Number(buf.readBigUInt64LE(p - 8)));
    const str = () => {
        const n = u64();
        p += n;
        return buf.toString('utf8', p - n, p);
    };
    const fixed = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
    const value = (type) => {
        if (type === 8) return str();
        if (type === 9) {
            const inner = u32(), n = u64();
            return Array.from({ length: n }, () => value(inner));
        }
        if (!fixed[type]) throw new Error(`${file}: value type ${type} at byte ${p}`);
        const at = p;
        p += fixed[type];
        return type === 4 ? buf.readUInt32LE(at) : type === 5 ? buf.readInt32LE(at) : buf.subarray(at, p);
    };
    if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${file}: not a GGUF file`);
    p = 8;
    u64(); // tensors
    const n = u64(), kv = {};
    for (let i = 0; i < n; i++) {
        const key = str();
        kv[key] = value(u32());
    }
    return kv;
}

const kv = readGgufMetadata(gguf);
const tokens = kv['tokenizer.ggml.tokens'], types = kv['tokenizer.ggml.token_type'];
if (kv['tokenizer.ggml.model'] !== 'bert' || !tokens || !types)
    throw new Error(`${gguf}: not a WordPiece (bert) vocabulary with tokens and token types`);
const unkId = kv['tokenizer.ggml.unknown_token_id'];
const vocab = {}, added = [];
tokens.forEach((t, id) => {
    let text;
    if (t.startsWith('\u2581')) text = t.slice(1);
    else if (t.startsWith('[') && t.endsWith(']')) text = t;
    else text = '##' + t;
    if (!(text in vocab)) vocab[text] = id;
    if (types[id] === 3)
        added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
});
const tokenizerJson = {
    version: '1.0',
    added_tokens: added,
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: tokens[unkId], continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
};
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(tokenizerJson));
const config = { tokenizer_class: 'BertTokenizer', do_lower_case: true };
const port = new Tokenizer(tokenizerJson, config); // the JavaScript port as it is

const isChinese = (cp) => (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
class RustBertNormalizer extends BertNormalizer {
    tokenize_chinese_chars(text) {
        return Array.from(text, (c) => (isChinese(c.codePointAt(0)) ? ` ${c} ` : c)).join('');
    }
    normalize(text) {
        const lower = String.prototype.toLowerCase;
        // Each character alone: no context, so no final sigma.
        const perChar = function () {
            return Array.from(String(this), (c) => lower.call(c)).join('');
        };
        String.prototype.toLowerCase = perChar; // eslint-disable-line no-extend-native
        try {
            return super.normalize(text);
        } finally {
            String.prototype.toLowerCase = lower; // eslint-disable-line no-extend-native
        }
    }
}
const reference = new Tokenizer(tokenizerJson, config);
reference.normalizer = new RustBertNormalizer(tokenizerJson.normalizer);
if (port.normalizer.constructor !== BertNormalizer) throw new Error('the package does not build a BertNormalizer');

// A seeded generator (mulberry32), so the same command writes the same strings.
let seed = 0x9e3779b9;
function random() {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(random() * a.length)];
const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => String.fromCodePoint(a + i))
    .filter((c) => !/\p{Cn}/u.test(c));
const chars = (s) => Array.from(s);

const latin = chars('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ');
const accented = [...range(0xc0, 0xff), ...range(0x100, 0x17f), ...range(0x1e00, 0x1eff)]
    .filter((c) => /\p{L}/u.test(c));
const greek = range(0x386, 0x3ce).filter((c) => /\p{L}/u.test(c));
const cyrillic = range(0x400, 0x45f);
const devanagari = range(0x900, 0x97f);
const bengali = range(0x980, 0x9ff);
const tamil = range(0xb80, 0xbff);
const thai = range(0xe01, 0xe5b);
const cjk = [...range(0x4e00, 0x4e80), ...range(0x9f00, 0x9fa0), ...range(0x3400, 0x3420),
    ...range(0xf900, 0xf920), ...range(0x20000, 0x20010), ...range(0x2f800, 0x2f810)];
const kana = [...range(0x3041, 0x3096), ...range(0x30a1, 0x30fa), ...range(0xff66, 0xff9d)];
const hangul = [...range(0xac00, 0xac40), ...range(0xd4a0, 0xd7a3)];
const jamo = [...range(0x1100, 0x1112), ...range(0x1161, 0x1175), ...range(0x11a8, 0x11c2), ...range(0x3131, 0x318e)];
const marks = [...range(0x300, 0x36f), ...range(0x483, 0x489), '\u093c', '\u094d', '\u0951', '\u0e31', '\u0e48', '\u20dd', '\u1ab0', '\u3099', '\u309a'];
const emoji = ['😀', '👍', '👍🏽', '❤️', '🇫🇷', '👨‍👩‍👧', '🏳️‍🌈', '✈', '☕', '🤖', '🧑🏿‍💻', '1️⃣', '©️', '🫠'];
const punct = chars('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»“”„‘’‚‹›–—―…‰′″§¶·•†‡⁂、。〃〈〉《》「」『』【】〔〕・！？：；（）＂＃％＆＇＊，．／［］｛｝﹏︰︵');
const symbols = chars('©®°±×÷€£¥¢™∞≈≠≤≥∑√∫µ¬¦¨¯´¸¤₹₽₿←→↑↓♠♣♥♦★☆♪℃№℮⅓');
const spaces = [' ', ' ', ' ', '\t', '\n', '\r', '\r\n', '\u00a0', '\u1680', '\u2000', '\u2003', '\u2009', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\v', '\f'];
const controls = ['\u0001', '\u0007', '\u001b', '\u001f', '\u007f', '\u0085', '\u009f', '\u00ad', '\u200b', '\u200c', '\u200d', '\u200e', '\u2060', '\u2066', '\ufeff', '\ue000', '\uf8ff', '\u{f0000}', '\u180e', '\ufff9', '\u{e0041}', '\ufffd'];
// Every character of U+00A0..U+2FFF that Unicode 14 assigns (PCRE2 10.42 and garlic's tables
// are Unicode 14; node's may be newer, so the few later additions are left out).
const newer = [[0x88f, 0x88f], [0x897, 0x897], [0xc5c, 0xc5c], [0xcdc, 0xcdc], [0xcf3, 0xcf3],
    [0xece, 0xece], [0x1acf, 0x1aeb], [0x1b4e, 0x1b4f], [0x1b7f, 0x1b7f], [0x1c89, 0x1c8a],
    [0x20c1, 0x20c1], [0x2427, 0x2429], [0x2b96, 0x2b96], [0x2ffc, 0x2fff]];
const anyBmp = range(0xa0, 0x2fff).filter((c) => !newer.some(([a, b]) => c.codePointAt(0) >= a && c.codePointAt(0) <= b));
const pools = { latin, accented, greek, cyrillic, devanagari, bengali, tamil, thai, cjk, kana, hangul, jamo, emoji, punct, symbols };

// Decomposes some characters (NFD), so both forms of the same text appear.
const maybeDecompose = (s) => Array.from(s, (c) => (random() < 0.5 ? c.normalize('NFD') : c)).join('');
const word = (pool, n) => Array.from({ length: n }, () => pick(pool)).join('');

const strings = [];
const add = (s) => {
    if (/\[(PAD|UNK|CLS|SEP|MASK)\]/.test(s) || s.includes('\n__ggml_vocab_test__\n') || s.includes('\0')) return;
    strings.push(s);
};
// Hand-written cases: each rule of the normalizer and the model once.
[
    'Héllo Wörld', 'He\u0301llo Wo\u0308rld', 'ÅNGSTRÖM Ångström A\u030angstro\u0308m', 'Crème brûlée, façade, naïve',
    'ǅemal ǈubav ǋeno', 'İstanbul ıi İI', 'ß ẞ ﬁ ﬂ ǰ', 'Ω Ω K K Å Å', 'ΟΔΟΣ ΟΔΟΣ. Σ ΣΑ ΑΣ ΑΣ΄', 'ὈΔΥΣΣΕΎΣ ὀδυσσεύς',
    'Ёлка ёлка Е\u0308лка й и\u0306 Й', 'नमस्ते दुनिया', 'क़ क\u093c ज़', 'தமிழ் நாடு', 'বাংলা ভাষা', 'ภาษาไทย สวัสดี',
    '中文字符测试', '日本語のテキスト', 'ｶﾀｶﾅ ﾊﾟﾋﾟ', '한국어 텍스트', '\u1112\u1161\u11ab\u1100\u116e\u11a8', 'ㅎㅏㄴ ㄱㅜㄱ', '𠀀𠀁 a𠀂b 丽 a丽b',
    '豈更車 a豈b', '您好world你好', 'emoji 😀👍🏽 ❤️ 👨‍👩‍👧 zwj a\u200db', 'soft\u00adhyphen', 'zero\u200bwidth', 'bom\ufeffhere',
    'tab\there\nnew\r\nline', 'nbsp\u00a0em\u2003ideo\u3000line\u2028para\u2029', 'bell\u0007esc\u001bdel\u007f',
    'private\ue000use', 'x'.repeat(100), 'x'.repeat(101), 'é'.repeat(100), 'e\u0301'.repeat(100), 'e\u0301'.repeat(101),
    '한'.repeat(34), '한'.repeat(33), 'a'.repeat(99) + '中', 'a'.repeat(101) + '.b', 'supercalifragilisticexpialidocious',
    'qzxqzxqzxqzx', 'ǂǃ', 'a\u0300\u0301\u0302b', '\u0301start', 'end\u0301', '\u0301', ' \u0301 ', '...', '¿Qué? ¡Sí!',
    '"quoted" «guillemets» „low“ ‘single’', 'a—b–c…d', 'price: 5€, $5, £5, ¥5', 'a+b=c <tag> x^y ~z `code` |pipe|',
    'e-mail: user@example.com', 'http://x.org/a?b=c&d=e#f', '1,000.50 3.14159', '© ® ™ ° ± × ÷', '→ ← ∞ ≈',
    '', ' ', '   ', '\t\n', '\u3000', 'a', 'A', ' leading', 'trailing ', '  both  ', '[unused0] [unused1]', '[pad] [cls]',
    '##ing', '▁word', 'a▁b', '\u2581', 'the quick brown fox jumps over the lazy dog',
    'THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG', 'unaffable unbelievable tokenization',
    '\u1e9b\u0323', 'ḍ̇ ḍ̇ q̣̇', '\u0344\u0345', 'Ä\u0308', '\u0958\u0959', 'ฯ ๆ ฿', 'ヴ ウ\u3099 が か\u3099',
    '\u{1d15e} \u{1d165}\u{1d16d}', 'Ａｂｃ １２３ ﬃ', '①②③ ¹²³ ½', 'ℌ ℍ ℕ ℤ', 'ǆ Ǆ ǅ',
].forEach(add);

// Random mixes: words from one or two scripts, with marks, punctuation, symbols, emoji, spaces
// and control characters between and inside them.
const kinds = Object.keys(pools);
while (strings.length < 640) {
    const parts = [];
    const n = int(1, 9);
    const a = pick(kinds), b = pick(kinds);
    for (let i = 0; i < n; i++) {
        const r = random();
        let w;
        if (r < 0.05) w = word(latin, int(95, 110));
        else if (r < 0.1) w = word(pick([accented, hangul, cjk]), int(30, 60));
        else w = word(pools[random() < 0.7 ? a : b], int(1, 8));
        if (random() < 0.25) w = word(latin, int(1, 4)) + w;
        if (random() < 0.2) w += pick(marks);
        if (random() < 0.1) w = w.slice(0, 1) + pick(controls) + w.slice(1);
        if (random() < 0.2) w += pick(punct);
        if (random() < 0.1) w = pick(symbols) + w;
        if (random() < 0.1) w += pick(emoji);
        parts.push(w);
        parts.push(random() < 0.85 ? ' ' : pick(random() < 0.8 ? spaces : controls));
    }
    let s = parts.join('');
    if (random() < 0.5) s = maybeDecompose(s);
    if (random() < 0.3) s = random() < 0.5 ? s.toUpperCase() : s.normalize('NFD');
    add(s);
}

// Random characters from most of the BMP's scripts, marks and symbols, among Latin letters.
for (let k = 0; k < 200; k++) {
    let s = '';
    for (let i = int(1, 14); i > 0; i--) s += random() < 0.6 ? pick(anyBmp) : random() < 0.5 ? ' ' : pick(latin);
    add(random() < 0.3 ? s.normalize('NFD') : s);
}

const encode = (tok, s) => tok.encode(s, { add_special_tokens: false }).ids;
const SEP = '\n__ggml_vocab_test__\n';
let differ = 0;
const lines = strings.map((s) => {
    const ids = encode(reference, s);
    if (ids.join() !== encode(port, s).join()) differ++;
    return ids.map((id) => ` ${id}`).join('') + '\n';
});
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'bert-bge-wordpiece.inp'), strings.map((s) => s + SEP).join(''));
fs.writeFileSync(path.join(outDir, 'bert-bge-wordpiece.out'), lines.join(''));
console.log(`${strings.length} strings; the unpatched JavaScript port differs on ${differ}`);
