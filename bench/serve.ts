/**
 * Serving benchmark (issue #14).
 *
 * Part 1, decode: tokens/s of greedy KV-cache generation at batch 1 for random-weight GPT-2-small and
 * SmolLM-135M checkpoints, against llama.cpp (node-llama-cpp 3.21.1, loaded from
 * test/interop/node_modules) on the same weights exported as f32 GGUF by lora-ts's own exporter. Both
 * run in this process with the same thread count, in alternating rounds, so the ratio is taken under
 * the same load (the benchmark host is shared and noisy).
 *
 * Part 2, serving: the BatchEngine driven in-process through its API (submit, with a timestamp per
 * token), closed-loop clients at concurrency 1, 8 and 32 on GPT-2-small, with (a) the base model alone
 * (a session without adapter paths), (b) every request on one rank-8 all-linear adapter and (c)
 * requests spread over 8 such adapters ((b) and (c) share one engine holding the 8 adapters). Each
 * level runs the configurations in alternating rounds. Prints aggregate generated tokens/s, p50/p99
 * time to first token and inter-token latency, and the overheads (b) vs (a) and (c) vs (b).
 *
 *   npm run bench:serve [-- --part decode,serve --tokens 64 --rounds 5 --threads 2 --models gpt2,smollm
 *                          --concurrency 1,8,32 --serve-tokens 32 --prompt 16 --requests 2 --serve-rounds 2]
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { BatchEngine } from "../src/infer/batch-engine.js";
import type { CausalLM } from "../src/infer/causal-lm.js";
import type { GenRequest } from "../src/infer/engine-types.js";
import { generate } from "../src/infer/generate.js";
import { loadCausalLM } from "../src/infer/load-causal-lm.js";
import { createAdapter } from "../src/lora/adapter.js";
import { saveAdapter } from "../src/lora/adapter-files.js";
import { makeLoraConfig } from "../src/lora/config.js";
import { selectTargets } from "../src/lora/targets.js";
import { DEFAULT_MODEL_DIR } from "../src/models/default-model.js";
import { exportGguf } from "../src/models/export-gguf.js";
import { listModules } from "../src/models/modules.js";
import { openModelDir } from "../src/models/open-model.js";
import { writeRandomModel } from "../src/models/random-init.js";
import { machineLine } from "./machine.js";
import { GPT2_SMALL, SMOLLM_135M } from "./shapes.js";

const { values: a } = parseArgs({
  options: {
    part: { type: "string", default: "decode,serve" },
    models: { type: "string", default: "gpt2,smollm" },
    tokens: { type: "string", default: "64" },
    rounds: { type: "string", default: "5" },
    threads: { type: "string", default: "2" },
    /** Extra lora-ts session configs to compare in the same rounds, e.g. '{"session.intra_op.allow_spinning":"1"}'. */
    variant: { type: "string", multiple: true, default: [] },
    "serve-model": { type: "string", default: "gpt2" },
    concurrency: { type: "string", default: "1,8,32" },
    /** New tokens per request. */
    "serve-tokens": { type: "string", default: "32" },
    /** Prompt tokens per request. */
    prompt: { type: "string", default: "16" },
    /** Requests per client at each level (so concurrency × requests in all). */
    requests: { type: "string", default: "2" },
    /** Alternating rounds of the configurations at each level. */
    "serve-rounds": { type: "string", default: "3" },
    adapters: { type: "string", default: "8" },
    rank: { type: "string", default: "8" },
  },
});

const THREADS = Number(a.threads);
const TOKENS = Number(a.tokens);
const ROUNDS = Number(a.rounds);
const parts = new Set(a.part.split(","));

const MODELS: Record<string, { label: string; config: Record<string, unknown> }> = {
  gpt2: { label: "GPT-2-small (124M, random)", config: GPT2_SMALL },
  smollm: { label: "SmolLM-135M (random)", config: SMOLLM_135M },
};

// --- llama.cpp through node-llama-cpp (optional) -------------------------------------------------

