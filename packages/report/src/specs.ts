/**
 * Vega-Lite specifications of every chart. Specs are plain JSON: the same spec becomes a live chart
 * in the HTML report (with hover tooltips) and a static SVG/PNG in Node (render.ts).
 */
import type { LensResult, NeuronsResult, RankingsResult, WatchResult } from '@sp/core';
import type { TopLevelSpec } from 'vega-lite';
import { fmtProb, quoteText, quoteToken, showToken } from './tokens.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json'; // an identifier only; nothing is fetched

/** Fonts Debian ships (fonts-dejavu, fonts-liberation), then generic: SVG/PNG export and the browser agree. */
export const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';

const config = {
  font: FONT,
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' as const },
  legend: { labelFontSize: 11, titleFontSize: 11 },
  title: { fontSize: 14, anchor: 'start' as const },
  background: 'white',
};

/** Tooltip payload understood by the report's tooltip handler (html.ts): a title, a table, a footer. */
export interface Tip {
  title: string;
  rows: Array<[string, string]>;
  foot?: string;
}

/** Layers × positions grid: top-1 token as text, its probability as colour, top-k on hover. */
export function lensGridSpec(lens: LensResult, opts: { title?: string } = {}): TopLevelSpec {
  const xs = lens.tokens.map((t, p) => `${p} ${showToken(t, 12)}`); // unique, ordered labels
  const ys = lens.layers.map((l) => l.label);
  const values = lens.layers.flatMap((row) =>
    row.positions.map((c, p) => ({
      x: xs[p],
      y: row.label,
      token: showToken(c.top[0].token, 8),
      prob: c.max_prob,
      desc: `layer ${row.label}, position ${p}: ${c.top.map((t) => `${quoteToken(t.token)} ${fmtProb(t.prob)}`).join(', ')}`,
      tip: {
        title: `layer ${row.label} (${row.hook}) · position ${p} ${quoteToken(lens.tokens[p])}`,
        rows: c.top.map((t) => [quoteToken(t.token), fmtProb(t.prob)]),
        foot: `entropy ${c.entropy.toFixed(3)} nats · KL to output ${c.kl.toFixed(3)} nats`,
      } satisfies Tip,
    })),
  );
  return {
    $schema: SCHEMA,
    title: opts.title ?? 'Logit lens: top token at each layer and position',
    data: { values },
    width: { step: 60 },
    height: { step: 22 },
    encoding: {
      x: { field: 'x', type: 'ordinal', sort: xs, axis: { title: 'input token (position)', orient: 'top', labelAngle: -40, labelLimit: 200 } },
      y: { field: 'y', type: 'ordinal', sort: [...ys].reverse(), axis: { title: 'layer' } },
      tooltip: { field: 'tip' },
    },
    layer: [
      {
        name: 'cells',
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: { color: { field: 'prob', type: 'quantitative', scale: { domain: [0, 1], scheme: 'blues' }, legend: { title: 'top-1 prob' } }, description: { field: 'desc' } },
      },
      {
        name: 'cell_text',
        mark: { type: 'text', fontSize: 10, limit: 56, aria: false },
        encoding: { text: { field: 'token' }, color: { condition: { test: 'datum.prob > 0.5', value: 'white' }, value: '#111' } },
      },
    ],
    config,
  } as TopLevelSpec;
}

