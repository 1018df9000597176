/**
 * TransformerLens meanings on a random GPT-2, against the float64 reference:
 * - `ln1/ln2/ln_final.hook_scale` = sqrt(var + eps) [b, p, 1] and `hook_normalized` = (x − mean) / scale
 *   before the LayerNorm weight and bias; replacing either changes what follows as in TransformerLens;
 *   the fused LayerNorm kernel (no LayerNorm hook) and the hooked steps agree.
 * - `prependBos` (TransformerLens' prepend_bos): ids, logits, and positions that count the BOS.
 */
import fs from 'node:fs';
import { gpt2, tf, type GPT2, type HookName } from '@sp/core';
import { refForward, type RefOptions, type RefWeights } from '../reference/gpt2-ref.js';
import { compareCache, firstMismatch, logitsRow, LOGIT_TOL } from '../helpers/compare.js';
import { randomIds, writeRandomGpt2, type RandomGpt2 } from '../helpers/random-gpt2.js';
import { mulberry32 } from '../reference/random-model.js';
import { expectSpError } from '../helpers/errors.js';

const SPEC = { nLayer: 2, dModel: 32, nHead: 4, nCtx: 16, seed: 321 };
const PROMPT = randomIds(6, 99);
const BOS = 50256;
const LNS = ['blocks.0.ln1', 'blocks.1.ln2', 'ln_final'] as const;
/** The activation each LayerNorm reads. */
const INPUT: Record<(typeof LNS)[number], HookName> = {
  'blocks.0.ln1': 'blocks.0.hook_resid_pre',
  'blocks.1.ln2': 'blocks.1.hook_resid_mid',
  ln_final: 'blocks.1.hook_resid_post',
};

let fx: RandomGpt2;
let ref: RefWeights;
let model: GPT2;

beforeAll(async () => {
  fx = writeRandomGpt2(SPEC);
  ref = fx.ref;
  model = await gpt2(fx.dir, { backend: process.env.SP_BACKEND ?? 'wasm' });
});
afterAll(() => {
  model?.dispose();
  if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
});

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i] - b[i]);
    if (!(x <= m)) m = x; // NaN propagates
  }
  return m;
}

/** runWithCache(opts) against refForward(refOpts): every hook and the logits. */
function expectMatchesReference(ids: number[], opts: Parameters<GPT2['runWithCache']>[1], refOpts: RefOptions, refIds = ids): ReturnType<typeof refForward> {
  const want = refForward(ref, refIds, refOpts);
  const { logits, cache } = model.runWithCache(ids, opts);
  try {
    expect(cache.keys()).toEqual(model.hookNames());
    const bad = compareCache(cache, model.hookNames(), want.cache);
    const m = firstMismatch('logits', logitsRow(logits, 0, refIds.length), Float64Array.from(want.logits.flat()), LOGIT_TOL, false);
    expect(m ? [...bad, m] : bad).toEqual([]);
  } finally {
    logits.dispose();
    cache.dispose();
  }
  return want;
}

