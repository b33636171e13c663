// Run by build/bench/run.js before a run: prints whether uWebSockets.js's native binary loads
// in this Node (one JSON line), so that the runner can skip the uws variant instead of crashing.

import { loadUws } from './common.ts';

const loaded = loadUws();
process.stdout.write(`${JSON.stringify('error' in loaded ? { ok: false, error: loaded.error } : { ok: true, version: loaded.version })}\n`);
process.exit(0);
