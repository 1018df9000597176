/**
 * Vega-Lite specifications of the causal-toolbox reports: activation patching (layer × position
 * heatmap), input attribution (Ecco-style token strip), direct logit attribution (bar chart of the
 * top components) and attention patterns (a query × key heatmap per head). Each reads the JSON that
 * `sp patch|attr|dla|attention --json` prints (the contracts of docs/causal.md), validated first so
 * that a malformed file gives one clear SpError line instead of a broken chart.
 */
import { SpError } from '@sp/core/light';
import type { TopLevelSpec } from 'vega-lite';
import { FONT, type Tip } from './specs.js';
import { quoteToken, showToken } from './tokens.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json'; // an identifier only; nothing is fetched

const config = {
  font: FONT,
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' as const },
  legend: { labelFontSize: 11, titleFontSize: 11 },
  title: { fontSize: 14, anchor: 'start' as const },
  background: 'white',
};

/** Positive blue, negative red (as neuronsSpec's bars and TransformerLens' RdBu plots). */
const POS = '#3b75af';
const NEG = '#c44e52';

/** A number for a tooltip: every digit JavaScript needs to give it back exactly. */
const exact = (v: number) => String(v);
/** A number for a cell or a table: 4 significant digits. */
const short = (v: number) => String(+v.toPrecision(4));

// ---------------------------------------------------------------------------------------------
// input shapes (the JSON contracts) and their validation

/** `sp patch --json`. `values[l][p]` (site `z`: `values[l][h]`), the corrupt run's metric with one activation patched in from the clean run. */
export interface PatchResultLike {
  site: string;
  clean_metric: number;
  corrupt_metric: number;
  layers: number[];
  positions: number[];
  heads?: number[];
  values: number[][];
  /** The prompt's tokens, indexed by position (for the axis labels and tooltips). */
  tokens?: string[];
  /** The metric's tokens, for the title. */
  answer?: string;
  wrong?: string;
  model?: string;
}

/** `sp attr --json`: one attribution per input position for the target's logit at `position`. */
export interface AttrResultLike {
  ids: number[];
  tokens: string[];
  target_id: number;
  position: number;
  method: string;
  target_value: number;
  attributions: number[];
  /** The target token's string, for the title (else its id is shown). */
  target_token?: string;
  normalize?: boolean;
  model?: string;
}

/** `sp dla --json`: each component's direct contribution to the logit (difference); they sum to `total`. */
export interface DlaResultLike {
  components: Array<{ name: string; value: number }>;
  total: number;
  token?: string;
  vs?: string;
  position?: number;
  tokens?: string[];
  model?: string;
}

/** Attention patterns: `heads[h][q][k]`, the weight query position q gives key position k. */
export interface AttentionResultLike {
  tokens: string[];
  layers: Array<{ layer: number; heads: number[][][] }>;
  model?: string;
}

function bad(what: string, msg: string): never {
  throw new SpError('BAD_INPUT', `${what}: ${msg}`);
}
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
function num(what: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(what, `${name} must be a finite number (got ${JSON.stringify(v) ?? String(v)})`);
  return v;
}
function int(what: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) bad(what, `${name} must be a non-negative integer (got ${JSON.stringify(v) ?? String(v)})`);
  return v;
}
function arr(what: string, name: string, v: unknown, len?: number): unknown[] {
  if (!Array.isArray(v)) bad(what, `${name} must be an array`);
  if (len !== undefined && v.length !== len) bad(what, `${name} has ${v.length} entries, expected ${len}`);
  return v;
}
function nums(what: string, name: string, v: unknown, len?: number): number[] {
  return arr(what, name, v, len).map((x, i) => num(what, `${name}[${i}]`, x));
}
function ints(what: string, name: string, v: unknown): number[] {
  return arr(what, name, v).map((x, i) => int(what, `${name}[${i}]`, x));
}
function strs(what: string, name: string, v: unknown, len?: number): string[] {
  return arr(what, name, v, len).map((x, i) => (typeof x === 'string' ? x : bad(what, `${name}[${i}] must be a string`)));
}
function optStr(what: string, name: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'string') bad(what, `${name} must be a string`);
}

