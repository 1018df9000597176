/**
 * Where a speaking probe's virtual token comes from: an FF key or value, any vector (given or in a
 * file), token-embedding arithmetic, or a hidden state of another prompt (Patchscopes / SelfIE).
 * Every source resolves to one d_model vector plus how it enters the prompt: as the token
 * embedding (position embedding still added; the default) or injected into the residual stream
 * entering block `injectLayer`.
 */
import { tidy } from '../backend/index.js';
import { readSteps, readStepsAsync, type ReadSteps } from '../backend/reads.js';
import { SpError, assertInt } from '../errors.js';
import type { HookName } from '../hooks/index.js';
import type { GPT2 } from '../model/gpt2.js';
import { formatExpr, parseExpr } from './expr.js';
import { readVectorFile } from './vector-file.js';

export type NeuronSource =
  | { type: 'key'; layer: number; index: number }
  | { type: 'value'; layer: number; index: number }
  | { type: 'vector'; vector: ArrayLike<number>; label?: string }
  | { type: 'file'; path: string }
  | { type: 'expr'; expr: string }
  /** Residual stream of `prompt` entering block `layer` (layer = n_layer: the last block's output), at `position` (negative counts from the end; default -1). */
  | { type: 'hidden'; prompt: string | number[]; layer: number; position?: number };

export type NeuronSpecObject = NeuronSource & {
  /** Multiplies the vector (the article's coefficient; default 1). */
  scale?: number;
  /** Inject into blocks.{injectLayer}.hook_resid_pre instead of replacing the token embedding. Hidden states default to their source layer. */
  injectLayer?: number;
};

/** An object, or a string: `10,8` / `key:10,8`, `value:10,8`, `file:PATH`, `expr:0.9*google+show`, `hidden:LAYER,POS:prompt text`. */
export type NeuronSpec = NeuronSpecObject | string;

export interface ResolvedNeuron {
  /** Human label, e.g. `key L10 #8`, `expr 0.9*' google' + ' show'`. */
  label: string;
  /** JSON-safe description of the source (the spec without large arrays). */
  source: Record<string, unknown>;
  /** [d_model], scale applied. */
  vector: Float32Array;
  scale: number;
  /** undefined: replaces the token embedding. */
  injectLayer?: number;
}

function layerIndex(s: string, what: string): [number, number] {
  const m = /^\s*(-?\d+)\s*,\s*(-?\d+)\s*$/.exec(s);
  if (!m) throw new SpError('BAD_INPUT', `${what}: expected LAYER,INDEX (e.g. 10,8), got "${s}"`);
  return [Number(m[1]), Number(m[2])];
}

/** Parse the string form of a neuron spec. */
export function parseNeuronSpec(s: string): NeuronSpecObject {
  const colon = s.indexOf(':');
  const kind = colon < 0 ? '' : s.slice(0, colon).trim();
  const rest = colon < 0 ? s : s.slice(colon + 1);
  if (colon < 0 || kind === 'key' || kind === 'value') {
    const [layer, index] = layerIndex(rest, `neuron "${s}"`);
    return { type: kind === 'value' ? 'value' : 'key', layer, index };
  }
  if (kind === 'file') {
    if (!rest.trim()) throw new SpError('BAD_INPUT', 'file: needs a path');
    return { type: 'file', path: rest };
  }
  if (kind === 'expr') return { type: 'expr', expr: rest };
  if (kind === 'hidden') {
    const m = /^\s*(-?\d+)\s*,\s*(-?\d+)\s*:([\s\S]*)$/.exec(rest);
    if (!m || !m[3]) throw new SpError('BAD_INPUT', `neuron "${s}": expected hidden:LAYER,POSITION:prompt text`);
    return { type: 'hidden', layer: Number(m[1]), position: Number(m[2]), prompt: m[3] };
  }
  throw new SpError('BAD_INPUT', `unknown neuron source "${kind}:" (use LAYER,INDEX, key:, value:, file:, expr: or hidden:)`);
}

/** Resolve a spec to its vector on `model`; checks ranges and width. */
export function resolveNeuron(model: GPT2, spec: NeuronSpec): ResolvedNeuron {
  return readSteps(resolveSteps(model, spec));
}

/** resolveNeuron awaiting its read (a hidden: source runs the model): the form for the webgpu backend. */
export function resolveNeuronAsync(model: GPT2, spec: NeuronSpec): Promise<ResolvedNeuron> {
  return readStepsAsync(resolveSteps(model, spec));
}

