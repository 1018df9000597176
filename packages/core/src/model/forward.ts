/**
 * The GPT-2 forward pass, top to bottom, with the residual stream explicit and a hook at every
 * TransformerLens hook point. Pure function of (weights, inputs); callers wrap it in tf.tidy.
 *
 * Shapes: b = batch, s = new positions this call, T = past + s (keys), d = d_model,
 * h = n_heads, dh = d_head, m = d_mlp, V = d_vocab.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../backend/index.js';
import { appendHeads } from '../backend/copies.js';
import { geluNew, layerNorm } from '../backend/kernels.js';
import type { HookRunner } from '../hooks/index.js';
import type { Linear } from '../backend/linear.js';
import type { GPT2Config } from '../config.js';
import type { DeviceWeights } from './weights.js';

/**
 * Past keys/values per layer: k, v [b, h, C, dh] whose first `length` positions are filled (all C
 * when absent); the rest is spare room that the next calls fill in place (backend/copies.ts), so a
 * call's `present` may share its buffers with its `past`: dispose a past only if it is not also
 * in the present that replaces it.
 */
export interface LayerKV {
  k: tfc.Tensor4D;
  v: tfc.Tensor4D;
  length?: number;
}
export type KVCache = LayerKV[];

/** Replace the activation at hook point `hook` at (batch, pos) by `vector` ([d_model]). */
export interface Patch {
  hook: 'hook_embed' | `blocks.${number}.hook_resid_pre`;
  /** Row of the batch; every row when omitted. */
  batch?: number;
  /** Absolute position in the sequence (past included). */
  pos: number;
  vector: ArrayLike<number>;
}

export interface ForwardInput {
  ids: tfc.Tensor2D; // [b, s] int32
  /** [b, s] int32; default pastLen + 0..s-1. Left-padded batches pass their own. */
  positionIds?: tfc.Tensor2D;
  /** [b, T] 1 = real token, 0 = padding; default all ones. */
  keyMask?: number[][];
  past?: KVCache;
  patches?: Patch[];
  hooks?: HookRunner;
  /** Which positions get logits (the unembedding is the largest matmul). */
  logits?: 'all' | 'last' | 'none';
}

export interface ForwardOutput {
  logits?: tfc.Tensor3D; // [b, s or 1, V]
  present: KVCache; // past + this call's keys/values
  residFinal: tfc.Tensor3D; // [b, s, d], resid_post of the last block
}

// LayerNorm and gelu_new are single fused kernels on wasm/cpu (backend/kernels.ts).
export { layerNorm, geluNew };

/** The attention hook points inside the fused core (hook_z comes out of it). */
const coreHooks = ['attn.hook_q', 'attn.hook_k', 'attn.hook_v', 'attn.hook_attn_scores', 'attn.hook_pattern'];

export function unembed(w: DeviceWeights, x: tfc.Tensor): tfc.Tensor3D {
  return w.unembed.apply(x) as tfc.Tensor3D; // [b, s, V]
}

