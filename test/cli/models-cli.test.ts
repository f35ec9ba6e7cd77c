/** The model commands' outputs are a contract: convert llama2c, generate --json, logits --json, info. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { needsShared, sharedPath } from "../helpers/shared.js";
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

test("model commands fail with one line naming the problem", () => {
  const empty = tempDir();
  for (const args of [
    ["info", "--model", empty],
    ["generate", "--model", empty, "--prompt-ids", "1"],
    ["generate", "--model", empty, "--prompt-ids", "1,x"],
    [
      "convert",
      "llama2c",
      "--model",
      join(empty, "nope.bin"),
      "--tokenizer",
      "t.bin",
      "--out",
      join(empty, "o"),
    ],
  ]) {
    const r = runCli(args);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /^error: .+\n$/, args.join(" "));
  }
});
