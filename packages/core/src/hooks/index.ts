/**
 * Hook points named as in TransformerLens. A hook sees an activation and may replace it
 * by returning a tensor of the same shape: `(t, {hook}) => t2 | void`.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf, tidy } from '../backend/index.js';
import { SpError, assertInt } from '../errors.js';


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
  ['attn.hook_result', '[batch, pos, n_heads, d_model]'],
  ['hook_attn_out', '[batch, pos, d_model]'],
  ['hook_resid_mid', '[batch, pos, d_model]'],
  ['ln2.hook_scale', '[batch, pos, 1]'],
  ['ln2.hook_normalized', '[batch, pos, d_model]'],
  ['mlp.hook_pre', '[batch, pos, d_mlp]'],
  ['mlp.hook_post', '[batch, pos, d_mlp]'],
  ['hook_mlp_out', '[batch, pos, d_model]'],
  ['hook_resid_post', '[batch, pos, d_model]'],
] as const;

/** A per-block hook suffix, e.g. `attn.hook_pattern`. */
export type BlockHookSuffix = (typeof BLOCK_HOOKS)[number][0];

/**
 * Every hook point name, as a type: a typo such as `blocks.0.hook_resid_pr` is a compile-time
 * error wherever a hook name is expected (runWithCache names, fwdHooks string filters).
 */
export type HookName =
  | 'hook_embed'
  | 'hook_pos_embed'
  | `blocks.${number}.${BlockHookSuffix}`
  | 'ln_final.hook_scale'
  | 'ln_final.hook_normalized'
  | 'hook_logits';

export interface HookPoint {
  /** e.g. `blocks.3.attn.hook_pattern` */
  name: HookName;
  /** Block index for `blocks.{i}.*` hooks. */
  layer?: number;
}
export type HookFn = (t: tfc.Tensor, ctx: { hook: HookPoint }) => tfc.Tensor | void;
export type HookFilter = HookName | ((name: HookName) => boolean);
export type FwdHook = [HookFilter, HookFn];

/** Every hook name of an n-layer model, in the order the forward pass reaches them. */
export function hookNames(nLayer: number): HookName[] {
  const names: HookName[] = ['hook_embed', 'hook_pos_embed'];
  for (let i = 0; i < nLayer; i++) for (const [s] of BLOCK_HOOKS) names.push(`blocks.${i}.${s}`);
  names.push('ln_final.hook_scale', 'ln_final.hook_normalized', 'hook_logits');
  return names;
}

/** TransformerLens' short activation names (utils.get_act_name) that sp has. */
export type ActShortName =
  | 'embed' | 'pos_embed' | 'logits'
  | 'resid_pre' | 'resid_mid' | 'resid_post' | 'attn_out' | 'mlp_out'
  | 'q' | 'k' | 'v' | 'z' | 'result' | 'pattern' | 'attn_scores' | 'pre' | 'post'
  | 'scale' | 'normalized'
  // TransformerLens' aliases
  | 'attn' | 'attn_logits' | 'key' | 'query' | 'value' | 'mlp_pre' | 'mlp_post';

/** get_act_name's layer_type: `a`/`attention` = attn, `m` = mlp, `b`/`block`/`blocks` = none, and `ln1`/`ln2` for LayerNorms. */
export type ActLayerType = 'a' | 'attn' | 'attention' | 'm' | 'mlp' | 'b' | 'block' | 'blocks' | 'ln1' | 'ln2' | '';

const ACT_ALIAS: Record<string, string> = { attn: 'pattern', attn_logits: 'attn_scores', key: 'k', query: 'q', value: 'v', mlp_pre: 'pre', mlp_mid: 'mid', mlp_post: 'post' };
const LAYER_TYPE_ALIAS: Record<string, string> = { a: 'attn', m: 'mlp', b: '', block: '', blocks: '', attention: 'attn' };
const ATTN_ACTS = new Set(['k', 'v', 'q', 'z', 'rot_k', 'rot_q', 'result', 'pattern', 'attn_scores']);
const MLP_ACTS = new Set(['pre', 'post', 'mid', 'pre_linear']);
const LN_ACTS = new Set(['scale', 'normalized']);
const ALL_SUFFIXES = new Set<string>(BLOCK_HOOKS.map(([s]) => s));

/** Whether `name` is a well-formed hook point name (any layer index). */
export function isHookName(name: string): name is HookName {
  if (name === 'hook_embed' || name === 'hook_pos_embed' || name === 'hook_logits' || name === 'ln_final.hook_scale' || name === 'ln_final.hook_normalized') return true;
  const m = /^blocks\.(0|[1-9]\d*)\.(.+)$/.exec(name);
  return m !== null && ALL_SUFFIXES.has(m[2]);
}

