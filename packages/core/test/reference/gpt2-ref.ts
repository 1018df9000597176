/**
 * A deliberately naive float64 reference GPT-2, written with plain loops.
 *
 * It is independent of the library (nothing from packages/core/src, no tfjs) and exists only so
 * tests can check the tfjs implementation against it. Readability beats speed here, but a forward
 * pass over vocab 50257 with d_model <= 64 and a few layers stays well under a second.
 *
 * All arithmetic is float64; weights may be given as Float32Array or Float64Array and are read
 * element by element (a float32 value widens exactly to float64).
 */

export interface RefConfig {
  nLayer: number;
  nHead: number;
  dModel: number;
  nCtx: number;
  vocabSize: number;
  eps: number;
}

/**
 * Canonical Hugging Face GPT-2 tensor names without the `transformer.` prefix, Conv1D layout
 * (y = x @ W + b, W stored [in, out] row-major):
 *  wte.weight [vocab,d], wpe.weight [nCtx,d],
 *  h.{i}.ln_1.weight/bias [d], h.{i}.attn.c_attn.weight [d,3d] (columns q|k|v) + bias [3d],
 *  h.{i}.attn.c_proj.weight [d,d] + bias [d], h.{i}.ln_2.weight/bias [d],
 *  h.{i}.mlp.c_fc.weight [d,4d] + bias [4d], h.{i}.mlp.c_proj.weight [4d,d] + bias [d],
 *  ln_f.weight/bias [d].
 */
export interface RefWeights {
  config: RefConfig;
  get(name: string): Float64Array | Float32Array;
}

export interface RefOptions {
  /** Replaces the TOKEN embedding at `pos` (the position embedding is still added). */
  embeds?: Array<{ pos: number; vector: ArrayLike<number> }>;
  /** Replaces blocks.{layer}.hook_resid_pre at `pos` (the whole residual vector) before block `layer` runs. */
  residPre?: Array<{ layer: number; pos: number; vector: ArrayLike<number> }>;
  /**
   * Replaces a LayerNorm hook (`*.hook_scale` [seq, 1] or `*.hook_normalized` [seq, d]) by what the
   * function returns, as a TransformerLens hook would; the cache holds the replaced values.
   */
  lnHooks?: Record<string, (values: Float64Array, shape: number[]) => ArrayLike<number>>;
  /**
   * Neuron interventions: blocks.{layer}.mlp.hook_post[:, index] set to `value` or multiplied by
   * `scale` at every position, in list order (LM-Debugger's turning a value vector off / up).
   */
  neurons?: Array<{ layer: number; index: number; value?: number; scale?: number }>;
  /**
   * Replaces `blocks.{i}.attn.hook_result` ([seq, nHead, d]: each head's z_h · W_O rows of head h,
   * without b_O) by what the function returns; attn_out is then Σ_h result + b_O (TransformerLens).
   */
  resultHooks?: Record<string, (values: Float64Array, shape: number[]) => ArrayLike<number>>;
  /**
   * Replaces `blocks.{i}.attn.hook_z` [seq, nHead, dHead], `blocks.{i}.hook_attn_out` or
   * `blocks.{i}.hook_mlp_out` [seq, d] by what the function returns (activation patching).
   */
  actHooks?: Record<string, (values: Float64Array, shape: number[]) => ArrayLike<number>>;
}

export interface RefActivation {
  shape: number[];
  data: Float64Array;
}

export interface RefResult {
  /** [seq][vocab] */
  logits: number[][];
  /** TransformerLens-named activations, shapes without the batch dimension. */
  cache: Map<string, RefActivation>;
}

type Vec = ArrayLike<number>;

// Module-level aliases: looking up the global `Math` inside jest's vm context is slow in hot loops.
const { sqrt, tanh, exp, log, PI } = Math;

// ---------------------------------------------------------------------------------------------
// small helpers

