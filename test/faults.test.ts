// Faults of a real network, injected by Toxiproxy (issue 17): latency with jitter, a thin pipe,
// every write sliced into 1–7-byte segments, a black hole (data stops, no FIN), a reset in the
// middle of a frame, a connection cut after N bytes for every N of a handshake and a frame, a
// slow close, and a black hole during the opening handshake. Our client ↔ our server through
// the proxy, and `ws` as the other side where the peer's behaviour matters.
//
// Loopback only; toxiproxy-server (built into .tools/ by .ci/run) is started on a free port
// and stopped at the end. Without it the suite is skipped after one line saying how to build
// it (test/peers.ts; with CI=true it fails instead). The figures each test prints
// (`# figure: …`) are the ones in the README's "Faults and limits, as tested".

import { test, describe, before, after, afterEach } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import WS, { WebSocketServer } from 'ws';
import { connect, listen, WebSocketError } from '../websockets.ts';
import type { CloseInfo, ClientOptions, Data, Server, ServerOptions, WebSocket } from '../websockets.ts';
import { Arrivals, RawPeer, WireOp, sleep, within } from './support.ts';
import { peerMissing } from './peers.ts';
import { TOXIPROXY, Toxiproxy } from './toxiproxy.ts';
import type { Proxy } from './toxiproxy.ts';

/** Timing assertions allow this much on top of the ideal (a shared two-core machine). */
const SLACK = 1_500;
const KiB = 1024;

// ── helpers ──────────────────────────────────────────────────────────────────────────────

let toxiproxy: Toxiproxy;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

/** Our process's TCP connections (listening sockets aside) whose local or remote port is one of `ports` (Linux /proc). */
function tcpConnections(ports: readonly number[]): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (match) inodes.add(match[1]);
    } catch {
      // the descriptor closed meanwhile
    }
  }
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] === '0A' || !inodes.has(fields[9])) continue;
      const port = (address: string) => parseInt(address.slice(address.indexOf(':') + 1), 16);
      if (ports.includes(port(fields[1])) || ports.includes(port(fields[2]))) count++;
    }
  }
  return count;
}

/** Active timers of this process (setTimeout/setInterval not yet fired or cleared). */
const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;

/** Polls `condition` every 20 ms for up to `timeout` ms; whether it came true. */
async function eventually(condition: () => boolean, timeout: number): Promise<boolean> {
  const deadline = performance.now() + timeout;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

type Settled<V> = { ok: true; value: V } | { ok: false; error: unknown };
const settle = <V>(promise: Promise<V>): Promise<Settled<V>> => promise.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));

/** The code of a WebSocketError; anything else fails the test (a clean error is a WebSocketError). */
function codeOf(error: unknown, what: string): number {
  if (!(error instanceof WebSocketError)) assert.fail(`${what}: expected a WebSocketError, got ${String(error)}`);
  return error.code;
}

/** A promise and the function that resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

const ms = (start: number): number => Math.round(performance.now() - start);

function figure(t: TestContext, text: string): void {
  t.diagnostic(`figure: ${text}`);
}

// Messages whose content says which they are, so order and integrity are checked byte for byte.
const SYMBOLS = ['a', 'z', ' ', 'é', '€', '😀', '\u07ff', '\u0800', '\ud7ff', '\ue000'];

function text(i: number, length: number): string {
  let out = `${i}:`;
  for (let k = i; out.length < length; k++) out += SYMBOLS[k % SYMBOLS.length];
  return out;
}

function bytes(i: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let j = 0; j < length; j++) out[j] = (i * 31 + j * 7 + (j >> 8)) & 0xff;
  return out;
}

const BOUNDARIES = [0, 1, 125, 126, 127, 65_535, 65_536];

/** Message i of a mixed run: TEXT and BINARY, 0 bytes to 256 KiB, the length-field boundaries included. */
function mixed(i: number): Data {
  if (i % 1_000 === 999) return bytes(i, 256 * KiB);
  if (i % 50 === 7) return bytes(i, BOUNDARIES[Math.floor(i / 50) % BOUNDARIES.length]);
  return i % 2 === 1 ? text(i, (i * 7_919) % 1_500) : bytes(i, (i * 104_729) % 2_000);
}

function same(a: Data, b: Data): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return Buffer.compare(a, b) === 0;
}

const describeData = (data: Data): string => (typeof data === 'string' ? `TEXT(${data.length} chars) ${JSON.stringify(data.slice(0, 20))}` : `BINARY(${data.length})`);

interface EchoServer {
  server: Server;
  accepted: Arrivals<WebSocket>;
  /** How each server-side handler ended: 'done' or the error's code. */
  ends: Array<string | number>;
  errors: unknown[];
}

/** Our server on 127.0.0.1: echoes every message; `handler` instead, if given. */
async function withServer<V>(options: ServerOptions, body: (echo: EchoServer) => Promise<V>, handler?: (ws: WebSocket) => Promise<void>): Promise<V> {
  const accepted = new Arrivals<WebSocket>(5_000);
  const ends: Array<string | number> = [];
  const errors: unknown[] = [];
  const server = await listen('127.0.0.1', 0, async (ws) => {
    accepted.push(ws);
    try {
      if (handler) await handler(ws);
      else for await (const message of ws) await ws.send(message);
      ends.push('done');
    } catch (error) {
      ends.push(error instanceof WebSocketError ? error.code : String(error));
      throw error;
    }
  }, { pingInterval: 0, onError: (error) => errors.push(error), ...options });
  try {
    return await body({ server, accepted, ends, errors });
  } finally {
    await within(server.close(), 10_000);
  }
}

/** A ws client: messages in arrival order (TEXT as string), its close and errors. */
class WsClient {
  readonly socket: WS;
  readonly messages = new Arrivals<Data>(10_000);
  readonly errors: Error[] = [];
  readonly closed: Promise<CloseInfo>;

