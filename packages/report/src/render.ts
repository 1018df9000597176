/**
 * Static rendering in Node, for papers: Vega-Lite → Vega → SVG (vega's own SVG renderer, no
 * browser), and SVG → PNG with resvg (a Rust renderer shipped as an npm binary: no node-canvas, no
 * download at install time).
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Vega-Lite → Vega spec (JSON). */
export function toVega(spec: TopLevelSpec): vega.Spec {
  return compile(spec).spec;
}

/** A chart as a standalone SVG document. */
export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(toVega(spec)), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface PngOptions {
  /** Pixels per SVG unit (default 2: sharp in print and on high-density screens). */
  scale?: number;
}

/** A chart (Vega-Lite spec) or an SVG string as PNG bytes. */
export async function toPng(specOrSvg: TopLevelSpec | string, opts: PngOptions = {}): Promise<Uint8Array> {
  const svg = typeof specOrSvg === 'string' ? specOrSvg : await toSvg(specOrSvg);
  const scale = opts.scale ?? 2;
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return r.render().asPng();
}
