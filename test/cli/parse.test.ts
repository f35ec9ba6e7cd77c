/** The command line's option parsers (cli/parse.ts) and train's config file (cli/train-config.ts). */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { chooseAdapter, parseAdapterSpecs, parseIds, parseNumber } from "../../src/cli/parse.js";
import { readConfigFile } from "../../src/cli/train-config.js";
import { LoraTsError } from "../../src/util/errors.js";

const tmp = mkdtempSync(join(tmpdir(), "lora-ts-parse-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** `fn` throws a LoraTsError whose message is exactly `message` (and so on one line). */
function failsWith(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => e instanceof LoraTsError && e.message === message);
}

test("parseIds, parseNumber, parseAdapterSpecs and chooseAdapter accept their forms", () => {
  assert.deepEqual(parseIds("--ids", "1, 2,3"), [1, 2, 3]);
  assert.equal(parseNumber("--lr", "2e-4", { min: 0 }), 2e-4);
  assert.equal(parseNumber("--seed", "7", { integer: true }), 7);
  const specs = parseAdapterSpecs(["/a", "b=/x"]);
  assert.deepEqual(specs, [
    { name: "default", dir: "/a" },
    { name: "b", dir: "/x" },
  ]);
  assert.equal(chooseAdapter(specs, "b"), "b");
  assert.equal(chooseAdapter(specs, "none"), null);
});

test("fuzz regression: a value with a line break is quoted, so the message stays on one line", () => {
  // Before: every one of these put the value in raw.
  failsWith(() => parseIds("--ids", "1\n2"), '--ids: expected comma-separated token ids, got "1\\n2"');
  failsWith(() => parseNumber("--lr", "\r", { min: 0 }), '--lr: expected a number >= 0, got "\\r"');
  failsWith(
    () => parseAdapterSpecs(["a\nb=/x", "a\nb=/y"]),
    '--adapter: the name "a\\nb" is given twice (use name=DIR for several adapters)',
  );
  failsWith(
    () => chooseAdapter(parseAdapterSpecs(["a=/x", "b\rc=/y"]), "3\n"),
    '--use "3\\n": no such adapter (loaded: a, "b\\rc")',
  );
  failsWith(
    () => chooseAdapter(parseAdapterSpecs(["a=/x", "b\rc=/y"]), undefined),
    'several adapters are loaded (a, "b\\rc"): choose one with --use',
  );
});

test("fuzz regression: an unknown key in train's config file is quoted on one line", () => {
  // Before: "<file>: a\nb: Unrecognized key: "a\nb"", the key raw twice.
  const p = join(tmp, "train.yaml");
  writeFileSync(p, 'r: 8\n"a\\nb": 1\n');
  failsWith(() => readConfigFile(p), `${p}: unknown key "a\\nb"`);
  writeFileSync(p, "r: 8\nbogus: 1\nother: 2\n");
  failsWith(() => readConfigFile(p), `${p}: unknown keys "bogus", "other"`);
  // Before: V8's JSON error kept a \r of the quoted text.
  const j = join(tmp, "train.json");
  writeFileSync(j, "\u0001\r{");
  assert.throws(
    () => readConfigFile(j),
    (e: unknown) =>
      e instanceof LoraTsError && e.message.startsWith(`${j}: not valid JSON (`) && !/[\r\n]/.test(e.message),
  );
});
