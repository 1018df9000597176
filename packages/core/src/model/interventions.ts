/**
 * Neuron interventions (LM-Debugger's "turn off / promote a value vector"): FF neuron `index` of
 * block `layer` gets its coefficient — blocks.{layer}.mlp.hook_post, the weight of value vector
 * `index` — set to `value` or multiplied by `scale`, at every position. They become ordinary
 * forward hooks, so every analysis that takes fwdHooks can take them.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../backend/index.js';
import { SpError } from '../errors.js';
import type { FwdHook, HookName } from '../hooks/index.js';
import type { GPT2Config } from '../config.js';

/** Set (`value`) or multiply (`scale`) the coefficient of FF neuron `index` in block `layer`. Exactly one of value / scale. */
export type NeuronIntervention = { layer: number; index: number; value: number; scale?: undefined } | { layer: number; index: number; scale: number; value?: undefined };

/** Throws a one-line SpError naming the first bad entry. */
export function checkInterventions(cfg: Pick<GPT2Config, 'nLayer' | 'dMlp'>, list: readonly NeuronIntervention[]): void {
  if (!Array.isArray(list)) throw new SpError('BAD_INPUT', 'interventions must be an array of {layer, index, value | scale}');
  list.forEach((iv, i) => {
    const at = `intervention ${i}`;
    if (typeof iv !== 'object' || iv === null) throw new SpError('BAD_INPUT', `${at} must be an object {layer, index, value | scale}`);
    const { layer, index, value, scale } = iv as { layer: unknown; index: unknown; value?: unknown; scale?: unknown };
    if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 0 || layer >= cfg.nLayer) {
      throw new SpError('OUT_OF_RANGE', `${at}: layer ${String(layer)} is out of range [0, ${cfg.nLayer - 1}]`);
    }
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= cfg.dMlp) {
      throw new SpError('OUT_OF_RANGE', `${at}: neuron index ${String(index)} is out of range [0, ${cfg.dMlp - 1}]`);
    }
    const hasValue = value !== undefined, hasScale = scale !== undefined;
    if (hasValue === hasScale) throw new SpError('BAD_INPUT', `${at} (L${layer} #${index}): give exactly one of value and scale`);
    const x = hasValue ? value : scale;
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new SpError('BAD_INPUT', `${at} (L${layer} #${index}): ${hasValue ? 'value' : 'scale'} must be a finite number (got ${typeof x === 'number' ? String(x) : (JSON.stringify(x) ?? String(x))})`);
    }
  });
}

/**
 * One hook per touched layer on blocks.{layer}.mlp.hook_post: post · mul + add with mul = 1, add = 0
 * except at the touched neurons (a set gives mul 0, add value: exactly `value` for any finite
 * coefficient; a scale multiplies both, so entries on one neuron compose in list order).
 * Validates first (see checkInterventions). No interventions: no hooks (the fused paths stay).
 */
export function interventionHooks(cfg: Pick<GPT2Config, 'nLayer' | 'dMlp'>, list: readonly NeuronIntervention[] | undefined): FwdHook[] {
  if (list === undefined) return [];
  checkInterventions(cfg, list);
  const perLayer = new Map<number, { mul: Float32Array; add: Float32Array }>();
  const mul64 = new Map<number, Float64Array>(), add64 = new Map<number, Float64Array>();
  for (const iv of list) {
    if (!mul64.has(iv.layer)) mul64.set(iv.layer, new Float64Array(cfg.dMlp).fill(1)), add64.set(iv.layer, new Float64Array(cfg.dMlp));
    const m = mul64.get(iv.layer)!, a = add64.get(iv.layer)!;
    if (iv.value !== undefined) [m[iv.index], a[iv.index]] = [0, iv.value];
    else [m[iv.index], a[iv.index]] = [m[iv.index] * iv.scale!, a[iv.index] * iv.scale!];
  }
  for (const [l, m] of mul64) perLayer.set(l, { mul: Float32Array.from(m), add: Float32Array.from(add64.get(l)!) });
  return [...perLayer].map(([layer, { mul, add }]): FwdHook => [
    `blocks.${layer}.mlp.hook_post` as HookName,
    // Built inside the forward's tidy, so these small tensors are disposed with the run.
    (t: tfc.Tensor) => tf.add(tf.mul(t, tf.tensor1d(mul)), tf.tensor1d(add)),
  ]);
}
