/**
 * @sp/core — GPT-2 interpretability in TypeScript. Engine internals (KV cache, device weights,
 * matmul engines) are in `@sp/core/internals`; the tensor-free part is also `@sp/core/light`.
 */

// Load: backend, configs, the model
export { checkEnv, parseThreads, parseEngine, MAX_THREADS } from './backend/env.js';
export { initBackend, backendName, tf, type BackendName } from './backend/index.js';
export { webgpuAdapter, type WebgpuAdapter } from './backend/webgpu.js';
export { makeConfig, PRESETS, PRESET_NAMES, type GPT2Config, type PresetName } from './config.js';
export { gpt2, openCheckpoint, type LoadOptions } from './model/load.js';
export { GPT2, type ModelInput, type EmbedOverride, type Injection, type ForwardOptions, type TokenizeOptions, type TokenBatch, type LayerNormParams } from './model/gpt2.js';

// Run and hooks
export { ActivationCache, hookNames, actName, isHookName, BLOCK_HOOKS, type HookName, type BlockHookSuffix, type ActName, type ActShortName, type ActLayerType, type AccumulatedResidOptions, type HookFn, type HookPoint, type FwdHook, type HookFilter } from './hooks/index.js';

// Generate
export {
  generate, generateStream, generationMemoryBytes, GENERATION_MEMORY_BUDGET, GENERATION_DEFAULTS,
  type GenerateOptions, type GenerateResult, type TokenEvent, type GenerationConfig, type FinishReason,
} from './generate/generate.js';
export {
  applyRepetitionPenalty, samplingDistribution, sampleFrom, argmax,
  repetitionPenaltyProcessor, minLengthProcessor, minNewTokensProcessor, type LogitsProcessor, type LogitsProcessorContext,
} from './generate/logits-processors.js';
export { seededRandom, assertSeed, randomSeed, MAX_SEED } from './generate/rng.js';

// Probes
export { speakingProbe, SPEAKING_PROBE_DEFAULTS, type SpeakingProbeOptions, type SpeakingProbeResult, type SpeakingProbeNeuron, type SpeakingProbeSample } from './probes/speaking-probe.js';
export { parseNeuronSpec, resolveNeuron, resolveNeuronAsync, hiddenState, hiddenStateAsync, type HiddenState, type NeuronSpec, type NeuronSpecObject, type NeuronSource, type ResolvedNeuron } from './probes/neuron.js';
export { parseTemplate, tokenizeTemplate, renderTemplate, PLACEHOLDER_ID, type TemplatePart, type TemplateTag, type TokenizedTemplate } from './probes/template.js';
export { parseExpr, formatExpr, type ExprTerm, type ExprAtom } from './probes/expr.js';
export { readVectorFile, parseNpy, parseJsonVector } from './probes/vector-file.js';
export { embeddingProjection, embeddingProjectionAsync, topIndices, type EmbeddingProjection, type ProjectedToken } from './probes/projection.js';
export { listPrompts, loadPrompt, readPromptFile, promptDirs, BUNDLED_PROMPTS_DIR, type LibraryPrompt } from './probes/prompts.js';

// Lens
export { logitLens, logitLensAsync, rankings, rankingsAsync, rankingsWatch, rankingsWatchAsync, watchTokenIds, topNeurons, topNeuronsAsync, lensRows, type LogitLensOptions, type RankingsOptions, type WatchOptions, type TopNeuronsOptions, type LensRunOptions, type LensStream, type LensView, type LensRowInfo, type TokenProb, type LensCell, type LensLayer, type LensResult, type RankingsResult, type RankedPosition, type WatchResult, type NeuronContribution, type NeuronsResult } from './lens/index.js';

// Causal
export { interventionHooks, checkInterventions, type NeuronIntervention } from './causal/interventions.js';
export { attentionPatterns, attentionPatternsAsync, type AttentionOptions, type AttentionResult } from './causal/attention.js';
export { activationPatching, activationPatchingAsync, PATCH_SITES, type PatchSite, type PatchingOptions, type PatchingResult } from './causal/patching.js';
export { directLogitAttribution, directLogitAttributionAsync, type DlaOptions, type DlaResult, type DlaComponent } from './causal/dla.js';
export { inputAttribution, inputAttributionAsync, gradientWrt, gradientWrtAsync, ATTRIBUTION_METHODS, type AttributionMethod, type AttributionOptions, type AttributionResult, type HookGradient } from './causal/attribution.js';

// Files and tokenizer
export { GPT2Tokenizer } from './tokenizer/index.js';
export { displayToken, displayText, quoteToken, joinTokens } from './tokenizer/display.js';
export { SafetensorsFile, encodeSafetensors, writeSafetensors, type DType, type TensorInfo, type TensorToWrite } from './weights/safetensors.js';
export { Checkpoint } from './weights/checkpoint.js';
export { resolveModel, downloadModel, findLocalModel, findInHfCache, hfHubCache, listCachedModels, parseModelSpec, weightsDirs, HUB_REPOS, type CachedModel, type DownloadOptions, type ModelSpec } from './weights/hub.js';

// Errors
export { SpError, assertInt, type SpErrorCode } from './errors.js';
