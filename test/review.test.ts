// Regression tests for issue 12: the ten defects an outside review found. Each test
// reproduces one finding (it failed on the library the review read) and states what must hold
// once it is fixed. Loopback only; every wait is bounded in count and time; memory is measured
// after a forced gc, with bounds far from both the defect and a sound implementation.
//
// Run with REVIEW_ROLE set, this same file is a child process instead (finding 7: the facade
// over Node's own WHATWG WebSocket, which needs --experimental-websocket on Node 20).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import v8 from 'node:v8';
import vm from 'node:vm';
import zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { fileURLToPath } from 'node:url';
import WS from 'ws';
import { connect, wrap, WebSocketError } from '../websockets.ts';
import type { ServerOptions, WebSocket, Data, NativeWebSocket } from '../websockets.ts';
import { sleep, within, rawHttp, withRawServer, wireFrame, closeFramePayload, WireOp, Arrivals, withTestServer } from './support.ts';
import type { RawPeer, Harness as ServerHarness } from './support.ts';

const ROLE = 'REVIEW_ROLE';
const KiB = 1024;
const MiB = 1024 * KiB;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Memory after a full gc. */
function settled(): NodeJS.MemoryUsage {
  gc();
  gc();
  return process.memoryUsage();
}

type Outcome<V> = { value: V } | { error: unknown };
const outcome = <V>(promise: Promise<V>): Promise<Outcome<V>> => promise.then((value) => ({ value }), (error: unknown) => ({ error }));

interface Harness extends ServerHarness {
  /** What handlers report. */
  results: Arrivals<unknown>;
}

/** Runs `body` against a fresh server whose connections run `handler`; closes everything afterwards. */
async function withServer(
  options: ServerOptions,
  handler: (ws: WebSocket, results: Arrivals<unknown>) => unknown,
  body: (harness: Harness) => Promise<void>,
): Promise<void> {
  const results = new Arrivals<unknown>(5_000);
  await withTestServer({ closeTimeout: 2_000, ...options }, (ws) => handler(ws, results), (harness) => body({ ...harness, results }), { wait: 5_000, closeWithin: 10_000 });
}

/** permessage-deflate (RFC 7692 §7.2.1): deflated with a sync flush, without the 00 00 ff ff tail. */
function deflateMessage(bytes: Uint8Array): Uint8Array {
  const out = zlib.deflateRawSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return Uint8Array.from(out.subarray(0, out.length - 4));
}

/** How many bytes of `bytes` are not `value` (0 when all are). */
function countOther(bytes: Uint8Array, value: number): number {
  let other = 0;
  for (const byte of bytes) if (byte !== value) other++;
  return other;
}

/** Writes everything, waiting for the socket's write callback. */
function writeAll(socket: net.Socket, bytes: Uint8Array): Promise<void> {
  return new Promise<void>((resolve) => socket.write(bytes, () => resolve()));
}

const FRAGMENT_KEY = Uint8Array.of(9, 8, 7, 6);

/**
 * Sends the frames of a message that never ends, then a ping, and measures what the server
 * holds (heap + arrayBuffers, after gc) once the pong says it has read them all.
 */
async function heldForUnfinished(frames: Uint8Array[], timeout: number): Promise<{ wire: number; growth: number; failed: boolean }> {
  const wire = Buffer.concat([...frames, wireFrame(WireOp.PING, 'done', { mask: FRAGMENT_KEY })]);
  frames.length = 0;
  let held = { wire: wire.length, growth: 0, failed: false };
  await withServer({}, (ws) => ws.closed, async ({ peer: connectPeer }) => {
    const peer = await connectPeer();
    const start = settled();
    await writeAll(peer.socket, wire);
    await peer.until(() => peer.closed || peer.frames.some((frame) => frame.opcode === WireOp.PONG), timeout, 'the pong after the fragments');
    const end = settled();
    held = { wire: wire.length, growth: end.heapUsed + end.arrayBuffers - (start.heapUsed + start.arrayBuffers), failed: peer.closed };
  });
  return held;
}

const T10 = { timeout: 10_000 };
const T20 = { timeout: 20_000 };
const T30 = { timeout: 30_000 };

