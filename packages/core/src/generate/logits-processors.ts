/**
 * Hugging Face `generate` logits processing, on rows of logits in float64, in HF's order
 * (`GenerationMixin._get_logits_processor`): the processors (repetition penalty → min-length →
 * min-new-tokens EOS suppression → the user's `logitsProcessor` list), then, when sampling, the
 * warpers (temperature → top-k → top-p, fused in `samplingDistribution`) → sample.
 */
import { SpError } from '../errors.js';

/** What a processor is told besides ids and scores. */
export interface LogitsProcessorContext {
  /** Output row of each entry (prompt p's sample j is row p · numReturnSequences + j). */
  rows: number[];
  /** Index of the token being chosen (0 = the first new token). */
  step: number;
}

/**
 * A logits processor, HF's `LogitsProcessor.__call__(input_ids, scores) -> scores`. `ids[i]` is
 * entry i's sequence so far (read-only; prompt + new ids, no padding, virtual-token placeholders included) and
 * `scores[i]` its next-token logits, one float64 row of d_vocab per entry, a copy owned by the
 * processing: change rows in place (return nothing or the same array) or return new rows. Only
 * unfinished rows are passed, in blocks of at most PROCESSOR_BLOCK rows (`ctx.rows` says which),
 * so the float64 copies stay a few MB however many samples run. Set a score to -Infinity to ban a
 * token.
 */
export type LogitsProcessor = (ids: number[][], scores: Float64Array[], ctx: LogitsProcessorContext) => Float64Array[] | void;

/** Most rows one processor call sees. */
export const PROCESSOR_BLOCK = 64;

/**
 * HF RepetitionPenaltyLogitsProcessor over a whole block. `skip(row)`: positions of the row's
 * sequence the penalty does not count (virtual-token placeholders).
 */
export function repetitionPenaltyProcessor(penalty: number, skip?: (row: number) => ReadonlySet<number>): LogitsProcessor {
  return (ids, scores, { rows }) => {
    for (let i = 0; i < scores.length; i++) {
      const s = skip?.(rows[i]);
      applyRepetitionPenalty(scores[i], s && s.size ? ids[i].filter((_, p) => !s.has(p)) : ids[i], penalty);
    }
  };
}

/** HF MinLengthLogitsProcessor: EOS banned while the sequence (prompt + new, no padding) is shorter than minLength. */
export function minLengthProcessor(minLength: number, eos: readonly number[]): LogitsProcessor {
  return (ids, scores) => {
    for (let i = 0; i < scores.length; i++) if (ids[i].length < minLength) for (const e of eos) scores[i][e] = -Infinity;
  };
}

/** HF MinNewTokensLengthLogitsProcessor: EOS banned while a row has fewer than minNewTokens new tokens. */
export function minNewTokensProcessor(promptLength: (row: number) => number, minNewTokens: number, eos: readonly number[]): LogitsProcessor {
  return (ids, scores, { rows }) => {
    for (let i = 0; i < scores.length; i++) if (ids[i].length - promptLength(rows[i]) < minNewTokens) for (const e of eos) scores[i][e] = -Infinity;
  };
}

/** Run processors in order over one block; a processor that returns rows replaces the block's scores. */
export function applyProcessors(list: readonly LogitsProcessor[], ids: number[][], scores: Float64Array[], ctx: LogitsProcessorContext): Float64Array[] {
  for (const proc of list) {
    const out = proc(ids, scores, ctx);
    if (out === undefined) continue;
    if (!Array.isArray(out) || out.length !== scores.length || out.some((r) => !(r instanceof Float64Array) || r.length !== scores[0].length)) {
      throw new SpError('BAD_INPUT', `a logits processor must return nothing or ${scores.length} Float64Array rows of ${scores[0].length} scores`);
    }
    scores = out;
  }
  return scores;
}

/** HF RepetitionPenaltyLogitsProcessor: each distinct token already in the sequence, once. */
export function applyRepetitionPenalty(logits: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const l = logits[id];
    logits[id] = l < 0 ? l * penalty : l / penalty;
  }
}

export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

export interface SamplingParams {
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
}

// Module-level alias: a global `Math` lookup in a hot loop is slow under some runtimes (jest's vm).
const { exp, floor: mfloor, min } = Math;

/**
 * The distribution HF samples from, as parallel (ids, probs): softmax(logits / T) restricted to
 * the top-k (every token tied with the k-th is kept, as HF's TopKLogitsWarper does), then to the
 * smallest top set whose mass reaches top-p (HF's TopPLogitsWarper; tokens tied at the cut are all
 * kept), renormalised. With a filter active the ids come in descending probability; with none
 * (topK 0, topP 1) they stay in id order.
 *
 * Cost is O(vocab) per row: the k-th value comes from a k-entry heap; the top-p cut is located
 * with a histogram over the logit range, and only the few candidates at or above the boundary
 * bucket are sorted.
 */
