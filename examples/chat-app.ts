/**
 * The chat server of the demo, shared by its two entry points:
 *
 *   examples/chat.ts           `npm start`: one process, no Redis
 *   examples/cluster-chat.ts   `npm run start:cluster`: one worker per core, rooms fanned out
 *                              across processes and machines through Redis pub/sub
 *
 * `startChat(settings)` starts one `node:http` server on 127.0.0.1 that does everything:
 *   GET /                        the page (examples/chat.html)
 *   GET /websockets.browser.js   the library's browser bundle (dist/, built by `npm run build:lib`)
 *   WebSocket /chat              the chat, with the library's `isUpgrade` and `upgrade`
 *
 * The protocol is JSON over TEXT messages. A client sends `{ type: 'hello', name, room? }`
 * once (the room is `lobby` unless it says otherwise), then `{ type: 'message', text }` as
 * often as it likes. The server sends the newcomer `{ type: 'history', messages }` (the last
 * few messages of the room), then sends the room `{ type: 'join', name }`,
 * `{ type: 'members', names }`, `{ type: 'message', name, text, time }` (time in ms since the
 * epoch) and `{ type: 'leave', name }` followed by the new members. With a fan-out (the
 * cluster), a server first says who it is, `{ type: 'server', pid, … }`, and messages, joins
 * and leaves reach the room's members on every process, while `members` and the check that a
 * name is free cover this process only.
 *
 * A room's messages go to its members through the library's `broadcast()` with a
 * slow-consumer limit: a member with more than `maxBacklog` bytes waiting is skipped, then
 * closed with 1008, and never holds up the room or grows the server's memory.
 *
 * A client that breaks the rules is closed with a code that says why:
 *   1003  a BINARY message (this chat speaks JSON text)
 *   1008  not JSON, an unknown or malformed message, no hello within 10 s, a bad name, room or
 *         text, more than 8 messages in a burst, or too slow to read what it is sent
 *   1009  a message over 8 KiB (the library enforces `maxMessageSize`)
 *   4001  the name is taken
 * A handshake from another web origin gets 403 (a page on another site cannot join in
 * through the user's browser), an upgrade on another path 404.
 *
 * `stop()` closes every connection with 1001 (going away), which the page takes as
 * "reconnect with backoff", so restarting the server is seamless; then the fan-out.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { broadcast, isUpgrade, upgrade, WebSocketError } from '../websockets.ts';
import type { RequestInfo, Refusal, ServerOptions, WebSocket } from '../websockets.ts';

export const HOST = '127.0.0.1';
const MAX_NAME = 24; // characters (code points)
const MAX_TEXT = 500;
const MAX_MESSAGE_BYTES = 8 * 1024;
const HELLO_TIMEOUT_MS = 10_000;
const HISTORY = 50;
const DEFAULT_ROOM = 'lobby';
const ROOM_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** Empty rooms whose history is kept (single process): the oldest is forgotten first. */
const MAX_EMPTY_ROOMS = 100;

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

/**
 * How a room reaches its members on other processes: messages are strings (the JSON events
 * as sent to the clients). examples/redis-fanout.ts implements it over Redis pub/sub.
 */
export interface ChatFanout {
  /** The room got its first local member: start receiving what other processes publish to it. */
  subscribe(room: string, deliver: (payload: string) => void): Promise<void>;
  /** Its last local member left. */
  unsubscribe(room: string): Promise<void>;
  /** An event of a local member (already delivered locally), for the other processes. */
  publish(room: string, payload: string): void;
  close(): Promise<void>;
}

export interface ChatSettings {
  port: number;
  /** Other processes' members of the same rooms; none: this process is the whole chat. */
  fanout?: ChatFanout | undefined;
  /** Sent to every connection first, as `{ type: 'server', ...greeting }` (the cluster says its pid). */
  greeting?: Record<string, unknown> | undefined;
  /** Token bucket per client: a burst of `burst` messages, then `rate` per second. Default 8 and 2. */
  burst?: number | undefined;
  rate?: number | undefined;
  /** A member whose unsent backlog is above this many bytes is too slow to keep up: closed with 1008. Default 1 MiB. */
  maxBacklog?: number | undefined;
  log?: ((line: string) => void) | undefined;
}

export interface Chat {
  readonly port: number;
  /** Every open connection, members or not yet. */
  readonly connections: ReadonlySet<WebSocket>;
  /** Stops accepting, closes every connection with 1001, then the fan-out; resolves when all is closed. */
  stop(): Promise<void>;
}

interface Member {
  name: string;
  ws: WebSocket;
}

