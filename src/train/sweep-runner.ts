/**
 * Runs a sweep's training runs as child processes of the `lora-ts` binary (`lora-ts train ... --out
 * OUT/runs/NAME`), at most `jobs` at once. A failed run is recorded (its stderr's last line) and does
 * not stop the others. Each child's stdout and stderr go to OUT/logs/NAME.log.
 *
 * Resuming: a run is finished when its folder holds the adapter (adapter_model.safetensors) and the
 * marker sweep-run.json, written atomically after the child exits 0. The marker keeps the run's train
 * arguments; a finished run whose arguments differ from this sweep's is refused before anything runs
 * (checkFinished). An unfinished folder is trained again: with --resume when it holds a checkpoint and
 * the run saves checkpoints (--save-every), else from scratch (--force).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../util/atomic.js";
import { LoraTsError } from "../util/errors.js";

export const MARKER = "sweep-run.json";
export const ADAPTER_FILE = "adapter_model.safetensors";

export interface Marker {
  /** The train arguments, without --out, --force and --resume. */
  args: string[];
  seconds: number;
  finishedAt: string;
}

export interface RunJob {
  name: string;
  /** Train arguments without --out, --force, --resume: what the marker keeps and compares. */
  args: string[];
  /** Arguments that change nothing a run computes (--no-progress, --no-report): passed, not compared. */
  extra?: string[];
}

/** "interrupted": stopped by Ctrl-C / SIGTERM; "not run": the sweep stopped before it started. */
export type RunStatus = "done" | "skipped" | "failed" | "interrupted" | "not run";

export interface RunOutcome {
  name: string;
  status: RunStatus;
  /** Wall seconds of the child (of the original run, for a skipped one). */
  seconds: number | null;
  /** Failed: the last non-empty line of the child's stderr (or its exit). */
  error?: string;
}

export function runDir(out: string, name: string): string {
  return join(out, "runs", name);
}

export function readMarker(dir: string): Marker | null {
  const p = join(dir, MARKER);
  if (!existsSync(p) || !existsSync(join(dir, ADAPTER_FILE))) return null;
  try {
    const m = JSON.parse(readFileSync(p, "utf8")) as Marker;
    return Array.isArray(m.args) ? m : null;
  } catch {
    return null;
  }
}

/** "--lr": value pairs of an argument list (a flag with no value maps to ""). */
function flagMap(args: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) continue;
    const next = args[i + 1];
    if (next !== undefined && !next.startsWith("--")) {
      m.set(a, next);
      i++;
    } else m.set(a, "");
  }
  return m;
}

/** The first difference between two argument lists, as "--lr 0.001 there, 0.002 here", or null. */
export function argsDifference(before: readonly string[], now: readonly string[]): string | null {
  const a = flagMap(before);
  const b = flagMap(now);
  const shown = (v: string | undefined) =>
    v === undefined ? "not given" : v === "" ? "set" : JSON.stringify(v);
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(k) !== b.get(k)) return `${k}: ${shown(a.get(k))} there, ${shown(b.get(k))} here`;
  }
  return null;
}

/**
 * Refuses (one line) a sweep whose finished runs were trained with other arguments: reusing them would
 * mix settings silently. Returns the names of the finished runs that are reused.
 */
export function checkFinished(out: string, jobs: readonly RunJob[]): Set<string> {
  const finished = new Set<string>();
  for (const j of jobs) {
    const m = readMarker(runDir(out, j.name));
    if (m === null) continue;
    const diff = argsDifference(m.args, j.args);
    if (diff !== null)
      throw new LoraTsError(
        `${runDir(out, j.name)}: finished with other train settings (${diff}); use a new --out, or delete that run folder to train it again`,
      );
    finished.add(j.name);
  }
  return finished;
}

/** The last non-empty line, without the CLI's "error: " prefix. */
function lastLine(text: string): string {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  return (lines[lines.length - 1] ?? "").replace(/^error: /, "");
}

/** How an unfinished run folder is taken up: fresh, --resume (checkpoints and --save-every) or --force. */
export function restartFlags(dir: string, args: readonly string[]): string[] {
  if (!existsSync(dir) || readdirSync(dir).length === 0) return [];
  const hasCheckpoint = readdirSync(dir).some((n) => /^checkpoint-\d+$/.test(n));
  return hasCheckpoint && args.includes("--save-every") ? ["--resume"] : ["--force"];
}

