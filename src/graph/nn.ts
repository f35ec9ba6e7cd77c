/**
 * Neural-network building blocks made of graph ops, shared by the model families. Their gradients
 * come from the ops' rules; each block has its own finite-difference test.
 */
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

/**
 * crossEntropy(hidden·Wᵀ, labels) for an output head W [vocab, dim], with a hand-written backward:
 *
 *   d hidden = (softmax(logits)·f)·W − f·W[label]        f = g·mask / count, per token
 *
 * The one-hot part becomes a gather of W's rows, so no [tokens, vocab] one-hot or scatter is built,
 * and softmax(logits), computed in the forward pass, is the only [tokens, vocab] tensor kept for the
 * backward pass (the logits are freed at once). dW (full training) is formed only when W is trained.
 */
export function lmHeadCrossEntropy(hidden: Value, weight: Value, labels: Value, ignoreIndex = -100): Value {
  const g = hidden.graph;
  const dim = hidden.dim(-1);
  let h2: Value;
  let probs: Value;
  let mask: Value;
  let safeLabels: Value;
  let safeCount: Value;
  return g.withCustomGradient(
    [hidden, weight],
    () => {
      h2 = o.reshape(hidden, [-1, dim]);
      const flatLabels = o.reshape(labels, [-1]);
      const logits = o.product(h2, weight, false, true); // [N, V], freed once the forward is done
      // The backward pass needs softmax(logits), so it is kept instead of the logits.
      probs = o.softmax(logits, 1);
      const lse = o.reduceLogSumExp(logits, [1], true); // [N, 1]
      const kept = o.not(o.equal(flatLabels, o.scalar(g, ignoreIndex, "int64")));
      safeLabels = o.where(kept, flatLabels, o.scalar(g, 0, "int64"));
      const target = o.gatherElements(logits, o.unsqueeze(safeLabels, [1]), 1); // [N, 1]
      mask = o.unsqueeze(o.cast(kept, hidden.dtype), [1]); // [N, 1]
      const count = o.reduceSum(mask, [0, 1], false);
      safeCount = o.add(count, o.cast(o.less(count, 1), hidden.dtype));
      return o.div(o.reduceSum(o.mul(o.sub(lse, target), mask), [0, 1], false), safeCount);
    },
    (gy) => {
      const f = o.div(o.mul(mask, gy), safeCount); // [N, 1]
      const soft = o.mul(probs, f); // [N, V]
      const dh = o.sub(o.product(soft, weight, false, false), o.mul(f, o.gather(weight, safeLabels, 0)));
      // dW = dlogitsᵀ·h with dlogits = soft - onehot·f; pruned unless W is trained.
      const dlogits = o.scatterElements(soft, o.unsqueeze(safeLabels, [1]), o.neg(f), 1, "add");
      const dw = o.product(dlogits, h2, true, false);
      return [o.reshape(dh, hidden.shape), dw];
    },
  );
}
