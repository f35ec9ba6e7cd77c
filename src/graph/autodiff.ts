/**
 * Reverse-mode automatic differentiation on the graph IR.
 *
 * `grad(loss, wrt)` appends backward nodes to the same graph, only for nodes that lie on a path from
 * some `wrt` value to `loss`, and sums gradients where a value fans out. Each op's backward rule is
 * written with ordinary ONNX ops (onnxruntime's inference build has no *Grad kernels).
 */
import { GraphBuildError } from "../util/errors.js";
import { isFloat } from "./dtype.js";
import type { Node, Value } from "./ir.js";
import { add, fill, zerosLike } from "./ops.js";
import { fmtShape, shapeEq } from "./shape.js";

export interface RuleContext {
  node: Node;
  /** Gradient of the loss w.r.t. each output of the node, or null where no gradient flows. */
  gy: (Value | null)[];
  /** Which inputs need a gradient: a rule returns null (and does no work) for the others. */
  needs: boolean[];
}

export type GradRule = (ctx: RuleContext) => (Value | null)[];

const rules = new Map<string, GradRule>();

function key(op: string, domain: string): string {
  return domain ? `${domain}::${op}` : op;
}

export function defineGrad(op: string, rule: GradRule, domain = ""): void {
  rules.set(key(op, domain), rule);
}

export function hasGradRule(op: string, domain = ""): boolean {
  return rules.has(key(op, domain));
}

/**
 * d loss / d wrt[i] for each i. `seed` is the gradient of `loss` itself (default: ones, which for a
 * scalar loss gives the ordinary gradient).
 */
export function grad(loss: Value, wrt: Value[], seed?: Value): Value[] {
  const g = loss.graph;
  // Forward pass: which values depend on some wrt value. Integer and bool values (shapes, indices,
  // masks) carry no gradient, even when computed from a differentiable value (e.g. Shape(x)).
  const active = new Set<Value>(wrt);
  for (const n of g.nodes) {
    if (n.inputs.some((x) => x && active.has(x)))
      for (const o of n.outputs) if (isFloat(o.dtype)) active.add(o);
  }
  if (!active.has(loss)) {
    // No path at all: every gradient is zero.
    return wrt.map((w) => zerosLike(w));
  }

  const contributions = new Map<Value, Value[]>();
  const push = (v: Value, gv: Value) => {
    if (!shapeEq(v.shape, gv.shape) && !isBroadcastOfScalar(v, gv)) {
      throw new GraphBuildError(
        `autodiff: gradient for ${v} has shape ${fmtShape(gv.shape)} (rule of ${v.producer?.op ?? "input"})`,
      );
    }
    const list = contributions.get(v);
    if (list) list.push(gv);
    else contributions.set(v, [gv]);
  };
  const total = (v: Value): Value | null => {
    const list = contributions.get(v);
    if (!list || list.length === 0) return null;
    const sum = list.reduce((a, b) => add(a, b));
    contributions.set(v, [sum]);
    return sum;
  };

  push(loss, seed ?? fill(g, loss.shape, 1, loss.dtype));
  const lossIndex = g.nodes.indexOf(loss.producer!);
  const inRegion = new Set<Node>();
  for (const c of g.customGradients.values()) for (const n of c.region) inRegion.add(n);
  for (let i = lossIndex; i >= 0; i--) {
    const node = g.nodes[i]!;
    if (!node.outputs.some((o) => active.has(o))) continue;
    const custom = g.customGradients.get(node);
    if (custom) {
      const gy = total(custom.output);
      if (!gy) continue;
      const needs = custom.inputs.map((x) => active.has(x));
      custom.backward(gy, needs).forEach((gx, k) => {
        const x = custom.inputs[k]!;
        if (gx && active.has(x)) push(x, gx);
      });
      continue;
    }
    if (inRegion.has(node)) continue;
    const gy = node.outputs.map((o) => total(o));
    if (gy.every((x) => x === null)) continue;
    const needs = node.inputs.map((x) => x !== null && active.has(x));
    const rule = rules.get(key(node.op, node.domain));
    if (!rule)
      throw new GraphBuildError(
        `autodiff: no gradient rule for op ${node.domain ? `${node.domain}.` : ""}${node.op}`,
      );
    const gx = rule({ node, gy, needs });
    node.inputs.forEach((x, k) => {
      const gk = gx[k];
      if (x && needs[k] && gk) push(x, gk);
    });
  }
  return wrt.map((w) => total(w) ?? zerosLike(w));
}

function isBroadcastOfScalar(v: Value, gv: Value): boolean {
  return v.rank === 0 && gv.rank === 0;
}
