import { openCheckpoint } from '@sp/core/light';
import type { Command } from 'commander';
import { info, parseIntOpt, printJson } from '../common.js';

/** `sp neuron`: FF key (column of c_fc) and value (row of c_proj) read from the file, no model load. */
export function registerNeuron(program: Command): void {
  program
    .command('neuron')
    .description('print FF key j (column of mlp.c_fc.weight) and value j (row of mlp.c_proj.weight) of a layer, read lazily from the file')
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .requiredOption('--layer <L>', 'layer', parseIntOpt('--layer'))
    .requiredOption('--index <J>', 'neuron index', parseIntOpt('--index'))
    .option('--json', 'print JSON only')
    .action(async (o: { model: string; layer: number; index: number; json?: boolean }, cmd: Command) => {
      const t0 = performance.now();
      const ckpt = await openCheckpoint(o.model, { download: true, progress: process.stderr.isTTY });
      try {
        const key = Array.from(ckpt.ffKey(o.layer, o.index));
        const value = Array.from(ckpt.ffValue(o.layer, o.index));
        info(cmd, `read 2 × ${key.length} floats in ${(performance.now() - t0).toFixed(1)} ms`);
        if (o.json) printJson({ layer: o.layer, index: o.index, key, value });
        else {
          const fmt = (v: number[]) => v.slice(0, 8).map((x) => x.toFixed(4)).join(' ') + (v.length > 8 ? ' …' : '');
          const norm = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0)).toFixed(4);
          process.stdout.write(`layer ${o.layer} neuron ${o.index} (d_model ${key.length})\n`);
          process.stdout.write(`key   ‖k‖=${norm(key)}  ${fmt(key)}\nvalue ‖v‖=${norm(value)}  ${fmt(value)}\n`);
        }
      } finally {
        ckpt.close();
      }
    });
}
