/**
 * Neuron interventions for the causal tools. The helper lives with the model (model/ is below the
 * analyses, and GPT2's forward options take `interventions`); causal tools import it from here.
 */
export { interventionHooks, checkInterventions, type NeuronIntervention } from '../model/interventions.js';
