/**
 * Autoregressive generation with a KV cache and Hugging Face `generate` semantics.
 *
 * Prompts are left-padded into one batch (HF's decoder-only convention), each prompt is
 * prefilled once and its KV cache tiled for `numReturnSequences` samples, then one token per
 * step for all rows. Embedding overrides / injections act on the prompt positions during the
 * prefill; the cache carries their effect into every later step.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import type { GPT2Config } from '../model/config.js';
import { tf, tidy } from '../backend/index.js';
import { SpError, assertInt } from '../errors.js';
import type { FwdHook } from '../hooks/index.js';
import type { KVCache } from '../model/forward.js';
import type { EmbedOverride, GPT2, Injection, TokenBatch } from '../model/gpt2.js';
import { applyRepetitionPenalty, argmax, sampleFrom, samplingDistribution } from './logits-processors.js';
import { assertSeed, randomSeed, seededRandom } from './rng.js';

export interface GenerateOptions {
  /** Default 20, as HF. */
  maxNewTokens?: number;
  /** Sample (true) or greedy (false, default). */
  doSample?: boolean;
  /** Default 1. Must be > 0 when sampling. */
  temperature?: number;
  /** Default 50 (HF's default), 0 disables. */
  topK?: number;
  /** Default 1 (disabled). */
  topP?: number;
  /** HF rule, default 1 (off). */
  repetitionPenalty?: number;
  /** EOS is suppressed until the whole sequence (prompt + new) has this many tokens. */
  minLength?: number;
  /** EOS is suppressed until this many new tokens. */
  minNewTokens?: number;
  /** Stop a sequence at this token (included in the output). Default: the tokenizer's EOS; null: never. */
  eosTokenId?: number | number[] | null;
  /** Stop a sequence once its new text contains one of these (the tokens that complete it are kept). */
  stopStrings?: string[];
  /** Samples per prompt (default 1). */
  numReturnSequences?: number;
  /**
   * Drop special tokens (`<|endoftext|>`) from the decoded `texts` and token events, as HF's
   * `tokenizer.decode(..., skip_special_tokens=True)`. Default false, HF's default. Ids are unchanged:
   * `sequences` and `newTokens` keep the EOS id.
   */
  skipSpecialTokens?: boolean;
  /** Makes sampling reproducible (an integer 0 … 2³² − 1); sample j of a prompt is the same at any batch size. */
  seed?: number;
  /**
   * Bytes the batch's KV cache and logits may take (generationMemoryBytes; default 512 MiB). One
   * prompt's samples run in chunks that fit (the same results: each sample has its own random
   * stream and the rows do not interact); several prompts that do not fit are refused.
   */
  memoryBudget?: number;
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
}

export interface GenerateResult {
  /** Prompt + new ids per output row (no padding). */
  sequences: number[][];
  /** New ids only. */
  newTokens: number[][];
  /** Decoded new text per row (without special tokens with skipSpecialTokens). */
  texts: string[];
  promptLengths: number[];
  timing: { prefillMs: number; decodeMs: number; newTokens: number; tokensPerS: number };
}

/** Default GenerateOptions.memoryBudget. */
export const GENERATION_MEMORY_BUDGET = 2 ** 29;

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

interface Resolved extends Required<Omit<GenerateOptions, 'eosTokenId' | 'seed' | 'embeds' | 'inject' | 'fwdHooks' | 'onToken' | 'stopStrings' | 'virtualPositions'>> {
  eos: number[];
  stopStrings: string[];
  seed: number;
}

