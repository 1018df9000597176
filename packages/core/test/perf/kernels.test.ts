/**
 * The fused LayerNorm / gelu_new kernels (backend/kernels.ts) against float64 formulas, on the
 * backends that have them (wasm, cpu), including shapes the forward pass uses ([b, s, d]).
 */
import { initBackend, tf } from '@sp/core';
import { geluNew, layerNorm, tanhF32 } from '../../src/backend/kernels.js';

function rand(n: number, seed: number, scale = 3): Float32Array {
  let x = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out[i] = (x / 2147483648 - 0.5) * 2 * scale;
  }
  return out;
}

function refLayerNorm(x: Float32Array, w: Float32Array, b: Float32Array, d: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += d) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[o + i] / d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[o + i] - mean) ** 2 / d;
    for (let i = 0; i < d; i++) out[o + i] = ((x[o + i] - mean) / Math.sqrt(v + eps)) * w[i] + b[i];
  }
  return out;
}

const refGelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe.each(['wasm', 'cpu'])('fused kernels on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  test('LayerNorm matches the float64 formula (several rows, d = 768, large offsets)', () => {
    const [b, s, d] = [2, 3, 768];
    const xs = rand(b * s * d, 1).map((v, i) => v + (i % 7) * 10); // non-zero means per row
    const w = rand(d, 2, 1);
    const bias = rand(d, 3, 0.5);
    const got = tf.tidy(() => layerNorm(tf.tensor3d(xs, [b, s, d]), tf.tensor1d(w), tf.tensor1d(bias), 1e-5).dataSync());
    expect(tf.getBackend()).toBe(backend);
    expect(maxDiff(got, refLayerNorm(xs, w, bias, d, 1e-5))).toBeLessThan(2e-5);
    expect(Math.abs(got[0])).toBeGreaterThan(0); // not a zero tensor
  });

  test('gelu_new matches 0.5x(1 + tanh(...)) including large |x| (no NaN from exp overflow)', () => {
    const xs = new Float32Array([...rand(3072, 4, 6), -80, -20, 0, 20, 80, 1e-7]);
    const got = tf.tidy(() => geluNew(tf.tensor2d(xs, [1, xs.length])).dataSync());
    const ref = Array.from(xs, refGelu);
    expect(maxDiff(got, ref)).toBeLessThan(1e-5);
    expect(got.every((v) => Number.isFinite(v))).toBe(true);
  });

  test('fused kernels keep tf.memory flat', () => {
    const x = tf.ones([1, 4, 8]);
    const w = tf.ones([8]);
    const b = tf.zeros([8]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) {
      tf.tidy(() => {
        geluNew(layerNorm(x, w as tf.Tensor1D, b as tf.Tensor1D, 1e-5));
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w, b]);
  });
});

test('tanhF32 (the rational approximation gelu uses) is within 3e-7 of Math.tanh everywhere', () => {
  let worst = 0;
  for (let i = 0; i <= 200000; i++) {
    const x = -12 + (24 * i) / 200000;
    worst = Math.max(worst, Math.abs(tanhF32(x) - Math.tanh(x)));
  }
  expect(worst).toBeLessThan(3e-7);
  expect(worst).toBeGreaterThan(0); // an approximation, not Math.tanh itself
  expect([tanhF32(0), tanhF32(50), tanhF32(-50)]).toEqual([0, 1, -1]);
});
