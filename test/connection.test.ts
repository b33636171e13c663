// Connection behaviour run from both sides: every test runs once with the client as the active
// end and once with the server (python-websockets does the same), and each of those twice: over
// real loopback sockets, and over the library's in-memory pair() (the same protocol, no socket).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { listen, connect, pair as memoryPair, WebSocket, WebSocketError, isOk, receive, send, ping, pong, close } from '../websockets.ts';
import type { ConnectionOptions, Data } from '../websockets.ts';

interface Pair {
  /** The end under test. */
  local: WebSocket;
  /** The other end. */
  remote: WebSocket;
  [Symbol.asyncDispose](): Promise<void>;
}

type Connect = (side: 'client' | 'server', localOptions?: ConnectionOptions, remoteOptions?: ConnectionOptions) => Promise<Pair>;

/** The library's pair() takes one options object for both ends: here, both ends get the local and the remote options. */
function inMemoryPair(side: 'client' | 'server', localOptions: ConnectionOptions, remoteOptions: ConnectionOptions): Promise<Pair> {
  const [client, server] = memoryPair({ pingInterval: 0, ...remoteOptions, ...localOptions });
  return Promise.resolve({
    local: side === 'client' ? client : server,
    remote: side === 'client' ? server : client,
    async [Symbol.asyncDispose]() {
      await client.close().catch(() => {});
      await server.close().catch(() => {});
    },
  });
}

