/**
 * Fuzz targets for the command line (src/cli): the option parsers of parse.ts; train's config file
 * (YAML or JSON, train-config.ts: readConfigFile, flagsToConfig, toTrainOptions); and whole command
 * lines run in-process through buildCli() with commander's exit turned into an exception.
 *
 * Whole command lines are built from each command's real options (read from buildCli, so new flags
 * are fuzzed too) with odd values. Paths only ever come from fixed pools inside a scratch folder
 * (a missing model, an empty folder, a garbage file; the tiny model only for `info`), the hub is
 * offline, and `demo` and `download` are left out: no input can train a model, reach the network or
 * write outside the scratch folder.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import fc from "fast-check";
import YAML from "yaml";
import { chooseAdapter, parseAdapterSpecs, parseIds, parseNumber } from "../../src/cli/parse.js";
import { flagsToConfig, readConfigFile, targetFlag, toTrainOptions } from "../../src/cli/train-config.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";
import type { FuzzTarget } from "./harness.js";
import { InputFile } from "./input-file.js";
import { interestingJson, mutatedBytes } from "./mutate.js";

const scratch = tempDir("lora-ts-fuzz-cli-");
// Nothing may reach the network or the user's caches.
process.env["HF_HUB_OFFLINE"] = "1";
process.env["HF_HOME"] = join(scratch, "hf");
process.env["LORA_TS_CACHE"] = join(scratch, "cache");

/** Numbers as users (and typos) write them. */
const NUMBERISH = [
  "0",
  "1",
  "2",
  "8",
  "-1",
  "-0",
  "0.5",
  "1e-4",
  "1e309",
  "-1e309",
  "NaN",
  "Infinity",
  "0x10",
  "0b11",
  "1_000",
  "2147483648",
  "9007199254740993",
  " 3 ",
  "3\n",
  "",
  " ",
  "1,2",
  "1,,2",
  ",",
  "1.5,2",
  "a\nb",
  "\r",
];
const text = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NUMBERISH) },
  { weight: 2, arbitrary: fc.string({ maxLength: 10 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 10 }) },
);

// ---------------------------------------------------------------------------------------------
// parse.ts

type ParserCall =
  | { kind: "ids"; text: string }
  | { kind: "number"; text: string; integer: boolean; min?: number }
  | { kind: "adapters"; values: string[]; use?: string }
  | { kind: "target"; text: string };

export const optionParsers: FuzzTarget<ParserCall> = {
  name: "CLI: option parsers",
  covers:
    "parseIds, parseNumber (integer/min), parseAdapterSpecs + chooseAdapter, targetFlag; odd numbers and strings",
  arbitrary: fc.oneof(
    fc.record({ kind: fc.constant("ids" as const), text }),
    fc.record(
      {
        kind: fc.constant("number" as const),
        text,
        integer: fc.boolean(),
        min: fc.constantFrom(0, 1, -1, 0.5),
      },
      { requiredKeys: ["kind", "text", "integer"] },
    ),
    fc.record(
      {
        kind: fc.constant("adapters" as const),
        values: fc.array(fc.oneof(text, fc.constantFrom("a=/x", "=x", "a=", "default=/y", "none")), {
          maxLength: 4,
        }),
        use: fc.oneof(text, fc.constantFrom("default", "none", "a")),
      },
      { requiredKeys: ["kind", "values"] },
    ),
    fc.record({ kind: fc.constant("target" as const), text }),
  ),
  run: (c) => {
    switch (c.kind) {
      case "ids":
        return parseIds("--ids", c.text);
      case "number":
        return parseNumber("--n", c.text, {
          integer: c.integer,
          ...(c.min === undefined ? {} : { min: c.min }),
        });
      case "adapters":
        return chooseAdapter(parseAdapterSpecs(c.values), c.use);
      case "target":
        return targetFlag(c.text);
    }
  },
  size: (c) => JSON.stringify(c).length,
};

// ---------------------------------------------------------------------------------------------
// train's config file

const CONFIG_SEEDS: Record<string, unknown>[] = [
  {
    model: "/nonexistent/model",
    data: "/nonexistent/data.jsonl",
    out: join(scratch, "train-out"),
    r: 8,
    alpha: 16,
    dropout: 0.05,
    target: ["q_proj", "v_proj"],
    lr: 0.0002,
    epochs: 1,
    batch_size: 4,
    grad_accum: 1,
    max_length: 128,
    seed: 0,
    schedule: "cosine",
    warmup_steps: 10,
    bias: "none",
  },
  {
    model: "m",
    data: "d.txt",
    out: "o",
    mode: "full",
    max_steps: 10,
    val_fraction: 0.1,
    target: "all-linear",
    init: "gaussian",
  },
];
const configFiles = [".yaml", ".yml", ".json"].map((ext) => new InputFile(join(scratch, `train${ext}`)));
const loraConfigPath = join(scratch, "adapter_config.json");
writeFileSync(loraConfigPath, JSON.stringify({ r: 4, lora_alpha: 8, target_modules: ["q_proj"] }));