interface LlamaSequence {
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], o: { temperature: number; yieldEogToken?: boolean }): AsyncGenerator<number>;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
interface LlamaModel {
  createContext(o: {
    contextSize: number;
    batchSize?: number;
    threads?: number | { ideal: number; min: number };
  }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(o: { modelPath: string }): Promise<LlamaModel>;
  readonly llamaCppRelease?: { repo: string; release: string };
}

/** The repository root (this file runs as <outDir>/bench/serve.js). */
const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const LLAMA_ENTRY = join(ROOT, "test/interop/node_modules/node-llama-cpp/dist/index.js");

async function loadLlamaCpp(): Promise<Llama | string> {
  if (!existsSync(LLAMA_ENTRY))
    return `node-llama-cpp is not installed (${LLAMA_ENTRY} absent): run npm ci --prefix test/interop`;
  try {
    const m = (await import(pathToFileURL(LLAMA_ENTRY).href)) as {
      getLlama(o: { gpu: false; build: "never"; logLevel: string }): Promise<Llama>;
    };
    return await m.getLlama({ gpu: false, build: "never", logLevel: "error" });
  } catch (e) {
    return `node-llama-cpp did not load: ${(e as Error).message.split("\n")[0]}`;
  }
}

// --- timing helpers ------------------------------------------------------------------------------

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
};

/**
 * Greedy decode rate of one run: (n − 1) tokens over the time from the first new token to the last,
 * so the prefill is left out. Returns the ids too.
 */
async function timeTokens(run: (onToken: (id: number) => void) => Promise<void>) {
  const ids: number[] = [];
  let first = 0;
  let last = 0;
  await run((id) => {
    last = performance.now();
    if (ids.length === 0) first = last;
    ids.push(id);
  });
  return { rate: (ids.length - 1) / ((last - first) / 1000), ids };
}

function loraTsRun(lm: CausalLM, prompt: number[], n: number) {
  return timeTokens(async (onToken) => {
    await generate(lm, [prompt], { maxNewTokens: n, eosIds: [], onToken: (_, id) => onToken(id) });
  });
}

function llamaCppRun(seq: LlamaSequence, prompt: number[], n: number) {
  return timeTokens(async (onToken) => {
    await seq.clearHistory();
    let k = 0;
    for await (const t of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
      onToken(t);
      if (++k >= n) break;
    }
  });
}

function commonPrefix(x: number[], y: number[]): number {
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return i;
}

/** A random-weight checkpoint of `key`'s shape in `work` (written once). */
function modelDir(work: string, key: string): string {
  const spec = MODELS[key];
  if (!spec) throw new Error(`unknown model ${key} (gpt2, smollm)`);
  const dir = join(work, key);
  if (existsSync(join(dir, "config.json"))) return dir;
  mkdirSync(dir);
  writeRandomModel(dir, spec.config, { seed: 1 });
  // The default model's byte-level BPE tokenizer: export gguf needs one (padded to vocab_size).
  for (const f of ["tokenizer.json", "tokenizer_config.json"])
    copyFileSync(join(DEFAULT_MODEL_DIR, f), join(dir, f));
  return dir;
}

// --- part 1: decode at batch 1 -------------------------------------------------------------------

interface DecodeRow {
  model: string;
  loraTs: number[];
  variants: number[][];
  llamaCpp: number[];
  ratios: number[];
  agree: string;
}

