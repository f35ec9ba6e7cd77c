/**
 * One server with --api-key and --adapter-root: the key, run-time adapter loading and its path
 * rules, body limits and validation, the OpenAI shapes (stop strings, logprobs, context limits),
 * load/unload/reload under load, lora_mix against `combine --type cat`, /health while decoding,
 * /metrics, and a disconnecting client's cancel.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { runCli } from "../helpers/cli.js";
import { writeRandomAdapter } from "../helpers/random-adapter.js";
import { errorOf, post, type ServerProcess, startServe } from "./server.js";

const MODEL = DEFAULT_MODEL_DIR;
const KEY = "test-key-123";
const AUTH = { authorization: `Bearer ${KEY}` };
let work: string;
let root: string;
let outside: string;
let server: ServerProcess;
let client: OpenAI;

before(async () => {
  work = mkdtempSync(join(tmpdir(), "lora-ts-serve-api-"));
  root = join(work, "adapters");
  outside = join(work, "outside");
  mkdirSync(root);
  mkdirSync(outside);
  const spec = (seed: number) => ({
    seed,
    r: 4,
    lora_alpha: 8,
    target_modules: ["q_proj", "v_proj", "o_proj"],
    scale: 0.1,
  });
  writeRandomAdapter(MODEL, join(root, "a1"), spec(1));
  writeRandomAdapter(MODEL, join(root, "a2"), spec(2));
  writeRandomAdapter(MODEL, join(root, "hot"), spec(3));
  // A valid adapter outside the root, reachable by ../, by its absolute path and by a symlink.
  writeRandomAdapter(MODEL, join(outside, "evil"), spec(4));
  symlinkSync(join(outside, "evil"), join(root, "escape"));
  server = await startServe(
    [
      "--model",
      MODEL,
      "--adapter",
      `a1=${join(root, "a1")}`,
      "--adapter",
      `a2=${join(root, "a2")}`,
      "--adapter-root",
      root,
    ],
    { LORA_TS_API_KEY: KEY },
  );
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  if (server) assert.equal(await server.stop(), 0, server.stderr());
  rmSync(work, { recursive: true, force: true });
});

const get = async (path: string, headers: Record<string, string> = AUTH) => {
  const r = await fetch(`${server.url}${path}`, { headers });
  const text = await r.text();
  return { status: r.status, text, json: () => JSON.parse(text) };
};
const modelIds = async () => ((await client.models.list()).data as { id: string }[]).map((m) => m.id).sort();
const greedy = async (model: string, prompt: string, extra: Record<string, unknown> = {}) => {
  const r = await post(
    `${server.url}/v1/completions`,
    { model, prompt, max_tokens: 10, temperature: 0, ...extra },
    AUTH,
  );
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
};

test("serve api: every endpoint but /health needs the key (LORA_TS_API_KEY), compared exactly", async () => {
  assert.equal(server.stdout(), `listening on ${server.url}\n`, "exactly one line on stdout");
  assert.equal((await get("/health", {})).status, 200);
  const wrong: Record<string, string>[] = [{}, { authorization: "Bearer wrong" }, { authorization: KEY }];
  for (const headers of wrong) {
    const r = await get("/v1/models", headers);
    assert.equal(r.status, 401);
    assert.equal(errorOf(r.json()).type, "authentication_error");
    assert.equal((await get("/metrics", headers)).status, 401);
    const p = await post(`${server.url}/v1/completions`, { model: "default", prompt: "x" }, headers);
    assert.equal(p.status, 401);
  }
  const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "nope", maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
  const models = (await client.models.list()).data as unknown as Record<string, unknown>[];
  assert.deepEqual(
    models.map((m) => [m["id"], m["object"], m["owned_by"], m["parent"], typeof m["created"]]),
    [
      ["default", "model", "lora-ts", null, "number"],
      ["a1", "model", "lora-ts", "default", "number"],
      ["a2", "model", "lora-ts", "default", "number"],
    ],
  );
  const one = (await client.models.retrieve("a1")) as unknown as Record<string, unknown>;
  assert.equal(one["parent"], "default");
  await assert.rejects(client.models.retrieve("nope"), (e: unknown) => e instanceof OpenAI.NotFoundError);
});

test("serve api: load_lora_adapter refuses paths out of --adapter-root and bad names; nothing is loaded", async () => {
  const load = (body: unknown) => post(`${server.url}/v1/load_lora_adapter`, body, AUTH);
  const cases: [unknown, number][] = [
    [{ lora_name: "evil", lora_path: "../outside/evil" }, 403],
    [{ lora_name: "evil", lora_path: join(root, "..", "outside", "evil") }, 403],
    [{ lora_name: "evil", lora_path: join(outside, "evil") }, 403],
    [{ lora_name: "evil", lora_path: "escape" }, 403],
    [{ lora_name: "evil", lora_path: join(root, "escape") }, 403],
    [{ lora_name: "evil", lora_path: "a1/../../outside/evil" }, 403],
    [{ lora_name: "../evil", lora_path: "hot" }, 400],
    [{ lora_name: "a b", lora_path: "hot" }, 400],
    [{ lora_name: "x".repeat(65), lora_path: "hot" }, 400],
    [{ lora_name: "default", lora_path: "hot" }, 400],
    [{ lora_name: "fresh", lora_path: "missing" }, 400],
    [{ lora_name: "fresh", lora_path: "hot", extra: 1 }, 400],
    [{ lora_name: "fresh" }, 400],
    [{ lora_name: "a1", lora_path: "hot" }, 409],
  ];
  for (const [body, status] of cases) {
    const r = await load(body);
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
    errorOf(r.body);
  }
  assert.deepEqual(await modelIds(), ["a1", "a2", "default"]);
  const r = await post(`${server.url}/v1/completions`, { model: "evil", prompt: "x", max_tokens: 2 }, AUTH);
  assert.equal(r.status, 404);
  assert.equal(errorOf(r.body).code, "model_not_found");
  assert.match((await get("/metrics")).text, /^lora_ts_loaded_adapters 2$/m);
});

test("serve api: oversized and malformed bodies, unknown and unsupported fields get 400/413 with OpenAI error bodies", async () => {
  const url = `${server.url}/v1/completions`;
  const big = await post(url, { model: "default", prompt: "x".repeat(2 * 1024 * 1024) }, AUTH);
  assert.equal(big.status, 413);
  errorOf(big.body);
  const cases: [unknown, number, RegExp][] = [
    ["{not json", 400, /JSON/i],
    [{ model: "default" }, 400, /prompt: required/],
    [{ model: "default", prompt: "x", bogus: 1 }, 400, /bogus: unknown field/],
    [{ model: "default", prompt: "x", n: 2 }, 400, /^n: /],
    [{ model: "default", prompt: "x", presence_penalty: 0.5 }, 400, /presence_penalty/],
    [{ model: "default", prompt: "x", max_tokens: "5" }, 400, /max_tokens/],
    [{ model: "default", prompt: "x", temperature: 3 }, 400, /temperature/],
    [{ model: "default", prompt: "x", stop: ["a", "b", "c", "d", "e"] }, 400, /stop/],
    [{ model: "default", prompt: ["a", "b"] }, 400, /one prompt per request/],
    [{ model: "default", prompt: [1, 99999] }, 400, /outside the vocabulary/],
    [{ model: "default", prompt: new Array(300).fill(5) }, 400, /context/],
    [{ model: "a1", prompt: "x", lora_mix: [{ name: "a1", weight: 1 }] }, 400, /lora_mix/],
    [{ model: "default", prompt: "x", lora_mix: [{ name: "nope", weight: 1 }] }, 404, /nope/],
  ];
  for (const [body, status, message] of cases) {
    const r = await post(url, body, AUTH);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.body)}`);
    assert.match(errorOf(r.body).message, message);
  }
  const chat = `${server.url}/v1/chat/completions`;
  const msgs = [{ role: "user", content: "hi" }];
  for (const [body, message] of [
    [{ model: "default", messages: msgs, tools: [{ type: "function", function: { name: "f" } }] }, /tools/],
    [{ model: "default", messages: msgs, top_logprobs: 2 }, /top_logprobs/],
    [{ model: "default", messages: [{ role: "wizard", content: "x" }] }, /role/],
    [{ model: "default", messages: [] }, /messages/],
  ] as [unknown, RegExp][]) {
    const r = await post(chat, body, AUTH);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(errorOf(r.body).message, message);
  }
  // Well-known fields at their defaults are accepted (an OpenAI client may send them).
  const ok = await greedy("default", "The cat", {
    presence_penalty: 0,
    frequency_penalty: 0,
    user: "u1",
    n: 1,
    logit_bias: {},
  });
  assert.equal(ok.choices[0].finish_reason, "length");
});

test("serve api: stop strings cut the text (streamed or not), max_tokens is capped by the context, logprobs have OpenAI's shapes", async () => {
  const full = (await greedy("default", "Once upon a time")).choices[0].text as string;
  const stop = full.slice(6, 9);
  assert.ok(stop.length === 3 && full.indexOf(stop) === 6, JSON.stringify(full));
  const cut = await greedy("default", "Once upon a time", { stop: [stop, "zzzz"] });
  assert.equal(cut.choices[0].text, full.slice(0, 6));
  assert.equal(cut.choices[0].finish_reason, "stop");
  const s = await client.completions.create({
    model: "default",
    prompt: "Once upon a time",
    max_tokens: 10,
    temperature: 0,
    stop,
    stream: true,
  });
  let streamed = "";
  let finish = "";
  for await (const c of s) {
    streamed += c.choices[0]?.text ?? "";
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(streamed, full.slice(0, 6));
  assert.equal(finish, "stop");

  // 250 prompt tokens leave 6 in a 256-token context: max_tokens 50 is lowered to it.
  const long = await greedy("default", new Array(250).fill(300) as unknown as string, { max_tokens: 50 });
  assert.equal(long.usage.prompt_tokens, 250);
  assert.ok(long.usage.completion_tokens <= 6, JSON.stringify(long.usage));

  const lp = await greedy("a1", "Once upon a time", { logprobs: 3 });
  const l = lp.choices[0].logprobs;
  const n = lp.usage.completion_tokens;
  assert.equal(l.tokens.length, n);
  assert.equal(l.token_logprobs.length, n);
  assert.equal(l.top_logprobs.length, n);
  assert.equal(l.text_offset.length, n);
  assert.equal(l.tokens.join(""), lp.choices[0].text);
  for (const [i, top] of (l.top_logprobs as Record<string, number>[]).entries()) {
    assert.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 3);
    assert.ok(l.token_logprobs[i] <= 0);
    // Greedy: the chosen token is the most likely one.
    assert.ok(Math.abs(Math.max(...Object.values(top)) - l.token_logprobs[i]) < 1e-9);
  }
  // Streamed, the same tokens and numbers arrive spread over the chunks.
  const ls = await client.completions.create({
    model: "a1",
    prompt: "Once upon a time",
    max_tokens: 10,
    temperature: 0,
    logprobs: 3,
    stream: true,
  });
  const parts = { tokens: [] as string[], token_logprobs: [] as number[], text_offset: [] as number[] };
  for await (const chunk of ls) {
    const x = chunk.choices[0]?.logprobs;
    if (!x) continue;
    parts.tokens.push(...(x.tokens ?? []));
    parts.token_logprobs.push(...(x.token_logprobs ?? []));
    parts.text_offset.push(...(x.text_offset ?? []));
  }
  assert.deepEqual(parts, { tokens: l.tokens, token_logprobs: l.token_logprobs, text_offset: l.text_offset });
  const c = await client.chat.completions.create({
    model: "a2",
    messages: [{ role: "user", content: "Hello" }],
    max_tokens: 5,
    temperature: 0,
    logprobs: true,
    top_logprobs: 2,
  });
  const content = c.choices[0]!.logprobs!.content!;
  assert.equal(content.length, c.usage!.completion_tokens);
  assert.equal(content.map((t) => t.token).join(""), c.choices[0]!.message.content);
  for (const t of content) {
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, "utf8")]);
    assert.equal(t.top_logprobs.length, 2);
    assert.ok(t.top_logprobs[0]!.logprob >= t.top_logprobs[1]!.logprob);
  }
});

test("serve api: an adapter loads, serves, unloads and reloads while other requests run, theirs unaffected", async () => {
  const prompts = ["The little dog", "Once upon a time"];
  const reference = new Map<string, string>();
  for (const m of ["default", "a1", "a2"])
    for (const p of prompts) reference.set(`${m}|${p}`, (await greedy(m, p)).choices[0].text);
  let running = true;
  const background = (async () => {
    let n = 0;
    const wrong: string[] = [];
    while (running) {
      const m = ["default", "a1", "a2"][n % 3]!;
      const p = prompts[n % 2]!;
      const text = (await greedy(m, p, { stream: false })).choices[0].text;
      if (text !== reference.get(`${m}|${p}`)) wrong.push(`${m}|${p}: ${text}`);
      n++;
    }
    return { n, wrong };
  })();
  const background2 = Promise.all(
    Array.from({ length: 3 }, async () => {
      const s = await client.completions.create({
        model: "a1",
        prompt: prompts[0]!,
        max_tokens: 10,
        temperature: 0,
        stream: true,
      });
      let t = "";
      for await (const c of s) t += c.choices[0]?.text ?? "";
      return t;
    }),
  );
  const load = () => post(`${server.url}/v1/load_lora_adapter`, { lora_name: "hot", lora_path: "hot" }, AUTH);
  assert.equal((await load()).status, 200);
  assert.deepEqual(await modelIds(), ["a1", "a2", "default", "hot"]);
  const first = (await greedy("hot", prompts[0]!)).choices[0].text;
  assert.notEqual(first, reference.get(`default|${prompts[0]}`), "the loaded adapter changes the answer");
  const unload = await post(`${server.url}/v1/unload_lora_adapter`, { lora_name: "hot" }, AUTH);
  assert.equal(unload.status, 200, JSON.stringify(unload.body));
  assert.deepEqual(await modelIds(), ["a1", "a2", "default"]);
  const gone = await post(`${server.url}/v1/completions`, { model: "hot", prompt: "x", max_tokens: 2 }, AUTH);
  assert.equal(gone.status, 404);
  assert.equal((await post(`${server.url}/v1/unload_lora_adapter`, { lora_name: "hot" }, AUTH)).status, 404);
  // Reloaded from the absolute path this time: the same answer as before.
  const again = await post(
    `${server.url}/v1/load_lora_adapter`,
    { lora_name: "hot", lora_path: join(root, "hot") },
    AUTH,
  );
  assert.equal(again.status, 200);
  assert.equal((await greedy("hot", prompts[0]!)).choices[0].text, first);
  running = false;
  const { n, wrong } = await background;
  assert.ok(n >= 3, `only ${n} background requests ran`);
  assert.deepEqual(wrong, []);
  for (const t of await background2) assert.equal(t, reference.get(`a1|${prompts[0]}`));
  assert.equal((await post(`${server.url}/v1/unload_lora_adapter`, { lora_name: "hot" }, AUTH)).status, 200);
});

test("serve api: a lora_mix answer equals lora-ts generate on the same mix made by combine --type cat", async () => {
  const out = join(work, "mix");
  const c = runCli([
    "combine",
    "--adapter",
    `a1=${join(root, "a1")}`,
    "--adapter",
    `a2=${join(root, "a2")}`,
    "--weights",
    "0.7,0.3",
    "--type",
    "cat",
    "--out",
    out,
  ]);
  assert.equal(c.code, 0, c.stderr);
  const g = runCli([
    "generate",
    "--model",
    MODEL,
    "--adapter",
    out,
    "--prompt",
    "Once upon a time",
    "--max-new-tokens",
    "10",
    "--json",
  ]);
  assert.equal(g.code, 0, g.stderr);
  const want = (JSON.parse(g.stdout) as { text: string }).text;
  const mixed = await greedy("default", "Once upon a time", {
    lora_mix: [
      { name: "a1", weight: 0.7 },
      { name: "a2", weight: 0.3 },
    ],
  });
  assert.equal(mixed.choices[0].text, want);
  assert.notEqual(want, (await greedy("a1", "Once upon a time")).choices[0].text, "the mix is not a1 alone");
  assert.ok(relative(work, out).length > 0);
});

test("serve api: /health answers within 100 ms while the model decodes; /metrics has the metrics; a client that leaves cancels", async () => {
  const jobs = Array.from({ length: 6 }, (_, i) =>
    post(
      `${server.url}/v1/completions`,
      {
        model: i % 2 ? "a1" : "default",
        prompt: `Story ${i}`,
        max_tokens: 200,
        temperature: 0,
        ignore_eos: true,
      },
      AUTH,
    ),
  );
  // Wait until the engine is decoding.
  const t0 = Date.now();
  while (((await get("/health", {})).json() as { running: number }).running === 0) {
    assert.ok(Date.now() - t0 < 10_000, "the engine never started decoding");
  }
  // Time /health while requests are decoding (the engine says it is running some), and watch the
  // batch size until it shows that they are decoded together.
  let finished = false;
  const all = Promise.all(jobs).then((r) => {
    finished = true;
    return r;
  });
  const times: number[] = [];
  let batch = 0;
  while (!finished && (times.length < 10 || batch < 2)) {
    const start = performance.now();
    const h = await get("/health", {});
    const took = performance.now() - start;
    assert.equal(h.status, 200);
    if ((h.json() as { running: number }).running > 0) times.push(took);
    const m = /^lora_ts_batch_size (\d+)$/m.exec((await get("/metrics")).text);
    batch = Math.max(batch, Number(m?.[1]));
  }
  assert.ok(times.length >= 10, `only ${times.length} /health calls while decoding`);
  assert.ok(Math.max(...times) < 100, `health took ${times.map((t) => t.toFixed(1)).join(", ")} ms`);
  assert.ok(batch >= 2, `the requests were decoded together (largest batch seen: ${batch})`);
  for (const r of await all) assert.equal(r.body.usage.completion_tokens, 200);

  // A streaming client that goes away after its first chunk: the engine stops its generation.
  const ac = new AbortController();
  const r = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...AUTH },
    body: JSON.stringify({
      model: "default",
      prompt: "Long ago",
      max_tokens: 240,
      temperature: 0,
      stream: true,
      ignore_eos: true,
    }),
    signal: ac.signal,
  });
  const reader = r.body!.getReader();
  await reader.read();
  ac.abort();
  const t1 = Date.now();
  let metrics = "";
  while (!/lora_ts_cancelled_requests_total\{reason="client_gone"\} 1/.test(metrics)) {
    assert.ok(Date.now() - t1 < 5000, `no cancel recorded:\n${metrics}`);
    await new Promise((res) => setTimeout(res, 50));
    metrics = (await get("/metrics")).text;
  }
  for (const name of [
    'lora_ts_http_requests_total{endpoint="/v1/completions",status="200"}',
    'lora_ts_http_requests_total{endpoint="/v1/models",status="401"}',
    'lora_ts_adapter_requests_total{adapter="a1"}',
    'lora_ts_adapter_requests_total{adapter="mix"}',
    "lora_ts_prompt_tokens_total",
    "lora_ts_generation_tokens_total",
    "lora_ts_queue_depth",
    "lora_ts_running_requests",
    "lora_ts_batch_size",
    "lora_ts_time_to_first_token_seconds_count",
    "lora_ts_inter_token_latency_seconds_count",
    'lora_ts_request_duration_seconds_count{endpoint="/v1/completions"}',
  ])
    assert.ok(metrics.includes(`${name} `), `${name} missing from /metrics`);
});
