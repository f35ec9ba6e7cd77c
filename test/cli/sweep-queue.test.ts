/**
 * `lora-ts sweep --queue` and `lora-ts worker` (issue #15, runs across machines) on a real
 * redis-server: a 4-run sweep on a tiny random Llama taken by two workers, one of them SIGKILLed (with
 * its training child) in the middle of a run, whose job another worker takes up through BullMQ's
 * stalled-job check; results.json must equal a local sweep's (same command without --queue) run by
 * run, losses exactly (training is seeded), and each run folder must hold the same files with the same
 * adapter bytes. The same command again skips every run. A bad or unreachable --queue is one line,
 * within seconds. The Redis test needs the redis-server binary (Debian package redis-server) and says
 * so when it skips.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";
import { test } from "node:test";
import { BIN, runCli } from "../helpers/cli.js";
import { sweepArgs } from "../helpers/sweep-args.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const model = tinyModel("llama", 3);
const data = wordData(24);
const root = tempDir("lora-ts-sweep-queue-");
const grid = (out: string) => [
  ...sweepArgs(model, data, out),
  "--r",
  "1,4",
  "--targets",
  "q_proj",
  "--targets",
  "q_proj,v_proj",
];

function findRedis(): string | null {
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter), "/usr/bin", "/usr/sbin", "/usr/local/bin"];
  for (const d of dirs) if (d !== "" && existsSync(join(d, "redis-server"))) return join(d, "redis-server");
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

/** A child whose stdout is gathered; `waitFor` resolves when a line matches (or rejects on timeout/exit). */
function started(args: string[], env: Record<string, string>, detached = false) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached,
  });
  let out = "";
  let err = "";
  const watchers: { re: RegExp; done: (m: RegExpMatchArray) => void }[] = [];
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString("utf8");
    for (const w of [...watchers]) {
      const m = out.match(w.re);
      if (m) {
        watchers.splice(watchers.indexOf(w), 1);
        w.done(m);
      }
    }
  });
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString("utf8");
  });
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  return {
    child,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitFor(re: RegExp, ms: number): Promise<RegExpMatchArray> {
      const m = out.match(re);
      if (m) return Promise.resolve(m);
      return new Promise((resolveMatch, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${re} in ${ms} ms; stdout:\n${out}\nstderr:\n${err}`)),
          ms,
        );
        watchers.push({
          re,
          done: (mm) => {
            clearTimeout(timer);
            resolveMatch(mm);
          },
        });
      });
    },
  };
}

function stopGroup(c: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-c.pid!, sig);
  } catch {
    // already gone
  }
}

test("a bad or unreachable --queue is one line naming --queue, within seconds", async () => {
  const port = await freePort(); // nothing listens there
  const out = join(root, "bad");
  for (const [args, re] of [
    [[...grid(out), "--queue", "localhost:6379"], /^error: --queue "localhost:6379": .*redis:\/\/HOST:PORT/],
    [
      [...grid(out), "--queue", "http://127.0.0.1:6379"],
      /^error: --queue "http:\/\/127\.0\.0\.1:6379": http: is not redis:/,
    ],
    [
      [...grid(out), "--queue", `redis://127.0.0.1:${port}`],
      /^error: --queue redis:\/\/127\.0\.0\.1:\d+: cannot reach Redis \(.*ECONNREFUSED/,
    ],
    [[...grid(out), "--queue-name", "x"], /^error: --queue-name: .*give --queue/],
    [[...grid(out), "--queue", "redis://127.0.0.1:1", "--jobs", "2"], /^error: --jobs: with --queue/],
    [[...grid(out), "--queue", "redis://127.0.0.1:1", "--queue-name", "a:b"], /^error: --queue-name "a:b": /],
    [
      ["worker", "--queue", `redis://127.0.0.1:${port}`],
      /^error: --queue redis:\/\/127\.0\.0\.1:\d+: cannot reach Redis/,
    ],
    [["worker"], /^error: worker: --queue redis:\/\/HOST:PORT is required/],
    [["worker", "--queue", "redis://127.0.0.1:1", "--concurrency", "0"], /^error: --concurrency/],
  ] as const) {
    const t0 = performance.now();
    const r = runCli([...args]);
    const s = (performance.now() - t0) / 1000;
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, re);
    assert.ok(s < 15, `${args.join(" ")} took ${s.toFixed(1)} s`);
  }
  assert.ok(!existsSync(out), "nothing is written before the queue is reached");
});

