/**
 * Hook points named as in TransformerLens. A hook sees an activation and may replace it
 * by returning a tensor of the same shape: `(t, {hook}) => t2 | void`.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../backend/index.js';
import { SpError } from '../errors.js';

export interface HookPoint {
  /** e.g. `blocks.3.attn.hook_pattern` */
  name: string;
  /** Block index for `blocks.{i}.*` hooks. */
  layer?: number;
}
export type HookFn = (t: tfc.Tensor, ctx: { hook: HookPoint }) => tfc.Tensor | void;
export type HookFilter = string | ((name: string) => boolean);
export type FwdHook = [HookFilter, HookFn];

/**
 * Per-block hook suffixes in forward order, with shapes (batch first). As in TransformerLens'
 * LayerNorm: `ln*.hook_scale` = sqrt(var + eps) and `ln*.hook_normalized` = (x − mean) / scale,
 * before the weight and bias (the next matmul reads normalized · w + b).
 */
export const BLOCK_HOOKS = [
  ['hook_resid_pre', '[batch, pos, d_model]'],
  ['ln1.hook_scale', '[batch, pos, 1]'],
  ['ln1.hook_normalized', '[batch, pos, d_model]'],
  ['attn.hook_q', '[batch, pos, n_heads, d_head]'],
  ['attn.hook_k', '[batch, pos, n_heads, d_head]'],
  ['attn.hook_v', '[batch, pos, n_heads, d_head]'],
  ['attn.hook_attn_scores', '[batch, n_heads, query_pos, key_pos]'],
  ['attn.hook_pattern', '[batch, n_heads, query_pos, key_pos]'],
  ['attn.hook_z', '[batch, pos, n_heads, d_head]'],
  ['hook_attn_out', '[batch, pos, d_model]'],
  ['hook_resid_mid', '[batch, pos, d_model]'],
  ['ln2.hook_scale', '[batch, pos, 1]'],
  ['ln2.hook_normalized', '[batch, pos, d_model]'],
  ['mlp.hook_pre', '[batch, pos, d_mlp]'],
  ['mlp.hook_post', '[batch, pos, d_mlp]'],
  ['hook_mlp_out', '[batch, pos, d_model]'],
  ['hook_resid_post', '[batch, pos, d_model]'],
] as const;

/** Every hook name of an n-layer model, in the order the forward pass reaches them. */
export function hookNames(nLayer: number): string[] {
  const names = ['hook_embed', 'hook_pos_embed'];
  for (let i = 0; i < nLayer; i++) for (const [s] of BLOCK_HOOKS) names.push(`blocks.${i}.${s}`);
  names.push('ln_final.hook_scale', 'ln_final.hook_normalized', 'hook_logits');
  return names;
}

function layerOf(name: string): number | undefined {
  const m = /^blocks\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Dispatches activations to the matching hooks; used by the forward pass at every hook point. */
export class HookRunner {
  private readonly hooks: Array<[(n: string) => boolean, HookFn]>;
  constructor(hooks: FwdHook[] = [], valid?: ReadonlySet<string>) {
    this.hooks = hooks.map(([f, fn]) => {
      if (typeof f === 'string') {
        if (valid && !valid.has(f)) throw new SpError('BAD_INPUT', `unknown hook point "${f}" (see hookNames())`);
        return [(n: string) => n === f, fn];
      }
      return [f, fn];
    });
  }

  get empty(): boolean {
    return this.hooks.length === 0;
  }

  /** Whether any hook matches one of `names` (lets the forward pass skip work nobody observes). */
  wants(...names: string[]): boolean {
    return this.hooks.some(([match]) => names.some((n) => match(n)));
  }

  run(name: string, t: tfc.Tensor): tfc.Tensor {
    let out = t;
    for (const [match, fn] of this.hooks) {
      if (!match(name)) continue;
      const r = fn(out, { hook: { name, layer: layerOf(name) } });
      if (r !== undefined && r !== null) {
        if (!(r instanceof tf.Tensor)) {
          throw new SpError('BAD_INPUT', `hook on ${name} returned ${Array.isArray(r) ? 'an array' : typeof r}, expected a tensor of shape [${out.shape}] or nothing`);
        }
        if (r.shape.length !== out.shape.length || r.shape.some((d, i) => d !== out.shape[i])) {
          throw new SpError('BAD_INPUT', `hook on ${name} returned shape [${r.shape}], expected [${out.shape}]`);
        }
        out = r.dtype === out.dtype ? r : tf.cast(r, out.dtype);
      }
    }
    return out;
  }
}

/** Named activations kept from a forward pass. Call `dispose()` when done. */
export class ActivationCache {
  private readonly map = new Map<string, tfc.Tensor>();

  /** Store a copy that survives the forward pass's tidy scope. */
  keep(name: string, t: tfc.Tensor): void {
    this.map.get(name)?.dispose();
    this.map.set(name, tf.keep(t.clone()));
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  get(name: string): tfc.Tensor {
    const t = this.map.get(name);
    if (!t) throw new SpError('NOT_FOUND', `activation "${name}" is not in the cache (cached: ${this.map.size} names)`);
    return t;
  }

  keys(): string[] {
    return [...this.map.keys()];
  }

  get size(): number {
    return this.map.size;
  }

  /** Stack `blocks.{i}.<suffix>` over layers: [n_layer, ...]. Caller disposes. */
  stack(suffix: string, nLayer: number): tfc.Tensor {
    return tf.stack(Array.from({ length: nLayer }, (_, i) => this.get(`blocks.${i}.${suffix}`)));
  }

  dispose(): void {
    for (const t of this.map.values()) t.dispose();
    this.map.clear();
  }
}
