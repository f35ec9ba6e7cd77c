/**
 * Adapters in Hugging Face PEFT's format (on disk: adapter-files.ts; here the format itself):
 *
 *   adapter_config.json          LoraConfig (config.ts), unknown fields kept
 *   adapter_model.safetensors    fp32 tensors, metadata {"format": "pt"}, keys
 *     base_model.model.<module path>.lora_A.weight            [r, in]
 *     base_model.model.<module path>.lora_B.weight            [out, r]
 *     base_model.model.<module path>.lora_embedding_A         [r, vocab]   (no ".weight")
 *     base_model.model.<module path>.lora_embedding_B         [dim, r]
 *   with use_dora (dora.ts) also each module's magnitude:
 *     base_model.model.<module path>.lora_magnitude_vector      [out]    (embedding: [dim])
 *   with bias "all" / "lora_only" also the trained biases (PEFT's get_peft_model_state_dict):
 *     base_model.model.<targeted path>.base_layer.bias, base_model.model.<other path>.bias  [out]
 *
 * Loading also accepts what PEFT and other tools write: an adapter-name infix
 * (`.lora_A.default.weight`, `.lora_embedding_A.default`, `.lora_magnitude_vector.default.weight`), keys without the `base_model.model.`
 * prefix, fp16 / bf16 / fp64 tensors (widened to float32; re-saving with dtype "same" writes them
 * back bit for bit), and the embedding table PEFT saves when an embedding is targeted
 * (`<path>.base_layer.weight`, save_embedding_layers="auto"), which is kept and checked but is a
 * copy of the base weights.
 */
import type { DType } from "../graph/dtype.js";
import { f32ToBf16, f32ToF16 } from "../graph/half.js";
import type { ByteSource } from "../io/byte-source.js";
import { SafetensorsFile, safetensorsBytes, type TensorToWrite } from "../io/safetensors-format.js";
import { FileFormatError, LoraTsError } from "../util/errors.js";
import { type LoraConfig, loraConfigToJson, parseLoraConfig } from "./config.js";
import { weightNorm } from "./dora.js";
import { initLoraPair } from "./init.js";
import { weightLayout } from "./layer.js";
import { type ModuleInfo, type SelectedModule, selectTargets } from "./targets.js";

export const ADAPTER_CONFIG_NAME = "adapter_config.json";
export const ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors";
export const PEFT_PREFIX = "base_model.model.";

export type SourceDtype = "float32" | "float16" | "bfloat16" | "float64";

export interface AdapterTensor {
  shape: number[];
  data: Float32Array;
  /** The dtype in the file it came from (float32 when made here). */
  dtype?: SourceDtype;
}

export interface Adapter {
  config: LoraConfig;
  /** PEFT key -> tensor. */
  tensors: Map<string, AdapterTensor>;
  /** Where it was loaded from, for messages. */
  source?: string;
}

/** The PEFT keys of the A and B tensors for a module. */
export function loraKeys(path: string, kind: "linear" | "embedding"): { A: string; B: string } {
  return kind === "embedding"
    ? { A: `${PEFT_PREFIX}${path}.lora_embedding_A`, B: `${PEFT_PREFIX}${path}.lora_embedding_B` }
    : { A: `${PEFT_PREFIX}${path}.lora_A.weight`, B: `${PEFT_PREFIX}${path}.lora_B.weight` };
}

/** The PEFT key of a DoRA module's magnitude (PEFT saves its parameter without ".default.weight"). */
export function magnitudeKey(path: string): string {
  return `${PEFT_PREFIX}${path}.lora_magnitude_vector`;
}

export interface ParsedKey {
  path: string;
  role: "A" | "B" | "magnitude" | "bias" | "base_bias" | "base_weight" | "other";
  kind?: "linear" | "embedding";
}

/** What a canonical key (with the prefix, no adapter name) holds. */
export function parseAdapterKey(key: string): ParsedKey {
  const k = key.startsWith(PEFT_PREFIX) ? key.slice(PEFT_PREFIX.length) : key;
  let m = /^(.+)\.lora_([AB])\.weight$/.exec(k);
  if (m) return { path: m[1]!, role: m[2] as "A" | "B", kind: "linear" };
  m = /^(.+)\.lora_embedding_([AB])$/.exec(k);
  if (m) return { path: m[1]!, role: m[2] as "A" | "B", kind: "embedding" };
  m = /^(.+)\.lora_magnitude_vector$/.exec(k);
  if (m) return { path: m[1]!, role: "magnitude" };
  m = /^(.+)\.base_layer\.bias$/.exec(k);
  if (m) return { path: m[1]!, role: "base_bias" };
  m = /^(.+)\.base_layer\.weight$/.exec(k);
  if (m) return { path: m[1]!, role: "base_weight" };
  m = /^(.+)\.bias$/.exec(k);
  if (m) return { path: m[1]!, role: "bias" };
  return { path: k, role: "other" };
}

