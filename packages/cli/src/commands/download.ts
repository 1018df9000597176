import { downloadModel, hfHubCache, PRESET_NAMES } from '@sp/core/light';
import type { Command } from 'commander';

/** `sp download NAME|REPO_ID[@REV]`: fetch a model into the shared Hugging Face cache (or --dest). */
export function registerDownload(program: Command): void {
  program
    .command('download')
    .description(`download a GPT-2 model from the Hugging Face hub into its cache (a preset: ${PRESET_NAMES.join(', ')}; or any repo id owner/name[@revision])`)
    .argument('<model>', 'preset name or hub repo id, optionally @revision (branch, tag, commit, refs/pr/N)')
    .option('--dest <dir>', `write the files flat into DIR instead of the Hugging Face cache (default: ${hfHubCache()})`)
    .action(async (name: string, o: { dest?: string }) => {
      const dir = await downloadModel(name, { dest: o.dest, progress: process.stderr.isTTY });
      process.stdout.write(`${dir}\n`);
    });
}
