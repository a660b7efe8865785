// SPDX-License-Identifier: MIT
// A second, independent reader of the folders tools/gen_hf_folder.py writes (Node.js, no
// packages), to check its safetensors writer and its decoders:
//
//   node tools/check_hf_folder.mjs FOLDER [DECODED_FOLDER]
//
// Checks every safetensors file (header length and JSON, data start a multiple of 8,
// dtypes, shape x dtype = data_offsets, tensors back to back covering the data exactly),
// the index against the shards (same names, each in the file the index says), config.json
// and tokenizer.json (ids unique, merges made of vocabulary tokens). With DECODED_FOLDER it
// decodes every tensor of FOLDER by the published rules, written here from the formats'
// definitions (AWQ's unpacking with its reverse order [0,4,1,5,2,6,3,7], GPTQ's zeros + 1,
// E4M3 by its bit fields, MXFP4's E2M1 table), and requires the values to equal the
// decoded folder's F32 tensors exactly. Prints "N passed, N failed" and exits non-zero on
// any failure.
import fs from 'node:fs';
import path from 'node:path';

const SIZES = {F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2,
               U32: 4, U64: 8, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1};
let passed = 0, failed = 0;
function check(ok, what) {
    if (ok) passed++;
    else { failed++; console.log(`FAIL ${what}`); }
    return ok;
}

