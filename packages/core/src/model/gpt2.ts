/**
 * The public model object: parameters on the tfjs backend, the tokenizer, the lazily opened
 * checkpoint (for FF keys/values), and the TransformerLens-style entry points.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf, tidy } from '../backend/index.js';
import { SpError, assertInt } from '../errors.js';
import { ActivationCache, HookRunner, hookNames, type FwdHook, type HookFilter, type HookName } from '../hooks/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { GPT2Config } from '../config.js';
import { forward, layerNorm, unembed, type ForwardOutput, type KVCache, type Patch } from './forward.js';
import { disposeWeights, uploadWeights, type DeviceWeights } from './weights.js';
import { interventionHooks, type NeuronIntervention } from './interventions.js';

/** Text, a batch of texts, token ids, or a batch of token ids. */
export type ModelInput = string | string[] | number[] | number[][];

/** Replace the token embedding at `pos` by `vector` (the position embedding is still added). */
export interface EmbedOverride {
  pos: number;
  vector: ArrayLike<number>;
  /** Batch row; all rows when omitted. */
  batch?: number;
}

/** Replace the residual stream entering block `layer` (blocks.{layer}.hook_resid_pre) at `pos`. */
export interface Injection extends EmbedOverride {
  layer: number;
}

export interface ForwardOptions {
  embeds?: EmbedOverride[];
  inject?: Injection[];
  fwdHooks?: FwdHook[];
  /**
   * FF neuron interventions on blocks.{layer}.mlp.hook_post (coefficient set to `value` or
   * multiplied by `scale` at every position), applied before `fwdHooks` (which, and the cache, see the result).
   */
  interventions?: NeuronIntervention[];
  /** Positions that get logits; 'last' saves the large unembedding matmul for all but one. */
  logits?: 'all' | 'last';
  /**
   * Prepend `<|endoftext|>` (GPT-2's BOS = EOS, id 50256) to every row, as TransformerLens'
   * prepend_bos does. Default false (TransformerLens defaults to true). `embeds`/`inject`
   * positions then count the BOS: the first prompt token is position 1.
   */
  prependBos?: boolean;
}

export interface TokenizeOptions {
  /** Prepend the BOS (`<|endoftext|>`) to every row; default false. See ForwardOptions.prependBos. */
  prependBos?: boolean;
}

/** Token ids of a (possibly ragged) batch, right-padded, with its mask. */
export interface TokenBatch {
  ids: number[][];
  /** 1 = token, 0 = padding (right padding). */
  mask: number[][];
  lengths: number[];
}

/** What `GPT2.capture` returns: the activations at the asked hook points (after any user hook) and the logits. */
export interface Captured {
  acts: Map<HookName, tfc.Tensor>;
  logits?: tfc.Tensor3D;
}

/** One LayerNorm's weight and bias, [d_model] each. */
export interface LayerNormParams {
  w: Float32Array;
  b: Float32Array;
}

/**
 * A loaded GPT-2. Analyses use only its public methods; the parameters, checkpoint and tokenizer
 * are private (engine details reach bench and tests through `@sp/core/internals`).
 */
export class GPT2 {
  readonly config: GPT2Config;
  /** Name or directory the model was loaded from. */
  readonly name: string;
  /** @internal */
  private readonly weights: DeviceWeights;
  /** @internal */
  private readonly checkpoint: Checkpoint;
  /** @internal */
  private readonly tokenizer: GPT2Tokenizer;
  /** @internal */
  private readonly validHooks: Set<string>;
  /** @internal */
  private disposed = false;

  /** Prefer `gpt2(nameOrDir)`, which finds, opens and checks the files. */
  constructor(source: Checkpoint, tok: GPT2Tokenizer, name: string, upload: { allowNonfinite?: boolean } = {}) {
    this.checkpoint = source;
    this.tokenizer = tok;
    this.name = name;
    this.config = source.config;
    this.weights = uploadWeights(source, upload);
    this.validHooks = new Set(hookNames(this.config.nLayer));
  }

  /** All hook point names, in forward order. */
  hookNames(): HookName[] {
    return hookNames(this.config.nLayer);
  }

  /** `<|endoftext|>` (50256 in GPT-2): the end-of-text token, also used as BOS and as padding. */
  get eosTokenId(): number {
    return this.tokenizer.eosTokenId;
  }

