/**
 * Speaking probes (Dar, "Speaking Probes: Self-Interpreting Models?", 2023): put a parameter vector
 * into a natural-language prompt as a virtual token and let the model describe it.
 *
 *   speakingProbe(model, { prompt: 'The term "<neuron>" means', neurons: ['key:10,8'] })
 *
 * The result is a plain JSON-serialisable object (the CLI's --json output).
 */
import { SpError, assertInt } from '../errors.js';
import { GENERATION_DEFAULTS, generate, type FinishReason, type TokenEvent } from '../generate/generate.js';
import type { EmbedOverride, GPT2, Injection } from '../model/gpt2.js';
import type { NeuronIntervention } from '../model/interventions.js';
import { parseNeuronSpec, resolveNeuron, resolveNeuronAsync, type NeuronSpec, type NeuronSpecObject, type ResolvedNeuron } from './neuron.js';
import { embeddingProjectionAsync, type EmbeddingProjection } from './projection.js';
import { parseTemplate, renderTemplate, tokenizeTemplate } from './template.js';

/**
 * The article's generation settings, as overrides of HF's GENERATION_DEFAULTS: sampling, T = 0.5,
 * repetition penalty 2, 50 new tokens, 3 samples, special tokens dropped from the texts. top-k 50 and
 * top-p 1 are HF generate's defaults, in force in the original (it passes neither).
 */
const PROBE_OVERRIDES = {
  doSample: true,
  temperature: 0.5,
  repetitionPenalty: 2,
  maxNewTokens: 50,
  numReturnSequences: 3,
  skipSpecialTokens: true, // the original decodes with skip_special_tokens=True
} as const;

export const SPEAKING_PROBE_DEFAULTS = Object.freeze({
  ...GENERATION_DEFAULTS,
  ...PROBE_OVERRIDES,
  /** The probe's name for numReturnSequences. */
  samples: PROBE_OVERRIDES.numReturnSequences,
  /** Tokens in the embedding-space view. */
  projectionTop: 20,
});

export interface SpeakingProbeOptions {
  /** Template with <neuron>, <neuron2>, … and/or <param_L_J> tags. */
  prompt: string;
  /** Fills <neuron> (= <neuron1>), <neuron2>, … in order. */
  neurons?: NeuronSpec[];
  /** Samples (default 3; 1 with greedy). */
  samples?: number;
  /** Greedy decoding instead of sampling (deterministic, one sample). */
  greedy?: boolean;
  temperature?: number;
  repetitionPenalty?: number;
  topK?: number;
  topP?: number;
  maxNewTokens?: number;
  minLength?: number;
  minNewTokens?: number;
  eosTokenId?: number | number[] | null;
  stopStrings?: string[];
  /** Default: a random seed, reported in the result so the run can be repeated. */
  seed?: number;
  /**
   * Drop `<|endoftext|>` (and other special tokens) from the sample texts, as the original code's
   * `tokenizer.decode(..., skip_special_tokens=True)`. Default true; false keeps them. The ids
   * (`ids`, `new_ids`) always keep the EOS id.
   */
  skipSpecialTokens?: boolean;
  /** Multiplies every virtual token's vector (on top of a neuron's own scale). */
  scale?: number;
  /** Inject every virtual token into blocks.{injectLayer}.hook_resid_pre (neurons with their own injectLayer keep it). */
  injectLayer?: number;
  /** Tokens in the embedding-space view (default 20; 0 turns it off). */
  projectionTop?: number;
  /** FF neuron interventions during generation (as in generate), e.g. a neuron switched off. */
  interventions?: NeuronIntervention[];
  /** Every new token as it is produced (row = sample index). */
  onToken?: (ev: TokenEvent) => void;
}

export interface SpeakingProbeNeuron {
  label: string;
  source: Record<string, unknown>;
  /** Tags of the template this vector fills. */
  tags: string[];
  positions: number[];
  /** null: replaces the token embedding (position embedding added); else the residual stream entering this block. */
  inject_layer: number | null;
  scale: number;
  norm: number;
  projection: EmbeddingProjection | null;
}

export interface SpeakingProbeSample {
  /** Prompt ids (placeholder 0 at virtual positions) followed by the new ids. */
  ids: number[];
  /** Decoded new text (special tokens dropped unless skipSpecialTokens is false). */
  text: string;
  new_ids: number[];
  /** Why the sample stopped (generate's finishReasons). */
  finish: FinishReason;
}

