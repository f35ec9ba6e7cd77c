/** POST /v1/completions and POST /v1/chat/completions. */
import type { FastifyInstance } from "fastify";
import { runGeneration } from "./generation.js";
import { planRequest } from "./request-params.js";
import { chatBody, completionBody } from "./schemas.js";
import type { ServeState } from "./state.js";

export function generateRoutes(app: FastifyInstance, state: ServeState): void {
  const ctx = () => ({
    tokenizer: state.tokenizer,
    template: state.template,
    info: state.info,
    baseName: state.baseName,
    adapters: new Set(state.adapters.keys()),
  });
  app.post("/v1/completions", { schema: { body: completionBody } }, async (request, reply) => {
    const arrived = performance.now();
    const plan = planRequest("completion", request.body as Record<string, unknown>, ctx());
    return runGeneration(state, plan, reply, arrived);
  });
  app.post("/v1/chat/completions", { schema: { body: chatBody } }, async (request, reply) => {
    const arrived = performance.now();
    const plan = planRequest("chat", request.body as Record<string, unknown>, ctx());
    return runGeneration(state, plan, reply, arrived);
  });
}
