/**
 * Every report type in a real headless Chromium, checked for what a person sees: the lens grid has
 * nLayer+1 rows, hovering a cell shows its top-k, charts render with no console error and no network
 * request; plus a screenshot of each report compared with its committed baseline.
 */
import { gpt2, logitLens, rankings, rankingsWatch, speakingProbe, topNeurons, type GPT2, type LensResult } from '@sp/core';
import { lensReportHtml, probeReportHtml, rankReportHtml } from '@sp/report';
import path from 'node:path';
import { describeBrowser, hoverCentre, imageStats, matchBaseline, pageSession } from './browser.js';
import { PROBE } from './probe-fixture.js';

const FIXTURE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../core/test/fixtures/tiny-gpt2');
const PROMPT = 'The keys to the cabinet';

describeBrowser('reports in headless Chromium', () => {
  let model: GPT2;
  let lens: LensResult;
  const { open } = pageSession();
  beforeAll(async () => {
    model = await gpt2(FIXTURE, { backend: process.env.SP_BACKEND ?? 'wasm' });
    lens = logitLens(model, PROMPT, { topk: 5 });
  });
  afterAll(() => model?.dispose());

  test('lens report: nLayer+1 rows × positions, hover shows the top-k, screenshot', async () => {
    const { page } = await open(lensReportHtml(lens, { neurons: topNeurons(model, PROMPT, { k: 5 }) }), 'lens');
    // rows: distinct cell rows on screen and the y-axis labels, output at the top
    const cells = await page.$$('#lens-grid-0 g.cells_marks path');
    expect(cells).toHaveLength((model.config.nLayer + 1) * lens.tokens.length);
    const ys = new Set(await Promise.all(cells.map(async (c) => Math.round((await c.boundingBox())!.y))));
    expect(ys.size).toBe(model.config.nLayer + 1);
    const yLabels = await page.$$eval('#lens-grid-0 g.role-axis-label', (gs) => gs.map((g) => Array.from(g.querySelectorAll('text'), (t) => t.textContent)));
    expect(yLabels).toContainEqual(['2', '1', 'embed']);
    // the cell text is each cell's top-1 token
    const texts = await page.$$eval('#lens-grid-0 g.cell_text_marks text', (ts) => ts.map((t) => t.textContent));
    expect(texts).toHaveLength(cells.length);

    // hover layer 1, position 2 (" to"): the tooltip lists that cell's top-5, in order
    const want = lens.layers[1].positions[2];
    const index = cells.length === 15 ? 1 * 5 + 2 : -1;
    await hoverCentre(page, '#lens-grid-0 g.cells_marks path', index);
    await page.waitForSelector('#sp-tooltip.visible', { timeout: 5000 });
    const tip = await page.$$eval('#sp-tooltip tr', (rows) => rows.map((r) => Array.from(r.querySelectorAll('td'), (td) => td.textContent)));
    expect(tip.map((r) => r[0])).toEqual(want.top.map((t) => JSON.stringify(t.token)));
    expect(await page.textContent('#sp-tooltip .tt-title')).toBe('layer 1 (blocks.0.hook_resid_post) · position 2 " to"');
    expect(await page.isVisible('#sp-tooltip')).toBe(true);
    await page.mouse.move(1, 1); // moving away hides it
    await page.waitForSelector('#sp-tooltip:not(.visible)', { state: 'attached', timeout: 5000 });

    // per-layer statistics: three panels, two series each
    expect(await page.$$('#lens-stats-0 g.role-mark path, #lens-stats-0 g.role-mark path.mark-line')).not.toHaveLength(0);
    expect(await page.$$eval('#lens-stats-0 g.role-column-header text', (t) => t.map((x) => x.textContent))).toEqual(['entropy (nats)', 'KL(output ‖ layer) (nats)', 'max probability']);
    // neuron bars
    expect(await page.$$('#neurons-0 g.bars_marks path')).toHaveLength(5);

    const shot = await page.screenshot({ fullPage: true });
    const s = imageStats(shot);
    expect(s.colours).toBeGreaterThan(50);
    expect(s.inked).toBeGreaterThan(0.03);
    expect(matchBaseline('lens-report', shot)).toBeLessThan(0.01);
  });

  test('ranking heatmap: log colour scale, hover shows rank and probability, screenshot', async () => {
    const r = rankings(model, PROMPT);
    const { page } = await open(rankReportHtml({ rankings: r }), 'rank');
    const cells = await page.$$('#rank-0 g.cells_marks path');
    expect(cells).toHaveLength(r.positions.length * r.layers.length);
    const texts = await page.$$eval('#rank-0 g.cell_text_marks text', (ts) => ts.map((t) => t.textContent));
    expect(texts.map(Number).sort((a, b) => a - b)).toEqual(r.positions.flatMap((p) => p.ranks).sort((a, b) => a - b));
    // rank 1 is the darkest colour, a large rank much lighter (log scale: rank 733 is mid-way)
    const fill = async (i: number) => page.$eval(`#rank-0 g.cells_marks path:nth-of-type(${i + 1})`, (e) => getComputedStyle(e).fill);
    const lum = (c: string) => c.match(/\d+/g)!.slice(0, 3).map(Number).reduce((a, x) => a + x, 0);
    const rank1 = r.positions.findIndex((p) => p.ranks[2] === 1);
    const cellsOrder = r.positions.flatMap((p, i) => r.layers.map((_, li) => ({ i, li, rank: p.ranks[li] })));
    const darkest = cellsOrder.findIndex((c) => c.i === rank1 && c.li === 2);
    const lightest = cellsOrder.reduce((a, c, k) => (c.rank > cellsOrder[a].rank ? k : a), 0);
    expect(lum(await fill(darkest))).toBeLessThan(lum(await fill(lightest)) - 200);
    await hoverCentre(page, '#rank-0 g.cells_marks path', darkest);
    await page.waitForSelector('#sp-tooltip.visible');
    const rows = await page.$$eval('#sp-tooltip tr', (trs) => trs.map((t) => t.textContent));
    expect(rows).toContain('rank1');
    const shot = await page.screenshot({ fullPage: true });
    expect(imageStats(shot).colours).toBeGreaterThan(50);
    expect(matchBaseline('rank-report', shot)).toBeLessThan(0.01);
  });

  test('watch comparison chart: one line per candidate, rank on a log axis, screenshot', async () => {
    const w = rankingsWatch(model, PROMPT, [' is', ' are']);
    const { page } = await open(rankReportHtml({ watch: w }), 'watch');
    const legend = await page.$$eval('#watch-0 g.role-legend-label text', (t) => t.map((x) => x.textContent));
    expect(legend).toEqual(['" is"', '" are"']);
    const points = await page.$$('#watch-0 g.watch_points_marks path');
    expect(points).toHaveLength(2 * (model.config.nLayer + 1));
    const axis = await page.$$eval('#watch-0 g.role-axis-title text', (t) => t.map((x) => x.textContent));
    expect(axis).toContain('rank (log, 1 = top)');
    await hoverCentre(page, '#watch-0 g.watch_points_marks path', 0);
    await page.waitForSelector('#sp-tooltip.visible');
    expect(await page.textContent('#sp-tooltip')).toContain('candidate" is"');
    const shot = await page.screenshot({ fullPage: true });
    expect(imageStats(shot).colours).toBeGreaterThan(30);
    expect(matchBaseline('watch-report', shot)).toBeLessThan(0.01);
  });

  test('speaking-probe cards: prompt with the virtual token marked, samples, projection bars, screenshot', async () => {
    const real = await speakingProbe(model, { prompt: 'The term "<neuron>" means', neurons: ['1,5'], samples: 2, seed: 1, maxNewTokens: 6, projectionTop: 6 });
    const { page } = await open(probeReportHtml([real, PROBE]), 'probe');
    expect(await page.$$eval('section h2', (h) => h.map((x) => x.textContent))).toEqual(['<neuron> = key L1 #5', 'Layer 1, neuron 5']);
    expect(await page.textContent('#probe-0 .prompt code')).toBe(real.prompt_text);
    expect(await page.textContent('#probe-0 mark')).toBe('<neuron>');
    expect(await page.$$eval('#probe-0 ol.samples li', (l) => l.map((x) => x.textContent))).toEqual(real.samples.map((x) => x.text));
    expect(await page.textContent('#probe-1 mark')).toBe('⟨v⟩');
    expect(await page.$$eval('#probe-1 ol.samples li', (l) => l.map((x) => x.textContent))).toEqual([' a kind of <plant> & animal', ' the end of the world']);
    expect(await page.$$('#probe-0 g.role-mark path')).toHaveLength(6);
    expect(await page.$$('#probe-1 g.role-mark path')).toHaveLength(3);
    await hoverCentre(page, '#probe-0 g.role-mark path', 0);
    await page.waitForSelector('#sp-tooltip.visible');
    expect(await page.textContent('#sp-tooltip .tt-title')).toBe(JSON.stringify(real.projection!.top[0].token));
    // the screenshot uses the hand-made result only: sampled text is the probe code's business, not the report's
    const { page: alone } = await open(probeReportHtml(PROBE), 'probe-alone');
    await hoverCentre(alone, '#probe-0 g.role-mark path', 0);
    await alone.waitForSelector('#sp-tooltip.visible');
    const shot = await alone.screenshot({ fullPage: true });
    expect(imageStats(shot).colours).toBeGreaterThan(30);
    expect(matchBaseline('probe-report', shot)).toBeLessThan(0.01);
  });
});