function weight(w: RefWeights, name: string, expectedLength: number): Vec {
  const t = w.get(name);
  if (!t) throw new Error(`reference GPT-2: missing tensor ${name}`);
  if (t.length !== expectedLength) {
    throw new Error(`reference GPT-2: tensor ${name} has ${t.length} values, expected ${expectedLength}`);
  }
  return t;
}

function checkVector(what: string, v: ArrayLike<number>, d: number): void {
  if (v.length !== d) throw new Error(`reference GPT-2: ${what} has length ${v.length}, expected ${d}`);
  for (let i = 0; i < d; i++) {
    if (!Number.isFinite(v[i])) throw new Error(`reference GPT-2: ${what}[${i}] is not finite`);
  }
}

/** LayerNorm over the last dimension of x [rows, d]: (x - mean) / sqrt(var + eps) * w + b, biased variance. */
function layerNorm(x: Float64Array, rows: number, d: number, w: Vec, b: Vec, eps: number): Float64Array {
  const out = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let variance = 0;
    for (let i = 0; i < d; i++) {
      const c = x[r * d + i] - mean;
      variance += c * c;
    }
    variance /= d;
    const inv = 1 / sqrt(variance + eps);
    for (let i = 0; i < d; i++) out[r * d + i] = (x[r * d + i] - mean) * inv * w[i] + b[i];
  }
  return out;
}

/**
 * TransformerLens' LayerNorm, step by step: centre, scale = sqrt(mean(xc²) + eps) [rows, 1] (hook
 * point), normalized = xc / scale [rows, d] (hook point, before the weight and bias), out =
 * normalized * w + b. `at(name, shape, values)` may replace either hook's values.
 */
function layerNormHooked(
  name: string,
  x: Float64Array,
  rows: number,
  d: number,
  w: Vec,
  b: Vec,
  eps: number,
  at: (name: string, shape: number[], values: Float64Array) => Float64Array,
): Float64Array {
  const centered = new Float64Array(rows * d);
  const scale0 = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let sq = 0;
    for (let i = 0; i < d; i++) {
      const c = x[r * d + i] - mean;
      centered[r * d + i] = c;
      sq += c * c;
    }
    scale0[r] = sqrt(sq / d + eps);
  }
  const scale = at(`${name}.hook_scale`, [rows, 1], scale0);
  const normalized0 = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) normalized0[r * d + i] = centered[r * d + i] / scale[r];
  const normalized = at(`${name}.hook_normalized`, [rows, d], normalized0);
  const out = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) out[r * d + i] = normalized[r * d + i] * w[i] + b[i];
  return out;
}

/** y = x @ W + b for x [rows, inDim], W [inDim, outDim] row-major, b [outDim]. */
function linear(x: Float64Array, rows: number, inDim: number, W: Vec, outDim: number, b: Vec): Float64Array {
  const out = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b[o];
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * W[i * outDim + o];
      out[r * outDim + o] = s;
    }
  }
  return out;
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/** gelu_new (tanh approximation), as used by GPT-2. */
function geluNew(x: number): number {
  return 0.5 * x * (1 + tanh(sqrt(2 / PI) * (x + 0.044715 * x * x * x)));
}

/** logits [rows, vocab] = x [rows, d] @ wte^T (tied unembedding, no bias). */
function unembed(x: Float64Array, rows: number, d: number, wte: Vec, vocab: number): Float64Array {
  const out = new Float64Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * d, (r + 1) * d);
    for (let t = 0; t < vocab; t++) {
      const base = t * d;
      let s = 0;
      for (let i = 0; i < d; i++) s += row[i] * wte[base + i];
      out[r * vocab + t] = s;
    }
  }
  return out;
}

function rowsOf(data: Float64Array, rows: number, cols: number): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < rows; r++) out.push(Array.from(data.subarray(r * cols, (r + 1) * cols)));
  return out;
}

