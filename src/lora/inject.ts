/**
 * LoRA in the model graph. The LoRA context wraps the base ModuleContext; for each selected module
 * it adds the low-rank path of layer.ts to the frozen layer:
 *
 *     linear:     y = x·Wᵀ + b + s · (drop(x)·Aᵀ)·Bᵀ          A [r, in], B [out, r]
 *     embedding:  y = E[ids] + s · Aᵀ[ids]·Bᵀ                 A [r, vocab], B [dim, r]
 *
 * A and B are graph INPUTS named by their PEFT keys, so one session serves any adapter (or none:
 * B = 0) and training feeds the current parameters each step. The rank is a symbolic dim per
 * module, so adapters of different ranks share a session. The graph always multiplies by s; only
 * where s comes from differs (LoraGraphOptions.scaling).
 *
 * With DoRA (LoraGraphOptions.dora) each selected module's output is scaled per output by
 * f = m / ‖W + s·B·A‖ (dora.ts): in training the magnitude m is one more trained input, under its
 * PEFT key, and the norm is computed from the current A and B; in serving f itself is fed.
 */
import type { Value } from "../graph/ir.js";
import * as o from "../graph/ops.js";
import type { LinearSpec, ModuleContext } from "../models/module.js";
import { loraKeys, magnitudeKey } from "./adapter.js";
import type { TrainedBias } from "./bias.js";
import { doraEmbedding, doraGraphFactor, doraLinear, doraLinearDropout, doraNorm } from "./dora.js";
import type { DropoutInputs } from "./dropout.js";
import { loraEmbedding, loraLinear } from "./layer.js";
import type { SelectedModule } from "./targets.js";

/** The name of a module's scaling input (a float32 scalar) when the scaling is fed. */
export function scalingInputName(path: string): string {
  return `lora_scaling:${path}`;
}

/** The name of a module's DoRA factor input (float32 [out], m / n) when the scaling is fed. */
export function doraFactorInputName(path: string): string {
  return `dora_factor:${path}`;
}

export interface LoraGraphOptions {
  /**
   * Where each module's s comes from. "config" (training: the graph trains one adapter): the
   * constant SelectedModule.scaling. "fed" (serving): a float32 scalar graph input named
   * `scalingInputName(path)`, so one session serves adapters of different scalings.
   */
  scaling: "config" | "fed";
  /** Training only: dropout on the adapter input (masks fed per run; see dropout.ts). */
  dropout?: DropoutInputs;
  /** Layers whose bias is a graph input (trained, or fed from an adapter) instead of the base's. */
  biases?: readonly TrainedBias[];
  /**
   * DoRA on every selected module. Scaling "config": the magnitude is a trained input named by
   * magnitudeKey and f = m / n is computed in the graph. "fed": f is an input named
   * doraFactorInputName (ones for a module the chosen adapter leaves alone or adapts by plain LoRA).
   */
  dora?: boolean;
}

export interface LoraContext extends ModuleContext {
  /** The A/B (DoRA magnitude, bias) graph inputs, by PEFT key, in the order they were created. */
  readonly loraInputs: Map<string, Value>;
  /** The scaling and DoRA factor inputs (scaling "fed" only), by input name. */
  readonly scalingInputs: Map<string, Value>;
}

