/**
 * LoRA in the model graph. The LoRA context wraps the base ModuleContext; for each selected module
 * it adds the low-rank path to the frozen layer:
 *
 *     linear:     y = x·Wᵀ + b + s · (drop(x)·Aᵀ)·Bᵀ          A [r, in], B [out, r]
 *     embedding:  y = E[ids] + s · Aᵀ[ids]·Bᵀ                 A [r, vocab], B [dim, r]
 *
 * B·A is never formed: the path costs r·(in + out) multiply-adds per token. A and B are graph
 * INPUTS named by their PEFT keys, so one session serves any adapter (or none: B = 0) and training
 * feeds the current parameters each step. The rank is a symbolic dim per module, so adapters of
 * different ranks share a session.
 */
import type { Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import * as o from "../graph/ops.js";
import type { LinearSpec, ModuleContext } from "../models/module.js";
import { loraKeys } from "./adapter.js";
import type { TrainedBias } from "./bias.js";
import type { DropoutInputs } from "./dropout.js";
import type { SelectedModule } from "./targets.js";

export interface LoraGraphOptions {
  /**
   * true: multiply by the module's scaling inside the graph (training: A and B are the parameters);
   * false: the caller feeds B already multiplied by s (serving: one graph for every adapter).
   */
  scaleInGraph: boolean;
  /** Training only: dropout on the adapter input (masks fed per run; see dropout.ts). */
  dropout?: DropoutInputs;
  /** Layers whose bias is a graph input (trained, or fed from an adapter) instead of the base's. */
  biases?: readonly TrainedBias[];
}

export interface LoraContext extends ModuleContext {
  /** The A/B (and bias) graph inputs, by PEFT key, in the order they were created. */
  readonly loraInputs: Map<string, Value>;
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

  const pair = (m: SelectedModule): { A: Value; B: Value } => {
    const keys = loraKeys(m.path, m.kind);
    const r = `r_${m.path}`; // symbolic rank, one per module
    const A = g.input(keys.A, "float32", [r, m.in]);
    const B = g.input(keys.B, "float32", [m.out, r]);
    loraInputs.set(keys.A, A);
    loraInputs.set(keys.B, B);
    return { A, B };
  };

  const scaled = (y: Value, m: SelectedModule): Value =>
    opts.scaleInGraph && m.scaling !== 1 ? o.mul(y, m.scaling) : y;

  const drop = (x: Value): Value => (opts.dropout ? opts.dropout.apply(x) : x);

  return {
    graph: g,
    loraInputs,
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
      const { A, B } = pair(m);
      return o.add(y, scaled(nn.linear(nn.linear(drop(x), A), B), m));
    },
    embedding(ids: Value, path: string): Value {
      const y = base.embedding(ids, path);
      const m = byPath.get(path);
      if (m?.kind !== "embedding") return y;
      const { A, B } = pair(m);
      const rows = nn.embedding(o.transpose(A, [1, 0]), ids); // Aᵀ[ids]: [..., r]
      return o.add(y, scaled(nn.linear(rows, B), m));
    },
  };
}
