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
 */
import type { Value } from "../graph/ir.js";
import * as o from "../graph/ops.js";
import type { LinearSpec, ModuleContext } from "../models/module.js";
import { loraKeys } from "./adapter.js";
import type { TrainedBias } from "./bias.js";
import type { DropoutInputs } from "./dropout.js";
import { loraEmbedding, loraLinear } from "./layer.js";
import type { SelectedModule } from "./targets.js";

/** The name of a module's scaling input (a float32 scalar) when the scaling is fed. */
export function scalingInputName(path: string): string {
  return `lora_scaling:${path}`;
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
}

export interface LoraContext extends ModuleContext {
  /** The A/B (and bias) graph inputs, by PEFT key, in the order they were created. */
  readonly loraInputs: Map<string, Value>;
  /** The scaling inputs (scaling "fed" only), by input name. */
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
      let y: Value;
      if (bias) {
        const b = g.input(bias.key, "float32", [bias.size]);
        loraInputs.set(bias.key, b);
        y = o.add(base.linear(x, { ...spec, bias: false }), b);
      } else {
        y = base.linear(x, spec);
      }
      const m = byPath.get(spec.path);
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
      return loraEmbedding(y, ids, A, B, s);
    },
  };
}
