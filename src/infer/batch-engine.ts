/**
 * The serving engine: continuous (iteration-level) batching over one forward session with a
 * key/value cache, where every row may use a different adapter (lora/bgmv.ts, lora/slots.ts).
 *
 * Each step of the loop:
 *   1. admits waiting requests while the batch has room: their prompts are prefilled together
 *      (left-padded), each first token sampled, and their caches spliced into the batch's,
 *      left-padded to the batch's width (the attention mask hides the padding, and position ids
 *      follow the mask);
 *   2. runs one decode step for every row, each with its own adapter (or none);
 *   3. drops the rows that ended (a stop id, max tokens, the context, a cancel) and trims cache
 *      columns that no remaining row uses.
 * So a request that arrives while others decode joins at the next step, and one that ends leaves at
 * once. Loading an adapter only adds tensors to feed: the session is never rebuilt.
 */
import type { SessionOptions, TensorValue } from "../graph/runtime.js";
import { loadAdapter } from "../lora/adapter-files.js";
import { resolveAdapterPath } from "../lora/adapter-path.js";
import { bgmvContext } from "../lora/bgmv.js";
import { trainedBiases } from "../lora/bias.js";
import { mixEntry, rowFeeds, type SlotEntry, StackBuilder, slotEntry } from "../lora/slots.js";
import { selectTargets } from "../lora/targets.js";
import type { ModelConfig } from "../models/config.js";
import { type CacheTensors, emptyCache, type ForwardRunner, forwardRunner } from "../models/index.js";
import { resolveModelPath } from "../models/model-path.js";
import type { ModuleInfo } from "../models/module.js";
import { listModules } from "../models/modules.js";
import { openModelDir } from "../models/open-model.js";
import { Rng } from "../util/rng.js";
import {
  EngineError,
  type EngineStats,
  type FinishReason,
  type GenerationEngine,
  type GenRequest,
  type GenResult,
  type MixPart,
  type TokenEvent,
} from "./engine-types.js";
import { tokenLogprobs } from "./logprobs.js";
import { sampleToken } from "./sampling.js";

export interface BatchEngineOptions {
  /** Rows decoded together (default 16). */
  maxBatch?: number;
  /** Requests waiting beyond the batch before submit refuses with "queue_full" (default 256). */
  maxQueue?: number;
  /** Adapters loaded at once (default 8). */
  maxLoras?: number;
  /** Highest adapter rank accepted (default 64). */
  maxLoraRank?: number;
  /**
   * Modules the serving graph adapts besides those of the start-up adapters: "all-linear" (every
   * linear layer but the output head, the default), "none", or a list of module short names
   * ("q_proj", "v_proj"). Adapters loaded later must stay within them.
   */
  loraModules?: "all-linear" | "none" | string[];
  session?: SessionOptions;
}

interface Loaded {
  entry: SlotEntry;
  /** Requests queued or running on it. */
  users: number;
  /** Unloaded by name (or a mix): its cached stacks go when the last user ends. */
  detached: boolean;
}

interface Pending {
  req: GenRequest;
  onToken: (t: TokenEvent) => void;
  resolve: (r: GenResult) => void;
  reject: (e: unknown) => void;
  /** The adapter or mix it uses (null: the base), released when the request ends. */
  holder: Loaded | null;
  rng: Rng;
}

interface Row extends Pending {
  /** The next input token (the last one sampled). */
  next: number;
  generated: number;
  /** Real tokens in the cache (prompt + generated - 1). */
  length: number;
  finish?: FinishReason;
}

const NAME_OK = /^[A-Za-z0-9._-]{1,64}$/;

/** The most padded prompt tokens prefilled in one run (the first request is always taken). */
const PREFILL_TOKENS = 2048;

