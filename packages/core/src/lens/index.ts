/** Logit lens, token rankings and FF-neuron contributions (plain-data results). */
export { logitLens, logitLensAsync, type LogitLensOptions } from './lens.js';
export { rankings, rankingsAsync, rankingsWatch, rankingsWatchAsync, watchTokenIds, type RankingsOptions, type WatchOptions } from './rankings.js';
export { topNeurons, topNeuronsAsync, type TopNeuronsOptions } from './neurons.js';
export { lensRows, type LensRunOptions } from './pass.js';
export type * from './types.js';
