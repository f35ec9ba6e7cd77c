/**
 * `lora-ts web`: serves the training page (built by `npm run build` into dist/web) and a model's
 * files, with the COOP/COEP headers that WebAssembly threads need (src/cli/web-server.ts). Training
 * runs in the browser tab, not here. When ready it prints one line, `listening on http://HOST:PORT`;
 * SIGINT / SIGTERM close it and it exits 0.
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { DEFAULT_MODEL_DIR } from "../models/default-model.js";
import { LoraTsError } from "../util/errors.js";
import { parseNumber } from "./parse.js";
import { startWebServer } from "./web-server.js";

interface WebFlags {
  host: string;
  port: string;
  model?: string;
}

/** The built page: dist/web beside dist/src (this file runs from dist/src/cli/). */
export const PAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../web");

export function registerWeb(program: Command): void {
  program
    .command("web")
    .description("serve the page that trains a LoRA adapter in the browser (onnxruntime-web)")
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--port <port>", "port (0: any free port, printed when ready)", "8080")
    .option("--model <dir>", "model folder the page offers as its default (default: the embedded model)")
    .action(async (f: WebFlags) => {
      const port = parseNumber("--port", f.port, { integer: true, min: 0 });
      if (port > 65535)
        throw new LoraTsError(`--port: expected an integer <= 65535, got ${JSON.stringify(f.port)}`);
      if (f.host.trim() === "") throw new LoraTsError("--host: the address is empty");
      const server = await startWebServer({
        pageDir: PAGE_DIR,
        modelDir: f.model !== undefined ? resolve(f.model) : DEFAULT_MODEL_DIR,
        host: f.host,
        port,
      });
      // The signal handlers are in place before the line is printed: whoever waits for the line
      // may send SIGTERM at once (a test does), before this process would have run another line.
      const closed = new Promise<void>((done) => {
        let closing = false;
        const stop = (signal: NodeJS.Signals) => {
          if (closing) return;
          closing = true;
          process.stderr.write(`${signal}: closing\n`);
          server.close().then(done, (e: unknown) => {
            process.stderr.write(`close: ${(e as Error).message.split("\n")[0]}\n`);
            done();
          });
        };
        process.on("SIGTERM", stop);
        process.on("SIGINT", stop);
      });
      process.stdout.write(`listening on ${server.url}\n`);
      await closed;
    });
}