export class BatchEngine implements GenerationEngine {
  private readonly queue: Pending[] = [];
  private rows: Row[] = [];
  /** The batch's cache [rows, kvHeads, width, headDim] per layer, and its mask [rows][width]. */
  private cache: CacheTensors[] = [];
  private mask: number[][] = [];
  private readonly adapters = new Map<string, Loaded>();
  private readonly mixes = new Map<string, Loaded>();
  private readonly cancelled = new Set<string>();
  private looping = false;
  private closing = false;
  private idle: (() => void)[] = [];
  private lastBatch = 0;
  private readonly maxBatch: number;
  private readonly maxQueue: number;
  private readonly maxLoras: number;
  private readonly maxLoraRank: number;

  private constructor(
    private readonly runner: ForwardRunner,
    private readonly stacks: StackBuilder,
    private readonly graphPaths: { modules: ReadonlySet<string>; biases: ReadonlySet<string> },
    private readonly modules: readonly ModuleInfo[],
    opts: BatchEngineOptions,
  ) {
    this.maxBatch = opts.maxBatch ?? 16;
    this.maxQueue = opts.maxQueue ?? 256;
    this.maxLoras = opts.maxLoras ?? 8;
    this.maxLoraRank = opts.maxLoraRank ?? 64;
  }

  get config(): ModelConfig {
    return this.runner.config;
  }

  /** The model folder actually served (after a .gguf or hub id was resolved). */
  get modelDir(): string {
    return this.runner.model.dir;
  }

  /**
   * `model`: a model folder, .gguf file or hub id; `adapters`: loaded at start (a folder, a GGUF
   * adapter or a hub id each). Their modules and trained biases join the serving graph.
   */
  static async create(
    model: string,
    adapters: { name: string; dir: string }[],
    opts: BatchEngineOptions = {},
  ): Promise<BatchEngine> {
    const dir = await resolveModelPath(model);
    const hf = openModelDir(dir);
    const modules = listModules(hf.config);
    const startup = [];
    for (const a of adapters) {
      const adapter = loadAdapter(await resolveAdapterPath(a.dir, { modelDir: dir }));
      startup.push({ name: a.name, adapter });
    }
    const graphModules = new Set(graphModuleChoice(modules, opts.loraModules ?? "all-linear"));
    const graphBiases = new Map<string, number>();
    for (const { adapter } of startup) {
      const selected = selectTargets(adapter.config, modules, { modelType: hf.config.modelType });
      for (const s of selected) graphModules.add(s.path);
      for (const b of trainedBiases(adapter.config, modules, selected)) graphBiases.set(b.path, b.size);
    }
    const adapted = modules.filter((m) => graphModules.has(m.path));
    const biasSet = new Set(graphBiases.keys());
    const runner = await forwardRunner(hf, {
      kvCache: true,
      attentionMask: true,
      session: opts.session,
      wrapContext: (base) =>
        bgmvContext(base, adapted, { biasLayers: biasSet, lastPositionHead: headPath(modules) }),
    });
    const stacks = new StackBuilder(
      adapted,
      [...graphBiases].map(([path, size]) => ({ path, size })),
    );
    const engine = new BatchEngine(runner, stacks, { modules: graphModules, biases: biasSet }, modules, opts);
    try {
      for (const { name, adapter } of startup) engine.addAdapter(name, adapter);
    } catch (e) {
      await runner.close();
      throw e;
    }
    return engine;
  }

  private addAdapter(name: string, adapter: ReturnType<typeof loadAdapter>): void {
    if (!NAME_OK.test(name))
      throw new EngineError(
        "bad_request",
        `adapter name ${JSON.stringify(name)}: use 1-64 of A-Z a-z 0-9 . _ -`,
      );
    if (this.adapters.has(name))
      throw new EngineError("adapter_exists", `an adapter named "${name}" is already loaded`);
    if (this.adapters.size >= this.maxLoras)
      throw new EngineError(
        "too_many_adapters",
        `${this.maxLoras} adapters are loaded already (--max-loras); unload one first`,
      );
    const entry = this.entryOf(adapter);
    this.adapters.set(name, { entry, users: 0, detached: false });
  }

