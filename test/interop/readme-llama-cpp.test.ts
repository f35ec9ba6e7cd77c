/**
 * The README's "Use your adapter in llama.cpp / Ollama" commands, run as written (with `npx lora-ts`
 * being the binary built beside these tests) in a folder holding `my-adapter`; then llama.cpp
 * (node-llama-cpp, standing in for `llama-cli -m model.gguf --lora adapter.gguf`) checks that the base
 * with the adapter gives the same greedy ids as the merged export, and the Modelfile --ollama writes is
 * the README's and names files that exist.
 */
import assert from "node:assert/strict";
import { cpSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/shared.js";
import { tempDir } from "../models/fixtures.js";
import { randomAdapter } from "./fixtures.js";
import { LLAMA_CPP, llamaGreedy } from "./llama-cpp.js";

/** The README's section "Use your adapter in llama.cpp / Ollama", read from the README itself. */
const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const SECTION = README.slice(README.indexOf("## Use your adapter in llama.cpp / Ollama"));
const BLOCKS = [...SECTION.slice(0, SECTION.indexOf("\n## ", 3)).matchAll(/```(\w*)\n([\s\S]*?)```/g)];
/** Its shell commands, as written. */
const README_COMMANDS = BLOCKS.filter((b) => b[1] === "sh").flatMap((b) =>
  b[2]!.split("\n").filter((line) => line.startsWith("npx lora-ts ")),
);
/** The Modelfile it shows `--ollama` writing. */
const MODELFILE = BLOCKS.find((b) => b[1] === "" && b[2]!.startsWith("FROM "))?.[2] ?? "(no Modelfile block)";

test("README: llama.cpp / Ollama commands run as written; base + adapter in llama.cpp = the merged export", {
  skip: LLAMA_CPP,
}, async () => {
  const cwd = tempDir("lora-ts-readme-gguf-");
  cpSync(join(REPO_ROOT, "models/default"), join(cwd, "models/default"), { recursive: true });
  const made = randomAdapter(join(cwd, "models/default"), {
    targets: "all-linear",
    r: 8,
    alpha: 16,
    seed: 9,
    bScale: 0.02,
  });
  cpSync(made, join(cwd, "my-adapter"), { recursive: true });
  const at = (p: string) => join(cwd, p);
  assert.equal(README_COMMANDS.length, 3, "the README section's three export commands");
  for (const line of README_COMMANDS) {
    const args = line.split(" ").slice(2); // drop "npx lora-ts"
    // Paths in the commands are relative to the folder the reader runs them in.
    const abs = args.map((a, i) =>
      ["--model", "--adapter", "--out", "--ollama"].includes(args[i - 1] ?? "") ? at(a) : a,
    );
    const r = runCli(abs);
    assert.equal(r.code, 0, `${line}: ${r.stderr}`);
  }
  assert.equal(readFileSync(at("Modelfile"), "utf8"), MODELFILE);
  for (const m of readFileSync(at("Modelfile"), "utf8").matchAll(/^(?:FROM|ADAPTER) (\S+)$/gm)) {
    assert.ok(existsSync(at(m[1]!)), m[1]);
  }
  // merged.gguf is q8_0: compare it with an f32 merge of the same adapter for exactness instead.
  const mergedF32 = at("merged-f32.gguf");
  assert.equal(
    runCli([
      "export",
      "gguf",
      "--model",
      at("models/default"),
      "--adapter",
      at("my-adapter"),
      "--out",
      mergedF32,
    ]).code,
    0,
  );
  const prompt = [0, 100, 200];
  const withAdapter = await llamaGreedy(at("model.gguf"), prompt, 64, [
    { filePath: at("adapter.gguf"), scale: 1 },
  ]);
  assert.deepEqual(withAdapter, await llamaGreedy(mergedF32, prompt, 64));
  assert.notDeepEqual(withAdapter, await llamaGreedy(at("model.gguf"), prompt, 64));
  assert.equal((await llamaGreedy(at("merged.gguf"), prompt, 8)).length, 8);
});
