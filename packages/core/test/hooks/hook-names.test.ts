/**
 * Hook names come from one typed source. The `@ts-expect-error` lines are checked by `pnpm
 * typecheck` (tsconfig.test.json covers this file): if a misspelt name were accepted, the unused
 * directive would fail the type check. At run time the same typos still raise SpError, and
 * actName mirrors TransformerLens' utils.get_act_name.
 */
import fs from 'node:fs';
import { actName, ActivationCache, BLOCK_HOOKS, gpt2, hookNames, isHookName, type FwdHook, type GPT2, type HookFilter, type HookName } from '@sp/core';
import { expectSpError } from '../helpers/errors.js';
import { writeRandomGpt2, type RandomGpt2 } from '../helpers/random-gpt2.js';

// ---- type level (no model needed; these statements only have to type-check or not) ----
const good: HookName[] = ['hook_embed', 'hook_pos_embed', 'blocks.0.hook_resid_pre', 'blocks.11.attn.hook_pattern', 'blocks.3.ln2.hook_scale', 'ln_final.hook_normalized', 'hook_logits'];
// @ts-expect-error misspelt suffix
const typo1: HookName = 'blocks.0.hook_resid_pr';
// @ts-expect-error attn hooks live under attn.
const typo2: HookName = 'blocks.0.hook_pattern';
// @ts-expect-error not a number
const typo3: HookName = 'blocks.x.hook_resid_pre';
// @ts-expect-error ln_final has no hook_resid_post
const typo4: HookName = 'ln_final.hook_resid_post';
const filterOk: HookFilter = 'blocks.1.mlp.hook_post';
// @ts-expect-error string filters are hook names
const filterTypo: HookFilter = 'blocks.1.mlp.hook_pots';
const predicate: HookFilter = (n) => n.endsWith('hook_resid_pre'); // n: HookName
const hookOk: FwdHook = ['blocks.0.hook_resid_post', () => undefined];
// @ts-expect-error a fwdHooks string filter is a hook name
const hookTypo: FwdHook = ['blocks.0.hook_resid_postt', () => undefined];
type CacheOpts = NonNullable<Parameters<GPT2['runWithCache']>[1]>;
const namesOk: CacheOpts = { names: ['blocks.0.hook_resid_pre', 'ln_final.hook_scale'] };
// @ts-expect-error runWithCache names are hook names
const namesTypo: CacheOpts = { names: ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_pree'] };
declare const cache: ActivationCache;
const getOk = () => [cache.get('blocks.0.hook_resid_pre'), cache.get('resid_pre', 3), cache.get('normalized', 2, 'ln1'), cache.get('k6'), cache.get('scale4ln1')];
// @ts-expect-error misspelt short name
const getTypo = () => cache.get('resid_pr', 3);
// @ts-expect-error misspelt full name
const getTypo2 = () => cache.get('blocks.0.hook_resid_pr');
void [good, typo1, typo2, typo3, typo4, filterOk, filterTypo, predicate, hookOk, hookTypo, namesOk, namesTypo, getOk, getTypo, getTypo2];

// ---- run time ----
test('hookNames are exactly the well-formed names; isHookName rejects the typos above', () => {
  const names = hookNames(2);
  expect(names).toHaveLength(2 + 2 * BLOCK_HOOKS.length + 3);
  expect(names.every(isHookName)).toBe(true);
  for (const n of good) expect(isHookName(n)).toBe(true);
  for (const n of ['blocks.0.hook_resid_pr', 'blocks.0.hook_pattern', 'blocks.x.hook_resid_pre', 'ln_final.hook_resid_post', 'blocks.01.hook_resid_pre', 'blocks.-1.hook_resid_pre', 'hook_embedd', '']) {
    expect(isHookName(n)).toBe(false);
  }
});

test("actName mirrors TransformerLens' get_act_name (its docstring examples and alias table)", () => {
  // get_act_name's own examples
  expect(actName('k', 6, 'a')).toBe('blocks.6.attn.hook_k');
  expect(actName('pre', 2)).toBe('blocks.2.mlp.hook_pre');
  expect(actName('embed')).toBe('hook_embed');
  expect(actName('normalized', 27, 'ln2')).toBe('blocks.27.ln2.hook_normalized');
  expect(actName('k6')).toBe('blocks.6.attn.hook_k');
  expect(actName('scale4ln1')).toBe('blocks.4.ln1.hook_scale');
  expect(actName('pre5')).toBe('blocks.5.mlp.hook_pre');
  // the block-level names and the attention / MLP families
  const table: Array<[string, number, string]> = [
    ['resid_pre', 3, 'blocks.3.hook_resid_pre'], ['resid_mid', 3, 'blocks.3.hook_resid_mid'], ['resid_post', 3, 'blocks.3.hook_resid_post'],
    ['attn_out', 1, 'blocks.1.hook_attn_out'], ['mlp_out', 1, 'blocks.1.hook_mlp_out'],
    ['q', 0, 'blocks.0.attn.hook_q'], ['v', 0, 'blocks.0.attn.hook_v'], ['z', 0, 'blocks.0.attn.hook_z'],
    ['pattern', 2, 'blocks.2.attn.hook_pattern'], ['attn_scores', 2, 'blocks.2.attn.hook_attn_scores'], ['post', 2, 'blocks.2.mlp.hook_post'],
    // aliases: attn → pattern, attn_logits → attn_scores, key/query/value, mlp_pre/mlp_post
    ['attn', 4, 'blocks.4.attn.hook_pattern'], ['attn_logits', 4, 'blocks.4.attn.hook_attn_scores'], ['key', 4, 'blocks.4.attn.hook_k'],
    ['query', 4, 'blocks.4.attn.hook_q'], ['value', 4, 'blocks.4.attn.hook_v'], ['mlp_pre', 4, 'blocks.4.mlp.hook_pre'], ['mlp_post', 4, 'blocks.4.mlp.hook_post'],
  ];
  for (const [short, layer, full] of table) expect([short, layer, actName(short, layer)]).toEqual([short, layer, full]);
  expect(actName('scale')).toBe('ln_final.hook_scale');
  expect(actName('normalized')).toBe('ln_final.hook_normalized');
  expect(actName('scale', 1, 'ln1')).toBe('blocks.1.ln1.hook_scale');
  expect(actName('resid_pre', 2, 'b')).toBe('blocks.2.hook_resid_pre');
  expect(actName('pos_embed')).toBe('hook_pos_embed');
  expect(actName('logits')).toBe('hook_logits');
  expect(actName('resid_post10')).toBe('blocks.10.hook_resid_post'); // sp also reads underscores in the compact form
  expect(actName('blocks.0.attn.hook_z')).toBe('blocks.0.attn.hook_z'); // full names pass through
  expectSpError(() => actName('mid', 0), 'BAD_INPUT', /blocks\.0\.mlp\.hook_mid.*not a hook point/); // GPT-2 has no mlp.hook_mid
  expectSpError(() => actName('scale', 1), 'BAD_INPUT', /blocks\.1\.hook_scale/); // a block's scale needs ln1/ln2
  expectSpError(() => actName('blocks.0.hook_nope'), 'BAD_INPUT', /unknown hook point "blocks\.0\.hook_nope"/);
  expectSpError(() => actName('resid_pre', -1), 'BAD_INPUT', /layer must be an integer/);
});

describe('on a model', () => {
  let fx: RandomGpt2;
  let model: GPT2;
  beforeAll(async () => {
    fx = writeRandomGpt2({ nLayer: 2, dModel: 32, nHead: 4, nCtx: 16, seed: 11 });
    model = await gpt2(fx.dir, { backend: process.env.SP_BACKEND ?? 'wasm' });
  });
  afterAll(() => {
    model?.dispose();
    if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  test('model.hookNames() is typed and equals hookNames(nLayer); typos still fail at run time', () => {
    const names: HookName[] = model.hookNames();
    expect(names).toEqual(hookNames(2));
    const cast = (s: string) => s as HookName; // what an untyped (JS) caller can still pass
    expectSpError(() => model.runWithCache([1, 2], { names: [cast('blocks.0.hook_resid_pr')] }), 'BAD_INPUT', /unknown hook point "blocks\.0\.hook_resid_pr"/);
    expectSpError(() => model.forward([1, 2], { fwdHooks: [[cast('blocks.5.hook_resid_pre'), () => undefined]] }), 'BAD_INPUT', /blocks\.5\.hook_resid_pre/);
  });

  test('a predicate filter sees every hook name in forward order', () => {
    const seen: HookName[] = [];
    model.forward([1, 2, 3], { fwdHooks: [[(n) => (seen.push(n), false), () => undefined]] }).dispose();
    // the predicate is asked per hook point (possibly more than once); the first sightings are in forward order
    expect([...new Set(seen)]).toEqual(model.hookNames());
  });
});
