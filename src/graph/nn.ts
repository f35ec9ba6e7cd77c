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