export function forward(cfg: GPT2Config, w: DeviceWeights, inp: ForwardInput): ForwardOutput {
  const { nHead: h, dHead: dh, dModel: d, layerNormEps: eps } = cfg;
  const [b, s] = inp.ids.shape;
  const pastLen = inp.past?.[0] ? (inp.past[0].length ?? inp.past[0].k.shape[2]) : 0;
  const T = pastLen + s;
  const hook = (name: string, t: tfc.Tensor): tfc.Tensor => (inp.hooks && !inp.hooks.empty ? inp.hooks.run(name, t) : t);
  // `ln` = 'blocks.{i}.ln1' | 'blocks.{i}.ln2' | 'ln_final'. The fused kernel unless a hook (or
  // the cache) wants this LayerNorm's hook_scale or hook_normalized; then TransformerLens' steps.
  const norm = (ln: string, x: tfc.Tensor, lw: tfc.Tensor1D, lb: tfc.Tensor1D): tfc.Tensor =>
    inp.hooks?.wants(ln + '.hook_scale', ln + '.hook_normalized') ? layerNormHooked(ln, x, lw, lb, eps, hook) : layerNorm(x, lw, lb, eps);
  const patch = (name: string, t: tfc.Tensor): tfc.Tensor => applyPatches(inp.patches, name, t, pastLen);

  // ---- embeddings ----
  const flatIds = tf.reshape(inp.ids, [b * s]);
  const tokEmb = tf.reshape(w.unembed.outputWeights(flatIds as tfc.Tensor1D), [b, s, d]); // [b, s, d] (tied: W_E = W_Uᵀ)
  const embed = hook('hook_embed', patch('hook_embed', tokEmb));
  const posIds = inp.positionIds ?? tf.add(tf.range(pastLen, T, 1, 'int32'), tf.zeros([b, s], 'int32'));
  const posEmbed = hook('hook_pos_embed', tf.reshape(tf.gather(w.wpe, tf.reshape(posIds, [b * s])), [b, s, d]));
  let resid = tf.add(embed, posEmbed); // [b, s, d]

  // Additive attention bias [b, 1, s, T]: -inf for future keys (causal), -1e9 for padding keys
  // (finite, so rows that see only padding stay finite instead of NaN).
  // One new position with no padding sees every key: the bias is all zeros, skip it.
  const bias = s === 1 && !inp.keyMask ? undefined : attentionBias(b, s, pastLen, inp.keyMask);
  // [b, s, h, dh] <-> [b, h, s, dh]; with s = 1 both have the same memory order, a reshape suffices.
  const toHeads = (t: tfc.Tensor) => (s === 1 ? tf.reshape(t, [b, h, 1, dh]) : tf.transpose(t, [0, 2, 1, 3]));
  const fromHeads = (t: tfc.Tensor) => (s === 1 ? tf.reshape(t, [b, 1, h, dh]) : tf.transpose(t, [0, 2, 1, 3]));

  // Attention's two batched products through the engine (onnxruntime's MLAS on ort: tfjs' batched
  // matmul on wasm is scalar, ~0.6 s per decode step for 8 rows at 500 tokens), else tfjs'.
  const bmm = w.params.batchMatMul;
  const attnCore = w.params.attention;

  const present: KVCache = [];
  for (let i = 0; i < cfg.nLayer; i++) {
    const bw = w.blocks[i];
    const p = `blocks.${i}.`;
    resid = hook(p + 'hook_resid_pre', patch(p + 'hook_resid_pre', resid)); // [b, s, d]

    // ---- attention ----
    const ln1 = norm(p + 'ln1', resid, bw.ln1w, bw.ln1b); // [b, s, d]
    const qkv = bw.qkv.apply(ln1); // [b, s, 3d]
    const past = inp.past?.[i];
    // The engine's fused core (heads, cache, QKᵀ, softmax, ·V in one native call) when it has one
    // and no hook wants what happens inside; else step by step, every hook point on the way.
    const core = attnCore && !inp.hooks?.wants(...coreHooks.map((n) => p + n)) ? attnCore(qkv, past, h, 1 / Math.sqrt(dh), bias) : undefined;
    let z: tfc.Tensor; // [b, s, h, dh]
    if (core) {
      present.push({ k: core.k, v: core.v, length: T });
      z = hook(p + 'attn.hook_z', tf.reshape(core.z, [b, s, h, dh]));
    } else {
      const [q0, k0, v0] = tf.split(qkv, 3, -1);
      const heads = (t: tfc.Tensor) => tf.reshape(t, [b, s, h, dh]);
      const q = toHeads(hook(p + 'attn.hook_q', heads(q0))); // [b, h, s, dh]
      const kNew = toHeads(hook(p + 'attn.hook_k', heads(k0))) as tfc.Tensor4D;
      const vNew = toHeads(hook(p + 'attn.hook_v', heads(v0))) as tfc.Tensor4D;
      // The cache buffers [b, h, C, dh], C ≥ T: with spare room for the next positions on an engine
      // with a fused core (its products read the buffers as they are); the products run over all C
      // and the scores are cut to T, the fused core's exact steps (its values, bit for bit).
      const k = appendHeads(past?.k, pastLen, kNew, attnCore !== undefined);
      const v = appendHeads(past?.v, pastLen, vNew, attnCore !== undefined);
      const C = k.shape[2];
      present.push({ k, v, length: T });
      let scores = bmm(q, k, true, 1 / Math.sqrt(dh)); // [b, h, s, C]
      if (C > T) scores = tf.slice(scores, [0, 0, 0, 0], [b, h, s, T]); // [b, h, s, T]
      scores = hook(p + 'attn.hook_attn_scores', bias ? tf.add(scores, bias) : scores);
      const pattern = hook(p + 'attn.hook_pattern', w.params.softmax(scores)); // [b, h, s, T]
      const padded = C > T ? tf.pad(pattern, [[0, 0], [0, 0], [0, 0], [0, C - T]]) : pattern; // zero weight on the spare rows
      z = hook(p + 'attn.hook_z', fromHeads(bmm(padded, v, false))); // [b, s, h, dh]
    }
    const attnOut = hook(p + 'hook_attn_out', inp.hooks?.wants(p + 'attn.hook_result') ? attnResultHooked(p, z, bw.o, h, dh, d, hook) : bw.o.apply(tf.reshape(z, [b, s, d]))); // [b, s, d]
    resid = hook(p + 'hook_resid_mid', tf.add(resid, attnOut));

    // ---- MLP: pre = FF key activations, post = gelu(pre), out = post @ FF values ----
    const ln2 = norm(p + 'ln2', resid, bw.ln2w, bw.ln2b);
    // c_fc and gelu_new in one native call where the engine fuses them and no hook wants hook_pre.
    const fused = bw.fc.applyGelu && !inp.hooks?.wants(p + 'mlp.hook_pre') ? bw.fc.applyGelu(ln2) : undefined;
    const post = hook(p + 'mlp.hook_post', fused ?? w.params.gelu(hook(p + 'mlp.hook_pre', bw.fc.apply(ln2)))); // [b, s, m]
    const mlpOut = hook(p + 'hook_mlp_out', bw.proj.apply(post)); // [b, s, d]
    resid = hook(p + 'hook_resid_post', tf.add(resid, mlpOut));
  }

  // ---- final layernorm and tied unembedding ----
  const residFinal = resid as tfc.Tensor3D;
  if (inp.logits === 'none') return { present, residFinal };
  const last = inp.logits === 'last' && s > 1 ? tf.slice(resid, [0, s - 1, 0], [b, 1, d]) : resid;
  const lnf = norm('ln_final', last, w.lnfw, w.lnfb);
  const logits = hook('hook_logits', unembed(w, lnf)) as tfc.Tensor3D; // [b, s|1, V]
  return { logits, present, residFinal };
}

