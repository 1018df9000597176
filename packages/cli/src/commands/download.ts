import { downloadModel, PRESET_NAMES, SpError } from '@sp/core/light';
import type { Command } from 'commander';

/** `sp download NAME`: fetch a preset from the Hugging Face hub into $SP_WEIGHTS_DIR or the cache. */
export function registerDownload(program: Command): void {
  program
    .command('download')
    .description(`download a model from the Hugging Face hub (${PRESET_NAMES.join(', ')})`)
    .argument('<name>', 'preset name')
    .option('--dest <dir>', 'target directory (default: $SP_WEIGHTS_DIR/NAME or ~/.cache/sp/NAME)')
    .action(async (name: string, o: { dest?: string }) => {
      if (!(PRESET_NAMES as string[]).includes(name)) throw new SpError('BAD_INPUT', `unknown model "${name}" (choose from ${PRESET_NAMES.join(', ')})`);
      const dir = await downloadModel(name, { dest: o.dest, progress: process.stderr.isTTY });
      process.stdout.write(`${dir}\n`);
    });
}
