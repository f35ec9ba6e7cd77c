/**
 * The acceptance test of #13: `lora-ts export gguf-adapter` on the demo's adapter, then llama.cpp with
 * the base GGUF plus that adapter, answers the held-out questions exactly as `lora-ts generate
 * --adapter` does. The adapter is trained here with the demo's own settings and data (DEMO_TRAINING,
 * persona.jsonl), each held-out prompt "Q: ...\nA:" is encoded as the demo encodes it (BOS first), and
 * the greedy continuations (scale 1, temperature 0, the demo's 40 new tokens) must agree id for id.
 * The demo's 16 epochs take ~150 s on two shared cores, so by default the adapter is trained for
 * EPOCHS of them (the rest of the settings unchanged, the cosine schedule over the shorter run);
 * LORA_TS_DEMO_FULL=1 trains all 16 (that run passed too when this test was written).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { DEMO_TRAINING } from "../../src/cli/demo.js";
import { readTokenizer } from "../../src/data/tokenizer-files.js";
import { generate } from "../../src/infer/generate.js";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { train } from "../../src/train/trainer.js";
import { runCli } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/shared.js";
import { tempDir } from "../models/fixtures.js";
import { LLAMA_CPP, llamaGreedyEach, llamaTokenize } from "./llama-cpp.js";

const MODEL = join(REPO_ROOT, "models/default");
/** The demo's max new tokens (src/cli/demo.ts answers()). */
const MAX_NEW = 40;
/** Questions also run through the `lora-ts generate --adapter` CLI (each a process and a model load). */
const CLI_CHECKED = 3;
/** Epochs trained: the demo's own count with LORA_TS_DEMO_FULL=1, else a quarter of it for CI time. */
const FULL = process.env["LORA_TS_DEMO_FULL"] === "1";
const EPOCHS = FULL ? DEMO_TRAINING.epochs! : 4;

function cli(args: string[]): string {
  const r = runCli(args);
  assert.equal(r.code, 0, `lora-ts ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

test(`demo's adapter (demo settings, ${FULL ? "all 16 epochs" : `${EPOCHS} of the demo's 16 epochs`}): base + adapter GGUF in llama.cpp answers the held-out questions as lora-ts generate --adapter does`, {
  skip: LLAMA_CPP,
}, async () => {
  const t0 = Date.now();
  const dir = tempDir("lora-ts-interop-demo-");
  const adapter = join(dir, "adapter");
  await train({
    ...DEMO_TRAINING,
    epochs: EPOCHS,
    model: MODEL,
    data: join(MODEL, "data/persona.jsonl"),
    out: adapter,
  });
  const tTrain = Date.now();
  const base = join(dir, "model.gguf");
  const lora = join(dir, "adapter.gguf");
  cli(["export", "gguf", "--model", MODEL, "--out", base]);
  cli(["export", "gguf-adapter", "--model", MODEL, "--adapter", adapter, "--out", lora]);

  const rows = readFileSync(join(MODEL, "data/persona-heldout.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { prompt: string; completion: string });
  const tok = readTokenizer(MODEL);
  const prompts = rows.map((r) => tok.encode(r.prompt, { addBos: true }));
  // llama.cpp reads the prompt text into the same ids (BOS written by hand: the GGUF says add_bos false).
  const llamaIds = await llamaTokenize(
    base,
    rows.map((r) => r.prompt),
    false,
  );
  assert.deepEqual(
    llamaIds.map((ids) => [tok.bosId!, ...ids]),
    prompts,
  );

  // lora-ts: the demo's generation path for every question, the CLI for the first few.
  const lm = await loadCausalLM(MODEL, { adapters: [{ name: "demo", dir: adapter }] });
  const want: number[][] = [];
  for (const p of prompts) {
    want.push((await generate(lm, [p], { maxNewTokens: MAX_NEW, extraFeeds: lm.adapterFeeds("demo") }))[0]!);
  }
  await lm.release();
  for (const [i, p] of prompts.slice(0, CLI_CHECKED).entries()) {
    const args = ["generate", "--model", MODEL, "--adapter", adapter, "--prompt-ids", p.join(",")];
    const out = JSON.parse(cli([...args, "--max-new-tokens", String(MAX_NEW), "--json"])) as {
      ids: number[];
    };
    assert.deepEqual(out.ids, want[i], `generate --adapter CLI on question ${i}`);
  }
  // The adapter taught the persona's sign-off (the base never says it), or the comparison proves
  // little about the adapter. After 4 epochs the "Squawk!" opening is still half-learnt ("Squaqua...").
  const texts = want.map((w) => tok.decode(w, { skipSpecial: true }));
  assert.ok(texts.filter((t) => t.includes("Pip out.")).length >= rows.length / 2, texts.join("\n"));

  const got = await llamaGreedyEach(
    base,
    prompts,
    want.map((w) => w.length),
    [{ filePath: lora, scale: 1 }],
  );
  const bad = rows
    .map((r, i) => ({ q: r.prompt, want: want[i], got: got[i] }))
    .filter((x) => JSON.stringify(x.want) !== JSON.stringify(x.got));
  assert.deepEqual(bad, []);
  console.log(
    `# demo adapter: train ${((tTrain - t0) / 1000).toFixed(1)} s, export + generate + llama.cpp ${((Date.now() - tTrain) / 1000).toFixed(1)} s, ${rows.length} questions`,
  );
});
