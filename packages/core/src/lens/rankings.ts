/**
 * Ecco's `rankings` and `rankings_watch`: where, layer by layer, a token stands in the lens
 * distribution (rank 1 = most probable). Same single batched pass as the logit lens.
 */
import { tf, tidy } from '../backend/index.js';
import { SpError, assertInt } from '../errors.js';
import type { GPT2, ModelInput } from '../model/gpt2.js';
import { isBatch, tokens } from './lens.js';
import { lensPassSteps, resolvePosition, tokenNamer, type LensRunOptions, type PassCell } from './pass.js';
import { readSteps, readStepsAsync, type ReadSteps } from '../backend/reads.js';
import type { RankedPosition, RankingsResult, WatchResult } from './types.js';

export interface RankingsOptions extends LensRunOptions {
  /**
   * Length of the prompt when the rest of the sequence was generated: only the generated tokens are
   * ranked (positions promptLength−1 … end−2, as in Ecco). Default: every next token of the sequence.
   */
  promptLength?: number;
  /** Also rank the model's own top-1 prediction after the last position (default true). */
  predictLast?: boolean;
}

/** Rank of each next token (and of the model's prediction after the last one) at every row. */
export function rankings(model: GPT2, input: string | number[], opts?: RankingsOptions): RankingsResult;
export function rankings(model: GPT2, input: string[] | number[][], opts?: RankingsOptions): RankingsResult[];
export function rankings(model: GPT2, input: ModelInput, opts: RankingsOptions = {}): RankingsResult | RankingsResult[] {
  return readSteps(rankingsSteps(model, input, opts));
}

/** rankings awaiting its reads: the form for the webgpu backend (the same numbers on every backend). */
export function rankingsAsync(model: GPT2, input: string | number[], opts?: RankingsOptions): Promise<RankingsResult>;
export function rankingsAsync(model: GPT2, input: string[] | number[][], opts?: RankingsOptions): Promise<RankingsResult[]>;
export function rankingsAsync(model: GPT2, input: ModelInput, opts: RankingsOptions = {}): Promise<RankingsResult | RankingsResult[]> {
  return readStepsAsync(rankingsSteps(model, input, opts));
}

function* rankingsSteps(model: GPT2, input: ModelInput, opts: RankingsOptions): ReadSteps<RankingsResult | RankingsResult[]> {
  const batch = tokens(model, input);
  const predictLast = opts.predictLast ?? true;
  const last = predictLast ? yield* lastPredictions(model, input, batch.lengths, opts) : [];
  const cells: PassCell[] = [];
  const spans = batch.lengths.map((n, b) => {
    const pl = opts.promptLength ?? 1;
    assertInt('promptLength', pl, 1, n + 1);
    const from = cells.length;
    for (let pos = pl - 1; pos < n - 1; pos++) cells.push({ b, pos, targets: [batch.ids[b][pos + 1]] });
    if (predictLast) cells.push({ b, pos: n - 1, targets: [last[b]] });
    return { from, to: cells.length };
  });
  if (cells.length === 0) throw new SpError('BAD_INPUT', 'nothing to rank: a one-token prompt has no next token (keep predictLast on)');
  const out = yield* lensPassSteps(model, batch, { ...opts, cells, topk: 0, stats: false });
  const name = tokenNamer(model);
  const R = out.R;
  const results = batch.lengths.map((n, b): RankingsResult => {
    const ids = batch.ids[b].slice(0, n);
    const positions: RankedPosition[] = [];
    for (let c = spans[b].from; c < spans[b].to; c++) {
      const id = cells[c].targets![0];
      positions.push({
        pos: cells[c].pos,
        target: { id, token: name(id) },
        predicted: predictLast && c === spans[b].to - 1,
        ranks: out.rows.map((_, r) => out.ranks[c * R + r]),
        probs: out.rows.map((_, r) => Math.exp(out.targetLogp[c * R + r])),
      });
    }
    return { model: model.name, view: opts.view ?? 'layers', ids, tokens: ids.map(name), layers: out.rows, prompt_length: opts.promptLength ?? n, positions };
  });
  return isBatch(input) ? results : results[0];
}

/** The model's greedy next token after each prompt's last position (with the same overrides). */
function* lastPredictions(model: GPT2, input: ModelInput, lengths: number[], opts: LensRunOptions): ReadSteps<number[]> {
  const ragged = lengths.some((n) => n !== lengths[0]);
  const best = tidy(() => {
    const logits = model.forward(input, { embeds: opts.embeds, inject: opts.inject, fwdHooks: opts.fwdHooks, interventions: opts.interventions, logits: ragged ? 'all' : 'last' });
    const s = logits.shape[1];
    const rows = tf.concat(lengths.map((n, b) => tf.slice(logits, [b, ragged ? n - 1 : s - 1, 0], [1, 1, -1])), 0); // [b, 1, V]
    return tf.argMax(rows, -1);
  });
  try {
    return Array.from(yield best);
  } finally {
    best.dispose();
  }
}

