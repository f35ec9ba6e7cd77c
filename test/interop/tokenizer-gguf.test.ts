/**
 * The tokenizer written into an exported GGUF (tokenizer.ggml.*), checked by llama.cpp's own
 * tokenizer (node-llama-cpp): it gives the ids lora-ts gives, on the default model's data (GPT-2
 * byte-level BPE) and on llama.cpp's tokenizer test vectors after a round trip through lora-ts
 * (vocab GGUF -> tokenizer.json -> exported GGUF), for Llama SentencePiece and GPT-2 BPE.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Tokenizer } from "../../src/data/tokenizer.js";
import { readTokenizer } from "../../src/data/tokenizer-files.js";
import { GgufFile } from "../../src/io/gguf.js";
import { tokenizerFromGguf } from "../../src/io/tokenizer-json.js";
import { parseModelConfig } from "../../src/models/family.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { runCli } from "../helpers/cli.js";
import { needsShared, REPO_ROOT, sharedPath } from "../helpers/shared.js";
import { llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";
import { LLAMA_CPP, llamaTokenize } from "./llama-cpp.js";

const DEFAULT_MODEL = join(REPO_ROOT, "models/default");

function exportGguf(model: string): string {
  const out = join(tempDir("lora-ts-interop-tok-"), "model.gguf");
  const r = runCli(["export", "gguf", "--model", model, "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

/** llama.cpp's tests/test-tokenizer-0 files: texts split on the separator lines, ids one line each. */
function readVectors(vocab: string): { text: string; ids: number[] }[] {
  const inp = readFileSync(`${vocab}.inp`, "utf8");
  const texts = inp.split("\n__ggml_vocab_test__\n");
  if (texts.at(-1) === "") texts.pop();
  const lines = readFileSync(`${vocab}.out`, "utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  assert.equal(texts.length, lines.length);
  return texts.map((text, i) => {
    const o = lines[i]!.trim();
    return { text, ids: o === "" ? [] : o.split(" ").map(Number) };
  });
}

test("default model's data: llama.cpp tokenizes the exported GGUF as lora-ts does", {
  skip: LLAMA_CPP,
}, async () => {
  const tok = readTokenizer(DEFAULT_MODEL);
  const texts: string[] = [];
  for (const f of ["persona.jsonl", "persona-heldout.jsonl"]) {
    for (const line of readFileSync(join(DEFAULT_MODEL, "data", f), "utf8")
      .trim()
      .split("\n")) {
      const row = JSON.parse(line) as { prompt: string; completion: string };
      texts.push(row.prompt, row.completion, row.prompt + row.completion);
    }
  }
  texts.push("Once upon a time,  there were 3 cats!\n\n  Tabs\tand   spaces… naïve café 123456 don't we'll");
  const got = await llamaTokenize(exportGguf(DEFAULT_MODEL), texts);
  const bad = texts.filter(
    (t, i) => JSON.stringify(got[i]) !== JSON.stringify(tok.encode(t, { addBos: false })),
  );
  assert.deepEqual(bad, []);
  assert.ok(texts.length > 50);
});

for (const vocab of ["ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"]) {
  const file = `tokenizer-vectors/${vocab}`;
  test(`${vocab} vectors: lora-ts's tokenizer.json exported back to GGUF tokenizes in llama.cpp as the vectors say`, {
    skip: LLAMA_CPP || needsShared(file, `${file}.inp`, `${file}.out`),
  }, async () => {
    const { tokenizer, config } = tokenizerFromGguf(GgufFile.open(sharedPath(file)));
    const tok = Tokenizer.fromJSON(tokenizer, config);
    // A tiny random Llama with this vocabulary: only the tokenizer matters here.
    const cfg = llamaConfig({
      vocab_size: tok.vocabSize,
      hidden_size: 16,
      intermediate_size: 16,
      num_hidden_layers: 1,
    });
    const dir = writeModelDir(
      tempDir(),
      cfg,
      randomWeights(llamaTensorShapes(parseModelConfig(cfg, "config.json")), 1),
    );
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config));
    const vectors = readVectors(sharedPath(file));
    const got = await llamaTokenize(
      exportGguf(dir),
      vectors.map((v) => v.text),
    );
    const bad = vectors
      .map((v, i) => ({
        text: v.text,
        want: v.ids,
        got: got[i],
        lora: tok.encode(v.text, { addBos: false }),
      }))
      .filter(
        (r) =>
          JSON.stringify(r.got) !== JSON.stringify(r.want) ||
          JSON.stringify(r.lora) !== JSON.stringify(r.want),
      );
    assert.deepEqual(bad, []);
    assert.equal(vectors.length, 46);
  });
}
