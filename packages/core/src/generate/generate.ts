/**
 * Autoregressive generation with a KV cache and Hugging Face `generate` semantics.
 *
 * Prompts are left-padded into one batch (HF's decoder-only convention), each prompt is
 * prefilled once and its KV cache tiled for `numReturnSequences` samples, then one token per
 * step for all rows. Embedding overrides / injections act on the prompt positions during the
 * prefill; the cache carries their effect into every later step.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import type { GPT2Config } from '../config.js';
import { gatherRows } from '../backend/copies.js';
import { readNow } from '../backend/heap.js';
import { readAsync, syncReads } from '../backend/webgpu.js';
import { tf, tidy } from '../backend/index.js';
import { SpError, assertInt } from '../errors.js';
import type { FwdHook } from '../hooks/index.js';
import type { KVCache } from '../model/forward.js';
import type { EmbedOverride, GPT2, Injection, TokenBatch } from '../model/gpt2.js';
import { interventionHooks, type NeuronIntervention } from '../model/interventions.js';
import { GENERATION_DEFAULTS, type FinishReason, type GenerationConfig } from './config.js';
import {
  applyProcessors, argmax, minLengthProcessor, minNewTokensProcessor, PROCESSOR_BLOCK, repetitionPenaltyProcessor, sampleFrom, samplingDistribution,
  type LogitsProcessor,
} from './logits-processors.js';
import { assertSeed, randomSeed, seededRandom } from './rng.js';

export { GENERATION_DEFAULTS, GENERATION_MEMORY_BUDGET, type FinishReason, type GenerationConfig } from './config.js';
export type { LogitsProcessor, LogitsProcessorContext } from './logits-processors.js';

/**
 * Every GenerationConfig setting (defaults in GENERATION_DEFAULTS) plus the per-call inputs.
 * `memoryBudget`: one prompt's samples run in chunks that fit (the same results: each sample has
 * its own random stream and the rows do not interact); several prompts that do not fit are refused.
 * `skipSpecialTokens` acts on `texts` and token events only: `sequences` and `newTokens` keep the EOS id.
 */
export interface GenerateOptions extends Partial<GenerationConfig> {
  /** Stop a sequence at this token (included in the output). Default: the tokenizer's EOS; null: never. */
  eosTokenId?: number | number[] | null;
  /** Stop a sequence once its new text contains one of these (the tokens that complete it are kept). */
  stopStrings?: string[];
  /**
   * Extra processors (HF `logits_processor`), run in order after the built-in ones (repetition
   * penalty, min-length and min-new-tokens EOS suppression) and before the sampling warpers
   * (temperature, top-k, top-p), as HF does; greedy decoding takes the argmax of their output.
   */
  logitsProcessor?: LogitsProcessor[];
  /** Makes sampling reproducible (an integer 0 … 2³² − 1); sample j of a prompt is the same at any batch size. */
  seed?: number;
  /** Per-prompt overrides (positions are in the prompt's own token ids). */
  embeds?: EmbedOverride[];
  /**
   * Prompt positions holding placeholder ids for virtual tokens (one list for every prompt, or one
   * list per prompt). The repetition penalty skips them: in the original speaking probes the
   * virtual token is an added vocabulary entry, so penalising it never touches a real token.
   */
  virtualPositions?: number[] | number[][];
  inject?: Injection[];
  fwdHooks?: FwdHook[];
  /** FF neuron interventions (as in model.forward), at every position of the prompt and of every new token. */
  interventions?: NeuronIntervention[];
  /** Called for every new token as it is produced. */
  onToken?: (ev: TokenEvent) => void;
}

export interface TokenEvent {
  /** Row in the output: prompt p's sample j is row p * numReturnSequences + j. */
  sequence: number;
  step: number;
  tokenId: number;
  /** Decoded text of this token ('' for a special token with skipSpecialTokens). */
  text: string;
  done: boolean;
  /** Why the row stopped, on its last event; null before. */
  finishReason: FinishReason | null;
}

export interface GenerateResult {
  /** Prompt + new ids per output row (no padding). */
  sequences: number[][];
  /** New ids only. */
  newTokens: number[][];
  /** Decoded new text per row (without special tokens with skipSpecialTokens). */
  texts: string[];
  promptLengths: number[];
  /** Why each row stopped (its EOS id, a stop string, or maxNewTokens), as HF's / OpenAI's finish_reason. */
  finishReasons: FinishReason[];
  timing: { prefillMs: number; decodeMs: number; newTokens: number; tokensPerS: number };
}

