/** rankingsWatch's `eccoPosition`: Ecco's numbering (the predicted token) maps to hidden state p − 1. */
import { gpt2, rankingsWatch, type GPT2 } from '@sp/core';
import { fixtureDir } from '../helpers/fixtures.js';

const backend = process.env.SP_BACKEND ?? 'wasm';
const keys = [464, 8251, 284, 262, 13447]; // "The keys to the cabinet": 5 tokens

let model: GPT2;
beforeAll(async () => {
  model = await gpt2(fixtureDir('tiny-gpt2'), { backend });
});
afterAll(() => model.dispose());

test('eccoPosition p reads hidden state p − 1 (Ecco: rankings_watch(position=5) on 5 tokens = the last state)', () => {
  const watch = [' is', ' are'];
  for (let p = 1; p <= keys.length; p++) {
    const ecco = rankingsWatch(model, keys, watch, { eccoPosition: p });
    const sp = rankingsWatch(model, keys, watch, { position: p - 1 });
    expect(ecco.position).toBe(p - 1);
    expect(ecco).toEqual(sp);
  }
  expect(rankingsWatch(model, keys, watch, { eccoPosition: 5 })).toEqual(rankingsWatch(model, keys, watch)); // the default: the last
  // a ragged batch: each prompt checks p against its own length
  const [a, b] = rankingsWatch(model, [keys, keys.slice(0, 3)], watch, { eccoPosition: 2 });
  expect([a.position, b.position]).toEqual([1, 1]);
  // positions differ: the numbers are not those of a neighbouring state
  expect(rankingsWatch(model, keys, watch, { eccoPosition: 4 }).layers).not.toEqual(rankingsWatch(model, keys, watch, { position: 4 }).layers);
});

test('eccoPosition out of range, or given with position: one line each', () => {
  const err = (f: () => unknown, msg: string) => {
    expect(f).toThrow(msg);
    try {
      f();
    } catch (e) {
      expect((e as Error).name).toBe('SpError');
      expect((e as Error).message).not.toContain('\n');
    }
  };
  const msg = (p: number, n = 5) => `Ecco position ${p} is out of range for a ${n}-token prompt (use 1..${n}: it names the predicted token and reads hidden state position − 1)`;
  err(() => rankingsWatch(model, keys, [' is'], { eccoPosition: 6 }), msg(6));
  err(() => rankingsWatch(model, keys, [' is'], { eccoPosition: 0 }), msg(0));
  err(() => rankingsWatch(model, keys, [' is'], { eccoPosition: -1 }), msg(-1));
  err(() => rankingsWatch(model, keys, [' is'], { eccoPosition: 2.5 }), msg(2.5));
  err(() => rankingsWatch(model, [keys, keys.slice(0, 3)], [' is'], { eccoPosition: 4 }), msg(4, 3));
  err(() => rankingsWatch(model, keys, [' is'], { eccoPosition: 2, position: 1 }), 'give position or eccoPosition, not both');
});
