/** GPT-2 hyperparameters, named as TransformerLens does (d_model, d_mlp, n_ctx...). */
export interface GPT2Config {
  nLayer: number;
  nHead: number;
  dModel: number;
  dHead: number;
  dMlp: number;
  nCtx: number;
  dVocab: number;
  layerNormEps: number;
}

/** Known checkpoints on the Hugging Face hub. */
export const PRESETS = {
  gpt2: { nLayer: 12, nHead: 12, dModel: 768 },
  'gpt2-medium': { nLayer: 24, nHead: 16, dModel: 1024 },
  'gpt2-large': { nLayer: 36, nHead: 20, dModel: 1280 },
  'gpt2-xl': { nLayer: 48, nHead: 25, dModel: 1600 },
  distilgpt2: { nLayer: 6, nHead: 12, dModel: 768 },
} as const;
export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

export function makeConfig(p: { nLayer: number; nHead: number; dModel: number; nCtx?: number; dVocab?: number; layerNormEps?: number; dMlp?: number }): GPT2Config {
  return {
    nLayer: p.nLayer,
    nHead: p.nHead,
    dModel: p.dModel,
    dHead: p.dModel / p.nHead,
    dMlp: p.dMlp ?? 4 * p.dModel,
    nCtx: p.nCtx ?? 1024,
    dVocab: p.dVocab ?? 50257,
    layerNormEps: p.layerNormEps ?? 1e-5,
  };
}
