/**
 * What model and data set downloads share: the environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE,
 * HF_HUB_DISABLE_PROGRESS_BARS, as Python's huggingface_hub reads them), a revision resolved to a
 * commit and the file tree listed through @huggingface/hub, files fetched into the cache
 * (hub-cache.ts, hub-download.ts), and every failure as one line that says what to do.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { datasetInfo, HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import { LoraTsError } from "../util/errors.js";
import { fileExists, hubCacheDir, linkBlob, mkdirRepo, type RepoType, repoFolder } from "./hub-cache.js";
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

export function truthy(v: string | undefined): boolean {
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

/** A progress line on stderr: when asked, else when stderr is a terminal and bars are not disabled. */
export function progressLine(progress: boolean | undefined): ProgressLine | null {
  const on = progress ?? (process.stderr.isTTY && !truthy(process.env["HF_HUB_DISABLE_PROGRESS_BARS"]));
  return on ? new ProgressLine() : null;
}

/** One repository at one revision, and what its errors say. */
export interface HubRepo {
  repo: string;
  type: RepoType;
  /** What messages call it: `org/name`, or `org/name@revision` for other than main. */
  what: string;
  revision: string;
  /** What the user asked for: a model, an adapter or a data set (messages say "no such <kind>"). */
  kind: "model" | "adapter" | "dataset";
  endpoint: string;
  token: string | undefined;
  cache: string;
  /** `<cache>/models--org--name` or `<cache>/datasets--org--name`. */
  storage: string;
  /** X-Error-Code of the last failed response the library saw (its errors drop the headers). */
  errorCode: string | null;
}

/** The repository an id names, its revision checked; `revision` overrides the id's `@revision`. */
export function hubRepo(id: string, kind: HubRepo["kind"], revision?: string): HubRepo {
  const parsed = parseHubId(id);
  if (!parsed) throw new LoraTsError(`${id}: not a hub id (expected org/name or org/name@revision)`);
  const rev = revision ?? parsed.revision ?? "main";
  if (!/^[\w.][\w./-]*$/.test(rev) || rev.includes("..")) {
    throw new LoraTsError(`${id}: invalid revision ${JSON.stringify(rev)}`);
  }
  const type: RepoType = kind === "dataset" ? "dataset" : "model";
  const cache = hubCacheDir();
  return {
    repo: parsed.repo,
    type,
    what: rev === "main" ? parsed.repo : `${parsed.repo}@${rev}`,
    revision: rev,
    kind,
    endpoint: hubEndpoint(),
    token: hubToken(),
    cache,
    storage: repoFolder(cache, parsed.repo, type),
    errorCode: null,
  };
}

/** fetch that notes the X-Error-Code of a failed response on `r`. */
export function hubFetch(r: HubRepo): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    if (!res.ok) r.errorCode = res.headers.get("x-error-code");
    return res;
  };
}

/** A file in the repository's tree, as listFiles gives it. */
export interface HubFile {
  path: string;
  size: number;
  oid?: string | undefined;
  lfs?: { oid?: string; size?: number } | undefined;
}

/** The commit the revision names, asked of the hub. */
export async function resolveCommit(r: HubRepo): Promise<string> {
  const common = { hubUrl: r.endpoint, accessToken: r.token, fetch: hubFetch(r) };
  const info =
    r.type === "dataset"
      ? await datasetInfo({ ...common, name: r.repo, revision: r.revision, additionalFields: ["sha"] })
      : await modelInfo({ ...common, name: r.repo, revision: r.revision, additionalFields: ["sha"] });
  const commit = (info as { sha?: unknown }).sha;
  if (typeof commit !== "string" || !/^[0-9a-f]{40}$/.test(commit)) {
    throw new LoraTsError(`${r.what}: the hub at ${r.endpoint} gave no commit for this revision`);
  }
  return commit;
}

/** Every file of the commit (folders walked). */
export async function listRepoFiles(r: HubRepo, commit: string): Promise<HubFile[]> {
  const out: HubFile[] = [];
  for await (const f of listFiles({
    hubUrl: r.endpoint,
    accessToken: r.token,
    fetch: hubFetch(r),
    repo: { type: r.type, name: r.repo },
    revision: commit,
    recursive: true,
  })) {
    if (f.type === "file") out.push({ path: f.path, size: f.size, oid: f.oid, lfs: f.lfs });
  }
  return out;
}

