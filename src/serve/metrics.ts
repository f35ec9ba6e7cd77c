/**
 * /metrics: Prometheus text through prom-client, on a Registry of the server's own (not the
 * process-global one, so two servers in one process never share counts). The engine's gauges (queue
 * depth, running requests, last batch size, loaded adapters) are read from engine.stats() at scrape
 * time.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { EngineStats } from "../infer/engine-types.js";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"endpoint" | "status">;
  readonly adapterRequests: Counter<"adapter">;
  readonly promptTokens: Counter;
  readonly generatedTokens: Counter;
  readonly cancelled: Counter<"reason">;
  readonly timeToFirstToken: Histogram;
  readonly interTokenLatency: Histogram;
  readonly requestLatency: Histogram<"endpoint">;

  constructor(stats: () => EngineStats) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "lora_ts_http_requests_total",
      help: "HTTP requests by endpoint and status code",
      labelNames: ["endpoint", "status"],
      registers,
    });
    this.adapterRequests = new Counter({
      name: "lora_ts_adapter_requests_total",
      help: 'Generation requests by adapter ("base": the base model, "mix": a lora_mix)',
      labelNames: ["adapter"],
      registers,
    });
    this.promptTokens = new Counter({
      name: "lora_ts_prompt_tokens_total",
      help: "Prompt tokens of the generation requests",
      registers,
    });
    this.generatedTokens = new Counter({
      name: "lora_ts_generation_tokens_total",
      help: "Tokens generated",
      registers,
    });
    this.cancelled = new Counter({
      name: "lora_ts_cancelled_requests_total",
      help: 'Generations the engine ended early: "client_gone" (the client disconnected), "stop_string", "shutdown" (past --shutdown-timeout)',
      labelNames: ["reason"],
      registers,
    });
    const gauge = (name: string, help: string, read: (s: EngineStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(stats()));
        },
      });
    gauge("lora_ts_queue_depth", "Requests waiting for a place in the batch", (s) => s.queued);
    gauge("lora_ts_running_requests", "Requests in the running batch", (s) => s.running);
    gauge("lora_ts_batch_size", "Rows of the last decode step", (s) => s.lastBatchSize);
    gauge("lora_ts_loaded_adapters", "Adapters loaded", (s) => s.adapters.length);
    this.timeToFirstToken = new Histogram({
      name: "lora_ts_time_to_first_token_seconds",
      help: "Time from the request's arrival to its first generated token",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.interTokenLatency = new Histogram({
      name: "lora_ts_inter_token_latency_seconds",
      help: "Time between two generated tokens of one request",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.requestLatency = new Histogram({
      name: "lora_ts_request_duration_seconds",
      help: "Time from a generation request's arrival to its last byte",
      labelNames: ["endpoint"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
  }
}
