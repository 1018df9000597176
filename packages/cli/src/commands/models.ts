import { listCachedModels } from '@sp/core/light';
import type { Command } from 'commander';

const gb = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${(n / 1e6).toFixed(1)} MB`);

/** `sp models`: what is on disk (the Hugging Face cache, then sp's own folders). */
export function registerModels(program: Command): void {
  program
    .command('models')
    .description('list the models on disk: Hugging Face cache snapshots and $SP_WEIGHTS_DIR / weights/ / ~/.cache/sp folders')
    .option('--json', 'one JSON array: repo, revision, commit, modelType, size (bytes), path, source')
    .action((o: { json?: boolean }) => {
      const models = listCachedModels();
      if (o.json) {
        process.stdout.write(`${JSON.stringify(models)}\n`);
        return;
      }
      const rows = [['REPO', 'REVISION', 'TYPE', 'SIZE', 'PATH'], ...models.map((m) => [m.repo, m.revision || '-', m.modelType ?? '?', gb(m.size), m.path])];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
    });
}
