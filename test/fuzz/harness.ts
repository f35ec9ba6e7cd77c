/**
 * The fuzz harness: one fast-check property per target (a parser of untrusted input), checked on
 * every generated or mutated input for the three outcomes issue #12 asks for:
 *  - no crash: the parser returns, or throws a LoraTsError with a one-line message (anything else,
 *    a TypeError, a RangeError, an onnxruntime error, a plain Error, is a failure);
 *  - no hang: every input finishes within HANG_MS (a synchronous infinite loop cannot be interrupted,
 *    so the elapsed time is measured; an input over the limit is run once more, so that one GC pause on
 *    a busy machine is not reported as a hang);
 *  - no allocation beyond the input: the growth of process.memoryUsage() (ArrayBuffers and JS heap)
 *    across one input stays under allocLimit(input size).
 * Every input is counted; a failing property is then re-run with fast-check's shrinking to report a
 * small counterexample. `explicit` inputs (headers declaring 2^60 bytes and the like) must be refused
 * with a one-line LoraTsError, under the same time and memory checks.
 *
 * Runs: LORA_TS_FUZZ_RUNS (default 1000, the CI budget; `npm run fuzz` uses 100000). Seed:
 * LORA_TS_FUZZ_SEED, else random; it is printed with every failure so the run can be replayed.
 */
import { test } from "node:test";
import fc from "fast-check";
import { LoraTsError } from "../../src/util/errors.js";

/** An input running longer than this (twice) is a hang. */
export const HANG_MS = 1000;

/** Largest memory growth allowed for one input of `size` bytes: generous, but far below a 2^30 allocation. */
export function allocLimit(size: number): number {
  return 64 * size + 64 * 2 ** 20;
}

export interface FuzzTarget<T> {
  /** "family: what", e.g. "safetensors: mutated files". */
  name: string;
  /** One line: the entry points exercised and how inputs are made (for the fuzz report). */
  covers: string;
  arbitrary: fc.Arbitrary<T>;
  /** Feeds one input to the parser (writing it to a file first for file readers); may be async. */
  run: (input: T) => unknown;
  /** The input's size in bytes: what it may make the parser allocate (times a constant). */
  size: (input: T) => number;
  /**
   * An error other than a LoraTsError that is a correct outcome for this target (the CLI's argument
   * errors): undefined when `e` is acceptable, else the problem.
   */
  accept?: (e: unknown) => string | undefined;
  /** Inputs that must be refused with a one-line LoraTsError (huge declared sizes and the like). */
  explicit?: { name: string; input: T }[];
  /** A line for the report after a run: known bugs the target steps around, with their counts. */
  notes?: () => string;
  /**
   * Bugs found in files this fuzzer may not change (their owners' work): an error matching one is
   * counted under its name and reported, instead of failing every run until the owner fixes it.
   */
  known?: KnownBug[];
}

export interface KnownBug {
  /** "src/models/family.ts: model_type quoted raw". */
  name: string;
  matches: (e: unknown) => boolean;
}

/** A known bug that shows as a multi-line LoraTsError whose message matches `pattern`. */
export function multiLineKnown(name: string, pattern: RegExp): KnownBug {
  return {
    name,
    matches: (e) => e instanceof LoraTsError && /[\r\n]/.test(e.message) && pattern.test(e.message),
  };
}

/** A target of any input type, for lists of targets. */
// biome-ignore lint/suspicious/noExplicitAny: each target's input type is its own
export type AnyTarget = FuzzTarget<any>;

export interface TargetStats {
  name: string;
  runs: number;
  /** Inputs the parser accepted (returned without an error): how deep the inputs get. */
  accepted: number;
  failures: number;
  slowestMs: number;
  /** Largest growth of ArrayBuffers or heap over one input, in bytes. */
  maxGrowth: number;
  seed: number;
  /** The problems of the first few failures, and fast-check's shrunk counterexample. */
  problems: string[];
  counterexample?: string;
  explicit: number;
  explicitFailures: string[];
  seconds: number;
  notes?: string;
  /** Inputs that hit each known bug (see FuzzTarget.known). */
  known: Record<string, number>;
}

