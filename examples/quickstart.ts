// Quick start: run with `pnpm -s tsx examples/quickstart.ts [model]` (default gpt2; any HF GPT-2 dir works).
import { fileURLToPath } from 'node:url';
import { generate, gpt2 } from '@sp/core';

export async function main(modelName = 'gpt2', log: (s: string) => void = console.log) {
  const model = await gpt2(modelName); // a preset (downloaded once) or an HF-layout directory
  const prompt = 'The capital of France is';

  // 1. Read activations by their TransformerLens names.
  const { logits, cache } = model.runWithCache(prompt, { names: ['blocks.0.hook_resid_post', 'blocks.0.attn.hook_pattern'] });
  const last = logits.shape[1] - 1;
  const nextId = (await logits.slice([0, last, 0], [1, 1, -1]).argMax(-1).data())[0];
  log(`next token: ${JSON.stringify(model.tokenString(nextId))}`);
  log(`resid_post of block 0: [${cache.get('blocks.0.hook_resid_post').shape}]`);
  logits.dispose();
  cache.dispose();

  // 2. Replace an activation with a hook: zero-ablate the MLP of block 0.
  const ablated = model.runWithHooks(prompt, { fwdHooks: [['blocks.0.hook_mlp_out', (t) => t.mul(0)]] });
  log(`ablated logits: [${ablated.shape}]`);
  ablated.dispose();

  // 3. A virtual token: FF key 5 of layer 1, read straight from the safetensors file,
  //    stands in for one token of the prompt (its position embedding is still added).
  const key = model.ffKey(1, 5);
  const ids = [...model.encode('The term "'), 0, ...model.encode('" means')];
  const out = await generate(model, ids, { embeds: [{ pos: 3, vector: key }], maxNewTokens: 8 });
  log(`the neuron "means":${out.texts[0]}`);

  model.dispose();
  return { nextId, continuation: out.newTokens[0] };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv[2]);
