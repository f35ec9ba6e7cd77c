/**
 * A checkpoint's tensors, by name, over opened safetensors files: what each is (dtype, shape) and where
 * its bytes are, so graphs can point initializers straight into the files (external data) and the
 * trainer can read the few it needs (a bias, an embedding row, PiSSA's weights). Platform-neutral:
 * io/hf-model.ts opens a folder's files in Node, web/ opens files held in memory.
 */
import type { AnyTypedArray, DType } from "../graph/dtype.js";
import { FileFormatError } from "../util/errors.js";
import type { SafetensorsFile, TensorInfo } from "./safetensors-format.js";

export interface WeightInfo {
  dtype: DType;
  shape: number[];
  /** The safetensors file holding the tensor: its real path (symlinks resolved) in Node, its name in a browser. */
  file: string;
  /**
   * Where a graph's external data finds the file: its path relative to the store's `externalDir`, or
   * null when the file lies elsewhere and a graph must embed the tensor's data.
   */
  location: string | null;
  /** The tensor's name inside `file` (the store may have renamed it). */
  storedName: string;
  /** Absolute byte offset and length of the tensor's data in `file`. */
  offset: number;
  length: number;
}

export interface WeightEntry {
  file: SafetensorsFile;
  stored: TensorInfo;
  /** See WeightInfo.location. */
  location: string | null;
}

/**
 * How sessions reach the files' bytes: a real folder that external-data locations are relative to
 * (Node), or the files' bytes by location (a browser, which has no file system).
 */
export type ExternalFiles =
  | { kind: "folder"; dir: string }
  | { kind: "bytes"; files: { path: string; data: Uint8Array }[] };

/** The checkpoint's tensors under the names the opener gave them (see OpenWeightsOptions), by location. */
export class WeightStore {
  constructor(
    /** Where sessions find the files that external-data locations name. */
    readonly external: ExternalFiles,
    private readonly entries: ReadonlyMap<string, WeightEntry>,
    private readonly aliases: ReadonlyMap<string, string>,
  ) {}

  /** Real folder that external-data locations are relative to ("" in a browser), for messages and sessions. */
  get externalDir(): string {
    return this.external.kind === "folder" ? this.external.dir : "";
  }

  /** The session options that let onnxruntime read external data (see ExternalFiles). */
  sessionFiles(): { externalDataDir?: string; externalData?: { path: string; data: Uint8Array }[] } {
    return this.external.kind === "folder"
      ? { externalDataDir: this.external.dir }
      : { externalData: this.external.files };
  }

  private entry(name: string): WeightEntry {
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
    const { file, stored, location } = this.entry(name);
    return {
      dtype: stored.dtype,
      shape: [...stored.shape],
      file: file.path,
      location,
      storedName: stored.name,
      offset: stored.byteOffset,
      length: stored.byteLength,
    };
  }

  /** Whether a graph can point at the tensor's file (else it must embed its data). */
  isExternal(name: string): boolean {
    return this.entry(name).location !== null;
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

/** The store over `files`, each tensor under `rename(stored name)`, with `location(file)` as WeightInfo.location. */
export function weightStore(
  files: readonly SafetensorsFile[],
  external: ExternalFiles,
  location: (file: SafetensorsFile) => string | null,
  opts: OpenWeightsOptions = {},
): { store: WeightStore; rename: (name: string) => string } {
  const entries = new Map<string, WeightEntry>();
  const rename = (opts.rename ?? (() => (n: string) => n))(files.flatMap((f) => [...f.tensors.keys()]));
  for (const f of files) {
    const at = location(f);
    for (const [name, info] of f.tensors) entries.set(rename(name), { file: f, stored: info, location: at });
  }
  return { store: new WeightStore(external, entries, opts.aliases ?? new Map()), rename };
}

/**
 * The shard files a model.safetensors.index.json names (its "weight_map": tensor name -> file name),
 * each checked to be a plain file name in the folder.
 */
export function indexShards(
  index: Record<string, unknown>,
  indexPath: string,
): { weightMap: Record<string, unknown>; shards: string[] } {
  const map = index["weight_map"];
  if (map === null || typeof map !== "object" || Array.isArray(map))
    throw new FileFormatError(indexPath, `"weight_map" must be an object of tensor name -> shard file`);
  const weightMap = map as Record<string, unknown>;
  const shards = [...new Set(Object.values(weightMap))];
  if (shards.length === 0) throw new FileFormatError(indexPath, `"weight_map" lists no tensors`);
  for (const s of shards) {
    // A file name in the folder: no path, and no control character (it is quoted raw in messages).
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    if (typeof s !== "string" || /[/\\\x00-\x1f\x7f]/.test(s) || s === "" || s === "." || s === "..")
      throw new FileFormatError(indexPath, `weight_map names an invalid shard file ${JSON.stringify(s)}`);
  }
  return { weightMap, shards: shards as string[] };
}

/** JSON text holding an object; a one-line FileFormatError naming `path` otherwise. */
export function parseJsonObject(text: string, path: string): Record<string, unknown> {
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
