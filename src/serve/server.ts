/**
 * `lora-ts serve` as a library call: loads the model in the engine's worker thread, builds the app,
 * listens, and shuts down on request (SIGTERM): new requests get 503, those in flight finish (at
 * most `shutdownTimeoutMs`, then they are cancelled), then the listener and the engine close.
 */
import { existsSync } from "node:fs";
import { type AddressInfo, isIPv6 } from "node:net";
import { basename, join } from "node:path";
import { readTokenizer } from "../data/tokenizer-files.js";
import { resolveModelPath } from "../models/model-path.js";
import { LoraTsError } from "../util/errors.js";
import type { AdapterRoot } from "./adapter-root.js";
import { buildApp } from "./app.js";
import { EngineClient } from "./engine-client.js";
import type { ServeState } from "./state.js";

export interface ServeOptions {
  /** A model folder, .gguf file or hub id. */
  model: string;
  adapters: { name: string; dir: string }[];
  host: string;
  port: number;
  apiKey?: string;
  adapterRoot?: AdapterRoot | null;
  servedModelName?: string;
  maxLoras: number;
  maxLoraRank: number;
  maxBatch: number;
  maxQueue: number;
  bodyLimit?: number;
}

export interface RunningServer {
  /** http://HOST:PORT, with the port actually bound. */
  url: string;
  state: ServeState;
  /** Drains (at most `timeoutMs`) and closes everything; true when nothing had to be cancelled. */
  shutdown(timeoutMs: number): Promise<boolean>;
}

/** The base model's name in requests: --served-model-name, else the --model argument's last part. */
export function defaultModelName(model: string): string {
  return basename(model.replace(/[\\/]+$/, "")).replace(/@.*$/, "") || model;
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const dir = await resolveModelPath(opts.model);
  if (!existsSync(dir)) throw new LoraTsError(`--model: ${opts.model}: no such file or directory`);
  if (!existsSync(join(dir, "tokenizer.json")))
    throw new LoraTsError(`--model: ${opts.model} has no tokenizer.json; serve needs the model's tokenizer`);
  const tokenizer = readTokenizer(dir);
  const engine = await EngineClient.start({
    model: dir,
    adapters: opts.adapters,
    options: {
      maxBatch: opts.maxBatch,
      maxQueue: opts.maxQueue,
      maxLoras: opts.maxLoras,
      maxLoraRank: opts.maxLoraRank,
    },
  });
  // The HTTP side stays up (/health answers 503, generations 503) so that a supervisor sees why.
  engine.onFailure = (e) => process.stderr.write(`error: ${e.message}\n`);
  const { app, state } = buildApp({
    engine,
    info: engine.info,
    tokenizer,
    baseName: opts.servedModelName ?? defaultModelName(opts.model),
    adapters: opts.adapters.map((a) => a.name),
    apiKey: opts.apiKey,
    adapterRoot: opts.adapterRoot ?? null,
    bodyLimit: opts.bodyLimit,
    healthy: () => engine.alive,
  });
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (e) {
    await engine.close();
    throw new LoraTsError(
      `--host/--port: cannot listen on ${opts.host}:${opts.port}: ${(e as Error).message.split("\n")[0]}`,
    );
  }
  const addr = app.server.address() as AddressInfo;
  const host = isIPv6(addr.address) ? `[${addr.address}]` : addr.address;
  let closing: Promise<boolean> | null = null;
  return {
    url: `http://${host}:${addr.port}`,
    state,
    shutdown(timeoutMs) {
      closing ??= (async () => {
        const clean = await state.drain(timeoutMs);
        await app.close();
        await engine.close();
        return clean;
      })();
      return closing;
    },
  };
}
