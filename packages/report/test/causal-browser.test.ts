/**
 * The causal-toolbox reports in a real headless Chromium: each page renders with no console error
 * and no network request, shows the right number of cells / boxes / bars / facets, colours by sign,
 * and hovering shows the exact value.
 */
import { attentionReportHtml, attrReportHtml, dlaBars, dlaReportHtml, patchReportHtml } from '@sp/report';
import type { Page } from 'playwright-core';
import { describeBrowser, hoverCentre, imageStats, pageSession } from './browser.js';
import { attention, attr, dla, patch, patchZ, TOKENS } from './causal-fixture.js';

/** The tooltip's rows as [label, value] pairs, once it is visible. */
async function tipRows(page: Page): Promise<string[][]> {
  await page.waitForSelector('#sp-tooltip.visible', { timeout: 5000 });
  return page.$$eval('#sp-tooltip tr', (rows) => rows.map((r) => Array.from(r.querySelectorAll('td'), (td) => td.textContent ?? '')));
}
/** An element's computed fill as [r, g, b]. */
async function fill(page: Page, selector: string, i: number): Promise<number[]> {
  const c = await page.$$eval(selector, (els, k) => getComputedStyle(els[k]).fill, i);
  return c.match(/\d+/g)!.slice(0, 3).map(Number);
}

describeBrowser('causal reports in headless Chromium', () => {
  const { open } = pageSession();

  test('patching heatmap: layers × positions cells, blue for recovery, red below corrupt, hover shows the exact metric', async () => {
    const { page } = await open(patchReportHtml([patch(), patchZ()]), 'patch');
    const sel = '#patch-0 g.cells_marks path';
    expect(await page.$$(sel)).toHaveLength(3 * 6);
    expect(await page.$$('#patch-1 g.cells_marks path')).toHaveLength(2 * 3);
    // cell order is layer-major: index 3 = layer 0, position 3 (value 5 → 1.5); index 4 = value −3 → −0.5
    const [r5, , b5] = await fill(page, sel, 3);
    const [rm, , bm] = await fill(page, sel, 4);
    expect(b5).toBeGreaterThan(r5 + 50);
    expect(rm).toBeGreaterThan(bm + 30);
    await hoverCentre(page, sel, 5);
    expect(await tipRows(page)).toEqual([['patched metric', '0.123456789'], ['normalised', String((0.123456789 + 1) / 4)], ['clean metric', '3'], ['corrupt metric', '-1']]);
    expect(await page.textContent('#sp-tooltip .tt-title')).toBe('resid_pre · layer 0 · position 5 " gave"');
    const xLabels = await page.$$eval('#patch-0 g.role-axis-label text', (t) => t.map((x) => x.textContent));
    expect(xLabels).toEqual(expect.arrayContaining(['4 ␛', '0', '1', '2']));
    expect(await page.$$eval('#patch-1 g.role-axis-label text', (t) => t.map((x) => x.textContent))).toEqual(expect.arrayContaining(['H0', 'H1', 'H2']));
    const s = imageStats(await page.screenshot({ fullPage: true }));
    expect(s.colours).toBeGreaterThan(30);
  });

  test('attribution strip: one box per token, sign by hue, the target position outlined, hover shows the value', async () => {
    const r = attr();
    const { page } = await open(attrReportHtml(r), 'attr');
    const sel = '#attr-0 g.boxes_marks path';
    expect(await page.$$(sel)).toHaveLength(TOKENS.length);
    expect(await page.$$eval('#attr-0 g.box_text_marks text', (t) => t.map((x) => x.textContent))).toEqual(['When', 'Mary', 'and', 'John', '␛', 'gave']);
    const [rp, , bp] = await fill(page, sel, 0); // +0.8
    const [rn, , bn] = await fill(page, sel, 1); // −1.6, the largest |value|: darkest red
    expect(bp).toBeGreaterThan(rp + 50);
    expect(rn).toBeGreaterThan(bn + 80);
    const [r0, g0, b0] = await fill(page, sel, 4); // 0: near white
    expect(Math.min(r0, g0, b0)).toBeGreaterThan(220);
    const strokes = await page.$$eval(sel, (els) => els.map((e) => getComputedStyle(e).strokeWidth));
    expect(strokes).toEqual(['0.5px', '0.5px', '0.5px', '0.5px', '0.5px', '2px']);
    await hoverCentre(page, sel, 1);
    const rows = await tipRows(page);
    expect(rows[0]).toEqual(['attribution', '-1.6']);
    expect(await page.textContent('#sp-tooltip .tt-title')).toBe('position 1 " Mary" (id 5335)');
    expect(await page.textContent('#attr-0 .role-title-text')).toBe('grad-x-input attribution to " to" (id 284)');
    expect(await page.$$('#attr-0 table.data tr')).toHaveLength(TOKENS.length + 1);
  });

  test('DLA bars: the top 20, "other" and the total; hover shows the summed value', async () => {
    const r = dla();
    const bars = dlaBars(r);
    const { page } = await open(dlaReportHtml(r), 'dla');
    const sel = '#dla-0 g.bars_marks path';
    expect(await page.$$(sel)).toHaveLength(22);
    const labels = await page.$$eval('#dla-0 g.role-axis-label text', (t) => t.map((x) => x.textContent));
    expect(labels).toEqual(expect.arrayContaining(['other (10)', 'total', bars[0].name]));
    // bars in y order: the largest |value| at the top, total at the bottom
    const ys = await page.$$eval(sel, (els) => els.map((e) => e.getBoundingClientRect().y));
    expect(ys).toEqual([...ys].sort((a, b) => a - b));
    await hoverCentre(page, sel, 20);
    expect((await tipRows(page))[0]).toEqual(['direct contribution', String(bars[20].value)]);
    expect(await page.textContent('#sp-tooltip .tt-title')).toBe('10 other components');
    await hoverCentre(page, sel, 21);
    expect((await tipRows(page))[0]).toEqual(['total', String(r.total)]);
  });

  test('attention: a section per layer, a facet per head with query × key cells, hover shows the weight', async () => {
    const r = attention();
    const { page } = await open(attentionReportHtml(r), 'attention');
    expect(await page.$$eval('section h2', (h) => h.map((x) => x.textContent))).toEqual(['Layer 0', 'Layer 1']);
    for (const L of r.layers) {
      const id = `#attn-L${L.layer}`;
      expect(await page.$$(`${id} g.cells_marks`)).toHaveLength(3); // one mark group per facet
      expect(await page.$$(`${id} g.cells_marks path`)).toHaveLength(3 * 6 * 6);
      // a wrapped facet's header is each cell's group title, beside the chart's own title
      const titles = await page.$$eval(`${id} g.role-title-text text`, (t) => t.map((x) => x.textContent));
      expect(titles.sort()).toEqual([`Attention patterns, layer ${L.layer} (3 heads)`, `L${L.layer}.H0`, `L${L.layer}.H1`, `L${L.layer}.H2`]);
      const axis = await page.$$eval(`${id} g.role-axis-label text`, (t) => t.map((x) => x.textContent));
      expect(axis).toEqual(expect.arrayContaining(['0 When', '4 ␛', '5  gave']));
    }
    // layer 1, head 2, query 3, key 1
    await hoverCentre(page, '#attn-L1 g.cells_marks path', 2 * 36 + 3 * 6 + 1);
    expect(await tipRows(page)).toEqual([['attention', String(r.layers[1].heads[2][3][1])]]);
    expect(await page.textContent('#sp-tooltip .tt-title')).toBe('L1.H2: query 3 " John" → key 1 " Mary"');
  });
});
