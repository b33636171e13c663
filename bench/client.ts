// The client process of one benchmark run: websockets.ts, ws or raw node:net against the
// server the runner started. It posts `ready`, then runs its scenario:
//
//   small        one connection, `inFlight` TEXT messages echoed: the client is the receiver
//   stream-up    BINARY messages to the server as fast as backpressure allows (the server measures)
//   stream-down  counts what the server streams: the client is the receiver
//   large        one big BINARY message echoed, again and again: ms per round trip
//   conns        on the runner's commands: open connections up to a total (each echoes one
//                message, then idles), and time broadcast rounds
//
// Each library is used as its README shows: websockets.ts through connect(), `for await`
// and receive(); ws through 'message' events; node:net through 'data' events.

import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { connect } from '../websockets.ts';
import type { WebSocket } from '../websockets.ts';
import type { RawData, WebSocket as WsWebSocket } from 'ws';
import {
  BROADCAST_COMMAND,
  OVER_TLS,
  RoundCounter,
  Window,
  binaryPayload,
  byteLength,
  dial,
  fail,
  jsonPayload,
  ignore,
  post,
  processInfo,
  pumpNet,
  pumpWs,
  readConfig,
  serveCommands,
  serveFleet,
  textPayload,
  type Values,
} from './common.ts';
import type { Fleet } from './common.ts';

const config = readConfig();
const { params } = config;
/** TLS scenarios: the self-signed certificate to trust. */
const ca = config.tls ? readFileSync(config.tls.cert, 'utf8') : undefined;
const url = `${ca ? 'wss' : 'ws'}://${params.host}:${config.port}/`;
// Keepalive off, as ws has none by default; compress: permessage-deflate with the library's defaults.
const OUR_OPTIONS = { pingInterval: 0, compression: config.scenario === 'compress', ...(ca ? { tls: { ca } } : {}) } as const;

const receiverWindow = () => new Window(params.warmupMs, params.durationMs, (values) => post({ type: 'result', values }));

// ── connecting ───────────────────────────────────────────────────────────────────────────

type WsClass = typeof import('ws').WebSocket;
let WsSocket: WsClass | undefined;

async function connectWs(): Promise<WsWebSocket> {
  WsSocket ??= (await import('ws')).WebSocket;
  const ws = new WsSocket(url, { perMessageDeflate: config.scenario === 'compress', ...(ca ? { ca } : {}) });
  await once(ws, 'open');
  ws.on('error', ignore);
  return ws;
}

const connectNet = (): Promise<Socket> => dial(params.host, config.port, ca);

/** A ws user who receives TEXT wants a string: ws hands over the bytes, so decode them. */
function wsMessage(data: RawData, isBinary: boolean): string | RawData {
  return isBinary ? data : data.toString();
}

// ── small: one connection, `inFlight` messages echoed ───────────────────────────────────

/** small: 16-byte messages; compress: 16 KiB JSON-like text, compressed both ways. */
async function small(): Promise<void> {
  const compress = config.scenario === 'compress';
  const message = compress ? jsonPayload(params.compressSize) : textPayload(params.smallSize);
  const inFlight = compress ? params.compressInFlight : params.inFlight;
  const window = receiverWindow();
  if (config.impl === 'ours') {
    const ws = await connect(url, OUR_OPTIONS);
    if (compress && !ws.extensions.includes('permessage-deflate')) throw new Error(`compression was not negotiated (extensions: '${ws.extensions}')`);
    for (let i = 0; i < inFlight; i++) ws.send(message).catch(ignore);
    for await (const reply of ws) {
      window.add(byteLength(reply));
      await ws.send(message);
    }
  } else if (config.impl === 'ws') {
    const ws = await connectWs();
    if (compress && !ws.extensions.includes('permessage-deflate')) throw new Error(`compression was not negotiated (extensions: '${ws.extensions}')`);
    ws.on('message', (data, isBinary) => {
      window.add(byteLength(wsMessage(data, isBinary)));
      ws.send(message);
    });
    for (let i = 0; i < inFlight; i++) ws.send(message);
  } else {
    // No framing: every `smallSize` bytes back count as a message and send the next one.
    const socket = await connectNet();
    const bytes = Buffer.from(message);
    let partial = 0;
    socket.on('data', (chunk) => {
      partial += chunk.length;
      const complete = Math.floor(partial / bytes.length);
      if (complete === 0) return;
      partial -= complete * bytes.length;
      window.add(complete * bytes.length, complete);
      for (let i = 0; i < complete; i++) socket.write(bytes);
    });
    for (let i = 0; i < params.inFlight; i++) socket.write(bytes);
  }
}

// ── streaming ────────────────────────────────────────────────────────────────────────────

async function streamUp(): Promise<void> {
  const chunk = binaryPayload(params.streamSize);
  if (config.impl === 'ours') {
    const ws = await connect(url, OUR_OPTIONS);
    try {
      for (;;) await ws.send(chunk);
    } catch {
      // the runner ended the run
    }
  } else if (config.impl === 'ws') {
    pumpWs(await connectWs(), chunk, params.highWaterMark);
  } else {
    pumpNet(await connectNet(), chunk);
  }
}