interface Room {
  readonly name: string;
  /** Those who said hello, in joining order. */
  readonly members: Set<Member>;
  /** Their sockets, what broadcast() is given. */
  readonly sockets: Set<WebSocket>;
  /** The last messages, as the JSON text that was sent. */
  readonly history: string[];
}

export function timestamped(line: string): void {
  console.log(`${new Date().toLocaleTimeString('en-GB')} ${line}`);
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

/** Parses a message: a JSON object with a string `type`, or null. */
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

/** The rooms of one process, and how their events reach local members and, through the fan-out, the others. */
class Rooms {
  readonly #rooms = new Map<string, Room>();
  readonly #settings: ChatSettings;
  readonly #maxBacklog: number;
  readonly #log: (line: string) => void;

  constructor(settings: ChatSettings, log: (line: string) => void) {
    this.#settings = settings;
    this.#maxBacklog = settings.maxBacklog ?? 1024 * 1024;
    this.#log = log;
  }

  /** Sends without waiting (a slow client must not hold up everybody else); closes a client that cannot keep up. */
  deliver(ws: WebSocket, text: string): void {
    if (ws.closeCode !== undefined) return;
    if (ws.bufferedAmount > this.#maxBacklog) return this.#tooSlow(ws);
    ws.send(text).catch(() => undefined); // a closed connection is cleaned up by its handler
  }

  #tooSlow(ws: WebSocket): void {
    this.#log(`closing ${ws.remoteAddress ?? 'a client'}: too slow to keep up (${ws.bufferedAmount} bytes waiting)`);
    ws.close(1008, 'too slow to keep up').catch(() => undefined);
  }

  /** To every local member at once, the frame built once; members with too much waiting are skipped, then closed. */
  #toMembers(room: Room, text: string): void {
    broadcast(room.sockets, text, { maxBuffered: this.#maxBacklog }).then(
      ({ skipped }) => skipped.forEach((ws) => this.#tooSlow(ws)),
      (error: unknown) => this.#log(`broadcast failed: ${String(error)}`),
    );
  }

  /** An event of a local member: to the room here, and to the other processes. */
  send(room: Room, event: object, remember = false): void {
    const text = JSON.stringify(event);
    if (remember) this.#remember(room, text);
    this.#toMembers(room, text);
    this.#settings.fanout?.publish(room.name, text);
  }

  /** The members list, for this process's members only (it is not sent to the others). */
  sendMembers(room: Room): void {
    this.#toMembers(room, JSON.stringify({ type: 'members', names: [...room.members].map((member) => member.name) }));
  }

  #remember(room: Room, text: string): void {
    room.history.push(text);
    if (room.history.length > HISTORY) room.history.shift();
  }

  historyOf(room: Room): string {
    return `{"type":"history","messages":[${room.history.join(',')}]}`;
  }

  nameTaken(roomName: string, name: string): boolean {
    const key = name.toLowerCase();
    return [...(this.#rooms.get(roomName)?.members ?? [])].some((other) => other.name.toLowerCase() === key);
  }

  join(roomName: string, member: Member): Room {
    let room = this.#rooms.get(roomName);
    if (!room) {
      room = { name: roomName, members: new Set(), sockets: new Set(), history: [] };
      this.#rooms.set(roomName, room);
    } else if (room.members.size === 0) {
      this.#rooms.delete(roomName); // no longer among the empty rooms: to the end of the map's order
      this.#rooms.set(roomName, room);
    }
    if (room.members.size === 0 && this.#settings.fanout) {
      const joined = room;
      this.#settings.fanout.subscribe(roomName, (payload) => this.#fromElsewhere(joined, payload)).catch((error: unknown) => this.#log(`cannot subscribe to room ${roomName}: ${String(error)}`));
    }
    room.members.add(member);
    room.sockets.add(member.ws);
    return room;
  }

  /** Returns whether the member was there. */
  leave(room: Room, member: Member): boolean {
    if (!room.members.delete(member)) return false;
    room.sockets.delete(member.ws);
    if (room.members.size > 0) return true;
    if (this.#settings.fanout) {
      // What other processes say while nobody is here is not received: the history would have a hole.
      this.#rooms.delete(room.name);
      this.#settings.fanout.unsubscribe(room.name).catch((error: unknown) => this.#log(`cannot unsubscribe from room ${room.name}: ${String(error)}`));
    } else {
      const empty = [...this.#rooms.values()].filter((other) => other.members.size === 0);
      for (const forgotten of empty.slice(0, Math.max(0, empty.length - MAX_EMPTY_ROOMS))) this.#rooms.delete(forgotten.name);
    }
    return true;
  }

  /** An event from another process: to the local members (a message goes into the history too). */
  #fromElsewhere(room: Room, payload: string): void {
    if (this.#rooms.get(room.name) !== room || room.members.size === 0) return;
    if (parse(payload)?.type === 'message') this.#remember(room, payload);
    this.#toMembers(room, payload);
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


// ── the server ───────────────────────────────────────────────────────────────────────────────

/** Starts the chat on 127.0.0.1:`settings.port` (0: a free one; in a `node:cluster` worker, the port shared with the others). */
export async function startChat(settings: ChatSettings): Promise<Chat> {
  const log = settings.log ?? timestamped;
  const burst = settings.burst ?? 8;
  const rate = settings.rate ?? 2;
  const rooms = new Rooms(settings, log);
  const connections = new Set<WebSocket>();
  const greeting = settings.greeting ? JSON.stringify({ type: 'server', ...settings.greeting }) : null;

  async function chat(ws: WebSocket): Promise<void> {
    connections.add(ws);
    let member: Member | undefined;
    let room: Room | undefined;
    let tokens = burst;
    let lastRefill = Date.now();
    const helloTimer = setTimeout(() => ws.close(1008, 'no hello within 10 s').catch(() => undefined), HELLO_TIMEOUT_MS);
    if (greeting) rooms.deliver(ws, greeting);
    try {
      for await (const data of ws) {
        if (typeof data !== 'string') throw new Refused(1003, 'binary messages are not accepted: send JSON text');
        const event = parse(data);
        if (!event) throw new Refused(1008, 'not a JSON object with a type');

        const now = Date.now();
        tokens = Math.min(burst, tokens + ((now - lastRefill) / 1000) * rate);
        lastRefill = now;
        if (tokens < 1) throw new Refused(1008, 'too many messages: slow down');
        tokens -= 1;

        if (!member || !room) {
          if (event.type !== 'hello') throw new Refused(1008, 'send {"type":"hello","name":…} first');
          const name = cleanText(event['name'], MAX_NAME, false);
          if (!name) throw new Refused(1008, `a name is 1 to ${MAX_NAME} characters, no control characters`);
          const roomName = event['room'] ?? DEFAULT_ROOM;
          if (typeof roomName !== 'string' || !ROOM_NAME.test(roomName)) throw new Refused(1008, 'a room is 1 to 32 lower-case letters, digits, _ or -');
          if (rooms.nameTaken(roomName, name)) throw new Refused(NAME_TAKEN, `the name ${name} is taken`);
          clearTimeout(helloTimer);
          member = { name, ws };
          room = rooms.join(roomName, member);
          rooms.deliver(ws, rooms.historyOf(room));
          rooms.send(room, { type: 'join', name });
          rooms.sendMembers(room);
          log(`${name} joined${roomName === DEFAULT_ROOM ? '' : ` ${roomName}`} (${room.members.size} online)`);
        } else if (event.type === 'message') {
          const text = cleanText(event['text'], MAX_TEXT, true);
          if (!text) throw new Refused(1008, `a message is 1 to ${MAX_TEXT} characters`);
          rooms.send(room, { type: 'message', name: member.name, text, time: Date.now() }, true);
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
      if (member && room && rooms.leave(room, member)) {
        rooms.send(room, { type: 'leave', name: member.name });
        rooms.sendMembers(room);
        log(`${member.name} left (${room.members.size} online)`);
      }
    }
  }

  const wsOptions: ServerOptions = {
    maxMessageSize: MAX_MESSAGE_BYTES,
    verify: sameOrigin,
    onError: (error) => console.error('chat handler failed:', error),
  };

  let stopping: Promise<void> | null = null;
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

  async function drain(): Promise<void> {
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeIdleConnections();
    // Bounded by the library's close timeout (5 s): a peer that does not answer is cut off.
    await Promise.allSettled([...connections].map((ws) => ws.close(1001, 'server shutting down')));
    http.closeAllConnections();
    await closed;
    // The handlers' last words (the leaves, for the other processes) before the fan-out closes.
    await new Promise((resolve) => setImmediate(resolve));
    await settings.fanout?.close();
  }

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(settings.port, HOST, () => resolve());
  });
  return {
    port: (http.address() as AddressInfo).port,
    connections,
    stop: () => (stopping ??= drain()),
  };
}

/** SIGINT or SIGTERM: `stop` (once; a second signal exits at once), then `done` and the process ends. */
export function stopOnSignals(chat: Chat, done: () => void): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) {
      console.log(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    console.log(`\n${signal}: closing ${chat.connections.size} connection(s) with 1001 and stopping`);
    void chat.stop().then(done);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
}

/** Warns when the page's script is missing. */
export function checkBundle(): void {
  if (!existsSync(BUNDLE)) console.warn(`warning: ${BUNDLE} is missing: run \`npm run build:lib\` (npm start does)`);
}
