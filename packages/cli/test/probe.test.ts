/**
 * `sp probe`: in process (the command module on a fresh commander program) for output and JSON,
 * and as a real process (src/main.ts under tsx, @sp/core mapped to its source) for exit codes.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { gpt2, SafetensorsFile, speakingProbe, SpError, type SpeakingProbeResult } from '@sp/core';
import { registerProbe } from '../src/commands/probe.js';
import { fixtureDir, golden, repoRoot, tmpDir } from '../../core/test/helpers/fixtures.js';

const model = fixtureDir('tiny-gpt2');
const g = golden('tiny-gpt2').cases.find((c) => c.name === 'term-means-param-1-5')!;

/** Run `sp probe ARGS` in process; returns stdout, or throws what the command throws. */
async function probe(args: string[]): Promise<string> {
  const program = new Command('sp').exitOverride().option('-v, --verbose').option('--backend <name>');
  registerProbe(program);
  let out = '';
  const [write, writeErr] = [process.stdout.write, process.stderr.write];
  process.stdout.write = ((s: string | Uint8Array) => {
    out += String(s);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'sp', 'probe', ...args]);
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
  }
  return out;
}
const probeJson = async (args: string[]) => JSON.parse(await probe([...args, '--json'])) as SpeakingProbeResult;

