// The lean load-generating client: one client for every server of the server comparison
// (websockets.ts, ws + bufferutil, uWebSockets.js, raw node:net), so that the server's own cost
// is what differs. It costs as little as a client can: node:net sockets, a hand-written
// upgrade request, every frame it sends built (and masked) once before the run, and what it
// receives only counted in bytes: a reply is complete when its frame's bytes have arrived
// (the size of every reply is known in advance: the servers send unmasked frames with the
// shortest header; node:net echoes the masked frame as it is and skips the handshake).
//
//   small        `inFlight` 16-byte TEXT frames echoed: messages/s here
//   stream-up    a pre-built 64 KiB BINARY frame written as fast as node:net drains (the server measures)
//   stream-down  bytes the server streams, counted: MB/s here
//   large        one pre-built 16 MiB BINARY frame echoed: ms per round trip
//   conns        connections opened (upgrade, one echo), then broadcast rounds
//   active       `activeConnections` connections, each sending a small TEXT frame every
//                `activeIntervalMs` and awaiting its echo: round-trip latency, measured here
//   tls-small, tls-stream   small and stream-up over TLS (node:tls instead of node:net)

import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import {
  BROADCAST_COMMAND,
  OVER_TLS,
  RoundCounter,
  Window,
  binaryPayload,
  dial,
  fail,
  ignore,
  openMany,
  percentiles,
  post,
  processInfo,
  pumpNet,
  readConfig,
  serveCommands,
  serveFleet,
  textPayload,
  type Values,
} from './common.ts';

const config = readConfig();
const { params } = config;
/** node:net servers have no handshake and no framing: they echo the client's bytes. */
const raw = config.peer === 'net';
/** TLS scenarios: the self-signed certificate to trust. */
const ca = config.tls ? readFileSync(config.tls.cert, 'utf8') : undefined;

const TEXT = 0x1;
const BINARY = 0x2;
const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