async function decodePart(work: string, llama: Llama | string): Promise<DecodeRow[]> {
  const rows: DecodeRow[] = [];
  const variants = (a.variant as string[]).map((v) => JSON.parse(v) as Record<string, string>);
  for (const key of a.models.split(",")) {
    const spec = MODELS[key];
    if (!spec) throw new Error(`unknown model ${key} (gpt2, smollm)`);
    const dir = modelDir(work, key);
    const prompt = [100];

    const lm = await loadCausalLM(dir, { session: { threads: THREADS } });
    const others = [];
    for (const v of variants)
      others.push(await loadCausalLM(dir, { session: { threads: THREADS, config: v } }));
    let seq: LlamaSequence | null = null;
    let ctx: LlamaContext | null = null;
    let model: LlamaModel | null = null;
    if (typeof llama !== "string") {
      const gguf = join(work, `${key}.gguf`);
      const hf = openModelDir(dir);
      try {
        exportGguf(hf, gguf);
      } finally {
        hf.weights.close();
      }
      model = await llama.loadModel({ modelPath: gguf });
      ctx = await model.createContext({
        contextSize: 512,
        batchSize: 512,
        threads: { ideal: THREADS, min: THREADS },
      });
      seq = ctx.getSequence();
    }
    // Warm-up: page the weights in, prepack, and let both settle.
    await loraTsRun(lm, prompt, 8);
    for (const o of others) await loraTsRun(o, prompt, 8);
    if (seq) await llamaCppRun(seq, prompt, 8);

    const row: DecodeRow = {
      model: spec.label,
      loraTs: [],
      variants: others.map(() => []),
      llamaCpp: [],
      ratios: [],
      agree: "-",
    };
    for (let r = 0; r < ROUNDS; r++) {
      const ours = await loraTsRun(lm, prompt, TOKENS);
      row.loraTs.push(ours.rate);
      for (const [i, o] of others.entries()) row.variants[i]!.push((await loraTsRun(o, prompt, TOKENS)).rate);
      if (seq) {
        const theirs = await llamaCppRun(seq, prompt, TOKENS);
        row.llamaCpp.push(theirs.rate);
        row.ratios.push(ours.rate / theirs.rate);
        if (r === 0) row.agree = `${commonPrefix(ours.ids, theirs.ids)}/${TOKENS}`;
      }
      process.stderr.write(
        `  ${key} round ${r + 1}: lora-ts ${ours.rate.toFixed(1)}${row.llamaCpp.length ? `, llama.cpp ${row.llamaCpp.at(-1)!.toFixed(1)}` : ""} tokens/s\n`,
      );
    }
    rows.push(row);
    await lm.release();
    for (const o of others) await o.release();
    await ctx?.dispose();
    await model?.dispose();
  }
  return rows;
}

function printDecode(rows: DecodeRow[], llama: Llama | string): void {
  const variants = a.variant as string[];
  const peer =
    typeof llama === "string"
      ? `llama.cpp skipped: ${llama}`
      : `llama.cpp via node-llama-cpp 3.21.1${llama.llamaCppRelease ? ` (llama.cpp ${llama.llamaCppRelease.release})` : ""}, f32 GGUF from lora-ts export gguf`;
  console.log(
    `\nDecode, batch 1, greedy, ${TOKENS} new tokens after a 1-token prompt (prefill excluded), ${THREADS} threads each, ${ROUNDS} alternating rounds; ${peer}`,
  );
  const vHead = variants.map((v) => ` | lora-ts ${v} tok/s`).join("");
  console.log(
    `| model | lora-ts tok/s${vHead} | llama.cpp tok/s | lora-ts / llama.cpp | best / best | greedy ids agree |`,
  );
  console.log(`| --- | ---${variants.map(() => " | ---").join("")} | --- | --- | --- | --- |`);
  const span = (xs: number[]) =>
    xs.length
      ? `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`
      : "-";
  for (const r of rows) {
    const ratio = r.ratios.length
      ? `${median(r.ratios).toFixed(2)}× (rounds ${Math.min(...r.ratios).toFixed(2)}–${Math.max(...r.ratios).toFixed(2)})`
      : "-";
    const best = r.llamaCpp.length ? `${(Math.max(...r.loraTs) / Math.max(...r.llamaCpp)).toFixed(2)}×` : "-";
    console.log(
      `| ${r.model} | ${span(r.loraTs)}${r.variants.map((v) => ` | ${span(v)}`).join("")} | ${span(r.llamaCpp)} | ${ratio} | ${best} | ${r.agree} |`,
    );
  }
  console.log(
    "(median over rounds, min–max in brackets; the ratio is the median of the per-round ratios; best / best: each side's fastest round, i.e. the quietest moments)",
  );
}

// --- part 2: serving throughput and latency ------------------------------------------------------

/** A PEFT adapter of rank `r` on every linear layer, A as PEFT initialises it and B random (not 0). */
function writeAdapter(modelDirPath: string, out: string, r: number, seed: number): void {
  const model = openModelDir(modelDirPath);
  const cfg = makeLoraConfig({ r, lora_alpha: 2 * r, target_modules: "all-linear" });
  const selected = selectTargets(cfg, listModules(model.config), { modelType: model.config.modelType });
  model.weights.close();
  const { adapter } = createAdapter(cfg, selected, { seed });
  for (const [name, t] of adapter.tensors) {
    if (name.includes("lora_B"))
      for (let i = 0; i < t.data.length; i++) t.data[i] = 0.02 * Math.sin(1.7 * i + seed);
  }
  saveAdapter(out, adapter);
}

