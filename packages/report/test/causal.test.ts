/**
 * Causal-toolbox reports in Node: the numbers in each spec are the input's, the patching
 * normalisation and the DLA top-k/"other" sum against hand values, bad shapes refused with one
 * SpError line, SVG that is valid XML (with byte tokens) and PNG that renders, self-contained HTML.
 */
import { SpError } from '@sp/core';
import {
  attentionReportHtml, attentionSpec, attributionSpec, attrReportHtml, dlaBars, dlaReportHtml, dlaSpec, patchingSpec, patchNormalize, patchReportHtml, showToken, toPng, toSvg,
  type AttentionResultLike, type AttrResultLike, type DlaResultLike, type PatchResultLike,
} from '@sp/report';
import { imageStats } from './browser.js';
import { attention, attr, dla, EVIL, patch, patchZ, TOKENS } from './causal-fixture.js';
import { badXmlChars, byteTokens } from '../../core/test/tokenizer/byte-tokens.js';

type Data<T> = { data: { values: T[] } };
const data = <T,>(spec: unknown) => (spec as Data<T>).data.values;
type Cell = { x: string; y: string; value: number; norm: number; tip: { title: string; rows: Array<[string, string]> } };

/** Valid XML characters, and resvg (a strict XML parser) renders it with real ink. */
async function expectRenders(svg: string): Promise<void> {
  expect(svg.startsWith('<svg')).toBe(true);
  expect(badXmlChars(svg)).toEqual([]);
  const png = Buffer.from(await toPng(svg, { scale: 1 }));
  expect(imageStats(png).inked).toBeGreaterThan(0.01);
}
/** The one-line SpError a malformed result gets. */
function expectBad(f: () => unknown, msg: string | RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(SpError.is(err)).toBe(true);
  expect((err as SpError).message).toMatch(msg);
  expect((err as SpError).message).not.toContain('\n');
}
const xmlText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

