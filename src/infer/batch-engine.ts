/**
 * The serving engine: continuous (iteration-level) batching over one forward session with a
 * key/value cache, rows of different adapters in one batch (BGMV, see lora/bgmv.ts).
 * (Work in progress: the API below is the contract; the implementation lands next.)
 */
import type { SessionOptions } from "../graph/runtime.js";
import type { ModelConfig } from "../models/config.js";
import type {
  EngineStats,
  GenerationEngine,
  GenRequest,
  GenResult,
  TokenEvent,
} from "./engine-types.js";
import { EngineError } from "./engine-types.js";

export interface BatchEngineOptions {
  /** Rows decoded together (default 16). */
  maxBatch?: number;
  /** Requests waiting beyond the batch before submit refuses with "queue_full" (default 256). */
  maxQueue?: number;
  /** Adapters loaded at once (default 8). */
  maxLoras?: number;
  /** Highest adapter rank accepted (default 64). */
  maxLoraRank?: number;
  session?: SessionOptions;
}

export class BatchEngine implements GenerationEngine {
  private constructor(readonly config: ModelConfig) {}

  /**
   * `model`: a model folder, .gguf file or hub id; `adapters`: loaded at start (a folder, a GGUF
   * adapter or a hub id each).
   */
  static async create(
    _model: string,
    _adapters: { name: string; dir: string }[],
    _opts: BatchEngineOptions = {},
  ): Promise<BatchEngine> {
    throw new EngineError("closed", "BatchEngine: not implemented yet");
  }

  submit(_req: GenRequest, _onToken: (t: TokenEvent) => void): Promise<GenResult> {
    throw new EngineError("closed", "not implemented");
  }
  cancel(_id: string): void {}
  async loadAdapter(_name: string, _dir: string): Promise<void> {}
  async unloadAdapter(_name: string): Promise<void> {}
  stats(): EngineStats {
    return { queued: 0, running: 0, lastBatchSize: 0, adapters: [] };
  }
  async close(): Promise<void> {}
}
