/**
 * Self-contained HTML pages of the causal-toolbox results (reportHtml: inlined Vega, CSP
 * `default-src 'none'`, hover tooltips): activation patching, attribution, DLA, attention.
 */
import { SpError } from '@sp/core/light';
import { attentionSpec, attributionSpec, checkAttentionResult, checkAttrResult, checkPatchResult, dlaSpec, patchByHead, patchNormalize, patchingSpec, type AttentionResultLike, type AttrResultLike, type DlaResultLike, type PatchResultLike } from './causal-specs.js';
import { reportHtml, type Section } from './html.js';
import { esc, quoteText, quoteToken } from './tokens.js';

function list<T>(what: string, x: T | T[]): T[] {
  const all = Array.isArray(x) ? x : [x];
  if (all.length === 0) throw new SpError('BAD_INPUT', `${what}: no results to show`);
  return all;
}
const modelOf = (all: Array<{ model?: string }>) => {
  const m = all.find((r) => r.model)?.model;
  return m ? `model ${m}` : undefined;
};

/** Activation-patching heatmap(s): one section per result. */
export function patchReportHtml(result: PatchResultLike | PatchResultLike[], opts: { title?: string } = {}): string {
  const all = list('patching report', result).map(checkPatchResult);
  const sections: Section[] = all.map((r, i) => {
    const { mode } = patchNormalize(r);
    const heads = patchByHead(r);
    return {
      id: `patch-${i}`,
      heading: `Activation patching: ${r.site}${r.tokens ? ` · ${quoteText(r.tokens)}` : ''}`,
      intro:
        `Each cell is the corrupt run with one ${heads ? 'head’s output (all positions)' : 'activation (one layer, one position)'} replaced by the clean run’s. ` +
        (mode === 'normalized'
          ? 'Colour: (patched − corrupt) / (clean − corrupt), as in TransformerLens’ patching plots: 0 = no effect, 1 = the clean metric fully restored. '
          : 'Clean and corrupt metrics are equal, so the colour is patched − corrupt. ') +
        'Hover a cell for the exact metric.',
      spec: patchingSpec(r),
    };
  });
  return reportHtml(opts.title ?? 'Activation patching', sections, { subtitle: modelOf(all) });
}

/** Attribution token strip(s), with a table of the exact values. */
export function attrReportHtml(result: AttrResultLike | AttrResultLike[], opts: { title?: string } = {}): string {
  const all = list('attribution report', result).map(checkAttrResult);
  const sections: Section[] = all.map((r, i) => {
    const rows = r.tokens.map((t, p) => `<tr><td>${p}</td><td>${esc(quoteToken(t))}</td><td>${r.ids[p]}</td><td>${esc(String(r.attributions[p]))}</td></tr>`).join('');
    return {
      id: `attr-${i}`,
      heading: `Attribution (${r.method}): ${quoteText(r.tokens)}`,
      intro: 'Each input token is coloured by its attribution to the target logit: blue positive, red negative, intensity by |value| relative to the largest. The outlined token is the position the target is read at. Hover a token for its exact value.',
      spec: attributionSpec(r),
      html: `<table class="data"><tr><th>position</th><th>token</th><th>id</th><th>attribution</th></tr>${rows}</table>`,
    };
  });
  return reportHtml(opts.title ?? 'Input attribution', sections, { subtitle: modelOf(all) });
}

/** DLA bar chart(s): the top components by |value|, the rest summed as "other", the total. */
export function dlaReportHtml(result: DlaResultLike | DlaResultLike[], opts: { title?: string; top?: number } = {}): string {
  const all = list('DLA report', result);
  const sections: Section[] = all.map((r, i) => ({
    id: `dla-${i}`,
    heading: `Direct logit attribution${r.tokens ? `: ${quoteText(r.tokens)}` : ''}`,
    intro: 'Each component’s output at the position, scaled by the final layer norm of the full residual stream, centred and projected on the unembedding (TransformerLens’ apply_ln_to_stack); the components sum to the total. Hover a bar for its exact value.',
    spec: dlaSpec(r, { top: opts.top }),
  }));
  return reportHtml(opts.title ?? 'Direct logit attribution', sections, { subtitle: modelOf(all) });
}

/** Every head's attention pattern: a section per layer, a facet per head. */
export function attentionReportHtml(result: AttentionResultLike, opts: { title?: string; columns?: number } = {}): string {
  const r = checkAttentionResult(result);
  const sections: Section[] = r.layers.map((L, i) => ({
    id: `attn-L${L.layer}`,
    heading: `Layer ${L.layer}`,
    intro: i === 0 ? 'Row = query position, column = key position; colour = attention weight (0–1). Hover a cell for the exact weight.' : undefined,
    spec: attentionSpec(r, { layer: L.layer, columns: opts.columns }),
  }));
  return reportHtml(opts.title ?? `Attention patterns: ${quoteText(r.tokens)}`, sections, { subtitle: modelOf([r]) });
}
