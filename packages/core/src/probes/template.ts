/**
 * Speaking-probe prompt templates: text with virtual-token tags.
 *
 *   <neuron> (= <neuron1>), <neuron2>, …   the probe's neurons, in the order given
 *   <param_L_J>                             FF key J of layer L
 *
 * Tokenization follows the original implementation, where each tag is an added vocabulary entry
 * " <tag>" (with a leading space): the text between tags is tokenized piece by piece, one space
 * directly before a tag belongs to the virtual token (it is dropped from the text piece), and
 * each tag is exactly one position. So 'The term "<neuron>" means' is 'The term "' | virtual |
 * '" means', and 'What does <neuron> mean?' is 'What does' | virtual | ' mean?'.
 */
import { SpError } from '../errors.js';

/** Id written at virtual positions; irrelevant to the model (its embedding is replaced). */
export const PLACEHOLDER_ID = 0;

export type TemplateTag = { tag: string; kind: 'neuron'; neuron: number } | { tag: string; kind: 'param'; layer: number; index: number };

export interface TemplatePart {
  /** Text piece (tokenized on its own) or a tag (one virtual position). */
  text?: string;
  tag?: TemplateTag;
}

const TAG = /<neuron(\d*)>|<param_(\d+)_(\d+)>/g;

/** Split a template into text pieces and tags (tags parsed, one space before each tag removed). */
export function parseTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const m of template.matchAll(TAG)) {
    let text = template.slice(last, m.index);
    if (text.endsWith(' ')) text = text.slice(0, -1); // the tag's own leading space
    if (text) parts.push({ text });
    if (m[2] !== undefined) {
      parts.push({ tag: { tag: m[0], kind: 'param', layer: Number(m[2]), index: Number(m[3]) } });
    } else {
      if (m[1] === '0' || (m[1] !== '' && m[1].startsWith('0'))) {
        throw new SpError('BAD_INPUT', `${m[0]}: neuron tags are <neuron> (= <neuron1>), <neuron2>, … numbered from 1`);
      }
      parts.push({ tag: { tag: m[0], kind: 'neuron', neuron: m[1] === '' ? 0 : Number(m[1]) - 1 } });
    }
    last = m.index! + m[0].length;
  }
  if (last < template.length) parts.push({ text: template.slice(last) });
  if (!parts.some((p) => p.tag)) {
    throw new SpError('BAD_INPUT', 'the prompt has no virtual-token tag: put <neuron> (or <param_L_J>) where the neuron goes');
  }
  return parts;
}

export interface TokenizedTemplate {
  /** Prompt ids with PLACEHOLDER_ID at every virtual position. */
  ids: number[];
  /** Every virtual position, in prompt order, with its tag. */
  virtual: Array<{ position: number; tag: TemplateTag }>;
}

/** Token ids of a template: each text piece encoded separately, one position per tag. */
export function tokenizeTemplate(parts: TemplatePart[], encode: (text: string) => number[]): TokenizedTemplate {
  const ids: number[] = [];
  const virtual: TokenizedTemplate['virtual'] = [];
  for (const p of parts) {
    if (p.tag) {
      virtual.push({ position: ids.length, tag: p.tag });
      ids.push(PLACEHOLDER_ID);
    } else ids.push(...encode(p.text!));
  }
  return { ids, virtual };
}

/** The template as text with every tag written in its canonical form (for display). */
export function renderTemplate(parts: TemplatePart[]): string {
  return parts.map((p) => (p.tag ? ` ${p.tag.tag}` : p.text)).join('');
}
