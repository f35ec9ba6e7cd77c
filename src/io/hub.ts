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
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import { LoraTsError } from "../util/errors.js";
import {
  cachedCommit,
  fileExists,
  hubCacheDir,
  linkBlob,
  repoFolder,
  snapshotComplete,
  writeRef,
} from "./hub-cache.js";
import { downloadBlob, HubHttpError, ProgressLine } from "./hub-download.js";

export interface HubId {
  repo: string;
  revision: string | undefined;
}

const ID_RE = /^([A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*)(?:@([\w.][\w./-]*))?$/;

/** `org/name` or `org/name@revision`, or null when `s` is not written like a hub id. */
export function parseHubId(s: string): HubId | null {
  const m = ID_RE.exec(s);
  if (!m || s.includes("..")) return null;
  return { repo: m[1]!, revision: m[2] };
}

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

function truthy(v: string | undefined): boolean {
  return ["1", "ON", "YES", "TRUE"].includes((v ?? "").toUpperCase());
}

export function hubEndpoint(): string {
  return (process.env["HF_ENDPOINT"] || "https://huggingface.co").replace(/\/+$/, "");
}

export function hubToken(): string | undefined {
  const env = process.env["HF_TOKEN"] || process.env["HUGGING_FACE_HUB_TOKEN"];
  if (env) return env.trim();
  const home =
    process.env["HF_HOME"] || join(process.env["XDG_CACHE_HOME"] || join(homedir(), ".cache"), "huggingface");
  try {
    return readFileSync(process.env["HF_TOKEN_PATH"] || join(home, "token"), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

export function hubOffline(): boolean {
  return truthy(process.env["HF_HUB_OFFLINE"]);
}

/** The local snapshot folder for hub id `id`, downloading what is missing (see the file comment). */
export async function hubSnapshot(id: string, opts: HubSnapshotOptions): Promise<string> {
  const parsed = parseHubId(id);
  if (!parsed) throw new LoraTsError(`${id}: not a hub id (expected org/name or org/name@revision)`);
  const revision = opts.revision ?? parsed.revision ?? "main";
  if (!/^[\w.][\w./-]*$/.test(revision) || revision.includes("..")) {
    throw new LoraTsError(`${id}: invalid revision ${JSON.stringify(revision)}`);
  }
  const ctx: Ctx = {
    repo: parsed.repo,
    what: revision === "main" ? parsed.repo : `${parsed.repo}@${revision}`,
    revision,
    kind: opts.kind,
    endpoint: hubEndpoint(),
    token: hubToken(),
    cache: hubCacheDir(),
    errorCode: null,
  };
  const storage = repoFolder(ctx.cache, ctx.repo);
  const cached = cachedCommit(storage, revision);
  const cachedDir = cached && join(storage, "snapshots", cached);
  if (cachedDir && !opts.refresh && !opts.include && snapshotComplete(cachedDir, opts.kind)) return cachedDir;
  if (hubOffline()) {
    if (cachedDir && snapshotComplete(cachedDir, opts.kind)) return cachedDir;
    throw new LoraTsError(
      `${ctx.what}: not in the hub cache ${ctx.cache} and HF_HUB_OFFLINE is set: download it first (lora-ts download ${ctx.what}) or unset HF_HUB_OFFLINE`,
    );
  }
  try {
    return await download(ctx, storage, opts);
  } catch (e) {
    throw hubError(e, ctx);
  }
}

interface Ctx {
  repo: string;
  what: string;
  revision: string;
  kind: "model" | "adapter";
  endpoint: string;
  token: string | undefined;
  cache: string;
  /** X-Error-Code of the last failed response the library saw (its errors drop the headers). */
  errorCode: string | null;
}

async function download(ctx: Ctx, storage: string, opts: HubSnapshotOptions): Promise<string> {
  const fetchSeen: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (!res.ok) ctx.errorCode = res.headers.get("x-error-code");
    return res;
  };
  const common = { hubUrl: ctx.endpoint, accessToken: ctx.token, fetch: fetchSeen };
  const info = await modelInfo({
    ...common,
    name: ctx.repo,
    revision: ctx.revision,
    additionalFields: ["sha"],
  });
  const commit = info.sha;
  if (typeof commit !== "string" || !/^[0-9a-f]{40}$/.test(commit)) {
    throw new LoraTsError(`${ctx.what}: the hub at ${ctx.endpoint} gave no commit for this revision`);
  }
  const wanted = (opts.include ?? (ctx.kind === "model" ? MODEL_FILES : ADAPTER_FILES)).map(globToRegExp);
  const files = [];
  for await (const f of listFiles({ ...common, repo: ctx.repo, revision: commit, recursive: true })) {
    if (f.type === "file" && !PICKLE_RE.test(f.path) && wanted.some((re) => re.test(f.path))) files.push(f);
  }
  checkListing(
    ctx,
    opts,
    files.map((f) => f.path),
  );
  const progress =
    (opts.progress ?? (process.stderr.isTTY && !truthy(process.env["HF_HUB_DISABLE_PROGRESS_BARS"])))
      ? new ProgressLine()
      : null;
  const snapshot = join(storage, "snapshots", commit);
  mkdirSync(join(storage, "blobs"), { recursive: true });
  mkdirSync(snapshot, { recursive: true });
  for (const f of files) {
    if (fileExists(join(snapshot, f.path))) continue;
    // The blob's name is the hub's ETag: the LFS sha256 for large files, the git blob id otherwise;
    // huggingface_hub names it the same way (from X-Linked-Etag / ETag), so either side reuses it.
    const etag = f.lfs?.oid ?? f.oid;
    if (!etag || !/^[0-9a-f]{40,64}$/.test(etag)) {
      throw new LoraTsError(`${ctx.what}: the hub gave no usable ETag for ${f.path}`);
    }
    const blob = join(storage, "blobs", etag);
    if (!fileExists(blob)) {
      await downloadBlob({
        url: `${ctx.endpoint}/${ctx.repo}/resolve/${commit}/${f.path.split("/").map(encodeURIComponent).join("/")}`,
        headers: ctx.token ? { Authorization: `Bearer ${ctx.token}` } : {},
        blob,
        size: f.lfs?.size ?? f.size,
        etag,
        label: f.path,
        progress,
        fetch: fetchSeen,
      });
    }
    linkBlob(storage, commit, f.path, etag);
  }
  writeRef(storage, ctx.revision, commit);
  return snapshot;
}

/** Before any byte is fetched: the repository has what the kind needs (or --include matched). */
function checkListing(ctx: Ctx, opts: HubSnapshotOptions, paths: string[]): void {
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

/** Any failure of a hub call as one line that says what to do. */
function hubError(e: unknown, ctx: Ctx): Error {
  if (e instanceof LoraTsError) return e;
  const status = e instanceof HubApiError ? e.statusCode : e instanceof HubHttpError ? e.status : undefined;
  const code = e instanceof HubHttpError ? e.errorCode : ctx.errorCode;
  const login = ctx.token ? "" : ", or set HF_TOKEN if it is private";
  if (code === "GatedRepo") {
    return new LoraTsError(
      `${ctx.what} is gated: accept its license on ${ctx.endpoint}/${ctx.repo} and set HF_TOKEN to a token of that account${ctx.token ? " (the token set has no access yet)" : ""}`,
    );
  }
  if (code === "RevisionNotFound") {
    return new LoraTsError(
      `${ctx.what}: ${ctx.repo} has no revision "${ctx.revision}": check the branch, tag or commit`,
    );
  }
  if (code === "EntryNotFound") {
    return new LoraTsError(
      `${ctx.what}: a file the hub listed is missing from it (404 EntryNotFound): try again later`,
    );
  }
  if (code === "RepoNotFound" || status === 404) {
    return new LoraTsError(
      `${ctx.what}: no such ${ctx.kind} repository on ${ctx.endpoint} and no local folder of that name: check the id${login}`,
    );
  }
  if (status === 401) {
    return new LoraTsError(
      ctx.token
        ? `${ctx.what}: the hub refused HF_TOKEN (401): set HF_TOKEN to a valid token with read access`
        : `${ctx.what}: the hub requires a login (401): set HF_TOKEN to a token that can read ${ctx.repo}`,
    );
  }
  if (status === 403) {
    return new LoraTsError(
      `${ctx.what}: access denied (403): HF_TOKEN${ctx.token ? "'s token" : " is not set and"} cannot read ${ctx.repo}`,
    );
  }
  if (status !== undefined) {
    return new LoraTsError(
      `${ctx.what}: the hub at ${ctx.endpoint} answered HTTP ${status}: try again later`,
    );
  }
  const msg = (e as Error)?.message ?? String(e);
  if (msg.includes("must start with 'hf_'")) {
    return new LoraTsError(`HF_TOKEN does not look like a Hugging Face token (it must start with hf_)`);
  }
  if (msg.includes("run the command again to resume")) return new LoraTsError(`${ctx.what}: ${msg}`);
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  return new LoraTsError(
    `${ctx.what}: cannot reach the hub at ${ctx.endpoint} (${cause?.code ?? cause?.message ?? msg.split("\n")[0]}): check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache ${ctx.cache}`,
  );
}