/** True for a patching result over attention heads (`values[l][h]`): site z, or another site that lists heads. */
export function patchByHead(r: Pick<PatchResultLike, 'site' | 'heads'>): boolean {
  return r.site === 'z' || (r.heads !== undefined && !['resid_pre', 'attn_out', 'mlp_out'].includes(r.site));
}

export function checkPatchResult(r: unknown): PatchResultLike {
  const w = 'patching result';
  if (!isObj(r)) bad(w, 'expected an object {site, clean_metric, corrupt_metric, layers, positions, values}');
  if (typeof r.site !== 'string' || r.site === '') bad(w, 'site must be a non-empty string');
  num(w, 'clean_metric', r.clean_metric);
  num(w, 'corrupt_metric', r.corrupt_metric);
  const layers = ints(w, 'layers', r.layers);
  if (layers.length === 0) bad(w, 'layers is empty');
  const positions = ints(w, 'positions', r.positions);
  if (r.heads !== undefined) ints(w, 'heads', r.heads);
  const res = r as unknown as PatchResultLike;
  const heads = patchByHead(res);
  if (heads && r.heads === undefined) bad(w, `site ${r.site} patches heads: heads is missing`);
  const cols = heads ? (r.heads as number[]) : positions;
  if (cols.length === 0) bad(w, `${heads ? 'heads' : 'positions'} is empty`);
  const rows = arr(w, 'values', r.values, layers.length);
  rows.forEach((row, l) => {
    if (Array.isArray(row) && row.some(Array.isArray)) bad(w, `values[${l}] is nested deeper than values[layer][${heads ? 'head' : 'position'}] (per-position head results are not supported by this report)`);
    nums(w, `values[${l}] (layer ${layers[l]})`, row, cols.length);
  });
  if (r.tokens !== undefined) {
    const toks = strs(w, 'tokens', r.tokens);
    for (const p of positions) if (p >= toks.length) bad(w, `position ${p} has no token (tokens has ${toks.length})`);
  }
  optStr(w, 'answer', r.answer);
  optStr(w, 'wrong', r.wrong);
  return res;
}

export function checkAttrResult(r: unknown): AttrResultLike {
  const w = 'attribution result';
  if (!isObj(r)) bad(w, 'expected an object {ids, tokens, target_id, position, method, target_value, attributions}');
  const ids = ints(w, 'ids', r.ids);
  if (ids.length === 0) bad(w, 'ids is empty');
  strs(w, 'tokens', r.tokens, ids.length);
  int(w, 'target_id', r.target_id);
  const p = int(w, 'position', r.position);
  if (p >= ids.length) bad(w, `position ${p} is out of range [0, ${ids.length - 1}]`);
  if (typeof r.method !== 'string' || r.method === '') bad(w, 'method must be a non-empty string');
  num(w, 'target_value', r.target_value);
  nums(w, 'attributions', r.attributions, ids.length);
  optStr(w, 'target_token', r.target_token);
  return r as unknown as AttrResultLike;
}

export function checkDlaResult(r: unknown): DlaResultLike {
  const w = 'DLA result';
  if (!isObj(r)) bad(w, 'expected an object {components: [{name, value}], total}');
  const comps = arr(w, 'components', r.components);
  if (comps.length === 0) bad(w, 'components is empty');
  const names = new Set<string>();
  comps.forEach((c, i) => {
    if (!isObj(c) || typeof c.name !== 'string' || c.name === '') bad(w, `components[${i}] must be {name: string, value: number}`);
    if (names.has(c.name)) bad(w, `component ${JSON.stringify(c.name)} appears twice`);
    names.add(c.name);
    num(w, `components[${i}].value (${c.name})`, c.value);
  });
  num(w, 'total', r.total);
  optStr(w, 'token', r.token);
  optStr(w, 'vs', r.vs);
  return r as unknown as DlaResultLike;
}

