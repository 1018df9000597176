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
import { tf, tidy } from '../backend/index.js';
import { SpError } from '../errors.js';
import type { FwdHook, HookName } from '../hooks/index.js';
import type { EmbedOverride, GPT2, Injection, TokenBatch } from '../model/gpt2.js';
import type { NeuronIntervention } from '../model/interventions.js';
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
    const step = Math.max(1, Math.floor((req.blockElements ?? MAX_BLOCK_ELEMENTS) / perCell));
    for (let p0 = 0; p0 < P; p0 += step) {
      const pc = Math.min(step, P - p0);
      const part = block(model, x, p0, pc, R, outRow, k, req, V);
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

interface BlockOut {
  topIds?: Int32Array;
  topLogp?: Float64Array;
  entropy?: Float64Array;
  kl?: Float64Array;
  targetLogp?: Float64Array;
  ranks?: Int32Array;
}

// Module-level aliases: a global `Math` lookup in a hot loop is slow under some runtimes (jest's vm).
const { exp, log } = Math;

/**
 * exp(z) for z ≤ 0 in float64 without a Math.exp call per element (about 2× faster over 50,257
 * logits): exp(z) = exp(−j/1024) · e^r with j = ⌊−1024 z⌋ from a table (384 KiB) and |r| < 1/1024 by
 * a degree-4 Taylor polynomial (truncation < 1e-17 relative, below float64 rounding). Terms with z < EXP_ZMIN (< 1.5e-21 of the max term, which is 1) are below half an ulp
 * of the sums they join and are dropped.
 */
const EXP_STEP = 1024;
const EXP_ZMIN = -48;
let expTable: Float64Array | undefined;
function expTab(): Float64Array {
  if (!expTable) {
    expTable = new Float64Array(-EXP_ZMIN * EXP_STEP + 2);
    for (let j = 0; j < expTable.length; j++) expTable[j] = exp(-j / EXP_STEP);
  }
  return expTable;
}

/**
 * Row n's top-k of `l[off .. off+V)` into ids/vals at n*k, largest first, ties to the lower id
 * (tf.topk's order), and returns the row max. A streaming min-heap of k: one compare per logit
 * against the current k-th best, a sift only when it is beaten (~k·ln(V/k) times per row).
 */
function rowTopk(l: Float32Array, off: number, V: number, k: number, ids: Int32Array, vals: Float32Array, hi: Int32Array, hv: Float32Array): number {
  if (k === 0) {
    let mx = -Infinity;
    for (let t = 0; t < V; t++) if (l[off + t] > mx) mx = l[off + t];
    return mx;
  }
  // Heap root = the worst kept entry: smallest value, and for equal values the larger id.
  const worse = (a: number, b: number) => hv[a] < hv[b] || (hv[a] === hv[b] && hi[a] > hi[b]);
  const sift = (i: number, m: number) => {
    for (;;) {
      const c1 = 2 * i + 1;
      if (c1 >= m) return;
      const c = c1 + 1 < m && worse(c1 + 1, c1) ? c1 + 1 : c1;
      if (!worse(c, i)) return;
      const tv = hv[i], ti = hi[i];
      hv[i] = hv[c]; hi[i] = hi[c];
      hv[c] = tv; hi[c] = ti;
      i = c;
    }
  };
  for (let t = 0; t < k; t++) {
    hv[t] = l[off + t];
    hi[t] = t;
  }
  for (let i = (k >> 1) - 1; i >= 0; i--) sift(i, k);
  let thr = hv[0];
  for (let t = k; t < V; t++) {
    const v = l[off + t];
    // A later id with a value equal to the root's is worse than the root: strict >.
    if (v > thr) {
      hv[0] = v;
      hi[0] = t;
      sift(0, k);
      thr = hv[0];
    }
  }
  // Pop worst-first into the back of the output: best first.
  const o = (off / V) * k;
  for (let m = k; m > 0; m--) {
    ids[o + m - 1] = hi[0];
    vals[o + m - 1] = hv[0];
    hv[0] = hv[m - 1];
    hi[0] = hi[m - 1];
    sift(0, m - 1);
  }
  return vals[o];
}

/**
 * Cells p0 .. p0+pc-1: one unembedding matmul [pc·R, d]·[d, V] through the model's Linear (the fast
 * engine); then, per row in plain typed-array loops on the float32 logits, a streaming top-k that
 * also gives the max, and everything that sums over the vocabulary (the softmax normaliser
 * S = Σ e^(l − max), entropy, KL) accumulated in float64. A float32 sum of 50,257 terms is off by
 * ~1e-4 relative; float64 leaves only the logits' own rounding. Ranks are exact counts on the same logits.
 */
function block(model: GPT2, x: tfc.Tensor3D, p0: number, pc: number, R: number, outRow: number, k: number, req: PassRequest, V: number): BlockOut {
  const d = x.shape[2];
  const N = pc * R;
  const lt = tidy(() => model.unembedResid(tf.reshape(tf.slice(x, [p0, 0, 0], [pc, R, d]), [N, d]))); // [N, V]: ln_f with per-row statistics, then the unembedding
  let logits: Float32Array;
  try {
    logits = lt.dataSync() as Float32Array;
  } finally {
    lt.dispose();
  }
  const o: BlockOut = {};
  const topIds = new Int32Array(N * k);
  const topVals = new Float32Array(N * k);
  const hi = new Int32Array(k);
  const hv = new Float32Array(k);
  const T = expTab();
  // Per row: max and log S (log p = l − max − log S), and Σ e·z for the entropy H = log S − Σ e·z / S.
  const c = new Float64Array(N); // max + log S: log p = l − c
  if (req.stats) o.entropy = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const off = n * V;
    const mx = rowTopk(logits, off, V, k, topIds, topVals, hi, hv);
    // Two interleaved accumulators per sum: independent dependency chains run in parallel.
    let S0 = 0, S1 = 0, ez0 = 0, ez1 = 0;
    let t = 0;
    for (; t + 1 < V; t += 2) {
      const z = logits[off + t] - mx;
      const y = logits[off + t + 1] - mx;
      if (z >= EXP_ZMIN) {
        const j = (-z * EXP_STEP) | 0;
        const r = z + j * (1 / EXP_STEP);
        const e = T[j] * (1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24)))));
        S0 += e;
        ez0 += e * z;
      }
      if (y >= EXP_ZMIN) {
        const j = (-y * EXP_STEP) | 0;
        const r = y + j * (1 / EXP_STEP);
        const e = T[j] * (1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24)))));
        S1 += e;
        ez1 += e * y;
      }
    }
    if (t < V) {
      const z = logits[off + t] - mx;
      const e = exp(z);
      S0 += e;
      ez0 += e * z;
    }
    const S = S0 + S1;
    if (req.stats) o.entropy![n] = log(S) - (ez0 + ez1) / S;
    c[n] = mx + log(S);
  }
  if (k > 0) {
    o.topIds = topIds;
    const lp = new Float64Array(N * k);
    for (let i = 0; i < lp.length; i++) lp[i] = topVals[i] - c[(i / k) | 0];
    o.topLogp = lp;
  }
  if (req.stats) {
    // KL(f ‖ ℓ) = Σ p_f (log p_f − log p_ℓ), f = the output row of the same cell.
    o.kl = new Float64Array(N);
    const lpf = new Float64Array(V);
    const pf = new Float64Array(V);
    for (let p = 0; p < pc; p++) {
      const f = p * R + outRow;
      for (let t = 0; t < V; t++) {
        lpf[t] = logits[f * V + t] - c[f];
        pf[t] = exp(lpf[t]);
      }
      for (let r = 0; r < R; r++) {
        const n = p * R + r;
        if (n === f) continue; // exactly 0
        const off = n * V;
        const cn = c[n];
        let s0 = 0, s1 = 0;
        let t = 0;
        for (; t + 1 < V; t += 2) {
          s0 += pf[t] * (lpf[t] - (logits[off + t] - cn));
          s1 += pf[t + 1] * (lpf[t + 1] - (logits[off + t + 1] - cn));
        }
        if (t < V) s0 += pf[t] * (lpf[t] - (logits[off + t] - cn));
        const s = s0 + s1;
        o.kl[n] = s > 0 ? s : 0; // KL ≥ 0; drops round-off below 0
      }
    }
  }
  const W = req.cells[0]?.targets?.length ?? 0;
  if (W > 0) {
    // rank = 1 + #tokens with a strictly larger logit (ties share the best rank).
    o.targetLogp = new Float64Array(N * W);
    o.ranks = new Int32Array(N * W);
    for (let p = 0; p < pc; p++) {
      const targets = req.cells[p0 + p].targets!;
      for (let r = 0; r < R; r++) {
        const n = p * R + r;
        const off = n * V;
        for (let w = 0; w < W; w++) {
          const tl = logits[off + targets[w]];
          let above = 0;
          for (let t = 0; t < V; t++) if (logits[off + t] > tl) above++;
          o.ranks[n * W + w] = above + 1;
          o.targetLogp[n * W + w] = tl - c[n];
        }
      }
    }
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