  private entryOf(adapter: ReturnType<typeof loadAdapter>): SlotEntry {
    let entry: SlotEntry;
    try {
      const weights = this.runner.model.weights;
      entry = slotEntry(
        adapter,
        this.modules,
        this.config.modelType,
        this.graphPaths,
        (p) => weights.readFloat32(`${p}.bias`),
        // A tied head's weight is read through the store's alias of the embedding table.
        (p) => weights.readFloat32(`${p}.weight`),
      );
    } catch (e) {
      if (e instanceof EngineError) throw e;
      throw new EngineError("bad_request", (e as Error).message);
    }
    if (entry.maxRank > this.maxLoraRank)
      throw new EngineError(
        "bad_request",
        `${adapter.source ?? "adapter"}: rank ${entry.maxRank} is above --max-lora-rank ${this.maxLoraRank}`,
      );
    return entry;
  }

  async loadAdapter(name: string, dir: string): Promise<void> {
    if (this.closing) throw new EngineError("closed", "the engine is shutting down");
    if (this.adapters.has(name))
      throw new EngineError("adapter_exists", `an adapter named "${name}" is already loaded`);
    let adapter: ReturnType<typeof loadAdapter>;
    try {
      adapter = loadAdapter(await resolveAdapterPath(dir, { modelDir: this.modelDir }));
    } catch (e) {
      throw new EngineError("bad_request", (e as Error).message);
    }
    this.addAdapter(name, adapter);
  }

  async unloadAdapter(name: string): Promise<void> {
    const a = this.adapters.get(name);
    if (!a) throw new EngineError("unknown_adapter", `no adapter named "${name}" is loaded`);
    this.adapters.delete(name);
    a.detached = true;
    if (a.users === 0) this.stacks.forget(a.entry);
  }

  stats(): EngineStats {
    return {
      queued: this.queue.length,
      running: this.rows.length,
      lastBatchSize: this.lastBatch,
      adapters: [...this.adapters.keys()],
    };
  }

  submit(req: GenRequest, onToken: (t: TokenEvent) => void): Promise<GenResult> {
    let holder: Loaded | null;
    try {
      if (this.closing) throw new EngineError("closed", "the server is shutting down");
      this.check(req);
      if (this.queue.length >= this.maxQueue)
        throw new EngineError("queue_full", `the queue is full (${this.maxQueue} requests waiting)`);
      holder = req.mix
        ? this.mixHolder(req.mix)
        : req.adapter === null
          ? null
          : this.adapters.get(req.adapter)!;
    } catch (e) {
      return Promise.reject(
        e instanceof EngineError ? e : new EngineError("bad_request", (e as Error).message),
      );
    }
    if (holder) holder.users++;
    return new Promise<GenResult>((resolve, reject) => {
      this.queue.push({
        req,
        onToken,
        resolve,
        reject,
        holder,
        rng: new Rng(req.seed ?? Math.floor(Math.random() * 2 ** 32)),
      });
      this.kick();
    });
  }

