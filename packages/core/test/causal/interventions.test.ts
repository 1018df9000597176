/**
 * Neuron interventions (blocks.{l}.mlp.hook_post[:, j] set or scaled at every position) against the
 * float64 reference with the same coefficient replaced: forward (F32 and F16 checkpoints), runWithCache,
 * greedy generation, the logit lens, rankings, topNeurons, the speaking probe; validation errors.
 */
import fs from 'node:fs';
import { generate, gpt2, interventionHooks, logitLens, rankings, speakingProbe, topNeurons, type GPT2, type NeuronIntervention } from '@sp/core';
import { logSoftmax, refForward, refGreedy, refLens, type RefWeights } from '../reference/gpt2-ref.js';
import { firstMismatch, logitsRow, LOGIT_TOL, rowSlice } from '../helpers/compare.js';
import { randomIds, writeRandomGpt2, type RandomGpt2 } from '../helpers/random-gpt2.js';
import { expectSpError } from '../helpers/errors.js';

const SPEC = { nLayer: 2, dModel: 32, nHead: 4, nCtx: 24, seed: 4711 };
const D_MLP = 4 * SPEC.dModel;
const PROMPT = randomIds(6, 777);
const backend = process.env.SP_BACKEND ?? 'wasm';

// Strong enough to move the logits well past the tolerance (checked below, so the tests can fail).
const SET: NeuronIntervention[] = [{ layer: 0, index: 5, value: 0 }, { layer: 0, index: 17, value: 6 }, { layer: 1, index: 100, value: -4 }];
const SCALE: NeuronIntervention[] = [{ layer: 0, index: 3, scale: 8 }, { layer: 1, index: 40, scale: -6 }, { layer: 1, index: 41, scale: 0 }];

