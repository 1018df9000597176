/** `--html/--svg/--png FILE` for the commands that draw reports (lens, rank, probe). */
import fs from 'node:fs';
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

/** Write what was asked for; the chart is rendered to SVG once and the PNG made from that SVG. */
export async function writeReports(cmd: Command, o: ReportFiles, html: () => string, chart?: () => ChartSpec): Promise<void> {
  if (o.html) writeFile(cmd, o.html, html());
  if (!chart || (!o.svg && !o.png)) return;
  const svg = await toSvg(chart());
  if (o.svg) writeFile(cmd, o.svg, svg);
  if (o.png) writeFile(cmd, o.png, await toPng(svg));
}

export function writeFile(cmd: Command, file: string, data: string | Uint8Array): void {
  try {
    fs.writeFileSync(file, data);
  } catch (e) {
    throw new SpError('BAD_INPUT', `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  info(cmd, `wrote ${file}`);
}
