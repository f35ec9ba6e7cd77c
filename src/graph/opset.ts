/**
 * The one place where the ONNX versions are fixed. Opset 18: Reduce* take axes as an input,
 * ScatterND/ScatterElements have reduction="add", LayerNormalization exists (17).
 */
export const ONNX_OPSET = 18;
/** IR version 8 goes with opset 18. */
export const ONNX_IR_VERSION = 8;
/** onnxruntime's contrib ops (FusedMatMul, Gelu, FastGelu). */
export const MS_OPSET = 1;
