/**
 * Preloaded (`node --import`) into a command the bench runs as a child: at exit, writes the
 * process' peak RSS to $SP_BENCH_RSS_OUT, so the CLI itself needs no bench code.
 */
import fs from 'node:fs';

const out = process.env.SP_BENCH_RSS_OUT;
if (out) {
  process.on('exit', () => {
    fs.writeFileSync(out, JSON.stringify({ maxRssMB: process.resourceUsage().maxRSS / 1024 }));
  });
}
