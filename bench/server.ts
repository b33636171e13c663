// The server process of one benchmark run: websockets.ts, ws or raw node:net, in the mode its
// scenario needs (see SERVER_MODE). It listens on 127.0.0.1 with a free port, posts `ready`,
// then answers the runner's `memory` commands. In `sink` mode it is the receiver and posts
// the `result` itself.
//
// Each library is used as its README shows: websockets.ts through listen() and `for await`,
// ws through WebSocketServer and 'message' events, node:net through 'data' events.

import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { writeHeapSnapshot } from 'node:v8';
import * as lib from '../websockets.ts';
import type { Data, WebSocket } from '../websockets.ts';
import type { RawData } from 'ws';
import {
  BROADCAST_COMMAND,
  SERVER_MODE,
  Window,
  binaryPayload,
  byteLength,
  collectGarbage,
  fail,
  ignore,
  loadUws,
  measureMemory,
  post,
  processInfo,
  pumpNet,
  pumpWs,
  readConfig,
  serveCommands,
  textPayload,
  type UwsSocket,
} from './common.ts';

const config = readConfig();
const { params } = config;
const mode = SERVER_MODE[config.scenario];
/** TLS scenarios: the certificate and its key, PEM. */
const tls = config.tls ? { key: readFileSync(config.tls.key, 'utf8'), cert: readFileSync(config.tls.cert, 'utf8') } : undefined;

/** The receiver's window (sink mode): the server posts the result. */
const sinkWindow = () => new Window(params.warmupMs, params.durationMs, (values) => post({ type: 'result', values }));

/** How many connections the server holds (for the memory samples). */
let connectionCount = (): number => 0;

// ── websockets.ts ────────────────────────────────────────────────────────────────────────

type Broadcast = (sockets: Iterable<WebSocket>, message: Data) => unknown;

/** The library's broadcast(), once it has one (looked up at run time: it may not exist yet). */
function findBroadcast(): Broadcast | null {
  const candidate: unknown = Reflect.get(lib, 'broadcast');
  return typeof candidate === 'function' ? (candidate as Broadcast) : null;
}

async function startOurs(): Promise<number> {
  let handler: (ws: WebSocket) => Promise<void>;
  if (mode === 'echo') {
    handler = async (ws) => {
      for await (const message of ws) await ws.send(message);
    };
  } else if (mode === 'sink') {
    const window = sinkWindow();
    handler = async (ws) => {
      for await (const message of ws) window.add(byteLength(message));
    };
  } else if (mode === 'source') {
    const chunk = binaryPayload(params.streamSize);
    handler = async (ws) => {
      for (;;) await ws.send(chunk);
    };
  } else {
    const sockets = new Set<WebSocket>();
    connectionCount = () => sockets.size;
    const payload = textPayload(params.broadcastSize);
    const broadcast = findBroadcast();
    handler = async (ws) => {
      sockets.add(ws);
      try {
        for await (const message of ws) {
          if (message !== BROADCAST_COMMAND) await ws.send(message);
          else if (broadcast) Promise.resolve(broadcast(sockets, payload)).catch(ignore);
          else for (const socket of sockets) socket.send(payload).catch(ignore); // the usual loop
        }
      } finally {
        sockets.delete(ws);
      }
    };
  }
  // Keepalive off for fairness (ws pings nobody by default); the runner kills connections, so no error reports.
  // compress: permessage-deflate with the library's defaults.
  const server = await lib.listen(params.host, 0, handler, { pingInterval: 0, onError: ignore, compression: config.scenario === 'compress', ...(tls ? { tls } : {}) });
  return server.port;
}

// ── ws ───────────────────────────────────────────────────────────────────────────────────

function isCommand(data: RawData, isBinary: boolean): boolean {
  return !isBinary && Buffer.isBuffer(data) && data.length === BROADCAST_COMMAND.length && data.toString() === BROADCAST_COMMAND;
}

async function startWs(): Promise<number> {
  const { WebSocketServer } = await import('ws');
  // compress: permessage-deflate with ws's defaults (threshold 1 KiB, zlib's level).
  const perMessageDeflate = config.scenario === 'compress';
  let wss: InstanceType<typeof WebSocketServer>;
  if (tls) {
    // ws over TLS, as its README shows: an https server of one's own.
    const https = createHttpsServer(tls);
    wss = new WebSocketServer({ server: https, perMessageDeflate });
    https.listen(0, params.host);
    await once(https, 'listening');
  } else {
    wss = new WebSocketServer({ host: params.host, port: 0, perMessageDeflate });
    await once(wss, 'listening');
  }
  connectionCount = () => wss.clients.size;
  const chunk = binaryPayload(params.streamSize);
  const window = mode === 'sink' ? sinkWindow() : null;
  const payload = Buffer.from(textPayload(params.broadcastSize));
  wss.on('connection', (ws) => {
    ws.on('error', ignore);
    if (mode === 'echo') {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    } else if (mode === 'sink' && window) {
      ws.on('message', (data) => window.add(byteLength(data)));
    } else if (mode === 'source') {
      pumpWs(ws, chunk, params.highWaterMark);
    } else {
      ws.on('message', (data, isBinary) => {
        if (!isCommand(data, isBinary)) return ws.send(data, { binary: isBinary });
        // ws's README broadcast: a loop of send over wss.clients.
        for (const client of wss.clients) if (client.readyState === client.OPEN) client.send(payload, { binary: false });
      });
    }
  });
  return (wss.address() as AddressInfo).port;
}

