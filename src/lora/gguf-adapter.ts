/**
 * `--adapter adapter.gguf`: a llama.cpp GGUF LoRA adapter (written by `lora-ts export gguf-adapter` or
 * llama.cpp's convert_lora_to_gguf.py) turned back into a PEFT adapter folder, the inverse of
 * export-gguf-adapter.ts. It needs the base model: GGUF names become HF module paths through the
 * family's name table, and for the "llama" architecture B's rows are un-permuted with the base's
 * (kv) head counts.
 *
 * What comes back: r per module from A's shape (the most common as `r`, the rest in rank_pattern),
 * lora_alpha = adapter.lora.alpha, target_modules from the tensors present, and B as stored. The
 * per-module scale llama.cpp applies is alpha / r, which is exactly PEFT's plain LoRA scale, so
 * the rsLoRA / pattern factors the exporter folded into B need nothing more here.
 *
 * The folder is written once into `<cache>/gguf-adapter/<key>`, key = sha256 of the file's real path,
 * size and mtime and the base's folder and config.json, assembled under a temporary name and renamed
 * into place (as models/model-path.ts does for GGUF models).
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import { type GgufFile, readGguf } from "../io/gguf.js";
import { permuteRopeRows } from "../io/rope-rows.js";
import type { ModelConfig } from "../models/config.js";
import { ggufArchitecture, ggufRopeHeads } from "../models/export-gguf.js";
import { familyOf, hfTensorName } from "../models/family.js";
import type { ModuleInfo } from "../models/module.js";
import { listModules } from "../models/modules.js";
import { openModelDir } from "../models/open-model.js";
import { writeDirAtomic } from "../util/atomic.js";
import { cacheRoot } from "../util/cache-root.js";
import { LoraTsError } from "../util/errors.js";
import { type Adapter, type AdapterTensor, loraKeys, validateAdapter } from "./adapter.js";
import { writeAdapterFiles } from "./adapter-files.js";
import { makeLoraConfig } from "./config.js";

function cacheKey(file: string, modelDir: string): string {
  const real = realpathSync(file);
  const st = statSync(real);
  const base = realpathSync(modelDir);
  const config = readFileSync(join(base, "config.json"));
  return createHash("sha256")
    .update(`${real}\0${st.size}\0${st.mtimeMs}\0${base}\0`)
    .update(config)
    .digest("hex");
}

/**
 * The PEFT folder for GGUF adapter `file` on the base model in `modelDir`, converted on first use.
 * Without `modelDir` (a command with no --model) the GGUF cannot be read and is refused.
 */
export async function ggufAdapterFolder(file: string, modelDir: string | undefined): Promise<string> {
  if (modelDir === undefined) {
    throw new LoraTsError(`${file}: a GGUF adapter can only be used with a base model (--model)`);
  }
  const dir = join(cacheRoot(), "gguf-adapter", cacheKey(file, modelDir));
  const complete = () => existsSync(join(dir, "adapter_model.safetensors"));
  if (complete()) return dir;
  const adapter = ggufToPeft(file, modelDir);
  try {
    await writeDirAtomic(dir, (tmp) => writeAdapterFiles(tmp, adapter), { replace: true });
  } catch (e) {
    if (complete()) return dir; // another process finished the same conversion first
    throw e;
  }
  return dir;
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c]!;
  return t;
}

function metaString(g: GgufFile, key: string): string | undefined {
  const v = g.get(key);
  return typeof v === "string" ? v : undefined;
}

/** Reads a GGUF LoRA adapter as a PEFT Adapter for the base model in `modelDir`. */
export function ggufToPeft(file: string, modelDir: string): Adapter {
  const model = openModelDir(modelDir);
  model.weights.close(); // only the config is needed
  const cfg = model.config;
  const g = readGguf(file);
  const fail = (what: string): never => {
    throw new LoraTsError(`${file}: ${what}`);
  };
  const type = metaString(g, "general.type");
  if (type !== "adapter")
    fail(`not a LoRA adapter (general.type ${JSON.stringify(type ?? null)}, expected "adapter")`);
  const adapterType = metaString(g, "adapter.type");
  if (adapterType !== "lora")
    fail(`adapter.type ${JSON.stringify(adapterType ?? null)} is not supported (only "lora")`);
  const arch = metaString(g, "general.architecture");
  const want = ggufArchitecture(cfg);
  if (arch !== want)
    fail(`architecture ${JSON.stringify(arch ?? null)} does not match the base model's "${want}"`);

  const modules = new Map(listModules(cfg).map((m) => [m.path, m]));
  const found = readPairs(g, cfg, modules, fail);
  const alphaValue = g.get("adapter.lora.alpha");
  const alpha = typeof alphaValue === "number" ? alphaValue : 0;
  return buildAdapter(file, cfg, found, alpha, modules);
}

interface Pair {
  module: ModuleInfo;
  r: number;
  A: AdapterTensor;
  B: AdapterTensor;
}

