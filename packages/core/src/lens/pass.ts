/**
 * The one computation behind every lens view: run the model once, capture the residual stream at
 * the chosen hook points, and push all (position, row) vectors through ln_f + the unembedding in
 * ONE batched matmul per block of positions (through the model's Linear, so the fast engine runs it);
 * top-k (streaming), the softmax normaliser, entropy, KL to the output and target ranks are tight
 * typed-array loops over its float32 logits, sums in float64, with no per-element allocation.
 * Nothing loops over layers or positions in tfjs.
 *
 * Shapes: b = batch, s = positions, R = rows (hook points), d = d_model, V = d_vocab,
 * P = selected cells (batch row, position), k = top-k, W = target tokens per cell.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { gemmThreads } from '../backend/engine.js';
import { tf, tidy } from '../backend/index.js';
import { bufferElements } from '../backend/webgpu.js';
import { readSteps, readStepsAsync, type ReadSteps } from '../backend/reads.js';
import { SpError } from '../errors.js';
import type { FwdHook, HookName } from '../hooks/index.js';
import type { EmbedOverride, GPT2, Injection, TokenBatch } from '../model/gpt2.js';
import type { NeuronIntervention } from '../model/interventions.js';
import type { LensRowInfo, LensView } from './types.js';
import type { CellStats } from './cell-stats.js';
import { splitCellStats } from './split.js';

/**
 * Largest [rows, V] block pushed through the unembedding at once (elements). 2^26 floats = 256 MiB
 * per temporary: a 64-token prompt on a 13-row GPT-2 small lens (832 × 50257) is one block; only
 * long prompts or deep models are split, and then by whole positions (each block keeps all rows
 * of its positions, so the KL reference row is always in the same block).
 */
const MAX_BLOCK_ELEMENTS = 2 ** 26;

/** The rows of a view, in forward order. */
export function lensRows(nLayer: number, view: LensView = 'layers'): LensRowInfo[] {
  if (view !== 'layers' && view !== 'mid' && view !== 'all') {
    throw new SpError('BAD_INPUT', `unknown lens view "${String(view)}" (use layers, mid or all)`);
  }
  const rows: LensRowInfo[] = [];
  if (view !== 'mid') rows.push({ layer: 0, block: 0, stream: 'resid_pre', hook: 'blocks.0.hook_resid_pre', label: 'embed' });
  for (let i = 0; i < nLayer; i++) {
    if (view !== 'layers') rows.push({ layer: i + 0.5, block: i, stream: 'resid_mid', hook: `blocks.${i}.hook_resid_mid`, label: `${i}+attn` });
    if (view !== 'mid') rows.push({ layer: i + 1, block: i, stream: 'resid_post', hook: `blocks.${i}.hook_resid_post`, label: `${i + 1}` });
  }
  return rows;
}

/** Options every lens analysis shares. */
export interface LensRunOptions {
  /** Rows to read (default `layers`: embeddings, then after each block). */
  view?: LensView;
  /** Token-embedding overrides (virtual tokens), as in model.forward. */
  embeds?: EmbedOverride[];
  /** Residual-stream injections, as in model.forward. */
  inject?: Injection[];
  /** Extra forward hooks (e.g. an ablation) applied before the stream is read. */
  fwdHooks?: FwdHook[];
  /** FF neuron interventions (as in model.forward), applied before fwdHooks. */
  interventions?: NeuronIntervention[];
  /** Most logits unembedded at once (default 2^26 = 256 MiB per temporary); lower it to save memory. */
  blockElements?: number;
}

/** One selected cell: batch row and position, with the target ids to rank there (all cells the same count). */
export interface PassCell {
  b: number;
  pos: number;
  targets?: number[];
}

export interface PassRequest extends LensRunOptions {
  cells: PassCell[];
  /** Top-k per (cell, row); 0 = none. */
  topk: number;
  /** Entropy and KL to the output row. */
  stats: boolean;
}

/** Flat outputs; index (p, r) = p * R + r over ALL rows (visible rows first, then a hidden output row if appended). */
export interface PassOutput {
  rows: LensRowInfo[];
  /** Row count including a hidden output row (when the view lacks it). */
  R: number;
  k: number;
  W: number;
  topIds: Int32Array; // [P, R, k]
  /** Log-probabilities, float64 (normalisers summed in float64 over the float32 logits). */
  topLogp: Float64Array; // [P, R, k]
  entropy: Float64Array; // [P, R] (empty without stats)
  kl: Float64Array; // [P, R]
  targetLogp: Float64Array; // [P, R, W]
  ranks: Int32Array; // [P, R, W]
}

export function lensPass(model: GPT2, batch: TokenBatch, req: PassRequest): PassOutput {
  return readSteps(lensPassSteps(model, batch, req));
}

/** lensPass awaiting its reads where the backend reads GPU memory only asynchronously (webgpu in Node); the same steps. */
export function lensPassAsync(model: GPT2, batch: TokenBatch, req: PassRequest): Promise<PassOutput> {
  return readStepsAsync(lensPassSteps(model, batch, req));
}

