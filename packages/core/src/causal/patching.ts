/**
 * Activation patching (TransformerLens' `patching.get_act_patch_*`): run the corrupt prompt with
 * ONE activation replaced by the clean prompt's, and read the metric logit(answer) − logit(wrong)
 * at the last position. Batched: every row of a forward pass is the corrupt input with a
 * different single patch; the clean activations come from one runWithCache.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf, tidy } from '../backend/index.js';
import { readSteps, readStepsAsync, type ReadSteps } from '../backend/reads.js';
import { SpError, assertInt } from '../errors.js';
import type { HookName } from '../hooks/index.js';
import type { GPT2 } from '../model/gpt2.js';
import type { NeuronIntervention } from '../model/interventions.js';

export type PatchSite = 'resid_pre' | 'attn_out' | 'mlp_out' | 'z';
export const PATCH_SITES: readonly PatchSite[] = ['resid_pre', 'attn_out', 'mlp_out', 'z'];

export interface PatchingOptions {
  /** The prompt whose activations are patched in (text or token ids). */
  clean: string | number[];
  /** The prompt that is run (text or token ids); same number of tokens as `clean`. */
  corrupt: string | number[];
  /** The metric's answer token: a string that is exactly one token (`' is'`), or `answerId`. */
  answer?: string;
  answerId?: number;
  /** The metric's wrong token: a string that is exactly one token (`' are'`), or `wrongId`. */
  wrong?: string;
  wrongId?: number;
  /** `blocks.{l}.hook_<site>` (z: `blocks.{l}.attn.hook_z`). */
  site: PatchSite;
  /** Site z only: one patch per (layer, position, head) instead of per (layer, head) at all positions. */
  perPosition?: boolean;
  /** Rows (patches) per forward pass; default 32. Bounds memory, never changes the values. */
  batchSize?: number;
  /** Prepend `<|endoftext|>` to both prompts (TransformerLens' prepend_bos); default false. */
  prependBos?: boolean;
  /** FF neuron interventions applied to every run (clean, corrupt and patched). */
  interventions?: NeuronIntervention[];
}

/**
 * `sp patch --json`. `values[l][p]` (resid_pre, attn_out, mlp_out), `values[l][h]` (z), or
 * `values[l][p][h]` (z with perPosition, TransformerLens' [layer, pos, head]): the corrupt run's
 * metric with that one activation replaced by the clean run's.
 */
export interface PatchingResult {
  site: PatchSite;
  clean_metric: number;
  corrupt_metric: number;
  layers: number[];
  positions: number[];
  heads?: number[];
  values: number[][] | number[][][];
  /** The clean prompt's tokens, indexed by position. */
  tokens: string[];
}

function tokenOf(model: GPT2, what: 'answer' | 'wrong', s: string | undefined, id: number | undefined): number {
  if (s !== undefined && id !== undefined) throw new SpError('BAD_INPUT', `give either ${what} or ${what}Id, not both`);
  if (id !== undefined) {
    assertInt(`${what} token id`, id, 0, model.config.dVocab);
    return id;
  }
  if (s === undefined) throw new SpError('BAD_INPUT', `activation patching needs ${what} (a single token) or ${what}Id`);
  const t = model.tokenId(s);
  if (t === undefined) {
    const n = model.encode(s).length;
    throw new SpError('BAD_INPUT', `${what} ${JSON.stringify(s)} is ${n} tokens, not one (the metric is the logit of a single token)`);
  }
  return t;
}

/** One patch: a row of a batched forward. `head` only for site z; `pos` undefined = all positions. */
interface PatchCell {
  layer: number;
  pos?: number;
  head?: number;
}

/** Activation patching of every layer × position (z: layer × head, or layer × position × head). */
export function activationPatching(model: GPT2, opts: PatchingOptions): PatchingResult {
  return readSteps(patchingSteps(model, opts));
}

/** activationPatching awaiting its reads: the form for the webgpu backend (the same numbers on every backend). */
export function activationPatchingAsync(model: GPT2, opts: PatchingOptions): Promise<PatchingResult> {
  return readStepsAsync(patchingSteps(model, opts));
}

