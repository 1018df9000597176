/**
 * One benchmark configuration (a checkpoint on one backend) in its own process, so backends and
 * thread counts never share state. Run by run.ts: `node suite.js '<json SuiteArgs>'`; prints
 * progress on stderr and the result as the last stdout line, prefixed with RESULT_TAG.
 */
import * as core from '@sp/core';
import { gpt2, generate, tf, type GPT2 } from '@sp/core';
import { stat, type Stat } from './stats.js';
import { matmulEngine } from './threads.js';

export const RESULT_TAG = '@@bench-result ';

export interface SuiteArgs {
  dir: string;
  backend: string;
  repeats: number;
  /** New tokens of the decode figure. */
  decodeTokens: number;
  /** New tokens of the naive-vs-KV comparison (the naive loop is slow). */
  naiveTokens: number;
  /** Skip the probe/lens/rankings figures (slow backends). */
  decodeOnly?: boolean;
}

export interface SuiteResult {
  backend: string;
  threads: number;
  matmul: string;
  weightBytesPerStep: number;
  /** Greedy decode with the KV cache: prompt 16 tokens, `decodeTokens` new; per-step rate. */
  decode: { tokensPerS: Stat; msPerStep: Stat; prefillMs: Stat; newTokens: number };
  /** The same 16-token prompt, `naiveTokens` new tokens, with and without the KV cache. */
  naive: { tokensPerS: Stat; kvTokensPerS: Stat; newTokens: number };
  /** 8 samples × 50 new tokens, aggregate tokens/s (prefill included). */
  probe?: { tokensPerS: Stat; ms: Stat; api: string };
  /** logitLens of a 64-token prompt, all layers, top-10. */
  lens?: { ms: Stat; api: string };
  /** rankings of the same 64 tokens. */
  rankings?: { ms: Stat; api: string };
  /** tf.memory() across everything after the warm-up: must not grow. */
  memory: { tensorsBefore: number; tensorsAfter: number; bytesBefore: number; bytesAfter: number; wasmHeapMB?: number };
}

const log = (s: string) => process.stderr.write(`  ${s}\n`);

/** Bytes of parameters a decode step reads: every matrix, bias and LayerNorm vector, one wpe row. */
export function weightBytesPerStep(c: core.GPT2Config): number {
  const { dModel: d, dMlp: m, dVocab: V, nLayer: L } = c;
  const perLayer = d * 3 * d + 3 * d + d * d + d + d * m + m + m * d + d + 4 * d;
  return 4 * (L * perLayer + V * d + 2 * d + d);
}

