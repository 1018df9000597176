/**
 * The public model object: parameters on the tfjs backend, the tokenizer, the lazily opened
 * checkpoint (for FF keys/values), and the TransformerLens-style entry points.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../backend/index.js';
import { SpError, assertInt } from '../errors.js';
import { ActivationCache, HookRunner, hookNames, type FwdHook, type HookFilter } from '../hooks/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { GPT2Config } from './config.js';
import { forward, layerNorm, unembed, type ForwardOutput, type KVCache, type Patch } from './forward.js';
import { disposeWeights, uploadWeights, type DeviceWeights } from './weights.js';

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
  /** Positions that get logits; 'last' saves the large unembedding matmul for all but one. */
  logits?: 'all' | 'last';
}

/** Token ids of a (possibly ragged) batch, right-padded, with its mask. */
export interface TokenBatch {
  ids: number[][];
  /** 1 = token, 0 = padding (right padding). */
  mask: number[][];
  lengths: number[];
}

export class GPT2 {
  readonly config: GPT2Config;
  readonly weights: DeviceWeights;
  private readonly validHooks: Set<string>;
  private disposed = false;

  constructor(
    readonly checkpoint: Checkpoint,
    readonly tokenizer: GPT2Tokenizer,
    /** Name or directory the model was loaded from. */
    readonly name: string,
  ) {
    this.config = checkpoint.config;
    this.weights = uploadWeights(checkpoint);
    this.validHooks = new Set(hookNames(this.config.nLayer));
  }

  /** All hook point names, in forward order. */
  hookNames(): string[] {
    return hookNames(this.config.nLayer);
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  decode(ids: number[]): string {
    return this.tokenizer.decode(ids);
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

  /** Tokenize and validate input; ragged batches are right-padded with eos and masked. */
  toTokens(input: ModelInput): TokenBatch {
    const rows: number[][] = typeof input === 'string' ? [this.encode(input)]
      : input.length === 0 ? [[]]
      : typeof input[0] === 'string' ? (input as string[]).map((t) => this.encode(t))
      : typeof input[0] === 'number' ? [input as number[]]
      : (input as number[][]);
    const lengths = rows.map((r) => r.length);
    const maxLen = Math.max(...lengths);
    if (lengths.some((n) => n === 0)) throw new SpError('BAD_INPUT', 'empty input: need at least one token');
    if (maxLen > this.config.nCtx) throw new SpError('TOO_LONG', `input has ${maxLen} tokens, longer than the model's context of ${this.config.nCtx}`);
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
    const batch = this.toTokens(input);
    return tf.tidy(() => this.run(batch, opts).logits!);
  }

  /** TransformerLens' run_with_hooks: hooks may read or replace activations. */
  runWithHooks(input: ModelInput, opts: ForwardOptions & { fwdHooks: FwdHook[] }): tfc.Tensor3D {
    return this.forward(input, opts);
  }

  /**
   * TransformerLens' run_with_cache: logits plus the named activations ([batch, ...] tensors).
   * `names` filters what is kept (all hook points by default). Dispose both when done.
   */
  runWithCache(input: ModelInput, opts: ForwardOptions & { names?: HookFilter | string[] } = {}): { logits: tfc.Tensor3D; cache: ActivationCache } {
    const want = cacheFilter(opts.names, this.validHooks);
    const cache = new ActivationCache();
    const keeper: FwdHook = [want, (t, { hook }) => cache.keep(hook.name, t)];
    try {
      const logits = this.forward(input, { ...opts, fwdHooks: [...(opts.fwdHooks ?? []), keeper] });
      return { logits, cache };
    } catch (e) {
      cache.dispose();
      throw e;
    }
  }

  /**
   * One forward step for generation and analyses: explicit positions, key mask and KV cache.
   * Not tidied: call inside tf.tidy (the returned tensors survive it when returned).
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

  /** ln_final then the tied unembedding of any residual-stream tensor [..., d_model] → [..., d_vocab]. */
  unembedResid(x: tfc.Tensor): tfc.Tensor {
    this.checkAlive();
    if (x.shape.at(-1) !== this.config.dModel) throw new SpError('BAD_INPUT', `unembedResid needs [..., ${this.config.dModel}] (d_model), got [${x.shape}]`);
    return tf.tidy(() => {
      const shape = x.shape;
      const x3 = tf.reshape(x, [1, -1, this.config.dModel]);
      const lnf = layerNorm(x3, this.weights.lnfw, this.weights.lnfb, this.config.layerNormEps);
      return tf.reshape(unembed(this.weights, lnf), [...shape.slice(0, -1), this.config.dVocab]);
    });
  }

  /** Validate overrides and turn them into forward-pass patches. */
  patches(embeds: EmbedOverride[] = [], inject: Injection[] = [], batch: TokenBatch): Patch[] {
    const len = Math.max(...batch.lengths);
    const check = (o: EmbedOverride, what: string) => {
      assertInt(`${what} position`, o.pos, 0, len);
      if (o.batch !== undefined) assertInt(`${what} batch row`, o.batch, 0, batch.ids.length);
      if (o.vector.length !== this.config.dModel) throw new SpError('BAD_INPUT', `${what} vector has width ${o.vector.length}, the model's d_model is ${this.config.dModel}`);
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

  /** Using a disposed model would fail deep inside tfjs; say what happened instead. */
  private checkAlive(): void {
    if (this.disposed) throw new SpError('BAD_INPUT', `model ${this.name} has been disposed`);
  }

  private run(batch: TokenBatch, opts: ForwardOptions): ForwardOutput {
    const ragged = batch.mask.some((m) => m.includes(0));
    const ids = tf.tensor2d(batch.ids, undefined, 'int32');
    const out = this.step(ids, {
      keyMask: ragged ? batch.mask : undefined,
      patches: this.patches(opts.embeds, opts.inject, batch),
      fwdHooks: opts.fwdHooks,
      logits: opts.logits ?? 'all',
    });
    if (opts.logits === 'last' && ragged) {
      throw new SpError('BAD_INPUT', "logits: 'last' needs equal-length inputs (use 'all' and read each row's last real position)");
    }
    return out;
  }
}

function cacheFilter(names: HookFilter | string[] | undefined, valid: Set<string>): (n: string) => boolean {
  if (names === undefined) return () => true;
  if (typeof names === 'function') return names;
  const list = typeof names === 'string' ? [names] : names;
  for (const n of list) if (!valid.has(n)) throw new SpError('BAD_INPUT', `unknown hook point "${n}" (see model.hookNames())`);
  const set = new Set(list);
  return (n) => set.has(n);
}
