/**
 * Gradients through the model and input attribution against the float64 reference: every gradient
 * compared with central finite differences of refForward (float64, so the differences are exact to
 * ~1e-9), on the F32 and F16 fixtures, with sp's packed wasm matmul and with tfjs matmuls
 * (SP_ENGINE=tfjs), and the onnxruntime engine's the same way. Integrated gradients: completeness (Σ ≈ target(x) − target(0), the error
 * shrinking with steps) and batched rows = one row at a time.
 */
import { gpt2, gradientWrt, gradientWrtAsync, inputAttribution, inputAttributionAsync, tf, type GPT2 } from '@sp/core';
import { refForward, type RefWeights } from '../reference/gpt2-ref.js';
import { readSafetensorsDir } from '../reference/safetensors-mini.js';
import { engineInfo } from '@sp/core/internals';
import { FIXTURES, fixtureDir } from '../helpers/fixtures.js';
import { ENGINES, withEngine } from '../helpers/engines.js';
import { expectSpError } from '../helpers/errors.js';
import { randomIds } from '../helpers/random-gpt2.js';

const ids = randomIds(5, 321);
const TARGET = 318;

/** Reference logit(TARGET) at `pos` with token embeddings `emb` [s·d] (position embeddings added). */
function refTarget(ref: RefWeights, emb: ArrayLike<number>, pos: number, target = TARGET): number {
  const d = ref.config.dModel;
  const embeds = ids.map((_, p) => ({ pos: p, vector: Array.from({ length: d }, (_, i) => emb[p * d + i]) }));
  return refForward(ref, ids, { embeds }).logits[pos][target];
}

/** Central difference of refTarget at `at` along direction `u` (both [s·d]). */
function refDirectional(ref: RefWeights, at: ArrayLike<number>, u: ArrayLike<number>, pos: number, h = 1e-4): number {
  const plus = Float64Array.from(at, (v, i) => v + h * u[i]);
  const minus = Float64Array.from(at, (v, i) => v - h * u[i]);
  return (refTarget(ref, plus, pos) - refTarget(ref, minus, pos)) / (2 * h);
}

function refEmbeddings(ref: RefWeights): Float64Array {
  const d = ref.config.dModel;
  const wte = ref.get('wte.weight');
  return Float64Array.from({ length: ids.length * d }, (_, k) => wte[ids[Math.floor(k / d)] * d + (k % d)]);
}

/** Direction e_p at position p only (zeros elsewhere): the derivative along it is Σ_d g_p ⊙ e_p. */
function onlyAt(e: Float64Array, p: number, d: number): Float64Array {
  return Float64Array.from(e, (v, k) => (Math.floor(k / d) === p ? v : 0));
}

function expectClose(got: number[], want: number[], tol: number): void {
  const scale = Math.max(1, ...want.map(Math.abs));
  got.forEach((g, i) => {
    if (!(Math.abs(g - want[i]) <= tol * scale)) throw new Error(`index ${i}: got ${g}, want ${want[i]} (tol ${tol * scale})`);
  });
}

// Every engine on the first fixture; the second on the two native kernels (tfjs' gradients are tfjs' own).
const CASES = FIXTURES.flatMap((f, i) => ENGINES.filter((e) => i === 0 || e !== 'tfjs').map((e) => [`${f}, engine ${e}`, f, e] as const));