describe('sp probe (in process)', () => {
  test('--json, greedy: the golden continuation with the default repetition penalty 2, and with 1', async () => {
    const r = await probeJson(['--model', model, '--prompt', 'The term "<neuron>" means', '--neuron', '1,5', '--greedy', '--max-new-tokens', '8']);
    expect(r.prompt_ids).toEqual(g.ids);
    expect(r.neuron_positions).toEqual([3]);
    expect(r.samples).toHaveLength(1);
    // 8 tokens unless EOS came first (it does not in the golden continuation).
    expect(r.samples[0].ids).toEqual([...g.ids, ...g.greedy_rep2]);
    expect(r.projection!.top).toHaveLength(20);
    expect(r.projection!.top[0]).toEqual({ id: expect.any(Number), token: expect.any(String), score: expect.any(Number) });
    const r1 = await probeJson(['--model', model, '--prompt-name', 'term-means', '--neuron', 'key:1,5', '--greedy', '--max-new-tokens', '8', '--repetition-penalty', '1', '--top', '0']);
    expect(r1.samples[0].new_ids).toEqual(g.greedy);
    expect(r1.projection).toBeNull();
    const r2 = await probeJson(['--model', model, '--prompt', 'The term "<param_1_5>" means', '--greedy', '--max-new-tokens', '8']);
    expect(r2.samples[0].new_ids).toEqual(g.greedy_rep2);
  });

  test('sampling: article defaults, --seed reproducible, equal to the library call', async () => {
    const args = ['--model', model, '--neuron', 'value:1,5', '--seed', '9', '--max-new-tokens', '6'];
    const a = await probeJson(args);
    const b = await probeJson(args);
    expect(a.samples).toEqual(b.samples);
    expect(a.samples).toHaveLength(3);
    expect(a.options).toMatchObject({ do_sample: true, temperature: 0.5, repetition_penalty: 2, top_k: 50, seed: 9 });
    expect(a.prompt).toBe('The term "<neuron>" means'); // default prompt: the library's term-means
    const m = await gpt2(model);
    const lib = await speakingProbe(m, { prompt: a.prompt, neurons: ['value:1,5'], seed: 9, maxNewTokens: 6 });
    m.dispose();
    expect(lib.samples).toEqual(a.samples);
    const c = await probeJson([...args, '--samples', '2', '--temperature', '1.2', '--top-k', '0', '--top-p', '0.9']);
    expect(c.samples).toHaveLength(2);
    expect(c.options).toMatchObject({ temperature: 1.2, top_k: 0, top_p: 0.9 });
  });

  test('neuron sources: file (.npy), expr, hidden state, scale, inject layer', async () => {
    const dir = tmpDir('sp-cli-');
    const npy = path.join(dir, 'v.npy');
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (32,), }".padEnd(117, ' ') + '\n';
    const buf = Buffer.alloc(10 + header.length + 128);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(buf);
    buf.writeUInt16LE(header.length, 8);
    buf.write(header, 10, 'latin1');
    const m = await gpt2(model);
    const key = m.ffKey(1, 5);
    m.dispose();
    key.forEach((x, i) => buf.writeFloatLE(x, 10 + header.length + 4 * i));
    fs.writeFileSync(npy, buf);
    const base = ['--model', model, '--greedy', '--max-new-tokens', '8', '--repetition-penalty', '1'];
    const f = await probeJson([...base, '--neuron', `file:${npy}`]);
    expect(f.samples[0].new_ids).toEqual(g.greedy); // the FF key, read back from the .npy file
    expect(f.neurons[0].source).toEqual({ type: 'file', path: npy });
    const e = await probeJson([...base, '--neuron', 'expr:0.9*google + show', '--scale', '2']);
    expect(e.neurons[0].label).toBe("2×expr 0.9*' google' + ' show'");
    expect(e.neurons[0].source).toMatchObject({ canonical: "0.9*' google' + ' show'", terms: [{ coef: 0.9, id: 23645 }, { coef: 1, id: 905 }] });
    const h = await probeJson([...base, '--prompt', 'Say <neuron>', '--source-prompt', 'The cat sat', '--source-layer', '1', '--source-position', '-2']);
    expect(h.neurons[0]).toMatchObject({ inject_layer: 1, source: { type: 'hidden', layer: 1, position: 1, token: ' cat' } });
    const k = await probeJson([...base, '--neuron', '1,5', '--inject-layer', '1']);
    expect(k.neurons[0].inject_layer).toBe(1);
    expect(k.samples[0].new_ids).not.toEqual(g.greedy);
  });

  test('human output: the template, every sample, the embedding-space view', async () => {
    const out = await probe(['--model', model, '--neuron', '1,5', '--seed', '1', '--max-new-tokens', '4', '--top', '5']);
    const r = await probeJson(['--model', model, '--neuron', '1,5', '--seed', '1', '--max-new-tokens', '4', '--top', '5']);
    for (const s of r.samples) expect(out).toContain('The term "<neuron>" means' + s.text);
    expect(out).toContain('prompt ids [464, 3381, 366, 0, 1, 1724], virtual position 3');
    expect(out).toContain('<neuron> = key L1 #5');
    expect(out).toContain(`v·Eᵀ top:            ${r.projection!.top.map((t) => JSON.stringify(t.token)).join(' ')}`);
    expect(out).toContain(`v·Eᵀ top (unit E):   ${r.projection!.top_normalized.map((t) => JSON.stringify(t.token)).join(' ')}`);
  });

  test('--list-prompts, with a user directory', async () => {
    const dir = tmpDir('sp-cli-prompts-');
    fs.writeFileSync(path.join(dir, 'mine.txt'), 'Mine: <neuron>');
    const list = JSON.parse(await probe(['--list-prompts', '--prompts-dir', dir, '--json'])) as Array<{ name: string; template: string; bundled: boolean }>;
    expect(list.find((p) => p.name === 'mine')).toMatchObject({ template: 'Mine: <neuron>', bundled: false });
    expect(list.find((p) => p.name === 'invented-word')!.template).toBe("The invented word ' <neuron>' is a combination of the words");
    const human = await probe(['--list-prompts']);
    expect(human).toMatch(/^term-means\s+"The term \\"<neuron>\\" means"$/m);
    const r = await probeJson(['--model', model, '--prompt-name', 'mine', '--prompts-dir', dir, '--neuron', '1,5', '--greedy', '--max-new-tokens', '1']);
    expect(r.prompt).toBe('Mine: <neuron>');
  });

  test('bad input throws a one-line SpError', async () => {
    const f = path.join(tmpDir('sp-cli-'), 'w.json');
    fs.writeFileSync(f, '[1, 2]');
    const cases: Array<[string[], RegExp]> = [
      [['--prompt', 'no tag', '--neuron', '1,5'], /no virtual-token tag/],
      [['--prompt', '<neuron> <neuron2>', '--neuron', '1,5'], /uses <neuron2> but only 1 neuron/],
      [['--neuron', 'expr:0.9*gooogleq + show'], /unknown token gooogleq/],
      [['--neuron', '2,5'], /layer 2 is out of range \[0, 1\]/],
      [['--neuron', '1,128'], /neuron index 128 is out of range/],
      [['--neuron', `file:${f}`], /width 2, the model's d_model is 32/],
      [['--neuron', '1,5', '--temperature', '0'], /--temperature must be > 0 when sampling/],
      [['--neuron', '1,5', '--greedy', '--samples', '2'], /--greedy gives one sample/],
      [['--neuron', '1,5', '--source-prompt', 'x', '--source-layer', '1'], /not both/],
      [['--source-prompt', 'x'], /needs --source-layer/],
      [['--neuron', '1,5', '--prompt', 'a <neuron>', '--prompt-name', 'meaning'], /give one of/],
      [['--neuron', '1,5', '--prompt-name', 'nope'], /no prompt named "nope"/],
      [['--neuron', 'bias:1,2'], /unknown neuron source/],
    ];
    for (const [args, re] of cases) {
      const e = await probe(['--model', model, ...args]).catch((x) => x);
      expect(e).toBeInstanceOf(SpError);
      expect(e.message).toMatch(re);
      expect(e.message).not.toContain('\n');
    }
  });
});

