/**
 * One greedy decode in a fresh process, for interleaved A/B runs (docs/performance.md):
 *   node bench/dist/decode-once.js [dir] [newTokens]
 * Loads the checkpoint (default: the bench's random gpt2), warms up, then prints the decode speed
 * of `newTokens` (default 64) greedy tokens after an 8-token prompt, prefill included. The matrix
 * engine and threads come from the environment (SP_THREADS, SP_MATMUL, SP_WASM_THREADS).
 */
import { backendName, generate, gpt2 } from '@sp/core';
import { engineLabel, matmulEngine } from './threads.js';
import { weightsDir } from './weights.js';

const [dir = weightsDir('gpt2'), tokens = '64'] = process.argv.slice(2);
const model = await gpt2(dir, { download: false });
const prompt = Array.from({ length: 8 }, (_, i) => 100 + i);
await generate(model, prompt, { maxNewTokens: 8, doSample: false });
const n = Number(tokens);
const t0 = performance.now();
await generate(model, prompt, { maxNewTokens: n, doSample: false, eosTokenId: null });
const ms = performance.now() - t0;
process.stdout.write(`${engineLabel(backendName(), matmulEngine())}: ${((1000 * n) / ms).toFixed(1)} tok/s, ${(ms / n).toFixed(1)} ms/tok\n`);
model.dispose();
