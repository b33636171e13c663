// Hardening: hostile handshakes and frames that the other suites do not cover, slow and
// vanishing peers, nothing lost under load, and 10,000 concurrent connections (issue 7).
// Loopback only; every test is bounded and cleans up after itself. Memory figures are
// printed (heap + external + arrayBuffers, after a forced gc).
//
// The 10k-connection test runs this same file as child processes (one server, two client
// processes of 5,000 connections each), selected by the HARDENING_ROLE environment variable.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import readline from 'node:readline';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createHash, randomFillSync } from 'node:crypto';
import { listen, connect, upgrade, WebSocketError, DEFAULTS } from '../websockets.ts';
import type { ServerOptions, WebSocket, Data, CloseInfo } from '../websockets.ts';
import { concat, utf8, hex, OP, mib } from './fuzz-kit.ts';
import { sleep, within, rawHttp, withTestServer, withRawServer, wireFrame, parseClose, describeFrames } from './support.ts';
import type { Harness, RawPeer, WireFrame } from './support.ts';

const ROLE = 'HARDENING_ROLE';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** heap + external (arrayBuffers are part of external) and arrayBuffers alone, after a full gc. */
function measure(): { total: number; heap: number; external: number; arrayBuffers: number; rss: number } {
  gc();
  gc();
  const usage = process.memoryUsage();
  return { total: usage.heapUsed + usage.external, heap: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers, rss: usage.rss };
}


/** Waits until `condition` holds, polling, or fails after `timeout` ms. */
async function until(condition: () => boolean, what: string, timeout: number): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function rejection(promise: Promise<unknown>, what = 'the promise'): Promise<WebSocketError> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    assert.ok(error instanceof WebSocketError, `expected ${what} to reject with a WebSocketError, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${what} to reject; it resolved with ${String(value)}`);
}

/** Runs `body` against a fresh server (handler: `handler`, default: wait for the close) and always closes it. */
const withServer = (options: ServerOptions, body: (harness: Harness) => Promise<void>, handler: (ws: WebSocket) => unknown = (ws) => ws.closed): Promise<void> =>
  withTestServer({ closeTimeout: 1_000, ...options }, handler, body);

/**
 * upgrade() on our own node:http server, to hold each connection's TCP socket. Handlers wait
 * for the connection to close; `close` destroys the sockets and stops the server.
 */
async function upgradeServer(): Promise<{ url: string; rawSockets: net.Socket[]; serverSides: WebSocket[]; close(): Promise<void> }> {
  const rawSockets: net.Socket[] = [];
  const serverSides: WebSocket[] = [];
  const httpServer = http.createServer((_, response) => response.end());
  httpServer.on('upgrade', (req, socket, head) => {
    rawSockets.push(socket as net.Socket);
    upgrade(req, socket, head, (ws) => {
      serverSides.push(ws);
      return ws.closed;
    }, { pingInterval: 0, closeTimeout: 300 });
  });
  httpServer.listen(0, '127.0.0.1');
  await once(httpServer, 'listening');
  const close = async () => {
    for (const socket of rawSockets) socket.destroy();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
  };
  return { url: `ws://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}`, rawSockets, serverSides, close };
}

const HANDSHAKE = ['Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13'];

function request(headers: string[]): string {
  return `GET / HTTP/1.1\r\n${headers.map((line) => `${line}\r\n`).join('')}\r\n`;
}

/** A masked client frame, written by hand. */
function clientFrame(opcode: number, payload: Uint8Array = new Uint8Array(0), fin = true): Uint8Array {
  return wireFrame(opcode, payload, { fin, mask: Uint8Array.of(1, 2, 3, 4) });
}

/** A masked client frame header whose 64-bit length field says `length`, the header alone. */
function header64(opcode: number, length: bigint): Uint8Array {
  return wireFrame(opcode, undefined, { length, lengthField: '64', mask: Uint8Array.of(9, 8, 7, 6) });
}

function closeCodeOf(frame: WireFrame | undefined): number | null {
  return frame ? parseClose(frame).code : null;
}

/** Waits for the raw connection's TCP close and returns the close frame the server sent, if any. */
async function closeOf(raw: RawPeer, timeout = 2_000): Promise<WireFrame | undefined> {
  await raw.tcpClosed(timeout);
  return raw.frames.find((frame) => frame.opcode === OP.CLOSE);
}

const listFrames = (frames: WireFrame[]): string => describeFrames(frames, 20);

const KiB = 1024;
const MiB = 1024 * KiB;


function defineTests(): void {
  hostileTests();
  slowAndVanishingPeerTests();
  nothingLostTests();
  manyConnectionsTests();
}

