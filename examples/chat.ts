/**
 * The demo: a small chat. `npm start` builds everything and runs it; then open
 * http://127.0.0.1:8080 in two browser tabs.
 *
 *   PORT=9000 node build/examples/chat.js     # another port; PORT=0 picks a free one
 *
 * One `node:http` server does everything on 127.0.0.1:
 *   GET /                        the page (examples/chat.html)
 *   GET /websockets.browser.js   the library's browser bundle (dist/, built by `npm run build:lib`)
 *   WebSocket /chat              the chat, with the library's `isUpgrade` and `upgrade`
 *
 * The protocol is JSON over TEXT messages. A client sends `{ type: 'hello', name }` once,
 * then `{ type: 'message', text }` as often as it likes. The server sends the newcomer
 * `{ type: 'history', messages }` (the last few messages), then broadcasts
 * `{ type: 'join', name }`, `{ type: 'members', names }`, `{ type: 'message', name, text, time }`
 * (time in ms since the epoch) and `{ type: 'leave', name }` followed by the new members.
 *
 * A client that breaks the rules is closed with a code that says why:
 *   1003  a BINARY message (this chat speaks JSON text)
 *   1008  not JSON, an unknown or malformed message, no hello within 10 s, a bad name or text,
 *         more than 8 messages in a burst, or too slow to read what it is sent
 *   1009  a message over 8 KiB (the library enforces `maxMessageSize`)
 *   4001  the name is taken
 * A handshake from another web origin gets 403 (a page on another site cannot join in
 * through the user's browser), an upgrade on another path 404.
 *
 * SIGINT or SIGTERM stops it cleanly: every connection is closed with 1001 (going away), which
 * the page takes as "reconnect with backoff", so restarting the server is seamless.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUpgrade, upgrade, WebSocketError } from '../websockets.ts';
import type { RequestInfo, Refusal, ServerOptions, WebSocket } from '../websockets.ts';

const HOST = '127.0.0.1';
const PORT = Number(process.env['PORT'] ?? 8080);
const MAX_NAME = 24; // characters (code points)
const MAX_TEXT = 500;
const MAX_MESSAGE_BYTES = 8 * 1024;
const HELLO_TIMEOUT_MS = 10_000;
const HISTORY = 50;
/** Token bucket: a burst of BURST messages, then RATE per second. */
const BURST = 8;
const RATE = 2;
/** A client whose unsent backlog grows past this is too slow to keep up: it is closed. */
const MAX_BACKLOG = 1024 * 1024;

/** Custom close code (4000–4999 are the application's): the name is already in use. */
const NAME_TAKEN = 4001;

// ── files ────────────────────────────────────────────────────────────────────────────────────

/**
 * The repository root: `../..` from build/examples/chat.js (the compiled demo), `..` from
 * examples/chat.ts (run unbuilt, e.g. with Node 24's type stripping).
 */
const here = dirname(fileURLToPath(import.meta.url));
const root = [join(here, '..', '..'), join(here, '..')].find((dir) => existsSync(join(dir, 'examples', 'chat.html'))) ?? join(here, '..', '..');

const BUNDLE = join(root, 'dist', 'websockets.browser.js');
const FILES: Record<string, { path: string; type: string; hint?: string }> = {
  '/': { path: join(root, 'examples', 'chat.html'), type: 'text/html; charset=utf-8' },
  '/websockets.browser.js': { path: BUNDLE, type: 'text/javascript; charset=utf-8', hint: 'run `npm run build:lib`' },
  '/websockets.browser.js.map': { path: join(root, 'dist', 'websockets.browser.js.map'), type: 'application/json', hint: 'run `npm run build:lib`' },
};

