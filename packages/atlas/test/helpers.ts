/** Shared by the atlas tests: float64 references (plain loops) for the projection and the corpus pass. */
import { randomModelDir } from '../../core/test/generate/helpers.js';
import { refForward, type RefWeights } from '../../core/test/reference/gpt2-ref.js';
import type { CorpusExample, ProjToken } from '@sp/atlas';

export { randomModelDir };
export const TOL = 1e-4;

/** FF key (column j of c_fc) or value (row j of c_proj) from the reference weights. */
export function refVector(w: RefWeights, kind: 'key' | 'value', layer: number, j: number): number[] {
  const d = w.config.dModel;
  if (kind === 'key') {
    const W = w.get(`h.${layer}.mlp.c_fc.weight`);
    return Array.from({ length: d }, (_, r) => W[r * 4 * d + j]);
  }
  const W = w.get(`h.${layer}.mlp.c_proj.weight`);
  return Array.from({ length: d }, (_, c) => W[j * d + c]);
}

/** v·E_i for every token i, and v·E_i/‖E_i‖, in float64. */
export function refProjection(w: RefWeights, v: number[]): { raw: Float64Array; norm: Float64Array } {
  const { dModel: d, vocabSize: V } = w.config;
  const E = w.get('wte.weight');
  const raw = new Float64Array(V), norm = new Float64Array(V);
  for (let i = 0; i < V; i++) {
    let s = 0, n = 0;
    for (let k = 0; k < d; k++) {
      s += v[k] * E[i * d + k];
      n += E[i * d + k] * E[i * d + k];
    }
    raw[i] = s;
    norm[i] = s / Math.max(Math.sqrt(n), 1e-12);
  }
  return { raw, norm };
}

/**
 * A top list against float64 scores: the r-th score is the reference's r-th (sorted) value and the
 * reference's score of that id (1e-4 relative), and the id is the reference's where the reference's
 * r-th value is more than 1e-4 from its neighbours (elsewhere float32 may order a near-tie either way).
 */
export function expectTopList(got: ProjToken[], ref: Float64Array, k: number, descending: boolean): void {
  const order = Array.from(ref.keys()).sort((a, b) => (descending ? ref[b] - ref[a] : ref[a] - ref[b]) || a - b).slice(0, k + 1);
  expect(got).toHaveLength(k);
  const close = (a: number, b: number) => Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b));
  got.forEach((t, r) => {
    expect(close(t.score, ref[t.id])).toBe(true);
    expect(close(t.score, ref[order[r]])).toBe(true);
    const gapPrev = r === 0 ? Infinity : Math.abs(ref[order[r]] - ref[order[r - 1]]);
    const gapNext = Math.abs(ref[order[r]] - ref[order[r + 1]]);
    if (gapPrev > TOL && gapNext > TOL) expect(t.id).toBe(order[r]);
  });
}

/** Max-activating examples by a float64 forward over [BOS, window] of each window, plain sort (activation desc, then doc, position). */
export function refExamples(w: RefWeights, docIds: number[][], window: number, layer: number, k: number): Array<Array<{ doc: number; position: number; activation: number; token_id: number }>> {
  const dMlp = 4 * w.config.dModel;
  const all: Array<Array<{ doc: number; position: number; activation: number; token_id: number }>> = Array.from({ length: dMlp }, () => []);
  docIds.forEach((ids, doc) => {
    for (let off = 0; off < ids.length; off += window) {
      const win = ids.slice(off, off + window);
      const post = refForward(w, [50256, ...win]).cache.get(`blocks.${layer}.mlp.hook_post`)!.data;
      win.forEach((tok, t) => {
        for (let j = 0; j < dMlp; j++) all[j].push({ doc, position: off + t, activation: post[(t + 1) * dMlp + j], token_id: tok });
      });
    }
  });
  return all.map((list) => list.sort((a, b) => b.activation - a.activation || a.doc - b.doc || a.position - b.position).slice(0, k + 1));
}

/** Examples against the reference's: activations within 1e-4 relative, the same (doc, position) where the gap is > 1e-4. */
export function expectExamples(got: CorpusExample[], ref: ReturnType<typeof refExamples>[number], k: number): void {
  expect(got).toHaveLength(Math.min(k, ref.length));
  got.forEach((e, r) => {
    expect(Math.abs(e.activation - ref[r].activation)).toBeLessThanOrEqual(TOL * Math.max(1, Math.abs(ref[r].activation)));
    const gapPrev = r === 0 ? Infinity : ref[r - 1].activation - ref[r].activation;
    const gapNext = r + 1 < ref.length ? ref[r].activation - ref[r + 1].activation : Infinity;
    if (gapPrev > TOL && gapNext > TOL) {
      expect([e.doc, e.position, e.token_id]).toEqual([ref[r].doc, ref[r].position, ref[r].token_id]);
    }
    expect(e.context[e.center]).toBeDefined();
  });
}
