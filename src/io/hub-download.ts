/**
 * One file's bytes from the hub into blobs/<etag>, resumable.
 *
 * Done by hand rather than by @huggingface/hub's downloadFileToCacheDir (2.17.5), which truncates
 * blobs/<etag>.incomplete and starts over on every call, has no progress hook, and prints
 * "Downloading …" with console.debug, i.e. on stdout. What is kept from it (and from Python's
 * huggingface_hub): the bytes go to `<blob>.incomplete` and are renamed to `<blob>` only once whole,
 * so a final name never holds a partial file. What is added: a leftover `.incomplete` is continued
 * with `Range: bytes=<have>-` (Python does the same), a dropped connection is retried that way a
 * few times within the call, and the size and the hash the blob is named by (sha256, or git's sha1)
 * are checked before the rename: a leftover partial of another version cannot become a wrong blob.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";

export interface BlobDownload {
  /** The file's `resolve` URL. */
  url: string;
  /** Request headers (Authorization when there is a token). */
  headers: Record<string, string>;
  /** The final blob path; bytes go to `${blob}.incomplete` first. */
  blob: string;
  /** The expected size in bytes (from the file tree). */
  size: number;
  /**
   * The blob's name: the sha256 of the bytes (64 hex, LFS files) or git's blob id (40 hex, sha1 of
   * "blob <size>\0" + bytes). The finished file is checked against it before it gets its final name.
   */
  etag: string;
  /** What the progress line calls the file. */
  label: string;
  progress: ProgressLine | null;
  fetch: typeof fetch;
}

/** An HTTP error status from the hub, with its X-Error-Code (GatedRepo, RepoNotFound, …). */
export class HubHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string | null,
    readonly url: string,
  ) {
    super(`HTTP ${status}${errorCode ? ` (${errorCode})` : ""} for ${url}`);
  }
}

/** Attempts per call: a dropped connection is resumed from where it stopped this many times in all. */
const ATTEMPTS = 3;

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

export async function downloadBlob(d: BlobDownload): Promise<void> {
  const incomplete = `${d.blob}.incomplete`;
  let lastError: unknown;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    try {
      await transfer(d, incomplete);
      if ((await sizeOf(incomplete)) !== d.size) throw new Error("the connection ended early");
      if ((await hashOf(incomplete, d.etag.length === 40 ? d.size : null)) !== d.etag) {
        // A stale partial of another version, or a server that mangled a range: start over.
        await rm(incomplete, { force: true });
        throw new Error(`the bytes do not hash to ${d.etag}`);
      }
      await rename(incomplete, d.blob);
      return;
    } catch (e) {
      if (e instanceof HubHttpError) throw e; // a status is an answer, not a dropped connection
      lastError = e;
    }
  }
  const have = await sizeOf(incomplete);
  throw new Error(
    `${d.label}: download stopped at ${have} of ${d.size} bytes (${describe(lastError)}); run the command again to resume`,
  );
}

/** sha256 of the file, or with `gitSize`, git's blob id (sha1 over "blob <size>\0" + bytes). */
async function hashOf(path: string, gitSize: number | null): Promise<string> {
  const h = gitSize === null ? createHash("sha256") : createHash("sha1").update(`blob ${gitSize}\0`);
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

function describe(e: unknown): string {
  const err = e as Error & { cause?: Error };
  const cause = err?.cause?.message;
  return `${err?.message ?? String(e)}${cause ? `: ${cause}` : ""}`.split("\n")[0]!;
}

/** One request: continues `incomplete` from its current size. */
async function transfer(d: BlobDownload, incomplete: string): Promise<void> {
  let have = await sizeOf(incomplete);
  if (have > d.size) {
    await rm(incomplete, { force: true }); // not this file's prefix: start over
    have = 0;
  }
  if (have === d.size && d.size > 0) return;
  const headers = { ...d.headers, ...(have > 0 ? { Range: `bytes=${have}-` } : {}) };
  const res = await d.fetch(d.url, { headers, redirect: "follow" });
  if (!res.ok) {
    await res.body?.cancel();
    throw new HubHttpError(res.status, res.headers.get("x-error-code"), d.url);
  }
  // A server that ignores Range answers 200 with the whole file: start the file over.
  const append = have > 0 && res.status === 206;
  if (!append) have = 0;
  const file = await open(incomplete, append ? "a" : "w");
  d.progress?.start(d.label, d.size, have);
  try {
    if (res.body) {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        await file.write(chunk);
        have += chunk.byteLength;
        d.progress?.update(have);
      }
    }
    await file.datasync(); // the bytes are on disk before the rename gives them their final name
  } finally {
    await file.close();
    d.progress?.end();
  }
}

/** A one-line progress display on stderr: file, bytes done of total, rate. */
export class ProgressLine {
  private label = "";
  private total = 0;
  private startBytes = 0;
  private startTime = 0;
  private lastDraw = 0;
  private done = 0;

  constructor(private readonly out: NodeJS.WritableStream = process.stderr) {}

  start(label: string, total: number, have: number): void {
    this.label = label;
    this.total = total;
    this.startBytes = have;
    this.done = have;
    this.startTime = Date.now();
    this.lastDraw = 0;
    this.draw();
  }

  update(done: number): void {
    this.done = done;
    if (Date.now() - this.lastDraw >= 100) this.draw();
  }

  end(): void {
    this.draw();
    this.out.write("\n");
  }

  private draw(): void {
    this.lastDraw = Date.now();
    const seconds = Math.max((this.lastDraw - this.startTime) / 1000, 1e-3);
    const rate = (this.done - this.startBytes) / seconds;
    const pct = this.total > 0 ? Math.floor((100 * this.done) / this.total) : 100;
    this.out.write(
      `\r\x1b[K${this.label}  ${pct}%  ${formatBytes(this.done)} / ${formatBytes(this.total)}  ${formatBytes(rate)}/s`,
    );
  }
}

export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}