export interface SpeakingProbeResult {
  model: string;
  /** The template as given. */
  prompt: string;
  /** The prompt as the model reads it, each tag written ` <tag>` (the virtual token's own leading space). */
  prompt_text: string;
  prompt_ids: number[];
  /** Every virtual position, in prompt order. */
  neuron_positions: number[];
  virtual_tokens: Array<{ position: number; tag: string; neuron: number }>;
  neurons: SpeakingProbeNeuron[];
  samples: SpeakingProbeSample[];
  /** Embedding-space view of the first neuron. */
  projection: EmbeddingProjection | null;
  options: {
    do_sample: boolean; samples: number; temperature: number; top_k: number; top_p: number; repetition_penalty: number;
    max_new_tokens: number; min_length: number; min_new_tokens: number; stop_strings: string[]; seed: number | null;
    skip_special_tokens: boolean;
  };
  timing: { prefill_ms: number; decode_ms: number; new_tokens: number; tokens_per_s: number };
}

/** Run a speaking probe. Errors (bad template, neuron, option) are one-line SpErrors, raised before any generation. */
export async function speakingProbe(model: GPT2, opts: SpeakingProbeOptions): Promise<SpeakingProbeResult> {
  const d = SPEAKING_PROBE_DEFAULTS;
  if (typeof opts.prompt !== 'string') throw new SpError('BAD_INPUT', 'a speaking probe needs a prompt template');
  const parts = parseTemplate(opts.prompt);
  const { ids, virtual } = tokenizeTemplate(parts, (t) => model.encode(t));
  const specs = opts.neurons ?? [];

  // ---- tags ↔ neurons ----
  const used = new Set<number>();
  for (const v of virtual) {
    if (v.tag.kind !== 'neuron') continue;
    if (v.tag.neuron >= specs.length) {
      throw new SpError('BAD_INPUT', specs.length === 0
        ? `the prompt uses ${v.tag.tag} but no neuron was given`
        : `the prompt uses ${v.tag.tag} but only ${specs.length} neuron${specs.length > 1 ? 's were' : ' was'} given`);
    }
    used.add(v.tag.neuron);
  }
  specs.forEach((_, i) => {
    if (!used.has(i)) throw new SpError('BAD_INPUT', `neuron ${i + 1} is not used: the prompt has no ${i === 0 ? '<neuron>' : `<neuron${i + 1}>`} tag`);
  });

  // ---- generation options (checked before any work) ----
  const greedy = opts.greedy ?? false;
  const samples = opts.samples ?? (greedy ? 1 : d.samples);
  if (!Number.isInteger(samples) || samples < 1) throw new SpError('BAD_INPUT', `samples must be a positive integer (got ${samples})`);
  if (greedy && samples > 1) throw new SpError('BAD_INPUT', `greedy decoding gives one sample (got samples = ${samples})`);
  const temperature = opts.temperature ?? d.temperature;
  if (!greedy && !(temperature > 0)) throw new SpError('BAD_INPUT', `temperature must be > 0 when sampling (got ${temperature}); use greedy for deterministic output`);
  const projectionTop = opts.projectionTop ?? d.projectionTop;
  assertInt('projectionTop', projectionTop, 0, model.config.dVocab + 1);
  const seed = greedy ? undefined : opts.seed ?? Math.floor(Math.random() * 2 ** 32);
  const skipSpecialTokens = opts.skipSpecialTokens ?? d.skipSpecialTokens;
  const scale = opts.scale ?? 1;
  if (!Number.isFinite(scale)) throw new SpError('BAD_INPUT', `scale must be a finite number (got ${opts.scale})`);

  // ---- resolve every vector: user neurons first, then <param_L_J> FF keys in order of appearance ----
  // The probe-wide scale multiplies each neuron's own; the probe-wide inject layer fills in where a
  // neuron has none (so it also overrides a hidden state's default of its source layer).
  if (opts.injectLayer !== undefined) assertInt('inject layer', opts.injectLayer, 0, model.config.nLayer);
  const withGlobal = (s: NeuronSpec): NeuronSpecObject => {
    const o = typeof s === 'string' ? parseNeuronSpec(s) : s;
    return { ...o, scale: (o.scale ?? 1) * scale, injectLayer: o.injectLayer ?? opts.injectLayer };
  };
  const resolved: ResolvedNeuron[] = [];
  for (const s of specs) resolved.push(await resolveNeuronAsync(model, withGlobal(s)));
  const entries: Array<{ r: ResolvedNeuron; tags: string[]; positions: number[] }> = resolved.map((r) => ({ r, tags: [], positions: [] }));
  const paramIndex = new Map<string, number>();
  const virtualTokens: SpeakingProbeResult['virtual_tokens'] = [];
  for (const v of virtual) {
    let k: number;
    if (v.tag.kind === 'neuron') k = v.tag.neuron;
    else {
      const key = `${v.tag.layer},${v.tag.index}`;
      if (!paramIndex.has(key)) {
        const r = resolveNeuron(model, withGlobal({ type: 'key', layer: v.tag.layer, index: v.tag.index }));
        paramIndex.set(key, entries.length);
        entries.push({ r: { ...r, label: `${v.tag.tag} = ${r.label}` }, tags: [], positions: [] });
      }
      k = paramIndex.get(key)!;
    }
    const e = entries[k];
    if (!e.tags.includes(v.tag.tag)) e.tags.push(v.tag.tag);
    e.positions.push(v.position);
    virtualTokens.push({ position: v.position, tag: v.tag.tag, neuron: k });
  }

  const embeds: EmbedOverride[] = [];
  const inject: Injection[] = [];
  for (const { r, positions } of entries) {
    for (const pos of positions) {
      if (r.injectLayer === undefined) embeds.push({ pos, vector: r.vector });
      else inject.push({ layer: r.injectLayer, pos, vector: r.vector });
    }
  }
  const positions = virtual.map((v) => v.position);

  const gen = await generate(model, ids, {
    maxNewTokens: opts.maxNewTokens ?? d.maxNewTokens,
    doSample: !greedy,
    temperature,
    topK: opts.topK ?? d.topK,
    topP: opts.topP ?? d.topP,
    repetitionPenalty: opts.repetitionPenalty ?? d.repetitionPenalty,
    minLength: opts.minLength,
    minNewTokens: opts.minNewTokens,
    eosTokenId: opts.eosTokenId,
    stopStrings: opts.stopStrings,
    numReturnSequences: samples,
    seed,
    skipSpecialTokens,
    embeds,
    inject,
    virtualPositions: positions,
    interventions: opts.interventions,
    onToken: opts.onToken,
  });

  const maxNew = opts.maxNewTokens ?? d.maxNewTokens;
  const neurons: SpeakingProbeNeuron[] = [];
  for (const { r, tags, positions: pos } of entries) neurons.push({
    label: r.label,
    source: r.source,
    tags,
    positions: pos,
    inject_layer: r.injectLayer ?? null,
    scale: r.scale,
    norm: Math.sqrt(r.vector.reduce((a, x) => a + x * x, 0)),
    projection: projectionTop > 0 ? await embeddingProjectionAsync(model, r.vector, projectionTop) : null,
  });
  return {
    model: model.name,
    prompt: opts.prompt,
    prompt_text: renderTemplate(parts),
    prompt_ids: ids,
    neuron_positions: positions,
    virtual_tokens: virtualTokens,
    neurons,
    samples: gen.newTokens.map((t, i) => ({
      ids: gen.sequences[i],
      text: gen.texts[i],
      new_ids: t,
      finish: gen.finishReasons[i],
    })),
    projection: neurons[0]?.projection ?? null,
    options: {
      do_sample: !greedy,
      samples,
      temperature,
      top_k: opts.topK ?? d.topK,
      top_p: opts.topP ?? d.topP,
      repetition_penalty: opts.repetitionPenalty ?? d.repetitionPenalty,
      max_new_tokens: maxNew,
      min_length: opts.minLength ?? d.minLength,
      min_new_tokens: opts.minNewTokens ?? d.minNewTokens,
      stop_strings: opts.stopStrings ?? [],
      seed: seed ?? null,
      skip_special_tokens: skipSpecialTokens,
    },
    timing: {
      prefill_ms: gen.timing.prefillMs,
      decode_ms: gen.timing.decodeMs,
      new_tokens: gen.timing.newTokens,
      tokens_per_s: gen.timing.tokensPerS,
    },
  };
}
