/**
 * The kernel's nonfinite(p, n) (the load-time weight check) against a plain JS count: every
 * float32 class (NaN with any payload and sign, ±Infinity, ±max, subnormals, ±0) at every lane and
 * in the scalar tail, for lengths and alignments around the 4-float vector width.
 */
import { Arena } from '../../src/backend/gemm/arena.js';

const bits = [
  0x7fc00000, 0xffc00000, 0x7f800001, 0x7fffffff, 0xff800001, // NaNs (quiet, negative, signalling, max payload)
  0x7f800000, 0xff800000, // ±Infinity
  0x7f7fffff, 0xff7fffff, 0x00000001, 0x807fffff, 0x00000000, 0x80000000, 0x3f800000, 0x7f000000, // finite
];

test('nonfinite counts NaN and ±Infinity exactly, at any offset and length', () => {
  const arena = new Arena(1 << 16);
  const base = arena.alloc(4096);
  const u = new Uint32Array(arena.memory.buffer);
  let seed = 7;
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  let checked = 0;
  for (let trial = 0; trial < 400; trial++) {
    const off = Math.floor(rand() * 8), n = Math.floor(rand() * 40);
    const at = base / 4 + off;
    for (let i = 0; i < n + 8; i++) u[at + i] = bits[Math.floor(rand() * bits.length)];
    let want = 0;
    for (let i = 0; i < n; i++) if (!Number.isFinite(new Float32Array(u.buffer, (at + i) * 4, 1)[0])) want++;
    expect(arena.nonfinite(at * 4, n)).toBe(want);
    checked += want;
  }
  expect(checked).toBeGreaterThan(1000); // the trials did contain non-finite values
  // Large: one NaN at the very end of 1M floats, nothing else.
  const big = new Arena(4 << 20);
  const p = big.alloc(4 << 20);
  expect(big.nonfinite(p, 1 << 20)).toBe(0);
  new Uint32Array(big.memory.buffer)[p / 4 + (1 << 20) - 1] = 0x7fc00000;
  expect(big.nonfinite(p, 1 << 20)).toBe(1);
  expect(big.nonfinite(p, (1 << 20) - 1)).toBe(0);
});
