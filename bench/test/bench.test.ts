/** The bench's arithmetic: statistics, parameter counts and bytes per decode step. */
import { mapStat, stat } from '../src/stats.js';
import { paramCount } from '../src/xl.js';
import { weightBytesPerStep } from '../src/suite.js';
import { presetConfig, randomTensors } from '../src/weights.js';

test('stat: min / median / max, odd and even counts', () => {
  expect(stat([5, 1, 3])).toEqual({ min: 1, median: 3, max: 5, n: 3 });
  expect(stat([4, 1, 3, 2])).toEqual({ min: 1, median: 2.5, max: 4, n: 4 });
  // ms → tokens/s swaps min and max
  expect(mapStat(stat([10, 20, 40]), (ms) => 1000 / ms)).toEqual({ min: 25, median: 50, max: 100, n: 3 });
});

test('parameter counts match the published GPT-2 sizes', () => {
  expect(paramCount('gpt2')).toBe(124_439_808);
  expect(paramCount('gpt2-medium')).toBe(354_823_168);
  expect(paramCount('gpt2-xl')).toBe(1_557_611_200);
});

test('a decode step reads every parameter but the unused position embeddings', () => {
  const c = presetConfig('gpt2');
  expect(weightBytesPerStep(c)).toBe(4 * (paramCount('gpt2') - c.nCtx * c.dModel + c.dModel));
});

test('random checkpoints have the HF tensor set and sizes', () => {
  const c = { ...presetConfig('gpt2'), nLayer: 1, dVocab: 100, nCtx: 16 };
  const t = randomTensors(c);
  const names = t.map((x) => x.name);
  expect(names).toContain('h.0.attn.c_attn.weight');
  expect(names).toContain('h.0.attn.bias'); // HF's mask buffer, ignored by the loader
  const fc = t.find((x) => x.name === 'h.0.mlp.c_fc.weight')!;
  expect(fc.shape).toEqual([768, 3072]);
  const data = fc.data as Float32Array;
  let sq = 0;
  for (const v of data) sq += v * v;
  expect(Math.sqrt(sq / data.length)).toBeCloseTo(0.02, 3); // GPT-2-like init scale
});

test('peers table: ratios to transformers.js (throughput) and to numpy (lens time), GB/s from steps/s', async () => {
  const { peersTable } = await import('../src/peers/peers.js');
  const s = (median: number) => ({ min: median, median, max: median, n: 1 });
  const rep = {
    date: 'd', command: 'c', model: 'gpt2', threads: 2, rounds: 1, cpu: 'x', cores: 2, node: 'v', loadavgStart: [0], loadavgEnd: [0],
    bandwidth: { method: 'm', byThreads: [], best: 20 }, sgemmGflops: 300, weightBytesPerStep: 5e8, lensGflop: 75, skipped: [], table: '',
    peers: [
      { peer: 'sp-ort' as const, engine: 'e', loadMs: 1, figures: { decode: { value: s(40), unit: 'tok/s' as const }, sample: { value: s(80), unit: 'tok/s' as const }, lens: { value: s(750), unit: 'ms' as const } } },
      { peer: 'transformers.js' as const, engine: 'e', loadMs: 1, figures: { decode: { value: s(20), unit: 'tok/s' as const }, sample: { value: s(160), unit: 'tok/s' as const }, lens: { skipped: 'no lens' } } },
      { peer: 'numpy' as const, engine: 'e', loadMs: 1, figures: { lens: { value: s(1500), unit: 'ms' as const } } },
    ],
  };
  const row = peersTable(rep).split('\n').find((l) => l.startsWith('| sp-ort'))!;
  expect(row).toContain('40.0 (40.0–40.0) **2.00×**, 20.0 GB/s'); // 40 steps/s × 0.5 GB
  expect(row).toContain('80.0 (80.0–80.0) **0.50×**, 5.0 GB/s'); // 8 rows share a step: 10 steps/s
  expect(row).toContain('750 (750–750) **2.00×**, 100 GFLOP/s');
});