describe.each(CASES)('%s', (_label, fixture, engine) => {
  let model: GPT2;
  let ref: RefWeights;
  let e: Float64Array;
  let d: number;

  beforeAll(async () => {
    ref = readSafetensorsDir(fixtureDir(fixture));
    d = ref.config.dModel;
    e = refEmbeddings(ref);
    model = await withEngine(engine, () => gpt2(fixtureDir(fixture), { backend: process.env.SP_BACKEND ?? 'wasm' }));
    expect(engineInfo(model).engine).toBe(engine);
  });
  afterAll(() => model?.dispose());

  test.each([4, 2])('grad-x-input at position %i = the reference directional derivative along each e_p', (pos) => {
    inputAttribution(model, ids, { targetId: TARGET, position: pos, method: 'grad' }); // the first backward pass keeps each packed layer's W tensor
    const before = tf.memory().numTensors;
    const r = inputAttribution(model, ids, { targetId: TARGET, position: pos, method: 'grad-x-input' });
    expect(tf.memory().numTensors).toBe(before);
    const want = ids.map((_, p) => refDirectional(ref, e, onlyAt(e, p, d), pos));
    expectClose(r.attributions, want, 2e-4);
    expect(r.position).toBe(pos);
    expect(Math.abs(r.target_value - refTarget(ref, e, pos))).toBeLessThan(1e-4);
    // causal: later positions cannot affect the logit at `pos`
    for (let p = pos + 1; p < ids.length; p++) expect(r.attributions[p]).toBe(0);
    expect(r.attributions.slice(0, pos + 1).every((v) => Math.abs(v) > 1e-6)).toBe(true);
  });

  test('inputAttributionAsync and gradientWrtAsync (the webgpu forms) return exactly what the sync forms do', async () => {
    for (const method of ['grad-x-input', 'integrated-gradients'] as const) {
      const o = { targetId: TARGET, position: 3, method, steps: 5, batchSize: 2 };
      expect(await inputAttributionAsync(model, ids, o)).toEqual(inputAttribution(model, ids, o));
    }
    const fn = (logits: tf.Tensor3D) => tf.sum(tf.slice(logits, [0, 4, TARGET], [1, 1, 1])) as tf.Scalar;
    expect(await gradientWrtAsync(model, ids, 'blocks.1.hook_resid_pre', fn)).toEqual(gradientWrt(model, ids, 'blocks.1.hook_resid_pre', fn));
  });

  test('gradientWrt(hook_embed) = finite differences along random directions; grad = its per-position norm', () => {
    const g = gradientWrt(model, ids, 'hook_embed', (logits) => tf.sum(tf.slice(logits, [0, 4, TARGET], [1, 1, 1])));
    expect(g.shape).toEqual([1, ids.length, d]);
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
    for (let k = 0; k < 3; k++) {
      const u = Float64Array.from({ length: e.length }, rnd);
      const got = g.grad.reduce((a, v, i) => a + v * u[i], 0);
      expectClose([got], [refDirectional(ref, e, u, 4)], 2e-4);
    }
    // single coordinates
    for (const k of [0, d + 3, 4 * d + d - 1]) {
      const u = Float64Array.from(e, (_, i) => (i === k ? 1 : 0));
      expectClose([g.grad[k]], [refDirectional(ref, e, u, 4)], 2e-4);
    }
    const r = inputAttribution(model, ids, { targetId: TARGET, method: 'grad' });
    const norms = ids.map((_, p) => Math.hypot(...g.grad.slice(p * d, (p + 1) * d)));
    expectClose(r.attributions, norms, 1e-6);
    expect(Math.abs(g.value - r.target_value)).toBeLessThan(1e-6);
  });

  test('gradient w.r.t. a later hook point (blocks.1.hook_resid_pre, ln_final.hook_scale path) matches finite differences', () => {
    // ∂ logit / ∂ resid_pre of block 1 at position 3, checked along e-independent random direction with the reference's residPre override
    const pos = 4;
    const g = gradientWrt(model, ids, 'blocks.1.hook_resid_pre', (logits) => tf.sum(tf.slice(logits, [0, pos, TARGET], [1, 1, 1])));
    const base = refForward(ref, ids).cache.get('blocks.1.hook_resid_pre')!.data;
    const u = Float64Array.from({ length: d }, (_, i) => Math.sin(i + 1));
    const h = 1e-4;
    const at = (sign: number) => refForward(ref, ids, { residPre: ids.map((_, p) => ({ layer: 1, pos: p, vector: Array.from({ length: d }, (_, i) => base[p * d + i] + (p === 3 ? sign * h * u[i] : 0)) })) }).logits[pos][TARGET];
    const want = (at(1) - at(-1)) / (2 * h);
    const got = u.reduce((a, v, i) => a + v * g.grad[3 * d + i], 0);
    expectClose([got], [want], 2e-4);
    expect(Math.abs(got)).toBeGreaterThan(1e-4);
  });

  test('integrated gradients = the reference path integral (steps 8), batched = one row at a time', () => {
    const steps = 8, pos = 4;
    const batched = inputAttribution(model, ids, { targetId: TARGET, method: 'integrated-gradients', steps });
    const single = inputAttribution(model, ids, { targetId: TARGET, method: 'integrated-gradients', steps, batchSize: 1 });
    const odd = inputAttribution(model, ids, { targetId: TARGET, method: 'integrated-gradients', steps, batchSize: 3 });
    expectClose(batched.attributions, single.attributions, 1e-5);
    expectClose(odd.attributions, single.attributions, 1e-5);
    expect(batched.steps).toBe(steps);
    // Σ_d e_p ⊙ mean_k g_p(α_k e) = mean_k of the directional derivative along e_p at α_k e
    const want = ids.map((_, p) => {
      let s = 0;
      for (let k = 1; k <= steps; k++) s += refDirectional(ref, e.map((v) => (v * k) / steps), onlyAt(e, p, d), pos);
      return s / steps;
    });
    expectClose(batched.attributions, want, 2e-4);
  });

  test('integrated gradients completeness: Σ attributions → target(x) − target(0), error shrinking with steps', () => {
    const gap = refTarget(ref, e, 4) - refTarget(ref, new Float64Array(e.length), 4);
    const err = [4, 32, 256].map((steps) => {
      const r = inputAttribution(model, ids, { targetId: TARGET, method: 'integrated-gradients', steps, batchSize: 64 });
      return Math.abs(r.attributions.reduce((a, v) => a + v, 0) - gap);
    });
    expect(err[1]).toBeLessThan(err[0]);
    expect(err[2]).toBeLessThan(err[1] / 4); // a Riemann sum's error is O(1/steps): 8× the steps, ~8× smaller
    expect(err[2]).toBeLessThan(0.05 * Math.max(1, Math.abs(gap)));
    expect(Math.abs(gap)).toBeGreaterThan(1e-3);
  });
});

