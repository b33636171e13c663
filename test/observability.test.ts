// Observability: ws.stats (messages and bytes in and out, the last ping's round trip) and the
// NODE_DEBUG=websockets log (one line per handshake, frame, pong, close; never a payload).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import WS from 'ws';
import { listen, pair, wrap } from '../websockets.ts';
import type { NativeWebSocket } from '../websockets.ts';
import { findRoot } from './chromium.ts';
import { sleep, within } from './support.ts';

test('ws.stats over pair(): messages count once however fragmented, bytes are what crossed, latency comes with a pong', async () => {
  const [client, server] = pair();
  assert.deepEqual(client.stats, { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, latency: undefined });
  await client.send('hello');                       // 2 + 4 (mask) + 5 bytes
  await client.send(['frag', 'ment', 'ed']);         // 3 frames, one message
  await client.send(new Uint8Array(70_000));        // 64-bit length: 2 + 8 + 4 + 70,000
  for (let i = 0; i < 3; i++) await server.receive();
  await server.send('back');
  await client.receive();
  assert.equal(client.stats.latency, undefined, 'no ping answered yet');
  const rtt = await client.ping();
  await sleep(20); // the pong's bytes are counted as they arrive
  const sent = client.stats;
  const received = server.stats;
  assert.equal(sent.messagesOut, 3);
  assert.equal(received.messagesIn, 3);
  assert.equal(received.messagesOut, 1);
  assert.equal(sent.messagesIn, 1);
  assert.equal(sent.bytesOut, received.bytesIn, 'what one end wrote, the other read');
  assert.equal(received.bytesOut, sent.bytesIn);
  const frames = (2 + 4 + 5) + (3 * (2 + 4) + 10) + (2 + 8 + 4 + 70_000) + (2 + 4 + 4); // + the ping
  assert.equal(sent.bytesOut, frames);
  assert.equal(sent.latency, rtt);
  await client.close();
});

test('ws.stats over a socket and through the browser facade (wrap): counted the same, bytes as each can see them', async () => {
  const server = await listen('127.0.0.1', 0, async (ws) => {
    for await (const message of ws) await ws.send(message);
  }, { pingInterval: 0 });
  try {
    const native = new WS(server.url);
    await new Promise<void>((resolve, reject) => {
      native.once('open', () => resolve());
      native.once('error', reject);
    });
    const ws = wrap(native as unknown as NativeWebSocket);
    await ws.send('héllo');                     // 6 bytes of UTF-8
    await ws.send(new Uint8Array(10));
    assert.equal(await ws.receive(), 'héllo');
    await ws.receive();
    assert.deepEqual(ws.stats, { messagesIn: 2, messagesOut: 2, bytesIn: 16, bytesOut: 16, latency: undefined });
    await ws.close();
  } finally {
    await server.close();
  }
});

/** Runs a small client and server in a child Node with `env`; returns what it wrote to stderr. */
async function childStderr(env: Record<string, string>): Promise<string> {
  const library = pathToFileURL(join(findRoot(), 'dist', 'websockets.js')).href;
  const script = `
    import { listen, connect } from ${JSON.stringify(library)};
    const server = await listen('127.0.0.1', 0, async (ws) => { for await (const m of ws) await ws.send(m); }, { pingInterval: 0 });
    const ws = await connect(server.url.replace('ws://', 'ws://user:secret-password@') + '/?token=secret-token', { protocols: ['chat'], pingInterval: 0 });
    await ws.send('the secret payload');
    await ws.receive();
    await ws.ping();
    await ws.close(4000, 'bye');
    await server.close();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_DEBUG: '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const code = await within(exited, 15_000);
  if (code === null) child.kill();
  assert.equal(code, 0, `the child failed:\n${stderr}`);
  return stderr;
}

test('NODE_DEBUG=websockets logs handshakes, frames, pongs and closes, one line each, and never a payload', { timeout: 30_000 }, async () => {
  const log = await childStderr({ NODE_DEBUG: 'no-such-section,websock*' }); // a list, with a wildcard, as util.debuglog reads it
  const lines = log.trim().split('\n');
  assert.ok(lines.every((line) => /^WEBSOCKETS \d+: \[[^\]]+\] /.test(line)), `every line is "WEBSOCKETS <pid>: [<connection>] …":\n${log}`);
  for (const expected of [
    /\[handshake ws:\/\/127\.0\.0\.1:\d+\/\] → GET \/, protocols chat/,
    /\[handshake from 127\.0\.0\.1\] → 101 for \//,
    /\[\d+\] open \(client\)/,
    /\[\d+\] open \(server\)/,
    /\[\d+\] → TEXT 18 B/,
    /\[\d+\] ← TEXT 18 B/,
    /\[\d+\] pong: round trip \d+\.\d ms/,
    /\[\d+\] close frame sent: 4000 "bye"/,
    /\[\d+\] close frame received: 4000 "bye"/,
    /\[\d+\] connection closed: 4000 "bye"/,
  ]) assert.match(log, expected);
  assert.doesNotMatch(log, /secret/, 'payloads, credentials and query strings never reach the log');
});

test('without NODE_DEBUG (or with other sections) nothing is logged', { timeout: 30_000 }, async () => {
  assert.equal(await childStderr({}), '');
  assert.equal(await childStderr({ NODE_DEBUG: 'no-such-section,websocket' }), '', 'websocket is not websockets');
});