/** The lora_a / lora_b pairs, as PEFT tensors under HF module paths. */
function readPairs(
  g: GgufFile,
  cfg: ModelConfig,
  modules: Map<string, ModuleInfo>,
  fail: (what: string) => never,
): Pair[] {
  const family = familyOf(cfg);
  const names = new Set(g.tensors.map((t) => t.name));
  const pairs: Pair[] = [];
  for (const t of g.tensors) {
    const m = /^(.+)\.lora_(a|b)$/.exec(t.name);
    if (!m) fail(`tensor "${t.name}" is not a LoRA tensor (<name>.lora_a / .lora_b)`);
    const base = m![1]!;
    if (m![2] === "b") {
      if (!names.has(`${base}.lora_a`)) fail(`tensor "${t.name}" has no matching "${base}.lora_a"`);
      continue;
    }
    if (!names.has(`${base}.lora_b`)) fail(`tensor "${t.name}" has no matching "${base}.lora_b"`);
    const hf = hfTensorName(family, base);
    const module = hf?.endsWith(".weight") ? modules.get(hf.slice(0, -7)) : undefined;
    if (!module) fail(`tensor "${t.name}": the base model has no module for "${base}"`);
    const mod = module!;
    const a = g.tensorInfo(t.name);
    const b = g.tensorInfo(`${base}.lora_b`);
    const embedding = mod.kind === "embedding";
    // numpy shapes: A [r, in] (token_embd: [vocab, r]), B [out, r].
    const r = embedding ? a.shape[1] : a.shape[0];
    const aIn = embedding ? a.shape[0] : a.shape[1];
    const shapeStr = (s: number[]) => `[${s.join(", ")}]`;
    if (a.shape.length !== 2 || b.shape.length !== 2 || r === undefined || b.shape[1] !== r) {
      fail(
        `tensors "${base}.lora_a" ${shapeStr(a.shape)} and "${base}.lora_b" ${shapeStr(b.shape)} do not form a LoRA pair`,
      );
    }
    if (aIn !== mod.inFeatures || b.shape[0] !== mod.outFeatures) {
      fail(
        `tensor "${base}.lora_a" ${shapeStr(a.shape)} / "${base}.lora_b" ${shapeStr(b.shape)} does not fit the base model's ${mod.path} (in ${mod.inFeatures}, out ${mod.outFeatures})`,
      );
    }
    let A = g.readTensor(t.name);
    if (embedding) A = transpose(A, aIn!, r!);
    let B = g.readTensor(`${base}.lora_b`);
    const heads = ggufRopeHeads(cfg, hf!);
    if (heads !== null) B = permuteRopeRows(B, heads, r!, "toHf");
    pairs.push({
      module: mod,
      r: r!,
      A: { shape: [r!, mod.inFeatures], data: A } as AdapterTensor,
      B: { shape: [mod.outFeatures, r!], data: B } as AdapterTensor,
    });
  }
  if (pairs.length === 0) fail("has no LoRA tensors");
  return pairs;
}

function buildAdapter(
  file: string,
  cfg: ModelConfig,
  pairs: Pair[],
  ggufAlpha: number,
  modules: Map<string, ModuleInfo>,
): Adapter {
  // The most common rank is `r`; the others go into rank_pattern under their full module path.
  const counts = new Map<number, number>();
  for (const p of pairs) counts.set(p.r, (counts.get(p.r) ?? 0) + 1);
  const r = [...counts].sort((x, y) => y[1] - x[1] || x[0] - y[0])[0]![0];
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  // llama.cpp: no (or zero) alpha means a scale of 1 for every module, i.e. alpha = that module's r.
  const alpha = ggufAlpha > 0 ? ggufAlpha : r;
  for (const p of pairs) {
    if (p.r !== r) rankPattern[p.module.path] = p.r;
    if (!(ggufAlpha > 0) && p.r !== r) alphaPattern[p.module.path] = p.r;
  }
  // target_modules: a leaf name when every module of that name is adapted, else the full paths.
  const present = new Set(pairs.map((p) => p.module.path));
  const leaf = (path: string) => path.slice(path.lastIndexOf(".") + 1);
  const targets: string[] = [];
  for (const name of [...new Set(pairs.map((p) => leaf(p.module.path)))]) {
    const all = [...modules.values()].filter((m) => leaf(m.path) === name).map((m) => m.path);
    if (all.every((path) => present.has(path))) targets.push(name);
    else targets.push(...all.filter((path) => present.has(path)));
  }
  const config = makeLoraConfig({
    r,
    lora_alpha: alpha,
    target_modules: targets,
    rank_pattern: rankPattern,
    alpha_pattern: alphaPattern,
    fan_in_fan_out: pairs.some((p) => p.module.fanInFanOut === true),
    base_model_name_or_path: null,
  });
  const tensors = new Map<string, AdapterTensor>();
  for (const p of pairs) {
    const keys = loraKeys(p.module.path, p.module.kind);
    tensors.set(keys.A, p.A);
    tensors.set(keys.B, p.B);
  }
  const adapter: Adapter = { config, tensors, source: file };
  // The same checks a PEFT folder gets, naming the .gguf file.
  validateAdapter(adapter, [...modules.values()], { modelType: cfg.modelType });
  return adapter;
}
