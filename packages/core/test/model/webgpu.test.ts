/**
 * The webgpu backend (Dawn's Node binding + tfjs-backend-webgpu) against the numpy golden answers
 * and the float64 reference: logits, greedy and penalised decoding, the lens, every hook, virtual
 * tokens and injections, and its errors. Runs where a WebGPU adapter exists: on a machine without a
 * GPU that is Mesa's software Vulkan (lavapipe), which .ci/run installs; there it sets
 * SP_REQUIRE_WEBGPU=1 so that a missing adapter fails instead of skipping.
 */
import fs from 'node:fs';
import { activationPatchingAsync, attentionPatternsAsync, hiddenStateAsync, inputAttributionAsync, rankingsWatchAsync, topNeuronsAsync, directLogitAttributionAsync, embeddingProjectionAsync, gpt2, generate, logitLensAsync, speakingProbe, tf, webgpuAdapter, type ActivationCache, type GPT2, type HookName } from '@sp/core';
import { engineInfo } from '@sp/core/internals';
import { FIXTURES, fixtureDir, golden } from '../helpers/fixtures.js';
import { compareCache, firstMismatch, LOGIT_TOL } from '../helpers/compare.js';
import { randomIds, writeRandomGpt2, type RandomGpt2 } from '../helpers/random-gpt2.js';
import { refForward } from '../reference/gpt2-ref.js';
import { mulberry32 } from '../reference/random-model.js';

async function adapterFound(): Promise<boolean> {
  try {
    const { create } = (await import('webgpu')) as unknown as { create(flags: string[]): { requestAdapter(): Promise<unknown> } };
    return (await create([]).requestAdapter()) !== null;
  } catch {
    return false;
  }
}
const available = await adapterFound();
if (!available && process.env.SP_REQUIRE_WEBGPU === '1') throw new Error('SP_REQUIRE_WEBGPU=1 but no WebGPU adapter was found');
const onGpu = available ? describe : describe.skip;

/** Host copies of cached activations: compareCache reads synchronously, which webgpu cannot. */
async function hostCache(cache: ActivationCache, names: string[]): Promise<{ cache: ActivationCache; dispose(): void }> {
  const copies = new Map<string, tf.Tensor>();
  for (const n of names) {
    const t = cache.get(n as HookName);
    copies.set(n, tf.tensor(await t.data(), t.shape));
  }
  return { cache: { get: (n: string) => copies.get(n)! } as unknown as ActivationCache, dispose: () => copies.forEach((t) => t.dispose()) };
}

