/**
 * The speaking-probe examples (examples/speaking-probes) run on a random test model: each
 * experiment produces the article's layout (prompt, virtual position, neuron source), greedy runs
 * agree with the float64 reference, and without gpt2-medium the examples say they use a test model.
 */
import { testModelDir } from '../speaking-probes/common.js';
import { EXPERIMENTS, main as runAll } from '../speaking-probes/run-all.js';
import { readSafetensorsDir } from '../../packages/core/test/reference/safetensors-mini.js';
import { expectGreedyPath, refFfKey } from '../../packages/core/test/generate/helpers.js';

const dir = testModelDir();
const w = readSafetensorsDir(dir);
const opts = { model: dir, greedy: true, maxNewTokens: 5, projectionTop: 5 };
const TERM = [464, 3381, 366, 0, 1, 1724]; // 'The term "' | virtual | '" means'

test('param_10_8 and param_11_2: FF keys in the term-means prompt, greedy = reference', async () => {
  for (const [name, [layer, j]] of [['param_10_8', [10, 8]], ['param_11_2', [11, 2]]] as const) {
    const lines: string[] = [];
    const { results, testModel } = await EXPERIMENTS[name](opts, (s) => lines.push(s));
    expect(testModel).toBe(false); // the model was given explicitly
    const [r] = results;
    expect(r.prompt_ids).toEqual(TERM);
    expect(r.neurons[0].source).toEqual({ type: 'key', layer, index: j });
    expectGreedyPath(w, r.prompt_ids, r.samples[0].new_ids, { embeds: [{ pos: 3, vector: refFfKey(w, layer, j) }], repetitionPenalty: 2, penaltySkip: [3] });
    expect(lines.join('\n')).toContain(`generate: The term "<neuron>" means${r.samples[0].text}`);
  }
});

test('param_0_0: both prompts, <param_0_0> tag', async () => {
  const { results } = await EXPERIMENTS.param_0_0(opts, () => {});
  expect(results.map((r) => r.prompt.split('\n').at(-1))).toEqual(['The term "<param_0_0>" means', '- synonyms of <param_0_0>:']);
  for (const r of results) {
    expect(r.neurons[0].source).toEqual({ type: 'key', layer: 0, index: 0 });
    const pos = r.neuron_positions;
    expect(pos).toHaveLength(1);
    expectGreedyPath(w, r.prompt_ids, r.samples[0].new_ids, { embeds: [{ pos: pos[0], vector: refFfKey(w, 0, 0) }], repetitionPenalty: 2, penaltySkip: pos });
  }
});

test('children + dog and (0.9*)google + show: token-embedding sums, greedy = reference', async () => {
  const E = w.get('wte.weight');
  const emb = (id: number) => Array.from(E.subarray(id * 16, (id + 1) * 16));
  const cd = (await EXPERIMENTS.children_dog(opts, () => {})).results[0];
  expect(cd.neurons[0].source).toMatchObject({ terms: [{ coef: 1, id: 1751 }, { coef: 1, id: 3290 }] });
  expectGreedyPath(w, cd.prompt_ids, cd.samples[0].new_ids, { embeds: [{ pos: 3, vector: emb(1751).map((x, i) => x + emb(3290)[i]) }], repetitionPenalty: 2, penaltySkip: [3] });
  const gs = (await EXPERIMENTS.google_show(opts, () => {})).results;
  expect(gs.map((r) => r.neurons[0].label)).toEqual(["expr ' google' + ' show'", "expr 0.9*' google' + ' show'"]);
  const v = emb(23645).map((x, i) => 0.9 * x + emb(905)[i]);
  const pos = gs[1].neuron_positions[0];
  expect(gs[1].prompt_ids.slice(pos - 1, pos + 2)).toEqual([705, 0, 6]); // " '" | virtual | "'"
  expectGreedyPath(w, gs[1].prompt_ids, gs[1].samples[0].new_ids, { embeds: [{ pos, vector: v }], repetitionPenalty: 2, penaltySkip: [pos] });
});

test('without gpt2-medium every experiment runs on the test model and says so (sampling, seeded)', async () => {
  process.env.SP_EXAMPLES_TEST_MODEL = '1';
  try {
    const lines: string[] = [];
    const out = await runAll({ maxNewTokens: 3, samples: 2 }, (s) => lines.push(s));
    expect(Object.keys(out)).toEqual(['param_10_8', 'param_11_2', 'param_0_0', 'children_dog', 'google_show']);
    expect(lines.filter((l) => l.includes('running on a random 24-layer TEST model'))).toHaveLength(5);
    for (const { results, testModel } of Object.values(out)) {
      expect(testModel).toBe(true);
      for (const r of results) {
        expect(r.samples).toHaveLength(2);
        expect(r.options).toMatchObject({ do_sample: true, temperature: 0.5, repetition_penalty: 2, seed: 1 });
        expect(r.samples.every((s) => s.new_ids.length >= 1)).toBe(true);
      }
    }
    const again = await EXPERIMENTS.param_10_8({ maxNewTokens: 3, samples: 2 }, () => {});
    expect(again.results[0].samples).toEqual(out.param_10_8.results[0].samples);
  } finally {
    delete process.env.SP_EXAMPLES_TEST_MODEL;
  }
});
