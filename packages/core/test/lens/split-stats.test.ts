/**
 * The lens statistics split over this thread and a worker (lens/split.ts) give the same numbers,
 * bit for bit, as one thread, and those numbers match a naive float64 reference (sorted top-k,
 * Math.exp sums, counted ranks).
 */
import { cellStats, expTable } from '../../src/lens/cell-stats.js';
import { splitCellStats } from '../../src/lens/split.js';
import { randArray } from '../gemm/reference.js';

const V = 997, R = 3, cells = 41, k = 5, outRow = R - 1; // 123 rows: over the split threshold
const logits = randArray(cells * R * V, 5, 6);
logits[7] = logits[3]; // a tie inside row 0's values
const targets = Array.from({ length: cells }, (_, p) => [p % V, (p * 31) % V]);

function reference(n: number): { top: number[]; logZ: number; entropy: number } {
  const row = Array.from(logits.subarray(n * V, (n + 1) * V));
  const mx = Math.max(...row);
  let S = 0, ez = 0;
  for (const l of row) {
    S += Math.exp(l - mx);
    ez += Math.exp(l - mx) * (l - mx);
  }
  const top = row.map((v, id) => ({ v, id })).sort((a, b) => b.v - a.v || a.id - b.id).slice(0, k).map((e) => e.id);
  return { top, logZ: mx + Math.log(S), entropy: Math.log(S) - ez / S };
}

test('split over a worker = one thread, bit for bit, for every statistic', () => {
  const one = cellStats(logits, cells, R, outRow, V, k, true, targets, expTable());
  const two = splitCellStats(logits, cells, R, outRow, V, k, true, targets, 2);
  for (const key of ['topIds', 'topLogp', 'entropy', 'kl', 'targetLogp', 'ranks'] as const) {
    expect(two[key]).toBeDefined();
    expect(two[key]!.length).toBe(one[key]!.length);
    expect(Buffer.from(two[key]!.buffer).equals(Buffer.from(one[key]!.buffer))).toBe(true);
  }
  // Again (the worker is reused; its half travels there and back each call).
  const again = splitCellStats(logits, cells, R, outRow, V, k, true, targets, 2);
  expect(Buffer.from(again.kl!.buffer).equals(Buffer.from(one.kl!.buffer))).toBe(true);
});

test('the numbers match a naive float64 reference: top-k ids, log-probabilities, entropy, ranks, KL ≥ 0', () => {
  const s = splitCellStats(logits, cells, R, outRow, V, k, true, targets, 2);
  for (const n of [0, 1, 60, cells * R - 1]) {
    const ref = reference(n);
    expect(Array.from(s.topIds!.subarray(n * k, (n + 1) * k))).toEqual(ref.top);
    expect(s.topLogp![n * k]).toBeCloseTo(logits[n * V + ref.top[0]] - ref.logZ, 10);
    expect(s.entropy![n]).toBeCloseTo(ref.entropy, 10);
    const p = Math.floor(n / R);
    targets[p].forEach((t, w) => {
      const tl = logits[n * V + t];
      let above = 0;
      for (let i = 0; i < V; i++) if (logits[n * V + i] > tl) above++;
      expect(s.ranks![n * 2 + w]).toBe(above + 1);
      expect(s.targetLogp![n * 2 + w]).toBeCloseTo(tl - ref.logZ, 10);
    });
  }
  for (let n = 0; n < cells * R; n++) expect(s.kl![n]).toBeGreaterThanOrEqual(0);
  for (let p = 0; p < cells; p++) expect(s.kl![p * R + outRow]).toBe(0); // the output row against itself
});

test('without stats or targets, and below the threshold (one thread), the same shapes', () => {
  const s = splitCellStats(logits, cells, R, outRow, V, k, false, undefined, 2);
  expect(s.entropy).toBeUndefined();
  expect(s.ranks).toBeUndefined();
  expect(s.topIds!.length).toBe(cells * R * k);
  const small = splitCellStats(logits, 3, R, outRow, V, k, true, targets.slice(0, 3), 2);
  expect(small.topIds!.length).toBe(3 * R * k);
});