function validateConfig(c: RefConfig): void {
  for (const k of ['nLayer', 'nHead', 'dModel', 'nCtx', 'vocabSize'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new Error(`reference GPT-2: config.${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.dModel % c.nHead !== 0) throw new Error(`reference GPT-2: dModel ${c.dModel} not divisible by nHead ${c.nHead}`);
  if (!(c.eps > 0)) throw new Error(`reference GPT-2: eps must be > 0, got ${c.eps}`);
}

function validateIds(c: RefConfig, ids: number[]): void {
  if (ids.length === 0) throw new Error('reference GPT-2: ids must not be empty');
  if (ids.length > c.nCtx) throw new Error(`reference GPT-2: ${ids.length} tokens exceed nCtx ${c.nCtx}`);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`reference GPT-2: token id ${id} out of range [0, ${c.vocabSize})`);
  }
}

// ---------------------------------------------------------------------------------------------
// forward

export function refForward(w: RefWeights, ids: number[], opts: RefOptions = {}): RefResult {
  const c = w.config;
  validateConfig(c);
  validateIds(c, ids);
  const seq = ids.length;
  const d = c.dModel;
  const nHead = c.nHead;
  const dHead = d / nHead;
  const dMlp = 4 * d;
  const vocab = c.vocabSize;
  const cache = new Map<string, RefActivation>();
  const put = (name: string, shape: number[], data: Float64Array): void => {
    cache.set(name, { shape, data });
  };
  const usedLnHooks = new Set<string>();
  const usedActHooks = new Set<string>();
  /** An actHooks hook point: apply any replacement, cache, pass on. */
  const actHook = (name: string, shape: number[], values: Float64Array): Float64Array => {
    const fn = opts.actHooks?.[name];
    let out = values;
    if (fn) {
      usedActHooks.add(name);
      const r = fn(Float64Array.from(values), shape);
      if (r.length !== values.length) throw new Error(`reference GPT-2: actHooks[${name}] returned ${r.length} values, expected ${values.length}`);
      out = Float64Array.from(r);
    }
    put(name, shape, out);
    return out;
  };
  const usedResultHooks = new Set<string>();
  /** A LayerNorm hook point: apply any lnHooks replacement, cache, pass on. */
  const lnHook = (name: string, shape: number[], values: Float64Array): Float64Array => {
    const fn = opts.lnHooks?.[name];
    let out = values;
    if (fn) {
      usedLnHooks.add(name);
      const r = fn(Float64Array.from(values), shape);
      if (r.length !== values.length) throw new Error(`reference GPT-2: lnHooks[${name}] returned ${r.length} values, expected ${values.length}`);
      out = Float64Array.from(r);
    }
    put(name, shape, out);
    return out;
  };

  for (const e of opts.embeds ?? []) {
    if (!Number.isInteger(e.pos) || e.pos < 0 || e.pos >= seq) throw new Error(`reference GPT-2: embeds pos ${e.pos} out of range [0, ${seq})`);
    checkVector(`embeds vector at pos ${e.pos}`, e.vector, d);
  }
  for (const r of opts.residPre ?? []) {
    if (!Number.isInteger(r.layer) || r.layer < 0 || r.layer >= c.nLayer) throw new Error(`reference GPT-2: residPre layer ${r.layer} out of range [0, ${c.nLayer})`);
    if (!Number.isInteger(r.pos) || r.pos < 0 || r.pos >= seq) throw new Error(`reference GPT-2: residPre pos ${r.pos} out of range [0, ${seq})`);
    checkVector(`residPre vector at layer ${r.layer} pos ${r.pos}`, r.vector, d);
  }

  // embeddings
  const wte = weight(w, 'wte.weight', vocab * d);
  const wpe = weight(w, 'wpe.weight', c.nCtx * d);
  const embed = new Float64Array(seq * d);
  const posEmbed = new Float64Array(seq * d);
  for (let p = 0; p < seq; p++) {
    for (let i = 0; i < d; i++) {
      embed[p * d + i] = wte[ids[p] * d + i];
      posEmbed[p * d + i] = wpe[p * d + i];
    }
  }
  for (const e of opts.embeds ?? []) {
    for (let i = 0; i < d; i++) embed[e.pos * d + i] = e.vector[i];
  }
  put('hook_embed', [seq, d], embed);
  put('hook_pos_embed', [seq, d], posEmbed);

  let x = add(embed, posEmbed);

  for (let l = 0; l < c.nLayer; l++) {
    const pre = `h.${l}.`;
    const hook = `blocks.${l}.`;

    // resid_pre (with overrides)
    x = Float64Array.from(x);
    for (const r of opts.residPre ?? []) {
      if (r.layer !== l) continue;
      for (let i = 0; i < d; i++) x[r.pos * d + i] = r.vector[i];
    }
    put(`${hook}hook_resid_pre`, [seq, d], x);

    // attention
    const a = layerNormHooked(`${hook}ln1`, x, seq, d, weight(w, `${pre}ln_1.weight`, d), weight(w, `${pre}ln_1.bias`, d), c.eps, lnHook);

    const qkv = linear(a, seq, d, weight(w, `${pre}attn.c_attn.weight`, d * 3 * d), 3 * d, weight(w, `${pre}attn.c_attn.bias`, 3 * d));
    const q = new Float64Array(seq * d); // [seq, nHead, dHead]
    const k = new Float64Array(seq * d);
    const v = new Float64Array(seq * d);
    for (let p = 0; p < seq; p++) {
      for (let i = 0; i < d; i++) {
        // column i of the q block is head floor(i / dHead), component i % dHead: same flat index in [seq, nHead, dHead]
        q[p * d + i] = qkv[p * 3 * d + i];
        k[p * d + i] = qkv[p * 3 * d + d + i];
        v[p * d + i] = qkv[p * 3 * d + 2 * d + i];
      }
    }
    put(`${hook}attn.hook_q`, [seq, nHead, dHead], q);
    put(`${hook}attn.hook_k`, [seq, nHead, dHead], k);
    put(`${hook}attn.hook_v`, [seq, nHead, dHead], v);

    const scale = sqrt(dHead);
    const scores = new Float64Array(nHead * seq * seq); // [nHead, query, key]
    const pattern = new Float64Array(nHead * seq * seq);
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < seq; i++) {
        const row = (h * seq + i) * seq;
        let max = -Infinity;
        for (let j = 0; j < seq; j++) {
          if (j > i) {
            scores[row + j] = -Infinity;
            continue;
          }
          let s = 0;
          for (let e = 0; e < dHead; e++) s += q[(i * nHead + h) * dHead + e] * k[(j * nHead + h) * dHead + e];
          scores[row + j] = s / scale;
          if (scores[row + j] > max) max = scores[row + j];
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          pattern[row + j] = exp(scores[row + j] - max);
          sum += pattern[row + j];
        }
        for (let j = 0; j <= i; j++) pattern[row + j] /= sum;
        // masked entries stay 0
      }
    }
    put(`${hook}attn.hook_attn_scores`, [nHead, seq, seq], scores);
    put(`${hook}attn.hook_pattern`, [nHead, seq, seq], pattern);

    let z: Float64Array = new Float64Array(seq * d); // [seq, nHead, dHead]
    for (let i = 0; i < seq; i++) {
      for (let h = 0; h < nHead; h++) {
        for (let e = 0; e < dHead; e++) {
          let s = 0;
          for (let j = 0; j <= i; j++) s += pattern[(h * seq + i) * seq + j] * v[(j * nHead + h) * dHead + e];
          z[(i * nHead + h) * dHead + e] = s;
        }
      }
    }
    z = actHook(`${hook}attn.hook_z`, [seq, nHead, dHead], z);

    // hook_result [seq, nHead, d]: head h's z times rows h*dHead … (h+1)*dHead-1 of c_proj.weight, no bias
    const wO = weight(w, `${pre}attn.c_proj.weight`, d * d);
    const bO = weight(w, `${pre}attn.c_proj.bias`, d);
    let result = new Float64Array(seq * nHead * d);
    for (let p = 0; p < seq; p++) {
      for (let h = 0; h < nHead; h++) {
        for (let o = 0; o < d; o++) {
          let s = 0;
          for (let e = 0; e < dHead; e++) s += z[(p * nHead + h) * dHead + e] * wO[(h * dHead + e) * d + o];
          result[(p * nHead + h) * d + o] = s;
        }
      }
    }
    const resultFn = opts.resultHooks?.[`${hook}attn.hook_result`];
    if (resultFn) {
      usedResultHooks.add(`${hook}attn.hook_result`);
      const r = resultFn(Float64Array.from(result), [seq, nHead, d]);
      if (r.length !== result.length) throw new Error(`reference GPT-2: resultHooks[${hook}attn.hook_result] returned ${r.length} values, expected ${result.length}`);
      result = Float64Array.from(r);
    }
    put(`${hook}attn.hook_result`, [seq, nHead, d], result);

    // z [seq, nHead, dHead] flattened is exactly concat(heads) [seq, d]
    let attnOut = linear(z, seq, d, wO, d, bO);
    if (resultFn) {
      attnOut = new Float64Array(seq * d);
      for (let p = 0; p < seq; p++) {
        for (let o = 0; o < d; o++) {
          let s = bO[o];
          for (let h = 0; h < nHead; h++) s += result[(p * nHead + h) * d + o];
          attnOut[p * d + o] = s;
        }
      }
    }
    attnOut = actHook(`${hook}hook_attn_out`, [seq, d], attnOut);

    const mid = add(x, attnOut);
    put(`${hook}hook_resid_mid`, [seq, d], mid);

    // MLP
    const m = layerNormHooked(`${hook}ln2`, mid, seq, d, weight(w, `${pre}ln_2.weight`, d), weight(w, `${pre}ln_2.bias`, d), c.eps, lnHook);

    const mlpPre = linear(m, seq, d, weight(w, `${pre}mlp.c_fc.weight`, d * dMlp), dMlp, weight(w, `${pre}mlp.c_fc.bias`, dMlp));
    put(`${hook}mlp.hook_pre`, [seq, dMlp], mlpPre);

    const mlpPost = new Float64Array(mlpPre.length);
    for (let i = 0; i < mlpPre.length; i++) mlpPost[i] = geluNew(mlpPre[i]);
    for (const nv of opts.neurons ?? []) {
      if (nv.layer !== l) continue;
      if (!Number.isInteger(nv.index) || nv.index < 0 || nv.index >= dMlp) throw new Error(`reference GPT-2: neuron index ${nv.index} out of range [0, ${dMlp})`);
      for (let p = 0; p < seq; p++) mlpPost[p * dMlp + nv.index] = nv.value !== undefined ? nv.value : mlpPost[p * dMlp + nv.index] * nv.scale!;
    }
    put(`${hook}mlp.hook_post`, [seq, dMlp], mlpPost);

    const mlpOut = actHook(`${hook}hook_mlp_out`, [seq, d], linear(mlpPost, seq, dMlp, weight(w, `${pre}mlp.c_proj.weight`, dMlp * d), d, weight(w, `${pre}mlp.c_proj.bias`, d)));

    x = add(mid, mlpOut);
    put(`${hook}hook_resid_post`, [seq, d], x);
  }

  const final = layerNormHooked('ln_final', x, seq, d, weight(w, 'ln_f.weight', d), weight(w, 'ln_f.bias', d), c.eps, lnHook);

  const logits = unembed(final, seq, d, wte, vocab);
  put('hook_logits', [seq, vocab], logits);
  for (const n of Object.keys(opts.actHooks ?? {})) if (!usedActHooks.has(n)) throw new Error(`reference GPT-2: actHooks names no z / attn_out / mlp_out hook point: ${n}`);
  for (const n of Object.keys(opts.lnHooks ?? {})) if (!usedLnHooks.has(n)) throw new Error(`reference GPT-2: lnHooks names no LayerNorm hook point: ${n}`);
  for (const n of Object.keys(opts.resultHooks ?? {})) if (!usedResultHooks.has(n)) throw new Error(`reference GPT-2: resultHooks names no hook_result point: ${n}`);

  return { logits: rowsOf(logits, seq, vocab), cache };
}

// ---------------------------------------------------------------------------------------------
// sampling helpers

export function logSoftmax(v: number[]): number[] {
  let max = -Infinity;
  for (const x of v) if (x > max) max = x;
  let sum = 0;
  for (const x of v) sum += exp(x - max);
  const lse = max + log(sum);
  return v.map((x) => x - lse);
}

/**
 * Hugging Face RepetitionPenaltyLogitsProcessor: every distinct token already in the sequence
 * (prompt included) is penalised once: logit < 0 ? logit * p : logit / p. Returns a new array.
 */
export function applyRepetitionPenalty(logits: number[], seen: Iterable<number>, penalty: number): number[] {
  if (!(penalty > 0)) throw new Error(`repetition penalty must be > 0, got ${penalty}`);
  const out = logits.slice();
  for (const id of new Set(seen)) {
    if (!Number.isInteger(id) || id < 0 || id >= out.length) continue;
    const l = out[id];
    out[id] = l < 0 ? l * penalty : l / penalty;
  }
  return out;
}

/** Index of the largest value; the lowest index wins a tie. */
function argmax(v: number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

/**
 * Greedy decoding that recomputes the full forward each step (no KV cache). Overrides apply at their
 * prompt positions on every step. Returns only the new ids.
 */
export function refGreedy(
  w: RefWeights,
  ids: number[],
  maxNewTokens: number,
  opts: RefOptions & { repetitionPenalty?: number } = {},
): number[] {
  const { repetitionPenalty, ...overrides } = opts;
  const seqIds = ids.slice();
  const out: number[] = [];
  for (let step = 0; step < maxNewTokens; step++) {
    const { logits } = refForward(w, seqIds, overrides);
    let last = logits[logits.length - 1];
    if (repetitionPenalty !== undefined && repetitionPenalty !== 1) last = applyRepetitionPenalty(last, seqIds, repetitionPenalty);
    const next = argmax(last);
    out.push(next);
    seqIds.push(next);
  }
  return out;
}

/**
 * Logit lens: [layer 0..nLayer][pos][vocab] log-probs of softmax(unembed(ln_f(x_layer))), where
 * x_0 = blocks.0.hook_resid_pre (embeddings, after any layer-0 residPre override) and
 * x_L = blocks.{L-1}.hook_resid_post. LayerNorm statistics are recomputed for each layer.
 */
export function refLens(w: RefWeights, ids: number[], opts: RefOptions = {}): number[][][] {
  const c = w.config;
  const { cache } = refForward(w, ids, opts);
  const seq = ids.length;
  const d = c.dModel;
  const wte = weight(w, 'wte.weight', c.vocabSize * d);
  const lnW = weight(w, 'ln_f.weight', d);
  const lnB = weight(w, 'ln_f.bias', d);
  const out: number[][][] = [];
  for (let layer = 0; layer <= c.nLayer; layer++) {
    const name = layer === 0 ? 'blocks.0.hook_resid_pre' : `blocks.${layer - 1}.hook_resid_post`;
    const x = cache.get(name)!.data;
    const normed = layerNorm(x, seq, d, lnW, lnB, c.eps);
    const logits = rowsOf(unembed(normed, seq, d, wte, c.vocabSize), seq, c.vocabSize);
    out.push(logits.map(logSoftmax));
  }
  return out;
}
