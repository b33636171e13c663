// WHATWG streams over a WebSocket: ws.readable (each read a receive()) and ws.writable (each
// write a send()); piping, ends and errors, cancel and abort as closing handshakes. Over pair()
// and over a socket; test/browser.test.ts does the same in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, listen, pair, WebSocketError } from '../websockets.ts';
import type { Data } from '../websockets.ts';
import { within } from './support.ts';

const upperCase = () => new TransformStream<Data, Data>({ transform: (message, controller) => controller.enqueue(typeof message === 'string' ? message.toUpperCase() : message) });

test('a server that pipes readable through a TransformStream into writable: an upper-casing echo over a socket', { timeout: 10_000 }, async () => {
  let piped: Promise<void> | undefined;
  const server = await listen('127.0.0.1', 0, (ws) => (piped = ws.readable.pipeThrough(upperCase()).pipeTo(ws.writable)), { pingInterval: 0 });
  try {
    const client = await connect(server.url, { pingInterval: 0 });
    const writer = client.writable.getWriter();
    await writer.write('hello');
    await writer.write(new Uint8Array([1, 2, 3]));
    await writer.write(['frag', 'ments']);
    const reader = client.readable.getReader();
    assert.deepEqual(await reader.read(), { value: 'HELLO', done: false });
    assert.deepEqual(await reader.read(), { value: new Uint8Array([1, 2, 3]), done: false });
    assert.deepEqual(await reader.read(), { value: 'FRAGMENTS', done: false });
    await writer.close(); // the closing handshake, 1000
    assert.deepEqual(await reader.read(), { value: undefined, done: true }, 'a normal close ends the readable');
    await within(piped ?? Promise.reject(new Error('no pipe')), 5_000);
    assert.equal(client.closeCode, 1000);
  } finally {
    await server.close();
  }
});

test('another close errors the readable with its WebSocketError; cancel and abort close with a WebSocketError\u2019s code', async () => {
  const [client, server] = pair();
  await server.close(4002, 'gone');
  await assert.rejects(client.readable.getReader().read(), (error: unknown) => error instanceof WebSocketError && error.code === 4002 && error.reason === 'gone');

  const [c2, s2] = pair();
  await c2.readable.cancel(new WebSocketError(4001, 'enough'));
  assert.deepEqual(await s2.closed, { code: 4001, reason: 'enough' });

  const [c3, s3] = pair();
  await c3.readable.cancel('not a WebSocketError');
  assert.deepEqual(await s3.closed, { code: 1000, reason: '' });

  const [c4, s4] = pair();
  await c4.writable.abort(new Error('the producer failed'));
  assert.equal((await s4.closed).code, 1011, 'an abort without a WebSocketError is an internal error');

  const [c5, s5] = pair();
  await c5.readable.cancel(new WebSocketError(4003, 'é'.repeat(100))); // 200 bytes: more than a close frame holds
  assert.deepEqual(await s5.closed, { code: 4003, reason: 'é'.repeat(61) }, 'the reason is cut to 123 bytes, at a character boundary');
});

test('the readable pulls only when read: messages wait in the receive queue, in order, none lost', async () => {
  const [client, server] = pair();
  for (let i = 0; i < 50; i++) await server.send(`m${i}`);
  const reader = client.readable.getReader();
  const got: Data[] = [];
  for (let i = 0; i < 50; i++) got.push((await reader.read()).value as Data);
  assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `m${i}`));
  reader.releaseLock();
  assert.equal(client.readable, client.readable, 'one stream per socket');
  await server.send('after the reader');
  assert.equal(await client.receive(), 'after the reader', 'receive() still works once no reader holds the stream');
  await client.close();
});