  /** The id of a string that is exactly one token, else undefined (`' is'` → 318). */
  tokenId(s: string): number | undefined {
    return this.tokenizer.tokenId(s);
  }

  /** Token embedding E[id] (row id of wte), [d_model], read from the file. */
  tokenEmbedding(id: number): Float32Array {
    assertInt('token id', id, 0, this.config.dVocab);
    return this.checkpoint.tokenEmbedding(id);
  }

  /** ‖E_i‖ for every token i, [d_vocab]. */
  tokenEmbeddingNorms(): Float32Array {
    this.checkAlive();
    return Float32Array.from(this.weights.unembed.colNorms());
  }

  /** ‖FF value j‖ of `layer` for every j (row norms of mlp.c_proj.weight), [d_mlp]. */
  ffValueNorms(layer: number): Float32Array {
    this.checkAlive();
    assertInt('layer', layer, 0, this.config.nLayer);
    return Float32Array.from(this.weights.blocks[layer].proj.rowNorms());
  }

  /** Bytes of the model's parameters in the checkpoint. */
  get parameterBytes(): number {
    return this.checkpoint.parameterBytes;
  }

  /**
   * A LayerNorm's weight and bias: `ln1`/`ln2` of block `layer`, or `ln_final` (layer ignored).
   * With a cache, the LayerNorm output is `normalized · w + b` (hook_normalized is before them).
   */
  layerNormParams(layer: number, which: 'ln1' | 'ln2' | 'ln_final'): LayerNormParams {
    this.checkAlive();
    if (which !== 'ln_final') assertInt('layer', layer, 0, this.config.nLayer);
    if (which !== 'ln1' && which !== 'ln2' && which !== 'ln_final') throw new SpError('BAD_INPUT', `unknown LayerNorm "${String(which)}" (use ln1, ln2 or ln_final)`);
    return this.checkpoint.layerNorm(layer, which); // from the file, as the model holds them (a GPU backend cannot read its copy synchronously)
  }

