import { SpError } from '@sp/core';
import type { Command } from 'commander';

// Placeholder until the lens command lands; it is registered so `sp --help` lists it.
export function registerLens(program: Command): void {
  program.command('lens').description('(in progress)').allowUnknownOption().action(() => {
    throw new SpError('UNSUPPORTED', 'lens is not available yet');
  });
}
