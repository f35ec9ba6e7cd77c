/**
 * `lora-ts serve`: the OpenAI-compatible server (src/serve/). Every flag is checked before the model
 * loads; when ready it prints one line, `listening on http://HOST:PORT`. SIGTERM (or Ctrl-C) drains:
 * new requests get 503, those in flight finish within --shutdown-timeout, then it exits 0.
 */
import type { Command } from "commander";
import { ADAPTER_NAME, AdapterRoot } from "../serve/adapter-root.js";
import { defaultModelName, startServer } from "../serve/server.js";
import { LoraTsError } from "../util/errors.js";
import { collect, parseAdapterSpecs, parseNumber } from "./parse.js";

interface ServeFlags {
  model: string;
  adapter?: string[];
  host: string;
  port: string;
  apiKey?: string;
  adapterRoot?: string;
  maxLoras: string;
  maxLoraRank: string;
  maxBatch: string;
  maxQueue: string;
  servedModelName?: string;
  shutdownTimeout: string;
}

/** The API key from the environment, so that it does not show in `ps` as --api-key does. */
export const API_KEY_ENV = "LORA_TS_API_KEY";

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("serve the model and its adapters over an OpenAI-compatible HTTP API")
    .requiredOption("--model <dir>", "Hugging Face model directory, .gguf file or hub id org/name[@revision]")
    .option(
      "--adapter <name=dir>",
      "adapter loaded at start, name=DIR (repeatable; the name is the request's model)",
      collect,
    )
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--port <port>", "port (0: any free port, printed when ready)", "8000")
    .option(
      "--api-key <key>",
      `require Authorization: Bearer KEY on every endpoint but /health (or set ${API_KEY_ENV})`,
    )
    .option(
      "--adapter-root <dir>",
      "allow POST /v1/load_lora_adapter for adapter folders inside this directory",
    )
    .option("--max-loras <n>", "adapters loaded at once", "8")
    .option("--max-lora-rank <r>", "highest adapter rank accepted", "64")
    .option("--max-batch <n>", "requests decoded together", "16")
    .option("--max-queue <n>", "requests waiting beyond the batch before 429", "256")
    .option(
      "--served-model-name <name>",
      "the base model's name in requests (default: the --model folder's name)",
    )
    .option("--shutdown-timeout <s>", "on SIGTERM, seconds to let running requests finish", "30")
    .action(async (f: ServeFlags) => {
      // Every flag is checked before the model loads.
      const port = parseNumber("--port", f.port, { integer: true, min: 0 });
      if (port > 65535)
        throw new LoraTsError(`--port: expected an integer <= 65535, got ${JSON.stringify(f.port)}`);
      const maxLoras = parseNumber("--max-loras", f.maxLoras, { integer: true, min: 1 });
      const maxLoraRank = parseNumber("--max-lora-rank", f.maxLoraRank, { integer: true, min: 1 });
      const maxBatch = parseNumber("--max-batch", f.maxBatch, { integer: true, min: 1 });
      const maxQueue = parseNumber("--max-queue", f.maxQueue, { integer: true, min: 1 });
      const shutdownTimeout = parseNumber("--shutdown-timeout", f.shutdownTimeout, { min: 0 });
      const adapters = parseAdapterSpecs(f.adapter);
      for (const a of adapters) {
        if (!ADAPTER_NAME.test(a.name))
          throw new LoraTsError(
            `--adapter: the name ${JSON.stringify(a.name)} is not valid (1 to 64 of A-Z a-z 0-9 . _ -; give name=DIR)`,
          );
      }
      if (adapters.length > maxLoras)
        throw new LoraTsError(`--adapter: ${adapters.length} adapters given, --max-loras is ${maxLoras}`);
      const apiKey = f.apiKey ?? process.env[API_KEY_ENV];
      if (apiKey !== undefined && apiKey.trim() === "")
        throw new LoraTsError(
          `--api-key: the key is empty (from ${f.apiKey !== undefined ? "--api-key" : API_KEY_ENV})`,
        );
      const servedModelName = f.servedModelName;
      if (servedModelName !== undefined && servedModelName.trim() === "")
        throw new LoraTsError("--served-model-name: the name is empty");
      const baseName = servedModelName ?? defaultModelName(f.model);
      const clash = adapters.find((a) => a.name === baseName);
      if (clash)
        throw new LoraTsError(
          `--adapter: the name ${JSON.stringify(clash.name)} is the base model's name; choose another or set --served-model-name`,
        );
      let adapterRoot: AdapterRoot | null = null;
      if (f.adapterRoot !== undefined) {
        try {
          adapterRoot = await AdapterRoot.open(f.adapterRoot);
        } catch (e) {
          throw new LoraTsError(
            `--adapter-root: ${JSON.stringify(f.adapterRoot)}: ${(e as Error).message.split("\n")[0]}`,
          );
        }
      }
      const server = await startServer({
        model: f.model,
        adapters,
        host: f.host,
        port,
        apiKey,
        adapterRoot,
        servedModelName,
        maxLoras,
        maxLoraRank,
        maxBatch,
        maxQueue,
      });
      process.stdout.write(`listening on ${server.url}\n`);
      await new Promise<void>((resolve) => {
        let signalled = false;
        const stop = (signal: NodeJS.Signals) => {
          if (signalled) {
            // A second signal: stop waiting for the requests in flight.
            process.stderr.write(`${signal} again: exiting now\n`);
            process.exit(1);
          }
          signalled = true;
          process.stderr.write(
            `${signal}: no new requests; finishing those in flight (at most ${shutdownTimeout} s)\n`,
          );
          server.shutdown(shutdownTimeout * 1000).then(
            (clean) => {
              if (!clean) process.stderr.write("shutdown: requests still running were cancelled\n");
              resolve();
            },
            (e: unknown) => {
              process.stderr.write(`shutdown: ${(e as Error).message}\n`);
              resolve();
            },
          );
        };
        process.on("SIGTERM", stop);
        process.on("SIGINT", stop);
      });
    });
}
