/**
 * Neural-network building blocks made of graph ops, shared by the model families. Their gradients
 * come from the ops' rules, or for SwiGLU and the head losses from a region's hand-written backward
 * (Graph.region); each block has its own finite-difference test.
 */
import { GraphBuildError } from "../util/errors.js";
import type { DType } from "./dtype.js";
import { type Int8Forward, int8Product } from "./int8.js";
import type { Value } from "./ir.js";
import * as o from "./ops.js";

/** y = x·Wᵀ (+ b) with W stored [out, in] as in PyTorch / Hugging Face; no transposed copy of W. */
export function linear(x: Value, weight: Value, bias?: Value | null): Value {
  const y = o.product(x, weight, false, true);
  return bias ? o.add(y, bias) : y;
}

/** Rows of `table` [vocab, dim] picked by `ids`. */
export function embedding(table: Value, ids: Value): Value {
  return o.gather(table, ids, 0);
}

/**
 * Rotary position embedding in Hugging Face's rotate-half layout: x·cos + rotate_half(x)·sin, where
 * rotate_half([x1, x2]) = [-x2, x1] over the last dim's two halves. cos/sin broadcast against x
 * (e.g. [seq, head_dim] against [batch, heads, seq, head_dim]).
 */
export function rope(x: Value, cos: Value, sin: Value): Value {
  const d = x.dim(-1) as number;
  const [x1, x2] = o.split(x, -1, [d / 2, d / 2]) as [Value, Value];
  const rotated = o.concat([o.neg(x2), x1], -1);
  return o.add(o.mul(x, cos), o.mul(rotated, sin));
}

/**
 * SwiGLU, silu(gate)·up (Llama's MLP), with a backward pass that recomputes σ(gate) rather than keeping
 * σ(gate) and silu(gate) alive (two [tokens, intermediate] tensors per layer):
 *
 *   d up = d h · gate·σ(gate)        d gate = d h · up · σ(gate)·(1 + gate·(1 − σ(gate)))
 */
export function swiGlu(gate: Value, up: Value): Value {
  const [h] = gate.graph.region({
    name: "swiGlu",
    inputs: [gate, up],
    forward: () => ({ outputs: [o.mul(o.silu(gate), up)], saved: [gate, up] }),
    backward: ([gate, up], [dh], needs) => {
      const sig = o.sigmoid(gate);
      const dUp = needs[1] ? o.mul(dh, o.mul(gate, sig)) : null;
      const dGate = needs[0] ? o.mul(o.mul(dh, up), o.mul(sig, o.add(o.mul(gate, o.sub(1, sig)), 1))) : null;
      return [dGate, dUp];
    },
  });
  return h;
}

/**
 * Token cross-entropy: mean over the positions whose label is not `ignoreIndex` (-100), of
 * -log softmax(logits)[label]. logits [..., vocab], labels [...] int64. A batch with no scored
 * token gives 0, not NaN.
 */
export function crossEntropy(logits: Value, labels: Value, ignoreIndex = -100): Value {
  const flat = o.reshape(logits, [-1, logits.dim(-1)]);
  const flatLabels = o.reshape(labels, [-1]);
  const total = o.softmaxCrossEntropy(flat, flatLabels, { reduction: "sum", ignoreIndex });
  const kept = o.cast(o.not(o.equal(flatLabels, o.scalar(labels.graph, ignoreIndex, "int64"))), logits.dtype);
  const count = o.reduceSum(kept, [0], false);
  // max(count, 1): count + [count < 1]
  const safeCount = o.add(count, o.cast(o.less(count, 1), logits.dtype));
  return o.div(total, safeCount);
}

/** Options of `frozenHeadCrossEntropy`. */
export interface FrozenHeadLossOptions {
  ignoreIndex?: number;
  /** The tokens are processed in this many row chunks, bounding the [rows, vocab] temporaries. */
  chunks?: number;
  /** The head quantized (--base-int8): the logits come from int8 products; d hidden keeps float32 W. */
  int8?: Int8Forward;
}

/** Options of `trainedHeadCrossEntropy`. */
export interface TrainedHeadLossOptions {
  ignoreIndex?: number;
}