function defineTests(): void {
  // ── 1 ─────────────────────────────────────────────────────────────────────────────────────
  describe('finding 1: read backpressure once the local side closes', () => {
    // 1 MiB frames, masked once and written again and again (no copy on our side), up to 64 MiB
    // or 5 s. The connection may either drop data frames while closing (then it keeps reading,
    // and the peer's close frame gets through) or fail; in neither case may it buffer the flood.
    const FLOOD = 64 * MiB;
    const GROWTH_LIMIT = 16 * MiB;

    /** Writes `frame` again and again, minding the socket's own backpressure, until FLOOD bytes, 5 s, or the connection is gone; returns the bytes handed to the socket. */
    async function flood(peer: RawPeer, frame: Uint8Array): Promise<number> {
      const deadline = performance.now() + 5_000;
      let sent = 0;
      while (sent < FLOOD && performance.now() < deadline && !peer.closed) {
        const more = peer.write(frame);
        sent += frame.length;
        if (!more) await within(peer.drained(), Math.max(1, deadline - performance.now()));
      }
      return sent;
    }

    test('1a: server: the handler returned (close 1000 sent), the peer floods 1 MiB data frames and never answers → server memory stays bounded; the peer’s late close frame still gets through', T30, async (t) => {
      const frame = wireFrame(WireOp.BINARY, new Uint8Array(MiB).fill(7), { mask: Uint8Array.of(1, 2, 3, 4) });
      await withServer({ closeTimeout: 20_000 }, () => {}, async ({ peer: connectPeer, accepted }) => {
        const peer = await connectPeer();
        const ws = await accepted.next();
        assert.equal((await peer.closeFrame()).code, 1000, 'the handler returned: the server closes with 1000');
        const before = settled().arrayBuffers;
        const sent = await flood(peer, frame);
        await sleep(300); // what the server still reads of it
        const growth = settled().arrayBuffers - before;
        t.diagnostic(`peer sent ${mib(sent)} after the server's close frame; server arrayBuffers grew ${mib(growth)}; connection ${peer.closed ? 'failed' : 'still up'}`);
        assert.ok(growth < GROWTH_LIMIT, `while closing, the server buffered the flood: arrayBuffers grew ${mib(growth)} (limit ${mib(GROWTH_LIMIT)}) after the peer sent ${mib(sent)}`);
        if (peer.closed) return; // the connection was failed: also fine
        peer.send(WireOp.CLOSE, closeFramePayload(4001, 'late'));
        const info = await within(ws.closed, 5_000);
        assert.ok(info, 'the peer’s close frame, sent after the flood, did not get through within 5 s (closeTimeout is 20 s)');
        assert.deepEqual({ ...info }, { code: 4001, reason: 'late' });
      });
    });

    test('1b: client: close() called, the server floods data frames and never answers → client memory stays bounded; the late close frame still gets through', T30, async (t) => {
      const frame = wireFrame(WireOp.BINARY, new Uint8Array(MiB).fill(7));
      const peers = new Arrivals<RawPeer>(5_000);
      await withRawServer((peer) => peers.push(peer), {}, async (server) => {
        const ws = await connect(server.url, { pingInterval: 0, closeTimeout: 20_000 });
        const peer = await peers.next();
        const closing = ws.close(1000, 'bye');
        assert.equal((await peer.closeFrame()).code, 1000);
        const before = settled().arrayBuffers;
        const sent = await flood(peer, frame);
        await sleep(300);
        const growth = settled().arrayBuffers - before;
        t.diagnostic(`server sent ${mib(sent)} after the client's close frame; client arrayBuffers grew ${mib(growth)}; connection ${peer.closed ? 'failed' : 'still up'}`);
        assert.ok(growth < GROWTH_LIMIT, `while closing, the client buffered the flood: arrayBuffers grew ${mib(growth)} (limit ${mib(GROWTH_LIMIT)}) after the server sent ${mib(sent)}`);
        if (!peer.closed) {
          peer.send(WireOp.CLOSE, closeFramePayload(4001, 'late'));
          peer.socket.end(); // RFC 6455 §7.1.1: the server closes TCP first
          const info = await within(ws.closed, 5_000);
          assert.ok(info, 'the server’s close frame, sent after the flood, did not get through within 5 s (closeTimeout is 20 s)');
          assert.deepEqual({ ...info }, { code: 4001, reason: 'late' });
        }
        await within(closing, 5_000);
      });
    });
  });

  // ── 2 ─────────────────────────────────────────────────────────────────────────────────────
  describe('finding 2: a compressed message cut off by the end of the connection is never delivered', () => {
    // 15 MiB of a repeating pattern: about 15 KiB deflated, tens of milliseconds to inflate,
    // while the FIN that follows the frame arrives within a millisecond.
    const INFLATED = 15 * MiB;
    const compressed = (() => {
      const data = new Uint8Array(INFLATED);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
      return deflateMessage(data);
    })();

    /** The outcome of a receive(): the full message, or a rejection with 1006 — never a message cut short. */
    function assertWholeOrFailed(result: Outcome<Data>): void {
      if ('value' in result) {
        assert.equal(result.value.length, INFLATED, `receive() returned a truncated message: ${result.value.length} of ${INFLATED} bytes, after the connection had ended`);
      } else {
        assert.ok(result.error instanceof WebSocketError, `receive() rejected with ${String(result.error)}`);
        assert.equal(result.error.code, 1006);
      }
    }

    test('2a: server: the peer sends a message that inflates to 15 MiB and FINs at once, the handler is busy → receive() never returns it truncated (it rejects with 1006)', T20, async (t) => {
      await withServer({ compression: true }, async (ws, results) => {
        await sleep(500); // busy: the FIN comes while the message is being inflated
        results.push(await outcome(ws.receive()));
      }, async ({ peer: connectPeer, results }) => {
        const peer = await connectPeer({ extensions: 'permessage-deflate' });
        assert.ok(peer.deflate, `compression not agreed: ${peer.head}`);
        peer.send(WireOp.BINARY, compressed, { rsv1: true });
        peer.socket.end();
        const result = (await results.next(10_000, 'the handler’s receive()')) as Outcome<Data>;
        t.diagnostic('value' in result ? `received ${result.value.length} bytes` : `rejected: ${String(result.error)}`);
        assertWholeOrFailed(result);
      });
    });

    test('2b: client: the server sends a message that inflates to 15 MiB and closes at once → receive() never returns it truncated (it rejects with 1006)', T20, async (t) => {
      await withRawServer((peer) => {
        peer.send(WireOp.BINARY, compressed, { rsv1: true });
        peer.socket.end();
      }, { responseHeaders: () => ['Sec-WebSocket-Extensions: permessage-deflate'] }, async (server) => {
        const ws = await connect(server.url, { compression: true, pingInterval: 0, closeTimeout: 1_000 });
        assert.match(ws.extensions, /permessage-deflate/);
        await sleep(500);
        const result = await outcome(ws.receive());
        t.diagnostic('value' in result ? `received ${result.value.length} bytes` : `rejected: ${String(result.error)}`);
        assertWholeOrFailed(result);
        await within(ws.closed, 5_000);
      });
    });
  });

  // ── 3 ─────────────────────────────────────────────────────────────────────────────────────
  describe('finding 3: send() resolves only once the caller’s bytes are its own again', () => {
    const SIZE = 20_000; // above the 16 KiB under which frames are copied with their header

    /** The first data frame with `length` payload bytes that the peer receives. */
    async function dataFrame(peer: RawPeer, length: number): Promise<Uint8Array> {
      for (;;) {
        const frame = await peer.nextData(5_000);
        if (frame.payload.length === length) return frame.payload;
      }
    }

    test('3a: server: `await ws.send(buffer); buffer.fill(0x42)` → the peer receives the original 20,000 bytes', T10, async () => {
      await withServer({}, async (ws) => {
        await ws.receive(); // answering a request, as a handler does (not in the handshake's own tick)
        const buffer = new Uint8Array(SIZE).fill(0x41);
        await ws.send(buffer);
        buffer.fill(0x42);
        await ws.closed;
      }, async ({ peer: connectPeer }) => {
        const peer = await connectPeer();
        peer.send(WireOp.TEXT, 'go');
        const payload = await dataFrame(peer, SIZE);
        assert.equal(countOther(payload, 0x41), 0, `${countOther(payload, 0x41)} of ${SIZE} bytes on the wire were changed by the caller after send() resolved`);
      });
    });

    test('3b: server: a send queued behind an async iterable, then `buffer.fill(0x42)` once it resolved → the original bytes go out', T10, async () => {
      async function* slow(): AsyncGenerator<Uint8Array> {
        yield Uint8Array.of(1);
        await sleep(50);
        yield Uint8Array.of(2);
      }
      await withServer({}, async (ws) => {
        const buffer = new Uint8Array(SIZE).fill(0x41);
        const first = ws.send(slow());
        await ws.send(buffer);
        buffer.fill(0x42);
        await first;
        await ws.closed;
      }, async ({ peer: connectPeer }) => {
        const peer = await connectPeer();
        const payload = await dataFrame(peer, SIZE);
        assert.equal(countOther(payload, 0x41), 0, `${countOther(payload, 0x41)} of ${SIZE} bytes on the wire were changed by the caller after send() resolved`);
      });
    });

    test('3c: server with compression: a send queued behind a compression, then `buffer.fill(0x42)` once it resolved → the original bytes go out', T10, async () => {
      await withServer({ compression: { threshold: 32 * KiB } }, async (ws) => {
        const buffer = new Uint8Array(SIZE).fill(0x41); // below the threshold: sent as is, after the compressed one
        const first = ws.send(new Uint8Array(64 * KiB).fill(0x61));
        await ws.send(buffer);
        buffer.fill(0x42);
        await first;
        await ws.closed;
      }, async ({ peer: connectPeer }) => {
        const peer = await connectPeer({ extensions: 'permessage-deflate' });
        assert.ok(peer.deflate, `compression not agreed: ${peer.head}`);
        const payload = await dataFrame(peer, SIZE);
        assert.equal(countOther(payload, 0x41), 0, `${countOther(payload, 0x41)} of ${SIZE} bytes on the wire were changed by the caller after send() resolved`);
      });
    });

    test('3d: 400 unawaited 64 KiB sends to a peer that never reads and then vanishes → the sends whose bytes were never written reject', T20, async (t) => {
      // 400 × 64 KiB = 25 MiB. Loopback holds far less for a peer that never reads: our send
      // buffer autotunes to at most tcp_wmem[2] (4 MiB here), the peer's receive buffer does
      // not grow without reads (it starts at 128 KiB). So at most 16 MiB (256 sends, 4× that)
      // can have been written; every later send must reject (today all 400 resolve "ok").
      const COUNT = 400;
      const SEND = 64 * KiB;
      await withServer({}, async (ws, results) => {
        const chunk = new Uint8Array(SEND).fill(0x43);
        const sends = Array.from({ length: COUNT }, () => ws.send(chunk).then(() => 'ok', () => 'rejected'));
        results.push(await within(Promise.all(sends), 10_000));
      }, async ({ peer: connectPeer, results }) => {
        const peer = await connectPeer();
        peer.socket.pause(); // never reads
        await sleep(500); // every send has been made and waits on the full buffer
        peer.socket.resetAndDestroy(); // vanishes: RST
        const settledSends = (await results.next(15_000, 'the sends to settle')) as string[] | null;
        assert.ok(settledSends, 'the 400 sends did not all settle within 10 s of the peer vanishing');
        const ok = settledSends.filter((result) => result === 'ok').length;
        t.diagnostic(`${ok} of ${COUNT} sends resolved, ${COUNT - ok} rejected`);
        assert.ok(ok * SEND <= 16 * MiB, `${ok} of ${COUNT} sends (${mib(ok * SEND)}) resolved "ok" to a peer that read nothing and vanished: more than loopback can have taken`);
      });
    });
  });

  // ── 4 ─────────────────────────────────────────────────────────────────────────────────────
  describe('finding 4: keepalive with a slow consumer', () => {
    test('4: pingInterval/pingTimeout 300 ms, maxQueuedMessages 4, 20 messages, a handler busy for 1.5 s → no 1011, all 20 received', T20, async () => {
      const COUNT = 20;
      await withServer({ pingInterval: 300, pingTimeout: 300, maxQueuedMessages: 4 }, async (ws, results) => {
        await sleep(1_500);
        const received: Data[] = [];
        try {
          for (let i = 0; i < COUNT; i++) received.push(await ws.receive());
          results.push({ received });
        } catch (error) {
          results.push({ received, error });
        }
      }, async ({ server, results }) => {
        const client = await connect(server.url, { pingInterval: 0 }); // our client answers every ping
        try {
          // 10 ms apart, so that they arrive in chunks of their own and reading stops after the 4th.
          for (let i = 0; i < COUNT; i++) {
            await client.send(`message ${i}`);
            await sleep(10);
          }
          const result = (await results.next(10_000, 'the handler')) as { received: Data[]; error?: unknown };
          const info = await within(client.closed, 5_000);
          assert.equal(result.error, undefined, `the server failed a healthy, pong-answering peer while its own handler was slow: ${String(result.error)} after ${result.received.length} messages`);
          assert.notEqual(info?.code, 1011, `the server closed a healthy peer with 1011 (${client.closeReason ?? ''})`);
          assert.deepEqual(result.received, Array.from({ length: COUNT }, (_, i) => `message ${i}`));
          assert.equal(info?.code, 1000, 'the handler returned: close 1000');
        } finally {
          client.closed.catch(() => {});
          await within(client.close(), 5_000);
        }
      });
    });
  });

  // ── 5 ─────────────────────────────────────────────────────────────────────────────────────
  describe('finding 5: send(asyncIterable) settles when the connection ends while the iterable waits', () => {
    /** An async iterable whose first next() gives a chunk and whose second never settles; it records return(). */
    function hangingIterable(): { iterable: AsyncIterable<string>; state: { nextCalls: number; returned: boolean } } {
      const state = { nextCalls: 0, returned: false };
      const iterable: AsyncIterable<string> = {
        [Symbol.asyncIterator]: () => ({
          next: () => (++state.nextCalls === 1 ? Promise.resolve({ value: 'first', done: false }) : new Promise<IteratorResult<string>>(() => {})),
          return: () => {
            state.returned = true; // where a file handle or a subscription would be released
            return Promise.resolve({ value: undefined, done: true });
          },
        }),
      };
      return { iterable, state };
    }

    for (const [label, name, end] of [
      ['5a', 'the peer sends a close frame', (peer: RawPeer) => peer.send(WireOp.CLOSE, closeFramePayload(1000))],
      ['5b', 'the peer vanishes (TCP reset)', (peer: RawPeer) => peer.socket.resetAndDestroy()],
    ] as const) {
      test(`${label}: server: send(asyncIterable) waiting on the iterable, then ${name} → send() rejects and the iterator’s return() is called`, T10, async () => {
        const { iterable, state } = hangingIterable();
        await withServer({}, async (ws, results) => {
          results.push(await outcome(ws.send(iterable)));
        }, async ({ peer: connectPeer, results, accepted }) => {
          const peer = await connectPeer();
          const ws = await accepted.next();
          const first = await peer.nextData();
          assert.equal(new TextDecoder().decode(first.payload), 'first');
          end(peer);
          await within(ws.closed, 3_000);
          const result = (await within(results.next(3_000, 'send() to settle'), 3_500)) as Outcome<void> | null;
          assert.ok(result, 'send() of the async iterable never settled after the connection ended');
          assert.ok('error' in result, 'send() resolved although the message was never finished');
          assert.ok(result.error instanceof WebSocketError, `send() rejected with ${String(result.error)}`);
          assert.equal(state.returned, true, 'the iterator’s return() was never called: its cleanup (finally) never runs');
        });
      });
    }

    test('5c: client: send(asyncIterable) waiting on the iterable, then close() → once the close timeout ends the connection, send() rejects and return() is called', T10, async () => {
      const { iterable, state } = hangingIterable();
      await withServer({}, (ws) => ws.closed, async ({ server }) => {
        const client = await connect(server.url, { pingInterval: 0, closeTimeout: 300 });
        const sending = outcome(client.send(iterable));
        await sleep(50);
        await within(client.close(), 3_000); // the close waits behind the message; the timeout ends it
        const result = await within(sending, 3_000);
        assert.ok(result, 'send() of the async iterable never settled after the connection ended');
        assert.ok('error' in result, 'send() resolved although the message was never finished');
        assert.equal(state.returned, true, 'the iterator’s return() was never called');
      });
    });
  });

  // ── 6 ─────────────────────────────────────────────────────────────────────────────────────
  describe('finding 6: the receive queue does not grow when it never fully drains', () => {
    test('6: a consumer always one message behind, 2,000,000 messages → heap growth under 8 MiB', T30, async (t) => {
      // wrap() over a scripted native socket: messages arrive synchronously, no network, and
      // the queue is the same as on Node. One message ahead, then one in, one out: the queue
      // never holds more than 2, so its storage must stay small (today it grows by a slot per
      // message, 8 bytes each: 16 MiB and more over 2 M messages).
      const COUNT = 2_000_000;
      const native = new ScriptedNative();
      const ws = wrap(native);
      native.emit('message', { data: 'm0' });
      const oneBehind = async (from: number, to: number) => {
        for (let i = from; i <= to; i++) {
          native.emit('message', { data: i % 100_000 === 0 ? `m${i}` : 'x' });
          const message = ws.receive();
          if (i % 100_000 === 1) assert.equal(await message, `m${i - 1}`, 'messages come out in order, one behind');
        }
      };
      await oneBehind(1, 100_000); // warm-up: the code is compiled and optimised before measuring
      const before = settled().heapUsed;
      await oneBehind(100_001, 100_000 + COUNT);
      const growth = settled().heapUsed - before;
      t.diagnostic(`heap grew ${mib(growth)} over ${COUNT} messages`);
      assert.ok(growth < 8 * MiB, `the receive queue kept growing: heap +${mib(growth)} over ${COUNT} messages with never more than 2 queued`);
      native.emit('close', { code: 1000, reason: '' });
    });
  });

  // ── 7 ─────────────────────────────────────────────────────────────────────────────────────
  describe('finding 7: the browser facade sends an unawaited send() before close()', () => {
    // (Chromium needs the same case: test/browser.test.ts owns the browser run.)
    /** Reports every message the connection received, once it has ended. */
    const collectAll = async (ws: WebSocket, results: Arrivals<unknown>) => {
      const got: Data[] = [];
      try {
        for await (const message of ws) got.push(message);
      } catch {
        // how it closed is the client's business
      }
      results.push(got);
    };

    test('7a: wrap() over the ws package’s client: `ws.send("last words"); await ws.close()` → the message reaches the server, send() resolves', T10, async () => {
      await withServer({}, collectAll, async ({ server, results }) => {
        const native = new WS(server.url);
        await new Promise<void>((resolve, reject) => {
          native.once('open', () => resolve());
          native.once('error', reject);
        });
        const ws = wrap(native as unknown as NativeWebSocket);
        const sent = outcome(ws.send('last words'));
        await within(ws.close(1000, 'bye'), 5_000);
        const result = await within(sent, 2_000);
        assert.ok(result && 'value' in result, `send() before close() rejected: ${result && 'error' in result ? String(result.error) : 'never settled'}`);
        assert.deepEqual(await results.next(5_000, 'the server handler'), ['last words']);
      });
    });

    test('7b: wrap() over Node’s own WHATWG WebSocket (undici, --experimental-websocket): the same → the message reaches the server', T20, async (t) => {
      await withServer({}, collectAll, async ({ server, results }) => {
        const child = await runChild('facade', [server.url], ['--experimental-websocket']);
        if (child.result === null) {
          t.skip(`no WHATWG WebSocket in a child Node: ${child.output.slice(-300)}`);
          return;
        }
        const result = child.result as { noWebSocket?: boolean; send: string; closed?: { code: number } };
        if (result.noWebSocket) {
          t.skip('this Node has no global WebSocket, even with --experimental-websocket');
          return;
        }
        t.diagnostic(JSON.stringify(result));
        assert.equal(result.send, 'ok', `send() before close() did not resolve: ${result.send}`);
        assert.deepEqual(await results.next(5_000, 'the server handler'), ['last words']);
      });
    });
  });

  // ── 8 ─────────────────────────────────────────────────────────────────────────────────────
  describe('finding 8: abandoned waits do not steal messages; receive({ signal })', () => {
    /** A server that answers "go" with "m1" then "m2". */
    const onGo = async (ws: WebSocket) => {
      for await (const message of ws) {
        if (message === 'go') {
          await ws.send('m1');
          await ws.send('m2');
        }
      }
    };

    /** Runs `body` with a client of a fresh "go" server; closes it afterwards. */
    const withGoClient = (body: (client: WebSocket) => Promise<void>) =>
      withServer({}, onGo, async ({ server }) => {
        const client = await connect(server.url, { pingInterval: 0 });
        try {
          await body(client);
        } finally {
          await within(client.close(), 5_000);
        }
      });

    test('8a: an iterator next() abandoned by a Promise.race timeout, then return() → a later receive() gets the next message', T10, async () => {
      await withGoClient(async (client) => {
        const iterator = client[Symbol.asyncIterator]();
        const first = await Promise.race([iterator.next(), sleep(50).then(() => 'timed out' as const)]);
        assert.equal(first, 'timed out');
        await iterator.return?.();
        await client.send('go');
        assert.equal(await within(client.receive(), 2_000), 'm1', 'the abandoned iterator took "m1"');
        assert.equal(await within(client.receive(), 2_000), 'm2');
      });
    });

    test('8b: receive({ signal }) aborted while waiting → rejects with the signal’s reason (AbortError), and the next receive() gets the next message', T10, async () => {
      await withGoClient(async (client) => {
        const controller = new AbortController();
        const pending = outcome(client.receive({ signal: controller.signal }));
        await sleep(20);
        controller.abort();
        const result = await within(pending, 1_000);
        assert.ok(result, 'receive({ signal }) did not give up when the signal aborted');
        assert.ok('error' in result, 'receive({ signal }) resolved');
        assert.equal(result.error, controller.signal.reason, 'it rejects with the signal’s reason');
        assert.equal((result.error as Error).name, 'AbortError');
        await client.send('go');
        assert.equal(await within(client.receive(), 2_000), 'm1', 'the aborted receive() consumed "m1"');
        assert.equal(await within(client.receive(), 2_000), 'm2');
      });
    });

    test('8c: receive({ signal }) with a signal already aborted, a message queued → rejects with its reason without consuming the message', T10, async () => {
      await withGoClient(async (client) => {
        await client.send('go');
        await sleep(100); // "m1" and "m2" are queued
        const reason = new Error('not now');
        const result = await within(outcome(client.receive({ signal: AbortSignal.abort(reason) })), 1_000);
        assert.ok(result && 'error' in result, `receive() with an aborted signal did not reject: ${result ? JSON.stringify(result) : 'it hung'}`);
        assert.equal(result.error, reason);
        assert.equal(await within(client.receive(), 2_000), 'm1', 'the aborted receive() consumed "m1"');
      });
    });
  });

  // ── 9 ─────────────────────────────────────────────────────────────────────────────────────
  describe('finding 9: amplification a peer can reach', () => {
    test('9a: 131,071 one-byte fragments and no final one (917 KB on the wire) → the server holds under 4 MiB for them', T20, async (t) => {
      // The unfinished message carries 128 KiB of payload in 896 KiB of frames; holding the
      // payload, and even the wire chunks it came in, is under 1 MiB. 4 MiB leaves room for
      // bookkeeping; today each fragment costs a view object (about 100 bytes) and keeps its
      // chunk alive: 13.4 MiB in the review, 14.2 MiB here. Failing the connection instead
      // (1009, once the overhead is counted against a limit) is also fine.
      const FRAGMENTS = 131_071;
      const parts: Uint8Array[] = [wireFrame(WireOp.BINARY, Uint8Array.of(0), { fin: false, mask: FRAGMENT_KEY })];
      const continuation = wireFrame(WireOp.CONTINUATION, Uint8Array.of(1), { fin: false, mask: FRAGMENT_KEY });
      for (let i = 1; i < FRAGMENTS; i++) parts.push(continuation);
      const { wire, growth, failed } = await heldForUnfinished(parts, 10_000);
      t.diagnostic(`${FRAGMENTS} fragments (${mib(wire)} on the wire): heap + arrayBuffers grew ${mib(growth)}; connection ${failed ? 'failed' : 'open'}`);
      assert.ok(growth < 4 * MiB, `an unfinished message of ${FRAGMENTS} one-byte fragments holds ${mib(growth)} of heap and buffers`);
    });

    test('9c: a BINARY frame announced as 16 MiB of which 4 MiB + 1 byte arrive → the server holds under 2× what arrived', T20, async (t) => {
      const ANNOUNCED = 16 * MiB;
      const ARRIVED = 4 * MiB + 1;
      const wire = Buffer.concat([wireFrame(WireOp.BINARY, undefined, { length: ANNOUNCED, mask: Uint8Array.of(0x11, 0x22, 0x33, 0x44) }), new Uint8Array(ARRIVED).fill(5)]);
      await withServer({}, (ws) => ws.closed, async ({ peer: connectPeer }) => {
        const peer = await connectPeer();
        const start = settled().arrayBuffers;
        await writeAll(peer.socket, wire);
        // The server holds what arrived one way or another (as chunks or in a buffer of its
        // own): wait until it has read it (90% of it, for what may sit in a socket buffer).
        const deadline = performance.now() + 5_000;
        let growth = 0;
        while ((growth = settled().arrayBuffers - start) < 0.9 * ARRIVED && !peer.closed && performance.now() < deadline) await sleep(50);
        await sleep(200);
        growth = settled().arrayBuffers - start;
        t.diagnostic(`${mib(ARRIVED)} of an announced ${mib(ANNOUNCED)} arrived: arrayBuffers grew ${mib(growth)}`);
        assert.ok(growth >= 0.9 * ARRIVED || peer.closed, `the server did not read the ${ARRIVED} bytes within 5 s (grew ${mib(growth)}): the test proves nothing`);
        assert.ok(growth <= 2 * ARRIVED + MiB, `the server set aside ${mib(growth)} for a frame of which ${mib(ARRIVED)} arrived: more than 2× what it received`);
      });
    });

    // 9b (the 10 zlib slots shared by every connection) has no test here: one connection
    // already holds at most one inflate and one deflate at a time, so it takes 10 or more
    // bombing peers to fill the slots, and then a victim's small inflate waited 48 ms (median)
    // and 213 ms (p90) against 0.2 ms alone, on this 2-core machine, where CPU contention
    // alone is of that order: no bound separates the defect from a fair scheduler reliably.
    // Whichever remedy is chosen (fair shares, or a cap on the inflation ratio) needs its own
    // test: a ratio cap, e.g., is observable as 1009 on a 16 KiB frame inflating to 16 MiB.
  });

  // ── 10 ────────────────────────────────────────────────────────────────────────────────────
  describe('finding 10: spec and interop details', () => {
    test('10a: the client’s Host header leaves the default port out (ws :80, wss :443) and keeps any other', T20, async () => {
      // No port 80 or 443 is bound: the connections the client opens (net.connect, with TLS
      // over it for wss) are redirected to a raw server on a free loopback port, which
      // records the request head and refuses the handshake.
      await withRawServer(() => {}, { respond: () => 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' }, async (server) => {
        const original = { connect: net.connect, createConnection: net.createConnection, tlsConnect: tls.connect };
        const patch = (on: boolean) => {
          const mutableNet = net as unknown as Record<string, unknown>;
          const mutableTls = tls as unknown as Record<string, unknown>;
          mutableNet.connect = on ? () => (original.createConnection as (port: number, host: string) => net.Socket)(server.port, '127.0.0.1') : original.connect;
          mutableNet.createConnection = on ? mutableNet.connect : original.createConnection;
          // TLS runs over the dialled socket: here it stays plain, so the raw server reads the request in clear.
          mutableTls.connect = on ? ({ socket }: { socket: net.Socket }) => (process.nextTick(() => socket.emit('secureConnect')), socket) : original.tlsConnect;
          syncBuiltinESMExports();
        };
        const cases: Array<[string, string]> = [
          ['ws://example.test:80/path', 'example.test'],
          ['ws://example.test/path', 'example.test'],
          ['wss://example.test:443/path', 'example.test'],
          ['ws://example.test:8080/path', 'example.test:8080'],
          ['wss://example.test:8443/path', 'example.test:8443'],
          ['ws://[::1]:80/path', '[::1]'],
        ];
        const seen: string[] = [];
        patch(true);
        try {
          for (const [url] of cases) {
            const before = server.requests.length;
            await outcome(connect(url, { handshakeTimeout: 3_000 }));
            const request = server.requests[before] ?? '';
            seen.push(/^host:\s*(.*)$/im.exec(request)?.[1]?.trim() ?? '(no request)');
          }
        } finally {
          patch(false);
        }
        assert.deepEqual(seen, cases.map(([, host]) => host), `Host headers sent for ${cases.map(([url]) => url).join(', ')}`);
      });
    });

    test('10b: ws.url does not keep the password of ws://user:secret@host/ (the credentials still go out as Authorization)', T10, async () => {
      await withServer({}, (ws, results) => {
        results.push(ws.request.headers['authorization']);
        return ws.closed;
      }, async ({ server, results }) => {
        const client = await connect(`ws://user:secret@127.0.0.1:${server.port}/path`, { pingInterval: 0 });
        try {
          assert.equal(await results.next(), `Basic ${Buffer.from('user:secret').toString('base64')}`);
          assert.ok(!client.url.includes('secret'), `ws.url keeps the password: ${client.url}`);
          const url = new URL(client.url);
          assert.equal(`${url.protocol}//${url.host}${url.pathname}`, `ws://127.0.0.1:${server.port}/path`);
        } finally {
          await within(client.close(), 5_000);
        }
      });
    });

    const handshake = (port: number, headers: string[]) =>
      rawHttp(port, `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${headers.map((line) => `${line}\r\n`).join('')}\r\n`, 'headers');

    test('10c: server: Sec-WebSocket-Extensions with empty list elements (RFC 7230 §7) and backslash escapes in quoted values is accepted', T10, async () => {
      await withServer({ compression: true }, (ws) => ws.closed, async ({ server }) => {
        for (const [offer, expected] of [
          ['permessage-deflate,', /^permessage-deflate/],
          [', permessage-deflate', /^permessage-deflate/],
          ['permessage-deflate, , permessage-deflate; client_no_context_takeover', /^permessage-deflate/],
          ['permessage-deflate; server_max_window_bits="1\\2"', /^permessage-deflate.*server_max_window_bits=12/],
        ] as const) {
          const answer = await handshake(server.port, [`Sec-WebSocket-Extensions: ${offer}`]);
          assert.equal(answer.statusLine, 'HTTP/1.1 101 Switching Protocols');
          assert.match(answer.headers['sec-websocket-extensions'] ?? '(none)', expected, `offer ${JSON.stringify(offer)}: compression declined`);
        }
      });
    });

    test('10c: client: a server answering `permessage-deflate,` or a quoted, escaped value is accepted (no 1010)', T10, async () => {
      for (const answer of ['permessage-deflate,', 'permessage-deflate; server_max_window_bits="1\\2"']) {
        await withRawServer(() => {}, { responseHeaders: () => [`Sec-WebSocket-Extensions: ${answer}`] }, async (server) => {
          const result = await outcome(connect(server.url, { compression: true, pingInterval: 0, closeTimeout: 300 }));
          assert.ok('value' in result, `the client refused the answer ${JSON.stringify(answer)}: ${'error' in result ? String(result.error) : ''}`);
          assert.match(result.value.extensions, /permessage-deflate/);
          result.value.closed.catch(() => {});
          await within(result.value.close(), 2_000);
        });
      }
    });

    test('10d: the server never echoes an offered subprotocol that is not a token', T10, async () => {
      await withServer({ selectProtocol: (offered) => offered[0] }, (ws) => ws.closed, async ({ server }) => {
        for (const offer of ['a=b, chat', '"quoted", chat', 'x@y']) {
          const answer = await handshake(server.port, [`Sec-WebSocket-Protocol: ${offer}`]);
          const chosen = answer.headers['sec-websocket-protocol'];
          const ok = answer.statusLine.startsWith('HTTP/1.1 400') || (answer.statusLine.startsWith('HTTP/1.1 101') && (chosen === undefined || /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(chosen)));
          assert.ok(ok, `offer ${JSON.stringify(offer)}: ${answer.statusLine}, Sec-WebSocket-Protocol: ${String(chosen)}`);
        }
      });
    });

    /** Two 3-byte BINARY messages around a 40,000-byte one, in one write. */
    const burst = (mask: boolean) => Buffer.concat([
      wireFrame(WireOp.BINARY, Uint8Array.of(1, 2, 3), { mask }),
      wireFrame(WireOp.BINARY, new Uint8Array(40_000).fill(9), { mask }),
      wireFrame(WireOp.BINARY, Uint8Array.of(4, 5, 6), { mask }),
    ]);

    /** A small message must not keep the read chunk it came in alive. */
    function assertOwnBuffers(messages: Data[]): void {
      const small = messages.filter((message): message is Uint8Array => typeof message !== 'string' && message.length === 3);
      assert.equal(small.length, 2, 'both 3-byte messages arrived');
      for (const message of small) {
        assert.ok(message.buffer.byteLength < KiB, `a 3-byte BINARY message is a view into a ${message.buffer.byteLength}-byte buffer (the read chunk), which it keeps alive`);
      }
    }

    test('10e: server: a 3-byte BINARY message that arrived in one chunk with others is not a view into that chunk', T10, async () => {
      await withServer({}, async (ws, results) => {
        const messages: Data[] = [];
        for (let i = 0; i < 3; i++) messages.push(await ws.receive());
        results.push(messages);
      }, async ({ peer: connectPeer, results }) => {
        const peer = await connectPeer();
        await writeAll(peer.socket, burst(true));
        assertOwnBuffers((await results.next(5_000, 'three messages')) as Data[]);
      });
    });

    test('10e: client: the same for messages from the server', T10, async () => {
      await withRawServer((peer) => void sleep(50).then(() => peer.write(burst(false))), {}, async (server) => {
        const client = await connect(server.url, { pingInterval: 0, closeTimeout: 300 });
        try {
          const messages: Data[] = [];
          for (let i = 0; i < 3; i++) messages.push((await within(client.receive(), 3_000)) ?? '(nothing)');
          assertOwnBuffers(messages);
        } finally {
          client.closed.catch(() => {});
          await within(client.close(), 2_000);
        }
      });
    });
  });
  // ── the second review: defects in the first fixes, and the same classes elsewhere ───────────
  describe('second review: what the first fixes got wrong', () => {
    test('S1: compressed fragments over 16 KiB whose write fails while the next one compresses → send() rejects, no unhandled rejection', T20, async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        await withServer({ compression: true }, async (ws, results) => {
          // Random bytes do not compress: every fragment stays over 16 KiB, held by reference.
          const parts = Array.from({ length: 20 }, () => randomBytes(MiB));
          results.push(await outcome(ws.send(parts)));
        }, async ({ peer: connectPeer, results }) => {
          const peer = await connectPeer({ extensions: 'permessage-deflate' });
          peer.socket.pause(); // never reads: the writes stall behind it
          await sleep(150);
          peer.socket.resetAndDestroy();
          const sent = (await results.next(10_000, 'the send to settle')) as Outcome<void>;
          assert.ok('error' in sent && sent.error instanceof WebSocketError, `send() ${'error' in sent ? `rejected with ${String(sent.error)}` : 'resolved'}`);
          await sleep(200); // a rejection nobody handles is reported a turn later
        });
        assert.deepEqual(unhandled.map(String), [], 'unhandled rejections');
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });

    test('S2: send(asyncIterable) of 600 fresh 64 KiB chunks → what was sent is not kept while the connection stays open', T30, async (t) => {
      await withServer({}, async (ws, results) => {
        async function* chunks() {
          for (let i = 0; i < 600; i++) yield new Uint8Array(64 * KiB).fill(i & 0xff);
        }
        const start = settled();
        results.push(await outcome(ws.send(chunks())));
        const end = settled();
        results.push(end.arrayBuffers - start.arrayBuffers);
        await ws.receive().catch(() => {}); // stays open until the test is done
      }, async ({ peer: connectPeer, results }) => {
        const peer = await connectPeer();
        peer.reader.keep = false; // the peer reads and forgets
        const sent = (await results.next(20_000, 'the send')) as Outcome<void>;
        assert.ok('value' in sent, `send() rejected: ${'error' in sent ? String(sent.error) : ''}`);
        const kept = (await results.next(5_000, 'the memory figure')) as number;
        t.diagnostic(`streamed ${mib(600 * 64 * KiB)}; arrayBuffers afterwards ${mib(kept)} above the start`);
        assert.ok(kept < 8 * MiB, `after streaming ${mib(600 * 64 * KiB)} through one send(), ${mib(kept)} are still held`);
      });
    });

    test('S3: a dropped frame after a large message (closing, queue full) does not fail the clean close', T10, async () => {
      await withServer({ maxQueuedMessages: 1 }, async (ws, results) => {
        results.push(ws);
        await sleep(300); // busy, then returns without receiving: close(1000) with a full queue
      }, async ({ peer: connectPeer, results }) => {
        const peer = await connectPeer();
        const key = Uint8Array.of(1, 2, 3, 4);
        peer.write(wireFrame(WireOp.BINARY, new Uint8Array(20_000), { mask: key })); // a "large frame" message: fills the queue
        const ws = (await results.next(5_000, 'the connection')) as WebSocket;
        assert.deepEqual(await peer.closeFrame(3_000), { code: 1000, reason: '' }, 'the server closes when its handler returns');
        peer.write(wireFrame(WireOp.BINARY, new Uint8Array(100_000), { mask: key })); // dropped: closing, queue full
        peer.write(wireFrame(WireOp.CLOSE, closeFramePayload(1000), { mask: key })); // our answer
        assert.deepEqual(await within(ws.closed, 5_000), { code: 1000, reason: '' });
        assert.equal(((await ws.receive()) as Uint8Array).length, 20_000, 'the queued message is still delivered');
        const end = await outcome(ws.receive());
        assert.ok('error' in end && end.error instanceof WebSocketError && end.error.code === 1000, `after the queue: ${'error' in end ? String(end.error) : 'a message'}`);
      });
    });

    test('S4: 8,000 pairs of 1,024-byte and 1-byte fragments, no final one → the server holds under twice what arrived', T30, async (t) => {
      const PAIRS = 8_000;
      const big = new Uint8Array(1024).fill(7);
      const parts: Uint8Array[] = [wireFrame(WireOp.BINARY, big, { fin: false, mask: FRAGMENT_KEY })];
      const small = wireFrame(WireOp.CONTINUATION, Uint8Array.of(1), { fin: false, mask: FRAGMENT_KEY });
      const large = wireFrame(WireOp.CONTINUATION, big, { fin: false, mask: FRAGMENT_KEY });
      for (let i = 0; i < PAIRS; i++) parts.push(small, large);
      const { wire, growth } = await heldForUnfinished(parts, 15_000);
      t.diagnostic(`${PAIRS} pairs (${mib(wire)} on the wire): heap + arrayBuffers grew ${mib(growth)}`);
      assert.ok(growth < 2 * wire, `an unfinished message of ${mib(wire)} in alternating fragments holds ${mib(growth)}`);
    });

    test('S5: facade: send(asyncIterable) waiting on its iterable, the server closes → send() rejects and return() is called', T10, async () => {
      await withServer({}, async () => void (await sleep(200)), async ({ server }) => {
        const native = new WS(server.url);
        await new Promise<void>((resolve, reject) => {
          native.once('open', () => resolve());
          native.once('error', reject);
        });
        const ws = wrap(native as unknown as NativeWebSocket);
        let returned = false;
        const waiting: AsyncIterableIterator<string> = {
          next: () => new Promise<IteratorResult<string>>(() => {}), // never produces
          return: async () => {
            returned = true;
            return { value: undefined, done: true };
          },
          [Symbol.asyncIterator]: () => waiting,
        };
        const sent = await within(outcome(ws.send(waiting)), 5_000);
        assert.ok(sent && 'error' in sent, `send() ${sent ? 'resolved' : 'never settled'} after the server closed`);
        assert.equal(returned, true, 'the iterator was closed');
        assert.equal(ws.closeCode, 1000);
      });
    });

    test('S6: keepalive on both ends (300 ms), the server\u2019s queue full and its handler busy 1.5 s → neither side fails with 1011', T20, async () => {
      await withServer({ maxQueuedMessages: 4, pingInterval: 300, pingTimeout: 300 }, async (ws, results) => {
        await sleep(1_500);
        let received = 0;
        const end = await outcome((async () => {
          for (let i = 0; i < 20; i++) {
            await ws.receive();
            received++;
          }
        })());
        results.push({ received, end });
      }, async ({ server, results }) => {
        const client = await connect(server.url, { pingInterval: 300, pingTimeout: 300 });
        try {
          // Enough to fill the server's queue and its socket buffers, so our pings wait unread behind them.
          const big = new Uint8Array(512 * KiB);
          for (let i = 0; i < 20; i++) client.send(big).catch(() => {});
          const serverSide = (await results.next(15_000, 'the server to read everything')) as { received: number; end: Outcome<void> };
          assert.equal(serverSide.received, 20, `the server read ${serverSide.received} of 20 messages: ${'error' in serverSide.end ? String(serverSide.end.error) : ''}`);
          assert.equal(client.closeCode, undefined, `the client's connection ended with ${client.closeCode}`);
        } finally {
          await within(client.close(), 3_000);
        }
      });
    });

    test('S7: no keepalive timer is started once the connection is gone', T10, async () => {
      const PING_TIMEOUT = 777; // a duration nothing else uses
      const started: number[] = [];
      const realSetTimeout = globalThis.setTimeout;
      globalThis.setTimeout = ((callback: () => void, ms?: number, ...rest: unknown[]) => {
        if (ms === PING_TIMEOUT) started.push(performance.now());
        return realSetTimeout(callback, ms, ...rest);
      }) as typeof setTimeout;
      try {
        let closedAt = Infinity;
        await withServer({ maxQueuedMessages: 1, pingInterval: 200, pingTimeout: PING_TIMEOUT }, async (ws, results) => {
          void ws.closed.then(() => (closedAt = performance.now()));
          await sleep(600); // the queue is full meanwhile, so reading is paused when the keepalive ping goes out
          for (let i = 0; i < 3; i++) await ws.receive().catch(() => {});
          results.push('drained');
        }, async ({ peer: connectPeer, results }) => {
          const peer = await connectPeer();
          const key = Uint8Array.of(1, 1, 1, 1);
          for (let i = 0; i < 3; i++) peer.write(wireFrame(WireOp.BINARY, new Uint8Array(10), { mask: key }));
          await sleep(300);
          peer.socket.resetAndDestroy();
          await results.next(5_000, 'the handler to drain the queue');
        });
        assert.ok(Number.isFinite(closedAt), 'the connection closed');
        assert.deepEqual(started.filter((at) => at > closedAt), [], 'pong-deadline timers started after the connection closed');
      } finally {
        globalThis.setTimeout = realSetTimeout;
      }
    });

    test('9b: 12 connections each inflating 16 MiB from 16 KiB → a 13th connection\u2019s small compressed message is read before any of them finishes', T30, async (t) => {
      // Ordering, not timing: without fairness the 10 zlib slots stay with the first bombs
      // until one of them is done; with it, a bomb lets others go every 1 MiB it inflates.
      const bomb = deflateMessage(new Uint8Array(16 * MiB - 64));
      const small = deflateMessage(new Uint8Array(200).fill(0x61));
      const arrived: string[] = [];
      await withServer({ compression: true }, async (ws) => {
        for await (const message of ws) arrived.push(message.length > 1_000 ? 'bomb' : 'small');
      }, async ({ peer: connectPeer }) => {
        const peers = await Promise.all(Array.from({ length: 13 }, () => connectPeer({ extensions: 'permessage-deflate' })));
        const victim = peers.pop() as RawPeer;
        const key = Uint8Array.of(3, 1, 4, 1);
        for (const peer of peers) peer.write(wireFrame(WireOp.BINARY, bomb, { rsv1: true, mask: key }));
        await sleep(30); // the bombs are inflating
        victim.write(wireFrame(WireOp.TEXT, small, { rsv1: true, mask: key }));
        const deadline = Date.now() + 20_000;
        while (arrived.length < 13 && Date.now() < deadline) await sleep(20);
        t.diagnostic(`order: ${arrived.join(' ')}`);
        assert.equal(arrived.length, 13, `only ${arrived.length} of 13 messages arrived`);
        assert.equal(arrived.indexOf('small'), 0, `${arrived.indexOf('small')} bombs finished inflating before the small message was read`);
      });
    });
  });
}

