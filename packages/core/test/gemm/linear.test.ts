/**
 * PackedLinear (weights in an Arena, sp's kernel), TensorLinear (tfjs matmul) and the onnxruntime
 * layer (W given [in, out], read back from onnxruntime; or [out, in], kept as the unembedding is) on
 * the same random W [in, out] and bias, against float64 loops: apply, outputWeights, weight,
 * rowNorms, colNorms; dispose; no leaked tensors.
 */
import { initBackend, tf } from '../../src/backend/index.js';
import { Arena, padK } from '../../src/backend/gemm/arena.js';
import { TensorLinear, type Linear } from '../../src/backend/linear.js';
import { PackedLinear } from '../../src/backend/gemm/packed-linear.js';
import { ortLinear } from '../../src/backend/ort-engine.js';
import { firstBitDiff, maxRelErr, randArray, refDense } from './reference.js';

const { sqrt } = Math;
const K = 37; // padded to 48
const N = 53;

const W = randArray(K * N, 7, 0.5); // [in, out], HF Conv1D layout
const bias = randArray(N, 8, 1);

/** Float64 reference of x [M, K] @ W + bias → [M, N]. */
const refApply = (x: ArrayLike<number>, M: number, withBias = true): Float64Array => refDense(x, W, withBias ? bias : undefined, M, K, N);

function packed(withBias = true): { layer: PackedLinear; arena: Arena } {
  const Kp = padK(K);
  const arena = new Arena(N * Kp * 4 + N * 4 + 4096);
  const w = arena.alloc(N * Kp * 4);
  const b = withBias ? arena.alloc(N * 4) : 0;
  const f = arena.f32();
  for (let j = 0; j < N; j++) for (let i = 0; i < K; i++) f[w / 4 + j * Kp + i] = W[i * N + j]; // row j = column j of W
  if (withBias) f.set(bias, b / 4);
  return { layer: new PackedLinear(arena, w, b, K, N), arena };
}

const tensor = (withBias = true): TensorLinear => new TensorLinear(tf.tensor2d(W, [K, N]), withBias ? tf.tensor1d(bias) : undefined);

/** W [out, in] (the stored layout of the tied unembedding). */
const wOutIn = (): Float32Array => {
  const t = new Float32Array(K * N);
  for (let i = 0; i < K; i++) for (let j = 0; j < N; j++) t[j * K + i] = W[i * N + j];
  return t;
};
const ortInOut = (withBias = true) => ortLinear(K, N, 'in-out', Float32Array.from(W), withBias ? Float32Array.from(bias) : undefined, false);
const ortOutIn = (withBias = true) => ortLinear(K, N, 'out-in', wOutIn(), withBias ? Float32Array.from(bias) : undefined, true);

beforeAll(async () => {
  await initBackend(); // default: wasm
});

test('hand-computed sanity: the reference of a 2×2 layer', () => {
  // x = [1, 2], W = [[1, 2], [3, 4]] ([in, out]), b = [10, 20] → [1 + 6 + 10, 2 + 8 + 20]
  const x = [1, 2], w = [1, 2, 3, 4], b = [10, 20];
  const y = [0, 1].map((j) => b[j] + x[0] * w[0 * 2 + j] + x[1] * w[1 * 2 + j]);
  expect(y).toEqual([17, 30]);
  // And maxRelErr notices a wrong value.
  expect(maxRelErr([17, 30.001], y)).toBeGreaterThan(1e-5);
});

const impls: [string, string, (withBias: boolean) => Linear][] = [];
for (const backend of ['wasm', 'cpu']) {
  impls.push([backend, 'PackedLinear', (withBias) => packed(withBias).layer]);
  impls.push([backend, 'TensorLinear', (withBias) => tensor(withBias)]);
  impls.push([backend, 'onnxruntime, W [in, out] read back', (withBias) => ortInOut(withBias)]);
  impls.push([backend, 'onnxruntime, W [out, in] kept', (withBias) => ortOutIn(withBias)]);
}

