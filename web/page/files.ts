/**
 * Getting bytes into the page: the served default model (fetched from /models/default/), a model
 * folder or adapter files the user picks (read with File.arrayBuffer, keyed by base name, as the
 * worker's FileMap wants), and a data file's text.
 */
import { DEFAULT_MODEL_URL, type FileMap, isModelFileName } from "../../src/web/protocol.js";

export { DEFAULT_MODEL_URL, isModelFileName };

export const ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"] as const;

async function fetchBytes(url: string, optional: boolean): Promise<Uint8Array | null> {
  const res = await fetch(url);
  if (res.status === 404 && optional) return null;
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

export async function fetchText(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.text();
}

/** The default model's files from the server; a sharded model's shards by its index. */
export async function fetchDefaultModel(): Promise<FileMap> {
  const files: FileMap = {};
  for (const [name, optional] of [
    ["config.json", false],
    ["tokenizer.json", false],
    ["tokenizer_config.json", true],
    ["generation_config.json", true],
  ] as const) {
    const bytes = await fetchBytes(DEFAULT_MODEL_URL + name, optional);
    if (bytes !== null) files[name] = bytes;
  }
  const index = await fetchBytes(`${DEFAULT_MODEL_URL}model.safetensors.index.json`, true);
  if (index === null) {
    files["model.safetensors"] = (await fetchBytes(`${DEFAULT_MODEL_URL}model.safetensors`, false))!;
    return files;
  }
  files["model.safetensors.index.json"] = index;
  const map = (JSON.parse(new TextDecoder().decode(index)) as { weight_map?: Record<string, string> })
    .weight_map;
  for (const shard of new Set(Object.values(map ?? {})))
    files[shard] = (await fetchBytes(DEFAULT_MODEL_URL + encodeURIComponent(shard), false))!;
  return files;
}

/** Picked files as a FileMap keyed by base name, keeping those `keep` accepts. */
export async function readPicked(list: FileList | File[], keep: (name: string) => boolean): Promise<FileMap> {
  const files: FileMap = {};
  for (const f of Array.from(list)) {
    if (!keep(f.name)) continue;
    if (files[f.name] !== undefined)
      throw new Error(`${f.name} is picked twice (from ${f.webkitRelativePath || "two places"})`);
    files[f.name] = new Uint8Array(await f.arrayBuffer());
  }
  return files;
}

/** A model folder's label: the folder name of its files (webkitRelativePath's first part). */
export function folderLabel(list: FileList | File[]): string {
  const first = Array.from(list).find((f) => f.webkitRelativePath !== "");
  return first?.webkitRelativePath.split("/")[0] ?? "picked model";
}

/** The buffers to transfer (not copy) to the worker. */
export function transferables(files: FileMap): ArrayBuffer[] {
  return Object.values(files).map((b) => b.buffer as ArrayBuffer);
}
