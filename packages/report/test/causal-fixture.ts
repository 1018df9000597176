/**
 * Hand-made results in the shapes `sp patch|attr|dla|attention --json` print (docs/causal.md), with
 * known numbers, for the causal-report tests (Node and Chromium).
 */
import type { AttentionResultLike, AttrResultLike, DlaResultLike, PatchResultLike } from '@sp/report';

export const EVIL = '</script><script>alert(1)</script>';
export const TOKENS = ['When', ' Mary', ' and', ' John', '\u001b', ' gave'];

/** clean 3, corrupt −1: normalised = (v + 1) / 4. */
export function patch(): PatchResultLike {
  return {
    site: 'resid_pre', clean_metric: 3, corrupt_metric: -1, layers: [0, 1, 2], positions: [0, 1, 2, 3, 4, 5],
    values: [
      [-1, 1, 3, 5, -3, 0.123456789],
      [-1, -1, 2, -1, -1, 3],
      [0, 0, 0, 0, 0, 3],
    ],
    tokens: TOKENS, answer: ' John', wrong: ' Mary', model: 'hand-made',
  };
}

/** Site z: values[l][h] over 2 layers × 3 heads. */
export function patchZ(): PatchResultLike {
  return { site: 'z', clean_metric: 2, corrupt_metric: 0, layers: [0, 1], positions: [0, 1, 2, 3, 4, 5], heads: [0, 1, 2], values: [[0.5, -0.25, 2], [1, 0, 0.1]], tokens: TOKENS };
}

export function attr(): AttrResultLike {
  return {
    ids: [2215, 5335, 290, 1757, 27, 2921], tokens: TOKENS, target_id: 284, target_token: ' to', position: 5, method: 'grad-x-input',
    target_value: 12.5, attributions: [0.8, -1.6, 0.05, 0.4, 0, -0.2], model: 'hand-made',
  };
}

/** 30 components with distinct |value|: the top 20 and an "other" of 10. */
export function dla(): DlaResultLike {
  const names = ['embed', 'pos_embed', ...Array.from({ length: 3 }, (_, l) => [...Array.from({ length: 8 }, (_, h) => `L${l}.H${h}`), `L${l}.mlp`]).flat(), 'bias'];
  const components = names.map((name, i) => ({ name, value: (i % 3 === 0 ? -1 : 1) * (0.1 + ((i * 7) % 30) / 10) }));
  return { components, total: components.reduce((a, c) => a + c.value, 0), token: ' John', vs: ' Mary', position: 5, tokens: TOKENS, model: 'hand-made' };
}

/** 2 layers × 3 heads over TOKENS; causal rows summing to 1. */
export function attention(): AttentionResultLike {
  const n = TOKENS.length;
  const pat = (l: number, h: number) =>
    Array.from({ length: n }, (_, q) => {
      const w = Array.from({ length: n }, (_, k) => (k <= q ? 1 + ((k + h + l) % 3) : 0));
      const s = w.reduce((a, x) => a + x, 0);
      return w.map((x) => x / s);
    });
  return { tokens: TOKENS, layers: [0, 1].map((layer) => ({ layer, heads: [0, 1, 2].map((h) => pat(layer, h)) })), model: 'hand-made' };
}
