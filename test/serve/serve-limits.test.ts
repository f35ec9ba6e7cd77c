/**
 * A server at --max-batch 1 --max-queue 1: a full queue answers 429 with Retry-After (streamed
 * requests too) and never disturbs the requests it took; run-time loading is off without
 * --adapter-root; SIGTERM refuses new requests with 503, finishes the one in flight and exits 0.
 * And the flags: each bad one is one line naming it, before the model loads.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { runCli } from "../helpers/cli.js";
import { errorOf, post, type ServerProcess, startServe } from "./server.js";

const MODEL = DEFAULT_MODEL_DIR;
let server: ServerProcess;

before(async () => {
  server = await startServe([
    "--model",
    MODEL,
    "--max-batch",
    "1",
    "--max-queue",
    "1",
    "--shutdown-timeout",
    "20",
  ]);
});

after(async () => {
  if (server) await server.stop();
});

test("serve limits: a full queue answers 429 with Retry-After; the accepted requests are unaffected", async () => {
  const body = (i: number) => ({
    model: "default",
    prompt: "Once upon a time",
    max_tokens: 30,
    // Every accepted request takes 30 decode steps, so the burst really finds the queue full.
    ignore_eos: true,
    temperature: 0,
    stream: i % 2 === 1,
  });
  const alone = await post(`${server.url}/v1/completions`, { ...body(0), stream: false });
  assert.equal(alone.status, 200);
  const results = await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      const r = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body(i)),
      });
      return { i, status: r.status, retry: r.headers.get("retry-after"), text: await r.text() };
    }),
  );
  const statuses = results.map((r) => r.status);
  assert.ok(
    statuses.every((s) => s === 200 || s === 429),
    statuses.join(","),
  );
  assert.ok(statuses.includes(200) && statuses.includes(429), statuses.join(","));
  for (const r of results) {
    if (r.status === 429) {
      assert.equal(r.retry, "1");
      assert.equal(errorOf(JSON.parse(r.text)).type, "rate_limit_error");
    } else if (r.i % 2 === 0) {
      assert.equal(JSON.parse(r.text).choices[0].text, alone.body.choices[0].text);
    } else {
      const text = r.text
        .split("\n\n")
        .filter((l) => l.startsWith("data: {"))
        .map((l) => JSON.parse(l.slice(6)).choices[0]?.text ?? "")
        .join("");
      assert.equal(text, alone.body.choices[0].text);
      assert.ok(r.text.endsWith("data: [DONE]\n\n"));
    }
  }
  // The openai client sees a RateLimitError (with retries off).
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
  const burst = await Promise.allSettled(
    Array.from({ length: 6 }, () =>
      // ignore_eos: an extension the client passes through as it is.
      client.completions.create({
        model: "default",
        prompt: "Hi",
        max_tokens: 20,
        ignore_eos: true,
      } as never),
    ),
  );
  assert.ok(burst.some((b) => b.status === "rejected" && b.reason instanceof OpenAI.RateLimitError));
  assert.ok(burst.some((b) => b.status === "fulfilled"));
});

test("serve limits: without --adapter-root run-time loading is off (403) and nothing is loaded", async () => {
  const r = await post(`${server.url}/v1/load_lora_adapter`, { lora_name: "x", lora_path: "/tmp" });
  assert.equal(r.status, 403);
  assert.match(errorOf(r.body).message, /loading is off.*--adapter-root/);
  const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
  assert.deepEqual(
    models.data.map((m) => m.id),
    ["default"],
  );
});

test("serve limits: SIGTERM answers 503 to new requests, finishes the one in flight, and exits 0", async () => {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "default",
      prompt: "Once upon a time",
      max_tokens: 150,
      temperature: 0,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let raw = new TextDecoder().decode((await reader.read()).value);
  server.proc.kill("SIGTERM");
  // Give the signal a moment to arrive, then a new request is refused.
  await new Promise((r) => setTimeout(r, 200));
  const refused = await post(`${server.url}/v1/completions`, {
    model: "default",
    prompt: "x",
    max_tokens: 2,
  });
  assert.equal(refused.status, 503);
  errorOf(refused.body);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    raw += new TextDecoder().decode(value);
  }
  const events = raw.split("\n\n").filter((l) => l.startsWith("data: "));
  assert.equal(events.at(-1), "data: [DONE]");
  const usage = JSON.parse(events.at(-2)!.slice(6)).usage;
  const finish = JSON.parse(events.at(-3)!.slice(6)).choices[0].finish_reason;
  // ignore_eos: all 150 tokens, so the drain really waited for a long generation.
  assert.equal(finish, "length");
  assert.equal(usage.completion_tokens, 150);
  assert.equal(await server.exited, 0, server.stderr());
  assert.match(server.stderr(), /SIGTERM/);
});

test("serve flags: each bad flag is one line naming it, before the model loads", () => {
  const missing = "/nonexistent/model-dir";
  const cases: [string[], RegExp][] = [
    [["--port", "x"], /^error: --port: /],
    [["--port", "70000"], /^error: --port: /],
    [["--max-batch", "0"], /^error: --max-batch: /],
    [["--max-queue", "-1"], /^error: --max-queue: /],
    [["--max-loras", "1.5"], /^error: --max-loras: /],
    [["--max-lora-rank", "0"], /^error: --max-lora-rank: /],
    [["--shutdown-timeout", "soon"], /^error: --shutdown-timeout: /],
    [["--adapter", "bad name=/tmp"], /^error: --adapter: /],
    [["--adapter", "model-dir=/tmp"], /^error: --adapter: .*base model's name/],
    [["--adapter", "a=/tmp", "--adapter", "a=/tmp"], /^error: --adapter: /],
    [["--adapter-root", "/nonexistent/root"], /^error: --adapter-root: /],
    [["--api-key", " "], /^error: --api-key: /],
    [["--bogus"], /^error: unknown option '--bogus'/],
    [[], /^error: --model: .*no such file/],
  ];
  for (const [args, line] of cases) {
    const r = runCli(["serve", "--model", missing, ...args]);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, line, args.join(" "));
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  }
});