function* patchingSteps(model: GPT2, opts: PatchingOptions): ReadSteps<PatchingResult> {
  const { site } = opts;
  if (!PATCH_SITES.includes(site)) throw new SpError('BAD_INPUT', `unknown patching site "${String(site)}" (use ${PATCH_SITES.join(', ')})`);
  if (opts.perPosition && site !== 'z') throw new SpError('BAD_INPUT', `perPosition is for site z (heads); site ${site} is already patched per position`);
  const batchSize = opts.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new SpError('BAD_INPUT', `batchSize must be an integer ≥ 1 (got ${batchSize})`);
  const answer = tokenOf(model, 'answer', opts.answer, opts.answerId);
  const wrong = tokenOf(model, 'wrong', opts.wrong, opts.wrongId);
  const clean = model.toTokens(opts.clean, { prependBos: opts.prependBos }).ids[0];
  const corrupt = model.toTokens(opts.corrupt, { prependBos: opts.prependBos }).ids[0];
  if (clean.length !== corrupt.length) {
    throw new SpError('BAD_INPUT', `clean and corrupt prompts must have the same number of tokens (clean ${clean.length}, corrupt ${corrupt.length})`);
  }
  const { nLayer, nHead } = model.config;
  const seq = clean.length;
  const layers = Array.from({ length: nLayer }, (_, l) => l);
  const positions = Array.from({ length: seq }, (_, p) => p);
  const heads = Array.from({ length: nHead }, (_, h) => h);
  const hookOf = (l: number): HookName => (site === 'z' ? `blocks.${l}.attn.hook_z` : `blocks.${l}.hook_${site}`);
  const runOpts = { interventions: opts.interventions, logits: 'last' as const };

  function* metricOf(logits: tfc.Tensor3D): ReadSteps<number[]> {
    const last = tidy(() => {
      const l = tf.squeeze(logits, [1]); // [b, V]
      return tf.sub(tf.gather(l, answer, 1), tf.gather(l, wrong, 1));
    });
    try {
      return Array.from(yield last);
    } finally {
      last.dispose();
    }
  }

  const { logits: cleanLogits, cache } = model.runWithCache(clean, { ...runOpts, names: layers.map(hookOf) });
  try {
    const cleanMetric = (yield* metricOf(cleanLogits))[0];
    cleanLogits.dispose();
    const corruptLogits = model.forward(corrupt, runOpts);
    const corruptMetric = (yield* metricOf(corruptLogits))[0];
    corruptLogits.dispose();

    const cells: PatchCell[] = [];
    for (const layer of layers) {
      if (site !== 'z') for (const pos of positions) cells.push({ layer, pos });
      else if (opts.perPosition) for (const pos of positions) for (const head of heads) cells.push({ layer, pos, head });
      else for (const head of heads) cells.push({ layer, head });
    }
    const flat: number[] = [];
    for (let start = 0; start < cells.length; start += batchSize) {
      const chunk = cells.slice(start, start + batchSize);
      const b = chunk.length;
      const byLayer = new Map<number, number[]>(); // layer → rows of this chunk patched there
      chunk.forEach((c, r) => byLayer.set(c.layer, [...(byLayer.get(c.layer) ?? []), r]));
      const logits = tidy(() => {
        const fwdHooks = [...byLayer.keys()].map((layer) => [hookOf(layer), (t: tfc.Tensor) => {
          // Replace, not add: tf.where copies the clean values exactly into the patched slices.
          const shape = t.shape; // [b, s, d] or z: [b, s, h, dh]
          const inner = shape.slice(1).reduce((x, y) => x * y, 1);
          const mask = new Uint8Array(b * inner);
          const [s, dLast] = [shape[1]!, shape.at(-1)!];
          for (const r of byLayer.get(layer)!) {
            const c = chunk[r];
            for (let p = 0; p < s; p++) {
              if (c.pos !== undefined && c.pos !== p) continue;
              if (c.head === undefined) mask.fill(1, r * inner + p * dLast, r * inner + (p + 1) * dLast);
              else {
                const o = r * inner + (p * nHead + c.head) * dLast;
                mask.fill(1, o, o + dLast);
              }
            }
          }
          const src = tf.broadcastTo(cache.get(hookOf(layer)), shape);
          return tf.where(tf.tensor(mask, shape, 'bool'), src, t);
        }] as [HookName, (t: tfc.Tensor) => tfc.Tensor]);
        return model.runWithHooks(Array.from({ length: b }, () => corrupt), { ...runOpts, fwdHooks });
      });
      try {
        flat.push(...(yield* metricOf(logits)));
      } finally {
        logits.dispose();
      }
    }

    let values: number[][] | number[][][];
    if (site !== 'z') values = layers.map((l) => flat.slice(l * seq, (l + 1) * seq));
    else if (opts.perPosition) values = layers.map((l) => positions.map((p) => flat.slice((l * seq + p) * nHead, (l * seq + p + 1) * nHead)));
    else values = layers.map((l) => flat.slice(l * nHead, (l + 1) * nHead));
    return {
      site,
      clean_metric: cleanMetric,
      corrupt_metric: corruptMetric,
      layers,
      positions,
      ...(site === 'z' ? { heads } : {}),
      values,
      tokens: clean.map((id) => model.tokenString(id)),
    };
  } finally {
    cleanLogits.dispose();
    cache.dispose();
  }
}
