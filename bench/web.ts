/**
 * `npm run bench:web`: training tokens/s of the browser page (headless Chromium, onnxruntime-web,
 * WebAssembly with threads) against the Node CLI (`lora-ts train`, onnxruntime-node) on the same shape,
 * in the same run: the embedded default model, the persona data, the demo's LoRA (r 8, all-linear),
 * batch 16 × up to 64 tokens. After a short warm-up run in the tab, rounds alternate page and CLI so
 * drift on a shared host hits both; the best of each and their ratio are what to read. Prints the CPU
 * and the WebAssembly thread count.
 *
 * First, what limits it: single ops of the training graph, one thread, onnxruntime-web's WebAssembly
 * build (run in Node's V8) against onnxruntime-node, each a graph of 20 such ops on a 1024×256 input.
 *
 * Needs the build (npm run build: dist/web) and Debian's chromium at /usr/bin/chromium.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web";
import { chromium } from "playwright-core";
import { emitModel } from "../src/graph/emit.js";
import { Graph, type Value } from "../src/graph/ir.js";
import * as o from "../src/graph/ops.js";
import { startWeb } from "../test/web/web-process.js";
import { machineLine } from "./machine.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = join(REPO, "dist/src/cli/main.js");
const MODEL = join(REPO, "models/default");
const DATA = join(MODEL, "data/persona.jsonl");
const CHROMIUM = "/usr/bin/chromium";
const STEPS = Number(process.env["BENCH_WEB_STEPS"] ?? 30);
const ROUNDS = Number(process.env["BENCH_WEB_ROUNDS"] ?? 3);
const SETTINGS: [field: string, flag: string, value: string][] = [
  ["#set-r", "--r", "8"],
  ["#set-alpha", "--alpha", "16"],
  ["#set-dropout", "--dropout", "0.05"],
  ["#set-targets", "--target", "all-linear"],
  ["#set-lr", "--lr", "3e-3"],
  ["#set-steps", "--max-steps", String(STEPS)],
  ["#set-max-length", "--max-length", "64"],
  ["#set-batch-size", "--batch-size", "16"],
  ["#set-seed", "--seed", "0"],
  ["#set-schedule", "--schedule", "cosine"],
  ["#set-warmup", "--warmup-steps", "0"],
];

if (!existsSync(CHROMIUM)) throw new Error(`bench:web needs ${CHROMIUM} (apt-get install -y chromium)`);
if (!existsSync(join(REPO, "dist/web/worker.js")))
  throw new Error("bench:web needs the build: npm run build");

/** The CLI's tokens/s over the run (metrics.jsonl's last training line). */
function cliRate(): number {
  const out = mkdtempSync(join(tmpdir(), "bench-web-"));
  try {
    const flags = SETTINGS.flatMap(([, flag, value]) => [flag, value]);
    const r = spawnSync(
      process.execPath,
      [BIN, "train", "--model", MODEL, "--data", DATA, "--out", join(out, "run"), ...flags],
      { encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`lora-ts train failed: ${r.stderr}`);
    const lines = readFileSync(join(out, "run", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n");
    const last = lines
      .map((l) => JSON.parse(l) as { type: string; tokensPerSec?: number })
      .filter((m) => m.type === "train")
      .at(-1);
    return last!.tokensPerSec!;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** ms per run of `graph` on each runtime, one thread. */
async function opTimes(bytes: Uint8Array): Promise<{ node: number; web: number }> {
  const x = Float32Array.from({ length: 1024 * 256 }, (_, i) => Math.sin(i));
  const time = async (run: () => Promise<unknown>) => {
    for (let i = 0; i < 3; i++) await run();
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) await run();
    return (performance.now() - t0) / 10;
  };
  const n = await ortNode.InferenceSession.create(bytes, {
    executionProviders: ["cpu"],
    intraOpNumThreads: 1,
  });
  const w = await ortWeb.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  const node = await time(() => n.run({ x: new ortNode.Tensor("float32", x, [1024, 256]) }));
  const web = await time(() => w.run({ x: new ortWeb.Tensor("float32", x, [1024, 256]) }));
  await n.release();
  await w.release();
  return { node, web };
}

ortWeb.env.wasm.numThreads = 1;
const weight = Float32Array.from({ length: 256 * 256 }, (_, i) => Math.cos(i) * 0.01);
const OPS: [string, (g: Graph, x: Value) => Value][] = [
  [
    "MatMul 256x256",
    (g, x) =>
      o.matmul(x, g.initializer(`w${g.nodes.length}`, "float32", [256, 256], { kind: "data", data: weight })),
  ],
  ["Sigmoid", (_, x) => o.sigmoid(x)],
  ["Tanh", (_, x) => o.tanh(x)],
  ["Exp", (_, x) => o.exp(o.neg(x))],
  ["Mul", (_, x) => o.mul(x, x)],
  ["Softmax", (_, x) => o.softmax(x, -1)],
];
process.stdout.write(`single ops, 1 thread, 20 per graph on [1024, 256] (${machineLine()}):\n`);
for (const [name, op] of OPS) {
  const g = new Graph();
  let x = g.input("x", "float32", [1024, 256]);
  for (let i = 0; i < 20; i++) x = op(g, x);
  g.output(x, "y");
  const t = await opTimes(emitModel(g));
  process.stdout.write(
    `  ${name.padEnd(15)} node ${t.node.toFixed(2)} ms, WebAssembly ${t.web.toFixed(2)} ms: ${(t.node / t.web).toFixed(2)}x native\n`,
  );
}
process.stdout.write("\n");

const web = await startWeb();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  await page.goto(web.url);
  const state = (s: string) => `document.getElementById("status").dataset.state === ${JSON.stringify(s)}`;
  await page.click("#model-default");
  await page.waitForFunction(state("ready"), undefined, { timeout: 120_000 });
  await page.click("#data-example");
  await page.waitForFunction(`document.getElementById("data-text").value.length > 1000`);
  for (const [field, , value] of SETTINGS) {
    if (field === "#set-schedule") await page.selectOption(field, value);
    else await page.fill(field, value);
  }

  /** The page's tokens/s over a run (its "Done" line). */
  const pageRate = async (): Promise<number> => {
    await page.click("#train");
    await page.waitForFunction(state("done"), undefined, { timeout: 600_000 });
    const status = (await page.textContent("#status")) ?? "";
    // The page writes numbers for people: "1,012 tokens/s".
    const m = /([\d,.]+) tokens\/s/.exec(status);
    if (!m) throw new Error(`no tokens/s in the page's status: ${status}`);
    return Number(m[1]!.replaceAll(",", ""));
  };

  // A short warm-up run first: the tab's first steps pay for onnxruntime-web's allocations.
  await page.fill("#set-steps", "5");
  await pageRate();
  await page.fill("#set-steps", String(STEPS));
  const threads = await page.getAttribute("#backend", "data-threads");
  const backend = await page.textContent("#backend");
  const rows: { page: number; cli: number }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const p = await pageRate();
    const c = cliRate();
    rows.push({ page: p, cli: c });
    process.stdout.write(
      `round ${round + 1}: page ${p.toFixed(0)} tokens/s, CLI ${c.toFixed(0)} tokens/s, page/CLI ${(p / c).toFixed(2)}\n`,
    );
  }
  const best = (k: "page" | "cli") => Math.max(...rows.map((r) => r[k]));
  process.stdout.write(
    `\nLoRA r=8 all-linear training, default model, batch 16 x <=64 tokens, ${STEPS} steps, best of ${ROUNDS}\n` +
      `${machineLine()}, load ${loadavg()[0]!.toFixed(2)}\n` +
      `page: ${backend} (WebAssembly threads ${threads})\n` +
      `page ${best("page").toFixed(0)} tokens/s, CLI ${best("cli").toFixed(0)} tokens/s: page/CLI ${(best("page") / best("cli")).toFixed(2)}\n`,
  );
} finally {
  await browser.close();
  await web.stop();
}
