/**
 * Shared by the speaking-probe examples: which model to run on, and how to print a probe.
 *
 * The article's experiments use GPT-2 medium. With its weights present (`sp download gpt2-medium`,
 * or $SP_WEIGHTS_DIR) the examples use them; otherwise they run on a random 24-layer test model of
 * GPT-2 medium's depth and say so — the mechanics are the same, the text is meaningless.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findLocalModel, gpt2, writeSafetensors, type GPT2, type SpeakingProbeOptions, type SpeakingProbeResult } from '@sp/core';

export type Log = (s: string) => void;

/** What a caller (or the example test) may change: model, sampling, length. */
export interface ExampleOptions extends Partial<Pick<SpeakingProbeOptions, 'samples' | 'greedy' | 'maxNewTokens' | 'seed' | 'projectionTop'>> {
  /** A model directory or preset; default gpt2-medium when present, else the test model. */
  model?: string;
}

/** The examples sample with a fixed seed so a rerun prints the same text; pass seed to vary it. */
export const EXAMPLE_SEED = 1;

export async function openExampleModel(want: string | undefined, log: Log): Promise<{ model: GPT2; testModel: boolean }> {
  if (want) return { model: await gpt2(want), testModel: false };
  const medium = process.env.SP_EXAMPLES_TEST_MODEL ? undefined : findLocalModel('gpt2-medium');
  if (medium) return { model: await gpt2(medium), testModel: false };
  log('gpt2-medium weights not found (run `sp download gpt2-medium`): running on a random 24-layer TEST model; its text is meaningless.');
  return { model: await gpt2(testModelDir()), testModel: true };
}

/**
 * A deterministic random GPT-2 with gpt2-medium's 24 layers but d_model 16 (so FF keys 10/8,
 * 11/2, 0/0 exist), GPT-2's vocabulary, written once to the temp directory.
 */
export function testModelDir(): string {
  const dir = path.join(os.tmpdir(), 'sp-speaking-probes-test-model-v1');
  if (fs.existsSync(path.join(dir, 'model.safetensors'))) return dir;
  const cfg = { n_layer: 24, n_head: 2, n_embd: 16, n_positions: 256, vocab_size: 50257, layer_norm_epsilon: 1e-5 };
  const d = cfg.n_embd;
  let s = 12345;
  const rnd = () => {
    s = (s + 0x6d2b79f5) | 0; // mulberry32
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const t = (name: string, shape: number[], mean = 0, std = 0.02) => ({ name, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => mean + std * normal()) });
  const tensors = [t('wte.weight', [cfg.vocab_size, d], 0, 0.3), t('wpe.weight', [cfg.n_positions, d], 0, 0.1), t('ln_f.weight', [d], 1, 0.1), t('ln_f.bias', [d])];
  for (let i = 0; i < cfg.n_layer; i++) {
    const p = `h.${i}.`;
    tensors.push(
      t(p + 'ln_1.weight', [d], 1, 0.1), t(p + 'ln_1.bias', [d]), t(p + 'attn.c_attn.weight', [d, 3 * d], 0, 0.2), t(p + 'attn.c_attn.bias', [3 * d]),
      t(p + 'attn.c_proj.weight', [d, d], 0, 0.2), t(p + 'attn.c_proj.bias', [d]), t(p + 'ln_2.weight', [d], 1, 0.1), t(p + 'ln_2.bias', [d]),
      t(p + 'mlp.c_fc.weight', [d, 4 * d], 0, 0.2), t(p + 'mlp.c_fc.bias', [4 * d]), t(p + 'mlp.c_proj.weight', [4 * d, d], 0, 0.2), t(p + 'mlp.c_proj.bias', [d]),
    );
  }
  const tmp = `${dir}.${process.pid}`;
  fs.mkdirSync(tmp, { recursive: true });
  writeSafetensors(path.join(tmp, 'model.safetensors'), tensors);
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ model_type: 'gpt2', ...cfg }));
  try {
    fs.renameSync(tmp, dir); // atomic: a concurrent run sees all or nothing
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true }); // another process won the race
  }
  return dir;
}

/** Print a probe the way the article does: the samples, then the embedding-space view. */
export function printProbe(r: SpeakingProbeResult, log: Log): void {
  log(`\n${r.prompt}   [${r.neurons.map((n) => `${n.tags.join(' ')} = ${n.label}`).join('; ')}]`);
  for (const s of r.samples) log(`generate: ${r.prompt}${s.text}\n${'~'.repeat(70)}`);
  const p = r.projection;
  if (p) {
    log(`embedding space (top of v·Eᵀ):        ${p.top.map((t) => JSON.stringify(t.token)).join(' ')}`);
    log(`embedding space (unit-norm E rows):   ${p.top_normalized.map((t) => JSON.stringify(t.token)).join(' ')}`);
  }
}

/** Options shared by every example: the article's settings unless the caller overrides them. */
export function probeOptions(o: ExampleOptions): Partial<SpeakingProbeOptions> {
  return { samples: o.samples, greedy: o.greedy, maxNewTokens: o.maxNewTokens, seed: o.greedy ? undefined : o.seed ?? EXAMPLE_SEED, projectionTop: o.projectionTop ?? 30 };
}
