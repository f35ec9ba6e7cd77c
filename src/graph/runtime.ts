/**
 * A thin typed wrapper over onnxruntime-node: session creation with this project's defaults, and
 * runs that take and return plain typed arrays.
 */
import { availableParallelism } from "node:os";
import { dirname } from "node:path";
import ort from "onnxruntime-node";
import { LoraTsError } from "../util/errors.js";
import type { AnyTypedArray, DType } from "./dtype.js";

export interface TensorValue {
  dtype: DType;
  dims: number[];
  data: AnyTypedArray;
}

export interface SessionOptions {
  /** Intra-op threads; default: every core. */
  threads?: number;
  /** "all" by default; "disabled" is handy when checking numerics op by op. */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** ORT's CPU arena about doubles peak memory for no speed gain here, so it is off by default. */
  memArena?: boolean;
  /** ORT's memory-pattern planning (on by default). */
  memPattern?: boolean;
  /** Folder that external-data locations in the model are relative to. */
  externalDataDir?: string;
  /** Extra ORT session config entries, e.g. {"session.disable_prepacking": "1"}. */
  config?: Record<string, string>;
  /** Write onnxruntime's per-op profile (JSON) with this file prefix. */
  profile?: string;
}

export function tensor(dtype: DType, dims: number[], data: AnyTypedArray): TensorValue {
  return { dtype, dims, data };
}

function toOrt(t: TensorValue): ort.Tensor {
  // onnxruntime-node has no bfloat16 feeds; the engine feeds float32 and casts inside graphs.
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
    const config: Record<string, string> = { ...opts.config };
    const externalDir = opts.externalDataDir ?? (typeof model === "string" ? dirname(model) : undefined);
    if (externalDir) config["session.model_external_initializers_file_folder_path"] = externalDir;
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: ["cpu"],
      intraOpNumThreads: opts.threads ?? availableParallelism(),
      interOpNumThreads: 1,
      graphOptimizationLevel: opts.optimization ?? "all",
      enableCpuMemArena: opts.memArena ?? false,
      enableMemPattern: opts.memPattern ?? true,
      executionMode: "sequential",
      ...(opts.profile ? { enableProfiling: true, profileFilePrefix: opts.profile } : {}),
      extra: nest(config),
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

/** ORT's node binding reads `extra` as nested objects joined by dots. */
function nest(flat: Record<string, string>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split(".");
    let o = root;
    for (const p of parts.slice(0, -1)) {
      o[p] ??= {};
      o = o[p] as Record<string, unknown>;
    }
    o[parts.at(-1)!] = value;
  }
  return root;
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0]!;
}