describe('sp probe (real process)', () => {
  // src/main.ts under tsx with @sp/core mapped to its source: no build needed.
  const tsx = path.join(repoRoot, 'examples/node_modules/.bin/tsx');
  const cfgDir = tmpDir('sp-tsx-');
  fs.writeFileSync(path.join(cfgDir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { baseUrl: repoRoot, paths: { '@sp/core': ['packages/core/src/index.ts'], '@sp/core/light': ['packages/core/src/light.ts'] } } }));
  const run = (args: string[]) => spawnSync(tsx, [path.join(repoRoot, 'packages/cli/src/main.ts'), 'probe', ...args], {
    encoding: 'utf8',
    env: { ...process.env, TSX_TSCONFIG_PATH: path.join(cfgDir, 'tsconfig.json') },
    timeout: 120_000,
  });

  test('exit 0 with JSON only on stdout; bad input: exit 1 and one line on stderr', () => {
    expect(fs.existsSync(tsx)).toBe(true);
    const ok = run(['--model', model, '--neuron', '1,5', '--greedy', '--max-new-tokens', '8', '--json']);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).samples[0].new_ids).toEqual(g.greedy_rep2);
    for (const args of [['--prompt', 'no tag', '--neuron', '1,5'], ['--neuron', '5,5'], ['--neuron', 'expr:zzqqxx'], ['--neuron', '1,5', '--temperature', '-1']]) {
      const r = run(['--model', model, ...args]);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^error: [^\n]+\n$/);
    }
  });
});

describe('sp probe: <|endoftext|> in sample texts', () => {
  // A vector that, entering the last block at the virtual (last) position, makes tiny-gpt2 say EOS next.
  let vecFile: string;
  beforeAll(() => {
    const f = SafetensorsFile.open(path.join(model, 'model.safetensors'));
    try {
      const name = f.tensors.has('wte.weight') ? 'wte.weight' : 'transformer.wte.weight';
      vecFile = path.join(tmpDir('sp-probe-eos-'), 'eos.json');
      fs.writeFileSync(vecFile, JSON.stringify(Array.from(f.readRow(name, 50256), (v) => 40 * v)));
    } finally {
      f.close();
    }
  });
  afterAll(() => fs.rmSync(path.dirname(vecFile), { recursive: true, force: true }));
  const args = () => ['--model', model, '--prompt', 'The term "<neuron>', '--neuron', `file:${vecFile}`, '--inject-layer', '1', '--greedy', '--max-new-tokens', '3', '--top', '0'];

  test('dropped by default (skip_special_tokens=True), kept with --keep-special-tokens; ids keep the EOS id', async () => {
    const r = await probeJson(args());
    const k = await probeJson([...args(), '--keep-special-tokens']);
    expect(r.samples[0].new_ids).toEqual([50256]); // stopped at EOS
    expect(k.samples[0].new_ids).toEqual([50256]);
    expect(r.samples[0].text).toBe('');
    expect(k.samples[0].text).toBe('<|endoftext|>');
    expect(r.options.skip_special_tokens).toBe(true);
    expect(k.options.skip_special_tokens).toBe(false);
    expect(await probe(args())).not.toContain('<|endoftext|>');
    expect(await probe([...args(), '--keep-special-tokens'])).toContain('<|endoftext|>');
  });
});