function hostileTests(): void {
  describe('hostile handshakes', () => {
    const T = { timeout: 10_000 };

    test('a header block over 16 KiB (one 17 KiB header) → 431, socket closed, no connection', T, async () => {
      await withServer({}, async ({ server, accepted }) => {
        const answer = await rawHttp(server.port, request([...HANDSHAKE, `X-Big: ${'a'.repeat(17 * KiB)}`]));
        assert.equal(answer.statusLine, 'HTTP/1.1 431 Request Header Fields Too Large', JSON.stringify(answer.text.slice(0, 200)));
        assert.ok(answer.closed, 'the server must close the connection');
        assert.equal(accepted.items.length, 0);
      });
    });

    test('1,000 headers of 20 bytes (20 KB in all, over the 16 KiB limit) → 431, socket closed', T, async () => {
      await withServer({}, async ({ server, accepted }) => {
        const many = Array.from({ length: 1_000 }, (_, i) => `X-H${String(i).padStart(4, '0')}: 0123456789`);
        const answer = await rawHttp(server.port, request([...HANDSHAKE, ...many]));
        assert.equal(answer.statusLine, 'HTTP/1.1 431 Request Header Fields Too Large', JSON.stringify(answer.text.slice(0, 200)));
        assert.ok(answer.closed);
        assert.equal(accepted.items.length, 0);
      });
    });

    // node:http keeps only the first 2,000 headers (maxHeadersCount) and silently drops the
    // rest, so the verdict depends on where the handshake headers sit: a 101 when they come
    // first, a 426 when they come after the 2,000th. A request with more headers than the
    // server looks at should be refused as such (issue 7: "too many headers" → 431 or 400).
    test('too many headers (2,100 tiny ones, 13 KB in all) → refused with 431, wherever the handshake headers are', T, async () => {
      await withServer({}, async ({ server, accepted }) => {
        const many = Array.from({ length: 2_100 }, (_, i) => `h${i}: v`);
        const first = await rawHttp(server.port, request([...HANDSHAKE, ...many]), 'close', 1_000);
        const last = await rawHttp(server.port, request([...many, ...HANDSHAKE]), 'close', 1_000);
        assert.deepEqual(
          { handshakeFirst: first.statusLine, handshakeLast: last.statusLine, accepted: accepted.items.length },
          { handshakeFirst: 'HTTP/1.1 431 Request Header Fields Too Large', handshakeLast: 'HTTP/1.1 431 Request Header Fields Too Large', accepted: 0 },
        );
      });
    });

    test('pipelined garbage behind a valid upgrade request (same write) → 101, then close 1002 and TCP closed; never parsed as HTTP', T, async () => {
      await withServer({}, async ({ server, accepted }) => {
        const garbage = 'GET /second HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
        const answer = await rawHttp(server.port, request(HANDSHAKE) + garbage);
        assert.equal(answer.statusLine, 'HTTP/1.1 101 Switching Protocols');
        assert.ok(answer.closed, 'the server must close the connection');
        assert.equal(answer.text.split('HTTP/1.1 ').length, 2, `the garbage was answered as a second request: ${JSON.stringify(answer.text)}`);
        // What follows the 101 is one close frame: 88, length, 03 ea (1002) and a reason.
        const frames = Buffer.from(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4), 'latin1');
        assert.equal(frames[0], 0x88, `expected a close frame, got ${frames.toString('hex')}`);
        assert.equal(frames.readUInt16BE(2), 1002, `close payload ${frames.subarray(2).toString('latin1')}`);
        assert.equal(frames.length, 2 + frames[1], 'nothing after the close frame');
        const ws = await accepted.next();
        assert.equal((await rejection(ws.receive())).code, 1002);
      }, async (ws) => {
        await ws.closed;
      });
    });
  });

  describe('hostile frames', () => {
    test(`a 64-bit length of 16 MiB + 1 (the default limit + 1), header only, on 8 connections → 1009 at once, nothing allocated`, { timeout: 15_000 }, async () => {
      await withServer({}, async ({ peer }) => {
        assert.equal(DEFAULTS.maxMessageSize, 16 * MiB);
        const peers = await Promise.all(Array.from({ length: 8 }, () => peer()));
        const before = measure();
        const started = performance.now();
        for (const peer of peers) peer.socket.write(header64(OP.BINARY, BigInt(16 * MiB + 1)));
        const closes = await Promise.all(peers.map((peer) => closeOf(peer)));
        const elapsed = performance.now() - started;
        const after = measure();
        console.log(`8 × (16 MiB + 1) headers: 1009 in ${Math.round(elapsed)} ms; arrayBuffers ${mib(before.arrayBuffers)} → ${mib(after.arrayBuffers)}, heap+external ${mib(before.total)} → ${mib(after.total)}`);
        assert.deepEqual(closes.map(closeCodeOf), Array(8).fill(1009));
        assert.ok(after.arrayBuffers - before.arrayBuffers < 4 * MiB, `arrayBuffers grew by ${mib(after.arrayBuffers - before.arrayBuffers)}`);
        assert.ok(elapsed < 2_000, `took ${Math.round(elapsed)} ms`);
      });
    });

    test('a 64-bit length of exactly 16 MiB (allowed) with 1 KiB of it sent, on 8 connections: no close, no 16 MiB set aside up front', { timeout: 15_000 }, async () => {
      await withServer({}, async ({ peer }) => {
        const peers = await Promise.all(Array.from({ length: 8 }, () => peer()));
        const before = measure();
        for (const peer of peers) peer.socket.write(concat([header64(OP.BINARY, BigInt(16 * MiB)), new Uint8Array(KiB)]));
        await sleep(300);
        const after = measure();
        console.log(`8 × 16 MiB frames announced, 1 KiB sent: arrayBuffers ${mib(before.arrayBuffers)} → ${mib(after.arrayBuffers)}`);
        assert.deepEqual(peers.map((peer) => [peer.closed, peer.frames.length]), Array(8).fill([false, 0]), 'a frame within the limit is not an error');
        assert.ok(after.arrayBuffers - before.arrayBuffers < 4 * MiB, `arrayBuffers grew by ${mib(after.arrayBuffers - before.arrayBuffers)}: the payload is allocated before it arrives`);
        for (const peer of peers) peer.socket.destroy();
      });
    });

    test('maxFragments 1000: 1,000 empty fragments are one empty message; a flood of 100,000 empty continuations → 1009 at the 1,001st', { timeout: 15_000 }, async () => {
      await withServer({ maxFragments: 1_000 }, async ({ peer }) => {
        const raw = await peer();
        const empty = (opcode: number, fin: boolean) => clientFrame(opcode, new Uint8Array(0), fin);
        const message = [empty(OP.TEXT, false), ...Array.from({ length: 998 }, () => empty(OP.CONT, false)), empty(OP.CONT, true)];
        raw.socket.write(concat(message));
        await until(() => raw.frames.length > 0 || raw.closed, 'the echo of the 1000-fragment message', 3_000);
        const [echo] = raw.frames;
        assert.deepEqual({ opcode: echo.opcode, length: echo.payload.length }, { opcode: OP.TEXT, length: 0 }, listFrames(raw.frames));
        const started = performance.now();
        raw.socket.write(concat([empty(OP.BINARY, false), ...Array.from({ length: 100_000 }, () => empty(OP.CONT, false))]));
        const close = await closeOf(raw, 5_000);
        const elapsed = performance.now() - started;
        assert.equal(closeCodeOf(close), 1009, listFrames(raw.frames));
        assert.match(Buffer.from(close?.payload.subarray(2) ?? []).toString(), /1000 fragments/);
        console.log(`100,000 empty continuations: 1009 after ${Math.round(elapsed)} ms`);
      }, async (ws) => {
        for await (const message of ws) await ws.send(message);
      });
    });

    test('a ping flood (200,000 × 125 bytes) from a peer that never reads: pongs coalesce, bufferedAmount and memory stay bounded, the last ping is answered', { timeout: 60_000 }, async () => {
      let endSeen = false;
      await withServer({}, async ({ peer, accepted }) => {
        const raw = await peer();
        const ws = await accepted.next();
        raw.socket.pause(); // never reads: the server's pongs pile up in the kernel, then in its buffer
        const highWaterMark = DEFAULTS.highWaterMark;
        let maxBuffered = 0;
        const sampler = setInterval(() => (maxBuffered = Math.max(maxBuffered, ws.bufferedAmount)), 1);
        const before = measure();
        const pings = 200_000;
        const batch = 1_000;
        const started = performance.now();
        try {
          for (let first = 0; first < pings; first += batch) {
            const frames: Uint8Array[] = [];
            for (let i = first; i < first + batch; i++) {
              const payload = new Uint8Array(125).fill(0x61);
              new DataView(payload.buffer).setUint32(0, i);
              frames.push(clientFrame(OP.PING, payload));
            }
            if (!raw.socket.write(concat(frames))) await once(raw.socket, 'drain');
            maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
          }
          raw.socket.write(clientFrame(OP.TEXT, utf8('end of the flood')));
          await until(() => endSeen, 'the server to read the whole flood', 30_000);
        } finally {
          clearInterval(sampler);
        }
        const elapsed = performance.now() - started;
        const during = measure();
        const bufferedAtEnd = ws.bufferedAmount;
        // Now read: the pongs that were written come in, and the last ping must have its answer.
        raw.socket.resume();
        const lastPayload = (frame: WireFrame) => frame.opcode === OP.PONG && new DataView(frame.payload.buffer, frame.payload.byteOffset).getUint32(0) === pings - 1;
        await until(() => raw.frames.some(lastPayload), `the pong of ping #${pings - 1}`, 20_000);
        const pongs = raw.frames.filter((frame) => frame.opcode === OP.PONG).length;
        console.log(`ping flood: ${pings} pings in ${Math.round(elapsed)} ms; server bufferedAmount max ${maxBuffered} (high-water mark ${highWaterMark}), ${bufferedAtEnd} at the end; ` +
          `${pongs} pongs came back; heap+external ${mib(before.total)} → ${mib(during.total)}, arrayBuffers ${mib(before.arrayBuffers)} → ${mib(during.arrayBuffers)}, rss ${mib(before.rss)} → ${mib(during.rss)}`);
        assert.ok(maxBuffered <= highWaterMark + KiB, `the server buffered up to ${maxBuffered} bytes of pongs`);
        assert.ok(pongs < pings, `all ${pings} pings were answered: the flood never made the server's buffer exceed its high-water mark, so this test proved nothing`);
        assert.ok(during.total - before.total < 32 * MiB, `memory grew by ${mib(during.total - before.total)}`);
        raw.socket.destroy();
      }, async (ws) => {
        assert.equal(await ws.receive(), 'end of the flood');
        endSeen = true;
        await ws.closed;
      });
    });

    test('after a close frame nothing is read: a 2^40-byte header and 1 MiB behind it change nothing', { timeout: 10_000 }, async () => {
      await withServer({}, async ({ peer, accepted }) => {
        const raw = await peer();
        const ws = await accepted.next();
        const before = measure();
        raw.socket.write(concat([clientFrame(OP.CLOSE, Uint8Array.of(0x03, 0xe8, 0x6f, 0x6b)), header64(OP.BINARY, 2n ** 40n), new Uint8Array(MiB).fill(0x55)]));
        const close = await closeOf(raw);
        const after = measure();
        assert.deepEqual(raw.frames.map((f) => [f.opcode, hex(f.payload)]), [[OP.CLOSE, '03e86f6b']], 'only the close echo comes back');
        assert.equal(closeCodeOf(close), 1000);
        assert.deepEqual({ ...(await ws.closed) }, { code: 1000, reason: 'ok' });
        assert.ok(after.arrayBuffers - before.arrayBuffers < 4 * MiB, `arrayBuffers grew by ${mib(after.arrayBuffers - before.arrayBuffers)}`);
      });
    });
  });
}