/** Per-layer statistics of the lens distribution: entropy, KL to the output, max probability. */
export function lensStatsSpec(lens: LensResult, opts: { title?: string } = {}): TopLevelSpec {
  const metrics = [
    ['entropy (nats)', (c: LensResult['layers'][0]['positions'][0]) => c.entropy],
    ['KL(output ‖ layer) (nats)', (c: LensResult['layers'][0]['positions'][0]) => c.kl],
    ['max probability', (c: LensResult['layers'][0]['positions'][0]) => c.max_prob],
  ] as const;
  const last = lens.tokens.length - 1;
  const values = lens.layers.flatMap((row) =>
    metrics.flatMap(([metric, f]) => [
      { layer: row.layer, label: row.label, metric, series: 'mean over positions', value: row.positions.reduce((a, c) => a + f(c), 0) / row.positions.length },
      { layer: row.layer, label: row.label, metric, series: `last position ${quoteToken(lens.tokens[last])}`, value: f(row.positions[last]) },
    ]),
  );
  return {
    $schema: SCHEMA,
    title: opts.title ?? 'Lens distribution per layer',
    data: { values },
    facet: { column: { field: 'metric', type: 'nominal', sort: metrics.map((m) => m[0]), title: null, header: { labelFontSize: 12 } } },
    spec: {
      width: 220,
      height: 150,
      encoding: {
        x: { field: 'layer', type: 'quantitative', title: 'layer', axis: { tickMinStep: 1 } },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom' } },
        tooltip: [{ field: 'label', title: 'layer' }, { field: 'series' }, { field: 'value', format: '.4f' }],
      },
      layer: [{ mark: { type: 'line' } }, { name: 'stat_points', mark: { type: 'point', filled: true, size: 30 } }],
    },
    resolve: { scale: { y: 'independent' } },
    config,
  } as TopLevelSpec;
}

/** Ecco-style ranking heatmap: rank of each target token at each layer, log colour scale. */
export function rankingSpec(r: RankingsResult, opts: { title?: string } = {}): TopLevelSpec {
  const xs = r.positions.map((p) => `${p.pos + 1} ${showToken(p.target.token, 12)}${p.predicted ? ' (pred.)' : ''}`);
  const ys = r.layers.map((l) => l.label);
  const maxRank = Math.max(10, ...r.positions.flatMap((p) => p.ranks));
  const values = r.positions.flatMap((p, i) =>
    r.layers.map((row, li) => ({
      x: xs[i],
      y: row.label,
      rank: p.ranks[li],
      prob: p.probs[li],
      desc: `layer ${row.label}, ${quoteToken(p.target.token)} at position ${p.pos + 1}: rank ${p.ranks[li]}, probability ${fmtProb(p.probs[li])}`,
      tip: {
        title: `layer ${row.label} · after ${quoteToken(r.tokens[p.pos])} (position ${p.pos})`,
        rows: [
          [p.predicted ? 'predicted token' : 'next token', quoteToken(p.target.token)],
          ['rank', String(p.ranks[li])],
          ['probability', fmtProb(p.probs[li])],
        ],
      } satisfies Tip,
    })),
  );
  return {
    $schema: SCHEMA,
    title: opts.title ?? 'Rank of the output token at each layer (1 = top)',
    data: { values },
    width: { step: 60 },
    height: { step: 22 },
    encoding: {
      x: { field: 'x', type: 'ordinal', sort: xs, axis: { title: 'output token (position)', orient: 'top', labelAngle: -40, labelLimit: 200 } },
      y: { field: 'y', type: 'ordinal', sort: [...ys].reverse(), axis: { title: 'layer' } },
      tooltip: { field: 'tip' },
    },
    layer: [
      {
        name: 'cells',
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: { color: { field: 'rank', type: 'quantitative', scale: { type: 'log', domain: [1, maxRank], scheme: 'purples', reverse: true }, legend: { title: 'rank (log)' } }, description: { field: 'desc' } },
      },
      {
        name: 'cell_text',
        mark: { type: 'text', fontSize: 10, aria: false },
        encoding: { text: { field: 'rank' }, color: { condition: { test: `datum.rank < ${Math.sqrt(maxRank)}`, value: 'white' }, value: '#111' } },
      },
    ],
    config,
  } as TopLevelSpec;
}