export interface WatchOptions extends LensRunOptions {
  /**
   * Position whose prediction is watched: sp numbers the hidden state (0 = first token; default
   * -1: the last; negative counts from the end).
   */
  position?: number;
  /**
   * The position in Ecco's numbering instead, which names the token being predicted: Ecco's
   * `rankings_watch(position=p)` reads hidden state p − 1, so `eccoPosition: p` = `position: p − 1`,
   * 1 ≤ p ≤ the prompt's length (p = length: the token after the prompt).
   */
  eccoPosition?: number;
}

/** The watched hidden state of an n-token prompt, from `position` (sp) or `eccoPosition` (Ecco). */
function watchPosition(opts: WatchOptions, n: number): number {
  if (opts.eccoPosition === undefined) return resolvePosition(opts.position ?? -1, n);
  if (opts.position !== undefined) throw new SpError('BAD_INPUT', 'give position or eccoPosition, not both');
  const p = opts.eccoPosition;
  if (!Number.isInteger(p) || p < 1 || p > n) {
    throw new SpError('OUT_OF_RANGE', `Ecco position ${p} is out of range for a ${n}-token prompt (use 1..${n}: it names the predicted token and reads hidden state position − 1)`);
  }
  return p - 1;
}

/**
 * Compare candidate next tokens at one position across rows (Ecco's rankings_watch), e.g.
 * `[' is', ' are']` after "The keys to the cabinet". Each watch token must be exactly one token.
 * `position` numbers hidden states; Ecco's `position=p` is `{ eccoPosition: p }` (= position p − 1).
 */
export function rankingsWatch(model: GPT2, input: string | number[], watch: Array<string | number>, opts?: WatchOptions): WatchResult;
export function rankingsWatch(model: GPT2, input: string[] | number[][], watch: Array<string | number>, opts?: WatchOptions): WatchResult[];
export function rankingsWatch(model: GPT2, input: ModelInput, watch: Array<string | number>, opts: WatchOptions = {}): WatchResult | WatchResult[] {
  return readSteps(watchSteps(model, input, watch, opts));
}

/** rankingsWatch awaiting its reads: the form for the webgpu backend (the same numbers on every backend). */
export function rankingsWatchAsync(model: GPT2, input: string | number[], watch: Array<string | number>, opts?: WatchOptions): Promise<WatchResult>;
export function rankingsWatchAsync(model: GPT2, input: string[] | number[][], watch: Array<string | number>, opts?: WatchOptions): Promise<WatchResult[]>;
export function rankingsWatchAsync(model: GPT2, input: ModelInput, watch: Array<string | number>, opts: WatchOptions = {}): Promise<WatchResult | WatchResult[]> {
  return readStepsAsync(watchSteps(model, input, watch, opts));
}

function* watchSteps(model: GPT2, input: ModelInput, watch: Array<string | number>, opts: WatchOptions): ReadSteps<WatchResult | WatchResult[]> {
  const watchIds = watchTokenIds(model, watch);
  const batch = tokens(model, input);
  const cells: PassCell[] = batch.lengths.map((n, b) => ({ b, pos: watchPosition(opts, n), targets: watchIds }));
  const out = yield* lensPassSteps(model, batch, { ...opts, cells, topk: 0, stats: false });
  const name = tokenNamer(model);
  const { R, W } = out;
  const results = batch.lengths.map((n, b): WatchResult => {
    const ids = batch.ids[b].slice(0, n);
    return {
      model: model.name,
      view: opts.view ?? 'layers',
      ids,
      tokens: ids.map(name),
      position: cells[b].pos,
      watch: watchIds.map((id) => ({ id, token: name(id) })),
      layers: out.rows.map((row, r) => ({
        ...row,
        ranks: watchIds.map((_, w) => out.ranks[(b * R + r) * W + w]),
        probs: watchIds.map((_, w) => Math.exp(out.targetLogp[(b * R + r) * W + w])),
      })),
    };
  });
  return isBatch(input) ? results : results[0];
}

/** Watch tokens as ids: a string must be exactly one token (the error says how it tokenizes). */
export function watchTokenIds(model: GPT2, watch: Array<string | number>): number[] {
  if (watch.length === 0) throw new SpError('BAD_INPUT', 'no watch tokens: give at least one, e.g. [" is", " are"]');
  return watch.map((w) => {
    if (typeof w === 'number') {
      assertInt('watch token id', w, 0, model.config.dVocab);
      return w;
    }
    if (w === '') throw new SpError('BAD_INPUT', 'watch token "" is empty');
    const id = model.tokenId(w);
    if (id !== undefined) return id;
    const parts = model.encode(w).map((i) => `${JSON.stringify(model.tokenString(i))} (${i})`);
    throw new SpError('BAD_INPUT', `watch token ${JSON.stringify(w)} is not a single token: it tokenizes as ${parts.join(' + ')}`);
  });
}
