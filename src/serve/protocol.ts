/**
 * The messages between the HTTP thread (engine-client.ts) and the engine's worker thread
 * (engine-host.ts). Everything here is structured-clonable; errors travel as SerializedError so that
 * an EngineError keeps its kind across the boundary.
 */
import type { BatchEngineOptions } from "../infer/batch-engine.js";
import type {
  EngineErrorKind,
  EngineStats,
  GenRequest,
  GenResult,
  TokenEvent,
} from "../infer/engine-types.js";
import { EngineError } from "../infer/engine-types.js";
import { oneLine } from "./errors.js";

/** What the HTTP side needs to know about the model, sent once the engine is up. */
export interface ModelInfo {
  /** max_position_embeddings: prompt + generated tokens must fit. */
  maxPositions: number;
  /** The ids that end a generation (the model's eos_token_id list). */
  eosTokenIds: number[];
  vocabSize: number;
}

/** workerData of the engine's thread: what BatchEngine.create takes. */
export interface WorkerSetup {
  model: string;
  adapters: { name: string; dir: string }[];
  options: BatchEngineOptions;
}

export interface SerializedError {
  /** Set for an EngineError. */
  kind?: EngineErrorKind;
  message: string;
}

export type ToWorker =
  | { type: "submit"; rid: number; req: GenRequest }
  | { type: "cancel"; id: string }
  | { type: "load"; call: number; name: string; dir: string }
  | { type: "unload"; call: number; name: string }
  | { type: "close"; call: number };

export type FromWorker =
  | { type: "ready"; info: ModelInfo; stats: EngineStats }
  | { type: "failed"; error: SerializedError }
  | { type: "tokens"; rid: number; events: TokenEvent[] }
  | { type: "done"; rid: number; result?: GenResult; error?: SerializedError }
  | { type: "reply"; call: number; error?: SerializedError }
  | { type: "stats"; stats: EngineStats };

export function serializeError(e: unknown): SerializedError {
  if (e instanceof EngineError) return { kind: e.kind, message: e.message };
  return { message: oneLine(e) };
}

/** An EngineError again when it was one; otherwise a plain Error with the message. */
export function deserializeError(s: SerializedError): Error {
  return s.kind ? new EngineError(s.kind, s.message) : new Error(s.message);
}
