/**
 * `lora-ts sweep`: the LoRA paper's ablation (Hu et al. 2021, Tables 5 and 6) on your model and data.
 * A grid of target sets × r (or, with --budget, the r closest to a parameter budget per target set) ×
 * seeds, each run a `lora-ts train` child process into OUT/runs/NAME; then OUT/results.json,
 * results.csv, report.html and a table in the terminal. Every `train` option is taken and passed to
 * each run. The plan is src/train/sweep-plan.ts, the runner sweep-runner.ts, the rows
 * sweep-results.ts, the page sweep-report.ts; `--demo` is sweep-demo.ts.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { hubIdFor } from "../io/hub.js";
import { resolveModelPath } from "../models/model-path.js";
import { listModules } from "../models/modules.js";
import { openModelDir } from "../models/open-model.js";
import type { Metrics } from "../train/events.js";
import { parseRanks, planGrid, type RunSpec, type TargetSet } from "../train/sweep-plan.js";
import { parseQueue, type QueueTarget } from "../train/sweep-queue-url.js";
import { writeSweepReport } from "../train/sweep-report.js";
import { type ResultRow, resultRow, runMetrics, writeResults } from "../train/sweep-results.js";
import { type RunJob, type RunOutcome, runDir, runSweep } from "../train/sweep-runner.js";
import { planTable, summaryTable } from "../train/sweep-table.js";
import { preview } from "../util/describe.js";
import { LoraTsError } from "../util/errors.js";
import { parseNumber } from "./parse.js";
import { readSweepConfig, type SweepSection } from "./sweep-config.js";
import { registerTrain } from "./train.js";
import { flagsToConfig, type TrainConfig, targetFlag, toTrainOptions } from "./train-config.js";

/** The compiled CLI beside this file: each run is `node main.js train ...`. */
export const CLI_BIN = fileURLToPath(new URL("./main.js", import.meta.url));

/** train options a sweep does not take as flags (it sets them per run, or they make no sense for a grid). */
const NOT_PASSED = new Set(["out", "config", "r", "target", "resume", "force", "loraConfig", "progress"]);

export interface SweepSettings {
  out: string;
  /** The train settings every run shares (no r, target, out; seed is the first seed). */
  train: TrainConfig;
  targets: TargetSet[];
  ranks: number[];
  budget?: number;
  seeds: number;
  jobs: number;
  /** Pass --no-report to each run (no per-run report.html / loss.png). */
  noReport?: boolean;
  /** --queue: the runs go on this BullMQ queue for `lora-ts worker`s instead of local children. */
  queue?: QueueTarget;
}

export interface SweepResult {
  rows: ResultRow[];
  runs: RunSpec[];
  failed: number;
  report: string;
}

function targetSet(label: string | string[]): TargetSet {
  if (Array.isArray(label)) return { label: label.join(","), value: label };
  return { label, value: targetFlag(label) };
}

/** The train arguments every run shares, keys sorted (so that a stored list compares as equal). */
export function sharedTrainArgs(c: TrainConfig): string[] {
  const args: string[] = [];
  for (const k of Object.keys(c).sort()) {
    if (k === "out" || k === "seed" || k === "r" || k === "target") continue;
    let v = (c as Record<string, unknown>)[k];
    if (v === undefined) continue;
    const flag = `--${k.replaceAll("_", "-")}`;
    if (typeof v === "boolean") {
      if (k === "memory_check") {
        if (!v) args.push("--no-memory-check");
      } else if (v) args.push(flag);
      continue;
    }
    // Paths compare by where they point, whatever folder the sweep is started from.
    if ((k === "model" || k === "data" || k === "val_data") && typeof v === "string" && existsSync(v))
      v = resolve(v);
    args.push(flag, String(v));
  }
  return args;
}

