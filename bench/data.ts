/**
 * Data preparation at scale (issue #18): how long `lora-ts train` takes to reach its first step on
 * Alpaca-sized and 1M-row data sets, cold and warm cache, how fast preparation runs against the
 * single-thread pipeline of earlier versions, its peak memory, and whether a run killed mid-epoch
 * resumes exactly.
 *
 *   npm run bench:data [-- --rows 52000 --big-rows 1000000 --work DIR --skip-big]
 *
 * Every figure comes from a real `lora-ts train` process on the embedded default model (so the model
 * costs almost nothing and the time is the data's), with a fresh $LORA_TS_CACHE for "cold". The data
 * files are generated from a seed (bench/data-gen.ts) into --work and kept there for the next run.
 * "First step" is the time from spawning the process to its first step record in metrics.jsonl.
 *
 * The single-thread reference is the pipeline `train` used before preparation went parallel
 * (readDataset + buildExamples, in memory, one thread), run in this same process's child on the small
 * file: its rows/s is "the per-core rate" the target is a multiple of.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readDataset } from "../src/data/dataset-file.js";
import { buildExamples } from "../src/data/examples.js";
import { readTokenizer } from "../src/data/tokenizer-files.js";
import { DEFAULT_MODEL_DIR } from "../src/models/default-model.js";
import { generateAlpaca } from "./data-gen.js";
import { machineLine } from "./machine.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const CLI = join(here, "../src/cli/main.js");
const HOOK = join(here, "peak-rss-hook.js");

const { values: a } = parseArgs({
  options: {
    rows: { type: "string", default: "52000" },
    "big-rows": { type: "string", default: "1000000" },
    work: { type: "string", default: join(tmpdir(), "lora-ts-bench-data") },
    "skip-big": { type: "boolean", default: false },
    /** Internal: the single-thread reference on one file; prints {"rows","tokens","seconds"}. */
    "serial-reference": { type: "string" },
  },
});

if (a["serial-reference"] !== undefined) {
  const t0 = performance.now();
  const tok = readTokenizer(DEFAULT_MODEL_DIR);
  const { stats } = buildExamples(readDataset(a["serial-reference"]), tok, { maxLength: 512 });
  const seconds = (performance.now() - t0) / 1000;
  const tokens = stats.trainedTokens;
  console.log(
    JSON.stringify({ rows: stats.rows, tokens, seconds, peakBytes: process.resourceUsage().maxRSS * 1024 }),
  );
  process.exit(0);
}

interface RunResult {
  /** Seconds from spawn to the first step record in metrics.jsonl. */
  firstStepS: number;
  totalS: number;
  peakBytes: number;
  stdout: string;
}

/** Runs `lora-ts train` with `args`, timing it to its first step record. */
function trainRun(
  args: string[],
  env: NodeJS.ProcessEnv,
  opts: { out: string; killAtStep?: number; resumed?: boolean } = { out: "" },
): Promise<RunResult> {
  const rssFile = join(a.work!, `rss-${process.pid}-${Date.now()}`);
  const t0 = performance.now();
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "--import",
      HOOK,
      CLI,
      "train",
      "--model",
      DEFAULT_MODEL_DIR,
      "--out",
      opts.out,
      "--no-progress",
      ...args,
    ],
    { env: { ...process.env, ...env, LORA_TS_BENCH_RSS_FILE: rssFile }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => {
    stdout += d;
  });
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  let firstStepS = Number.NaN;
  const metrics = join(opts.out, "metrics.jsonl");
  const poll = setInterval(() => {
    if (!existsSync(metrics)) return;
    const text = readFileSync(metrics, "utf8");
    // A resumed run's file already holds the steps before its checkpoint: no first step to time.
    if (!opts.resumed && Number.isNaN(firstStepS) && /"type":"train"/.test(text))
      firstStepS = (performance.now() - t0) / 1000;
    if (opts.killAtStep !== undefined && text.includes(`"type":"train","step":${opts.killAtStep},`)) {
      child.kill("SIGKILL");
    }
  }, 20);
  return new Promise((resolve, reject) => {
    child.on("exit", (code, signal) => {
      clearInterval(poll);
      const totalS = (performance.now() - t0) / 1000;
      const killed = signal === "SIGKILL" && opts.killAtStep !== undefined;
      if (code !== 0 && !killed) {
        reject(new Error(`lora-ts train ${args.join(" ")} exited ${code ?? signal}: ${stderr.trim()}`));
        return;
      }
      const peakBytes = existsSync(rssFile) ? Number(readFileSync(rssFile, "utf8")) : Number.NaN;
      rmSync(rssFile, { force: true });
      resolve({ firstStepS, totalS, peakBytes, stdout });
    });
  });
}

