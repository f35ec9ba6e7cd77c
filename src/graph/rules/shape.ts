/** Backward rules of data-movement ops: the gradient is moved back the way the data came. */
import { GraphBuildError } from "../../util/errors.js";
import { defineGrad } from "../autodiff.js";
import type { Value } from "../ir.js";
import * as o from "../ops.js";
import { constInts, intAttr } from "./const-value.js";
import { sumToShape } from "./reduce-to.js";

/**
 * Reshape back to the input's shape, from its static (symbolic) dims where possible, so the backward
 * pass does not keep the forward tensor alive just to read its shape.
 */
function reshapeBack(g: Value, x: Value): Value {
  try {
    return o.reshape(g, x.shape);
  } catch (e) {
    if (!(e instanceof GraphBuildError)) throw e;
    return o.reshapeAs(g, x);
  }
}

defineGrad("Reshape", ({ node, gy }) => [reshapeBack(gy[0]!, node.inputs[0]!), null]);

defineGrad("Transpose", ({ node, gy }) => {
  const perm = node.attrs["perm"]!.v as number[];
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return [o.transpose(gy[0]!, inverse)];
});

defineGrad("Unsqueeze", ({ node, gy }) => [o.squeeze(gy[0]!, constInts(node.inputs[1]!)), null]);
defineGrad("Squeeze", ({ node, gy }) => [reshapeBack(gy[0]!, node.inputs[0]!), null]);
defineGrad("Expand", ({ node, gy }) => [sumToShape(gy[0]!, node.inputs[0]!.shape), null]);

/** The run-time size of x along `axis`, as int64 [1]. */
function runtimeDim(x: Value, axis: number): Value {
  const d = x.shape[axis]!;
  return typeof d === "number" ? o.i64(x.graph, [d]) : o.slice(o.shapeOf(x), [axis], [axis + 1], [0]);
}

/** Slice: the gradient is g padded with zeros back to the input's extent. */
defineGrad("Slice", ({ node, gy }) => {
  const x = node.inputs[0]!;
  const g = gy[0]!;
  const starts = constInts(node.inputs[1]!);
  const axes = constInts(node.inputs[3]!);
  const steps = node.inputs[4] ? constInts(node.inputs[4]) : axes.map(() => 1);
  if (steps.some((s) => s !== 1)) throw new GraphBuildError("autodiff: Slice with steps other than 1");
  const gr = x.graph;
  const begin: Value[] = [];
  const end: Value[] = [];
  for (let a = 0; a < x.rank; a++) {
    const k = axes.indexOf(a);
    if (k < 0) {
      begin.push(o.i64(gr, [0]));
      end.push(o.i64(gr, [0]));
      continue;
    }
    const d = x.shape[a]!;
    const s = starts[k]!;
    if (typeof d === "number") {
      const st = Math.min(Math.max(s < 0 ? s + d : s, 0), d);
      begin.push(o.i64(gr, [st]));
      end.push(o.i64(gr, [d - st - (g.shape[a] as number)]));
    } else {
      // Symbolic extent: begin = start (or dim + start), end = dim - begin - len, at run time.
      const dim = runtimeDim(x, a);
      const len = runtimeDim(g, a);
      const b = s < 0 ? o.add(dim, o.i64(gr, [s])) : o.i64(gr, [s]);
      begin.push(b);
      end.push(o.sub(o.sub(dim, b), len));
    }
  }
  const pads = o.concat([...begin, ...end], 0);
  return [o.pad(g, pads, x.shape), null, null, null, null];
});

/** Concat: each input gets its own stretch of g back. */
defineGrad("Concat", ({ node, gy, needs }) => {
  const g = gy[0]!;
  const axis = intAttr(node, "axis", 0);
  const xs = node.inputs as Value[];
  const sizes = xs.map((x) => x.shape[axis]!);
  if (sizes.every((d) => typeof d === "number")) {
    const parts = o.split(g, axis, sizes as number[]);
    return parts.map((p, k) => (needs[k] ? p : null));
  }
  // Symbolic sizes (e.g. a KV cache of run-time length): Split by sizes read at run time.
  const splitSizes = o.concat(
    xs.map((x) => runtimeDim(x, axis)),
    0,
  );
  const outs = xs.map((x) => ({ dtype: g.dtype, shape: x.shape }));
  const parts = g.graph.addNode("Split", [g, splitSizes], { axis: { kind: "int", v: axis } }, outs).outputs;
  return parts.map((p, k) => (needs[k] ? p : null));
});

/** Split: the gradient is the concatenation of the parts' gradients, zeros where none flowed. */
defineGrad("Split", ({ node, gy }) => {
  const axis = intAttr(node, "axis", 0);
  const parts = node.outputs.map((out, k) => gy[k] ?? o.zerosLike(out));
  // The input's own extent: parts of symbolic sizes (splitBy) add up to it, not to a new sum.
  const x = node.inputs[0]!;
  return [o.concat(parts, axis, x.shape[axis < 0 ? axis + x.rank : axis]), null];
});
