// Fuzzing, the quick run (a few seconds, part of `npm test`): a seeded PRNG drives random
// bytes, mutated valid frames and mutated handshakes into FrameParser and into live servers
// (plain and with permessage-deflate). Every answer is checked against an independent model
// of RFC 6455 (test/fuzz-kit.ts): the echoes, the pongs, and a close with the right code
// (1002 / 1007 / 1009, or the peer's own close echoed), then TCP closed; handshakes get a 101,
// a 4xx or a closed socket, never a hang. Afterwards the server still accepts and echoes.
//
// The seed is printed; FUZZ_SEED=<seed> replays a run. The long run is `npm run fuzz`
// (test/fuzz-long.ts).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Rng, fuzzSeed, checkParser, frameInput, fuzzServer, fuzzFrames, fuzzHandshakes, newReport, describeReport,
  serverStillEchoes, eventually, memory, mib,
} from './fuzz-kit.ts';
import type { StreamConfig, FuzzServer, LiveReport } from './fuzz-kit.ts';

const seed = fuzzSeed();
console.log(`fuzz seed ${seed} — replay with FUZZ_SEED=${seed}`);
const root = new Rng(seed);
// Each part draws from its own generator, so a part can be replayed on its own with the same seed.
const rngs = { parser: root.fork(), plain: root.fork(), handshakes: root.fork(), compressed: root.fork(), compressedHandshakes: root.fork() };

const rejections: unknown[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);
process.on('unhandledRejection', onRejection);
after(() => {
  process.off('unhandledRejection', onRejection);
});

const PLAIN: StreamConfig = { masked: true, maxMessageSize: 1_000, maxFragments: 8, compression: false };
const COMPRESSED: StreamConfig = { ...PLAIN, maxMessageSize: 2_000, compression: true };

function assertClean(report: LiveReport, target: FuzzServer | null): void {
  const shown = report.failures.slice(0, 5).join('\n  ');
  assert.equal(report.failures.length, 0, `seed ${seed}: ${report.failures.length} of ${report.inputs} inputs misbehaved:\n  ${shown}`);
  assert.deepEqual(rejections, [], `seed ${seed}: unhandled rejections`);
  if (target) assert.deepEqual(target.errors.map(String), [], `seed ${seed}: errors reached onError`);
}

async function afterwards(target: FuzzServer): Promise<void> {
  // Every connection's handler has finished (no connection left hanging on the server)…
  const drained = await eventually(() => target.active() === 0, 3_000);
  assert.ok(drained, `seed ${seed}: ${target.active()} of ${target.started()} handlers still running after the run`);
  // …and the server still accepts a new connection and echoes.
  await serverStillEchoes(target.server);
}

describe(`fuzz (seed ${seed})`, () => {
  test('FrameParser agrees with an independent frame splitter on 5,000 inputs, however they are cut', { timeout: 30_000 }, () => {
    const rng = rngs.parser;
    const failures: string[] = [];
    const started = performance.now();
    const count = 5_000;
    for (let i = 0; i < count; i++) {
      const masked = rng.chance(0.5);
      const allowRsv1 = rng.chance(0.3);
      const config: StreamConfig = { masked, maxMessageSize: 1_000, maxFragments: 8, compression: allowRsv1 };
      const input = frameInput(rng, config);
      const problem = checkParser(input.bytes, rng, masked, allowRsv1);
      if (problem && failures.length < 5) failures.push(`#${i} (${input.kind}, expectMasked ${masked}, allowRsv1 ${allowRsv1}): ${problem}\n    input: ${Buffer.from(input.bytes).toString('hex').slice(0, 400)}`);
    }
    console.log(`parser: ${count} inputs in ${Math.round(performance.now() - started)} ms`);
    assert.deepEqual(failures, [], `seed ${seed}`);
  });

  test('a live server: 300 random and mutated frame streams after a valid handshake', { timeout: 60_000 }, async () => {
    const target = await fuzzServer(PLAIN);
    try {
      const report = newReport();
      const before = memory();
      const started = performance.now();
      await fuzzFrames(target, PLAIN, rngs.plain, 300, report, 'plain');
      const after = memory();
      console.log(`plain server: ${describeReport(report)}\n  ${Math.round(performance.now() - started)} ms; heap ${mib(before.heap)} → ${mib(after.heap)}, rss ${mib(before.rss)} → ${mib(after.rss)}`);
      assertClean(report, target);
      await afterwards(target);
    } finally {
      await target.server.close();
    }
  });

  test('a live server: 150 mutated handshakes (edits, garbage, truncation, pipelined frames)', { timeout: 60_000 }, async () => {
    const target = await fuzzServer(PLAIN);
    try {
      const report = newReport();
      const started = performance.now();
      await fuzzHandshakes(target, PLAIN, rngs.handshakes, 150, report, 'handshake');
      console.log(`handshakes: ${describeReport(report)}\n  ${Math.round(performance.now() - started)} ms`);
      assertClean(report, target);
      await afterwards(target);
    } finally {
      await target.server.close();
    }
  });

  test('a live server with compression: 200 frame streams (compressed messages mutated too) and 80 handshakes', { timeout: 60_000 }, async () => {
    const target = await fuzzServer(COMPRESSED);
    try {
      const report = newReport();
      const started = performance.now();
      await fuzzFrames(target, COMPRESSED, rngs.compressed, 200, report, 'compressed');
      await fuzzHandshakes(target, COMPRESSED, rngs.compressedHandshakes, 80, report, 'compressed handshake');
      console.log(`compression server: ${describeReport(report)}\n  ${Math.round(performance.now() - started)} ms`);
      assertClean(report, target);
      await afterwards(target);
    } finally {
      await target.server.close();
    }
  });
});
