/**
 * The per-cell statistics of the logit lens over a block of float32 logits [cells · R, V]: a
 * streaming top-k that also gives each row's max, and everything that sums over the vocabulary (the
 * softmax normaliser S = Σ e^(l − max), entropy, KL to the cell's output row) accumulated in
 * float64. A float32 sum of 50,257 terms is off by ~1e-4 relative; float64 leaves only the logits'
 * own rounding. Ranks are exact counts on the same logits.
 *
 * `cellStats` is self-contained (no reference outside its body but its arguments): lens/split.ts
 * runs the same function in a worker thread from its source text, on the second half of the cells.
 */

export interface CellStats {
  topIds?: Int32Array;
  topLogp?: Float64Array;
  entropy?: Float64Array;
  kl?: Float64Array;
  targetLogp?: Float64Array;
  ranks?: Int32Array;
}

/**
 * exp(z) for z ≤ 0 in float64 without a Math.exp call per element (about 2× faster over 50,257
 * logits): exp(z) = exp(−j/1024) · e^r with j = ⌊−1024 z⌋ from this table (384 KiB) and |r| < 1/1024
 * by a degree-4 Taylor polynomial (truncation < 1e-17 relative, below float64 rounding). Terms with
 * z < −48 (< 1.5e-21 of the max term, which is 1) are below half an ulp of the sums they join and
 * are dropped.
 */
let table: Float64Array | undefined;
export function expTable(): Float64Array {
  if (!table) {
    table = new Float64Array(48 * 1024 + 2);
    for (let j = 0; j < table.length; j++) table[j] = Math.exp(-j / 1024);
  }
  return table;
}

/**
 * Statistics of `cells` cells of R rows each, the logits of row n at logits[n·V …). `outRow`: the
 * row of a cell that KL compares against; `targets[p]`: token ids to rank in cell p; `T`: expTable().
 */
