/**
 * Issue #12, from the CLI: `combine` refuses an existing --out unless --force and replaces it as a
 * whole; `train --out` never writes into the base model's folder; `train` says in one line what it
 * made of the data (kept, truncated, dropped and why), refuses data that truncation leaves with
 * nothing to train, and refuses a --max-length above the model's context.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { createAdapter } from "../../src/lora/adapter.js";
import { loadAdapter, saveAdapter } from "../../src/lora/adapter-files.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { combineAdapters } from "../../src/lora/merge.js";
import { selectTargets } from "../../src/lora/targets.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { Rng } from "../../src/util/rng.js";
import { runCli, runTrain } from "../helpers/cli.js";
import { fileHashes } from "../helpers/file-hashes.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

/** sha256 of every file in `dir` (and below), by relative path. */

/** A saved adapter on q_proj, v_proj with random non-zero A and B. */
function adapterDir(model: string, seed: number): string {
  const m = openModelDir(model);
  const config = makeLoraConfig({ r: 2, lora_alpha: 4, target_modules: ["q_proj", "v_proj"] });
  const selected = selectTargets(config, listModules(m.config), { modelType: m.config.modelType });
  m.weights.close();
  const { adapter } = createAdapter(config, selected, { seed });
  const rng = new Rng(seed + 1);
  for (const t of adapter.tensors.values()) rng.fillNormal(t.data, 0, 0.1);
  const dir = join(tempDir(), "adapter");
  saveAdapter(dir, adapter);
  return dir;
}

/** `lora-ts combine` of adapters a and b with `weights` into `out`, plus `extra` flags. */
function combineArgs(a: string, b: string, weights: string, out: string, ...extra: string[]): string[] {
  return [
    "combine",
    "--adapter",
    `a=${a}`,
    "--adapter",
    `b=${b}`,
    "--weights",
    weights,
    "--out",
    out,
    ...extra,
  ];
}

test("combine: an existing --out is refused in one line and left as it was; --force replaces it as a whole, atomically", () => {
  const model = tinyModel("llama", 5);
  const a = adapterDir(model, 1);
  const b = adapterDir(model, 2);
  const out = join(tempDir(), "combined");
  const first = runCli(combineArgs(a, b, "1,0", out));
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, `wrote ${out}\n`);
  const firstFiles = fileHashes(out);

  const again = runCli(combineArgs(a, b, "0,1", out));
  assert.equal(again.code, 1, "an existing --out needs --force");
  assert.equal(again.stderr, `error: ${out}: already exists and is not empty\n`);
  assert.equal(again.stdout, "");
  assert.deepEqual(fileHashes(out), firstFiles, "a refused combine leaves the existing output untouched");
  assert.deepEqual(readdirSync(dirname(out)), ["combined"], "nothing is written beside it");

  writeFileSync(join(out, "stale.txt"), "left by the earlier combine");
  const forced = runCli(combineArgs(a, b, "0,1", out, "--force"));
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(forced.stdout, `wrote ${out}\n`);
  assert.deepEqual(Object.keys(fileHashes(out)).sort(), ["adapter_config.json", "adapter_model.safetensors"]);
  assert.deepEqual(readdirSync(dirname(out)), ["combined"], "the old folder is removed, not left beside it");
  // The new output is the 0,1 combination, not the earlier 1,0 one.
  const combined = loadAdapter(out);
  const want = combineAdapters([loadAdapter(a), loadAdapter(b)], [0, 1], "linear");
  for (const [key, t] of want.tensors) assert.deepEqual(combined.tensors.get(key)!.data, t.data, key);
  assert.notDeepEqual(fileHashes(out)["adapter_model.safetensors"], firstFiles["adapter_model.safetensors"]);
});

test("combine and merge never write into an input adapter's folder, whatever the flags", () => {
  const model = tinyModel("llama", 5);
  const a = adapterDir(model, 1);
  const b = adapterDir(model, 2);
  const before = { a: fileHashes(a), b: fileHashes(b) };
  const parent = dirname(a);
  const cases: [string[], string][] = [
    // --force would have replaced the folder holding adapter a, deleting it.
    [
      combineArgs(a, b, "1,1", parent, "--force"),
      `error: --out ${parent}: contains the input adapter ${a}, which is only ever read\n`,
    ],
    [
      combineArgs(a, b, "1,1", b, "--force"),
      `error: --out ${b}: is the input adapter ${b}, which is only ever read\n`,
    ],
    [
      ["merge", "--model", model, "--adapter", a, "--out", parent, "--force"],
      `error: --out ${parent}: contains the adapter's folder ${a}, which is only ever read\n`,
    ],
  ];
  for (const [args, stderr] of cases) {
    const r = runCli(args);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(r.stderr, stderr);
  }
  assert.deepEqual({ a: fileHashes(a), b: fileHashes(b) }, before);
  // A new folder inside an adapter's folder changes none of its files (the demo merges into OUT/merged).
  const inside = runCli(["merge", "--model", model, "--adapter", a, "--out", join(a, "merged")]);
  assert.equal(inside.code, 0, inside.stderr);
});

