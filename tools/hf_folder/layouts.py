# SPDX-License-Identifier: MIT
# From a GGUF model to the tensors and config.json of the Hugging Face folder it was (or
# would have been) converted from: the inverse of llama.cpp's convert_hf_to_gguf.py for each
# architecture garlic runs. Every tensor comes back in PyTorch's layout under its published
# name, with the transformation that undoes the converter's (Llama's Q/K row permutation,
# Gemma's norm + 1, DeepSeek's kv_b_proj split, gpt-oss's gate/up split and transpose).
# docs/hf-layouts.md lists the result per architecture; `gen_hf_folder.py --describe`
# prints it for a given file.
import numpy as np

# Roles: "linear" is an nn.Linear weight [out, in] that a quantizer may replace; "experts"
# is gpt-oss's packed expert parameter (replaced by MXFP4 only); "dense" stays in the
# folder's dense dtype; "f32" stays float32 whatever the dense dtype.
LINEAR, EXPERTS, DENSE, F32 = "linear", "experts", "dense", "f32"


class LayoutError(Exception):
    pass


class HFTensor:
    """One tensor of the folder: its name, float32 values in the HF layout, its role and
    where it came from (the GGUF tensor and the transformation, for the docs)."""

    def __init__(self, name, values, role, source):
        self.name, self.values, self.role, self.source = name, values, role, source

    @property
    def module(self):
        """The module a linear weight belongs to: the name without ".weight"."""
        return self.name[:-len(".weight")] if self.name.endswith(".weight") else self.name


def f32(x):
    """A float32 metadata value as the shortest decimal that reads back to it."""
    return float(str(np.float32(x)))


# ---- transformations ----

