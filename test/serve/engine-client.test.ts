/**
 * EngineClient over a real worker thread (fake-engine-worker.ts): tokens stream back in order,
 * EngineError kinds come back as EngineErrors, stats follow loads, and a thread that dies fails
 * what was pending and everything after, once, without taking the process with it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { EngineError, type GenRequest, type TokenEvent } from "../../src/infer/engine-types.js";
import { EngineClient } from "../../src/serve/engine-client.js";

const WORKER = new URL("./fake-engine-worker.js", import.meta.url);
const req = (id: string, first: number, maxTokens = 3): GenRequest => ({
  id,
  prompt: [first],
  adapter: null,
  maxTokens,
  temperature: 0,
  topP: 1,
  stopIds: [],
});
const kindOf = (e: unknown) => (e instanceof EngineError ? e.kind : `not an EngineError: ${String(e)}`);

test("engine client: tokens, errors with their kinds, adapters and stats across the thread", async () => {
  const client = await EngineClient.start({ model: "unused", adapters: [], options: {} }, WORKER);
  assert.deepEqual(client.info, { maxPositions: 64, eosTokenIds: [0], vocabSize: 1000 });
  const seen: TokenEvent[] = [];
  const r = await client.submit(req("a", 10, 4), (t) => seen.push(t));
  assert.deepEqual(r, { finish: "length", promptTokens: 1, completionTokens: 4 });
  assert.deepEqual(
    seen.map((t) => [t.id, t.logprob]),
    [
      [10, -0],
      [11, -1],
      [12, -2],
      [13, -3],
    ],
  );
  // Concurrent requests each get only their own tokens.
  const mine: Record<string, number[]> = { x: [], y: [] };
  await Promise.all(
    ["x", "y"].map((id, i) => client.submit(req(id, 100 * (i + 1), 5), (t) => mine[id]!.push(t.id))),
  );
  assert.deepEqual(mine, { x: [100, 101, 102, 103, 104], y: [200, 201, 202, 203, 204] });
  await assert.rejects(
    client.submit(req("q", 429), () => {}),
    (e) => kindOf(e) === "queue_full",
  );
  await assert.rejects(
    client.submit(req("n", 404), () => {}),
    (e) => kindOf(e) === "unknown_adapter",
  );
  await client.loadAdapter("one", "/x");
  await assert.rejects(client.loadAdapter("one", "/x"), (e) => kindOf(e) === "adapter_exists");
  await assert.rejects(client.unloadAdapter("two"), (e) => kindOf(e) === "unknown_adapter");
  // A consumer that throws loses its own request only.
  await assert.rejects(
    client.submit(req("t", 1), () => {
      throw new Error("consumer bug");
    }),
    /consumer bug/,
  );
  assert.deepEqual(await client.submit(req("after", 5, 1), () => {}), {
    finish: "length",
    promptTokens: 1,
    completionTokens: 1,
  });
  // Stats arrive by message: the load shows up without a call.
  const t0 = Date.now();
  while (!client.stats().adapters.includes("one")) {
    assert.ok(Date.now() - t0 < 2000, "stats never showed the loaded adapter");
    await new Promise((r) => setTimeout(r, 20));
  }
  await client.close();
  await assert.rejects(
    client.submit(req("late", 1), () => {}),
    (e) => kindOf(e) === "closed",
  );
});

test("engine client: a thread that dies fails pending and later calls with 'closed', once", async () => {
  const client = await EngineClient.start({ model: "unused", adapters: [], options: {} }, WORKER);
  const failures: Error[] = [];
  client.onFailure = (e) => failures.push(e);
  await assert.rejects(
    client.submit(req("die", 666), () => {}),
    (e) => kindOf(e) === "closed",
  );
  assert.equal(client.alive, false);
  await assert.rejects(
    client.submit(req("later", 1), () => {}),
    (e) => kindOf(e) === "closed",
  );
  await assert.rejects(client.loadAdapter("x", "/x"), (e) => kindOf(e) === "closed");
  assert.equal(failures.length, 1);
  assert.match(failures[0]!.message, /exited \(code 3\)/);
});
