/**
 * Token-embedding arithmetic for synthetic neurons, as in the article: `children + dog`,
 * `0.9*google + show`, `king - man + woman`.
 *
 *   expr  := ['+'|'-'] term (('+'|'-') term)*
 *   term  := [number '*'] atom | atom '*' number
 *   atom  := word            the token ' word' (leading space: a word as it appears mid-sentence)
 *          | 'text' | "text" exactly this token string (no space added), e.g. 'google' or " Google"
 *          | #id             the token with this id
 *          | key(L,J) | value(L,J)   FF key / value J of layer L
 *
 * Each atom must be exactly one token of the model's vocabulary; otherwise a one-line error.
 */
import { SpError } from '../errors.js';

export type ExprAtom = { kind: 'token'; id: number; token: string } | { kind: 'key' | 'value'; layer: number; index: number };
export interface ExprTerm {
  coef: number;
  atom: ExprAtom;
}

type Tok = { t: 'num'; v: number } | { t: 'word'; v: string } | { t: 'str'; v: string } | { t: 'id'; v: number } | { t: 'op'; v: string };

function lex(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const bad = (m: string) => new SpError('BAD_INPUT', `expression "${src}": ${m}`);
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
    } else if ('+-*(),'.includes(c)) {
      out.push({ t: 'op', v: c });
      i++;
    } else if (/[0-9.]/.test(c)) {
      const m = /^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?/i.exec(src.slice(i));
      if (!m) throw bad(`bad number at "${src.slice(i)}"`);
      out.push({ t: 'num', v: Number(m[0]) });
      i += m[0].length;
    } else if (c === '#') {
      const m = /^#(\d+)/.exec(src.slice(i));
      if (!m) throw bad('# must be followed by a token id');
      out.push({ t: 'id', v: Number(m[1]) });
      i += m[0].length;
    } else if (c === "'" || c === '"') {
      let s = '';
      let j = i + 1;
      for (; j < src.length && src[j] !== c; j++) {
        if (src[j] === '\\' && j + 1 < src.length) {
          j++;
          s += src[j] === 'n' ? '\n' : src[j] === 't' ? '\t' : src[j];
        } else s += src[j];
      }
      if (j >= src.length) throw bad(`unterminated quote ${c}`);
      out.push({ t: 'str', v: s });
      i = j + 1;
    } else {
      const m = /^[\p{L}\p{N}_]+/u.exec(src.slice(i));
      if (!m) throw bad(`unexpected "${c}"`);
      out.push({ t: 'word', v: m[0] });
      i += m[0].length;
    }
  }
  return out;
}

/** Parse and resolve tokens with `tokenId` (exact token string → id, or undefined). */
export function parseExpr(src: string, tokenId: (s: string) => number | undefined, vocabSize: number): ExprTerm[] {
  const toks = lex(src);
  const bad = (m: string) => new SpError('BAD_INPUT', `expression "${src}": ${m}`);
  let k = 0;
  const peek = () => toks[k];
  const isOp = (v: string) => peek()?.t === 'op' && peek()!.v === v;
  const num = (): number => {
    const t = toks[k++];
    if (t?.t !== 'num') throw bad('expected a number');
    return t.v;
  };
  const int = (): number => {
    const v = num();
    if (!Number.isInteger(v)) throw bad(`${v} is not an integer`);
    return v;
  };
  const expectOp = (v: string) => {
    if (!isOp(v)) throw bad(`expected "${v}"`);
    k++;
  };
  const token = (s: string, shown: string): ExprAtom => {
    const id = tokenId(s);
    if (id === undefined) throw bad(`unknown token ${shown}: ${JSON.stringify(s)} is not one token of the vocabulary (quote an exact token or use #ID)`);
    return { kind: 'token', id, token: s };
  };
  const atom = (): ExprAtom => {
    const t = toks[k++];
    if (!t) throw bad('unexpected end');
    if (t.t === 'word') {
      if ((t.v === 'key' || t.v === 'value') && isOp('(')) {
        k++;
        const layer = int();
        expectOp(',');
        const index = int();
        expectOp(')');
        return { kind: t.v, layer, index };
      }
      return token(' ' + t.v, t.v);
    }
    if (t.t === 'str') return token(t.v, JSON.stringify(t.v));
    if (t.t === 'id') {
      if (t.v >= vocabSize) throw bad(`token id #${t.v} is out of range [0, ${vocabSize - 1}]`);
      return { kind: 'token', id: t.v, token: '' };
    }
    throw bad(`unexpected ${t.t === 'num' ? `number ${t.v}` : `"${t.v}"`}`);
  };
  const term = (sign: number): ExprTerm => {
    let coef = sign;
    if (peek()?.t === 'num') {
      coef *= num();
      expectOp('*');
    }
    const a = atom();
    if (isOp('*')) {
      k++;
      coef *= num();
    }
    return { coef, atom: a };
  };
  if (toks.length === 0) throw bad('empty expression');
  const terms: ExprTerm[] = [];
  let sign = 1;
  if (isOp('+') || isOp('-')) sign = toks[k++].v === '-' ? -1 : 1;
  terms.push(term(sign));
  while (k < toks.length) {
    if (!(isOp('+') || isOp('-'))) throw bad(`expected + or - before "${toks[k].t === 'op' ? toks[k].v : String(toks[k].v)}"`);
    sign = toks[k++].v === '-' ? -1 : 1;
    terms.push(term(sign));
  }
  return terms;
}

/** A readable canonical form, e.g. `0.9*' google' + ' show'`. */
export function formatExpr(terms: ExprTerm[], tokenString: (id: number) => string): string {
  return terms
    .map((t, i) => {
      const a = t.atom.kind === 'token' ? JSON.stringify(t.atom.token || tokenString(t.atom.id)).replace(/^"|"$/g, "'") : `${t.atom.kind}(${t.atom.layer},${t.atom.index})`;
      const mag = Math.abs(t.coef);
      const body = mag === 1 ? a : `${mag}*${a}`;
      return i === 0 ? (t.coef < 0 ? '-' : '') + body : `${t.coef < 0 ? ' - ' : ' + '}${body}`;
    })
    .join('');
}
