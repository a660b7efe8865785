# SPDX-License-Identifier: MIT
# The tokenizer files of a Hugging Face folder, built from a GGUF's tokenizer.ggml.* keys:
# tokenizer.json, tokenizer_config.json, special_tokens_map.json and generation_config.json.
#
# Byte-level BPE ("gpt2"): the GGUF's tokens are already spelled in the byte alphabet, so the
# BPE model's vocab and merges are the GGUF's; the pre-tokenizer is a Sequence of Split
# (Isolated) steps with the regexes of tokenizer.ggml.pre, as the published files write
# them, then ByteLevel without its own regex (GPT-2's own: ByteLevel with its regex).
# SentencePiece ("llama"): Llama 2's tokenizer.json: a BPE model with byte_fallback, the
# normalizer Prepend("▁") + Replace(" ", "▁") (no Prepend when add_space_prefix is false),
# and merges derived from the scores as transformers' SentencePieceExtractor derives them
# (every split of a piece into two pieces of the vocabulary, ordered by the piece's score).
# Control, user-defined and unknown tokens are added_tokens; unused "[PAD<id>]" fillers,
# which the converter invents for ids a tokenizer lacks, are left out.
import json

import numpy as np

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

_CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_LLAMA3 = (_CONTRACTIONS + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
           "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
_QWEN2 = (_CONTRACTIONS + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
          "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
_O200K_UPPER = "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
_O200K_LOWER = "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
_O200K_CONTR = "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
_O200K = ("[^\\r\\n\\p{L}\\p{N}]?" + _O200K_UPPER + "*" + _O200K_LOWER + "+" + _O200K_CONTR +
          "|[^\\r\\n\\p{L}\\p{N}]?" + _O200K_UPPER + "+" + _O200K_LOWER + "*" + _O200K_CONTR +
          "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
_GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
_DEEPSEEK_V3 = [
    "\\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    ("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
     "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
]
_CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"

# tokenizer.ggml.pre -> (Split regexes before ByteLevel, ByteLevel's own regex on, NFC,
# ignore_merges, add_bos default). None for the regexes: ByteLevel alone.
PRE = {
    "gpt-2": ([], True, False, False, False),
    "llama-bpe": ([_LLAMA3], False, False, True, True),
    "qwen2": ([_QWEN2], False, True, False, False),
    "gpt-4o": ([_O200K], False, False, True, False),
    "deepseek-v3": (_DEEPSEEK_V3, False, False, False, False),
    "deepseek-coder": (["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", _CJK, "\\p{N}"], False, False,
                       False, False),
    "starcoder": (["\\p{N}"], True, False, False, False),
    "default": ([], True, False, False, False),
}
PRE_ALIASES = {"llama3": "llama-bpe", "llama-v3": "llama-bpe", "phi-2": "gpt-2",
               "gpt-neox": "gpt-2", "olmo": "gpt-2", "stablelm2": "qwen2", "refact": "starcoder",
               "smollm": "starcoder"}


class TokenizerError(Exception):
    pass


def _kv(g, key, default=None):
    v = g.kv.get("tokenizer.ggml." + key, default)
    return v.tolist() if isinstance(v, np.ndarray) else v


def _added(tid, text, ttype):
    return {"id": tid, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": ttype == USER_DEFINED, "special": ttype != USER_DEFINED}


def _template(bos, eos, add_bos, add_eos):
    """TemplateProcessing that adds BOS and/or EOS around each sequence."""
    def seq(name, type_id):
        parts = []
        if add_bos:
            parts.append({"SpecialToken": {"id": bos[1], "type_id": type_id}})
        parts.append({"Sequence": {"id": name, "type_id": type_id}})
        if add_eos:
            parts.append({"SpecialToken": {"id": eos[1], "type_id": type_id}})
        return parts
    special = {}
    for used, tok in ((add_bos, bos), (add_eos, eos)):
        if used:
            special[tok[1]] = {"id": tok[1], "ids": [tok[0]], "tokens": [tok[1]]}
    return {"type": "TemplateProcessing", "single": seq("A", 0),
            "pair": seq("A", 0) + seq("B", 1), "special_tokens": special}


def spm_merges(tokens, scores):
    """SentencePiece BPE merges from the scores: for every piece, each split into two pieces
    of the vocabulary (ordered by their ids), all ordered by the piece's score, highest
    first (stable), as transformers' SentencePieceExtractor does."""
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, score in zip(tokens, scores):
        local = []
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                local.append((vocab[left], vocab[right], left, right, score))
        local.sort(key=lambda m: (m[0], m[1]))
        merges.extend(local)
    merges.sort(key=lambda m: -m[4])
    return [f"{m[2]} {m[3]}" for m in merges]


class Vocab:
    """The GGUF's tokenizer keys, checked."""

    def __init__(self, g):
        self.model = _kv(g, "model")
        self.tokens = _kv(g, "tokens")
        if self.model is None or self.tokens is None:
            raise TokenizerError(f"{g.path}: no tokenizer.ggml.model / tokens")
        n = len(self.tokens)
        self.types = _kv(g, "token_type") or [NORMAL] * n
        self.scores = _kv(g, "scores") or [0.0] * n
        self.merges = _kv(g, "merges") or []
        self.pre = _kv(g, "pre", "default")
        ids = {k: _kv(g, k + "_token_id") for k in ("bos", "eos", "unknown", "padding", "eot")}
        self.ids = {k: int(v) for k, v in ids.items() if v is not None and 0 <= int(v) < n}
        self.add_bos = _kv(g, "add_bos_token")
        self.add_eos = bool(_kv(g, "add_eos_token", False))
        self.add_space_prefix = _kv(g, "add_space_prefix", True)
        self.chat_template = g.kv.get("tokenizer.chat_template")

    def token(self, key):
        i = self.ids.get(key)
        return (i, self.tokens[i]) if i is not None else None

    def is_filler(self, i):
        return self.types[i] == UNUSED and self.tokens[i] == f"[PAD{i}]"


def tokenizer_json(v):
    """tokenizer.json as a dict, and a list of notes on what could not be written."""
    notes = []
    added = [_added(i, t, ty) for i, (t, ty) in enumerate(zip(v.tokens, v.types))
             if ty in (CONTROL, USER_DEFINED, UNKNOWN)]
    bos, eos = v.token("bos"), v.token("eos")
    if v.model == "gpt2":
        pre = PRE_ALIASES.get(v.pre, v.pre)
        if pre not in PRE:
            raise TokenizerError(f"tokenizer.ggml.pre '{v.pre}': no tokenizer.json pre-tokenizer "
                                 f"known here (known: {', '.join(sorted(PRE))})")
        regexes, own_regex, nfc, ignore_merges, bos_default = PRE[pre]
        add_bos = bos_default if v.add_bos is None else bool(v.add_bos)
        special = {a["content"] for a in added}
        vocab = {t: i for i, t in enumerate(v.tokens) if t not in special and not v.is_filler(i)}
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                      "use_regex": own_regex}
        if regexes:
            pre_tok = {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated",
                 "invert": False} for r in regexes] + [byte_level]}
        else:
            pre_tok = byte_level
        post = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                "use_regex": True}
        if (add_bos and bos) or (v.add_eos and eos):
            post = {"type": "Sequence", "processors": [
                post, _template(bos, eos, add_bos and bos is not None,
                                v.add_eos and eos is not None)]}
        tj = {"normalizer": {"type": "NFC"} if nfc else None, "pre_tokenizer": pre_tok,
              "post_processor": post,
              "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                          "use_regex": True},
              "model": {"type": "BPE", "dropout": None, "unk_token": None,
                        "continuing_subword_prefix": None, "end_of_word_suffix": None,
                        "fuse_unk": False, "byte_fallback": False,
                        "ignore_merges": ignore_merges, "vocab": vocab,
                        "merges": list(v.merges)}}
    elif v.model == "llama":
        add_bos = True if v.add_bos is None else bool(v.add_bos)
        normal = [i for i, ty in enumerate(v.types) if ty in (NORMAL, BYTE)]
        n_base = (max(normal) + 1) if normal else len(v.tokens)
        vocab = {v.tokens[i]: i for i in range(n_base) if not v.is_filler(i)}
        base_tokens = [v.tokens[i] for i in range(n_base)]
        merges = spm_merges(base_tokens, [float(s) for s in v.scores[:n_base]])
        norms = [{"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]
        if v.add_space_prefix:
            norms.insert(0, {"type": "Prepend", "prepend": "\u2581"})
        unk = v.token("unknown")
        tj = {"normalizer": {"type": "Sequence", "normalizers": norms}, "pre_tokenizer": None,
              "post_processor": _template(bos, eos, add_bos and bos is not None,
                                          v.add_eos and eos is not None),
              "decoder": {"type": "Sequence", "decoders": [
                  {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                  {"type": "ByteFallback"}, {"type": "Fuse"},
                  {"type": "Strip", "content": " ", "start": 1 if v.add_space_prefix else 0,
                   "stop": 0}]},
              "model": {"type": "BPE", "dropout": None, "unk_token": unk[1] if unk else None,
                        "continuing_subword_prefix": None, "end_of_word_suffix": None,
                        "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                        "vocab": vocab, "merges": merges}}
        if "\u2581" not in vocab:
            notes.append("the vocabulary has no '\u2581' piece: pieces that start with it "
                         "cannot be reached by merges, so this tokenizer.json splits text "
                         "differently from SentencePiece (test with token ids)")
    else:
        raise TokenizerError(f"tokenizer.ggml.model '{v.model}': only gpt2 and llama are "
                             "written")
    out = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added}
    out.update(tj)
    return out, notes


def _token_entry(text):
    return {"content": text, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False}


def tokenizer_config(v, ctx):
    tc = {}
    bos, eos, unk, pad = (v.token(k) for k in ("bos", "eos", "unknown", "padding"))
    if v.model == "gpt2":
        pre = PRE_ALIASES.get(v.pre, v.pre)
        add_bos = PRE.get(pre, ([], 0, 0, 0, False))[4] if v.add_bos is None else bool(v.add_bos)
    else:
        add_bos = True if v.add_bos is None else bool(v.add_bos)
    tc["add_bos_token"] = add_bos
    tc["add_eos_token"] = v.add_eos
    tc["added_tokens_decoder"] = {
        str(i): {k: val for k, val in _added(i, t, ty).items() if k != "id"}
        for i, (t, ty) in enumerate(zip(v.tokens, v.types)) if ty in (CONTROL, USER_DEFINED,
                                                                      UNKNOWN)}
    tc["bos_token"] = bos[1] if bos else None
    if v.chat_template is not None:
        tc["chat_template"] = v.chat_template
    tc["clean_up_tokenization_spaces"] = False
    tc["eos_token"] = eos[1] if eos else None
    tc["model_max_length"] = ctx
    tc["pad_token"] = pad[1] if pad else None
    if v.model == "llama":
        tc.update({"legacy": False, "sp_model_kwargs": {}, "spaces_between_special_tokens":
                   False, "tokenizer_class": "LlamaTokenizer",
                   "unk_token": unk[1] if unk else None, "use_default_system_prompt": False})
    else:
        tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    return tc


def special_tokens_map(v):
    out = {}
    for key, name in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"),
                      ("padding", "pad_token")):
        tok = v.token(key)
        if tok:
            out[name] = _token_entry(tok[1])
    return out


def generation_config(v):
    gc = {"_from_model_config": False}
    if "bos" in v.ids:
        gc["bos_token_id"] = v.ids["bos"]
    eos = [v.ids[k] for k in ("eos", "eot") if k in v.ids]
    eos = list(dict.fromkeys(eos))
    if eos:
        gc["eos_token_id"] = eos[0] if len(eos) == 1 else eos
    if "padding" in v.ids:
        gc["pad_token_id"] = v.ids["padding"]
    gc["transformers_version"] = "4.51.0"
    return gc


def write(g, out_dir, ctx):
    """Writes the four files into out_dir. Returns notes on what was skipped or differs."""
    v = Vocab(g)
    tj, notes = tokenizer_json(v)
    files = {"tokenizer.json": tj, "tokenizer_config.json": tokenizer_config(v, ctx),
             "special_tokens_map.json": special_tokens_map(v),
             "generation_config.json": generation_config(v)}
    for name, obj in files.items():
        with open(f"{out_dir}/{name}", "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return notes


def config_token_ids(g):
    """bos_token_id and eos_token_id for config.json (absent ones left out)."""
    v = Vocab(g)
    out = {}
    if "bos" in v.ids:
        out["bos_token_id"] = v.ids["bos"]
    if "eos" in v.ids:
        out["eos_token_id"] = v.ids["eos"]
    if "padding" in v.ids:
        out["pad_token_id"] = v.ids["padding"]
    return out
