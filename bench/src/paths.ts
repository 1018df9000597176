import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/ (this file is bench/dist/paths.js or bench/src/paths.ts). */
export const benchRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = path.resolve(benchRoot, '..');
export const cliMain = path.join(repoRoot, 'packages/cli/dist/main.js');
