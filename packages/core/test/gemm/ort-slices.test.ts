/**
 * The onnxruntime engine's two less common layer forms, against float64 plain-loop references:
 *  - a layer cut into column slices over the worker pool (ort-pool.ts): three slices of uneven
 *    width (SP_THREADS=3: this thread and two workers), one row (written in place), a few rows, and
 *    more rows than one chunk of the shared regions holds;
 *  - the tied unembedding's form: W [out, in] prepacked in onnxruntime, its rows (token
 *    embeddings) and norms read from the file, here a reader over the same floats that counts calls.
 */
import { initBackend, tf } from '../../src/backend/index.js';
import { ortLinear } from '../../src/backend/ort-engine.js';
import type { Linear } from '../../src/backend/linear.js';
import { firstBitDiff, maxRelErr, randArray, refDense } from './reference.js';

const { sqrt } = Math;
const K = 37;
const N = 100; // three slices at SP_THREADS=3: 48 + 48 + 4 columns

const W = randArray(K * N, 21, 0.5); // [in, out]
const bias = randArray(N, 22, 1);

/** Float64 reference of x [M, K] @ W + bias → [M, N]. */
const refApply = (x: ArrayLike<number>, M: number, withBias = true): Float64Array => refDense(x, W, withBias ? bias : undefined, M, K, N);

function withThreads<T>(n: string, fn: () => T): T {
  const prev = process.env.SP_THREADS;
  process.env.SP_THREADS = n;
  try {
    return fn();
  } finally {
    if (prev === undefined) delete process.env.SP_THREADS;
    else process.env.SP_THREADS = prev;
  }
}

function applyRows(layer: Linear, M: number, seed: number): { got: Float32Array; xs: Float32Array } {
  const xs = randArray(M * K, seed, 2);
  const x = tf.tensor2d(xs, [M, K]);
  const y = layer.apply(x);
  expect(y.shape).toEqual([M, N]);
  const got = y.dataSync() as Float32Array;
  tf.dispose([x, y]);
  return { got, xs };
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('a layer in three column slices (this thread + two pool workers)', () => {
  let layer: Linear, noBias: Linear;
  beforeAll(() => {
    layer = withThreads('3', () => ortLinear(K, N, 'in-out', Float32Array.from(W), Float32Array.from(bias), false));
    noBias = withThreads('3', () => ortLinear(K, N, 'in-out', Float32Array.from(W), undefined, false));
  });
  afterAll(() => {
    layer.dispose();
    noBias.dispose();
  });

  test.each([1, 3, 64])('apply on %i rows: within 1e-5 of float64, with and without bias', (M) => {
    const { got, xs } = applyRows(layer, M, 30 + M);
    expect(maxRelErr(got, refApply(xs, M, true))).toBeLessThan(1e-5);
    const b = applyRows(noBias, M, 40 + M);
    expect(maxRelErr(b.got, refApply(b.xs, M, false))).toBeLessThan(1e-5);
  });

  test('more rows than one chunk of the shared regions (8000 × 37 floats > 2^18): every row right', () => {
    const M = 8000;
    const { got, xs } = applyRows(layer, M, 50);
    const want = refApply(xs, M, true);
    expect(maxRelErr(got, want)).toBeLessThan(1e-5);
    // Rows on both sides of the chunk boundary (7084 rows per chunk here).
    for (const m of [0, 7083, 7084, M - 1]) expect(maxRelErr(got.subarray(m * N, (m + 1) * N), want.subarray(m * N, (m + 1) * N))).toBeLessThan(1e-5);
  });

  test('weight() = W exactly (the bias-free product of one-hot rows, assembled from the slices)', () => {
    for (const l of [layer, noBias]) {
      const w = l.weight();
      expect(firstBitDiff(w.dataSync() as Float32Array, W)).toBe(-1);
      w.dispose();
    }
  });

  test('the same values as the one-session layer (SP_THREADS=1), bit for bit', () => {
    const whole = withThreads('1', () => ortLinear(K, N, 'in-out', Float32Array.from(W), Float32Array.from(bias), false));
    const xs = randArray(5 * K, 60, 2);
    const x = tf.tensor2d(xs, [5, K]);
    const a = layer.apply(x), b = whole.apply(x);
    expect(firstBitDiff(a.dataSync() as Float32Array, b.dataSync() as Float32Array)).toBe(-1);
    tf.dispose([x, a, b]);
    whole.dispose();
  });

  test('no tensors leak over 200 calls; used after dispose is a clear error', () => {
    const x = tf.tensor2d(randArray(2 * K, 61, 1), [2, K]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 200; i++) tf.tidy(() => void layer.apply(x));
    expect(tf.memory().numTensors).toBe(before);
    const l = withThreads('3', () => ortLinear(K, N, 'in-out', Float32Array.from(W), undefined, false));
    l.dispose();
    expect(() => l.apply(x)).toThrow(/after dispose/);
    x.dispose();
  });
});

// SP_THREADS=1: one session (as the real unembedding, too large to slice); 2: two row slices.
describe.each(['1', '2'])('the unembedding form (SP_THREADS=%s): W [out, in] prepacked, rows read from the file', (threads) => {
  const stored = new Float32Array(K * N); // [out, in]
  for (let i = 0; i < K; i++) for (let j = 0; j < N; j++) stored[j * K + i] = W[i * N + j];
  let reads = 0;
  const fromFile = (start: number, count: number) => {
    reads++;
    return stored.slice(start, start + count);
  };
  let layer: Linear;
  beforeAll(() => {
    // The buffer handed over is not kept: overwrite it after loading to show nothing reads it.
    const w = Float32Array.from(stored);
    layer = withThreads(threads, () => ortLinear(K, N, 'out-in', w, undefined, false, 'unembed', fromFile));
    w.fill(NaN);
  });
  afterAll(() => layer.dispose());

  test('apply on 1 and 9 rows: within 1e-5 of float64', () => {
    for (const M of [1, 9]) {
      const { got, xs } = applyRows(layer, M, 70 + M);
      expect(maxRelErr(got, refApply(xs, M, false))).toBeLessThan(1e-5);
    }
  });

  test('outputWeights(ids) = W[:, j] exactly, one file read per id', () => {
    const ids = [0, 99, 7, 7, 42];
    const t = tf.tensor1d(ids, 'int32');
    const r0 = reads;
    const out = layer.outputWeights(t);
    expect(reads - r0).toBe(ids.length);
    const want = new Float32Array(ids.length * K);
    ids.forEach((j, r) => {
      for (let i = 0; i < K; i++) want[r * K + i] = W[i * N + j];
    });
    expect(firstBitDiff(out.dataSync() as Float32Array, want)).toBe(-1);
    tf.dispose([t, out]);
  });

  test('weight() = W [in, out] exactly; row and column norms from float64 sums', () => {
    const w = layer.weight();
    expect(firstBitDiff(w.dataSync() as Float32Array, W)).toBe(-1);
    w.dispose();
    const rows = new Float64Array(K), cols = new Float64Array(N);
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < N; j++) {
        rows[i] += W[i * N + j] ** 2;
        cols[j] += W[i * N + j] ** 2;
      }
    }
    expect(maxRelErr(layer.rowNorms(), rows.map(sqrt))).toBeLessThan(1e-6);
    expect(maxRelErr(layer.colNorms(), cols.map(sqrt))).toBeLessThan(1e-6);
  });
});