  cancel(id: string): void {
    const i = this.queue.findIndex((p) => p.req.id === id);
    if (i >= 0) {
      const [p] = this.queue.splice(i, 1);
      this.release(p!);
      p!.resolve({ finish: "cancelled", promptTokens: p!.req.prompt.length, completionTokens: 0 });
      return;
    }
    if (this.rows.some((r) => r.req.id === id)) this.cancelled.add(id);
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.looping) await new Promise<void>((r) => this.idle.push(r));
    await this.runner.close();
  }

  private check(req: GenRequest): void {
    const ctx = this.config.maxPositions;
    if (req.prompt.length === 0) throw new EngineError("bad_request", "the prompt is empty");
    if (req.prompt.length >= ctx)
      throw new EngineError(
        "bad_request",
        `the prompt has ${req.prompt.length} tokens; the model's context is ${ctx}`,
      );
    const vocab = this.config.vocabSize;
    const bad = req.prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined)
      throw new EngineError(
        "bad_request",
        `prompt token id ${bad} is outside the vocabulary (0..${vocab - 1})`,
      );
    if (!(Number.isInteger(req.maxTokens) && req.maxTokens >= 1))
      throw new EngineError("bad_request", `max tokens must be an integer >= 1, got ${req.maxTokens}`);
    if (req.mix) {
      if (req.mix.length === 0) throw new EngineError("bad_request", "lora_mix is empty");
      for (const m of req.mix) {
        if (!this.adapters.has(m.name))
          throw new EngineError("unknown_adapter", `lora_mix: no adapter named "${m.name}" is loaded`);
        if (!Number.isFinite(m.weight))
          throw new EngineError("bad_request", `lora_mix: the weight of "${m.name}" is not a finite number`);
      }
    } else if (req.adapter !== null && !this.adapters.has(req.adapter)) {
      throw new EngineError("unknown_adapter", `no adapter named "${req.adapter}" is loaded`);
    }
  }

  /** The entry of a mix, shared by requests with the same mix while any of them runs. */
  private mixHolder(mix: MixPart[]): Loaded {
    const key = JSON.stringify(mix.map((m) => [m.name, m.weight]));
    let h = this.mixes.get(key);
    if (!h) {
      const entry = mixEntry(
        mix.map((m) => ({ entry: this.adapters.get(m.name)!.entry, weight: m.weight, name: m.name })),
      );
      if (entry.maxRank > this.maxLoraRank)
        throw new EngineError(
          "bad_request",
          `lora_mix: the mix has rank ${entry.maxRank}, above --max-lora-rank ${this.maxLoraRank}`,
        );
      // Detached from the start: it goes when its last request ends (release()).
      h = { entry, users: 0, detached: true };
      this.mixes.set(key, h);
    }
    return h;
  }

  private release(p: Pending): void {
    const h = p.holder;
    if (!h) return;
    h.users--;
    if (h.users === 0 && h.detached) {
      this.stacks.forget(h.entry);
      for (const [k, v] of this.mixes) if (v === h) this.mixes.delete(k);
    }
  }

  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (this.queue.length > 0 || this.rows.length > 0) {
        await this.admit();
        if (this.rows.length > 0) await this.decode();
        // Let the event loop deliver new requests and cancels between steps.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.looping = false;
      for (const r of this.idle.splice(0)) r();
    }
  }

  /** The adapter inputs for rows using `holders`: the stacks of their distinct adapters, the row masks. */
  private feeds(holders: readonly (Loaded | null)[]): Record<string, TensorValue> {
    // In id order, so that the same set of adapters always hits the same cached stacks.
    const active = [...new Set(holders.flatMap((h) => (h ? [h.entry] : [])))].sort((a, b) => a.id - b.id);
    const index = new Map(active.map((e, i) => [e.id, i]));
    return rowFeeds(
      holders.map((h) => (h ? index.get(h.entry.id)! : -1)),
      this.stacks.stacks(active),
      active.length,
    );
  }

  /**
   * Prefills waiting requests while the batch has room: as many together as fit in
   * PREFILL_TOKENS padded tokens, left-padded to the longest prompt, so that a burst of arrivals
   * costs one run instead of one each while the running rows wait.
   */
  private async admit(): Promise<void> {
    while (this.queue.length > 0 && this.rows.length < this.maxBatch) {
      const group: Pending[] = [];
      let longest = 0;
      while (this.queue.length > 0 && this.rows.length + group.length < this.maxBatch) {
        const len = Math.max(longest, this.queue[0]!.req.prompt.length);
        if (group.length > 0 && (group.length + 1) * len > PREFILL_TOKENS) break;
        group.push(this.queue.shift()!);
        longest = len;
      }
      const masks = group.map((p) => [
        ...new Array<number>(longest - p.req.prompt.length).fill(0),
        ...p.req.prompt.map(() => 1),
      ]);
      const ids = group.map((p) => [
        ...new Array<number>(longest - p.req.prompt.length).fill(p.req.prompt[0]!),
        ...p.req.prompt,
      ]);
      let out: Awaited<ReturnType<ForwardRunner["run"]>>;
      try {
        out = await this.runner.run(
          { ids, attentionMask: masks, past: emptyCache(this.config, group.length) },
          this.feeds(group.map((p) => p.holder)),
        );
      } catch (e) {
        for (const p of group) {
          this.release(p);
          p.reject(e);
        }
        continue;
      }
      const vocab = out.logits.dims[2]!;
      const data = out.logits.data as Float32Array; // [group, 1, vocab]: the last position only
      const rows = group.map((p, b): Row => {
        const row: Row = { ...p, next: 0, generated: 0, length: p.req.prompt.length };
        this.emit(row, data.subarray(b * vocab, (b + 1) * vocab));
        return row;
      });
      this.join(rows, masks, out.present!);
      this.drop(); // rows that ended on their first token
    }
  }

  /**
   * Splices prefilled rows (cache [n, h, len, d], masks [n][len]) into the batch, left-padding the
   * narrower side.
   */
  private join(rows: Row[], masks: number[][], present: CacheTensors[]): void {
    const len = present[0]!.key.dims[2]!;
    const oldWidth = this.mask[0]?.length ?? 0;
    const width = Math.max(oldWidth, len);
    const n = this.rows.length;
    const total = n + rows.length;
    const { kvHeads: h, headDim: d } = this.config;
    const splice = (old: TensorValue | undefined, mine: TensorValue): TensorValue => {
      const data = new Float32Array(total * h * width * d);
      const put = (src: Float32Array, srcWidth: number, b: number, srcRow: number) => {
        for (let k = 0; k < h; k++) {
          const from = (srcRow * h + k) * srcWidth * d;
          const to = ((b * h + k) * width + (width - srcWidth)) * d;
          data.set(src.subarray(from, from + srcWidth * d), to);
        }
      };
      for (let b = 0; b < n; b++) put(old!.data as Float32Array, oldWidth, b, b);
      for (let b = 0; b < rows.length; b++) put(mine.data as Float32Array, len, n + b, b);
      return { dtype: "float32", dims: [total, h, width, d], data };
    };
    this.cache = present.map((kv, i) => ({
      key: splice(this.cache[i]?.key, kv.key),
      value: splice(this.cache[i]?.value, kv.value),
    }));
    const pad = (m: number[], w: number) => [...new Array<number>(width - w).fill(0), ...m];
    this.mask = [...this.mask.map((m) => pad(m, oldWidth)), ...masks.map((m) => pad(m, len))];
    this.rows.push(...rows);
  }

  /** One decode step for every row. */
  private async decode(): Promise<void> {
    for (const r of this.rows) if (this.cancelled.has(r.req.id)) r.finish = "cancelled";
    this.drop();
    if (this.rows.length === 0) return;
    this.lastBatch = this.rows.length;
    const mask = this.mask.map((m) => [...m, 1]);
    let out: Awaited<ReturnType<ForwardRunner["run"]>>;
    try {
      out = await this.runner.run(
        { ids: this.rows.map((r) => [r.next]), attentionMask: mask, past: this.cache },
        this.feeds(this.rows.map((r) => r.holder)),
      );
    } catch (e) {
      // A failed step fails the rows in it, not the engine: later requests start afresh.
      for (const r of this.rows) {
        this.release(r);
        r.reject(e);
      }
      this.rows = [];
      this.cache = [];
      this.mask = [];
      return;
    }
    this.cache = out.present!;
    this.mask = mask;
    const vocab = out.logits.dims[2]!;
    const data = out.logits.data as Float32Array;
    this.rows.forEach((r, b) => {
      r.length++;
      this.emit(r, data.subarray(b * vocab, (b + 1) * vocab));
    });
    this.drop();
  }

  /** Samples the row's next token from `logits`, reports it, and marks the row ended when it is. */
  private emit(r: Row, logits: Float32Array): void {
    const { req } = r;
    const id = sampleToken(logits, { temperature: req.temperature, topP: req.topP, topK: req.topK }, () =>
      r.rng.float(),
    );
    const event: TokenEvent = {
      id,
      ...(req.logprobs !== undefined ? tokenLogprobs(logits, id, req.logprobs) : {}),
    };
    r.generated++;
    r.next = id;
    try {
      r.onToken(event);
    } catch {
      // A consumer that throws loses its request, nobody else's.
      r.finish = "cancelled";
      return;
    }
    if (req.stopIds.includes(id)) r.finish = "stop";
    else if (r.generated >= req.maxTokens || r.length + 1 >= this.config.maxPositions) r.finish = "length";
    else if (this.cancelled.has(req.id)) r.finish = "cancelled";
  }

  private end(r: Row): void {
    this.cancelled.delete(r.req.id);
    this.release(r);
    r.resolve({ finish: r.finish!, promptTokens: r.req.prompt.length, completionTokens: r.generated });
  }

  /** Removes ended rows from the batch and trims cache columns that only padding uses. */
  private drop(): void {
    if (!this.rows.some((r) => r.finish)) return;
    const keep: number[] = [];
    this.rows.forEach((r, b) => {
      if (r.finish) this.end(r);
      else keep.push(b);
    });
    const width = this.mask[0]!.length;
    const trim = Math.min(
      width,
      ...keep.map((b) => this.mask[b]!.indexOf(1)).map((i) => (i < 0 ? width : i)),
    );
    const { kvHeads: h, headDim: d } = this.config;
    const newWidth = width - trim;
    const cut = (t: TensorValue): TensorValue => {
      const src = t.data as Float32Array;
      const data = new Float32Array(keep.length * h * newWidth * d);
      keep.forEach((b, j) => {
        for (let k = 0; k < h; k++) {
          const from = ((b * h + k) * width + trim) * d;
          data.set(src.subarray(from, from + newWidth * d), (j * h + k) * newWidth * d);
        }
      });
      return { dtype: "float32", dims: [keep.length, h, newWidth, d], data };
    };
    this.rows = keep.map((b) => this.rows[b]!);
    this.mask = keep.map((b) => this.mask[b]!.slice(trim));
    this.cache =
      keep.length === 0 ? [] : this.cache.map((kv) => ({ key: cut(kv.key), value: cut(kv.value) }));
  }
}

/** The output head's module path. */
function headPath(modules: readonly ModuleInfo[]): string | undefined {
  return modules.find((m) => m.isOutputHead)?.path;
}

/** The modules the serving graph adapts by choice (start-up adapters add theirs). */
function graphModuleChoice(
  modules: readonly ModuleInfo[],
  choice: "all-linear" | "none" | string[],
): string[] {
  if (choice === "none") return [];
  if (choice === "all-linear")
    return modules.filter((m) => m.kind === "linear" && !m.isOutputHead).map((m) => m.path);
  const names = new Set(choice);
  const picked = modules.filter((m) => names.has(m.path.slice(m.path.lastIndexOf(".") + 1)));
  const known = new Set(modules.map((m) => m.path.slice(m.path.lastIndexOf(".") + 1)));
  const unknown = choice.filter((n) => !known.has(n));
  if (unknown.length > 0)
    throw new EngineError(
      "bad_request",
      `--lora-modules: no module named ${unknown.map((n) => JSON.stringify(n)).join(", ")} in this model (it has ${[...known].join(", ")})`,
    );
  return picked.map((m) => m.path);
}
