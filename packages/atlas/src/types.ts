/**
 * The atlas contract shared by the scan, the stores (SQLite, PostgreSQL), the queue and the server.
 * JSON field names are snake_case where they are part of `sp atlas show --json` (the shape).
 */

export type NeuronKind = 'key' | 'value';

/**
 * Everything that changes a scan's results. `settingsDigest(s)` = sha256 of its canonical JSON:
 * a different setting is a different key, so it writes new rows and never overwrites.
 */
export interface ScanSettings {
  kind: NeuronKind;
  /** Prompt library name (e.g. 'term-means') and its template text: the digest covers the text. */
  promptName: string;
  prompt: string;
  /** Probe samples per neuron (0 = no probes). */
  samples: number;
  maxNewTokens: number;
  seed: number;
  temperature: number;
  repetitionPenalty: number;
  topK: number;
  topP: number;
  /** Tokens kept per projection list (top, bottom, normalised): 50. */
  projectionTop: number;
  /** The corpus (sha256 of its bytes and a display name) or null for none. */
  corpus: { digest: string; name: string } | null;
  /** Max-activating examples kept per neuron. */
  topExamples: number;
  /** Tokens per corpus window fed to the model (documents longer than this are split). */
  window: number;
  /** Tokens of context either side of an example's activating token (10). */
  context: number;
  /** Neurons per unit of work. */
  blockSize: number;
}

/** One unit of work: neurons [start, end) of one layer, for the scan's kind and settings. */
export interface Unit {
  layer: number;
  start: number;
  end: number;
}

export interface ProjToken {
  id: number;
  token: string;
  score: number;
}

export interface NeuronProjection {
  top: ProjToken[];
  bottom: ProjToken[];
  top_normalized: ProjToken[];
  bottom_normalized: ProjToken[];
}

export interface ProbeSample {
  text: string;
  /** The new token ids. */
  ids: number[];
}

export interface CorpusExample {
  /** Document index in the corpus (0-based line / JSONL record). */
  doc: number;
  /** Token position of the activating token inside the document. */
  position: number;
  activation: number;
  /** ±context tokens around it, as token strings; `context[center]` is the activating token. */
  context: string[];
  center: number;
  /** The activating token's id. */
  token_id: number;
}

export interface NeuronScores {
  /** Fraction of the top examples whose activating token is in the projection's top 50; null without a corpus. */
  example_projection_overlap: number | null;
  /** Fraction of the distinct words of the samples matching a top-50 projection token; null without samples. */
  probe_projection_overlap: number | null;
}

/** One neuron's atlas entry: what `sp atlas show --json` prints and `/api/neuron` returns. */
export interface NeuronRecord {
  layer: number;
  index: number;
  kind: NeuronKind;
  projection: NeuronProjection;
  samples: ProbeSample[];
  examples: CorpusExample[];
  scores: NeuronScores;
}

/** What the store keys a scan by. */
export interface ScanKey {
  modelDigest: string;
  settingsDigest: string;
}

/**
 * The corpus pass is kind-independent (keys and values share the coefficient mlp.hook_post): one
 * stream over the corpus gives every neuron of a layer its examples. It is cached in the store per
 * (model digest, corpus digest, pass digest = sha256 of {window, topExamples, context}) and layer,
 * so a resumed scan or another worker does not stream the corpus again.
 */
export interface CorpusPassKey {
  modelDigest: string;
  corpusDigest: string;
  passDigest: string;
}

/** A scan as the store records it. */
export interface ScanInfo extends ScanKey {
  model: string;
  settings: ScanSettings;
  layers: number[];
  neurons: { start: number; end: number };
  /** Units in the plan, and how many are done. */
  unitsTotal: number;
  unitsDone: number;
  neuronsDone: number;
  createdAt: string;
}

export interface SearchQuery {
  /** Neurons whose projection top list holds this exact token string. */
  token?: string;
  /** Free text: matched against the projection tokens and the sample texts (case-insensitive). */
  text?: string;
  layer?: number;
  kind?: NeuronKind;
  /** Lower bounds on the scores. */
  minExampleOverlap?: number;
  minProbeOverlap?: number;
  sort?: 'rank' | 'layer' | 'example_projection_overlap' | 'probe_projection_overlap';
  limit?: number;
  offset?: number;
}

export interface SearchHit {
  layer: number;
  index: number;
  kind: NeuronKind;
  /** Rank of the token in the neuron's projection top list (0 = best) for a token search. */
  rank: number | null;
  score: number | null;
  scores: NeuronScores;
  /** A few top projection tokens for the list view. */
  top: string[];
}

/**
 * A results store (SQLite file or PostgreSQL): one schema, documented in docs/atlas.md. Every unit
 * is written in one transaction, keyed by (model digest, kind, layer, index, settings digest), so a
 * unit written twice leaves the same rows (upsert / insert-or-ignore) and a killed scan loses at
 * most the unit in flight.
 */
export interface AtlasStore {
  /** Records the scan (idempotent: the same key returns the existing scan). */
  openScan(info: Omit<ScanInfo, 'unitsDone' | 'neuronsDone' | 'createdAt'>): Promise<ScanInfo>;
  /** Units already complete for a scan key. */
  doneUnits(key: ScanKey): Promise<Unit[]>;
  /** Writes one unit's neurons and marks the unit done, in one transaction. */
  writeUnit(key: ScanKey, unit: Unit, records: NeuronRecord[]): Promise<void>;
  /** The cached corpus pass of one layer: examples per neuron (index 0..d_mlp-1), or null if not cached. */
  corpusExamples(key: CorpusPassKey, layer: number): Promise<CorpusExample[][] | null>;
  /** Caches a layer's corpus pass in one transaction (a second write of the same key is a no-op). */
  writeCorpusExamples(key: CorpusPassKey, layer: number, perNeuron: CorpusExample[][]): Promise<void>;
  scans(): Promise<ScanInfo[]>;
  neuron(layer: number, index: number, opts?: { kind?: NeuronKind } & Partial<ScanKey>): Promise<NeuronRecord | null>;
  search(q: SearchQuery & Partial<ScanKey>): Promise<{ total: number; hits: SearchHit[] }>;
  /** Every neuron of a scan in (layer, index) order, for export and comparisons. */
  allNeurons(key?: Partial<ScanKey>): AsyncIterable<NeuronRecord>;
  close(): Promise<void>;
}