  private constructor(socket: WS) {
    this.socket = socket;
    socket.on('message', (data, isBinary) => {
      const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      this.messages.push(isBinary ? new Uint8Array(buffer) : buffer.toString('utf8'));
    });
    socket.on('error', (error) => this.errors.push(error));
    this.closed = new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(url: string, options: WS.ClientOptions = {}): Promise<WsClient> {
    const client = new WsClient(new WS(url, options));
    const [error] = await Promise.race([once(client.socket, 'open').then(() => [null] as const), once(client.socket, 'close').then(() => [new Error('closed before open')] as const)]);
    if (error) throw error;
    return client;
  }

  send(data: Data): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(data, { binary: typeof data !== 'string' }, (error) => (error ? reject(error) : resolve())));
  }
}

/** A ws server on 127.0.0.1 that echoes every message. */
async function withWsServer<V>(options: WS.ServerOptions, body: (port: number, sockets: WS[]) => Promise<V>): Promise<V> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...options });
  await once(wss, 'listening');
  const sockets: WS[] = [];
  wss.on('connection', (socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.on('message', (data, isBinary) => socket.send(data as Buffer, { binary: isBinary }));
  });
  try {
    return await body((wss.address() as { port: number }).port, sockets);
  } finally {
    for (const socket of sockets) socket.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }
}

/** Sends `messages` and checks that the echoes come back intact and in order (sending and receiving at once). */
async function echoRun(send: (data: Data) => Promise<void>, receive: () => Promise<Data>, messages: (i: number) => Data, count: number): Promise<void> {
  const sending = (async () => {
    for (let i = 0; i < count; i++) await send(messages(i));
  })();
  const failed = sending.then(() => new Promise<never>(() => {}));
  for (let i = 0; i < count; i++) {
    const got = await Promise.race([receive(), failed]);
    const expected = messages(i);
    if (!same(got, expected)) assert.fail(`echo ${i} differs: got ${describeData(got)}, expected ${describeData(expected)}`);
  }
  await sending;
}

// ── the suite ────────────────────────────────────────────────────────────────────────────

