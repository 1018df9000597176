// The atlas page: hash routing (#/search?…, #/neuron/L/I?kind=…) so every view is a link; all text
// goes in through textContent (tokens may be any bytes), never innerHTML.
import { displayText, displayToken } from './display.js';

const $ = (id) => document.getElementById(id);
const FIELDS = ['token', 'text', 'layer', 'kind', 'min_example_overlap', 'min_probe_overlap', 'sort'];
const LIMIT = 25;

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const tok = (t) => el('span', { class: 'tok', title: JSON.stringify(t), text: displayToken(t) });
const fmt = (x, d = 3) => (x === null || x === undefined ? '–' : Number.isInteger(x) ? String(x) : Number(x).toPrecision(d));

async function api(path) {
  const r = await fetch(path, { headers: { accept: 'application/json' } });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error ?? `HTTP ${r.status}`);
  return body;
}

function setStatus(msg) {
  $('status').textContent = msg ?? '';
}

function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/';
  const [p, qs] = h.split('?');
  return { parts: p.split('/').filter(Boolean), params: new URLSearchParams(qs ?? '') };
}

// ---- search ----
function formParams() {
  const p = new URLSearchParams();
  for (const f of FIELDS) {
    const v = document.querySelector(`#search [name=${f}]`).value;
    if (v !== '') p.set(f, v);
  }
  return p;
}
function fillForm(params) {
  for (const f of FIELDS) document.querySelector(`#search [name=${f}]`).value = params.get(f) ?? '';
}

async function showSearch(params) {
  fillForm(params);
  const view = $('view');
  const offset = Number(params.get('offset') ?? 0);
  const q = new URLSearchParams(params);
  q.set('limit', String(LIMIT));
  const res = await api(`/api/search?${q}`);
  const rows = res.hits.map((h) => {
    const href = `#/neuron/${h.layer}/${h.index}?kind=${h.kind}`;
    return el('tr', { class: 'hit', 'data-layer': h.layer, 'data-index': h.index, onclick: () => { location.hash = href; } },
      el('td', {}, el('a', { href, class: 'neuron-link', text: `${h.kind} L${h.layer} #${h.index}` })),
      el('td', { class: 'num', text: h.rank === null ? '–' : String(h.rank + 1) }),
      el('td', { class: 'num', text: fmt(h.score) }),
      el('td', { class: 'num', text: fmt(h.scores.example_projection_overlap) }),
      el('td', { class: 'num', text: fmt(h.scores.probe_projection_overlap) }),
      el('td', {}, h.top.map(tok)));
  });
  const pageLink = (o, label) => {
    const p = new URLSearchParams(params);
    if (o > 0) p.set('offset', String(o)); else p.delete('offset');
    return el('a', { href: `#/search?${p}`, text: label });
  };
  view.replaceChildren(
    el('h2', { text: `${res.total} neuron${res.total === 1 ? '' : 's'}` }),
    res.hits.length === 0 ? el('p', { class: 'empty', text: 'No neuron matches.' })
      : el('table', { class: 'data', id: 'results' },
        el('thead', {}, el('tr', {}, ['neuron', 'rank', 'score', 'example overlap', 'probe overlap', 'top tokens'].map((t) => el('th', { text: t })))),
        el('tbody', {}, rows)),
    el('div', { class: 'pager' },
      offset > 0 ? pageLink(Math.max(0, offset - LIMIT), '← previous') : null,
      res.total > 0 ? el('span', { class: 'sub', text: `${offset + 1}–${offset + res.hits.length} of ${res.total}` }) : null,
      offset + LIMIT < res.total ? pageLink(offset + LIMIT, 'next →') : null));
}

// ---- neuron ----
function projList(title, list, id) {
  return el('div', {},
    el('h3', { text: title }),
    el('table', { class: 'data', id },
      el('thead', {}, el('tr', {}, el('th', { text: '#' }), el('th', { text: 'token' }), el('th', { text: 'id' }), el('th', { text: 'score' }))),
      el('tbody', {}, list.map((t, i) => el('tr', {}, el('td', { class: 'num', text: String(i + 1) }), el('td', {}, tok(t.token)), el('td', { class: 'num', text: String(t.id) }), el('td', { class: 'num', text: fmt(t.score, 4) }))))));
}

function examplesTable(examples) {
  const context = (e) => e.context.map((t, i) => (i === e.center ? el('mark', { title: JSON.stringify(t), text: displayToken(t) }) : displayText(t)));
  const row = (e) => el('tr', {},
    el('td', { class: 'num', text: fmt(e.activation, 4) }), el('td', { class: 'num', text: String(e.doc) }), el('td', { class: 'num', text: String(e.position) }),
    el('td', { class: 'context' }, context(e)));
  return el('table', { class: 'data', id: 'examples' },
    el('thead', {}, el('tr', {}, ['activation', 'doc', 'position', 'context'].map((t) => el('th', { text: t })))),
    el('tbody', {}, examples.map(row)));
}