const fixtures: RandomGpt2[] = [];
afterAll(() => {
  for (const f of fixtures) fs.rmSync(f.dir, { recursive: true, force: true });
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe.each(['F32', 'F16'] as const)('%s checkpoint', (dtype) => {
  let fx: RandomGpt2;
  let ref: RefWeights;
  let model: GPT2;
  beforeAll(async () => {
    fx = writeRandomGpt2({ ...SPEC, dtype });
    fixtures.push(fx);
    ref = fx.ref;
    model = await gpt2(fx.dir, { backend });
  });
  afterAll(() => model?.dispose());

  test.each([['value', SET], ['scale', SCALE]] as const)('forward with %s interventions = the reference with the same coefficients replaced', (_, list) => {
    const want = refForward(ref, PROMPT, { neurons: list as NeuronIntervention[] }).logits.flat();
    const plain = refForward(ref, PROMPT).logits.flat();
    expect(maxAbsDiff(want, plain)).toBeGreaterThan(0.05); // the intervention matters
    const logits = model.forward(PROMPT, { interventions: list as NeuronIntervention[] });
    try {
      expect(firstMismatch('logits', logitsRow(logits, 0, PROMPT.length), want, LOGIT_TOL, false)).toBeUndefined();
    } finally {
      logits.dispose();
    }
  });

  test('runWithCache: mlp.hook_post holds the set value / scaled coefficient; fwdHooks and the cache see the intervened activation', () => {
    const list: NeuronIntervention[] = [{ layer: 1, index: 7, value: 2.5 }, { layer: 1, index: 9, scale: 3 }];
    const base = refForward(ref, PROMPT).cache.get('blocks.1.mlp.hook_post')!.data;
    const seen: number[] = [];
    const { logits, cache } = model.runWithCache(PROMPT, {
      names: ['blocks.1.mlp.hook_post'],
      interventions: list,
      fwdHooks: [['blocks.1.mlp.hook_post', (t) => void seen.push((t.dataSync() as Float32Array)[7])]],
    });
    try {
      const post = rowSlice('blocks.1.mlp.hook_post', cache.get('blocks.1.mlp.hook_post'), 0, PROMPT.length);
      const want = refForward(ref, PROMPT, { neurons: list }).cache.get('blocks.1.mlp.hook_post')!.data;
      expect(firstMismatch('post', post, want, 1e-5)).toBeUndefined();
      for (let p = 0; p < PROMPT.length; p++) {
        expect(post[p * D_MLP + 7]).toBe(2.5);
        expect(post[p * D_MLP + 9]).toBeCloseTo(3 * base[p * D_MLP + 9], 5);
      }
      expect(seen).toEqual([2.5]);
    } finally {
      logits.dispose();
      cache.dispose();
    }
  });

  test('entries on one neuron compose in list order (set then scale = value·scale; scale then set = value)', () => {
    const a: NeuronIntervention[] = [{ layer: 0, index: 2, value: 1.5 }, { layer: 0, index: 2, scale: 4 }];
    const b: NeuronIntervention[] = [{ layer: 0, index: 2, scale: 4 }, { layer: 0, index: 2, value: 1.5 }];
    for (const [list, v] of [[a, 6], [b, 1.5]] as const) {
      const want = refForward(ref, PROMPT, { neurons: [{ layer: 0, index: 2, value: v }] }).logits.flat();
      const logits = model.forward(PROMPT, { interventions: list as NeuronIntervention[] });
      try {
        expect(firstMismatch('logits', logitsRow(logits, 0, PROMPT.length), want, LOGIT_TOL, false)).toBeUndefined();
      } finally {
        logits.dispose();
      }
    }
  });
});

describe('analyses on an F32 checkpoint', () => {
  let fx: RandomGpt2;
  let ref: RefWeights;
  let model: GPT2;
  beforeAll(async () => {
    fx = writeRandomGpt2(SPEC);
    fixtures.push(fx);
    ref = fx.ref;
    model = await gpt2(fx.dir, { backend });
  });
  afterAll(() => model?.dispose());

  // Large enough to change the greedy continuation of this prompt (asserted).
  const BIG: NeuronIntervention[] = [{ layer: 1, index: 11, value: 40 }, { layer: 1, index: 60, scale: 30 }];

  test.each([['value + scale', BIG], ['value only', SET]] as const)('generate (greedy, KV cache) = the reference greedy recomputed with the intervention (%s)', async (_, list) => {
    const want = refGreedy(ref, PROMPT, 6, { neurons: list as NeuronIntervention[] });
    const r = await generate(model, PROMPT, { maxNewTokens: 6, interventions: list as NeuronIntervention[] });
    expect(r.newTokens[0]).toEqual(want);
    if (list === BIG) expect(want).not.toEqual(refGreedy(ref, PROMPT, 6));
    // and batched, left-padded with a shorter prompt
    const short = PROMPT.slice(2);
    const rb = await generate(model, [PROMPT, short], { maxNewTokens: 6, interventions: list as NeuronIntervention[] });
    expect(rb.newTokens).toEqual([want, refGreedy(ref, short, 6, { neurons: list as NeuronIntervention[] })]);
  });

  test('logitLens, rankings and topNeurons read the intervened run', () => {
    const lens = logitLens(model, PROMPT, { topk: 1, interventions: BIG });
    const want = refLens(ref, PROMPT, { neurons: BIG });
    const plain = refLens(ref, PROMPT);
    let moved = 0;
    lens.layers.forEach((row, l) => row.positions.forEach((cell, p) => {
      const lp = want[l][p];
      const best = lp.indexOf(Math.max(...lp));
      expect(cell.top[0].id).toBe(best);
      expect(cell.top[0].prob).toBeCloseTo(Math.exp(lp[best]), 4);
      moved = Math.max(moved, Math.abs(cell.top[0].prob - Math.exp(Math.max(...plain[l][p]))));
    }));
    expect(moved).toBeGreaterThan(1e-3);

    // rankings' last position ranks the model's own (intervened) prediction
    const rk = rankings(model, PROMPT, { interventions: BIG });
    const last = refForward(ref, PROMPT, { neurons: BIG }).logits.at(-1)!;
    expect(rk.positions.at(-1)!.target.id).toBe(last.indexOf(Math.max(...last)));
    const lpLast = logSoftmax(last);
    expect(rk.positions.at(-1)!.probs.at(-1)).toBeCloseTo(Math.exp(Math.max(...lpLast)), 4);

    // topNeurons sees the set coefficient
    const tn = topNeurons(model, PROMPT, { k: 5, interventions: [{ layer: 1, index: 11, value: 1e3 }] });
    expect(tn.neurons[0]).toMatchObject({ layer: 1, index: 11, coefficient: 1e3 });
  });

  test('speakingProbe passes interventions to generation (greedy = generate with the same embeds and interventions)', async () => {
    const opts = { prompt: 'a <neuron> b', neurons: ['key:0,3'], greedy: true, maxNewTokens: 5, projectionTop: 0, repetitionPenalty: 1 };
    const withIv = await speakingProbe(model, { ...opts, interventions: BIG });
    const without = await speakingProbe(model, opts);
    const vec = model.ffKey(0, 3);
    const pos = withIv.neuron_positions;
    const g = await generate(model, withIv.prompt_ids, { maxNewTokens: 5, embeds: pos.map((p) => ({ pos: p, vector: vec })), interventions: BIG });
    expect(withIv.samples[0].new_ids).toEqual(g.newTokens[0]);
    const gPlain = await generate(model, withIv.prompt_ids, { maxNewTokens: 5, embeds: pos.map((p) => ({ pos: p, vector: vec })) });
    expect(without.samples[0].new_ids).toEqual(gPlain.newTokens[0]);
    expect(g.newTokens[0]).not.toEqual(gPlain.newTokens[0]);
    await expect(speakingProbe(model, { ...opts, interventions: [{ layer: 9, index: 0, value: 0 }] })).rejects.toThrow(/layer 9 is out of range/);
  });

  test('bad interventions: one-line SpErrors before any work', async () => {
    const bad: Array<[unknown, string, RegExp]> = [
      [{ layer: -1, index: 0, value: 0 }, 'OUT_OF_RANGE', /intervention 1: layer -1 is out of range \[0, 1\]/],
      [{ layer: 2, index: 0, value: 0 }, 'OUT_OF_RANGE', /layer 2 is out of range/],
      [{ layer: 0.5, index: 0, value: 0 }, 'OUT_OF_RANGE', /layer 0.5/],
      [{ layer: 0, index: D_MLP, value: 0 }, 'OUT_OF_RANGE', /neuron index 128 is out of range \[0, 127\]/],
      [{ layer: 0, index: '3', value: 0 }, 'OUT_OF_RANGE', /neuron index 3/],
      [{ layer: 0, index: 1, value: NaN }, 'BAD_INPUT', /value must be a finite number \(got NaN\)/],
      [{ layer: 0, index: 1, scale: Infinity }, 'BAD_INPUT', /scale must be a finite number/],
      [{ layer: 0, index: 1, value: '2' }, 'BAD_INPUT', /value must be a finite number \(got "2"\)/],
      [{ layer: 0, index: 1, value: 1, scale: 2 }, 'BAD_INPUT', /exactly one of value and scale/],
      [{ layer: 0, index: 1 }, 'BAD_INPUT', /exactly one of value and scale/],
      [null, 'BAD_INPUT', /must be an object/],
    ];
    for (const [iv, code, re] of bad) {
      const list = [{ layer: 0, index: 0, value: 1 }, iv] as NeuronIntervention[];
      const e = expectSpError(() => model.forward(PROMPT, { interventions: list }), code, re);
      expect(e.message).toMatch(/^intervention 1/);
      expectSpError(() => interventionHooks(model.config, list), code, re);
      expectSpError(() => logitLens(model, PROMPT, { interventions: list }), code, re);
      await expect(generate(model, PROMPT, { maxNewTokens: 2, interventions: list })).rejects.toThrow(re);
    }
    expectSpError(() => model.forward(PROMPT, { interventions: 'x' as unknown as NeuronIntervention[] }), 'BAD_INPUT', /must be an array/);
  });

  test('no interventions (undefined or []) leaves the run exactly as it was', () => {
    const a = model.forward(PROMPT);
    const b = model.forward(PROMPT, { interventions: [] });
    try {
      expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    } finally {
      a.dispose();
      b.dispose();
    }
    expect(interventionHooks(model.config, [])).toEqual([]);
    expect(interventionHooks(model.config, undefined)).toEqual([]);
  });
});