function checkInputs(c: TrainConfig): void {
  if (c.mode === "full")
    throw new LoraTsError("--mode full: a sweep varies LoRA's r and targets; it needs --mode lora");
  if (c.val_data !== undefined && c.val_fraction !== undefined)
    throw new LoraTsError("--val-fraction: give --val-data or --val-fraction, not both");
  const model = c.model!;
  if (!existsSync(model) && !hubIdFor(model))
    throw new LoraTsError(`--model ${preview(model)}: no such folder or file`);
  for (const [flag, p] of [
    ["--data", c.data],
    ["--val-data", c.val_data],
  ] as const) {
    if (p !== undefined && !existsSync(p)) throw new LoraTsError(`${flag} ${preview(p)}: no such file`);
  }
}

function checkOut(out: string): void {
  if (out.trim() === "") throw new LoraTsError("--out: empty path");
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new LoraTsError(`--out ${preview(out)}: is a file, not a folder`);
  const names = readdirSync(out);
  if (names.length > 0 && !names.includes("runs") && !names.includes("results.json"))
    throw new LoraTsError(
      `--out ${preview(out)}: is not empty and holds no sweep (no runs/ folder); use a new folder`,
    );
}

/** Plans, prints the plan, runs, writes results and report, prints the summary. */
export async function executeSweep(s: SweepSettings, log: (line: string) => void): Promise<SweepResult> {
  checkOut(s.out);
  checkInputs(s.train);
  // An unreachable --queue is one line now, before the plan is printed or OUT is made.
  if (s.queue !== undefined) await (await import("../train/sweep-queue-connect.js")).probeRedis(s.queue);
  const dir = await resolveModelPath(s.train.model!);
  const cfg = openModelDir(dir).config;
  const runs = planGrid({
    modules: listModules(cfg),
    modelType: cfg.modelType,
    targets: s.targets,
    ranks: s.ranks,
    budget: s.budget,
    seeds: s.seeds,
    firstSeed: s.train.seed ?? 0,
  });
  log(
    s.budget !== undefined ? `budget ${s.budget} trainable parameters: the closest r per target set` : "plan",
  );
  log(planTable(runs));
  for (const r of runs.filter((x, i) => x.note && runs.findIndex((y) => y.targets === x.targets) === i))
    log(`note: --targets ${JSON.stringify(r.targets.label)}: ${r.note}; its runs will fail`);
  if (s.train.val_data === undefined && !s.train.val_fraction)
    log("note: no --val-data or --val-fraction: the runs have no validation loss, and the table stays empty");
  log(
    s.queue === undefined
      ? `${runs.length} runs into ${join(s.out, "runs")}, ${s.jobs} at a time\n`
      : `${runs.length} runs into ${join(s.out, "runs")}, on queue ${s.queue.name} at ${s.queue.shown}: start \`lora-ts worker --queue ${s.queue.shown}${s.queue.name === "lora-ts-sweep" ? "" : ` --queue-name ${s.queue.name}`}\` where the model and data can be read\n`,
  );

  const shared = sharedTrainArgs(s.train);
  const extra = ["--no-progress", ...(s.noReport ? ["--no-report"] : [])];
  const jobs: RunJob[] = runs.map((r) => ({
    name: r.name,
    args: [...shared, "--target", r.targets.label, "--r", String(r.r), "--seed", String(r.seed)],
    extra,
  }));
  mkdirSync(s.out, { recursive: true });
  const onEnd = (k: number, n: number, o: RunOutcome) => {
    const what =
      o.status === "failed"
        ? `failed: ${o.error}`
        : o.status === "interrupted" || o.status === "not run"
          ? o.status
          : o.status === "skipped"
            ? "skipped (finished before, same settings)"
            : `done in ${o.seconds!.toFixed(1)} s`;
    log(`[${k}/${n}] ${o.name}: ${what}`);
  };
  const queue = s.queue;
  const outcomes =
    queue === undefined
      ? await runSweep(jobs, {
          bin: CLI_BIN,
          out: s.out,
          jobs: s.jobs,
          onStart: (k, n, job) => {
            if (s.jobs === 1) log(`[${k}/${n}] ${job.name} ...`);
          },
          onEnd,
        })
      : await (await import("../train/sweep-queue.js")).runSweepOnQueue(jobs, {
          out: s.out,
          queue,
          onEnd,
          onProgress: (p) =>
            log(`queue: ${p.waiting} waiting, ${p.active} active, ${p.done} done, ${p.failed} failed`),
          // A terminal shows each change; a log file also gets a line every 30 s.
          everyMs: process.stdout.isTTY ? Number.POSITIVE_INFINITY : 30_000,
        });
  const rows = runs.map((r, i) => resultRow(r, outcomes[i]!, runDir(s.out, r.name)));
  const files = writeResults(s.out, rows);
  const curves = new Map<string, Metrics[]>(runs.map((r) => [r.name, runMetrics(runDir(s.out, r.name))]));
  const report = join(s.out, "report.html");
  writeSweepReport(report, rows, curves, {
    title: `lora-ts sweep — ${runs.length} runs`,
    budget: s.budget,
    note: `${s.train.model} · ${s.train.data}${s.budget !== undefined ? ` · budget ${s.budget}` : ""}`,
  });
  log("");
  log(summaryTable(rows, s.budget));
  log(`\nresults: ${files.json}, ${files.csv}\nreport:  ${report}`);
  if (outcomes.interrupted !== undefined) {
    const left = rows.filter((r) => r.status === "interrupted" || r.status === "not run").length;
    throw new LoraTsError(
      `interrupted by ${outcomes.interrupted}: ${left} of ${rows.length} runs not finished; run the same command again to go on`,
    );
  }
  return { rows, runs, failed: rows.filter((r) => r.status === "failed").length, report };
}