function losses(out: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const line of readFileSync(join(out, "metrics.jsonl"), "utf8").split("\n")) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as { type?: string; step?: number; loss?: number };
      if (r.type === "train" && r.step !== undefined && r.loss !== undefined) m.set(r.step, r.loss);
    } catch {
      // A torn last line from the killed run.
    }
  }
  return m;
}

const mib = (b: number) => (b / 2 ** 20).toFixed(0);
const s = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(2));

mkdirSync(a.work!, { recursive: true });
const scratch = mkdtempSync(join(a.work!, "run-"));
const freshCache = () => mkdtempSync(join(scratch, "cache-"));
const outDir = (name: string) => join(scratch, name);

const smallRows = Number(a.rows);
const small = join(a.work!, `alpaca-${smallRows}.jsonl`);
const smallBytes = generateAlpaca(small, smallRows);
const tiny = join(scratch, "tiny.jsonl");
writeFileSync(tiny, readFileSync(small, "utf8").split("\n").slice(0, 64).join("\n"));

console.log(`data preparation benchmark; ${machineLine()}`);
console.log(`small: ${small} (${smallRows} rows, ${mib(smallBytes)} MiB)`);

const ref = JSON.parse(
  execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--serial-reference", small], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
  }).trim(),
) as { rows: number; tokens: number; seconds: number; peakBytes: number };
const refRate = ref.rows / ref.seconds;
console.log(
  `single-thread reference (readDataset + buildExamples, in memory): ${s(ref.seconds)} s, ` +
    `${refRate.toFixed(0)} rows/s, ${(ref.tokens / ref.seconds / 1000).toFixed(0)}k trained tokens/s, ` +
    `peak RSS ${mib(ref.peakBytes)} MiB`,
);

const rows: string[][] = [];
const add = (what: string, r: RunResult, note = "") =>
  rows.push([what, s(r.firstStepS), s(r.totalS), mib(r.peakBytes), note]);

const base = await trainRun(
  ["--data", tiny, "--max-steps", "1"],
  { LORA_TS_CACHE: freshCache() },
  {
    out: outDir("tiny"),
  },
);
add("64 rows (the model's own cost)", base);

const smallCache = freshCache();
const cold = await trainRun(
  ["--data", small, "--max-steps", "1"],
  { LORA_TS_CACHE: smallCache },
  {
    out: outDir("small-cold"),
  },
);
add(`${smallRows} rows, cold cache`, cold, `target <= 15 s: ${cold.firstStepS <= 15 ? "met" : "NOT met"}`);
const warm = await trainRun(
  ["--data", small, "--max-steps", "1"],
  { LORA_TS_CACHE: smallCache },
  {
    out: outDir("small-warm"),
  },
);
add(`${smallRows} rows, warm cache`, warm, `target <= 2 s: ${warm.firstStepS <= 2 ? "met" : "NOT met"}`);
const serial = await trainRun(
  ["--data", small, "--max-steps", "1", "--data-workers", "1", "--no-data-cache"],
  { LORA_TS_CACHE: freshCache() },
  { out: outDir("small-serial") },
);
add(`${smallRows} rows, 1 worker, no cache`, serial);

