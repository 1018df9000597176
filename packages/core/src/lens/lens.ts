/**
 * Logit lens (nostalgebraist; the Ecco hidden-state article's "layer predictions"): every point of
 * the residual stream read through the model's own ln_f and unembedding. Unlike Ecco (which skips
 * ln_f) and early TransformerLens (which reused the final layer's layernorm scale), ln_f is applied
 * with its mean/variance recomputed from each row's own vector — the function `unembedResid` does.
 */
import { SpError, assertInt } from '../errors.js';
import type { GPT2, ModelInput, TokenBatch } from '../model/gpt2.js';
import { lensPass, lensPassAsync, tokenNamer, type LensRunOptions, type PassCell, type PassOutput, type PassRequest } from './pass.js';
import type { LensCell, LensResult } from './types.js';

export interface LogitLensOptions extends LensRunOptions {
  /** Tokens per cell (default 5). */
  topk?: number;
}

/** Single prompt (text or ids) → one result; a batch (texts or id lists) → one result per prompt. */
export function logitLens(model: GPT2, input: string | number[], opts?: LogitLensOptions): LensResult;
export function logitLens(model: GPT2, input: string[] | number[][], opts?: LogitLensOptions): LensResult[];
export function logitLens(model: GPT2, input: ModelInput, opts: LogitLensOptions = {}): LensResult | LensResult[] {
  const { batch, req } = lensRequest(model, input, opts);
  return lensResults(model, input, opts, batch, lensPass(model, batch, req));
}

/**
 * logitLens, awaiting its reads: the form for the webgpu backend, where Node reads GPU memory only
 * asynchronously (the same numbers on every backend).
 */
export async function logitLensAsync(model: GPT2, input: string | number[], opts?: LogitLensOptions): Promise<LensResult>;
export async function logitLensAsync(model: GPT2, input: string[] | number[][], opts?: LogitLensOptions): Promise<LensResult[]>;
export async function logitLensAsync(model: GPT2, input: ModelInput, opts: LogitLensOptions = {}): Promise<LensResult | LensResult[]> {
  const { batch, req } = lensRequest(model, input, opts);
  return lensResults(model, input, opts, batch, await lensPassAsync(model, batch, req));
}

function lensRequest(model: GPT2, input: ModelInput, opts: LogitLensOptions): { batch: TokenBatch; req: PassRequest } {
  const topk = opts.topk ?? 5;
  assertInt('topk', topk, 1, model.config.dVocab + 1);
  const batch = tokens(model, input);
  const cells: PassCell[] = batch.lengths.flatMap((n, b) => Array.from({ length: n }, (_, pos) => ({ b, pos })));
  return { batch, req: { ...opts, cells, topk, stats: true } };
}

function lensResults(model: GPT2, input: ModelInput, opts: LogitLensOptions, batch: TokenBatch, out: PassOutput): LensResult | LensResult[] {
  const name = tokenNamer(model);
  const { R, k } = out;
  let p = 0; // running cell index: cells are batch-major
  const results = batch.lengths.map((n, b): LensResult => {
    const first = p;
    p += n;
    const ids = batch.ids[b].slice(0, n);
    return {
      model: model.name,
      view: opts.view ?? 'layers',
      ids,
      tokens: ids.map(name),
      layers: out.rows.map((row, r) => ({
        ...row,
        positions: Array.from({ length: n }, (_, pos): LensCell => {
          const c = (first + pos) * R + r;
          const top = Array.from({ length: k }, (_, j) => {
            const id = out.topIds[c * k + j];
            return { id, token: name(id), prob: Math.exp(out.topLogp[c * k + j]) };
          });
          return { top, entropy: out.entropy[c], kl: out.kl[c], max_prob: top[0].prob };
        }),
      })),
    };
  });
  return isBatch(input) ? results : results[0];
}

/** Tokenize with the model's checks, plus a clearer message for an empty prompt. */
export function tokens(model: GPT2, input: ModelInput): TokenBatch {
  if (input === '' || (Array.isArray(input) && input.length === 0)) throw new SpError('BAD_INPUT', 'empty prompt: give at least one token');
  if (Array.isArray(input)) {
    input.forEach((x, i) => {
      if (x === '' || (Array.isArray(x) && x.length === 0)) throw new SpError('BAD_INPUT', `prompt ${i} of the batch is empty: give at least one token`);
    });
  }
  return model.toTokens(input);
}

export function isBatch(input: ModelInput): boolean {
  return Array.isArray(input) && input.length > 0 && (typeof input[0] === 'string' || Array.isArray(input[0]));
}
