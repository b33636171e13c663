// The long fuzz run, `npm run fuzz` (not part of `npm test`: the file name does not match
// *.test.ts). Millions of inputs into FrameParser directly (checked against the independent
// splitter of test/fuzz-kit.ts, cut at random places), then tens of thousands of live inputs
// against a plain server and a server with permessage-deflate, and mutated handshakes.
// Prints the seed, the counts and the durations; exits 1 on any misbehaviour.
//
//   npm run fuzz                                  # seed chosen at random, printed
//   FUZZ_SEED=1234 npm run fuzz                   # replay
//   FUZZ_PARSER_INPUTS=… FUZZ_LIVE_INPUTS=… npm run fuzz   # scale (defaults 3,000,000 and 40,000)
import {
  Rng, fuzzSeed, checkParser, frameInput, mutateBytes, fuzzServer, fuzzFrames, fuzzHandshakes, newReport, describeReport,
  serverStillEchoes, eventually, memory, mib, hex,
} from './fuzz-kit.ts';
import type { StreamConfig, FuzzServer, LiveReport } from './fuzz-kit.ts';

const seed = fuzzSeed();
const parserInputs = Number(process.env.FUZZ_PARSER_INPUTS ?? 3_000_000);
const liveInputs = Number(process.env.FUZZ_LIVE_INPUTS ?? 40_000);
const root = new Rng(seed);
const rngs = { parser: root.fork(), plain: root.fork(), handshakes: root.fork(), compressed: root.fork(), compressedHandshakes: root.fork() };
const problems: string[] = [];
const rejections: unknown[] = [];
process.on('unhandledRejection', (reason) => rejections.push(reason));
const gc = (globalThis as { gc?: () => void }).gc;

const log = (line: string) => process.stdout.write(`${line}\n`);
log(`fuzz-long: seed ${seed} (replay with FUZZ_SEED=${seed}); ${parserInputs.toLocaleString('en')} parser inputs, ${liveInputs.toLocaleString('en')} live inputs`);
const startedAll = performance.now();

// ── 1. FrameParser, no sockets ───────────────────────────────────────────────────────────────
{
  const rng = rngs.parser;
  // Most inputs end in a 1002, and an Error's stack trace costs more than parsing the input.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const started = performance.now();
  let done = 0;
  let failed = 0;
  let lastReport = started;
  // Each generated stream is checked as is and in 31 byte-level mutations (bit flips,
  // truncations, insertions…), which is what makes millions of inputs affordable.
  while (done < parserInputs) {
    const masked = rng.chance(0.5);
    const allowRsv1 = rng.chance(0.3);
    // Mostly small frames; sometimes large enough for 16- and 64-bit lengths.
    const config: StreamConfig = { masked, maxMessageSize: rng.chance(0.05) ? 70_000 : rng.pick([125, 1_000]), maxFragments: 8, compression: allowRsv1 };
    const base = frameInput(rng, config).bytes;
    for (let variant = 0; variant < 32 && done < parserInputs; variant++, done++) {
      let input = base;
      if (variant > 0) {
        input = mutateBytes(rng, base);
        if (rng.chance(0.3)) input = mutateBytes(rng, input);
      }
      const problem = checkParser(input, rng, masked, allowRsv1);
      if (problem) {
        failed++;
        if (problems.length < 20) problems.push(`parser input ${done} (expectMasked ${masked}, allowRsv1 ${allowRsv1}): ${problem}\n    input: ${hex(input.subarray(0, 1024))}`);
      }
    }
    const now = performance.now();
    if (now - lastReport > 10_000) {
      lastReport = now;
      log(`  parser: ${done.toLocaleString('en')} inputs, ${Math.round(done / ((now - started) / 1000)).toLocaleString('en')}/s`);
    }
  }
  Error.stackTraceLimit = stackTraceLimit;
  const seconds = (performance.now() - started) / 1000;
  log(`parser: ${done.toLocaleString('en')} inputs in ${seconds.toFixed(1)} s (${Math.round(done / seconds).toLocaleString('en')}/s), ${failed} failed`);
}

// ── 2. live servers ──────────────────────────────────────────────────────────────────────────

async function liveRun(name: string, config: StreamConfig, frames: number, handshakes: number, frameRng: Rng, handshakeRng: Rng): Promise<void> {
  const target: FuzzServer = await fuzzServer(config);
  try {
    gc?.();
    const before = memory();
    const report: LiveReport = newReport();
    const started = performance.now();
    // In batches, so that progress shows and memory can be watched between them.
    const batch = 2_000;
    for (let done = 0; done < frames; done += batch) {
      await fuzzFrames(target, config, frameRng, Math.min(batch, frames - done), report, `${name} frames`);
      if ((done / batch) % 5 === 4) log(`  ${name}: ${report.inputs.toLocaleString('en')} frame inputs, ${Math.round(performance.now() - started)} ms, heap ${mib(memory().heap)}`);
    }
    const framesDone = performance.now();
    for (let done = 0; done < handshakes; done += batch) {
      await fuzzHandshakes(target, config, handshakeRng, Math.min(batch, handshakes - done), report, `${name} handshakes`);
    }
    const drained = await eventually(() => target.active() === 0, 5_000);
    if (!drained) problems.push(`${name}: ${target.active()} handlers still running after the run`);
    await serverStillEchoes(target.server).catch((error: unknown) => problems.push(`${name}: the server no longer echoes: ${String(error)}`));
    gc?.();
    const after = memory();
    for (const error of target.errors.slice(0, 5)) problems.push(`${name}: onError got ${String(error)}`);
    problems.push(...report.failures.slice(0, 20));
    log(`${name}: ${describeReport(report)}`);
    log(`  frames ${Math.round(framesDone - started)} ms, handshakes ${Math.round(performance.now() - framesDone)} ms, ${report.failures.length} failed; ` +
      `heap ${mib(before.heap)} → ${mib(after.heap)}, external ${mib(before.external)} → ${mib(after.external)}, rss ${mib(before.rss)} → ${mib(after.rss)}${gc ? ' (after gc)' : ''}`);
  } finally {
    await target.server.close();
  }
}

const plain: StreamConfig = { masked: true, maxMessageSize: 1_000, maxFragments: 8, compression: false };
const compressed: StreamConfig = { ...plain, maxMessageSize: 2_000, compression: true };
await liveRun('plain server', plain, Math.round(liveInputs * 0.5), Math.round(liveInputs * 0.15), rngs.plain, rngs.handshakes);
await liveRun('compression server', compressed, Math.round(liveInputs * 0.25), Math.round(liveInputs * 0.1), rngs.compressed, rngs.compressedHandshakes);

if (rejections.length > 0) problems.push(`${rejections.length} unhandled rejections, the first: ${String(rejections[0])}`);
log(`fuzz-long: done in ${((performance.now() - startedAll) / 1000).toFixed(1)} s, seed ${seed}: ${problems.length === 0 ? 'no problems' : `${problems.length} problems`}`);
for (const problem of problems) log(`  ${problem}`);
process.exitCode = problems.length === 0 ? 0 : 1;
