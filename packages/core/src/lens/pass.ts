/**
 * The one computation behind every lens view: run the model once, capture the residual stream at
 * the chosen hook points, and push all (position, row) vectors through ln_f + the unembedding in
 * ONE batched matmul; top-k, entropy, KL to the output and target ranks are then whole-tensor
 * reductions over that [cells·rows, vocab] block. Nothing loops over layers or positions in tfjs.
 *
 * Shapes: b = batch, s = positions, R = rows (hook points), d = d_model, V = d_vocab,
 * P = selected cells (batch row, position), k = top-k, W = target tokens per cell.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf, tidy } from '../backend/index.js';
import { SpError } from '../errors.js';
import type { FwdHook } from '../hooks/index.js';
import type { EmbedOverride, GPT2, Injection, TokenBatch } from '../model/gpt2.js';
import type { LensRowInfo, LensView } from './types.js';

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
  topLogp: Float32Array; // [P, R, k]
  entropy: Float32Array; // [P, R] (empty without stats)
  kl: Float32Array; // [P, R]
  targetLogp: Float32Array; // [P, R, W]
  ranks: Int32Array; // [P, R, W]
}

export function lensPass(model: GPT2, batch: TokenBatch, req: PassRequest): PassOutput {
  const { nLayer, dModel: d, dVocab: V } = model.config;
  const rows = lensRows(nLayer, req.view);
  const outputHook = `blocks.${nLayer - 1}.hook_resid_post`;
  const hooks = rows.map((r) => r.hook);
  if (!hooks.includes(outputHook)) hooks.push(outputHook); // KL needs the output distribution
  const R = hooks.length;
  const outRow = hooks.indexOf(outputHook);
  const P = req.cells.length;
  const W = req.cells[0]?.targets?.length ?? 0;
  if (req.cells.some((c) => (c.targets?.length ?? 0) !== W)) throw new Error('lensPass: every cell needs the same number of targets');
  const k = Math.min(req.topk, V);
  const [bN, s] = [batch.ids.length, batch.ids[0].length];

  // x: [P, R, d], the residual stream at every selected cell and row; the forward's tensors die with this tidy.
  const x = tidy(() => {
    const captured = new Map<string, tfc.Tensor>();
    const want = new Set(hooks);
    const capture: FwdHook = [(n) => want.has(n), (t, { hook }) => void captured.set(hook.name, t)];
    const ragged = batch.mask.some((m) => m.includes(0));
    model.step(tf.tensor2d(batch.ids, [bN, s], 'int32'), {
      keyMask: ragged ? batch.mask : undefined,
      patches: model.patches(req.embeds, req.inject, batch),
      fwdHooks: [...(req.fwdHooks ?? []), capture],
      logits: 'none',
    });
    const stacked = tf.stack(hooks.map((h) => captured.get(h)!), 2); // [b, s, R, d]
    const flat = tf.reshape(stacked, [bN * s, R, d]);
    return tf.gather(flat, tf.tensor1d(req.cells.map((c) => c.b * s + c.pos), 'int32')) as tfc.Tensor3D; // [P, R, d]
  });

  const out: PassOutput = {
    rows, R, k, W,
    topIds: new Int32Array(P * R * k), topLogp: new Float32Array(P * R * k),
    entropy: new Float32Array(req.stats ? P * R : 0), kl: new Float32Array(req.stats ? P * R : 0),
    targetLogp: new Float32Array(P * R * W), ranks: new Int32Array(P * R * W),
  };
  try {
    const perCell = R * V * Math.max(1, W);
    const step = Math.max(1, Math.floor((req.blockElements ?? MAX_BLOCK_ELEMENTS) / perCell));
    for (let p0 = 0; p0 < P; p0 += step) {
      const pc = Math.min(step, P - p0);
      const part = tidy(() => block(model, x, p0, pc, R, outRow, k, req, V));
      try {
        if (k > 0) {
          out.topIds.set(part.topIds!.dataSync() as Int32Array, p0 * R * k);
          out.topLogp.set(part.topLogp!.dataSync() as Float32Array, p0 * R * k);
        }
        if (req.stats) {
          out.entropy.set(part.entropy!.dataSync() as Float32Array, p0 * R);
          out.kl.set(part.kl!.dataSync() as Float32Array, p0 * R);
        }
        if (W > 0) {
          out.targetLogp.set(part.targetLogp!.dataSync() as Float32Array, p0 * R * W);
          out.ranks.set(part.ranks!.dataSync() as Int32Array, p0 * R * W);
        }
      } finally {
        tf.dispose(Object.values(part).filter((t): t is tfc.Tensor => t !== undefined));
      }
    }
  } finally {
    x.dispose();
  }
  return out;
}

interface BlockOut {
  topIds?: tfc.Tensor;
  topLogp?: tfc.Tensor;
  entropy?: tfc.Tensor;
  kl?: tfc.Tensor;
  targetLogp?: tfc.Tensor;
  ranks?: tfc.Tensor;
}

/**
 * Cells p0 .. p0+pc-1: one unembedding matmul, then reductions chosen for the wasm backend, where
 * full-size elementwise passes dominate after the matmul: the log-softmax is never materialised
 * (top-k runs on the logits; log p = z − log S with z = logits − max, S = Σ e^z), and the row dots
 * of entropy and KL are batched matmuls. Call inside tidy.
 */
