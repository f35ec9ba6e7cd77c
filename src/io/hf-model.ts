/**
 * A Hugging Face model folder: config.json, weights in model.safetensors or in shards listed by
 * model.safetensors.index.json, and the optional generation_config.json / tokenizer_config.json.
 *
 * Weights are never loaded here: the store records where each tensor's bytes are (real file, byte
 * offset, length) so graphs can point initializers straight into the files (external data). HF cache
 * snapshots are symlinks into ../blobs, and onnxruntime refuses external data reached through a
 * symlink or a ".." path, so every file is resolved with realpath and the folder holding most of the
 * weights becomes `externalDir`; tensors in any other real folder are read into memory instead.
 *
 * Every expected tensor is checked (present, float, right shape) when the folder is opened, so a
 * wrong checkpoint fails at once with one line naming the tensor and the file.
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import type { AnyTypedArray, DType } from "../graph/dtype.js";
import { isFloat } from "../graph/dtype.js";
import { fmtShape } from "../graph/shape.js";
import type { ModelConfig } from "../models/config.js";
import { parseModelConfig } from "../models/config.js";
import { gpt2TensorShapes } from "../models/gpt2.js";
import { llamaTensorShapes } from "../models/llama.js";
import { FileFormatError } from "../util/errors.js";
import { SafetensorsFile, type TensorInfo } from "./safetensors.js";

export interface WeightInfo {
  dtype: DType;
  shape: number[];
  /** Real path (symlinks resolved) of the safetensors file holding the tensor. */
  file: string;
  /** Absolute byte offset and length of the tensor's data in `file`. */
  offset: number;
  length: number;
}

export interface HfModel {
  dir: string;
  config: ModelConfig;
  weights: WeightStore;
  /** generation_config.json as parsed JSON, or null when absent. */
  generationConfig: Record<string, unknown> | null;
  /** tokenizer_config.json as parsed JSON (chat_template, special tokens...), or null when absent. */
  tokenizerConfig: Record<string, unknown> | null;
}

interface Entry {
  file: SafetensorsFile;
  stored: TensorInfo;
}

/** The checkpoint's tensors under canonical names (see `canonicalName`), by location. */
export class WeightStore {
  constructor(
    /** Real folder that external-data locations are relative to. */
    readonly externalDir: string,
    private readonly entries: ReadonlyMap<string, Entry>,
    private readonly aliases: ReadonlyMap<string, string>,
  ) {}

  private entry(name: string): Entry {
    const e = this.entries.get(this.aliases.get(name) ?? name);
    if (!e) throw new FileFormatError(this.externalDir, `no tensor named "${name}" in the checkpoint`);
    return e;
  }

  has(name: string): boolean {
    return this.entries.has(this.aliases.get(name) ?? name);
  }

  /** Canonical names of the stored tensors (aliases such as a tied "lm_head.weight" excluded). */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Parameters stored in the checkpoint (a tied head counted once). */
  parameterCount(): number {
    return this.names().reduce((n, name) => n + this.info(name).shape.reduce((a, b) => a * b, 1), 0);
  }

  info(name: string): WeightInfo {
    const { file, stored } = this.entry(name);
    return {
      dtype: stored.dtype,
      shape: [...stored.shape],
      file: file.path,
      offset: stored.byteOffset,
      length: stored.byteLength,
    };
  }

  /** Whether the tensor's file lies in `externalDir` (else a graph must embed its data). */
  isExternal(name: string): boolean {
    return dirname(this.entry(name).file.path) === this.externalDir;
  }

  /** As float32; see SafetensorsFile.readFloat32 for `scratch`. */
  readFloat32(name: string, scratch?: Float32Array): Float32Array {
    const { file, stored } = this.entry(name);
    return file.readFloat32(stored.name, scratch);
  }

  /** The tensor in its stored dtype (16-bit floats as raw bits). */
  readTyped(name: string): AnyTypedArray {
    const { file, stored } = this.entry(name);
    return file.readTyped(stored.name);
  }

  close(): void {
    for (const e of this.entries.values()) e.file.close();
  }
}

/** Opens and validates a Hugging Face model folder (see the file comment). */
export function openModelDir(dir: string): HfModel {
  const configPath = join(dir, "config.json");
  const config = parseModelConfig(readJson(configPath), configPath);
  const generationConfig = readOptionalJson(join(dir, "generation_config.json"));
  const tokenizerConfig = readOptionalJson(join(dir, "tokenizer_config.json"));
  const weights = openWeights(dir, config);
  return { dir, config, weights, generationConfig, tokenizerConfig };
}

/** Tensor name -> expected shape, for every tensor the model's graph reads. */
export function expectedTensors(cfg: ModelConfig): Map<string, number[]> {
  return cfg.family === "gpt2" ? gpt2TensorShapes(cfg) : llamaTensorShapes(cfg);
}