describe("LayerNorm hooks have TransformerLens' meaning", () => {
  test.each(LNS)('%s: hook_normalized = (x − mean) / sqrt(var + eps) before w and b; hook_scale is [b, p, 1]', (ln) => {
    const s = PROMPT.length;
    const d = SPEC.dModel;
    const { logits, cache } = model.runWithCache(PROMPT, { names: [`${ln}.hook_scale`, `${ln}.hook_normalized`, INPUT[ln]] });
    try {
      const scale = cache.get(`${ln}.hook_scale`);
      const normalized = cache.get(`${ln}.hook_normalized`);
      expect(scale.shape).toEqual([1, s, 1]);
      expect(normalized.shape).toEqual([1, s, d]);
      // against the float64 reference
      expect(compareCache(cache, [`${ln}.hook_scale`, `${ln}.hook_normalized`], refForward(ref, PROMPT).cache)).toEqual([]);
      // ... and against the library's own LayerNorm input, in float64 here
      const x = cache.get(INPUT[ln]).dataSync();
      const sc = scale.dataSync();
      const n = normalized.dataSync();
      for (let p = 0; p < s; p++) {
        const row = Array.from(x.subarray(p * d, (p + 1) * d));
        const mean = row.reduce((a, b) => a + b, 0) / d;
        const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / d;
        const std = Math.sqrt(variance + 1e-5);
        expect(Math.abs(sc[p] - std)).toBeLessThan(1e-5 * std);
        expect(maxDiff(n.subarray(p * d, (p + 1) * d), row.map((v) => (v - mean) / std))).toBeLessThan(1e-5);
        const nr = Array.from(n.subarray(p * d, (p + 1) * d));
        expect(Math.abs(nr.reduce((a, b) => a + b, 0) / d)).toBeLessThan(1e-6);
        expect(Math.abs(nr.reduce((a, b) => a + b * b, 0) / d - 1)).toBeLessThan(1e-3); // 1 − eps/scale²
      }
    } finally {
      logits.dispose();
      cache.dispose();
    }
  });

  test.each(LNS)("doubling %s.hook_normalized: the model reads 2·n·w + b, as the reference's same intervention", (ln) => {
    const base = refForward(ref, PROMPT);
    const want = expectMatchesReference(
      PROMPT,
      { fwdHooks: [[`${ln}.hook_normalized`, (t) => tf.mul(t, 2)]] },
      { lnHooks: { [`${ln}.hook_normalized`]: (v) => v.map((x) => 2 * x) } },
    );
    expect(maxDiff(want.logits.flat(), base.logits.flat())).toBeGreaterThan(1e-2);
    // runWithHooks gives the same logits
    const logits = model.runWithHooks(PROMPT, { fwdHooks: [[`${ln}.hook_normalized`, (t) => tf.mul(t, 2)]] });
    expect(maxDiff(logits.dataSync(), want.logits.flat())).toBeLessThan(LOGIT_TOL);
    logits.dispose();
  });

  test.each(LNS)('replacing %s.hook_scale: hook_normalized and what follows use the new scale, as in the reference', (ln) => {
    const u = mulberry32(7);
    const factors = PROMPT.map(() => 0.5 + u()); // one factor per position
    const base = refForward(ref, PROMPT);
    const want = expectMatchesReference(
      PROMPT,
      { fwdHooks: [[`${ln}.hook_scale`, (t) => tf.mul(t, tf.tensor3d(factors, [1, PROMPT.length, 1]))]] },
      { lnHooks: { [`${ln}.hook_scale`]: (v) => v.map((x, p) => x * Math.fround(factors[p])) } },
    );
    expect(maxDiff(want.logits.flat(), base.logits.flat())).toBeGreaterThan(1e-2);
  });

  test('the fused LayerNorm and the hooked steps (normalized · w + b) agree to float32 rounding', () => {
    const lnNames = model.hookNames().filter((n) => /hook_(scale|normalized)$/.test(n));
    expect(lnNames).toHaveLength(2 * (2 * SPEC.nLayer + 1));
    const batch = [PROMPT, randomIds(4, 5)];
    const fused = model.forward(batch);
    // returning a copy counts as a replacement: every LayerNorm output is then normalized · w + b
    const stepwise = model.runWithHooks(batch, { fwdHooks: [[(n) => lnNames.includes(n), (t) => tf.clone(t)]] });
    const observed = model.runWithHooks(batch, { fwdHooks: [[(n) => lnNames.includes(n), () => undefined]] });
    const a = fused.dataSync();
    const b = stepwise.dataSync();
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(a[i])));
    expect(worst).toBeLessThan(2e-6);
    // hooks that only read leave the logits bit for bit
    expect(maxDiff(observed.dataSync(), a)).toBe(0);
    tf.dispose([fused, stepwise, observed]);
  });

  test('LayerNorm steps are computed only for the LayerNorms a hook or the cache wants', async () => {
    if (!['wasm', 'cpu'].includes(tf.getBackend())) return; // the fused kernel exists on wasm/cpu only
    /** [fused LayerNorm kernels, stepwise LayerNorms (one Sqrt each: nothing else in the pass takes one)] */
    const count = async (fn: () => tf.Tensor): Promise<[number, number]> => {
      const info = await tf.profile(fn);
      tf.dispose(info.result as tf.Tensor);
      const n = (name: string) => info.kernels.filter((k) => k.name === name).length;
      return [n('SpLayerNorm'), n('Sqrt')];
    };
    const cached = (names?: HookName[]) => () => {
      const { logits, cache } = model.runWithCache(PROMPT, { names });
      cache.dispose();
      return logits;
    };
    const all = 2 * SPEC.nLayer + 1;
    expect(await count(() => model.forward(PROMPT))).toEqual([all, 0]);
    expect(await count(() => model.runWithHooks(PROMPT, { fwdHooks: [['blocks.0.hook_resid_pre', () => undefined]] }))).toEqual([all, 0]);
    expect(await count(cached(['hook_embed', 'blocks.1.hook_resid_post']))).toEqual([all, 0]);
    // reading: the steps for that LayerNorm, its output still from the fused kernel
    expect(await count(() => model.runWithHooks(PROMPT, { fwdHooks: [['blocks.1.ln2.hook_scale', () => undefined]] }))).toEqual([all, 1]);
    expect(await count(cached(['hook_embed', 'ln_final.hook_normalized']))).toEqual([all, 1]);
    expect(await count(cached())).toEqual([all, all]);
    // replacing: that LayerNorm's output is normalized · w + b
    expect(await count(() => model.runWithHooks(PROMPT, { fwdHooks: [['blocks.0.ln1.hook_normalized', (t) => tf.mul(t, 1)]] }))).toEqual([all - 1, 1]);
  });
});