/** A 64 KiB message that carries its index in its first 4 bytes. */
function numbered(index: number, size = 64 * KiB): Uint8Array {
  const bytes = new Uint8Array(size);
  new DataView(bytes.buffer).setUint32(0, index);
  bytes.fill(index & 0xff, 4);
  return bytes;
}
const indexOf = (message: Data) => (typeof message === 'string' ? -1 : new DataView(message.buffer, message.byteOffset).getUint32(0));

function slowAndVanishingPeerTests(): void {
  describe('slow and vanishing peers', () => {
    for (const reader of ['client', 'server'] as const) {
      const writer = reader === 'client' ? 'server' : 'client';
      test(`the ${reader} stops reading while the ${writer} sends 64 KiB messages: send() stops resolving, memory stays bounded, nothing is lost`, { timeout: 60_000 }, async () => {
        const queueLimits = { maxQueuedMessages: 4, maxQueuedBytes: 256 * KiB };
        let sent = 0;
        let stop = false;
        let writerDone: Promise<void> = Promise.resolve();
        const pump = (ws: WebSocket) => {
          writerDone = (async () => {
            while (!stop) await ws.send(numbered(sent++));
            await ws.send('end');
          })();
        };
        const serverOptions = reader === 'server' ? queueLimits : {};
        await withServer(serverOptions, async ({ server, accepted }) => {
          const before = measure();
          const client = await connect(server.url, { pingInterval: 0, closeTimeout: 1_000, ...(reader === 'client' ? queueLimits : {}) });
          const serverSide = await accepted.next();
          const [readerWs, writerWs] = reader === 'client' ? [client, serverSide] : [serverSide, client];
          pump(writerWs);
          // Wait until send() has stopped resolving for 500 ms.
          let last = -1;
          let stableSince = performance.now();
          const started = performance.now();
          while (performance.now() - stableSince < 500) {
            assert.ok(performance.now() - started < 30_000, `send() kept resolving: ${sent} messages of 64 KiB`);
            if (sent !== last) {
              last = sent;
              stableSince = performance.now();
            }
            await sleep(50);
          }
          const stalledAt = sent;
          const during = measure();
          await sleep(300);
          const later = measure();
          console.log(`${reader} not reading: the ${writer}'s send() stalled after ${stalledAt} messages (${mib(stalledAt * 64 * KiB)} accepted, most of it in kernel buffers); ` +
            `${writer} bufferedAmount ${writerWs.bufferedAmount}; heap+external ${mib(before.total)} → ${mib(during.total)} → ${mib(later.total)} (300 ms later), rss ${mib(before.rss)} → ${mib(later.rss)}`);
          assert.equal(sent, stalledAt, 'send() resolved again although nobody read');
          // send() resolves at or below the high-water mark (64 KiB); one more frame may follow: 64 KiB and its header.
          assert.ok(writerWs.bufferedAmount <= 64 * KiB + 64 * KiB + 14, `bufferedAmount ${writerWs.bufferedAmount}`);
          assert.ok(later.total - before.total < 48 * MiB, `memory grew by ${mib(later.total - before.total)}`);
          // Now read everything: every message, in order, then 'end'.
          stop = true;
          let expected = 0;
          for (;;) {
            const message = await within(readerWs.receive(), 5_000);
            assert.ok(message !== null, `message ${expected} did not arrive`);
            if (message === 'end') break;
            assert.equal(indexOf(message), expected, 'messages arrive in order, none lost');
            expected++;
          }
          await writerDone;
          assert.equal(expected, sent, 'every message that was sent arrived');
          await client.close();
        });
      });
    }

    test('a client that vanishes without a FIN (socket paused, pings unanswered): the server’s keepalive closes it with 1011', { timeout: 10_000 }, async () => {
      const receiveErrors: WebSocketError[] = [];
      await withServer({ pingInterval: 100, pingTimeout: 100 }, async ({ peer, accepted }) => {
        const raw = await peer();
        raw.socket.pause();
        const ws = await accepted.next();
        const started = performance.now();
        const info = await within(ws.closed, 3_000);
        const elapsed = performance.now() - started;
        assert.ok(info, 'the server never gave up on the silent peer');
        assert.equal(info.code, 1006, 'the peer sent no close frame');
        assert.ok(elapsed < 1_000, `closed after ${Math.round(elapsed)} ms with pingInterval 100 and pingTimeout 100`);
        await until(() => receiveErrors.length > 0, 'the handler’s receive() to reject', 1_000);
        assert.equal(receiveErrors[0].code, 1011);
        // What the server wrote before giving up: a ping, then a close with 1011.
        raw.socket.resume();
        await raw.tcpClosed(2_000).catch(() => {});
        const opcodes = raw.frames.map((frame) => frame.opcode);
        assert.ok(opcodes.includes(OP.PING), `no ping: ${listFrames(raw.frames)}`);
        assert.equal(closeCodeOf(raw.frames.find((frame) => frame.opcode === OP.CLOSE)), 1011, listFrames(raw.frames));
      }, async (ws) => {
        receiveErrors.push(await rejection(ws.receive()));
      });
    });

    test('a server that vanishes after the handshake (socket paused): the client’s keepalive closes with 1011', { timeout: 10_000 }, async () => {
      // gone after the handshake: never reads again, never answers a ping
      await withRawServer((peer) => peer.socket.pause(), {}, async (silent) => {
        const ws = await connect(silent.url, { pingInterval: 100, pingTimeout: 100, closeTimeout: 300 });
        const started = performance.now();
        const error = await rejection(within(ws.receive(), 3_000), 'the client’s receive() (within 3 s)');
        const info = await within(ws.closed, 2_000);
        const elapsed = performance.now() - started;
        assert.equal(error.code, 1011);
        assert.ok(info, 'closed never resolved');
        assert.equal(info.code, 1006);
        assert.ok(elapsed < 1_500, `took ${Math.round(elapsed)} ms`);
      });
    });

    test('both sides call close() in the same tick (20 rounds): both resolve well before the close timeout, each sees the other’s code', { timeout: 30_000 }, async () => {
      await withServer({ closeTimeout: 3_000 }, async ({ server, accepted }) => {
        const seen: string[] = [];
        let slowest = 0;
        for (let round = 0; round < 20; round++) {
          const client = await connect(server.url, { pingInterval: 0, closeTimeout: 3_000 });
          const serverSide = await accepted.next();
          const started = performance.now();
          await Promise.all([client.close(4001, 'from the client'), serverSide.close(4002, 'from the server')]);
          slowest = Math.max(slowest, performance.now() - started);
          seen.push(`${client.closeCode} ${client.closeReason} / ${serverSide.closeCode} ${serverSide.closeReason}`);
          assert.deepEqual({ ...(await client.closed) }, { code: 4002, reason: 'from the server' });
          assert.deepEqual({ ...(await serverSide.closed) }, { code: 4001, reason: 'from the client' });
        }
        console.log(`simultaneous close: slowest round ${Math.round(slowest)} ms (close timeout 3000)`);
        assert.deepEqual(new Set(seen), new Set(['4002 from the server / 4001 from the client']));
        assert.ok(slowest < 1_500, `a round took ${Math.round(slowest)} ms: someone waited for the close timeout`);
      });
    });

    test('the socket destroyed in the middle of a fragmented message → 1006 on the other side, both directions', { timeout: 10_000 }, async () => {
      const { url, rawSockets, serverSides, close } = await upgradeServer();
      let openGate: () => void = () => {};
      try {
        // 1. The client is in the middle of sending a fragmented message when the server's socket dies.
        const client = await connect(url, { pingInterval: 0, closeTimeout: 300 });
        await until(() => serverSides.length === 1, 'the server side', 1_000);
        const gate = new Promise<void>((resolve) => (openGate = resolve));
        const fragments = (async function* () {
          yield 'the first fragment';
          await gate;
          yield 'never sent';
        })();
        const sending = client.send(fragments);
        const serverReceive = serverSides[0].receive();
        serverReceive.catch(() => {});
        await until(() => rawSockets[0].bytesRead > 0, 'the first fragment to reach the server', 1_000);
        await sleep(20);
        rawSockets[0].destroy();
        const clientClosed = await within(client.closed, 2_000);
        openGate();
        assert.ok(clientClosed, 'the client never noticed');
        assert.equal(clientClosed.code, 1006);
        assert.equal((await rejection(sending, 'the client’s fragmented send()')).code, 1006);
        assert.equal((await rejection(client.receive(), 'the client’s receive()')).code, 1006);
        assert.equal((await rejection(serverReceive, 'the server’s receive() (it had half a message)')).code, 1006);
        // 2. The server is in the middle of sending a fragmented message when its socket dies.
        const second = await connect(url, { pingInterval: 0, closeTimeout: 300 });
        await until(() => serverSides.length === 2, 'the second server side', 1_000);
        const gate2 = new Promise<void>((resolve) => (openGate = resolve));
        const serverSending = serverSides[1].send((async function* () {
          yield new Uint8Array(1_000);
          await gate2;
          yield new Uint8Array(1_000);
        })());
        serverSending.catch(() => {});
        const receiving = second.receive();
        await sleep(50);
        rawSockets[1].destroy();
        assert.equal((await rejection(receiving, 'the client’s receive() (it had half a message)')).code, 1006);
        const secondClosed = await within(second.closed, 2_000);
        assert.equal(secondClosed?.code, 1006);
        assert.equal((await within(serverSides[1].closed, 2_000))?.code, 1006);
        openGate();
        assert.equal((await rejection(serverSending, 'the server’s fragmented send()')).code, 1006);
      } finally {
        openGate();
        await close();
      }
    });

    // Between a socket's destruction (by the application, or by Node after a socket error such
    // as ECONNRESET) and its 'close' event, the link still counts as open: send() writes into
    // the destroyed socket, which drops the bytes, and resolves as if they had gone out.
    test('send() right after the socket was destroyed (before its close event) rejects, instead of resolving with the bytes dropped', { timeout: 10_000 }, async () => {
      const { url, rawSockets, serverSides, close } = await upgradeServer();
      try {
        const client = await connect(url, { pingInterval: 0, closeTimeout: 300 });
        await until(() => serverSides.length === 1, 'the server side', 1_000);
        rawSockets[0].destroy();
        const outcomes = await Promise.allSettled([serverSides[0].send('into a destroyed socket'), serverSides[0].send(new Uint8Array(100 * KiB))]);
        await within(client.closed, 2_000);
        assert.deepEqual(
          outcomes.map((outcome) => (outcome.status === 'fulfilled' ? 'resolved' : outcome.reason instanceof WebSocketError ? `rejected ${outcome.reason.code}` : `rejected ${String(outcome.reason)}`)),
          ['rejected 1006', 'rejected 1006'],
        );
      } finally {
        await close();
      }
    });
  });
}

