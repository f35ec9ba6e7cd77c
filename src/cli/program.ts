/**
 * The `lora-ts` command. Each subcommand lives in its own file under src/cli/ and registers itself
 * here. User-facing failures (LoraTsError) print one line, `error: <message>`, and exit 1 — never a
 * stack trace; anything else is a bug and keeps its stack.
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { LoraTsError } from "../util/errors.js";
import { registerAdapterCommands } from "./adapters.js";
import { registerAnalyze } from "./analyze.js";
import { registerConvert } from "./convert.js";
import { registerDemo } from "./demo.js";
import { registerDownload } from "./download.js";
import { registerExport } from "./export.js";
import { registerGenerate } from "./generate.js";
import { registerInfo } from "./info.js";
import { registerServe } from "./serve.js";
import { registerSweep } from "./sweep.js";
import { registerTrain } from "./train.js";
import { registerWeb } from "./web.js";
import { registerWorker } from "./worker.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export function buildCli(): Command {
  const program = new Command("lora-ts")
    .description("LoRA fine-tuning of pretrained transformer language models, on onnxruntime")
    .version(pkg.version);
  registerConvert(program);
  registerGenerate(program);
  registerInfo(program);
  registerAdapterCommands(program);
  registerAnalyze(program);
  registerTrain(program);
  registerDemo(program);
  registerDownload(program);
  registerExport(program);
  registerServe(program);
  registerSweep(program);
  registerWorker(program);
  registerWeb(program);
  oneLineErrors(program, "lora-ts");
  return program;
}

/**
 * The argument parser's errors as one line, like every other error, pointing to the command's help
 * instead of printing all of it (commander writes the error, then a "Did you mean" hint on a line of
 * its own).
 */
function oneLineErrors(command: Command, path: string): void {
  command.configureOutput({
    outputError: (text, write) => {
      const line = text
        .trim()
        .split("\n")
        .map((part) => part.trim())
        .filter((part) => part.length > 0)
        .join(" ");
      write(`${line} (see: ${path} --help)\n`);
    },
  });
  for (const sub of command.commands) oneLineErrors(sub, `${path} ${sub.name()}`);
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildCli().parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof LoraTsError) {
      process.stderr.write(`error: ${e.message}\n`);
      return 1;
    }
    // A file-system error that escaped a reader still names its file: one line, not a stack trace.
    const fsError = e as NodeJS.ErrnoException;
    if (typeof fsError.code === "string" && typeof fsError.path === "string") {
      process.stderr.write(`error: ${fsError.path}: ${fsError.message.split("\n")[0]}\n`);
      return 1;
    }
    throw e;
  }
}
