/** Backward rules of elementwise ops: d/dx of f(x) times the incoming gradient, un-broadcast. */
import { defineGrad } from "../autodiff.js";
import type { Value } from "../ir.js";
import * as o from "../ops.js";
import { sumToShape } from "./reduce-to.js";

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

function input(ctx: { node: { inputs: (Value | null)[] } }, k: number): Value {
  return ctx.node.inputs[k]!;
}

defineGrad("Add", ({ node, gy, needs }) => {
  const g = gy[0]!;
  return node.inputs.map((x, k) => (needs[k] ? sumToShape(g, x!.shape) : null));
});

defineGrad("Sub", ({ node, gy, needs }) => {
  const g = gy[0]!;
  const [a, b] = node.inputs as Value[];
  return [needs[0] ? sumToShape(g, a!.shape) : null, needs[1] ? sumToShape(o.neg(g), b!.shape) : null];
});

defineGrad("Mul", ({ node, gy, needs }) => {
  const g = gy[0]!;
  const [a, b] = node.inputs as Value[];
  return [
    needs[0] ? sumToShape(o.mul(g, b!), a!.shape) : null,
    needs[1] ? sumToShape(o.mul(g, a!), b!.shape) : null,
  ];
});

// y = a / b: da = g / b, db = -g · y / b
defineGrad("Div", ({ node, gy, needs }) => {
  const g = gy[0]!;
  const [a, b] = node.inputs as Value[];
  const y = node.outputs[0]!;
  return [
    needs[0] ? sumToShape(o.div(g, b!), a!.shape) : null,
    needs[1] ? sumToShape(o.neg(o.div(o.mul(g, y), b!)), b!.shape) : null,
  ];
});

// y = a^b: da = g · b · a^(b-1), db = g · y · ln a
defineGrad("Pow", ({ node, gy, needs }) => {
  const g = gy[0]!;
  const [a, b] = node.inputs as Value[];
  const y = node.outputs[0]!;
  return [
    needs[0] ? sumToShape(o.mul(g, o.mul(b!, o.pow(a!, o.sub(b!, 1)))), a!.shape) : null,
    needs[1] ? sumToShape(o.mul(g, o.mul(y, o.log(a!))), b!.shape) : null,
  ];
});

defineGrad("Neg", ({ gy }) => [o.neg(gy[0]!)]);
defineGrad("Identity", ({ gy }) => [gy[0]!]);
// y = sqrt(x): dx = g / (2y)
defineGrad("Sqrt", ({ node, gy }) => [o.div(gy[0]!, o.mul(node.outputs[0]!, 2))]);
// y = 1/x: dx = -g · y²
defineGrad("Reciprocal", ({ node, gy }) => {
  const y = node.outputs[0]!;
  return [o.neg(o.mul(gy[0]!, o.mul(y, y)))];
});
defineGrad("Exp", ({ node, gy }) => [o.mul(gy[0]!, node.outputs[0]!)]);
defineGrad("Log", (ctx) => [o.div(ctx.gy[0]!, input(ctx, 0))]);
// y = tanh x: dx = g · (1 - y²)
defineGrad("Tanh", ({ node, gy }) => {
  const y = node.outputs[0]!;
  return [o.mul(gy[0]!, o.sub(1, o.mul(y, y)))];
});
// y = σ(x): dx = g · y · (1 - y)
defineGrad("Sigmoid", ({ node, gy }) => {
  const y = node.outputs[0]!;
  return [o.mul(gy[0]!, o.mul(y, o.sub(1, y)))];
});
// erf'(x) = 2/√π · exp(-x²)
defineGrad("Erf", (ctx) => {
  const x = input(ctx, 0);
  return [o.mul(ctx.gy[0]!, o.mul(o.exp(o.neg(o.mul(x, x))), 2 / Math.sqrt(Math.PI)))];
});
defineGrad("Abs", (ctx) => {
  const x = input(ctx, 0);
  return [o.where(o.less(x, 0), o.neg(ctx.gy[0]!), ctx.gy[0]!)];
});

// GELU (erf): y = x·Φ(x); dy/dx = Φ(x) + x·φ(x), φ(x) = exp(-x²/2)/√(2π).
defineGrad(
  "Gelu",
  (ctx) => {
    const x = input(ctx, 0);
    const cdf = o.mul(o.add(o.erf(o.mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = o.mul(o.exp(o.mul(o.mul(x, x), -0.5)), INV_SQRT_2PI);
    return [o.mul(ctx.gy[0]!, o.add(cdf, o.mul(x, pdf)))];
  },
  o.MS_DOMAIN,
);

// GELU (tanh): y = ½x(1 + t), t = tanh(u), u = √(2/π)(x + 0.044715x³);
// dy/dx = ½(1 + t) + ½x(1 - t²)·√(2/π)(1 + 3·0.044715x²).
defineGrad(
  "FastGelu",
  (ctx) => {
    const x = input(ctx, 0);
    const x2 = o.mul(x, x);
    const t = o.tanh(o.mul(o.mul(x, o.add(o.mul(x2, 0.044715), 1)), SQRT_2_OVER_PI));
    const du = o.mul(o.add(o.mul(x2, 3 * 0.044715), 1), SQRT_2_OVER_PI);
    const left = o.mul(o.add(t, 1), 0.5);
    const right = o.mul(o.mul(o.mul(x, 0.5), o.sub(1, o.mul(t, t))), du);
    return [o.mul(ctx.gy[0]!, o.add(left, right))];
  },
  o.MS_DOMAIN,
);

// Cast: the gradient goes back to the input's dtype; there is none for non-float inputs.
defineGrad("Cast", (ctx) => {
  const x = input(ctx, 0);
  return [o.cast(ctx.gy[0]!, x.dtype)];
});

// Where(c, a, b): the gradient flows to whichever branch was chosen.
defineGrad("Where", ({ node, gy, needs }) => {
  const g = gy[0]!;
  const [c, a, b] = node.inputs as Value[];
  const zero = o.scalar(g.graph, 0, g.dtype);
  return [
    null,
    needs[1] ? sumToShape(o.where(c!, g, zero), a!.shape) : null,
    needs[2] ? sumToShape(o.where(c!, zero, g), b!.shape) : null,
  ];
});
