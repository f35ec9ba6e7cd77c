/** GET /health (open without the API key; 503 while shutting down or when the engine is gone) and GET /metrics. */
import type { FastifyInstance } from "fastify";
import type { ServeState } from "./state.js";

export function opsRoutes(app: FastifyInstance, state: ServeState): void {
  app.get("/health", async (_request, reply) => {
    const s = state.engine.stats();
    const status = state.draining ? "draining" : state.healthy() ? "ok" : "engine_down";
    reply.code(status === "ok" ? 200 : 503);
    return { status, queued: s.queued, running: s.running, adapters: s.adapters.length };
  });
  app.get("/metrics", async (_request, reply) => {
    reply.type(state.metrics.registry.contentType);
    return state.metrics.registry.metrics();
  });
}
