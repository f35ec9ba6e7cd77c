/**
 * Reverse-mode automatic differentiation on the graph IR.
 *
 * `grad(loss, wrt)` appends backward nodes to the same graph, only for nodes that lie on a path from
 * some `wrt` value to `loss`, and sums gradients where a value fans out. Each op's backward rule is
 * written with ordinary ONNX ops (onnxruntime's inference build has no *Grad kernels).
 *
 * A region built with `Graph.region` is differentiated as a whole by its own backward pass, when the
 * walk reaches its last node; its other nodes are skipped. `grad` checks the region's contract there:
 * no gradient may reach a value inside the region (only its outputs carry one), every value carrying
 * a gradient into it must be one of its inputs, and its backward pass may use only the saved values,
 * the outputs' gradients and the graph's shared constants.
 */
import { GraphBuildError } from "../util/errors.js";
import { isFloat } from "./dtype.js";
import type { Node, Region, Value } from "./ir.js";
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

/** Every op with a registered backward rule, as "Op" or "domain::Op" (e.g. "com.microsoft::Gelu"). */
export function registeredGradOps(): string[] {
  return [...rules.keys()].sort();
}

/** The backward rule registered for an op, if any. */
export function gradRuleOf(op: string, domain = ""): GradRule | undefined {
  return rules.get(key(op, domain));
}

/** Options of `grad`. */
export interface GradOptions {
  /**
   * The index in graph.nodes of the first node the gradient may pass through: the walk stops there.
   * A layer checkpoint (checkpoint.ts) differentiates its recomputed copy alone with it, not the
   * forward pass before it.
   */
  from?: number;
}

/**
 * d loss / d wrt[i] for each i. `seed` is the gradient of `loss` itself (default: ones, which for a
 * scalar loss gives the ordinary gradient).
 */
export function grad(loss: Value, wrt: Value[], seed?: Value, opts: GradOptions = {}): Value[] {
  const g = loss.graph;
  const from = opts.from ?? 0;
  // Forward pass: which values depend on some wrt value. Integer and bool values (shapes, indices,
  // masks) carry no gradient, even when computed from a differentiable value (e.g. Shape(x)).
  const active = new Set<Value>(wrt);
  for (let i = from; i < g.nodes.length; i++) {
    const n = g.nodes[i]!;
    if (g.gradientStops.has(n)) continue; // ops.stopGradient: its output is a constant
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

  // Region bookkeeping: which region each node belongs to, and the values that stay inside one. A
  // layer checkpoint (checkpoint.ts) encloses regions; the outermost one, the largest, is the one
  // differentiated, so its nodes are its own.
  const regionOf = new Map<Node, Region>();
  const internal = new Map<Value, Region>();
  for (const r of g.regions.values()) {
    for (const n of r.nodes) {
      const held = regionOf.get(n);
      if (held && held.nodes.size >= r.nodes.size) continue;
      regionOf.set(n, r);
      for (const v of n.outputs) if (!r.outputs.includes(v)) internal.set(v, r);
    }
  }
  const pushChecked = (v: Value, gv: Value) => {
    const r = internal.get(v);
    if (r) {
      throw new GraphBuildError(
        `autodiff: a gradient reaches ${v}, a value inside region "${r.name}"; only the region's outputs carry gradients`,
      );
    }
    push(v, gv);
  };

  pushChecked(loss, seed ?? fill(g, loss.shape, 1, loss.dtype));
  const lossIndex = g.nodes.indexOf(loss.producer!);
  for (let i = lossIndex; i >= from; i--) {
    const node = g.nodes[i]!;
    const region = regionOf.get(node);
    if (region) {
      if (node === region.last) differentiateRegion(region);
      continue;
    }
    if (!node.outputs.some((o) => active.has(o))) continue;
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
      if (x && needs[k] && gk) pushChecked(x, gk);
    });
  }

  function differentiateRegion(r: Region): void {
    // A value that carries a gradient into the region must be one of its inputs: no other path
    // back exists.
    for (const n of r.nodes) {
      for (const x of n.inputs) {
        if (x && active.has(x) && !r.inputs.includes(x) && !(x.producer && r.nodes.has(x.producer))) {
          throw new GraphBuildError(
            `autodiff: region "${r.name}" uses ${x}, which carries a gradient, but it is not one of the region's inputs`,
          );
        }
      }
    }
    if (!r.outputs.some((y) => active.has(y))) return;
    const gys = r.outputs.map((y) => total(y));
    if (gys.every((x) => x === null)) return;
    const gy = gys.map((x, k) => x ?? zerosLike(r.outputs[k]!));
    const needs = r.inputs.map((x) => active.has(x));
    const start = g.nodes.length;
    const gx = r.backward([...r.saved], gy, needs);
    if (gx.length !== r.inputs.length) {
      throw new GraphBuildError(
        `autodiff: region "${r.name}" returned ${gx.length} gradients for ${r.inputs.length} inputs`,
      );
    }
    // The backward pass sees the forward pass only through the saved values (and the gradients
    // flowing in); the graph's shared constants are not the region's, and neither is the Shape of
    // the graph input that a symbolic dim is read from.
    const allowed = new Set<Value>([...r.saved, ...gy, ...g.constCache.values()]);
    const dimSources = new Set([...g.symbolSources.values()].map((s) => s.value));
    for (const n of g.nodes.slice(start)) for (const v of n.outputs) allowed.add(v);
    for (const n of g.nodes.slice(start)) {
      for (const x of n.inputs) {
        if (x && !allowed.has(x) && !(n.op === "Shape" && dimSources.has(x))) {
          throw new GraphBuildError(
            `autodiff: the backward pass of region "${r.name}" uses ${x}, which is not among its saved values`,
          );
        }
      }
    }
    gx.forEach((gk, k) => {
      const x = r.inputs[k]!;
      if (gk && needs[k]) pushChecked(x, gk);
    });
  }

  return wrt.map((w) => total(w) ?? zerosLike(w));
}

function isBroadcastOfScalar(v: Value, gv: Value): boolean {
  return v.rank === 0 && gv.rank === 0;
}
