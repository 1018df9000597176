/**
 * An HF GPT-2 directory (config.json, model.safetensors, optional tokenizer.json) opened lazily:
 * the header is parsed and validated, tensors are read on demand by byte offset. This is what
 * `ffKey`/`ffValue` use, so reading one neuron never loads the model.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpError, assertInt } from '../errors.js';
import { makeConfig, type GPT2Config } from '../model/config.js';
import { SafetensorsFile, type TensorInfo } from './safetensors.js';

/** Buffers HF stores that are not parameters. `lm_head.weight` is tied to `wte.weight`. */
const IGNORED = /(^|\.)attn\.(bias|masked_bias)$|^lm_head\.weight$/;

export function requiredTensorShapes(c: GPT2Config): Map<string, number[]> {
  const m = new Map<string, number[]>([
    ['wte.weight', [c.dVocab, c.dModel]],
    ['wpe.weight', [c.nCtx, c.dModel]],
    ['ln_f.weight', [c.dModel]],
    ['ln_f.bias', [c.dModel]],
  ]);
  for (let i = 0; i < c.nLayer; i++) {
    const p = `h.${i}.`;
    m.set(p + 'ln_1.weight', [c.dModel]).set(p + 'ln_1.bias', [c.dModel]);
    m.set(p + 'attn.c_attn.weight', [c.dModel, 3 * c.dModel]).set(p + 'attn.c_attn.bias', [3 * c.dModel]);
    m.set(p + 'attn.c_proj.weight', [c.dModel, c.dModel]).set(p + 'attn.c_proj.bias', [c.dModel]);
    m.set(p + 'ln_2.weight', [c.dModel]).set(p + 'ln_2.bias', [c.dModel]);
    m.set(p + 'mlp.c_fc.weight', [c.dModel, c.dMlp]).set(p + 'mlp.c_fc.bias', [c.dMlp]);
    m.set(p + 'mlp.c_proj.weight', [c.dMlp, c.dModel]).set(p + 'mlp.c_proj.bias', [c.dModel]);
  }
  return m;
}

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly config: GPT2Config,
    readonly file: SafetensorsFile,
    /** canonical name (no `transformer.` prefix) -> name in the file */
    private readonly names: Map<string, string>,
  ) {}

  /** Open and validate `dir` (config from config.json, or inferred from tensor shapes). */
  static open(dir: string): Checkpoint {
    if (!fs.existsSync(dir)) throw new SpError('NOT_FOUND', `model directory ${dir} does not exist`);
    if (!fs.statSync(dir).isDirectory()) throw new SpError('NOT_FOUND', `${dir} is not a directory (pass the model's directory, not a file in it)`);
    const stPath = path.join(dir, 'model.safetensors');
    if (!fs.existsSync(stPath)) {
      throw new SpError('NOT_FOUND', `${dir} has no model.safetensors (convert .bin checkpoints with HF's save_pretrained(safe_serialization=True))`);
    }
    const file = SafetensorsFile.open(stPath);
    try {
      const names = new Map<string, string>();
      for (const n of file.tensors.keys()) {
        const canon = n.startsWith('transformer.') ? n.slice('transformer.'.length) : n;
        if (IGNORED.test(canon)) continue;
        // `wte.weight` and `transformer.wte.weight` both present: which one is the model?
        if (names.has(canon)) throw new SpError('BAD_FILE', `${stPath}: tensors ${JSON.stringify(names.get(canon))} and ${JSON.stringify(n)} are the same parameter`);
        names.set(canon, n);
      }
      const config = readConfig(dir, (n) => file.tensors.get(names.get(n) ?? '') ?? undefined);
      const ckpt = new Checkpoint(dir, config, file, names);
      ckpt.validate();
      return ckpt;
    } catch (e) {
      file.close();
      throw e;
    }
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  info(name: string): TensorInfo {
    const real = this.names.get(name);
    if (!real) throw new SpError('NOT_FOUND', `tensor "${name}" missing from ${this.file.path}`);
    return this.file.info(real);
  }

  /** A whole tensor as float32 (F16/BF16 upcast). */
  read(name: string): Float32Array {
    return this.file.read(this.info(name).name);
  }

  /** FF key j of `layer`: column j of h.{layer}.mlp.c_fc.weight ([d_model, d_mlp], Conv1D layout). */
  ffKey(layer: number, j: number): Float32Array {
    this.checkNeuron(layer, j);
    return this.file.readColumn(this.info(`h.${layer}.mlp.c_fc.weight`).name, j);
  }

  /** FF value j of `layer`: row j of h.{layer}.mlp.c_proj.weight ([d_mlp, d_model]). */
  ffValue(layer: number, j: number): Float32Array {
    this.checkNeuron(layer, j);
    return this.file.readRow(this.info(`h.${layer}.mlp.c_proj.weight`).name, j);
  }

  /** Row `id` of the token embedding. */
  tokenEmbedding(id: number): Float32Array {
    assertInt('token id', id, 0, this.config.dVocab);
    return this.file.readRow(this.info('wte.weight').name, id);
  }

  /** Total bytes of parameter data in the file. */
  get parameterBytes(): number {
    let n = 0;
    for (const real of this.names.values()) {
      const t = this.file.info(real);
      n += t.end - t.begin;
    }
    return n;
  }

  close(): void {
    this.file.close();
  }

  private checkNeuron(layer: number, j: number): void {
    assertInt('layer', layer, 0, this.config.nLayer);
    assertInt('neuron index', j, 0, this.config.dMlp);
  }

  private validate(): void {
    // Blocks beyond n_layer would be silently dropped: config.json and the weights disagree.
    for (const name of this.names.keys()) {
      const m = /^h\.(\d+)\./.exec(name);
      if (m && Number(m[1]) >= this.config.nLayer) {
        throw new SpError('BAD_FILE', `${this.file.path}: tensor "${name}" belongs to block ${m[1]} but the config has ${this.config.nLayer} layers`);
      }
    }
    for (const [name, shape] of requiredTensorShapes(this.config)) {
      const real = this.names.get(name);
      if (!real) throw new SpError('BAD_FILE', `${this.file.path}: missing tensor "${name}"`);
      const got = this.file.info(real).shape;
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
        throw new SpError('BAD_FILE', `${this.file.path}: tensor "${name}" has shape [${got}], expected [${shape}] for this config`);
      }
    }
  }
}