/**
 * Peak bytes of a generation batch besides the weights: the KV cache, 2 (K, V) · n_layer · rows ·
 * tokens · d_model float32, counted twice (each step builds the new cache from the old one), and
 * the last-position logits, rows · d_vocab float32, counted three times (the tensor, its copy read
 * back, and the previous step's copy not yet collected: 2.6 copies measured with 2000 samples).
 */
export function generationMemoryBytes(config: Pick<GPT2Config, 'nLayer' | 'dModel' | 'dVocab'>, rows: number, tokens: number): number {
  const kv = 2 * config.nLayer * rows * tokens * config.dModel * 4;
  const logits = rows * config.dVocab * 4;
  return 2 * kv + 3 * logits;
}

const gb = (bytes: number) => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 2 : 1)} GiB`;

interface Resolved extends GenerationConfig {
  eos: number[];
  stopStrings: string[];
  seed: number;
  logitsProcessor: LogitsProcessor[];
}

function resolve(model: GPT2, o: GenerateOptions): Resolved {
  const d = GENERATION_DEFAULTS;
  const r: Resolved = {
    maxNewTokens: o.maxNewTokens ?? d.maxNewTokens,
    doSample: o.doSample ?? d.doSample,
    temperature: o.temperature ?? d.temperature,
    topK: o.topK ?? d.topK,
    topP: o.topP ?? d.topP,
    repetitionPenalty: o.repetitionPenalty ?? d.repetitionPenalty,
    minLength: o.minLength ?? d.minLength,
    minNewTokens: o.minNewTokens ?? d.minNewTokens,
    numReturnSequences: o.numReturnSequences ?? d.numReturnSequences,
    skipSpecialTokens: o.skipSpecialTokens ?? d.skipSpecialTokens,
    eos: o.eosTokenId === null ? [] : Array.isArray(o.eosTokenId) ? o.eosTokenId : [o.eosTokenId ?? model.eosTokenId],
    stopStrings: o.stopStrings ?? [],
    seed: o.seed ?? randomSeed(),
    memoryBudget: o.memoryBudget ?? d.memoryBudget,
    logitsProcessor: o.logitsProcessor ?? [],
  };
  const bad = (m: string) => new SpError('BAD_INPUT', m);
  assertSeed(r.seed);
  if (!(r.memoryBudget > 0)) throw bad(`memoryBudget must be a positive number of bytes (got ${r.memoryBudget})`);
  if (!Number.isInteger(r.maxNewTokens) || r.maxNewTokens < 0) throw bad(`maxNewTokens must be a non-negative integer (got ${r.maxNewTokens})`);
  if (r.doSample && !(r.temperature > 0)) throw bad(`temperature must be > 0 when sampling (got ${r.temperature})`);
  if (!(r.temperature >= 0) || !Number.isFinite(r.temperature)) throw bad(`temperature must be non-negative (got ${r.temperature})`);
  if (!Number.isInteger(r.topK) || r.topK < 0) throw bad(`topK must be a non-negative integer (got ${r.topK})`);
  if (!(r.topP > 0 && r.topP <= 1)) throw bad(`topP must be in (0, 1] (got ${r.topP})`);
  if (!(r.repetitionPenalty > 0) || !Number.isFinite(r.repetitionPenalty)) throw bad(`repetitionPenalty must be > 0 (got ${r.repetitionPenalty})`);
  if (!Number.isInteger(r.numReturnSequences) || r.numReturnSequences < 1) throw bad(`numReturnSequences must be a positive integer (got ${r.numReturnSequences})`);
  if (!r.doSample && r.numReturnSequences > 1) throw bad('numReturnSequences > 1 needs doSample (greedy decoding gives identical sequences)');
  for (const e of r.eos) assertInt('eosTokenId', e, 0, model.config.dVocab);
  if (!Array.isArray(r.logitsProcessor) || r.logitsProcessor.some((f) => typeof f !== 'function')) throw bad('logitsProcessor must be an array of functions (ids, scores, ctx) => scores');
  return r;
}

/** Generate from one prompt or a batch of prompts (text or ids). */
export async function generate(model: GPT2, input: string | string[] | number[] | number[][], opts: GenerateOptions = {}): Promise<GenerateResult> {
  let result: GenerateResult | undefined;
  for await (const ev of generateStream(model, input, opts)) if ('result' in ev) result = ev.result;
  return result!;
}

/** Async iterator of token events, ending with `{ result }`. */
export async function* generateStream(
  model: GPT2,
  input: string | string[] | number[] | number[][],
  opts: GenerateOptions = {},
): AsyncGenerator<TokenEvent | { result: GenerateResult }> {
  const o = resolve(model, opts);
  const prompts = model.toTokens(input);
  const P = prompts.ids.length;
  const n = o.numReturnSequences;
  const L = Math.max(...prompts.lengths);
  if (L + o.maxNewTokens > model.config.nCtx) {
    throw new SpError('TOO_LONG', `prompt (${L} tokens) + maxNewTokens (${o.maxNewTokens}) exceeds the model's context of ${model.config.nCtx}`);
  }
  // Memory is checked before any work: a batch too large for the budget runs in chunks (one
  // prompt's samples) or is refused (several prompts), instead of failing deep inside tfjs.
  const rowsPerChunk = Math.max(1, Math.floor(o.memoryBudget / generationMemoryBytes(model.config, 1, L + o.maxNewTokens)));
  if (P * n <= rowsPerChunk) {
    for await (const ev of generateBatch(model, prompts, opts, o, 0)) {
      if (!('result' in ev)) opts.onToken?.(ev);
      yield ev;
    }
    return;
  }
  if (P > 1) {
    throw new SpError('UNSUPPORTED', `${P} prompts × ${n} samples of ${L + o.maxNewTokens} tokens need about ${gb(generationMemoryBytes(model.config, P * n, L + o.maxNewTokens))} for the KV cache and logits, over the ${gb(o.memoryBudget)} memoryBudget: pass fewer prompts per call (or raise memoryBudget)`);
  }
  const parts: GenerateResult[] = [];
  for (let j0 = 0; j0 < n; j0 += rowsPerChunk) {
    const chunk = { ...o, numReturnSequences: Math.min(rowsPerChunk, n - j0) };
    for await (const ev of generateBatch(model, prompts, opts, chunk, j0)) {
      if ('result' in ev) {
        parts.push(ev.result);
        continue;
      }
      const shifted = { ...ev, sequence: ev.sequence + j0 };
      opts.onToken?.(shifted);
      yield shifted;
    }
  }
  const prefillMs = parts.reduce((a, r) => a + r.timing.prefillMs, 0), decodeMs = parts.reduce((a, r) => a + r.timing.decodeMs, 0);
  const total = parts.reduce((a, r) => a + r.timing.newTokens, 0);
  yield {
    result: {
      sequences: parts.flatMap((r) => r.sequences),
      newTokens: parts.flatMap((r) => r.newTokens),
      texts: parts.flatMap((r) => r.texts),
      promptLengths: parts.flatMap((r) => r.promptLengths),
      finishReasons: parts.flatMap((r) => r.finishReasons),
      timing: { prefillMs, decodeMs, newTokens: total, tokensPerS: total / ((prefillMs + decodeMs) / 1000) },
    },
  };
}

