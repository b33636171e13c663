// Interop with the `ws` npm package, both directions:
//   (a) our client (open / connect) against a ws WebSocketServer;
//   (b) a ws client against our server (listen).
// Everything runs on 127.0.0.1 with port 0; every test closes what it opened.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import WS, { WebSocketServer } from 'ws';
import { connect, isOk, listen, open, WebSocketError } from '../websockets.ts';
import type { Data, Server, ServerOptions, WebSocket } from '../websockets.ts';

const MiB = 1024 * 1024;
const T = { timeout: 20_000 };
const T_BIG = { timeout: 60_000 };

// ── helpers ──────────────────────────────────────────────────────────────────────────────

interface Deferred<V> {
  promise: Promise<V>;
  resolve(value: V): void;
  reject(error: unknown): void;
}

function deferred<V>(): Deferred<V> {
  let resolve!: (value: V) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** ws hands out Buffer, ArrayBuffer or Buffer[] depending on binaryType; make it one Buffer. */
function toBuffer(data: WS.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

interface WsMessage {
  data: Buffer;
  isBinary: boolean;
}

/** Collects a ws socket's messages, pings, pongs and close so tests can await them in order. */
class Peer {
  readonly socket: WS;
  readonly #messages: WsMessage[] = [];
  readonly #waiters: Array<(message: WsMessage) => void> = [];
  readonly pings: Buffer[] = [];
  readonly pongs: Buffer[] = [];
  readonly errors: Error[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The handshake request, on the server side. */
  readonly request?: IncomingMessage;

  constructor(socket: WS, request?: IncomingMessage) {
    this.socket = socket;
    if (request) this.request = request;
    socket.on('message', (data, isBinary) => {
      const message = { data: toBuffer(data), isBinary };
      const waiter = this.#waiters.shift();
      if (waiter) waiter(message);
      else this.#messages.push(message);
    });
    socket.on('ping', (data) => this.pings.push(data));
    socket.on('pong', (data) => this.pongs.push(data));
    socket.on('error', (error) => this.errors.push(error));
    this.closed = new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  next(): Promise<WsMessage> {
    const message = this.#messages.shift();
    if (message) return Promise.resolve(message);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  get queued(): number {
    return this.#messages.length;
  }

  /** Makes sure the socket is gone (test cleanup): a normal close, or terminate after 2 s. */
  async kill(): Promise<void> {
    if (this.socket.readyState === WS.CLOSED) return;
    if (this.socket.readyState === WS.OPEN) this.socket.close(1000);
    const timer = setTimeout(() => this.socket.terminate(), 2_000);
    await this.closed;
    clearTimeout(timer);
  }
}

/** A ws server on 127.0.0.1:0 whose connections arrive as Peers. */
class WsServer {
  readonly wss: WebSocketServer;
  readonly url: string;
  readonly #peers: Peer[] = [];
  readonly #waiters: Array<(peer: Peer) => void> = [];

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    this.url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    wss.on('connection', (socket, request) => {
      const peer = new Peer(socket, request);
      const waiter = this.#waiters.shift();
      if (waiter) waiter(peer);
      else this.#peers.push(peer);
    });
  }

  static async start(options: WS.ServerOptions = {}): Promise<WsServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...options });
    await once(wss, 'listening');
    return new WsServer(wss);
  }

  /** The next connection accepted. */
  peer(): Promise<Peer> {
    const peer = this.#peers.shift();
    if (peer) return Promise.resolve(peer);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** A ws client connected to `url`, as a Peer. */
async function wsConnect(url: string, protocols?: string | string[], options: WS.ClientOptions = {}): Promise<Peer> {
  const socket = new WS(url, protocols, options);
  const peer = new Peer(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return peer;
}

/** Our server, whose connections arrive as WebSockets; each handler waits until the test lets it go. */
class OurServer {
  readonly server: Server;
  readonly #sockets: WebSocket[] = [];
  readonly #waiters: Array<(ws: WebSocket) => void> = [];
  readonly #released = deferred<void>();

  private constructor(server: Server) {
    this.server = server;
  }

  /** With no handler, each connection is handed to the test and held open until `close()`. */
  static async start(options: ServerOptions = {}, handler?: (ws: WebSocket) => unknown): Promise<OurServer> {
    let self: OurServer | undefined;
    const server = await listen(
      '127.0.0.1',
      0,
      async (ws) => {
        if (handler) return handler(ws);
        const waiter = self!.#waiters.shift();
        if (waiter) waiter(ws);
        else self!.#sockets.push(ws);
        await Promise.race([ws.closed, self!.#released.promise]);
      },
      options,
    );
    self = new OurServer(server);
    return self;
  }

  get url(): string {
    return this.server.url;
  }

  socket(): Promise<WebSocket> {
    const ws = this.#sockets.shift();
    if (ws) return Promise.resolve(ws);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async close(): Promise<void> {
    this.#released.resolve();
    await this.server.close();
  }
}

/** An echo handler for our server: each message goes back as it came. */
async function echo(ws: WebSocket): Promise<void> {
  for await (const message of ws) await ws.send(message);
}

function assertPlainBytes(value: Data, expected: Uint8Array | number[]): asserts value is Uint8Array {
  assert.ok(value instanceof Uint8Array, `expected a Uint8Array, got ${typeof value}`);
  assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype, 'binary messages are plain Uint8Arrays, not Buffers');
  assert.deepEqual(Array.from(value), Array.from(expected));
}

function assertText(value: Data, expected: string): void {
  assert.equal(typeof value, 'string', 'text messages arrive as strings');
  assert.equal(value, expected);
}

async function rejectsWith(promise: Promise<unknown>, code: number, reason?: string): Promise<WebSocketError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WebSocketError, `expected a WebSocketError, got ${String(error)}`);
    assert.equal(error.code, code, `close code: ${error.message}`);
    if (reason !== undefined) assert.equal(error.reason, reason);
    return error;
  }
  assert.fail(`expected a rejection with code ${code}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ── (a) our client ↔ ws server ───────────────────────────────────────────────────────────

describe('our client ↔ ws server', () => {
  test('text and binary, both ways, with exact types and bytes', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();

      await ws.send('héllo, wörld ✓ 🎉');
      let got = await peer.next();
      assert.equal(got.isBinary, false);
      assert.equal(got.data.toString('utf8'), 'héllo, wörld ✓ 🎉');

      const bytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255]);
      await ws.send(bytes);
      got = await peer.next();
      assert.equal(got.isBinary, true);
      assert.deepEqual([...got.data], [...bytes]);

      // Other byte views are BINARY too, with exactly the bytes they view.
      const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
      await ws.send(new DataView(backing.buffer, 2, 3));
      got = await peer.next();
      assert.equal(got.isBinary, true);
      assert.deepEqual([...got.data], [1, 2, 3]);
      await ws.send(new Uint16Array([0x0102, 0x0304]).buffer);
      got = await peer.next();
      assert.equal(got.isBinary, true);
      assert.equal(got.data.length, 4);

      peer.socket.send('from ws: ✓');
      assertText(await ws.receive(), 'from ws: ✓');
      peer.socket.send(Buffer.from([255, 0, 7]));
      assertPlainBytes(await ws.receive(), [255, 0, 7]);
      // A text message that is not ASCII-only and one that is long enough to be split by TCP.
      const long = 'ü'.repeat(100_000);
      peer.socket.send(long);
      assertText(await ws.receive(), long);
      // A leading U+FEFF is content, not a byte-order mark to strip.
      peer.socket.send('\uFEFFbom');
      assertText(await ws.receive(), '\uFEFFbom');
    } finally {
      await ws.close().catch(() => {});
      await server.close();
    }
  });

  test('empty text and empty binary messages', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      await ws.send('');
      let got = await peer.next();
      assert.equal(got.isBinary, false);
      assert.equal(got.data.length, 0);
      await ws.send(new Uint8Array(0));
      got = await peer.next();
      assert.equal(got.isBinary, true);
      assert.equal(got.data.length, 0);

      peer.socket.send('');
      peer.socket.send(Buffer.alloc(0));
      peer.socket.send('after');
      assertText(await ws.receive(), '');
      assertPlainBytes(await ws.receive(), []);
      assertText(await ws.receive(), 'after');
    } finally {
      await ws.close().catch(() => {});
      await server.close();
    }
  });

  test('fragmented messages: our iterables arrive whole at ws; ws fragments arrive whole at ours', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      await ws.send(['a', 'b', 'ç']);
      await ws.send([new Uint8Array([1, 2]), new Uint8Array([]), new Uint8Array([3])]);
      async function* chunks(): AsyncGenerator<string> {
        yield 'as';
        await sleep(5);
        yield 'ync';
        await sleep(5);
        yield '!';
      }
      const asyncSend = ws.send(chunks());
      // Sent while the async iterable holds the message: it must go out after it, not inside.
      const after = ws.send('after');
      await Promise.all([asyncSend, after]);

      let got = await peer.next();
      assert.deepEqual([got.isBinary, got.data.toString()], [false, 'abç']);
      got = await peer.next();
      assert.deepEqual([got.isBinary, [...got.data]], [true, [1, 2, 3]]);
      got = await peer.next();
      assert.deepEqual([got.isBinary, got.data.toString()], [false, 'async!']);
      got = await peer.next();
      assert.deepEqual([got.isBinary, got.data.toString()], [false, 'after']);

      // ws sends fragments with {fin:false}; a ping goes between them.
      peer.socket.send('frag', { fin: false });
      peer.socket.send('men', { fin: false });
      peer.socket.ping(Buffer.from('mid'));
      peer.socket.send('ted ✓', { fin: true });
      peer.socket.send(Buffer.from([10, 20]), { binary: true, fin: false });
      peer.socket.send(Buffer.from([30]), { binary: true, fin: true });
      assertText(await ws.receive(), 'fragmented ✓');
      assertPlainBytes(await ws.receive(), [10, 20, 30]);
      // The ping between fragments was answered.
      for (let i = 0; i < 100 && peer.pongs.length === 0; i++) await sleep(10);
      assert.deepEqual(peer.pongs.map(String), ['mid']);
      assert.equal(peer.queued, 0);
    } finally {
      await ws.close().catch(() => {});
      await server.close();
    }
  });

  test('a multi-byte character split across ws fragments is reassembled', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      const bytes = Buffer.from('€uro', 'utf8'); // € is 3 bytes
      peer.socket.send(bytes.subarray(0, 1), { binary: false, fin: false });
      peer.socket.send(bytes.subarray(1, 2), { binary: false, fin: false });
      peer.socket.send(bytes.subarray(2), { binary: false, fin: true });
      assertText(await ws.receive(), '€uro');
    } finally {
      await ws.close().catch(() => {});
      await server.close();
    }
  });

  test('ping/pong both ways', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      const rtt = await ws.ping();
      assert.equal(typeof rtt, 'number');
      assert.ok(Number.isFinite(rtt) && rtt >= 0, `rtt ${rtt}`);
      const rtt2 = await ws.ping('hello');
      assert.ok(Number.isFinite(rtt2) && rtt2 >= 0);
      assert.equal(peer.pings.length, 2);
      assert.equal(peer.pings[1].toString(), 'hello');

      // ws pings us: we answer with the same payload, without anybody calling receive().
      const pong = once(peer.socket, 'pong');
      peer.socket.ping(Buffer.from([1, 2, 3]));
      const [payload] = (await pong) as [Buffer];
      assert.deepEqual([...payload], [1, 2, 3]);
      // The largest control payload, 125 bytes, comes back whole.
      const pong125 = once(peer.socket, 'pong');
      peer.socket.ping(Buffer.alloc(125, 7));
      const [payload125] = (await pong125) as [Buffer];
      assert.equal(payload125.length, 125);
      assert.ok(payload125.every((byte) => byte === 7));

      // An unsolicited pong from us reaches ws as a pong event.
      const unsolicited = once(peer.socket, 'pong');
      await ws.pong('beat');
      const [beat] = (await unsolicited) as [Buffer];
      assert.equal(beat.toString(), 'beat');

      // Still usable after all that.
      peer.socket.send('ok');
      assertText(await ws.receive(), 'ok');
    } finally {
      await ws.close().catch(() => {});
      await server.close();
    }
  });

  test('our close(4001, "bye") reaches ws; ws echoes it', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      await ws.close(4001, 'bye');
      assert.deepEqual(await peer.closed, { code: 4001, reason: 'bye' });
      assert.equal(ws.closeCode, 4001);
      assert.equal(ws.closeReason, 'bye');
      assert.deepEqual(await ws.closed, { code: 4001, reason: 'bye' });
      await rejectsWith(ws.send('too late'), 4001);
    } finally {
      await server.close();
    }
  });

  test('ws close(4002, reason) arrives at ours: receive rejects, closeCode/closeReason/closed', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      peer.socket.send('last words');
      peer.socket.close(4002, 'server says bye ✓');
      assertText(await ws.receive(), 'last words');
      const error = await rejectsWith(ws.receive(), 4002, 'server says bye ✓');
      assert.equal(isOk(error), false);
      assert.deepEqual(await ws.closed, { code: 4002, reason: 'server says bye ✓' });
      assert.equal(ws.closeCode, 4002);
      assert.equal(ws.closeReason, 'server says bye ✓');
      // ws got our echo of its close frame.
      assert.equal((await peer.closed).code, 4002);
    } finally {
      await server.close();
    }
  });

  test('ws close() with no code: 1005 at ours, and iteration ends normally', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      peer.socket.send('one');
      peer.socket.send('two');
      peer.socket.close();
      const seen: Data[] = [];
      for await (const message of ws) seen.push(message);
      assert.deepEqual(seen, ['one', 'two']);
      assert.deepEqual(await ws.closed, { code: 1005, reason: '' });
      assert.equal(ws.closeCode, 1005);
      const error = await rejectsWith(ws.receive(), 1005);
      assert.ok(isOk(error));
      // ws sees 1005 too: our answer to an empty close frame carries no code.
      assert.equal((await peer.closed).code, 1005);
    } finally {
      await server.close();
    }
  });

  test('ws terminate() without a close frame: 1006 at ours', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      peer.socket.terminate();
      await rejectsWith(ws.receive(), 1006);
      assert.equal((await ws.closed).code, 1006);
      assert.equal(ws.closeCode, 1006);
    } finally {
      await server.close();
    }
  });

  test('a 123-byte close reason (the most that fits) reaches ws intact', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      const reason = 'é'.repeat(61) + 'x'; // 123 bytes of UTF-8
      await ws.close(4999, reason);
      assert.deepEqual(await peer.closed, { code: 4999, reason });
      await assert.rejects(ws.close(4000, reason + 'y'), RangeError);
    } finally {
      await server.close();
    }
  });

  test('invalid UTF-8 in a text message from ws: 1007 both sides', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      peer.socket.send(Buffer.from([0x68, 0x69, 0xff, 0xfe]), { binary: false });
      await rejectsWith(ws.receive(), 1007);
      assert.equal((await peer.closed).code, 1007);
    } finally {
      await server.close();
    }
  });

  test('open(): the handler value resolves, ws sees 1000; a throwing handler closes 1008', T, async () => {
    const server = await WsServer.start();
    try {
      const peers: Peer[] = [];
      const serverSide = (async () => {
        const peer = await server.peer();
        peers.push(peer);
        const { data } = await peer.next();
        peer.socket.send(`echo:${data.toString()}`);
      })();
      const value = await open(server.url, async (ws) => {
        await ws.send('x');
        return ws.receive();
      });
      await serverSide;
      assert.equal(value, 'echo:x');
      assert.equal((await peers[0].closed).code, 1000);

      const boom = new Error('handler failed');
      const opened = open(server.url, async () => {
        throw boom;
      });
      await assert.rejects(opened, (error) => error === boom);
      const peer = await server.peer();
      assert.equal((await peer.closed).code, 1008);
    } finally {
      await server.close();
    }
  });

  test('16 MiB binary message both ways, exact bytes', T_BIG, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      const big = new Uint8Array(randomBytes(16 * MiB));
      const hash = sha256(big);
      await ws.send(big);
      const got = await peer.next();
      assert.equal(got.isBinary, true);
      assert.equal(got.data.length, 16 * MiB);
      assert.equal(sha256(got.data), hash);

      // Exactly 16 MiB is within the (inclusive) default limit on our side.
      peer.socket.send(got.data);
      const back = await ws.receive();
      assert.ok(back instanceof Uint8Array);
      assert.equal(back.length, 16 * MiB);
      assert.equal(sha256(back), hash);
    } finally {
      await ws.close().catch(() => {});
      await server.close();
    }
  });

  test('ws sending 16 MiB + 1 to our client: 1009 both sides', T_BIG, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      peer.socket.send(Buffer.alloc(16 * MiB + 1, 0x61));
      await rejectsWith(ws.receive(), 1009);
      assert.equal((await peer.closed).code, 1009);
      await ws.closed;
    } finally {
      await server.close();
    }
  });

  test('10,000 messages keep their order, both ways', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      const N = 10_000;
      const sends: Array<Promise<void>> = [];
      for (let i = 0; i < N; i++) sends.push(ws.send(i % 2 === 0 ? `m${i}` : new Uint8Array([i & 0xff, i >> 8])));
      await Promise.all(sends);
      for (let i = 0; i < N; i++) {
        const got = await peer.next();
        if (i % 2 === 0) assert.equal(got.data.toString(), `m${i}`);
        else assert.deepEqual([got.isBinary, got.data[0], got.data[1]], [true, i & 0xff, i >> 8]);
      }

      for (let i = 0; i < N; i++) peer.socket.send(`w${i}`);
      for (let i = 0; i < N; i++) assert.equal(await ws.receive(), `w${i}`);
    } finally {
      await ws.close().catch(() => {});
      await server.close();
    }
  });

  test('close() with a full receive queue still completes the closing handshake promptly', T, async () => {
    // Bug report in the test plan: with reading paused for backpressure, the peer's answering
    // close frame is never read, so close() waits the whole close timeout and ends with 1006.
    const server = await WsServer.start();
    const ws = await connect(server.url, { maxQueuedMessages: 16 });
    try {
      const peer = await server.peer();
      for (let i = 0; i < 1000; i++) peer.socket.send(`m${i}`);
      while (peer.socket.bufferedAmount > 0) await sleep(5);
      await sleep(100); // let our side fill its queue and stop reading
      const started = performance.now();
      await ws.close(1000, 'enough');
      const elapsed = performance.now() - started;
      assert.deepEqual(await peer.closed, { code: 1000, reason: 'enough' });
      assert.deepEqual(await ws.closed, { code: 1000, reason: 'enough' }, 'ws answered our close frame; we must read it');
      assert.ok(elapsed < 2_000, `close() took ${Math.round(elapsed)} ms (the close timeout is 5000 ms)`);
      // What arrived before the close can still be received, then the close shows.
      assert.equal(await ws.receive(), 'm0');
    } finally {
      await ws.close().catch(() => {});
      await server.close();
    }
  });

  test('simultaneous close from both ends', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url);
    try {
      const peer = await server.peer();
      peer.socket.close(4006, 'from ws');
      await ws.close(4005, 'from us');
      // Each side reports what the other sent.
      assert.deepEqual(await ws.closed, { code: 4006, reason: 'from ws' });
      assert.deepEqual(await peer.closed, { code: 4005, reason: 'from us' });
    } finally {
      await server.close();
    }
  });

  test('keepalive: ws answers our pings; a ws that does not is closed with 1011', T, async () => {
    const server = await WsServer.start();
    const ws = await connect(server.url, { pingInterval: 50, pingTimeout: 1_000 });
    try {
      const peer = await server.peer();
      await sleep(400);
      assert.ok(peer.pings.length >= 3, `only ${peer.pings.length} keepalive pings`);
      peer.socket.send('alive');
      assert.equal(await ws.receive(), 'alive');
    } finally {
      await ws.close().catch(() => {});
      await server.close();
    }

    const silent = await WsServer.start({ autoPong: false });
    const ws2 = await connect(silent.url, { pingInterval: 50, pingTimeout: 150 });
    try {
      const peer = await silent.peer();
      const error = await rejectsWith(ws2.receive(), 1011);
      assert.match(error.message, /keepalive|ping|pong/i);
      assert.equal((await peer.closed).code, 1011);
    } finally {
      await ws2.close().catch(() => {});
      await silent.close();
    }
  });

  test('request headers reach ws; a ws refusal rejects with status and headers', T, async () => {
    const server = await WsServer.start({
      verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, status?: number, message?: string, headers?: Record<string, string>) => void) => {
        if (info.req.headers['x-token'] === 'let-me-in') done(true);
        else done(false, 401, 'Unauthorized', { 'X-Why': 'no token' });
      },
    });
    try {
      const ws = await connect(`${server.url}/room/7?x=1`, { headers: { 'X-Token': 'let-me-in' } });
      const peer = await server.peer();
      assert.equal(peer.request?.url, '/room/7?x=1');
      assert.equal(peer.request?.headers['x-token'], 'let-me-in');
      assert.equal(ws.response?.status, 101);
      await ws.close();

      const refused = connect(server.url, { headers: { 'X-Token': 'wrong' } });
      const error = await rejectsWith(refused, 1006);
      assert.equal(error.status, 401);
      assert.match(error.message, /401/);
      assert.equal(error.headers?.['x-why'], 'no token');
    } finally {
      await server.close();
    }
  });

  test('subprotocol negotiation with a ws server', T, async () => {
    const offered: string[][] = [];
    const server = await WsServer.start({
      handleProtocols: (protocols) => {
        offered.push([...protocols]);
        if (protocols.has('chat.v2')) return 'chat.v2';
        return false;
      },
    });
    try {
      const ws = await connect(server.url, { protocols: ['chat.v1', 'chat.v2'] });
      assert.equal(ws.protocol, 'chat.v2');
      const peer = await server.peer();
      assert.equal(peer.socket.protocol, 'chat.v2');
      assert.deepEqual(offered[0], ['chat.v1', 'chat.v2']);
      assert.equal(ws.request.headers['sec-websocket-protocol'], 'chat.v1, chat.v2');
      assert.equal(ws.response?.headers['sec-websocket-protocol'], 'chat.v2');
      await ws.close();

      // A single protocol as a string; the server picks none: the connection still opens, with ''.
      const ws2 = await connect(server.url, { protocols: 'other' });
      assert.equal(ws2.protocol, '');
      assert.deepEqual(offered[1], ['other']);
      await ws2.close();

      // No protocols offered at all: ''.
      const ws3 = await connect(server.url);
      assert.equal(ws3.protocol, '');
      await ws3.close();
    } finally {
      await server.close();
    }

    // A server that answers with a subprotocol we did not offer fails the handshake.
    const rogue = await WsServer.start({ handleProtocols: () => 'rogue' });
    try {
      const error = await rejectsWith(connect(rogue.url, { protocols: ['good'] }), 1006);
      assert.match(error.message, /rogue/);
    } finally {
      await rogue.close();
    }
  });
});

// ── (b) ws client ↔ our server ───────────────────────────────────────────────────────────

describe('ws client ↔ our server', () => {
  test('text and binary, both ways, with exact types and bytes', T, async () => {
    const server = await OurServer.start();
    const peer = await wsConnect(server.url);
    try {
      const ws = await server.socket();
      peer.socket.send('héllo ✓ 🎉');
      assertText(await ws.receive(), 'héllo ✓ 🎉');
      peer.socket.send(Buffer.from([0, 128, 255, 1]));
      assertPlainBytes(await ws.receive(), [0, 128, 255, 1]);
      peer.socket.send(new Uint8Array([5, 6]).buffer);
      assertPlainBytes(await ws.receive(), [5, 6]);

      await ws.send('from us ✓');
      let got = await peer.next();
      assert.deepEqual([got.isBinary, got.data.toString()], [false, 'from us ✓']);
      await ws.send(new Uint8Array([3, 2, 1, 0]));
      got = await peer.next();
      assert.deepEqual([got.isBinary, [...got.data]], [true, [3, 2, 1, 0]]);
      const view = new Uint8Array([7, 8, 9, 10]).subarray(1, 3);
      await ws.send(view);
      got = await peer.next();
      assert.deepEqual([got.isBinary, [...got.data]], [true, [8, 9]]);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('ws client offering permessage-deflate gets no extension and works uncompressed', T, async () => {
    const server = await OurServer.start({}, echo);
    const peer = await wsConnect(server.url, undefined, { perMessageDeflate: true });
    try {
      assert.equal(peer.socket.extensions, '');
      peer.socket.send('x'.repeat(10_000));
      const got = await peer.next();
      assert.equal(got.data.toString(), 'x'.repeat(10_000));
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('empty text and empty binary messages', T, async () => {
    const server = await OurServer.start({}, echo);
    const peer = await wsConnect(server.url);
    try {
      peer.socket.send('');
      peer.socket.send(Buffer.alloc(0));
      let got = await peer.next();
      assert.deepEqual([got.isBinary, got.data.length], [false, 0]);
      got = await peer.next();
      assert.deepEqual([got.isBinary, got.data.length], [true, 0]);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('fragmented messages both ways', T, async () => {
    const server = await OurServer.start();
    const peer = await wsConnect(server.url);
    try {
      const ws = await server.socket();
      peer.socket.send('he', { fin: false });
      peer.socket.ping('between');
      peer.socket.send('l', { fin: false });
      peer.socket.send('lo', { fin: true });
      peer.socket.send(Buffer.from([1]), { binary: true, fin: false });
      peer.socket.send(Buffer.from([2, 3]), { binary: true, fin: true });
      assertText(await ws.receive(), 'hello');
      assertPlainBytes(await ws.receive(), [1, 2, 3]);

      await ws.send(['x', 'y', 'z']);
      async function* bytes(): AsyncGenerator<Uint8Array> {
        yield new Uint8Array([1, 2]);
        await sleep(5);
        yield new Uint8Array([3]);
      }
      await ws.send(bytes());
      await ws.send([]); // an empty iterable is one empty message
      let got = await peer.next();
      assert.deepEqual([got.isBinary, got.data.toString()], [false, 'xyz']);
      got = await peer.next();
      assert.deepEqual([got.isBinary, [...got.data]], [true, [1, 2, 3]]);
      got = await peer.next();
      assert.equal(got.data.length, 0);
      assert.equal(peer.queued, 0);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('ping/pong both ways', T, async () => {
    const server = await OurServer.start();
    const peer = await wsConnect(server.url);
    try {
      const ws = await server.socket();
      const pong = once(peer.socket, 'pong');
      peer.socket.ping(Buffer.from('are you there'));
      const [payload] = (await pong) as [Buffer];
      assert.equal(payload.toString(), 'are you there');

      const rtt = await ws.ping();
      assert.equal(typeof rtt, 'number');
      assert.ok(Number.isFinite(rtt) && rtt >= 0, `rtt ${rtt}`);
      const rtt2 = await ws.ping(new Uint8Array([42]));
      assert.ok(Number.isFinite(rtt2) && rtt2 >= 0);
      // ws saw both pings: the default payload is 4 bytes, then ours.
      assert.equal(peer.pings.length, 2);
      assert.equal(peer.pings[0].length, 4);
      assert.deepEqual([...peer.pings[1]], [42]);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('ws close(4001, "bye") arrives at our server; ws gets the echo', T, async () => {
    const server = await OurServer.start();
    const peer = await wsConnect(server.url);
    try {
      const ws = await server.socket();
      peer.socket.close(4001, 'bye');
      await rejectsWith(ws.receive(), 4001, 'bye');
      assert.deepEqual(await ws.closed, { code: 4001, reason: 'bye' });
      assert.equal(ws.closeCode, 4001);
      assert.equal(ws.closeReason, 'bye');
      assert.deepEqual(await peer.closed, { code: 4001, reason: 'bye' });
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('our server close(4003, reason) reaches ws', T, async () => {
    const server = await OurServer.start();
    const peer = await wsConnect(server.url);
    try {
      const ws = await server.socket();
      await ws.close(4003, 'über');
      assert.deepEqual(await peer.closed, { code: 4003, reason: 'über' });
      assert.equal(ws.closeCode, 4003); // ws echoes our code
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('ws close() with no code: 1005 at our server', T, async () => {
    const server = await OurServer.start();
    const peer = await wsConnect(server.url);
    try {
      const ws = await server.socket();
      peer.socket.close();
      const error = await rejectsWith(ws.receive(), 1005);
      assert.ok(isOk(error));
      assert.deepEqual(await ws.closed, { code: 1005, reason: '' });
      assert.equal((await peer.closed).code, 1005);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('handler returning closes 1000; handler throwing closes 1011; Server.close() sends 1001', T, async () => {
    const errors: unknown[] = [];
    const server = await OurServer.start({ onError: (error) => errors.push(error) }, async (ws) => {
      const message = await ws.receive();
      if (message === 'throw') throw new Error('handler failed');
      if (message === 'hold') await ws.closed;
    });
    const peers: Peer[] = [];
    try {
      const a = await wsConnect(server.url);
      peers.push(a);
      a.socket.send('return');
      assert.equal((await a.closed).code, 1000);

      const b = await wsConnect(server.url);
      peers.push(b);
      b.socket.send('throw');
      assert.equal((await b.closed).code, 1011);
      // onError runs once the server side of the connection is gone, which may be a moment later.
      for (let i = 0; i < 200 && errors.length === 0; i++) await sleep(10);
      assert.equal(errors.length, 1);
      assert.equal((errors[0] as Error).message, 'handler failed');

      const c = await wsConnect(server.url);
      peers.push(c);
      c.socket.send('hold');
      await sleep(20);
      await server.close();
      assert.equal((await c.closed).code, 1001);
    } finally {
      for (const peer of peers) await peer.kill();
      await server.close();
    }
  });

  test('invalid UTF-8 in a text message from ws: our server closes 1007', T, async () => {
    const seen = deferred<unknown>();
    const server = await OurServer.start({}, async (ws) => {
      await ws.receive().then(seen.resolve, seen.resolve);
    });
    const peer = await wsConnect(server.url);
    try {
      // A text message whose UTF-8 is cut mid-character across two fragments, then ends there.
      peer.socket.send(Buffer.from([0xe2, 0x82]), { binary: false, fin: false });
      peer.socket.send(Buffer.from([0x41]), { binary: false, fin: true });
      assert.equal((await peer.closed).code, 1007);
      const error = await seen.promise;
      assert.ok(error instanceof WebSocketError, String(error));
      assert.equal(error.code, 1007);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('fragment limit: 131,072 fragments are accepted, 131,073 close with 1009', T_BIG, async () => {
    const server = await OurServer.start({}, async (ws) => {
      for await (const message of ws) await ws.send(`${message.length}`);
    });
    const peer = await wsConnect(server.url);
    try {
      const one = Buffer.from([1]);
      for (let i = 0; i < 131_071; i++) peer.socket.send(one, { binary: true, fin: false });
      peer.socket.send(one, { binary: true, fin: true });
      assert.equal((await peer.next()).data.toString(), '131072');
      for (let i = 0; i < 131_072; i++) peer.socket.send(one, { binary: true, fin: false });
      peer.socket.send(one, { binary: true, fin: true });
      assert.equal((await peer.closed).code, 1009);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('16 MiB binary message both ways, exact bytes', T_BIG, async () => {
    const server = await OurServer.start({}, async (ws) => {
      const message = await ws.receive();
      assert.ok(message instanceof Uint8Array);
      await ws.send(`${message.length} ${sha256(message)}`);
      await ws.send(message);
      await ws.closed;
    });
    const peer = await wsConnect(server.url);
    try {
      const big = randomBytes(16 * MiB);
      peer.socket.send(big);
      const summary = await peer.next();
      assert.equal(summary.data.toString(), `${16 * MiB} ${sha256(big)}`);
      const back = await peer.next();
      assert.equal(back.isBinary, true);
      assert.equal(back.data.length, 16 * MiB);
      assert.equal(sha256(back.data), sha256(big));
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('ws sending 16 MiB + 1 to our server: ws sees 1009', T_BIG, async () => {
    const seen = deferred<unknown>();
    const server = await OurServer.start({}, async (ws) => {
      try {
        await ws.receive();
        seen.resolve('a message arrived');
      } catch (error) {
        seen.resolve(error);
      }
    });
    const peer = await wsConnect(server.url);
    try {
      peer.socket.send(Buffer.alloc(16 * MiB + 1, 0x62));
      const closed = await peer.closed;
      assert.equal(closed.code, 1009);
      const error = await seen.promise;
      assert.ok(error instanceof WebSocketError, String(error));
      assert.equal(error.code, 1009);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('10,000 messages keep their order, both ways', T, async () => {
    const N = 10_000;
    const server = await OurServer.start({}, async (ws) => {
      const sends: Array<Promise<void>> = [];
      for (let i = 0; i < N; i++) {
        const message = await ws.receive();
        if (message !== `c${i}`) {
          await ws.send(`out of order at ${i}: ${String(message)}`);
          return;
        }
      }
      for (let i = 0; i < N; i++) sends.push(ws.send(`s${i}`));
      await Promise.all(sends);
      await ws.closed;
    });
    const peer = await wsConnect(server.url);
    try {
      for (let i = 0; i < N; i++) peer.socket.send(`c${i}`);
      for (let i = 0; i < N; i++) {
        const got = await peer.next();
        assert.equal(got.data.toString(), `s${i}`);
      }
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('a handler that returns with unread messages still closes promptly with 1000', T, async () => {
    // Same bug as on the client: the queue is full, reading is paused, ws's answering close
    // frame is never read, and the connection lingers for the whole close timeout.
    const server = await OurServer.start({ maxQueuedMessages: 16 }, async (ws) => {
      await ws.receive();
      await sleep(200); // meanwhile the queue fills and reading stops
    });
    const peer = await wsConnect(server.url);
    try {
      for (let i = 0; i < 1000; i++) peer.socket.send(`c${i}`);
      const started = performance.now();
      const closed = await peer.closed;
      const elapsed = performance.now() - started;
      assert.equal(closed.code, 1000);
      assert.ok(elapsed < 2_000, `the connection took ${Math.round(elapsed)} ms to close (the close timeout is 5000 ms)`);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('Server.close() with a connection whose queue is full finishes promptly with 1001', T, async () => {
    const server = await OurServer.start({ maxQueuedMessages: 16 });
    const peer = await wsConnect(server.url);
    try {
      await server.socket(); // held open, never read
      for (let i = 0; i < 1000; i++) peer.socket.send(`c${i}`);
      while (peer.socket.bufferedAmount > 0) await sleep(5);
      await sleep(100);
      const started = performance.now();
      await server.close();
      const elapsed = performance.now() - started;
      assert.equal((await peer.closed).code, 1001);
      assert.ok(elapsed < 2_000, `Server.close() took ${Math.round(elapsed)} ms (the close timeout is 5000 ms)`);
    } finally {
      await peer.kill();
      await server.close();
    }
  });

  test('keepalive from our server: ws answers; a ws client that does not is closed with 1011', T, async () => {
    const server = await OurServer.start({ pingInterval: 50, pingTimeout: 150 });
    try {
      const peer = await wsConnect(server.url);
      const ws = await server.socket();
      await sleep(400);
      assert.ok(peer.pings.length >= 3, `only ${peer.pings.length} keepalive pings`);
      peer.socket.send('alive');
      assert.equal(await ws.receive(), 'alive');
      await peer.kill();

      const silent = await wsConnect(server.url, undefined, { autoPong: false });
      const ws2 = await server.socket();
      await rejectsWith(ws2.receive(), 1011);
      assert.equal((await silent.closed).code, 1011);
    } finally {
      await server.close();
    }
  });

  test('the request target and headers of a ws client reach our server; verify refusals reach ws', T, async () => {
    const server = await OurServer.start({
      verify: (request) => request.headers['x-token'] === 'ok' || { status: 401, headers: { 'X-Why': 'no token' }, body: 'go away' },
    });
    try {
      const peer = await wsConnect(`${server.url}/chat/1?room=a%20b`, undefined, { headers: { 'X-Token': 'ok' } });
      const ws = await server.socket();
      assert.equal(ws.url, '/chat/1?room=a%20b');
      assert.equal(ws.request.url, '/chat/1?room=a%20b');
      assert.equal(ws.request.method, 'GET');
      assert.equal(ws.request.headers['x-token'], 'ok');
      assert.equal(ws.remoteAddress?.replace(/^::ffff:/, ''), '127.0.0.1');
      await peer.kill();

      const refused = new WS(server.url, { headers: { 'X-Token': 'bad' } });
      refused.on('error', () => {});
      const [, response] = (await once(refused, 'unexpected-response')) as [unknown, IncomingMessage];
      assert.equal(response.statusCode, 401);
      assert.equal(response.headers['x-why'], 'no token');
      response.resume();
      refused.terminate();
    } finally {
      await server.close();
    }
  });

  test('subprotocols: our server picks its first accepted one among those ws offers', T, async () => {
    const server = await OurServer.start({ protocols: ['b', 'c'] });
    try {
      const peer = await wsConnect(server.url, ['a', 'c', 'b']);
      const ws = await server.socket();
      assert.equal(peer.socket.protocol, 'b');
      assert.equal(ws.protocol, 'b');
      assert.equal(ws.request.headers['sec-websocket-protocol'], 'a,c,b'); // as ws sent it
      await peer.kill();

      const peer2 = await wsConnect(server.url, ['c', 'z']);
      const ws2 = await server.socket();
      assert.equal(peer2.socket.protocol, 'c');
      assert.equal(ws2.protocol, 'c');
      await peer2.kill();

      // No protocol offered: none chosen.
      const peer3 = await wsConnect(server.url);
      const ws3 = await server.socket();
      assert.equal(peer3.socket.protocol, '');
      assert.equal(ws3.protocol, '');
      await peer3.kill();
    } finally {
      await server.close();
    }
  });

  test('selectProtocol sees what ws offered, in order', T, async () => {
    const offered: string[][] = [];
    const server = await OurServer.start({
      selectProtocol: (list) => {
        offered.push(list);
        return list[list.length - 1];
      },
    }, echo);
    try {
      const peer = await wsConnect(server.url, ['x', 'y', 'z']);
      assert.deepEqual(offered, [['x', 'y', 'z']]);
      assert.equal(peer.socket.protocol, 'z');
      peer.socket.send('hi');
      assert.equal((await peer.next()).data.toString(), 'hi');
      await peer.kill();
    } finally {
      await server.close();
    }
  });
});
