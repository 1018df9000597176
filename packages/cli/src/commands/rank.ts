import { SpError } from '@sp/core';
import type { Command } from 'commander';

// Placeholder until the rank command lands; it is registered so `sp --help` lists it.
export function registerRank(program: Command): void {
  program.command('rank').description('(in progress)').allowUnknownOption().action(() => {
    throw new SpError('UNSUPPORTED', 'rank is not available yet');
  });
}
