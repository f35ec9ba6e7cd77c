#!/usr/bin/env python3
"""
An independent writer of a PEFT DoRA adapter, for lora-ts's tests: adapter_config.json and
adapter_model.safetensors as PEFT's save_pretrained writes them for a Llama model with use_dora,
from PEFT's documented format, not from lora-ts's code.

Keys (PEFT drops the adapter name and, for the magnitude, its ".weight" when it saves):
  base_model.model.<module>.lora_A.weight            [r, in]        linear layers
  base_model.model.<module>.lora_B.weight            [out, r]
  base_model.model.<module>.lora_embedding_A         [r, vocab]     the embedding
  base_model.model.<module>.lora_embedding_B         [dim, r]
  base_model.model.<module>.lora_magnitude_vector    [out]          ([dim] for the embedding)

Values: A and B random N(0, 0.1^2) (B non-zero, so the adapter changes the model), and each
magnitude the norm ||V|| of its direction V = W + s * B A per output (rows of [out, in]; for the
embedding, V = E + s * (B A)^T, one norm per column of [vocab, dim]) times a random factor in
[0.6, 1.4): so m / ||V|| is far from 1 and a merge or forward that ignored it would be far off.
The base weights are read from the model's model.safetensors by hand.

safetensors is read and written by hand: an 8-byte little-endian header length, a JSON header of
dtype / shape / data_offsets, then the raw little-endian bytes.

Usage: python3 dora_adapter_writer.py < job.json
  job: {"model_dir": DIR, "out": DIR, "seed": N, "r": 4, "lora_alpha": 6,
        "target_modules": ["q_proj", ...]}     (short names; "embed_tokens" for the embedding)
  prints {"keys": [...]}
"""
import json
import os
import struct
import sys

import torch

assert sys.byteorder == "little", "the safetensors code below assumes a little-endian machine"


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: {info['dtype']} (this writer reads float32 models)"
        start, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[start:end]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]).to(torch.float64)
    return out


def write_safetensors(path, tensors):
    header = {}
    offset = 0
    blobs = []
    for name, t in tensors.items():
        b = t.to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)  # the data starts 8-byte aligned, as the format recommends
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    job = json.load(sys.stdin)
    weights = read_safetensors(os.path.join(job["model_dir"], "model.safetensors"))
    r, alpha = job["r"], job["lora_alpha"]
    s = alpha / r
    targets = job["target_modules"]
    g = torch.Generator().manual_seed(job["seed"])
    tensors = {}
    for name in sorted(weights):
        if not name.endswith(".weight"):
            continue
        module = name[: -len(".weight")]
        short = module.split(".")[-1]
        if short not in targets:
            continue
        W = weights[name]
        p = "base_model.model." + module
        if short == "embed_tokens":
            vocab, dim = W.shape
            A = torch.randn(r, vocab, generator=g, dtype=torch.float64) * 0.1
            B = torch.randn(dim, r, generator=g, dtype=torch.float64) * 0.1
            V = W + s * (B @ A).T
            norm = V.norm(dim=0)  # one per embedding dim, over the vocabulary
            tensors[p + ".lora_embedding_A"] = A
            tensors[p + ".lora_embedding_B"] = B
        else:
            out_f, in_f = W.shape
            A = torch.randn(r, in_f, generator=g, dtype=torch.float64) * 0.1
            B = torch.randn(out_f, r, generator=g, dtype=torch.float64) * 0.1
            V = W + s * (B @ A)
            norm = V.norm(dim=1)  # one per output row
            tensors[p + ".lora_A.weight"] = A
            tensors[p + ".lora_B.weight"] = B
        factor = 0.6 + 0.8 * torch.rand(norm.shape, generator=g, dtype=torch.float64)
        tensors[p + ".lora_magnitude_vector"] = norm * factor
    assert tensors, f"no module of the model matches {targets}"
    os.makedirs(job["out"], exist_ok=True)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": job["model_dir"],
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": True,
        "init_lora_weights": True,
        "rank_pattern": {},
        "alpha_pattern": {},
        "modules_to_save": None,
        "inference_mode": True,
    }
    with open(os.path.join(job["out"], "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(job["out"], "adapter_model.safetensors"), tensors)
    json.dump({"keys": sorted(tensors)}, sys.stdout)


if __name__ == "__main__":
    main()
