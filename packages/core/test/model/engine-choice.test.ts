/**
 * Which matrix engine a model gets: onnxruntime by default on wasm/cpu (onnxruntime-node is
 * installed in this repo), $SP_ENGINE to choose, $SP_MATMUL (the older switch) still honoured,
 * bad values a one-line SpError; an onnxruntime model disposed is an SpError on use, not a crash.
 */
import { checkEnv, gpt2, parseEngine, tf } from '@sp/core';
import { deviceWeights, engineInfo, engineName, usePackedMatmul } from '@sp/core/internals';
import { initBackend } from '../../src/backend/index.js';
import { expectSpError } from '../helpers/errors.js';
import { withEngine } from '../helpers/engines.js';
import { randomIds, writeRandomGpt2 } from '../helpers/random-gpt2.js';

const saved = { SP_ENGINE: process.env.SP_ENGINE, SP_MATMUL: process.env.SP_MATMUL };
const setEnv = (engine: string | undefined, matmul: string | undefined) => {
  for (const [k, v] of [['SP_ENGINE', engine], ['SP_MATMUL', matmul]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
};

beforeAll(async () => {
  await initBackend('wasm');
});
afterEach(() => setEnv(saved.SP_ENGINE, saved.SP_MATMUL));

test.each([
  [undefined, undefined, 'ort'],
  ['ort', undefined, 'ort'],
  ['wasm', undefined, 'wasm'],
  ['tfjs', undefined, 'tfjs'],
  [undefined, 'sp', 'wasm'], // SP_MATMUL=sp: sp's own kernel, as before
  [undefined, 'tfjs', 'tfjs'],
  ['ort', 'tfjs', 'ort'], // SP_ENGINE decides
  ['', '', 'ort'], // empty = unset
])('SP_ENGINE=%s SP_MATMUL=%s → %s', (engine, matmul, want) => {
  setEnv(engine, matmul);
  expect(engineName()).toBe(want);
  expect(usePackedMatmul()).toBe(want === 'wasm');
});

test('bad SP_ENGINE / --engine values are a one-line SpError', () => {
  setEnv('onnx', undefined);
  expectSpError(() => checkEnv(), 'BAD_INPUT', /^SP_ENGINE must be ort, wasm or tfjs \(got "onnx"\)$/);
  expectSpError(() => engineName(), 'BAD_INPUT', /SP_ENGINE must be/);
  expectSpError(() => parseEngine('--engine', 'gpu'), 'BAD_INPUT', /^--engine must be ort, wasm or tfjs \(got "gpu"\)$/);
  expect(parseEngine('--engine', 'wasm')).toBe('wasm');
});

test('an explicit native engine on the cpu backend works; the model records its engine', async () => {
  const { dir } = writeRandomGpt2({ nLayer: 1, dModel: 16, nHead: 2, seed: 5 });
  const ids = randomIds(5, 3);
  await initBackend('cpu');
  try {
    const m = await withEngine('ort', () => gpt2(dir));
    const w = await withEngine('wasm', () => gpt2(dir));
    expect([engineInfo(m).engine, engineInfo(w).engine]).toEqual(['ort', 'wasm']);
    const a = m.forward(ids), b = w.forward(ids);
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
    expect(d).toBeLessThan(1e-4);
    tf.dispose([a, b]);
    m.dispose();
    w.dispose();
  } finally {
    await initBackend('wasm');
  }
});

test('a disposed onnxruntime model: its layers raise SpError, not a native crash', async () => {
  const { dir } = writeRandomGpt2({ nLayer: 1, dModel: 16, nHead: 2, seed: 6 });
  const m = await withEngine('ort', () => gpt2(dir));
  const layer = deviceWeights(m).blocks[0].fc;
  m.dispose();
  const x = tf.zeros([1, 16]);
  expectSpError(() => layer.apply(x), 'BAD_INPUT', /used after dispose/);
  expectSpError(() => layer.weight(), 'BAD_INPUT', /used after dispose/);
  x.dispose();
});
