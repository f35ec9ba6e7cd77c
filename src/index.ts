/**
 * lora-ts library entry point. The engine: build graphs with the op builders, derive gradients with
 * `grad`, emit ONNX and run it with onnxruntime-node.
 */
export type { AnyTypedArray, DType } from "./graph/dtype.js";
export { emitModel } from "./graph/emit.js";
export { grad } from "./graph/grad.js";
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, toFloat32 } from "./graph/half.js";
export { Graph, Value } from "./graph/ir.js";
export * as nn from "./graph/nn.js";
export * as ops from "./graph/ops.js";
export { Session, type SessionOptions, type TensorValue } from "./graph/runtime.js";
export { SafetensorsFile, writeSafetensors } from "./io/safetensors.js";
export { FileFormatError, GraphBuildError, LoraTsError } from "./util/errors.js";
