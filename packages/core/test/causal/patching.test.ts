/**
 * Activation patching against the float64 reference: every value is a recomputed reference
 * forward of the corrupt prompt with that one activation (resid_pre / attn_out / mlp_out at one
 * position, head z at all positions or at one) replaced by the clean reference run's, on both
 * fixtures (F32, F16); batched equals one-at-a-time; causal sanity checks; bad input is one line.
 */
import { activationPatching, activationPatchingAsync, gpt2, tf, type GPT2, type PatchingResult, type PatchSite } from '@sp/core';
import { refForward, type RefWeights } from '../reference/gpt2-ref.js';
import { readSafetensorsDir } from '../reference/safetensors-mini.js';
import { expectSpError } from '../helpers/errors.js';
import { FIXTURES, fixtureDir } from '../helpers/fixtures.js';

const backend = process.env.SP_BACKEND ?? 'wasm';
// Same length; they differ at positions 2 and 4 only (so positions 0, 1 are identical in both runs).
const CLEAN = [464, 3139, 286, 4881, 318, 262];
const CORRUPT = [464, 3139, 1812, 4881, 389, 262];
const ANSWER = 318;
const WRONG = 389;

const hookOf = (site: PatchSite, l: number) => (site === 'z' ? `blocks.${l}.attn.hook_z` : `blocks.${l}.hook_${site}`);

function refMetric(ref: RefWeights, ids: number[], opts: Parameters<typeof refForward>[2] = {}): number {
  const last = refForward(ref, ids, opts).logits[ids.length - 1];
  return last[ANSWER] - last[WRONG];
}

/** The reference's patched metric: `site` of layer `l`, rows (positions) `pos` (all when undefined), head `head` (z only). */
const cleanCaches = new Map<RefWeights, ReturnType<typeof refForward>['cache']>();
function refPatched(ref: RefWeights, site: PatchSite, l: number, pos: number | undefined, head?: number): number {
  if (!cleanCaches.has(ref)) cleanCaches.set(ref, refForward(ref, CLEAN).cache);
  const clean = cleanCaches.get(ref)!.get(hookOf(site, l))!.data; // [seq, d] or z [seq, H, dh]
  const { dModel: d, nHead: H } = ref.config;
  const seq = CLEAN.length;
  const copy = (v: Float64Array) => {
    const out = Float64Array.from(v);
    for (let p = 0; p < seq; p++) {
      if (pos !== undefined && p !== pos) continue;
      const [o, n] = head === undefined ? [p * d, d] : [(p * H + head) * (d / H), d / H];
      for (let i = 0; i < n; i++) out[o + i] = clean[o + i];
    }
    return out;
  };
  if (site === 'resid_pre') return refMetric(ref, CORRUPT, { residPre: [{ layer: l, pos: pos!, vector: clean.slice(pos! * d, (pos! + 1) * d) }] });
  return refMetric(ref, CORRUPT, { actHooks: { [hookOf(site, l)]: copy } });
}