onGpu.each(FIXTURES)('webgpu: %s vs numpy golden', (name) => {
  const g = golden(name);
  let model: GPT2;
  beforeAll(async () => {
    model = await gpt2(fixtureDir(name), { backend: 'webgpu' });
    expect(engineInfo(model).engine).toBe('tfjs'); // the matrices are tfjs tensors on the GPU
    expect(webgpuAdapter()).toBeDefined();
  });
  afterAll(() => model.dispose());

  for (const c of g.cases) {
    const embeds = (m: GPT2) => (c.inject ? [{ pos: c.inject[0], vector: m.ffKey(c.inject[1], c.inject[2]) }] : []);

    test(`${c.name}: logits, greedy, repetition penalty 2, lens`, async () => {
      const lt = model.forward(c.ids, { embeds: embeds(model) });
      const all = (await lt.array())[0];
      lt.dispose();
      const last = all[all.length - 1];
      for (const [id, v] of Object.entries(c.last_logits_at)) expect(Math.abs(last[Number(id)] - v)).toBeLessThan(1e-4);
      for (const t of c.last_logits_top10) expect(Math.abs(last[t.id] - t.logit)).toBeLessThan(1e-4);
      const r = await generate(model, c.ids, { maxNewTokens: c.greedy.length, embeds: embeds(model), eosTokenId: null });
      expect(r.newTokens[0]).toEqual(c.greedy);
      const r2 = await generate(model, c.ids, { maxNewTokens: c.greedy_rep2.length, embeds: embeds(model), eosTokenId: null, repetitionPenalty: 2 });
      expect(r2.newTokens[0]).toEqual(c.greedy_rep2);
      const lens = await logitLensAsync(model, c.ids, { topk: 5, embeds: embeds(model) });
      c.lens.forEach((gl, li) => gl.positions.forEach((gp, p) => gp.top.forEach((t, j) => {
        const mine = lens.layers[li].positions[p].top[j];
        expect(Math.abs(mine.prob - t.prob) / t.prob).toBeLessThan(1e-4);
        if (mine.id !== t.id) expect(gp.top.some((u) => u.id === mine.id && Math.abs(u.prob - t.prob) / t.prob < 1e-4)).toBe(true);
      })));
    });
  }

  test('tensors stay flat over repeated generate and lens calls', async () => {
    const ids = g.cases[0].ids;
    await generate(model, ids, { maxNewTokens: 3, doSample: true, numReturnSequences: 3, seed: 1 });
    await logitLensAsync(model, ids);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) {
      await generate(model, ids, { maxNewTokens: 3, doSample: true, numReturnSequences: 3, seed: i });
      await logitLensAsync(model, ids);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

onGpu('webgpu: hooks, virtual tokens and injections vs the float64 reference', () => {
  const SPEC = { nLayer: 2, dModel: 32, nHead: 4, nCtx: 16, seed: 77 };
  const PROMPT = randomIds(6, 515);
  let fx: RandomGpt2;
  let model: GPT2;
  const vec = (seed: number) => {
    const u = mulberry32(seed);
    return Array.from({ length: SPEC.dModel }, () => Math.fround(u() * 2 - 1));
  };
  beforeAll(async () => {
    fx = writeRandomGpt2(SPEC);
    model = await gpt2(fx.dir, { backend: 'webgpu' });
  });
  afterAll(() => {
    model?.dispose();
    if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  test.each([
    ['plain', {}, {}],
    ['a virtual token at position 2', { embeds: [{ pos: 2, vector: vec(1) }] }, { embeds: [{ pos: 2, vector: vec(1) }] }],
    ['an injection before block 1 at position 3', { inject: [{ layer: 1, pos: 3, vector: vec(2) }] }, { residPre: [{ layer: 1, pos: 3, vector: vec(2) }] }],
  ] as const)('every hook and the logits: %s', async (_label, opts, refOpts) => {
    const want = refForward(fx.ref, [...PROMPT], refOpts as Parameters<typeof refForward>[2]);
    const { logits, cache } = model.runWithCache([...PROMPT], opts as Parameters<GPT2['runWithCache']>[1]);
    const host = await hostCache(cache, model.hookNames());
    try {
      expect(compareCache(host.cache, model.hookNames(), want.cache)).toEqual([]);
      const got = (await logits.data()).slice(0, PROMPT.length * model.config.dVocab);
      expect(firstMismatch('logits', got, Float64Array.from(want.logits.flat()), LOGIT_TOL, false)).toBeUndefined();
    } finally {
      host.dispose();
      logits.dispose();
      cache.dispose();
    }
  });

  test('a fwdHook that adds a vector to blocks.0.hook_resid_post equals the reference with that stream', async () => {
    const v = vec(3);
    const d = SPEC.dModel;
    const base = refForward(fx.ref, [...PROMPT]).cache.get('blocks.0.hook_resid_post')!.data; // [seq, d]
    const residPre = PROMPT.map((_, pos) => ({ layer: 1, pos, vector: Array.from({ length: d }, (_, i) => base[pos * d + i] + v[i]) }));
    const want = refForward(fx.ref, [...PROMPT], { residPre });
    const lt = model.forward([...PROMPT], { fwdHooks: [['blocks.0.hook_resid_post', (x) => tf.add(x, tf.tensor1d(v))]] });
    const got = await lt.data();
    lt.dispose();
    expect(firstMismatch('logits', got, Float64Array.from(want.logits.flat()), LOGIT_TOL, false)).toBeUndefined();
  });

  test('speakingProbe runs, and its projection is the float64 v·E top-k', async () => {
    const r = await speakingProbe(model, { prompt: 'The term "<param_1_5>" means', samples: 2, maxNewTokens: 3, seed: 7, eosTokenId: null, projectionTop: 5 });
    expect(r.samples).toHaveLength(2);
    r.samples.forEach((smp) => expect(smp.new_ids).toHaveLength(3));
    const v = model.ffKey(1, 5);
    const wte = fx.ref.get('wte.weight');
    const d = SPEC.dModel;
    const V = wte.length / d;
    const dot = Float64Array.from({ length: V }, (_, i) => v.reduce((a, x, j) => a + x * wte[i * d + j], 0));
    const want = [...dot.keys()].sort((a, b) => dot[b] - dot[a]).slice(0, 5);
    const proj = r.neurons[0].projection!;
    expect(proj.top.map((t) => t.id)).toEqual(want);
    proj.top.forEach((t) => expect(Math.abs(t.score - dot[t.id])).toBeLessThan(1e-4));
    expect(await embeddingProjectionAsync(model, v, 5)).toEqual(proj);
  });

  test('a synchronous read of a computed tensor is a one-line SpError; parameters read as usual', () => {
    const lt = model.forward([...PROMPT]);
    try {
      expect(() => lt.dataSync()).toThrow(/webgpu backend cannot read a GPU tensor synchronously.*await tensor\.data\(\)/);
    } finally {
      lt.dispose();
    }
    expect(model.ffKey(0, 1)).toHaveLength(SPEC.dModel);
  });

  test('activationPatchingAsync (resid_pre, mlp_out) equals the float64 reference corrupt runs with one activation patched', async () => {
    const clean = [...PROMPT];
    const corrupt = clean.map((id, p) => (p === 2 || p === 4 ? (id + 17) % 50257 : id));
    const [answer, wrong] = [clean[3], corrupt[4]];
    const d = SPEC.dModel;
    const metric = (ids: number[], o: Parameters<typeof refForward>[2] = {}) => {
      const last = refForward(fx.ref, ids, o).logits[ids.length - 1];
      return last[answer] - last[wrong];
    };
    const cleanCache = refForward(fx.ref, clean).cache;
    for (const site of ['resid_pre', 'mlp_out'] as const) {
      const r = await activationPatchingAsync(model, { clean, corrupt, answerId: answer, wrongId: wrong, site, batchSize: 5 });
      expect(Math.abs(r.clean_metric - metric(clean))).toBeLessThan(1e-4);
      expect(Math.abs(r.corrupt_metric - metric(corrupt))).toBeLessThan(1e-4);
      (r.values as number[][]).forEach((row, l) => row.forEach((v, p) => {
        const src = cleanCache.get(`blocks.${l}.hook_${site}`)!.data;
        const want = site === 'resid_pre'
          ? metric(corrupt, { residPre: [{ layer: l, pos: p, vector: src.slice(p * d, (p + 1) * d) }] })
          : metric(corrupt, { actHooks: { [`blocks.${l}.hook_mlp_out`]: (x: Float64Array) => { const o = Float64Array.from(x); o.set(src.subarray(p * d, (p + 1) * d), p * d); return o; } } });
        expect(Math.abs(v - want)).toBeLessThan(1e-4);
      }));
    }
  });

  test('attentionPatternsAsync equals the reference hook_pattern; DLA sums to the reference logit difference', async () => {
    const ids = [...PROMPT];
    const want = refForward(fx.ref, ids);
    const n = ids.length;
    const att = await attentionPatternsAsync(model, ids);
    for (const L of att.layers) {
      const p = want.cache.get(`blocks.${L.layer}.attn.hook_pattern`)!.data;
      L.heads.forEach((head, h) => head.forEach((row, q) => row.forEach((v, k) => expect(Math.abs(v - p[(h * n + q) * n + k])).toBeLessThan(1e-5))));
    }
    const dla = await directLogitAttributionAsync(model, ids, { tokenId: 318, vsId: 389, position: 3 });
    const last = want.logits[3];
    expect(Math.abs(dla.total - (last[318] - last[389]))).toBeLessThan(LOGIT_TOL);
    expect(Math.abs(dla.logit - dla.total)).toBeLessThan(LOGIT_TOL);
    expect(dla.components.filter((c) => Math.abs(c.value) > 1e-6).length).toBeGreaterThan(dla.components.length / 2);
  });

  test('hiddenStateAsync and a hidden: speaking-probe source equal the reference residual stream', async () => {
    const src = randomIds(5, 31);
    const want = refForward(fx.ref, src).cache.get('blocks.1.hook_resid_pre')!.data.slice(3 * SPEC.dModel, 4 * SPEC.dModel);
    const h = await hiddenStateAsync(model, src, 1, -2);
    expect(h.position).toBe(3);
    expect(firstMismatch('hidden', h.vector, want, 1e-4)).toBeUndefined();
    const r = await speakingProbe(model, { prompt: 'Say <neuron> again', neurons: [{ type: 'hidden', prompt: src, layer: 1, position: 3 }], samples: 1, maxNewTokens: 2, eosTokenId: null, projectionTop: 0 });
    expect(r.neurons[0].source).toMatchObject({ type: 'hidden', layer: 1, position: 3 });
    expect(r.neurons[0].norm).toBeCloseTo(Math.hypot(...want), 4);
  });

  test('topNeuronsAsync: m·‖v‖ equals the reference; rankingsWatchAsync agrees with the lens', async () => {
    const ids = [...PROMPT];
    const d = SPEC.dModel, m = 4 * d, pos = 4;
    const r = await topNeuronsAsync(model, ids, { position: pos, k: 5, topTokens: 3 });
    const cache = refForward(fx.ref, ids).cache;
    for (const n of r.neurons) {
      const post = cache.get(`blocks.${n.layer}.mlp.hook_post`)!.data[pos * m + n.index];
      const v = fx.ref.get(`h.${n.layer}.mlp.c_proj.weight`).subarray(n.index * d, (n.index + 1) * d);
      const norm = Math.hypot(...v);
      expect(Math.abs(n.coefficient - post)).toBeLessThan(1e-4);
      expect(Math.abs(n.value_norm - norm) / norm).toBeLessThan(1e-5);
      expect(Math.abs(n.score - post * norm)).toBeLessThan(1e-4);
    }
    const lens = await logitLensAsync(model, ids, { topk: 1 });
    const top = lens.layers.map((l) => l.positions[pos].top[0]);
    const watch = await rankingsWatchAsync(model, ids, [top.at(-1)!.id], { position: pos });
    expect(watch.layers.at(-1)!.ranks[0]).toBe(1);
    watch.layers.forEach((l, i) => {
      if (top[i].id === top.at(-1)!.id) expect(l.ranks[0]).toBe(1);
      if (l.ranks[0] === 1) expect(Math.abs(l.probs[0] - top[i].prob)).toBeLessThan(1e-6);
    });
  });

  test('inputAttributionAsync (grad × input, tf.grad on the GPU) equals float64 central differences of the reference', async () => {
    const ids = [...PROMPT];
    const [pos, target] = [4, 318];
    const r = await inputAttributionAsync(model, ids, { targetId: target, position: pos, method: 'grad-x-input' });
    const d = SPEC.dModel;
    const wte = fx.ref.get('wte.weight');
    const f = (p: number, t: number) => {
      const vector = Array.from({ length: d }, (_, i) => (1 + t) * wte[ids[p] * d + i]);
      return refForward(fx.ref, ids, { embeds: [{ pos: p, vector }] }).logits[pos][target];
    };
    const h = 1e-4;
    ids.forEach((_, p) => expect(Math.abs(r.attributions[p] - (f(p, h) - f(p, -h)) / (2 * h))).toBeLessThan(2e-4));
    expect(r.attributions.slice(0, pos + 1).every((v) => Math.abs(v) > 1e-6)).toBe(true);
  });

  test('a GPU validation error (which WebGPU does not throw) is an SpError at the next read, then cleared', async () => {
    const device = (tf.backend() as unknown as { device: { createBuffer(d: object): { destroy(): void }; queue: { onSubmittedWorkDone(): Promise<void> } } }).device;
    const usage = (globalThis as unknown as { GPUBufferUsage: { STORAGE: number } }).GPUBufferUsage.STORAGE;
    device.createBuffer({ size: 2 ** 40, usage }); // over any device's limit: an uncaptured validation error
    await device.queue.onSubmittedWorkDone();
    await expect(generate(model, [...PROMPT], { maxNewTokens: 1 })).rejects.toThrow(/^webgpu: Buffer size \(1099511627776\) exceeds the max buffer size limit/);
    expect((await generate(model, [...PROMPT], { maxNewTokens: 1 })).newTokens[0]).toHaveLength(1);
  });

  test('a buffer over the device binding limit is refused before it can produce garbage', () => {
    const limit = (tf.backend() as unknown as { device: { limits: { maxStorageBufferBindingSize: number } } }).device.limits.maxStorageBufferBindingSize;
    if (limit > 2 ** 29) return; // a real GPU: too large to allocate in a test
    const n = limit / 4 + 1;
    expect(() => tf.tidy(() => tf.add(tf.ones([n]), 1))).toThrow(/needs \d+ MiB in one buffer; this device binds at most \d+ MiB/);
  });
});
