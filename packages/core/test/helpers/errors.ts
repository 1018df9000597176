import { SpError } from '@sp/core';

/** `fn` must throw an SpError (with `code`, when given) whose message is one line (matching `pattern`). */
export function expectSpError(fn: () => unknown, code?: string, pattern?: RegExp): SpError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SpError);
  const e = err as SpError;
  if (code !== undefined) expect(e.code).toBe(code);
  expect(e.message).not.toMatch(/[\r\n]/);
  if (pattern) expect(e.message).toMatch(pattern);
  return e;
}