async function embedChart(target, spec) {
  // vegaEmbed with only the export actions: no "open in editor" link leaving the machine.
  await window.vegaEmbed(target, spec, { renderer: 'svg', actions: { export: true, source: false, compiled: false, editor: false } });
}

async function showNeuron(layer, index, params) {
  const q = new URLSearchParams();
  for (const k of ['kind', 'model_digest', 'settings_digest']) if (params.get(k)) q.set(k, params.get(k));
  const [rec, view] = await Promise.all([api(`/api/neuron/${layer}/${index}?${q}`), api(`/api/neuron/${layer}/${index}/view?${q}`)]);
  const norm = params.get('norm') === '1';
  const listKey = (side) => (norm ? `${side}_normalized` : side);
  const chartBox = el('div', { id: 'chart' });
  const chartBottom = el('div', { id: 'chart-bottom' });
  const toggleHref = (n) => {
    const p = new URLSearchParams(params);
    if (n) p.set('norm', '1'); else p.delete('norm');
    return `#/neuron/${layer}/${index}?${p}`;
  };
  const s = rec.scores;
  const copy = el('button', { type: 'button', id: 'copy-cmd', text: 'copy', onclick: async () => {
    try { await navigator.clipboard.writeText(view.reprobe); copy.textContent = 'copied'; } catch { copy.textContent = 'select and copy'; }
  } });
  const scan = view.scan;
  $('view').replaceChildren(
    el('h2', { id: 'neuron-title', text: `FF ${rec.kind} L${rec.layer} #${rec.index}` }),
    scan ? el('p', { class: 'sub', text: `model ${scan.model} · prompt ${scan.settings.promptName} · ${scan.settings.samples} samples · seed ${scan.settings.seed} · scan ${scan.settingsDigest.slice(0, 12)}` }) : null,
    el('table', { class: 'data', id: 'scores' }, el('tbody', {},
      el('tr', {}, el('th', { text: 'example–projection overlap' }), el('td', { class: 'num', text: fmt(s.example_projection_overlap) })),
      el('tr', {}, el('th', { text: 'probe–projection overlap' }), el('td', { class: 'num', text: fmt(s.probe_projection_overlap) })))),
    view.reprobe ? el('div', {}, el('h3', { text: 'Re-probe it' }), el('div', { class: 'cmd' }, el('code', { id: 'reprobe', text: view.reprobe }), copy)) : null,
    el('h2', { text: 'Projection onto the vocabulary' }),
    el('p', { class: 'toggle' }, el('a', { href: toggleHref(false), id: 'raw-toggle', 'aria-pressed': String(!norm), text: 'raw v·E' }), ' ',
      el('a', { href: toggleHref(true), id: 'norm-toggle', 'aria-pressed': String(norm), text: 'normalised v·E/‖E‖' })),
    el('div', { class: 'cols' }, chartBox, chartBottom),
    el('div', { class: 'cols' }, projList('top', rec.projection[listKey('top')], 'proj-top'), projList('bottom', rec.projection[listKey('bottom')], 'proj-bottom')),
    el('h2', { text: `Probe samples (${rec.samples.length})` }),
    rec.samples.length === 0 ? el('p', { class: 'empty', text: 'No probe samples in this scan.' })
      : el('ol', { class: 'samples', id: 'samples' }, rec.samples.map((x) => el('li', { class: 'sample', text: displayText(x.text) }))),
    el('h2', { text: `Max-activating examples (${rec.examples.length})` }),
    rec.examples.length === 0 ? el('p', { class: 'empty', text: 'No corpus examples in this scan.' })
      : examplesTable(rec.examples));
  await Promise.all([embedChart(chartBox, view.charts[listKey('top')]), embedChart(chartBottom, view.charts[listKey('bottom')])]);
}

// ---- header ----
async function showScans() {
  const [info, scans] = await Promise.all([api('/api/info'), api('/api/scans')]);
  $('store').textContent = info.title;
  const layers = [...new Set(scans.flatMap((s) => s.layers))].sort((a, b) => a - b);
  $('f-layer').append(...layers.map((l) => el('option', { value: String(l), text: String(l) })));
  $('scans').replaceChildren(...scans.map((s) => el('div', { class: 'scan', text: `${s.model} · ${s.settings.kind}s · layers ${s.layers.join(',')} · neurons ${s.neurons.start}–${s.neurons.end - 1} · ${s.neuronsDone} neurons, ${s.unitsDone}/${s.unitsTotal} units done` })));
}

async function route() {
  setStatus('');
  document.body.removeAttribute('data-ready');
  const { parts, params } = parseHash();
  try {
    if (parts[0] === 'neuron' && parts.length === 3) await showNeuron(parts[1], parts[2], params);
    else await showSearch(params);
    document.body.setAttribute('data-ready', '1');
  } catch (e) {
    $('view').replaceChildren();
    setStatus(`error: ${e.message}`);
    document.body.setAttribute('data-ready', 'error');
  }
}

$('search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  location.hash = `#/search?${formParams()}`;
});
window.addEventListener('hashchange', route);
showScans().then(route, (e) => { setStatus(`error: ${e.message}`); document.body.setAttribute('data-ready', 'error'); });