function resolve(model: GPT2, o: GenerateOptions): Resolved {
  const r: Resolved = {
    maxNewTokens: o.maxNewTokens ?? 20,
    doSample: o.doSample ?? false,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 50,
    topP: o.topP ?? 1,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    minLength: o.minLength ?? 0,
    minNewTokens: o.minNewTokens ?? 0,
    numReturnSequences: o.numReturnSequences ?? 1,
    skipSpecialTokens: o.skipSpecialTokens ?? false,
    eos: o.eosTokenId === null ? [] : Array.isArray(o.eosTokenId) ? o.eosTokenId : [o.eosTokenId ?? model.tokenizer.eosTokenId],
    stopStrings: o.stopStrings ?? [],
    seed: o.seed ?? randomSeed(),
    memoryBudget: o.memoryBudget ?? GENERATION_MEMORY_BUDGET,
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
  const padded = real.map((r, p) => [...Array(offsets[p]).fill(model.tokenizer.eosTokenId), ...r]);
  const keyMask: number[][] = real.map((_, p) => Array.from({ length: L }, (_, j) => (j >= offsets[p] ? 1 : 0)));
  const shift = <T extends EmbedOverride>(list: T[] | undefined): T[] =>
    (list ?? []).flatMap((e) => {
      const rows = e.batch === undefined ? real.map((_, p) => p) : [e.batch];
      return rows.map((p) => {
        assertInt('override position', e.pos, 0, prompts.lengths[p] ?? 0);
        return { ...e, batch: p, pos: e.pos + offsets[p] };
      });
    });
  const patches = model.patches(shift(opts.embeds), shift(opts.inject as Injection[] | undefined), { ids: padded, mask: keyMask, lengths: padded.map(() => L) });

  const rows = Array.from({ length: R }, (_, r) => Math.floor(r / n)); // output row -> prompt
  const seqs = rows.map((p) => [...real[p]]);
  // Ids the repetition penalty counts: the row's sequence minus virtual-token placeholders.
  const virt = virtualPositionsPerPrompt(opts.virtualPositions, prompts.lengths);
  const seen = rows.map((p) => real[p].filter((_, i) => !virt[p].has(i)));
  const newTok: number[][] = rows.map(() => []);
  const done = rows.map(() => o.maxNewTokens === 0);
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
      fwdHooks: opts.fwdHooks,
      logits: 'last',
    });
    const idx = tf.tensor1d(rows, 'int32');
    const tile = <T extends tfc.Tensor>(t: T): T => (n > 1 ? (tf.gather(t, idx) as T) : t);
    // The prefill logits stay [P, 1, V]: every sample of a prompt reads its prompt's row (tiling
    // them would copy the vocabulary-wide row n times for nothing).
    return { logits: out.logits!, past: out.present.map((kv) => ({ k: tile(kv.k), v: tile(kv.v) })) as KVCache };
  });
  const t1 = performance.now();

  try {
    for (let step = 0; step < o.maxNewTokens; step++) {
      const rowsLogits = (await logits.data()) as Float32Array; // [R, 1, V]; [P, 1, V] at step 0
      logits.dispose();
      const V = model.config.dVocab;
      const src = (r: number) => (step === 0 ? rows[r] : r); // row of rowsLogits for output row r
      const chosen: number[] = [];
      for (let r = 0; r < R; r++) {
        if (done[r]) {
          chosen.push(model.tokenizer.eosTokenId); // finished rows are fed padding
          continue;
        }
        const row = Float64Array.from(rowsLogits.subarray(src(r) * V, (src(r) + 1) * V));
        applyRepetitionPenalty(row, seen[r], o.repetitionPenalty);
        if (newTok[r].length < o.minNewTokens || seqs[r].length < o.minLength) for (const e of o.eos) row[e] = -Infinity;
        const id = o.doSample ? sampleFrom(samplingDistribution(row, o), rngs[r]()) : argmax(row);
        chosen.push(id);
        seqs[r].push(id);
        seen[r].push(id);
        newTok[r].push(id);
        const text = model.decode([id], { skipSpecialTokens: o.skipSpecialTokens });
        if (o.eos.includes(id) || newTok[r].length >= o.maxNewTokens) done[r] = true;
        else if (o.stopStrings.length && o.stopStrings.some((s) => model.decode(newTok[r]).includes(s))) done[r] = true;
        yield { sequence: r, step, tokenId: id, text, done: done[r] } satisfies TokenEvent;
      }
      if (done.every(Boolean)) break;
      // ---- one decode step for every row ----
      for (let r = 0; r < R; r++) mask[r].push(1);
      const prev = past;
      ({ logits, past } = tidy(() => {
        const out = model.step(tf.tensor2d(chosen, [R, 1], 'int32'), {
          past: prev,
          positionIds: tf.tensor2d(nextPos, [R, 1], 'int32'),
          keyMask: offsets.some((x) => x > 0) ? mask : undefined,
          fwdHooks: opts.fwdHooks,
          logits: 'last',
        });
        return { logits: out.logits!, past: out.present };
      }));
      tf.dispose(prev as unknown as tfc.Tensor[]);
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
      timing: { prefillMs: t1 - t0, decodeMs: t2 - t1, newTokens: total, tokensPerS: total / ((t2 - t0) / 1000) },
    },
  };
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
