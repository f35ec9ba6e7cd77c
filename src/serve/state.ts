/**
 * What the routes share: the engine, the model's tokenizer and template, the adapters loaded (names
 * and load times, kept here so /v1/models and request routing agree at once after a load or an
 * unload), the metrics, and the in-flight generations that a shutdown waits for.
 */
import type { ChatTemplate } from "../data/chat-template.js";
import type { Tokenizer } from "../data/tokenizer.js";
import type { GenerationEngine } from "../infer/engine-types.js";
import type { AdapterRoot } from "./adapter-root.js";
import type { ServerMetrics } from "./metrics.js";
import type { TokenText } from "./openai-format.js";
import type { ModelInfo } from "./protocol.js";

export class ServeState {
  /** Adapter name → when it was loaded (seconds). */
  readonly adapters = new Map<string, number>();
  /** Names being loaded right now (a second load of the same name is a 409). */
  readonly loading = new Set<string>();
  /** Engine request ids of the generations in flight. */
  readonly active = new Set<string>();
  draining = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly engine: GenerationEngine,
    readonly info: ModelInfo,
    readonly tokenizer: Tokenizer,
    readonly template: ChatTemplate,
    readonly tokenText: TokenText,
    readonly baseName: string,
    readonly created: number,
    readonly metrics: ServerMetrics,
    readonly adapterRoot: AdapterRoot | null,
    /** False once the engine is gone (its thread died): /health says so. */
    readonly healthy: () => boolean,
  ) {}

  decode = (ids: number[]): string => this.tokenizer.decode(ids, { skipSpecial: true });

  /** Runs a generation, counted as in flight until it ends. */
  async track<T>(id: string, run: () => Promise<T>): Promise<T> {
    this.active.add(id);
    try {
      return await run();
    } finally {
      this.active.delete(id);
      if (this.active.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /**
   * Stops taking requests (new ones get 503) and waits for the ones in flight, at most `timeoutMs`;
   * those still running then are cancelled. Resolves true when all ended within the time.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    if (this.active.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const ok = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    if (!ok) {
      for (const id of this.active) this.engine.cancel(id);
      // Cancelled requests end at their next step; give them a moment to answer.
      await Promise.race([idle, new Promise((r) => setTimeout(r, 2000))]);
    }
    return ok;
  }
}
