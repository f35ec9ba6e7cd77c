/**
 * The training-memory estimate (issue #12, "Prove it — Memory"):
 *  (a) it is within 25% of the peak RSS of real training runs, each in its own process (the bench's
 *      worker: `train()` on rows of exactly --max-length tokens), on shapes where activations are a
 *      large part of the peak: the default model (LoRA float32 and int8, full fine-tuning) and tiny
 *      random Llama and GPT-2 models at 8×512;
 *  (b) checkTrainMemory refuses a run above the available memory in one line that gives the estimate
 *      and names the settings to lower, only those that apply;
 *  (c) availableMemoryBytes reads MemAvailable and the cgroup's room from (here, fake) files.
 * The benchmark shapes themselves are in bench/RESULTS.md ("Memory estimate", `npm run bench:memory`).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { freemem } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { SMOLLM_135M } from "../../bench/shapes.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { parseModelConfig } from "../../src/models/family.js";
import { listModules } from "../../src/models/modules.js";
import {
  checkTrainMemory,
  estimateTrainMemory,
  type TrainMemoryInput,
} from "../../src/train/memory-estimate.js";
import { LoraTsError } from "../../src/util/errors.js";
import { availableMemoryBytes } from "../../src/util/memory.js";
import { WORDS } from "../data/toy-tokenizer.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

/** The bench's worker, compiled beside these tests (dist/ or a worker's dist-NAME/). */
const WORKER = join(dirname(fileURLToPath(import.meta.url)), "../../bench/memory.js");

/** A plain-text document of about `tokens` tokens: cut into full --max-length windows by the trainer. */
function document(words: readonly string[], tokens: number): string {
  const path = join(tempDir(), "doc.txt");
  const out: string[] = [];
  for (let i = 0; i < tokens; i++) out.push(words[(i * 7 + (i >> 3)) % words.length]!);
  writeFileSync(path, `${out.join(" ")}\n`);
  return path;
}

/** Words of the default model's persona data (its tokenizer takes about one token per word). */
function personaWords(): string[] {
  const text = readFileSync(join(DEFAULT_MODEL_DIR, "data/persona.jsonl"), "utf8");
  return text.split("\n").flatMap((l) =>
    l
      ? Object.values(JSON.parse(l) as object)
          .join(" ")
          .split(/\s+/)
      : [],
  );
}

function measure(model: string, data: string, args: string[]): { peak: number; estimate: number } {
  const out = execFileSync(
    process.execPath,
    [WORKER, "--worker", "--model", model, "--data", data, "--steps", "3", ...args],
    { encoding: "utf8", maxBuffer: 1 << 24 },
  );
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as { peakBytes: number; estimate: { bytes: number } };
  return { peak: r.peakBytes, estimate: r.estimate.bytes };
}

const MiB = 2 ** 20;

function assertWithin25(label: string, m: { peak: number; estimate: number }): void {
  const ratio = m.estimate / m.peak;
  const line = `${label}: estimate ${(m.estimate / MiB).toFixed(0)} MiB, measured ${(m.peak / MiB).toFixed(0)} MiB`;
  if (process.env["MEMORY_TEST_VERBOSE"]) console.log(`${line} (${ratio.toFixed(2)})`);
  assert.ok(
    ratio >= 0.75 && ratio <= 1.25,
    `${label}: estimate ${(m.estimate / MiB).toFixed(0)} MiB, measured ${(m.peak / MiB).toFixed(0)} MiB (ratio ${ratio.toFixed(2)})`,
  );
}

test("(a) the estimate is within 25% of the measured peak of real training runs", async (t) => {
  const persona = document(personaWords(), 8 * 256 * 5);
  await t.test("default model, LoRA q,v, 8x256", () => {
    assertWithin25("default lora", measure(DEFAULT_MODEL_DIR, persona, ["--batch", "8", "--seq", "256"]));
  });
  await t.test("default model, LoRA q,v, --base-int8, 8x256", () => {
    const m = measure(DEFAULT_MODEL_DIR, persona, ["--batch", "8", "--seq", "256", "--int8"]);
    assertWithin25("default int8", m);
  });
  await t.test("default model, full fine-tuning, 4x256", () => {
    const m = measure(DEFAULT_MODEL_DIR, persona, ["--batch", "4", "--seq", "256", "--mode", "full"]);
    assertWithin25("default full", m);
  });
  const toyWords = document(WORDS, 8 * 512 * 5);
  await t.test("tiny random Llama, LoRA all-linear, 8x512", () => {
    const dir = tinyModel("llama", 1, {
      max_position_embeddings: 512,
      hidden_size: 128,
      intermediate_size: 344,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
    });
    const m = measure(dir, toyWords, ["--batch", "8", "--seq", "512", "--targets", "all-linear"]);
    assertWithin25("tiny llama", m);
  });
  await t.test("tiny random GPT-2, LoRA c_attn, 8x512", () => {
    const dir = tinyModel("gpt2", 1, { n_positions: 512, n_embd: 128, n_layer: 2, n_head: 4 });
    assertWithin25("tiny gpt2", measure(dir, toyWords, ["--batch", "8", "--seq", "512"]));
  });
});

