/**
 * Self-contained HTML reports: Vega's browser build and the (pre-compiled) chart specs are inlined,
 * and a Content-Security-Policy of `default-src 'none'` guarantees that viewing the file makes no
 * network request at all. Hover tooltips come from a small handler below (top-k tables).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { LensResult, NeuronsResult, RankingsResult, SpeakingProbeResult, WatchResult } from '@sp/core';
import { SpError } from '@sp/core/light'; // light: no TensorFlow.js for a report
import type { TopLevelSpec } from 'vega-lite';
import { toVega } from './render.js';
import { lensGridSpec, lensStatsSpec, neuronsSpec, projectionSpec, rankingSpec, watchSpec } from './specs.js';
import { esc, quoteText, quoteToken } from './tokens.js';

const require = createRequire(import.meta.url);
let vegaSource: string | undefined;

/** Vega's UMD browser build, read once from the installed package (its exports map hides the file). */
function vegaBrowserBuild(): string {
  if (vegaSource === undefined) {
    const file = path.join(path.dirname(require.resolve('vega')), 'vega.min.js');
    vegaSource = fs.readFileSync(file, 'utf8').replace(/<\/script/gi, '<\\/script');
  }
  return vegaSource;
}

/** JSON that is safe inside <script>: no `<` can close the element or open a comment. */
function scriptJson(x: unknown): string {
  return JSON.stringify(x).replace(/</g, '\\u003c');
}

export interface Section {
  /** Element id (letters, digits, - and _). */
  id: string;
  heading: string;
  /** One paragraph of explanation (plain text). */
  intro?: string;
  /** A chart. */
  spec?: TopLevelSpec;
  /** Raw HTML content (already escaped), shown below the chart (beside it, in a card, with `card`). */
  html?: string;
  /** Draw the content and the chart side by side in a bordered card. */
  card?: boolean;
}

const CSS = `
:root { color-scheme: light; }
body { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; margin: 24px; color: #1d1d1f; background: #fff; max-width: 100%; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 6px; } h3 { font-size: 15px; margin: 0 0 8px; }
.sub { color: #555; margin: 0 0 12px; font-size: 13px; }
.intro { color: #333; font-size: 13px; max-width: 60em; margin: 0 0 8px; }
.chart { overflow-x: auto; }
.exports { font-size: 12px; margin: 4px 0; } .exports button { font-size: 12px; margin-right: 4px; }
#sp-tooltip { position: fixed; display: none; z-index: 10; background: #fff; border: 1px solid #999; border-radius: 4px;
  box-shadow: 0 2px 8px rgba(0,0,0,.18); padding: 6px 8px; font-size: 12px; pointer-events: none; max-width: 420px; }
#sp-tooltip.visible { display: block; }
#sp-tooltip table { border-collapse: collapse; } #sp-tooltip td { padding: 1px 6px 1px 0; font-family: 'DejaVu Sans Mono', monospace; white-space: pre; }
#sp-tooltip td:last-child { text-align: right; } .tt-title { font-weight: bold; margin-bottom: 4px; } .tt-foot { color: #555; margin-top: 4px; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 4px 16px 12px; margin: 16px 0; max-width: 1000px; }
.card-body { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; } .card-text { flex: 1 1 360px; }
.card .prompt code, .card li { font-family: 'DejaVu Sans Mono', monospace; font-size: 12px; white-space: pre-wrap; }
.card mark { background: #ffe08a; } .card ol { padding-left: 22px; } .card .meta { color: #555; font-size: 12px; }
table.data { border-collapse: collapse; font-size: 12px; } table.data td, table.data th { border-bottom: 1px solid #eee; padding: 2px 8px; text-align: left; }
`;