/** Message `i` of the 10,000: mostly short texts, every 100th a 32 KiB binary (so send() meets backpressure). */
function message(i: number): Data {
  return i % 100 === 0 ? numbered(i, 32 * KiB) : `message ${i}`;
}

function checkSequence(received: Data[], count: number): void {
  assert.equal(received.length, count, `${received.length} of ${count} messages arrived`);
  for (let i = 0; i < count; i++) {
    const got = received[i];
    const ok = i % 100 === 0 ? typeof got !== 'string' && got.length === 32 * KiB && indexOf(got) === i : got === `message ${i}`;
    if (!ok) assert.fail(`message ${i} is wrong or out of order: ${typeof got === 'string' ? got : `${got.length} bytes #${indexOf(got)}`}`);
  }
}

function nothingLostTests(): void {
  describe('nothing lost', () => {
    const COUNT = 10_000;

    test('10,000 messages sent without awaiting, then close() at once: all arrive, in order, before the close completes (client → server)', { timeout: 30_000 }, async () => {
      const received: Data[] = [];
      let ended: { count: number; error: unknown } | null = null;
      await withServer({}, async ({ server, accepted }) => {
        const client = await connect(server.url, { pingInterval: 0 });
        const serverSide = await accepted.next();
        const sends = Array.from({ length: COUNT }, (_, i) => client.send(message(i)));
        const started = performance.now();
        await client.close(1000, 'all sent');
        const elapsed = performance.now() - started;
        const settled = await Promise.allSettled(sends);
        await until(() => ended !== null, 'the server handler to finish', 5_000);
        console.log(`client → server: close() resolved ${Math.round(elapsed)} ms after 10,000 unawaited sends; the server had ${ended?.count} messages when its iteration ended`);
        checkSequence(received, COUNT);
        assert.equal(ended?.error, null, `the server's iteration ended with ${String(ended?.error)}`);
        assert.deepEqual({ ...(await serverSide.closed) }, { code: 1000, reason: 'all sent' });
        const rejected = settled.filter((result) => result.status === 'rejected');
        assert.equal(rejected.length, 0, `${rejected.length} send() promises rejected although their messages arrived: ${String((rejected[0] as PromiseRejectedResult | undefined)?.reason)}`);
      }, async (ws) => {
        try {
          for await (const data of ws) received.push(data);
          ended = { count: received.length, error: null };
        } catch (error) {
          ended = { count: received.length, error };
        }
      });
    });

    test('10,000 messages sent without awaiting, then close() at once: all arrive, in order, before the close completes (server → client)', { timeout: 30_000 }, async () => {
      let serverResult: { elapsed: number; settled: PromiseSettledResult<void>[] } | null = null;
      await withServer({}, async ({ server }) => {
        const client = await connect(server.url, { pingInterval: 0 });
        const received: Data[] = [];
        let error: unknown = null;
        try {
          for await (const data of client) received.push(data);
        } catch (caught) {
          error = caught;
        }
        assert.equal(error, null, `the client's iteration ended with ${String(error)}`);
        checkSequence(received, COUNT);
        assert.deepEqual({ ...(await client.closed) }, { code: 1000, reason: 'all sent' });
        await until(() => serverResult !== null, 'the server’s close() to resolve', 5_000);
        const result = serverResult as { elapsed: number; settled: PromiseSettledResult<void>[] } | null;
        assert.ok(result);
        console.log(`server → client: close() resolved ${Math.round(result.elapsed)} ms after 10,000 unawaited sends`);
        const rejected = result.settled.filter((r) => r.status === 'rejected');
        assert.equal(rejected.length, 0, `${rejected.length} send() promises rejected although their messages arrived: ${String((rejected[0] as PromiseRejectedResult | undefined)?.reason)}`);
      }, async (ws) => {
        const sends = Array.from({ length: COUNT }, (_, i) => ws.send(message(i)));
        const started = performance.now();
        await ws.close(1000, 'all sent');
        const elapsed = performance.now() - started;
        serverResult = { elapsed, settled: await Promise.allSettled(sends) };
      });
    });

    test('256 MiB echoed (256 × 1 MiB random): SHA-256 equal at the sender, the server and the receiver', { timeout: 180_000 }, async () => {
      const chunks = 256;
      const serverHash = createHash('sha256');
      let serverBytes = 0;
      await withServer({}, async ({ server }) => {
        const client = await connect(server.url, { pingInterval: 0 });
        const sentHash = createHash('sha256');
        const receivedHash = createHash('sha256');
        let receivedBytes = 0;
        const started = performance.now();
        const receiving = (async () => {
          for (let i = 0; i < chunks; i++) {
            const echo = await within(client.receive(), 20_000);
            assert.ok(echo !== null && typeof echo !== 'string', `echo ${i} did not arrive as bytes`);
            receivedHash.update(echo);
            receivedBytes += echo.length;
          }
        })();
        for (let i = 0; i < chunks; i++) {
          const chunk = randomFillSync(new Uint8Array(MiB));
          sentHash.update(chunk);
          await client.send(chunk);
        }
        await receiving;
        const elapsed = (performance.now() - started) / 1000;
        await client.close();
        const [sent, echoed, got] = [sentHash.digest('hex'), serverHash.digest('hex'), receivedHash.digest('hex')];
        console.log(`256 MiB echo in ${elapsed.toFixed(1)} s (${((2 * 256) / elapsed).toFixed(0)} MiB/s both ways); sha256 ${sent.slice(0, 16)}…`);
        assert.equal(serverBytes, chunks * MiB);
        assert.equal(receivedBytes, chunks * MiB);
        assert.deepEqual({ server: echoed, receiver: got }, { server: sent, receiver: sent });
      }, async (ws) => {
        for await (const data of ws) {
          serverHash.update(data);
          serverBytes += data.length;
          await ws.send(data);
        }
      });
    });
  });
}

// ── 10,000 connections: child processes ─────────────────────────────────────────────────────

interface ChildMessage {
  event: string;
  [key: string]: unknown;
}

const writeLine = (message: ChildMessage) => process.stdout.write(`${JSON.stringify(message)}\n`);

async function runChildRole(role: string): Promise<void> {
  if (role === 'server') return serverRole();
  if (role === 'clients') return clientsRole();
  throw new Error(`unknown ${ROLE} ${role}`);
}

/** The server of the 10k test: echoes, reports its memory on 'mem', closes on 'close', then must exit by itself. */
async function serverRole(): Promise<void> {
  const childGc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  let open = 0;
  let echoed = 0;
  const codes: Record<string, number> = {};
  const errors: string[] = [];
  const closedAt: number[] = [];
  const server = await listen('127.0.0.1', 0, async (ws) => {
    open++;
    void ws.closed.then(({ code }) => {
      open--;
      codes[code] = (codes[code] ?? 0) + 1;
      closedAt.push(performance.now());
    });
    for await (const data of ws) {
      await ws.send(data);
      echoed++;
    }
    // Defaults, except the close timeout: 10,000 closing handshakes at once on a busy two-core
    // machine can take longer than the default 5 s, and a timeout would turn 1001 into 1006.
  }, { closeTimeout: 30_000, onError: (error) => errors.push(String(error)) });
  writeLine({ event: 'listening', port: server.port });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line === 'mem') {
      childGc();
      childGc();
      const usage = process.memoryUsage();
      writeLine({ event: 'mem', heap: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers, rss: usage.rss, open, echoed });
    } else if (line === 'close') {
      const started = performance.now();
      closedAt.length = 0;
      await server.close();
      const ms = performance.now() - started;
      const sorted = closedAt.map((at) => at - started).sort((a, b) => a - b);
      const percentile = (p: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0);
      writeLine({ event: 'closed', ms, codes, open, errors: errors.slice(0, 5), errorCount: errors.length, percentiles: `p10 ${percentile(10)} p50 ${percentile(50)} p90 ${percentile(90)} p99 ${percentile(99)} ms` });
      lines.close();
      process.stdin.destroy();
      return; // from here the process must exit on its own: no timer or socket may keep it alive
    }
  }
}