function* resolveSteps(model: GPT2, spec: NeuronSpec): ReadSteps<ResolvedNeuron> {
  const o = typeof spec === 'string' ? parseNeuronSpec(spec) : spec;
  const cfg = model.config;
  const scale = o.scale ?? 1;
  if (!Number.isFinite(scale)) throw new SpError('BAD_INPUT', `scale must be a finite number (got ${o.scale})`);
  let injectLayer = o.injectLayer;
  let vector: Float32Array;
  let label: string;
  let source: Record<string, unknown>;
  switch (o.type) {
    case 'key':
    case 'value':
      vector = o.type === 'key' ? model.ffKey(o.layer, o.index) : model.ffValue(o.layer, o.index);
      label = `${o.type} L${o.layer} #${o.index}`;
      source = { type: o.type, layer: o.layer, index: o.index };
      break;
    case 'vector':
      vector = Float32Array.from(o.vector);
      label = o.label ?? 'vector';
      source = { type: 'vector', ...(o.label ? { label: o.label } : {}) };
      break;
    case 'file':
      vector = readVectorFile(o.path);
      label = `file ${o.path}`;
      source = { type: 'file', path: o.path };
      break;
    case 'expr': {
      const terms = parseExpr(o.expr, (t) => model.tokenId(t), cfg.dVocab);
      vector = new Float32Array(cfg.dModel);
      for (const { coef, atom } of terms) {
        const v = atom.kind === 'token' ? model.tokenEmbedding(atom.id) : atom.kind === 'key' ? model.ffKey(atom.layer, atom.index) : model.ffValue(atom.layer, atom.index);
        for (let i = 0; i < v.length; i++) vector[i] += coef * v[i];
      }
      const canon = formatExpr(terms, (id) => model.tokenString(id));
      label = `expr ${canon}`;
      source = { type: 'expr', expr: o.expr, canonical: canon, terms: terms.map((t) => ({ coef: t.coef, ...t.atom })) };
      break;
    }
    case 'hidden': {
      const r = yield* hiddenStateSteps(model, o.prompt, o.layer, o.position ?? -1);
      vector = r.vector;
      if (injectLayer === undefined) {
        if (o.layer >= cfg.nLayer) throw new SpError('BAD_INPUT', `a hidden state from layer ${o.layer} (the last block's output) needs an explicit inject layer in [0, ${cfg.nLayer - 1}]`);
        injectLayer = o.layer;
      }
      label = `hidden L${o.layer} pos ${r.position} of ${JSON.stringify(typeof o.prompt === 'string' ? o.prompt : `ids ${o.prompt.join(',')}`)}`;
      source = { type: 'hidden', prompt: o.prompt, layer: o.layer, position: r.position, token: model.tokenString(r.ids[r.position]) };
      break;
    }
    default:
      throw new SpError('BAD_INPUT', `unknown neuron source type "${(o as { type: string }).type}"`);
  }
  if (vector.length !== cfg.dModel) {
    throw new SpError('BAD_INPUT', `${label}: vector has width ${vector.length}, the model's d_model is ${cfg.dModel}`);
  }
  const bad = vector.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new SpError('BAD_INPUT', `${label}: element ${bad} is not finite`);
  if (injectLayer !== undefined) assertInt('inject layer', injectLayer, 0, cfg.nLayer);
  if (scale !== 1) for (let i = 0; i < vector.length; i++) vector[i] *= scale;
  return { label: scale !== 1 ? `${scale}×${label}` : label, source, vector, scale, injectLayer };
}

/**
 * The residual stream of `prompt` entering block `layer` at `position` — HF's hidden_states[layer]:
 * layer 0 = embeddings (token + position), layer n_layer = the last block's output (before ln_f).
 */
export function hiddenState(model: GPT2, prompt: string | number[], layer: number, position: number): HiddenState {
  return readSteps(hiddenStateSteps(model, prompt, layer, position));
}

/** hiddenState awaiting its read: the form for the webgpu backend. */
export function hiddenStateAsync(model: GPT2, prompt: string | number[], layer: number, position: number): Promise<HiddenState> {
  return readStepsAsync(hiddenStateSteps(model, prompt, layer, position));
}

export interface HiddenState {
  vector: Float32Array;
  position: number;
  ids: number[];
}

function* hiddenStateSteps(model: GPT2, prompt: string | number[], layer: number, position: number): ReadSteps<HiddenState> {
  const n = model.config.nLayer;
  assertInt('source layer', layer, 0, n + 1);
  const ids = model.toTokens(prompt).ids[0];
  const pos = position < 0 ? ids.length + position : position;
  if (!Number.isInteger(position) || pos < 0 || pos >= ids.length) {
    throw new SpError('OUT_OF_RANGE', `source position ${position} is out of range for a ${ids.length}-token prompt [${-ids.length}, ${ids.length - 1}]`);
  }
  const name: HookName = layer < n ? `blocks.${layer}.hook_resid_pre` : `blocks.${n - 1}.hook_resid_post`;
  const { logits, cache } = model.runWithCache(ids, { names: [name], logits: 'last' });
  try {
    const x = tidy(() => cache.get(name).slice([0, pos, 0], [1, 1, -1]).reshape([-1]));
    try {
      return { vector: Float32Array.from(yield x), position: pos, ids };
    } finally {
      x.dispose();
    }
  } finally {
    logits.dispose();
    cache.dispose();
  }
}
