/**
 * onnxruntime for browsers: onnxruntime-web (WebAssembly with SIMD and threads, and WebGPU). The
 * browser bundle uses this file in place of ort-node.ts (same exports). The WebAssembly thread count
 * and the location of the runtime's .wasm files are global (`ort.env.wasm`): the page's worker sets them.
 */
import * as ort from "onnxruntime-web/webgpu";
import { LoraTsError } from "../util/errors.js";
import type { SessionOptions } from "./session-options.js";

export { ort };
/** Which binding this is (see ort-node.ts). */
export const PLATFORM: "node" | "web" = "web";

/** Browser session options: the WebAssembly or WebGPU provider, external data given as bytes. */
export function platformSessionOptions(
  model: Uint8Array | string,
  opts: SessionOptions,
): ort.InferenceSession.SessionOptions {
  if (typeof model === "string")
    throw new LoraTsError("in a browser, a session is created from the graph's bytes, not a path");
  const device = opts.device ?? "wasm";
  if (device === "cpu") throw new LoraTsError('in a browser, the device is "wasm" or "webgpu"');
  return {
    executionProviders: [device],
    ...(opts.externalData ? { externalData: opts.externalData } : {}),
    ...(opts.config ? { extra: { ...opts.config } } : {}),
  };
}

/**
 * The largest |q| for int8 weights (see ort-node.ts): onnxruntime-web's WebAssembly int8 kernels widen
 * to 16 bits before they multiply, so nothing saturates.
 */
export function int8WeightMax(): number {
  return 127;
}
