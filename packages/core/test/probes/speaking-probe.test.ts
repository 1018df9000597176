/**
 * speakingProbe end to end: the numpy golden continuations (FF key injected), every neuron source
 * against the float64 reference, the embedding-space view, sampling with a seed, bad input.
 */
import fs from 'node:fs';
import path from 'node:path';
import { gpt2, speakingProbe, tf, type GPT2, type SpeakingProbeResult } from '@sp/core';
import { FIXTURES, fixtureDir, golden, tmpDir } from '../helpers/fixtures.js';
import { expectGreedyPath, randomModelDir, refFfKey } from '../generate/helpers.js';
import { refForward, type RefWeights } from '../reference/gpt2-ref.js';
import type { RandomRefWeights } from '../reference/random-model.js';

const backend = process.env.SP_BACKEND ?? 'wasm';

describe.each(FIXTURES)('%s: golden speaking-probe continuations', (name) => {
  const g = golden(name);
  const c = g.cases.find((x) => x.name === 'term-means-param-1-5')!;
  const [pos, layer, j] = c.inject!;
  let model: GPT2;
  beforeAll(async () => {
    model = await gpt2(fixtureDir(name), { backend });
  });
  afterAll(() => model.dispose());

  test.each([
    ['<neuron> with --neuron 1,5', 'The term "<neuron>" means', [`${layer},${j}`]],
    ['<param_1_5>', `The term "<param_${layer}_${j}>" means`, []],
  ])('%s: greedy, and greedy with repetition penalty 2', async (_, prompt, neurons) => {
    const base = { prompt, neurons, greedy: true, maxNewTokens: c.greedy.length, eosTokenId: null, projectionTop: 0 };
    const r = await speakingProbe(model, { ...base, repetitionPenalty: 1 });
    expect(r.prompt_ids).toEqual(c.ids);
    expect(r.neuron_positions).toEqual([pos]);
    expect(r.samples).toHaveLength(1);
    expect(r.samples[0].new_ids).toEqual(c.greedy);
    expect(r.samples[0].ids).toEqual([...c.ids, ...c.greedy]);
    const r2 = await speakingProbe(model, { ...base, repetitionPenalty: 2 });
    expect(r2.samples[0].new_ids).toEqual(c.greedy_rep2);
  });
});

