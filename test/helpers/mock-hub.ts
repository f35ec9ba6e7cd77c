/**
 * A local stand-in for the Hugging Face hub, on node:http, serving repositories the test writes.
 * It answers the endpoints @huggingface/hub and lora-ts call, with the real hub's headers:
 *
 *   GET  /api/models/{org}/{name}/revision/{rev}      model info with the commit `sha`
 *   GET  /api/models/{org}/{name}/tree/{rev}          file list (oid; lfs {oid, size} for LFS files)
 *   POST /api/models/{org}/{name}/paths-info/{rev}    the same per path, with lastCommit
 *   GET  /{org}/{name}/resolve/{rev}/{path}            the bytes: ETag, X-Linked-Etag, X-Repo-Commit,
 *                                                      Accept-Ranges, Range → 206 + Content-Range
 *
 * Data set repositories (`type: "dataset"`) answer the same under /api/datasets/... and
 * /datasets/{org}/{name}/resolve/...; `refs` names other branches and tags than main.
 *
 * Errors carry X-Error-Code as the hub does: RepoNotFound (401 without a token, 404 with one, as the
 * hub answers so as not to reveal private repos), RevisionNotFound, EntryNotFound, GatedRepo; a
 * token other than `token` is a 401 without a code ("Invalid credentials").
 * LFS files are answered, as on the hub, with a 302 to a CDN path (`/cdn/<sha256>`, here on the
 * same server) that serves the bytes with Range. Every request is logged; `drop` cuts a file's
 * response after some bytes to test resuming.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface MockFile {
  path: string;
  data: Uint8Array;
}

export interface MockRepo {
  /** "org/name". */
  id: string;
  /** Commits, oldest first; "main" is the last one. */
  commits: { sha: string; files: MockFile[] }[];
  /** Needs `Authorization: Bearer <token>`, else answers like a missing repo. */
  private?: boolean;
  /** Gated: 401 GatedRepo without a token; 403 GatedRepo with one unless `accepted`. */
  gated?: { accepted: boolean };
  /** Default "model". */
  type?: "model" | "dataset";
  /** Branches and tags other than main → commit sha. */
  refs?: Record<string, string>;
}

export interface LoggedRequest {
  method: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
}