/** The blob name huggingface_hub gives a file: the hub's ETag (LFS sha256, else git blob id). */
export function etagOf(r: HubRepo, f: HubFile): string {
  const etag = f.lfs?.oid ?? f.oid;
  if (!etag || !/^[0-9a-f]{40,64}$/.test(etag)) {
    throw new LoraTsError(`${r.what}: the hub gave no usable ETag for ${f.path}`);
  }
  return etag;
}

/**
 * Puts `files` of `commit` into snapshots/<commit>/ (each a link to its blob), downloading the
 * blobs that are not in the cache yet; returns the snapshot folder.
 */
export async function fetchFiles(
  r: HubRepo,
  commit: string,
  files: readonly HubFile[],
  progress: ProgressLine | null,
): Promise<string> {
  const snapshot = join(r.storage, "snapshots", commit);
  mkdirRepo(r.storage, commit);
  const prefix = r.type === "dataset" ? `${r.endpoint}/datasets` : r.endpoint;
  for (const f of files) {
    if (fileExists(join(snapshot, f.path))) continue;
    // The blob's name is the hub's ETag: the LFS sha256 for large files, the git blob id otherwise;
    // huggingface_hub names it the same way (from X-Linked-Etag / ETag), so either side reuses it.
    const etag = etagOf(r, f);
    const blob = join(r.storage, "blobs", etag);
    if (!fileExists(blob)) {
      await downloadBlob({
        url: `${prefix}/${r.repo}/resolve/${commit}/${f.path.split("/").map(encodeURIComponent).join("/")}`,
        headers: r.token ? { Authorization: `Bearer ${r.token}` } : {},
        blob,
        size: f.lfs?.size ?? f.size,
        etag,
        label: f.path,
        progress,
        fetch: hubFetch(r),
      });
    }
    linkBlob(r.storage, commit, f.path, etag);
  }
  return snapshot;
}

const KIND_NAME: Record<HubRepo["kind"], string> = {
  model: "model",
  adapter: "adapter",
  dataset: "data set",
};

/** Any failure of a hub call as one line that says what to do. */
export function hubError(e: unknown, r: HubRepo): Error {
  if (e instanceof LoraTsError) return e;
  const status = e instanceof HubApiError ? e.statusCode : e instanceof HubHttpError ? e.status : undefined;
  const code = e instanceof HubHttpError ? e.errorCode : r.errorCode;
  const login = r.token ? "" : ", or set HF_TOKEN if it is private";
  if (code === "GatedRepo") {
    const page = r.type === "dataset" ? `${r.endpoint}/datasets/${r.repo}` : `${r.endpoint}/${r.repo}`;
    return new LoraTsError(
      `${r.what} is gated: accept its license on ${page} and set HF_TOKEN to a token of that account${r.token ? " (the token set has no access yet)" : ""}`,
    );
  }
  if (code === "RevisionNotFound") {
    return new LoraTsError(
      `${r.what}: ${r.repo} has no revision "${r.revision}": check the branch, tag or commit`,
    );
  }
  if (code === "EntryNotFound") {
    return new LoraTsError(
      `${r.what}: a file the hub listed is missing from it (404 EntryNotFound): try again later`,
    );
  }
  if (code === "RepoNotFound" || status === 404) {
    return new LoraTsError(
      `${r.what}: no such ${KIND_NAME[r.kind]} repository on ${r.endpoint} and no local ${r.kind === "dataset" ? "file" : "folder"} of that name: check the id${login}`,
    );
  }
  if (status === 401) {
    return new LoraTsError(
      r.token
        ? `${r.what}: the hub refused HF_TOKEN (401): set HF_TOKEN to a valid token with read access`
        : `${r.what}: the hub requires a login (401): set HF_TOKEN to a token that can read ${r.repo}`,
    );
  }
  if (status === 403) {
    return new LoraTsError(
      `${r.what}: access denied (403): HF_TOKEN${r.token ? "'s token" : " is not set and"} cannot read ${r.repo}`,
    );
  }
  if (status !== undefined) {
    return new LoraTsError(`${r.what}: the hub at ${r.endpoint} answered HTTP ${status}: try again later`);
  }
  const msg = (e as Error)?.message ?? String(e);
  if (msg.includes("must start with 'hf_'")) {
    return new LoraTsError(`HF_TOKEN does not look like a Hugging Face token (it must start with hf_)`);
  }
  if (msg.includes("run the command again to resume")) return new LoraTsError(`${r.what}: ${msg}`);
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  return new LoraTsError(
    `${r.what}: cannot reach the hub at ${r.endpoint} (${cause?.code ?? cause?.message ?? msg.split("\n")[0]}): check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache ${r.cache}`,
  );
}