function openWeights(dir: string, cfg: ModelConfig): WeightStore {
  const { files, where, describe } = locateWeights(dir);
  const opened = new Map<string, SafetensorsFile>();
  const entries = new Map<string, Entry>();
  const rename = canonicalName(
    cfg,
    files.flatMap((f) => [...f.tensors.keys()]),
  );
  try {
    for (const f of files) {
      opened.set(f.path, f);
      for (const [name, info] of f.tensors) entries.set(rename(name), { file: f, stored: info });
    }
    const aliases = new Map<string, string>();
    // A tied head reads the embedding table; HF ties even when a copy of lm_head is stored.
    if (cfg.tieWordEmbeddings) {
      aliases.set(
        "lm_head.weight",
        cfg.family === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight",
      );
    }
    const store = new WeightStore(mainFolder(files), entries, aliases);
    for (const [name, shape] of expectedTensors(cfg)) {
      if (!store.has(name)) {
        const file = where(aliases.get(name) ?? name);
        throw new FileFormatError(file, `missing tensor "${name}" (expected shape ${fmtShape(shape)})`);
      }
      const info = store.info(name);
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
        throw new FileFormatError(
          describe(info.file),
          `tensor "${name}" has shape ${fmtShape(info.shape)}, expected ${fmtShape(shape)}`,
        );
      }
      if (!isFloat(info.dtype))
        throw new FileFormatError(
          describe(info.file),
          `tensor "${name}" has dtype ${info.dtype}, not a float type`,
        );
    }
    return store;
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

/**
 * The checkpoint's safetensors files, opened. `where(name)` names the file a missing tensor was
 * expected in (the shard the index points to, else the index or model.safetensors); `describe`
 * maps a real path back to the path inside `dir` for messages.
 */
function locateWeights(dir: string) {
  const single = join(dir, "model.safetensors");
  const indexPath = join(dir, "model.safetensors.index.json");
  const shown = new Map<string, string>();
  const open = (p: string) => {
    if (!existsSync(p)) throw new FileFormatError(p, "not found");
    const f = SafetensorsFile.open(realpathSync(p));
    shown.set(f.path, p);
    return f;
  };
  const describe = (real: string) => shown.get(real) ?? real;
  if (existsSync(single)) {
    const files = [open(single)];
    return { files, where: () => single, describe };
  }
  if (!existsSync(indexPath)) {
    const hint = existsSync(join(dir, "pytorch_model.bin"))
      ? " (only pytorch_model.bin is present: convert it to safetensors)"
      : ` (nor ${indexPath})`;
    throw new FileFormatError(single, `not found${hint}`);
  }
  const index = readJson(indexPath);
  const map = index["weight_map"];
  if (map === null || typeof map !== "object" || Array.isArray(map))
    throw new FileFormatError(indexPath, `"weight_map" must be an object of tensor name -> shard file`);
  const weightMap = map as Record<string, unknown>;
  const shardNames = [...new Set(Object.values(weightMap))];
  for (const s of shardNames) {
    if (typeof s !== "string" || s.includes("/") || s.includes("\\") || s === "..")
      throw new FileFormatError(indexPath, `weight_map names an invalid shard file ${JSON.stringify(s)}`);
  }
  const files: SafetensorsFile[] = [];
  try {
    for (const s of shardNames) files.push(open(join(dir, s as string)));
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
  const where = (name: string) => {
    const shard = weightMap[name] ?? weightMap[name.replace(/^transformer\./, "")];
    return typeof shard === "string" ? join(dir, shard) : indexPath;
  };
  return { files, where, describe };
}

/**
 * Stored name -> canonical name. Canonical names are the HF module paths of the *ForCausalLM model:
 * "model.layers.0.self_attn.q_proj.weight" for Llama, "transformer.h.0.attn.c_attn.weight" for
 * GPT-2. The hub's gpt2 checkpoint was saved from GPT2Model and lacks the "transformer." prefix.
 */
function canonicalName(cfg: ModelConfig, stored: string[]): (name: string) => string {
  if (cfg.family !== "gpt2" || stored.some((n) => n.startsWith("transformer."))) return (n) => n;
  return (n) => (n.startsWith("lm_head.") ? n : `transformer.${n}`);
}

/** The real folder holding the most weight files: the one external data is made relative to. */
function mainFolder(files: SafetensorsFile[]): string {
  const counts = new Map<string, number>();
  for (const f of files) counts.set(dirname(f.path), (counts.get(dirname(f.path)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]![0];
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileFormatError(path, code === "ENOENT" ? "not found" : `cannot read: ${code ?? String(e)}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(path, `invalid JSON: ${(e as Error).message.split("\n")[0]}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new FileFormatError(path, "expected a JSON object");
  return v as Record<string, unknown>;
}

function readOptionalJson(path: string): Record<string, unknown> | null {
  return existsSync(path) ? readJson(path) : null;
}
