/**
 * A Hugging Face model folder's files: the JSON files (config.json, generation_config.json,
 * tokenizer_config.json) read as plain objects, and the weights in model.safetensors or in shards
 * listed by model.safetensors.index.json. Nothing here knows a model family: which tensors a model
 * needs, how a family renames them and which are tied is models/open-model.ts's business.
 *
 * Weights are never loaded here: the store records where each tensor's bytes are (real file, byte
 * offset, length) so graphs can point initializers straight into the files (external data). HF cache
 * snapshots are symlinks into ../blobs, and onnxruntime refuses external data reached through a
 * symlink or a ".." path, so every file is resolved with realpath and the folder holding most of the
 * weights becomes `externalDir`; tensors in any other real folder are read into memory instead.
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import type { AnyTypedArray, DType } from "../graph/dtype.js";
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

interface Entry {
  file: SafetensorsFile;
  stored: TensorInfo;
}

/** The checkpoint's tensors under the names the opener gave them (see OpenWeightsOptions), by location. */
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

export interface OpenWeightsOptions {
  /** Stored name -> name in the store, given all stored names (default: unchanged). */
  rename?: (stored: readonly string[]) => (name: string) => string;
  /** Further names that read another tensor (a tied head -> the embedding table). */
  aliases?: ReadonlyMap<string, string>;
}

export interface OpenedWeights {
  store: WeightStore;
  /** The file a tensor (by store name) was expected in, for "missing tensor" messages. */
  where(name: string): string;
  /** A real path as the path inside the folder, for messages. */
  describe(realPath: string): string;
}

/** Opens a model folder's safetensors files (single file or shards) into a weight store. */
export function openWeights(dir: string, opts: OpenWeightsOptions = {}): OpenedWeights {
  const { files, where, describe } = locateWeights(dir);
  const entries = new Map<string, Entry>();
  try {
    const rename = (opts.rename ?? (() => (n: string) => n))(files.flatMap((f) => [...f.tensors.keys()]));
    for (const f of files) {
      for (const [name, info] of f.tensors) entries.set(rename(name), { file: f, stored: info });
    }
    const store = new WeightStore(mainFolder(files), entries, opts.aliases ?? new Map());
    return { store, where: (name) => where(name, rename), describe };
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

/**
 * The checkpoint's safetensors files, opened. `where(name, rename)` names the file a missing tensor
 * was expected in (the shard the index points to, else the index or model.safetensors); `describe`
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
    const where = (_name: string, _rename: (stored: string) => string) => single;
    return { files, where, describe };
  }
  if (!existsSync(indexPath)) {
    const hint = existsSync(join(dir, "pytorch_model.bin"))
      ? " (only pytorch_model.bin is present: convert it to safetensors)"
      : ` (nor ${indexPath})`;
    throw new FileFormatError(single, `not found${hint}`);
  }
  const index = readJsonObject(indexPath);
  const map = index["weight_map"];
  if (map === null || typeof map !== "object" || Array.isArray(map))
    throw new FileFormatError(indexPath, `"weight_map" must be an object of tensor name -> shard file`);
  const weightMap = map as Record<string, unknown>;
  const shardNames = [...new Set(Object.values(weightMap))];
  if (shardNames.length === 0) throw new FileFormatError(indexPath, `"weight_map" lists no tensors`);
  for (const s of shardNames) {
    // A file name in the folder: no path, and no control character (it is quoted raw in messages).
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    if (typeof s !== "string" || /[/\\\x00-\x1f\x7f]/.test(s) || s === "" || s === "." || s === "..")
      throw new FileFormatError(indexPath, `weight_map names an invalid shard file ${JSON.stringify(s)}`);
  }
  const files: SafetensorsFile[] = [];
  try {
    for (const s of shardNames) files.push(open(join(dir, s as string)));
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
  // The index lists stored names; a missing tensor is asked for by its name in the store.
  const where = (name: string, rename: (n: string) => string) => {
    const stored = Object.keys(weightMap).find((k) => rename(k) === name) ?? name;
    const shard = weightMap[stored];
    return typeof shard === "string" ? join(dir, shard) : indexPath;
  };
  return { files, where, describe };
}

/** The real folder holding the most weight files: the one external data is made relative to. */
function mainFolder(files: SafetensorsFile[]): string {
  const counts = new Map<string, number>();
  for (const f of files) counts.set(dirname(f.path), (counts.get(dirname(f.path)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]![0];
}

/** A JSON file holding an object; a one-line FileFormatError otherwise. */
export function readJsonObject(path: string): Record<string, unknown> {
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
    // V8 quotes the start of the text, control characters and all: one line needs both \r and \n gone.
    throw new FileFormatError(path, `invalid JSON: ${(e as Error).message.replace(/[\r\n]+/g, " ")}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new FileFormatError(path, "expected a JSON object");
  return v as Record<string, unknown>;
}

/** As readJsonObject, or null when the file does not exist. */
export function readOptionalJsonObject(path: string): Record<string, unknown> | null {
  return existsSync(path) ? readJsonObject(path) : null;
}
