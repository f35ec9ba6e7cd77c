/**
 * The training loop: loss goes down, resume is exact, a NaN stops the run and keeps the last good
 * checkpoint, full fine-tuning writes a loadable model, and (with ../shared) stories260K learns an
 * identity from lf_identity.json.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { generate } from "../../src/infer/generate.js";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { openSafetensors } from "../../src/io/safetensors.js";
import { loadAdapter } from "../../src/lora/adapter-files.js";
import { evaluate } from "../../src/train/evaluate.js";
import type { StepMetrics } from "../../src/train/events.js";
import { listCheckpoints, NonFiniteLossError, type TrainOptions, train } from "../../src/train/trainer.js";
import { runCli } from "../helpers/cli.js";
import { needsShared, sharedPath } from "../helpers/shared.js";
import { stories260K } from "../helpers/stories.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

/** A tiny random Llama with the toy tokenizer, and a text data set made of its words. */
function tinySetup(): { model: string; data: string } {
  return { model: tinyModel("llama", 3, { num_key_value_heads: 2 }), data: wordData(24) };
}

function collectLosses(into: Map<number, number>, stopAt?: number, epochs?: Map<number, number>) {
  return {
    onStep(m: StepMetrics) {
      into.set(m.step, m.loss);
      epochs?.set(m.step, m.epoch);
      if (m.step === stopAt) throw new Error("simulated crash");
    },
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * The mean step loss of the first epoch and of the last one. Each window holds every training
 * example once (in a different order), so the two means differ by what was learned, not by which
 * batches happened to fall at either end. Asserts that the run covers at least two whole epochs of
 * at least two steps each.
 */
function epochMeans(
  losses: Map<number, number>,
  epochs: Map<number, number>,
): { first: number; last: number } {
  const byEpoch = new Map<number, number[]>();
  for (const [step, loss] of [...losses].sort((a, b) => a[0] - b[0])) {
    const e = epochs.get(step)!;
    byEpoch.set(e, [...(byEpoch.get(e) ?? []), loss]);
  }
  const windows = [...byEpoch.values()];
  assert.ok(windows.length >= 2, `the run covers ${windows.length} epoch(s)`);
  const [first, last] = [windows[0]!, windows.at(-1)!];
  assert.ok(
    first.length >= 2 && first.length === last.length,
    `epoch windows of ${first.length} and ${last.length} steps`,
  );
  return { first: mean(first), last: mean(last) };
}

test("LoRA training lowers the loss; resume after a crash gives the same later losses (within 1e-6)", async () => {
  const { model, data } = tinySetup();
  const base: TrainOptions = {
    model,
    data,
    out: "",
    r: 4,
    targets: "all-linear",
    dropout: 0.1,
    lr: 5e-3,
    maxSteps: 8,
    batchSize: 3,
    gradAccum: 2,
    saveEvery: 3,
    seed: 5,
    threads: 1,
  };
  const full = new Map<number, number>();
  const fullEpochs = new Map<number, number>();
  await train({ ...base, out: tempDir() }, [collectLosses(full, undefined, fullEpochs)]);
  // 24 rows, 3 x 2 per step: 8 steps are two epochs of 4 steps. Measured: 7.08 -> 6.07.
  const means = epochMeans(full, fullEpochs);
  assert.ok(
    means.last < 0.95 * means.first,
    `mean loss of the first epoch ${means.first}, of the last ${means.last}`,
  );

  const out = tempDir();
  const first = new Map<number, number>();
  await assert.rejects(train({ ...base, out }, [collectLosses(first, 5)]), /simulated crash/);
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [3],
  );
  const resumed = new Map<number, number>();
  await train({ ...base, out, resume: true }, [collectLosses(resumed)]);
  assert.deepEqual([...resumed.keys()], [4, 5, 6, 7, 8]);
  for (const [s, loss] of resumed)
    assert.ok(Math.abs(loss - full.get(s)!) <= 1e-6, `step ${s}: ${loss} vs ${full.get(s)}`);
  assert.ok(existsSync(join(out, "adapter_model.safetensors")));
});

test("a non-finite loss (lr 1e20) stops with a clear message; the last checkpoint loads", async () => {
  const { model, data } = tinySetup();
  const out = tempDir();
  await assert.rejects(
    train({
      model,
      data,
      out,
      lr: 1e20,
      maxSteps: 6,
      batchSize: 4,
      saveEvery: 1,
      targets: "all-linear",
      maxGradNorm: 1e30,
      threads: 1,
    }),
    (e: Error) => {
      assert.ok(e instanceof NonFiniteLossError);
      assert.match(
        e.message,
        /^the loss became NaN at step \d+ \(lr [^)]+\); training stopped\. The last good checkpoint is .*checkpoint-\d+$/,
      );
      return true;
    },
  );
  const last = listCheckpoints(out).at(-1)!;
  const adapter = loadAdapter(last.dir);
  assert.ok([...adapter.tensors.values()].every((t) => t.data.every(Number.isFinite)));
  const lm = await loadCausalLM(model, { adapters: [{ name: "ckpt", dir: last.dir }] });
  const ids = await generate(lm, [[1, 20, 21]], {
    maxNewTokens: 3,
    eosIds: [],
    extraFeeds: lm.adapterFeeds("ckpt"),
  });
  assert.equal(ids[0]!.length, 3);
  await lm.release();
});

