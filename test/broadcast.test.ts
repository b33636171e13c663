// broadcast(): one frame written to many server-side sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listen, connect, broadcast, WebSocket } from '../websockets.ts';
import type { Server } from '../websockets.ts';

interface Room {
  server: Server;
  members: WebSocket[];
  clients: WebSocket[];
  [Symbol.asyncDispose](): Promise<void>;
}

/** A server that keeps its sockets in `members`, and `count` connected clients. */
async function room(count: number, clientOptions: Array<Parameters<typeof connect>[1]> = [], serverCompression = false): Promise<Room> {
  const members: WebSocket[] = [];
  const server = await listen('127.0.0.1', 0, async (ws) => {
    members.push(ws);
    await ws.closed;
  }, { pingInterval: 0, compression: serverCompression });
  const clients: WebSocket[] = [];
  for (let i = 0; i < count; i++) clients.push(await connect(server.url, { pingInterval: 0, ...clientOptions[i] }));
  while (members.length < count) await new Promise((resolve) => setTimeout(resolve, 5));
  return {
    server,
    members,
    clients,
    async [Symbol.asyncDispose]() {
      await Promise.all(clients.map((client) => client.close().catch(() => {})));
      await server.close();
    },
  };
}

test('every member receives the message, text and binary', { timeout: 20_000 }, async () => {
  await using r = await room(10);
  await broadcast(r.members, 'hello everyone');
  await broadcast(r.members, new Uint8Array([1, 2, 3]));
  for (const client of r.clients) {
    assert.equal(await client.receive(), 'hello everyone');
    assert.deepEqual(await client.receive(), new Uint8Array([1, 2, 3]));
  }
});

test('sockets that cannot share a frame (compressed) get an ordinary send; closed ones are skipped', { timeout: 20_000 }, async () => {
  await using r = await room(4, [{}, { compression: true }, {}, {}], true);
  assert.equal(r.clients[1].extensions.startsWith('permessage-deflate'), true);
  await r.clients[3].close();
  await r.members[3].closed;
  const text = 'x'.repeat(5000);
  await broadcast(r.members, text); // must not reject because of the closed one
  for (const client of r.clients.slice(0, 3)) assert.equal(await client.receive(), text);
});

test('a client that does not read holds up no other client', { timeout: 30_000 }, async () => {
  await using r = await room(3, [{}, {}, { maxQueuedMessages: 1, maxQueuedBytes: 1 }]);
  const chunk = new Uint8Array(64 * 1024);
  const rounds = 200; // 12.5 MiB each: far beyond what the stalled client's buffers hold
  const all: Array<Promise<unknown>> = [];
  for (let i = 0; i < rounds; i++) {
    chunk[0] = i & 0xff;
    all.push(broadcast(r.members, chunk));
  }
  const everything = Promise.all(all);
  for (const fast of r.clients.slice(0, 2)) {
    for (let i = 0; i < rounds; i++) assert.equal((await fast.receive() as Uint8Array)[0], i & 0xff);
  }
  // The fast ones got everything while the slow one still has not read it all.
  const settled = await Promise.race([everything.then(() => true), new Promise((resolve) => setTimeout(resolve, 100, false))]);
  assert.equal(settled, false, 'broadcast resolved although a member was far above its high-water mark');
  const slow = r.clients[2];
  for (let i = 0; i < rounds; i++) assert.equal((await slow.receive() as Uint8Array)[0], i & 0xff);
  await everything;
});

/** Reads `count` messages as they come, checking their order by the first byte. */
async function readAll(client: WebSocket, count: number): Promise<void> {
  for (let i = 0; i < count; i++) assert.equal((await client.receive() as Uint8Array)[0], i & 0xff, `message ${i}`);
}

test('maxBuffered with skip: a stalled member is skipped once its buffer holds more, the others get everything, nobody waits', { timeout: 30_000 }, async () => {
  await using r = await room(3, [{}, {}, { maxQueuedMessages: 1, maxQueuedBytes: 1 }]);
  const rounds = 400; // 25 MiB each: far more than the stalled member's socket buffers absorb
  const readers = Promise.all(r.clients.slice(0, 2).map((fast) => readAll(fast, rounds)));
  const chunk = new Uint8Array(64 * 1024);
  const maxBuffered = 1024 * 1024;
  const stalled = r.members[2]!;
  let skippedRounds = 0;
  let mostBuffered = 0;
  for (let i = 0; i < rounds; i++) {
    chunk[0] = i & 0xff;
    const result = await broadcast(r.members, chunk, { maxBuffered }); // resolves at once: nobody's drain is awaited
    if (result.skipped.includes(stalled)) skippedRounds++;
    assert.ok(!result.skipped.some((member) => member !== stalled), `round ${i}: a member that reads was skipped`);
    assert.deepEqual(result.closed, []);
    assert.equal(result.sent + result.skipped.length, 3);
    mostBuffered = Math.max(mostBuffered, stalled.bufferedAmount);
    await new Promise((resolve) => setImmediate(resolve)); // the readers' turn
  }
  await readers;
  assert.ok(skippedRounds > 100, `the stalled member was skipped in only ${skippedRounds} of ${rounds} rounds`);
  assert.ok(mostBuffered <= maxBuffered + chunk.length + 16, `the stalled member's buffer reached ${mostBuffered} bytes`);
});

test('maxBuffered with close: a stalled member is closed with 1013 and reported; the others carry on', { timeout: 30_000 }, async () => {
  await using r = await room(3, [{}, {}, { maxQueuedMessages: 1, maxQueuedBytes: 1 }]);
  const rounds = 400;
  const readers = Promise.all(r.clients.slice(0, 2).map((fast) => readAll(fast, rounds)));
  const chunk = new Uint8Array(64 * 1024);
  const stalled = r.members[2]!;
  const closedBy: WebSocket[][] = [];
  for (let i = 0; i < rounds; i++) {
    chunk[0] = i & 0xff;
    const result = await broadcast(r.members, chunk, { maxBuffered: 1024 * 1024, onLimit: 'close' });
    if (result.closed.length > 0) closedBy.push([...result.closed]);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await readers;
  assert.deepEqual(closedBy, [[stalled]], 'closed once, then passed over');
  const ending = await stalled.closed; // it does not read: its close answer may never come, and the close timeout ends it
  assert.ok(ending.code === 1013 || ending.code === 1006, `the stalled member ended with ${ending.code}`);
});

test('bad broadcast options are errors', async () => {
  await assert.rejects(broadcast([], 'x', { maxBuffered: -1 }), RangeError);
  await assert.rejects(broadcast([], 'x', { onLimit: 'drop' as 'skip' }), TypeError);
  assert.deepEqual(await broadcast([], 'x'), { sent: 0, skipped: [], closed: [] });
});
