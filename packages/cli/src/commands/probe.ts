import { SpError } from '@sp/core';
import type { Command } from 'commander';

// Placeholder until the probe command lands; it is registered so `sp --help` lists it.
export function registerProbe(program: Command): void {
  program.command('probe').description('(in progress)').allowUnknownOption().action(() => {
    throw new SpError('UNSUPPORTED', 'probe is not available yet');
  });
}