  /**
   * Attention output projection (attn.c_proj) of `layer`: W_O as [n_heads, d_head, d_model] (head h's
   * rows of the Conv1D weight, flat, row-major; what blocks.{layer}.attn.hook_result multiplies z_h
   * by) and b_O [d_model], which belongs to no head.
   */
  attnOutWeights(layer: number): { w: Float32Array; b: Float32Array } {
    this.checkAlive();
    assertInt('layer', layer, 0, this.config.nLayer);
    return this.checkpoint.attnOut(layer); // the Conv1D layout is already [heads · d_head, d_model]
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** `skipSpecialTokens`: drop `<|endoftext|>` and other special tokens (HF's skip_special_tokens; default false, as HF). */
  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decode(ids, opts);
  }

  tokenString(id: number): string {
    return this.tokenizer.tokenString(id);
  }

  /** FF key j of `layer` (column j of mlp.c_fc.weight), read from the file. */
  ffKey(layer: number, j: number): Float32Array {
    return this.checkpoint.ffKey(layer, j);
  }

  /** FF value j of `layer` (row j of mlp.c_proj.weight), read from the file. */
  ffValue(layer: number, j: number): Float32Array {
    return this.checkpoint.ffValue(layer, j);
  }

  /**
   * Tokenize and validate input; ragged batches are right-padded with eos and masked.
   * `prependBos` puts `<|endoftext|>` first in every row (text or ids), like TransformerLens'
   * to_tokens(prepend_bos=True); sp's default is no BOS.
   */
  toTokens(input: ModelInput, opts: TokenizeOptions = {}): TokenBatch {
    let rows: number[][] = typeof input === 'string' ? [this.encode(input)]
      : input.length === 0 ? [[]]
      : typeof input[0] === 'string' ? (input as string[]).map((t) => this.encode(t))
      : typeof input[0] === 'number' ? [input as number[]]
      : (input as number[][]);
    // As in TransformerLens, '' with a BOS is the one-token input [BOS].
    if (opts.prependBos) rows = rows.map((r) => [this.tokenizer.eosTokenId, ...r]);
    const lengths = rows.map((r) => r.length);
    const maxLen = Math.max(...lengths);
    if (lengths.some((n) => n === 0)) throw new SpError('BAD_INPUT', 'empty input: need at least one token');
    if (maxLen > this.config.nCtx) throw new SpError('TOO_LONG', `input has ${maxLen} tokens${opts.prependBos ? ' (BOS included)' : ''}, longer than the model's context of ${this.config.nCtx}`);
    for (const r of rows) for (const id of r) assertInt('token id', id, 0, this.config.dVocab);
    const pad = this.tokenizer.eosTokenId;
    return {
      ids: rows.map((r) => [...r, ...Array(maxLen - r.length).fill(pad)]),
      mask: rows.map((r) => Array.from({ length: maxLen }, (_, i) => (i < r.length ? 1 : 0))),
      lengths,
    };
  }

  /** Logits [batch, pos, d_vocab] (or [batch, 1, d_vocab] with logits: 'last'). Caller disposes. */
  forward(input: ModelInput, opts: ForwardOptions = {}): tfc.Tensor3D {
    const batch = this.toTokens(input, { prependBos: opts.prependBos });
    return tidy(() => this.run(batch, opts));
  }

  /** TransformerLens' run_with_hooks: hooks may read or replace activations. */
  runWithHooks(input: ModelInput, opts: ForwardOptions & { fwdHooks: FwdHook[] }): tfc.Tensor3D {
    return this.forward(input, opts);
  }

  /**
   * TransformerLens' run_with_cache: logits plus the named activations ([batch, ...] tensors).
   * `names` filters what is kept (all hook points by default). Dispose both when done.
   */
  runWithCache(input: ModelInput, opts: ForwardOptions & { names?: HookFilter | HookName[] } = {}): { logits: tfc.Tensor3D; cache: ActivationCache } {
    const want = cacheFilter(opts.names, this.validHooks);
    const batch = this.toTokens(input, { prependBos: opts.prependBos });
    const cache = new ActivationCache(this.config.nLayer);
    try {
      const logits = tidy(() => {
        const { acts, logits } = this.capture(batch, want, { ...opts, logits: opts.logits ?? 'all' });
        for (const [name, t] of acts) cache.keep(name, t);
        return logits!;
      });
      return { logits, cache };
    } catch (e) {
      cache.dispose();
      throw e;
    }
  }

  /**
   * The one run preamble behind every analysis: the key mask of a ragged batch, the embeds/inject
   * patches, then one step whose activations at `names` (a list or a predicate; seen after the
   * user's own fwdHooks) come back with the logits. Not tidied: call inside tf.tidy.
   * @internal
   */
  capture(batch: TokenBatch, names: Iterable<HookName> | ((name: HookName) => boolean), opts: Omit<ForwardOptions, 'logits' | 'prependBos'> & { logits: 'all' | 'last' | 'none' }): Captured {
    const ragged = batch.mask.some((m) => m.includes(0));
    if (opts.logits === 'last' && ragged) {
      throw new SpError('BAD_INPUT', "logits: 'last' needs equal-length inputs (use 'all' and read each row's last real position)");
    }
    const acts = new Map<HookName, tfc.Tensor>();
    const fwdHooks = [...interventionHooks(this.config, opts.interventions), ...(opts.fwdHooks ?? [])];
    const set = typeof names === 'function' ? undefined : new Set(names);
    // No hook when nothing is asked for: a hook makes the forward pass take its observed (unfused) paths.
    if (!set || set.size > 0) fwdHooks.push([set ? (n) => set.has(n) : (names as (name: HookName) => boolean), (t, { hook }) => void acts.set(hook.name, t)]);
    const out = this.step(tf.tensor2d(batch.ids, [batch.ids.length, batch.ids[0].length], 'int32'), {
      keyMask: ragged ? batch.mask : undefined,
      patches: this.patches(opts.embeds, opts.inject, batch),
      fwdHooks,
      logits: opts.logits,
    });
    return { acts, logits: out.logits };
  }

  /**
   * One forward step for generation and analyses: explicit positions, key mask and KV cache.
   * Not tidied: call inside tf.tidy (the returned tensors survive it when returned).
   * @internal
   */
  step(ids: tfc.Tensor2D, opts: { past?: KVCache; positionIds?: tfc.Tensor2D; keyMask?: number[][]; patches?: Patch[]; fwdHooks?: FwdHook[]; logits?: 'all' | 'last' | 'none' }): ForwardOutput {
    this.checkAlive();
    return forward(this.config, this.weights, {
      ids,
      past: opts.past,
      positionIds: opts.positionIds,
      keyMask: opts.keyMask,
      patches: opts.patches,
      hooks: opts.fwdHooks?.length ? new HookRunner(opts.fwdHooks, this.validHooks) : undefined,
      logits: opts.logits,
    });
  }

  /**
   * The tied unembedding W_U = W_Eᵀ WITHOUT ln_final: [..., d_model] → [..., d_vocab] (v·Eᵀ, e.g.
   * an FF value read in embedding space). Caller disposes.
   */
  unembedVectors(x: tfc.Tensor): tfc.Tensor {
    this.checkAlive();
    if (x.shape.at(-1) !== this.config.dModel) throw new SpError('BAD_INPUT', `unembedVectors needs [..., ${this.config.dModel}] (d_model), got [${x.shape}]`);
    return tidy(() => this.weights.unembed.apply(x.dtype === 'float32' ? x : tf.cast(x, 'float32')));
  }

  /** ln_final then the tied unembedding of any residual-stream tensor [..., d_model] → [..., d_vocab]. */
  unembedResid(x: tfc.Tensor): tfc.Tensor {
    this.checkAlive();
    if (x.shape.at(-1) !== this.config.dModel) throw new SpError('BAD_INPUT', `unembedResid needs [..., ${this.config.dModel}] (d_model), got [${x.shape}]`);
    return tidy(() => {
      const shape = x.shape;
      const x3 = tf.reshape(x, [1, -1, this.config.dModel]);
      const lnf = layerNorm(x3, this.weights.lnfw, this.weights.lnfb, this.config.layerNormEps);
      return tf.reshape(unembed(this.weights, lnf), [...shape.slice(0, -1), this.config.dVocab]);
    });
  }

  /**
   * Validate overrides and turn them into forward-pass patches.
   * @internal
   */
  patches(embeds: EmbedOverride[] = [], inject: Injection[] = [], batch: TokenBatch): Patch[] {
    const len = Math.max(...batch.lengths);
    const check = (o: EmbedOverride, what: string) => {
      assertInt(`${what} position`, o.pos, 0, len);
      if (o.batch !== undefined) assertInt(`${what} batch row`, o.batch, 0, batch.ids.length);
      if (typeof o.vector?.length !== 'number') throw new SpError('BAD_INPUT', `${what} at position ${o.pos}: vector must be an array of numbers`);
      if (o.vector.length !== this.config.dModel) throw new SpError('BAD_INPUT', `${what} vector has width ${o.vector.length}, the model's d_model is ${this.config.dModel}`);
      // A NaN would spread through every later position and layer: name it here instead.
      for (let i = 0; i < o.vector.length; i++) {
        const v = o.vector[i];
        if (typeof v !== 'number' || !Number.isFinite(v)) {
          const shown = typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v));
          throw new SpError('BAD_INPUT', `${what} at position ${o.pos}: vector[${i}] is ${shown}; every value must be a finite number`);
        }
      }
    };
    const out: Patch[] = [];
    for (const e of embeds) {
      check(e, 'embedding override');
      out.push({ hook: 'hook_embed', pos: e.pos, batch: e.batch, vector: e.vector });
    }
    for (const j of inject) {
      check(j, 'injection');
      assertInt('injection layer', j.layer, 0, this.config.nLayer);
      out.push({ hook: `blocks.${j.layer}.hook_resid_pre`, pos: j.pos, batch: j.batch, vector: j.vector });
    }
    return out;
  }

  dispose(): void {
    this.disposed = true;
    disposeWeights(this.weights);
    this.checkpoint.close();
  }

  /**
   * Using a disposed model would fail deep inside tfjs; say what happened instead.
   * @internal
   */
  private checkAlive(): void {
    if (this.disposed) throw new SpError('BAD_INPUT', `model ${this.name} has been disposed`);
  }

  /** @internal */
  private run(batch: TokenBatch, opts: ForwardOptions): tfc.Tensor3D {
    return this.capture(batch, [], { ...opts, logits: opts.logits ?? 'all' }).logits!;
  }
}

function cacheFilter(names: HookFilter | HookName[] | undefined, valid: Set<string>): (n: HookName) => boolean {
  if (names === undefined) return () => true;
  if (typeof names === 'function') return names;
  const list = typeof names === 'string' ? [names] : names;
  for (const n of list) if (!valid.has(n)) throw new SpError('BAD_INPUT', `unknown hook point "${n}" (see model.hookNames())`);
  const set = new Set(list);
  return (n) => set.has(n);
}