export function loraContext(
  base: ModuleContext,
  selected: readonly SelectedModule[],
  opts: LoraGraphOptions,
): LoraContext {
  const g = base.graph;
  const byPath = new Map(selected.map((m) => [m.path, m]));
  const biasByPath = new Map((opts.biases ?? []).map((b) => [b.path, b]));
  const loraInputs = new Map<string, Value>();
  const scalingInputs = new Map<string, Value>();

  const adapter = (m: SelectedModule): { A: Value; B: Value; s: Value | number } => {
    const keys = loraKeys(m.path, m.kind);
    const r = `r_${m.path}`; // symbolic rank, one per module
    const A = g.input(keys.A, "float32", [r, m.in]);
    const B = g.input(keys.B, "float32", [m.out, r]);
    loraInputs.set(keys.A, A);
    loraInputs.set(keys.B, B);
    if (opts.scaling === "config") return { A, B, s: m.scaling };
    const s = g.input(scalingInputName(m.path), "float32", []);
    scalingInputs.set(scalingInputName(m.path), s);
    return { A, B, s };
  };

  return {
    graph: g,
    loraInputs,
    scalingInputs,
    param: (name) => base.param(name),
    linear(x: Value, spec: LinearSpec): Value {
      const bias = spec.bias ? biasByPath.get(spec.path) : undefined;
      const b = bias ? g.input(bias.key, "float32", [bias.size]) : null;
      if (bias) loraInputs.set(bias.key, b!);
      const m = byPath.get(spec.path);
      if (m?.kind === "linear" && opts.dora) return doraModule(x, spec, m, b);
      const y = b ? o.add(base.linear(x, { ...spec, bias: false }), b) : base.linear(x, spec);
      if (m?.kind !== "linear") return y;
      const { A, B, s } = adapter(m);
      const dropout = opts.dropout;
      return loraLinear(y, x, A, B, s, dropout ? (x, A) => dropout.project(x, A) : undefined);
    },
    embedding(ids: Value, path: string): Value {
      const y = base.embedding(ids, path);
      const m = byPath.get(path);
      if (m?.kind !== "embedding") return y;
      const { A, B, s } = adapter(m);
      if (!opts.dora) return loraEmbedding(y, ids, A, B, s);
      // n per column of E [vocab, dim]: ‖E_j‖² and P = A·E [r, dim].
      const E = base.param(`${path}.weight`);
      const f = factor(m, A, B, s, () => ({
        w2: o.reduceSum(o.mul(E, E), [0], false),
        P: o.product(A, E, false, false),
      }));
      return doraEmbedding(y, ids, A, B, s, f);
    },
  };

  /** f = m / n of a DoRA module: fed, or computed from the trained magnitude and `norm`'s parts. */
  function factor(
    m: SelectedModule,
    A: Value,
    B: Value,
    s: Value | number,
    norm: () => { w2: Value; P: Value },
  ): Value {
    if (opts.scaling === "fed") {
      const f = g.input(doraFactorInputName(m.path), "float32", [m.out]);
      scalingInputs.set(doraFactorInputName(m.path), f);
      return f;
    }
    const magnitude = g.input(magnitudeKey(m.path), "float32", [m.out]);
    loraInputs.set(magnitudeKey(m.path), magnitude);
    const { w2, P } = norm();
    return doraGraphFactor(magnitude, doraNorm(w2, P, A, B, s));
  }

  /** A DoRA linear layer (dora.ts), its bias `b` apart: the base's, a fed one, or none. */
  function doraModule(x: Value, spec: LinearSpec, m: SelectedModule, b: Value | null): Value {
    const frozen = { ...spec, bias: false };
    const bias = b ?? (spec.bias ? base.param(`${spec.path}.bias`) : null);
    const wx = base.linear(x, frozen);
    const { A, B, s } = adapter(m);
    // n per output row: ‖W_j‖² (folded once by onnxruntime: W is an initializer) and P = A·Wᵀ, the
    // frozen layer applied to A's rows.
    const f = factor(m, A, B, s, () => {
      const W = base.param(`${spec.path}.weight`);
      return { w2: o.reduceSum(o.mul(W, W), [spec.fanInFanOut ? 0 : 1], false), P: base.linear(A, frozen) };
    });
    if (!opts.dropout) return doraLinear(wx, bias, x, A, B, s, f);
    const { dropped, projected } = opts.dropout.dropAndProject(x, A);
    return doraLinearDropout(wx, bias, base.linear(dropped, frozen), projected, B, s, f);
  }
}