/** Flags and config file → settings; every problem is one line naming the flag or the file's key. */
export function sweepSettings(flags: Record<string, unknown>): SweepSettings {
  const file: { train: TrainConfig; sweep: SweepSection } =
    typeof flags["config"] === "string" ? readSweepConfig(flags["config"]) : { train: {}, sweep: {} };
  const trainFlags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) if (!SWEEP_ONLY.has(k) && !NOT_PASSED.has(k)) trainFlags[k] = v;
  const train: TrainConfig = { ...file.train, ...flagsToConfig(trainFlags) };
  if (typeof flags["out"] === "string") train.out = flags["out"];
  for (const key of ["model", "data", "out"] as const)
    if (train[key] === undefined)
      throw new LoraTsError(`sweep: --${key} is required (or "${key}:" in the config file)`);
  toTrainOptions(train); // epochs with max_steps, and the like: refused before anything runs

  const rFlag = flags["r"] as string | undefined;
  const budgetFlag = flags["budget"] as string | undefined;
  const budget =
    budgetFlag !== undefined
      ? parseNumber("--budget", budgetFlag, { integer: true, min: 1 })
      : file.sweep.budget;
  const fileR = file.sweep.r;
  let ranks: number[] = [];
  if (rFlag !== undefined) ranks = parseRanks("--r", rFlag);
  else if (typeof fileR === "string") ranks = parseRanks("sweep.r", fileR);
  else if (typeof fileR === "number") ranks = [fileR];
  else if (Array.isArray(fileR)) ranks = parseRanks("sweep.r", fileR.join(","));
  if (budget !== undefined && ranks.length > 0)
    throw new LoraTsError("--budget: it replaces the r list; give --budget or --r, not both");
  if (budget === undefined && ranks.length === 0)
    throw new LoraTsError(
      "sweep: give --r 1,2,4,8,64 or --budget N (or sweep.r / sweep.budget in the config file)",
    );
  const targetFlags = flags["targets"] as string[] | undefined;
  const labels: (string | string[])[] = targetFlags ?? file.sweep.targets ?? [];
  if (labels.length === 0)
    throw new LoraTsError(
      "--targets: give at least one target set, e.g. --targets q_proj --targets q_proj,v_proj",
    );
  const empty = labels.find((l) => (Array.isArray(l) ? l.join("") : l).trim() === "");
  if (empty !== undefined) throw new LoraTsError("--targets: an empty target set");
  const num = (flag: string, key: "seeds" | "jobs") =>
    flags[key] !== undefined
      ? parseNumber(flag, flags[key] as string, { integer: true, min: 1 })
      : (file.sweep[key] ?? 1);
  return {
    out: train.out!,
    train,
    targets: labels.map(targetSet),
    ranks,
    budget,
    seeds: num("--seeds", "seeds"),
    jobs: num("--jobs", "jobs"),
    noReport: flags["report"] === false,
    ...queueOf(flags),
  };
}