/** Row chunks of the frozen-head loss: [tokens/8, vocab] temporaries (measured in bench/RESULTS.md). */
export const HEAD_LOSS_CHUNKS = 8;

/**
 * The scored-token mask and count shared by both head losses, from labels [...] int64: `kept` (bool
 * [N]), `safeLabels` (ignored positions read label 0), `mask` [N, 1] and max(count, 1).
 */
function scoredTokens(labels: Value, dtype: DType, ignoreIndex: number) {
  const g = labels.graph;
  const flatLabels = o.reshape(labels, [-1]);
  const kept = o.not(o.equal(flatLabels, o.scalar(g, ignoreIndex, "int64")));
  const safeLabels = o.where(kept, flatLabels, o.scalar(g, 0, "int64"));
  const mask = o.unsqueeze(o.cast(kept, dtype), [1]); // [N, 1]
  const count = o.reduceSum(mask, [0, 1], false);
  const safeCount = o.add(count, o.cast(o.less(count, 1), dtype)); // max(count, 1)
  return { kept, safeLabels, mask, safeCount };
}

/*
 * crossEntropy(hidden·Wᵀ, labels) for an output head W [vocab, dim], with a hand-written backward.
 * Per token, with f = g·mask / count (g the loss's incoming gradient):
 *
 *   loss  = Σ mask·(logsumexp(logits) − logits[label]) / count
 *   d hidden = f·(softmax(logits)·W − W[label])
 *   d W      = (softmax(logits) − onehot(label))ᵀ·(f·hidden)
 *
 * The one-hot part of d hidden is a gather of W's rows, and the per-token factor f scales [tokens, dim]
 * rather than [tokens, vocab].
 */

/**
 * The LM head's cross-entropy (see above) for a frozen head W [vocab, dim]: mean over the tokens whose
 * label is not `ignoreIndex` of -log softmax(hidden·Wᵀ)[label]. With W frozen, g is the only unknown
 * of d hidden before the backward pass, and it is a scalar: d hidden / g is computed in the forward
 * pass, chunk by chunk over the tokens, and each chunk's logits and softmax are freed before the
 * next. Only the scored tokens go through the head (unscored ones have f = 0): prompt tokens under a
 * completion-only loss and padding cost nothing. W gets no gradient (a gradient asked of it is a
 * GraphBuildError): use `trainedHeadCrossEntropy` to train it.
 */
export function frozenHeadCrossEntropy(
  hidden: Value,
  weight: Value,
  labels: Value,
  opts: FrozenHeadLossOptions = {},
): Value {
  const g = hidden.graph;
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const dim = hidden.dim(-1);
  const [loss] = g.region({
    name: "lmHeadLoss(frozen W)",
    inputs: [hidden, weight],
    forward: () => {
      const rows = o.reshape(hidden, [-1, dim]);
      const { kept, safeLabels, safeCount } = scoredTokens(labels, hidden.dtype, ignoreIndex);
      // Only the scored rows go through the head: prompts, padding and each row's last position
      // (labels -100) cost nothing. Their indices [M, 1]; M is known at run time only.
      const scored = o.transpose(o.nonZero(kept, "scoredTokens"), [1, 0]);
      const k = opts.chunks ?? HEAD_LOSS_CHUNKS;
      const chunkRows = rowChunks(o.gatherND(rows, scored), k);
      const chunkLabels = rowChunks(o.gatherND(o.unsqueeze(safeLabels, [1]), scored), k);
      const perScored = o.div(o.scalar(g, 1, hidden.dtype), safeCount); // f / g on every scored row
      const losses: Value[] = [];
      const grads: Value[] = [];
      chunkRows.forEach((h, i) => {
        const label = chunkLabels[i]!;
        // log softmax once: the loss picks from it, and exp of it is the softmax (two passes over the
        // [rows, V] block instead of four for softmax and logsumexp).
        const logits = opts.int8
          ? int8Product(h, opts.int8.qT, opts.int8.scale)
          : o.product(h, weight, false, true);
        const logProbs = o.logSoftmax(logits, 1); // [rows_i, V]
        losses.push(o.neg(o.reduceSum(o.gatherElements(logProbs, label, 1), [0, 1], false)));
        const soft = o.exp(logProbs);
        const rowsOfW = o.gather(weight, o.squeeze(label, [1]), 0); // W[label], [rows_i, dim]
        grads.push(o.sub(o.product(soft, weight, false, false), rowsOfW));
      });
      const dScored = o.concat(grads, 0, "scoredTokens");
      const dRowsPerG = o.mul(o.scatterND(o.zerosLike(rows), scored, dScored), perScored);
      const loss = o.mul(
        losses.reduce((a, b) => o.add(a, b)),
        perScored,
      );
      return { outputs: [loss], saved: [hidden, dRowsPerG] };
    },
    backward: ([hidden, dRowsPerG], [gy], needs) => {
      if (needs[1])
        throw new GraphBuildError(
          "frozenHeadCrossEntropy: the head weight is frozen here and gets no gradient (use trainedHeadCrossEntropy)",
        );
      return [o.reshape(o.mul(dRowsPerG, gy), hidden.shape), null];
    },
  });
  return loss;
}

