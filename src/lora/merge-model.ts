/**
 * `lora-ts merge`: W' = W + s·B·A (DoRA: (m / n) ⊙ (W + s·B·A), merge.ts mergeModule) written into a
 * complete Hugging Face model directory, so inference costs nothing extra. The output is assembled in a temporary folder and renamed into place; the base
 * model's files are only read, and an output that is, is inside or contains the base model's folder is
 * refused whatever the flags (with `force`, replacing it would delete the base).
 */
import { copyFileSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { DType } from "../graph/dtype.js";
import { f32ToBf16, f32ToF16 } from "../graph/half.js";
import { DEFAULT_MAX_SHARD_BYTES, writeShardedSafetensors } from "../io/safetensors-shards.js";
import { familyOf } from "../models/family.js";
import { resolveModelPath } from "../models/model-path.js";
import { listModules } from "../models/modules.js";
import { openModelDir } from "../models/open-model.js";
import { writeDirAtomic, writeJsonAtomic } from "../util/atomic.js";
import { LoraTsError } from "../util/errors.js";
import { refuseBadOut, refuseBaseModelOut, refuseNonEmpty } from "../util/out-dir.js";
import { type Adapter, validateAdapter } from "./adapter.js";
import { loadAdapter } from "./adapter-files.js";
import { resolveAdapterPath } from "./adapter-path.js";
import { adapterBias, trainedBiases } from "./bias.js";
import { mergeModule } from "./merge.js";

export type MergeDtype = "same" | "f32" | "bf16" | "f16";

export interface MergeOptions {
  model: string;
  adapter: string | Adapter;
  out: string;
  dtype?: MergeDtype;
  force?: boolean;
  /** Largest shard in bytes (default 5 GB, as Hugging Face); above it the weights are sharded. */
  maxShardBytes?: number;
}

const OUT_DTYPE: Record<Exclude<MergeDtype, "same">, DType> = {
  f32: "float32",
  bf16: "bfloat16",
  f16: "float16",
};

function encode(data: Float32Array, dtype: DType) {
  if (dtype === "bfloat16") return f32ToBf16(data);
  if (dtype === "float16") return f32ToF16(data);
  return data;
}

export async function mergeModel(opts: MergeOptions): Promise<{ merged: string[] }> {
  // Refused before any work: an existing output without `force`, and, whatever the flags, an output
  // that is, is inside or contains the base model (the --model path, or the folder a .gguf converts to).
  refuseBadOut(
    opts.out,
    typeof opts.adapter === "string"
      ? [{ path: opts.adapter, what: "the adapter's folder", insideOk: true }]
      : [],
  );
  refuseNonEmpty(opts.out, opts.force);
  refuseBaseModelOut(opts.out, [opts.model]);
  const dir = await resolveModelPath(opts.model);
  if (dir !== opts.model) refuseBaseModelOut(opts.out, [dir]);
  const model = openModelDir(dir);
  const cfg = model.config;
  const modules = listModules(cfg);
  const adapterDir =
    typeof opts.adapter === "string" ? await resolveAdapterPath(opts.adapter, { modelDir: dir }) : null;
  // A hub id's snapshot folder is an input too: --out may not be, or be inside, it either.
  if (adapterDir !== null && adapterDir !== opts.adapter) {
    refuseBadOut(opts.out, [{ path: adapterDir, what: "the adapter's folder", insideOk: true }]);
  }
  const adapter = adapterDir !== null ? loadAdapter(adapterDir) : (opts.adapter as Adapter);
  const selected = validateAdapter(adapter, modules, { modelType: cfg.modelType });
  const wantDtype =
    (opts.dtype ?? "same") === "same" ? null : OUT_DTYPE[opts.dtype as Exclude<MergeDtype, "same">];
  if (opts.dtype && opts.dtype !== "same" && !wantDtype)
    throw new LoraTsError(`--dtype ${opts.dtype}: use same, f32, bf16 or f16`);

  // A tied model whose head or embedding is adapted must be untied: unmerged, the LoRA acts on one of
  // the two uses of the table only, so after merging they differ.
  const embedPath = familyOf(cfg).embeddingPath;
  const untie = cfg.tieWordEmbeddings && selected.some((s) => s.path === "lm_head" || s.path === embedPath);
  // The adapted weights, merged as each is written (DoRA's merged weight needs W itself).
  const adapted = new Map(selected.map((s) => [`${s.path}.weight`, s]));
  // Trained biases replace the base's.
  const biases = new Map<string, Float32Array>();
  for (const b of trainedBiases(adapter.config, modules, selected)) {
    const data = adapterBias(adapter, b.path);
    if (data) biases.set(`${b.path}.bias`, data);
  }
  const names = model.weights.names();
  if (untie) names.push("lm_head.weight");
  const tensors = names.map((name) => {
    const info = { ...model.weights.info(name) };
    if (name === "lm_head.weight") info.shape = [cfg.vocabSize, cfg.hidden];
    const dtype = wantDtype ?? info.dtype;
    const bias = biases.get(name);
    if (bias) return { name, dtype, shape: info.shape, data: encode(bias, dtype) };
    const sel = adapted.get(name);
    if (!sel && dtype === info.dtype)
      return { name, dtype, shape: info.shape, data: model.weights.readTyped(name) };
    const w = model.weights.readFloat32(name);
    const merged = sel ? mergeModule(adapter, sel.path, w, { fanInFanOut: sel.fanInFanOut }) : undefined;
    return { name, dtype, shape: info.shape, data: encode(merged ?? w, dtype) };
  });

  await writeDirAtomic(
    opts.out,
    (tmp) => {
      // Everything but the weights (tokenizer, generation config, ...) is copied as it is.
      for (const f of readdirSync(dir)) {
        const isWeights =
          f.endsWith(".safetensors") || f === "model.safetensors.index.json" || f === "config.json";
        if (!isWeights && statSync(join(dir, f)).isFile()) copyFileSync(join(dir, f), join(tmp, f));
      }
      const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
      if (untie) config["tie_word_embeddings"] = false;
      if (wantDtype) config["torch_dtype"] = wantDtype;
      writeJsonAtomic(join(tmp, "config.json"), config);
      // The base's own shards and index were not copied above, so none can be left stale here.
      writeShardedSafetensors(tmp, tensors, opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
    },
    { replace: opts.force },
  );
  model.weights.close();
  return { merged: [...adapted.keys(), ...biases.keys()] };
}
