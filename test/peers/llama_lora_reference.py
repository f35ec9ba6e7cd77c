#!/usr/bin/env python3
"""
An independent PyTorch reference for lora-ts's tests: a Hugging Face Llama causal LM with PEFT LoRA
adapters, written from the published equations, not from lora-ts's code.

Model (transformers' LlamaForCausalLM):
  h = embed_tokens[ids]                                          (+ LoRA on the embedding)
  per layer:  h = h + o_proj(attn(rms(h)));  h = h + down(silu(gate(rms(h))) * up(rms(h)))
  rms(x) = x / sqrt(mean(x^2) + eps) * w
  attn: q, k, v projections; rotate-half RoPE (inv_freq = theta^(-2i/d), cos/sin of cat(f, f),
        x*cos + rotate_half(x)*sin with rotate_half(x) = cat(-x2, x1)); GQA by repeating each KV head
        num_heads/num_kv_heads times (repeat_kv); softmax(q k^T / sqrt(d) + mask) v, where the mask
        allows key j for query i iff j <= i and attention_mask[j] == 1
  logits = rms(h) @ lm_head^T, lm_head = embed_tokens when tie_word_embeddings
  loss (labels given): cross-entropy of logits[:, t] against labels[:, t + 1], mean over the pairs
        whose label is not -100 (HF's shift-by-one causal LM loss)

LoRA (PEFT's LoraLayer, dropout = identity in eval / p = 0):
  linear:     y = W x + b + s * B (A x)            A [r, in], B [out, r]
  embedding:  y = E[ids] + s * (A^T[ids]) B^T       lora_embedding_A [r, vocab], lora_embedding_B [dim, r]
  s = alpha / r, or alpha / sqrt(r) with use_rslora; r and alpha per module from rank_pattern /
  alpha_pattern (the first key that matches a dot-delimited tail of the module name as a regex).
  Targets (list form): a module whose name equals an entry or ends with "." + entry; string form:
  a full-match regex, or "all-linear" (every linear layer but the output head).
  Keys in adapter_model.safetensors: base_model.model.<module>.lora_A.weight / .lora_B.weight,
  base_model.model.<module>.lora_embedding_A / .lora_embedding_B. Every key must be used.

DoRA (use_dora; Liu et al. 2024, "Weight-Decomposed Low-Rank Adaptation", eq. 5 and section 4.3):
  the adapted weight is m * V / ||V|| with V = W + s * B A (linear, [out, in]: the norm of each row)
  or V = E + s * (B A)^T (embedding, [vocab, dim]: the norm of each column, one per embedding dim);
  ||V|| is detached (a constant for the gradient, as the paper's section 4.3 prescribes). So
    linear:     y = (m / ||V||) * (W x + s * B (A x)) + b
    embedding:  y = (m / ||V||) * (E[ids] + s * A^T[ids] B^T)
  with m the trained magnitude, key base_model.model.<module>.lora_magnitude_vector, shape [out]
  (embedding: [dim]); "step" mode returns its gradient too.

safetensors is read by hand (8-byte little-endian header length, JSON header of dtype / shape /
data_offsets, raw little-endian bytes after it), so the reference shares no reader with lora-ts.

Usage: python3 llama_lora_reference.py < job.json > result.json
  job: {"model_dir": DIR, "dtype": "float64" | "float32", "jobs": [JOB, ...]}
  JOB: {"mode": "logits", "adapter": DIR | null, "ids": [[...], ...], "attention_mask": [[...]]?}
         -> {"logits": [[[...vocab], ...seq], ...batch]}
       {"mode": "step", "adapter": DIR, "ids": [[...]], "attention_mask": [[...]], "labels": [[...]]}
         -> {"loss": x, "grads": {PEFT key: flat list, row-major}} (DoRA: the magnitudes' too)
"""
import json
import math
import re
import sys

import torch

assert sys.byteorder == "little", "the safetensors reader below assumes a little-endian machine"

ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path, dtype):
    with open(path, "rb") as f:
        blob = f.read()
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + header_len].decode("utf-8"))
    body = 8 + header_len
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        shape = info["shape"]
        st = ST_DTYPES[info["dtype"]]
        count = math.prod(shape)
        raw = bytearray(blob[body + start : body + end])
        assert len(raw) == count * torch.tensor([], dtype=st).element_size(), f"{path}: {name}: size"
        t = torch.frombuffer(raw, dtype=st) if count > 0 else torch.zeros(0, dtype=st)
        out[name] = t.reshape(shape).to(dtype)
    return out


# ---------------------------------------------------------------- model


