/**
 * The ModuleContext for frozen base weights: every tensor becomes one initializer whose bytes stay in
 * the checkpoint file (external data), cast to float32 inside the graph when stored as bf16/fp16 —
 * onnxruntime folds that Cast once at session start.
 */

import {
  type Int8Forward,
  type Int8Values,
  type Int8Weight,
  int8Linear,
  quantizeRows,
} from "../graph/int8.js";
import type { Graph, Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import * as o from "../graph/ops.js";
import { int8WeightMax } from "../graph/ort-node.js";
import { type TensorValue, tensor } from "../graph/runtime.js";
import { fmtShape } from "../graph/shape.js";
import type { WeightStore } from "../io/hf-model.js";
import { GraphBuildError } from "../util/errors.js";
import type { LinearSpec, ModuleContext } from "./module.js";

/**
 * `replaced`: float32 tensors that stand in for checkpoint tensors of the same name and shape (e.g.
 * PiSSA's residual weights), embedded in the graph instead of read from the file.
 */
export function baseContext(
  g: Graph,
  store: WeightStore,
  replaced?: ReadonlyMap<string, Float32Array>,
  opts: { int8?: Int8Feeds } = {},
): ModuleContext {
  // Keyed by location, so an alias (a tied "lm_head.weight") shares the embedding's initializer.
  const memo = new Map<string, Value>();

  const ctx = contextFromParams(g, (name: string): Value => {
    const info = store.info(name);
    const stand = replaced?.get(name);
    if (stand) {
      const key = `replaced:${name}`;
      const hit = memo.get(key);
      if (hit) return hit;
      const v = g.initializer(name, "float32", info.shape, { kind: "data", data: stand });
      memo.set(key, v);
      return v;
    }
    const key = `${info.file}:${info.offset}`;
    let v = memo.get(key);
    if (v) return v;
    const source = store.isExternal(name)
      ? { kind: "external" as const, location: info.location!, offset: info.offset, length: info.length }
      : { kind: "data" as const, data: store.readTyped(name) };
    v = o.cast(g.initializer(name, info.dtype, info.shape, source), "float32");
    memo.set(key, v);
    return v;
  });
  if (!opts.int8) return ctx;
  let scratch = new Float32Array(0);
  return {
    ...ctx,
    linear(x: Value, spec: LinearSpec): Value {
      const { path, inFeatures: i, outFeatures: out } = spec;
      const name = `${path}.weight`;
      const expected = spec.fanInFanOut ? [i, out] : [out, i];
      const shape = replaced?.has(name) ? expected : store.info(name).shape;
      if (shape.length !== 2 || shape[0] !== expected[0] || shape[1] !== expected[1])
        throw new GraphBuildError(
          `${name}: shape ${fmtShape(shape)}, the model expects ${fmtShape(expected)}`,
        );
      // Quantized on worker threads meanwhile (int8-quantize.ts), or here.
      let w: Int8Weight | Int8Shape | undefined = replaced?.has(name) ? undefined : opts.int8!.prepared(name);
      if (!w) {
        // One scratch buffer for every weight read: each is quantized and dropped at once.
        if (scratch.length < out * i) scratch = new Float32Array(out * i);
        w = quantizeRows(
          replaced?.get(name) ?? store.readFloat32(name, scratch),
          out,
          i,
          spec.fanInFanOut === true,
          int8WeightMax(),
        );
      }
      const y = int8Linear(x, opts.int8!.add(g, name, w));
      return spec.bias ? o.add(y, ctx.param(`${path}.bias`)) : y;
    },
  };
}

/**
 * Where the int8 weights go: graph inputs fed from these arrays on every run, not initializers. An
 * initializer would be copied into the ONNX bytes and again into onnxruntime (three copies at session
 * creation); a fed tensor is used in place, so the int8 weights exist once, in the process's memory.
 */
export class Int8Feeds {
  readonly feeds: Record<string, TensorValue> = {};
  /** Weights added by shape only, whose values fill() puts into the feeds. */
  private readonly pending = new Set<string>();

  /**
   * `quantizing`: the shapes of weights being quantized on worker threads (int8-quantize.ts); the
   * others are quantized as the graph is built.
   */
  constructor(private readonly quantizing?: ReadonlyMap<string, Int8Shape>) {}

  /** The shape of a weight quantized elsewhere, if it is one. */
  prepared(name: string): Int8Shape | undefined {
    return this.quantizing?.get(name);
  }

  add(g: Graph, name: string, w: Int8Weight | Int8Shape): Int8Values {
    return {
      q: this.input(g, name, "int8", tensor("int8", [w.out, w.in], "q" in w ? w.q : NOT_YET)),
      ...this.addForward(g, name, w),
    };
  }

  /** Qᵀ and the scales only: a weight used in forward products alone (the frozen output head). */
  addForward(g: Graph, name: string, w: Int8Weight | Int8Shape): Int8Forward {
    if (!("q" in w)) this.pending.add(name);
    return {
      qT: this.input(g, name, "int8_t", tensor("int8", [w.in, w.out], "q" in w ? w.qT : NOT_YET)),
      scale: this.input(g, name, "int8_scale", tensor("float32", [w.out], "q" in w ? w.scale : NOT_YET_F32)),
    };
  }

  /** Puts the values of the weights added by shape into their feeds. */
  fill(weights: ReadonlyMap<string, Int8Weight>): void {
    for (const name of this.pending) {
      const w = weights.get(name);
      if (!w) throw new GraphBuildError(`--base-int8: ${name} was not quantized`);
      const q = this.feeds[`${name}.int8`];
      if (q) q.data = w.q;
      this.feeds[`${name}.int8_t`]!.data = w.qT;
      this.feeds[`${name}.int8_scale`]!.data = w.scale;
    }
    this.pending.clear();
  }

  private input(g: Graph, name: string, suffix: string, t: TensorValue): Value {
    this.feeds[`${name}.${suffix}`] = t;
    return g.input(`${name}.${suffix}`, t.dtype, t.dims);
  }
}

/** What the graph needs of an int8 weight being quantized elsewhere. */
export interface Int8Shape {
  out: number;
  in: number;
}

/** Placeholders in the feeds of weights whose values come later (fill). */
const NOT_YET = new Int8Array(0);
const NOT_YET_F32 = new Float32Array(0);

/**
 * The frozen output head in int8 for its forward logits (--base-int8): the head is the largest
 * product of a big-vocabulary model (Qwen2.5-0.5B: 152k x 896, a third of a step's multiply-adds).
 * Its gradient product keeps the float32 weight: softmax probabilities quantized per tensor to uint8
 * would lose every small probability of a row beside a confident one.
 */
export function int8Head(g: Graph, store: WeightStore, feeds: Int8Feeds, name: string): Int8Forward {
  const [vocab, dim] = store.info(name).shape as [number, number];
  const w = feeds.prepared(name) ?? quantizeRows(store.readFloat32(name), vocab, dim, false, int8WeightMax());
  return feeds.addForward(g, name, w);
}

/**
 * The layer logic over any source of float32 parameters by checkpoint name: frozen initializers
 * (baseContext) or graph inputs (full fine-tuning, where every weight is trained).
 */
export function contextFromParams(g: Graph, param: (name: string) => Value): ModuleContext {
  const weight = (name: string, shape: number[]): Value => {
    const w = param(name);
    if (w.rank !== shape.length || w.shape.some((d, i) => d !== shape[i]))
      throw new GraphBuildError(`${name}: shape ${fmtShape(w.shape)}, the model expects ${fmtShape(shape)}`);
    return w;
  };

  return {
    graph: g,
    param,
    linear(x: Value, spec: LinearSpec): Value {
      const { path, inFeatures: i, outFeatures: out } = spec;
      const b = spec.bias ? weight(`${path}.bias`, [out]) : null;
      if (spec.fanInFanOut) {
        // Conv1D keeps W as [in, out]: y = x·W + b.
        const y = o.product(x, weight(`${path}.weight`, [i, out]), false, false);
        return b ? o.add(y, b) : y;
      }
      return nn.linear(x, weight(`${path}.weight`, [out, i]), b);
    },
    embedding(ids: Value, path: string): Value {
      return nn.embedding(param(`${path}.weight`), ids);
    },
  };
}
