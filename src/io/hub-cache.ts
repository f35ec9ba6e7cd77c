/**
 * The Hugging Face hub cache, laid out exactly as Python's huggingface_hub lays it out, so that a
 * model or data set either side downloaded is reused by the other (data sets live in
 * `datasets--org--name`, the same way):
 *
 *   <cache>/models--org--name/blobs/<etag>                      the bytes, named by the hub's ETag
 *                                                               (sha256 for LFS files, git sha1 else)
 *   <cache>/models--org--name/snapshots/<commit>/<path>         relative symlink to ../../blobs/<etag>
 *   <cache>/models--org--name/refs/<revision>                   the commit a branch or tag pointed to
 *
 * <cache> is HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (the same order as
 * huggingface_hub's constants.py and @huggingface/hub's getHFHubCachePath, which we call).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { getHFHubCachePath, getRepoFolderName } from "@huggingface/hub";
import { writeFileAtomic } from "../util/atomic.js";

export const COMMIT_RE = /^[0-9a-f]{40}$/;

/** The hub cache root, read from the environment on every call (tests change it). */
export function hubCacheDir(): string {
  return getHFHubCachePath();
}

export type RepoType = "model" | "dataset";

/** `<cache>/models--org--name` (or `datasets--org--name`). */
export function repoFolder(cache: string, repo: string, type: RepoType = "model"): string {
  return join(cache, getRepoFolderName({ type, name: repo }));
}

/** Makes blobs/ and snapshots/<commit>/ of a repository's cache folder. */
export function mkdirRepo(storage: string, commit: string): void {
  mkdirSync(join(storage, "blobs"), { recursive: true });
  mkdirSync(join(storage, "snapshots", commit), { recursive: true });
}

/** The commit `revision` names in the cache: itself when it is a commit hash, else refs/<revision>. */
export function cachedCommit(storage: string, revision: string): string | null {
  if (COMMIT_RE.test(revision)) return revision;
  try {
    const commit = readFileSync(join(storage, "refs", revision), "utf8").trim();
    return COMMIT_RE.test(commit) ? commit : null;
  } catch {
    return null;
  }
}

/** Records that `revision` (a branch or tag) points at `commit`, as huggingface_hub does. */
export function writeRef(storage: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const ref = join(storage, "refs", revision);
  mkdirSync(dirname(ref), { recursive: true });
  writeFileAtomic(ref, commit);
}

/** A file (following symlinks) exists. */
export function fileExists(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Points snapshots/<commit>/<path> at blobs/<etag> with a relative symlink (huggingface_hub's
 * choice: the cache folder can be moved). Made under a temporary name and renamed over, so a reader
 * never sees a missing or half-made link.
 */
export function linkBlob(storage: string, commit: string, path: string, etag: string): string {
  const pointer = join(storage, "snapshots", commit, path);
  const blob = join(storage, "blobs", etag);
  mkdirSync(dirname(pointer), { recursive: true });
  const tmp = `${pointer}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  symlinkSync(relative(dirname(pointer), blob), tmp);
  renameSync(tmp, pointer);
  return pointer;
}

/**
 * Whether a snapshot folder holds what lora-ts needs to use it without asking the hub: for a model,
 * config.json and all its safetensors weights (model.safetensors, or every shard the index names);
 * for an adapter, adapter_config.json and adapter_model.safetensors. Tokenizer files are optional
 * here as they are in a model folder.
 */
export function snapshotComplete(dir: string, kind: "model" | "adapter"): boolean {
  if (!existsSync(dir)) return false;
  if (kind === "adapter") {
    return fileExists(join(dir, "adapter_config.json")) && fileExists(join(dir, "adapter_model.safetensors"));
  }
  if (!fileExists(join(dir, "config.json"))) return false;
  if (fileExists(join(dir, "model.safetensors"))) return true;
  const index = join(dir, "model.safetensors.index.json");
  if (!fileExists(index)) return false;
  try {
    const map = (JSON.parse(readFileSync(index, "utf8")) as { weight_map?: Record<string, string> })
      .weight_map;
    const shards = new Set(Object.values(map ?? {}));
    return shards.size > 0 && [...shards].every((s) => typeof s === "string" && fileExists(join(dir, s)));
  } catch {
    return false; // a broken index: let a download (or the model loader) say what is wrong
  }
}
