/** `openStore(spec)`: a file path → the SQLite store; `postgres://…` → the PostgreSQL store. */
import { SpError } from '@sp/core';
import { PgStore } from './pg.js';
import { SqliteStore, type SqliteOpenOptions } from './sqlite.js';
import type { AtlasStore } from './types.js';

export type OpenStoreOptions = SqliteOpenOptions;

export function isPostgresUrl(spec: string): boolean {
  return /^postgres(ql)?:\/\//i.test(spec);
}

export async function openStore(spec: string, opts: OpenStoreOptions = {}): Promise<AtlasStore> {
  if (typeof spec !== 'string' || spec.trim() === '') throw new SpError('BAD_INPUT', 'a store needs a path (or a postgres:// URL)');
  if (isPostgresUrl(spec)) return PgStore.open(spec);
  return SqliteStore.open(spec, opts);
}
