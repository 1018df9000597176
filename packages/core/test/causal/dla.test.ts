/**
 * Direct logit attribution and blocks.{i}.attn.hook_result against the float64 reference: every
 * component recomputed from the reference's own hook values (per-head result, mlp_out, embeddings,
 * ln_final scale) and weights; the components sum to the total and the total is the logit
 * (difference) of a plain forward; replacing hook_result changes what follows as in TransformerLens.
 */
import fs from 'node:fs';
import { directLogitAttribution, directLogitAttributionAsync, gpt2, tf, type GPT2 } from '@sp/core';
import { refForward, type RefWeights } from '../reference/gpt2-ref.js';
import { expectSpError } from '../helpers/errors.js';
import { firstMismatch, LOGIT_TOL } from '../helpers/compare.js';
import { randomIds, specLabel, writeRandomGpt2, type RandomGpt2, type RandomGpt2Spec } from '../helpers/random-gpt2.js';

/** The DLA components, computed from the reference alone (float64), in the library's order and names. */
function refDla(ref: RefWeights, ids: number[], pos: number, token: number, vs?: number): { names: string[]; values: number[]; logit: number } {
  const { nLayer: L, nHead: H, dModel: d } = ref.config;
  const { cache, logits } = refForward(ref, ids);
  const wte = ref.get('wte.weight');
  const lnw = ref.get('ln_f.weight');
  const lnb = ref.get('ln_f.bias');
  const u = Array.from({ length: d }, (_, i) => wte[token * d + i] - (vs !== undefined ? wte[vs * d + i] : 0));
  const scale = cache.get('ln_final.hook_scale')!.data[pos];
  const value = (x: ArrayLike<number>, off: number) => {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[off + i] / d;
    let s = 0;
    for (let i = 0; i < d; i++) s += ((x[off + i] - mean) / scale) * lnw[i] * u[i];
    return s;
  };
  const names = ['embed', 'pos_embed'];
  const values = [value(cache.get('hook_embed')!.data, pos * d), value(cache.get('hook_pos_embed')!.data, pos * d)];
  let bias = 0;
  for (let i = 0; i < d; i++) bias += lnb[i] * u[i];
  for (let l = 0; l < L; l++) {
    const r = cache.get(`blocks.${l}.attn.hook_result`)!.data; // [seq, H, d]
    for (let h = 0; h < H; h++) {
      names.push(`L${l}.H${h}`);
      values.push(value(r, (pos * H + h) * d));
    }
    names.push(`L${l}.mlp`);
    values.push(value(cache.get(`blocks.${l}.hook_mlp_out`)!.data, pos * d));
    bias += value(ref.get(`h.${l}.attn.c_proj.bias`), 0);
  }
  names.push('bias');
  values.push(bias);
  return { names, values, logit: logits[pos][token] - (vs !== undefined ? logits[pos][vs] : 0) };
}

const CASES: RandomGpt2Spec[] = [
  { nLayer: 2, dModel: 32, nHead: 4, dtype: 'F32' },
  { nLayer: 3, dModel: 48, nHead: 6, dtype: 'F16', prefix: true },
];

