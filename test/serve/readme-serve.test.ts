/**
 * The README's Serve section runs as written: its two `train` commands, its `serve` command (on a
 * free port), its curl command (through curl when the machine has it, else the same request parsed
 * from the block and sent with fetch) and its openai-client example.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { BIN, runCli } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/shared.js";
import { type ServerProcess, startServe } from "./server.js";

const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const section = README.slice(
  README.indexOf("### Serve"),
  README.indexOf("\n## ", README.indexOf("### Serve")),
);
const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, code: m[2]! }));
const work = mkdtempSync(join(tmpdir(), "lora-ts-readme-serve-"));
let server: ServerProcess | undefined;

after(async () => {
  if (server) await server.stop();
  rmSync(work, { recursive: true, force: true });
});

/** The block's shell lines, continuation backslashes joined. */
const commands = (code: string) =>
  code
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .filter((l) => l.trim() !== "");

/** A `npx lora-ts ...` line as arguments (the README's lines use no quoting). */
const cliArgs = (line: string) => {
  assert.ok(line.startsWith("npx lora-ts "), line);
  assert.doesNotMatch(line, /["'\\]/, "lora-ts lines are plain words");
  return line.slice("npx lora-ts ".length).split(/\s+/);
};

function curlRequest(line: string): { url: string; headers: Record<string, string>; body: string } {
  const url = /^curl (\S+)/.exec(line)![1]!;
  const headers: Record<string, string> = {};
  for (const m of line.matchAll(/-H "([^:]+): ([^"]*)"/g)) headers[m[1]!] = m[2]!;
  const body = /-d '([^']*)'/.exec(line)![1]!;
  return { url, headers, body };
}

test("README Serve: train two adapters, serve them, and the curl and openai-client examples answer", async () => {
  assert.deepEqual(
    blocks.map((b) => b.lang),
    ["sh", "sh", "js"],
  );
  // The commands use models/default relative to the repository root: run them in a scratch folder
  // that links it, so the adapters they write land there.
  symlinkSync(join(REPO_ROOT, "models"), join(work, "models"));
  const setup = commands(blocks[0]!.code);
  const serveLine = setup.find((l) => l.includes(" serve "))!;
  for (const line of setup.filter((l) => l !== serveLine)) {
    const args = cliArgs(line);
    assert.equal(args[0], "train");
    const r = spawnSync(process.execPath, [BIN, ...args, "--no-progress", "--no-report"], {
      cwd: work,
      encoding: "utf8",
    });
    assert.equal(r.status, 0, `${line}: ${r.stderr}`);
  }
  const serveArgs = cliArgs(serveLine);
  assert.equal(serveArgs[0], "serve");
  server = await startServe(serveArgs.slice(1), {}, work);
  const port = new URL(server.url).port;

  // curl, as written, against the real port.
  const curlLine = commands(blocks[1]!.code)[0]!;
  assert.ok(curlLine?.startsWith("curl http://127.0.0.1:8000/"), curlLine);
  const line = curlLine.replaceAll("127.0.0.1:8000", `127.0.0.1:${port}`);
  const hasCurl = spawnSync("curl", ["--version"]).status === 0;
  let answer: { model: string; object: string; choices: { text: string; finish_reason: string }[] };
  if (hasCurl) {
    const r = spawnSync("bash", ["-c", line], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    answer = JSON.parse(r.stdout);
  } else {
    const req = curlRequest(line);
    const r = await fetch(req.url, { method: "POST", headers: req.headers, body: req.body });
    assert.equal(r.status, 200);
    answer = (await r.json()) as typeof answer;
  }
  assert.equal(answer.object, "text_completion");
  const req = JSON.parse(curlRequest(curlLine).body) as { model: string; prompt: string; max_tokens: number };
  assert.equal(answer.model, req.model);
  // The same as `lora-ts generate` with that adapter (greedy).
  const g = runCli([
    "generate",
    "--model",
    join(work, "models/default"),
    "--adapter",
    join(work, req.model),
    "--prompt",
    req.prompt,
    "--max-new-tokens",
    String(req.max_tokens),
    "--json",
  ]);
  assert.equal(g.code, 0, g.stderr);
  assert.equal(answer.choices[0]!.text, (JSON.parse(g.stdout) as { text: string }).text);
  assert.ok(answer.choices[0]!.text.length > 0);

  // The openai-client example, beside this compiled test so that `openai` resolves.
  const file = join(dirname(fileURLToPath(import.meta.url)), "readme-serve-example.mjs");
  writeFileSync(file, blocks[2]!.code.replaceAll("127.0.0.1:8000", `127.0.0.1:${port}`));
  try {
    const r = spawnSync(process.execPath, [file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const [chatLine, streamed] = r.stdout.split("\n");
    assert.ok(chatLine!.length > 0, r.stdout);
    assert.ok(streamed!.length > 0, r.stdout);
  } finally {
    rmSync(file, { force: true });
  }
});