/** One batch: every prompt, samples firstSample … firstSample + numReturnSequences − 1 of each. */
async function* generateBatch(
  model: GPT2,
  prompts: TokenBatch,
  opts: GenerateOptions,
  o: Resolved,
  firstSample: number,
): AsyncGenerator<TokenEvent | { result: GenerateResult }> {
  const P = prompts.ids.length;
  const n = o.numReturnSequences;
  const R = P * n;
  const L = Math.max(...prompts.lengths);
  // Left padding: row p's real tokens occupy columns [L - len_p, L).
  const offsets = prompts.lengths.map((len) => L - len);
  const real = prompts.ids.map((r, p) => r.slice(0, prompts.lengths[p]));
  const padded = real.map((r, p) => [...Array(offsets[p]).fill(model.eosTokenId), ...r]);
  const keyMask: number[][] = real.map((_, p) => Array.from({ length: L }, (_, j) => (j >= offsets[p] ? 1 : 0)));
  const shift = <T extends EmbedOverride>(list: T[] | undefined): T[] =>
    (list ?? []).flatMap((e) => {
      const rows = e.batch === undefined ? real.map((_, p) => p) : [e.batch];
      return rows.map((p) => {
        assertInt('override position', e.pos, 0, prompts.lengths[p] ?? 0);
        return { ...e, batch: p, pos: e.pos + offsets[p] };
      });
    });
  const fwdHooks = [...interventionHooks(model.config, opts.interventions), ...(opts.fwdHooks ?? [])];
  const patches = model.patches(shift(opts.embeds), shift(opts.inject as Injection[] | undefined), { ids: padded, mask: keyMask, lengths: padded.map(() => L) });

  const rows = Array.from({ length: R }, (_, r) => Math.floor(r / n)); // output row -> prompt
  const seqs = rows.map((p) => [...real[p]]);
  const virt = virtualPositionsPerPrompt(opts.virtualPositions, prompts.lengths);
  const newTok: number[][] = rows.map(() => []);
  const finish: Array<FinishReason | null> = rows.map(() => (o.maxNewTokens === 0 ? 'length' : null));
  const processors = logitsProcessors(o, {
    // Processors see output rows (r + firstSample: chunks hold one prompt's samples).
    virtual: (row) => virt[rows[row - firstSample]],
    promptLength: (row) => prompts.lengths[rows[row - firstSample]],
  });
  const rngs = rows.map((_, r) => seededRandom(o.seed, firstSample + (r % n)));
  const mask = rows.map((p) => [...keyMask[p]]);
  const nextPos = rows.map((p) => prompts.lengths[p]);

  const t0 = performance.now();
  // ---- prefill: each prompt once, then tile its cache for its samples ----
  let { logits, past } = tidy(() => {
    const out = model.step(tf.tensor2d(padded, [P, L], 'int32'), {
      positionIds: tf.tensor2d(keyMask.map((m) => m.map((v, j) => (v ? j - (L - m.reduce((a, b) => a + b, 0)) : 0))), [P, L], 'int32'),
      keyMask: offsets.some((x) => x > 0) ? keyMask : undefined,
      patches,
      fwdHooks,
      logits: 'last',
    });
    const tile = <T extends tfc.Tensor>(t: T): T => (n > 1 ? gatherRows(t, rows) : t);
    // The prefill logits stay [P, 1, V]: every sample of a prompt reads its prompt's row (tiling
    // them would copy the vocabulary-wide row n times for nothing).
    return { logits: out.logits!, past: out.present.map((kv) => ({ k: tile(kv.k), v: tile(kv.v), length: kv.length })) as KVCache };
  });
  const t1 = performance.now();

  try {
    for (let step = 0; step < o.maxNewTokens; step++) {
      // [R, 1, V] ([P, 1, V] at step 0). With no processor, read in place on the heap: no tfjs op
      // runs before the tokens are chosen. A user processor may run tfjs ops (which can grow the
      // heap under a view), so with processors the values are copied first.
      // (webgpu in Node reads a GPU buffer only asynchronously: webgpu.ts)
      const rowsLogits = !syncReads() ? await readAsync(logits) : processors.length === 0 ? readNow(logits) : (logits.dataSync() as Float32Array);
      const V = model.config.dVocab;
      const src = (r: number) => (step === 0 ? rows[r] : r); // row of rowsLogits for output row r
      const chosen: number[] = rows.map(() => model.eosTokenId); // finished rows are fed padding
      const active = rows.map((_, r) => r).filter((r) => finish[r] === null);
      // Processors, then (sampling) the warpers, on float64 copies of a block of rows at a time;
      // with no processor the warpers read the float32 logits themselves (the same values).
      const row = (r: number) => rowsLogits.subarray(src(r) * V, (src(r) + 1) * V);
      for (let b = 0; b < active.length; b += PROCESSOR_BLOCK) {
        const block = active.slice(b, b + PROCESSOR_BLOCK);
        const scores = processors.length === 0 ? block.map(row) : applyProcessors(
          processors,
          block.map((r) => seqs[r]),
          block.map((r) => Float64Array.from(row(r))),
          { rows: block.map((r) => r + firstSample), step },
        );
        block.forEach((r, i) => {
          chosen[r] = o.doSample ? sampleFrom(samplingDistribution(scores[i], o), rngs[r]()) : argmax(scores[i]);
        });
      }
      logits.dispose();
      for (const r of active) {
        const id = chosen[r];
        seqs[r].push(id);
        newTok[r].push(id);
        const text = model.decode([id], { skipSpecialTokens: o.skipSpecialTokens });
        // EOS first, then a stop string (also on the last allowed token), then the length limit.
        finish[r] = o.eos.includes(id) ? 'eos'
          : o.stopStrings.length && hasStopString(model.decode(newTok[r]), o.stopStrings) ? 'stop_string'
          : newTok[r].length >= o.maxNewTokens ? 'length' : null;
        yield { sequence: r, step, tokenId: id, text, done: finish[r] !== null, finishReason: finish[r] } satisfies TokenEvent;
      }
      if (finish.every((f) => f !== null)) break;
      // ---- one decode step for every row ----
      for (let r = 0; r < R; r++) mask[r].push(1);
      const prev = past;
      ({ logits, past } = tidy(() => {
        const out = model.step(tf.tensor2d(chosen, [R, 1], 'int32'), {
          past: prev,
          positionIds: tf.tensor2d(nextPos, [R, 1], 'int32'),
          keyMask: offsets.some((x) => x > 0) ? mask : undefined,
          fwdHooks,
          logits: 'last',
        });
        return { logits: out.logits!, past: out.present };
      }));
      // The step grows the cache in place where its buffers have room: free only the buffers it replaced.
      const kept = new Set(past.flatMap((kv) => [kv.k, kv.v]));
      tf.dispose(prev.flatMap((kv) => [kv.k, kv.v]).filter((t) => !kept.has(t)));
      for (let r = 0; r < R; r++) nextPos[r]++;
    }
  } finally {
    if (!logits.isDisposed) logits.dispose();
    tf.dispose(past.flatMap((kv) => [kv.k, kv.v]));
  }
  const t2 = performance.now();
  const total = newTok.reduce((a, t) => a + t.length, 0);
  yield {
    result: {
      sequences: seqs,
      newTokens: newTok,
      texts: newTok.map((t) => model.decode(t, { skipSpecialTokens: o.skipSpecialTokens })),
      promptLengths: rows.map((p) => prompts.lengths[p]),
      finishReasons: finish as FinishReason[],
      timing: { prefillMs: t1 - t0, decodeMs: t2 - t1, newTokens: total, tokensPerS: total / ((t2 - t0) / 1000) },
    },
  };
}