function headerLength(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/** One final masked frame, built once. */
function maskedFrame(payload: Uint8Array, opcode: number): Buffer {
  const header = headerLength(payload.length, true);
  const frame = Buffer.allocUnsafe(header + payload.length);
  frame[0] = 0x80 | opcode;
  if (payload.length < 126) frame[1] = 0x80 | payload.length;
  else if (payload.length < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(payload.length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  MASK.copy(frame, header - 4);
  for (let i = 0; i < payload.length; i++) frame[header + i] = payload[i] ^ MASK[i & 3];
  return frame;
}

/** Bytes of the server's reply to a message of `length` bytes: an unmasked frame, or (node:net) our frame echoed. */
const replyLength = (length: number) => length + headerLength(length, raw);

const UPGRADE = (host: string, port: number) =>
  `GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

/**
 * A connected socket, upgraded (except against node:net). No bytes may arrive after the 101
 * response before we send a frame, unless `early` takes them (stream-down: the server streams at once).
 */
async function open(early?: (bytes: number) => void): Promise<Socket> {
  const socket = await dial(params.host, config.port, ca);
  if (raw) return socket;
  socket.write(UPGRADE(params.host, config.port));
  let head = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      if (!head.startsWith('HTTP/1.1 101')) reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      else if (end + 4 !== head.length && !early) reject(new Error('bytes after the 101 response before any message was sent'));
      else {
        if (end + 4 !== head.length) early?.(head.length - end - 4);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed during the upgrade')));
  });
  return socket;
}

const receiverWindow = () => new Window(params.warmupMs, params.durationMs, (values) => post({ type: 'result', values }));

// ── small ────────────────────────────────────────────────────────────────────────────────

async function small(): Promise<void> {
  const frame = maskedFrame(Buffer.from(textPayload(params.smallSize)), TEXT);
  // Up to inFlight frames back to back, so that n replies are answered with one write.
  const frames = Buffer.concat(Array.from({ length: params.inFlight }, () => frame));
  const reply = replyLength(params.smallSize);
  const window = receiverWindow();
  const socket = await open();
  let partial = 0;
  socket.on('data', (chunk: Buffer) => {
    partial += chunk.length;
    let complete = Math.floor(partial / reply);
    if (complete === 0) return;
    partial -= complete * reply;
    window.add(complete * params.smallSize, complete);
    while (complete > 0) {
      const n = Math.min(complete, params.inFlight);
      socket.write(frames.subarray(0, n * frame.length));
      complete -= n;
    }
  });
  socket.write(frames);
}

// ── streaming ────────────────────────────────────────────────────────────────────────────

async function streamUp(): Promise<void> {
  pumpNet(await open(), maskedFrame(binaryPayload(params.streamSize), BINARY));
}

async function streamDown(): Promise<void> {
  const window = receiverWindow();
  const reply = raw ? params.streamSize : replyLength(params.streamSize);
  const count = (bytes: number) => window.add(bytes, bytes / reply);
  const socket = await open(count);
  socket.on('data', (chunk: Buffer) => count(chunk.length));
}

// ── large ────────────────────────────────────────────────────────────────────────────────

async function large(): Promise<void> {
  const frame = maskedFrame(binaryPayload(params.largeSize), BINARY);
  const reply = replyLength(params.largeSize);
  const socket = await open();
  let received = 0;
  let wake: (() => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received >= reply && wake) wake();
  });
  const times: number[] = [];
  const deadline = performance.now() + params.largeMaxMs;
  for (let trip = 0; trip < params.largeWarmupTrips + params.largeTrips; trip++) {
    received = 0;
    const t0 = performance.now();
    const done = new Promise<void>((resolve) => (wake = resolve));
    socket.write(frame);
    await done;
    wake = null;
    const ms = performance.now() - t0;
    if (received !== reply) throw new Error(`received ${received} bytes, expected a ${reply}-byte reply`);
    if (trip >= params.largeWarmupTrips) times.push(ms);
    if (performance.now() > deadline && times.length > 0) break;
  }
  const values: Values = {
    msPerTrip: times.reduce((sum, ms) => sum + ms, 0) / times.length,
    trips: times.length,
    minMs: Math.min(...times),
    maxMs: Math.max(...times),
  };
  post({ type: 'result', values });
}

// ── conns ────────────────────────────────────────────────────────────────────────────────

function conns(): void {
  const hello = maskedFrame(Buffer.from(textPayload(params.smallSize)), TEXT);
  const helloReply = replyLength(params.smallSize);
  const command = maskedFrame(Buffer.from(BROADCAST_COMMAND), TEXT);
  // What a broadcast delivers to each connection: a TEXT frame, or node:net's raw bytes.
  const perSocket = raw ? params.broadcastSize : params.broadcastSize + 2;
  const sockets: Socket[] = [];
  const counter = new RoundCounter();

  const openOne = async () => {
    const socket = await open();
    socket.write(hello);
    let got = 0;
    await new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        got += chunk.length;
        if (got < helloReply) return;
        socket.off('data', onData);
        resolve();
      };
      socket.on('data', onData);
    });
    sockets.push(socket);
    socket.on('data', (chunk: Buffer) => counter.count(chunk.length));
  };

  serveFleet({ openOne, trigger: () => void sockets[0]?.write(command), perRound: () => sockets.length * perSocket }, counter, params.concurrency);
}

// ── active: many connections, each echoing a small message every few milliseconds ─────

/**
 * Opens `activeConnections` connections, then (on the runner's 'active') each sends one
 * `activeSize`-byte TEXT frame every `activeIntervalMs` and waits for its echo: connection i
 * sends on the milliseconds ≡ i (mod the interval), so the load is spread evenly. A
 * connection whose echo is not back by its next turn skips that turn (counted as `late`):
 * a closed loop, so a slow server sees fewer messages, never an unbounded queue. After
 * `activeWarmupMs` (posted as 'measuring'), every round trip of the next `activeDurationMs`
 * is recorded: send to the last byte of the echo, on this process's clock.
 */
function active(): void {
  const frame = maskedFrame(Buffer.from(textPayload(params.activeSize)), TEXT);
  const reply = replyLength(params.activeSize);
  const period = params.activeIntervalMs;
  interface Conn {
    socket: Socket;
    /** bytes of the pending echo received so far */
    got: number;
    /** when its frame was sent, or -1 when it waits for its turn */
    sentAt: number;
  }
  const conns: Conn[] = [];
  // Round trips recorded in the window: at most one per connection per interval (+ slack).
  const capacity = Math.ceil((params.activeConnections * params.activeDurationMs) / period) + params.activeConnections;
  const samples = new Float64Array(capacity);
  let recorded = 0;
  let recording = false;
  let late = 0;

  const openOne = async () => {
    const socket = await open();
    const conn: Conn = { socket, got: 0, sentAt: -1 };
    socket.on('data', (chunk: Buffer) => {
      conn.got += chunk.length;
      if (conn.got < reply || conn.sentAt < 0) return;
      if (conn.got > reply) {
        fail(new Error(`${conn.got} bytes received for a ${reply}-byte echo`));
        process.exit(1);
      }
      conn.got = 0;
      if (recording && recorded < capacity) samples[recorded++] = performance.now() - conn.sentAt;
      conn.sentAt = -1;
    });
    conns.push(conn);
  };

  const run = async (): Promise<Values> => {
    const buckets: Conn[][] = Array.from({ length: period }, () => []);
    conns.forEach((conn, i) => buckets[i % period].push(conn));
    const t0 = performance.now();
    let done = -1; // the last millisecond whose turn was taken
    const tick = () => {
      const now = Math.floor(performance.now() - t0);
      // After a stall, each connection gets at most one turn (the turns it missed are skipped).
      for (let ms = Math.max(done + 1, now - period + 1); ms <= now; ms++) {
        for (const conn of buckets[ms % period]) {
          if (conn.sentAt >= 0) {
            if (recording) late++;
            continue;
          }
          conn.sentAt = performance.now();
          conn.socket.write(frame);
        }
      }
      done = now;
    };
    const timer = setInterval(tick, 1);
    try {
      await new Promise((resolve) => setTimeout(resolve, params.activeWarmupMs));
      recording = true;
      post({ type: 'measuring' });
      const w0 = performance.now();
      await new Promise((resolve) => setTimeout(resolve, params.activeDurationMs));
      recording = false;
      const seconds = (performance.now() - w0) / 1000;
      const [p50, p99] = percentiles(samples.subarray(0, recorded), [0.5, 0.99]);
      let max = 0;
      for (let i = 0; i < recorded; i++) max = Math.max(max, samples[i]);
      return { p50, p99, max, roundTrips: recorded, perSecond: recorded / seconds, late, seconds };
    } finally {
      clearInterval(timer);
    }
  };

  serveCommands(async (command) => {
    if (command.type !== 'active') return;
    const seconds = await openMany(0, params.activeConnections, params.concurrency, openOne);
    post({ type: 'opened', total: conns.length, seconds });
    post({ type: 'result', values: await run() });
  });
}

// ── main ─────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  if (config.scenario !== 'conns' && config.scenario !== 'active') serveCommands(ignore);
  post({ type: 'ready', port: config.port, info: processInfo('lean') });
  switch (OVER_TLS[config.scenario] ?? config.scenario) {
    case 'small':
      return small();
    case 'stream-up':
      return streamUp();
    case 'stream-down':
      return streamDown();
    case 'large':
      return large();
    case 'conns':
      return conns();
    case 'active':
      return active();
    case 'compress':
      throw new Error('the lean client does not compress: compress is not a server-comparison scenario');
  }
}

main().catch((error: unknown) => {
  fail(error);
  process.exit(1);
});