/**
 * TransformerLens' utils.get_act_name: a short name (+ layer, + layer type) → the full hook name.
 * `actName('resid_pre', 3)` = `blocks.3.hook_resid_pre`, `actName('k', 6)` = `blocks.6.attn.hook_k`,
 * `actName('normalized', 2, 'ln1')` = `blocks.2.ln1.hook_normalized`, `actName('scale')` =
 * `ln_final.hook_scale`, `actName('pre5')` = `blocks.5.mlp.hook_pre`, `actName('scale4ln1')` =
 * `blocks.4.ln1.hook_scale`; a full name comes back unchanged. Throws BAD_INPUT when the result is
 * not one of sp's hook points.
 */
export function actName(name: HookName | ActShortName | (string & {}), layer?: number, layerType?: ActLayerType | (string & {})): HookName {
  if (layer !== undefined && (!Number.isInteger(layer) || layer < 0)) throw new SpError('BAD_INPUT', `layer must be an integer ≥ 0 (got ${layer})`);
  let short: string = name;
  let lt: string | undefined = layerType;
  let l: number | undefined = layer;
  if ((short.includes('.') || short.startsWith('hook_')) && l === undefined && lt === undefined) {
    if (!isHookName(short)) throw new SpError('BAD_INPUT', `unknown hook point "${name}" (see hookNames())`);
    return short;
  }
  // As get_act_name: a compact name such as `k6` or `scale4ln1` carries its layer (and layer type);
  // sp also reads `resid_pre3` (TransformerLens only matches names without an underscore).
  const m = /^([a-z_]+)(\d+)([a-z]?.*)$/.exec(short);
  if (m) [short, l, lt] = [m[1], Number(m[2]), m[3]];
  short = ACT_ALIAS[short] ?? short;
  let full = l !== undefined ? `blocks.${l}.` : '';
  if (ATTN_ACTS.has(short)) lt = 'attn';
  else if (MLP_ACTS.has(short)) lt = 'mlp';
  else if (lt !== undefined && lt in LAYER_TYPE_ALIAS) lt = LAYER_TYPE_ALIAS[lt];
  if (lt) full += `${lt}.`;
  full += `hook_${short}`;
  if (LN_ACTS.has(short) && l === undefined) full = `ln_final.${full}`;
  if (!isHookName(full)) {
    const what = [JSON.stringify(name), layer, layerType].filter((x) => x !== undefined).join(', ');
    throw new SpError('BAD_INPUT', `activation (${what}) names "${full}", which is not a hook point (see hookNames())`);
  }
  return full;
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
      // The forward pass only ever asks about real hook names.
      return [f as (n: string) => boolean, fn];
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
      const r = fn(out, { hook: { name: name as HookName, layer: layerOf(name) } });
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

/** A name `ActivationCache.get` accepts: a full hook name, or a TransformerLens short name (`resid_pre`, `k6`, `scale4ln1`). */
export type ActName = HookName | ActShortName | `${ActShortName}${number}` | `${'scale' | 'normalized'}${number}${'ln1' | 'ln2'}`;

export interface AccumulatedResidOptions {
  /** Also the stream between attention and MLP (resid_mid) of each layer before `layer` (TransformerLens' incl_mid; default false). */
  inclMid?: boolean;
  /**
   * Centre each vector and divide by the LayerNorm scale the model itself used at that point
   * (TransformerLens' apply_ln): ln_final's hook_scale when `layer` is the last (n_layer), else
   * blocks.{layer}.ln1.hook_scale. The LayerNorm weight and bias are not applied (TransformerLens
   * folds them into the next matrix). Needs that scale in the cache. Default false.
   */
  applyLn?: boolean;
  /** Keep only these positions (negative counts from the end); a single number drops the position axis (TransformerLens' pos_slice). */
  posSlice?: number | number[];
}

/**
 * Named activations kept from a forward pass. Call `dispose()` when done. Tensors keep their
 * batch axis first unless `removeBatchDim()` was called.
 */
export class ActivationCache {
  private readonly map = new Map<HookName, tfc.Tensor>();
  private batchDim = true;

  /** `nLayer`: the model's layer count (for accumulatedResid's default); inferred from the cached names when omitted. */
  constructor(private readonly nLayer?: number) {}

  /** Store a copy that survives the forward pass's tidy scope. */
  keep(name: HookName, t: tfc.Tensor): void {
    this.map.get(name)?.dispose();
    this.map.set(name, tf.keep(t.clone()));
  }

  has(name: string): boolean {
    return this.map.has(name as HookName);
  }

  /**
   * One activation, by its hook name or TransformerLens-style (`cache['resid_pre', 3]` is
   * `cache.get('resid_pre', 3)`, `cache.get('normalized', 2, 'ln1')`, `cache.get('scale')` =
   * ln_final's); see actName. The cache owns the tensor: do not dispose it.
   */
  get(name: HookName): tfc.Tensor;
  get(name: ActName, layer?: number, layerType?: ActLayerType): tfc.Tensor;
  get(name: ActName, layer?: number, layerType?: ActLayerType): tfc.Tensor {
    const full = layer === undefined && layerType === undefined && this.map.has(name as HookName) ? (name as HookName) : actName(name, layer, layerType);
    const t = this.map.get(full);
    if (!t) throw new SpError('NOT_FOUND', `activation "${full}" is not in the cache (cached: ${this.map.size} names)`);
    return t;
  }

  keys(): HookName[] {
    return [...this.map.keys()];
  }

  get size(): number {
    return this.map.size;
  }

  /** Whether tensors still have their batch axis (false after removeBatchDim). */
  get hasBatchDim(): boolean {
    return this.batchDim;
  }

  /**
   * TransformerLens' remove_batch_dim, for a batch of one: drops the leading batch axis of every
   * tensor, in place, and returns the cache. A cache of several rows is refused (BAD_INPUT).
   */
  removeBatchDim(): this {
    if (!this.batchDim) return this;
    for (const [name, t] of this.map) {
      if (t.shape[0] !== 1) throw new SpError('BAD_INPUT', `removeBatchDim needs a batch of one; "${name}" has shape [${t.shape}]`);
    }
    for (const [name, t] of this.map) {
      this.map.set(name, tf.keep(tf.squeeze(t, [0])));
      t.dispose();
    }
    this.batchDim = false;
    return this;
  }

  /**
   * TransformerLens' accumulated_resid: the residual stream entering each block up to and
   * including `layer` (resid_pre 0 … layer), and for `layer` = n_layer (the default; -1 too) the
   * final resid_post last: [components, batch, pos, d_model] (no batch axis after removeBatchDim;
   * no pos axis with a single posSlice). `inclMid` adds resid_mid of each layer before `layer`
   * after its resid_pre. Caller disposes.
   */
  accumulatedResid(layer?: number, opts: AccumulatedResidOptions = {}): tfc.Tensor {
    const n = this.nLayer ?? this.inferLayers();
    const L = layer === undefined || layer === -1 ? n : layer;
    assertInt('accumulatedResid layer', L, 0, n + 1);
    const names: HookName[] = [];
    for (let l = 0; l <= L; l++) {
      if (l === n) {
        names.push(`blocks.${n - 1}.hook_resid_post`);
        continue;
      }
      names.push(`blocks.${l}.hook_resid_pre`);
      if (opts.inclMid && l < L) names.push(`blocks.${l}.hook_resid_mid`);
    }
    const parts = names.map((h) => this.get(h));
    const scaleName: HookName = L === n ? 'ln_final.hook_scale' : `blocks.${L}.ln1.hook_scale`;
    const scale = opts.applyLn ? this.get(scaleName) : undefined;
    return tidy(() => {
      let stack = tf.stack(parts.map((t) => slicePos(t, opts.posSlice)));
      if (scale) {
        const centred = tf.sub(stack, tf.mean(stack, -1, true));
        stack = tf.div(centred, slicePos(scale, opts.posSlice));
      }
      return stack;
    });
  }

  dispose(): void {
    for (const t of this.map.values()) t.dispose();
    this.map.clear();
  }

  private inferLayers(): number {
    let n = 0;
    for (const k of this.map.keys()) n = Math.max(n, (layerOf(k) ?? -1) + 1);
    if (n === 0) throw new SpError('BAD_INPUT', 'accumulatedResid: the cache holds no block activations');
    return n;
  }
}

/** Positions `posSlice` of the position axis (second to last), as TransformerLens' Slice. */
function slicePos(t: tfc.Tensor, posSlice: number | number[] | undefined): tfc.Tensor {
  if (posSlice === undefined) return t;
  const axis = t.rank - 2;
  const len = t.shape[axis];
  const resolve = (p: number) => {
    const q = Number.isInteger(p) && p < 0 ? len + p : p;
    if (!Number.isInteger(q) || q < 0 || q >= len) throw new SpError('OUT_OF_RANGE', `posSlice ${p} is out of range for ${len} positions`);
    return q;
  };
  if (typeof posSlice === 'number') return tf.squeeze(tf.gather(t, [resolve(posSlice)], axis), [axis]);
  return tf.gather(t, posSlice.map(resolve), axis);
}
