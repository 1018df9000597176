/** Report content in Node: SVG/PNG export, HTML self-containment and escaping (no browser needed). */
import type { LensResult, RankingsResult, WatchResult } from '@sp/core';
import { lensGridSpec, lensReportHtml, probeReportHtml, rankingSpec, rankReportHtml, showToken, toPng, toSvg, watchSpec } from '@sp/report';
import { imageStats } from './browser.js';
import { PROBE } from './probe-fixture.js';

const EVIL = '</script><script>alert(1)</script>';

/** A hand-made 3-row × 3-position lens with known top tokens. */
function lens(): LensResult {
  const rows = [
    { layer: 0, block: 0, stream: 'resid_pre' as const, hook: 'blocks.0.hook_resid_pre', label: 'embed' },
    { layer: 1, block: 0, stream: 'resid_post' as const, hook: 'blocks.0.hook_resid_post', label: '1' },
    { layer: 2, block: 1, stream: 'resid_post' as const, hook: 'blocks.1.hook_resid_post', label: '2' },
  ];
  const tops = [[' the', ' a'], [' Paris', EVIL], ['\n', ' Rome']];
  return {
    model: 'hand-made',
    view: 'layers',
    ids: [464, 3139, 286],
    tokens: ['The', ' capital', ' of'],
    layers: rows.map((r, i) => ({
      ...r,
      positions: [0, 1, 2].map((p) => ({
        top: tops[(i + p) % 3].map((t, j) => ({ id: 10 * i + j, token: t, prob: j === 0 ? 0.2 + 0.3 * i : 0.05 })),
        entropy: 5 - i,
        kl: 2 - i,
        max_prob: 0.2 + 0.3 * i,
      })),
    })),
  };
}

test('showToken makes whitespace visible and cuts long tokens', () => {
  expect(showToken(' Paris')).toBe(' Paris');
  expect(showToken('\n\n')).toBe('↵↵');
  expect(showToken('  ')).toBe('␣␣');
  expect(showToken(' internationalisation', 8)).toBe(' intern…');
});

test('the lens grid as SVG: one cell per (row, position), top-1 tokens as text', async () => {
  const svg = await toSvg(lensGridSpec(lens()));
  expect(svg.startsWith('<svg')).toBe(true);
  const cells = svg.match(/<path[^>]*aria-roledescription="rect"/g) ?? svg.match(/<g class="mark-rect role-mark cells_marks"[\s\S]*?<\/g>/)![0].match(/<path/g)!;
  expect(cells).toHaveLength(9);
  for (const t of ['Paris', 'the', '↵', 'embed', '0 The', '1  capital']) expect(svg.includes(`>${t}</text>`)).toBe(true);
  expect(svg.includes('>Rome</text>')).toBe(false); // second-ranked tokens only in the tooltip
  expect(svg).not.toContain('<script');
});

test('PNG export: real pixels, scaled 2× by default', async () => {
  const spec = rankingSpec(rankings());
  const svg = await toSvg(spec);
  const width = Number(/width="(\d+)"/.exec(svg)![1]);
  const png = Buffer.from(await toPng(spec));
  const s = imageStats(png);
  expect(s.width).toBe(2 * width);
  expect(s.colours).toBeGreaterThan(20); // colour scale, text anti-aliasing
  expect(s.inked).toBeGreaterThan(0.05);
  const one = imageStats(Buffer.from(await toPng(svg, { scale: 1 })));
  expect(one.width).toBe(width);
});

function rankings(): RankingsResult {
  return {
    model: 'hand-made', view: 'layers', ids: [1, 2, 3], tokens: ['a', 'b', 'c'], prompt_length: 3,
    layers: lens().layers.map(({ positions: _p, ...r }) => r),
    positions: [0, 1, 2].map((pos) => ({ pos, target: { id: pos, token: ` t${pos}` }, predicted: pos === 2, ranks: [50000, 300, 1 + pos], probs: [1e-6, 1e-3, 0.5] })),
  };
}

test('ranking spec: log colour scale over the ranks, rank text per cell', () => {
  const spec = rankingSpec(rankings()) as unknown as { layer: Array<{ encoding: { color?: { scale?: { type: string; domain: number[] } } } }>; data: { values: Array<{ rank: number; x: string }> } };
  expect(spec.layer[0].encoding.color!.scale).toMatchObject({ type: 'log', domain: [1, 50000] });
  expect(spec.data.values).toHaveLength(9);
  expect(spec.data.values.map((v) => v.x)).toContain('3  t2 (pred.)');
});

test('watch spec: rank axis is log with 1 at the top', () => {
  const w: WatchResult = {
    model: 'm', view: 'layers', ids: [1, 2], tokens: ['The', ' keys'], position: 1, watch: [{ id: 318, token: ' is' }, { id: 389, token: ' are' }],
    layers: lens().layers.map(({ positions: _p, ...r }, i) => ({ ...r, ranks: [100 - i, 5 + i], probs: [0.01, 0.02] })),
  };
  const spec = watchSpec(w) as unknown as { hconcat: Array<{ encoding: { y: { scale: { type?: string; reverse?: boolean; domainMin?: number } } } }>; title: string };
  expect(spec.hconcat[0].encoding.y.scale).toEqual({ type: 'log', reverse: true, domainMin: 1 });
  expect(spec.title).toBe('Candidates after "The keys"');
});

test('HTML is self-contained and a hostile token cannot break out of its script', () => {
  const html = lensReportHtml(lens());
  expect(html.includes("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';")).toBe(true);
  expect(/<(script|img|link|iframe)[^>]+(src|href)=/i.test(html)).toBe(false);
  // exactly the three inline scripts open and close; the token is inside JSON as \u003c/script
  expect(html.match(/<script/gi)).toHaveLength(3);
  expect(html.match(/<\/script>/gi)).toHaveLength(3);
  expect(html.includes('\\u003c/script>\\u003cscript>alert(1)\\u003c/script>')).toBe(true);
  expect(html.length).toBeGreaterThan(400_000); // vega's browser build is inlined
});

test('rank report needs something to show; probe cards tolerate a minimal result', () => {
  expect(() => rankReportHtml({})).toThrow('give rankings and/or watch results');
  const html = probeReportHtml({ prompt_ids: [1, 2], neuron_positions: [1], samples: [{ ids: [3], text: ' <b>bold</b>' }], projection: { top: [{ id: 5, token: ' x', logit: 3.5 }] } });
  expect(html.includes('<h2>Probe 1</h2>')).toBe(true);
  expect(html.includes('&lt;b&gt;bold&lt;/b&gt;')).toBe(true);
  expect(html.includes('"text":"Projection onto the vocabulary"')).toBe(true);
  expect(html.includes('"title":"logit"')).toBe(true); // the value it found to plot names the axis
  const full = probeReportHtml(PROBE);
  expect(full.includes('<mark title="probe vector at position 3">⟨v⟩</mark>')).toBe(true);
});
