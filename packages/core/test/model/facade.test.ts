/**
 * GPT2's public façade: what analyses used to read from its internals (weights, checkpoint,
 * tokenizer) as methods, each checked against the file's parameters in float64.
 */
import fs from 'node:fs';
import { gpt2, tf, type GPT2 } from '@sp/core';
import { ACT_TOL, firstMismatch } from '../helpers/compare.js';
import { expectSpError } from '../helpers/errors.js';
import { writeRandomGpt2, type RandomGpt2 } from '../helpers/random-gpt2.js';

const SPEC = { nLayer: 2, dModel: 32, nHead: 4, nCtx: 16, seed: 99 };
const { dModel: d, nLayer: L, nCtx } = SPEC;
const V = 50257;
const M = 4 * d;

let fx: RandomGpt2;
let model: GPT2;
beforeAll(async () => {
  fx = writeRandomGpt2(SPEC);
  model = await gpt2(fx.dir, { backend: process.env.SP_BACKEND ?? 'wasm' });
});
afterAll(() => {
  model?.dispose();
  if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
});

const w = (name: string) => fx.ref.get(name);
const norm = (v: ArrayLike<number>, off: number, n: number, stride = 1) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += v[off + i * stride] ** 2;
  return Math.sqrt(s);
};

test('eosTokenId and tokenId come from the tokenizer', () => {
  expect(model.eosTokenId).toBe(50256);
  expect(model.tokenId(' is')).toBe(318);
  expect(model.tokenId('<|endoftext|>')).toBe(50256);
  expect(model.tokenId(' is are')).toBeUndefined();
  expect(model.encode(' is')).toEqual([318]);
});

test('tokenEmbedding(id) is row id of wte; ‖E_i‖ for every token', () => {
  const wte = w('wte.weight');
  for (const id of [0, 318, V - 1]) expect(model.tokenEmbedding(id)).toEqual(Float32Array.from(wte.subarray(id * d, (id + 1) * d)));
  expectSpError(() => model.tokenEmbedding(V), 'OUT_OF_RANGE', /token id 50257/);
  const norms = model.tokenEmbeddingNorms();
  expect(norms).toHaveLength(V);
  const want = Float64Array.from({ length: V }, (_, i) => norm(wte, i * d, d));
  expect(firstMismatch('‖E_i‖', norms, want, 1e-5)).toBeUndefined();
  norms[0] = -1; // a copy: the model's cached norms are not changed
  expect(model.tokenEmbeddingNorms()[0]).toBeCloseTo(want[0], 5);
});

test('ffValueNorms(layer)[j] = ‖row j of mlp.c_proj.weight‖ = ‖ffValue(layer, j)‖', () => {
  for (let l = 0; l < L; l++) {
    const proj = w(`h.${l}.mlp.c_proj.weight`); // [M, d]
    const got = model.ffValueNorms(l);
    expect(got).toHaveLength(M);
    expect(firstMismatch(`ffValueNorms(${l})`, got, Float64Array.from({ length: M }, (_, j) => norm(proj, j * d, d)), 1e-5)).toBeUndefined();
    expect(got[7]).toBeCloseTo(norm(model.ffValue(l, 7), 0, d), 5);
  }
  expectSpError(() => model.ffValueNorms(L), 'OUT_OF_RANGE', /layer 2 is out of range \[0, 1\]/);
});

test('unembedVectors: x · W_Eᵀ for [..., d_model], no ln_final', () => {
  const x = Float32Array.from({ length: 2 * 3 * d }, (_, i) => Math.sin(i * 0.37));
  const wte = w('wte.weight');
  const want = new Float64Array(2 * 3 * V);
  for (let r = 0; r < 6; r++) for (let t = 0; t < V; t++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += x[r * d + i] * wte[t * d + i];
    want[r * V + t] = s;
  }
  const before = tf.memory().numTensors;
  const xt = tf.tensor3d(x, [2, 3, d]);
  const out = model.unembedVectors(xt);
  expect(out.shape).toEqual([2, 3, V]);
  expect(firstMismatch('unembedVectors', out.dataSync(), want, ACT_TOL)).toBeUndefined();
  tf.dispose([xt, out]);
  expect(tf.memory().numTensors).toBe(before);
  const bad = tf.zeros([1, d + 1]);
  expectSpError(() => model.unembedVectors(bad), 'BAD_INPUT', /unembedVectors needs \[\.\.\., 32\]/);
  bad.dispose();
});

test('parameterBytes counts every GPT-2 parameter (F32: 4 bytes each)', () => {
  const block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * M + M) + (M * d + d);
  expect(model.parameterBytes).toBe(4 * (V * d + nCtx * d + L * block + 2 * d));
});

test('layerNormParams: ln1/ln2 of a block and ln_final, as in the file', () => {
  const pick = (n: string) => Float32Array.from(w(n));
  expect(model.layerNormParams(1, 'ln1')).toEqual({ w: pick('h.1.ln_1.weight'), b: pick('h.1.ln_1.bias') });
  expect(model.layerNormParams(0, 'ln2')).toEqual({ w: pick('h.0.ln_2.weight'), b: pick('h.0.ln_2.bias') });
  expect(model.layerNormParams(0, 'ln_final')).toEqual({ w: pick('ln_f.weight'), b: pick('ln_f.bias') });
  expectSpError(() => model.layerNormParams(2, 'ln1'), 'OUT_OF_RANGE', /layer 2/);
  expectSpError(() => model.layerNormParams(0, 'ln3' as 'ln1'), 'BAD_INPUT', /unknown LayerNorm "ln3"/);
});

test('the LayerNorm output from a cache: normalized · w + b feeds the attention (q = that · W_q + b_q)', () => {
  const ids = [464, 3290, 318];
  const { logits, cache } = model.runWithCache(ids, { names: ['blocks.0.ln1.hook_normalized', 'blocks.0.attn.hook_q'] });
  logits.dispose();
  try {
    const { w: lw, b: lb } = model.layerNormParams(0, 'ln1');
    const n = cache.get('normalized', 0, 'ln1').dataSync();
    const q = cache.get('q', 0).dataSync(); // [1, s, h, dh] = [s, d] flat
    const cAttn = w('h.0.attn.c_attn.weight'); // [d, 3d]
    const cb = w('h.0.attn.c_attn.bias');
    const want = new Float64Array(ids.length * d);
    for (let p = 0; p < ids.length; p++) for (let j = 0; j < d; j++) {
      let s = cb[j];
      for (let i = 0; i < d; i++) s += (n[p * d + i] * lw[i] + lb[i]) * cAttn[i * 3 * d + j];
      want[p * d + j] = s;
    }
    expect(firstMismatch('q', q, want, ACT_TOL)).toBeUndefined();
  } finally {
    cache.dispose();
  }
});

// Type level (checked by pnpm typecheck): the parameters, checkpoint and tokenizer are not on GPT2's type.
// @ts-expect-error private
const k1: keyof GPT2 = 'weights';
// @ts-expect-error private
const k2: keyof GPT2 = 'checkpoint';
// @ts-expect-error private
const k3: keyof GPT2 = 'tokenizer';
void [k1, k2, k3];
