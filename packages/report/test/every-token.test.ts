/**
 * Every token renders: reports whose tokens are GPT-2's 256 single-byte tokens (NUL, ESC, DEL, form
 * feed, lone UTF-8 bytes…) and partial-UTF-8 tokens give SVG that is valid XML, PNG (resvg parses
 * the SVG with a strict XML parser), and HTML with the tokens shown readably and escaped.
 */
import { displayToken, type LensResult, type NeuronsResult, type RankingsResult, type WatchResult } from '@sp/core';
import { lensGridSpec, lensReportHtml, lensStatsSpec, neuronsSpec, probeReportHtml, projectionSpec, quoteToken, rankingSpec, rankReportHtml, showToken, toPng, toSvg, watchSpec } from '@sp/report';
import { imageStats } from './browser.js';
import { badXmlChars, byteTokens, type ByteTokens } from '../../core/test/tokenizer/byte-tokens.js';

let bt: ByteTokens;
/** The 256 byte tokens' strings, then 64 partial-UTF-8 tokens, in groups of 32 (one chart each). */
let groups: Array<Array<{ id: number; token: string }>>;
beforeAll(async () => {
  bt = await byteTokens();
  const step = Math.floor(bt.partialIds.length / 64);
  const ids = [...bt.byteIds, ...Array.from({ length: 64 }, (_, i) => bt.partialIds[i * step])];
  const all = ids.map((id) => ({ id, token: bt.tok.tokenString(id) }));
  groups = Array.from({ length: all.length / 32 }, (_, g) => all.slice(32 * g, 32 * g + 32));
});

/** NUL, ESC, DEL, form feed and the lone byte 0x80. */
const special = () => [0x00, 0x1b, 0x7f, 0x0c, 0x80].map((b) => ({ id: bt.byteIds[b], token: bt.tok.tokenString(bt.byteIds[b]) }));

const ROWS = [
  { layer: 0, block: 0, stream: 'resid_pre' as const, hook: 'blocks.0.hook_resid_pre', label: 'embed' },
  { layer: 1, block: 0, stream: 'resid_post' as const, hook: 'blocks.0.hook_resid_post', label: '1' },
];

/** Input tokens = the group; each cell's top-3 are group tokens too, so every token is a top-1 somewhere. */
function lens(g: Array<{ id: number; token: string }>): LensResult {
  return {
    model: 'hand-made', view: 'layers', ids: g.map((t) => t.id), tokens: g.map((t) => t.token),
    layers: ROWS.map((r, i) => ({
      ...r,
      positions: g.map((_, p) => ({
        top: [0, 1, 2].map((j) => ({ ...g[(p + i + j) % g.length], prob: 0.5 / (j + 1) })),
        entropy: 1, kl: 0.5, max_prob: 0.5,
      })),
    })),
  };
}

function rankings(g: Array<{ id: number; token: string }>): RankingsResult {
  return {
    model: 'hand-made', view: 'layers', ids: g.map((t) => t.id), tokens: g.map((t) => t.token), prompt_length: g.length,
    layers: ROWS,
    positions: g.map((t, pos) => ({ pos, target: g[(pos + 1) % g.length], predicted: pos === g.length - 1, ranks: [1 + pos, 1], probs: [0.01, 0.9] })),
  };
}

function watch(g: Array<{ id: number; token: string }>): WatchResult {
  return {
    model: 'hand-made', view: 'layers', ids: g.map((t) => t.id), tokens: g.map((t) => t.token), position: g.length - 1,
    watch: g.slice(0, 8),
    layers: ROWS.map((r, i) => ({ ...r, ranks: g.slice(0, 8).map((_, j) => 1 + j + i), probs: g.slice(0, 8).map((_, j) => 0.1 / (j + 1)) })),
  };
}

function neurons(g: Array<{ id: number; token: string }>): NeuronsResult {
  return {
    model: 'hand-made', ids: g.map((t) => t.id), tokens: g.map((t) => t.token), position: 3,
    neurons: [0, 1, 2, 3].map((k) => ({ layer: 0, index: k, coefficient: 1 - k / 4, value_norm: 2, score: 2 - k / 2, top: g.slice(8 * k, 8 * k + 8).map((t, j) => ({ ...t, logit: 5 - j })) })),
  };
}