test("train --out never writes into the base model's folder, whatever the flags", () => {
  const model = tinyModel("llama", 6);
  const data = wordData(8);
  const before = fileHashes(model);
  for (const out of [join(model, "run"), model]) {
    const extra = out === model ? ["--force"] : [];
    const r = runTrain(model, data, out, "--max-steps", "1", ...extra);
    assert.equal(r.code, 1, `train --out ${out} ${extra.join(" ")}: ${r.stdout}`);
    assert.match(r.stderr, /^error: --out [^\n]*: (is|is inside) the base model's folder [^\n]*\n$/);
    assert.ok(r.stderr.startsWith(`error: --out ${out}: `), r.stderr);
    assert.deepEqual(fileHashes(model), before, "the base model folder is untouched");
  }
});

/** `n` short prompt/completion rows. */
function promptData(n: number): string {
  const rows = Array.from({ length: n }, () =>
    JSON.stringify({ prompt: "How are you", completion: " Fine thanks" }),
  );
  const path = join(tempDir(), "data.jsonl");
  writeFileSync(path, `${rows.join("\n")}\n`);
  return path;
}

function trainArgs(model: string, data: string, maxLength: number): string[] {
  const out = join(tempDir(), "run");
  return [
    "train",
    "--model",
    model,
    "--data",
    data,
    "--out",
    out,
    "--max-length",
    String(maxLength),
    "--max-steps",
    "1",
    "--no-progress",
    "--no-report",
  ];
}

test("train prints what it kept, truncated and dropped, and why; all dropped or --max-length above the context is an error naming --max-length", () => {
  const model = tinyModel("llama", 7); // max_position_embeddings 128
  // 6 rows, 3 with a 24-token prompt: cut to 16 tokens they have nothing left to train.
  const mixed = join(tempDir(), "mixed.jsonl");
  const long = "Once upon a time ".repeat(6).trim();
  const rows = [0, 1, 2, 3, 4, 5].map((i) =>
    JSON.stringify({ prompt: i % 2 === 0 ? "How are you" : long, completion: " Fine thanks" }),
  );
  writeFileSync(mixed, `${rows.join("\n")}\n`);
  const r = runCli(trainArgs(model, mixed, 16));
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n").filter((l) => l.startsWith("data: "));
  assert.deepEqual(lines, [
    "data: 6 rows -> 3 examples (3 truncated to --max-length 16; 3 dropped: nothing left to train after truncation)",
  ]);

  // Every row dropped: an error naming the file and --max-length, no run.
  const allLong = join(tempDir(), "long.jsonl");
  writeFileSync(allLong, `${rows.filter((_, i) => i % 2 === 1).join("\n")}\n`);
  const args = trainArgs(model, allLong, 16);
  const none = runCli(args);
  assert.equal(none.code, 1, none.stdout);
  assert.equal(
    none.stderr,
    `error: ${allLong}: all 3 examples were dropped: 3 had nothing left to train after truncation to --max-length 16\n`,
  );
  assert.equal(existsSync(args[args.indexOf("--out") + 1]!), false, "nothing is written");

  // --max-length above the model's context (128).
  const over = runCli(trainArgs(model, mixed, 129));
  assert.equal(over.code, 1, over.stdout);
  assert.equal(
    over.stderr,
    "error: --max-length 129: longer than the model's context of 128 tokens (max_position_embeddings)\n",
  );
  // eval too; without --max-length it caps the default 512 to the context.
  const evalOver = runCli(["eval", "--model", model, "--data", mixed, "--max-length", "129"]);
  assert.equal(evalOver.code, 1, evalOver.stdout);
  assert.equal(evalOver.stderr, over.stderr);
  const evalDefault = runCli(["eval", "--model", model, "--data", mixed, "--json"]);
  assert.equal(evalDefault.code, 0, evalDefault.stderr);
  // Nothing dropped: just the counts.
  const plain = runCli(trainArgs(model, promptData(4), 128));
  assert.equal(plain.code, 0, plain.stderr);
  assert.deepEqual(
    plain.stdout.split("\n").filter((l) => l.startsWith("data: ")),
    ["data: 4 rows -> 4 examples"],
  );
});

test("train: data inside --out, or an --out under a file, is refused before any work; a --force run names its checkpoints where they will be", () => {
  const model = tinyModel("llama", 5);
  const out = join(tempDir(), "run");
  const data = join(out, "data.jsonl");
  assert.equal(runTrain(model, wordData(8), out, "--max-steps", "1").code, 0);
  writeFileSync(data, readFileSync(wordData(8)));
  const before = fileHashes(out);
  // --force would have replaced the folder holding the data, deleting it.
  const held = runTrain(model, data, out, "--max-steps", "1", "--force");
  assert.equal(held.code, 1);
  assert.equal(held.stderr, `error: --out ${out}: contains an input file ${data}, which is only ever read\n`);
  assert.equal(held.stdout, "", "refused before the data are read");
  assert.deepEqual(fileHashes(out), before);

  const underFile = join(data, "run");
  const r = runTrain(model, wordData(8), underFile, "--max-steps", "1");
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `error: --out ${underFile}: ${data} is a file, not a folder\n`);
  assert.equal(r.stdout, "");

  const forced = runCli([
    "train",
    "--model",
    model,
    "--data",
    wordData(8),
    "--out",
    out,
    "--max-steps",
    "2",
    "--save-every",
    "1",
    "--force",
    "--no-report",
  ]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(
    forced.stderr,
    new RegExp(`checkpoint @ step 1: ${out.replaceAll("/", "\\/")}/checkpoint-1\\n`),
  );
  assert.ok(existsSync(join(out, "checkpoint-1")));
});