/**
 * The processor list in HF's order (`_get_logits_processor`): repetition penalty → min length →
 * min new tokens, each only when it does something, then the user's processors. The warpers
 * (temperature → top-k → top-p) follow in samplingDistribution when sampling.
 */
function logitsProcessors(o: Resolved, rowInfo: { virtual: (row: number) => ReadonlySet<number>; promptLength: (row: number) => number }): LogitsProcessor[] {
  const list: LogitsProcessor[] = [];
  // Virtual-token placeholders are skipped: in the original speaking probes the virtual token is an
  // added vocabulary entry, so penalising it never touches a real token.
  if (o.repetitionPenalty !== 1) list.push(repetitionPenaltyProcessor(o.repetitionPenalty, rowInfo.virtual));
  if (o.minLength > 0 && o.eos.length) list.push(minLengthProcessor(o.minLength, o.eos));
  if (o.minNewTokens > 0 && o.eos.length) list.push(minNewTokensProcessor(rowInfo.promptLength, o.minNewTokens, o.eos));
  return [...list, ...o.logitsProcessor];
}

function hasStopString(text: string, stops: string[]): boolean {
  return stops.some((s) => text.includes(s));
}

function virtualPositionsPerPrompt(v: number[] | number[][] | undefined, lengths: number[]): Set<number>[] {
  if (v === undefined || v.length === 0) return lengths.map(() => new Set());
  const perPrompt = Array.isArray(v[0]) ? (v as number[][]) : lengths.map(() => v as number[]);
  if (perPrompt.length !== lengths.length) {
    throw new SpError('BAD_INPUT', `virtualPositions has ${perPrompt.length} lists for ${lengths.length} prompts`);
  }
  return perPrompt.map((list, p) => {
    for (const pos of list) assertInt('virtual position', pos, 0, lengths[p]);
    return new Set(list);
  });
}
