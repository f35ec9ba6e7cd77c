/**
 * DoRA (Liu et al. 2024, "Weight-Decomposed Low-Rank Adaptation") as PEFT's use_dora
 * (peft/tuners/lora/dora.py and variants.py). The adapted weight is split into a trained magnitude
 * m (one number per output) and a direction, the LoRA-updated weight normalised per output:
 *
 *     V  = W + s·B·A                 the LoRA weight of layer.ts
 *     n  = ‖V‖ per output            a row of [out, in]; for an embedding, a column of [vocab, dim]
 *     W' = (m / n) ⊙ V               the merged weight (`lora-ts merge`)
 *     m₀ = n at the start            so a fresh DoRA adapter leaves the model unchanged
 *
 * n is a constant in the backward pass (the paper's section 4.3; PEFT detaches it), so only m, A
 * and B get gradients. The magnitude is saved as `base_model.model.<path>.lora_magnitude_vector`
 * ([out]; [dim] for an embedding): PEFT drops the ".default.weight" of its module's parameter when it
 * saves. The trainable parameters of a module are LoRA's r·(in + out) plus out.
 *
 * The forward pass, as PEFT computes it (f = m / n per output, y's bias b apart):
 *
 *     linear:     y = f ⊙ (W·x + s·B·A·x) + b
 *       with dropout (training):  y = W·x + b + (f − 1) ⊙ W·drop(x) + f ⊙ s·B·A·drop(x)
 *                 (PEFT's form: the base term is recomputed on drop(x), without its bias; with the
 *                 dropout rate 0 it is the form above)
 *     embedding:  y = f ⊙ (E[ids] + s·Aᵀ[ids]·Bᵀ)                 (no dropout on embeddings)
 *
 * In a training graph f = m / stopGradient(n) with n computed from the current A and B each step
 * (`doraNorm`); a serving graph is fed f itself (`doraFactor`, once per adapter load).
 *
 * What a training step costs over LoRA (bench:train --dora, 2 Zen 2 cores, 4×256, r 8): without
 * dropout the norm is nearly free (GPT-2 c_attn 3.87 -> 3.88 s/step, SmolLM q,v 4.58 -> 4.73); with
 * dropout 0.05, PEFT's form multiplies W by drop(x) too (GPT-2 c_attn 3.99 -> 4.54 s/step, SmolLM
 * q,v 4.77 -> 5.05). Peak RSS grows by one [tokens, out] tensor per adapted layer (+150 MiB on both).
 *
 * The numbers computed outside a graph (the initial magnitude, the merged weight, the factor m/n a
 * server feeds) take weights in their storage layout, [out, in] for a linear layer and [in, out]
 * for GPT-2's Conv1D (fanInFanOut) and an embedding [vocab, dim].
 */
