/**
 * The CLI with hub ids, against the mock hub of test/helpers/mock-hub.ts: `lora-ts download`, and
 * `generate --model org/name --adapter org/adapter` giving what the same local folders give. The
 * binary runs in a child process; it is spawned asynchronously because the mock hub serves from
 * this process's event loop.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { BIN } from "../helpers/cli.js";
import { decoys, filesOf, tinyAdapter, tinyShardedLlama } from "../helpers/hub-fixtures.js";
import { commitId, MockHub } from "../helpers/mock-hub.js";
import { wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const C1 = commitId("cli-1");
const C2 = commitId("cli-2");
let hub: MockHub;
let modelDir: string;
let adapterDir: string;

before(async () => {
  modelDir = tinyShardedLlama(7);
  adapterDir = tinyAdapter(9);
  hub = new MockHub([
    {
      id: "tiny-org/tiny-llama",
      commits: [
        { sha: C1, files: filesOf(tinyShardedLlama(8), decoys()) },
        { sha: C2, files: filesOf(modelDir, decoys()) },
      ],
    },
    { id: "tiny-org/tiny-lora", commits: [{ sha: commitId("cli-lora"), files: filesOf(adapterDir) }] },
  ]);
  await hub.start();
});
after(() => hub.close());

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function hubEnv(cache = tempDir("lora-ts-hub-")): Record<string, string> {
  return {
    HF_ENDPOINT: hub.url,
    HF_HUB_CACHE: cache,
    HF_HOME: tempDir("lora-ts-hf-home-"),
    HF_TOKEN: "",
    HF_HUB_OFFLINE: "",
  };
}

test("lora-ts download prints the snapshot folder, quietly; --revision and --include choose what", async () => {
  const env = hubEnv();
  const r = await run(["download", "tiny-org/tiny-llama"], env);
  assert.equal(r.code, 0, r.stderr);
  const snap = join(env["HF_HUB_CACHE"]!, "models--tiny-org--tiny-llama", "snapshots", C2);
  assert.equal(r.stdout, `${snap}\n`);
  assert.equal(r.stderr, ""); // no progress line when stderr is not a terminal
  assert.ok(readdirSync(snap).includes("model-00002-of-00002.safetensors"));
  assert.ok(!readdirSync(snap).includes("pytorch_model.bin"));

  const pinned = await run(
    ["download", "tiny-org/tiny-llama", "--revision", C1, "--include", "config.json"],
    env,
  );
  assert.equal(pinned.code, 0, pinned.stderr);
  const snap1 = join(env["HF_HUB_CACHE"]!, "models--tiny-org--tiny-llama", "snapshots", C1);
  assert.equal(pinned.stdout, `${snap1}\n`);
  assert.deepEqual(readdirSync(snap1), ["config.json"]);

  const shown = await run(["download", "tiny-org/tiny-lora", "--adapter", "--progress"], env);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stderr, /adapter_model\.safetensors +100% +[\d.]+ kB \/ [\d.]+ kB +[\d.]+ [kMG]?B\/s/);
});

test("lora-ts download: offline miss and unknown repository are one-line errors", async () => {
  const offline = await run(["download", "tiny-org/tiny-llama"], { ...hubEnv(), HF_HUB_OFFLINE: "1" });
  assert.equal(offline.code, 1);
  assert.match(
    offline.stderr,
    /^error: tiny-org\/tiny-llama: not in the hub cache .* HF_HUB_OFFLINE is set.*\n$/,
  );
  const missing = await run(["download", "tiny-org/nothing"], hubEnv());
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /^error: tiny-org\/nothing: no such model repository on .*check the id.*HF_TOKEN.*\n$/,
  );
});

test("generate --model org/name --adapter org/adapter gives what the same local folders give, then works offline", async () => {
  const args = ["--prompt-ids", "1,5,9,12", "--max-new-tokens", "6", "--json"];
  const env = hubEnv();
  const local = await run(["generate", "--model", modelDir, "--adapter", adapterDir, ...args], env);
  assert.equal(local.code, 0, local.stderr);
  const fromHub = await run(
    ["generate", "--model", "tiny-org/tiny-llama", "--adapter", "tiny-org/tiny-lora", ...args],
    env,
  );
  assert.equal(fromHub.code, 0, fromHub.stderr);
  assert.equal(fromHub.stdout, local.stdout);
  assert.ok(existsSync(join(env["HF_HUB_CACHE"]!, "models--tiny-org--tiny-lora", "refs", "main")));
  const count = hub.requests.length;
  const offline = await run(
    ["generate", "--model", "tiny-org/tiny-llama", "--adapter", "tiny-org/tiny-lora", ...args],
    {
      ...env,
      HF_HUB_OFFLINE: "1",
    },
  );
  assert.equal(offline.code, 0, offline.stderr);
  assert.equal(offline.stdout, local.stdout);
  assert.equal(hub.requests.length, count);
});

test("merge, combine, eval and info take hub ids and give what the local folders give", async () => {
  const env = hubEnv();
  const out = tempDir("lora-ts-hub-out-");
  const viaHub = await run(
    ["merge", "--model", "tiny-org/tiny-llama", "--adapter", "tiny-org/tiny-lora", "--out", join(out, "hub")],
    env,
  );
  assert.equal(viaHub.code, 0, viaHub.stderr);
  const viaDirs = await run(
    ["merge", "--model", modelDir, "--adapter", adapterDir, "--out", join(out, "local")],
    env,
  );
  assert.equal(viaDirs.code, 0, viaDirs.stderr);
  const names = readdirSync(join(out, "local")).sort();
  assert.deepEqual(readdirSync(join(out, "hub")).sort(), names);
  for (const n of names)
    assert.deepEqual(readFileSync(join(out, "hub", n)), readFileSync(join(out, "local", n)), n);

  const combined = await run(
    [
      "combine",
      "--adapter",
      "tiny-org/tiny-lora",
      "--adapter",
      adapterDir,
      "--weights",
      "0.5,0.5",
      "--out",
      join(out, "comb"),
    ],
    env,
  );
  assert.equal(combined.code, 0, combined.stderr);
  assert.ok(existsSync(join(out, "comb", "adapter_model.safetensors")));

  const data = wordData(8);
  const evalHub = await run(
    ["eval", "--model", "tiny-org/tiny-llama", "--adapter", "tiny-org/tiny-lora", "--data", data, "--json"],
    env,
  );
  const evalLocal = await run(
    ["eval", "--model", modelDir, "--adapter", adapterDir, "--data", data, "--json"],
    env,
  );
  assert.equal(evalHub.code, 0, evalHub.stderr);
  assert.equal(evalHub.stdout, evalLocal.stdout);

  const info = await run(["info", "--model", "tiny-org/tiny-llama"], env);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /bfloat16/);
});

test("a download killed mid-file leaves only blobs/<etag>.incomplete; the next download continues it with Range", async () => {
  const env = hubEnv();
  const shard = "model-00001-of-00002.safetensors";
  const storage = join(env["HF_HUB_CACHE"]!, "models--tiny-org--tiny-llama");
  hub.stall.set(shard, 1500);
  const child = spawn(process.execPath, [BIN, "download", "tiny-org/tiny-llama"], {
    env: { ...process.env, ...env },
    stdio: "ignore",
  });
  const exited = new Promise((resolve) => child.on("close", resolve));
  // Wait until the first 1,500 bytes are on disk, then kill the process as a user's Ctrl-C or a crash would.
  const partial = (): string | undefined => {
    const blobs = join(storage, "blobs");
    const name = existsSync(blobs) ? readdirSync(blobs).find((n) => n.endsWith(".incomplete")) : undefined;
    return name && statSync(join(blobs, name)).size === 1500 ? join(blobs, name) : undefined;
  };
  for (let i = 0; i < 600 && !partial(); i++) await new Promise((r) => setTimeout(r, 50));
  const incomplete = partial();
  child.kill("SIGKILL");
  await exited;
  hub.stall.delete(shard);
  assert.ok(incomplete, "the download never wrote its first bytes");
  assert.ok(!existsSync(incomplete.slice(0, -".incomplete".length)), "a partial file has the final name");
  assert.ok(!existsSync(join(storage, "snapshots", C2, shard)));

  const before = hub.resolves(shard).length;
  const r = await run(["download", "tiny-org/tiny-llama"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    hub
      .resolves(shard)
      .slice(before)
      .map((q) => q.range),
    ["bytes=1500-"],
  );
  assert.deepEqual(readFileSync(join(storage, "snapshots", C2, shard)), readFileSync(join(modelDir, shard)));
  assert.ok(!existsSync(incomplete));
});
