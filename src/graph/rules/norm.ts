/**
 * Backward rules of the normalisations, from the statistics their forward kernels already output.
 * With x̂ = normalised x, r = 1/σ, and ĝ = g·γ:
 *   LayerNorm: dx = r · (ĝ - mean(ĝ) - x̂ · mean(ĝ·x̂)),  dγ = Σ g·x̂,  dβ = Σ g
 *   RMSNorm:   dx = r · (ĝ - x̂ · mean(ĝ·x̂)),            dγ = Σ g·x̂
 */
import { defineGrad } from "../autodiff.js";
import type { Value } from "../ir.js";
import * as o from "../ops.js";

/** Σ over every axis but the last: the gradient of a [hidden] parameter. */
function sumRows(v: Value): Value {
  return o.reduceSum(v, [...Array(v.rank - 1).keys()], false);
}

defineGrad("LayerNormalization", ({ node, gy, needs }) => {
  const [x, scale] = node.inputs as Value[];
  const mean = o.cast(node.outputs[1]!, x!.dtype);
  const invStd = o.cast(node.outputs[2]!, x!.dtype);
  const g = gy[0]!;
  const xhat = o.mul(o.sub(x!, mean), invStd);
  const gh = o.mul(g, scale!);
  const dx = needs[0]
    ? o.mul(
        invStd,
        o.sub(
          o.sub(gh, o.reduceMean(gh, [-1], true)),
          o.mul(xhat, o.reduceMean(o.mul(gh, xhat), [-1], true)),
        ),
      )
    : null;
  return [dx, needs[1] ? sumRows(o.mul(g, xhat)) : null, needs[2] ? sumRows(g) : null];
});

defineGrad("SimplifiedLayerNormalization", ({ node, gy, needs }) => {
  const [x, scale] = node.inputs as Value[];
  const invStd = o.cast(node.outputs[1]!, x!.dtype);
  const g = gy[0]!;
  const xhat = o.mul(x!, invStd);
  const gh = o.mul(g, scale!);
  const dx = needs[0]
    ? o.mul(invStd, o.sub(gh, o.mul(xhat, o.reduceMean(o.mul(gh, xhat), [-1], true))))
    : null;
  return [dx, needs[1] ? sumRows(o.mul(g, xhat)) : null];
});