async function socketPair(side: 'client' | 'server', localOptions: ConnectionOptions = {}, remoteOptions: ConnectionOptions = {}): Promise<Pair> {
  let serverSide!: (ws: WebSocket) => void;
  const accepted = new Promise<WebSocket>((resolve) => (serverSide = resolve));
  const serverOptions = { pingInterval: 0, ...(side === 'server' ? localOptions : remoteOptions) };
  const clientOptions = { pingInterval: 0, ...(side === 'client' ? localOptions : remoteOptions) };
  const server = await listen('127.0.0.1', 0, async (ws) => {
    serverSide(ws);
    await ws.closed;
  }, serverOptions);
  const client = await connect(server.url, clientOptions);
  const serverWs = await accepted;
  return {
    local: side === 'client' ? client : serverWs,
    remote: side === 'client' ? serverWs : client,
    async [Symbol.asyncDispose]() {
      await client.close().catch(() => {});
      await server.close();
    },
  };
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function rejection(promise: Promise<unknown>): Promise<WebSocketError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WebSocketError, `expected a WebSocketError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the promise to reject');
}

for (const [side, over] of [['client', 'socket'], ['server', 'socket'], ['client', 'memory'], ['server', 'memory']] as const) {
  describe(`${side} side, over ${over === 'socket' ? 'a loopback socket' : 'pair() in memory'}`, { timeout: 60_000 }, () => {
    /** A connected client and server; `side` says which one is `local`. */
    const pair: Connect = over === 'socket' ? socketPair : (s, local = {}, remote = {}) => inMemoryPair(s, local, remote);
    test('text arrives as a string, binary as a Uint8Array, empty ones too', async () => {
      await using p = await pair(side);
      await p.local.send('héllo ☃ 𝄞');
      await p.local.send(new Uint8Array([0, 1, 255]));
      await p.local.send('');
      await p.local.send(new Uint8Array(0));
      await p.local.send(new Uint16Array([0x0102]).buffer);
      await p.local.send(new DataView(new Uint8Array([9, 8, 7]).buffer, 1, 2));
      const received = [await p.remote.receive(), await p.remote.receive(), await p.remote.receive(), await p.remote.receive(), await p.remote.receive(), await p.remote.receive()];
      assert.equal(received[0], 'héllo ☃ 𝄞');
      assert.equal(Object.getPrototypeOf(received[1]), Uint8Array.prototype);
      assert.deepEqual(received[1], new Uint8Array([0, 1, 255]));
      assert.equal(received[2], '');
      assert.deepEqual(received[3], new Uint8Array(0));
      assert.deepEqual(received[4], new Uint8Array(new Uint16Array([0x0102]).buffer));
      assert.deepEqual(received[5], new Uint8Array([8, 7]));
    });

    test('free functions are aliases of the methods', async () => {
      await using p = await pair(side);
      await send(p.local, 'free');
      assert.equal(await receive(p.remote), 'free');
      assert.equal(typeof (await ping(p.local, 'x')), 'number');
      await pong(p.local, 'unsolicited');
      await send(p.local, 'after pong');
      assert.equal(await receive(p.remote), 'after pong');
      await close(p.local, 4000, 'free close');
      assert.equal(p.remote.closeCode, 4000);
    });

    test('an iterable is one fragmented message; an async iterable too', async () => {
      await using p = await pair(side);
      await p.local.send(['frag', 'men', 'ted']);
      await p.local.send([new Uint8Array([1]), new Uint8Array([2, 3])]);
      await p.local.send((async function* () {
        yield 'as';
        await new Promise((resolve) => setTimeout(resolve, 10));
        yield 'ync';
      })());
      await p.local.send([]);
      assert.equal(await p.remote.receive(), 'fragmented');
      assert.deepEqual(await p.remote.receive(), new Uint8Array([1, 2, 3]));
      assert.equal(await p.remote.receive(), 'async');
      assert.deepEqual(await p.remote.receive(), new Uint8Array(0));
    });

    test('mixing text and bytes in one message is a TypeError and sends nothing', async () => {
      await using p = await pair(side);
      await assert.rejects(p.local.send(['text', new Uint8Array([1])]), TypeError);
      await assert.rejects(p.local.send(42 as unknown as string), TypeError);
      await p.local.send('still open');
      assert.equal(await p.remote.receive(), 'still open');
    });

    test('messages keep the order of send() calls, awaited or not, around an async iterable', async () => {
      await using p = await pair(side);
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 500; i++) sends.push(p.local.send(`m${i}`));
      sends.push(p.local.send((async function* () {
        for (let i = 0; i < 5; i++) {
          await new Promise((resolve) => setTimeout(resolve, 2));
          yield `s${i}`;
        }
      })()));
      for (let i = 500; i < 1000; i++) sends.push(p.local.send(`m${i}`));
      await Promise.all(sends);
      const expected = [...Array.from({ length: 500 }, (_, i) => `m${i}`), 's0s1s2s3s4', ...Array.from({ length: 500 }, (_, i) => `m${i + 500}`)];
      for (const message of expected) assert.equal(await p.remote.receive(), message);
    });

    test('concurrent receive() calls are served in call order', async () => {
      await using p = await pair(side);
      const pending = [p.remote.receive(), p.remote.receive(), p.remote.receive()];
      await p.local.send('1');
      await p.local.send('2');
      await p.local.send('3');
      assert.deepEqual(await Promise.all(pending), ['1', '2', '3']);
    });

    test('ping() resolves with the round-trip time; pong() is harmless', async () => {
      await using p = await pair(side);
      const rtts = await Promise.all([p.local.ping(), p.local.ping('custom'), p.local.ping(new Uint8Array(125))]);
      for (const rtt of rtts) assert.ok(typeof rtt === 'number' && rtt >= 0 && rtt < 5_000, `rtt ${rtt}`);
      await assert.rejects(p.local.ping(new Uint8Array(126)), RangeError);
      await p.local.pong('beat');
      await p.local.send('after');
      assert.equal(await p.remote.receive(), 'after');
    });

    test('close(code, reason) reaches the peer; both sides see what the other sent', async () => {
      await using p = await pair(side);
      await p.local.send('last words');
      await p.local.close(4001, 'done here');
      assert.equal(await p.remote.receive(), 'last words');
      const error = await rejection(p.remote.receive());
      assert.equal(error.code, 4001);
      assert.equal(error.reason, 'done here');
      assert.match(error.message, /4001.*done here/);
      assert.deepEqual(await p.remote.closed, { code: 4001, reason: 'done here' });
      assert.deepEqual(await p.local.closed, { code: 4001, reason: 'done here' });
      assert.equal(p.remote.closeCode, 4001);
      assert.equal(p.local.closeReason, 'done here');
      await assert.rejects(p.local.send('too late'), WebSocketError);
      await p.local.close(); // closing twice is harmless
    });

    test('iteration ends on a normal close and throws on any other', async () => {
      await using p = await pair(side);
      await p.local.send('a');
      await p.local.send('b');
      await p.local.close(1000);
      const seen: Data[] = [];
      for await (const message of p.remote) seen.push(message);
      assert.deepEqual(seen, ['a', 'b']);

      await using q = await pair(side);
      await q.local.close(4002, 'not ok');
      await assert.rejects(async () => {
        for await (const message of q.remote) void message;
      }, (error: unknown) => error instanceof WebSocketError && error.code === 4002 && !isOk(error));
    });

    test('bad close arguments are programming errors, thrown before anything is sent', async () => {
      await using p = await pair(side);
      await assert.rejects(p.local.close(1005), RangeError);
      await assert.rejects(p.local.close(999), RangeError);
      await assert.rejects(p.local.close(1000.5), TypeError);
      await assert.rejects(p.local.close(1000, 'x'.repeat(124)), RangeError);
      await p.local.send('still open');
      assert.equal(await p.remote.receive(), 'still open');
    });

    test('a message of exactly maxMessageSize arrives; one byte more closes with 1009', async () => {
      await using p = await pair(side, {}, { maxMessageSize: 1000 });
      await p.local.send(new Uint8Array(1000));
      assert.equal((await p.remote.receive()).length, 1000);
      await p.local.send(['x'.repeat(600), 'y'.repeat(401)]);
      const error = await rejection(p.remote.receive());
      assert.equal(error.code, 1009);
      assert.deepEqual(await p.local.closed, { code: 1009, reason: error.reason });
    });

    test('the default limit: 16 MiB arrives intact, 16 MiB + 1 closes with 1009', { timeout: 60_000 }, async () => {
      await using p = await pair(side);
      const big = new Uint8Array(16 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4096) big[i] = i / 4096;
      const sent = sha256(big);
      await p.local.send(big);
      const received = await p.remote.receive();
      assert.equal(received.length, big.length);
      assert.equal(sha256(received as Uint8Array), sent);
      // The send may reject: the peer closes before the whole message has left our buffer.
      const tooBig = p.local.send(new Uint8Array(16 * 1024 * 1024 + 1)).catch((error: unknown) => error);
      assert.equal((await rejection(p.remote.receive())).code, 1009);
      const outcome = await tooBig;
      assert.ok(outcome === undefined || (outcome instanceof WebSocketError && outcome.code === 1009), String(outcome));
    });

    test('more fragments than maxFragments closes with 1009', async () => {
      await using p = await pair(side, {}, { maxFragments: 10 });
      await p.local.send(Array.from({ length: 10 }, () => 'f'));
      assert.equal(await p.remote.receive(), 'ffffffffff');
      await p.local.send(Array.from({ length: 11 }, () => 'f'));
      assert.equal((await rejection(p.remote.receive())).code, 1009);
    });

    test('a slow receiver stops reading, so the sender stops resolving; nothing is lost', { timeout: 30_000 }, async () => {
      await using p = await pair(side, { highWaterMark: 16 * 1024 }, { maxQueuedMessages: 4, maxQueuedBytes: 64 * 1024 });
      const chunk = new Uint8Array(64 * 1024);
      let sent = 0;
      let stalled = false;
      while (sent < 2000) {
        chunk[0] = sent & 0xff;
        const done = p.local.send(chunk);
        const won = await Promise.race([done.then(() => true), new Promise((resolve) => setTimeout(resolve, 300, false))]);
        if (!won) {
          stalled = true;
          break;
        }
        sent++;
      }
      assert.ok(stalled, 'send() kept resolving although nobody received');
      assert.ok(sent < 200, `${sent} messages of 64 KiB were accepted before backpressure`);
      for (let i = 0; i <= sent; i++) {
        const message = (await p.remote.receive()) as Uint8Array;
        assert.equal(message[0], i & 0xff, `message ${i}`);
      }
    });

    // A keepalive that fails is how a peer vanishes here: in memory the pong is always back at once.
    if (over === 'socket') test('the peer vanishing gives 1006 to receive() and closed', async () => {
      await using p = await pair(side);
      const pending = rejection(p.local.receive());
      await p.remote.close(1000); // a clean close for the remote…
      const error = await pending;
      assert.equal(error.code, 1000);
      // …and an unclean one: a keepalive that fails kills the link without a handshake.
      await using q = await pair(side, { pingInterval: 50, pingTimeout: 1 });
      const closed = await q.local.closed;
      assert.ok(closed.code === 1006 || closed.code === 1011, `code ${closed.code}`);
    });

    test('closed read for the first time after the end still resolves, with the code the peer sent', async () => {
      await using p = await pair(side);
      await p.remote.close(4005, 'late reader');
      await assert.rejects(p.local.receive(), (error: WebSocketError) => error.code === 4005);
      // Give the transport its close event: `closed` is made only now, after the connection is gone.
      for (let i = 0; i < 100 && p.local.closeCode === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(await p.local.closed, { code: 4005, reason: 'late reader' });
    });

    test('iteration: break ends only the loop; after the end, a new loop yields nothing and next() keeps saying done', async () => {
      await using p = await pair(side);
      for (const message of ['a', 'b', 'c']) await p.remote.send(message);
      const first: string[] = [];
      for await (const message of p.local) {
        first.push(message as string);
        if (first.length === 2) break;
      }
      assert.deepEqual(first, ['a', 'b']);
      assert.equal(await p.local.receive(), 'c', 'break closes nothing and drops nothing');
      await p.remote.close(1000);
      const iterator = p.local[Symbol.asyncIterator]();
      assert.deepEqual(await iterator.next(), { value: undefined, done: true });
      assert.deepEqual(await iterator.next(), { value: undefined, done: true });
      const later: unknown[] = [];
      for await (const message of p.local) later.push(message);
      assert.deepEqual(later, []);
    });

    // pair() has no handshake and no address: test/pair.test.ts checks what it reports instead.
    if (over === 'socket') test('handshake details are filled in', async () => {
      await using p = await pair(side);
      const client = side === 'client' ? p.local : p.remote;
      const server = side === 'client' ? p.remote : p.local;
      assert.match(client.url, /^ws:\/\/127\.0\.0\.1:\d+\/$/);
      assert.equal(server.url, '/');
      assert.equal(server.request.method, 'GET');
      assert.equal(server.request.headers['upgrade'], 'websocket');
      assert.equal(client.response?.status, 101);
      assert.equal(server.response, undefined);
      assert.equal(client.protocol, '');
      assert.equal(client.extensions, '');
      assert.equal(server.remoteAddress, '127.0.0.1');
      assert.equal(typeof client.bufferedAmount, 'number');
    });
  });
}
