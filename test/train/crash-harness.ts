/**
 * Kill-and-resume harness (#12 "Prove it — Crash and resume"). It runs `lora-ts train` uninterrupted
 * once, then again in another folder, SIGKILLing it `kills` times and going on after each kill with
 * --resume, or, while the folder holds no checkpoint, starting over in an emptied folder. (Not with
 * --force: a --force run builds beside the folder and keeps nothing when killed, so under repeated
 * kills it would never get to a checkpoint to resume from.) After every kill each checkpoint-N folder
 * left must be complete and readable; at the end the adapter must be byte-identical to the
 * uninterrupted run's.
 *
 * Where the kills land: their positions along the run are drawn from a seeded generator and sorted,
 * so they spread over the whole run, and they cycle through three kinds: during a step (after the
 * progress line of a drawn step, plus a random part of a step's time), during a checkpoint write (the
 * run is slowed by LORA_TS_TEST_SLOW_CHECKPOINT_MS; the kill comes a random time after the
 * checkpoint's temporary folder appears) and during start-up (a random part of the time to the first
 * step). Every kill is logged with what was drawn, and the seed, so a failure can be replayed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { checkCheckpoint, listCheckpoints, STATE_FILE } from "../../src/train/checkpoint.js";
import { Rng } from "../../src/util/rng.js";
import { BIN } from "../helpers/cli.js";

export interface CrashOptions {
  /** Train flags other than --out, --resume and --force; they must include --max-steps and --save-every. */
  args: string[];
  /** An empty folder for the two runs. */
  dir: string;
  kills: number;
  seed: number;
  /** How long a checkpoint write takes in the runs aimed at one (default 400 ms). */
  slowCheckpointMs?: number;
  log?: (line: string) => void;
}

export interface CrashReport {
  seed: number;
  kills: number;
  /** Kills that left a checkpoint's temporary folder behind: the write was cut short. */
  killsDuringCheckpointWrite: number;
  /** Runs started with --resume (the last one included), and from scratch (no checkpoint yet). */
  resumes: number;
  restarts: number;
  failures: string[];
}

function flagValue(args: string[], flag: string): number {
  const i = args.indexOf(flag);
  const v = Number(args[i + 1]);
  if (i < 0 || !Number.isInteger(v)) throw new Error(`crash harness: the train args need ${flag} N`);
  return v;
}

type Target =
  | { kind: "step"; after: number; frac: number }
  | { kind: "checkpoint"; at: number; frac: number }
  | { kind: "startup"; frac: number };

interface Outcome {
  killed: boolean;
  /** The temporary folder of the checkpoint being written when the kill came, if it is still there. */
  cutWrite: string | null;
  code: number | null;
  stderr: string;
  /** ms from spawn to the first step line, and to the last one; null when none came. */
  firstStepMs: number | null;
  lastStepMs: number | null;
  steps: number;
}

const STEP_LINE = /^step\s+(\d+)\//;

/** Where writeDirAtomic builds checkpoint-N: `OUT/.checkpoint-N.PID.HEX.tmp`. */
function checkpointTemp(out: string, step: number): string | null {
  if (!existsSync(out)) return null;
  const name = readdirSync(out).find((n) => n.startsWith(`.checkpoint-${step}.`) && n.endsWith(".tmp"));
  return name === undefined ? null : join(out, name);
}