def unpermute_rope_rows(w, n_head):
    """GGUF's Llama Q/K rows (pairs interleaved per head: 0, d/2, 1, d/2 + 1, ...) back to
    HF's (each head's first half, then its second half)."""
    rows = w.shape[0]
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rope_rows(w, n_head):
    """The converter's permutation (HF -> GGUF), for checks."""
    rows = w.shape[0]
    hd = rows // n_head
    return w.reshape(n_head, 2, hd // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class Source:
    """The GGUF file with the hyper-parameters every layout needs."""

    def __init__(self, g):
        self.g = g
        self.arch = g.arch()
        self.dim = int(g.get("embedding_length"))
        self.n_layer = int(g.get("block_count"))
        self.n_head = int(g.get("attention.head_count"))
        self.n_head_kv = int(g.get("attention.head_count_kv", self.n_head))
        self.head_dim = int(g.get("attention.key_length", self.dim // self.n_head))
        self.ffn = int(g.get("feed_forward_length"))
        self.ctx = int(g.get("context_length"))
        self.eps = float(g.get("attention.layer_norm_rms_epsilon", 1e-5))
        self.theta = float(g.get("rope.freq_base", 10000.0))
        self.rope_dims = int(g.get("rope.dimension_count", self.head_dim))
        self.vocab = g.tensors["token_embd.weight"].shape[0]
        self.tied = not g.has("output.weight")
        self.n_expert = int(g.get("expert_count", 0))
        self.n_expert_used = int(g.get("expert_used_count", 0))

    def t(self, name):
        if not self.g.has(name):
            raise LayoutError(f"{self.g.path}: tensor '{name}' is missing")
        return self.g.f32(name)

    def has(self, name):
        return self.g.has(name)

    def layer_has_experts(self, l):
        return self.has(f"blk.{l}.ffn_gate_inp.weight")


def rope_scaling(src, style):
    """config.json's rope_scaling for the GGUF's linear or YaRN scaling (None: none).
    style "type" writes the old key (DeepSeek, Phi-3), "rope_type" the current one."""
    kind = src.g.get("rope.scaling.type")
    if kind is None or kind == "none":
        return None
    factor = f32(src.g.get("rope.scaling.factor", 1.0))
    if kind == "linear":
        return {style: "linear", "factor": factor}
    if kind == "yarn":
        rs = {style: "yarn", "factor": factor,
              "original_max_position_embeddings": int(src.g.get(
                  "rope.scaling.original_context_length", src.ctx))}
        for key, name in (("rope.scaling.yarn_beta_fast", "beta_fast"),
                          ("rope.scaling.yarn_beta_slow", "beta_slow")):
            if src.g.get(key) is not None:
                rs[name] = f32(src.g.get(key))
        return rs
    raise LayoutError(f"{src.g.path}: rope.scaling.type '{kind}' has no config.json form here")


def check_full_rope(src):
    if src.rope_dims != src.head_dim:
        raise LayoutError(f"{src.g.path}: rope.dimension_count {src.rope_dims} != head dim "
                          f"{src.head_dim}: {src.arch} has no partial rotary factor in HF")


# ---- tensors shared by the Llama-like architectures ----

class Builder:
    """Collects the folder's tensors in the order a publisher's files list them."""

    def __init__(self, src, prefix="model."):
        self.src, self.prefix, self.tensors = src, prefix, []

    def add(self, name, values, role, source):
        self.tensors.append(HFTensor(name, np.ascontiguousarray(values, dtype=np.float32),
                                     role, source))

    def norm(self, hf, gguf, shift):
        """A norm weight; Gemma's are stored as w - 1 (its RMSNorm multiplies by 1 + w)."""
        v = self.src.t(gguf)
        if shift:
            self.add(self.prefix + hf, v - np.float32(1), DENSE, f"{gguf} - 1")
        else:
            self.add(self.prefix + hf, v, DENSE, gguf)

    def copy(self, hf, gguf, role, transform=None, note=""):
        v = self.src.t(gguf)
        if transform is not None:
            v = transform(v)
        self.add(self.prefix + hf, v, role, gguf + (f" ({note})" if note else ""))

    def head(self, shift=False, norm_name="norm.weight"):
        """model.norm and lm_head (none when the embedding is tied)."""
        self.norm(norm_name, "output_norm.weight", shift)
        if not self.src.tied:
            self.tensors.append(HFTensor("lm_head.weight", self.src.t("output.weight"), DENSE,
                                         "output.weight"))


def attention(b, l, *, permute=False, bias=False, qk_norm=False, norm_shift=False,
              fused=False, o_bias=False, sinks=False):
    src, p = b.src, f"layers.{l}."
    g = f"blk.{l}."
    if fused:
        b.copy(p + "self_attn.qkv_proj.weight", g + "attn_qkv.weight", LINEAR,
               note="rows: q, then k, then v")
    else:
        qt = (lambda w: unpermute_rope_rows(w, src.n_head)) if permute else None
        kt = (lambda w: unpermute_rope_rows(w, src.n_head_kv)) if permute else None
        note_q = f"rows un-permuted per head, n_head {src.n_head}" if permute else ""
        note_k = f"rows un-permuted per head, n_head_kv {src.n_head_kv}" if permute else ""
        b.copy(p + "self_attn.q_proj.weight", g + "attn_q.weight", LINEAR, qt, note_q)
        b.copy(p + "self_attn.k_proj.weight", g + "attn_k.weight", LINEAR, kt, note_k)
        b.copy(p + "self_attn.v_proj.weight", g + "attn_v.weight", LINEAR)
        if bias:
            b.copy(p + "self_attn.q_proj.bias", g + "attn_q.bias", DENSE, qt, note_q)
            b.copy(p + "self_attn.k_proj.bias", g + "attn_k.bias", DENSE, kt, note_k)
            b.copy(p + "self_attn.v_proj.bias", g + "attn_v.bias", DENSE)
    if qk_norm:
        b.norm(p + "self_attn.q_norm.weight", g + "attn_q_norm.weight", norm_shift)
        b.norm(p + "self_attn.k_norm.weight", g + "attn_k_norm.weight", norm_shift)
    b.copy(p + "self_attn.o_proj.weight", g + "attn_output.weight", LINEAR)
    if o_bias:
        b.copy(p + "self_attn.o_proj.bias", g + "attn_output.bias", DENSE)
    if sinks:
        b.copy(p + "self_attn.sinks", g + "attn_sinks.weight", DENSE)


def dense_mlp(b, l, mlp="mlp"):
    p, g = f"layers.{l}.{mlp}.", f"blk.{l}."
    b.copy(p + "gate_proj.weight", g + "ffn_gate.weight", LINEAR)
    b.copy(p + "up_proj.weight", g + "ffn_up.weight", LINEAR)
    b.copy(p + "down_proj.weight", g + "ffn_down.weight", LINEAR)


def experts(b, l, prefix, names):
    """Per-expert linears: names maps gate/up/down to the HF names (w1/w3/w2 for Mixtral);
    expert e is row e of GGUF's stacked [n_expert, rows, cols] tensors."""
    src, g = b.src, f"blk.{l}."
    stacks = {k: src.t(f"{g}ffn_{k}_exps.weight") for k in ("gate", "up", "down")}
    for e in range(stacks["gate"].shape[0]):
        for k in ("gate", "up", "down"):
            b.add(f"{b.prefix}layers.{l}.{prefix}.{e}.{names[k]}.weight", stacks[k][e], LINEAR,
                  f"{g}ffn_{k}_exps.weight[{e}]")


def shared_expert(b, l, prefix):
    p, g = f"layers.{l}.{prefix}.", f"blk.{l}."
    b.copy(p + "gate_proj.weight", g + "ffn_gate_shexp.weight", LINEAR)
    b.copy(p + "up_proj.weight", g + "ffn_up_shexp.weight", LINEAR)
    b.copy(p + "down_proj.weight", g + "ffn_down_shexp.weight", LINEAR)


def common_config(src, arch_name, model_type, head_dim_key=True):
    """The keys every architecture shares. head_dim is left out where the publisher leaves
    it out (Qwen2, Qwen2-MoE, Mixtral, Phi-3: hidden_size / num_attention_heads), unless the
    model's head size differs from that."""
    if not head_dim_key and src.head_dim * src.n_head == src.dim:
        cfg = common_config(src, arch_name, model_type)
        del cfg["head_dim"]
        return cfg
    return {
        "architectures": [arch_name],
        "model_type": model_type,
        "hidden_size": src.dim,
        "intermediate_size": src.ffn,
        "num_hidden_layers": src.n_layer,
        "num_attention_heads": src.n_head,
        "num_key_value_heads": src.n_head_kv,
        "head_dim": src.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": f32(src.eps),
        "rope_theta": f32(src.theta),
        "max_position_embeddings": src.ctx,
        "vocab_size": src.vocab,
        "tie_word_embeddings": src.tied,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
    }


# ---- architectures ----

def build_llama(src, opts):
    """Llama / Mistral (dense) and Mixtral (experts): q/k rows un-permuted."""
    check_full_rope(src)
    b = Builder(src)
    moe = src.n_expert > 0
    b.copy("embed_tokens.weight", "token_embd.weight", DENSE)
    for l in range(src.n_layer):
        b.copy(f"layers.{l}.input_layernorm.weight", f"blk.{l}.attn_norm.weight", DENSE)
        attention(b, l, permute=True)
        b.copy(f"layers.{l}.post_attention_layernorm.weight", f"blk.{l}.ffn_norm.weight", DENSE)
        if moe:
            b.copy(f"layers.{l}.block_sparse_moe.gate.weight", f"blk.{l}.ffn_gate_inp.weight",
                   DENSE)
            experts(b, l, "block_sparse_moe.experts", {"gate": "w1", "up": "w3", "down": "w2"})
        else:
            dense_mlp(b, l)
    b.head()
    if moe:
        cfg = common_config(src, "MixtralForCausalLM", "mixtral", head_dim_key=False)
        cfg.update({"intermediate_size": int(src.g.get("expert_feed_forward_length", src.ffn)),
                    "num_local_experts": src.n_expert,
                    "num_experts_per_tok": src.n_expert_used,
                    "output_router_logits": False, "router_aux_loss_coef": 0.02,
                    "sliding_window": None})
    elif opts.variant == "mistral":
        cfg = common_config(src, "MistralForCausalLM", "mistral")
        cfg["sliding_window"] = None
    else:
        cfg = common_config(src, "LlamaForCausalLM", "llama")
        cfg.update({"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1})
    cfg["rope_scaling"] = rope_scaling(src, "rope_type")
    return cfg, b.tensors


def qwen_common(src, cfg, sliding_window):
    cfg.update({"use_sliding_window": False, "sliding_window": sliding_window,
                "max_window_layers": src.n_layer})
    cfg["rope_scaling"] = rope_scaling(src, "rope_type")


def build_qwen(src, opts):
    """Qwen2 (q/k/v biases), Qwen3 (q/k norms) and their MoE forms."""
    check_full_rope(src)
    arch = src.arch
    qwen2 = arch in ("qwen2", "qwen2moe")
    b = Builder(src)
    b.copy("embed_tokens.weight", "token_embd.weight", DENSE)
    for l in range(src.n_layer):
        g = f"blk.{l}."
        b.copy(f"layers.{l}.input_layernorm.weight", g + "attn_norm.weight", DENSE)
        attention(b, l, bias=qwen2, qk_norm=not qwen2)
        b.copy(f"layers.{l}.post_attention_layernorm.weight", g + "ffn_norm.weight", DENSE)
        if src.layer_has_experts(l):
            b.copy(f"layers.{l}.mlp.gate.weight", g + "ffn_gate_inp.weight", DENSE)
            experts(b, l, "mlp.experts", {"gate": "gate_proj", "up": "up_proj",
                                          "down": "down_proj"})
            if src.has(g + "ffn_gate_shexp.weight"):
                shared_expert(b, l, "mlp.shared_expert")
                b.copy(f"layers.{l}.mlp.shared_expert_gate.weight",
                       g + "ffn_gate_inp_shexp.weight", DENSE, lambda v: v.reshape(1, -1),
                       "[dim] -> [1, dim]")
        else:
            dense_mlp(b, l)
    b.head()
    names = {"qwen2": ("Qwen2ForCausalLM", "qwen2"), "qwen3": ("Qwen3ForCausalLM", "qwen3"),
             "qwen2moe": ("Qwen2MoeForCausalLM", "qwen2_moe"),
             "qwen3moe": ("Qwen3MoeForCausalLM", "qwen3_moe")}[arch]
    cfg = common_config(src, *names, head_dim_key=not qwen2)
    if not qwen2:
        cfg["attention_bias"] = False
    qwen_common(src, cfg, None if arch != "qwen2" else src.ctx)
    if arch in ("qwen2moe", "qwen3moe"):
        cfg.update({
            "decoder_sparse_step": 1, "mlp_only_layers": [],
            "moe_intermediate_size": int(src.g.get("expert_feed_forward_length", src.ffn)),
            "num_experts": src.n_expert, "num_experts_per_tok": src.n_expert_used,
            "norm_topk_prob": arch == "qwen3moe", "output_router_logits": False,
            "router_aux_loss_coef": 0.001})
        if arch == "qwen2moe":
            cfg["shared_expert_intermediate_size"] = int(
                src.g.get("expert_shared_feed_forward_length", 0))
    return cfg, b.tensors


def gemma3_layer_types(n_layer, period=6):
    return ["full_attention" if (l + 1) % period == 0 else "sliding_attention"
            for l in range(n_layer)]


def build_gemma3(src, opts):
    """Gemma 3 (text): every norm stored as w - 1; Gemma3ForCausalLM (the 1B's form, names
    under model.) or, with variant "conditional", Gemma3ForConditionalGeneration (the 4B+
    form: names under language_model.model., the text keys nested in text_config)."""
    check_full_rope(src)
    conditional = opts.variant == "conditional"
    b = Builder(src, "language_model.model." if conditional else "model.")
    b.copy("embed_tokens.weight", "token_embd.weight", DENSE)
    for l in range(src.n_layer):
        g, p = f"blk.{l}.", f"layers.{l}."
        b.norm(p + "input_layernorm.weight", g + "attn_norm.weight", True)
        attention(b, l, qk_norm=True, norm_shift=True)
        b.norm(p + "post_attention_layernorm.weight", g + "post_attention_norm.weight", True)
        b.norm(p + "pre_feedforward_layernorm.weight", g + "ffn_norm.weight", True)
        dense_mlp(b, l)
        b.norm(p + "post_feedforward_layernorm.weight", g + "post_ffw_norm.weight", True)
    b.head(shift=True)
    if not src.tied and conditional:
        b.tensors[-1].name = "language_model.lm_head.weight"
    window = src.g.get("attention.sliding_window")
    if window is None:
        raise LayoutError(f"{src.g.path}: gemma3 without attention.sliding_window")
    cfg = common_config(src, "Gemma3ForCausalLM", "gemma3_text")
    del cfg["hidden_act"]
    # The 27B (62 layers) scales queries by 1 / sqrt(dim / heads), the others by the head dim.
    scalar = src.dim // src.n_head if src.n_layer == 62 else src.head_dim
    softcap = src.g.get("final_logit_softcapping")
    cfg.update({
        "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": scalar,
        "rope_local_base_freq": f32(src.g.get("rope.freq_base_swa", 10000.0)),
        "sliding_window": int(window), "sliding_window_pattern": 6,
        "layer_types": gemma3_layer_types(src.n_layer),
        "final_logit_softcapping": f32(softcap) if softcap else None,
        "attn_logit_softcapping": None, "attention_bias": False,
        "cache_implementation": "hybrid", "rope_scaling": rope_scaling(src, "rope_type")})
    if conditional:
        text = cfg
        text.pop("architectures")
        cfg = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
               "text_config": text, "boi_token_index": 255999, "eoi_token_index": 256000,
               "image_token_index": 262144, "mm_tokens_per_image": 256,
               "initializer_range": 0.02,
               "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152,
                                 "image_size": 896, "intermediate_size": 4304,
                                 "num_attention_heads": 16, "num_hidden_layers": 27,
                                 "patch_size": 14, "vision_use_head": False}}
    return cfg, b.tensors


def build_phi3(src, opts):
    """Phi-3: fused qkv_proj and gate_up_proj, as in GGUF; LongRoPE factors into config."""
    b = Builder(src)
    b.copy("embed_tokens.weight", "token_embd.weight", DENSE)
    for l in range(src.n_layer):
        g = f"blk.{l}."
        b.copy(f"layers.{l}.input_layernorm.weight", g + "attn_norm.weight", DENSE)
        attention(b, l, fused=True)
        b.copy(f"layers.{l}.post_attention_layernorm.weight", g + "ffn_norm.weight", DENSE)
        b.copy(f"layers.{l}.mlp.gate_up_proj.weight", g + "ffn_up.weight", LINEAR,
               note="rows: gate, then up")
        b.copy(f"layers.{l}.mlp.down_proj.weight", g + "ffn_down.weight", LINEAR)
    b.head()
    cfg = common_config(src, "Phi3ForCausalLM", "phi3", head_dim_key=False)
    orig = int(src.g.get("rope.scaling.original_context_length", src.ctx))
    window = int(src.g.get("attention.sliding_window", 0))
    cfg.update({"original_max_position_embeddings": orig,
                "sliding_window": window if window else None,
                "attention_bias": False, "embd_pdrop": 0.0, "resid_pdrop": 0.0})
    if src.rope_dims != src.head_dim:
        # The converter: rope dims = int(partial_rotary_factor x hidden) / heads.
        factor = src.rope_dims / src.head_dim
        if int(factor * src.dim) // src.n_head != src.rope_dims:
            raise LayoutError(f"{src.g.path}: rope dims {src.rope_dims} has no partial "
                              "rotary factor")
        cfg["partial_rotary_factor"] = factor
    if src.has("rope_factors_long.weight"):
        cfg["rope_scaling"] = {
            "type": "longrope",
            "long_factor": [f32(x) for x in src.t("rope_factors_long.weight")],
            "short_factor": [f32(x) for x in src.t("rope_factors_short.weight")]}
    else:
        cfg["rope_scaling"] = rope_scaling(src, "type")
    return cfg, b.tensors


def interleave_rows(a, b_):
    """[..., n, k] and [..., n, k] -> [..., 2n, k] with a's rows even, b's odd."""
    out = np.empty(a.shape[:-2] + (2 * a.shape[-2], a.shape[-1]), dtype=np.float32)
    out[..., 0::2, :], out[..., 1::2, :] = a, b_
    return out


def build_gpt_oss(src, opts):
    """gpt-oss: experts as two packed parameters per layer in the unquantized layout
    (gate_up_proj [E, dim, 2 x ffn] with gate in the even columns and up in the odd ones,
    down_proj [E, ffn, dim]); the MXFP4 encoding stores them transposed in 32-blocks."""
    check_full_rope(src)
    b = Builder(src)
    b.copy("embed_tokens.weight", "token_embd.weight", DENSE)
    for l in range(src.n_layer):
        g, p = f"blk.{l}.", f"model.layers.{l}."
        b.copy(f"layers.{l}.input_layernorm.weight", g + "attn_norm.weight", DENSE)
        attention(b, l, bias=True, o_bias=True, sinks=True)
        b.copy(f"layers.{l}.post_attention_layernorm.weight", g + "post_attention_norm.weight",
               DENSE)
        b.copy(f"layers.{l}.mlp.router.weight", g + "ffn_gate_inp.weight", DENSE)
        b.copy(f"layers.{l}.mlp.router.bias", g + "ffn_gate_inp.bias", DENSE)
        gate, up = src.t(g + "ffn_gate_exps.weight"), src.t(g + "ffn_up_exps.weight")
        b.add(p + "mlp.experts.gate_up_proj", interleave_rows(gate, up).transpose(0, 2, 1),
              EXPERTS, f"{g}ffn_gate_exps.weight and {g}ffn_up_exps.weight [E, ffn, dim]: rows "
              "interleaved (gate even, up odd), then transposed to [E, dim, 2 x ffn]")
        gb, ub = src.t(g + "ffn_gate_exps.bias"), src.t(g + "ffn_up_exps.bias")
        b.add(p + "mlp.experts.gate_up_proj_bias",
              interleave_rows(gb[..., None], ub[..., None])[..., 0], DENSE,
              f"{g}ffn_gate_exps.bias and {g}ffn_up_exps.bias [E, ffn] interleaved")
        b.add(p + "mlp.experts.down_proj", src.t(g + "ffn_down_exps.weight").transpose(0, 2, 1),
              EXPERTS, f"{g}ffn_down_exps.weight [E, dim, ffn] transposed to [E, ffn, dim]")
        b.copy(f"layers.{l}.mlp.experts.down_proj_bias", g + "ffn_down_exps.bias", DENSE)
    b.head()
    window = int(src.g.get("attention.sliding_window", 128))
    cfg = common_config(src, "GptOssForCausalLM", "gpt_oss")
    ffn_exp = int(src.g.get("expert_feed_forward_length", src.ffn))
    rs = rope_scaling(src, "rope_type")
    if rs is not None and rs["rope_type"] == "yarn":
        rs["truncate"] = False
    cfg.update({
        "intermediate_size": ffn_exp, "attention_bias": True,
        "num_local_experts": src.n_expert, "num_experts_per_tok": src.n_expert_used,
        "experts_per_token": src.n_expert_used,
        "initial_context_length": int(src.g.get("rope.scaling.original_context_length",
                                                src.ctx)),
        "sliding_window": window,
        "layer_types": ["sliding_attention" if l % 2 == 0 else "full_attention"
                        for l in range(src.n_layer)],
        "swiglu_limit": 7.0, "output_router_logits": False, "router_aux_loss_coef": 0.9,
        "rope_scaling": rs})
    return cfg, b.tensors


def kv_b_proj(k_b, v_b):
    """GGUF's attn_k_b [heads, kv_lora, nope] and attn_v_b [heads, v, kv_lora] back to
    kv_b_proj [heads x (nope + v), kv_lora]: per head the nope rows (k_b transposed) then
    the v rows."""
    heads = k_b.shape[0]
    per_head = np.concatenate([k_b.transpose(0, 2, 1), v_b], axis=1)
    return per_head.reshape(heads * per_head.shape[1], k_b.shape[1])


def mscale_all_dim(log_mul):
    """The shortest mscale_all_dim m for which the converter's float32(0.1 x m) is the
    file's yarn_log_multiplier."""
    want = np.float32(log_mul)
    for digits in range(1, 10):
        m = round(float(want) / 0.1, digits)
        if np.float32(0.1 * m) == want:
            return m
    return float(want) / 0.1


def build_deepseek2(src, opts):
    """DeepSeek-V2 / V3: multi-head latent attention (kv_b_proj rebuilt from the two
    halves GGUF splits it into), leading dense layers, routed and shared experts."""
    g0 = src.g
    b = Builder(src)
    rope = src.rope_dims
    key_mla = int(g0.get("attention.key_length_mla", src.head_dim))
    v_dim = int(g0.get("attention.value_length_mla", key_mla - rope))
    kv_rank = int(g0.get("attention.kv_lora_rank"))
    q_rank = int(g0.get("attention.q_lora_rank", 0))
    gating = int(g0.get("expert_gating_func", 0))
    has_bias = any(src.has(f"blk.{l}.exp_probs_b.bias") for l in range(src.n_layer))
    v3 = gating == 2 or has_bias
    b.copy("embed_tokens.weight", "token_embd.weight", DENSE)
    for l in range(src.n_layer):
        g, p = f"blk.{l}.", f"layers.{l}."
        b.copy(p + "input_layernorm.weight", g + "attn_norm.weight", DENSE)
        if q_rank:
            b.copy(p + "self_attn.q_a_proj.weight", g + "attn_q_a.weight", LINEAR)
            b.copy(p + "self_attn.q_a_layernorm.weight", g + "attn_q_a_norm.weight", DENSE)
            b.copy(p + "self_attn.q_b_proj.weight", g + "attn_q_b.weight", LINEAR)
        else:
            b.copy(p + "self_attn.q_proj.weight", g + "attn_q.weight", LINEAR)
        b.copy(p + "self_attn.kv_a_proj_with_mqa.weight", g + "attn_kv_a_mqa.weight", LINEAR)
        b.copy(p + "self_attn.kv_a_layernorm.weight", g + "attn_kv_a_norm.weight", DENSE)
        b.add(b.prefix + p + "self_attn.kv_b_proj.weight",
              kv_b_proj(src.t(g + "attn_k_b.weight"), src.t(g + "attn_v_b.weight")), LINEAR,
              f"{g}attn_k_b.weight [heads, kv_lora, nope] and {g}attn_v_b.weight [heads, v, "
              "kv_lora]: per head k_b transposed then v_b")
        b.copy(p + "self_attn.o_proj.weight", g + "attn_output.weight", LINEAR)
        b.copy(p + "post_attention_layernorm.weight", g + "ffn_norm.weight", DENSE)
        if src.layer_has_experts(l):
            b.copy(p + "mlp.gate.weight", g + "ffn_gate_inp.weight", DENSE)
            if src.has(g + "exp_probs_b.bias"):
                b.copy(p + "mlp.gate.e_score_correction_bias", g + "exp_probs_b.bias", F32)
            elif v3:
                b.add(b.prefix + p + "mlp.gate.e_score_correction_bias",
                      np.zeros(src.n_expert, dtype=np.float32), F32, "zeros (none in GGUF)")
            experts(b, l, "mlp.experts", {"gate": "gate_proj", "up": "up_proj",
                                          "down": "down_proj"})
            if src.has(g + "ffn_gate_shexp.weight"):
                shared_expert(b, l, "mlp.shared_experts")
        else:
            dense_mlp(b, l)
    b.head()
    n_group = int(g0.get("expert_group_count", 0))
    cfg = common_config(src, "DeepseekV3ForCausalLM" if v3 else "DeepseekV2ForCausalLM",
                        "deepseek_v3" if v3 else "deepseek_v2")
    cfg.update({
        "num_key_value_heads": src.n_head,  # as published; MLA has no KV heads
        "head_dim": None,
        "kv_lora_rank": kv_rank, "q_lora_rank": q_rank if q_rank else None,
        "qk_nope_head_dim": key_mla - rope, "qk_rope_head_dim": rope, "v_head_dim": v_dim,
        "first_k_dense_replace": int(g0.get("leading_dense_block_count", 0)),
        "moe_intermediate_size": int(g0.get("expert_feed_forward_length", src.ffn)),
        "n_routed_experts": src.n_expert, "n_shared_experts": int(g0.get("expert_shared_count",
                                                                         0)),
        "num_experts_per_tok": src.n_expert_used,
        "n_group": n_group if n_group else 1,
        "topk_group": int(g0.get("expert_group_used_count", 1)) if n_group else 1,
        "routed_scaling_factor": f32(g0.get("expert_weights_scale", 1.0)),
        "scoring_func": "sigmoid" if gating == 2 else "softmax",
        "topk_method": "noaux_tc" if v3 else ("group_limited_greedy" if n_group > 1 else
                                               "greedy"),
        "norm_topk_prob": bool(g0.get("expert_weights_norm", False)),
        "moe_layer_freq": 1, "ep_size": 1, "aux_loss_alpha": 0.001, "seq_aux": True,
        "attention_bias": False, "pretraining_tp": 1})
    del cfg["head_dim"]
    rs = rope_scaling(src, "type")
    if rs is not None and g0.get("rope.scaling.yarn_log_multiplier") is not None:
        # The converter writes yarn_log_multiplier = 0.1 x mscale_all_dim.
        m = mscale_all_dim(g0.get("rope.scaling.yarn_log_multiplier"))
        rs.update({"mscale": m, "mscale_all_dim": m})
    cfg["rope_scaling"] = rs
    if v3:
        cfg["num_nextn_predict_layers"] = 0
    return cfg, b.tensors


BUILDERS = {"llama": build_llama, "qwen2": build_qwen, "qwen3": build_qwen,
            "qwen2moe": build_qwen, "qwen3moe": build_qwen, "gemma3": build_gemma3,
            "phi3": build_phi3, "gpt-oss": build_gpt_oss, "deepseek2": build_deepseek2}


def build(g, opts):
    """(config dict, [HFTensor]) for the GGUF g; opts.variant picks among published forms
    (llama: "mistral"; gemma3: "conditional")."""
    src = Source(g)
    if src.arch not in BUILDERS:
        raise LayoutError(f"{g.path}: architecture '{src.arch}' (known: "
                          f"{', '.join(BUILDERS)})")
    cfg, tensors = BUILDERS[src.arch](src, opts)
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise LayoutError("duplicate tensor names")
    return cfg, tensors