test("full fine-tuning trains every weight and writes a loadable model (Llama untied, GPT-2 tied)", async () => {
  for (const { kind, model, tied } of [
    { kind: "llama", model: tinyModel("llama", 3, { num_key_value_heads: 2 }), tied: false },
    { kind: "gpt2", model: tinyModel("gpt2", 3), tied: true }, // head = wte: stored once, trained through both uses
  ]) {
    const data = wordData(24);
    const out = tempDir();
    const losses = new Map<number, number>();
    const epochs = new Map<number, number>();
    const summary = await train(
      { model, data, out, mode: "full", lr: 3e-3, maxSteps: 12, batchSize: 4, threads: 1 },
      [collectLosses(losses, undefined, epochs)],
    );
    // 24 rows at batch 4: 12 steps are two epochs of 6. Measured: 6.06 -> 4.22 (Llama), 6.47 -> 4.32 (GPT-2).
    const { first, last } = epochMeans(losses, epochs);
    assert.ok(last < 0.95 * first, `${kind}: mean loss of the first epoch ${first}, of the last ${last}`);

    // Tensor by tensor: the output holds exactly the base's tensors (a tied head is one tensor, in
    // both files and in the parameter count), and every one of them moved.
    const base = openSafetensors(join(model, "model.safetensors"));
    const tuned = openSafetensors(join(out, "model.safetensors"));
    const names = [...base.tensors.keys()].sort();
    assert.deepEqual([...tuned.tensors.keys()].sort(), names);
    assert.equal(names.includes("lm_head.weight"), !tied, `${kind}: lm_head stored iff untied`);
    let count = 0;
    for (const name of names) {
      const [w0, w1] = [base.readFloat32(name), tuned.readFloat32(name)];
      const shape = base.info(name).shape;
      assert.deepEqual(tuned.info(name).shape, shape, name);
      count += w0.length;
      const changed = w0.map((v, i) => (v !== w1[i] ? 1 : 0));
      // A table that is only looked up (positions; the token embedding when the head is separate)
      // gets gradient in the rows the data uses; every other weight gets it in every element.
      const lookupOnly = /wpe/.test(name) || (/embed_tokens|wte/.test(name) && !tied);
      if (lookupOnly) {
        const width = shape.at(-1)!;
        let wholeRows = 0;
        for (let r = 0; r < shape[0]!; r++)
          if (changed.subarray(r * width, (r + 1) * width).every((c) => c === 1)) wholeRows++;
        assert.ok(wholeRows > 0, `${kind} ${name}: no row changed`);
      } else {
        const same = changed.length - changed.reduce((a, b) => a + b, 0);
        assert.equal(same, 0, `${kind} ${name}: ${same} of ${changed.length} elements unchanged`);
      }
    }
    base.close();
    tuned.close();
    assert.equal(summary.trainableParams, count, "every stored weight is trained, a tied head once");
    assert.equal(summary.totalParams, count);

    const before = await evaluate({ model, data });
    const after = await evaluate({ model: out, data });
    assert.ok(after.loss < before.loss, `${kind}: eval loss ${before.loss} -> ${after.loss}`);
  }
});

test("train CLI: a malformed JSONL line and bad config keys are one-line errors with exit 1", () => {
  const { model } = tinySetup();
  const bad = join(tempDir(), "bad.jsonl");
  writeFileSync(bad, '{"text": "Hello there"}\n{"text": "How are you"\n');
  const r = runCli([
    "train",
    "--model",
    model,
    "--data",
    bad,
    "--out",
    tempDir(),
    "--no-progress",
    "--no-report",
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*bad\.jsonl: line 2: invalid JSON.*\n$/);

  const cfg = join(tempDir(), "train.yaml");
  writeFileSync(cfg, `model: ${model}\ndata: ${bad}\nbatch_size: four\n`);
  const c = runCli(["train", "--config", cfg, "--out", tempDir()]);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /^error: .*train\.yaml: batch_size: .*\n$/);
  writeFileSync(cfg, "learning_rate: 0.1\n");
  assert.match(runCli(["train", "--config", cfg]).stderr, /^error: .*train\.yaml: .*learning_rate.*\n$/);
});

