/**
 * Hub ids (`org/name[@revision]`) wherever a model or adapter folder is accepted: the id becomes a
 * local snapshot folder in the Hugging Face cache (hub-cache.ts), downloading only what lora-ts
 * reads. The revision (branch, tag) is resolved to a commit and the file tree listed with
 * @huggingface/hub (modelInfo, listFiles); the bytes come through hub-download.ts, which resumes.
 *
 * Environment, as Python's huggingface_hub reads it: HF_ENDPOINT (the hub URL; the library does not
 * read it itself), HF_TOKEN (else HUGGING_FACE_HUB_TOKEN, else the file HF_TOKEN_PATH or
 * HF_HOME/token that `huggingface-cli login` writes), HF_HUB_OFFLINE (cache only),
 * HF_HUB_DISABLE_PROGRESS_BARS, and the cache variables of hub-cache.ts.
 *
 * A snapshot already in the cache with everything lora-ts needs is used without a request, also for
 * a branch name like "main" (its refs/ file says which commit): `lora-ts download` always asks the
 * hub, so that is how a cached branch is updated.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { LoraTsError } from "../util/errors.js";
import { cachedCommit, snapshotComplete, writeRef } from "./hub-cache.js";
import {
  fetchFiles,
  type HubId,
  type HubRepo,
  hubError,
  hubOffline,
  hubRepo,
  listRepoFiles,
  parseHubId,
  progressLine,
  resolveCommit,
} from "./hub-repo.js";

export type { HubId } from "./hub-repo.js";
export { hubEndpoint, hubOffline, hubToken, parseHubId } from "./hub-repo.js";

/**
 * The hub id `p` names, or null. A path that exists locally always wins: `org/name` is read as a
 * hub id only when no file or folder of that name is there, so local folders keep working as before.
 */
export function hubIdFor(p: string): HubId | null {
  return existsSync(p) ? null : parseHubId(p);
}

/** What a model needs (top-level files only); never .bin pickles, which lora-ts cannot read anyway. */
export const MODEL_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
  "chat_template.jinja",
  "model.safetensors",
  "model.safetensors.index.json",
  "model-*-of-*.safetensors",
];
export const ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"];
/** Pickled weights are never fetched, whatever --include says: loading them would run code. */
const PICKLE_RE = /\.(bin|pt|pth|pkl|pickle|ckpt)$/i;

/** A glob as a whole-path regex: `*` and `?` stay within one folder, `**` crosses folders. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[\\^$.|+()[\]{}]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export interface HubSnapshotOptions {
  kind: "model" | "adapter";
  /** Overrides an `@revision` in the id; default "main". */
  revision?: string;
  /** Globs of the files to fetch instead of the kind's own list (`lora-ts download --include`). */
  include?: string[];
  /** Draw a progress line on stderr; default: when stderr is a terminal. */
  progress?: boolean;
  /** Ask the hub even when the cache has the snapshot (`lora-ts download`). */
  refresh?: boolean;
}

/** The local snapshot folder for hub id `id`, downloading what is missing (see the file comment). */
export async function hubSnapshot(id: string, opts: HubSnapshotOptions): Promise<string> {
  const r = hubRepo(id, opts.kind, opts.revision);
  const cached = cachedCommit(r.storage, r.revision);
  const cachedDir = cached && join(r.storage, "snapshots", cached);
  if (cachedDir && !opts.refresh && !opts.include && snapshotComplete(cachedDir, opts.kind)) return cachedDir;
  if (hubOffline()) {
    if (cachedDir && snapshotComplete(cachedDir, opts.kind)) return cachedDir;
    throw new LoraTsError(
      `${r.what}: not in the hub cache ${r.cache} and HF_HUB_OFFLINE is set: download it first (lora-ts download ${r.what}) or unset HF_HUB_OFFLINE`,
    );
  }
  try {
    return await download(r, opts);
  } catch (e) {
    throw hubError(e, r);
  }
}

async function download(r: HubRepo, opts: HubSnapshotOptions): Promise<string> {
  const commit = await resolveCommit(r);
  const wanted = (opts.include ?? (opts.kind === "model" ? MODEL_FILES : ADAPTER_FILES)).map(globToRegExp);
  const files = (await listRepoFiles(r, commit)).filter(
    (f) => !PICKLE_RE.test(f.path) && wanted.some((re) => re.test(f.path)),
  );
  checkListing(
    r,
    opts,
    files.map((f) => f.path),
  );
  const snapshot = await fetchFiles(r, commit, files, progressLine(opts.progress));
  writeRef(r.storage, r.revision, commit);
  return snapshot;
}

/** Before any byte is fetched: the repository has what the kind needs (or --include matched). */
function checkListing(ctx: HubRepo, opts: HubSnapshotOptions, paths: string[]): void {
  if (opts.include) {
    if (paths.length === 0) {
      throw new LoraTsError(
        `${ctx.what}: no file matches --include ${opts.include.join(" ")} (pickles are never fetched)`,
      );
    }
    return;
  }
  const has = (p: string) => paths.includes(p);
  if (ctx.kind === "adapter") {
    const missing = ADAPTER_FILES.filter((p) => !has(p));
    if (missing.length > 0) {
      throw new LoraTsError(
        `${ctx.what}: not a PEFT adapter repository with safetensors weights (no ${missing.join(", ")})`,
      );
    }
    return;
  }
  if (!has("config.json"))
    throw new LoraTsError(`${ctx.what}: no config.json in the repository: not a model`);
  if (!paths.some((p) => p.endsWith(".safetensors"))) {
    throw new LoraTsError(
      `${ctx.what}: no model*.safetensors weights in the repository (lora-ts never loads .bin pickles)`,
    );
  }
}
