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
import { disposeWeights, uploadWeights, type DeviceWeights, type UploadOptions } from './weights.js';

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
    upload: UploadOptions = {},
  ) {
    this.config = checkpoint.config;
    this.weights = uploadWeights(checkpoint, upload);
    this.validHooks = new Set(hookNames(this.config.nLayer));
  }

  /** All hook point names, in forward order. */
  hookNames(): string[] {
    return hookNames(this.config.nLayer);
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