/** A config object with one field changed to an odd value (or one key added). */
const mutatedConfig = fc
  .record({
    seed: fc.nat(CONFIG_SEEDS.length - 1),
    key: fc.oneof(
      fc.constantFrom(
        ...new Set(CONFIG_SEEDS.flatMap((c) => Object.keys(c))),
        "lora_config",
        "unknown_key",
        "a\nb",
        "__proto__",
      ),
    ),
    value: fc.oneof(interestingJson, fc.constantFrom(...NUMBERISH)),
  })
  .map(({ seed, key, value }) => {
    const c = structuredClone(CONFIG_SEEDS[seed]!);
    Object.defineProperty(c, key, { value, enumerable: true, writable: true, configurable: true });
    return c;
  });

interface ConfigInput {
  file: number;
  text: string;
  flags: Record<string, unknown>;
}

/** commander's flag values: strings, booleans, lists, as `train` receives them. */
const flags = fc.dictionary(
  fc.constantFrom(
    "model",
    "data",
    "r",
    "alpha",
    "maxSteps",
    "batchSize",
    "target",
    "saveTotalLimit",
    "force",
    "valFraction",
    "bogusFlag",
  ),
  fc.oneof(text, fc.boolean(), fc.array(text, { maxLength: 2 })),
  { maxKeys: 4 },
);

export const trainConfig: FuzzTarget<ConfigInput> = {
  name: "CLI: train config file (YAML/JSON) and flags",
  covers:
    "readConfigFile (.yaml/.yml/.json) + flagsToConfig + toTrainOptions, merged as `train` merges them; configs with odd values, serialised or byte-mutated",
  arbitrary: fc.record({
    file: fc.nat(configFiles.length - 1),
    text: fc.oneof(
      { weight: 4, arbitrary: mutatedConfig.map((c) => YAML.stringify(c)) },
      { weight: 2, arbitrary: mutatedConfig.map((c) => JSON.stringify(c)) },
      {
        weight: 2,
        arbitrary: mutatedBytes(
          CONFIG_SEEDS.flatMap((c) => [YAML.stringify(c), JSON.stringify(c)]).map((s) =>
            new TextEncoder().encode(s),
          ),
        ).map((b) => Buffer.from(b).toString("utf8")),
      },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          "a: &a [*a]",
          "a: !!binary AAAA",
          "<<: *x",
          "? [a]\n: b",
          "a: 1\na: 2",
          "- 1\n- 2",
          "~",
          "",
        ),
      },
    ),
    flags,
  }),
  run: ({ file, text, flags }) => {
    const fromFile = readConfigFile(configFiles[file]!.write(text));
    // lora_config names a file: only the fixture may be read (a fuzzed path could be /dev/zero).
    if (fromFile.lora_config !== undefined) fromFile.lora_config = loraConfigPath;
    toTrainOptions({ ...fromFile, ...flagsToConfig(flags) });
  },
  size: (i) => i.text.length + JSON.stringify(i.flags).length,
};

// ---------------------------------------------------------------------------------------------
// Whole command lines, in-process

/** Commands fuzzed as whole command lines: all but those that train (demo) or go online (download). */
const COMMANDS = [
  "convert llama2c",
  "convert gguf",
  "generate",
  "logits",
  "info",
  "merge",
  "combine",
  "train",
  "eval",
  "export gguf",
  "export gguf-adapter",
];

const missing = join(scratch, "missing");
const emptyDir = join(scratch, "empty");
mkdirSync(emptyDir);
const garbage = join(scratch, "garbage.bin");
writeFileSync(garbage, "not a model\n");
const data = join(scratch, "data.jsonl");
writeFileSync(data, '{"text": "Once upon a time"}\n');
const yamlConfig = join(scratch, "config.yaml");
writeFileSync(yamlConfig, YAML.stringify({ model: missing, data, out: join(scratch, "out-config"), r: 4 }));
const tiny = tinyModel("llama", 1);

/** Where each path-valued flag may point (never anywhere a fuzzed string chooses). */
function paths(flag: string, command: string): string[] {
  switch (flag) {
    case "--model":
      // Only `info` gets a real model: it reads it without running it.
      return command === "info" ? [missing, emptyDir, garbage, tiny] : [missing, emptyDir, garbage];
    case "--adapter":
      return [missing, emptyDir, `a=${missing}`, `b=${emptyDir}`, "=x"];
    case "--out":
      return [join(scratch, "out"), join(scratch, "out", "nested"), emptyDir, tiny];
    case "--data":
    case "--val-data":
      return [missing, data, garbage];
    case "--config":
      return [missing, yamlConfig, garbage];
    case "--lora-config":
      return [missing, loraConfigPath, garbage];
    case "--tokenizer":
      return [missing, garbage];
    default:
      return [];
  }
}

