/** How a session is created: the options runtime.ts takes, on either platform (ort-node.ts / ort-web.ts). */
export interface SessionOptions {
  /** Intra-op threads; default: every core (Node). In a browser the WebAssembly thread count is global. */
  threads?: number;
  /** "all" by default; "disabled" is handy when checking numerics op by op. */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** ORT's CPU arena about doubles peak memory for no speed gain here, so it is off by default. */
  memArena?: boolean;
  /** ORT's memory-pattern planning (on by default). */
  memPattern?: boolean;
  /** Node: the folder that external-data locations in the model are relative to. */
  externalDataDir?: string;
  /**
   * Browser: the bytes of each file external-data locations name (the safetensors files, whole), as
   * onnxruntime-web takes them. There is no file system to resolve locations against.
   */
  externalData?: { path: string; data: Uint8Array }[];
  /** Browser: "webgpu" runs the graph on the GPU; the default is "wasm". Node always runs "cpu". */
  device?: "cpu" | "wasm" | "webgpu";
  /** Extra ORT session config entries, e.g. {"session.disable_prepacking": "1"}. */
  config?: Record<string, string>;
  /** Write onnxruntime's per-op profile (JSON) with this file prefix. */
  profile?: string;
}
