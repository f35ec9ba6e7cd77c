/** Graph -> ONNX ModelProto bytes, through protobufjs and the ONNX schema in onnx-schema.ts. */
import protobuf from "protobufjs";
import { GraphBuildError } from "../util/errors.js";
import { type AnyTypedArray, ONNX_DTYPE } from "./dtype.js";
import type { Attr, Graph, Node, TensorData, Value } from "./ir.js";
import { ONNX_PROTO } from "./onnx-schema.js";
import { MS_OPSET, ONNX_IR_VERSION, ONNX_OPSET } from "./opset.js";
import type { Shape } from "./shape.js";

let modelType: protobuf.Type | undefined;

function schema(): protobuf.Type {
  modelType ??= protobuf.parse(ONNX_PROTO).root.lookupType("onnx.ModelProto");
  return modelType;
}

export interface EmitOptions {
  name?: string;
}

function bytesOf(a: AnyTypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function tensorProto(name: string, t: TensorData) {
  return { name, dims: t.dims, dataType: ONNX_DTYPE[t.dtype], rawData: bytesOf(t.data) };
}

function attrProto(name: string, a: Attr) {
  switch (a.kind) {
    case "int":
      return { name, type: 2, i: a.v };
    case "float":
      return { name, type: 1, f: a.v };
    case "ints":
      return { name, type: 7, ints: a.v };
    case "floats":
      return { name, type: 6, floats: a.v };
    case "string":
      return { name, type: 3, s: new TextEncoder().encode(a.v) };
    case "tensor":
      return { name, type: 4, t: tensorProto(name, a.v) };
  }
}

function valueInfo(name: string, v: Value) {
  const dim = (v.shape as Shape).map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: ONNX_DTYPE[v.dtype], shape: { dim } } } };
}

/** Nodes needed to compute the outputs, in graph order (dead code is dropped). */
export function liveNodes(g: Graph, outputs: Value[] = g.outputs): Node[] {
  const needed = new Set<Value>(outputs);
  const live: Node[] = [];
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    live.push(n);
    for (const x of n.inputs) if (x) needed.add(x);
  }
  return live.reverse();
}

export function emitModel(g: Graph, opts: EmitOptions = {}): Uint8Array {
  const nodes = liveNodes(g);
  const used = new Set<Value>(g.outputs);
  for (const n of nodes) for (const x of n.inputs) if (x) used.add(x);

  // Unique names: user names are kept, the rest numbered.
  const names = new Map<Value, string>();
  const taken = new Set<string>();
  const nameOf = (v: Value): string => {
    let s = names.get(v);
    if (s === undefined) {
      s = v.name ?? `t${v.id}`;
      if (taken.has(s)) throw new GraphBuildError(`two graph values are both named "${s}"`);
      taken.add(s);
      names.set(v, s);
    }
    return s;
  };
  for (const v of [...g.inputs, ...g.initializers.keys(), ...g.outputs]) if (used.has(v)) nameOf(v);

  const initializer = [];
  for (const [v, src] of g.initializers) {
    if (!used.has(v)) continue;
    const dims = v.shape as number[];
    if (src.kind === "data") {
      initializer.push(tensorProto(nameOf(v), { dtype: v.dtype, dims, data: src.data }));
    } else {
      initializer.push({
        name: nameOf(v),
        dims,
        dataType: ONNX_DTYPE[v.dtype],
        dataLocation: 1,
        externalData: [
          { key: "location", value: src.location },
          { key: "offset", value: String(src.offset) },
          { key: "length", value: String(src.length) },
        ],
      });
    }
  }

  const outputs = new Set(g.outputs);
  const intermediates = nodes.flatMap((n) => n.outputs.filter((o) => used.has(o) && !outputs.has(o)));

  const nodeProtos = nodes.map((n, i) => ({
    name: `${n.op}_${i}`,
    opType: n.op,
    domain: n.domain,
    input: n.inputs.map((x) => (x ? nameOf(x) : "")),
    output: n.outputs.map((o) => nameOf(o)),
    attribute: Object.entries(n.attrs).map(([k, a]) => attrProto(k, a)),
  }));

  const msg = {
    irVersion: ONNX_IR_VERSION,
    producerName: "lora-ts",
    producerVersion: "0.1.0",
    opsetImport: [
      { domain: "", version: ONNX_OPSET },
      { domain: "com.microsoft", version: MS_OPSET },
    ],
    graph: {
      name: opts.name ?? "lora_ts",
      node: nodeProtos,
      initializer,
      input: g.inputs.filter((v) => used.has(v)).map((v) => valueInfo(nameOf(v), v)),
      output: g.outputs.map((v) => valueInfo(nameOf(v), v)),
      // Every intermediate value's shape, symbolic dims included. onnxruntime's own inference loses
      // symbolic dims behind runtime-shaped Reshape/Expand; its memory planner then cannot match freed
      // buffers to new ones, and session creation grows quadratically with the graph (bench/RESULTS.md).
      valueInfo: intermediates.map((v) => valueInfo(nameOf(v), v)),
    },
  };
  const T = schema();
  return T.encode(T.fromObject(msg)).finish();
}
