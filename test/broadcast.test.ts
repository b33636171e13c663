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
  const all: Array<Promise<void>> = [];
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
