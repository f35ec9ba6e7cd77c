/**
 * `lora-ts export gguf`: a model, with an adapter merged in (W' = W + s·B·A, or DoRA's
 * (m / n) ⊙ (W + s·B·A): llama.cpp has no DoRA, so merging is the only way there; trained biases
 * replacing the base's), as one llama.cpp GGUF file. The merge is lora/'s (merge.ts, bias.ts, as `lora-ts
 * merge` does it); the file layout is models/export-gguf.ts's, which takes the merged tensors as
 * overrides, so nothing is written to disk but the .gguf.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { GgufWriteType } from "../io/gguf-write.js";
import { exportGguf } from "../models/export-gguf.js";
import { familyOf } from "../models/family.js";
import { resolveModelPath } from "../models/model-path.js";
import { listModules } from "../models/modules.js";
import { openModelDir } from "../models/open-model.js";
import { LoraTsError } from "../util/errors.js";
import { refuseBaseModelOut, refuseOverlap, refuseUnwritable } from "../util/out-dir.js";
import { type Adapter, validateAdapter } from "./adapter.js";
import { loadAdapter } from "./adapter-files.js";
import { resolveAdapterPath } from "./adapter-path.js";
import { adapterBias, trainedBiases } from "./bias.js";
import { mergeModule } from "./merge.js";

export interface ExportGgufModelOptions {
  /** Model folder, hub id or .gguf (as --model everywhere). */
  model: string;
  /** Adapter folder (or a loaded adapter) to merge first. */
  adapter?: string | Adapter;
  /** The .gguf file to write. */
  out: string;
  dtype?: GgufWriteType;
  /** Replace an existing --out file. */
  force?: boolean;
}

/**
 * Refuses, before any work, an --out that exists (without force), is a folder, or is or lies in a
 * file or folder that is only read (the base model, the adapter).
 */
export function refuseGgufOut(
  out: string,
  readOnly: { path: string; what: string }[],
  force?: boolean,
): void {
  if (existsSync(out) && statSync(out).isDirectory())
    throw new LoraTsError(`--out ${out}: is a folder, not a file`);
  refuseOverlap(
    out,
    readOnly.filter((r) => existsSync(r.path)),
  );
  // The file's folder must be writable (refuseBadOut's check is for output folders).
  refuseUnwritable(dirname(resolve(out)));
  if (existsSync(out) && !force)
    throw new LoraTsError(`--out ${out}: already exists (use --force to replace it)`);
}

export async function exportGgufModel(opts: ExportGgufModelOptions): Promise<{ merged: string[] }> {
  const inputs =
    typeof opts.adapter === "string" ? [{ path: opts.adapter, what: "the adapter's folder" }] : [];
  refuseGgufOut(opts.out, inputs, opts.force);
  refuseBaseModelOut(opts.out, [opts.model]);
  const dir = await resolveModelPath(opts.model);
  if (dir !== opts.model) refuseBaseModelOut(opts.out, [dir]);
  const model = openModelDir(dir);
  try {
    const cfg = model.config;
    const override = new Map<string, Float32Array>();
    let untie = false;
    if (opts.adapter !== undefined) {
      const adapter =
        typeof opts.adapter === "string"
          ? loadAdapter(await resolveAdapterPath(opts.adapter, { modelDir: dir }))
          : opts.adapter;
      const modules = listModules(cfg);
      const selected = validateAdapter(adapter, modules, { modelType: cfg.modelType });
      const family = familyOf(cfg);
      // As `lora-ts merge`: a tied table adapted on one of its two uses is written twice, untied.
      untie =
        cfg.tieWordEmbeddings &&
        selected.some((s) => s.path === family.headPath || s.path === family.embeddingPath);
      for (const s of selected) {
        const name = `${s.path}.weight`;
        // A tied head reads the embedding table through the store's alias.
        const merged = mergeModule(adapter, s.path, model.weights.readFloat32(name), {
          fanInFanOut: s.fanInFanOut,
        });
        if (merged) override.set(name, merged);
      }
      if (untie && !override.has(`${family.headPath}.weight`)) {
        override.set(
          `${family.headPath}.weight`,
          model.weights.readFloat32(`${family.embeddingPath}.weight`),
        );
      }
      for (const b of trainedBiases(adapter.config, modules, selected)) {
        const data = adapterBias(adapter, b.path);
        if (data) override.set(`${b.path}.bias`, data);
      }
    }
    const exportOpts: Parameters<typeof exportGguf>[2] = { override, untie };
    if (opts.dtype) exportOpts.dtype = opts.dtype;
    exportGguf(model, opts.out, exportOpts);
    return { merged: [...override.keys()] };
  } finally {
    model.weights.close();
  }
}
