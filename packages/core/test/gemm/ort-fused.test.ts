/**
 * The onnxruntime engine's fused calls against float64 plain-loop references:
 *  - the attention core (ortAttention: the cache grown by heap copies, then QKᵀ · alpha + bias,
 *    softmax, · V in one session), with and without a past, with and without a bias, one new
 *    position and several; the grown cache's filled positions equal tf.concat of the heads bit for
 *    bit, its spare rows are zeros, later steps fill them in place, a branch gets its own buffer;
 *  - at GPT-2's head sizes and contexts where MLAS' sums over padded rows differ in the last bit
 *    from sums over the filled ones, the fused core equals the step-by-step path's calls bit for bit;
 *  - c_fc with gelu_new in the same call (applyGelu), sliced over the pool and whole;
 *  - the step-by-step kernels (softmax, gelu) give the fused calls' values bit for bit.
 */
import { initBackend, tf } from '../../src/backend/index.js';
import { ortAttention, ortBatchMatMul, ortEngine, ortLinear } from '../../src/backend/ort-engine.js';
import { CACHE_STEP } from '../../src/backend/copies.js';
import type { Linear } from '../../src/backend/linear.js';
import { firstBitDiff, maxRelErr, randArray, refDense } from './reference.js';

const { sqrt, exp, tanh, PI, max, abs } = Math;
const H = 3, Dh = 4, D = H * Dh;

beforeAll(async () => {
  await initBackend('wasm');
});

/** Float64 attention: z [B, S, D] from qkv [B, S, 3D], past k/v [B, H, P, Dh], bias [Bb, 1, S, T]. */
function refAttention(qkv: Float32Array, B: number, S: number, pk: Float32Array | undefined, pv: Float32Array | undefined, P: number, alpha: number, bias?: { data: Float32Array; rows: number }): Float64Array {
  const T = P + S;
  const z = new Float64Array(B * S * D);
  const key = (b: number, h: number, t: number, part: 1 | 2, e: number) =>
    t < P ? (part === 1 ? pk! : pv!)[((b * H + h) * P + t) * Dh + e] : qkv[(b * S + (t - P)) * 3 * D + part * D + h * Dh + e];
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let s = 0; s < S; s++) {
    const sc = new Float64Array(T);
    for (let t = 0; t < T; t++) {
      let dot = 0;
      for (let e = 0; e < Dh; e++) dot += qkv[(b * S + s) * 3 * D + h * Dh + e] * key(b, h, t, 1, e);
      sc[t] = alpha * dot + (bias ? bias.data[((bias.rows === 1 ? 0 : b) * S + s) * T + t] : 0);
    }
    const m = max(...sc);
    let sum = 0;
    for (let t = 0; t < T; t++) sum += sc[t] = sc[t] === -Infinity ? 0 : exp(sc[t] - m);
    for (let e = 0; e < Dh; e++) {
      let acc = 0;
      for (let t = 0; t < T; t++) acc += (sc[t] / sum) * key(b, h, t, 2, e);
      z[(b * S + s) * D + h * Dh + e] = acc;
    }
  }
  return z;
}

const heads = (qkv: tf.Tensor, part: number, B: number, S: number) => tf.transpose(tf.reshape(tf.slice(qkv, [0, 0, part * D], [B, S, D]), [B, S, H, Dh]), [0, 2, 1, 3]);