if (!a["skip-big"]) {
  const bigRows = Number(a["big-rows"]);
  const big = join(a.work!, `alpaca-${bigRows}.jsonl`);
  const t0 = performance.now();
  const bigBytes = generateAlpaca(big, bigRows, 1000);
  console.log(
    `big: ${big} (${bigRows} rows, ${mib(bigBytes)} MiB; ready in ${s((performance.now() - t0) / 1000)} s)`,
  );
  const bigCache = freshCache();
  const bigCold = await trainRun(
    ["--data", big, "--max-steps", "1"],
    { LORA_TS_CACHE: bigCache },
    {
      out: outDir("big-cold"),
    },
  );
  const prepS = bigCold.firstStepS - base.firstStepS;
  const rate = bigRows / prepS;
  const dataBytes = bigCold.peakBytes - base.peakBytes;
  add(
    `${bigRows} rows, cold cache`,
    bigCold,
    `${rate.toFixed(0)} rows/s = ${(rate / refRate).toFixed(2)}x the single-thread rate (target >= 1.5x: ` +
      `${rate / refRate >= 1.5 ? "met" : "NOT met"}); data pipeline ${mib(dataBytes)} MiB beyond the ` +
      `64-row run (target <= 1024: ${dataBytes <= 2 ** 30 ? "met" : "NOT met"})`,
  );
  const bigWarm = await trainRun(
    ["--data", big, "--max-steps", "1"],
    { LORA_TS_CACHE: bigCache },
    {
      out: outDir("big-warm"),
    },
  );
  add(`${bigRows} rows, warm cache`, bigWarm);

  // Resume: an uninterrupted run against one killed after step 3 (checkpoint at step 2) and resumed.
  const common = ["--data", big, "--max-steps", "6", "--save-every", "2", "--batch-size", "2"];
  await trainRun(common, { LORA_TS_CACHE: bigCache }, { out: outDir("resume-whole") });
  await trainRun(common, { LORA_TS_CACHE: bigCache }, { out: outDir("resume-cut"), killAtStep: 3 });
  const resumed = await trainRun(
    [...common, "--resume"],
    { LORA_TS_CACHE: bigCache },
    { out: outDir("resume-cut"), resumed: true },
  );
  const want = losses(outDir("resume-whole"));
  const got = losses(outDir("resume-cut"));
  let worst = 0;
  for (let st = 1; st <= 6; st++)
    worst = Math.max(worst, Math.abs((want.get(st) ?? Number.NaN) - (got.get(st) ?? Number.NaN)));
  add(
    `${bigRows} rows, killed at step 3, resumed`,
    resumed,
    `steps 1-6 losses vs an uninterrupted run: largest difference ${Number.isNaN(worst) ? "missing steps" : worst.toExponential(1)} ` +
      `(${worst === 0 ? "exact" : worst <= 1e-6 ? "within 1e-6" : "DIFFERENT"})`,
  );
}

console.log("\n| run | first step s | total s | peak RSS MiB | note |\n| --- | --- | --- | --- | --- |");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);

// Python's tokenizers, when present: the same tokenizer.json over the same texts, one batch call.
try {
  execFileSync("/usr/bin/python3", ["-c", "import tokenizers"], { stdio: "ignore" });
  const py = execFileSync(
    "/usr/bin/python3",
    [
      "-c",
      "import json,sys,time\nfrom tokenizers import Tokenizer\nt=Tokenizer.from_file(sys.argv[1])\n" +
        "rows=[json.loads(l) for l in open(sys.argv[2])]\ntexts=[r['instruction']+r['input']+r['output'] for r in rows]\n" +
        "s=time.time();enc=t.encode_batch(texts);d=time.time()-s\nprint(sum(len(e.ids) for e in enc)/d)",
      join(DEFAULT_MODEL_DIR, "tokenizer.json"),
      small,
    ],
    { encoding: "utf8" },
  );
  console.log(
    `Python tokenizers (encode_batch, all its threads): ${(Number(py) / 1000).toFixed(0)}k tokens/s`,
  );
} catch {
  console.log("Python tokenizers: skipped (/usr/bin/python3 has no `tokenizers` module)");
}
rmSync(scratch, { recursive: true, force: true });
