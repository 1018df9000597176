/** @sp/atlas — a neuron atlas for GPT-2: scan every FF neuron into a resumable store and browse it. */
export type * from './types.js';
