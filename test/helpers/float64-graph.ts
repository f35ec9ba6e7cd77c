/**
 * A float64 copy of a built graph, for finite-difference checks of the graphs the product really
 * runs (the training step, the inference step). Every float32 value becomes float64, node for node;
 * where onnxruntime's CPU kernels have no float64 version the node is rewritten into the same math
 * with ops that do:
 *
 * - FusedMatMul (float only) becomes MatMul with explicit transposes and a Mul by alpha (ops.product);
 * - LayerNormalization / SimplifiedLayerNormalization keep their statistics outputs in float32 (the
 *   only stash type onnxruntime implements), followed by a Cast to float64 for their users;
 * - external float32 weights (read from .safetensors as they are) get a Cast to float64.
 *
 * Nothing else changes: same ops, same attributes, same custom-gradient backward nodes, same symbolic
 * shapes. In float64 a central difference has ~1e-10 relative noise, so the gradient outputs can be
 * compared element by element at tolerances that only a wrong rule exceeds.
 */
import { ONNX_DTYPE } from "../../src/graph/dtype.js";
import { type Attr, attr, Graph, type Node, type Value } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";

const STASH_OUTPUTS: Record<string, number> = { LayerNormalization: 1, SimplifiedLayerNormalization: 1 };

const wide = <T extends string>(d: T): T | "float64" => (d === "float32" ? "float64" : d);

function promoteAttr(name: string, a: Attr, op: string): Attr {
  if (op === "Cast" && name === "to" && a.kind === "int" && a.v === ONNX_DTYPE.float32) {
    return attr.i(ONNX_DTYPE.float64);
  }
  if (a.kind === "tensor" && a.v.dtype === "float32") {
    return {
      kind: "tensor",
      v: { ...a.v, dtype: "float64", data: Float64Array.from(a.v.data as Float32Array) },
    };
  }
  return a;
}

export function promoteToFloat64(src: Graph): Graph {
  const g = new Graph();
  const map = new Map<Value, Value>();
  const get = (v: Value | null): Value | null => {
    if (v === null) return null;
    const m = map.get(v);
    if (!m) throw new Error(`promoteToFloat64: ${v} used before it is defined`);
    return m;
  };

  for (const v of src.inputs) map.set(v, g.input(v.name!, wide(v.dtype), v.shape));
  for (const [v, source] of src.initializers) {
    const shape = v.shape as number[];
    if (v.dtype !== "float32") {
      map.set(v, g.initializer(v.name!, v.dtype, shape, source));
    } else if (source.kind === "data") {
      const data = Float64Array.from(source.data as Float32Array);
      map.set(v, g.initializer(v.name!, "float64", shape, { kind: "data", data }));
    } else {
      map.set(v, o.cast(g.initializer(v.name!, "float32", shape, source), "float64"));
    }
  }

  for (const n of src.nodes) copyNode(g, n, get, map);
  for (const v of src.outputs) g.output(get(v)!, v.name);
  return g;
}

function copyNode(g: Graph, n: Node, get: (v: Value | null) => Value | null, map: Map<Value, Value>): void {
  const inputs = n.inputs.map(get);
  if (n.op === "FusedMatMul") {
    const flag = (k: string) => n.attrs[k]?.kind === "int" && n.attrs[k].v === 1;
    const alpha = n.attrs["alpha"]?.kind === "float" ? n.attrs["alpha"].v : 1;
    const y = o.product(inputs[0]!, inputs[1]!, flag("transA"), flag("transB"));
    // alpha as an initializer of its own: ops' shared constants are named const_N, as the copied ones are.
    const a = g.initializer(`promoted_alpha_${g.nodes.length}`, "float64", [], {
      kind: "data",
      data: Float64Array.of(alpha),
    });
    map.set(n.outputs[0]!, alpha === 1 ? y : o.mul(y, a));
    return;
  }
  const stashFrom = STASH_OUTPUTS[n.op] ?? Number.POSITIVE_INFINITY;
  const outs = n.outputs.map((v, i) => ({ dtype: i >= stashFrom ? v.dtype : wide(v.dtype), shape: v.shape }));
  const attrs = Object.fromEntries(Object.entries(n.attrs).map(([k, a]) => [k, promoteAttr(k, a, n.op)]));
  const copy = g.addNode(n.op, inputs, attrs, outs, n.domain);
  n.outputs.forEach((v, i) => {
    const out = copy.outputs[i]!;
    map.set(v, i >= stashFrom ? o.cast(out, "float64") : out);
  });
}
