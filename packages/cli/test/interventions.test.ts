/** `--set-neuron` on generate, lens, rank and probe: parsing, the same results as the library's `interventions`, one-line errors. */
import path from 'node:path';
import { generate, gpt2, logitLens, rankings, speakingProbe, type GPT2, type NeuronIntervention } from '@sp/core';
import { parseSetNeuron } from '../src/common.js';
import { ensureBuilt, expectOneLineError, FIXTURES, sp } from './cli-helpers.js';

const tiny = path.join(FIXTURES, 'tiny-gpt2');
const IDS = [464, 3139, 286, 4881, 318];
// Strong enough to change the tiny model's greedy continuation (asserted below).
const FLAGS = ['--set-neuron', '1,5=100', '--set-neuron', '1,7=x50', '--set-neuron', '0,3=0'];
const LIST: NeuronIntervention[] = [{ layer: 1, index: 5, value: 100 }, { layer: 1, index: 7, scale: 50 }, { layer: 0, index: 3, value: 0 }];


describe('parseSetNeuron', () => {
  test('L,J=V sets, L,J=xS scales, repeated flags collect in order', () => {
    expect(parseSetNeuron('10,8=0')).toEqual([{ layer: 10, index: 8, value: 0 }]);
    expect(parseSetNeuron('3,5=x2')).toEqual([{ layer: 3, index: 5, scale: 2 }]);
    expect(parseSetNeuron(' 3 , 5 = X-0.5 ')).toEqual([{ layer: 3, index: 5, scale: -0.5 }]);
    expect(parseSetNeuron('0,1=-2.5e1', [{ layer: 3, index: 5, scale: 2 }])).toEqual([{ layer: 3, index: 5, scale: 2 }, { layer: 0, index: 1, value: -25 }]);
  });
  test.each(['10,8', '10=0', '10,8=', '10,8=x', '-1,8=0', '1.5,8=0', 'a,8=0', '10,8=abc', '10,8=NaN', '10,8=Infinity', '10,8,2=0', '10,8=x2x'])('"%s" is refused with one line', (spec) => {
    expect(() => parseSetNeuron(spec)).toThrow(/^--set-neuron ".*": use LAYER,INDEX=VALUE .* or LAYER,INDEX=xSCALE \(e\.g\. 3,5=x2\)$/);
  });
});

describe('the CLI flag', () => {
  let model: GPT2;
  beforeAll(async () => {
    ensureBuilt();
    model = await gpt2(tiny, { backend: process.env.SP_BACKEND ?? 'wasm' });
  });
  afterAll(() => model?.dispose());

  test('sp generate --set-neuron = generate(…, {interventions}); the continuation changes', async () => {
    const r = sp(['generate', '--model', tiny, '--ids', IDS.join(','), '--max-new-tokens', '6', ...FLAGS, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as { ids: number[] };
    const want = await generate(model, IDS, { maxNewTokens: 6, interventions: LIST });
    const plain = await generate(model, IDS, { maxNewTokens: 6 });
    expect(j.ids).toEqual(want.newTokens[0]);
    expect(j.ids).not.toEqual(plain.newTokens[0]);
  });

  test('sp lens --set-neuron and sp rank --set-neuron read the intervened run', () => {
    const l = sp(['lens', '--model', tiny, '--ids', IDS.join(','), '--topk', '3', ...FLAGS, '--json']);
    expect(l.status).toBe(0);
    const want = logitLens(model, IDS, { topk: 3, interventions: LIST });
    const got = JSON.parse(l.stdout) as typeof want;
    const ids = (x: typeof want) => x.layers.map((row) => row.positions.map((c) => c.top.map((t) => t.id)));
    expect(ids(got)).toEqual(ids(want));
    got.layers.forEach((row, r) => row.positions.forEach((c, p) => expect(c.top[0].prob).toBeCloseTo(want.layers[r].positions[p].top[0].prob, 5)));
    expect(ids(got)).not.toEqual(ids(logitLens(model, IDS, { topk: 3 })));

    const k = sp(['rank', '--model', tiny, '--ids', IDS.join(','), ...FLAGS, '--json']);
    expect(k.status).toBe(0);
    const wr = rankings(model, IDS, { interventions: LIST });
    expect((JSON.parse(k.stdout) as typeof wr).positions.map((p) => p.ranks)).toEqual(wr.positions.map((p) => p.ranks));
  });

  test('sp probe --set-neuron = speakingProbe(…, {interventions})', async () => {
    const args = ['--prompt', 'The <neuron> is', '--neuron', '1,2', '--greedy', '--max-new-tokens', '5'];
    const r = sp(['probe', '--model', tiny, ...args, ...FLAGS, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const want = await speakingProbe(model, { prompt: 'The <neuron> is', neurons: ['1,2'], greedy: true, maxNewTokens: 5, interventions: LIST });
    expect((JSON.parse(r.stdout) as typeof want).samples[0].new_ids).toEqual(want.samples[0].new_ids);
  });

  test('bad --set-neuron: one error line, exit 1 (syntax before loading, ranges from the library)', () => {
    expectOneLineError(sp(['generate', '--model', tiny, '--ids', '1,2', '--set-neuron', '1,2']), '--set-neuron "1,2": use LAYER,INDEX=VALUE');
    expectOneLineError(sp(['lens', '--model', tiny, '--ids', '1,2', '--set-neuron', '1,2=x']), '--set-neuron "1,2=x"');
    expectOneLineError(sp(['rank', '--model', tiny, '--ids', '1,2', '--set-neuron', '2,0=0']), 'intervention 0: layer 2 is out of range [0, 1]');
    expectOneLineError(sp(['generate', '--model', tiny, '--ids', '1,2', '--set-neuron', '0,1=0', '--set-neuron', '1,128=0']), 'intervention 1: neuron index 128 is out of range [0, 127]');
  });
});