describe('prependBos (TransformerLens prepend_bos)', () => {
  const text = 'The cat sat on';

  test('toTokens: off by default; on, <|endoftext|> (50256) starts every row, text or ids', () => {
    const ids = model.encode(text);
    expect(model.toTokens(text).ids).toEqual([ids]);
    expect(model.toTokens(text, { prependBos: true }).ids).toEqual([[BOS, ...ids]]);
    expect(model.toTokens(PROMPT, { prependBos: true }).ids).toEqual([[BOS, ...PROMPT]]);
    const b = model.toTokens([text, 'A'], { prependBos: true });
    expect(b.ids[1].slice(0, 2)).toEqual([BOS, ...model.encode('A')]);
    expect(b.lengths).toEqual([ids.length + 1, 2]);
    expect(b.mask[1]).toEqual([1, 1, ...Array(ids.length - 1).fill(0)]);
    expect(model.toTokens('', { prependBos: true }).ids).toEqual([[BOS]]); // as TransformerLens' to_tokens('')
    expect(model.eosTokenId).toBe(BOS);
  });

  test('forward/runWithCache with prependBos equal the BOS id written explicitly, and the reference', () => {
    const ids = model.encode(text);
    const a = model.forward(text, { prependBos: true });
    const b = model.forward([BOS, ...ids]);
    expect(a.shape).toEqual([1, ids.length + 1, 50257]);
    expect(maxDiff(a.dataSync(), b.dataSync())).toBe(0);
    tf.dispose([a, b]);
    expectMatchesReference(ids, { prependBos: true }, {}, [BOS, ...ids]);
    const plain = model.forward(text);
    expect(plain.shape).toEqual([1, ids.length, 50257]);
    plain.dispose();
  });

  test('embeds / inject positions count the BOS (position 0)', () => {
    const ids = model.encode(text);
    const u = mulberry32(3);
    const v = Array.from({ length: SPEC.dModel }, () => Math.fround(u() * 2 - 1));
    // position 1 is the first text token
    expectMatchesReference(ids, { prependBos: true, inject: [{ layer: 1, pos: 1, vector: v }], embeds: [{ pos: ids.length, vector: v }] },
      { residPre: [{ layer: 1, pos: 1, vector: v }], embeds: [{ pos: ids.length, vector: v }] }, [BOS, ...ids]);
    const logits = model.runWithHooks(text, { prependBos: true, inject: [{ layer: 0, pos: 0, vector: v }], fwdHooks: [['hook_embed', () => undefined]] });
    expect(maxDiff(logits.dataSync(), refForward(ref, [BOS, ...ids], { residPre: [{ layer: 0, pos: 0, vector: v }] }).logits.flat())).toBeLessThan(LOGIT_TOL);
    logits.dispose();
    expectSpError(() => model.forward(text, { prependBos: true, inject: [{ layer: 0, pos: ids.length + 1, vector: v }] }), 'OUT_OF_RANGE', /position/);
  });

  test('the BOS counts toward the context length', () => {
    const full = randomIds(SPEC.nCtx, 11);
    const ok = model.forward(full);
    ok.dispose();
    expectSpError(() => model.forward(full, { prependBos: true }), 'TOO_LONG', /17 tokens \(BOS included\)/);
  });
});