interface LevelResult {
  tokens: number;
  seconds: number;
  /** CPU seconds this process used (every thread: onnxruntime's and Node's). */
  cpuSeconds: number;
  ttft: number[];
  itl: number[];
}

/**
 * `concurrency` closed-loop clients, each sending `perClient` requests one after another; adapter of
 * request k: `adapterOf(k)`. Times are taken in onToken, as a streaming client would see them.
 */
async function runLevel(
  engine: BatchEngine,
  concurrency: number,
  perClient: number,
  adapterOf: (k: number) => string | null,
  promptLen: number,
  maxTokens: number,
  vocab: number,
  tag: string,
): Promise<LevelResult> {
  const res: LevelResult = { tokens: 0, seconds: 0, cpuSeconds: 0, ttft: [], itl: [] };
  let next = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const client = async () => {
    for (let j = 0; j < perClient; j++) {
      const k = next++;
      // Distinct prompts, so no request shares a prefix with another.
      const prompt = Array.from({ length: promptLen }, (_, i) => (k * 7919 + i * 104729 + 13) % vocab);
      const req: GenRequest = {
        id: `${tag}-${k}`,
        prompt,
        adapter: adapterOf(k),
        maxTokens,
        temperature: 0,
        topP: 1,
        stopIds: [],
      };
      const sent = performance.now();
      let last = 0;
      await engine.submit(req, () => {
        const now = performance.now();
        if (last === 0) res.ttft.push(now - sent);
        else res.itl.push(now - last);
        last = now;
        res.tokens++;
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  res.seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  res.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return res;
}

interface ServeRow {
  concurrency: number;
  config: string;
  rates: number[];
  /** CPU milliseconds per generated token, per round. */
  cpuMs: number[];
  ttft: number[];
  itl: number[];
}

const SERVE_CONFIGS = ["base", "one", "mixed"] as const;
const SERVE_LABEL: Record<(typeof SERVE_CONFIGS)[number], string> = {
  base: "(a) base model alone",
  one: "(b) 1 adapter",
  mixed: `(c) ${a.adapters} adapters mixed`,
};

async function servePart(work: string): Promise<ServeRow[]> {
  const key = a["serve-model"];
  const dir = modelDir(work, key);
  const nAdapters = Number(a.adapters);
  const rank = Number(a.rank);
  const levels = a.concurrency.split(",").map(Number);
  const maxBatch = Math.max(...levels);
  const adapters = Array.from({ length: nAdapters }, (_, i) => {
    const out = join(work, `adapter-${i}`);
    writeAdapter(dir, out, rank, 100 + i);
    return { name: `a${i}`, dir: out };
  });
  const session = { threads: THREADS };
  const b0 = performance.now();
  const base = await BatchEngine.create(dir, [], { maxBatch, maxQueue: 1024, loraModules: "none", session });
  const b1 = performance.now();
  const lora = await BatchEngine.create(dir, adapters, {
    maxBatch,
    maxQueue: 1024,
    maxLoras: nAdapters,
    maxLoraRank: Math.max(rank, 8),
    session,
  });
  const b2 = performance.now();
  console.log(
    `\nengines built: base ${((b1 - b0) / 1000).toFixed(1)} s, ${nAdapters} adapters of rank ${rank} on all linear layers ${((b2 - b1) / 1000).toFixed(1)} s`,
  );
  const vocab = base.config.vocabSize;
  const promptLen = Number(a.prompt);
  const maxTokens = Number(a["serve-tokens"]);
  const perClient = Number(a.requests);
  const rows: ServeRow[] = [];
  try {
    // Warm-up: both sessions, a batch of a few rows each.
    await runLevel(base, 4, 1, () => null, promptLen, 4, vocab, "warm-a");
    await runLevel(lora, 4, 1, (k) => adapters[k % nAdapters]!.name, promptLen, 4, vocab, "warm-b");
    for (const c of levels) {
      const byConfig = new Map(
        SERVE_CONFIGS.map((cfg) => [
          cfg,
          { concurrency: c, config: cfg, rates: [], cpuMs: [], ttft: [], itl: [] } as ServeRow,
        ]),
      );
      for (let r = 0; r < Number(a["serve-rounds"]); r++) {
        for (const cfg of SERVE_CONFIGS) {
          const engine = cfg === "base" ? base : lora;
          const adapterOf =
            cfg === "base"
              ? () => null
              : cfg === "one"
                ? () => adapters[0]!.name
                : (k: number) => adapters[k % nAdapters]!.name;
          const res = await runLevel(
            engine,
            c,
            perClient,
            adapterOf,
            promptLen,
            maxTokens,
            vocab,
            `${cfg}-${c}-${r}`,
          );
          const row = byConfig.get(cfg)!;
          row.rates.push(res.tokens / res.seconds);
          row.cpuMs.push((1000 * res.cpuSeconds) / res.tokens);
          row.ttft.push(...res.ttft);
          row.itl.push(...res.itl);
          process.stderr.write(
            `  serve c=${c} ${cfg} round ${r + 1}: ${(res.tokens / res.seconds).toFixed(1)} tokens/s (${res.tokens} tokens, ${res.seconds.toFixed(1)} s)\n`,
          );
        }
      }
      rows.push(...byConfig.values());
    }
  } finally {
    await base.close();
    await lora.close();
  }
  return rows;
}

function printServe(rows: ServeRow[]): void {
  console.log(
    `\nServing ${MODELS[a["serve-model"]]!.label}, BatchEngine in-process, greedy, prompt ${a.prompt} tokens, ${a["serve-tokens"]} new tokens per request, ${a.requests} requests per client, ${THREADS} threads, ${a["serve-rounds"]} alternating rounds per level`,
  );
  console.log(
    "| concurrency | configuration | tokens/s | CPU ms / token | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of rows) {
    console.log(
      `| ${r.concurrency} | ${SERVE_LABEL[r.config as keyof typeof SERVE_LABEL]} | ${median(r.rates).toFixed(1)} | ${median(r.cpuMs).toFixed(1)} | ${quantile(r.ttft, 0.5).toFixed(0)} | ${quantile(r.ttft, 0.99).toFixed(0)} | ${quantile(r.itl, 0.5).toFixed(1)} | ${quantile(r.itl, 0.99).toFixed(1)} |`,
    );
  }
  console.log(
    "\nOverheads per generated token, taken within each round (the configurations ran back to back), median over rounds, range in brackets. wall: throughput ratio − 1; CPU: ratio of this process's CPU time per token − 1 (less sensitive to other load on the host)",
  );
  console.log(
    "| concurrency | unmerged adapter (b) vs (a), wall | same, CPU | target ≤ 10% | mixed adapters (c) vs (b), wall | same, CPU | target ≤ 15% |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  const levels = [...new Set(rows.map((r) => r.concurrency))];
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  const overhead = (x: number[], y: number[]) => {
    const per = x.map((v, i) => v / y[i]! - 1);
    return {
      m: median(per),
      text: `${pct(median(per))} (${pct(Math.min(...per))} to ${pct(Math.max(...per))})`,
    };
  };
  const verdict = (wall: number, cpu: number, target: number) =>
    wall <= target && cpu <= target ? "✔" : wall > target && cpu > target ? "✘" : "wall and CPU disagree";
  for (const c of levels) {
    const row = (cfg: string) => rows.find((r) => r.concurrency === c && r.config === cfg)!;
    const [base, one, mixed] = [row("base"), row("one"), row("mixed")];
    const uWall = overhead(base.rates, one.rates);
    const uCpu = overhead(one.cpuMs, base.cpuMs);
    const mWall = overhead(one.rates, mixed.rates);
    const mCpu = overhead(mixed.cpuMs, one.cpuMs);
    console.log(
      `| ${c} | ${uWall.text} | ${uCpu.text} | ${verdict(uWall.m, uCpu.m, 0.1)} | ${mWall.text} | ${mCpu.text} | ${verdict(mWall.m, mCpu.m, 0.15)} |`,
    );
  }
}

// --- main ----------------------------------------------------------------------------------------

console.log(
  `machine: ${machineLine()}; load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
const work = mkdtempSync(join(tmpdir(), "lora-ts-bench-serve-"));
try {
  if (parts.has("decode")) {
    const llama = await loadLlamaCpp();
    if (typeof llama === "string") console.log(`(llama.cpp comparison skipped: ${llama})`);
    const rows = await decodePart(work, llama);
    printDecode(rows, llama);
  }
  if (parts.has("serve")) printServe(await servePart(work));
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(
  `\nload average at the end: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")} (1, 5, 15 min)`,
);