/**
 * The pass as steps: each yields one block's [N, V] logits tensor and takes back its float32
 * values (read by the driver, in place on the wasm heap or awaited from a GPU), then returns the outputs.
 */
export function* lensPassSteps(model: GPT2, batch: TokenBatch, req: PassRequest): ReadSteps<PassOutput> {
  const { nLayer, dModel: d, dVocab: V } = model.config;
  const rows = lensRows(nLayer, req.view);
  const outputHook: HookName = `blocks.${nLayer - 1}.hook_resid_post`;
  const hooks = rows.map((r) => r.hook as HookName); // lensRows writes only real hook names
  if (!hooks.includes(outputHook)) hooks.push(outputHook); // KL needs the output distribution
  const R = hooks.length;
  const outRow = hooks.indexOf(outputHook);
  const P = req.cells.length;
  const W = req.cells[0]?.targets?.length ?? 0;
  if (req.cells.some((c) => (c.targets?.length ?? 0) !== W)) throw new SpError('BAD_INPUT', 'lensPass: every cell needs the same number of targets');
  const k = Math.min(req.topk, V);
  const [bN, s] = [batch.ids.length, batch.ids[0].length];

  // x: [P, R, d], the residual stream at every selected cell and row; the forward's tensors die with this tidy.
  const x = tidy(() => {
    const { acts } = model.capture(batch, hooks, { embeds: req.embeds, inject: req.inject, fwdHooks: req.fwdHooks, interventions: req.interventions, logits: 'none' });
    const stacked = tf.stack(hooks.map((h) => acts.get(h)!), 2); // [b, s, R, d]
    const flat = tf.reshape(stacked, [bN * s, R, d]);
    return tf.gather(flat, tf.tensor1d(req.cells.map((c) => c.b * s + c.pos), 'int32')) as tfc.Tensor3D; // [P, R, d]
  });

  const out: PassOutput = {
    rows, R, k, W,
    topIds: new Int32Array(P * R * k), topLogp: new Float64Array(P * R * k),
    entropy: new Float64Array(req.stats ? P * R : 0), kl: new Float64Array(req.stats ? P * R : 0),
    targetLogp: new Float64Array(P * R * W), ranks: new Int32Array(P * R * W),
  };
  try {
    const perCell = R * V;
    const step = Math.max(1, Math.floor(Math.min(req.blockElements ?? MAX_BLOCK_ELEMENTS, bufferElements()) / perCell)); // a GPU binds a bounded buffer
    for (let p0 = 0; p0 < P; p0 += step) {
      const pc = Math.min(step, P - p0);
      const part = yield* block(model, x, p0, pc, R, outRow, k, req, V);
      if (k > 0) {
        out.topIds.set(part.topIds!, p0 * R * k);
        out.topLogp.set(part.topLogp!, p0 * R * k);
      }
      if (req.stats) {
        out.entropy.set(part.entropy!, p0 * R);
        out.kl.set(part.kl!, p0 * R);
      }
      if (W > 0) {
        out.targetLogp.set(part.targetLogp!, p0 * R * W);
        out.ranks.set(part.ranks!, p0 * R * W);
      }
    }
  } finally {
    x.dispose();
  }
  return out;
}

/**
 * Cells p0 .. p0+pc-1: one unembedding matmul [pc·R, d]·[d, V] through the model's Linear (the fast
 * engine), then the statistics of cell-stats.ts over its float32 logits, read in place from the
 * wasm heap, on two threads when there are (split.ts).
 */
function* block(model: GPT2, x: tfc.Tensor3D, p0: number, pc: number, R: number, outRow: number, k: number, req: PassRequest, V: number): ReadSteps<CellStats> {
  const d = x.shape[2];
  const N = pc * R;
  const lt = tidy(() => model.unembedResid(tf.reshape(tf.slice(x, [p0, 0, 0], [pc, R, d]), [N, d]))); // [N, V]: ln_f with per-row statistics, then the unembedding
  try {
    // A heap view stays valid: nothing from the read to here allocates tfjs memory.
    const logits = yield lt;
    const targets = req.cells[0]?.targets?.length ? req.cells.slice(p0, p0 + pc).map((c) => c.targets!) : undefined;
    return splitCellStats(logits, pc, R, outRow, V, k, req.stats, targets, gemmThreads());
  } finally {
    lt.dispose();
  }
}

/** Decoded token text, memoised for one analysis (the same ids recur across rows). */
export function tokenNamer(model: GPT2): (id: number) => string {
  const memo = new Map<number, string>();
  return (id) => {
    let t = memo.get(id);
    if (t === undefined) memo.set(id, (t = model.tokenString(id)));
    return t;
  };
}

/** Python-style position: -1 = last. Throws a one-line OUT_OF_RANGE error naming the prompt length. */
export function resolvePosition(pos: number, length: number, what = 'position'): number {
  const p = Number.isInteger(pos) && pos < 0 ? length + pos : pos;
  if (!Number.isInteger(p) || p < 0 || p >= length) {
    throw new SpError('OUT_OF_RANGE', `${what} ${pos} is out of range for a ${length}-token prompt (use 0..${length - 1}, or -1 for the last)`);
  }
  return p;
}
