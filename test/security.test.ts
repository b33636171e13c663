// Security checks of the client and server surfaces: injection, leaks, randomness.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { listen, connect, WebSocketError } from '../websockets.ts';
import type { RequestInfo } from '../websockets.ts';
import { acceptFor } from './support.ts';

test('CR/LF in a URL path cannot inject a header: the URL parser drops them', { timeout: 10_000 }, async () => {
  let seen: RequestInfo | null = null;
  const server = await listen('127.0.0.1', 0, (ws) => {
    seen = ws.request;
  }, { pingInterval: 0 });
  try {
    const ws = await connect(`${server.url}/a\r\nX-Injected: yes\r\n`, { pingInterval: 0 });
    await ws.closed;
    assert.ok(seen);
    const request = seen as RequestInfo;
    assert.equal(request.headers['x-injected'], undefined);
    assert.ok(!/[\r\n]/.test(request.url), JSON.stringify(request.url));
  } finally {
    await server.close();
  }
});

test('subprotocols and header names must be tokens; values may not hold CR, LF or NUL', async () => {
  for (const protocols of [['chat\r\nX: y'], ['two words'], ['a,b'], ['dup', 'dup'], ['']]) {
    await assert.rejects(connect('ws://127.0.0.1:9/', { protocols }), TypeError, JSON.stringify(protocols));
  }
  const bad: Array<Record<string, string>> = [{ 'X-A': 'v\r\nX-B: w' }, { 'X-A': 'v\nw' }, { 'X-A': 'v\0' }, { 'Bad Name': 'v' }, { 'sec-websocket-key': 'x' }];
  for (const headers of bad) {
    await assert.rejects(connect('ws://127.0.0.1:9/', { headers }), TypeError, JSON.stringify(headers));
  }
});

test('a server handler that throws closes with 1011 and no detail on the wire', { timeout: 10_000 }, async () => {
  const secret = 'password=hunter2 at /srv/app/secret.ts:42';
  const reported: unknown[] = [];
  const server = await listen('127.0.0.1', 0, async (ws) => {
    await ws.receive();
    throw new Error(secret);
  }, { pingInterval: 0, onError: (error) => reported.push(error) });
  try {
    const ws = await connect(server.url, { pingInterval: 0 });
    await ws.send('go');
    const error = await ws.receive().then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof WebSocketError);
    assert.equal(error.code, 1011);
    assert.equal(error.reason, '');
    assert.deepEqual(await ws.closed, { code: 1011, reason: '' });
    for (let i = 0; i < 100 && reported.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal((reported[0] as Error | undefined)?.message, secret, 'the detail goes to onError, not to the peer');
  } finally {
    await server.close();
  }
});

test('client mask keys come from the CSPRNG: 2,000 frames, no key repeats, all byte values seen', { timeout: 10_000 }, async () => {
  const keys = new Set<string>();
  const bytes = new Set<number>();
  let buffered = Buffer.alloc(0);
  const upgraded = new Promise<void>((resolve) => {
    const server = net.createServer((socket) => {
      socket.once('data', (request) => {
        const key = /Sec-WebSocket-Key: (.*)\r\n/i.exec(request.toString('latin1'))?.[1] ?? '';
        const accept = acceptFor(key);
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        socket.on('data', (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          // Every frame is a masked 1-byte text message: 2 header bytes, 4 key bytes, 1 payload byte.
          while (buffered.length >= 7) {
            const key = buffered.subarray(2, 6);
            keys.add(key.toString('hex'));
            for (const byte of key) bytes.add(byte);
            buffered = buffered.subarray(7);
          }
          if (keys.size >= 2000 || buffered.length > 0) {
            socket.destroy();
            server.close();
            resolve();
          }
        });
      });
    });
    server.listen(0, '127.0.0.1', async () => {
      const { port } = server.address() as net.AddressInfo;
      const ws = await connect(`ws://127.0.0.1:${port}/`, { pingInterval: 0, closeTimeout: 100 });
      for (let i = 0; i < 2000; i++) void ws.send('x').catch(() => {});
    });
  });
  await upgraded;
  assert.equal(keys.size, 2000, 'a mask key repeated');
  assert.equal(bytes.size, 256, 'mask bytes do not look random');
});