export function checkAttentionResult(r: unknown): AttentionResultLike {
  const w = 'attention result';
  if (!isObj(r)) bad(w, 'expected an object {tokens, layers: [{layer, heads: [h][q][k]}]}');
  const n = strs(w, 'tokens', r.tokens).length;
  if (n === 0) bad(w, 'tokens is empty');
  const layers = arr(w, 'layers', r.layers);
  if (layers.length === 0) bad(w, 'layers is empty');
  layers.forEach((L, i) => {
    if (!isObj(L)) bad(w, `layers[${i}] must be {layer, heads}`);
    const l = int(w, `layers[${i}].layer`, L.layer);
    const heads = arr(w, `layer ${l} heads`, L.heads);
    if (heads.length === 0) bad(w, `layer ${l} has no heads`);
    heads.forEach((h, hi) => {
      arr(w, `layer ${l} head ${hi}`, h, n).forEach((row, q) => {
        nums(w, `layer ${l} head ${hi} query ${q}`, row, n).forEach((v, k) => {
          // a pattern is softmax output; anything else (scores, logits) would be coloured wrongly
          if (v < 0 || v > 1 + 1e-6) bad(w, `layer ${l} head ${hi} [${q}][${k}] = ${v} is not an attention weight in [0, 1]`);
        });
      });
    });
  });
  return r as unknown as AttentionResultLike;
}

// ---------------------------------------------------------------------------------------------
// activation patching

/**
 * The heatmap's colour: TransformerLens' normalised patching metric (the IOI demo's
 * `ioi_metric`), (value − corrupt) / (clean − corrupt): 0 = the patch changes nothing (the corrupt
 * run's metric), 1 = it restores the clean run's metric. When clean and corrupt metrics are equal
 * the ratio is undefined, and the colour is the raw difference value − corrupt instead (`mode`).
 */
export function patchNormalize(r: Pick<PatchResultLike, 'clean_metric' | 'corrupt_metric'>): { mode: 'normalized' | 'difference'; f: (v: number) => number } {
  const d = r.clean_metric - r.corrupt_metric;
  if (d === 0 || !Number.isFinite(1 / d)) return { mode: 'difference', f: (v) => v - r.corrupt_metric };
  return { mode: 'normalized', f: (v) => (v - r.corrupt_metric) / d };
}