/** Valid XML characters, and resvg (whose roxmltree parser rejects malformed XML) renders it. */
async function expectRenders(svg: string): Promise<void> {
  expect(badXmlChars(svg)).toEqual([]);
  const png = Buffer.from(await toPng(svg, { scale: 1 }));
  expect(imageStats(png).inked).toBeGreaterThan(0.01);
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** `<` `&` `>` as XML text content. */
const xmlText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

test('lens grid and statistics with byte tokens as input and top tokens: valid SVG, PNG, every token shown', async () => {
  for (const g of groups) {
    const svg = await toSvg(lensGridSpec(lens(g)));
    await expectRenders(svg);
    // each token labels its column as displayToken shows it (cell texts are cut to fit by Vega)
    g.forEach((t, p) => expect(svg).toContain(`>${xmlText(`${p} ${showToken(t.token, 12)}`)}</text>`));
    await expectRenders(await toSvg(lensStatsSpec(lens(g))));
  }
  // the escape sequences are there, readable: ESC, NUL, DEL, a lone byte
  const svg = await toSvg(lensGridSpec(lens(special())));
  for (const shown of ['␛', '␀', '␡', '␌', '\\x80']) expect(svg).toContain(`>${shown}</text>`);
});

test('rankings, watch, neurons and probe projection charts with byte tokens: valid SVG and PNG', async () => {
  for (const g of groups) {
    await expectRenders(await toSvg(rankingSpec(rankings(g))));
    await expectRenders(await toSvg(watchSpec(watch(g))));
    await expectRenders(await toSvg(neuronsSpec(neurons(g))));
    await expectRenders(await toSvg(projectionSpec(g.map((t, i) => ({ token: t.token, value: 1 - i / 64 })), 'score')));
  }
});

/** The page outside the inlined Vega build (which is minified JavaScript, not report text). */
function reportPart(html: string): string {
  const start = html.indexOf('<script>');
  const end = html.indexOf('</script>', start);
  return html.slice(0, start) + html.slice(end);
}

test('HTML reports: tokens escaped and readable, no raw control character anywhere in the page text or data', async () => {
  for (const g of groups) {
    const pages = [
      lensReportHtml(lens(g), { neurons: neurons(g) }),
      rankReportHtml({ rankings: rankings(g), watch: watch(g) }),
      probeReportHtml({
        prompt_ids: g.map((t) => t.id), neuron_positions: [1], prompt_tokens: g.map((t, i) => (i === 1 ? '' : t.token)),
        samples: [{ ids: g.map((t) => t.id), text: g.map((t) => t.token).join('') }],
        projection: { top: g.map((t, i) => ({ ...t, score: 1 - i / 64 })), top_normalized: g.map((t) => ({ ...t, score: 0.5 })) },
      }),
    ];
    for (const html of pages) expect(badXmlChars(reportPart(html))).toEqual([]);
    // the neuron table shows each token quoted, HTML-escaped
    for (const t of g.slice(0, 8)) expect(pages[0]).toContain(quoteToken(t.token).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]));
  }
  // a prompt whose tokens split characters: the heading spells the text
  const text = ' 日本語の文字';
  const cjk = bt.tok.encode(text).map((id) => ({ id, token: bt.tok.tokenString(id) }));
  expect(cjk.some((t) => /[\udc80-\udcff]/.test(t.token))).toBe(true);
  expect(lensReportHtml(lens(cjk))).toContain(`<h2>Layer predictions: &quot;${text}&quot;</h2>`);
  const esc = lensReportHtml(lens(special()));
  expect(esc).toContain('\\u001b'); // ESC in the heading's quoted prompt
  expect(esc).toContain('\\u007f'); // DEL too (JSON.stringify alone leaves it raw)
});

test('showToken: byte tokens shown as displayToken does; cutting never splits a character', () => {
  expect(showToken('\u001b[31m')).toBe('␛[31m');
  expect(showToken('\x7f')).toBe('␡');
  expect(showToken('😀😀😀', 2)).toBe('😀…');
  for (const g of groups) for (const t of g) expect(showToken(t.token, 100)).toBe(displayToken(t.token));
});