/** Git's blob id (sha1 of "blob <len>\0" + bytes): the hub's oid and ETag for non-LFS files. */
export function gitOid(data: Uint8Array): string {
  return createHash("sha1").update(`blob ${data.byteLength}\0`).update(data).digest("hex");
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A made-up 40-hex commit id. */
export function commitId(seed: string): string {
  return createHash("sha1").update(seed).digest("hex");
}

/** Files stored with LFS on the hub (the big ones): their ETag is the sha256 of the content. */
export function isLfs(path: string): boolean {
  return /\.(safetensors|bin|gguf|parquet)$/.test(path);
}

/** The name huggingface_hub gives a file's blob. */
export function etagOf(f: MockFile): string {
  return isLfs(f.path) ? sha256(f.data) : gitOid(f.data);
}

export class MockHub {
  readonly requests: LoggedRequest[] = [];
  /** path → bytes after which the next `times` responses for that file are cut. */
  readonly drop = new Map<string, { after: number; times: number }>();
  /** path → bytes after which that file's responses stall (the connection stays open, silent). */
  readonly stall = new Map<string, number>();
  /** The token private and gated repos accept. */
  token = "hf_mocktoken";
  private server: Server | undefined;
  private readonly repos = new Map<string, MockRepo>();

  constructor(repos: MockRepo[]) {
    for (const r of repos) this.repos.set(`${r.type ?? "model"}:${r.id}`, r);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    return this.url;
  }

  get url(): string {
    const addr = this.server!.address() as AddressInfo;
    return `http://127.0.0.1:${addr.port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  /** The requests for a file's bytes (resolve; LFS files then get theirs from /cdn/), by file path. */
  resolves(path?: string): LoggedRequest[] {
    return this.requests.filter(
      (r) => r.path.includes("/resolve/") && (!path || r.path.endsWith(`/${path}`)),
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const path = decodeURIComponent(url.pathname);
    this.requests.push({
      method: req.method ?? "GET",
      path: url.pathname,
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
    for await (const _ of req); // drain a POST body
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdn) {
      const file = [...this.repos.values()]
        .flatMap((r) => r.commits.flatMap((c) => c.files))
        .find((f) => isLfs(f.path) && etagOf(f) === cdn[1]);
      return file ? this.serveFile(req, res, file, null) : fail(res, 404, null, "not found");
    }
    const api = /^\/api\/(model|dataset)s\/([^/]+\/[^/]+)\/(revision|tree|paths-info)\/(.+?)\/?$/.exec(path);
    const resolve = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repoId = api?.[2] ?? resolve?.[2];
    if (!repoId) return fail(res, 404, null, "not found");
    const type = api ? api[1] : resolve?.[1] ? "dataset" : "model";
    const repo = this.repos.get(`${type}:${repoId}`);
    const auth = req.headers.authorization;
    // The hub refuses an unknown token outright, whatever the repository.
    if (auth && auth !== `Bearer ${this.token}`)
      return fail(res, 401, null, "Invalid credentials in Authorization header");
    if (!repo || (repo.private && auth !== `Bearer ${this.token}`)) {
      return fail(res, auth ? 404 : 401, "RepoNotFound", "Repository Not Found");
    }
    if (repo.gated) {
      if (!auth) return fail(res, 401, "GatedRepo", "Access to this model is restricted. Please log in.");
      if (!repo.gated.accepted) {
        return fail(
          res,
          403,
          "GatedRepo",
          "Access to this model is restricted and you are not in the authorized list.",
        );
      }
    }
    const rev = api?.[4] ?? resolve![3]!;
    const sha = repo.refs?.[rev] ?? rev;
    const commit = rev === "main" ? repo.commits.at(-1) : repo.commits.find((c) => c.sha === sha);
    if (!commit) return fail(res, 404, "RevisionNotFound", `Invalid rev id: ${rev}`);
    if (api?.[3] === "revision") {
      return json(res, {
        _id: commitId(repo.id).slice(0, 24),
        id: repo.id,
        sha: commit.sha,
        private: !!repo.private,
        gated: repo.gated ? "auto" : false,
        siblings: commit.files.map((f) => ({ rfilename: f.path })),
      });
    }
    if (api?.[3] === "tree") return json(res, treeEntries(commit.files));
    if (api?.[3] === "paths-info") {
      return json(
        res,
        commit.files.map((f) => ({
          ...entry(f),
          lastCommit: { id: commit.sha, title: "add", date: "2024-01-01" },
        })),
      );
    }
    const file = commit.files.find((f) => f.path === resolve![4]);
    if (!file) return fail(res, 404, "EntryNotFound", "Entry not found");
    if (isLfs(file.path)) {
      const etag = etagOf(file);
      res.statusCode = 302;
      res.setHeader("Location", `/cdn/${etag}`);
      res.setHeader("ETag", `"${gitOid(file.data)}"`);
      res.setHeader("X-Linked-Etag", `"${etag}"`);
      res.setHeader("X-Linked-Size", String(file.data.byteLength));
      res.setHeader("X-Repo-Commit", commit.sha);
      return void res.end();
    }
    this.serveFile(req, res, file, commit.sha);
  }

  private serveFile(req: IncomingMessage, res: ServerResponse, file: MockFile, sha: string | null): void {
    const total = file.data.byteLength;
    res.setHeader("ETag", `"${etagOf(file)}"`);
    if (sha) res.setHeader("X-Repo-Commit", sha);
    res.setHeader("Accept-Ranges", "bytes");
    let start = 0;
    let end = total - 1;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), total - 1) : total - 1;
      if (start >= total) {
        res.setHeader("Content-Range", `bytes */${total}`);
        res.statusCode = 416;
        return void res.end();
      }
      res.statusCode = 206;
      res.setHeader("Content-Range", `bytes ${start}-${end}/${total}`);
    }
    const body = file.data.subarray(start, end + 1);
    res.setHeader("Content-Length", String(body.byteLength));
    const stallAt = this.stall.get(file.path);
    if (stallAt !== undefined && stallAt < body.byteLength) {
      res.flushHeaders();
      res.write(body.subarray(0, stallAt)); // and nothing more: the client is killed meanwhile
      return;
    }
    const cut = this.drop.get(file.path);
    if (cut && cut.times > 0 && cut.after < body.byteLength) {
      cut.times--;
      res.flushHeaders();
      // Write part of the body, then kill the connection, as a dropped network would (a moment
      // later, so that the client has read what arrived: a stream that errors drops its queue).
      res.write(body.subarray(0, cut.after), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    res.end(body);
  }
}

function entry(f: MockFile) {
  const lfs = isLfs(f.path) ? { oid: sha256(f.data), size: f.data.byteLength, pointerSize: 134 } : undefined;
  return { type: "file", oid: gitOid(f.data), size: f.data.byteLength, path: f.path, ...(lfs && { lfs }) };
}

/** The recursive tree: folders first-seen, then files, as the hub lists them. */
function treeEntries(files: MockFile[]) {
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.path.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return [
    ...[...dirs].map((d) => ({ type: "directory", oid: gitOid(Buffer.from(d)), size: 0, path: d })),
    ...files.map(entry),
  ];
}

function json(res: ServerResponse, value: unknown): void {
  res.setHeader("Content-Type", "application/json");
  res.end(JSON.stringify(value));
}

function fail(res: ServerResponse, status: number, code: string | null, message: string): void {
  res.statusCode = status;
  if (code) res.setHeader("X-Error-Code", code);
  res.setHeader("X-Error-Message", message);
  json(res, { error: message });
}
