/** Comparing the library's activations (float32 tfjs tensors) with the float64 reference. */
import { tf, type ActivationCache, type HookName } from '@sp/core';
import type { RefActivation } from '../reference/gpt2-ref.js';

// Module-level aliases: global lookups (Math, Number) inside jest's vm context are slow in hot loops.
const { abs, max } = Math;
const { isFinite } = Number;

export const LOGIT_TOL = 1e-4; // absolute, on logits
export const ACT_TOL = 1e-4; // relative to max(1, |x|), on other activations

export interface Mismatch {
  name: string;
  index: number;
  got: number;
  want: number;
}

/**
 * First element where `got` (float32 from the library) and `want` (float64 reference) differ by
 * more than tol (absolute), or tol * max(1, |want|) when `relative`. Non-finite values (the
 * -Infinity of masked attention scores) must match exactly. Undefined when all agree.
 */
export function firstMismatch(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number, relative = true): Mismatch | undefined {
  if (got.length !== want.length) return { name: `${name} (length ${got.length} vs ${want.length})`, index: -1, got: got.length, want: want.length };
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (!isFinite(w) || !isFinite(g)) {
      if (g !== w) return { name, index: i, got: g, want: w };
      continue;
    }
    if (!(abs(g - w) <= (relative ? tol * max(1, abs(w)) : tol))) return { name, index: i, got: g, want: w };
  }
  return undefined;
}

/** Attention hooks are [batch, head, query, key]; every other hook is [batch, pos, ...]. */
const isAttnMap = (name: string): boolean => /attn\.hook_(attn_scores|pattern)$/.test(name);

/**
 * Row `row` of a cached activation restricted to its first `len` (real) positions, flattened in
 * the reference's layout (its shape without the batch dimension, positions cut to `len`).
 */
export function rowSlice(name: string, t: tf.Tensor, row: number, len: number): Float32Array {
  // Plain JS indexing on the downloaded data: independent of tfjs' slice kernels.
  const data = t.dataSync() as Float32Array;
  const [, a, ...rest] = t.shape;
  const inner = rest.reduce((x, y) => x * y, 1);
  const rowData = data.subarray(row * a * inner, (row + 1) * a * inner);
  if (!isAttnMap(name)) return rowData.slice(0, len * inner); // [len, ...]
  const [q, k] = rest; // [head, q, k] -> [head, len, len]
  const out = new Float32Array(a * len * len);
  for (let h = 0; h < a; h++) for (let i = 0; i < len; i++) out.set(rowData.subarray((h * q + i) * k, (h * q + i) * k + len), (h * len + i) * len);
  return out;
}

/**
 * Every hook in `names` of batch row `row` (first `len` positions) against the reference cache
 * of that row run alone. Returns the offenders (empty when all agree).
 */
export function compareCache(cache: ActivationCache, names: string[], ref: Map<string, RefActivation>, row = 0, len?: number): Mismatch[] {
  const out: Mismatch[] = [];
  for (const name of names) {
    const r = ref.get(name);
    if (!r) throw new Error(`reference has no activation ${name}`);
    const t = cache.get(name as HookName);
    const n = len ?? (isAttnMap(name) ? r.shape[1] : r.shape[0]);
    const sliced = isAttnMap(name) ? [t.shape[1], n, n] : [n, ...t.shape.slice(2)];
    if (sliced.join() !== r.shape.join()) {
      out.push({ name: `${name}: shape [${t.shape}] does not fit reference [${r.shape}]`, index: -1, got: NaN, want: NaN });
      continue;
    }
    const got = rowSlice(name, t, row, n);
    const m = name === 'hook_logits' ? firstMismatch(name, got, r.data, LOGIT_TOL, false) : firstMismatch(name, got, r.data, ACT_TOL);
    if (m) out.push(m);
  }
  return out;
}

/** The [len, vocab] logits of batch row `row` (its first `len` positions), flattened. */
export function logitsRow(logits: tf.Tensor3D, row: number, len: number): Float32Array {
  return rowSlice('hook_logits', logits, row, len);
}