// PackedLinear reads and writes the tfjs wasm heap directly on wasm, JS arrays on cpu: both.
describe.each(impls)('on %s: %s (K=37 → padded 48, N=53)', (backend, _name, make) => {
  let layer: Linear;
  beforeAll(async () => {
    await initBackend(backend);
    expect(tf.getBackend()).toBe(backend);
    layer = make(true);
  });
  afterAll(async () => {
    layer.dispose();
    await initBackend('wasm');
  });

  test('dimensions', () => {
    expect(layer.inDim).toBe(K);
    expect(layer.outDim).toBe(N);
  });

  test('apply on [2, 3, K]: shape [2, 3, N], values within 1e-5 of float64', () => {
    const xs = randArray(2 * 3 * K, 9, 2);
    const x = tf.tensor3d(xs, [2, 3, K]);
    const y = layer.apply(x);
    expect(y.shape).toEqual([2, 3, N]);
    expect(y.dtype).toBe('float32');
    const err = maxRelErr(y.dataSync(), refApply(xs, 6));
    expect(err).toBeLessThan(1e-5);
    tf.dispose([x, y]);
  });

  test('apply on [K] (no leading dims) and [1, 1, K]', () => {
    const xs = randArray(K, 10, 2);
    const want = refApply(xs, 1);
    for (const shape of [[K], [1, 1, K]]) {
      const x = tf.tensor(xs, shape);
      const y = layer.apply(x);
      expect(y.shape).toEqual([...shape.slice(0, -1), N]);
      expect(maxRelErr(y.dataSync(), want)).toBeLessThan(1e-5);
      tf.dispose([x, y]);
    }
  });

  test('apply on an empty batch [0, K] gives [0, N]', () => {
    const x = tf.zeros([0, K]);
    const y = layer.apply(x);
    expect(y.shape).toEqual([0, N]);
    expect(y.size).toBe(0);
    tf.dispose([x, y]);
  });

  test('apply without bias', () => {
    const l = make(false);
    const xs = randArray(4 * K, 11, 2);
    const x = tf.tensor2d(xs, [4, K]);
    const y = l.apply(x);
    expect(maxRelErr(y.dataSync(), refApply(xs, 4, false))).toBeLessThan(1e-5);
    tf.dispose([x, y]);
    l.dispose();
  });

  test('outputWeights(ids) = rows W[:, j] for each id (repeats, any order), exactly', () => {
    const ids = [0, 52, 7, 7, 30];
    const t = tf.tensor1d(ids, 'int32');
    const out = layer.outputWeights(t);
    expect(out.shape).toEqual([ids.length, K]);
    const got = out.dataSync();
    const want = new Float32Array(ids.length * K);
    ids.forEach((j, r) => {
      for (let i = 0; i < K; i++) want[r * K + i] = W[i * N + j];
    });
    expect(firstBitDiff(got as Float32Array, want)).toBe(-1);
    tf.dispose([t, out]);
  });

  test('weight() = W [in, out] exactly, a new tensor the caller owns', () => {
    const w = layer.weight();
    expect(w.shape).toEqual([K, N]);
    expect(firstBitDiff(w.dataSync() as Float32Array, W)).toBe(-1);
    w.dispose();
    const again = layer.weight(); // the layer is unaffected by disposing its copy
    expect(firstBitDiff(again.dataSync() as Float32Array, W)).toBe(-1);
    again.dispose();
  });

  test('rowNorms = ‖W[i, :]‖ (length in), colNorms = ‖W[:, j]‖ (length out); cached', () => {
    const rows = new Float64Array(K), cols = new Float64Array(N);
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < N; j++) {
        rows[i] += W[i * N + j] ** 2;
        cols[j] += W[i * N + j] ** 2;
      }
    }
    const r = layer.rowNorms();
    const c = layer.colNorms();
    expect(r.length).toBe(K);
    expect(c.length).toBe(N);
    expect(maxRelErr(r, rows.map(sqrt))).toBeLessThan(1e-6);
    expect(maxRelErr(c, cols.map(sqrt))).toBeLessThan(1e-6);
    expect(layer.rowNorms()).toBe(r);
    expect(layer.colNorms()).toBe(c);
  });

  test('no tensors leak over 100 apply calls (in tf.tidy, or disposed by hand)', () => {
    const x = tf.tensor2d(randArray(3 * K, 12, 1), [3, K]);
    layer.apply(x).dispose(); // warm-up
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) tf.tidy(() => void layer.apply(x).sum());
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < 100; i++) layer.apply(x).dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});