describe.each(FIXTURES)('activation patching on %s vs the float64 reference', (name) => {
  let model: GPT2;
  let ref: RefWeights;
  const results = new Map<string, PatchingResult>();
  const run = (site: PatchSite, perPosition = false, batchSize?: number) => {
    const key = `${site}${perPosition}${batchSize}`;
    if (!results.has(key)) results.set(key, activationPatching(model, { clean: CLEAN, corrupt: CORRUPT, answerId: ANSWER, wrongId: WRONG, site, perPosition, batchSize }));
    return results.get(key)!;
  };

  beforeAll(async () => {
    model = await gpt2(fixtureDir(name), { backend });
    ref = readSafetensorsDir(fixtureDir(name));
  });
  afterAll(() => model?.dispose());

  test.each(['resid_pre', 'attn_out', 'mlp_out'] as const)('%s: values[l][p] = the reference corrupt run with that one activation patched', (site) => {
    const before = tf.memory().numTensors;
    const r = run(site);
    expect(tf.memory().numTensors).toBe(before);
    const L = ref.config.nLayer;
    expect(r.site).toBe(site);
    expect(r.layers).toEqual(Array.from({ length: L }, (_, l) => l));
    expect(r.positions).toEqual([0, 1, 2, 3, 4, 5]);
    expect('heads' in r).toBe(false);
    expect(r.tokens).toEqual(CLEAN.map((id) => model.tokenString(id)));
    expect(Math.abs(r.clean_metric - refMetric(ref, CLEAN))).toBeLessThan(1e-4);
    expect(Math.abs(r.corrupt_metric - refMetric(ref, CORRUPT))).toBeLessThan(1e-4);
    expect(Math.abs(r.clean_metric - r.corrupt_metric)).toBeGreaterThan(1e-3); // a metric that moves
    const vals = r.values as number[][];
    expect(vals).toHaveLength(L);
    for (let l = 0; l < L; l++) {
      expect(vals[l]).toHaveLength(CLEAN.length);
      for (let p = 0; p < CLEAN.length; p++) expect(Math.abs(vals[l][p] - refPatched(ref, site, l, p))).toBeLessThan(1e-4);
    }
    // patching where clean and corrupt differ moves the metric (the values are not all corrupt_metric)
    expect(vals.flat().some((v) => Math.abs(v - r.corrupt_metric) > 1e-3)).toBe(true);
  });

  test.each([['resid_pre', false], ['z', true]] as const)('activationPatchingAsync (the webgpu form) returns exactly what activationPatching does: %s', async (site, perPosition) => {
    const before = tf.memory().numTensors;
    const r = await activationPatchingAsync(model, { clean: CLEAN, corrupt: CORRUPT, answerId: ANSWER, wrongId: WRONG, site, perPosition, batchSize: 7 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r).toEqual(run(site, perPosition, 7));
  });

  test('z: values[l][h] patches head h at all positions (get_act_patch_attn_head_out_all_pos)', () => {
    const r = run('z');
    const { nLayer: L, nHead: H } = ref.config;
    expect(r.heads).toEqual(Array.from({ length: H }, (_, h) => h));
    const vals = r.values as number[][];
    expect(vals).toHaveLength(L);
    for (let l = 0; l < L; l++) {
      expect(vals[l]).toHaveLength(H);
      for (let h = 0; h < H; h++) expect(Math.abs(vals[l][h] - refPatched(ref, 'z', l, undefined, h))).toBeLessThan(1e-4);
    }
    expect(vals.flat().some((v) => Math.abs(v - r.corrupt_metric) > 1e-3)).toBe(true);
  });

  test('z perPosition: values[l][p][h] (TransformerLens get_act_patch_attn_head_out_by_pos: [layer, pos, head])', () => {
    const r = run('z', true);
    const { nLayer: L, nHead: H } = ref.config;
    const vals = r.values as number[][][];
    expect(vals).toHaveLength(L);
    for (let l = 0; l < L; l++) {
      expect(vals[l]).toHaveLength(CLEAN.length);
      for (let p = 0; p < CLEAN.length; p++) {
        expect(vals[l][p]).toHaveLength(H);
        for (let h = 0; h < H; h++) expect(Math.abs(vals[l][p][h] - refPatched(ref, 'z', l, p, h))).toBeLessThan(1e-4);
      }
    }
  });

  test.each([['resid_pre', false], ['attn_out', false], ['mlp_out', false], ['z', false], ['z', true]] as const)('%s (perPosition %s): batched = one patch per forward, to 1e-6', (site, perPosition) => {
    const batched = run(site, perPosition);
    const one = run(site, perPosition, 1);
    const odd = run(site, perPosition, 5); // chunks that split a layer's rows
    expect(one.values.flat(2).length).toBe(batched.values.flat(2).length);
    const a = batched.values.flat(2) as number[];
    (one.values.flat(2) as number[]).forEach((v, i) => expect(Math.abs(v - a[i])).toBeLessThan(1e-6));
    (odd.values.flat(2) as number[]).forEach((v, i) => expect(Math.abs(v - a[i])).toBeLessThan(1e-6));
  });

  test('sanity: unchanged positions change nothing; patching the one differing token\'s stream restores the clean run', () => {
    for (const site of ['resid_pre', 'attn_out', 'mlp_out'] as const) {
      const v = run(site).values as number[][];
      // positions 0 and 1 are the same tokens in both prompts: their activations are identical
      for (const row of v) for (const p of [0, 1]) expect(Math.abs(row[p] - run(site).corrupt_metric)).toBeLessThan(1e-5);
    }
    // one differing token (position 4): patching the residual stream there before block 0 makes the corrupt input clean
    const r = activationPatching(model, { clean: CLEAN, corrupt: [...CLEAN.slice(0, 4), WRONG, CLEAN[5]], answerId: ANSWER, wrongId: WRONG, site: 'resid_pre' });
    const v = r.values as number[][];
    expect(Math.abs(v[0][4] - r.clean_metric)).toBeLessThan(1e-5);
    for (const p of [0, 1, 2, 3, 5]) expect(Math.abs(v[0][p] - r.corrupt_metric)).toBeLessThan(1e-5);
    // only the last token differs: the last position's resid_pre at ANY layer (the last layer too) carries all that differs
    const last = activationPatching(model, { clean: CLEAN, corrupt: [...CLEAN.slice(0, 5), WRONG], answerId: ANSWER, wrongId: WRONG, site: 'resid_pre' });
    expect(Math.abs(last.clean_metric - last.corrupt_metric)).toBeGreaterThan(1e-3);
    for (const row of last.values as number[][]) {
      expect(Math.abs(row[5] - last.clean_metric)).toBeLessThan(1e-5);
      for (const p of [0, 1, 2, 3, 4]) expect(Math.abs(row[p] - last.corrupt_metric)).toBeLessThan(1e-5);
    }
  });
});

describe('activation patching: input checks', () => {
  let model: GPT2;
  beforeAll(async () => {
    model = await gpt2(fixtureDir('tiny-gpt2'), { backend });
  });
  afterAll(() => model?.dispose());

  test('answer/wrong as single-token strings equal the ids', () => {
    const a = activationPatching(model, { clean: ' The cat is', corrupt: ' The cats is', answer: ' is', wrong: ' are', site: 'mlp_out' });
    const b = activationPatching(model, { clean: ' The cat is', corrupt: ' The cats is', answerId: model.tokenId(' is')!, wrongId: model.tokenId(' are')!, site: 'mlp_out' });
    expect(a).toEqual(b);
  });

  test('clean and corrupt of different token lengths are refused with one line', () => {
    expectSpError(() => activationPatching(model, { clean: CLEAN, corrupt: CLEAN.slice(1), answerId: 1, wrongId: 2, site: 'resid_pre' }), 'BAD_INPUT', /same number of tokens \(clean 6, corrupt 5\)/);
  });

  test('a multi-token answer, a bad site, perPosition off z, a bad batch size: one line each', () => {
    const base = { clean: CLEAN, corrupt: CORRUPT, site: 'resid_pre' as PatchSite };
    expectSpError(() => activationPatching(model, { ...base, answer: ' interpretability', wrong: ' are' }), 'BAD_INPUT', /answer " interpretability" is \d+ tokens, not one/);
    expectSpError(() => activationPatching(model, { ...base, answer: ' is' }), 'BAD_INPUT', /needs wrong/);
    expectSpError(() => activationPatching(model, { ...base, answerId: 1, wrongId: 1e9 }), 'OUT_OF_RANGE', /wrong token id/);
    expectSpError(() => activationPatching(model, { ...base, answerId: 1, wrongId: 2, site: 'pattern' as PatchSite }), 'BAD_INPUT', /unknown patching site "pattern"/);
    expectSpError(() => activationPatching(model, { ...base, answerId: 1, wrongId: 2, perPosition: true }), 'BAD_INPUT', /perPosition is for site z/);
    expectSpError(() => activationPatching(model, { ...base, answerId: 1, wrongId: 2, batchSize: 0 }), 'BAD_INPUT', /batchSize/);
  });
});
