/** Backward rules of reductions, softmax and the softmax cross-entropy loss. */
import { defineGrad } from "../autodiff.js";
import type { Value } from "../ir.js";
import * as o from "../ops.js";
import { constInts, intAttr } from "./const-value.js";

/** g had `axes` reduced away (keepdims = 0): put them back as size-1 dims. */
function keep(g: Value, axes: number[], keepdims: boolean): Value {
  return keepdims ? g : o.unsqueeze(g, axes);
}

defineGrad("ReduceSum", ({ node, gy }) => {
  const x = node.inputs[0]!;
  const axes = constInts(node.inputs[1]!);
  return [o.expandAs(keep(gy[0]!, axes, intAttr(node, "keepdims", 1) === 1), x), null];
});

defineGrad("ReduceMean", ({ node, gy }) => {
  const x = node.inputs[0]!;
  const axes = constInts(node.inputs[1]!);
  const g = keep(gy[0]!, axes, intAttr(node, "keepdims", 1) === 1);
  const dims = axes.map((a) => x.shape[a]!);
  let count: Value | number;
  if (dims.every((d) => typeof d === "number")) count = (dims as number[]).reduce((p, d) => p * d, 1);
  else count = o.cast(o.reduceProd(o.gather(o.shapeOf(x), o.i64(x.graph, axes)), [0], true), x.dtype);
  return [o.expandAs(o.div(g, count), x), null];
});

// y = log Σ exp x: dx = g · exp(x - y)
defineGrad("ReduceLogSumExp", ({ node, gy }) => {
  const x = node.inputs[0]!;
  const axes = constInts(node.inputs[1]!);
  const kd = intAttr(node, "keepdims", 1) === 1;
  const y = keep(node.outputs[0]!, axes, kd);
  return [o.mul(keep(gy[0]!, axes, kd), o.exp(o.sub(x, y))), null];
});

// y = softmax(x): dx = y · (g - Σ g·y)
defineGrad("Softmax", ({ node, gy }) => {
  const y = node.outputs[0]!;
  const axis = intAttr(node, "axis", -1);
  const g = gy[0]!;
  return [o.mul(y, o.sub(g, o.reduceSum(o.mul(g, y), [axis], true)))];
});

// y = log softmax(x): dx = g - exp(y) · Σ g
defineGrad("LogSoftmax", ({ node, gy }) => {
  const y = node.outputs[0]!;
  const axis = intAttr(node, "axis", -1);
  const g = gy[0]!;
  return [o.sub(g, o.mul(o.exp(y), o.reduceSum(g, [axis], true)))];
});

/**
 * loss = -Σ_i m_i · log softmax(s_i)[label_i]  (m_i = 0 for ignored labels).
 * ds_i = (softmax(s_i) - onehot(label_i)) · m_i · g (÷ count for "mean"). The scores (logits) are the
 * only [tokens, vocab] tensor the forward pass leaves alive for this; the softmax is recomputed here
 * and the one-hot is a scatter-add into it, never a separate [tokens, vocab] tensor.
 */
defineGrad("SoftmaxCrossEntropyLoss", ({ node, gy }) => {
  const [scores, labels] = node.inputs as Value[];
  const ignore = intAttr(node, "ignore_index", -100);
  const reduction = (node.attrs["reduction"]?.v as string | undefined) ?? "mean";
  const kept = o.not(o.equal(labels!, o.scalar(labels!.graph, ignore, "int64")));
  const mask = o.unsqueeze(o.cast(kept, scores!.dtype), [1]); // [N, 1]
  const safeLabels = o.unsqueeze(o.where(kept, labels!, o.scalar(labels!.graph, 0, "int64")), [1]);
  const p = o.softmax(scores!, 1);
  const dScores = o.scatterElements(p, safeLabels, o.neg(mask), 1, "add");
  let factor: Value;
  if (reduction === "none") factor = o.mul(mask, o.unsqueeze(gy[0]!, [1]));
  else if (reduction === "sum") factor = o.mul(mask, gy[0]!);
  else factor = o.mul(mask, o.div(gy[0]!, o.reduceSum(mask, [0, 1], false)));
  return [o.mul(dScores, factor), null];
});