describe('options and errors', () => {
  let model: GPT2;
  beforeAll(async () => {
    model = await gpt2(fixtureDir('tiny-gpt2'), { backend: process.env.SP_BACKEND ?? 'wasm' });
  });
  afterAll(() => model?.dispose());

  test('normalize is Ecco\'s view: |a| / Σ|a|; keys of the contract', () => {
    const raw = inputAttribution(model, 'The cat sat on the', { targetToken: ' mat', method: 'grad-x-input' });
    const norm = inputAttribution(model, 'The cat sat on the', { targetToken: ' mat', method: 'grad-x-input', normalize: true });
    const total = raw.attributions.reduce((a, v) => a + Math.abs(v), 0);
    expectClose(norm.attributions, raw.attributions.map((v) => Math.abs(v) / total), 1e-9);
    expect(Math.abs(norm.attributions.reduce((a, v) => a + v, 0) - 1)).toBeLessThan(1e-9);
    expect(raw.attributions.some((v) => v < 0) || raw.attributions.some((v) => v > 0)).toBe(true);
    expect(Object.keys(raw).sort()).toEqual(['attributions', 'ids', 'method', 'normalize', 'position', 'target_id', 'target_token', 'target_value', 'tokens']);
    expect(raw.target_id).toBe(model.tokenId(' mat'));
    expect(raw.tokens.join('')).toBe('The cat sat on the');
  });

  test('one-line errors', () => {
    expectSpError(() => inputAttribution(model, ids, { targetToken: ' hippopotamus', method: 'grad' }), 'BAD_INPUT', /tokens .*not one/);
    expectSpError(() => inputAttribution(model, ids, { targetId: 1, position: 5, method: 'grad' }), 'OUT_OF_RANGE', /position 5 is out of range/);
    expectSpError(() => inputAttribution(model, ids, { targetId: 1, method: 'saliency' as never }), 'BAD_INPUT', /unknown attribution method "saliency"/);
    expectSpError(() => inputAttribution(model, ids, { method: 'grad' }), 'BAD_INPUT', /needs a target/);
    expectSpError(() => inputAttribution(model, ids, { targetId: 1, method: 'integrated-gradients', steps: 0 }), undefined, /steps/);
    expectSpError(() => gradientWrt(model, ids, 'blocks.9.hook_resid_pre' as never, (l) => tf.sum(l)), 'BAD_INPUT', /unknown hook point/);
  });
});
