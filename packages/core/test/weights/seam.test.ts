/**
 * The seam between weights/ and backend/: one table of GPT-2's HF names (weights/names.ts) that both
 * checkpoint validation and the model's parameter list read, and one byte reader
 * (SafetensorsFile.readInto, behind Checkpoint.readInto) on the file's own descriptor.
 */
import fs from 'node:fs';
import { Checkpoint, initBackend, makeConfig, SafetensorsFile, SpError } from '@sp/core';
import { requiredTensorShapes } from '../../src/weights/names.js';
import { disposeWeights, uploadWeights } from '../../src/model/weights.js';
import { writeRandomGpt2 } from '../helpers/random-gpt2.js';
import { expectSpError } from '../helpers/errors.js';

/** The HF GPT2Model state dict for a config, spelled out by hand (transformers' key order). */
function hfStateDict(nLayer: number, d: number, dMlp: number, nCtx: number, vocab: number): [string, number[]][] {
  const out: [string, number[]][] = [
    ['wte.weight', [vocab, d]],
    ['wpe.weight', [nCtx, d]],
  ];
  for (let i = 0; i < nLayer; i++) {
    out.push(
      [`h.${i}.ln_1.weight`, [d]], [`h.${i}.ln_1.bias`, [d]],
      [`h.${i}.attn.c_attn.weight`, [d, 3 * d]], [`h.${i}.attn.c_attn.bias`, [3 * d]],
      [`h.${i}.attn.c_proj.weight`, [d, d]], [`h.${i}.attn.c_proj.bias`, [d]],
      [`h.${i}.ln_2.weight`, [d]], [`h.${i}.ln_2.bias`, [d]],
      [`h.${i}.mlp.c_fc.weight`, [d, dMlp]], [`h.${i}.mlp.c_fc.bias`, [dMlp]],
      [`h.${i}.mlp.c_proj.weight`, [dMlp, d]], [`h.${i}.mlp.c_proj.bias`, [d]],
    );
  }
  out.push(['ln_f.weight', [d]], ['ln_f.bias', [d]]);
  return out;
}

/** Open file descriptors of this process (Linux). */
const openFds = () => fs.readdirSync('/proc/self/fd').length;

test('the names table is the HF GPT-2 state dict (names and shapes)', () => {
  const c = makeConfig({ nLayer: 3, nHead: 4, dModel: 32, nCtx: 16, dVocab: 101, dMlp: 80 });
  const got = [...requiredTensorShapes(c)].sort(([a], [b]) => (a < b ? -1 : 1));
  const want = hfStateDict(3, 32, 80, 16, 101).sort(([a], [b]) => (a < b ? -1 : 1));
  expect(got).toEqual(want);
});

describe.each(['F32', 'F16'] as const)('loading a %s model', (dtype) => {
  test('reads every parameter in the table and nothing else', async () => {
    await initBackend();
    const { dir } = writeRandomGpt2({ nLayer: 2, nHead: 2, dModel: 16, dtype, prefix: true, buffers: true, seed: 5 });
    const ckpt = Checkpoint.open(dir);
    try {
      const read = new Set<string>();
      // Record the names the loader asks the checkpoint for, whichever reader it uses.
      const recording = new Proxy(ckpt, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (prop === 'readInto' || prop === 'read') {
            return (name: string, ...rest: unknown[]) => {
              read.add(name);
              return (v as (...a: unknown[]) => unknown).call(target, name, ...rest);
            };
          }
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      const w = uploadWeights(recording);
      disposeWeights(w);
      expect([...read].sort()).toEqual([...requiredTensorShapes(ckpt.config).keys()].sort());
    } finally {
      ckpt.close();
    }
  });
});

describe('readInto', () => {
  const { dir } = writeRandomGpt2({ nLayer: 1, nHead: 2, dModel: 16, prefix: true, seed: 9 });
  const file = `${dir}/model.safetensors`;

  test('SafetensorsFile.readInto gives the file bytes at tensor offset + byteOffset', () => {
    const raw = fs.readFileSync(file);
    const f = SafetensorsFile.open(file);
    try {
      const t = f.info('transformer.h.0.mlp.c_fc.weight');
      for (const [off, len] of [[0, 64], [4, 12], [t.end - t.begin - 8, 8], [100, 0]]) {
        const dst = new Uint8Array(len).fill(0xee);
        f.readInto(t.name, dst, off);
        expect(Buffer.from(dst).equals(raw.subarray(t.begin + off, t.begin + off + len))).toBe(true);
      }
      expectSpError(() => f.readInto(t.name, new Uint8Array(16), t.end - t.begin - 8), 'OUT_OF_RANGE');
      expectSpError(() => f.readInto(t.name, new Uint8Array(4), -4), 'OUT_OF_RANGE');
      expectSpError(() => f.readInto('nope', new Uint8Array(4)), 'NOT_FOUND');
    } finally {
      f.close();
    }
    expectSpError(() => f.readInto('transformer.wte.weight', new Uint8Array(4)), 'BAD_INPUT'); // closed
  });

  test('Checkpoint.readInto takes canonical names and reads through the file already open (no new descriptor)', () => {
    const ckpt = Checkpoint.open(dir);
    try {
      const before = openFds();
      const dst = new Uint8Array(16 * 4);
      ckpt.readInto('wte.weight', dst, 16 * 4 * 7); // row 7
      expect(openFds()).toBe(before);
      expect(Array.from(new Float32Array(dst.buffer))).toEqual(Array.from(ckpt.tokenEmbedding(7)));
      expect(() => ckpt.readInto('wte.weight', new Uint8Array(8), ckpt.info('wte.weight').end)).toThrow(SpError);
    } finally {
      ckpt.close();
    }
  });
});