/** Runs in the page: renders every chart (SVG renderer, so what you see is DOM) and shows tooltips. */
const BOOT = `
(function () {
  var tip = document.getElementById('sp-tooltip');
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]; }); }
  function show(_h, ev, _item, value) {
    if (value === null || value === undefined || value === '') { tip.classList.remove('visible'); return; }
    var h = '';
    if (typeof value === 'object' && value.rows) {
      h = '<div class="tt-title">' + esc(value.title) + '</div><table>' + value.rows.map(function (r) {
        return '<tr><td>' + esc(r[0]) + '</td><td>' + esc(r[1]) + '</td></tr>'; }).join('') + '</table>';
      if (value.foot) h += '<div class="tt-foot">' + esc(value.foot) + '</div>';
    } else if (typeof value === 'object') {
      h = '<table>' + Object.keys(value).map(function (k) { return '<tr><td>' + esc(k) + '</td><td>' + esc(value[k]) + '</td></tr>'; }).join('') + '</table>';
    } else { h = esc(value); }
    tip.innerHTML = h;
    tip.classList.add('visible');
    var x = ev.clientX + 14, y = ev.clientY + 14, r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth) x = Math.max(0, ev.clientX - r.width - 14);
    if (y + r.height > window.innerHeight) y = Math.max(0, ev.clientY - r.height - 14);
    tip.style.left = x + 'px'; tip.style.top = y + 'px';
  }
  var specs = JSON.parse(document.getElementById('sp-specs').textContent);
  var views = window.spViews = {};
  window.spReady = Promise.all(specs.map(function (s) {
    var view = new vega.View(vega.parse(s.spec), { renderer: 'svg', container: '#' + s.id + ' .chart', hover: true });
    view.tooltip(show);
    views[s.id] = view;
    return view.runAsync();
  })).then(function () { document.body.setAttribute('data-ready', '1'); },
           function (e) { document.body.setAttribute('data-ready', 'error'); console.error(e); });
  document.querySelectorAll('button[data-export]').forEach(function (b) {
    b.addEventListener('click', function () {
      var v = views[b.getAttribute('data-chart')], kind = b.getAttribute('data-export');
      var url = kind === 'svg'
        ? v.toSVG(2).then(function (svg) { return 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg); })
        : v.toImageURL('png', 2);
      url.then(function (u) { var a = document.createElement('a'); a.href = u; a.download = b.getAttribute('data-chart') + '.' + kind; a.click(); });
    });
  });
})();
`;