function block(model: GPT2, x: tfc.Tensor3D, p0: number, pc: number, R: number, outRow: number, k: number, req: PassRequest, V: number): BlockOut {
  const d = x.shape[2];
  const N = pc * R;
  const xs = tf.reshape(tf.slice(x, [p0, 0, 0], [pc, R, d]), [N, d]);
  const logits = model.unembedResid(xs) as tfc.Tensor2D; // [N, V]: ln_f with per-row statistics, then the unembedding
  const o: BlockOut = {};
  const { values: top1, indices: top1Ids } = tf.topk(logits, Math.max(k, 1)); // [N, k] sorted; column 0 = row max
  const mx = tf.slice(top1, [0, 0], [N, 1]); // [N, 1]
  const z = tf.sub(logits, mx); // [N, V], ≤ 0
  const e = tf.exp(z); // [N, V]
  const S = tf.sum(e, -1, true); // [N, 1]
  const logS = tf.log(S); // log p = z − log S
  if (k > 0) {
    o.topLogp = tf.sub(tf.sub(top1, mx), logS); // [N, k]
    o.topIds = top1Ids;
  }
  if (req.stats) {
    // H = −Σ p log p = log S − Σ e·z / S   (row dots as [N,1,V]·[N,V,1])
    const ez = tf.reshape(tf.matMul(tf.reshape(e, [N, 1, V]), tf.reshape(z, [N, V, 1])), [N, 1]);
    o.entropy = tf.reshape(tf.sub(logS, tf.div(ez, S)), [N]);
    // KL(f ‖ ℓ) = Σ p_f (log p_f − log p_ℓ) = (A_f − log S_f) − (A_ℓ − log S_ℓ), A_ℓ = Σ p_f · z_ℓ
    const z3 = tf.reshape(z, [pc, R, V]);
    const pf = tf.div(tf.slice(tf.reshape(e, [pc, R, V]), [0, outRow, 0], [pc, 1, V]), tf.slice(tf.reshape(S, [pc, R, 1]), [0, outRow, 0], [pc, 1, 1])); // [pc, 1, V]
    const A = tf.sub(tf.matMul(z3, tf.reshape(pf, [pc, V, 1])), tf.reshape(logS, [pc, R, 1])); // [pc, R, 1]: A_ℓ − log S_ℓ
    const Af = tf.slice(A, [0, outRow, 0], [pc, 1, 1]);
    o.kl = tf.reshape(tf.relu(tf.sub(Af, A)), [N]); // KL ≥ 0; relu drops float round-off below 0
  }
  e.dispose();
  z.dispose();
  const W = req.cells[0]?.targets?.length ?? 0;
  if (W > 0) {
    // Flat indices of (cell, row, target) in logits: ((p·R + r)·V + id); < 2^31 since a block is ≤ 2^26 elements.
    const idx = new Int32Array(N * W);
    for (let p = 0; p < pc; p++) {
      const t = req.cells[p0 + p].targets!;
      for (let r = 0; r < R; r++) for (let w = 0; w < W; w++) idx[(p * R + r) * W + w] = (p * R + r) * V + t[w];
    }
    const tl = tf.reshape(tf.gather(tf.reshape(logits, [-1]), tf.tensor1d(idx, 'int32')), [N, W]); // target logits [N, W]
    // rank = 1 + #tokens with a strictly larger logit (ties share the best rank). step(a − b) rather than
    // greater(a, b): the wasm backend's broadcasting comparison is an order of magnitude slower.
    const diff = W === 1 ? tf.sub(logits, tl) : tf.sub(tf.expandDims(logits, 1), tf.expandDims(tl, 2)); // [N, V] or [N, W, V]
    o.ranks = tf.reshape(tf.add(tf.cast(tf.sum(tf.step(diff), -1), 'int32'), 1), [N, W]);
    o.targetLogp = tf.sub(tf.sub(tl, mx), logS); // [N, W]
  }
  return o;
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