describe('random 3-layer model vs the float64 reference', () => {
  let model: GPT2;
  let w: RandomRefWeights;
  beforeAll(async () => {
    const r = randomModelDir({ nLayer: 3, nHead: 2, dModel: 16 }, 21);
    w = r.w;
    model = await gpt2(r.dir, { backend });
  });
  afterAll(() => model.dispose());

  const greedy = { greedy: true, maxNewTokens: 8, eosTokenId: null, projectionTop: 0 } as const;
  const tokEmb = (w: RefWeights, id: number) => Array.from(w.get('wte.weight').subarray(id * 16, (id + 1) * 16));
  const ffValue = (w: RefWeights, l: number, j: number) => Array.from(w.get(`h.${l}.mlp.c_proj.weight`).subarray(j * 16, (j + 1) * 16));

  test('two neurons, a param tag used twice, repetition penalty 2 skipping the placeholders', async () => {
    const prompt = 'A <neuron> and <neuron2> like <param_2_7>, not <param_2_7>';
    const r = await speakingProbe(model, { ...greedy, prompt, neurons: ['key:0,3', 'value:1,40'] });
    expect(r.neurons.map((n) => n.tags)).toEqual([['<neuron>'], ['<neuron2>'], ['<param_2_7>']]);
    expect(r.virtual_tokens.map((v) => v.neuron)).toEqual([0, 1, 2, 2]);
    const [p1, p2, p3, p4] = r.neuron_positions;
    expect(r.neurons[2].positions).toEqual([p3, p4]);
    const embeds = [
      { pos: p1, vector: refFfKey(w, 0, 3) },
      { pos: p2, vector: ffValue(w, 1, 40) },
      { pos: p3, vector: refFfKey(w, 2, 7) },
      { pos: p4, vector: refFfKey(w, 2, 7) },
    ];
    expectGreedyPath(w, r.prompt_ids, r.samples[0].new_ids, { embeds, repetitionPenalty: 2, penaltySkip: r.neuron_positions });
    expect(r.options).toMatchObject({ do_sample: false, repetition_penalty: 2, samples: 1, seed: null });
  });

  test('the placeholder id is not penalised (it is no real token)', async () => {
    // Make the placeholder's id the token greedy decoding picks first: with the placeholder
    // penalised the first token would have to change.
    const free = await speakingProbe(model, { ...greedy, prompt: 'The term "<neuron>" means', neurons: ['1,5'] });
    const first = free.samples[0].new_ids[0];
    const { generate } = await import('@sp/core');
    const ids = free.prompt_ids.slice();
    ids[3] = first;
    const embeds = [{ pos: 3, vector: model.ffKey(1, 5) }];
    const skip = await generate(model, ids, { maxNewTokens: 1, repetitionPenalty: 2, embeds, virtualPositions: [3] });
    const counted = await generate(model, ids, { maxNewTokens: 1, repetitionPenalty: 2, embeds });
    expect(skip.newTokens[0][0]).toBe(first);
    expect(counted.newTokens[0][0]).not.toBe(first); // so the test can tell the two apart
    expectGreedyPath(w, ids, counted.newTokens[0], { embeds: [{ pos: 3, vector: refFfKey(w, 1, 5) }], repetitionPenalty: 2 });
  });

  test('token-embedding arithmetic: 0.9*google + show, with a scale', async () => {
    const r = await speakingProbe(model, { ...greedy, prompt: "The invented word ' <neuron>' is", neurons: [{ type: 'expr', expr: '0.9*google + show', scale: 1.5 }] });
    const v = tokEmb(w, 23645).map((x, i) => 1.5 * (0.9 * x + tokEmb(w, 905)[i]));
    expect(r.neurons[0].label).toBe("1.5×expr 0.9*' google' + ' show'");
    expect(r.neurons[0].norm).toBeCloseTo(Math.hypot(...v), 4);
    expectGreedyPath(w, r.prompt_ids, r.samples[0].new_ids, { embeds: [{ pos: r.neuron_positions[0], vector: v }], repetitionPenalty: 2, penaltySkip: r.neuron_positions });
  });

  test('hidden state of another prompt injected at layer k (Patchscopes / SelfIE)', async () => {
    const src = [464, 3797, 3332, 319, 262, 2603]; // 'The cat sat on the mat'
    const ref = refForward(w, src);
    const hidden = (layer: number, pos: number) => {
      const a = layer < 3 ? ref.cache.get(`blocks.${layer}.hook_resid_pre`)! : ref.cache.get('blocks.2.hook_resid_post')!;
      return Array.from(a.data.subarray(pos * 16, (pos + 1) * 16));
    };
    // Default: injected at its own source layer.
    const r = await speakingProbe(model, { ...greedy, prompt: 'Say <neuron> again: <neuron>', neurons: [{ type: 'hidden', prompt: src, layer: 2, position: -2 }] });
    expect(r.neurons[0].inject_layer).toBe(2);
    expect(r.neurons[0].source).toMatchObject({ type: 'hidden', layer: 2, position: 4, token: ' the' });
    const v = hidden(2, 4);
    const residPre = r.neuron_positions.map((pos) => ({ layer: 2, pos, vector: v }));
    expectGreedyPath(w, r.prompt_ids, r.samples[0].new_ids, { residPre, repetitionPenalty: 2, penaltySkip: r.neuron_positions });
    // Last block's output injected at layer 1 via the probe-wide option; string spec form.
    const r2 = await speakingProbe(model, { ...greedy, prompt: 'Say <neuron>', neurons: ['hidden:3,-1:The cat sat on the mat'], injectLayer: 1, repetitionPenalty: 1 });
    expect(r2.neurons[0].inject_layer).toBe(1);
    expectGreedyPath(w, r2.prompt_ids, r2.samples[0].new_ids, { residPre: [{ layer: 1, pos: r2.neuron_positions[0], vector: hidden(3, 5) }] });
    // Layer 0 = token + position embedding.
    const r3 = await speakingProbe(model, { ...greedy, prompt: '<neuron>', neurons: [{ type: 'hidden', prompt: src, layer: 0, position: 1 }] });
    const e = tokEmb(w, 3797).map((x, i) => x + w.get('wpe.weight')[16 + i]);
    expectGreedyPath(w, r3.prompt_ids, r3.samples[0].new_ids, { residPre: [{ layer: 0, pos: 0, vector: e }], repetitionPenalty: 2, penaltySkip: [0] });
  });

  test('a vector file neuron and an FF key injected at a layer instead of the embedding', async () => {
    const f = path.join(tmpDir('sp-probe-'), 'v.json');
    const vec = Array.from({ length: 16 }, (_, i) => Math.sin(i) * 0.7);
    fs.writeFileSync(f, JSON.stringify(vec));
    const r = await speakingProbe(model, { ...greedy, prompt: 'The term "<neuron>" means <neuron2>', neurons: [`file:${f}`, { type: 'key', layer: 2, index: 1, injectLayer: 1 }] });
    expect(r.neurons.map((n) => n.inject_layer)).toEqual([null, 1]);
    const [a, b] = r.neuron_positions;
    expectGreedyPath(w, r.prompt_ids, r.samples[0].new_ids, {
      embeds: [{ pos: a, vector: Array.from(Float32Array.from(vec)) }],
      residPre: [{ layer: 1, pos: b, vector: refFfKey(w, 2, 1) }],
      repetitionPenalty: 2,
      penaltySkip: r.neuron_positions,
    });
  });

  test('embedding-space view: top of v·Eᵀ raw and with unit-norm embeddings', async () => {
    const r = await speakingProbe(model, { ...greedy, maxNewTokens: 1, prompt: '<neuron>', neurons: ['2,9'], projectionTop: 10 });
    const v = refFfKey(w, 2, 9);
    const E = w.get('wte.weight');
    const raw: number[] = [];
    const cos: number[] = [];
    for (let t = 0; t < 50257; t++) {
      let s = 0;
      let n = 0;
      for (let i = 0; i < 16; i++) {
        s += v[i] * E[t * 16 + i];
        n += E[t * 16 + i] ** 2;
      }
      raw.push(s);
      cos.push(s / Math.sqrt(n));
    }
    const top = (x: number[]) => x.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0]).slice(0, 10);
    const p = r.projection!;
    expect(p).toBe(r.neurons[0].projection);
    const check = (got: typeof p.top, want: number[][]) => {
      got.forEach((g, k) => {
        expect(Math.abs(g.score - want[k][0])).toBeLessThan(1e-4);
        if (g.id !== want[k][1]) expect(Math.abs(want.find((x) => x[1] === g.id)?.[0] ?? -1e9) - want[k][0]).toBeLessThan(1e-4);
        expect(g.token).toBe(model.tokenString(g.id));
      });
    };
    check(p.top, top(raw));
    check(p.top_normalized, top(cos));
    check(p.bottom, top(raw.map((x) => -x)).map(([s, i]) => [-s, i]));
    expect(p.top.map((t) => t.id)).not.toEqual(p.top_normalized.map((t) => t.id));
  });

  test('sampling: the article defaults, seed reproducible, samples differ, result is plain JSON', async () => {
    const opts = { prompt: 'The term "<neuron>" means', neurons: ['1,5'], maxNewTokens: 10, seed: 5, eosTokenId: null };
    const a = await speakingProbe(model, opts);
    const b = await speakingProbe(model, opts);
    expect(a.samples).toEqual(b.samples);
    expect(a.samples).toHaveLength(3);
    expect(new Set(a.samples.map((s) => s.text)).size).toBeGreaterThan(1);
    expect(a.options).toMatchObject({ do_sample: true, temperature: 0.5, repetition_penalty: 2, top_k: 50, top_p: 1, seed: 5, samples: 3 });
    const c = await speakingProbe(model, { ...opts, seed: 6 });
    expect(c.samples).not.toEqual(a.samples);
    const json: SpeakingProbeResult = JSON.parse(JSON.stringify(a));
    expect(json).toEqual(a);
    expect(Object.keys(json)).toEqual(expect.arrayContaining(['prompt_ids', 'neuron_positions', 'samples', 'projection']));
    for (const s of a.samples) {
      expect(s.ids.slice(0, a.prompt_ids.length)).toEqual(a.prompt_ids);
      expect(s.text).toBe(model.decode(s.new_ids));
      expect(s.finish).toBe('length');
    }
    const streamed: string[] = ['', '', ''];
    const d = await speakingProbe(model, { ...opts, onToken: (e) => (streamed[e.sequence] += e.text) });
    expect(streamed).toEqual(d.samples.map((s) => s.text));
  });

  test('bad input: one-line errors before any generation', async () => {
    const f = path.join(tmpDir('sp-probe-'), 'w.json');
    fs.writeFileSync(f, '[1, 2, 3]');
    const cases: Array<[object, RegExp]> = [
      [{ prompt: 'no tag', neurons: ['1,5'] }, /no virtual-token tag/],
      [{ prompt: '<neuron> <neuron2>', neurons: ['1,5'] }, /uses <neuron2> but only 1 neuron was given/],
      [{ prompt: '<neuron>' }, /uses <neuron> but no neuron was given/],
      [{ prompt: '<neuron>', neurons: ['1,5', '1,6'] }, /neuron 2 is not used: the prompt has no <neuron2> tag/],
      [{ prompt: '<neuron>', neurons: ['expr:0.9*googlezzqx + show'] }, /unknown token googlezzqx/],
      [{ prompt: '<neuron>', neurons: ['3,5'] }, /layer 3 is out of range \[0, 2\]/],
      [{ prompt: '<neuron>', neurons: ['1,64'] }, /neuron index 64 is out of range \[0, 63\]/],
      [{ prompt: '<param_9_0>' }, /layer 9 is out of range/],
      [{ prompt: '<neuron>', neurons: [`file:${f}`] }, /width 3, the model's d_model is 16/],
      [{ prompt: '<neuron>', neurons: ['1,5'], temperature: 0 }, /temperature must be > 0 when sampling/],
      [{ prompt: '<neuron>', neurons: ['1,5'], temperature: -1 }, /temperature must be > 0/],
      [{ prompt: '<neuron>', neurons: ['1,5'], greedy: true, samples: 3 }, /greedy decoding gives one sample/],
      [{ prompt: '<neuron>', neurons: [{ type: 'hidden', prompt: 'a b', layer: 3 }] }, /needs an explicit inject layer/],
      [{ prompt: '<neuron>', neurons: [{ type: 'hidden', prompt: 'a b', layer: 1, position: 5 }] }, /source position 5 is out of range/],
      [{ prompt: '<neuron>', neurons: [{ type: 'hidden', prompt: 'a b', layer: 4 }] }, /source layer 4 is out of range \[0, 3\]/],
      [{ prompt: '<neuron>', neurons: ['1,5'], injectLayer: 3 }, /inject layer 3 is out of range/],
      [{ prompt: '<neuron>', neurons: [{ type: 'vector', vector: new Array(16).fill(NaN) }] }, /not finite/],
      [{ prompt: '<neuron>', neurons: ['1,5'], maxNewTokens: 64 }, /exceeds the model's context/],
    ];
    const before = tf.memory().numTensors;
    for (const [o, re] of cases) {
      const err = await speakingProbe(model, o as never).catch((e) => e);
      expect([String(o && JSON.stringify(o)), err?.name]).toEqual([String(o && JSON.stringify(o)), 'SpError']);
      expect(err.message).toMatch(re);
      expect(err.message).not.toContain('\n');
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