/** The number of generated inputs per target. */
export function fuzzRuns(): number {
  const n = Number(process.env["LORA_TS_FUZZ_RUNS"] ?? 1000);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`LORA_TS_FUZZ_RUNS must be a positive integer`);
  return n;
}

function fuzzSeed(): number {
  const s = process.env["LORA_TS_FUZZ_SEED"];
  return s === undefined ? (Math.random() * 2 ** 31) | 0 : Number(s);
}

interface Outcome {
  problem?: string;
  /** The known bug the error matched, if any. */
  known?: string;
  ms: number;
  growth: number;
  threw: boolean;
}

function cut(s: string, n = 300): string {
  return s.length > n ? `${s.slice(0, n - 3)}...` : s;
}

function firstLine(s: string): string {
  return cut(s.split(/\r?\n/)[0] ?? "");
}

/** Why `e` is not an acceptable outcome, or undefined when it is. */
function judgeError<T>(target: FuzzTarget<T>, e: unknown): string | undefined {
  if (e instanceof LoraTsError) {
    return /[\r\n]/.test(e.message) ? `multi-line LoraTsError: ${cut(JSON.stringify(e.message))}` : undefined;
  }
  if (target.accept) {
    const verdict = target.accept(e);
    if (verdict === undefined) return undefined;
    return verdict;
  }
  const name = e instanceof Error ? e.constructor.name : typeof e;
  const message = e instanceof Error ? e.message : String(e);
  return `crash: ${name}: ${firstLine(message)}`;
}

const CONSOLE_METHODS = ["log", "info", "warn", "error", "debug"] as const;

async function once<T>(target: FuzzTarget<T>, input: T): Promise<Outcome> {
  const before = process.memoryUsage();
  const t0 = performance.now();
  let problem: string | undefined;
  let known: string | undefined;
  let threw = false;
  // Libraries log about odd inputs (@huggingface/tokenizers: "Unknown pattern type"); a million
  // such lines would bury the report.
  const saved = CONSOLE_METHODS.map((m) => console[m]);
  for (const m of CONSOLE_METHODS) console[m] = () => {};
  const emitWarning = process.emitWarning; // yaml warns about odd keys this way
  process.emitWarning = () => {};
  try {
    const r = target.run(input);
    if (r instanceof Promise) await r;
  } catch (e) {
    threw = true;
    known = target.known?.find((k) => k.matches(e))?.name;
    if (known === undefined) problem = judgeError(target, e);
  } finally {
    CONSOLE_METHODS.forEach((m, i) => {
      console[m] = saved[i]!;
    });
    process.emitWarning = emitWarning;
  }
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  const growth = Math.max(after.arrayBuffers - before.arrayBuffers, after.heapUsed - before.heapUsed, 0);
  return { problem, known, ms, growth, threw };
}

/** Runs one input through every check; the outcome's problem is set when it fails one. */
export async function checkInput<T>(target: FuzzTarget<T>, input: T): Promise<Outcome> {
  let o = await once(target, input);
  const limit = allocLimit(target.size(input));
  // A slow or hungry input is tried again: a GC pause or another process can stall one run, a real
  // hang or allocation repeats.
  if (o.problem === undefined && (o.ms > HANG_MS || o.growth > limit)) o = await once(target, input);
  if (o.problem === undefined && o.ms > HANG_MS) o.problem = `hang: ${o.ms.toFixed(0)} ms (limit ${HANG_MS})`;
  if (o.problem === undefined && o.growth > limit) {
    o.problem = `allocation: memory grew ${mib(o.growth)} for a ${target.size(input)}-byte input (limit ${mib(limit)})`;
  }
  return o;
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}

