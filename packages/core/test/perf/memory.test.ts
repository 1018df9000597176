/**
 * Dispose discipline: many generate calls (1,000+ decode steps in all), streams abandoned early,
 * sampling with tiled KV caches, ragged batches, and the analysis entry points must leave the
 * backend exactly as they found it — same tensor count, same bytes — and the wasm heap must stop
 * growing once warm. A leak of one [1, 1, 50257] logits tensor per step would add 200 KB per token.
 */
import { generate, generateStream, gpt2, tf, type GPT2 } from '@sp/core';
import { fixtureDir } from '../helpers/fixtures.js';

let model: GPT2;
const backend = process.env.SP_BACKEND ?? 'wasm';

beforeAll(async () => {
  model = await gpt2(fixtureDir('tiny-gpt2'), { backend, download: false });
});
afterAll(() => model.dispose());

function snapshot(): { tensors: number; bytes: number; heap: number } {
  const m = tf.memory();
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  return { tensors: m.numTensors, bytes: m.numBytes, heap: wasm?.HEAPU8?.buffer.byteLength ?? 0 };
}

const prompt = [464, 3139, 286, 4881, 318];

test('1,000 greedy decode steps over 25 generate calls: tensors, bytes and wasm heap stay flat', async () => {
  // nCtx is 64 for this checkpoint: 25 calls × 40 new tokens = 1,000 KV-cache steps.
  const warm = await generate(model, prompt, { maxNewTokens: 40, eosTokenId: null });
  expect(warm.newTokens[0]).toHaveLength(40);
  const before = snapshot();
  let steps = 0;
  const heaps: number[] = [];
  for (let call = 0; call < 25; call++) {
    const r = await generate(model, prompt, { maxNewTokens: 40, eosTokenId: null });
    steps += r.newTokens[0].length;
    expect(r.newTokens[0]).toEqual(warm.newTokens[0]); // same work every call
    heaps.push(snapshot().heap);
  }
  expect(steps).toBe(1000);
  const after = snapshot();
  expect(after.tensors).toBe(before.tensors);
  expect(after.bytes).toBe(before.bytes);
  if (backend === 'wasm') expect(after.heap).toBe(before.heap);
  expect(new Set(heaps).size).toBe(1);
});

test('sampling with tiled caches, ragged batches and abandoned streams leak nothing', async () => {
  const run = async () => {
    await generate(model, [prompt, [40, 588]], { doSample: true, numReturnSequences: 3, maxNewTokens: 12, eosTokenId: null, seed: 7 });
    await generate(model, ['The cat', 'A much longer prompt than the other one'], { maxNewTokens: 6, eosTokenId: null });
    let n = 0;
    for await (const ev of generateStream(model, prompt, { maxNewTokens: 30, eosTokenId: null })) {
      if ('tokenId' in ev && ++n === 3) break; // consumer walks away mid-generation
    }
    expect(n).toBe(3);
    await expect(generate(model, prompt, { maxNewTokens: 100 })).rejects.toThrow(/exceeds the model's context/);
  };
  await run(); // warm: new shapes may grow the heap once
  const before = snapshot();
  for (let i = 0; i < 5; i++) await run();
  const after = snapshot();
  expect(after.tensors).toBe(before.tensors);
  expect(after.bytes).toBe(before.bytes);
  if (backend === 'wasm') expect(after.heap).toBe(before.heap);
});

test('forward, runWithCache and unembedResid return only what the caller disposes', () => {
  const before = snapshot();
  for (let i = 0; i < 20; i++) {
    const logits = model.forward(prompt);
    expect(logits.shape).toEqual([1, prompt.length, model.config.dVocab]);
    logits.dispose();
    const { logits: l2, cache } = model.runWithCache(prompt, { names: ['blocks.0.hook_resid_post', 'blocks.1.attn.hook_pattern'] });
    expect(cache.size).toBe(2);
    const lens = model.unembedResid(cache.get('blocks.0.hook_resid_post'));
    expect(lens.shape).toEqual([1, prompt.length, model.config.dVocab]);
    tf.dispose([l2, lens]);
    cache.dispose();
  }
  const after = snapshot();
  expect(after.tensors).toBe(before.tensors);
  expect(after.bytes).toBe(before.bytes);
});