/**
 * LayerNorm in TransformerLens' steps and hook points: centre, hook_scale = sqrt(mean(xc²) + eps)
 * [b, s, 1], hook_normalized = xc / scale (before w and b), then normalized · w + b. A hook that
 * replaces scale or normalized changes what follows, as in TransformerLens; hooks that only read
 * (the cache) leave the output to the plain layerNorm, so observing never changes the logits.
 */
export function layerNormHooked(ln: string, x: tfc.Tensor, w: tfc.Tensor1D, b: tfc.Tensor1D, eps: number, hook: (name: string, t: tfc.Tensor) => tfc.Tensor): tfc.Tensor {
  const xc = tf.sub(x, tf.mean(x, -1, true));
  const scale0 = tf.sqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps));
  const scale = hook(ln + '.hook_scale', scale0);
  const normalized0 = tf.div(xc, scale);
  const normalized = hook(ln + '.hook_normalized', normalized0);
  if (scale === scale0 && normalized === normalized0) return layerNorm(x, w, b, eps); // nothing replaced
  return tf.add(tf.mul(normalized, w), b);
}

/**
 * TransformerLens' use_attn_result: hook_result [b, s, h, d] = z_h · W_O[h·dh … (h+1)·dh rows], each
 * head's write to the residual stream; b_O belongs to no head. Only computed when a hook (or the
 * cache) asks for it. A hook that replaces it makes attn_out = Σ_h result + b_O, as in
 * TransformerLens; observing alone leaves attn_out to the one matmul, so the logits never change.
 */
function attnResultHooked(p: string, z: tfc.Tensor, o: Linear, h: number, dh: number, d: number, hook: (name: string, t: tfc.Tensor) => tfc.Tensor): tfc.Tensor {
  const [b, s] = z.shape as [number, number];
  const wo = tf.reshape(o.weight(), [h, dh, d]); // rows of c_proj in head order
  const zh = tf.reshape(tf.transpose(z, [2, 0, 1, 3]), [h, b * s, dh]);
  const result0 = tf.transpose(tf.reshape(tf.matMul(zh, wo), [h, b, s, d]), [1, 2, 0, 3]); // [b, s, h, d]
  const result = hook(p + 'attn.hook_result', result0);
  if (result === result0) return o.apply(tf.reshape(z, [b, s, h * dh]));
  const bO = o.apply(tf.zeros([1, h * dh])); // 0 · W + b = b exactly
  return tf.add(tf.sum(result, 2), tf.reshape(bO, [d]));
}

function attentionBias(b: number, s: number, pastLen: number, keyMask?: number[][]): tfc.Tensor {
  const T = pastLen + s;
  const data = new Float32Array((keyMask ? b : 1) * s * T);
  for (let r = 0; r < (keyMask ? b : 1); r++) {
    for (let i = 0; i < s; i++) {
      for (let j = 0; j < T; j++) {
        const o = (r * s + i) * T + j;
        if (j > pastLen + i) data[o] = -Infinity;
        else if (keyMask && !keyMask[r][j]) data[o] = -1e9;
      }
    }
  }
  return tf.tensor4d(data, [keyMask ? b : 1, 1, s, T]);
}

function applyPatches(patches: Patch[] | undefined, name: string, x: tfc.Tensor, pastLen: number): tfc.Tensor {
  const mine = patches?.filter((p) => p.hook === name && p.pos >= pastLen && p.pos < pastLen + x.shape[1]!);
  if (!mine?.length) return x;
  const [b, s, d] = x.shape as [number, number, number];
  const mask = new Uint8Array(b * s * d); // bool mask, same shape as x: tf.where needs no broadcasting
  const vals = new Float32Array(b * s * d);
  for (const p of mine) {
    for (let r = 0; r < b; r++) {
      if (p.batch !== undefined && p.batch !== r) continue;
      const o = (r * s + (p.pos - pastLen)) * d;
      mask.fill(1, o, o + d);
      for (let k = 0; k < d; k++) vals[o + k] = p.vector[k];
    }
  }
  return tf.where(tf.tensor3d(mask, [b, s, d], 'bool'), tf.tensor3d(vals, [b, s, d]), x);
}