describe('activation patching', () => {
  test('normalisation (v − corrupt)/(clean − corrupt) against hand values', () => {
    const { mode, f } = patchNormalize({ clean_metric: 3, corrupt_metric: -1 });
    expect(mode).toBe('normalized');
    expect([-1, 1, 3, 5, -3].map(f)).toEqual([0, 0.5, 1, 1.5, -0.5]);
    // equal metrics: the ratio is undefined, the difference is shown
    const d = patchNormalize({ clean_metric: 2, corrupt_metric: 2 });
    expect(d.mode).toBe('difference');
    expect([2, 3.5, 0].map(d.f)).toEqual([0, 1.5, -2]);
  });

  test('the heatmap data is the input: one cell per (layer, position), in order, labelled with tokens', () => {
    const r = patch();
    const spec = patchingSpec(r) as unknown as Data<Cell> & { title: string; layer: Array<{ encoding: { color?: { scale: { domain: number[] }; legend: { title: string } } } }> };
    const cells = spec.data.values;
    expect(cells).toHaveLength(3 * 6);
    expect(cells.map((c) => c.value)).toEqual(r.values.flat());
    expect(cells.map((c) => c.norm)).toEqual(r.values.flat().map((v) => (v + 1) / 4));
    expect(cells.map((c) => c.y)).toEqual(['0', '0', '0', '0', '0', '0', '1', '1', '1', '1', '1', '1', '2', '2', '2', '2', '2', '2']);
    expect(cells.slice(0, 6).map((c) => c.x)).toEqual(TOKENS.map((t, p) => `${p} ${showToken(t, 12)}`));
    expect(cells[4].x).toBe('4 ␛');
    // tooltip: the exact value, every digit
    expect(cells[5].tip.rows[0]).toEqual(['patched metric', '0.123456789']);
    expect(cells[5].tip.title).toBe('resid_pre · layer 0 · position 5 " gave"');
    // colour scale symmetric about 0 (= the corrupt run), wide enough for the largest |normalised|
    expect(spec.layer[0].encoding.color!.scale.domain).toEqual([-1.5, 1.5]);
    expect(spec.layer[0].encoding.color!.legend.title).toBe('(patched − corrupt) / (clean − corrupt)');
    expect(spec.title).toBe('Activation patching (resid_pre): recovery of logit(" John") − logit(" Mary"), clean 3, corrupt -1');
  });

  test('site z: layer × head cells', () => {
    const r = patchZ();
    const cells = data<Cell>(patchingSpec(r));
    expect(cells.map((c) => [c.y, c.x, c.value, c.norm])).toEqual([
      ['0', 'H0', 0.5, 0.25], ['0', 'H1', -0.25, -0.125], ['0', 'H2', 2, 1],
      ['1', 'H0', 1, 0.5], ['1', 'H1', 0, 0], ['1', 'H2', 0.1, 0.05],
    ]);
  });

  test('malformed results: one clear SpError line', () => {
    expectBad(() => patchingSpec({ ...patch(), values: patch().values.slice(0, 2) }), 'patching result: values has 2 entries, expected 3');
    expectBad(() => patchingSpec({ ...patch(), values: [[1, 2], [3, 4], [5, 6]] }), 'values[0] (layer 0) has 2 entries, expected 6');
    expectBad(() => patchingSpec({ ...patch(), values: [[1, 2, 3, 4, 5, NaN], ...patch().values.slice(1)] }), 'values[0] (layer 0)[5] must be a finite number');
    expectBad(() => patchingSpec({ ...patchZ(), heads: undefined }), 'site z patches heads: heads is missing');
    expectBad(() => patchingSpec({ ...patch(), tokens: TOKENS.slice(0, 3) }), 'position 3 has no token');
    expectBad(() => patchingSpec({ ...patch(), values: [[[1]], [[1]], [[1]]] } as unknown as PatchResultLike), 'nested deeper');
    expectBad(() => patchingSpec({ ...patch(), clean_metric: '3' } as unknown as PatchResultLike), 'clean_metric must be a finite number (got "3")');
    expectBad(() => patchReportHtml(null as unknown as PatchResultLike), 'patching result: expected an object');
  });
});