interface OptionSpec {
  flag: string;
  takesValue: boolean;
}

/** The commands' options, as buildCli() declares them. */
async function commandSpecs(): Promise<{ path: string[]; options: OptionSpec[] }[]> {
  const { buildCli } = await import("../../src/cli/program.js");
  const program = buildCli();
  return COMMANDS.map((name) => {
    const path = name.split(" ");
    let c: Command | undefined = program;
    for (const part of path) c = c?.commands.find((s) => s.name() === part);
    if (!c) throw new Error(`fuzz: no command ${name}`);
    const options = c.options
      .filter((o) => o.long !== undefined)
      .map((o) => ({ flag: o.long!, takesValue: o.required || o.optional }));
    return { path, options };
  });
}

const SPECS = await commandSpecs();

/** A value that cannot be taken for a flag: commander would read "--out" as the next option. */
const optionValue = text.filter((s) => !s.startsWith("-") || /^-[\d.]/.test(s));

function argvFor(spec: { path: string[]; options: OptionSpec[] }): fc.Arbitrary<string[]> {
  const command = spec.path.join(" ");
  const option = fc.constantFrom(...spec.options).chain((o): fc.Arbitrary<string[]> => {
    if (!o.takesValue) return fc.constant([o.flag]);
    const pool = paths(o.flag, command);
    return (pool.length > 0 ? fc.constantFrom(...pool) : optionValue).map((v) => [o.flag, v]);
  });
  const stray = fc.oneof(
    // Not a bare path flag: it would take the next, fuzzed, token as its path.
    fc.constantFrom(["--nope"], ["-x"], ["--"], ["extra"], ["--help"], ["--json"]),
    optionValue.filter((s) => !s.startsWith("-")).map((s) => [s]),
  );
  return fc
    .array(fc.oneof({ weight: 8, arbitrary: option }, { weight: 1, arbitrary: stray }), { maxLength: 8 })
    .map((parts) => [...spec.path, ...parts.flat()]);
}

/** Turns commander's process.exit into a CommanderError and collects what it writes. */
function quiet(c: Command, err: string[]): void {
  c.exitOverride();
  c.configureOutput({ writeOut: () => {}, writeErr: (s) => err.push(s) });
  for (const sub of c.commands) quiet(sub, err);
}

/** The text commander printed for the last CLI input (its error line, when it threw). */
let commanderOutput: string[] = [];

async function runCli(argv: string[]): Promise<void> {
  const { buildCli } = await import("../../src/cli/program.js");
  const program = buildCli();
  commanderOutput = [];
  quiet(program, commanderOutput);
  // The commands print results and warnings; the test runner's own messages (Buffers) go through.
  const out = process.stdout.write;
  const err = process.stderr.write;
  const swallow = (write: typeof out) =>
    ((chunk: unknown, ...rest: unknown[]) =>
      typeof chunk === "string"
        ? true
        : (write as (...a: unknown[]) => boolean)(chunk, ...rest)) as typeof out;
  process.stdout.write = swallow(out.bind(process.stdout));
  process.stderr.write = swallow(err.bind(process.stderr));
  try {
    await program.parseAsync(argv, { from: "user" });
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

export const commandLines: FuzzTarget<string[]> = {
  name: "CLI: whole command lines",
  covers:
    "buildCli().parseAsync in-process for convert, generate, logits, info, merge, combine, train, eval and export: every declared option with odd values, stray arguments, --help",
  arbitrary: fc.oneof(...SPECS.map(argvFor)),
  run: runCli,
  size: (argv) => argv.join(" ").length,
  // commander's own errors (unknown option, missing argument) are one line by program.ts's
  // outputError, and --help / --version end with a CommanderError too.
  accept: (e) => {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string" || !code.startsWith("commander.")) return `crash: ${describe(e)}`;
    const printed = commanderOutput.join("");
    if (code === "commander.helpDisplayed" || code === "commander.version" || code === "commander.help")
      return undefined;
    return /[\r\n]./.test(printed.trimEnd())
      ? `multi-line argument error: ${JSON.stringify(printed)}`
      : undefined;
  },
};

function describe(e: unknown): string {
  return e instanceof Error ? `${e.constructor.name}: ${e.message.split(/\r?\n/)[0]}` : String(e);
}

export const targets = [optionParsers, trainConfig, commandLines];