/**
 * The LM head's cross-entropy (see above) for a trained head W [vocab, dim] (full fine-tuning), with
 * gradients for hidden and W. softmax(logits) is the one [tokens, vocab] tensor kept for the backward
 * pass.
 */
export function trainedHeadCrossEntropy(
  hidden: Value,
  weight: Value,
  labels: Value,
  opts: TrainedHeadLossOptions = {},
): Value {
  const g = hidden.graph;
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const dim = hidden.dim(-1);
  const [loss] = g.region({
    name: "lmHeadLoss(trained W)",
    inputs: [hidden, weight],
    forward: () => {
      const rows = o.reshape(hidden, [-1, dim]);
      const { safeLabels, mask, safeCount } = scoredTokens(labels, hidden.dtype, ignoreIndex);
      const perToken = o.div(mask, safeCount); // f / g = mask / count, [N, 1]
      const logits = o.product(rows, weight, false, true); // [N, V], freed once the forward is done
      const probs = o.softmax(logits, 1);
      const loss = o.reduceSum(tokenLosses(logits, safeLabels, perToken), [0, 1], false);
      return { outputs: [loss], saved: [hidden, weight, rows, probs, perToken, safeLabels] };
    },
    backward: ([hidden, weight, rows, probs, perToken, safeLabels], [gy], needs) => {
      const f = o.mul(perToken, gy); // [N, 1]
      const dh = o.mul(o.sub(o.product(probs, weight, false, false), o.gather(weight, safeLabels, 0)), f);
      if (!needs[1]) return [o.reshape(dh, hidden.shape), null];
      // dW = (softmax − onehot)ᵀ·(f·h): the one-hot part scatters −f·h into W's label rows.
      const fh = o.mul(rows, f);
      const dw = o.sub(
        o.product(probs, fh, true, false),
        o.scatterND(o.zerosLike(weight), o.unsqueeze(safeLabels, [1]), fh, "add"),
      );
      return [o.reshape(dh, hidden.shape), dw];
    },
  });
  return loss;
}

/** mask/count-weighted token losses logsumexp(logits) − logits[label], [rows, 1]. */
function tokenLosses(logits: Value, labels: Value, weight: Value): Value {
  const lse = o.reduceLogSumExp(logits, [1], true);
  const target = o.gatherElements(logits, o.unsqueeze(labels, [1]), 1);
  return o.mul(o.sub(lse, target), weight);
}

/**
 * `k` row blocks of x [N, ...] for a run-time N: sizes ⌊N/k⌋, …, N − (k−1)·⌊N/k⌋ (blocks may be empty
 * when N < k). Block i's row count is the new symbolic dim `headChunk<i>`.
 */
function rowChunks(x: Value, k: number): Value[] {
  if (k <= 1) return [x];
  const g = x.graph;
  const n = o.slice(o.shapeOf(x), [0], [1], [0]);
  const base = o.div(n, o.i64(g, [k]));
  const last = o.sub(n, o.mul(base, o.i64(g, [k - 1])));
  const sizes = o.concat([...Array.from({ length: k - 1 }, () => base), last], 0);
  return o.splitBy(
    x,
    0,
    sizes,
    Array.from({ length: k }, (_, i) => `headChunk${i}`),
  );
}
