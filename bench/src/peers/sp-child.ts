/**
 * sp peer: `node sp-child.js <checkpoint dir> <backend>`; the engine comes from the environment the
 * parent sets ($SP_ENGINE / $SP_MATMUL / $SP_THREADS). Same line protocol as the other peers.
 */
import { generate, gpt2, logitLens, tf } from '@sp/core';
import { engineLabel, matmulEngine } from '../threads.js';
import { serve } from './protocol.js';

const [dir, backend] = process.argv.slice(2);
const t0 = performance.now();
const model = await gpt2(dir, { backend: backend ?? 'wasm', download: false });
const loadMs = performance.now() - t0;
const engine = process.env.SP_ENGINE ? `SP_ENGINE=${process.env.SP_ENGINE}, ${engineLabel(tf.getBackend(), matmulEngine())}` : engineLabel(tf.getBackend(), matmulEngine());
const tensors0 = tf.memory().numTensors;

await serve({ peer: 'sp', engine, loadMs }, async (r) => {
  if (r.workload === 'peak') return { skipped: 'numpy only' };
  if (r.workload === 'logits') {
    const t = performance.now();
    const l = model.forward(r.prompt, { logits: 'last' });
    const logits = Array.from(l.dataSync());
    l.dispose();
    return { ms: performance.now() - t, logits };
  }
  if (r.workload === 'lens') {
    const t = performance.now();
    const out = logitLens(model, r.prompt, { topk: r.topk ?? 10 });
    const ms = performance.now() - t;
    // top-1 per (position, row), position-major like the numpy peer's
    const top1 = r.prompt.flatMap((_, p) => out.layers.map((row) => row.positions[p].top[0].id));
    return { ms, top1 };
  }
  const t = performance.now();
  const g = await generate(model, r.prompt, r.workload === 'decode'
    ? { doSample: false, eosTokenId: null, maxNewTokens: r.newTokens }
    : { doSample: true, numReturnSequences: r.rows, eosTokenId: null, maxNewTokens: r.newTokens, seed: r.seed });
  const ms = performance.now() - t;
  if (tf.memory().numTensors !== tensors0) throw new Error(`sp leaked ${tf.memory().numTensors - tensors0} tensors`);
  return { ms, ids: r.workload === 'decode' ? g.newTokens : undefined };
});
