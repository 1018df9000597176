/**
 * One unit of work: the atlas entries of neurons [start, end) of one layer. A pure function of its
 * inputs (model, settings, unit, the layer's corpus examples), so any process that computes a unit
 * writes identical rows.
 */
import {
  generate, generationMemoryBytes, GENERATION_MEMORY_BUDGET, parseTemplate, SpError, tf, tokenizeTemplate, topIndices,
  type EmbedOverride, type GPT2,
} from '@sp/core';
import type { CorpusExample, NeuronProjection, NeuronRecord, NeuronScores, ProbeSample, ProjToken, ScanSettings, Unit } from './types.js';

/** The neuron's vector: an FF key is column j of mlp.c_fc.weight, a value row j of mlp.c_proj.weight (scale 1, as `key:L,J` in a probe). */
export function neuronVector(model: GPT2, kind: ScanSettings['kind'], layer: number, index: number): Float32Array {
  return kind === 'key' ? model.ffKey(layer, index) : model.ffValue(layer, index);
}

/**
 * Embedding-space projections of a block of vectors with ONE matmul through the tied unembedding:
 * scores = V·Eᵀ [block, d_vocab], raw and divided by ‖E_i‖ (as embeddingProjection), top and bottom
 * `k` of each (ties: lower id first).
 */
export function projectBlock(model: GPT2, vectors: Float32Array[], k: number): NeuronProjection[] {
  const d = model.config.dModel, V = model.config.dVocab;
  const flat = new Float32Array(vectors.length * d);
  vectors.forEach((v, i) => flat.set(v, i * d));
  const [raw, norm] = tf.tidy(() => {
    const scores = model.unembedVectors(tf.tensor2d(flat, [vectors.length, d]));
    const embNorms = tf.tensor1d(model.tokenEmbeddingNorms());
    return [scores, tf.div(scores, tf.maximum(embNorms, 1e-12))];
  });
  let rawData: Float32Array, normData: Float32Array;
  try {
    rawData = raw.dataSync() as Float32Array;
    normData = norm.dataSync() as Float32Array;
  } finally {
    raw.dispose();
    norm.dispose();
  }
  const neg = new Float32Array(V);
  const view = (ids: number[], row: Float32Array): ProjToken[] => ids.map((id) => ({ id, token: model.tokenString(id), score: row[id] }));
  return vectors.map((_, i) => {
    const r = rawData.subarray(i * V, (i + 1) * V), n = normData.subarray(i * V, (i + 1) * V);
    const bottom = (row: Float32Array) => {
      for (let t = 0; t < V; t++) neg[t] = -row[t];
      return view(topIndices(neg, k), row);
    };
    return { top: view(topIndices(r, k), r), bottom: bottom(r), top_normalized: view(topIndices(n, k), n), bottom_normalized: bottom(n) };
  });
}

/** Prompt ids and virtual positions of the atlas template (placeholder ids at the <neuron> positions). */
export function probePrompt(model: GPT2, prompt: string): { ids: number[]; positions: number[] } {
  const { ids, virtual } = tokenizeTemplate(parseTemplate(prompt), (t) => model.encode(t));
  return { ids, positions: virtual.map((v) => v.position) };
}

/**
 * Speaking-probe samples of many neurons: neurons × samples as the rows of one batched generate
 * call (the prompts share the template; each prompt row gets its neuron through its own
 * EmbedOverride). Row (p, j) uses random stream j of the seed, as sample j of
 * `speakingProbe(model, { neurons: ['key:L,J'], seed, samples })`, so the two give the same samples.
 * Calls are split only where the batch would exceed generate's memory budget.
 */
