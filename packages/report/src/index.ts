/** @sp/report — HTML (self-contained, interactive), SVG and PNG views of @sp/core analyses. */
export { lensGridSpec, lensStatsSpec, rankingSpec, watchSpec, neuronsSpec, projectionSpec, FONT, type Tip } from './specs.js';
export { toVega, toSvg, toPng, type PngOptions } from './render.js';
export { reportHtml, lensReportHtml, rankReportHtml, probeReportHtml, neuronsSection, type Section, type ProbeResultLike, type ProbeToken } from './html.js';
export { showToken, quoteToken } from './tokens.js';
export {
  patchingSpec, attributionSpec, dlaSpec, dlaBars, attentionSpec, patchNormalize, patchByHead,
  checkPatchResult, checkAttrResult, checkDlaResult, checkAttentionResult,
  type PatchResultLike, type AttrResultLike, type DlaResultLike, type DlaBar, type AttentionResultLike,
} from './causal-specs.js';
export { patchReportHtml, attrReportHtml, dlaReportHtml, attentionReportHtml } from './causal-html.js';
