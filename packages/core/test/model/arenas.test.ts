/**
 * Packed weights spread over several arenas (as gpt2-xl must be: a wasm32 memory holds 4 GiB) give
 * bit-for-bit the logits of a single arena. $SP_ARENA_BYTES shrinks the arena capacity so a tiny
 * random model takes the multi-arena path.
 */
import { gpt2, tf } from '@sp/core';
import { engineInfo } from '@sp/core/internals';
import { randomIds, writeRandomGpt2 } from '../helpers/random-gpt2.js';
import { withEngine } from '../helpers/engines.js';

const spec = { nLayer: 3, dModel: 32, nHead: 4, dtype: 'F32' as const };

async function logitsWith(arenaBytes: string | undefined, dir: string, ids: number[]): Promise<{ logits: Float32Array; arenas: number }> {
  if (arenaBytes === undefined) delete process.env.SP_ARENA_BYTES;
  else process.env.SP_ARENA_BYTES = arenaBytes;
  const model = await withEngine('wasm', () => gpt2(dir)); // the packed kernel's arenas
  try {
    const t = model.forward(ids);
    const logits = t.dataSync() as Float32Array;
    t.dispose();
    return { logits, arenas: engineInfo(model).arenas };
  } finally {
    model.dispose();
    delete process.env.SP_ARENA_BYTES;
  }
}

test('a model split over several arenas computes exactly what one arena does', async () => {
  const { dir } = writeRandomGpt2(spec);
  const ids = randomIds(9, 3, 50257);
  const one = await logitsWith(undefined, dir, ids);
  // 64 KiB per arena: the [V, d] unembedding (6.4 MB) alone in one, the blocks' matrices packed in others.
  const many = await logitsWith(String(64 << 10), dir, ids);
  expect(tf.getBackend()).toMatch(/wasm|cpu/);
  expect(one.arenas).toBe(1);
  expect(many.arenas).toBeGreaterThan(2);
  expect(many.logits.length).toBe(9 * 50257);
  expect(Buffer.from(many.logits.buffer).equals(Buffer.from(one.logits.buffer))).toBe(true);
  expect(one.logits.some((x) => x !== 0)).toBe(true);
});

test('SP_MATMUL=tfjs (XNNPACK matmuls, as on other backends) agrees with the packed kernel', async () => {
  const { dir } = writeRandomGpt2({ ...spec, seed: 11 });
  const ids = randomIds(7, 5, 50257);
  const packed = await logitsWith(undefined, dir, ids);
  process.env.SP_MATMUL = 'tfjs';
  try {
    const model = await gpt2(dir);
    try {
      expect(engineInfo(model).arenas).toBe(0);
      const t = model.forward(ids);
      const viaTfjs = t.dataSync() as Float32Array;
      t.dispose();
      let worst = 0;
      for (let i = 0; i < viaTfjs.length; i++) worst = Math.max(worst, Math.abs(viaTfjs[i] - packed.logits[i]));
      expect(worst).toBeLessThan(1e-4);
      expect(worst).toBeGreaterThan(0); // two different summation orders: not the same code path
    } finally {
      model.dispose();
    }
  } finally {
    delete process.env.SP_MATMUL;
  }
});

test('the onnxruntime engine agrees with the packed kernel (another summation order) and holds no arenas', async () => {
  const { dir } = writeRandomGpt2({ ...spec, seed: 12 });
  const ids = randomIds(6, 8, 50257);
  const packed = await logitsWith(undefined, dir, ids);
  const model = await withEngine('ort', () => gpt2(dir));
  try {
    expect(engineInfo(model)).toMatchObject({ engine: 'ort', arenas: 0 });
    const t = model.forward(ids);
    const viaOrt = t.dataSync() as Float32Array;
    t.dispose();
    let worst = 0;
    for (let i = 0; i < viaOrt.length; i++) worst = Math.max(worst, Math.abs(viaOrt[i] - packed.logits[i]));
    expect(worst).toBeLessThan(1e-4);
    expect(worst).toBeGreaterThan(0);
  } finally {
    model.dispose();
  }
});