/** A native WebSocket whose events the test dispatches itself (finding 6). */
class ScriptedNative implements NativeWebSocket {
  readonly url = 'ws://scripted.test/';
  readonly protocol = '';
  readonly extensions = '';
  readyState = 1;
  readonly bufferedAmount = 0;
  binaryType = 'blob';
  readonly #listeners = new Map<string, Array<(event: { data?: unknown; code?: number; reason?: string }) => void>>();
  send(): void {}
  close(): void {
    this.readyState = 2;
  }
  addEventListener(type: string, listener: (event: { data?: unknown; code?: number; reason?: string }) => void): void {
    const list = this.#listeners.get(type) ?? [];
    list.push(listener);
    this.#listeners.set(type, list);
  }
  emit(type: string, event: { data?: unknown; code?: number; reason?: string }): void {
    if (type === 'close') this.readyState = 3;
    for (const listener of this.#listeners.get(type) ?? []) listener(event);
  }
}

/** Runs this file as a child process in `role`, with `args`; its result is the JSON after "RESULT ". */
async function runChild(role: string, args: string[], nodeFlags: string[]): Promise<{ result: unknown; output: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, [ROLE]: role };
  delete env.NODE_TEST_CONTEXT; // the child is no test runner's subprocess
  const child = spawn(process.execPath, [...nodeFlags, fileURLToPath(import.meta.url), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  if ((await within(exited, 15_000)) === null) child.kill();
  await within(exited, 2_000);
  const line = output.split('\n').find((text) => text.startsWith('RESULT '));
  return { result: line ? JSON.parse(line.slice('RESULT '.length)) : null, output };
}

/** The child's side of finding 7b: Node's WHATWG WebSocket, wrapped, sends then closes at once. */
async function facadeChild(url: string): Promise<void> {
  const say = (value: unknown) => console.log(`RESULT ${JSON.stringify(value)}`);
  const Native = (globalThis as { WebSocket?: new (url: string) => NativeWebSocket }).WebSocket;
  if (!Native) return say({ noWebSocket: true });
  const native = new Native(url);
  await new Promise<void>((resolve, reject) => {
    native.addEventListener('open', () => resolve());
    native.addEventListener('error', () => reject(new Error('the native WebSocket failed to open')));
  });
  const ws = wrap(native);
  const sent = ws.send('last words').then(() => 'ok', (error: unknown) => `rejected: ${String(error)}`);
  await within(ws.close(1000, 'bye'), 5_000);
  say({ send: (await within(sent, 2_000)) ?? 'never settled', closed: ws.closeCode === undefined ? undefined : { code: ws.closeCode } });
}

if (process.env[ROLE] === 'facade') {
  await facadeChild(process.argv[2] ?? '');
  process.exit(0);
} else {
  defineTests();
}