function readConfig(dir: string, tensor: (name: string) => TensorInfo | undefined): GPT2Config {
  const cfgPath = path.join(dir, 'config.json');
  let raw: Record<string, unknown> = {};
  if (fs.existsSync(cfgPath)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    } catch {
      throw new SpError('BAD_FILE', `cannot parse ${cfgPath} as JSON`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new SpError('BAD_FILE', `${cfgPath} is not a JSON object`);
    raw = parsed as Record<string, unknown>;
  }
  const num = (k: string): number | undefined => {
    const v = raw[k];
    if (v === undefined || v === null) return undefined;
    // Sizes must be positive integers; layer_norm_epsilon a positive number.
    const ok = typeof v === 'number' && (k === 'layer_norm_epsilon' ? v > 0 && Number.isFinite(v) : Number.isSafeInteger(v) && v > 0);
    if (!ok) throw new SpError('BAD_FILE', `${cfgPath}: ${k} is ${JSON.stringify(v)}, expected a positive ${k === 'layer_norm_epsilon' ? 'number' : 'integer'}`);
    return v as number;
  };
  // The forward pass implements GPT-2's tanh-approximated GELU only; anything else would run silently wrong.
  const act = raw.activation_function;
  if (act !== undefined && act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
    throw new SpError('UNSUPPORTED', `${cfgPath}: activation_function ${JSON.stringify(act)} is not supported (GPT-2 uses "gelu_new")`);
  }
  // Infer from shapes where config.json is absent or silent.
  const wte = tensor('wte.weight');
  const wpe = tensor('wpe.weight');
  const fc = tensor('h.0.mlp.c_fc.weight');
  if (!wte || !wpe) throw new SpError('BAD_FILE', `${dir}/model.safetensors has no wte.weight/wpe.weight: not a GPT-2 checkpoint`);
  if (wte.shape.length !== 2 || wpe.shape.length !== 2) throw new SpError('BAD_FILE', `${dir}/model.safetensors: wte.weight [${wte.shape}] and wpe.weight [${wpe.shape}] must be 2-D`);
  let nLayer = num('n_layer');
  if (nLayer === undefined) for (nLayer = 0; tensor(`h.${nLayer}.ln_1.weight`); nLayer++);
  const dModel = num('n_embd') ?? wte.shape[1];
  const nHead = num('n_head') ?? inferHeads(dModel);
  if (!Number.isInteger(dModel / nHead)) throw new SpError('BAD_FILE', `${cfgPath}: n_embd ${dModel} is not divisible by n_head ${nHead}`);
  return makeConfig({
    nLayer,
    nHead,
    dModel,
    nCtx: num('n_positions') ?? num('n_ctx') ?? wpe.shape[0],
    dVocab: num('vocab_size') ?? wte.shape[0],
    layerNormEps: num('layer_norm_epsilon') ?? 1e-5,
    dMlp: num('n_inner') ?? fc?.shape[1] ?? 4 * dModel,
  });
}

/** GPT-2 uses 64-dim heads; fall back to that when config.json is missing. */
function inferHeads(dModel: number): number {
  return dModel % 64 === 0 ? dModel / 64 : 1;
}