function timeIt(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const prompt = (n: number, offset = 0) => Array.from({ length: n }, (_, i) => (1000 + 37 * (i + offset)) % 50000);

/** Greedy decode without a cache: the whole sequence through the model for every new token. */
function naiveGreedy(model: GPT2, ids: number[], n: number): number[] {
  const seq = [...ids];
  for (let i = 0; i < n; i++) {
    const logits = model.forward(seq, { logits: 'last' });
    const next = tf.tidy(() => tf.argMax(tf.reshape(logits, [-1])).dataSync()[0]);
    logits.dispose();
    seq.push(next);
  }
  return seq.slice(ids.length);
}

export async function runSuite(a: SuiteArgs): Promise<SuiteResult> {
  const model = await gpt2(a.dir, { backend: a.backend, download: false });
  const R = a.repeats;
  const p16 = prompt(16);
  const greedy = { eosTokenId: null, doSample: false } as const;

  // Warm-up: the first call builds XNNPACK operators (packs every weight matrix once).
  await generate(model, p16, { ...greedy, maxNewTokens: 4 });
  const m0 = tf.memory();

  log('decode');
  const steps: number[] = [];
  const prefill: number[] = [];
  for (let r = 0; r < R; r++) {
    const g = await generate(model, p16, { ...greedy, maxNewTokens: a.decodeTokens + 1 });
    steps.push(g.timing.decodeMs / a.decodeTokens); // the first token comes from the prefill
    prefill.push(g.timing.prefillMs);
  }
  const msPerStep = stat(steps);

  log('naive vs KV cache');
  const naive: number[] = [];
  const kv: number[] = [];
  for (let r = 0; r < Math.max(2, Math.ceil(R / 2)); r++) {
    let kvIds: number[] = [];
    kv.push(await timeAsync(async () => (kvIds = (await generate(model, p16, { ...greedy, maxNewTokens: a.naiveTokens })).newTokens[0])));
    let nvIds: number[] = [];
    naive.push(timeIt(() => (nvIds = naiveGreedy(model, p16, a.naiveTokens))));
    if (kvIds.join() !== nvIds.join()) throw new Error(`KV-cache and naive greedy decodes differ: ${kvIds} vs ${nvIds}`);
  }
  const res: SuiteResult = {
    backend: core.backendName(),
    ...matmulEngine(),
    weightBytesPerStep: weightBytesPerStep(model.config),
    decode: { tokensPerS: stat(steps.map((ms) => 1000 / ms)), msPerStep, prefillMs: stat(prefill), newTokens: a.decodeTokens },
    naive: { tokensPerS: stat(naive.map((ms) => (1000 * a.naiveTokens) / ms)), kvTokensPerS: stat(kv.map((ms) => (1000 * a.naiveTokens) / ms)), newTokens: a.naiveTokens },
    memory: { tensorsBefore: m0.numTensors, tensorsAfter: 0, bytesBefore: m0.numBytes, bytesAfter: 0 },
  };

  if (!a.decodeOnly) {
    log('speaking probe (8 × 50)');
    const probeApi = (core as Record<string, unknown>).speakingProbe as undefined | ((m: GPT2, o: object) => Promise<{ samples: Array<{ new_ids: number[] }> }>);
    const probeMs: number[] = [];
    const probeTokens = 400; // 8 × 50, EOS disabled
    for (let r = 0; r < R; r++) {
      if (probeApi) {
        // FF key 100 of layer 5 as a virtual token in the paper's template: 8 samples × 50 tokens.
        const t0 = performance.now();
        const out = await probeApi(model, { prompt: 'The term "<param_5_100>" means', samples: 8, maxNewTokens: 50, eosTokenId: null, seed: r, projectionTop: 0 });
        probeMs.push(performance.now() - t0);
        const n = out.samples.reduce((a, x) => a + x.new_ids.length, 0);
        if (n !== probeTokens) throw new Error(`speakingProbe produced ${n} new tokens, expected ${probeTokens}`);
      } else {
        probeMs.push(await timeAsync(() => generate(model, prompt(12, r), { doSample: true, numReturnSequences: 8, maxNewTokens: 50, eosTokenId: null, seed: r })));
      }
    }
    res.probe = { tokensPerS: stat(probeMs.map((ms) => (1000 * probeTokens) / ms)), ms: stat(probeMs), api: probeApi ? 'speakingProbe (8 samples × 50 tokens, temperature 0.5, repetition penalty 2)' : 'generate(numReturnSequences 8, doSample)' };

    const p64 = prompt(64);
    const lensApi = (core as Record<string, unknown>).logitLens as undefined | ((m: GPT2, ids: number[], o: object) => unknown);
    const rankApi = (core as Record<string, unknown>).rankings as undefined | ((m: GPT2, ids: number[], o: object) => unknown);
    log('logit lens (64 tokens, top-10)');
    const lensOnce = () => {
      if (lensApi) return lensApi(model, p64, { topk: 10 });
      // Equivalent: cache every resid, one batched ln_f + unembedding, top-10 per cell.
      const names: core.HookName[] = [`blocks.0.hook_resid_pre`, ...Array.from({ length: model.config.nLayer }, (_, i): core.HookName => `blocks.${i}.hook_resid_post`)];
      const { logits, cache } = model.runWithCache(p64, { names });
      logits.dispose();
      const out = tf.tidy(() => tf.topk(model.unembedResid(tf.stack(names.map((n) => cache.get(n)))), 10).indices.dataSync());
      cache.dispose();
      return out;
    };
    lensOnce(); // warm-up (new matmul shapes)
    res.lens = { ms: stat(Array.from({ length: R }, () => timeIt(lensOnce))), api: lensApi ? 'logitLens' : 'runWithCache + unembedResid + topk' };
    if (rankApi) {
      log('rankings (64 tokens)');
      rankApi(model, p64, {});
      res.rankings = { ms: stat(Array.from({ length: R }, () => timeIt(() => rankApi(model, p64, {})))), api: 'rankings' };
    }
  }

  const m1 = tf.memory() as ReturnType<typeof tf.memory> & { wasmMemory?: number };
  res.memory.tensorsAfter = m1.numTensors;
  res.memory.bytesAfter = m1.numBytes;
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.buffer.byteLength;
  if (heap) res.memory.wasmHeapMB = heap / 2 ** 20;
  model.dispose();
  return res;
}

if (process.argv[1]?.endsWith('suite.js') && process.argv[2]) {
  const res = await runSuite(JSON.parse(process.argv[2]) as SuiteArgs);
  process.stdout.write(RESULT_TAG + JSON.stringify(res) + '\n');
}