/**
 * One run: `node BIN train ARGS --out OUT/runs/NAME`, its output into OUT/logs/NAME.log, and the marker
 * once it succeeds. A queue worker runs it the same way into a temporary OUT (sweep-queue-worker.ts).
 */
export function runOne(
  bin: string,
  out: string,
  job: RunJob,
  live: Set<ChildProcess>,
  stopped: () => boolean,
): Promise<RunOutcome> {
  const dir = runDir(out, job.name);
  const logs = join(out, "logs");
  mkdirSync(logs, { recursive: true });
  mkdirSync(join(out, "runs"), { recursive: true });
  const argv = [
    bin,
    "train",
    ...job.args,
    ...(job.extra ?? []),
    "--out",
    dir,
    ...restartFlags(dir, job.args),
  ];
  const log = createWriteStream(join(logs, `${job.name}.log`));
  const started = performance.now();
  return new Promise((resolveRun) => {
    let stderr = "";
    const child = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    child.stdout.pipe(log, { end: false });
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-8192);
      log.write(d);
    });
    const finish = (o: RunOutcome) => log.end(() => resolveRun(o));
    child.on("error", (e) => finish({ name: job.name, status: "failed", seconds: null, error: e.message }));
    child.on("close", (code, signal) => {
      live.delete(child);
      const seconds = (performance.now() - started) / 1000;
      if (code === 0 && existsSync(join(dir, ADAPTER_FILE))) {
        const marker: Marker = { args: job.args, seconds, finishedAt: new Date().toISOString() };
        writeJsonAtomic(join(dir, MARKER), marker);
        finish({ name: job.name, status: "done", seconds });
        return;
      }
      if (stopped()) {
        finish({ name: job.name, status: "interrupted", seconds, error: "interrupted" });
        return;
      }
      const why =
        lastLine(stderr) ||
        (code === 0 ? `no ${ADAPTER_FILE} was written` : `exited with ${signal ?? `code ${code}`}`);
      finish({ name: job.name, status: "failed", seconds, error: why });
    });
  });
}

export interface RunSweepOptions {
  /** Path of the compiled CLI (src/cli/main.js). */
  bin: string;
  out: string;
  jobs: number;
  /** Called when a run starts being handled (k is 1-based) and when it ends. */
  onStart?(k: number, n: number, job: RunJob): void;
  onEnd?(k: number, n: number, outcome: RunOutcome): void;
}

/**
 * Runs every job not finished already (checkFinished first), `jobs` at a time; outcomes in job order.
 * Ctrl-C / SIGTERM while it runs: the signal goes to the running children, no new run starts, the
 * runs cut short are "interrupted" and the others "not run", and `interrupted` names the signal.
 */
export async function runSweep(
  jobs: readonly RunJob[],
  o: RunSweepOptions,
): Promise<RunOutcome[] & { interrupted?: NodeJS.Signals }> {
  const finished = checkFinished(o.out, jobs);
  const outcomes: RunOutcome[] & { interrupted?: NodeJS.Signals } = new Array(jobs.length);
  const live = new Set<ChildProcess>();
  let stop: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    stop ??= sig;
    for (const c of live) c.kill(sig);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length && stop === undefined) {
      const k = next++;
      const job = jobs[k]!;
      o.onStart?.(k + 1, jobs.length, job);
      let r: RunOutcome;
      if (finished.has(job.name)) {
        r = {
          name: job.name,
          status: "skipped",
          seconds: readMarker(runDir(o.out, job.name))?.seconds ?? null,
        };
      } else r = await runOne(o.bin, o.out, job, live, () => stop !== undefined);
      outcomes[k] = r;
      o.onEnd?.(k + 1, jobs.length, r);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(o.jobs, jobs.length)) }, worker));
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  for (let k = 0; k < jobs.length; k++)
    outcomes[k] ??= { name: jobs[k]!.name, status: "not run", seconds: null };
  if (stop !== undefined) outcomes.interrupted = stop;
  return outcomes;
}
