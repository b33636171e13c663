// listen(…, { reusePort: true }): SO_REUSEPORT, for node:cluster workers or separate processes
// on one port. Node 22.12+ has it: in Node 22 (from the npm registry, as runtimes.test.ts gets
// it) two servers share a port and the kernel spreads 40 connections over both; in a Node
// without it (this machine's 20), listen() rejects and says why, never binding without it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { listen } from '../websockets.ts';
import { findRoot } from './chromium.ts';
import { startChild } from './support.ts';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const supported = process.platform === 'linux' && (major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12));

test(`in this Node (${process.versions.node}): reusePort ${supported ? 'binds' : 'is refused with an error that says why'}`, async () => {
  const attempt = listen('127.0.0.1', 0, () => {}, { reusePort: true });
  if (supported) {
    await (await attempt).close();
  } else {
    await assert.rejects(attempt, /reusePort needs Node\.js 22\.12 or 23\.1 and newer; this is Node\.js \d+\./);
  }
});

const CHILD = (library: string) => `
import { listen, connect } from ${JSON.stringify(library)};
const served = [0, 0];
const handler = (index) => async (ws) => { served[index]++; for await (const m of ws) await ws.send(m); };
const first = await listen('127.0.0.1', 0, handler(0), { reusePort: true, pingInterval: 0 });
const second = await listen('127.0.0.1', first.port, handler(1), { reusePort: true, pingInterval: 0 });
let third = 'listening';
try { await (await listen('127.0.0.1', first.port, () => {}, { pingInterval: 0 })).close(); } catch (error) { third = error.code ?? String(error); }
let echoes = 0;
for (let i = 0; i < 40; i++) {
  const ws = await connect(first.url, { pingInterval: 0 });
  await ws.send('n' + i);
  if ((await ws.receive()) === 'n' + i) echoes++;
  await ws.close();
}
await Promise.all([first.close(), second.close()]);
console.log('RESULT ' + JSON.stringify({ version: process.version, served, echoes, third }));
`;

test('Node 22: two servers with reusePort share one port, the kernel spreads connections over both; without it, EADDRINUSE', { timeout: 240_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'reuseport-'));
  try {
    const script = join(dir, 'child.mjs');
    await writeFile(script, CHILD(pathToFileURL(join(findRoot(), 'websockets.ts')).href));
    const child = startChild(['npx', '-y', '-p', 'node@22', 'node', script], dir);
    const line = await child.line('RESULT ', 220_000).finally(() => child.kill());
    const result = JSON.parse(line) as { version: string; served: [number, number]; echoes: number; third: string };
    t.diagnostic(JSON.stringify(result));
    assert.match(result.version, /^v22\./);
    assert.equal(result.echoes, 40);
    assert.equal(result.served[0] + result.served[1], 40);
    assert.ok(result.served[0] > 0 && result.served[1] > 0, `the kernel gave every connection to one server: ${result.served.join(' / ')}`);
    assert.equal(result.third, 'EADDRINUSE', 'a server without reusePort cannot bind the shared port');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('Bun: its node:http ignores reusePort, so listen() refuses it there rather than bind without it', { timeout: 240_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reuseport-bun-'));
  try {
    const script = join(dir, 'child.mjs');
    const library = JSON.stringify(pathToFileURL(join(findRoot(), 'websockets.ts')).href);
    await writeFile(script, `import { listen } from ${library};
let outcome;
try { await (await listen('127.0.0.1', 0, () => {}, { reusePort: true })).close(); outcome = 'bound'; } catch (error) { outcome = String(error.message); }
console.log('RESULT ' + JSON.stringify({ bun: process.versions.bun, outcome }));
`);
    const child = startChild(['npx', '-y', 'bun@1', script], dir);
    const line = await child.line('RESULT ', 220_000).finally(() => child.kill());
    const result = JSON.parse(line) as { bun?: string; outcome: string };
    assert.match(result.bun ?? '', /^1\./);
    assert.match(result.outcome, /reusePort is not available on Bun/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