/** A key as PEFT or another tool wrote it -> the canonical key (prefix, no adapter-name infix). */
export function canonicalKey(key: string): string {
  let k = key
    .replace(/\.lora_([AB])\.[^.]+\.weight$/, ".lora_$1.weight")
    .replace(/\.lora_embedding_([AB])\.[^.]+$/, ".lora_embedding_$1")
    .replace(/\.lora_magnitude_vector(\.[^.]+)?(\.weight)?$/, ".lora_magnitude_vector");
  if (!k.startsWith(PEFT_PREFIX)) k = PEFT_PREFIX + k;
  return k;
}

/**
 * A fresh adapter for `selected` modules, initialised per `config.init_lora_weights` (init.ts) from
 * `seed`. PiSSA and DoRA need `baseWeight(path)` (storage layout); PiSSA's residual weights are
 * returned in `residuals`, DoRA's initial magnitudes are in the adapter.
 */
export function createAdapter(
  config: LoraConfig,
  selected: readonly SelectedModule[],
  opts: { seed: number; baseWeight?: (path: string) => Float32Array },
): { adapter: Adapter; residuals: Map<string, Float32Array> } {
  const tensors = new Map<string, AdapterTensor>();
  const residuals = new Map<string, Float32Array>();
  for (const mod of selected) {
    const pissa =
      typeof config.init_lora_weights === "string" && config.init_lora_weights.startsWith("pissa");
    const needsBase = config.use_dora || (pissa && mod.kind === "linear");
    const base = needsBase ? opts.baseWeight?.(mod.path) : undefined;
    if (needsBase && !base)
      throw new LoraTsError(`createAdapter: ${mod.path} needs its base weight (DoRA's magnitude or PiSSA)`);
    const { A, B, residual } = initLoraPair(
      mod,
      config.init_lora_weights,
      opts.seed,
      pissa ? base : undefined,
    );
    const keys = loraKeys(mod.path, mod.kind);
    tensors.set(keys.A, { shape: [mod.r, mod.in], data: A, dtype: "float32" });
    tensors.set(keys.B, { shape: [mod.out, mod.r], data: B, dtype: "float32" });
    if (residual) residuals.set(mod.path, residual);
    if (config.use_dora) {
      // m₀ = ‖W + s·B·A‖ with W the frozen weight as trained (PiSSA's residual), as PEFT initialises
      // DoRA after PiSSA has replaced the base weight.
      const m = weightNorm(
        residual ?? base!,
        { shape: [mod.r, mod.in], data: A },
        { shape: [mod.out, mod.r], data: B },
        mod.scaling,
        weightLayout(mod.kind, mod.fanInFanOut),
      );
      tensors.set(magnitudeKey(mod.path), { shape: [mod.out], data: m, dtype: "float32" });
    }
  }
  return { adapter: { config, tensors }, residuals };
}

/**
 * Checks every tensor of `adapter` against the modules its config selects on the model: each
 * selected module has its A and B with the right shapes, and nothing else is there but what the
 * config's bias setting allows. Returns the selected modules. Errors are one line naming the key.
 */