describe('the fused attention core', () => {
  test.each([
    ['decode step with a past', 2, 1, 5, false],
    ['prefill, no past, causal bias', 2, 4, 0, true],
    ['several new positions after a past, padding bias per row', 3, 3, 2, true],
  ] as const)('%s: z within 1e-5 of float64, the new cache = concat of the heads exactly', (_name, B, S, P, masked) => {
    const T = P + S, alpha = 1 / sqrt(Dh);
    const qkvA = randArray(B * S * 3 * D, 1 + B + S, 1);
    const pkA = P ? randArray(B * H * P * Dh, 2, 1) : undefined, pvA = P ? randArray(B * H * P * Dh, 3, 1) : undefined;
    let biasA: Float32Array | undefined;
    if (masked) {
      biasA = new Float32Array(B * S * T);
      for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let t = 0; t < T; t++) {
        biasA[(b * S + s) * T + t] = t > P + s ? -Infinity : t === 0 && b === 1 ? -1e9 : 0; // causal; row 1 pads key 0
      }
    }
    const qkv = tf.tensor3d(qkvA, [B, S, 3 * D]);
    const past = P ? { k: tf.tensor4d(pkA!, [B, H, P, Dh]), v: tf.tensor4d(pvA!, [B, H, P, Dh]) } : undefined;
    const bias = biasA ? tf.tensor4d(biasA, [B, 1, S, T]) : undefined;
    const before = tf.memory().numTensors;
    const r = ortAttention(qkv, past, H, alpha, bias)!;
    // A prefill's buffers hold exactly its positions; a decode step's get spare rows for the next ones.
    const C = P === 0 && S > 1 ? T : Math.ceil(T / CACHE_STEP) * CACHE_STEP;
    expect(r.z.shape).toEqual([B, S, D]);
    expect(r.k.shape).toEqual([B, H, C, Dh]);
    expect(r.length).toBe(T);
    expect(maxRelErr(r.z.dataSync(), refAttention(qkvA, B, S, pkA, pvA, P, alpha, biasA && { data: biasA, rows: B }))).toBeLessThan(1e-5);
    for (const [got, part, p] of [[r.k, 1, past?.k], [r.v, 2, past?.v]] as const) {
      const want = tf.tidy(() => {
        const cat = p ? tf.concat([p, heads(qkv, part, B, S)], 2) : heads(qkv, part, B, S);
        return C > T ? tf.concat([cat, tf.zeros([B, H, C - T, Dh])], 2) : cat; // spare rows: zeros
      });
      expect(firstBitDiff(got.dataSync() as Float32Array, want.dataSync() as Float32Array)).toBe(-1);
      want.dispose();
    }
    tf.dispose([r.z, r.k, r.v]);
    expect(tf.memory().numTensors).toBe(before); // nothing else left behind
    tf.dispose([qkv, ...(bias ? [bias] : []), ...(past ? [past.k, past.v] : [])]);
  });

  test('decode steps fill the spare rows in place; a second step from the same past (a branch) gets its own buffer and leaves the first one\'s intact', () => {
    const B = 2, P = 3, alpha = 0.5;
    const past = { k: tf.tensor4d(randArray(B * H * P * Dh, 31, 1), [B, H, P, Dh]), v: tf.tensor4d(randArray(B * H * P * Dh, 32, 1), [B, H, P, Dh]) };
    const q1 = tf.tensor3d(randArray(B * 3 * D, 33, 1), [B, 1, 3 * D]), q2 = tf.tensor3d(randArray(B * 3 * D, 34, 1), [B, 1, 3 * D]), q3 = tf.tensor3d(randArray(B * 3 * D, 35, 1), [B, 1, 3 * D]);
    const s1 = ortAttention(q1, past, H, alpha, undefined)!; // P = 3 filled, no room: a new buffer
    expect(s1.k).not.toBe(past.k);
    const s2 = ortAttention(q2, s1, H, alpha, undefined)!; // room: in place
    expect(s2.k).toBe(s1.k);
    expect(s2.v).toBe(s1.v);
    expect(s2.length).toBe(P + 2);
    const kAfterS2 = (s2.k.dataSync() as Float32Array).slice();
    const b3 = ortAttention(q3, s1, H, alpha, undefined)!; // from s1 again: s2 already wrote position 4
    expect(b3.k).not.toBe(s1.k);
    expect(firstBitDiff(s2.k.dataSync() as Float32Array, kAfterS2)).toBe(-1); // s2's keys untouched
    // Each result is the contiguous computation's, bit for bit: keys and z.
    const kCat = (qs: tf.Tensor[]) => tf.tidy(() => tf.concat([past.k, ...qs.map((q) => heads(q, 1, B, 1))], 2));
    for (const [got, qs] of [[s2, [q1, q2]], [b3, [q1, q3]]] as const) {
      const want = kCat([...qs]);
      const filled = tf.slice(got.k, [0, 0, 0, 0], [B, H, P + 2, Dh]);
      expect(firstBitDiff(filled.dataSync() as Float32Array, want.dataSync() as Float32Array)).toBe(-1);
      tf.dispose([want, filled]);
      const last = qs[1];
      const pk = tf.tidy(() => tf.concat([past.k, heads(qs[0], 1, B, 1)], 2)), pv = tf.tidy(() => tf.concat([past.v, heads(qs[0], 2, B, 1)], 2));
      const ref = ortAttention(last, { k: pk, v: pv }, H, alpha, undefined)!; // from a contiguous past
      expect(firstBitDiff(got.z.dataSync() as Float32Array, ref.z.dataSync() as Float32Array)).toBe(-1);
      tf.dispose([pk, pv, ref.z, ref.k, ref.v]);
    }
    tf.dispose([past.k, past.v, q1, q2, q3, s1.z, s1.k, s1.v, s2.z, b3.z, b3.k, b3.v]);
  });

  test.each([[1, 130], [8, 122], [2, 302], [1, 40]])('GPT-2 head sizes, %i rows after %i positions: the fused core = the step-by-step calls (QKᵀ over the buffer, cut, softmax, zero padding, · V) bit for bit', (B, P) => {
    const h = 12, dh = 64, d = h * dh, alpha = 1 / sqrt(dh), T = P + 1;
    const C = Math.ceil(T / CACHE_STEP) * CACHE_STEP;
    const kv = (seed: number) => tf.tidy(() => tf.concat([tf.tensor4d(randArray(B * h * P * dh, seed, 1), [B, h, P, dh]), tf.zeros([B, h, C - P, dh])], 2) as tf.Tensor4D);
    const past = { k: kv(41), v: kv(42), length: P };
    const qkv = tf.tensor3d(randArray(B * 3 * d, 43, 1), [B, 1, 3 * d]);
    const r = ortAttention(qkv, past, h, alpha, undefined)!;
    expect(r.k).toBe(past.k); // room: in place
    const z = tf.tidy(() => {
      const q = tf.reshape(tf.slice(qkv, [0, 0, 0], [B, 1, d]), [B, h, 1, dh]);
      const scores = tf.slice(ortBatchMatMul(q, r.k, true, alpha), [0, 0, 0, 0], [B, h, 1, T]);
      const pattern = ortEngine.softmax!(scores)!;
      return tf.reshape(ortBatchMatMul(tf.pad(pattern, [[0, 0], [0, 0], [0, 0], [0, C - T]]), r.v, false), [B, 1, d]);
    });
    expect(firstBitDiff(r.z.dataSync() as Float32Array, z.dataSync() as Float32Array)).toBe(-1);
    tf.dispose([past.k, past.v, qkv, r.z, z]);
  });

  test('under a gradient tape it declines (the forward pass takes the tfjs ops)', () => {
    const qkv = tf.ones([1, 1, 3 * D]);
    const g = tf.grad((x: tf.Tensor) => {
      expect(ortAttention(x, undefined, H, 1, undefined)).toBeUndefined();
      return tf.sum(x);
    })(qkv);
    tf.dispose([qkv, g]);
  });
});

