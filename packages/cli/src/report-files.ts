/** `--html/--svg/--png FILE` for the commands that draw reports (lens, rank, probe). */
import fs from 'node:fs';
import path from 'node:path';
import { SpError } from '@sp/core/light';
import { toPng, toSvg } from '@sp/report';
import type { Command } from 'commander';
import { info } from './common.js';

export interface ReportFiles {
  html?: string;
  svg?: string;
  png?: string;
}

type ChartSpec = Parameters<typeof toSvg>[0];

/**
 * Fail before the work, not after it: every output's folder must exist and be writable, and the
 * file itself, if it exists, must be a writable file. Call before loading the model.
 */
export function checkReportFiles(o: ReportFiles): void {
  for (const flag of ['html', 'svg', 'png'] as const) {
    const file = o[flag];
    if (file === undefined) continue;
    const dir = path.dirname(path.resolve(file));
    const fail = (why: string) => new SpError('BAD_INPUT', `cannot write --${flag} ${file}: ${why}`);
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(dir);
    } catch {
      throw fail(`folder ${dir} does not exist`);
    }
    if (!st.isDirectory()) throw fail(`${dir} is not a folder`);
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch {
      throw fail(`folder ${dir} is not writable`);
    }
    const existing = fs.statSync(file, { throwIfNoEntry: false });
    if (existing?.isDirectory()) throw fail('it is a folder');
  }
}

/** Write what was asked for; the chart is rendered to SVG once and the PNG made from that SVG. */
export async function writeReports(cmd: Command, o: ReportFiles, html: () => string, chart?: () => ChartSpec): Promise<void> {
  if (o.html) writeFile(cmd, o.html, html());
  if (!chart || (!o.svg && !o.png)) return;
  const svg = await toSvg(chart());
  if (o.svg) writeFile(cmd, o.svg, svg);
  if (o.png) writeFile(cmd, o.png, await toPng(svg));
}

/** Written to a temporary file beside it, then renamed: a failed write never leaves a partial file. */
export function writeFile(cmd: Command, file: string, data: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new SpError('BAD_INPUT', `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  info(cmd, `wrote ${file}`);
}