export function cellStats(logits: Float32Array, cells: number, R: number, outRow: number, V: number, k: number, stats: boolean, targets: number[][] | undefined, T: Float64Array): CellStats {
  // Local aliases: a global `Math` lookup in a hot loop is slow under some runtimes (jest's vm).
  const { exp, log } = Math;
  const EXP_STEP = 1024, EXP_ZMIN = -48;
  const pc = cells;
  const N = pc * R;
  function rowTopk(l: Float32Array, off: number, V: number, k: number, ids: Int32Array, vals: Float32Array, hi: Int32Array, hv: Float32Array): number {
    if (k === 0) {
      let mx = -Infinity;
      for (let t = 0; t < V; t++) if (l[off + t] > mx) mx = l[off + t];
      return mx;
    }
    // Heap root = the worst kept entry: smallest value, and for equal values the larger id.
    const worse = (a: number, b: number) => hv[a] < hv[b] || (hv[a] === hv[b] && hi[a] > hi[b]);
    const sift = (i: number, m: number) => {
      for (;;) {
        const c1 = 2 * i + 1;
        if (c1 >= m) return;
        const c = c1 + 1 < m && worse(c1 + 1, c1) ? c1 + 1 : c1;
        if (!worse(c, i)) return;
        const tv = hv[i], ti = hi[i];
        hv[i] = hv[c]; hi[i] = hi[c];
        hv[c] = tv; hi[c] = ti;
        i = c;
      }
    };
    for (let t = 0; t < k; t++) {
      hv[t] = l[off + t];
      hi[t] = t;
    }
    for (let i = (k >> 1) - 1; i >= 0; i--) sift(i, k);
    let thr = hv[0];
    for (let t = k; t < V; t++) {
      const v = l[off + t];
      // A later id with a value equal to the root's is worse than the root: strict >.
      if (v > thr) {
        hv[0] = v;
        hi[0] = t;
        sift(0, k);
        thr = hv[0];
      }
    }
    // Pop worst-first into the back of the output: best first.
    const o = (off / V) * k;
    for (let m = k; m > 0; m--) {
      ids[o + m - 1] = hi[0];
      vals[o + m - 1] = hv[0];
      hv[0] = hv[m - 1];
      hi[0] = hi[m - 1];
      sift(0, m - 1);
    }
    return vals[o];
  }

  const o: CellStats = {};
  const topIds = new Int32Array(N * k);
  const topVals = new Float32Array(N * k);
  const hi = new Int32Array(k);
  const hv = new Float32Array(k);
  // Per row: max and log S (log p = l − max − log S), and Σ e·z for the entropy H = log S − Σ e·z / S.
  const c = new Float64Array(N); // max + log S: log p = l − c
  if (stats) o.entropy = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const off = n * V;
    const mx = rowTopk(logits, off, V, k, topIds, topVals, hi, hv);
    // Two interleaved accumulators per sum: independent dependency chains run in parallel.
    let S0 = 0, S1 = 0, ez0 = 0, ez1 = 0;
    let t = 0;
    for (; t + 1 < V; t += 2) {
      const z = logits[off + t] - mx;
      const y = logits[off + t + 1] - mx;
      if (z >= EXP_ZMIN) {
        const j = (-z * EXP_STEP) | 0;
        const r = z + j * (1 / EXP_STEP);
        const e = T[j] * (1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24)))));
        S0 += e;
        ez0 += e * z;
      }
      if (y >= EXP_ZMIN) {
        const j = (-y * EXP_STEP) | 0;
        const r = y + j * (1 / EXP_STEP);
        const e = T[j] * (1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24)))));
        S1 += e;
        ez1 += e * y;
      }
    }
    if (t < V) {
      const z = logits[off + t] - mx;
      const e = exp(z);
      S0 += e;
      ez0 += e * z;
    }
    const S = S0 + S1;
    if (stats) o.entropy![n] = log(S) - (ez0 + ez1) / S;
    c[n] = mx + log(S);
  }
  if (k > 0) {
    o.topIds = topIds;
    const lp = new Float64Array(N * k);
    for (let i = 0; i < lp.length; i++) lp[i] = topVals[i] - c[(i / k) | 0];
    o.topLogp = lp;
  }
  if (stats) {
    // KL(f ‖ ℓ) = Σ p_f (log p_f − log p_ℓ), f = the output row of the same cell.
    o.kl = new Float64Array(N);
    const lpf = new Float64Array(V);
    const pf = new Float64Array(V);
    for (let p = 0; p < pc; p++) {
      const f = p * R + outRow;
      for (let t = 0; t < V; t++) {
        lpf[t] = logits[f * V + t] - c[f];
        pf[t] = exp(lpf[t]);
      }
      for (let r = 0; r < R; r++) {
        const n = p * R + r;
        if (n === f) continue; // exactly 0
        const off = n * V;
        const cn = c[n];
        let s0 = 0, s1 = 0;
        let t = 0;
        for (; t + 1 < V; t += 2) {
          s0 += pf[t] * (lpf[t] - (logits[off + t] - cn));
          s1 += pf[t + 1] * (lpf[t + 1] - (logits[off + t + 1] - cn));
        }
        if (t < V) s0 += pf[t] * (lpf[t] - (logits[off + t] - cn));
        const s = s0 + s1;
        o.kl[n] = s > 0 ? s : 0; // KL ≥ 0; drops round-off below 0
      }
    }
  }
  const W = targets?.[0]?.length ?? 0;
  if (W > 0) {
    // rank = 1 + #tokens with a strictly larger logit (ties share the best rank).
    o.targetLogp = new Float64Array(N * W);
    o.ranks = new Int32Array(N * W);
    for (let p = 0; p < pc; p++) {
      const tw = targets![p];
      for (let r = 0; r < R; r++) {
        const n = p * R + r;
        const off = n * V;
        for (let w = 0; w < W; w++) {
          const tl = logits[off + tw[w]];
          let above = 0;
          for (let t = 0; t < V; t++) if (logits[off + t] > tl) above++;
          o.ranks[n * W + w] = above + 1;
          o.targetLogp[n * W + w] = tl - c[n];
        }
      }
    }
  }
  return o;
}
