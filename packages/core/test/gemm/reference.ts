/**
 * Test helpers for the gemm kernel: a seeded RNG, a float64 reference written with plain loops
 * (independent of the library), and a way to lay out a problem in an Arena.
 */
import { padK, type Arena } from '../../src/backend/gemm/arena.js';

// Module-level alias: global lookups (Math) inside jest's vm context are slow in hot loops.
const { abs } = Math;

/** mulberry32: deterministic floats in [-scale, scale). */
export function rng(seed: number): (scale?: number) => number {
  let a = seed >>> 0;
  return (scale = 1) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return (u * 2 - 1) * scale;
  };
}

export function randArray(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r(scale);
  return out;
}

/**
 * Float64 reference of y = x·Wᵀ + bias with UNPADDED operands: x [M, K], W [N, K] (row n = the
 * weights of output n), bias [N] or undefined. Also returns Σ_k |x||w| per output, the scale of
 * float32 rounding error.
 */
export function refGemm(x: ArrayLike<number>, W: ArrayLike<number>, bias: ArrayLike<number> | undefined, M: number, N: number, K: number): { y: Float64Array; mag: Float64Array } {
  const y = new Float64Array(M * N);
  const mag = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      let a = bias ? abs(bias[n]) : 0;
      for (let k = 0; k < K; k++) {
        s += x[m * K + k] * W[n * K + k];
        a += abs(x[m * K + k] * W[n * K + k]);
      }
      y[m * N + n] = s;
      mag[m * N + n] = a;
    }
  }
  return { y, mag };
}

/** Index of the first element of `got` farther than rel·mag (+ a tiny absolute floor) from `want`, or -1. */
export function firstBad(got: ArrayLike<number>, want: ArrayLike<number>, mag: ArrayLike<number>, rel = 1e-6): number {
  if (got.length !== want.length) return -2;
  for (let i = 0; i < want.length; i++) {
    if (!(abs(got[i] - want[i]) <= rel * mag[i] + 1e-30)) return i;
  }
  return -1;
}

/** Index of the first element whose float32 bits differ, or -1. */
export function firstBitDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return -2;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

export const GUARD = 16; // floats of NaN around each buffer: a read past a row's end poisons the sum

/** A gemm problem laid out in an arena: W [N, Kp], x [M, Kp] zero padded, y [M, N], bias [N]; NaN guards between them. */
export interface Layout {
  W: number; x: number; y: number; bias: number;
  Kp: number; N: number; M: number; K: number;
}

export function layout(arena: Arena, x: Float32Array, W: Float32Array, bias: Float32Array | undefined, M: number, N: number, K: number): Layout {
  const Kp = padK(K);
  const nanBlock = () => {
    const at = arena.alloc(GUARD * 4);
    arena.f32().fill(NaN, at / 4, at / 4 + GUARD);
  };
  nanBlock();
  const Wa = arena.alloc(N * Kp * 4);
  nanBlock();
  const xa = arena.alloc(M * Kp * 4);
  nanBlock();
  const ya = arena.alloc(M * N * 4);
  nanBlock();
  let ba = 0;
  if (bias) {
    ba = arena.alloc(N * 4);
    nanBlock();
  }
  const f = arena.f32();
  for (let n = 0; n < N; n++) f.set(W.subarray(n * K, (n + 1) * K), Wa / 4 + n * Kp); // padding stays 0
  for (let m = 0; m < M; m++) f.set(x.subarray(m * K, (m + 1) * K), xa / 4 + m * Kp);
  if (bias) f.set(bias, ba / 4);
  return { W: Wa, x: xa, y: ya, bias: ba, Kp, N, M, K };
}

/** Copy of y [M, N] out of the arena. */
export function readY(arena: Arena, l: Layout): Float32Array {
  return arena.f32().slice(l.y / 4, l.y / 4 + l.M * l.N);
}

/** Float64 reference of a dense layer: x [M, K] @ W [K, N] (+ bias [N]) → [M, N]. */
export function refDense(x: ArrayLike<number>, W: ArrayLike<number>, bias: ArrayLike<number> | undefined, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let j = 0; j < N; j++) {
      let s = bias ? bias[j] : 0;
      for (let i = 0; i < K; i++) s += x[m * K + i] * W[i * N + j];
      y[m * N + j] = s;
    }
  }
  return y;
}

/** Largest |got − want| / max(1, |want|); Infinity when the lengths differ. */
export function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  return e;
}