describe('c_fc with gelu_new in one call', () => {
  const K = 37, N = 100;
  const W = randArray(K * N, 11, 0.5), b = randArray(N, 12, 1);
  const gelu = (x: number) => 0.5 * x * (1 + tanh(sqrt(2 / PI) * (x + 0.044715 * x ** 3)));
  let sliced: Linear, whole: Linear;
  beforeAll(() => {
    const prev = process.env.SP_THREADS;
    process.env.SP_THREADS = '3';
    sliced = ortLinear(K, N, 'in-out', Float32Array.from(W), Float32Array.from(b), false, 'fc', undefined, true, true);
    process.env.SP_THREADS = '1';
    whole = ortLinear(K, N, 'in-out', Float32Array.from(W), Float32Array.from(b), false, 'fc', undefined, true, true);
    if (prev === undefined) delete process.env.SP_THREADS;
    else process.env.SP_THREADS = prev;
  });
  afterAll(() => {
    sliced.dispose();
    whole.dispose();
  });

  test.each([1, 7])('%i rows: within 1e-5 of float64 gelu_new(x W + b) (absolute, outputs near 0 included); = gelu(apply(x)) with the engine kernel bit for bit', (M) => {
    const xs = randArray(M * K, 20 + M, 2);
    const want = refDense(xs, W, b, M, K, N).map(gelu);
    const x = tf.tensor2d(xs, [M, K]);
    for (const layer of [sliced, whole]) {
      const g = layer.applyGelu!(x)!;
      const got = g.dataSync();
      let err = 0;
      for (let i = 0; i < got.length; i++) err = max(err, abs(got[i] - want[i]) / max(1, abs(want[i])));
      expect(err).toBeLessThan(1e-5);
      const y = layer.apply(x);
      const stepwise = ortEngine.gelu!(y)!;
      expect(firstBitDiff(got as Float32Array, stepwise.dataSync() as Float32Array)).toBe(-1);
      tf.dispose([g, y, stepwise]);
    }
    x.dispose();
  });

  test('a layer built without gelu (c_attn, c_proj) has no fused gelu', () => {
    const plain = ortLinear(K, N, 'in-out', Float32Array.from(W), Float32Array.from(b), false);
    const x = tf.ones([1, K]);
    expect(plain.applyGelu!(x)).toBeUndefined();
    tf.dispose(x);
    plain.dispose();
  });

  test('under a gradient tape the fused gelu declines (the forward pass takes apply and gelu)', () => {
    const x = tf.ones([1, K]);
    tf.grad((t: tf.Tensor) => {
      expect(whole.applyGelu!(t)).toBeUndefined();
      return tf.sum(whole.apply(t));
    })(x).dispose();
    x.dispose();
  });
});
