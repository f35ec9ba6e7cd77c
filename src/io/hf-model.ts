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
import { basename, dirname, join } from "node:path";
import { FileFormatError } from "../util/errors.js";
import { openSafetensors, type SafetensorsFile } from "./safetensors.js";
import {
  indexShards,
  type OpenedWeights,
  type OpenWeightsOptions,
  parseJsonObject,
  weightStore,
} from "./weight-store.js";

export type { ExternalFiles, OpenedWeights, OpenWeightsOptions, WeightInfo } from "./weight-store.js";
export { WeightStore } from "./weight-store.js";

/** Opens a model folder's safetensors files (single file or shards) into a weight store. */
export function openWeights(dir: string, opts: OpenWeightsOptions = {}): OpenedWeights {
  const { files, where, describe } = locateWeights(dir);
  try {
    const dir = mainFolder(files);
    const at = (f: SafetensorsFile) => (dirname(f.path) === dir ? basename(f.path) : null);
    const { store, rename } = weightStore(files, { kind: "folder", dir }, at, opts);
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
    const f = openSafetensors(realpathSync(p));
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
  const { weightMap, shards } = indexShards(index, indexPath);
  const files: SafetensorsFile[] = [];
  try {
    for (const s of shards) files.push(open(join(dir, s)));
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
  return parseJsonObject(text, path);
}

/** As readJsonObject, or null when the file does not exist. */
export function readOptionalJsonObject(path: string): Record<string, unknown> | null {
  return existsSync(path) ? readJsonObject(path) : null;
}