/** Candidate tokens at one position: rank (log, 1 at the top) and probability per layer. */
export function watchSpec(w: WatchResult, opts: { title?: string } = {}): TopLevelSpec {
  const values = w.layers.flatMap((row) =>
    w.watch.map((t, j) => ({ layer: row.layer, label: row.label, token: quoteToken(t.token), rank: row.ranks[j], prob: row.probs[j] })),
  );
  const order = w.watch.map((t) => quoteToken(t.token));
  const enc = (field: 'rank' | 'prob', title: string, log: boolean) => ({
    width: 300,
    height: 200,
    encoding: {
      x: { field: 'layer', type: 'quantitative', title: 'layer', axis: { tickMinStep: 1 } },
      y: log
        ? { field, type: 'quantitative', title, scale: { type: 'log', reverse: true, domainMin: 1 }, axis: { format: '~s' } }
        : { field, type: 'quantitative', title, scale: { zero: true }, axis: { format: '.2~g' } },
      color: { field: 'token', type: 'nominal', sort: order, title: 'candidate' },
      tooltip: [{ field: 'token', title: 'candidate' }, { field: 'label', title: 'layer' }, { field: 'rank' }, { field: 'prob', format: '.4g', title: 'probability' }],
    },
    layer: [{ mark: { type: 'line' } }, { name: field === 'rank' ? 'watch_points' : 'watch_prob_points', mark: { type: 'point', filled: true, size: 40 } }],
  });
  return {
    $schema: SCHEMA,
    title: opts.title ?? `Candidates after ${quoteText(w.tokens.slice(0, w.position + 1))}`,
    data: { values },
    hconcat: [enc('rank', 'rank (log, 1 = top)', true), enc('prob', 'probability', false)],
    config,
  } as TopLevelSpec;
}

/** Top-contributing FF neurons: coefficient × ‖value‖, with each value's top tokens. */
export function neuronsSpec(n: NeuronsResult, opts: { title?: string } = {}): TopLevelSpec {
  const values = n.neurons.map((x) => ({
    neuron: `L${x.layer} #${x.index}`,
    score: x.score,
    sign: x.score >= 0 ? 'positive' : 'negative',
    tokens: x.top.slice(0, 4).map((t) => showToken(t.token, 10)).join(' '),
    tip: {
      title: `layer ${x.layer}, neuron ${x.index}`,
      rows: [
        ['coefficient', x.coefficient.toFixed(4)],
        ['‖value‖', x.value_norm.toFixed(4)],
        ['score', x.score.toFixed(4)],
        ...x.top.slice(0, 8).map((t): [string, string] => [quoteToken(t.token), t.logit.toFixed(3)]),
      ],
      foot: `speaking probe: sp probe --neuron value:${x.layer},${x.index} (or ${x.layer},${x.index} for its key)`,
    } satisfies Tip,
  }));
  return {
    $schema: SCHEMA,
    title: opts.title ?? `FF neurons writing most at position ${n.position} ${quoteToken(n.tokens[n.position])}`,
    data: { values },
    width: 360,
    height: { step: 20 },
    encoding: {
      y: { field: 'neuron', type: 'nominal', sort: values.map((v) => v.neuron), title: null },
      tooltip: { field: 'tip' },
    },
    layer: [
      {
        name: 'bars',
        mark: { type: 'bar' },
        encoding: {
          x: { field: 'score', type: 'quantitative', title: 'coefficient × ‖value‖' },
          color: { field: 'sign', type: 'nominal', scale: { domain: ['positive', 'negative'], range: ['#3b75af', '#c44e52'] }, legend: null },
        },
      },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 10 }, encoding: { x: { datum: 0 }, text: { field: 'tokens' }, color: { value: '#111' } } },
    ],
    config,
  } as TopLevelSpec;
}

/** Bars of a probe's projection onto the vocabulary (top tokens). */
export function projectionSpec(top: Array<{ token: string; value: number }>, valueTitle: string, opts: { title?: string } = {}): TopLevelSpec {
  const values = top.map((t, i) => ({ token: `${i + 1}. ${showToken(t.token, 16)}`, value: t.value, tip: { title: quoteToken(t.token), rows: [[valueTitle, String(+t.value.toPrecision(4))]] } satisfies Tip }));
  return {
    $schema: SCHEMA,
    title: opts.title ?? 'Projection onto the vocabulary',
    data: { values },
    width: 260,
    height: { step: 16 },
    mark: { type: 'bar', color: '#3b75af' },
    encoding: {
      y: { field: 'token', type: 'nominal', sort: values.map((v) => v.token), title: null },
      x: { field: 'value', type: 'quantitative', title: valueTitle, axis: { tickCount: 4, format: '.2~g' } },
      tooltip: { field: 'tip' },
    },
    config,
  } as TopLevelSpec;
}
