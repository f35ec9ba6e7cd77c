/**
 * A thin typed wrapper over onnxruntime: session creation with this project's defaults, and runs that
 * take and return plain typed arrays. The platform's binding (onnxruntime-node, or onnxruntime-web in a
 * browser bundle) comes from ort-node.ts, which the browser build replaces with ort-web.ts.
 */
import { LoraTsError } from "../util/errors.js";
import type { AnyTypedArray, DType } from "./dtype.js";
import { ort, platformSessionOptions } from "./ort-node.js";
import type { SessionOptions } from "./session-options.js";

export type { SessionOptions } from "./session-options.js";

export interface TensorValue {
  dtype: DType;
  dims: number[];
  data: AnyTypedArray;
}

export function tensor(dtype: DType, dims: number[], data: AnyTypedArray): TensorValue {
  return { dtype, dims, data };
}

function toOrt(t: TensorValue): ort.Tensor {
  // onnxruntime has no bfloat16 feeds; the engine feeds float32 and casts inside graphs.
  if (t.dtype === "bfloat16")
    throw new LoraTsError("bfloat16 tensors cannot be fed to a session; cast first");
  return new ort.Tensor(t.dtype, t.data as ort.Tensor.DataType, t.dims);
}

function fromOrt(t: ort.Tensor): TensorValue {
  return { dtype: t.type as DType, dims: [...t.dims], data: t.data as AnyTypedArray };
}

export class Session {
  private constructor(
    readonly ort: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  /** From ONNX bytes, or from a .onnx file (external data then resolves beside that file). */
  static async create(model: Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
    const options: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: opts.optimization ?? "all",
      enableCpuMemArena: opts.memArena ?? false,
      enableMemPattern: opts.memPattern ?? true,
      executionMode: "sequential",
      ...(opts.profile ? { enableProfiling: true, profileFilePrefix: opts.profile } : {}),
      ...platformSessionOptions(model, opts),
    };
    let s: ort.InferenceSession;
    try {
      s =
        typeof model === "string"
          ? await ort.InferenceSession.create(model, options)
          : await ort.InferenceSession.create(model, options);
    } catch (e) {
      throw new LoraTsError(`onnxruntime could not load the graph: ${firstLine(e)}`);
    }
    return new Session(s, s.inputNames, s.outputNames);
  }

  /** Runs the graph. Feeds the graph does not use are ignored (emission prunes unused inputs). */
  async run(feeds: Record<string, TensorValue>, outputs?: string[]): Promise<Record<string, TensorValue>> {
    const f: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const t = feeds[name];
      if (!t) throw new LoraTsError(`missing graph input "${name}"`);
      f[name] = toOrt(t);
    }
    let r: ort.InferenceSession.OnnxValueMapType;
    try {
      r = outputs ? await this.ort.run(f, outputs) : await this.ort.run(f);
    } catch (e) {
      throw new LoraTsError(`onnxruntime run failed: ${firstLine(e)}`);
    }
    const out: Record<string, TensorValue> = {};
    for (const [k, v] of Object.entries(r)) out[k] = fromOrt(v as ort.Tensor);
    return out;
  }

  async release(): Promise<void> {
    await this.ort.release();
  }
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0]!;
}