// Parses one safetensors file: {name: {dtype, shape, bytes (Buffer)}}.
function readSafetensors(file) {
    const buf = fs.readFileSync(file);
    const where = path.basename(file);
    if (!check(buf.length >= 8, `${where}: shorter than 8 bytes`)) return {};
    const n = Number(buf.readBigUInt64LE(0));
    if (!check(8 + n <= buf.length, `${where}: header length ${n} past the end`)) return {};
    check((8 + n) % 8 === 0, `${where}: data starts at ${8 + n}, not a multiple of 8`);
    let header;
    try { header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')); }
    catch (e) { check(false, `${where}: header JSON: ${e.message}`); return {}; }
    const data = buf.subarray(8 + n);
    const ranges = [];
    const out = {};
    for (const [name, t] of Object.entries(header)) {
        if (name === '__metadata__') continue;
        const size = SIZES[t.dtype];
        if (!check(size !== undefined, `${where}: ${name}: dtype ${t.dtype}`)) continue;
        const count = t.shape.reduce((a, b) => a * b, 1);
        const [b, e] = t.data_offsets;
        check(e - b === count * size, `${where}: ${name}: ${e - b} bytes for ${t.dtype} [${t.shape}]`);
        ranges.push([b, e, name]);
        out[name] = {dtype: t.dtype, shape: t.shape, bytes: data.subarray(b, e)};
    }
    ranges.sort((x, y) => x[0] - y[0]);
    let at = 0;
    for (const [b, e, name] of ranges) {
        check(b === at, `${where}: ${name} starts at ${b}, expected ${at} (gap or overlap)`);
        at = e;
    }
    check(at === data.length, `${where}: tensors end at ${at}, data is ${data.length} bytes`);
    return out;
}

// Reads a folder: {config, tensors: {name: tensor}}, checking the index against the files.
function readFolder(dir) {
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const indexPath = path.join(dir, 'model.safetensors.index.json');
    const tensors = {};
    if (fs.existsSync(indexPath)) {
        const map = JSON.parse(fs.readFileSync(indexPath, 'utf8')).weight_map;
        const files = [...new Set(Object.values(map))].sort();
        for (const f of files) {
            const part = readSafetensors(path.join(dir, f));
            for (const [name, t] of Object.entries(part)) {
                check(map[name] === f, `${f}: ${name} is listed under ${map[name]}`);
                tensors[name] = t;
            }
        }
        for (const name of Object.keys(map))
            check(name in tensors, `index: ${name} is in no shard`);
    } else {
        Object.assign(tensors, readSafetensors(path.join(dir, 'model.safetensors')));
    }
    return {config, tensors};
}

function checkTokenizer(dir) {
    const file = path.join(dir, 'tokenizer.json');
    if (!fs.existsSync(file)) return;
    const tj = JSON.parse(fs.readFileSync(file, 'utf8'));
    const vocab = tj.model.vocab;
    const ids = new Map();
    for (const [tok, id] of Object.entries(vocab)) {
        check(!ids.has(id), `tokenizer.json: id ${id} twice`);
        ids.set(id, tok);
    }
    for (const a of tj.added_tokens) {
        if (ids.has(a.id)) check(ids.get(a.id) === a.content, `tokenizer.json: added ${a.id}`);
    }
    let bad = 0;
    for (const m of tj.model.merges) {
        const [l, r] = Array.isArray(m) ? m : m.split(' ');
        if (!(l in vocab) || !(r in vocab) || !((l + r) in vocab)) bad++;
    }
    check(bad === 0, `tokenizer.json: ${bad} merges with parts or results outside the vocab`);
}

// ---- decoding, from the formats' definitions ----

function f16(bits) {
    const s = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, m = bits & 0x3ff;
    if (e === 0) return s * m * 2 ** -24;
    if (e === 31) return m ? NaN : s * Infinity;
    return s * (1024 + m) * 2 ** (e - 25);
}
function floats(t) {
    const n = t.bytes.length / SIZES[t.dtype];
    const out = new Float64Array(n);
    const b = t.bytes;
    for (let i = 0; i < n; i++) {
        if (t.dtype === 'F32') out[i] = b.readFloatLE(4 * i);
        else if (t.dtype === 'F16') out[i] = f16(b.readUInt16LE(2 * i));
        else if (t.dtype === 'BF16') { const w = Buffer.alloc(4); w.writeUInt32LE(b.readUInt16LE(2 * i) << 16 >>> 0); out[i] = w.readFloatLE(0); }
        else throw new Error(`not a float dtype: ${t.dtype}`);
    }
    return out;
}
function e4m3(byte) {
    const s = byte & 0x80 ? -1 : 1, e = (byte >> 3) & 15, m = byte & 7;
    if (e === 15 && m === 7) return NaN;
    return s * (e === 0 ? m * 2 ** -9 : (8 + m) * 2 ** (e - 10));
}
const int32 = (t) => { const n = t.bytes.length / 4, o = new Int32Array(n); for (let i = 0; i < n; i++) o[i] = t.bytes.readInt32LE(4 * i); return o; };
const nib = (word, k) => (word >>> (4 * k)) & 15;
const AWQ_REVERSE = [0, 4, 1, 5, 2, 6, 3, 7];
const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

// Each decoder returns {values (row-major, as float32 numbers), shape}.
function decodeFp8Block(w, s, block) {
    const [rows, cols] = w.shape, sc = floats(s), nbc = s.shape[1];
    const v = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++)
            v[r * cols + c] = Math.fround(e4m3(w.bytes[r * cols + c]) * sc[Math.floor(r / block) * nbc + Math.floor(c / block)]);
    return {values: v, shape: w.shape};
}
function decodeFp8Scaled(w, s) {
    const [rows, cols] = w.shape, sc = floats(s);
    const v = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++)
            v[r * cols + c] = Math.fround(e4m3(w.bytes[r * cols + c]) * sc[sc.length === 1 ? 0 : r]);
    return {values: v, shape: w.shape};
}
function decodeAwq(qw, qz, sc, group) {
    const inn = qw.shape[0], outPacked = qw.shape[1], out = outPacked * 8;
    const q = int32(qw), z = int32(qz), s = floats(sc);
    const v = new Float64Array(out * inn);
    for (let i = 0; i < inn; i++) {
        const g = Math.floor(i / group);
        for (let o = 0; o < out; o++) {
            const k = AWQ_REVERSE[o % 8], word = Math.floor(o / 8);
            const qv = nib(q[i * outPacked + word], k), zv = nib(z[g * outPacked + word], k);
            v[o * inn + i] = Math.fround((qv - zv) * s[g * out + o]);
        }
    }
    return {values: v, shape: [out, inn]};
}
function decodeGptq(qw, qz, sc, gi, v1) {
    const inn = qw.shape[0] * 8, out = qw.shape[1];
    const q = int32(qw), z = int32(qz), s = floats(sc), g = int32(gi);
    const v = new Float64Array(out * inn);
    for (let i = 0; i < inn; i++)
        for (let o = 0; o < out; o++) {
            const grp = g[i];
            const qv = nib(q[Math.floor(i / 8) * out + o], i % 8);
            const zv = nib(z[grp * (out / 8) + Math.floor(o / 8)], o % 8) + (v1 ? 1 : 0);
            v[o * inn + i] = Math.fround((qv - zv) * s[grp * out + o]);
        }
    return {values: v, shape: [out, inn]};
}
// MXFP4 blocks [E, rows, nb, 16] and scales [E, rows, nb] -> the parameter [E, cols, rows].
function decodeMxfp4(bl, sc) {
    const [E, rows, nb] = sc.shape, cols = nb * 32;
    const v = new Float64Array(E * rows * cols);
    for (let e = 0; e < E; e++)
        for (let r = 0; r < rows; r++)
            for (let b = 0; b < nb; b++) {
                const scale = 2 ** (sc.bytes[(e * rows + r) * nb + b] - 127);
                for (let k = 0; k < 16; k++) {
                    const byte = bl.bytes[((e * rows + r) * nb + b) * 16 + k];
                    for (const [j, code] of [[2 * k, byte & 15], [2 * k + 1, byte >> 4]]) {
                        const c = b * 32 + j;
                        v[(e * cols + c) * rows + r] = E2M1[code] * scale;
                    }
                }
            }
    return {values: v, shape: [E, cols, rows]};
}

