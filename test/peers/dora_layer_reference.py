#!/usr/bin/env python3
"""
An independent PyTorch DoRA layer for lora-ts's tests, written from the paper's equations (Liu et
al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation", eq. 5 and section 4.3) and PEFT's documented
dropout form, not from lora-ts's code. float64 throughout.

  V  = W + s * B @ A                      the LoRA-updated weight, [out, in]
  n  = ||V|| per output (row), DETACHED   a constant for the gradient (section 4.3)
  W' = (m / n) * V                        m: the trained magnitude, [out]

  linear, no dropout:   y = (m / n) * (x @ W^T + s * (x @ A^T) @ B^T) + b
  linear, dropout mask: y = x @ W^T + b + (m / n - 1) * (d @ W^T) + (m / n) * s * (d @ A^T) @ B^T,
                        d = x * keep / (1 - p)   (PEFT's training form: the base term recomputed on the
                        dropped input, without the bias)
  Conv1D layout:        W is stored [in, out]; the same equations on its transpose
  embedding:            E [vocab, dim], A [r, vocab], B [dim, r]; V = E + s * (B @ A)^T, n = ||V|| per
                        column (one per embedding dim), y = (m / n) * (E[ids] + s * A^T[ids] @ B^T)

Usage: python3 dora_layer_reference.py < job.json > result.json
  job: {"kind": "linear" | "conv1d" | "embedding", "s": float, "p": float (dropout, linear only),
        "x": nested list [b, t, in] (linear) | "ids": [[...]] (embedding),
        "W": nested list (storage layout), "bias": [out] | null, "A", "B", "m", "keep": [b, t, in] | null,
        "proj": nested list shaped like y}
  -> {"y": nested list, "grads": {"x"?: ..., "A": ..., "B": ..., "m": ...}} of L = sum(y * proj)
"""
import json
import sys

import torch


def t(v, grad=False):
    return torch.tensor(v, dtype=torch.float64, requires_grad=grad)


def main():
    job = json.load(sys.stdin)
    kind, s = job["kind"], job["s"]
    A, B, m = t(job["A"], True), t(job["B"], True), t(job["m"], True)
    W = t(job["W"])
    grads = {"A": A, "B": B, "m": m}
    if kind == "embedding":
        ids = torch.tensor(job["ids"], dtype=torch.long)
        V = W + s * (B @ A).T  # [vocab, dim]
        n = V.norm(dim=0).detach()
        y = (m / n) * (W[ids] + s * (A.T[ids] @ B.T))
    else:
        weight = W.T if kind == "conv1d" else W  # [out, in]
        x = t(job["x"], True)
        grads["x"] = x
        n = (weight + s * (B @ A)).norm(dim=1).detach()
        f = m / n
        bias = t(job["bias"]) if job.get("bias") is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
        if job.get("keep") is None:
            y = f * (x @ weight.T + s * (x @ A.T) @ B.T) + bias
        else:
            d = x * t(job["keep"]) / (1 - job["p"])
            y = x @ weight.T + bias + (f - 1) * (d @ weight.T) + f * s * ((d @ A.T) @ B.T)
    (y * t(job["proj"])).sum().backward()
    out = {"y": y.tolist(), "grads": {k: v.grad.tolist() for k, v in grads.items()}}
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
