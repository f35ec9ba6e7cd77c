/**
 * The pure parts of `sweep --queue` (no Redis): the --queue URL and --queue-name, the stalled-job
 * settings from the environment, and a run's files packed by a worker and unpacked by the sweep
 * (round trip, checkpoints left behind, paths outside the run folder refused, the old folder replaced).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { asPayload, packRun, safeRelative, unpackRun } from "../../src/train/sweep-queue-files.js";
import { parseQueue, stallSettings } from "../../src/train/sweep-queue-url.js";
import { tempDir } from "../models/fixtures.js";

test("--queue: redis URLs parsed, anything else one line naming --queue", () => {
  const q = parseQueue("redis://user:p%40ss@10.0.0.5:6380/2");
  assert.deepEqual(
    [q.host, q.port, q.db, q.username, q.password, q.tls, q.name, q.shown],
    ["10.0.0.5", 6380, 2, "user", "p@ss", false, "lora-ts-sweep", "redis://10.0.0.5:6380/2"],
  );
  assert.equal(parseQueue("rediss://h", "mine").port, 6379);
  assert.equal(parseQueue("rediss://h", "mine").tls, true);
  assert.equal(parseQueue("rediss://h", "mine").name, "mine");
  for (const [url, re] of [
    ["h:6379", /--queue "h:6379": .*redis:\/\/HOST:PORT/],
    ["http://h:1", /http: is not redis:/],
    ["redis://h:1/x", /not a database number/],
    ["redis://h:1?a=b", /no query/],
  ] as const)
    assert.throws(() => parseQueue(url), re);
  assert.throws(() => parseQueue("redis://h", "a:b"), /^LoraTsError: --queue-name "a:b"/);
  assert.throws(() => parseQueue("redis://h", ""), /--queue-name/);
});

test("stalled-job settings: defaults, environment, bad values named", () => {
  assert.deepEqual(stallSettings({}), { lockMs: 30_000, stalledMs: 30_000, maxStalled: 2 });
  assert.deepEqual(stallSettings({ LORA_TS_QUEUE_LOCK_MS: "2000", LORA_TS_QUEUE_STALLED_MS: "1000" }), {
    lockMs: 2000,
    stalledMs: 1000,
    maxStalled: 2,
  });
  assert.throws(
    () => stallSettings({ LORA_TS_QUEUE_LOCK_MS: "2s" }),
    /^LoraTsError: LORA_TS_QUEUE_LOCK_MS="2s"/,
  );
  assert.throws(() => stallSettings({ LORA_TS_QUEUE_LOCK_MS: "10" }), />= 500/);
});

test("a run's files: packed without checkpoints, unpacked in place of the old folder, paths checked", async () => {
  const src = tempDir("lora-ts-queue-src-");
  const run = join(src, "runs", "q-r1-s0");
  mkdirSync(join(run, "checkpoint-2"), { recursive: true });
  mkdirSync(join(run, "sub"), { recursive: true });
  writeFileSync(join(run, "adapter_model.safetensors"), Buffer.from([0, 1, 2, 255]));
  writeFileSync(join(run, "metrics.jsonl"), '{"step":1}\n');
  writeFileSync(join(run, "sub", "x.txt"), "x");
  writeFileSync(join(run, "checkpoint-2", "optimizer.bin"), "big");
  writeFileSync(join(src, "run.log"), "log text");
  const p = packRun(run, join(src, "run.log"), { name: "q-r1-s0", status: "done", seconds: 1.5 });
  assert.deepEqual(Object.keys(p.files).sort(), ["adapter_model.safetensors", "metrics.jsonl", "sub/x.txt"]);
  assert.equal(asPayload(JSON.parse(JSON.stringify(p))) !== null, true);
  assert.equal(asPayload({ status: "done", files: { a: 1 }, log: "" }), null);

  const out = tempDir("lora-ts-queue-out-");
  mkdirSync(join(out, "runs", "q-r1-s0"), { recursive: true });
  writeFileSync(join(out, "runs", "q-r1-s0", "stale.txt"), "from an unfinished run");
  await unpackRun(out, "q-r1-s0", p);
  const dest = join(out, "runs", "q-r1-s0");
  assert.deepEqual(readdirSync(dest).sort(), ["adapter_model.safetensors", "metrics.jsonl", "sub"]);
  assert.deepEqual([...readFileSync(join(dest, "adapter_model.safetensors"))], [0, 1, 2, 255]);
  assert.equal(readFileSync(join(out, "logs", "q-r1-s0.log"), "utf8"), "log text");
  assert.deepEqual(readdirSync(join(out, "runs")), ["q-r1-s0"], "no temporary folder is left");

  for (const bad of ["../x", "/etc/x", "a/../../x", "a//b", "./a", ""])
    assert.equal(safeRelative(bad), false, bad);
  await assert.rejects(unpackRun(out, "q", { ...p, files: { "../evil": "" } }), /outside its folder/);
  await assert.rejects(unpackRun(out, "../q", p), /a run named/);
  assert.ok(!existsSync(join(out, "evil")) && !existsSync(join(out, "runs", "q")));
});