describe('faults through Toxiproxy', { skip: peerMissing(TOXIPROXY), timeout: 240_000 }, () => {
  before(async () => {
    process.on('unhandledRejection', onUnhandled);
    toxiproxy = await Toxiproxy.start();
  });

  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    await toxiproxy?.stop();
  });

  afterEach(() => {
    assert.deepEqual(unhandled.splice(0), [], 'no unhandled rejection');
  });

  // ── latency ────────────────────────────────────────────────────────────────────────────

  test('latency 200 ± 50 ms each way: 10,000 mixed messages echoed intact and in order, ping() shows the RTT, the closing handshake completes', { timeout: 90_000 }, async (t) => {
    await withServer({}, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      for (const stream of ['upstream', 'downstream'] as const) await toxiproxy.add(proxy, { name: `latency_${stream}`, type: 'latency', stream, attributes: { latency: 200, jitter: 50 } });
      let start = performance.now();
      const ws = await connect(proxy.url);
      const handshake = ms(start);
      const server = await echo.accepted.next();
      const rtts: number[] = [];
      for (let i = 0; i < 5; i++) rtts.push(Math.round(await ws.ping()));
      const serverRtt = Math.round(await server.ping());
      for (const rtt of [...rtts, serverRtt]) assert.ok(rtt >= 290 && rtt <= 500 + SLACK, `ping RTT ${rtt} ms, expected 300–500 ms (two legs of 200 ± 50 ms)`);
      start = performance.now();
      await echoRun((data) => ws.send(data), () => ws.receive(), mixed, 10_000);
      const run = ms(start);
      start = performance.now();
      await ws.close();
      const closing = ms(start);
      assert.equal(ws.closeCode, 1000);
      assert.deepEqual(await within(server.closed, 5_000), { code: 1000, reason: '' });
      assert.ok(closing >= 290 && closing <= 5_000, `the closing handshake took ${closing} ms (one RTT expected)`);
      assert.deepEqual(echo.ends, ['done']);
      figure(t, `latency 200±50 ms each way: handshake ${handshake} ms; ping RTT client ${rtts.join('/')} ms, server ${serverRtt} ms; 10,000 mixed messages (0 B–256 KiB, ${(sumSizes(10_000) / 1048576).toFixed(1)} MiB each way) echoed in ${run} ms; close() ${closing} ms`);
    }));
  });

  test('latency 200 ± 50 ms each way, ws as the other side: our client ↔ ws server and a ws client ↔ our server', { timeout: 60_000 }, async (t) => {
    const COUNT = 1_000;
    await withWsServer({}, (wsPort) => toxiproxy.with(wsPort, async (proxy) => {
      for (const stream of ['upstream', 'downstream'] as const) await toxiproxy.add(proxy, { name: `latency_${stream}`, type: 'latency', stream, attributes: { latency: 200, jitter: 50 } });
      const ws = await connect(proxy.url);
      const rtt = Math.round(await ws.ping());
      assert.ok(rtt >= 290 && rtt <= 500 + SLACK, `ping RTT against ws ${rtt} ms`);
      await echoRun((data) => ws.send(data), () => ws.receive(), mixed, COUNT);
      await ws.close();
      assert.equal(ws.closeCode, 1000);
      figure(t, `latency, our client ↔ ws server: ping RTT ${rtt} ms, ${COUNT} mixed messages echoed, close 1000`);
    }));
    await withServer({}, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      for (const stream of ['upstream', 'downstream'] as const) await toxiproxy.add(proxy, { name: `latency_${stream}`, type: 'latency', stream, attributes: { latency: 200, jitter: 50 } });
      const client = await WsClient.open(proxy.url);
      const server = await echo.accepted.next();
      const rtt = Math.round(await server.ping());
      assert.ok(rtt >= 290 && rtt <= 500 + SLACK, `our server's ping RTT to ws ${rtt} ms`);
      await echoRun((data) => client.send(data), () => client.messages.next(), mixed, COUNT);
      client.socket.close(1000);
      assert.deepEqual(await within(client.closed, 5_000), { code: 1000, reason: '' });
      assert.deepEqual(await within(server.closed, 5_000), { code: 1000, reason: '' });
      figure(t, `latency, ws client ↔ our server: our ping RTT ${rtt} ms, ${COUNT} mixed messages echoed, close 1000`);
    }));
  });

  test('latency 200 ± 50 ms each way, closing: both sides close at once (the close frames cross), and a reset in the middle of the closing handshake', { timeout: 30_000 }, async (t) => {
    const figures: string[] = [];
    const serverDone = deferred();
    await withServer({}, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      for (const stream of ['upstream', 'downstream'] as const) await toxiproxy.add(proxy, { name: `latency_${stream}`, type: 'latency', stream, attributes: { latency: 200, jitter: 50 } });
      await toxiproxy.add(proxy, { name: 'reset', type: 'reset_peer', stream: 'downstream', toxicity: 0, attributes: { timeout: 0 } });
      // Crossing close frames: each side gets the other's code.
      let ws = await connect(proxy.url);
      let server = await echo.accepted.next();
      let start = performance.now();
      const [client, serverSide] = await Promise.all([settle(ws.close(4000, 'client')), settle(server.close(4001, 'server'))]);
      const crossing = ms(start);
      assert.ok(client.ok && serverSide.ok, 'both close() calls resolve');
      assert.deepEqual([ws.closeCode, ws.closeReason], [4001, 'server']);
      assert.deepEqual([server.closeCode, server.closeReason], [4000, 'client']);
      assert.ok(crossing <= 5_000, `crossing closes took ${crossing} ms`);
      figures.push(`crossing close frames: both close() resolved after ${crossing} ms, each side with the other's code (4001 / 4000)`);
      // The connection reset while our close frame is on its way.
      ws = await connect(proxy.url);
      server = await echo.accepted.next();
      start = performance.now();
      const closing = settle(ws.close());
      await toxiproxy.update(proxy, 'reset', { toxicity: 1 });
      const closed = await within(closing, 5_000);
      const took = ms(start);
      assert.ok(closed, 'close() settles');
      assert.ok(closed.ok, `close() resolves when the connection is reset during the closing handshake (it rejected: ${closed.ok ? '' : String(closed.error)})`);
      assert.equal(ws.closeCode, 1006, 'the echo was lost in the reset: closeCode 1006');
      // The server got our close frame before the reset (only the way back is cut): 1000 there.
      assert.deepEqual(await within(server.closed, 5_000), { code: 1000, reason: '' });
      figures.push(`a reset that swallows the close echo: close() resolved after ${took} ms, closeCode 1006 (the server, which got the close frame, 1000)`);
      serverDone.resolve();
    }), async (ws) => {
      await serverDone.promise;
      await ws.closed;
    });
    figure(t, `closing under latency: ${figures.join('; ')}`);
  });

  // ── bandwidth ──────────────────────────────────────────────────────────────────────────

  for (const [sender, compression] of [['client', false], ['server', false], ['client', true]] as const) {
    const kind = compression ? ', compression on (incompressible data)' : '';
    test(`bandwidth 64 KB/s, the ${sender} sending${kind}: send() paces it (bufferedAmount bounded), nothing lost, in order`, { timeout: 60_000 }, async (t) => {
      const SIZE = 16 * KiB;
      const DURATION = 5_000;
      const highWaterMark = 64 * KiB;
      const progress = { sent: 0, received: 0, maxBuffered: 0, waited: 0, pendingSince: 0 };
      let stopSending = false;
      /** Message `seq`: its number, then pseudo-random bytes from it (deflate cannot shrink them). */
      const message = (seq: number) => {
        const out = new Uint8Array(SIZE);
        let x = seq * 2_654_435_761 + 1;
        for (let j = 4; j < SIZE; j++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          out[j] = x & 0xff;
        }
        new DataView(out.buffer).setUint32(0, seq);
        return out;
      };
      const pace = async (ws: WebSocket) => {
        while (!stopSending) {
          progress.pendingSince = performance.now();
          await ws.send(message(progress.sent));
          progress.waited += performance.now() - progress.pendingSince;
          progress.pendingSince = 0;
          progress.sent++;
          progress.maxBuffered = Math.max(progress.maxBuffered, ws.bufferedAmount);
        }
      };
      const count = async (ws: WebSocket) => {
        for await (const data of ws) {
          assert.ok(data instanceof Uint8Array && data.length === SIZE, 'a 16 KiB message');
          const seq = new DataView(data.buffer, data.byteOffset).getUint32(0);
          if (seq !== progress.received) assert.fail(`message ${seq} arrived where ${progress.received} was due`);
          if (Buffer.compare(data, message(seq)) !== 0) assert.fail(`message ${seq} damaged`);
          progress.received++;
        }
      };
      const serverDone = deferred();
      await withServer({ highWaterMark, compression }, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
        await toxiproxy.add(proxy, { name: 'bandwidth', type: 'bandwidth', stream: sender === 'client' ? 'upstream' : 'downstream', attributes: { rate: 64 } });
        const ws = await connect(proxy.url, { highWaterMark, compression });
        assert.equal(/permessage-deflate/.test(ws.extensions), compression);
        const start = performance.now();
        const sending = sender === 'client' ? pace(ws) : null;
        const receiving = sender === 'client' ? null : count(ws);
        await sleep(DURATION / 2);
        const sentAtHalf = progress.sent;
        await sleep(DURATION / 2);
        stopSending = true;
        const secondHalf = (progress.sent - sentAtHalf) * SIZE;
        // At the stop: what got through, and what send() had let go that has not arrived yet.
        const elapsed = performance.now() - start;
        const inFlight = (progress.sent - progress.received) * SIZE;
        const rate = (progress.received * SIZE) / (elapsed / 1_000);
        const waited = progress.waited + (progress.pendingSince > 0 ? performance.now() - progress.pendingSince : 0);
        // The rest goes through at full speed.
        await toxiproxy.removeToxic(proxy, 'bandwidth');
        await sending;
        const drainStart = performance.now();
        assert.ok(await eventually(() => progress.received === progress.sent, 20_000), `all ${progress.sent} messages arrive (${progress.received} did)`);
        const drain = ms(drainStart);
        const closeStart = performance.now();
        if (sender === 'client') await ws.close();
        else serverDone.resolve();
        await receiving;
        await within(ws.closed, 5_000);
        const closing = ms(closeStart);
        assert.equal(ws.closeCode, 1000);
        assert.ok(progress.maxBuffered <= highWaterMark + SIZE + 256, `bufferedAmount after send() resolved: at most ${progress.maxBuffered} B (highWaterMark ${highWaterMark} + one message)`);
        assert.ok(waited > DURATION / 2, `send() made the sender wait (${Math.round(waited)} ms of ${DURATION})`);
        assert.ok(secondHalf <= 1048576, `send() let ${secondHalf} B go in the second half of the run (the pipe carries about ${64_000 * DURATION / 2_000} B)`);
        assert.ok(inFlight < 16 * 1048576, `in flight beyond the sender (kernel buffers, the proxy) ${inFlight} B`);
        assert.ok(rate < 64_000 * 1.6, `throughput ${Math.round(rate)} B/s through a 64 KB/s pipe`);
        figure(t, `bandwidth 64 KB/s, ${sender} sending 16 KiB messages${kind} for ${DURATION / 1_000} s: throughput ${(rate / 1000).toFixed(1)} KB/s; send() blocked ${Math.min(100, Math.round((100 * waited) / elapsed))} % of the time; bufferedAmount ≤ ${progress.maxBuffered} B (highWaterMark ${highWaterMark}); ${progress.sent} sent, ${(secondHalf / 1024).toFixed(0)} KiB of them in the second half, ${(inFlight / 1048576).toFixed(2)} MiB in kernel buffers and the proxy at the stop; all ${progress.sent} delivered in order (${drain} ms after the toxic was removed); close ${closing} ms`);
      }), async (ws) => {
        if (sender === 'client') return count(ws);
        await pace(ws);
        await serverDone.promise;
        await ws.close();
      });
    });
  }

  // ── slicer ─────────────────────────────────────────────────────────────────────────────

  /** Every header length (2, 4, 10 bytes, masked or not), UTF-8 of 1 to 4 bytes, compressible and not. */
  const slicedMessages = (i: number): Data => {
    if (i < 120) return i % 2 === 0 ? text(i, 3 * i) : bytes(i, 3 * i);
    return [text(120, 125), text(121, 126), bytes(122, 127), text(123, 3_000), bytes(124, 65_536), 'compressible '.repeat(2_000), text(126, 20_000)][i - 120];
  };
  const SLICED = 127;

  test('slicer (1–7-byte segments, delays) both ways: frames reassembled with headers split anywhere, UTF-8 across splits, compression on; ours ↔ ours, ours ↔ ws, ws ↔ ours', { timeout: 90_000 }, async (t) => {
    const slice = async (proxy: Proxy) => {
      for (const stream of ['upstream', 'downstream'] as const) await toxiproxy.add(proxy, { name: `slicer_${stream}`, type: 'slicer', stream, attributes: { average_size: 4, size_variation: 3, delay: 20 } });
    };
    const timings: string[] = [];
    await withServer({ compression: true }, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      await slice(proxy);
      let start = performance.now();
      const ws = await connect(proxy.url, { compression: true });
      assert.match(ws.extensions, /permessage-deflate/);
      await echoRun((data) => ws.send(data), () => ws.receive(), slicedMessages, SLICED);
      await ws.close();
      assert.equal(ws.closeCode, 1000);
      timings.push(`ours ↔ ours ${ms(start)} ms`);
      // A raw client: invalid UTF-8 split across segments is still caught (1007).
      start = performance.now();
      const raw = await RawPeer.connect(proxy.port, { timeout: 10_000, wait: 10_000 });
      raw.send(WireOp.TEXT, Uint8Array.from([...Buffer.from('€€€ valid so far '), 0xf0, 0x9f, 0x98, 0x28, 0x41]));
      assert.equal((await raw.closeFrame()).code, 1007);
      raw.destroy();
      const withWs = await WsClient.open(proxy.url, { perMessageDeflate: true });
      assert.match(String(withWs.socket.extensions), /permessage-deflate/);
      start = performance.now();
      await echoRun((data) => withWs.send(data), () => withWs.messages.next(), slicedMessages, SLICED);
      withWs.socket.close(1000);
      assert.equal((await within(withWs.closed, 10_000))?.code, 1000);
      timings.push(`ws client ↔ our server ${ms(start)} ms`);
    }));
    await withWsServer({ perMessageDeflate: true }, (wsPort) => toxiproxy.with(wsPort, async (proxy) => {
      await slice(proxy);
      const start = performance.now();
      const ws = await connect(proxy.url, { compression: true });
      assert.match(ws.extensions, /permessage-deflate/);
      await echoRun((data) => ws.send(data), () => ws.receive(), slicedMessages, SLICED);
      await ws.close();
      assert.equal(ws.closeCode, 1000);
      timings.push(`our client ↔ ws server ${ms(start)} ms`);
    }));
    figure(t, `slicer 1–7 B every 20 µs both ways, compression on: ${SLICED} messages (0 B–64 KiB, ${(sumSizes(SLICED, slicedMessages) / 1024).toFixed(0)} KiB) echoed intact: ${timings.join(', ')}; invalid UTF-8 split across segments closed 1007`);
  });

  // ── black hole mid-connection ──────────────────────────────────────────────────────────

  // Toxiproxy passes one side's end on to the other, so when both sides' keepalives fire in the
  // same millisecond either may be first: each run gives one side the shorter pingTimeout, and
  // checks that side's keepalive ended it (1011) and the other side followed, both bounded.
  for (const first of ['client', 'server'] as const) {
    test(`black hole mid-connection (timeout toxic: data stops, no FIN), the ${first}'s keepalive first: it ends with 1011 within pingInterval + pingTimeout, the other side follows, 1006 on both, no timer or socket left`, { timeout: 30_000 }, async (t) => {
      const early = { pingInterval: 500, pingTimeout: 500 };
      const late = { pingInterval: 500, pingTimeout: 1_500 };
      const [clientKeepalive, serverKeepalive] = first === 'client' ? [early, late] : [late, early];
      const bound = early.pingInterval + early.pingTimeout;
      const baseline = timers();
      await withServer(serverKeepalive, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
        const ws = await connect(proxy.url, clientKeepalive);
        const server = await echo.accepted.next();
        await ws.send('before the black hole');
        assert.equal(await ws.receive(), 'before the black hole');
        const start = performance.now();
        for (const stream of ['upstream', 'downstream'] as const) await toxiproxy.add(proxy, { name: `timeout_${stream}`, type: 'timeout', stream, attributes: { timeout: 0 } });
        const received = settle(ws.receive());
        const [clientEnd, serverEnd] = await Promise.all([ws.closed.then(() => ms(start)), server.closed.then(() => ms(start))]);
        const clientError = await received;
        assert.ok(!clientError.ok);
        await sleep(50);
        const [firstEnd, firstCode] = first === 'client' ? [clientEnd, codeOf(clientError.error, 'receive() after the black hole')] : [serverEnd, echo.ends[0]];
        assert.equal(firstCode, 1011, `the ${first} ended by its keepalive`);
        if (first === 'client') assert.match((clientError.error as Error).message, /keepalive/);
        assert.ok(firstEnd >= early.pingTimeout - 50, `the ${first} gave up after ${firstEnd} ms, before pingTimeout`);
        assert.ok(firstEnd <= bound + SLACK, `the ${first} noticed after ${firstEnd} ms (pingInterval + pingTimeout = ${bound})`);
        assert.ok(Math.max(clientEnd, serverEnd) <= late.pingInterval + late.pingTimeout + SLACK, `both sides ended (client ${clientEnd} ms, server ${serverEnd} ms)`);
        assert.equal(ws.closeCode, 1006, 'no close frame came: closeCode 1006');
        assert.equal(server.closeCode, 1006);
        assert.ok(await eventually(() => tcpConnections([proxy.port, echo.server.port]) === 0, 2_000), `our sockets of the connection are gone (${tcpConnections([proxy.port, echo.server.port])} left)`);
        assert.ok(await eventually(() => timers() <= baseline, 2_000), `no timer left (${timers()} active, ${baseline} before)`);
        figure(t, `black hole mid-connection, the ${first}'s keepalive first (pingInterval ${early.pingInterval} + pingTimeout ${early.pingTimeout}): client ended after ${clientEnd} ms, server after ${serverEnd} ms; ${first} 1011 "keepalive ping timeout", the server's handler ended with ${echo.ends.join(', ')}, closeCode 1006 on both; 0 sockets and no timers left`);
      }));
    });
  }

  test('black hole mid-connection, ws as the other side: our server and our client each detect it by keepalive', { timeout: 30_000 }, async (t) => {
    const keepalive = { pingInterval: 500, pingTimeout: 500 };
    const bound = keepalive.pingInterval + keepalive.pingTimeout;
    let serverEnd = 0;
    let clientEnd = 0;
    await withServer(keepalive, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      const client = await WsClient.open(proxy.url);
      const server = await echo.accepted.next();
      const start = performance.now();
      for (const stream of ['upstream', 'downstream'] as const) await toxiproxy.add(proxy, { name: `timeout_${stream}`, type: 'timeout', stream, attributes: { timeout: 0 } });
      await server.closed;
      serverEnd = ms(start);
      assert.equal(server.closeCode, 1006);
      assert.ok(serverEnd <= bound + SLACK, `our server noticed after ${serverEnd} ms`);
      client.socket.terminate();
    }));
    await withWsServer({}, (wsPort) => toxiproxy.with(wsPort, async (proxy) => {
      const ws = await connect(proxy.url, keepalive);
      const start = performance.now();
      for (const stream of ['upstream', 'downstream'] as const) await toxiproxy.add(proxy, { name: `timeout_${stream}`, type: 'timeout', stream, attributes: { timeout: 0 } });
      const received = await settle(ws.receive());
      clientEnd = ms(start);
      assert.ok(!received.ok);
      assert.equal(codeOf(received.error, 'receive()'), 1011);
      assert.equal(ws.closeCode, 1006);
      assert.ok(clientEnd <= bound + SLACK, `our client noticed after ${clientEnd} ms`);
    }));
    figure(t, `black hole, ws on the other side: our server ended after ${serverEnd} ms, our client after ${clientEnd} ms (bound ${bound} ms)`);
  });

  test('black hole mid-connection, with a send() held by backpressure, a close() in the hole, and a receive queue full: each ends, bounded', { timeout: 30_000 }, async (t) => {
    const keepalive = { pingInterval: 500, pingTimeout: 500, closeTimeout: 1_000 };
    const bound = keepalive.pingInterval + keepalive.pingTimeout;
    const figures: string[] = [];
    const serverDone = deferred();
    // Keepalive on the client only: the server's would end its side, and the proxy would pass the end on.
    await withServer({ closeTimeout: keepalive.closeTimeout }, async (echo) => {
      // The timeout toxic reads and drops what comes, so the sender never feels it; an hour of
      // latency holds what comes instead, so buffers fill and TCP pushes back, as on a dead route.
      const hole = async (proxy: Proxy, type: 'timeout' | 'latency') => {
        for (const stream of ['upstream', 'downstream'] as const) {
          await toxiproxy.add(proxy, type === 'timeout' ? { name: `hole_${stream}`, type, stream, attributes: { timeout: 0 } } : { name: `hole_${stream}`, type, stream, attributes: { latency: 3_600_000 } });
        }
      };
      // 1. A send() that waits for the buffer to drain, when the link stalls. (This proxy is
      // left as it is: toxiproxy cannot take away a latency toxic whose data has nowhere to go.)
      const stalled = await toxiproxy.proxy(echo.server.port);
      let ws = await connect(stalled.url, keepalive);
      await hole(stalled, 'latency');
      let start = performance.now();
      let big = 0;
      let held: Promise<Settled<void>> | null = null;
      for (let i = 0; i < 200 && held === null; i++) {
        const sending = ws.send(bytes(i, 1048576));
        big++;
        const first = await Promise.race([sending.then(() => 'resolved', () => 'rejected'), sleep(300).then(() => 'held')]);
        if (first === 'held') held = settle(sending);
      }
      assert.ok(held, 'a send() was held by backpressure');
      const sent = await within(held, bound + SLACK + 1_000);
      assert.ok(sent && !sent.ok, 'the held send() rejects when keepalive gives up');
      const sendCode = codeOf(sent.error, 'the held send()');
      assert.ok([1006, 1011].includes(sendCode), `held send() rejected with ${sendCode}`);
      assert.ok(await within(ws.closed, 2_000));
      figures.push(`a send() held by backpressure on a stalled link (after ${big} MiB went in) rejected with ${sendCode} after ${ms(start)} ms`);
      await toxiproxy.with(echo.server.port, async (proxy) => {
        // 2. close() into the hole: resolves at closeTimeout (no close answer comes).
        ws = await connect(proxy.url, { ...keepalive, pingInterval: 0 });
        await hole(proxy, 'timeout');
        start = performance.now();
        await ws.close();
        const closing = ms(start);
        assert.equal(ws.closeCode, 1006);
        assert.ok(closing >= keepalive.closeTimeout - 50 && closing <= keepalive.closeTimeout + SLACK, `close() into a black hole took ${closing} ms`);
        figures.push(`close() into the hole resolved after ${closing} ms (closeTimeout ${keepalive.closeTimeout}), closeCode 1006`);
      });
      await toxiproxy.with(echo.server.port, async (proxy) => {
        // 3. A client whose receive queue is full: keepalive's pong deadline waits while it does
        // not read (as documented); once the application reads again, the dead link is found.
        ws = await connect(proxy.url, { ...keepalive, maxQueuedMessages: 4 });
        const server = (await eventually(() => echo.accepted.items.length >= 3, 5_000)) ? echo.accepted.items[2] : assert.fail('the third connection');
        for (let i = 0; i < 3; i++) await server.send(`queued ${i}`);
        for (let i = 0; i < 20; i++) void server.send(`more ${i}`).catch(() => {});
        await sleep(200);
        await hole(proxy, 'timeout');
        start = performance.now();
        await sleep(bound + 500);
        const stillOpen = ws.closeCode === undefined;
        const resumed = performance.now();
        let read = 0;
        let ended: unknown = null;
        try {
          for (;;) {
            await ws.receive();
            read++;
          }
        } catch (error) {
          ended = error;
        }
        const afterResume = ms(resumed);
        const endCode = codeOf(ended, 'receive() after the queue drained');
        assert.ok([1006, 1011].includes(endCode));
        assert.ok(afterResume <= bound + SLACK, `after reading resumed, the dead link was found in ${afterResume} ms`);
        figures.push(`a client with a full receive queue (maxQueuedMessages 4): ${stillOpen ? 'still open' : `closed ${ws.closeCode}`} ${bound + 500} ms into the hole while not reading; once it read again (${read} messages), it ended with ${endCode} after ${afterResume} ms`);
      });
      serverDone.resolve();
    }, async (ws) => {
      await serverDone.promise;
      await ws.closed;
    });
    figure(t, `black hole, harder cases: ${figures.join('; ')}`);
  });

  // ── reset mid-frame ────────────────────────────────────────────────────────────────────

  for (const sender of ['client', 'server'] as const) {
    test(`reset_peer mid-frame, the ${sender} sending: 1006 on both sides, the half message never delivered, the server keeps serving others`, { timeout: 30_000 }, async (t) => {
      const BIG = 2 * 1048576;
      const stream = sender === 'client' ? 'upstream' : 'downstream';
      const serverDone = deferred();
      const delivered: number[] = [];
      await withServer({}, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
        // A reset_peer toxic present when the connection starts makes toxiproxy set SO_LINGER 0
        // on both its sockets, so its close is an RST; toxicity 0 keeps it idle until needed.
        await toxiproxy.add(proxy, { name: 'bandwidth', type: 'bandwidth', stream, attributes: { rate: 256 } });
        await toxiproxy.add(proxy, { name: 'reset', type: 'reset_peer', stream, toxicity: 0, attributes: { timeout: 0 } });
        const other = await connect(`ws://127.0.0.1:${echo.server.port}/other`); // a connection without the proxy
        await other.send('first');
        assert.equal(await other.receive(), 'first');
        const ws = await connect(`${proxy.url}/faulty`);
        await echo.accepted.next();
        const server = await echo.accepted.next();
        assert.equal(server.url, '/faulty');
        const [receiver, senderSide] = sender === 'client' ? [server, ws] : [ws, server];
        const sending = settle(senderSide.send(bytes(1, BIG)));
        const receiving = settle(receiver.receive().then((data) => void delivered.push(typeof data === 'string' ? data.length : data.length)));
        assert.ok(await eventually(() => receiver.stats.bytesIn > 64 * KiB, 10_000), 'part of the frame arrived');
        const partial = receiver.stats.bytesIn;
        assert.ok(partial < BIG, 'the frame is not complete');
        await toxiproxy.update(proxy, 'reset', { toxicity: 1 });
        const [clientClosed, serverClosed] = await Promise.all([within(ws.closed, 5_000), within(server.closed, 5_000)]);
        assert.equal(clientClosed?.code, 1006);
        assert.equal(serverClosed?.code, 1006);
        const got = await receiving;
        assert.ok(!got.ok, `the half message is not delivered (got ${delivered.join()})`);
        assert.equal(codeOf(got.error, 'receive() of the cut message'), 1006);
        const cause = (got.error as Error).cause as { code?: string } | undefined;
        const sent = await sending;
        if (!sent.ok) assert.equal(codeOf(sent.error, 'send() of the cut message'), 1006);
        // The server still serves: the connection that had no fault, and a new one through the proxy.
        await other.send('still here');
        assert.equal(await other.receive(), 'still here');
        await other.close();
        await toxiproxy.removeToxic(proxy, 'reset');
        await toxiproxy.removeToxic(proxy, 'bandwidth');
        const again = await connect(proxy.url);
        await again.send('again');
        assert.equal(await again.receive(), 'again');
        await again.close();
        serverDone.resolve();
        figure(t, `reset_peer mid-frame (${sender} sending 2 MiB at 256 KB/s, reset after ${(partial / 1024).toFixed(0)} KiB): both sides 1006 (cause ${cause?.code ?? 'none'}), receive() rejected, send() ${sent.ok ? 'had resolved' : 'rejected 1006'}; the server served the other connection and a new one`);
      }), async (ws) => {
        if (ws.url === '/faulty') return serverDone.promise;
        for await (const message of ws) await ws.send(message);
      });
    });
  }

  test('reset_peer mid-frame, a ws client sending: our server ends it with 1006 and delivers nothing', { timeout: 30_000 }, async (t) => {
    const delivered: number[] = [];
    await withServer({}, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      await toxiproxy.add(proxy, { name: 'bandwidth', type: 'bandwidth', stream: 'upstream', attributes: { rate: 256 } });
      await toxiproxy.add(proxy, { name: 'reset', type: 'reset_peer', stream: 'upstream', toxicity: 0, attributes: { timeout: 0 } });
      const client = await WsClient.open(proxy.url);
      const server = await echo.accepted.next();
      const receiving = settle(server.receive().then((data) => void delivered.push(data.length)));
      void client.send(bytes(2, 2 * 1048576)).catch(() => {});
      assert.ok(await eventually(() => server.stats.bytesIn > 64 * KiB, 10_000), 'part of the frame arrived');
      await toxiproxy.update(proxy, 'reset', { toxicity: 1 });
      const got = await receiving;
      assert.ok(!got.ok, 'nothing delivered');
      assert.equal(codeOf(got.error, 'receive()'), 1006);
      assert.equal((await within(server.closed, 5_000))?.code, 1006);
      assert.equal((await within(client.closed, 5_000))?.code, 1006);
      figure(t, `reset_peer mid-frame, ws client sending: our server 1006, nothing delivered; ws saw ${client.errors.map((e) => (e as Error & { code?: string }).code ?? e.message).join(', ') || 'no error event'}`);
    }));
  });

  // ── limit_data ─────────────────────────────────────────────────────────────────────────

  for (const [stream, compression] of [['upstream', false], ['downstream', false], ['upstream', true], ['downstream', true]] as const) {
    const kind = compression ? ', compression on' : '';
    test(`limit_data ${stream}${kind}: the connection cut after N bytes, for every N through a handshake, a frame and the close: a clean error each time, never a crash, an unhandled rejection or a hang`, { timeout: 120_000 }, async (t) => {
      // Uncompressed: a 16-bit length field, and '€' and '😀' straddle cuts; compressed: a
      // message over the 1 KiB threshold, whose deflated frame is cut at every byte too.
      const message = compression ? text(7, 1_500) : text(7, 130);
      const outcomes = new Map<string, number[]>();
      const clientOptions: ClientOptions = { handshakeTimeout: 3_000, closeTimeout: 1_000, compression };
      await withServer({ handshakeTimeout: 3_000, closeTimeout: 1_000, compression }, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
        await toxiproxy.add(proxy, { name: 'limit', type: 'limit_data', stream, attributes: { bytes: 0 } });
        let cleanInARow = 0;
        let n = 0;
        for (; n <= 2_000 && cleanInARow < 3; n++) {
          await toxiproxy.update(proxy, 'limit', { attributes: { bytes: n } });
          const run = (async (): Promise<string> => {
            let ws: WebSocket;
            try {
              ws = await connect(proxy.url, clientOptions);
            } catch (error) {
              return `connect() rejected ${codeOf(error, `connect() at N=${n}`)}`;
            }
            try {
              if (compression) assert.match(ws.extensions, /permessage-deflate/);
              await ws.send(message);
              const echoed = await ws.receive();
              assert.equal(echoed, message, `a whole echo or none (N=${n})`);
              await ws.close();
              return ws.closeCode === 1000 ? 'echo, close 1000' : `echo, then closeCode ${ws.closeCode}`;
            } catch (error) {
              if (!(error instanceof WebSocketError)) throw error;
              const code = error.code;
              await ws.closed;
              return `opened, then ${code}${ws.closeCode !== code ? ` (closeCode ${ws.closeCode})` : ''}`;
            }
          })();
          const outcome = await within(run, 8_000);
          if (outcome === null) assert.fail(`N=${n}: no outcome within 8 s (a hang)`);
          cleanInARow = outcome === 'echo, close 1000' ? cleanInARow + 1 : 0;
          outcomes.set(outcome, [...(outcomes.get(outcome) ?? []), n]);
        }
        assert.equal(cleanInARow, 3, 'a large enough N lets the whole exchange through');
        // Every server-side connection ended (none left waiting), and no error reached onError.
        const accepted = echo.accepted.items;
        assert.ok(await within(Promise.all(accepted.map((ws) => ws.closed)), 5_000), 'every server-side connection ended');
        await sleep(50);
        assert.deepEqual(echo.errors, []);
        const serverEnds = new Map<string | number, number>();
        for (const end of echo.ends) serverEnds.set(end, (serverEnds.get(end) ?? 0) + 1);
        const ranges = (ns: number[]) => ns.reduce<Array<[number, number]>>((list, x) => {
          const last = list.at(-1);
          if (last && last[1] === x - 1) last[1] = x;
          else list.push([x, x]);
          return list;
        }, []).map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(', ');
        figure(t, `limit_data ${stream}${kind}, N = 0…${n - 1} (${n} connections): ${[...outcomes].map(([outcome, ns]) => `${outcome}: N ${ranges(ns)}`).join('; ')}; server handlers: ${[...serverEnds].map(([end, k]) => `${end} ×${k}`).join(', ')}; ${accepted.length} server-side connections, all ended`);
      }));
    });
  }

  // ── slow_close ─────────────────────────────────────────────────────────────────────────

  test('slow_close (the proxy holds each FIN for 4 s): close() resolves within closeTimeout, from either side, against ours and ws', { timeout: 60_000 }, async (t) => {
    const closeTimeout = 1_000;
    const slow = async (proxy: Proxy) => {
      for (const stream of ['upstream', 'downstream'] as const) await toxiproxy.add(proxy, { name: `slow_close_${stream}`, type: 'slow_close', stream, attributes: { delay: 4_000 } });
    };
    const took: string[] = [];
    await withServer({ closeTimeout }, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      await slow(proxy);
      let ws = await connect(proxy.url, { closeTimeout });
      let server = await echo.accepted.next();
      let start = performance.now();
      await ws.close();
      const clientClose = ms(start);
      assert.equal(ws.closeCode, 1000);
      assert.ok(clientClose <= closeTimeout + SLACK, `client close() took ${clientClose} ms`);
      assert.equal((await within(server.closed, closeTimeout + SLACK))?.code, 1000);
      took.push(`our client's close() ${clientClose} ms`);
      ws = await connect(proxy.url, { closeTimeout });
      server = await echo.accepted.next();
      start = performance.now();
      await server.close(1001, 'bye');
      const serverClose = ms(start);
      assert.ok(serverClose <= closeTimeout + SLACK, `server close() took ${serverClose} ms`);
      assert.deepEqual(await within(ws.closed, closeTimeout + SLACK), { code: 1001, reason: 'bye' });
      took.push(`our server's ws.close() ${serverClose} ms`);
      ws = await connect(proxy.url, { closeTimeout });
      await echo.accepted.next();
      start = performance.now();
      await echo.server.close();
      const serverShutdown = ms(start);
      assert.ok(serverShutdown <= closeTimeout + SLACK, `server.close() took ${serverShutdown} ms`);
      assert.equal((await within(ws.closed, closeTimeout + SLACK))?.code, 1001);
      took.push(`server.close() ${serverShutdown} ms`);
    }));
    await withWsServer({}, (wsPort) => toxiproxy.with(wsPort, async (proxy) => {
      await slow(proxy);
      const ws = await connect(proxy.url, { closeTimeout });
      const start = performance.now();
      await ws.close();
      const clientClose = ms(start);
      assert.equal(ws.closeCode, 1000);
      assert.ok(clientClose <= closeTimeout + SLACK, `close() against ws took ${clientClose} ms`);
      took.push(`our client's close() against ws ${clientClose} ms`);
    }));
    figure(t, `slow_close 4 s, closeTimeout ${closeTimeout} ms: ${took.join(', ')}`);
  });

  // ── black hole during the opening handshake ────────────────────────────────────────────

  test('black hole during the opening handshake: connect() rejects with 1006 at handshakeTimeout; the server\'s handshake timer frees its socket', { timeout: 30_000 }, async (t) => {
    const figures: string[] = [];
    // The client's timer: the server waits longer than the client.
    await withServer({ handshakeTimeout: 5_000 }, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      await toxiproxy.add(proxy, { name: 'timeout', type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } });
      const start = performance.now();
      const result = await settle(connect(proxy.url, { handshakeTimeout: 800 }));
      const took = ms(start);
      assert.ok(!result.ok);
      assert.equal(codeOf(result.error, 'connect()'), 1006);
      assert.match((result.error as Error).message, /handshake timed out after 800 ms/);
      assert.ok(took >= 790 && took <= 800 + SLACK, `connect() rejected after ${took} ms`);
      assert.ok(await eventually(() => tcpConnections([proxy.port]) === 0, 1_000), 'the client socket is gone');
      figures.push(`connect() rejected after ${took} ms (handshakeTimeout 800)`);
    }));
    // The server's timer: the client waits longer than the server.
    await withServer({ handshakeTimeout: 800 }, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      await toxiproxy.add(proxy, { name: 'timeout', type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } });
      const start = performance.now();
      const connecting = settle(connect(proxy.url, { handshakeTimeout: 10_000 }));
      assert.ok(await eventually(() => tcpConnections([echo.server.port]) === 1, 2_000), 'the proxy connected to the server');
      assert.ok(await eventually(() => tcpConnections([echo.server.port]) === 0, 800 + SLACK), 'the server freed the socket of a handshake that never came');
      const freed = ms(start);
      assert.ok(freed >= 700, `freed after ${freed} ms, before handshakeTimeout`);
      const result = await within(connecting, 5_000);
      assert.ok(result && !result.ok, 'connect() rejects once the server has hung up');
      assert.equal(codeOf(result.error, 'connect()'), 1006);
      assert.equal(echo.accepted.items.length, 0);
      figures.push(`the server freed the silent connection after ${freed} ms (handshakeTimeout 800), and the client then got 1006 (${(result.error as Error).message})`);
    }));
    // Only the answer lost: the server has an open connection, the client gives up.
    await withServer({}, async (echo) => toxiproxy.with(echo.server.port, async (proxy) => {
      await toxiproxy.add(proxy, { name: 'timeout', type: 'timeout', stream: 'downstream', attributes: { timeout: 0 } });
      const start = performance.now();
      const result = await settle(connect(proxy.url, { handshakeTimeout: 800 }));
      const took = ms(start);
      assert.ok(!result.ok);
      assert.equal(codeOf(result.error, 'connect()'), 1006);
      assert.ok(took >= 790 && took <= 800 + SLACK, `connect() rejected after ${took} ms`);
      const server = await echo.accepted.next();
      assert.equal((await within(server.closed, 5_000))?.code, 1006);
      figures.push(`101 lost on the way back: connect() rejected after ${took} ms, the server's connection then ended 1006`);
    }));
    figure(t, `black hole during the handshake: ${figures.join('; ')}`);
  });
});

function sumSizes(count: number, messages: (i: number) => Data = mixed): number {
  let total = 0;
  for (let i = 0; i < count; i++) {
    const data = messages(i);
    total += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  }
  return total;
}