export async function probeSamples(model: GPT2, settings: ScanSettings, vectors: Float32Array[]): Promise<ProbeSample[][]> {
  if (settings.samples === 0 || vectors.length === 0) return vectors.map(() => []);
  const { ids, positions } = probePrompt(model, settings.prompt);
  const tokens = ids.length + settings.maxNewTokens;
  if (tokens > model.config.nCtx) {
    throw new SpError('TOO_LONG', `the prompt (${ids.length} tokens) + max new tokens (${settings.maxNewTokens}) exceeds the model's context of ${model.config.nCtx}`);
  }
  const rowsFit = Math.floor(GENERATION_MEMORY_BUDGET / generationMemoryBytes(model.config, 1, tokens));
  const perCall = Math.max(1, Math.floor(rowsFit / settings.samples));
  const out: ProbeSample[][] = [];
  for (let p0 = 0; p0 < vectors.length; p0 += perCall) {
    const group = vectors.slice(p0, p0 + perCall);
    const embeds: EmbedOverride[] = group.flatMap((vector, batch) => positions.map((pos) => ({ pos, vector, batch })));
    const gen = await generate(model, group.map(() => ids), {
      maxNewTokens: settings.maxNewTokens,
      doSample: true,
      temperature: settings.temperature,
      topK: settings.topK,
      topP: settings.topP,
      repetitionPenalty: settings.repetitionPenalty,
      numReturnSequences: settings.samples,
      seed: settings.seed,
      skipSpecialTokens: true, // as the probe: the texts drop <|endoftext|>, the ids keep it
      embeds,
      virtualPositions: positions,
    });
    group.forEach((_, p) => {
      out.push(Array.from({ length: settings.samples }, (_, s) => {
        const row = p * settings.samples + s;
        return { text: gen.texts[row], ids: gen.newTokens[row] };
      }));
    });
  }
  return out;
}

/** A token or word as the overlap compares them: case- and space-insensitive. */
export function normalizeWord(s: string): string {
  return s.trim().toLowerCase();
}

/** The distinct words of texts: maximal runs of letters, digits and apostrophes, lower-cased. */
export function distinctWords(texts: string[]): string[] {
  const set = new Set<string>();
  for (const t of texts) for (const m of t.matchAll(/[\p{L}\p{N}']+/gu)) {
    const w = normalizeWord(m[0].replace(/^'+|'+$/g, ''));
    if (w) set.add(w);
  }
  return [...set];
}

/**
 * The article's comparison as numbers, against the projection's top list (raw scores):
 * example_projection_overlap = fraction of the examples whose activating token is in it;
 * probe_projection_overlap = fraction of the samples' distinct words equal to one of its tokens
 * (both trimmed and lower-cased). null where there is nothing to compare (no corpus / no words).
 */
export function agreementScores(projection: NeuronProjection, samples: ProbeSample[], examples: CorpusExample[] | null): NeuronScores {
  const ids = new Set(projection.top.map((t) => t.id));
  const words = new Set(projection.top.map((t) => normalizeWord(t.token)).filter((w) => w !== ''));
  const sampleWords = distinctWords(samples.map((s) => s.text));
  return {
    example_projection_overlap: examples && examples.length ? examples.filter((e) => ids.has(e.token_id)).length / examples.length : null,
    probe_projection_overlap: sampleWords.length ? sampleWords.filter((w) => words.has(w)).length / sampleWords.length : null,
  };
}

/**
 * The records of one unit, in index order. `examples`: the layer's corpus pass (one list per neuron
 * of the layer, index 0..d_mlp-1), required when the settings name a corpus.
 */
export async function computeUnit(model: GPT2, settings: ScanSettings, unit: Unit, examples?: CorpusExample[][] | null): Promise<NeuronRecord[]> {
  const { nLayer, dMlp } = model.config;
  if (!Number.isInteger(unit.layer) || unit.layer < 0 || unit.layer >= nLayer) throw new SpError('OUT_OF_RANGE', `layer ${unit.layer} is out of range [0, ${nLayer - 1}]`);
  if (!Number.isInteger(unit.start) || !Number.isInteger(unit.end) || unit.start < 0 || unit.end > dMlp || unit.start >= unit.end) {
    throw new SpError('OUT_OF_RANGE', `unit neurons [${unit.start}, ${unit.end}) are not a non-empty range in [0, ${dMlp})`);
  }
  if (settings.corpus && !examples) throw new SpError('BAD_INPUT', `the settings name corpus ${settings.corpus.name} but no corpus examples were given for layer ${unit.layer}`);
  const idx = Array.from({ length: unit.end - unit.start }, (_, i) => unit.start + i);
  const vectors = idx.map((j) => neuronVector(model, settings.kind, unit.layer, j));
  const projections = projectBlock(model, vectors, settings.projectionTop);
  const samples = await probeSamples(model, settings, vectors);
  return idx.map((index, i) => {
    const ex = settings.corpus ? examples![index] ?? [] : [];
    return {
      layer: unit.layer,
      index,
      kind: settings.kind,
      projection: projections[i],
      samples: samples[i],
      examples: ex,
      scores: agreementScores(projections[i], samples[i], settings.corpus ? ex : null),
    };
  });
}