export function validateAdapter(
  adapter: Adapter,
  modules: readonly ModuleInfo[],
  opts: { modelType?: string } = {},
): SelectedModule[] {
  const src = adapter.source ? `${adapter.source}: ` : "";
  const fail = (key: string, problem: string): never => {
    throw new LoraTsError(`${src}tensor ${JSON.stringify(key)}: ${problem}`);
  };
  const selected = selectTargets(adapter.config, modules, opts);
  const byPath = new Map(modules.map((m) => [m.path, m]));
  const selByPath = new Map(selected.map((s) => [s.path, s]));
  const shapeStr = (s: readonly number[]): string => `[${s.join(", ")}]`;
  const expectShape = (key: string, t: AdapterTensor, want: number[], what: string): void => {
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      fail(key, `shape ${shapeStr(t.shape)} does not fit the model: ${what} needs ${shapeStr(want)}`);
    }
  };
  for (const s of selected) {
    const keys = loraKeys(s.path, s.kind);
    for (const [role, key] of [
      ["A", keys.A],
      ["B", keys.B],
    ] as const) {
      const t = adapter.tensors.get(key);
      if (!t)
        fail(key, `missing: the config targets ${s.path} (r=${s.r}) but the adapter has no lora_${role}`);
    }
    if (adapter.config.use_dora && !adapter.tensors.has(magnitudeKey(s.path)))
      fail(magnitudeKey(s.path), `missing: the config has use_dora but ${s.path} has no magnitude`);
  }
  for (const [key, t] of adapter.tensors) {
    if (/\.lora_B\.bias$/.test(key)) fail(key, "lora_bias (a bias on lora_B) is not supported");
    const p = parseAdapterKey(key);
    const sel = selByPath.get(p.path);
    if (p.role === "A" || p.role === "B") {
      if (!sel) {
        const m = byPath.get(p.path);
        fail(
          key,
          m
            ? `unexpected: the config does not target module ${p.path}`
            : `unexpected: the model has no module ${p.path}`,
        );
      }
      if (p.kind !== sel!.kind)
        fail(key, `module ${p.path} is ${sel!.kind === "linear" ? "a linear layer" : "an embedding"}`);
      const r = sel!.r;
      const what = `${p.path} (${sel!.kind}, in ${sel!.in}, out ${sel!.out}, r ${r})`;
      expectShape(key, t, p.role === "A" ? [r, sel!.in] : [sel!.out, r], what);
      continue;
    }
    if (p.role === "magnitude") {
      if (!adapter.config.use_dora) fail(key, "unexpected: a DoRA magnitude, but the config has no use_dora");
      if (!sel) fail(key, `unexpected: the config does not target module ${p.path}`);
      expectShape(key, t, [sel!.out], `the DoRA magnitude of ${p.path}`);
      continue;
    }
    if (p.role === "base_weight") {
      if (sel?.kind !== "embedding")
        fail(key, "unexpected: base weights are only saved for targeted embeddings");
      expectShape(key, t, [sel!.in, sel!.out], `embedding ${p.path}`);
      continue;
    }
    if (p.role === "bias" || p.role === "base_bias") {
      const bias = adapter.config.bias;
      if (bias === "none") fail(key, 'unexpected: a bias tensor, but the config has bias "none"');
      if (bias === "lora_only" && !sel)
        fail(key, `unexpected: bias "lora_only" but ${p.path} is not targeted`);
      const m = byPath.get(p.path);
      if (m) expectShape(key, t, [m.outFeatures], `the bias of ${p.path}`);
      continue;
    }
    fail(key, "unexpected: not a LoRA tensor");
  }
  return selected;
}

/**
 * An adapter from its two files' contents: adapter_config.json's text and adapter_model.safetensors's
 * bytes source (`cfgPath` and the source's path name them in messages). With `modules`, the tensors
 * are also checked against the model (validateAdapter).
 */
export function parseAdapter(
  configText: string,
  cfgPath: string,
  weights: ByteSource,
  source: string,
  modules?: readonly ModuleInfo[],
  opts: { modelType?: string } = {},
): Adapter {
  let json: unknown;
  try {
    json = JSON.parse(configText);
  } catch (e) {
    weights.close();
    // V8 quotes the start of the text raw, \r included: every line break goes.
    throw new FileFormatError(cfgPath, `not valid JSON (${(e as Error).message.replace(/[\r\n]+/g, " ")})`);
  }
  let config: LoraConfig;
  try {
    config = parseLoraConfig(json, cfgPath);
  } catch (e) {
    weights.close();
    throw e;
  }
  const wPath = weights.path;
  const tensors = new Map<string, AdapterTensor>();
  const file = SafetensorsFile.fromSource(weights);
  try {
    for (const [name, info] of file.tensors) {
      if (!["float32", "float16", "bfloat16", "float64"].includes(info.dtype)) {
        throw new FileFormatError(
          wPath,
          `tensor ${JSON.stringify(name)}: dtype ${info.stDtype} is not a float type`,
        );
      }
      const key = canonicalKey(name);
      if (tensors.has(key)) {
        throw new FileFormatError(
          wPath,
          `tensor ${JSON.stringify(name)}: a second tensor for ${JSON.stringify(key)}`,
        );
      }
      tensors.set(key, {
        shape: [...info.shape],
        data: file.readFloat32(name),
        dtype: info.dtype as SourceDtype,
      });
    }
  } finally {
    file.close();
  }
  const adapter: Adapter = { config, tensors, source };
  if (modules) validateAdapter(adapter, modules, opts);
  return adapter;
}

/** Tensor dtypes an adapter can be saved in: "same" is each tensor's dtype as loaded. */
export type SaveDtype = "float32" | "same" | "float16" | "bfloat16";