export function samplingDistribution(logits: Float64Array | Float32Array, p: SamplingParams): { ids: number[]; probs: number[] } {
  const T = p.temperature;
  if (!(T > 0)) throw new SpError('BAD_INPUT', `temperature must be > 0 when sampling (got ${T})`);
  // Top-k (when on): the k-th largest logit, ties included, is the cut; the max is in the heap.
  const topK = p.topK > 0 && p.topK < logits.length;
  const heap = topK ? kthLargest(logits, p.topK) : undefined;
  let max = -Infinity;
  const scan = heap ?? logits;
  for (let i = 0; i < scan.length; i++) if (scan[i] > max) max = scan[i];
  if (max === -Infinity) throw new SpError('BAD_INPUT', 'every token is banned: nothing to sample');
  // Tokens more than 50·T below the max have probability < e^-50 relative to the top one; all
  // 50k of them together carry < 1e-17 of the mass, below float64 resolution next to 1. Dropping
  // them keeps the distribution exact in float64 and the step fast.
  const floor = max - 50 * T;
  const cut = heap ? Math.max(floor, heap[0]) : floor;
  const kept: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] >= cut) kept.push(i);
  let ids: Int32Array = Int32Array.from(kept);
  if (p.topP < 1) {
    const w = new Float64Array(ids.length);
    let z = 0;
    for (let r = 0; r < ids.length; r++) z += w[r] = exp((logits[ids[r]] - max) / T);
    ids = keepFrom(logits, ids, cutFromTop(logits, ids, floor, max, w, p.topP * z));
  }
  const out = Array.from(ids);
  if (p.topK > 0 || p.topP < 1) out.sort((a, b) => logits[b] - logits[a] || a - b);
  const w = out.map((i) => exp((logits[i] - max) / T));
  let z = 0;
  for (const x of w) z += x;
  return { ids: out, probs: w.map((x) => x / z) };
}

/** The k largest values (1 ≤ k ≤ length) as a min-heap (the k-th largest at [0]): one pass, most values rejected by one comparison. */
function kthLargest(values: Float64Array | Float32Array, k: number): Float64Array {
  const h = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    const v = values[i];
    let j = i; // sift up
    while (j > 0) {
      const parent = (j - 1) >> 1;
      if (h[parent] <= v) break;
      h[j] = h[parent];
      j = parent;
    }
    h[j] = v;
  }
  for (let i = k; i < values.length; i++) {
    const v = values[i];
    if (!(v > h[0])) continue;
    let j = 0; // replace the minimum, sift down
    for (;;) {
      let c = 2 * j + 1;
      if (c >= k) break;
      if (c + 1 < k && h[c + 1] < h[c]) c++;
      if (h[c] >= v) break;
      h[j] = h[c];
      j = c;
    }
    h[j] = v;
  }
  return h;
}

/** The ids whose logit is ≥ cut (order kept). */
function keepFrom(logits: Float64Array | Float32Array, ids: Int32Array, cut: number): Int32Array {
  let n = 0;
  const out = new Int32Array(ids.length);
  for (let r = 0; r < ids.length; r++) if (logits[ids[r]] >= cut) out[n++] = ids[r];
  return out.subarray(0, n);
}

const BUCKETS = 4096;

/**
 * The largest value c such that the tokens with logit ≥ c carry at least `need`, summing their
 * weights (`w[r]` for ids[r]) from the top down (the top-p cut). A histogram over [lo, hi] finds the boundary bucket; only tokens from it upwards are
 * sorted.
 */
function cutFromTop(logits: Float64Array | Float32Array, ids: Int32Array, lo: number, hi: number, w: Float64Array, need: number): number {
  const scale = hi > lo ? BUCKETS / (hi - lo) : 0;
  const bucket = new Int32Array(ids.length);
  const mass = new Float64Array(BUCKETS);
  for (let r = 0; r < ids.length; r++) {
    const b = min(BUCKETS - 1, mfloor((logits[ids[r]] - lo) * scale));
    bucket[r] = b;
    mass[b] += w[r];
  }
  let acc = 0;
  let b = BUCKETS - 1;
  for (; b > 0; b--) {
    acc += mass[b];
    if (acc >= need) break;
  }
  const top: number[] = []; // positions r in ids
  for (let r = 0; r < ids.length; r++) if (bucket[r] >= b) top.push(r);
  top.sort((x, y) => logits[ids[y]] - logits[ids[x]]);
  let cum = 0;
  for (const r of top) {
    cum += w[r];
    if (cum >= need) return logits[ids[r]];
  }
  return logits[ids[top[top.length - 1]]]; // rounding left the sum a hair short: keep them all
}

/** Inverse-CDF draw with a uniform u in [0, 1). */
export function sampleFrom(dist: { ids: number[]; probs: number[] }, u: number): number {
  let cum = 0;
  for (let r = 0; r < dist.ids.length; r++) {
    cum += dist.probs[r];
    if (u < cum) return dist.ids[r];
  }
  return dist.ids[dist.ids.length - 1];
}
