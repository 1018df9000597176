/**
 * Every failure a user can cause (bad file, bad index, bad option) is an SpError with a one-line
 * message; the CLI prints `error: <message>` and exits non-zero. Anything else is a bug.
 */
export type SpErrorCode =
  | 'BAD_FILE' // unreadable / corrupt / truncated weights or tokenizer files
  | 'NOT_FOUND' // missing directory, file, preset or tensor
  | 'OUT_OF_RANGE' // layer / index / position / token id outside its range
  | 'BAD_INPUT' // malformed option or argument
  | 'TOO_LONG' // prompt longer than n_ctx
  | 'NONFINITE_WEIGHTS' // NaN or ±Infinity in a checkpoint (loadable with allowNonfinite)
  | 'OFFLINE' // download needed but the hub cannot be reached
  | 'UNSUPPORTED'; // valid but not supported here (backend, dtype, size)

export class SpError extends Error {
  readonly code: SpErrorCode;
  constructor(code: SpErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SpError';
    this.code = code;
  }

  /** True for an SpError from any copy of this module (a bundle or a second install breaks instanceof). */
  static is(e: unknown): e is SpError {
    return e instanceof Error && e.name === 'SpError' && typeof (e as SpError).code === 'string';
  }
}

export function assertInt(name: string, v: number, lo: number, hiExclusive: number): void {
  if (!Number.isInteger(v) || v < lo || v >= hiExclusive) {
    throw new SpError('OUT_OF_RANGE', `${name} ${v} is out of range [${lo}, ${hiExclusive - 1}]`);
  }
}