describe('PackedLinear only (wasm)', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  test('same values as TensorLinear on the same W and bias (within 1e-5)', () => {
    const p = packed().layer, t = tensor();
    const x = tf.tensor2d(randArray(6 * K, 13, 2), [6, K]);
    const a = p.apply(x), b = t.apply(x);
    expect(maxRelErr(a.dataSync(), b.dataSync())).toBeLessThan(1e-5);
    tf.dispose([x, a, b]);
    p.dispose();
    t.dispose();
  });

  test('batch invariance through apply: each row of a [2, 3, K] batch equals apply on that row alone, bit for bit', () => {
    const p = packed().layer;
    const xs = randArray(6 * K, 14, 2);
    const x = tf.tensor3d(xs, [2, 3, K]);
    const y = p.apply(x);
    const batch = y.dataSync() as Float32Array;
    for (let m = 0; m < 6; m++) {
      const xm = tf.tensor2d(xs.slice(m * K, (m + 1) * K), [1, K]);
      const ym = p.apply(xm);
      expect(firstBitDiff(ym.dataSync() as Float32Array, batch.subarray(m * N, (m + 1) * N))).toBe(-1);
      tf.dispose([xm, ym]);
    }
    tf.dispose([x, y]);
  });

  test('threaded apply (SP_THREADS=2, work over the threshold) = single-threaded, bit for bit', () => {
    const saved = process.env.SP_THREADS;
    try {
      const p = packed().layer;
      const M = 70; // 70 × 53 × 48 multiply-adds: threaded
      const xs = randArray(M * K, 15, 2);
      const x = tf.tensor2d(xs, [M, K]);
      process.env.SP_THREADS = '1';
      const one = p.apply(x);
      process.env.SP_THREADS = '2';
      const two = p.apply(x);
      expect(firstBitDiff(two.dataSync() as Float32Array, one.dataSync() as Float32Array)).toBe(-1);
      expect(maxRelErr(one.dataSync(), refApply(xs, M))).toBeLessThan(1e-5);
      tf.dispose([x, one, two]);
    } finally {
      if (saved === undefined) delete process.env.SP_THREADS;
      else process.env.SP_THREADS = saved;
    }
  });

  test('the padding of x is zeroed even when the scratch space held garbage', () => {
    const { layer: p, arena } = packed();
    const xs = randArray(4 * K, 16, 2);
    // Poison the scratch area the next apply will use.
    const at = arena.scratch(1 << 14);
    arena.f32().fill(NaN, at / 4, at / 4 + (1 << 12));
    const x = tf.tensor2d(xs, [4, K]);
    const y = p.apply(x);
    expect(maxRelErr(y.dataSync(), refApply(xs, 4))).toBeLessThan(1e-5);
    tf.dispose([x, y]);
  });

  test('wrong input width and out-of-range ids throw', () => {
    const p = packed().layer;
    const x = tf.zeros([2, K + 1]);
    expect(() => p.apply(x)).toThrow(/37/);
    for (const bad of [-1, N]) {
      const ids = tf.tensor1d([0, bad], 'int32');
      expect(() => p.outputWeights(ids)).toThrow(RangeError);
      ids.dispose();
    }
    x.dispose();
  });

  test('apply, outputWeights and weight after dispose throw', () => {
    const p = packed().layer;
    p.dispose();
    const x = tf.zeros([1, K]);
    const ids = tf.tensor1d([0], 'int32');
    const before = tf.memory().numTensors;
    expect(() => p.apply(x)).toThrow(/after dispose/);
    expect(() => p.outputWeights(ids)).toThrow(/after dispose/);
    expect(() => p.weight()).toThrow(/after dispose/);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, ids]);
  });
});

test('TensorLinear after dispose throws (its tensors are gone)', () => {
  const t = tensor();
  const x = tf.zeros([1, K]);
  t.dispose();
  expect(() => t.apply(x)).toThrow();
  x.dispose();
});