describe.each(CASES.map((c) => [specLabel(c), c] as const))('DLA on random GPT-2 %s', (_label, c) => {
  let fx: RandomGpt2;
  let model: GPT2;
  const ids = randomIds(7, 99 + c.nLayer);

  beforeAll(async () => {
    fx = writeRandomGpt2({ ...c, seed: 4242 + c.dModel });
    model = await gpt2(fx.dir, { backend: process.env.SP_BACKEND ?? 'wasm' });
  });
  afterAll(() => {
    model?.dispose();
    if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  test.each([
    ['last position, one token', { tokenId: 318 }, 6, 318, undefined],
    ['position 2, logit difference', { tokenId: 318, vsId: 389, position: 2 }, 2, 318, 389],
    ['position -3, difference', { tokenId: 1000, vsId: 7, position: -3 }, 4, 1000, 7],
  ] as const)('%s: every component equals the float64 reference; they sum to the logit', (_n, opts, pos, token, vs) => {
    const before = tf.memory().numTensors;
    const r = directLogitAttribution(model, ids, opts);
    expect(tf.memory().numTensors).toBe(before);
    const want = refDla(fx.ref, ids, pos, token, vs);
    expect(r.position).toBe(pos);
    expect(r.components.map((x) => x.name)).toEqual(want.names);
    expect(r.components).toHaveLength(2 + c.nLayer * (c.nHead + 1) + 1);
    expect(firstMismatch('dla components', r.components.map((x) => x.value), want.values, 1e-4)).toBeUndefined();
    // the reference's own components add up to its logit: the decomposition itself is exact
    expect(Math.abs(want.values.reduce((a, b) => a + b, 0) - want.logit)).toBeLessThan(1e-9);
    // sp: Σ components = total, total = the logit (difference) of a plain forward
    expect(Math.abs(r.components.reduce((a, x) => a + x.value, 0) - r.total)).toBeLessThan(1e-9);
    const plain = model.forward(ids);
    const row = plain.arraySync()[0][pos];
    plain.dispose();
    const logit = row[token] - (vs !== undefined ? row[vs] : 0);
    expect(Math.abs(r.total - logit)).toBeLessThan(LOGIT_TOL);
    expect(Math.abs(r.logit - logit)).toBeLessThan(1e-6);
    expect(Math.abs(r.total - want.logit)).toBeLessThan(LOGIT_TOL);
    expect(r.token_id).toBe(token);
    if (vs !== undefined) expect(r.vs_id).toBe(vs);
    else expect('vs_id' in r).toBe(false);
    // no component is trivially zero (a test of all-zero values could not fail)
    expect(r.components.filter((x) => Math.abs(x.value) > 1e-6).length).toBeGreaterThan(r.components.length / 2);
  });

  test('directLogitAttributionAsync (the webgpu form) returns exactly what directLogitAttribution does', async () => {
    const opts = { tokenId: 318, vsId: 389, position: 2 };
    const before = tf.memory().numTensors;
    expect(await directLogitAttributionAsync(model, ids, opts)).toEqual(directLogitAttribution(model, ids, opts));
    expect(tf.memory().numTensors).toBe(before);
  });

  test('hook_result: cached values equal the reference; observing it leaves the logits bit-identical', () => {
    const want = refForward(fx.ref, ids).cache;
    const plain = model.forward(ids);
    const { logits, cache } = model.runWithCache(ids, { names: ['blocks.0.attn.hook_result', `blocks.${c.nLayer - 1}.attn.hook_result`] });
    try {
      for (const l of [0, c.nLayer - 1]) {
        const t = cache.get(`blocks.${l}.attn.hook_result`);
        expect(t.shape).toEqual([1, ids.length, c.nHead, c.dModel]);
        expect(firstMismatch(`result ${l}`, t.dataSync(), want.get(`blocks.${l}.attn.hook_result`)!.data, 1e-4)).toBeUndefined();
      }
      expect(Array.from(logits.dataSync())).toEqual(Array.from(plain.dataSync()));
    } finally {
      [plain, logits].forEach((t) => t.dispose());
      cache.dispose();
    }
  });

  test('replacing hook_result changes attn_out and everything after it as in TransformerLens (Σ_h result + b_O)', () => {
    const H = c.nHead, d = c.dModel;
    // zero head 1 of layer 0 and double head 0 of the last layer
    const edit0 = (v: Float64Array) => v.map((x, i) => (Math.floor(i / d) % H === 1 ? 0 : x));
    const editL = (v: Float64Array) => v.map((x, i) => (Math.floor(i / d) % H === 0 ? 2 * x : x));
    const want = refForward(fx.ref, ids, { resultHooks: { 'blocks.0.attn.hook_result': edit0, [`blocks.${c.nLayer - 1}.attn.hook_result`]: editL } });
    const mask = (head: number, k: number) => tf.tensor4d(Array.from({ length: H * d }, (_, i) => (Math.floor(i / d) === head ? k : 1)), [1, 1, H, d]);
    const { logits, cache } = model.runWithCache(ids, {
      names: ['blocks.0.hook_attn_out'],
      fwdHooks: [
        ['blocks.0.attn.hook_result', (t) => tf.mul(t, mask(1, 0))],
        [`blocks.${c.nLayer - 1}.attn.hook_result`, (t) => tf.mul(t, mask(0, 2))],
      ],
    });
    const plain = refForward(fx.ref, ids).logits.flat();
    try {
      expect(firstMismatch('attn_out 0', cache.get('blocks.0.hook_attn_out').dataSync(), want.cache.get('blocks.0.hook_attn_out')!.data, 1e-4)).toBeUndefined();
      expect(firstMismatch('logits', logits.dataSync(), Float64Array.from(want.logits.flat()), LOGIT_TOL, false)).toBeUndefined();
      // and the edit mattered
      const moved = want.logits.flat().reduce((m, x, i) => Math.max(m, Math.abs(x - plain[i])), 0);
      expect(moved).toBeGreaterThan(100 * LOGIT_TOL);
    } finally {
      logits.dispose();
      cache.dispose();
    }
  });

  test('attnOutWeights: W_O as [h, dh, d] and b_O, as stored', () => {
    const { w, b } = model.attnOutWeights(c.nLayer - 1);
    expect(w).toHaveLength(c.dModel * c.dModel);
    expect(firstMismatch('W_O', w, fx.ref.get(`h.${c.nLayer - 1}.attn.c_proj.weight`), 0, false)).toBeUndefined();
    expect(firstMismatch('b_O', b, fx.ref.get(`h.${c.nLayer - 1}.attn.c_proj.bias`), 0, false)).toBeUndefined();
  });
});

describe('DLA input checks', () => {
  let fx: RandomGpt2;
  let model: GPT2;
  beforeAll(async () => {
    fx = writeRandomGpt2({ nLayer: 1, dModel: 16, nHead: 2, seed: 5 });
    model = await gpt2(fx.dir, { backend: process.env.SP_BACKEND ?? 'wasm' });
  });
  afterAll(() => {
    model?.dispose();
    if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  test('token strings resolve to one token; names and defaults', () => {
    const r = directLogitAttribution(model, 'The cat', { token: ' is', vs: ' are' });
    expect([r.token, r.token_id, r.vs, r.vs_id, r.position, r.tokens]).toEqual([' is', 318, ' are', 389, 1, ['The', ' cat']]);
    expect(r.components.map((x) => x.name)).toEqual(['embed', 'pos_embed', 'L0.H0', 'L0.H1', 'L0.mlp', 'bias']);
    const byId = directLogitAttribution(model, 'The cat', { tokenId: 318, vsId: 389 });
    expect(byId.components).toEqual(r.components);
    // BOS shifts positions: the last is now 2
    expect(directLogitAttribution(model, 'The cat', { token: ' is', prependBos: true }).position).toBe(2);
  });

  test('one-line errors', () => {
    expectSpError(() => directLogitAttribution(model, 'The cat', { token: ' is are' }), 'BAD_INPUT', /token " is are" is 2 tokens/);
    expectSpError(() => directLogitAttribution(model, 'The cat', { token: ' is', vs: 'hello world' }), 'BAD_INPUT', /vs "hello world" is 2 tokens/);
    expectSpError(() => directLogitAttribution(model, 'The cat', {}), 'BAD_INPUT', /needs the token/);
    expectSpError(() => directLogitAttribution(model, 'The cat', { token: ' is', tokenId: 318 }), 'BAD_INPUT', /not both/);
    expectSpError(() => directLogitAttribution(model, 'The cat', { token: ' is', vs: ' is' }), 'BAD_INPUT', /same token/);
    expectSpError(() => directLogitAttribution(model, 'The cat', { tokenId: 50257 }), undefined, /tokenId/);
    expectSpError(() => directLogitAttribution(model, 'The cat', { token: ' is', position: 2 }), 'OUT_OF_RANGE', /position 2 is out of range for a 2-token prompt/);
    expectSpError(() => directLogitAttribution(model, 'The cat', { token: ' is', position: -3 }), 'OUT_OF_RANGE', /position -3/);
    expectSpError(() => directLogitAttribution(model, [[1, 2]] as unknown as number[], { token: ' is' }), 'BAD_INPUT', /not a batch/);
  });
});
