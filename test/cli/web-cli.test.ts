/**
 * `lora-ts web`, the page's static server: the built page (dist/web), onnxruntime-web's runtime under
 * /ort/ and the default model under /models/default/, each with the COOP/COEP headers and its content
 * type; one `listening on` line with --port 0; SIGTERM exits 0; bad flags are one-line errors; paths
 * that leave the roots ("..", encoded or not, absolute, symlinks out of the page folder) are refused.
 * The page bundles hold no Node import. Needs the page built (npm run build builds dist/web).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { PAGE_DIR } from "../../src/cli/web.js";
import { type RunningWebServer, startWebServer } from "../../src/cli/web-server.js";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { LoraTsError } from "../../src/util/errors.js";
import { runCli } from "../helpers/cli.js";
import { tempDir } from "../models/fixtures.js";
import { rawGet, startWeb, type WebProcess } from "../web/web-process.js";

const ISOLATION = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
};

function assertIsolated(headers: Record<string, unknown>, what: string): void {
  for (const [k, v] of Object.entries(ISOLATION)) assert.equal(headers[k], v, `${k} on ${what}`);
}

test("the page is built beside the CLI (npm run build builds dist/web)", () => {
  for (const f of [
    "index.html",
    "page.js",
    "worker.js",
    "style.css",
    "ort/ort-wasm-simd-threaded.asyncify.wasm",
  ])
    assert.ok(existsSync(join(PAGE_DIR, f)), `${join(PAGE_DIR, f)} is missing: run npm run build`);
});

test("the page's bundles import nothing from Node", () => {
  for (const name of ["page.js", "worker.js"]) {
    const path = join(PAGE_DIR, name);
    assert.ok(existsSync(path), `${path} is missing: run npm run build`);
    const text = readFileSync(path, "utf8");
    const m = text.match(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["']node:[\w/]+["']/);
    assert.equal(m, null, `${name}: ${m?.[0]}`);
    assert.doesNotMatch(text, /onnxruntime-node/, name);
  }
});

let web: WebProcess;
before(async () => {
  web = await startWeb();
});
after(async () => {
  await web?.stop();
});

test("--port 0: one line `listening on http://127.0.0.1:PORT` and nothing else on stdout", () => {
  assert.match(web.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(web.url, "http://127.0.0.1:0");
  assert.equal(web.stdout(), `listening on ${web.url}\n`);
});

test("the page, the runtime and the model: status, content type and COOP/COEP on each", async () => {
  const cases: [string, RegExp][] = [
    ["/", /^text\/html/],
    ["/index.html", /^text\/html/],
    ["/page.js", /^text\/javascript/],
    ["/worker.js", /^text\/javascript/],
    ["/style.css", /^text\/css/],
    ["/ort/ort-wasm-simd-threaded.asyncify.mjs", /^text\/javascript/],
    ["/ort/ort-wasm-simd-threaded.asyncify.wasm", /^application\/wasm$/],
    ["/models/default/config.json", /^application\/json/],
    ["/models/default/tokenizer.json", /^application\/json/],
    ["/models/default/model.safetensors", /^application\/octet-stream$/],
    ["/models/default/data/persona.jsonl", /^text\/plain/],
    ["/models/default/data/persona-heldout.jsonl", /^text\/plain/],
  ];
  for (const [path, type] of cases) {
    const r = await rawGet(web.url, path);
    assert.equal(r.status, 200, path);
    assert.match(String(r.headers["content-type"]), type, path);
    assertIsolated(r.headers, path);
  }
  const weights = await rawGet(web.url, "/models/default/model.safetensors");
  assert.equal(weights.bytes, readFileSync(join(DEFAULT_MODEL_DIR, "model.safetensors")).length);
  const page = await fetch(`${web.url}/`);
  assert.match(await page.text(), /<script type="module" src="page\.js"><\/script>/);
});

test("paths outside the roots are refused (403/404) and still carry COOP/COEP", async () => {
  for (const path of [
    "/../package.json",
    "/%2e%2e/package.json",
    "/%2E%2E/%2e%2e/package.json",
    "/..%2fpackage.json",
    "/ort/../../package.json",
    "/ort/%2e%2e/%2e%2e/src/cli/web.js",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/..\\package.json",
    "/ort%5c..%5c..%5cpackage.json",
    "/models/default/../../package.json",
    "/models/default/%2e%2e/%2e%2e/package.json",
    "/models/default/README.md",
    "/models/default/report.html",
    "/models/default/data",
    "/ort",
    "/no-such-file.js",
    "/%zz",
  ]) {
    const r = await rawGet(web.url, path);
    assert.ok([400, 403, 404].includes(r.status), `${path}: ${r.status}`);
    assertIsolated(r.headers, path);
  }
  assert.equal((await rawGet(web.url, "/%2e%2e/package.json")).status, 403);
  assert.equal((await rawGet(web.url, "/no-such-file.js")).status, 404);
});

test("SIGTERM closes the server and exits 0", async () => {
  const w = await startWeb();
  assert.equal(await w.stop(), 0);
});

test("bad flags: one line naming the flag, exit 1", () => {
  for (const [args, pattern] of [
    [["--port", "abc"], /^error: --port: expected an integer >= 0, got "abc"\n$/],
    [["--port", "70000"], /^error: --port: expected an integer <= 65535, got "70000"\n$/],
    [["--port", "-1"], /^error: --port: expected an integer >= 0, got "-1"\n$/],
    [["--model", "/no/such/model"], /^error: --model: \/no\/such\/model: no such directory\n$/],
    [["--bogus"], /^error: unknown option '--bogus'.*\n$/],
  ] as [string[], RegExp][]) {
    const r = runCli(["web", ...args]);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(" "));
    assert.equal(r.stderr.split("\n").length, 2, `one line: ${r.stderr}`);
    assert.equal(r.stdout, "");
  }
});

test("the server as a library: a missing page is one line naming its folder", async () => {
  const missing = join(tempDir("lora-ts-web-"), "web");
  await assert.rejects(
    startWebServer({ pageDir: missing, modelDir: DEFAULT_MODEL_DIR, host: "127.0.0.1", port: 0 }),
    (e: unknown) =>
      e instanceof LoraTsError &&
      e.message.includes(missing) &&
      !e.message.includes("\n") &&
      /npm run build/.test(e.message),
  );
});

test("a symlink out of the page folder is refused; a model folder's links (a hub snapshot) are followed", async () => {
  const root = tempDir("lora-ts-web-");
  const pageDir = join(root, "page");
  mkdirSync(join(pageDir, "sub"), { recursive: true });
  writeFileSync(join(pageDir, "index.html"), "<!doctype html><title>t</title>");
  writeFileSync(join(pageDir, "sub", "ok.js"), "export {};");
  writeFileSync(join(root, "secret.txt"), "secret");
  symlinkSync(join(root, "secret.txt"), join(pageDir, "leak.txt"));
  symlinkSync(root, join(pageDir, "up"));
  symlinkSync(join(pageDir, "sub", "ok.js"), join(pageDir, "inside.js"));
  // A hub snapshot: the folder's files are links into blobs/.
  const blobs = join(root, "blobs");
  const snapshot = join(root, "snapshots", "abc");
  mkdirSync(blobs, { recursive: true });
  mkdirSync(snapshot, { recursive: true });
  writeFileSync(join(blobs, "1"), '{"model_type":"llama"}');
  writeFileSync(join(blobs, "2"), "weights");
  writeFileSync(join(blobs, "3"), "readme");
  symlinkSync(join(blobs, "1"), join(snapshot, "config.json"));
  symlinkSync(join(blobs, "2"), join(snapshot, "model.safetensors"));
  symlinkSync(join(blobs, "3"), join(snapshot, "README.md"));
  let server: RunningWebServer | null = null;
  try {
    server = await startWebServer({ pageDir, modelDir: snapshot, host: "127.0.0.1", port: 0 });
    const status = async (p: string) => (await rawGet(server!.url, p)).status;
    assert.equal(await status("/"), 200);
    assert.equal(await status("/sub/ok.js"), 200);
    assert.equal(await status("/inside.js"), 200);
    assert.equal(await status("/leak.txt"), 403);
    assert.equal(await status("/up/secret.txt"), 403);
    assert.equal(await status("/sub"), 404);
    assert.equal(await status("/models/default/config.json"), 200);
    assert.equal(await status("/models/default/model.safetensors"), 200);
    assert.equal(await status("/models/default/README.md"), 404);
  } finally {
    await server?.close();
  }
  assert.ok(existsSync(dirname(pageDir)));
});
