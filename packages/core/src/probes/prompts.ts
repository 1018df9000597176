/**
 * The prompt library: templates shipped as data in assets/prompts/NAME.txt (the speaking-probes
 * article's and repository's prompts) plus the user's own directories of NAME.txt files, which
 * take precedence (first directory wins). A file holds the template verbatim; one trailing
 * newline is ignored so editors can add one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpError } from '../errors.js';

/** Works from both src/probes and dist/probes: each is two levels under the package root. */
export const BUNDLED_PROMPTS_DIR = fileURLToPath(new URL('../../assets/prompts/', import.meta.url));

export interface LibraryPrompt {
  name: string;
  template: string;
  path: string;
  description?: string;
  source?: string;
  bundled: boolean;
}

/** User directories from `extra`, then $SP_PROMPTS_DIR (path-list), then the bundled library. */
export function promptDirs(extra: string[] = []): string[] {
  const env = process.env.SP_PROMPTS_DIR ? process.env.SP_PROMPTS_DIR.split(path.delimiter).filter(Boolean) : [];
  return [...extra, ...env, BUNDLED_PROMPTS_DIR];
}

function readIndex(dir: string): Record<string, { description?: string; source?: string }> {
  const p = path.join(dir, 'index.json');
  if (!fs.existsSync(p)) return {};
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch {
    throw new SpError('BAD_FILE', `cannot parse ${p} as JSON`);
  }
}

function readTemplate(file: string): string {
  return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

/** Every prompt visible from `dirs` (earlier directories shadow later ones), sorted by name. */
export function listPrompts(extraDirs: string[] = []): LibraryPrompt[] {
  const seen = new Map<string, LibraryPrompt>();
  for (const dir of promptDirs(extraDirs)) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
      if (dir === BUNDLED_PROMPTS_DIR) throw new SpError('NOT_FOUND', `the bundled prompt library ${dir} is missing`);
      throw new SpError('NOT_FOUND', `prompt directory ${dir} does not exist`);
    }
    const index = readIndex(dir);
    for (const f of fs.readdirSync(dir).sort()) {
      if (!f.endsWith('.txt')) continue;
      const name = f.slice(0, -4);
      if (seen.has(name)) continue;
      const file = path.join(dir, f);
      seen.set(name, { name, template: readTemplate(file), path: file, ...index[name], bundled: dir === BUNDLED_PROMPTS_DIR });
    }
  }
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** A library prompt by name. */
export function loadPrompt(name: string, extraDirs: string[] = []): LibraryPrompt {
  const all = listPrompts(extraDirs);
  const p = all.find((x) => x.name === name);
  if (!p) throw new SpError('NOT_FOUND', `no prompt named "${name}" (available: ${all.map((x) => x.name).join(', ')})`);
  return p;
}

/** A template from a file (verbatim, one trailing newline ignored). */
export function readPromptFile(file: string): string {
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new SpError('NOT_FOUND', `prompt file ${file} not found`);
  return readTemplate(file);
}
