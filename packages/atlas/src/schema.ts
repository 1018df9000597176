/**
 * The atlas schema, one DDL for SQLite and PostgreSQL (documented in docs/atlas.md). Keys are the
 * issue's: a neuron row is (model digest, kind, layer, index, settings digest). Floats are
 * DOUBLE PRECISION (REAL affinity in SQLite) so float32 values round-trip exactly; JSON is TEXT.
 */

/** Bumped when a table changes; stored in atlas_meta so an old file is refused, not misread. */
export const SCHEMA_VERSION = 1;

export const TABLES = ['atlas_meta', 'scans', 'units', 'neurons', 'projection_tokens', 'corpus_examples'] as const;

/** The projection lists stored per neuron in projection_tokens (list column). */
export const PROJECTION_LISTS = ['top', 'bottom', 'top_normalized', 'bottom_normalized'] as const;
export type ProjectionList = (typeof PROJECTION_LISTS)[number];

/**
 * projection_tokens.token as stored: the token's JSON string literal. A token can be a lone byte
 * (U+DC00+byte, a lone surrogate) or NUL, which neither SQLite's UTF-8 TEXT nor PostgreSQL TEXT can
 * hold; JSON escapes both, so the column is exact, equality search works and both stores agree.
 */
export function tokenColumn(token: string): string {
  return JSON.stringify(token);
}

/** A LIKE pattern (ESCAPE '\\') for a free-text search over tokenColumn values and the JSON columns, lower-cased. */
export function likePattern(text: string): string {
  return `%${JSON.stringify(text.toLowerCase()).slice(1, -1).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export const SCHEMA_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS atlas_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS scans (
    model_digest TEXT NOT NULL,
    settings_digest TEXT NOT NULL,
    model TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    layers_json TEXT NOT NULL,
    neuron_start INTEGER NOT NULL,
    neuron_end INTEGER NOT NULL,
    units_total INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model_digest, settings_digest)
  )`,
  // A unit is neurons [start, end) of one layer; (start, end) both in the key so units of scans
  // over different neuron selections (same settings) never shadow each other.
  `CREATE TABLE IF NOT EXISTS units (
    model_digest TEXT NOT NULL,
    settings_digest TEXT NOT NULL,
    layer INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    done_at TEXT NOT NULL,
    PRIMARY KEY (model_digest, settings_digest, layer, start, "end")
  )`,
  `CREATE TABLE IF NOT EXISTS neurons (
    model_digest TEXT NOT NULL,
    kind TEXT NOT NULL,
    layer INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    settings_digest TEXT NOT NULL,
    projection_json TEXT NOT NULL,
    samples_json TEXT NOT NULL,
    examples_json TEXT NOT NULL,
    example_projection_overlap DOUBLE PRECISION,
    probe_projection_overlap DOUBLE PRECISION,
    PRIMARY KEY (model_digest, kind, layer, idx, settings_digest)
  )`,
  `CREATE INDEX IF NOT EXISTS neurons_by_scan ON neurons (model_digest, settings_digest, layer, idx)`,
  `CREATE TABLE IF NOT EXISTS projection_tokens (
    model_digest TEXT NOT NULL,
    settings_digest TEXT NOT NULL,
    kind TEXT NOT NULL,
    layer INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    list TEXT NOT NULL,
    rank INTEGER NOT NULL,
    token_id INTEGER NOT NULL,
    token TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (model_digest, settings_digest, kind, layer, idx, list, rank)
  )`,
  `CREATE INDEX IF NOT EXISTS projection_tokens_by_token ON projection_tokens (token, rank)`,
  `CREATE TABLE IF NOT EXISTS corpus_examples (
    model_digest TEXT NOT NULL,
    corpus_digest TEXT NOT NULL,
    pass_digest TEXT NOT NULL,
    layer INTEGER NOT NULL,
    examples_json TEXT NOT NULL,
    PRIMARY KEY (model_digest, corpus_digest, pass_digest, layer)
  )`,
];
