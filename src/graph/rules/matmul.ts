/**
 * Backward rules of matrix products. With y = op(a)·op(b) and incoming gradient g:
 *   da = g·op(b)ᵀ (transposed back if a was), db = op(a)ᵀ·g (likewise).
 * The transposes are FusedMatMul flags, never a materialised Transpose of a frozen weight, and a
 * frozen weight (needs = false) gets no gradient work at all.
 */
import { defineGrad } from "../autodiff.js";
import type { Value } from "../ir.js";
import * as o from "../ops.js";
import { product as mm } from "../ops.js";
import { intAttr } from "./const-value.js";
import { sumToShape } from "./reduce-to.js";

/** Flatten leading (batch) dims into the row dim: [..., M, K] -> [M', K]. */
function rows(x: Value): Value {
  return x.rank === 2 ? x : o.reshape(x, [-1, x.dim(-1)]);
}

/** Gradients of y = alpha·op(a)·op(b) given dy = g. */
function productGrads(
  a: Value,
  b: Value,
  g: Value,
  transA: boolean,
  transB: boolean,
  alpha: number,
  needs: boolean[],
): [Value | null, Value | null] {
  let da: Value | null = null;
  let db: Value | null = null;
  if (needs[0]) {
    da = transA ? mm(b, g, transB, true, alpha) : mm(g, b, false, !transB, alpha);
    da = sumToShape(da, a.shape);
  }
  if (needs[1]) {
    if (b.rank === 2 && a.rank > 2 && !transA) {
      // A 2-D weight used by a batched input: contract over batch×rows at once, no [batch, K, N] temp.
      db = transB ? mm(rows(g), rows(a), true, false, alpha) : mm(rows(a), rows(g), true, false, alpha);
    } else {
      db = transB ? mm(g, a, true, transA, alpha) : mm(a, g, !transA, false, alpha);
      db = sumToShape(db, b.shape);
    }
  }
  return [da, db];
}

defineGrad("MatMul", ({ node, gy, needs }) => {
  const [a, b] = node.inputs as Value[];
  return productGrads(a!, b!, gy[0]!, false, false, 1, needs);
});

defineGrad(
  "FusedMatMul",
  ({ node, gy, needs }) => {
    const [a, b] = node.inputs as Value[];
    const tA = intAttr(node, "transA", 0) === 1;
    const tB = intAttr(node, "transB", 0) === 1;
    return productGrads(a!, b!, gy[0]!, tA, tB, intAttr(node, "alpha", 1), needs);
  },
  o.MS_DOMAIN,
);

defineGrad("Gemm", ({ node, gy, needs }) => {
  const [a, b, c] = node.inputs as Value[];
  const g = gy[0]!;
  const tA = intAttr(node, "transA", 0) === 1;
  const tB = intAttr(node, "transB", 0) === 1;
  const [da, db] = productGrads(a!, b!, g, tA, tB, intAttr(node, "alpha", 1), needs);
  const beta = intAttr(node, "beta", 1);
  const dc = c && needs[2] ? sumToShape(beta === 1 ? g : o.mul(g, beta), c.shape) : null;
  return [da, db, dc];
});
