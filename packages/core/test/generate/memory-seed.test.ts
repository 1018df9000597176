/**
 * Issue 16: generation memory is estimated before any work (large sample counts run in chunks with
 * the same results, or are refused in one line), and seeds outside 0 … 2³² − 1 are refused rather
 * than silently truncated. Also: env variables with bad values are SpErrors, not ignored.
 */
import { checkEnv, generate, generationMemoryBytes, GENERATION_MEMORY_BUDGET, gpt2, parseThreads, seededRandom, type GPT2, type TokenEvent } from '@sp/core';
import { randomModelDir } from './helpers.js';

let model: GPT2;
const backend = process.env.SP_BACKEND ?? 'wasm';
const PROMPT = [40, 588, 257, 3290, 290];

beforeAll(async () => {
  model = await gpt2(randomModelDir({ nLayer: 2, nHead: 3, dModel: 24 }, 5).dir, { backend });
});
afterAll(() => model.dispose());

test('generationMemoryBytes: 2 × KV cache + 3 × last-position logits, float32 (hand computation)', () => {
  // gpt2-small, 8 rows, 100 tokens: KV = 2·12·8·100·768·4 = 58 982 400; logits = 8·50257·4 = 1 608 224.
  expect(generationMemoryBytes({ nLayer: 12, dModel: 768, dVocab: 50257 }, 8, 100)).toBe(2 * 58_982_400 + 3 * 1_608_224);
  expect(generationMemoryBytes({ nLayer: 2, dModel: 32, dVocab: 50257 }, 1, 64)).toBe(2 * (2 * 2 * 64 * 32 * 4) + 3 * 50257 * 4);
  expect(GENERATION_MEMORY_BUDGET).toBe(512 * 2 ** 20);
});

describe('samples beyond the memory budget', () => {
  const opts = { maxNewTokens: 6, doSample: true, temperature: 1.3, topK: 0, eosTokenId: null, seed: 77 } as const;

  test('run in chunks that fit, with exactly the results of one batch (and events numbered across chunks)', async () => {
    const T = PROMPT.length + opts.maxNewTokens;
    const whole = await generate(model, PROMPT, { ...opts, numReturnSequences: 5 });
    const batches: number[] = [];
    const events: TokenEvent[] = [];
    const chunked = await generate(model, PROMPT, {
      ...opts,
      numReturnSequences: 5,
      memoryBudget: generationMemoryBytes(model.config, 2, T), // two rows per chunk: 2 + 2 + 1
      fwdHooks: [['hook_embed', (t) => void batches.push(t.shape[0])]],
      onToken: (e) => events.push(e),
    });
    expect(chunked.newTokens).toEqual(whole.newTokens);
    expect(chunked.sequences).toEqual(whole.sequences);
    expect(chunked.texts).toEqual(whole.texts);
    expect(chunked.promptLengths).toEqual([5, 5, 5, 5, 5]);
    expect(new Set(whole.newTokens.map((t) => t.join())).size).toBe(5); // the samples do differ
    expect(Math.max(...batches)).toBe(2); // no forward pass saw more than 2 rows
    expect(batches.filter((b) => b === 1).length).toBeGreaterThan(3); // the prefills and the last chunk
    for (let r = 0; r < 5; r++) expect(events.filter((e) => e.sequence === r).map((e) => e.tokenId)).toEqual(whole.newTokens[r]);
    expect(chunked.timing.newTokens).toBe(30);
  });

  test('250 samples in chunks of 100 (top-k 50): sample j is still sample j of one batch', async () => {
    const o = { ...opts, maxNewTokens: 2, topK: 50, numReturnSequences: 250 };
    const batches: number[] = [];
    const whole = await generate(model, PROMPT, { ...o, memoryBudget: 2 ** 40 });
    const chunked = await generate(model, PROMPT, {
      ...o,
      memoryBudget: generationMemoryBytes(model.config, 100, PROMPT.length + 2) + 1,
      fwdHooks: [['hook_embed', (t) => void batches.push(t.shape[0])]],
    });
    expect(batches).toEqual([1, 100, 1, 100, 1, 50]); // prefill, decode step per chunk
    expect(chunked.newTokens).toEqual(whole.newTokens);
    expect(new Set(whole.newTokens.map((t) => t.join())).size).toBeGreaterThan(100);
  });

  test('several prompts over the budget: refused at once in one line naming the estimate and the limit', async () => {
    const t0 = performance.now();
    const err = await generate(model, [PROMPT, [464, 3139]], { ...opts, numReturnSequences: 100_000 }).catch((e) => e);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(err.name).toBe('SpError');
    expect(err.message).toMatch(/^2 prompts × 100000 samples of 11 tokens need about \d+\.\d GiB for the KV cache and logits, over the 0\.50 GiB memoryBudget/);
    expect(err.message).not.toContain('\n');
  });
});

