import type { ProbeResultLike } from '@sp/report';

/** A speaking-probe result in the shape @sp/core's speakingProbe returns (fields the cards read). */
export const PROBE: ProbeResultLike = {
  prompt_ids: [464, 3381, 366, 0, 1, 1724],
  prompt_tokens: ['The', ' term', ' "', '', '"', ' means'],
  neuron_positions: [3],
  layer: 1,
  index: 5,
  samples: [{ ids: [257, 1611], text: ' a kind of <plant> & animal' }, { ids: [262], text: ' the end of the world' }],
  projection: { top: [{ id: 3797, token: ' cat', prob: 0.31 }, { id: 3290, token: ' dog', prob: 0.12 }, { id: 198, token: '\n', prob: 0.05 }] },
};