/** A short rendering of an input for reports. */
export function showInput(v: unknown): string {
  let s: string;
  if (v instanceof Uint8Array) {
    s = `<${v.length} bytes: ${Buffer.from(v.subarray(0, 96)).toString("hex")}${v.length > 96 ? "..." : ""}>`;
  } else {
    try {
      s = fc.stringify(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > 600 ? `${s.slice(0, 597)}...` : s;
}

/** Runs `runs` inputs (plus the explicit ones) through the checks and counts the outcomes. */
export async function runTarget<T>(
  target: FuzzTarget<T>,
  runs: number,
  seed = fuzzSeed(),
): Promise<TargetStats> {
  const start = performance.now();
  const stats: TargetStats = {
    name: target.name,
    runs: 0,
    accepted: 0,
    failures: 0,
    slowestMs: 0,
    maxGrowth: 0,
    seed,
    problems: [],
    explicit: 0,
    explicitFailures: [],
    seconds: 0,
    known: {},
  };
  for (const ex of target.explicit ?? []) {
    const o = await checkInput(target, ex.input);
    stats.explicit++;
    const problem = o.problem ?? (o.threw ? undefined : "accepted: no error was thrown");
    if (problem !== undefined) stats.explicitFailures.push(`${ex.name}: ${problem}`);
  }
  // The main pass never throws, so every input is counted; failures are collected.
  await fc.check(
    fc.asyncProperty(target.arbitrary, async (input) => {
      const o = await checkInput(target, input);
      stats.runs++;
      if (!o.threw) stats.accepted++;
      stats.slowestMs = Math.max(stats.slowestMs, o.ms);
      stats.maxGrowth = Math.max(stats.maxGrowth, o.growth);
      if (o.known !== undefined) stats.known[o.known] = (stats.known[o.known] ?? 0) + 1;
      if (o.problem !== undefined) {
        stats.failures++;
        if (stats.problems.length < 5) stats.problems.push(`${o.problem} <- ${showInput(input)}`);
      }
    }),
    { numRuns: runs, seed },
  );
  if (stats.failures > 0) {
    // Same seed, same inputs: fast-check stops at the first failure and shrinks it (for at most
    // two minutes: shrinking a hang re-runs it many times).
    const shrunk = await fc.check(
      fc.asyncProperty(target.arbitrary, async (input) => {
        const o = await checkInput(target, input);
        if (o.problem !== undefined) throw new Error(o.problem);
      }),
      { numRuns: runs, seed, interruptAfterTimeLimit: 120_000 },
    );
    if (shrunk.failed && shrunk.counterexample) {
      stats.counterexample = `${firstLine(String((shrunk.errorInstance as Error)?.message ?? ""))} <- ${showInput(shrunk.counterexample[0])}`;
    }
  }
  stats.seconds = (performance.now() - start) / 1000;
  if (target.notes) stats.notes = target.notes();
  return stats;
}

/**
 * Runs every step, even after one throws, then rethrows the worst error: one that is not a
 * one-line LoraTsError if any, else the first. For targets that feed one input to several readers.
 */
export function allSteps(...steps: (() => void)[]): void {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      step();
    } catch (e) {
      errors.push(e);
    }
  }
  const bad = errors.find((e) => !(e instanceof LoraTsError) || /[\r\n]/.test(e.message));
  if (bad !== undefined) throw bad;
  if (errors.length > 0) throw errors[0];
}

/** One line (and the failures) for a target's stats. */
export function formatStats(s: TargetStats): string {
  const head =
    `${s.name}: ${s.runs} runs (${s.accepted} accepted), ${s.failures} failures, ${s.explicit} explicit (${s.explicitFailures.length} failed), ` +
    `slowest ${s.slowestMs.toFixed(1)} ms, max growth ${mib(s.maxGrowth)}, ${s.seconds.toFixed(1)} s, seed ${s.seed}`;
  const lines = [
    head,
    ...s.explicitFailures.map((p) => `  explicit: ${p}`),
    ...s.problems.map((p) => `  ${p}`),
  ];
  if (s.counterexample) lines.push(`  shrunk: ${s.counterexample}`);
  for (const [name, n] of Object.entries(s.known))
    lines.push(`  known bug, not fixed here: ${name}: ${n} inputs`);
  if (s.notes) lines.push(`  note: ${s.notes}`);
  return lines.join("\n");
}

/** Throws (for node:test) when a target had any failure. */
export async function assertTarget<T>(target: FuzzTarget<T>, runs = fuzzRuns()): Promise<TargetStats> {
  const s = await runTarget(target, runs);
  if (s.failures > 0 || s.explicitFailures.length > 0) throw new Error(formatStats(s));
  return s;
}

/** One node:test test per target, each failing with the stats of its failures. */
export function fuzzTests(targets: readonly AnyTarget[]): void {
  for (const t of targets) test(t.name, async () => void (await assertTarget(t)));
}
