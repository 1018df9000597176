// sp on the webgpu backend (Dawn through the `webgpu` npm package), for a machine with a GPU:
//   node bench/gpu/webgpu.mjs weights DIR [preset]   random GPT-2 weights of the real shapes, HF layout
//   node bench/gpu/webgpu.mjs check DIR [FIXTURES]   fidelity (golden fixtures, DIR/ref_logits.json
//                                                     from hf_torch.py) then speed, interleaved rounds
// Plain ESM JavaScript so that it runs from an installed @sp/core (a GPU machine with no build tools).
import fs from 'node:fs';
import path from 'node:path';
import { gpt2, generate, logitLensAsync, makeConfig, PRESETS, tf, webgpuAdapter, writeSafetensors } from '@sp/core';

const [mode, dir, extra] = process.argv.slice(2);
const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};
const fmt = (x) => `${x.median.toFixed(1)} (${x.min.toFixed(1)}–${x.max.toFixed(1)})`;

if (mode === 'weights') {
  // The same scheme as bench/src/weights.ts: uniform values scaled like GPT-2's init.
  const c = makeConfig(PRESETS[extra ?? 'gpt2']);
  let seed = 1;
  const fill = (n, std, mean = 0) => {
    let x = (seed = (seed * 1664525 + 1013904223) >>> 0) || 1;
    const out = new Float32Array(n), a = std * Math.sqrt(3) * 2;
    for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; out[i] = mean + ((x >>> 0) / 4294967296 - 0.5) * a; }
    return out;
  };
  const t = (name, shape, std, mean = 0) => ({ name, shape, data: fill(shape.reduce((a, b) => a * b, 1), std, mean) });
  const ts = [t('wte.weight', [c.dVocab, c.dModel], 0.1), t('wpe.weight', [c.nCtx, c.dModel], 0.01)];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `h.${i}.`;
    ts.push(
      t(p + 'ln_1.weight', [c.dModel], 0.05, 1), t(p + 'ln_1.bias', [c.dModel], 0.02),
      t(p + 'attn.c_attn.weight', [c.dModel, 3 * c.dModel], 0.02), t(p + 'attn.c_attn.bias', [3 * c.dModel], 0.02),
      t(p + 'attn.c_proj.weight', [c.dModel, c.dModel], 0.02), t(p + 'attn.c_proj.bias', [c.dModel], 0.02),
      t(p + 'ln_2.weight', [c.dModel], 0.05, 1), t(p + 'ln_2.bias', [c.dModel], 0.02),
      t(p + 'mlp.c_fc.weight', [c.dModel, c.dMlp], 0.02), t(p + 'mlp.c_fc.bias', [c.dMlp], 0.02),
      t(p + 'mlp.c_proj.weight', [c.dMlp, c.dModel], 0.02), t(p + 'mlp.c_proj.bias', [c.dModel], 0.02),
    );
  }
  ts.push(t('ln_f.weight', [c.dModel], 0.05, 1), t('ln_f.bias', [c.dModel], 0.02));
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), ts, { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: c.dVocab, n_positions: c.nCtx, n_embd: c.dModel,
    n_layer: c.nLayer, n_head: c.nHead, n_inner: null, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5,
    bos_token_id: 50256, eos_token_id: 50256, tie_word_embeddings: true,
  }, null, 1));
  console.log(`weights: ${extra ?? 'gpt2'} in ${dir}`);
  process.exit(0);
}

if (mode !== 'check' || !dir) {
  console.error('usage: webgpu.mjs weights DIR [preset] | check DIR [FIXTURES_DIR]');
  process.exit(2);
}

const model = await gpt2(dir, { backend: 'webgpu' });
console.log('adapter', JSON.stringify(webgpuAdapter()));

// ---- fidelity: golden fixtures (independent numpy GPT-2) ----
const worst = { logits: 0, lens: 0, greedy: true };
for (const name of extra ? fs.readdirSync(extra) : []) {
  const fdir = path.join(extra, name);
  const g = JSON.parse(fs.readFileSync(path.join(fdir, 'golden.json'), 'utf8'));
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
        const L = lens.layers.find((l) => l.layer === gl.layer);
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
const prompt = (n, r) => Array.from({ length: n }, (_, i) => (i * 7919 + r * 104729 + 11) % V);
const time = async (fn) => { const t = performance.now(); await fn(); return performance.now() - t; };
const decode = [], sample = [], lens = [];
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
