/**
 * Byte tokens in a real browser: the lens report renders with no console error, the grid shows the
 * readable forms, and both the Node-rendered SVG and the page's own SVG export parse as XML in
 * Chromium's DOMParser (the SVG a user downloads from the report).
 */
import type { LensResult } from '@sp/core';
import { lensGridSpec, lensReportHtml, toSvg } from '@sp/report';
import type { Browser } from 'playwright-core';
import { byteTokens } from '../../core/test/tokenizer/byte-tokens.js';
import { describeBrowser, launch, openReport } from './browser.js';

/** Bytes on show: NUL, ESC, DEL, form feed, CR, newline, space, a lone 0xe3, and '<' and '&'. */
const BYTES = [0x00, 0x1b, 0x7f, 0x0c, 0x0d, 0x0a, 0x20, 0xe3, 0x3c, 0x26];

describeBrowser('byte tokens in headless Chromium', () => {
  let browser: Browser;
  let lens: LensResult;
  beforeAll(async () => {
    browser = await launch();
    const bt = await byteTokens();
    const toks = BYTES.map((b) => ({ id: bt.byteIds[b], token: bt.tok.tokenString(bt.byteIds[b]) }));
    const row = (layer: number, label: string, shift: number) => ({
      layer, block: 0, stream: 'resid_post' as const, hook: `blocks.${layer}.hook_resid_post`, label,
      positions: toks.map((_, p) => ({ top: [0, 1].map((j) => ({ ...toks[(p + shift + j) % toks.length], prob: 0.4 - 0.1 * j })), entropy: 1, kl: 0.1, max_prob: 0.4 })),
    });
    lens = { model: 'hand-made', view: 'layers', ids: toks.map((t) => t.id), tokens: toks.map((t) => t.token), layers: [row(0, 'embed', 0), row(1, '1', 1)] };
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** DOMParser's verdict: '' for well-formed XML, else the parser's error text. */
  const parseErrors = (page: import('playwright-core').Page, svg: string) =>
    page.evaluate((s) => {
      const doc = new DOMParser().parseFromString(s, 'image/svg+xml');
      return doc.getElementsByTagName('parsererror')[0]?.textContent ?? '';
    }, svg);

  test('the report renders, cells show ␛ ␀ ␡ \\xe3, and every SVG is well-formed XML', async () => {
    const o = await openReport(browser, lensReportHtml(lens), 'byte-tokens');
    try {
      expect(o.problems).toEqual([]);
      expect(o.requests).toEqual([]);
      const texts = await o.page.$$eval('#lens-grid-0 g.cell_text_marks text', (ts) => ts.map((t) => t.textContent));
      expect(texts).toHaveLength(2 * BYTES.length);
      for (const shown of ['␀', '␛', '␡', '␌', '␍', '↵', '␣', '\\xe3', '<', '&']) expect(texts).toContain(shown);
      // the page's own export (the SVG button) and the Node renderer's SVG
      const exported = await o.page.evaluate(() => (window as unknown as { spViews: Record<string, { toSVG(): Promise<string> }> }).spViews['lens-grid-0'].toSVG());
      expect(await parseErrors(o.page, exported)).toBe('');
      expect(await parseErrors(o.page, await toSvg(lensGridSpec(lens)))).toBe('');
      // the check can fail: a raw ESC is not XML
      expect(await parseErrors(o.page, '<svg xmlns="http://www.w3.org/2000/svg"><text>\u001b</text></svg>')).not.toBe('');
    } finally {
      await o.page.close();
    }
  });
});