/** The adapter's tensors as written to adapter_model.safetensors (`where` names it in messages). */
export function adapterTensorsToWrite(adapter: Adapter, dtype: SaveDtype, where: string): TensorToWrite[] {
  const list: TensorToWrite[] = [];
  for (const [name, t] of adapter.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw new LoraTsError(
        `${where}: tensor ${JSON.stringify(name)}: ${t.data.length} values for shape [${t.shape.join(", ")}]`,
      );
    }
    const dt: SourceDtype = dtype === "same" ? (t.dtype ?? "float32") : dtype;
    list.push({ name, dtype: dt as DType, shape: t.shape, data: convert(t.data, dt) });
  }
  return list;
}

/** adapter_config.json's text. */
export function adapterConfigText(adapter: Adapter): string {
  return `${JSON.stringify(loraConfigToJson(adapter.config), null, 2)}\n`;
}

/** The adapter's two PEFT files as bytes, by name (what a browser offers for download). */
export function adapterFileBytes(adapter: Adapter, dtype: SaveDtype = "float32"): Record<string, Uint8Array> {
  const tensors = adapterTensorsToWrite(adapter, dtype, ADAPTER_WEIGHTS_NAME);
  return {
    [ADAPTER_CONFIG_NAME]: new TextEncoder().encode(adapterConfigText(adapter)),
    [ADAPTER_WEIGHTS_NAME]: safetensorsBytes(tensors, { format: "pt" }, ADAPTER_WEIGHTS_NAME),
  };
}

function convert(data: Float32Array, dt: SourceDtype): Float32Array | Float64Array | Uint16Array {
  switch (dt) {
    case "float32":
      return data;
    case "float64":
      return Float64Array.from(data);
    case "float16":
      return f32ToF16(data);
    case "bfloat16":
      return f32ToBf16(data);
  }
}

/**
 * PiSSA -> plain LoRA (PEFT's save_pretrained(path_initial_model_for_weight_conversion=...)): from
 * the trained adapter (A, B) and the adapter as initialised (A₀, B₀), the rank-2r adapter
 * A' = [A; A₀], B' = [B, −B₀] with r and lora_alpha doubled (rsLoRA: alpha·√2) has
 * s'·B'·A' = s·(B·A − B₀·A₀), the change relative to the ORIGINAL base weight, so it merges onto
 * the original base. Embedding adapters (never PiSSA-initialised) are zero-padded to 2r, which
 * keeps their delta. init_lora_weights becomes true.
 */
export function pissaToLora(trained: Adapter, initial: Adapter): Adapter {
  const cfg = trained.config;
  if (
    cfg.use_rslora &&
    (Object.keys(cfg.rank_pattern).length > 0 || Object.keys(cfg.alpha_pattern).length > 0)
  ) {
    throw new LoraTsError(
      "PiSSA conversion is not possible with use_rslora together with rank_pattern/alpha_pattern",
    );
  }
  const tensors = new Map<string, AdapterTensor>();
  for (const [key, t] of trained.tensors) {
    const p = parseAdapterKey(key);
    if (p.role !== "A" && p.role !== "B") {
      tensors.set(key, t);
      continue;
    }
    const t0 = initial.tensors.get(key);
    if (!t0 || t0.shape.join() !== t.shape.join()) {
      throw new LoraTsError(
        `PiSSA conversion: tensor ${JSON.stringify(key)} is missing or differently shaped in the initial adapter`,
      );
    }
    const embedding = p.kind === "embedding";
    if (p.role === "A") {
      // [r, in] -> [2r, in]: rows of A then rows of A₀ (zeros for embeddings).
      const [r, n] = t.shape as [number, number];
      const data = new Float32Array(2 * r * n);
      data.set(t.data, 0);
      if (!embedding) data.set(t0.data, r * n);
      tensors.set(key, { shape: [2 * r, n], data, dtype: t.dtype });
    } else {
      // [out, r] -> [out, 2r]: columns of B then of −B₀.
      const [o, r] = t.shape as [number, number];
      const data = new Float32Array(o * 2 * r);
      for (let i = 0; i < o; i++) {
        for (let c = 0; c < r; c++) {
          data[i * 2 * r + c] = t.data[i * r + c]!;
          data[i * 2 * r + r + c] = embedding ? 0 : -t0.data[i * r + c]!;
        }
      }
      tensors.set(key, { shape: [o, 2 * r], data, dtype: t.dtype });
    }
  }
  const double = (o: Record<string, number>, f: number): Record<string, number> =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v * f]));
  const config: LoraConfig = {
    ...cfg,
    raw: { ...cfg.raw },
    r: cfg.r * 2,
    lora_alpha: cfg.use_rslora ? cfg.lora_alpha * Math.SQRT2 : cfg.lora_alpha * 2,
    rank_pattern: double(cfg.rank_pattern, 2),
    alpha_pattern: double(cfg.alpha_pattern, 2),
    init_lora_weights: true,
  };
  return { config, tensors };
}
