/**
 * sp on the webgpu backend (Dawn through the `webgpu` npm package), for a machine with a GPU
 * (docs/performance.md, "GPU: the webgpu backend"):
 *   node bench/dist/webgpu.js weights DIR            random gpt2 weights of the real shapes, HF layout
 *   python3 bench/gpu/hf_torch.py DIR                the GPU peer; writes DIR/ref_logits.f64
 *   node bench/dist/webgpu.js check DIR [FIXTURES]   fidelity (golden fixtures, the float64 logits of
 *                                                    hf_torch.py), then speed in interleaved rounds
 * It needs only an installed @sp/core beside it (a GPU machine may have no build tools).
 */
import fs from 'node:fs';
import path from 'node:path';
import { gpt2, generate, logitLensAsync, tf, webgpuAdapter } from '@sp/core';
import { fmt, stat } from './stats.js';
import { ensureCheckpoint } from './weights.js';

const [mode, dir, extra] = process.argv.slice(2);

/** packages/core/test/fixtures/NAME/golden.json, as far as this script reads it. */
interface Golden {
  cases: Array<{
    ids: number[];
    inject: [number, number, number] | null;
    last_logits_at: Record<string, number>;
    last_logits_top10: Array<{ id: number; logit: number }>;
    greedy: number[];
    lens: Array<{ layer: number; positions: Array<{ top: Array<{ id: number; prob: number }> }> }>;
  }>;
}
if (mode === 'weights' && dir) {
  ensureCheckpoint('gpt2', console.log, dir);
  process.exit(0);
}
if (mode !== 'check' || !dir) {
  console.error('usage: webgpu.js weights DIR | check DIR [FIXTURES_DIR]');
  process.exit(2);
}

const model = await gpt2(dir, { backend: 'webgpu' });
console.log('adapter', JSON.stringify(webgpuAdapter()));

// ---- fidelity: golden fixtures (independent numpy GPT-2) ----
const worst = { logits: 0, lens: 0, greedy: true };
for (const name of extra ? fs.readdirSync(extra) : []) {
  const fdir = path.join(extra, name);
  const g = JSON.parse(fs.readFileSync(path.join(fdir, 'golden.json'), 'utf8')) as Golden;
  const m = await gpt2(fdir, { backend: 'webgpu' });
  for (const c of g.cases) {
    const embeds = c.inject ? [{ pos: c.inject[0], vector: m.ffKey(c.inject[1], c.inject[2]) }] : [];
    const lt = m.forward(c.ids, { embeds });
    const all = await lt.array();
    lt.dispose();
    const last = all[0][all[0].length - 1];
    for (const [id, v] of Object.entries(c.last_logits_at)) worst.logits = Math.max(worst.logits, Math.abs(last[+id] - v));
    for (const t of c.last_logits_top10) worst.logits = Math.max(worst.logits, Math.abs(last[t.id] - t.logit));
    const r = await generate(m, c.ids, { maxNewTokens: c.greedy.length, embeds, eosTokenId: null });
    worst.greedy &&= JSON.stringify(r.newTokens[0]) === JSON.stringify(c.greedy);
    if (c.lens?.length && !c.inject) {
      const lens = await logitLensAsync(m, c.ids, { topk: c.lens[0].positions[0].top.length });
      for (const gl of c.lens) {
        const L = lens.layers.find((l) => l.layer === gl.layer)!;
        gl.positions.forEach((p, i) => p.top.forEach((t, j) => {
          const got = L.positions[i].top[j];
          worst.lens = Math.max(worst.lens, got.id === t.id ? Math.abs(got.prob - t.prob) : Infinity);
        }));
      }
    }
  }
  m.dispose();
}
console.log(`fixtures: max |logit - golden| ${worst.logits.toExponential(2)}, max |lens prob - golden| ${worst.lens.toExponential(2)}, greedy equal ${worst.greedy}`);

// ---- fidelity at the real shapes: logits against hf_torch.py's float64 forward of the same file ----
const refPath = path.join(dir, 'ref_logits.f64');
if (fs.existsSync(refPath)) {
  const ids = JSON.parse(fs.readFileSync(path.join(dir, 'ref_ids.json'), 'utf8'));
  const buf = fs.readFileSync(refPath);
  const ref = new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8);
  const lt = model.forward(ids);
  const got = await lt.data();
  lt.dispose();
  let err = 0, scale = 0;
  for (let i = 0; i < got.length; i++) {
    err = Math.max(err, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  console.log(`${model.name} logits vs torch float64 (${ids.length} tokens × ${model.config.dVocab}): max abs err ${err.toExponential(2)} (max |logit| ${scale.toFixed(2)}, ${got.length} of ${ref.length} values)`);
}

// ---- speed: the bench's workloads (decode b1 16+64, 8 × 50 sampling, lens 64 × 13), interleaved rounds ----
const rounds = model.config.nCtx >= 128 ? Number(process.env.ROUNDS ?? 3) : -1; // a fixture-sized DIR: fidelity only
const V = model.config.dVocab;
const prompt = (n: number, r: number) => Array.from({ length: n }, (_, i) => (i * 7919 + r * 104729 + 11) % V);
const time = async (fn: () => Promise<unknown>) => { const t = performance.now(); await fn(); return performance.now() - t; };
const decode: number[] = [], sample: number[] = [], lens: number[] = [];
const tensors0 = tf.memory().numTensors;
for (let r = -1; r < rounds; r++) { // round -1 warms (shader compilation)
  const d = await time(() => generate(model, prompt(16, r + 2), { maxNewTokens: 64, doSample: false, eosTokenId: null }));
  const s = await time(() => generate(model, prompt(12, r + 2), { doSample: true, numReturnSequences: 8, maxNewTokens: 50, eosTokenId: null, seed: r + 2 }));
  const l = await time(() => logitLensAsync(model, prompt(64, r + 2), { topk: 5 }));
  if (r >= 0) { decode.push(64000 / d); sample.push(400000 / s); lens.push(l); }
  console.log(`round ${r}: decode ${(64000 / d).toFixed(1)} tok/s, sampling ${(400000 / s).toFixed(1)} tok/s, lens ${l.toFixed(0)} ms`);
}
if (rounds > 0) console.log(`sp webgpu: decode b1 ${fmt(stat(decode))} tok/s | 8×50 sampling ${fmt(stat(sample))} tok/s | lens 64×13 ${fmt(stat(lens))} ms | tensors ${tensors0} → ${tf.memory().numTensors}`);
model.dispose();