// Every tensor of a folder decoded to {name: {values, shape}} under the unquantized names.
function decodeFolder({config, tensors}) {
    const qc = config.quantization_config || {};
    const method = qc.quant_method;
    const out = {};
    const used = new Set();
    for (const [name, t] of Object.entries(tensors)) {
        const take = (suffix) => { const n = name + suffix; used.add(n); return tensors[n]; };
        if (t.dtype === 'F8_E4M3') {
            const base = name;
            if (name + '_scale_inv' in tensors) {
                out[base] = decodeFp8Block(t, take('_scale_inv'), qc.weight_block_size[0]);
            } else {
                out[base] = decodeFp8Scaled(t, take('_scale'));
            }
            used.add(name);
        } else if (name.endsWith('.qweight')) {
            const base = name.slice(0, -'.qweight'.length);
            const get = (s) => { used.add(base + s); return tensors[base + s]; };
            if (method === 'awq') out[base + '.weight'] = decodeAwq(t, get('.qzeros'), get('.scales'), qc.group_size);
            else out[base + '.weight'] = decodeGptq(t, get('.qzeros'), get('.scales'), get('.g_idx'), (qc.checkpoint_format || 'gptq') === 'gptq');
            used.add(name);
        } else if (name.endsWith('_blocks')) {
            const base = name.slice(0, -'_blocks'.length);
            used.add(base + '_scales');
            out[base] = decodeMxfp4(t, tensors[base + '_scales']);
            used.add(name);
        }
    }
    for (const [name, t] of Object.entries(tensors))
        if (!used.has(name)) out[name] = {values: floats(t), shape: t.shape};
    return out;
}

const [dir, decodedDir] = process.argv.slice(2);
if (!dir) { console.error('usage: node tools/check_hf_folder.mjs FOLDER [DECODED_FOLDER]'); process.exit(2); }
const folder = readFolder(dir);
check(Array.isArray((folder.config.architectures)), 'config.json: architectures');
checkTokenizer(dir);
if (decodedDir) {
    const ref = readFolder(decodedDir);
    const mine = decodeFolder(folder);
    check(ref.config.quantization_config === undefined, 'decoded config.json has no quantization_config');
    for (const [name, t] of Object.entries(ref.tensors)) {
        check(t.dtype === 'F32', `${decodedDir}: ${name} is ${t.dtype}`);
        const m = mine[name];
        if (!check(m !== undefined, `${name}: not decoded from ${dir}`)) continue;
        if (!check(JSON.stringify(m.shape) === JSON.stringify(t.shape), `${name}: shape [${m.shape}] vs [${t.shape}]`)) continue;
        const r = floats(t);
        let bad = -1;
        for (let i = 0; i < r.length && bad < 0; i++) if (m.values[i] !== r[i]) bad = i;
        check(bad < 0, `${name}: value ${bad}: decoded here ${m.values[bad]}, in ${decodedDir} ${r[bad]}`);
    }
    for (const name of Object.keys(mine)) check(name in ref.tensors, `${name}: not in ${decodedDir}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