function serveFile(request: IncomingMessage, response: ServerResponse): void {
  const pathname = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (pathname === '/chat') {
    response.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', upgrade: 'websocket', connection: 'Upgrade' }).end('this is the WebSocket endpoint: connect with a WebSocket client\n');
    return;
  }
  const file = FILES[pathname === '/index.html' ? '/' : pathname];
  if (!file) {
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  readFile(file.path).then(
    (body) => {
      response.writeHead(200, {
        'content-type': file.type,
        'content-length': body.length,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      response.end(request.method === 'HEAD' ? undefined : body);
    },
    () => {
      response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${file.path} is missing${file.hint ? `: ${file.hint}` : ''}\n`);
    },
  );
}

// ── the chat ─────────────────────────────────────────────────────────────────────────────────

interface Member {
  name: string;
  ws: WebSocket;
}

interface ChatMessage {
  type: 'message';
  name: string;
  text: string;
  time: number;
}

/** Every open connection (members or not yet), for the shutdown. */
const connections = new Set<WebSocket>();
/** Those who said hello, in joining order. */
const members = new Set<Member>();
const history: ChatMessage[] = [];

function log(line: string): void {
  console.log(`${new Date().toLocaleTimeString('en-GB')} ${line}`);
}

/** Sends without waiting (a slow client must not hold up everybody else); closes a client that cannot keep up. */
function deliver(ws: WebSocket, text: string): void {
  if (ws.closeCode !== undefined) return;
  if (ws.bufferedAmount > MAX_BACKLOG) {
    ws.close(1008, 'too slow to keep up').catch(() => undefined);
    return;
  }
  ws.send(text).catch(() => undefined); // a closed connection is cleaned up by its handler
}

function broadcast(event: object): void {
  const text = JSON.stringify(event);
  for (const member of members) deliver(member.ws, text);
}

function memberNames(): string[] {
  return [...members].map((member) => member.name);
}

/** A name or message text: a trimmed, NFC string of 1..max characters, no control characters. */
function cleanText(value: unknown, max: number, allowNewlines: boolean): string | null {
  if (typeof value !== 'string') return null;
  const text = value.normalize('NFC').trim();
  const length = [...text].length;
  if (length === 0 || length > max) return null;
  // C0/C1 controls (a newline is fine in a message) and the bidi overrides that garble a line.
  const bad = allowNewlines ? /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/ : /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
  return bad.test(text) ? null : text;
}

/** Parses a client message: a JSON object with a string `type`, or null. */
function parse(data: string): Record<string, unknown> & { type: string } | null {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const object = value as Record<string, unknown>;
  return typeof object['type'] === 'string' ? (object as Record<string, unknown> & { type: string }) : null;
}

class Refused extends Error {
  readonly code: number;
  constructor(code: number, reason: string) {
    super(reason);
    this.code = code;
  }
}

async function chat(ws: WebSocket): Promise<void> {
  connections.add(ws);
  let member: Member | undefined;
  let tokens = BURST;
  let lastRefill = Date.now();
  const helloTimer = setTimeout(() => ws.close(1008, 'no hello within 10 s').catch(() => undefined), HELLO_TIMEOUT_MS);
  try {
    for await (const data of ws) {
      if (typeof data !== 'string') throw new Refused(1003, 'binary messages are not accepted: send JSON text');
      const event = parse(data);
      if (!event) throw new Refused(1008, 'not a JSON object with a type');

      const now = Date.now();
      tokens = Math.min(BURST, tokens + ((now - lastRefill) / 1000) * RATE);
      lastRefill = now;
      if (tokens < 1) throw new Refused(1008, 'too many messages: slow down');
      tokens -= 1;

      if (!member) {
        if (event.type !== 'hello') throw new Refused(1008, 'send {"type":"hello","name":…} first');
        const name = cleanText(event['name'], MAX_NAME, false);
        if (!name) throw new Refused(1008, `a name is 1 to ${MAX_NAME} characters, no control characters`);
        const key = name.toLowerCase();
        if ([...members].some((other) => other.name.toLowerCase() === key)) throw new Refused(NAME_TAKEN, `the name ${name} is taken`);
        clearTimeout(helloTimer);
        member = { name, ws };
        deliver(ws, JSON.stringify({ type: 'history', messages: history }));
        members.add(member);
        broadcast({ type: 'join', name });
        broadcast({ type: 'members', names: memberNames() });
        log(`${name} joined (${members.size} online)`);
      } else if (event.type === 'message') {
        const text = cleanText(event['text'], MAX_TEXT, true);
        if (!text) throw new Refused(1008, `a message is 1 to ${MAX_TEXT} characters`);
        const message: ChatMessage = { type: 'message', name: member.name, text, time: Date.now() };
        history.push(message);
        if (history.length > HISTORY) history.shift();
        broadcast(message);
      } else if (event.type === 'hello') {
        throw new Refused(1008, 'already said hello');
      } else {
        throw new Refused(1008, `unknown message type ${JSON.stringify(event.type.slice(0, 20))}`);
      }
    }
  } catch (error) {
    if (error instanceof Refused) {
      log(`closing ${member?.name ?? ws.remoteAddress ?? 'a client'}: ${error.code} ${error.message}`);
      await ws.close(error.code, error.message).catch(() => undefined);
    } else if (!(error instanceof WebSocketError)) {
      throw error; // a bug: the library reports it (onError) and closes with 1011
    }
    // a WebSocketError: the connection ended abnormally (1006, 1009, 1011 …); nothing to add
  } finally {
    clearTimeout(helloTimer);
    connections.delete(ws);
    if (member && members.delete(member)) {
      broadcast({ type: 'leave', name: member.name });
      broadcast({ type: 'members', names: memberNames() });
      log(`${member.name} left (${members.size} online)`);
    }
  }
}

/** Only pages served from this very host may connect (no cross-site WebSocket hijacking); non-browser clients send no Origin. */
function sameOrigin(request: RequestInfo): true | Refusal {
  const origin = request.headers['origin'];
  if (origin === undefined) return true;
  try {
    if (new URL(origin).host === request.headers['host']) return true;
  } catch {
    // an Origin that is not a URL ('null' for example)
  }
  return { status: 403, body: 'cross-origin WebSocket refused' };
}

const wsOptions: ServerOptions = {
  maxMessageSize: MAX_MESSAGE_BYTES,
  verify: sameOrigin,
  onError: (error) => console.error('chat handler failed:', error),
};

// ── the server ───────────────────────────────────────────────────────────────────────────────

let stopping = false;
const http = createServer(serveFile);

http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
  const reject = (status: string) => {
    socket.on('error', () => undefined);
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  };
  const pathname = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (stopping) reject('503 Service Unavailable');
  else if (pathname !== '/chat') reject('404 Not Found');
  else if (!isUpgrade(request)) reject('400 Bad Request');
  else upgrade(request, socket, head, chat, wsOptions);
});

async function shutdown(signal: string): Promise<void> {
  if (stopping) {
    console.log(`${signal} again: exiting now`);
    process.exit(1);
  }
  stopping = true;
  console.log(`\n${signal}: closing ${connections.size} connection(s) with 1001 and stopping`);
  const closed = new Promise<void>((resolve) => http.close(() => resolve()));
  http.closeIdleConnections();
  // Bounded by the library's close timeout (5 s): a peer that does not answer is cut off.
  await Promise.allSettled([...connections].map((ws) => ws.close(1001, 'server shutting down')));
  http.closeAllConnections();
  await closed;
  console.log('chat demo stopped');
}

process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

await new Promise<void>((resolve, reject) => {
  http.once('error', reject);
  http.listen(PORT, HOST, () => resolve());
}).catch((error: NodeJS.ErrnoException) => {
  console.error(error.code === 'EADDRINUSE' ? `port ${PORT} is in use: try PORT=8081 npm start` : `cannot listen on ${HOST}:${PORT}: ${error.message}`);
  process.exit(1);
});

if (!existsSync(BUNDLE)) console.warn(`warning: ${BUNDLE} is missing: run \`npm run build:lib\` (npm start does)`);
const { port } = http.address() as AddressInfo;
console.log(`chat demo on http://${HOST}:${port} — open it in two browser tabs`);
