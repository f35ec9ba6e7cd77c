/**
 * The adaptable modules of a model (linear layers and embeddings, by PyTorch module path), found by
 * building the model's graph once on a recording context: whatever the model code asks for is, by
 * construction, exactly what LoRA can wrap.
 */
import { Graph, type Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import * as o from "../graph/ops.js";
import type { ModelConfig } from "./config.js";
import { expectedTensors, tiedWeights } from "./family.js";
import { buildModel } from "./index.js";
import type { LinearSpec, ModuleContext, ModuleInfo } from "./module.js";
import { declareInputs } from "./transformer.js";

export function listModules(cfg: ModelConfig): ModuleInfo[] {
  const g = new Graph();
  const shapes = expectedTensors(cfg);
  const tied = tiedWeights(cfg);
  const params = new Map<string, Value>();
  const param = (name: string): Value => {
    let v = params.get(name);
    if (!v) {
      const shape = shapes.get(name) ?? shapes.get(tied.get(name) ?? name);
      if (!shape) throw new Error(`listModules: the model asked for unknown tensor ${name}`);
      v = g.input(name, "float32", shape);
      params.set(name, v);
    }
    return v;
  };
  const found: ModuleInfo[] = [];
  const recorder: ModuleContext = {
    graph: g,
    param,
    linear(x: Value, spec: LinearSpec): Value {
      found.push({
        path: spec.path,
        kind: "linear",
        inFeatures: spec.inFeatures,
        outFeatures: spec.outFeatures,
        fanInFanOut: spec.fanInFanOut ?? false,
        isOutputHead: spec.path === "lm_head",
        bias: spec.bias,
      });
      return o.reshape(
        nn.linear(
          x,
          g.input(`${spec.path}#w${found.length}`, "float32", [spec.outFeatures, spec.inFeatures]),
        ),
        [...x.shape.slice(0, -1), spec.outFeatures],
      );
    },
    embedding(ids: Value, path: string): Value {
      const table = param(`${path}.weight`);
      found.push({
        path,
        kind: "embedding",
        inFeatures: table.dim(0) as number,
        outFeatures: table.dim(1) as number,
      });
      return nn.embedding(table, ids);
    },
  };
  buildModel(recorder, cfg, declareInputs(g, cfg));
  return found;
}