/** One `train` run, killed as `target` says (never, when null). */
function runOnce(args: string[], target: Target | null, timing: Timing, slowMs: number): Promise<Outcome> {
  const env: NodeJS.ProcessEnv = { ...process.env, LORA_TS_PROGRESS_SECONDS: "0" };
  if (target?.kind === "checkpoint") env["LORA_TS_TEST_SLOW_CHECKPOINT_MS"] = String(slowMs);
  const out = args[args.indexOf("--out") + 1]!;
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [BIN, "train", ...args, "--no-report"], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  let pending = "";
  let firstStepMs: number | null = null;
  let lastStepMs: number | null = null;
  let steps = 0;
  let cutWrite: string | null = null;
  let sent = false;
  const timers: NodeJS.Timeout[] = [];
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) sent = child.kill("SIGKILL");
  };
  const killIn = (ms: number) => timers.push(setTimeout(kill, ms));

  if (target?.kind === "startup") killIn(target.frac * timing.startupMs);
  if (target?.kind === "checkpoint") {
    // The temporary folder shows that the write has begun. A checkpoint-N that shows up first (the
    // write was not atomic) is killed the same way, so that a half-written one is caught too.
    const poll = setInterval(() => {
      const tmp = checkpointTemp(out, target.at);
      if (tmp === null && !existsSync(join(out, `checkpoint-${target.at}`))) return;
      clearInterval(poll);
      cutWrite = tmp;
      killIn(target.frac * slowMs * 0.9);
    }, 5);
    timers.push(poll);
  }
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
    const lines = (pending + chunk.toString("utf8")).split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      const m = STEP_LINE.exec(line);
      if (!m) continue;
      const now = performance.now() - started;
      firstStepMs ??= now;
      lastStepMs = now;
      steps++;
      if (target?.kind === "step" && Number(m[1]) === target.after) killIn(target.frac * timing.stepMs);
    }
  });
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      for (const t of timers) clearTimeout(t);
      const killed = sent && signal === "SIGKILL";
      resolve({
        killed,
        cutWrite: killed && cutWrite !== null && existsSync(cutWrite) ? cutWrite : null,
        code,
        stderr,
        firstStepMs,
        lastStepMs,
        steps,
      });
    });
  });
}

interface Timing {
  startupMs: number;
  stepMs: number;
}

/** Every checkpoint-N folder in `out` is complete (has its state) and every part of it reads back. */
function checkpointProblems(out: string): string[] {
  if (!existsSync(out)) return [];
  const problems: string[] = [];
  for (const name of readdirSync(out)) {
    if (!/^checkpoint-\d+$/.test(name)) continue;
    const dir = join(out, name);
    if (!existsSync(join(dir, STATE_FILE))) {
      problems.push(`${dir}: a checkpoint folder without ${STATE_FILE} (half-written or half-deleted)`);
      continue;
    }
    try {
      checkCheckpoint(dir);
    } catch (e) {
      problems.push(`${dir}: unreadable (${(e as Error).message})`);
    }
  }
  return problems;
}

function sameBytes(a: string, b: string): boolean {
  return existsSync(a) && existsSync(b) && readFileSync(a).equals(readFileSync(b));
}

