/** Element types the engine knows, named as in onnxruntime-node's Tensor types. */
export type DType =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int64"
  | "int32"
  | "int8"
  | "uint8"
  | "bool";

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
};

export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function isFloat(d: DType): boolean {
  return d === "float32" || d === "float64" || d === "float16" || d === "bfloat16";
}

/** The typed array that holds each dtype in memory (16-bit floats are kept as their raw bits). */
export type TypedArrayFor<D extends DType> = D extends "float32"
  ? Float32Array
  : D extends "float64"
    ? Float64Array
    : D extends "float16" | "bfloat16"
      ? Uint16Array
      : D extends "int64"
        ? BigInt64Array
        : D extends "int32"
          ? Int32Array
          : D extends "int8"
            ? Int8Array
            : Uint8Array;

export type AnyTypedArray =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int8Array
  | Uint8Array;

export function typedArrayFromBytes(dtype: DType, bytes: Uint8Array): AnyTypedArray {
  // Copy into an aligned buffer: the source may sit at any byte offset of a file buffer.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const b = copy.buffer;
  switch (dtype) {
    case "float32":
      return new Float32Array(b);
    case "float64":
      return new Float64Array(b);
    case "float16":
    case "bfloat16":
      return new Uint16Array(b);
    case "int64":
      return new BigInt64Array(b);
    case "int32":
      return new Int32Array(b);
    case "int8":
      return new Int8Array(b);
    case "uint8":
    case "bool":
      return new Uint8Array(b);
  }
}
