/**
 * The LoRA layer (Hu et al. 2021) as PEFT's LoraLayer (peft/tuners/lora/layer.py). A frozen weight
 * W [out, in] gets two small trained matrices, A [r, in] and B [out, r]:
 *
 *     ΔW = B·A                     rank r, r·(in + out) parameters instead of in·out
 *     W' = W + s·ΔW                the merged weight (`lora-ts merge`)
 *     y  = W·x + s·B·(A·x)         the forward pass unmerged (training, serving): ΔW is never formed
 *     s  = alpha / r               rsLoRA: alpha / √r
 *
 * An embedding table E [vocab, dim] keeps its adapter the other way round, A [r, vocab] and
 * B [dim, r], so y = E[ids] + s·Aᵀ[ids]·Bᵀ and ΔE = (B·A)ᵀ. GPT-2's Conv1D stores W as [in, out],
 * so its merged ΔW is transposed too.
 *
 * The scaling is applied one way everywhere: the graph multiplies the rank-r activations A·x by s,
 * and A and B are always the adapter's own tensors. s is a constant when a graph trains one adapter
 * and a fed scalar when one graph serves several (inject.ts). This file is the only place where s
 * or B·A is computed; config.ts only looks up a module's r and alpha (rank_pattern, alpha_pattern).
 */
import type { Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import * as o from "../graph/ops.js";
import { LoraTsError } from "../util/errors.js";

/** s = alpha / r, or alpha / √r with rsLoRA (Kalajdzievski 2023). */
export function loraScaling(alpha: number, r: number, rslora: boolean): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** Trainable parameters of one adapted module: A has r·in, B has r·out. */
export function loraParamCount(r: number, fin: number, fout: number): number {
  return r * (fin + fout);
}

/** s·v: a multiplication the graph skips when s is the constant 1. */
function scale(v: Value, s: Value | number): Value {
  return s === 1 ? v : o.mul(v, s);
}

/**
 * Linear: y + s·(drop(x)·Aᵀ)·Bᵀ, with `y` = x·Wᵀ + b the frozen layer's output and `x` its input.
 * `project` computes drop(x)·Aᵀ when training with dropout (DropoutInputs.project); without it,
 * x·Aᵀ.
 */
export function loraLinear(
  y: Value,
  x: Value,
  A: Value,
  B: Value,
  s: Value | number,
  project: (x: Value, A: Value) => Value = nn.linear,
): Value {
  return o.add(y, nn.linear(scale(project(x, A), s), B));
}

/** Embedding: y + s·Aᵀ[ids]·Bᵀ, with `y` = E[ids] the frozen table's rows. */
export function loraEmbedding(y: Value, ids: Value, A: Value, B: Value, s: Value | number): Value {
  const rows = nn.embedding(o.transpose(A, [1, 0]), ids); // Aᵀ[ids]: [..., r]
  return o.add(y, nn.linear(scale(rows, s), B));
}

export interface Matrix {
  shape: readonly number[];
  data: Float32Array;
}

/** How a module's weight is stored, as deltaWeight (and dora.ts) take it: see deltaWeight. */
export function weightLayout(
  kind: "linear" | "embedding",
  fanInFanOut = false,
): { fanInFanOut: boolean; embedding: boolean } {
  return { fanInFanOut: kind === "linear" && fanInFanOut, embedding: kind === "embedding" };
}

/**
 * s·ΔW = s·B·A in the base weight's storage layout: [out, in] for a linear layer, transposed to
 * [in, out] for Conv1D (fanInFanOut) and to [vocab, dim] for an embedding. Products are summed in
 * float64, then scaled and rounded to float32 once.
 */
export function deltaWeight(
  A: Matrix,
  B: Matrix,
  s: number,
  opts: { fanInFanOut?: boolean; embedding?: boolean } = {},
): Float32Array {
  if (A.shape.length !== 2 || B.shape.length !== 2 || A.shape[0] !== B.shape[1]) {
    throw new LoraTsError(
      `deltaWeight: A [${A.shape.join(", ")}] and B [${B.shape.join(", ")}] do not chain (A [r, n], B [m, r])`,
    );
  }
  const [r, n] = A.shape as [number, number];
  const m = B.shape[0]!;
  const transpose = opts.embedding === true || opts.fanInFanOut === true;
  const out = new Float32Array(m * n);
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B.data[i * r + k]!;
      if (b === 0) continue;
      const row = k * n;
      for (let j = 0; j < n; j++) acc[j]! += b * A.data[row + j]!;
    }
    if (transpose) for (let j = 0; j < n; j++) out[j * m + i] = acc[j]! * s;
    else for (let j = 0; j < n; j++) out[i * n + j] = acc[j]! * s;
  }
  return out;
}