/** COUNT client connections to PORT: each echoes one message, stays open, and reports how it was closed. */
async function clientsRole(): Promise<void> {
  const count = Number(process.env.COUNT);
  const url = `ws://127.0.0.1:${process.env.PORT}`;
  const sockets: WebSocket[] = [];
  const failures: string[] = [];
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      try {
        const ws = await connect(url, { handshakeTimeout: 30_000 });
        await ws.send(`hello ${i}`);
        const reply = await ws.receive();
        if (reply !== `hello ${i}`) failures.push(`connection ${i} echoed ${JSON.stringify(reply)}`);
        sockets.push(ws);
      } catch (error) {
        failures.push(`connection ${i}: ${String(error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  writeLine({ event: 'ready', opened: sockets.length, failed: failures.length, failures: failures.slice(0, 5), ms: performance.now() - started });
  const infos: CloseInfo[] = await Promise.all(sockets.map((ws) => ws.closed));
  const codes: Record<string, number> = {};
  for (const info of infos) codes[info.code] = (codes[info.code] ?? 0) + 1;
  writeLine({ event: 'closed', codes });
}

/** A child process of this file in a role, talking JSON lines. */
class Child {
  readonly process: ReturnType<typeof spawn>;
  readonly exited: Promise<number | null>;
  exitedAt: number | null = null;
  stderr = '';
  #messages: ChildMessage[] = [];
  #wake: (() => void) | null = null;

  constructor(role: string, env: Record<string, string>, nodeFlags: string[] = []) {
    const childEnv: Record<string, string> = {};
    for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !name.startsWith('NODE_TEST')) childEnv[name] = value;
    this.process = spawn(process.execPath, [...nodeFlags, '--unhandled-rejections=strict', fileURLToPath(import.meta.url)], {
      env: { ...childEnv, ...env, [ROLE]: role },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.process.on('exit', (code) => {
      this.exitedAt = performance.now();
      resolve(code);
      this.#wake?.();
    }));
    readline.createInterface({ input: this.process.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.#messages.push(JSON.parse(line) as ChildMessage);
      } catch {
        this.stderr += `(stdout) ${line}\n`;
      }
      this.#wake?.();
    });
    this.process.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
  }

  async next(event: string, timeout: number): Promise<ChildMessage> {
    const deadline = performance.now() + timeout;
    for (;;) {
      const index = this.#messages.findIndex((message) => message.event === event);
      if (index >= 0) return this.#messages.splice(index, 1)[0];
      const left = deadline - performance.now();
      if (left <= 0 || this.exitedAt !== null) assert.fail(`no '${event}' from the child within ${timeout} ms (exited: ${this.exitedAt !== null}); stderr: ${this.stderr.slice(0, 2_000)}`);
      await within(new Promise<void>((resolve) => (this.#wake = resolve)), Math.min(left, 1_000));
    }
  }

  send(line: string): void {
    this.process.stdin?.write(`${line}\n`);
  }

  /** Kills this child (by its own handle) if it is still running. */
  async stop(): Promise<void> {
    if (this.exitedAt === null) {
      this.process.kill('SIGKILL');
      await this.exited;
    }
  }
}

function manyConnectionsTests(): void {
  describe('many connections', () => {
    const TOTAL = Number(process.env.HARDENING_CONNECTIONS ?? 10_000);
    const PROCESSES = 2;

    test(`${TOTAL.toLocaleString('en')} concurrent connections to one server (clients in ${PROCESSES} child processes): each echoes, all close with 1001 on server.close(), the server exits promptly`, { timeout: 180_000 }, async () => {
      const server = new Child('server', {}, ['--expose-gc']);
      const clients: Child[] = [];
      try {
        const { port } = await server.next('listening', 10_000);
        server.send('mem');
        const baseline = await server.next('mem', 10_000);
        const started = performance.now();
        const per = Math.ceil(TOTAL / PROCESSES);
        for (let i = 0; i < PROCESSES; i++) clients.push(new Child('clients', { PORT: String(port), COUNT: String(Math.min(per, TOTAL - i * per)) }));
        const ready = await Promise.all(clients.map((child) => child.next('ready', 120_000)));
        const connectSeconds = (performance.now() - started) / 1000;
        server.send('mem');
        const loaded = await server.next('mem', 30_000);
        const opened = ready.reduce((sum, message) => sum + Number(message.opened), 0);
        const failed = ready.reduce((sum, message) => sum + Number(message.failed), 0);
        const heapExternal = (m: ChildMessage) => Number(m.heap) + Number(m.external);
        const perConnection = (heapExternal(loaded) - heapExternal(baseline)) / Math.max(1, Number(loaded.open));
        const rssPerConnection = (Number(loaded.rss) - Number(baseline.rss)) / Math.max(1, Number(loaded.open));
        // Close: server.close() sends 1001 to every connection and resolves when they are gone.
        const closeStarted = performance.now();
        server.send('close');
        const closed = await server.next('closed', 60_000);
        const exitCode = await within(server.exited, 5_000);
        const exitDelay = server.exitedAt === null ? null : server.exitedAt - closeStarted - Number(closed.ms);
        const clientCodes = await Promise.all(clients.map((child) => child.next('closed', 30_000)));
        const clientExits = await Promise.all(clients.map((child) => within(child.exited, 10_000)));
        const codes: Record<string, number> = {};
        for (const message of clientCodes) for (const [code, n] of Object.entries(message.codes as Record<string, number>)) codes[code] = (codes[code] ?? 0) + n;
        console.log(`${TOTAL} connections: ${opened} opened and echoed, ${failed} failed, in ${connectSeconds.toFixed(1)} s; ` +
          `server heap+external ${mib(heapExternal(baseline))} → ${mib(heapExternal(loaded))} = ${(perConnection / KiB).toFixed(1)} KiB per connection (after gc), ` +
          `rss ${mib(Number(baseline.rss))} → ${mib(Number(loaded.rss))} = ${(rssPerConnection / KiB).toFixed(1)} KiB per connection; ` +
          `server.close() took ${Math.round(Number(closed.ms))} ms (connections gone at ${String(closed.percentiles)}); the server exited ${exitDelay === null ? 'NOT within 5 s' : `${Math.round(exitDelay)} ms`} after it; ` +
          `codes seen by the clients ${JSON.stringify(codes)}, by the server ${JSON.stringify(closed.codes)}`);
        for (const message of ready) assert.deepEqual(message.failures, [], 'every connection opens and echoes');
        assert.equal(opened, TOTAL);
        assert.equal(Number(loaded.open), TOTAL, 'the server holds every connection at once');
        assert.equal(Number(loaded.echoed), TOTAL);
        assert.deepEqual(codes, { 1001: TOTAL }, 'every client sees 1001 (going away)');
        assert.deepEqual(closed.codes, { 1001: TOTAL }, 'the server sees every client echo 1001');
        assert.equal(closed.errorCount, 0, `onError: ${JSON.stringify(closed.errors)}`);
        assert.equal(exitCode, 0, `the server process did not exit by itself within 5 s of server.close() resolving (stderr: ${server.stderr.slice(0, 500)})`);
        assert.ok(exitDelay !== null && exitDelay < 2_000, `the server process took ${exitDelay === null ? '?' : Math.round(exitDelay)} ms to exit after server.close()`);
        assert.deepEqual(clientExits, clients.map(() => 0), 'the client processes exit by themselves');
        assert.ok(perConnection < 64 * KiB, `${(perConnection / KiB).toFixed(1)} KiB per connection`);
      } finally {
        await server.stop();
        for (const child of clients) await child.stop();
      }
    });
  });
}

// Last, so that every declaration above is initialized: a child process plays its role, the test process defines the tests.
if (process.env[ROLE]) {
  await runChildRole(process.env[ROLE] ?? '');
} else {
  defineTests();
}