export async function crashAndResume(o: CrashOptions): Promise<CrashReport> {
  const log = o.log ?? (() => {});
  const slowMs = o.slowCheckpointMs ?? 400;
  const total = flagValue(o.args, "--max-steps");
  const every = flagValue(o.args, "--save-every");
  const report: CrashReport = {
    seed: o.seed,
    kills: 0,
    killsDuringCheckpointWrite: 0,
    resumes: 0,
    restarts: 0,
    failures: [],
  };
  const ref = join(o.dir, "uninterrupted");
  const out = join(o.dir, "killed");

  // The uninterrupted run: the bytes to match, and how long start-up and a step take.
  const first = await runOnce([...o.args, "--out", ref], null, { startupMs: 0, stepMs: 0 }, slowMs);
  if (first.code !== 0 || first.firstStepMs === null || first.lastStepMs === null) {
    report.failures.push(`the uninterrupted run failed (exit ${first.code}): ${first.stderr.trim()}`);
    return report;
  }
  const timing: Timing = {
    startupMs: first.firstStepMs,
    stepMs: Math.max(1, (first.lastStepMs - first.firstStepMs) / Math.max(1, first.steps - 1)),
  };
  log(
    `seed ${o.seed}; uninterrupted run: start-up ${timing.startupMs.toFixed(0)} ms, ${timing.stepMs.toFixed(0)} ms a step`,
  );

  /** The next run: --resume from the newest checkpoint, or, with none, from scratch in an emptied folder. */
  const goOn = (target: Target | null): Promise<Outcome> => {
    const resume = listCheckpoints(out).length > 0;
    if (resume) report.resumes++;
    else {
      report.restarts++;
      rmSync(out, { recursive: true, force: true });
    }
    return runOnce([...o.args, "--out", out, ...(resume ? ["--resume"] : [])], target, timing, slowMs);
  };

  const rng = new Rng(o.seed);
  const rand = () => rng.float();
  // Positions along the run (in steps), sorted so the kills walk through it.
  const positions = Array.from({ length: o.kills }, () => rand() * total).sort((a, b) => a - b);
  const kinds = ["step", "checkpoint", "step", "startup"] as const;

  let attempts = 0;
  while (report.kills < o.kills) {
    if (++attempts > 4 * o.kills + 10) {
      report.failures.push(`gave up after ${attempts - 1} runs, ${report.kills} of them killed`);
      break;
    }
    const from = listCheckpoints(out).at(-1)?.step ?? 0;
    const resume = from > 0;
    const pos = Math.max(positions[report.kills]!, from);
    const frac = rand();
    const kind = kinds[report.kills % kinds.length]!;
    // The first checkpoint this run will write at or after the drawn position (none: a step kill).
    const due = Math.max(every * Math.ceil(pos / every), every * (Math.floor(from / every) + 1));
    const target: Target =
      kind === "startup"
        ? { kind, frac }
        : kind === "checkpoint" && due < total
          ? { kind, at: due, frac }
          : { kind: "step", after: Math.min(total, Math.max(from + 1, Math.ceil(pos))), frac };
    const r = await goOn(target);
    const what =
      target.kind === "startup"
        ? `during start-up (+${(frac * timing.startupMs).toFixed(0)} ms)`
        : target.kind === "checkpoint"
          ? `during the write of checkpoint-${target.at} (+${(frac * slowMs * 0.9).toFixed(0)} ms)`
          : `after step ${target.after} (+${(frac * timing.stepMs).toFixed(0)} ms)`;
    const how = resume ? `--resume from checkpoint-${from}` : "from scratch";
    if (!r.killed) {
      if (r.code !== 0) {
        report.failures.push(`${how}: exit ${r.code}: ${r.stderr.trim().split("\n").at(-1)}`);
        break;
      }
      log(`  run ${attempts} (${how}) finished before the kill ${what}; again`);
      continue;
    }
    report.kills++;
    if (r.cutWrite) report.killsDuringCheckpointWrite++;
    log(
      `kill ${report.kills}/${o.kills}: ${how}, SIGKILL ${what}` +
        `${r.cutWrite ? `: left ${basename(r.cutWrite)}` : ""}; checkpoints now: ${
          listCheckpoints(out)
            .map((c) => c.step)
            .join(", ") || "none"
        }`,
    );
    for (const p of checkpointProblems(out)) report.failures.push(`after kill ${report.kills}: ${p}`);
  }

  // The last run goes to the end.
  const last = await goOn(null);
  if (last.code !== 0)
    report.failures.push(`the final run failed (exit ${last.code}): ${last.stderr.trim()}`);
  for (const file of ["adapter_model.safetensors", "adapter_config.json"])
    if (!sameBytes(join(ref, file), join(out, file)))
      report.failures.push(`${file} differs from the uninterrupted run's`);
  for (const p of checkpointProblems(out)) report.failures.push(`at the end: ${p}`);
  const stray = existsSync(out) ? readdirSync(out).filter((n) => n.endsWith(".tmp")) : [];
  if (stray.length > 0)
    report.failures.push(`temporary files left in ${out} after the resume: ${stray.join(", ")}`);
  log(
    `kills ${report.kills}, during checkpoint writes ${report.killsDuringCheckpointWrite}, ` +
      `resumes ${report.resumes}, restarts ${report.restarts}, failures ${report.failures.length}`,
  );
  return report;
}

/** Removes the harness's folder (the runs are a few hundred kB each). */
export function cleanUp(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