/** SmolLM-135M's shape (the benchmark's): the estimates in (b) need no files. */
const SMOLLM = parseModelConfig(SMOLLM_135M, "config.json");

function smollm(over: Partial<TrainMemoryInput> = {}): TrainMemoryInput {
  const lora = makeLoraConfig({ r: 8, lora_alpha: 16, target_modules: ["q_proj", "v_proj"] });
  const selected = selectTargets(lora, listModules(SMOLLM), { modelType: SMOLLM.modelType });
  return { config: SMOLLM, batch: 8, seq: 512, mode: "lora", selected, dropout: 0.05, ...over };
}

const GiB = 2 ** 30;

/** checkTrainMemory's message, or null when it lets the run go. */
function refusal(input: TrainMemoryInput, available: number, memoryCheck?: boolean): string | null {
  try {
    checkTrainMemory(estimateTrainMemory(input), available, { memoryCheck });
    return null;
  } catch (e) {
    assert.ok(e instanceof LoraTsError, String(e));
    return e.message;
  }
}

test("(b) a run above the available memory is refused in one line that says what to lower", () => {
  const est = estimateTrainMemory(smollm());
  const parts = Object.values(est.parts);
  assert.equal(
    parts.reduce((x, y) => x + y, 0),
    est.bytes,
  );
  assert.ok(parts.every((p) => p >= 0));
  assert.equal(refusal(smollm(), est.bytes + 1), null);
  assert.equal(refusal(smollm(), est.bytes / 2, false), null, "memoryCheck: false skips the check");

  const msg = refusal(smollm(), est.bytes / 2)!;
  assert.ok(!msg.includes("\n"), msg);
  assert.match(
    msg,
    new RegExp(`^train: this run needs about ${(est.bytes / GiB).toFixed(1)} GiB \\(estimate: weights `),
  );
  assert.match(msg, new RegExp(`but ${(est.bytes / 2 / GiB).toFixed(1)} GiB is available`));
  assert.match(
    msg,
    /; lower --batch-size \(8; \d+ would fit\) or --max-length \(512; \d+ would fit\) \(--no-memory-check/,
  );
  // --base-int8 is offered when it alone makes the run fit (its weights are a small part of a peak).
  const int8 = estimateTrainMemory(smollm({ int8: true })).bytes;
  assert.ok(int8 < est.bytes);
  assert.match(refusal(smollm(), int8)!, /, or use --base-int8 \(/);

  // The suggested batch size fits and the next one does not.
  const fitBatch = Number(/--batch-size \(8; (\d+) would fit\)/.exec(msg)![1]);
  assert.ok(estimateTrainMemory(smollm({ batch: fitBatch })).bytes <= est.bytes / 2);
  assert.ok(estimateTrainMemory(smollm({ batch: fitBatch + 1 })).bytes > est.bytes / 2);

  // Only what applies: no --base-int8 when it is on or in full mode; no --batch-size at 1.
  assert.doesNotMatch(refusal(smollm({ int8: true }), GiB / 4)!, /--base-int8/);
  const full = refusal(smollm({ mode: "full", selected: [] }), GiB / 4)!;
  assert.doesNotMatch(full, /--base-int8/);
  assert.match(full, /or train an adapter with --mode lora/);
  // Rows shorter than --max-length: the estimate takes the longest, the message names the setting.
  const short = refusal(smollm({ seq: 300, maxLength: 2048 }), est.bytes / 2)!;
  assert.match(short, /--max-length \(2048; (\d+) would fit\)/);
  assert.ok(Number(/--max-length \(2048; (\d+)/.exec(short)![1]) < 300);
  const one = refusal(smollm({ batch: 1 }), GiB / 4)!;
  assert.doesNotMatch(one, /--batch-size/);
  assert.match(one, /lower --max-length \(512[;)]/);
});

test("(b) the estimate grows with what it models", () => {
  const base = estimateTrainMemory(smollm());
  const bigger = (over: Partial<TrainMemoryInput>, part: keyof typeof base.parts) => {
    const e = estimateTrainMemory(smollm(over));
    assert.ok(e.parts[part] > base.parts[part], `${JSON.stringify(Object.keys(over))} grows ${part}`);
  };
  bigger({ batch: 16 }, "activations");
  bigger({ seq: 1024 }, "attention");
  bigger({ seq: 1024 }, "head");
  bigger({ mode: "full", selected: [] }, "optimizer");
  assert.ok(estimateTrainMemory(smollm({ int8: true })).parts.weights < base.parts.weights);
});

/** A fake /proc and /sys/fs/cgroup: files under one temporary folder. */
function fakeFs(files: Record<string, string>) {
  const root = tempDir("lora-ts-meminfo-");
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return {
    meminfo: join(root, "proc/meminfo"),
    cgroupV2: join(root, "v2"),
    cgroupV1: join(root, "v1"),
    selfCgroup: join(root, "proc/self/cgroup"),
  };
}

const MEMINFO = "MemTotal:       24683424 kB\nMemFree:        20000000 kB\nMemAvailable:   12000000 kB\n";

test("(c) availableMemoryBytes: MemAvailable, capped by the cgroup's room", () => {
  // No cgroup files: MemAvailable.
  assert.equal(availableMemoryBytes(fakeFs({ "proc/meminfo": MEMINFO })), 12000000 * 1024);
  // cgroup v2 without a limit.
  assert.equal(
    availableMemoryBytes(fakeFs({ "proc/meminfo": MEMINFO, "v2/memory.max": "max\n" })),
    12000000 * 1024,
  );
  // cgroup v2 limit: limit − (current − inactive file cache).
  const v2 = fakeFs({
    "proc/meminfo": MEMINFO,
    "v2/memory.max": `${8 * GiB}\n`,
    "v2/memory.current": `${3 * GiB}\n`,
    "v2/memory.stat": `anon 1000\nfile ${2 * GiB}\ninactive_file ${GiB}\nactive_file 5\n`,
  });
  assert.equal(availableMemoryBytes(v2), 6 * GiB);
  // A limit above MemAvailable does not raise it.
  const loose = fakeFs({
    "proc/meminfo": MEMINFO,
    "v2/memory.max": `${64 * GiB}\n`,
    "v2/memory.current": "0\n",
  });
  assert.equal(availableMemoryBytes(loose), 12000000 * 1024);
  // The process's own cgroup and its parents: the tightest room counts.
  const nested = fakeFs({
    "proc/meminfo": MEMINFO,
    "proc/self/cgroup": "0::/a/b\n",
    "v2/memory.max": "max\n",
    "v2/a/memory.max": `${2 * GiB}\n`,
    "v2/a/memory.current": `${GiB / 2}\n`,
    "v2/a/b/memory.max": `${4 * GiB}\n`,
    "v2/a/b/memory.current": `${GiB / 4}\n`,
  });
  assert.equal(availableMemoryBytes(nested), 1.5 * GiB);
  // cgroup v1: "no limit" is a huge number; a real limit counts as in v2.
  const v1none = fakeFs({ "proc/meminfo": MEMINFO, "v1/memory.limit_in_bytes": "9223372036854771712\n" });
  assert.equal(availableMemoryBytes(v1none), 12000000 * 1024);
  const v1 = fakeFs({
    "proc/meminfo": MEMINFO,
    "proc/self/cgroup": "4:memory:/docker/abc\n0::/\n",
    "v1/memory.limit_in_bytes": `${4 * GiB}\n`,
    "v1/memory.usage_in_bytes": `${GiB}\n`,
    "v1/memory.stat": `cache 100\ntotal_inactive_file ${GiB / 2}\n`,
  });
  assert.equal(availableMemoryBytes(v1), 3.5 * GiB);
  // Nothing readable: os.freemem().
  const none = fakeFs({});
  const free = availableMemoryBytes(none);
  assert.ok(Math.abs(free - freemem()) < 256 * MiB, `${free} vs ${freemem()}`);
});