describe('attribution', () => {
  test('the strip covers every token once, in reading order, boxes not overlapping; values are the input', () => {
    const r = attr();
    type Box = { x0: number; x1: number; y0: number; y1: number; pos: number; value: number; token: string; target: boolean };
    const spec = attributionSpec(r) as unknown as Data<Box> & { width: number; title: { text: string; subtitle: string }; layer: Array<{ encoding: { color?: { scale: { domain: number[] } } } }> };
    const boxes = spec.data.values;
    expect(boxes.map((b) => b.pos)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(boxes.map((b) => b.value)).toEqual(r.attributions);
    expect(boxes.map((b) => b.token)).toEqual(TOKENS.map((t) => showToken(t, 16)));
    expect(boxes.map((b) => b.target)).toEqual([false, false, false, false, false, true]);
    for (let i = 1; i < boxes.length; i++) {
      const [a, b] = [boxes[i - 1], boxes[i]];
      expect(b.y0 > a.y0 || (b.y0 === a.y0 && b.x0 > a.x1)).toBe(true);
    }
    for (const b of boxes) expect(b.x1).toBeLessThanOrEqual(spec.width);
    // symmetric diverging scale: sign distinguishable, intensity relative to the largest |value|
    expect(spec.layer[0].encoding.color!.scale.domain).toEqual([-1.6, 1.6]);
    expect(spec.title.text).toBe('grad-x-input attribution to " to" (id 284)');
    expect(spec.title.subtitle).toBe('target logit 12.5 at position 5 · Σ attributions -0.55');
  });

  test('long prompts wrap into rows and keep every token', () => {
    const n = 200;
    const r: AttrResultLike = { ...attr(), ids: Array.from({ length: n }, (_, i) => i), tokens: Array.from({ length: n }, (_, i) => ` w${i}`), attributions: Array.from({ length: n }, (_, i) => Math.sin(i)), position: n - 1, target_token: undefined };
    const boxes = data<{ pos: number; y0: number }>(attributionSpec(r));
    expect(boxes.map((b) => b.pos)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(new Set(boxes.map((b) => b.y0)).size).toBeGreaterThan(5);
    expect((attributionSpec(r) as unknown as { title: { text: string } }).title.text).toBe('grad-x-input attribution to token id 284');
  });

  test('malformed results: one clear SpError line', () => {
    expectBad(() => attributionSpec({ ...attr(), attributions: [1, 2] }), 'attribution result: attributions has 2 entries, expected 6');
    expectBad(() => attributionSpec({ ...attr(), tokens: TOKENS.slice(1) }), 'tokens has 5 entries, expected 6');
    expectBad(() => attributionSpec({ ...attr(), position: 6 }), 'position 6 is out of range [0, 5]');
    expectBad(() => attributionSpec({ ...attr(), target_id: -1 }), 'target_id must be a non-negative integer');
    expectBad(() => attributionSpec({ ...attr(), attributions: [1, 2, 3, 4, 5, Infinity] }), 'attributions[5] must be a finite number');
  });
});

describe('direct logit attribution', () => {
  test('top 20 by |value| against a hand ranking, the other 10 summed, the total last', () => {
    const r = dla();
    const bars = dlaBars(r);
    expect(bars).toHaveLength(22);
    // |value| = 0.1 + ((7 i) mod 30) / 10 is a permutation: the top 20 are |value| 3.0 … 1.1
    const byAbs = [...r.components].sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
    expect(bars.slice(0, 20).map((b) => b.name)).toEqual(byAbs.slice(0, 20).map((c) => c.name));
    expect(bars.slice(0, 20).map((b) => +Math.abs(b.value).toFixed(6))).toEqual(Array.from({ length: 20 }, (_, i) => +(3 - i / 10).toFixed(6)));
    // the largest: 7i ≡ 29 (mod 30) → i = 17 (7 · 17 = 119), positive as 17 mod 3 ≠ 0; the smallest kept, 1.1: 7i ≡ 10 → i = 10, positive as well
    expect(bars[0]).toEqual({ name: r.components[17].name, value: r.components[17].value, count: 1, kind: 'component' });
    expect(bars[0].value).toBeCloseTo(3, 12);
    expect(bars[19]).toEqual({ name: r.components[10].name, value: r.components[10].value, count: 1, kind: 'component' });
    expect(bars[19].value).toBeCloseTo(1.1, 12);
    let other = 0;
    for (const c of r.components) if (Math.abs(c.value) < 1.05) other += c.value;
    expect(bars[20].name).toBe('other (10)');
    expect(bars[20].kind).toBe('other');
    expect(bars[20].value).toBeCloseTo(other, 12);
    expect(bars[21]).toEqual({ name: 'total', value: r.total, count: 30, kind: 'total' });
    // bars and other sum to the total
    expect(bars.slice(0, 21).reduce((a, b) => a + b.value, 0)).toBeCloseTo(r.total, 10);
  });

  test('few components: no "other"; ties keep input order; the spec shows the bars in order', () => {
    const r: DlaResultLike = { components: [{ name: 'embed', value: 1 }, { name: 'L0.mlp', value: -2 }, { name: 'L0.H1', value: 2 }], total: 1 };
    expect(dlaBars(r).map((b) => [b.name, b.value])).toEqual([['L0.mlp', -2], ['L0.H1', 2], ['embed', 1], ['total', 1]]);
    expect(dlaBars(r, 1).map((b) => [b.name, b.value])).toEqual([['L0.mlp', -2], ['other (2)', 3], ['total', 1]]);
    const spec = dlaSpec(r) as unknown as Data<{ name: string; value: number; kind: string }> & { title: { text: string; subtitle: string } };
    expect(spec.data.values.map((v) => [v.name, v.value, v.kind])).toEqual([['L0.mlp', -2, 'negative'], ['L0.H1', 2, 'positive'], ['embed', 1, 'positive'], ['total', 1, 'total']]);
    expect(spec.title.text).toBe('Direct logit attribution to logit');
    expect((dlaSpec(dla()) as unknown as { title: { text: string } }).title.text).toBe('Direct logit attribution to logit(" John") − logit(" Mary") at position 5 " gave"');
  });

  test('malformed results: one clear SpError line', () => {
    expectBad(() => dlaSpec({ components: [], total: 0 }), 'DLA result: components is empty');
    expectBad(() => dlaSpec({ components: [{ name: 'embed', value: 1 }, { name: 'embed', value: 2 }], total: 3 }), 'component "embed" appears twice');
    expectBad(() => dlaSpec({ components: [{ name: 'embed' }], total: 3 } as unknown as DlaResultLike), 'components[0].value (embed) must be a finite number');
    expectBad(() => dlaSpec({ components: [{ name: 'embed', value: 1 }] } as unknown as DlaResultLike), 'total must be a finite number');
    expectBad(() => dlaBars(dla(), 0), 'top must be a positive integer');
  });
});

describe('attention', () => {
  test('one cell per (head, query, key) with the pattern value; facets in head order', () => {
    const r = attention();
    type A = { head: string; q: string; k: string; value: number };
    const spec = attentionSpec(r, { layer: 1 }) as unknown as Data<A> & { facet: { sort: string[] }; title: string };
    const cells = spec.data.values;
    expect(cells).toHaveLength(3 * 6 * 6);
    expect(cells.map((c) => c.value)).toEqual(r.layers[1].heads.flat(2));
    expect(spec.facet.sort).toEqual(['L1.H0', 'L1.H1', 'L1.H2']);
    expect(cells[6 * 6 + 6 + 1]).toMatchObject({ head: 'L1.H1', q: '1  Mary', k: '1  Mary' });
    expect(spec.title).toBe('Attention patterns, layer 1 (3 heads)');
    expect(data<A>(attentionSpec(r)).map((c) => c.value)).toEqual(r.layers[0].heads.flat(2)); // default: the first layer
  });

  test('malformed results: one clear SpError line', () => {
    const r = attention();
    expectBad(() => attentionSpec(r, { layer: 7 }), 'layer 7 is not in the result (layers 0, 1)');
    expectBad(() => attentionSpec({ ...r, layers: [{ layer: 0, heads: [r.layers[0].heads[0].slice(1)] }] }), 'attention result: layer 0 head 0 has 5 entries, expected 6');
    expectBad(() => attentionSpec({ ...r, layers: [{ layer: 0, heads: [r.layers[0].heads[0].map((row) => row.slice(1))] }] }), 'layer 0 head 0 query 0 has 5 entries, expected 6');
    expectBad(() => attentionSpec({ ...r, layers: [{ layer: 0, heads: [r.layers[0].heads[0].map((row) => row.map((v) => v * 3))] }] }), 'is not an attention weight in [0, 1]');
    expectBad(() => attentionReportHtml({ tokens: TOKENS, layers: [] }), 'attention result: layers is empty');
    expectBad(() => attentionReportHtml({ tokens: TOKENS } as unknown as AttentionResultLike), 'layers must be an array');
  });
});

describe('SVG, PNG and HTML', () => {
  test('every report as SVG (valid XML) and PNG; the SVG shows the token labels and the cells', async () => {
    const p = await toSvg(patchingSpec(patch()));
    await expectRenders(p);
    expect(p.match(/<g class="mark-rect role-mark cells_marks"[\s\S]*?<\/g>/)![0].match(/<path/g)).toHaveLength(18);
    for (const t of ['0 When', '4 ␛', '1.50', '-0.50', '0.28']) expect(p).toContain(`>${t}</text>`);
    await expectRenders(await toSvg(patchingSpec(patchZ())));

    const a = await toSvg(attributionSpec(attr()));
    await expectRenders(a);
    for (const t of TOKENS) expect(a).toContain(`>${xmlText(showToken(t, 16).trim())}</text>`); // Vega drops the leading space
    expect(a.match(/<g class="mark-rect role-mark boxes_marks"[\s\S]*?<\/g>/)![0].match(/<path/g)).toHaveLength(6);

    const d = await toSvg(dlaSpec(dla()));
    await expectRenders(d);
    expect(d.match(/<g class="mark-rect role-mark bars_marks"[\s\S]*?<\/g>/)![0].match(/<path/g)).toHaveLength(22);
    for (const t of ['other (10)', 'total', 'L0.mlp']) expect(d).toContain(`>${t}</text>`);

    const at = await toSvg(attentionSpec(attention()));
    await expectRenders(at);
    for (const h of ['L0.H0', 'L0.H1', 'L0.H2']) expect(at).toContain(`>${h}</text>`);
  });

  test("GPT-2's byte tokens (NUL, ESC, DEL, lone bytes…) in every report: valid SVG and PNG", async () => {
    const bt = await byteTokens();
    for (let g = 0; g < 256; g += 32) {
      const ids = bt.byteIds.slice(g, g + 32);
      const tokens = ids.map((id) => bt.tok.tokenString(id));
      const n = tokens.length;
      const positions = tokens.map((_, i) => i);
      await expectRenders(await toSvg(patchingSpec({ site: 'resid_pre', clean_metric: 1, corrupt_metric: 0, layers: [0, 1], positions, values: [positions.map((i) => i / n), positions.map((i) => -i / n)], tokens })));
      const as = await toSvg(attributionSpec({ ids, tokens, target_id: ids[0], target_token: tokens[0], position: n - 1, method: 'grad', target_value: 1, attributions: positions.map((i) => i - n / 2) }));
      await expectRenders(as);
      for (const t of tokens) expect(as).toContain(`>${xmlText(showToken(t, 16).trim())}</text>`);
      await expectRenders(await toSvg(dlaSpec({ components: tokens.map((t, i) => ({ name: t, value: i - 10 })), total: 1, token: tokens[1], vs: tokens[2], position: 0, tokens })));
      const uniform = positions.map((q) => positions.map((k) => (k <= q ? 1 / (q + 1) : 0)));
      await expectRenders(await toSvg(attentionSpec({ tokens, layers: [{ layer: 0, heads: [uniform] }] })));
    }
  });

  test('HTML pages: self-contained, the hostile token stays inside JSON, one section per result/layer', () => {
    const evil = { ...attr(), tokens: [...TOKENS.slice(0, 5), EVIL] };
    const pages = [
      patchReportHtml([patch(), { ...patchZ(), tokens: [...TOKENS.slice(0, 5), EVIL] }]),
      attrReportHtml(evil),
      dlaReportHtml({ ...dla(), components: [...dla().components.slice(1), { name: EVIL, value: 9 }] }),
      attentionReportHtml({ ...attention(), tokens: [...TOKENS.slice(0, 5), EVIL] }),
    ];
    for (const html of pages) {
      expect(html).toContain("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';");
      expect(/<(script|img|link|iframe)[^>]+(src|href)=/i.test(html)).toBe(false);
      expect(html.match(/<script/gi)).toHaveLength(3);
      expect(html.match(/<\/script>/gi)).toHaveLength(3);
    }
    expect(pages[0].match(/<section id="patch-\d"/g)).toEqual(['<section id="patch-0"', '<section id="patch-1"']);
    expect(pages[3].match(/<section id="attn-L\d"/g)).toEqual(['<section id="attn-L0"', '<section id="attn-L1"']);
    // the attribution table: exact values, the token escaped
    expect(pages[1]).toContain('<td>5</td><td>&quot;&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;</td><td>2921</td><td>-0.2</td>');
    expect(() => dlaReportHtml([])).toThrow('DLA report: no results to show');
  });
});