test("a 4-run sweep on a Redis queue with two workers, one killed mid-run, equals a local sweep", async (t) => {
  const redis = findRedis();
  if (redis === null) {
    t.skip("redis-server is missing (Debian package redis-server): the queue sweep was not tested");
    return;
  }
  const port = await freePort();
  const data_ = tempDir("lora-ts-redis-");
  const server = spawn(
    redis,
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", data_, "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const workers: ReturnType<typeof started>[] = [];
  try {
    await new Promise<void>((resolveReady, reject) => {
      let text = "";
      const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${text}`)), 10_000);
      server.stdout!.on("data", (d: Buffer) => {
        text += d.toString("utf8");
        if (/Ready to accept connections/.test(text)) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      server.on("exit", (code) => reject(new Error(`redis-server exited (${code}):\n${text}`)));
    });
    const url = `redis://127.0.0.1:${port}`;

    const local = join(root, "local");
    const l = runCli(grid(local));
    assert.equal(l.code, 0, l.stderr);

    // Short locks so that the killed worker's run is taken up within seconds (see stallSettings).
    const env = { LORA_TS_QUEUE_LOCK_MS: "2000", LORA_TS_QUEUE_STALLED_MS: "1000", TMPDIR: root };
    for (let i = 0; i < 2; i++) workers.push(started(["worker", "--queue", url], env, true));
    for (const w of workers) await w.waitFor(/^worker: taking runs from queue lora-ts-sweep/m, 20_000);
    const queued = join(root, "queued");
    const sweep = started([...grid(queued), "--queue", url], {});
    // Worker 0 dies (SIGKILL, with its training child: a machine lost) once its first run has started.
    const [, killed] = await workers[0]!.waitFor(/^(\S+): started/m, 30_000);
    await new Promise((r) => setTimeout(r, 100));
    stopGroup(workers[0]!.child, "SIGKILL");
    await workers[0]!.exited;
    const code = await sweep.exited;
    assert.equal(code, 0, `${sweep.stdout()}\n${sweep.stderr()}`);
    assert.doesNotMatch(workers[0]!.stdout(), new RegExp(`^${escapeRe(killed!)}: done`, "m"));
    assert.match(workers[1]!.stdout(), new RegExp(`^${escapeRe(killed!)}: started`, "m"));
    assert.match(workers[1]!.stdout(), new RegExp(`^${escapeRe(killed!)}: done in`, "m"));
    for (let k = 1; k <= 4; k++) assert.match(sweep.stdout(), new RegExp(`\\[${k}/4\\] \\S+: done in`));
    assert.match(sweep.stdout(), /^queue: \d waiting, \d active, 0 done, 0 failed$/m);
    assert.match(sweep.stdout(), /^queue: 0 waiting, 0 active, 4 done, 0 failed$/m);

    const rows = (dir: string) =>
      JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as Record<string, unknown>[];
    const a = rows(local);
    const b = rows(queued);
    assert.equal(b.length, 4);
    for (let i = 0; i < 4; i++) {
      const { seconds: _s1, tokens_per_sec: _t1, ...ra } = a[i]!;
      const { seconds: _s2, tokens_per_sec: _t2, ...rb } = b[i]!;
      assert.deepEqual(rb, ra, `run ${i}`);
      assert.equal(rb["status"], "done");
      assert.ok(typeof rb["final_val_loss"] === "number" && typeof rb["final_train_loss"] === "number");
      const name = String(ra["name"]);
      const files = (dir: string) => readdirSync(join(dir, "runs", name)).sort();
      assert.deepEqual(files(queued), files(local), name);
      const bytes = (dir: string) => readFileSync(join(dir, "runs", name, "adapter_model.safetensors"));
      assert.ok(bytes(queued).equals(bytes(local)), `${name}: the adapters differ`);
      const marker = (dir: string) =>
        JSON.parse(readFileSync(join(dir, "runs", name, "sweep-run.json"), "utf8")).args;
      assert.deepEqual(marker(queued), marker(local));
      assert.match(readFileSync(join(queued, "logs", `${name}.log`), "utf8"), /\S/);
    }
    assert.deepEqual(readdirSync(join(queued, "runs")).sort(), readdirSync(join(local, "runs")).sort());

    // Resume works unchanged: the same command again skips all four, with no worker taking anything.
    const again = runCli([...grid(queued), "--queue", url]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((again.stdout.match(/: skipped \(finished before, same settings\)/g) ?? []).length, 4);

    // A training error comes back as a failed run, as a local sweep records it, and is not retried.
    const failing = (dir: string) => [
      ...grid(dir).slice(0, grid(dir).indexOf("--r")),
      "--r",
      "2",
      "--targets",
      "nomatch_proj",
    ];
    const lf = runCli(failing(join(root, "local-fail")));
    const qf = started([...failing(join(root, "queued-fail")), "--queue", url], {});
    assert.equal(lf.code, 1, lf.stderr);
    assert.equal(await qf.exited, 1, qf.stderr());
    assert.match(qf.stderr(), /^error: 1 of 1 runs failed/);
    await workers[1]!.waitFor(/^nomatch_proj-r2-s0: failed: /m, 10_000);
    const [lrow] = rows(join(root, "local-fail"));
    const [qrow] = rows(join(root, "queued-fail"));
    assert.equal(qrow!["status"], "failed");
    assert.equal(qrow!["error"], lrow!["error"]);
    assert.match(String(qrow!["error"]), /nomatch_proj/);
    assert.equal((workers[1]!.stdout().match(/^nomatch_proj-r2-s0: started/gm) ?? []).length, 1);
    assert.match(workers[1]!.stdout(), /^nomatch_proj-r2-s0: failed: /m);
    assert.match(
      readFileSync(join(root, "queued-fail", "logs", "nomatch_proj-r2-s0.log"), "utf8"),
      /nomatch_proj/,
    );
  } finally {
    for (const w of workers) stopGroup(w.child, "SIGKILL");
    server.kill("SIGTERM");
    await new Promise((r) => (server.exitCode !== null ? r(null) : server.on("exit", r)));
  }
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