describe('seeds are 0 … 2^32 − 1', () => {
  test('larger, negative or fractional seeds are refused (2^32 used to be seed 0)', async () => {
    for (const seed of [2 ** 32, 2 ** 53 - 1, -1, 1.5]) {
      const err = await generate(model, PROMPT, { doSample: true, maxNewTokens: 1, seed }).catch((e) => e);
      expect(err.name).toBe('SpError');
      expect(err.message).toBe(`seed must be an integer from 0 to 4294967295 (got ${seed})`);
      expect(() => seededRandom(seed)).toThrow(/seed must be an integer/);
    }
    const top = await generate(model, PROMPT, { doSample: true, maxNewTokens: 3, seed: 2 ** 32 - 1 });
    const zero = await generate(model, PROMPT, { doSample: true, maxNewTokens: 3, seed: 0 });
    expect(top.newTokens[0]).toHaveLength(3);
    expect(seededRandom(2 ** 32 - 1)()).not.toBe(seededRandom(0)());
    expect(zero.newTokens[0]).toHaveLength(3);
  });
});

describe('environment variables: set means valid', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of ['SP_THREADS', 'SP_WASM_THREADS', 'SP_MATMUL', 'SP_BACKEND']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  test.each([
    ['SP_THREADS', '0', 'SP_THREADS must be an integer from 1 to 64 (got "0")'],
    ['SP_THREADS', 'abc', 'SP_THREADS must be an integer from 1 to 64 (got "abc")'],
    ['SP_THREADS', '999', 'SP_THREADS must be an integer from 1 to 64 (got "999")'],
    ['SP_WASM_THREADS', '-2', 'SP_WASM_THREADS must be an integer from 1 to 64 (got "-2")'],
    ['SP_MATMUL', 'nonsense', 'SP_MATMUL must be sp or tfjs (got "nonsense")'],
    ['SP_BACKEND', 'gpu', 'SP_BACKEND must be wasm, cpu, tensorflow or webgpu (got "gpu")'],
  ])('%s=%s is a one-line SpError, from checkEnv and from loading a model', async (name, value, message) => {
    process.env[name] = value;
    expect(() => checkEnv()).toThrow(message);
    const err = await gpt2(randomModelDir({ nLayer: 1, nHead: 1, dModel: 8 }, 1).dir, name === 'SP_BACKEND' ? {} : { backend }).catch((e) => e);
    expect(err.name).toBe('SpError');
    expect(err.message).toBe(message);
  });

  test('valid and empty values pass; the flag parser is the same rule', () => {
    Object.assign(process.env, { SP_THREADS: '64', SP_WASM_THREADS: '1', SP_MATMUL: 'tfjs', SP_BACKEND: '' });
    expect(() => checkEnv()).not.toThrow();
    expect(parseThreads('--threads', '3')).toBe(3);
    expect(() => parseThreads('--threads', '65')).toThrow('--threads must be an integer from 1 to 64 (got "65")');
    expect(() => parseThreads('--threads', '2.5')).toThrow('--threads must be an integer from 1 to 64 (got "2.5")');
  });
});