/** --queue and --queue-name (checked here, before any run; bullmq is loaded only when the runs start). */
function queueOf(flags: Record<string, unknown>): { queue?: QueueTarget } {
  const url = flags["queue"] as string | undefined;
  const name = flags["queueName"] as string | undefined;
  if (url === undefined) {
    if (name !== undefined)
      throw new LoraTsError("--queue-name: it names a --queue; give --queue redis://HOST:PORT too");
    return {};
  }
  if (flags["jobs"] !== undefined)
    throw new LoraTsError(
      "--jobs: with --queue the runs at once are the workers' (lora-ts worker --concurrency)",
    );
  return { queue: parseQueue(url, name) };
}

const SWEEP_ONLY = new Set([
  "targets",
  "seeds",
  "budget",
  "jobs",
  "demo",
  "report",
  "r",
  "out",
  "config",
  "queue",
  "queueName",
]);

function collectTargets(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerSweep(program: Command): void {
  const cmd = program
    .command("sweep")
    .description(
      "train a grid of LoRA runs (target sets × r × seeds, or a parameter budget) and compare them",
    )
    .option("--out <dir>", "sweep folder: runs/, logs/, results.json, results.csv, report.html")
    .option(
      "--config <file>",
      'YAML or JSON: train keys plus a "sweep:" section (r, targets, seeds, budget, jobs)',
    )
    .option("--r <list>", "ranks, comma-separated, e.g. 1,2,4,8,64")
    .option(
      "--targets <set>",
      "a target set, any form --target takes (q_proj,v_proj | all-linear | REGEX); repeat for each set",
      collectTargets,
    )
    .option("--seeds <n>", "runs per cell: seeds --seed, --seed+1, ... (default 1)")
    .option("--budget <n>", "instead of --r: per target set, the r whose trainable count is closest to n")
    .option("--jobs <n>", "runs at once, each a child process (default 1)")
    .option(
      "--queue <url>",
      "put the runs on a BullMQ queue in this Redis (redis://HOST:PORT) for `lora-ts worker`s",
    )
    .option("--queue-name <name>", "with --queue: the queue's name (default lora-ts-sweep)")
    .option("--demo", "the demo sweep on the embedded default model (npm run demo:sweep)");
  // Every train option, as train declares it, except those the sweep sets per run.
  const scratch = new Command();
  registerTrain(scratch);
  const train = scratch.commands.find((c) => c.name() === "train")!;
  for (const opt of train.options) {
    if (NOT_PASSED.has(opt.attributeName())) continue;
    cmd.addOption(new Option(opt.flags, `(train) ${opt.description}`));
  }
  cmd.action(async (flags: Record<string, unknown>) => {
    if (flags["demo"]) {
      const { runSweepDemo } = await import("./sweep-demo.js");
      await runSweepDemo(flags);
      return;
    }
    const s = sweepSettings(flags);
    const result = await executeSweep(s, (line) => process.stdout.write(`${line}\n`));
    if (result.failed > 0)
      throw new LoraTsError(
        `${result.failed} of ${result.rows.length} runs failed (results.json and logs/ in ${s.out} say why)`,
      );
  });
}