class LlamaWeights:
    def __init__(self, model_dir, dtype):
        with open(f"{model_dir}/config.json") as f:
            c = json.load(f)
        assert c.get("model_type") == "llama", c.get("model_type")
        assert c.get("rope_scaling") in (None, {}), "rope_scaling is not modelled here"
        assert c.get("hidden_act", "silu") == "silu"
        self.dim = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads", self.heads)
        self.head_dim = c.get("head_dim") or self.dim // self.heads
        self.eps = c["rms_norm_eps"]
        self.theta = c.get("rope_theta", 10000.0)
        self.vocab = c["vocab_size"]
        self.tied = c.get("tie_word_embeddings", False)
        self.w = read_safetensors(f"{model_dir}/model.safetensors", dtype)
        if self.tied:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]

    def linear_modules(self):
        names = []
        for i in range(self.layers):
            p = f"model.layers.{i}"
            names += [f"{p}.self_attn.{n}" for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
            names += [f"{p}.mlp.{n}" for n in ("gate_proj", "up_proj", "down_proj")]
        return names + ["lm_head"]

    def module_names(self):
        return ["model.embed_tokens"] + self.linear_modules()


# ---------------------------------------------------------------- PEFT adapter


def pattern_value(patterns, name, default):
    for key, value in patterns.items():
        if re.match(rf"(?:.*\.)?(?:{key})$", name):
            return value
    return default


def is_targeted(targets, name, linear_non_head):
    if isinstance(targets, str):
        if targets.lower() == "all-linear":
            return linear_non_head
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def load_adapter(adapter_dir, model, dtype, requires_grad):
    with open(f"{adapter_dir}/adapter_config.json") as f:
        cfg = json.load(f)
    assert cfg.get("peft_type", "LORA") == "LORA"
    for field, allowed in (
        ("fan_in_fan_out", (False, None)),
        ("bias", ("none", None)),
        ("modules_to_save", (None, [])),
        ("layers_to_transform", (None, [])),
        ("exclude_modules", (None, [])),
    ):
        assert cfg.get(field) in allowed, f"{field}={cfg.get(field)!r} is not modelled here"
    tensors = read_safetensors(f"{adapter_dir}/adapter_model.safetensors", dtype)
    used = set()
    lora = {}
    for name in model.module_names():
        is_emb = name == "model.embed_tokens"
        if not is_targeted(cfg["target_modules"], name, not is_emb and name != "lm_head"):
            continue
        r = pattern_value(cfg.get("rank_pattern") or {}, name, cfg["r"])
        alpha = pattern_value(cfg.get("alpha_pattern") or {}, name, cfg["lora_alpha"])
        scale = alpha / math.sqrt(r) if cfg.get("use_rslora", False) else alpha / r
        if is_emb:
            ka, kb = f"base_model.model.{name}.lora_embedding_A", f"base_model.model.{name}.lora_embedding_B"
            n_in, n_out = model.w[f"{name}.weight"].shape  # [vocab, dim]
        else:
            ka, kb = f"base_model.model.{name}.lora_A.weight", f"base_model.model.{name}.lora_B.weight"
            n_out, n_in = model.w[f"{name}.weight"].shape
        assert ka in tensors and kb in tensors, f"adapter has no {ka} / {kb}"
        a, b = tensors[ka], tensors[kb]
        assert list(a.shape) == [r, n_in], f"{ka}: shape {list(a.shape)}, expected {[r, n_in]}"
        assert list(b.shape) == [n_out, r], f"{kb}: shape {list(b.shape)}, expected {[n_out, r]}"
        a.requires_grad_(requires_grad)
        b.requires_grad_(requires_grad)
        lora[name] = {"A": a, "B": b, "scale": scale, "keys": (ka, kb)}
        used.update((ka, kb))
        if cfg.get("use_dora", False):
            km = f"base_model.model.{name}.lora_magnitude_vector"
            assert km in tensors, f"adapter has no {km}"
            mag = tensors[km]
            assert list(mag.shape) == [n_out], f"{km}: shape {list(mag.shape)}, expected {[n_out]}"
            mag.requires_grad_(requires_grad)
            lora[name].update(magnitude=mag, keys=(ka, kb, km))
            used.add(km)
    unused = sorted(set(tensors) - used)
    assert not unused, f"adapter tensors not used by the config: {unused}"
    return lora


# ---------------------------------------------------------------- forward


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def dora_factor(m, weight, is_emb):
    """m / ||W + s B A|| per output, the norm detached (a constant of the backward pass)."""
    delta = m["scale"] * (m["B"] @ m["A"])  # [out, in]; for an embedding [dim, vocab]
    if is_emb:
        norm = (weight + delta.T).norm(dim=0)  # a column of [vocab, dim] per embedding dim
    else:
        norm = (weight + delta).norm(dim=1)  # a row of [out, in] per output
    return m["magnitude"] / norm.detach()


def forward(model, lora, ids, attention_mask):
    w = model.w
    dtype = w["model.embed_tokens.weight"].dtype
    batch, seq = ids.shape

    def linear(x, name):
        y = x @ w[f"{name}.weight"].T
        if name in lora:
            m = lora[name]
            y = y + m["scale"] * ((x @ m["A"].T) @ m["B"].T)
            if "magnitude" in m:
                y = dora_factor(m, w[f"{name}.weight"], False) * y
        if f"{name}.bias" in w:
            y = y + w[f"{name}.bias"]
        return y

    emb = w["model.embed_tokens.weight"]
    h = emb[ids]
    if "model.embed_tokens" in lora:
        m = lora["model.embed_tokens"]
        h = h + m["scale"] * (m["A"].T[ids] @ m["B"].T)
        if "magnitude" in m:
            h = dora_factor(m, emb, True) * h

    hd = model.head_dim
    inv_freq = 1.0 / (model.theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(seq, dtype=torch.float64), inv_freq)
    angles = torch.cat((freqs, freqs), dim=-1)
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)

    allowed = torch.tril(torch.ones(seq, seq, dtype=torch.bool))[None, None] & (attention_mask[:, None, None, :] == 1)
    rep = model.heads // model.kv_heads

    for i in range(model.layers):
        p = f"model.layers.{i}"
        x = rms_norm(h, w[f"{p}.input_layernorm.weight"], model.eps)
        q = linear(x, f"{p}.self_attn.q_proj").view(batch, seq, model.heads, hd).transpose(1, 2)
        k = linear(x, f"{p}.self_attn.k_proj").view(batch, seq, model.kv_heads, hd).transpose(1, 2)
        v = linear(x, f"{p}.self_attn.v_proj").view(batch, seq, model.kv_heads, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(rep, dim=1)  # KV head j serves query heads j*rep .. j*rep+rep-1
        v = v.repeat_interleave(rep, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(~allowed, torch.finfo(dtype).min)
        att = torch.softmax(scores, dim=-1) @ v
        att = att.transpose(1, 2).reshape(batch, seq, model.heads * hd)
        h = h + linear(att, f"{p}.self_attn.o_proj")
        x = rms_norm(h, w[f"{p}.post_attention_layernorm.weight"], model.eps)
        gate = linear(x, f"{p}.mlp.gate_proj")
        h = h + linear(torch.nn.functional.silu(gate) * linear(x, f"{p}.mlp.up_proj"), f"{p}.mlp.down_proj")
    h = rms_norm(h, w["model.norm.weight"], model.eps)
    return linear(h, "lm_head")


def causal_lm_loss(logits, labels):
    vocab = logits.shape[-1]
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="mean"
    )


def run_job(model, job, dtype):
    ids = torch.tensor(job["ids"], dtype=torch.long)
    mask = torch.tensor(job.get("attention_mask") or [[1] * ids.shape[1]] * ids.shape[0], dtype=torch.long)
    assert ids.shape == mask.shape
    assert int(ids.max()) < model.vocab and int(ids.min()) >= 0
    step = job["mode"] == "step"
    lora = load_adapter(job["adapter"], model, dtype, step) if job.get("adapter") else {}
    if job["mode"] == "logits":
        with torch.no_grad():
            return {"logits": forward(model, lora, ids, mask).tolist()}
    assert step, job["mode"]
    labels = torch.tensor(job["labels"], dtype=torch.long)
    loss = causal_lm_loss(forward(model, lora, ids, mask), labels)
    loss.backward()
    grads = {}
    for m in lora.values():
        for key, t in zip(m["keys"], (m["A"], m["B"], m.get("magnitude"))):
            grads[key] = t.grad.reshape(-1).tolist()
    return {"loss": loss.item(), "grads": grads}


def main():
    req = json.load(sys.stdin)
    dtype = {"float64": torch.float64, "float32": torch.float32}[req.get("dtype", "float64")]
    torch.set_num_threads(1)
    model = LlamaWeights(req["model_dir"], dtype)
    sys.stdout.write(json.dumps({"results": [run_job(model, job, dtype) for job in req["jobs"]]}))


if __name__ == "__main__":
    main()