async function streamDown(): Promise<void> {
  const window = receiverWindow();
  if (config.impl === 'ours') {
    const ws = await connect(url, OUR_OPTIONS);
    for await (const message of ws) window.add(byteLength(message));
  } else if (config.impl === 'ws') {
    const ws = await connectWs();
    ws.on('message', (data) => window.add(byteLength(data)));
  } else {
    const socket = await connectNet();
    socket.on('data', (chunk) => window.add(chunk.length, chunk.length / params.streamSize));
  }
}

// ── large: one message echoed, again and again ──────────────────────────────────────────

async function large(): Promise<void> {
  const payload = binaryPayload(params.largeSize);
  let roundTrip: () => Promise<number>;
  if (config.impl === 'ours') {
    const ws = await connect(url, OUR_OPTIONS);
    roundTrip = async () => {
      const reply = ws.receive();
      await ws.send(payload);
      return byteLength(await reply);
    };
  } else if (config.impl === 'ws') {
    const ws = await connectWs();
    roundTrip = async () => {
      const reply = once(ws, 'message');
      ws.send(payload);
      const [data] = (await reply) as [RawData, boolean];
      return byteLength(data);
    };
  } else {
    const socket = await connectNet();
    let received = 0;
    let wake: (() => void) | null = null;
    socket.on('data', (chunk) => {
      received += chunk.length;
      if (received >= payload.length && wake) wake();
    });
    roundTrip = async () => {
      received = 0;
      const done = new Promise<void>((resolve) => (wake = resolve));
      socket.write(payload);
      await done;
      wake = null;
      return received;
    };
  }
  const times: number[] = [];
  const deadline = performance.now() + params.largeMaxMs;
  for (let trip = 0; trip < params.largeWarmupTrips + params.largeTrips; trip++) {
    const t0 = performance.now();
    const length = await roundTrip();
    const ms = performance.now() - t0;
    if (length !== payload.length) throw new Error(`echoed ${length} bytes, sent ${payload.length}`);
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

// ── conns: many connections, each echoes one message and idles; broadcast rounds ───────

function conns(): void {
  const hello = textPayload(params.smallSize);
  const counter = new RoundCounter();
  const onBroadcast = counter.count;

  let fleet: Fleet;
  if (config.impl === 'ours') {
    const sockets: WebSocket[] = [];
    fleet = {
      async openOne() {
        const ws = await connect(url, OUR_OPTIONS);
        await ws.send(hello);
        const echo = await ws.receive();
        if (echo !== hello) throw new Error('bad echo');
        sockets.push(ws);
        void (async () => {
          for await (const message of ws) onBroadcast(message === '' ? 0 : 1);
        })().catch(ignore);
      },
      trigger: () => void sockets[0].send(BROADCAST_COMMAND).catch(ignore),
      perRound: () => sockets.length,
    };
  } else if (config.impl === 'ws') {
    const sockets: WsWebSocket[] = [];
    fleet = {
      async openOne() {
        const ws = await connectWs();
        const echo = once(ws, 'message');
        ws.send(hello);
        const [data, isBinary] = (await echo) as [RawData, boolean];
        if (wsMessage(data, isBinary) !== hello) throw new Error('bad echo');
        sockets.push(ws);
        ws.on('message', (message, binary) => onBroadcast(wsMessage(message, binary) === '' ? 0 : 1));
      },
      trigger: () => sockets[0].send(BROADCAST_COMMAND),
      perRound: () => sockets.length,
    };
  } else {
    const sockets: Socket[] = [];
    fleet = {
      async openOne() {
        const socket = await connectNet();
        socket.write(hello);
        let got = 0;
        await new Promise<void>((resolve) => {
          const onData = (chunk: Buffer) => {
            got += chunk.length;
            if (got < hello.length) return;
            socket.off('data', onData);
            resolve();
          };
          socket.on('data', onData);
        });
        sockets.push(socket);
        socket.on('data', (chunk: Buffer) => onBroadcast(chunk.length));
      },
      trigger: () => void sockets[0].write(BROADCAST_COMMAND),
      perRound: () => sockets.length * params.broadcastSize,
    };
  }

  serveFleet(fleet, counter, params.concurrency);
}

// ── main ─────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  if (config.scenario !== 'conns') serveCommands(ignore);
  post({ type: 'ready', port: config.port, info: processInfo(config.impl) });
  if (config.impl === 'ws') WsSocket = (await import('ws')).WebSocket;
  switch (OVER_TLS[config.scenario] ?? config.scenario) {
    case 'small':
    case 'compress':
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
      throw new Error('active is a server-comparison scenario: the lean client runs it');
  }
}

main().catch((error: unknown) => {
  fail(error);
  process.exit(1);
});
