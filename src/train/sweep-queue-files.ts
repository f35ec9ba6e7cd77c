/**
 * A run's files as they travel through the queue: the worker packs what `train` wrote into its run
 * folder (the adapter, adapter_config.json, metrics.jsonl, the report, the sweep's marker; not the
 * checkpoint-N folders) and the run's log as base64 in the job's return value; the sweep unpacks them
 * into OUT/runs/NAME (replaced as a whole, atomically) and OUT/logs/NAME.log, as the local runner
 * leaves them.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { writeDirAtomic, writeFileAtomic } from "../util/atomic.js";
import { LoraTsError } from "../util/errors.js";
import type { RunOutcome } from "./sweep-runner.js";

/** Largest run the queue carries (Redis keeps it in memory until the sweep has taken it). */
export const MAX_PAYLOAD_BYTES = 256 * 1024 * 1024;

export interface RunPayload {
  status: "done" | "failed";
  seconds: number | null;
  error?: string;
  /** Path relative to the run folder ("/" separators) → base64 bytes. */
  files: Record<string, string>;
  /** The run's stdout and stderr, base64. */
  log: string;
}

/** A run name or a payload path that stays inside its folder. */
export function safeRelative(p: string): boolean {
  if (p === "" || p.startsWith("/") || p.includes("\\") || p.includes("\0")) return false;
  return (
    posix.normalize(p) === p && !p.split("/").some((part) => part === ".." || part === "." || part === "")
  );
}

function walk(dir: string, rel: string, out: string[]): void {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const r = rel === "" ? name : `${rel}/${name}`;
    const st = statSync(p);
    if (st.isDirectory()) {
      if (rel === "" && /^checkpoint-\d+$/.test(name)) continue; // resume state, large, local to the worker
      walk(p, r, out);
    } else if (st.isFile()) out.push(r);
  }
}

/** Packs run folder `dir` and its log file for the return value; over MAX_PAYLOAD_BYTES is an error. */
export function packRun(dir: string, logFile: string, outcome: RunOutcome): RunPayload {
  const names: string[] = [];
  if (existsSync(dir)) walk(dir, "", names);
  const files: Record<string, string> = {};
  let total = 0;
  for (const n of names) {
    const bytes = readFileSync(join(dir, n));
    total += bytes.byteLength;
    if (total > MAX_PAYLOAD_BYTES)
      throw new LoraTsError(
        `${dir}: the run's files pass ${MAX_PAYLOAD_BYTES / 2 ** 20} MiB, more than the queue carries`,
      );
    files[n] = bytes.toString("base64");
  }
  return {
    status: outcome.status === "done" ? "done" : "failed",
    seconds: outcome.seconds,
    ...(outcome.error !== undefined ? { error: outcome.error } : {}),
    files,
    log: existsSync(logFile) ? readFileSync(logFile).toString("base64") : "",
  };
}

/** Writes a payload into OUT/runs/NAME (the old folder replaced in one rename) and OUT/logs/NAME.log. */
export async function unpackRun(out: string, name: string, p: RunPayload): Promise<void> {
  if (!safeRelative(name) || name.includes("/"))
    throw new LoraTsError(`queue: a run named ${JSON.stringify(name)}`);
  const bad = Object.keys(p.files).find((f) => !safeRelative(f));
  if (bad !== undefined)
    throw new LoraTsError(`queue: run ${name} sent a file outside its folder: ${JSON.stringify(bad)}`);
  mkdirSync(join(out, "logs"), { recursive: true });
  writeFileAtomic(join(out, "logs", `${name}.log`), Buffer.from(p.log, "base64"));
  await writeDirAtomic(
    join(out, "runs", name),
    (tmp) => {
      for (const [rel, b64] of Object.entries(p.files)) {
        const dest = join(tmp, ...rel.split("/"));
        mkdirSync(dirname(dest), { recursive: true });
        writeFileSync(dest, Buffer.from(b64, "base64"));
      }
    },
    { replace: true },
  );
}

/** A return value read back from Redis, checked before anything is written from it. */
export function asPayload(v: unknown): RunPayload | null {
  if (typeof v !== "object" || v === null) return null;
  const o = v as Partial<RunPayload>;
  if (o.status !== "done" && o.status !== "failed") return null;
  if (typeof o.files !== "object" || o.files === null || typeof o.log !== "string") return null;
  if (!Object.values(o.files).every((x) => typeof x === "string")) return null;
  return o as RunPayload;
}
