// Summarizes node --cpu-prof profiles: the functions with the most self time, and self time
// per source module (websockets.ts, ws, node internals, GC…), as markdown.
//
//   node build/bench/profile.js FILE.cpuprofile… [--top N]
//
// `node build/bench/run.js --profile SCENARIO` profiles a scenario and runs this for you.

import { parseArgs } from 'node:util';
import { formatProfile, summarizeProfile } from './common.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '20' } } });
if (positionals.length === 0) {
  console.error('usage: node build/bench/profile.js FILE.cpuprofile… [--top N]');
  process.exit(2);
}
for (const file of positionals) console.log(formatProfile(summarizeProfile(file, Number(values.top)), file));
