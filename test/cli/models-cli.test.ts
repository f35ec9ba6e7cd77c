/** The model commands' outputs are a contract: convert llama2c, generate --json, logits --json, info. */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { needsShared, sharedPath } from "../helpers/shared.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const skip = needsShared("models/stories260K/stories260K.bin", "models/stories260K/reference.json");

test("stories260K via the CLI: convert llama2c, 200 greedy ids, logits at 16 tokens, info", { skip }, () => {
  const ref = JSON.parse(readFileSync(sharedPath("models/stories260K/reference.json"), "utf8")) as {
    greedy_from_bos_200: number[];
    logits_after_first_16_tokens: number[];
  };
  const dir = join(tempDir(), "stories260K");
  const conv = runCli([
    "convert",
    "llama2c",
    "--model",
    sharedPath("models/stories260K/stories260K.bin"),
    "--tokenizer",
    sharedPath("models/stories260K/tok512.bin"),
    "--out",
    dir,
  ]);
  assert.equal(conv.code, 0, conv.stderr);

  const gen = runCli(["generate", "--model", dir, "--prompt-ids", "1", "--max-new-tokens", "200", "--json"]);
  assert.equal(gen.code, 0, gen.stderr);
  const out = JSON.parse(gen.stdout) as { prompt_ids: number[]; ids: number[]; text: string };
  assert.deepEqual(out.prompt_ids, [1]);
  assert.deepEqual(out.ids, ref.greedy_from_bos_200);
  assert.match(
    out.text,
    /^Once upon a time, there was a little girl named Lily\. She loved to play outside in the park\./,
  );

  const ids = [1, ...ref.greedy_from_bos_200.slice(0, 15)];
  const lg = runCli(["logits", "--model", dir, "--ids", ids.join(","), "--json"]);
  assert.equal(lg.code, 0, lg.stderr);
  const rows = (JSON.parse(lg.stdout) as { logits: number[][] }).logits;
  assert.equal(rows.length, 16);
  const last = rows[15]!;
  const maxDiff = Math.max(...last.map((v, i) => Math.abs(v - ref.logits_after_first_16_tokens[i]!)));
  assert.ok(maxDiff < 1e-4, `max |logit diff| ${maxDiff}`);

  const info = JSON.parse(runCli(["info", "--model", dir, "--json"]).stdout) as Record<string, unknown>;
  assert.deepEqual(
    [
      info["architecture"],
      info["layers"],
      info["hidden_size"],
      info["heads"],
      info["kv_heads"],
      info["vocab_size"],
    ],
    ["LlamaForCausalLM", 5, 64, 8, 4, 512],
  );
  assert.equal(info["parameters"], 260_032);

  // --prompt text is encoded with BOS (tokenizer_config add_bos_token) and only the continuation is returned.
  const txt = JSON.parse(
    runCli(["generate", "--model", dir, "--prompt", "Once upon a time", "--max-new-tokens", "5", "--json"])
      .stdout,
  ) as { prompt_ids: number[]; ids: number[]; text: string };
  assert.equal(txt.prompt_ids[0], 1);
  assert.equal(txt.ids.length, 5);
  assert.doesNotMatch(txt.text, /Once upon a time/);
});

test("model commands fail with one line naming the problem, and write nothing", () => {
  const dir = tempDir();
  const model = tinyModel("llama", 1);
  const vocab = (JSON.parse(readFileSync(join(model, "config.json"), "utf8")) as { vocab_size: number })
    .vocab_size;
  const missing = join(dir, "nope.bin");
  const zeros = join(dir, "zeros.bin"); // a llama2.c header of seven zero int32s
  writeFileSync(zeros, Buffer.alloc(28));
  const notGguf = join(dir, "model.gguf");
  writeFileSync(notGguf, "NOPE and more bytes than a header needs");
  const inputs = readdirSync(dir).sort();
  const modelFiles = readdirSync(model).sort();
  const out = join(dir, "out");
  const cases: [string[], string][] = [
    [["info", "--model", dir], `${join(dir, "config.json")}: not found`],
    [["generate", "--model", dir, "--prompt-ids", "1"], `${join(dir, "config.json")}: not found`],
    // A model that loads, so that the flag is what fails.
    [
      ["generate", "--model", model, "--prompt-ids", "1,x"],
      '--prompt-ids: expected comma-separated token ids, got "1,x"',
    ],
    [
      ["generate", "--model", model, "--prompt-ids", `1,${vocab}`],
      `--prompt-ids: id ${vocab} is outside the vocabulary (${vocab})`,
    ],
    [["generate", "--model", model], "generate: give exactly one of --prompt and --prompt-ids"],
    [
      ["convert", "llama2c", "--model", missing, "--tokenizer", zeros, "--out", out],
      `${missing}: cannot open file: ENOENT: no such file or directory, open '${missing}'`,
    ],
    [
      ["convert", "llama2c", "--model", zeros, "--tokenizer", zeros, "--out", out],
      `${zeros}: not a llama2.c checkpoint (header dim=0 hidden_dim=0 n_layers=0 n_heads=0 n_kv_heads=0 ` +
        "vocab_size=0 seq_len=0: sizes must be positive)",
    ],
    [
      ["convert", "gguf", "--model", notGguf, "--out", out],
      `${notGguf}: not a GGUF file (magic "NOPE", expected "GGUF")`,
    ],
  ];
  for (const [args, line] of cases) {
    const r = runCli(args);
    const what = args.join(" ");
    assert.equal(r.code, 1, `${what}: ${r.stderr}`);
    assert.equal(r.stderr, `error: ${line}\n`, what);
    assert.equal(r.stdout, "", what);
    // Nothing was written: no --out, no temporary folder beside it, nothing in the model folder.
    assert.ok(!existsSync(out), `${what}: ${out} exists`);
    assert.deepEqual(readdirSync(dir).sort(), inputs, what);
    assert.deepEqual(readdirSync(model).sort(), modelFiles, what);
  }
});