/** A report page from sections; charts become live Vega views. */
export function reportHtml(title: string, sections: Section[], opts: { subtitle?: string } = {}): string {
  for (const s of sections) if (!/^[A-Za-z][\w-]*$/.test(s.id)) throw new SpError('BAD_INPUT', `report section id "${s.id}" must be letters, digits, - or _`);
  const charts = sections.filter((s) => s.spec).map((s) => ({ id: s.id, spec: toVega(s.spec!) }));
  const chart = (s: Section) => (s.spec ? `<div class="chart-box"><div class="exports">export: <button data-export="svg" data-chart="${s.id}">SVG</button><button data-export="png" data-chart="${s.id}">PNG</button></div><div class="chart"></div></div>` : '');
  const body = sections.map((s) => `<section id="${s.id}"${s.card ? ' class="card"' : ''}>
<h2>${esc(s.heading)}</h2>
${s.intro ? `<p class="intro">${esc(s.intro)}</p>` : ''}
${s.card ? `<div class="card-body"><div class="card-text">${s.html ?? ''}</div>${chart(s)}</div>` : `${chart(s)}\n${s.html ?? ''}`}
</section>`).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${esc(title)}</h1>
${opts.subtitle ? `<p class="sub">${esc(opts.subtitle)}</p>` : ''}
${body}
<div id="sp-tooltip" role="tooltip"></div>
<script>${vegaBrowserBuild()}</script>
<script id="sp-specs" type="application/json">${scriptJson(charts)}</script>
<script>${BOOT}</script>
</body>
</html>
`;
}

const LENS_INTRO = 'Each cell reads the residual stream at that layer and position through the final layer norm (statistics recomputed for that vector) and the unembedding: the text is the most probable next token, the colour its probability. Hover a cell for the top-k tokens.';
const STATS_INTRO = 'Entropy of the lens distribution, its KL divergence from the model’s output distribution, and the top-1 probability, per layer: averaged over positions and at the last position.';

function promptText(tokens: string[]): string {
  return quoteText(tokens);
}

/** Layer-prediction grid and per-layer statistics (and, given, the top FF neurons) of one or more prompts. */
export function lensReportHtml(lens: LensResult | LensResult[], opts: { title?: string; neurons?: NeuronsResult | NeuronsResult[] } = {}): string {
  const all = Array.isArray(lens) ? lens : [lens];
  const sections: Section[] = all.flatMap((l, i) => [
    { id: `lens-grid-${i}`, heading: `Layer predictions: ${promptText(l.tokens)}`, intro: LENS_INTRO, spec: lensGridSpec(l, { title: `${l.layers.length} rows (${l.view}) × ${l.tokens.length} positions` }) },
    { id: `lens-stats-${i}`, heading: 'Per-layer statistics', intro: STATS_INTRO, spec: lensStatsSpec(l) },
  ]);
  const neurons = opts.neurons === undefined ? [] : Array.isArray(opts.neurons) ? opts.neurons : [opts.neurons];
  neurons.forEach((n, i) => sections.push(neuronsSection(n, i)));
  return reportHtml(opts.title ?? 'Logit lens', sections, { subtitle: `model ${all[0].model}` });
}

export function neuronsSection(n: NeuronsResult, i = 0): Section {
  const rows = n.neurons
    .map((x) => `<tr><td>${x.layer}</td><td>${x.index}</td><td>${x.coefficient.toFixed(4)}</td><td>${x.value_norm.toFixed(4)}</td><td>${x.score.toFixed(4)}</td><td>${esc(x.top.slice(0, 8).map((t) => quoteToken(t.token)).join(' '))}</td></tr>`)
    .join('');
  return {
    id: `neurons-${i}`,
    heading: `Top FF neurons at position ${n.position} ${quoteToken(n.tokens[n.position])}`,
    intro: 'Each FF neuron adds coefficient × value vector to the stream; bars rank neurons by coefficient × ‖value‖, with the tokens their value vector promotes (E·v). Take a (layer, index) to a speaking probe to hear what the neuron “says”.',
    spec: neuronsSpec(n),
    html: `<table class="data"><tr><th>layer</th><th>index</th><th>coefficient</th><th>‖value‖</th><th>score</th><th>top tokens of E·v</th></tr>${rows}</table>`,
  };
}

/** Ranking heatmap(s) and/or watch comparison(s). */
export function rankReportHtml(input: { rankings?: RankingsResult | RankingsResult[]; watch?: WatchResult | WatchResult[] }, opts: { title?: string } = {}): string {
  const list = <T,>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
  const ranks = list(input.rankings);
  const watch = list(input.watch);
  if (ranks.length + watch.length === 0) throw new SpError('BAD_INPUT', 'rankReportHtml: give rankings and/or watch results');
  const sections: Section[] = [
    ...ranks.map((r, i): Section => ({
      id: `rank-${i}`,
      heading: `Rankings: ${promptText(r.tokens)}`,
      intro: 'Rank of each output token (the next token of the text, or the model’s own prediction) at every layer; 1 = the lens’ top prediction. The colour scale is logarithmic, as in Ecco.',
      spec: rankingSpec(r),
    })),
    ...watch.map((w, i): Section => ({
      id: `watch-${i}`,
      heading: `Watch: ${w.watch.map((t) => quoteToken(t.token)).join(' vs ')} after ${promptText(w.tokens.slice(0, w.position + 1))}`,
      intro: 'Rank (log scale, 1 at the top) and probability of each candidate token at every layer.',
      spec: watchSpec(w),
    })),
  ];
  const model = ranks[0]?.model ?? watch[0].model;
  return reportHtml(opts.title ?? 'Token rankings', sections, { subtitle: `model ${model}` });
}

/**
 * The part of a speaking-probe result the cards read. @sp/core's SpeakingProbeResult has this shape
 * (checked at compile time below); hand-made results need only the first four fields.
 */
export interface ProbeResultLike {
  prompt_ids: number[];
  neuron_positions: number[];
  samples: Array<{ ids: number[]; text: string; finish?: string }>;
  projection: { top: ProbeToken[]; top_normalized?: ProbeToken[]; bottom?: ProbeToken[] } | null;
  model?: string;
  /** The template; `prompt_text`: as the model reads it, tags such as ` <neuron>` in place. */
  prompt?: string;
  prompt_text?: string;
  /** Decoded prompt tokens ('' at virtual positions), when there is no prompt_text. */
  prompt_tokens?: string[];
  virtual_tokens?: Array<{ position: number; tag: string; neuron: number }>;
  neurons?: Array<{ label: string; tags: string[]; norm: number; inject_layer: number | null; scale?: number }>;
  options?: { do_sample: boolean; samples: number; temperature: number; top_k: number; top_p: number; repetition_penalty: number; seed: number | null };
  /** For hand-made results: the neuron probed. */
  layer?: number;
  index?: number;
}
export interface ProbeToken {
  id: number;
  token: string;
  score?: number;
  prob?: number;
  logit?: number;
}

/** Compile-time check that core's result fits the cards. */
const fits = (r: SpeakingProbeResult): ProbeResultLike => r;
void fits;

/** Speaking-probe result cards: the probe, its sampled explanations and its vocabulary projection. */
export function probeReportHtml(result: ProbeResultLike | SpeakingProbeResult | Array<ProbeResultLike | SpeakingProbeResult>, opts: { title?: string } = {}): string {
  const all: ProbeResultLike[] = Array.isArray(result) ? result : [result];
  if (all.length === 0) throw new SpError('BAD_INPUT', 'probeReportHtml: no probe results');
  const sections: Section[] = all.map((r, i) => {
    const top = r.projection?.top ?? [];
    const key = (['score', 'prob', 'logit'] as const).find((k) => typeof top[0]?.[k] === 'number');
    const title = key === 'score' ? 'v · Eᵀ: tokens the vector points to' : 'Projection onto the vocabulary';
    return {
      id: `probe-${i}`,
      heading: probeHeading(r, i),
      spec: key ? projectionSpec(top.map((t) => ({ token: t.token, value: t[key] as number })), key, { title }) : undefined,
      html: probeCard(r),
      card: true,
    };
  });
  const model = all.find((r) => r.model)?.model;
  return reportHtml(opts.title ?? 'Speaking probes', sections, { subtitle: model ? `model ${model}` : undefined });
}

function probeHeading(r: ProbeResultLike, i: number): string {
  if (r.neurons?.length) return r.neurons.map((n) => `${n.tags.join(' ')} = ${n.label}`).join(' · ');
  if (r.layer !== undefined && r.index !== undefined) return `Layer ${r.layer}, neuron ${r.index}`;
  return `Probe ${i + 1}`;
}

function probeCard(r: ProbeResultLike): string {
  let prompt: string;
  if (r.prompt_text !== undefined) {
    // mark each tag (the virtual tokens) in the prompt as the model reads it
    const tags = [...new Set((r.virtual_tokens ?? []).map((v) => v.tag))];
    prompt = esc(r.prompt_text);
    for (const t of tags) prompt = prompt.split(esc(t)).join(`<mark title="virtual token">${esc(t)}</mark>`);
  } else if (r.prompt_tokens) {
    const marked = new Set(r.neuron_positions);
    prompt = r.prompt_tokens.map((t, i) => (marked.has(i) ? `<mark title="probe vector at position ${i}">${esc(t === '' ? '⟨v⟩' : t)}</mark>` : esc(t))).join('');
  } else {
    prompt = esc(r.prompt ?? r.prompt_ids.join(' '));
  }
  const samples = r.samples.map((s) => `<li>${esc(s.text)}${s.finish && s.finish !== 'length' ? ` <span class="meta">[${esc(s.finish)}]</span>` : ''}</li>`).join('');
  const o = r.options;
  const how = o ? (o.do_sample ? `sampled: temperature ${o.temperature}, top-k ${o.top_k}, top-p ${o.top_p}, repetition penalty ${o.repetition_penalty}${o.seed !== null ? `, seed ${o.seed}` : ''}` : `greedy, repetition penalty ${o.repetition_penalty}`) : '';
  const neurons = (r.neurons ?? []).map((n) => `${esc(n.tags.join(' '))}: ‖v‖ = ${n.norm.toFixed(4)}, ${n.inject_layer === null ? 'as the token embedding' : `injected entering block ${n.inject_layer}`}`);
  const normalized = r.projection?.top_normalized?.length ? `<p class="meta">nearest tokens (unit-norm embeddings): ${esc(r.projection.top_normalized.slice(0, 10).map((t) => quoteToken(t.token)).join(' '))}</p>` : '';
  return `<p class="prompt">Prompt: <code>${prompt}</code></p>
<p class="meta">virtual token at position${r.neuron_positions.length === 1 ? '' : 's'} ${r.neuron_positions.join(', ')} · ${r.samples.length} sample${r.samples.length === 1 ? '' : 's'}${how ? ` · ${how}` : ''}</p>
${neurons.map((n) => `<p class="meta">${n}</p>`).join('\n')}
<ol class="samples">${samples}</ol>
${normalized}`;
}
