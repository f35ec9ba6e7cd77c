/**
 * `lora-ts export gguf-adapter`: a PEFT adapter as a llama.cpp GGUF LoRA adapter, to load beside the
 * base model exported by `export gguf` (llama.cpp's convert_lora_to_gguf.py layout, llama-adapter.cpp):
 * - metadata general.type "adapter", general.architecture the base's, adapter.type "lora",
 *   adapter.lora.alpha (float32);
 * - tensors `<base GGUF tensor>.lora_a` [r, in] and `.lora_b` [out, r] (numpy order); for token_embd
 *   llama.cpp gathers rows of A by token id, so A is written transposed ([vocab, r]);
 * - "llama" architecture: B's rows permuted like the base's q/k rows (heads; kv heads for k);
 * - llama.cpp scales every module by user_scale · alpha / r with one global alpha and the module's r
 *   (read from B's shape). lora-ts's per-module s (rsLoRA alpha/√r, rank_pattern, alpha_pattern) is
 *   therefore folded into B: alpha = lora_alpha is written and B is multiplied by s·r/alpha, which is 1
 *   for a plain LoRA module, so a plain adapter is written exactly as llama.cpp's converter writes it.
 * What a GGUF adapter cannot express is refused in one line: a LoRA on the head of a tied model (the
 * exported base has no output.weight), trained biases, modules_to_save, and DoRA (llama.cpp's adapter
 * adds s·B·A·x and has no per-output magnitude to rescale with).
 */
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { type GgufTensorToWrite, meta, writeGguf } from "../io/gguf-write.js";
import { permuteRopeRows } from "../io/rope-rows.js";
import { ggufArchitecture, ggufName, ggufRopeHeads } from "../models/export-gguf.js";
import { familyOf } from "../models/family.js";
import { resolveModelPath } from "../models/model-path.js";
import { listModules } from "../models/modules.js";
import { openModelDir } from "../models/open-model.js";
import { LoraTsError } from "../util/errors.js";
import { refuseBaseModelOut, refuseOverlap, refuseUnwritable } from "../util/out-dir.js";
import { loraKeys, validateAdapter } from "./adapter.js";
import { loadAdapter } from "./adapter-files.js";
import { resolveAdapterPath } from "./adapter-path.js";
import { trainedBiases } from "./bias.js";

export interface ExportGgufAdapterOptions {
  model: string;
  adapter: string;
  out: string;
  force?: boolean;
}

function refuseOut(out: string, opts: ExportGgufAdapterOptions): void {
  if (existsSync(out) && statSync(out).isDirectory())
    throw new LoraTsError(`--out ${out}: is a folder, not a file`);
  refuseOverlap(
    out,
    [{ path: opts.adapter, what: "the adapter's folder" }].filter((r) => existsSync(r.path)),
  );
  refuseBaseModelOut(out, [opts.model]);
  refuseUnwritable(dirname(resolve(out)));
  if (existsSync(out) && !opts.force)
    throw new LoraTsError(`--out ${out}: already exists (use --force to replace it)`);
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c]!;
  return t;
}

export async function exportGgufAdapter(opts: ExportGgufAdapterOptions): Promise<{ modules: number }> {
  refuseOut(opts.out, opts);
  const dir = await resolveModelPath(opts.model);
  if (dir !== opts.model) refuseBaseModelOut(opts.out, [dir]);
  const model = openModelDir(dir);
  model.weights.close(); // only the config is needed
  const cfg = model.config;
  const family = familyOf(cfg);
  // A hub id or a GGUF adapter (re-exported, e.g. for another base file) becomes a PEFT folder first.
  const adapter = loadAdapter(await resolveAdapterPath(opts.adapter, { modelDir: dir }));
  const lc = adapter.config;
  const modules = listModules(cfg);
  const selected = validateAdapter(adapter, modules, { modelType: cfg.modelType });
  const where = `${opts.adapter}: `;
  if (lc.use_dora) {
    throw new LoraTsError(
      `${where}a DoRA adapter (use_dora) cannot be expressed in a GGUF adapter (llama.cpp's LoRA has no magnitude vector); merge instead (export gguf --adapter)`,
    );
  }
  if (lc.modules_to_save && lc.modules_to_save.length > 0) {
    throw new LoraTsError(
      `${where}modules_to_save (${lc.modules_to_save.join(", ")}) cannot be expressed in a GGUF adapter; merge instead (export gguf --adapter)`,
    );
  }
  if (trainedBiases(lc, modules, selected).length > 0) {
    throw new LoraTsError(
      `${where}trained biases (bias "${lc.bias}") cannot be expressed in a GGUF adapter; merge instead (export gguf --adapter)`,
    );
  }
  if (!(lc.lora_alpha > 0))
    throw new LoraTsError(`${where}lora_alpha ${lc.lora_alpha} must be > 0 for a GGUF adapter`);
  const alpha = lc.lora_alpha;
  const tensors: GgufTensorToWrite[] = [];
  for (const s of selected) {
    const weight = `${s.path}.weight`;
    if (s.path === family.headPath && cfg.tieWordEmbeddings) {
      throw new LoraTsError(
        `${where}a LoRA on ${s.path} of a tied model cannot be expressed in a GGUF adapter (the base GGUF has no separate output.weight); merge instead (export gguf --adapter)`,
      );
    }
    const name = ggufName(cfg, weight);
    const keys = loraKeys(s.path, s.kind);
    const A = adapter.tensors.get(keys.A)!;
    const B = adapter.tensors.get(keys.B)!;
    const r = A.shape[0]!;
    // llama.cpp applies alpha / r; lora-ts applies s: the rest goes into B.
    const fold = (s.scaling * r) / alpha;
    const heads = ggufRopeHeads(cfg, weight);
    const embedding = s.kind === "embedding";
    tensors.push({
      name: `${name}.lora_a`,
      shape: embedding ? [A.shape[1]!, r] : A.shape,
      type: "f32",
      data: () => (embedding ? transpose(A.data, r, A.shape[1]!) : A.data),
    });
    tensors.push({
      name: `${name}.lora_b`,
      shape: B.shape,
      type: "f32",
      data: () => {
        let b = fold === 1 ? B.data : B.data.map((v) => v * fold);
        if (heads !== null) b = permuteRopeRows(b, heads, r, "fromHf");
        return b;
      },
    });
  }
  writeGguf(
    opts.out,
    [
      meta.str("general.architecture", ggufArchitecture(cfg)),
      meta.str("general.type", "adapter"),
      meta.str("general.name", opts.adapter.split(/[\\/]/).filter(Boolean).pop() ?? "adapter"),
      meta.str("adapter.type", "lora"),
      meta.f32("adapter.lora.alpha", alpha),
    ],
    tensors,
  );
  return { modules: selected.length };
}
