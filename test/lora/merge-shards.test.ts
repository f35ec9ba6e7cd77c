/**
 * `merge --max-shard-size` (issue #13): above the limit the merged weights are written as Hugging
 * Face writes them (model-0000i-of-0000N.safetensors + model.safetensors.index.json), load back, and
 * give the logits of the one-file merge; the size flag's parsing and one-line refusals.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { openSafetensors } from "../../src/io/safetensors.js";
import { parseShardSize, planShards } from "../../src/io/safetensors-shards.js";
import { runCli } from "../helpers/cli.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { randomAdapter } from "../interop/fixtures.js";
import { tempDir } from "../models/fixtures.js";

const IDS = "1,5,9,3,7,2";

function logits(model: string): number[][] {
  const r = runCli(["logits", "--model", model, "--ids", IDS, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { logits: number[][] }).logits;
}

function merge(model: string, adapter: string, ...extra: string[]): string {
  const out = join(tempDir("lora-ts-merge-shards-"), "merged");
  const r = runCli(["merge", "--model", model, "--adapter", adapter, "--out", out, ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

test("a merge above --max-shard-size is sharded like Hugging Face's, loads back and gives the one-file logits", () => {
  const model = tinyModel("llama", 11, { num_key_value_heads: 2 });
  const adapter = randomAdapter(model, {
    targets: ["q_proj", "k_proj", "v_proj", "o_proj"],
    r: 4,
    alpha: 8,
    seed: 3,
  });
  const whole = merge(model, adapter);
  assert.deepEqual(
    readdirSync(whole).filter((f) => f.includes("safetensors")),
    ["model.safetensors"],
  );

  // The tiny llama's largest tensor is the 64×32 f32 embedding (8 KB): 10000 bytes gives many shards.
  const sharded = merge(model, adapter, "--max-shard-size", "10KB");
  const files = readdirSync(sharded).filter((f) => f.endsWith(".safetensors"));
  assert.ok(files.length >= 3, `${files.length} shards`);
  const n = String(files.length).padStart(5, "0");
  assert.deepEqual(
    files,
    files.map((_, i) => `model-${String(i + 1).padStart(5, "0")}-of-${n}.safetensors`),
  );
  assert.ok(!readdirSync(sharded).includes("model.safetensors"));

  // The index: exactly {"metadata": {"total_size"}, "weight_map"} with sorted keys, as transformers writes it.
  const indexText = readFileSync(join(sharded, "model.safetensors.index.json"), "utf8");
  const index = JSON.parse(indexText) as {
    metadata: { total_size: number };
    weight_map: Record<string, string>;
  };
  assert.deepEqual(Object.keys(index), ["metadata", "weight_map"]);
  assert.deepEqual(Object.keys(index.metadata), ["total_size"]);
  assert.deepEqual(Object.keys(index.weight_map), Object.keys(index.weight_map).sort());
  assert.equal(indexText, `${JSON.stringify(index, null, 2)}\n`);
  let total = 0;
  const names = new Set<string>();
  for (const f of files) {
    const st = openSafetensors(join(sharded, f));
    let bytes = 0;
    for (const [name, info] of st.tensors) {
      assert.equal(index.weight_map[name], f, name);
      bytes += info.byteLength;
      names.add(name);
    }
    st.close();
    // A shard holds at most the limit, unless it is one tensor over it.
    assert.ok(bytes <= 10_000 || st.tensors.size === 1, `${f}: ${bytes} bytes`);
    total += bytes;
  }
  assert.equal(index.metadata.total_size, total);
  assert.equal(Object.keys(index.weight_map).length, names.size);
  const one = openSafetensors(join(whole, "model.safetensors"));
  assert.deepEqual([...names].sort(), [...one.tensors.keys()].sort());
  assert.equal(
    total,
    [...one.tensors.values()].reduce((s, t) => s + t.byteLength, 0),
  );
  one.close();

  assert.deepEqual(logits(sharded), logits(whole));

  // A sharded model merged again (one file this time) leaves no stale shard or index behind.
  const again = merge(sharded, adapter);
  assert.deepEqual(
    readdirSync(again).filter((f) => f.includes("safetensors")),
    ["model.safetensors"],
  );
  // ...and merged into shards again, the same set of files.
  const reshard = merge(sharded, adapter, "--max-shard-size", "10000");
  assert.deepEqual(
    readdirSync(reshard).filter((f) => f.endsWith(".safetensors")),
    files,
  );
  assert.ok(statSync(join(reshard, "model.safetensors.index.json")).isFile());
});

test("shards are filled in tensor order; a tensor over the limit gets a shard of its own, as huggingface_hub does", () => {
  // split_state_dict_into_shards appends the big tensor's shard at once and keeps the open one filling.
  const t = (name: string, bytes: number) => ({
    name,
    dtype: "uint8" as const,
    shape: [bytes],
    data: new Uint8Array(bytes),
  });
  const plan = planShards([t("a", 40), t("b", 50), t("c", 30), t("big", 500), t("d", 10), t("e", 100)], 100);
  assert.deepEqual(
    plan.map((s) => s.map((x) => x.name)),
    [["a", "b"], ["big"], ["c", "d"], ["e"]],
  );
  assert.deepEqual(
    planShards([t("a", 10), t("b", 10)], 100).map((s) => s.length),
    [2],
  );
});

test("--max-shard-size parses GB (decimal), GiB (binary), MB and bytes; bad values are one line naming the flag", () => {
  assert.equal(parseShardSize("5GB"), 5_000_000_000);
  assert.equal(parseShardSize("500MB"), 500_000_000);
  assert.equal(parseShardSize("2GiB"), 2 * 2 ** 30);
  assert.equal(parseShardSize("1.5KB"), 1500);
  assert.equal(parseShardSize("123456"), 123456);
  for (const bad of ["", "0", "-5GB", "5XB", "GB", "five"]) {
    assert.throws(() => parseShardSize(bad), /--max-shard-size/, bad);
  }
  const model = tinyModel("gpt2", 12);
  const adapter = randomAdapter(model, { targets: ["c_attn"], r: 2, alpha: 4, seed: 1 });
  const out = join(tempDir("lora-ts-merge-shards-"), "merged");
  const r = runCli([
    "merge",
    "--model",
    model,
    "--adapter",
    adapter,
    "--out",
    out,
    "--max-shard-size",
    "5XB",
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: --max-shard-size "5XB": .+\n$/);
});
