/**
 * The corpus pass: one stream over the corpus for every layer of a scan at once. Each window is
 * fed as [<|endoftext|>, window tokens] (the BOS, as TransformerLens and Neuronpedia do; its own
 * position is never an example), blocks.{L}.mlp.hook_post is read for each layer, and a streaming
 * top-k per (layer, neuron) keeps the max-activating tokens: activation descending, ties to the
 * earlier (document, position) — the stream's own order, so a later equal value never displaces one.
 */
import { SpError, type GPT2, type HookName } from '@sp/core';
import { corpusWindows, type Corpus } from './corpus.js';
import type { CorpusExample } from './types.js';

/** Streaming top-k of n neurons: flat typed arrays, a threshold per neuron so most values cost one compare. */
export class TopK {
  readonly act: Float64Array;
  readonly doc: Int32Array;
  readonly pos: Int32Array;
  readonly tok: Int32Array;
  readonly count: Int32Array;
  /** The k-th best activation once a neuron has k (−∞ before): a value must beat it strictly. */
  readonly threshold: Float64Array;

  constructor(readonly n: number, readonly k: number) {
    this.act = new Float64Array(n * k);
    this.doc = new Int32Array(n * k);
    this.pos = new Int32Array(n * k);
    this.tok = new Int32Array(n * k);
    this.count = new Int32Array(n);
    this.threshold = new Float64Array(n).fill(-Infinity);
  }

  /** Offers one value; call in stream order (document, position ascending). */
  push(j: number, a: number, doc: number, pos: number, tok: number): void {
    if (!(a > this.threshold[j])) return;
    const k = this.k, base = j * k;
    let c = this.count[j];
    // The new value goes after every kept one that is ≥ it (earlier ones win ties).
    let r = c === k ? k - 1 : c;
    while (r > 0 && this.act[base + r - 1] < a) {
      this.act[base + r] = this.act[base + r - 1];
      this.doc[base + r] = this.doc[base + r - 1];
      this.pos[base + r] = this.pos[base + r - 1];
      this.tok[base + r] = this.tok[base + r - 1];
      r--;
    }
    this.act[base + r] = a;
    this.doc[base + r] = doc;
    this.pos[base + r] = pos;
    this.tok[base + r] = tok;
    if (c < k) this.count[j] = ++c;
    if (c === k) this.threshold[j] = this.act[base + k - 1];
  }

  /** Neuron j's kept entries, best first. */
  entries(j: number): Array<{ activation: number; doc: number; position: number; token_id: number }> {
    const base = j * this.k;
    return Array.from({ length: this.count[j] }, (_, r) => ({ activation: this.act[base + r], doc: this.doc[base + r], position: this.pos[base + r], token_id: this.tok[base + r] }));
  }
}

export interface CorpusPassOptions {
  window: number;
  topExamples: number;
  context: number;
  /** Windows per forward pass (default: what keeps the captured activations near 256 MiB, 1 … 32). */
  batchSize?: number;
  /** After each batch: windows done of total. */
  onProgress?: (done: number, total: number) => void;
}

/** Every layer's examples: for each layer in `layers`, one list per neuron (0..d_mlp-1). */
export async function corpusPass(model: GPT2, corpus: Pick<Corpus, 'docs'>, layers: number[], opts: CorpusPassOptions): Promise<Map<number, CorpusExample[][]>> {
  const { nCtx, dMlp, nLayer } = model.config;
  if (opts.window + 1 > nCtx) throw new SpError('OUT_OF_RANGE', `window ${opts.window} + the BOS token exceeds the model's context of ${nCtx} (use a window ≤ ${nCtx - 1})`);
  for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= nLayer) throw new SpError('OUT_OF_RANGE', `layer ${l} is out of range [0, ${nLayer - 1}]`);
  const { windows, docIds } = corpusWindows(model, corpus, opts.window);
  const tops = new Map(layers.map((l) => [l, new TopK(dMlp, opts.topExamples)]));
  // Every layer's hook_post is captured whichever layers are wanted, and every window is padded to
  // the same length: a hook changes how its block runs (unfused) and the input shape changes the
  // float32 rounding, so only this way does a layer's result not depend on the other layers of the
  // scan or on the batch (a resumed scan, or another worker, writes the same numbers).
  const names = Array.from({ length: nLayer }, (_, l) => `blocks.${l}.mlp.hook_post` as HookName);
  const T = opts.window + 1;
  const batch = opts.batchSize ?? Math.max(1, Math.min(32, Math.floor(256 * 2 ** 20 / (T * dMlp * 4 * nLayer))));
  const bos = model.eosTokenId;
  for (let w0 = 0; w0 < windows.length; w0 += batch) {
    const group = windows.slice(w0, w0 + batch);
    // Right-padded (causal attention: padding after a token never changes it), so the run needs no
    // mask and only the last position's logits.
    const rows = group.map((w) => [bos, ...w.ids, ...Array(T - 1 - w.ids.length).fill(bos)]);
    const { logits, cache } = model.runWithCache(rows, { names, logits: 'last' });
    try {
      for (const layer of layers) {
        const data = (await cache.get(names[layer]).data()) as Float32Array; // [rows, T, d_mlp]
        const top = tops.get(layer)!;
        group.forEach((w, r) => {
          for (let t = 1; t <= w.ids.length; t++) {
            const base = (r * T + t) * dMlp, pos = w.offset + t - 1, tok = w.ids[t - 1];
            for (let j = 0; j < dMlp; j++) {
              const a = data[base + j];
              if (a > top.threshold[j]) top.push(j, a, w.doc, pos, tok);
            }
          }
        });
      }
    } finally {
      logits.dispose();
      cache.dispose();
    }
    opts.onProgress?.(Math.min(w0 + batch, windows.length), windows.length);
  }
  const c = opts.context;
  const strings = new Map<number, string>();
  const str = (id: number) => {
    let s = strings.get(id);
    if (s === undefined) strings.set(id, (s = model.tokenString(id)));
    return s;
  };
  const out = new Map<number, CorpusExample[][]>();
  for (const l of layers) {
    const top = tops.get(l)!;
    out.set(l, Array.from({ length: dMlp }, (_, j) => top.entries(j).map((e) => {
      const ids = docIds[e.doc];
      const lo = Math.max(0, e.position - c), hi = Math.min(ids.length, e.position + c + 1);
      return { doc: e.doc, position: e.position, activation: e.activation, context: ids.slice(lo, hi).map(str), center: e.position - lo, token_id: e.token_id };
    })));
  }
  return out;
}