/** Layer × position (site z: layer × head) heatmap of an activation-patching result. */
export function patchingSpec(input: PatchResultLike, opts: { title?: string } = {}): TopLevelSpec {
  const r = checkPatchResult(input);
  const heads = patchByHead(r);
  const cols = heads ? r.heads! : r.positions;
  const xs = cols.map((c) => (heads ? `H${c}` : r.tokens ? `${c} ${showToken(r.tokens[c], 12)}` : String(c))); // unique, ordered labels
  const ys = r.layers.map(String);
  const { mode, f } = patchNormalize(r);
  const metricTitle = mode === 'normalized' ? '(patched − corrupt) / (clean − corrupt)' : 'patched − corrupt';
  const values = r.layers.flatMap((layer, l) =>
    cols.map((c, j) => {
      const where = heads ? `head ${c}` : `position ${c}${r.tokens ? ` ${quoteToken(r.tokens[c])}` : ''}`;
      return {
        x: xs[j],
        y: ys[l],
        value: r.values[l][j],
        norm: f(r.values[l][j]),
        label: f(r.values[l][j]).toFixed(2),
        desc: `layer ${layer}, ${where}: patched metric ${exact(r.values[l][j])}`,
        tip: {
          title: `${r.site} · layer ${layer} · ${where}`,
          rows: [
            ['patched metric', exact(r.values[l][j])],
            [mode === 'normalized' ? 'normalised' : 'patched − corrupt', exact(f(r.values[l][j]))],
            ['clean metric', exact(r.clean_metric)],
            ['corrupt metric', exact(r.corrupt_metric)],
          ],
          foot: mode === 'normalized' ? '0 = corrupt run, 1 = clean run restored' : 'clean and corrupt metrics are equal: colour is patched − corrupt',
        } satisfies Tip,
      };
    }),
  );
  const m = Math.max(mode === 'normalized' ? 1 : 0, ...values.map((v) => Math.abs(v.norm))) || 1;
  const metric = r.answer !== undefined ? ` of logit(${quoteToken(r.answer)})${r.wrong !== undefined ? ` − logit(${quoteToken(r.wrong)})` : ''}` : '';
  return {
    $schema: SCHEMA,
    title: opts.title ?? `Activation patching (${r.site}): recovery${metric}, clean ${short(r.clean_metric)}, corrupt ${short(r.corrupt_metric)}`,
    data: { values },
    width: { step: heads ? 40 : 60 },
    height: { step: 22 },
    encoding: {
      x: { field: 'x', type: 'ordinal', sort: xs, axis: { title: heads ? 'head' : 'position (clean token)', orient: 'top', labelAngle: heads ? 0 : -40, labelLimit: 200 } },
      y: { field: 'y', type: 'ordinal', sort: ys, axis: { title: `layer (${r.site})` } },
      tooltip: { field: 'tip' },
    },
    layer: [
      {
        name: 'cells',
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: {
          color: { field: 'norm', type: 'quantitative', scale: { domain: [-m, m], scheme: 'redblue', nice: false }, legend: { title: metricTitle, titleLimit: 400, format: '.3~g', orient: 'bottom', direction: 'horizontal', gradientLength: 200 } },
          description: { field: 'desc' },
        },
      },
      {
        name: 'cell_text',
        mark: { type: 'text', fontSize: 9, aria: false },
        encoding: { text: { field: 'label' }, color: { condition: { test: `abs(datum.norm) > ${0.6 * m}`, value: 'white' }, value: '#111' } },
      },
    ],
    config,
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------
// attribution

/** Token-strip geometry: monospace text, so a box's width follows its label's length. */
const STRIP = { font: 'DejaVu Sans Mono, Liberation Mono, monospace', fontSize: 13, charW: 7.9, pad: 10, rowH: 30, gap: 4, maxW: 760 };

/** Where each token's box goes: left to right, wrapping at STRIP.maxW as text does. */
function stripLayout(labels: string[]): { boxes: Array<{ x0: number; x1: number; y0: number; y1: number }>; width: number; height: number } {
  let x = 0;
  let row = 0;
  let width = 0;
  const boxes = labels.map((s) => {
    const w = Array.from(s).length * STRIP.charW + STRIP.pad;
    if (x > 0 && x + w > STRIP.maxW) {
      x = 0;
      row++;
    }
    const b = { x0: x, x1: x + w, y0: row * (STRIP.rowH + STRIP.gap), y1: row * (STRIP.rowH + STRIP.gap) + STRIP.rowH };
    x += w + STRIP.gap;
    width = Math.max(width, b.x1);
    return b;
  });
  return { boxes, width: Math.ceil(width), height: (row + 1) * (STRIP.rowH + STRIP.gap) - STRIP.gap };
}

/**
 * Ecco-style token strip: each input token a box coloured by its attribution on a diverging scale
 * symmetric about 0 (blue positive, red negative, intensity ∝ |value| / max |value|); the box of the
 * position the target is read at is outlined.
 */
export function attributionSpec(input: AttrResultLike, opts: { title?: string } = {}): TopLevelSpec {
  const r = checkAttrResult(input);
  const labels = r.tokens.map((t) => showToken(t, 16));
  const { boxes, width, height } = stripLayout(labels);
  const m = Math.max(...r.attributions.map(Math.abs)) || 1;
  const target = r.target_token !== undefined ? `${quoteToken(r.target_token)} (id ${r.target_id})` : `token id ${r.target_id}`;
  const values = r.tokens.map((t, p) => ({
    ...boxes[p],
    xm: (boxes[p].x0 + boxes[p].x1) / 2,
    ym: (boxes[p].y0 + boxes[p].y1) / 2,
    token: labels[p],
    pos: p,
    value: r.attributions[p],
    target: p === r.position,
    desc: `position ${p} ${quoteToken(t)}: attribution ${exact(r.attributions[p])}`,
    tip: {
      title: `position ${p} ${quoteToken(t)} (id ${r.ids[p]})`,
      rows: [
        ['attribution', exact(r.attributions[p])],
        ['share of Σ|attribution|', short(Math.abs(r.attributions[p]) / (r.attributions.reduce((a, v) => a + Math.abs(v), 0) || 1))],
      ],
      foot: `${r.method} for the logit of ${target} at position ${r.position} (${short(r.target_value)})`,
    } satisfies Tip,
  }));
  const px = (field: string) => ({ field, type: 'quantitative' as const, scale: null, axis: null });
  return {
    $schema: SCHEMA,
    title: opts.title ?? {
      text: `${r.method}${r.normalize ? ' (normalised)' : ''} attribution to ${target}`,
      subtitle: `target logit ${short(r.target_value)} at position ${r.position} · Σ attributions ${short(r.attributions.reduce((a, v) => a + v, 0))}`,
    },
    data: { values },
    width,
    height,
    encoding: { tooltip: { field: 'tip' } },
    layer: [
      {
        name: 'boxes',
        mark: { type: 'rect', cornerRadius: 3 },
        encoding: {
          x: px('x0'), x2: { field: 'x1' }, y: px('y0'), y2: { field: 'y1' },
          color: { field: 'value', type: 'quantitative', scale: { domain: [-m, m], scheme: 'redblue', nice: false }, legend: { title: 'attribution', format: '.3~g', orient: 'bottom', direction: 'horizontal', gradientLength: 200 } },
          stroke: { condition: { test: 'datum.target', value: '#111' }, value: '#bbb' },
          strokeWidth: { condition: { test: 'datum.target', value: 2 }, value: 0.5 },
          description: { field: 'desc' },
        },
      },
      {
        name: 'box_text',
        mark: { type: 'text', font: STRIP.font, fontSize: STRIP.fontSize, aria: false },
        encoding: { x: px('xm'), y: px('ym'), text: { field: 'token' }, color: { condition: { test: `abs(datum.value) > ${0.55 * m}`, value: 'white' }, value: '#111' } },
      },
    ],
    config,
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------
// direct logit attribution

export interface DlaBar {
  name: string;
  value: number;
  /** How many components the bar stands for (more than 1 for "other"). */
  count: number;
  kind: 'component' | 'other' | 'total';
}

/** The top `top` components by |value| (ties: input order), the rest summed as one "other" bar, then the total. */
export function dlaBars(input: DlaResultLike, top = 20): DlaBar[] {
  const r = checkDlaResult(input);
  if (!Number.isInteger(top) || top < 1) throw new SpError('BAD_INPUT', `DLA report: top must be a positive integer (got ${top})`);
  const order = r.components.map((c, i) => ({ c, i })).sort((a, b) => Math.abs(b.c.value) - Math.abs(a.c.value) || a.i - b.i);
  const bars: DlaBar[] = order.slice(0, top).map(({ c }) => ({ name: c.name, value: c.value, count: 1, kind: 'component' }));
  const rest = order.slice(top);
  if (rest.length) bars.push({ name: `other (${rest.length})`, value: rest.reduce((a, { c }) => a + c.value, 0), count: rest.length, kind: 'other' });
  bars.push({ name: 'total', value: r.total, count: r.components.length, kind: 'total' });
  return bars;
}

/** Horizontal bars of the components writing most (by |value|) to the logit (difference), total last. */
export function dlaSpec(input: DlaResultLike, opts: { title?: string; top?: number } = {}): TopLevelSpec {
  const r = checkDlaResult(input);
  const bars = dlaBars(r, opts.top ?? 20);
  const what = r.token !== undefined ? `logit(${quoteToken(r.token)})${r.vs !== undefined ? ` − logit(${quoteToken(r.vs)})` : ''}` : 'logit';
  const at = r.position !== undefined ? ` at position ${r.position}${r.tokens?.[r.position] !== undefined ? ` ${quoteToken(r.tokens[r.position])}` : ''}` : '';
  const sum = r.components.reduce((a, c) => a + c.value, 0);
  // names as displayToken shows them (a name is free text in the JSON), kept unique for the axis
  const seen = new Set<string>();
  const shown = bars.map((b) => {
    let s = b.kind === 'component' ? showToken(b.name, 32) : b.name;
    for (let k = 2; seen.has(s); k++) s = `${showToken(b.name, 28)} #${k}`;
    seen.add(s);
    return s;
  });
  const values = bars.map((b, i) => ({
    name: shown[i],
    value: b.value,
    kind: b.kind === 'total' ? 'total' : b.value >= 0 ? 'positive' : 'negative',
    label: short(b.value),
    desc: `${b.kind === 'other' ? `${b.count} other components` : quoteToken(b.name)}: ${exact(b.value)}`,
    tip: {
      title: b.kind === 'other' ? `${b.count} other components` : b.kind === 'total' ? `total ${what}` : quoteToken(b.name),
      rows: [
        [b.kind === 'total' ? 'total' : 'direct contribution', exact(b.value)],
        ...(b.kind === 'total' ? [['Σ components', exact(sum)] as [string, string]] : [['share of total', short(b.value / (r.total || 1))] as [string, string]]),
      ],
    } satisfies Tip,
  }));
  return {
    $schema: SCHEMA,
    title: opts.title ?? { text: `Direct logit attribution to ${what}${at}`, subtitle: `total ${short(r.total)} · top ${Math.min(opts.top ?? 20, r.components.length)} of ${r.components.length} components by |value|` },
    data: { values },
    width: 380,
    height: { step: 18 },
    encoding: {
      y: { field: 'name', type: 'nominal', sort: values.map((v) => v.name), title: null },
      tooltip: { field: 'tip' },
    },
    layer: [
      {
        name: 'bars',
        mark: { type: 'bar' },
        encoding: {
          x: { field: 'value', type: 'quantitative', title: `direct contribution to ${what}` },
          color: { field: 'kind', type: 'nominal', scale: { domain: ['positive', 'negative', 'total'], range: [POS, NEG, '#666'] }, legend: null },
          // an explicit label: Vega-Lite's default one puts the axis title (with tokens) in an expression, which would unescape \u0001
          description: { field: 'desc' },
        },
      },
      { mark: { type: 'rule', color: '#333' }, encoding: { x: { datum: 0 } } },
      {
        name: 'bar_text',
        mark: { type: 'text', align: 'left', dx: 4, fontSize: 10, aria: false },
        encoding: { x: { datum: 0 }, text: { field: 'label' }, color: { value: '#111' } },
      },
    ],
    config,
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------
// attention

/** One layer's heads, a query × key heatmap each (faceted, 4 per row), token labels on the axes. */
export function attentionSpec(input: AttentionResultLike, opts: { layer?: number; title?: string; columns?: number } = {}): TopLevelSpec {
  const r = checkAttentionResult(input);
  const L = opts.layer === undefined ? r.layers[0] : r.layers.find((x) => x.layer === opts.layer);
  if (!L) throw new SpError('OUT_OF_RANGE', `attention report: layer ${opts.layer} is not in the result (layers ${r.layers.map((x) => x.layer).join(', ')})`);
  const n = r.tokens.length;
  const labels = r.tokens.map((t, p) => `${p} ${showToken(t, 10)}`); // unique, ordered labels
  const heads = L.heads.map((_, h) => `L${L.layer}.H${h}`);
  const values = L.heads.flatMap((pat, h) =>
    pat.flatMap((row, q) =>
      row.map((v, k) => ({
        head: heads[h],
        q: labels[q],
        k: labels[k],
        value: v,
        desc: `${heads[h]}, query ${q}, key ${k}: ${exact(v)}`,
        tip: {
          title: `${heads[h]}: query ${q} ${quoteToken(r.tokens[q])} → key ${k} ${quoteToken(r.tokens[k])}`,
          rows: [['attention', exact(v)]],
        } satisfies Tip,
      })),
    ),
  );
  const step = Math.max(6, Math.min(18, Math.floor(240 / n)));
  return {
    $schema: SCHEMA,
    title: opts.title ?? `Attention patterns, layer ${L.layer} (${L.heads.length} heads)`,
    data: { values },
    facet: { field: 'head', type: 'nominal', sort: heads, title: null, header: { labelFontSize: 12 } },
    columns: opts.columns ?? Math.min(4, L.heads.length),
    spec: {
      width: { step },
      height: { step },
      layer: [
        {
          name: 'cells',
          mark: { type: 'rect' },
          encoding: {
            x: { field: 'k', type: 'ordinal', sort: labels, axis: { title: 'key', labelAngle: -60, labelLimit: 120, labelFontSize: Math.min(11, step) } },
            y: { field: 'q', type: 'ordinal', sort: labels, axis: { title: 'query', labelLimit: 120, labelFontSize: Math.min(11, step) } },
            // white at 0 (as circuitsvis): masked keys vanish
            color: { field: 'value', type: 'quantitative', scale: { domain: [0, 1], range: ['#ffffff', '#08519c'], interpolate: 'rgb', nice: false }, legend: { title: 'attention' } },
            tooltip: { field: 'tip' },
            description: { field: 'desc' },
          },
        },
      ],
    },
    config,
  } as TopLevelSpec;
}
