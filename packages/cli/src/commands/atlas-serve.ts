/**
 * `sp atlas serve --store FILE [--port 8080] [--host 127.0.0.1]`: the atlas page and its JSON API
 * (packages/atlas/src/server.ts). Loopback only unless --host says otherwise; runs until SIGINT or
 * SIGTERM, then closes the server and the store.
 */
import { SpError } from '@sp/core/light';
import type { Command } from 'commander';
import { parseIntOpt } from '../common.js';
import { openStoreForReading } from './atlas.js';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export function registerAtlasServe(atlas: Command): void {
  atlas.command('serve')
    .description('browse a store in a web page (search, neuron pages, charts) with a JSON API under /api/')
    .option('--store <path>', 'SQLite file written by sp scan')
    .option('--port <n>', 'TCP port (0 = any free port)', parseIntOpt('--port', 0, 65535), 8080)
    .option('--host <addr>', 'address to bind: loopback only by default', '127.0.0.1')
    .action(async (o: { store?: string; port: number; host: string }) => {
      if (o.host.trim() === '') throw new SpError('BAD_INPUT', '--host must not be empty');
      const store = await openStoreForReading(o);
      const { serveAtlas } = await import('@sp/atlas');
      let server: Awaited<ReturnType<typeof serveAtlas>>;
      try {
        server = await serveAtlas(store, { host: o.host, port: o.port, title: o.store });
      } catch (e) {
        await store.close();
        throw e;
      }
      if (!LOOPBACK.test(o.host)) process.stderr.write(`warning: --host ${o.host} serves the atlas to other machines (no authentication)\n`);
      process.stderr.write(`serving ${o.store} at ${server.url} (Ctrl-C to stop)\n`);
      // The action resolves only once the server has closed: main.ts exits when it returns.
      await new Promise<void>((resolve) => {
        const stop = (sig: NodeJS.Signals) => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.stderr.write(`${sig}: stopping\n`);
          server.close().then(() => store.close()).then(resolve, resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
