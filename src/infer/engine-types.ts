/**
 * The contract between a generation engine (token ids in, token ids out, many requests at once) and
 * whatever drives it: the HTTP server (src/serve/, through a worker thread) or a test calling it
 * directly. Text, chat templates, stop strings and the wire format stay on the caller's side; the
 * engine only knows token ids, adapters and sampling.
 */
import { LoraTsError } from "../util/errors.js";

/**
 * Why the engine refused something, so that a server can choose the status code: "queue_full"
 * (429), "unknown_adapter" (404), "adapter_exists" and "too_many_adapters" (409 / 400),
 * "bad_request" (400: a prompt too long for the context, a rank above the limit, a bad adapter).
 */
export type EngineErrorKind =
  | "queue_full"
  | "unknown_adapter"
  | "adapter_exists"
  | "too_many_adapters"
  | "bad_request"
  | "closed";

export class EngineError extends LoraTsError {
  constructor(
    readonly kind: EngineErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** One part of a weighted adapter mix (the `lora_mix` request field). */
export interface MixPart {
  /** A loaded adapter's name. */
  name: string;
  weight: number;
}

export interface GenRequest {
  /** Unique per request; used to cancel it. */
  id: string;
  /** Prompt token ids (BOS included when the model wants it). */
  prompt: number[];
  /** A loaded adapter's name, or null for the base model. Ignored when `mix` is given. */
  adapter: string | null;
  /** A weighted mix of loaded adapters, exact by rank concatenation. */
  mix?: MixPart[];
  /** At most this many new tokens. */
  maxTokens: number;
  /** 0 = greedy (the arg-max, lowest id on ties). */
  temperature: number;
  /** 1 = off. */
  topP: number;
  /** 0 or undefined = off. */
  topK?: number;
  /** Seed of this request's own random stream; the same seed gives the same sample. */
  seed?: number;
  /** Token ids that end the generation (included in the output, as `generate` does). */
  stopIds: number[];
  /**
   * Return the log-probability of each chosen token and the `logprobs` most likely alternatives
   * (0: the chosen token only; undefined: none). Log-probabilities are of the model's raw
   * distribution (log-softmax of the logits, before temperature), as vLLM returns by default.
   */
  logprobs?: number;
}

export interface TopLogprob {
  id: number;
  logprob: number;
}

/** One generated token. */
export interface TokenEvent {
  id: number;
  logprob?: number;
  top?: TopLogprob[];
}

export type FinishReason = "stop" | "length" | "cancelled";

export interface GenResult {
  finish: FinishReason;
  promptTokens: number;
  completionTokens: number;
}

/** What the engine reports for /metrics and /health. */
export interface EngineStats {
  /** Requests waiting for a place in the batch. */
  queued: number;
  /** Requests in the running batch. */
  running: number;
  /** Rows of the last decode step. */
  lastBatchSize: number;
  /** Names of the loaded adapters. */
  adapters: string[];
}

export interface GenerationEngine {
  /**
   * Queues a request. `onToken` is called for each new token in order; the promise resolves when
   * the request ends (a stop id, maxTokens, or cancel) and rejects only on a bad request (an
   * unknown adapter, a prompt longer than the context), never because of another request.
   */
  submit(req: GenRequest, onToken: (t: TokenEvent) => void): Promise<GenResult>;
  /** Ends a request at its next step (a no-op when it has already ended). */
  cancel(id: string): void;
  /** Loads a PEFT adapter folder under `name` into a free slot; the session is not rebuilt. */
  loadAdapter(name: string, dir: string): Promise<void>;
  /** Frees the slot; requests already running on it finish first. */
  unloadAdapter(name: string): Promise<void>;
  stats(): EngineStats;
  /** Stops taking requests; resolves when the running ones have ended. */
  close(): Promise<void>;
}
