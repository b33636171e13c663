// pair(): a client and a server WebSocket connected in memory. The protocol between them is the
// real one (test/connection.test.ts runs its whole suite over pair() as well as over sockets);
// this file checks what is particular to it: what the two ends report, that no socket is used,
// compression, option errors, and the handler-testing pattern the README shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pair, WebSocketError } from '../websockets.ts';
import type { WebSocket } from '../websockets.ts';

/** The kinds of handles Node keeps open (sockets, servers, …). */
const handles = () => process.getActiveResourcesInfo().filter((kind) => /TCP|Pipe|UDP|TTYWrap/.test(kind) && kind !== 'TTYWrap');

test('the two ends report a connection without a handshake: URL, request, response, protocol', async () => {
  const [client, server] = pair();
  assert.equal(client.url, 'ws://pair/');
  assert.equal(server.url, '/');
  assert.deepEqual(server.request, { method: 'GET', url: '/', headers: {}, httpVersion: '' }, 'no HTTP carried it');
  assert.equal(client.response?.httpVersion, '');
  assert.equal(client.response?.status, 101);
  assert.equal(server.response, undefined);
  assert.equal(client.protocol, '');
  assert.equal(client.extensions, '');
  assert.equal(client.remoteAddress, undefined);
  await client.close();

  const [named, other] = pair({ url: 'wss://user:secret@example.test/chat?room=1', protocol: 'chat.v2' });
  assert.equal(named.url, 'wss://example.test/chat?room=1', 'credentials are not shown');
  assert.equal(other.url, '/chat?room=1');
  assert.equal(named.protocol, 'chat.v2');
  assert.equal(other.protocol, 'chat.v2');
  await other.close(4000, 'done');
  assert.deepEqual(await named.closed, { code: 4000, reason: 'done' });
});

test('no socket is opened: a thousand messages each way with no TCP handle', async () => {
  const before = handles().length;
  const [client, server] = pair();
  const echoed = (async () => {
    for await (const message of server) await server.send(message);
  })();
  for (let i = 0; i < 1_000; i++) {
    await client.send(`message ${i}`);
    assert.equal(await client.receive(), `message ${i}`);
    if (i === 500) assert.equal(handles().length, before, 'no socket or server handle while connected');
  }
  await client.close(1000, 'bye');
  await echoed;
  assert.equal(server.closeCode, 1000);
  assert.equal(server.closeReason, 'bye');
});

test('the client masks and the server checks: a frame the server cannot parse would close with 1002, a clean close is 1000 on both ends', async () => {
  const [client, server] = pair();
  const large = new Uint8Array(3 * 1024 * 1024).map((_, i) => i & 0xff);
  const received = server.receive();
  await client.send(large);
  assert.deepEqual(await received, large, 'a 3 MiB masked message unmasked intact');
  await server.close();
  assert.deepEqual(await client.closed, { code: 1000, reason: '' });
  assert.deepEqual(await server.closed, { code: 1000, reason: '' });
});

test('compression: negotiated as a handshake would, messages compressed both ways, the inflated size limited', async () => {
  const [client, server] = pair({ compression: { clientNoContextTakeover: true }, maxMessageSize: 1024 * 1024 });
  assert.equal(client.extensions, 'permessage-deflate; client_no_context_takeover');
  assert.equal(server.extensions, client.extensions);
  const text = 'compressible '.repeat(50_000); // 650 KB
  await client.send(text);
  assert.equal(await server.receive(), text);
  await server.send(text);
  assert.equal(await client.receive(), text);
  await client.send('x'.repeat(2 * 1024 * 1024)); // a few KiB compressed, 2 MiB inflated
  await assert.rejects(server.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1009);
  assert.equal((await client.closed).code, 1009);
});

test('bad options are errors before anything is made', () => {
  assert.throws(() => pair({ maxMessageSize: -1 }), RangeError);
  assert.throws(() => pair({ protocol: 'not a token' }), TypeError);
  assert.throws(() => pair({ url: 'http://example.test/#fragment' }), TypeError);
  assert.throws(() => pair({ compression: { serverMaxWindowBits: 99 } }), RangeError);
});

test('the README pattern: a handler unit-tested without a server', async () => {
  // The handler under test: answers "ping" with "pong" and closes with 4000 on "quit".
  async function handler(ws: WebSocket): Promise<void> {
    for await (const message of ws) {
      if (message === 'quit') return ws.close(4000, 'bye');
      if (message === 'ping') await ws.send('pong');
    }
  }
  const [client, server] = pair();
  const handled = handler(server);
  await client.send('ping');
  assert.equal(await client.receive(), 'pong');
  await client.send('quit');
  await assert.rejects(client.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 4000);
  await handled;
});