test("train: --val-data with --val-fraction is refused, not the fraction silently dropped", () => {
  const { model, data } = tinySetup();
  const out = join(tempDir(), "run");
  const r = runCli([
    "train",
    "--model",
    model,
    "--data",
    data,
    "--val-data",
    data,
    "--val-fraction",
    "0.2",
    "--out",
    out,
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: train: give --val-data or --val-fraction, not both.*\n$/);
  assert.ok(!existsSync(out), "nothing written");
});

test("stories260K learns an identity from lf_identity.json: validation loss -30%, the name in a held-out answer", {
  skip: needsShared("models/stories260K/stories260K.bin", "data/lf_identity.json"),
}, async (t) => {
  const model = await stories260K();
  // English rows only (the Chinese ones are beyond a 512-token story model), placeholders filled.
  const rows = (
    JSON.parse(readFileSync(sharedPath("data/lf_identity.json"), "utf8")) as Record<string, string>[]
  )
    .filter((r) => !/[\u3000-\u9fff]/.test(`${r["instruction"]}${r["output"]}`))
    .map((r) => ({
      prompt: `Question: ${r["instruction"]}\nAnswer:`,
      completion: ` ${r["output"]!.replaceAll("{{name}}", "Tobi").replaceAll("{{author}}", "Lora Labs")}`,
    }));
  // 80/20: every fifth row (from the third) is held out: "Who are you?", "What are you called?", ...
  const isVal = (i: number) => i % 5 === 2;
  const dir = tempDir();
  const write = (name: string, rs: typeof rows) => {
    writeFileSync(join(dir, name), rs.map((r) => JSON.stringify(r)).join("\n"));
    return join(dir, name);
  };
  const trainFile = write(
    "train.jsonl",
    rows.filter((_, i) => !isVal(i)),
  );
  const valFile = write(
    "val.jsonl",
    rows.filter((_, i) => isVal(i)),
  );
  assert.equal(rows.filter((_, i) => isVal(i))[0]!.prompt, "Question: Who are you?\nAnswer:");
  const heldOut = rows.filter((_, i) => isVal(i)).map((r) => r.prompt);
  /** Greedy answers to every held-out question, with the adapter or without. */
  const answers = async (adapter?: string) => {
    const lm = await loadCausalLM(model, { adapters: adapter ? [{ name: "id", dir: adapter }] : [] });
    const texts: string[] = [];
    for (const q of heldOut) {
      const ids = lm.tokenizer!.encode(q, { addBos: true });
      const out = await generate(lm, [ids], {
        maxNewTokens: 32,
        extraFeeds: lm.adapterFeeds(adapter ? "id" : null),
      });
      texts.push(lm.tokenizer!.decode(out[0]!, { skipSpecial: true }));
    }
    await lm.release();
    return texts;
  };
  for (const text of await answers()) assert.doesNotMatch(text, /Tobi/);
  const out = join(dir, "adapter");
  const summary = await train({
    model,
    data: trainFile,
    valData: valFile,
    out,
    r: 8,
    alpha: 16,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj"],
    lr: 3e-3,
    maxSteps: 200,
    batchSize: 4,
    evalEvery: 50,
    seed: 1,
  });
  const drop = 1 - summary.finalEvalLoss! / summary.firstEvalLoss!;
  assert.ok(drop >= 0.3, `validation loss ${summary.firstEvalLoss} -> ${summary.finalEvalLoss}`);
  const after = await answers(out);
  t.diagnostic(`held-out answers after training: ${JSON.stringify(after)}`);
  assert.ok(
    after.some((text) => /Tobi/.test(text)),
    `no held-out answer names Tobi after training: ${JSON.stringify(after)}`,
  );
});

test("train CLI: numeric flags and a YAML config train an adapter; flags not given keep their defaults; eval --json", () => {
  const { model, data } = tinySetup();
  const out = join(tempDir(), "a");
  const r = runCli([
    "train",
    "--model",
    model,
    "--data",
    data,
    "--out",
    out,
    "--max-steps",
    "2",
    "--batch-size",
    "3",
    "--r",
    "4",
    "--target",
    "all-linear",
    "--no-report",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const cfg = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  assert.equal(cfg["r"], 4);
  assert.equal(cfg["lora_alpha"], 16);
  assert.equal(cfg["lora_dropout"], 0.05);

  const yaml = join(tempDir(), "train.yaml");
  const out2 = join(tempDir(), "b");
  writeFileSync(
    yaml,
    `model: ${model}\ndata: ${data}\nout: ${out2}\nmax_steps: 2\nbatch_size: 2\ntarget: [q_proj, v_proj]\nalpha: 8\n`,
  );
  const y = runCli(["train", "--config", yaml, "--r", "2", "--no-progress", "--no-report"]);
  assert.equal(y.code, 0, y.stderr);
  const cfg2 = JSON.parse(readFileSync(join(out2, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual([cfg2["r"], cfg2["lora_alpha"], cfg2["target_modules"]], [2, 8, ["q_proj", "v_proj"]]);
  const e = runCli(["eval", "--model", model, "--adapter", out2, "--data", data, "--json"]);
  assert.equal(e.code, 0, e.stderr);
  const m = JSON.parse(e.stdout) as { loss: number; perplexity: number; tokens: number };
  assert.ok(m.loss > 0 && Math.abs(m.perplexity - Math.exp(m.loss)) < 1e-6 * m.perplexity && m.tokens > 0);
});
