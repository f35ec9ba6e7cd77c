/**
 * Errors meant for users: one line, naming the file (or tensor, or op) and the fault.
 * The CLI prints `error: <message>` for these and exits non-zero, never a stack trace.
 */
export class LoraTsError extends Error {
  override name = "LoraTsError";
}

/** A problem with the contents of a file on disk; the message always starts with the path. */
export class FileFormatError extends LoraTsError {
  override name = "FileFormatError";
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

/** A model-building mistake found when the graph is built (wrong shapes or dtypes for an op). */
export class GraphBuildError extends LoraTsError {
  override name = "GraphBuildError";
}