// ── uWebSockets.js: C++ on its own loop, used as its README shows ───────────────────────

async function startUws(): Promise<number> {
  const loaded = loadUws();
  if ('error' in loaded) throw new Error(`uWebSockets.js does not load here (${loaded.error})`);
  const app = config.tls ? loaded.uws.SSLApp({ key_file_name: config.tls.key, cert_file_name: config.tls.cert }) : loaded.uws.App();
  let open = 0;
  connectionCount = () => open;
  const chunk = binaryPayload(params.streamSize);
  const window = mode === 'sink' ? sinkWindow() : null;
  const payload = textPayload(params.broadcastSize);
  // Senders keep at most highWaterMark buffered, as the others do; drain resumes.
  const pump = (ws: UwsSocket) => {
    while (ws.getBufferedAmount() < params.highWaterMark) if (ws.send(chunk, true) === 2) return;
  };
  const port = await new Promise<number>((resolvePort, reject) => {
    app
      .ws('/*', {
        maxPayloadLength: 64 * 1024 * 1024, // the default (16 KiB) would refuse the 64 KiB and 16 MiB messages
        maxBackpressure: 64 * 1024 * 1024, // a 16 MiB echo is one send
        idleTimeout: 0, // keepalive off, as for the others
        sendPingsAutomatically: false,
        open: (ws) => {
          open++;
          if (mode === 'hub') ws.subscribe('all');
          else if (mode === 'source') pump(ws);
        },
        message: (ws, message, isBinary) => {
          if (mode === 'echo') ws.send(message, isBinary);
          else if (mode === 'sink' && window) window.add(message.byteLength);
          else if (mode === 'hub') {
            const command = !isBinary && message.byteLength === BROADCAST_COMMAND.length && Buffer.from(message).toString() === BROADCAST_COMMAND;
            // uWS's broadcast: publish to a topic every connection subscribed to.
            if (command) app.publish('all', payload, false);
            else ws.send(message, isBinary);
          }
        },
        drain: (ws) => {
          if (mode === 'source') pump(ws);
        },
        close: () => {
          open--;
        },
      })
      .listen(params.host, 0, (token) => {
        if (token) resolvePort(loaded.uws.us_socket_local_port(token));
        else reject(new Error(`uWebSockets.js could not listen on ${params.host}`));
      });
  });
  return port;
}

// ── raw node:net: no framing at all, the ceiling ─────────────────────────────────────────

async function startNet(): Promise<number> {
  const sockets = new Set<Socket>();
  connectionCount = () => sockets.size;
  const chunk = binaryPayload(params.streamSize);
  const window = mode === 'sink' ? sinkWindow() : null;
  const payload = Buffer.from(textPayload(params.broadcastSize));
  const onSocket = (socket: Socket) => {
    socket.on('error', ignore);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    if (mode === 'echo') {
      socket.on('data', (data) => socket.write(data));
    } else if (mode === 'sink' && window) {
      socket.on('data', (data) => window.add(data.length, data.length / params.streamSize));
    } else if (mode === 'source') {
      pumpNet(socket, chunk);
    } else {
      // The first bytes of a connection are echoed, any later ones mean "broadcast".
      let echoed = false;
      socket.on('data', (data) => {
        if (!echoed) {
          echoed = true;
          socket.write(data);
        } else {
          for (const other of sockets) other.write(payload);
        }
      });
    }
  };
  const server = tls
    ? createTlsServer(tls, (socket) => {
        socket.setNoDelay(true);
        onSocket(socket);
      })
    : createServer({ noDelay: true }, onSocket);
  server.listen(0, params.host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

// ── main ─────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  serveCommands(async (command) => {
    if (command.type === 'memory') post({ type: 'memory', sample: await measureMemory(connectionCount()) });
    else if (command.type === 'cpu') post({ type: 'cpu', usage: process.cpuUsage() });
    else if (command.type === 'snapshot') {
      await collectGarbage();
      post({ type: 'snapshot', file: writeHeapSnapshot(command.file) });
    }
  });
  const start = config.impl === 'ours' ? startOurs : config.impl === 'ws' ? startWs : config.impl === 'uws' ? startUws : startNet;
  const port = await start();
  post({ type: 'ready', port, info: processInfo(config.impl, config.impl === 'ours' ? findBroadcast() !== null : undefined) });
}

main().catch((error: unknown) => {
  fail(error);
  process.exit(1);
});