import type { Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import * as o from "../graph/ops.js";
import { LoraTsError } from "../util/errors.js";
import { deltaWeight, loraEmbedding, loraLinear, loraParamCount, type Matrix } from "./layer.js";

/** What the weight's storage layout is: whether the output index is the inner (column) one. */
export interface DoraLayout {
  fanInFanOut?: boolean;
  embedding?: boolean;
}

/** Trainable parameters of one DoRA module: LoRA's r·(in + out) and the magnitude's out. */
export function doraParamCount(r: number, fin: number, fout: number): number {
  return loraParamCount(r, fin, fout) + fout;
}

/** Whether the output index runs along columns of the stored weight ([in, out] / [vocab, dim]). */
function outputsAreColumns(layout: DoraLayout): boolean {
  return layout.fanInFanOut === true || layout.embedding === true;
}

/**
 * n = ‖W + s·B·A‖ per output, summed in float64, with W the base weight in its storage layout. It is
 * also the initial magnitude m₀ (‖W‖ for PEFT's default init, where B is zero).
 */
export function weightNorm(
  W: Float32Array,
  A: Matrix,
  B: Matrix,
  s: number,
  layout: DoraLayout = {},
): Float32Array {
  const V = loraWeight(W, A, B, s, layout);
  return columnOrRowNorms(V, B.shape[0]!, outputsAreColumns(layout));
}

/** The factor m / n per output that turns the LoRA weight V into DoRA's W' = (m / n) ⊙ V. */
export function doraFactor(
  magnitude: Float32Array,
  W: Float32Array,
  A: Matrix,
  B: Matrix,
  s: number,
  layout: DoraLayout = {},
): Float32Array {
  const n = weightNorm(W, A, B, s, layout);
  checkMagnitude(magnitude, n.length);
  const f = new Float32Array(n.length);
  for (let i = 0; i < n.length; i++) f[i] = magnitude[i]! / n[i]!;
  return f;
}

/** W' = (m / n) ⊙ (W + s·B·A), in W's storage layout: the weight `merge` writes. */
export function doraMergedWeight(
  magnitude: Float32Array,
  W: Float32Array,
  A: Matrix,
  B: Matrix,
  s: number,
  layout: DoraLayout = {},
): Float32Array {
  const nOut = B.shape[0]!;
  checkMagnitude(magnitude, nOut);
  const V = loraWeight(W, A, B, s, layout);
  const n = columnOrRowNorms(V, nOut, outputsAreColumns(layout));
  const nIn = V.length / nOut;
  const out = new Float32Array(V.length);
  if (outputsAreColumns(layout)) {
    for (let j = 0; j < nIn; j++)
      for (let i = 0; i < nOut; i++) out[j * nOut + i] = (magnitude[i]! / n[i]!) * V[j * nOut + i]!;
  } else {
    for (let i = 0; i < nOut; i++) {
      const f = magnitude[i]! / n[i]!;
      for (let j = 0; j < nIn; j++) out[i * nIn + j] = f * V[i * nIn + j]!;
    }
  }
  return out;
}

/** V = W + s·B·A in W's storage layout. */
function loraWeight(W: Float32Array, A: Matrix, B: Matrix, s: number, layout: DoraLayout): Float32Array {
  const delta = deltaWeight(A, B, s, layout);
  if (delta.length !== W.length) {
    throw new LoraTsError(
      `DoRA: the base weight has ${W.length} values but s·B·A has ${delta.length} (A [${A.shape.join(", ")}], B [${B.shape.join(", ")}])`,
    );
  }
  for (let i = 0; i < delta.length; i++) delta[i] = W[i]! + delta[i]!;
  return delta;
}

/** The L2 norm of each output's weights: rows of [nOut, nIn], or columns of [nIn, nOut]. */
function columnOrRowNorms(V: Float32Array, nOut: number, columns: boolean): Float32Array {
  const nIn = V.length / nOut;
  const acc = new Float64Array(nOut);
  if (columns) {
    for (let j = 0; j < nIn; j++)
      for (let i = 0; i < nOut; i++) {
        const v = V[j * nOut + i]!;
        acc[i]! += v * v;
      }
  } else {
    for (let i = 0; i < nOut; i++) {
      let a = 0;
      for (let j = 0; j < nIn; j++) {
        const v = V[i * nIn + j]!;
        a += v * v;
      }
      acc[i] = a;
    }
  }
  const out = new Float32Array(nOut);
  for (let i = 0; i < nOut; i++) out[i] = Math.sqrt(acc[i]!);
  return out;
}

function checkMagnitude(m: Float32Array, nOut: number): void {
  if (m.length !== nOut)
    throw new LoraTsError(`DoRA: the magnitude has ${m.length} values but the layer has ${nOut} outputs`);
}

// ---------------------------------------------------------------- the graph

/** The factor f = m / n, with n a constant of the backward pass (the paper's section 4.3). */
export function doraGraphFactor(magnitude: Value, n: Value): Value {
  return o.div(magnitude, o.stopGradient(n));
}

/**
 * n = ‖W + s·B·A‖ per output [out] without forming W + s·B·A ([out, in]): with P = A·Wᵀ [r, out]
 * (the base layer applied to the rows of A) and ‖W_j‖² per output (`w2`, a constant of the base),
 *
 *     n_j² = ‖W_j‖² + 2s·Σ_k B_jk·P_kj + s²·B_j·(A·Aᵀ)·B_jᵀ
 *
 * which costs r·in·out multiply-adds, as one training token per rank would, instead of out·in for
 * the whole sum and its square. For an embedding, W_j is the table's column j and P = A·E [r, dim].
 */
export function doraNorm(w2: Value, P: Value, A: Value, B: Value, s: Value | number): Value {
  const cross = o.reduceSum(o.mul(B, o.transpose(P, [1, 0])), [1], false); // Σ_k B_jk·P_kj
  const gram = o.product(A, A, false, true); // A·Aᵀ [r, r]
  const quad = o.reduceSum(o.mul(o.product(B, gram, false, false), B), [1], false);
  const twoS = typeof s === "number" ? 2 * s : o.mul(s, 2);
  const sSquared = typeof s === "number" ? s * s : o.mul(s, s);
  const n2 = o.add(o.add(w2, o.mul(cross, twoS)), o.mul(quad, sSquared));
  return o.sqrt(n2);
}

/**
 * Linear DoRA without dropout: f ⊙ (W·x + s·B·A·x) + b, with `wx` = W·x the frozen product
 * without its bias and `bias` b (null: none).
 */
export function doraLinear(
  wx: Value,
  bias: Value | null,
  x: Value,
  A: Value,
  B: Value,
  s: Value | number,
  f: Value,
): Value {
  const y = o.mul(f, loraLinear(wx, x, A, B, s));
  return bias ? o.add(y, bias) : y;
}

/**
 * Linear DoRA with dropout (PEFT's training form): W·x + b + (f − 1) ⊙ W·drop(x) + f ⊙ s·B·h, with
 * `wDropped` = W·drop(x) (no bias) and `h` = drop(x)·Aᵀ on the same mask. Computed as
 * W·x + b − W·drop(x) + f ⊙ (W·drop(x) + s·B·h): the same sum, but m's gradient then keeps one
 * [tokens, out] tensor (the parenthesis) for the backward pass instead of two.
 */
export function doraLinearDropout(
  wx: Value,
  bias: Value | null,
  wDropped: Value,
  h: Value,
  B: Value,
  s: Value | number,
  f: Value,
): Value {
  const base = bias ? o.add(wx, bias) : wx;
  const update = nn.linear(typeof s === "number" && s === 1 ? h : o.mul(h, s), B); // s·B·h
  return o.add(o.sub(base, wDropped), o.mul(f, o.add(wDropped, update)));
}

/** Embedding DoRA: f ⊙ (E[ids] + s·Aᵀ[ids]·Bᵀ), with `rows` = E[ids]. */
export function doraEmbedding(
  rows: Value,
  ids: Value,
  A: Value,
  B: Value,
  s: Value | number,
  f: Value,
): Value {
  return o.mul(f, loraEmbedding(rows, ids, A, B, s));
}
