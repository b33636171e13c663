// Small helpers shared by the test suites (not a test file itself).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { after, before } from 'node:test';
import { join } from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import { listen, WebSocketError } from '../websockets.ts';
import type { Server, ServerOptions, WebSocket } from '../websockets.ts';
import { selfSignedCertificate } from './certificate.ts';

/** RFC 6455 §1.3: the GUID a server appends to the client's key. */
export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The Sec-WebSocket-Accept value for a Sec-WebSocket-Key. */
export const acceptFor = (key: string): string => createHash('sha1').update(key + GUID).digest('base64');

export const sleep = (ms: number): Promise<void> => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `promise`'s value, or null if it takes longer than `ms` (the timer never outlives the race). */
export async function within<V>(promise: Promise<V>, ms: number): Promise<V | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Wakes whoever waits (`until`) each time something happens (`wake`). */
class Wakeups {
  #waiters: Array<() => void> = [];

  wake(): void {
    for (const resolve of this.#waiters.splice(0)) resolve();
  }

  /** Waits until `condition` holds (checked at each wake), for up to `timeout` ms; whether it does. */
  async until(condition: () => boolean, timeout: number): Promise<boolean> {
    const deadline = performance.now() + timeout;
    while (!condition()) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await within(new Promise<void>((resolve) => this.#waiters.push(resolve)), left);
    }
    return true;
  }
}

/** Values that arrive over time (connections accepted, results a handler reports), taken in order. */
export class Arrivals<V> {
  readonly items: V[] = [];
  /** How long `next()` waits by default (ms). */
  readonly wait: number;
  #read = 0;
  #wakeups = new Wakeups();

  constructor(wait = 2_000) {
    this.wait = wait;
  }

  push(value: V): void {
    this.items.push(value);
    this.#wakeups.wake();
  }

  /** The next value not yet taken, waiting for it up to `timeout` ms. */
  async next(timeout = this.wait, what = 'a value'): Promise<V> {
    if (!(await this.#wakeups.until(() => this.#read < this.items.length, timeout))) assert.fail(`timed out after ${timeout} ms waiting for ${what}`);
    return this.items[this.#read++];
  }
}

export interface RawResponse {
  /** Everything the server sent. */
  text: string;
  statusLine: string;
  /** Header names in lower case; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: string;
  /** Whether the server closed the connection (FIN or close) before the deadline. */
  closed: boolean;
}

/** An HTTP head's first line and its headers (names in lower case; repeated headers joined with ', '). */
export function parseHead(head: string): { startLine: string; headers: Record<string, string> } {
  const [startLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { startLine, headers };
}

function parseResponse(text: string, closed: boolean): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  const { startLine, headers } = parseHead(end < 0 ? text : text.slice(0, end));
  return { text, statusLine: startLine, headers, body: end < 0 ? '' : text.slice(end + 4), closed };
}

/**
 * Sends `request` as is and collects the answer. `until: 'close'` waits for the server to
 * close the connection (up to `wait` ms); `until: 'headers'` stops at the end of the headers.
 */
export async function rawHttp(port: number, request: string | Uint8Array, until: 'close' | 'headers' = 'close', wait = 2_000): Promise<RawResponse> {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  try {
    await once(socket, 'connect');
    socket.write(request);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (until === 'headers' && text.includes('\r\n\r\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      const done = () => {
        closed = true;
        clearTimeout(timer);
        resolve();
      };
      socket.on('end', done);
      socket.on('close', done);
      socket.on('error', () => {});
    });
  } finally {
    socket.destroy();
  }
  return parseResponse(text, closed);
}

// ── A raw WebSocket peer: frames written and read by hand over node:net ──────────────────
//
// Independent of the library's codec, so a test can send what the library would never send
// (and see exactly what it sent). `RawPeer.connect` is a client against a server under test;
// `rawServer` accepts clients under test; `wireFrame` writes any frame, lies included (the
// fuzzer's frames too), and `WireReader` splits what arrives into frames.

const randomKey = (size: number): Uint8Array => globalThis.crypto.getRandomValues(new Uint8Array(size));

/** Frame opcodes (RFC 6455 §5.2), spelled out here so the helper does not lean on the library. */
export const WireOp = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export interface WireFrame {
  fin: boolean;
  rsv1: boolean;
  /** The three RSV bits, 0 to 7 (RSV1 is 4). */
  rsv: number;
  opcode: number;
  masked: boolean;
  /** Unmasked. */
  payload: Uint8Array;
}

export interface WireFrameOptions {
  fin?: boolean;
  rsv1?: boolean;
  /** RSV bits as a number, 0 to 7 (RSV1 is 4), for RSV2 and RSV3; added to `rsv1`. */
  rsv?: number;
  /** A 4-byte key, `true` for a random one, `false` (or null) for none. */
  mask?: boolean | Uint8Array | null;
  /** The length the header announces, if not the payload's: a lie, or with an empty payload a header alone. */
  length?: number | bigint;
  /** The length field: the shortest (default), or 16 or 64 bits whatever the length (16 falls back to 64 above 65,535). */
  lengthField?: 'min' | '16' | '64';
}

/** One frame, encoded by hand: header, masking key, payload (masked with the key if any). */
export function wireFrame(opcode: number, payload: Uint8Array | string = new Uint8Array(0), options: WireFrameOptions = {}): Uint8Array {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  const key = options.mask === true ? randomKey(4) : options.mask || null;
  const length = BigInt(options.length ?? bytes.length);
  const field = options.lengthField ?? 'min';
  const lengthSize = field === '64' || length > 0xffffn ? 8 : field === '16' || length >= 126n ? 2 : 0;
  const headerSize = 2 + lengthSize + (key ? 4 : 0);
  const out = new Uint8Array(headerSize + bytes.length);
  out[0] = ((options.fin ?? true) ? 0x80 : 0) | (options.rsv1 ? 0x40 : 0) | (((options.rsv ?? 0) & 7) << 4) | (opcode & 0x0f);
  out[1] = (key ? 0x80 : 0) | (lengthSize === 0 ? Number(length) : lengthSize === 2 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (lengthSize === 2) view.setUint16(2, Number(length));
  if (lengthSize === 8) view.setBigUint64(2, BigInt.asUintN(64, length));
  if (key) {
    out.set(key, 2 + lengthSize);
    for (let i = 0; i < bytes.length; i++) out[headerSize + i] = bytes[i] ^ key[i & 3];
  } else {
    out.set(bytes, headerSize);
  }
  return out;
}

/** A close frame's payload: the code, big-endian, and the reason (UTF-8 if a string). */
export function closeFramePayload(code: number, reason: string | Uint8Array = ''): Uint8Array {
  const text = typeof reason === 'string' ? new TextEncoder().encode(reason) : reason;
  const payload = new Uint8Array(2 + text.length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(text, 2);
  return payload;
}

/** A close frame's code (null if its payload is shorter than 2 bytes) and reason; throws on any other frame. */
export function parseClose(frame: WireFrame): { code: number | null; reason: string } {
  if (frame.opcode !== WireOp.CLOSE) throw new Error(`expected a close frame, got opcode ${frame.opcode}`);
  const { payload } = frame;
  return payload.length < 2 ? { code: null, reason: '' } : { code: (payload[0] << 8) | payload[1], reason: new TextDecoder().decode(payload.subarray(2)) };
}

/** Frames for a failure message: opcode (hex), flags, length and the first 8 payload bytes (hex), the first `most` of them. */
export function describeFrames(frames: readonly WireFrame[], most = 12): string {
  const shown = frames.slice(0, most).map((f) => `${f.opcode.toString(16)}${f.fin ? '' : '(nofin)'}${f.rsv ? `(rsv${f.rsv})` : ''}:${f.payload.length}:${Buffer.from(f.payload.subarray(0, 8)).toString('hex')}`);
  return `[${shown.join(' ')}${frames.length > most ? ` … ${frames.length} frames` : ''}]`;
}

/** Splits a byte stream into frames (masked or not); pieces are joined only once a frame is whole. */
export class WireReader {
  readonly frames: WireFrame[] = [];
  /** When false, frames are counted (`count`) but not kept. */
  keep = true;
  count = 0;
  /** Called with each frame as it is read (kept or not). */
  onFrame: ((frame: WireFrame) => void) | null = null;
  #chunks: Uint8Array[] = [];
  #length = 0;

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    for (;;) {
      const head = this.#peek(14);
      if (head.length < 2) return;
      const lengthCode = head[1] & 0x7f;
      const masked = (head[1] & 0x80) !== 0;
      const lengthSize = lengthCode < 126 ? 0 : lengthCode === 126 ? 2 : 8;
      const headerSize = 2 + lengthSize + (masked ? 4 : 0);
      if (head.length < headerSize) return;
      const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
      const length = lengthSize === 0 ? lengthCode : lengthSize === 2 ? view.getUint16(2) : Number(view.getBigUint64(2));
      if (this.#length < headerSize + length) return;
      const bytes = this.#take(headerSize + length);
      const payload = new Uint8Array(bytes.subarray(headerSize)); // a copy, and a plain Uint8Array even when the chunk is a Buffer
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= bytes[headerSize - 4 + (i & 3)];
      const rsv = (bytes[0] >> 4) & 7;
      const frame: WireFrame = { fin: (bytes[0] & 0x80) !== 0, rsv1: (rsv & 4) !== 0, rsv, opcode: bytes[0] & 0x0f, masked, payload };
      this.count++;
      if (this.keep) this.frames.push(frame);
      this.onFrame?.(frame);
    }
  }

  #peek(size: number): Uint8Array {
    if (this.#chunks.length === 0) return new Uint8Array(0);
    if (this.#chunks[0].length >= size || this.#chunks.length === 1) return this.#chunks[0].subarray(0, size);
    return Buffer.concat(this.#chunks).subarray(0, size);
  }

  #take(size: number): Uint8Array {
    const all = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    const taken = all.subarray(0, size);
    const rest = all.subarray(size);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#length = rest.length;
    return taken;
  }
}

export interface RawPeerOptions {
  /** Request target; default '/'. */
  path?: string;
  /** Sec-WebSocket-Extensions to offer: one header line, or one line each. */
  extensions?: string | readonly string[];
  /** Sec-WebSocket-Protocol to offer, as is. */
  protocols?: string;
  /** More request header lines, as is. */
  headers?: string[];
  allowHalfOpen?: boolean;
  /** Handshake deadline (ms); default 3,000. */
  timeout?: number;
  /** How long next(), nextData(), closeFrame() and tcpClosed() wait by default (ms); default 2,000. */
  wait?: number;
}

/**
 * A hand-written WebSocket peer over node:net, handshake done. A client peer masks what it
 * sends (a server peer does not); every frame received is kept in order (`frames`), unless
 * `reader.keep` is turned off.
 */
export class RawPeer {
  readonly socket: net.Socket;
  readonly reader = new WireReader();
  /** The other side's handshake head: the 101 response (client peer) or the request (server peer). */
  readonly head: string;
  /** The head's headers, names in lower case. */
  readonly headers: Record<string, string>;
  readonly masks: boolean;
  /** How long the waits wait by default (ms). */
  readonly wait: number;
  bytesReceived = 0;
  /** When the other side's FIN arrived (performance.now()), once it has. */
  endedAt: number | null = null;
  /** When the TCP connection closed (performance.now()), once it has. */
  closedAt: number | null = null;
  /** Answer each ping with a pong (same payload). */
  autoPong = false;
  /** Answer a close frame with the same close frame and end the TCP connection (a server's side of the closing handshake). */
  echoClose = false;
  #wakeups = new Wakeups();
  #read = 0;

  private constructor(socket: net.Socket, head: string, masks: boolean, wait: number) {
    this.socket = socket;
    this.head = head;
    this.headers = parseHead(head).headers;
    this.masks = masks;
    this.wait = wait;
    this.reader.onFrame = (frame) => this.#answer(frame);
    socket.on('data', (chunk: Buffer) => this.#received(chunk));
    socket.on('end', () => {
      this.endedAt = performance.now();
      this.#wakeups.wake();
    });
    socket.on('close', () => {
      this.closedAt = performance.now();
      this.#wakeups.wake();
    });
    if (socket.destroyed) this.closedAt = performance.now();
  }

  /** Connects to a server on 127.0.0.1 and completes the opening handshake (a 101 with the right accept). */
  static async connect(port: number, options: RawPeerOptions = {}): Promise<RawPeer> {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const key = Buffer.from(randomKey(16)).toString('base64');
    const extensions = options.extensions === undefined ? [] : typeof options.extensions === 'string' ? [options.extensions] : options.extensions;
    const lines = [
      `GET ${options.path ?? '/'} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13',
      ...extensions.map((line) => `Sec-WebSocket-Extensions: ${line}`),
      ...(options.protocols !== undefined ? [`Sec-WebSocket-Protocol: ${options.protocols}`] : []),
      ...(options.headers ?? []),
    ];
    const { head, rest } = await readHead(socket, `${lines.join('\r\n')}\r\n\r\n`, options.timeout ?? 3_000);
    const peer = new RawPeer(socket, head, true, options.wait ?? 2_000);
    if (!head.startsWith('HTTP/1.1 101 ') || peer.headers['sec-websocket-accept'] !== acceptFor(key)) {
      socket.destroy();
      throw new Error(`handshake failed: ${head}`);
    }
    peer.#received(rest);
    return peer;
  }

  get frames(): WireFrame[] {
    return this.reader.frames;
  }

  /** Whether the other side's FIN has arrived. */
  get ended(): boolean {
    return this.endedAt !== null;
  }

  /** Whether the TCP connection has closed. */
  get closed(): boolean {
    return this.closedAt !== null;
  }

  /** The Sec-WebSocket-Extensions the server answered (client peer), if any. */
  get extensions(): string | undefined {
    return this.headers['sec-websocket-extensions'];
  }

  /** Whether the other side agreed to permessage-deflate (client peer). */
  get deflate(): boolean {
    return /^permessage-deflate/.test(this.extensions ?? '');
  }

  /** Sends one frame; a client peer masks it with a random key unless `mask: false`. */
  send(opcode: number, payload: Uint8Array | string = new Uint8Array(0), options: WireFrameOptions = {}): boolean {
    return this.write(wireFrame(opcode, payload, { mask: this.masks, ...options }));
  }

  /** Writes bytes as is; false once the socket's buffer is full (see `drained`) or the socket is gone. */
  write(bytes: Uint8Array): boolean {
    if (this.socket.destroyed || !this.socket.writable) return false;
    return this.socket.write(bytes);
  }

  /** Resolves once the socket's write buffer has drained (or the socket is gone). */
  drained(): Promise<void> {
    if (this.socket.writableLength === 0 || this.socket.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Waits until `condition` holds (checked whenever something arrives), or fails after `timeout` ms. */
  async until(condition: () => boolean, timeout: number, what: string): Promise<void> {
    if (!(await this.#wakeups.until(condition, timeout))) throw new Error(`timed out after ${timeout} ms waiting for ${what}; frames so far: ${this.describe()}`);
  }

  /** The next frame received (any opcode), in arrival order. */
  async next(timeout = this.wait): Promise<WireFrame> {
    await this.until(() => this.frames.length > this.#read || this.closed, timeout, 'a frame');
    if (this.frames.length <= this.#read) throw new Error(`the connection closed with no further frame; frames: ${this.describe()}`);
    return this.frames[this.#read++];
  }

  /** The next TEXT, BINARY or CONTINUATION frame, skipping pings and pongs (and failing on a close). */
  async nextData(timeout = this.wait): Promise<WireFrame> {
    for (;;) {
      const frame = await this.next(timeout);
      if (frame.opcode === WireOp.CLOSE) throw new Error(`a close frame came instead of data: ${this.describe()}`);
      if (frame.opcode !== WireOp.PING && frame.opcode !== WireOp.PONG) return frame;
    }
  }

  /** The first close frame received (waiting for it if need be): its code (null if empty) and reason. */
  async closeFrame(timeout = this.wait): Promise<{ code: number | null; reason: string }> {
    const find = () => this.frames.find((frame) => frame.opcode === WireOp.CLOSE);
    await this.until(() => find() !== undefined || this.closed, timeout, 'a close frame');
    const frame = find();
    if (!frame) throw new Error(`the connection closed without a close frame; frames: ${this.describe()}`);
    return parseClose(frame);
  }

  /** Waits for the TCP connection to close; returns when it did (performance.now()). */
  async tcpClosed(timeout = this.wait): Promise<number> {
    await this.until(() => this.closed, timeout, 'the TCP connection to close');
    return this.closedAt as number;
  }

  /** Our side of the closing handshake: a close frame (`code`), its answer (or the end) within 2 s, or a failure; then the socket goes. */
  async close(code = 1000): Promise<void> {
    try {
      if (this.closed) return;
      this.send(WireOp.CLOSE, closeFramePayload(code));
      await this.until(() => this.closed || this.frames.some((frame) => frame.opcode === WireOp.CLOSE), 2_000, 'the answer to our close frame');
    } finally {
      this.destroy();
    }
  }

  describe(): string {
    return describeFrames(this.frames);
  }

  destroy(): void {
    this.socket.destroy();
  }

  #received(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.bytesReceived += chunk.length;
    this.reader.push(chunk);
    this.#wakeups.wake();
  }

  #answer(frame: WireFrame): void {
    if (this.autoPong && frame.opcode === WireOp.PING) this.send(WireOp.PONG, frame.payload);
    if (this.echoClose && frame.opcode === WireOp.CLOSE && this.socket.writable) this.socket.end(wireFrame(WireOp.CLOSE, frame.payload, { mask: this.masks }));
  }

  /** @internal For rawServer: `onPeer` sees the peer before any frame is read. */
  static accepted(socket: net.Socket, head: string, rest: Uint8Array, wait: number, onPeer: (peer: RawPeer) => void): RawPeer {
    const peer = new RawPeer(socket, head, false, wait);
    onPeer(peer);
    peer.#received(rest);
    return peer;
  }
}

/** Writes `request` (if any) and reads up to the end of the other side's HTTP head. */
function readHead(socket: net.Socket, request: string | null, timeout: number): Promise<{ head: string; rest: Uint8Array }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error(`no HTTP head within ${timeout} ms`)), timeout);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end >= 0) finish(null, { head: buffered.subarray(0, end).toString('latin1'), rest: Uint8Array.from(buffered.subarray(end + 4)) });
    };
    const onClose = () => finish(new Error(`closed during the handshake: ${JSON.stringify(buffered.toString('latin1').slice(0, 300))}`));
    const finish = (error: Error | null, value?: { head: string; rest: Uint8Array }) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (error) {
        socket.destroy();
        reject(error);
      } else {
        resolve(value as { head: string; rest: Uint8Array });
      }
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    if (request !== null) {
      if (socket.connecting) socket.once('connect', () => socket.write(request));
      else socket.write(request);
    }
  });
}

export interface RawServer {
  port: number;
  url: string;
  /** Every request head received, in order. */
  requests: string[];
  /** Every peer accepted (a 101 sent), in order. */
  peers: RawPeer[];
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

export interface RawServerOptions {
  /** More header lines for the 101. */
  responseHeaders?: (request: string) => string[];
  /** An answer to send as is instead of the 101 (then the connection ends), or null for the 101. */
  respond?: (request: string) => string | null;
  /** How long the peers' waits wait by default (ms); default 2,000. */
  wait?: number;
}

/**
 * A raw WebSocket server on 127.0.0.1 for a client under test: answers each handshake with a
 * 101 (the accept for its key, plus `responseHeaders(request)`), or, if `respond` returns a
 * string, with that string as is (then the connection ends); hands each accepted peer to
 * `onPeer` before reading any frame from it.
 */
export async function rawServer(onPeer: (peer: RawPeer) => void, options: RawServerOptions = {}): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const requests: string[] = [];
  const peers: RawPeer[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    readHead(socket, null, 5_000).then(({ head, rest }) => {
      requests.push(head);
      const custom = options.respond?.(head) ?? null;
      if (custom !== null) {
        socket.end(custom);
        return;
      }
      const key = parseHead(head).headers['sec-websocket-key'] ?? '';
      const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor(key)}`, ...(options.responseHeaders?.(head) ?? [])];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      RawPeer.accepted(socket, head, rest, options.wait ?? 2_000, (peer) => {
        peers.push(peer);
        onPeer(peer);
      });
    }, () => socket.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    requests,
    peers,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Runs `body` against a raw server (handing each accepted peer to `onPeer`); closes it afterwards. */
export async function withRawServer(onPeer: (peer: RawPeer) => void, options: RawServerOptions, body: (server: RawServer) => Promise<void>): Promise<void> {
  const server = await rawServer(onPeer, options);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

// ── A server under test, with raw clients ────────────────────────────────────────────────

export interface Harness {
  server: Server;
  /** Server-side connections, in order of arrival. */
  accepted: Arrivals<WebSocket>;
  /** What reached onError. */
  errors: unknown[];
  /** A raw client of the server (`options` over the harness's defaults), destroyed afterwards. */
  peer(options?: RawPeerOptions): Promise<RawPeer>;
}

export interface HarnessOptions {
  /** How long `accepted.next()` waits by default (ms); default 2,000. */
  wait?: number;
  /** Defaults for every raw client. */
  peer?: RawPeerOptions;
  /** A bound on the server's close at the end (ms); none by default. */
  closeWithin?: number;
}

/**
 * Runs `body` against a fresh server on 127.0.0.1 whose connections run `handler` (options:
 * pingInterval 0 and onError collected, then `options`); destroys every raw client and closes
 * the server afterwards.
 */
export async function withTestServer(
  options: ServerOptions,
  handler: (ws: WebSocket) => unknown,
  body: (harness: Harness) => Promise<void>,
  settings: HarnessOptions = {},
): Promise<void> {
  const accepted = new Arrivals<WebSocket>(settings.wait);
  const errors: unknown[] = [];
  const peers: RawPeer[] = [];
  const server = await listen('127.0.0.1', 0, (ws) => {
    accepted.push(ws);
    return handler(ws);
  }, { pingInterval: 0, onError: (error) => errors.push(error), ...options });
  try {
    await body({
      server,
      accepted,
      errors,
      peer: async (peerOptions) => {
        const peer = await RawPeer.connect(server.port, { ...settings.peer, ...peerOptions });
        peers.push(peer);
        return peer;
      },
    });
  } finally {
    for (const peer of peers) peer.destroy();
    await (settings.closeWithin === undefined ? server.close() : within(server.close(), settings.closeWithin));
  }
}

// ── Child processes (peers and runtimes started for a test) ───────────────────────────────

/** A child process started by `startChild`, its stdout watched line by line. */
export interface Child {
  /** Resolves with the first stdout line that starts with `prefix` (its rest). */
  line(prefix: string, ms: number): Promise<string>;
  exit: Promise<number | null>;
  output(): string;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  kill(): void;
}

/**
 * Starts `argv` in `cwd` in its own process group (npx starts a runtime as a grandchild, and
 * `kill()` must reach it), stdout and stderr collected; `line(prefix)` waits for a stdout line.
 */
export function startChild(argv: string[], cwd: string): Child {
  const [command, ...args] = argv;
  assert.ok(command);
  // Its own process group: npx starts the runtime as a grandchild, and a kill must reach it.
  const child = spawn(command, args, {
    cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
    for (const watcher of watchers) watcher();
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exit = new Promise<number | null>((resolve) => {
    child.once('error', (error) => {
      stderr += `\nspawn failed: ${error.message}`;
      resolve(null);
    });
    child.once('close', (code) => resolve(code));
  });
  const output = () => `$ ${argv.join(' ')}\nstdout:\n${stdout.slice(-4000)}\nstderr:\n${stderr.slice(-4000)}`;
  return {
    exit,
    output,
    stderr: () => stderr,
    kill: () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    },
    line(prefix, ms) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = stdout.split('\n').find((text) => text.startsWith(prefix));
          if (found === undefined) return false;
          done();
          resolve(found.slice(prefix.length));
          return true;
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no "${prefix}" line within ${ms} ms\n${output()}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          watchers.delete(watch);
        };
        const watch = () => void check();
        if (check()) return;
        watchers.add(watch);
        void exit.then(() => {
          if (!check()) {
            done();
            reject(new Error(`exited without a "${prefix}" line\n${output()}`));
          }
        });
      });
    },
  };
}

/** Starts a node:http (or https) server on 127.0.0.1, port 0: its port. */
export function listenHttp(server: HttpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** Closes a server of listenHttp, with its connections (nothing to do if it is not listening). */
export function closeHttp(server: HttpServer | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A port nobody listens on (bound, then let go). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/**
 * For a test file or suite: a temporary directory and a self-signed certificate in it, made
 * before its tests and removed after them (the fields are set once `before` has run).
 */
export function temporaryCertificate(prefix: string): { dir: string; key: string; cert: string } {
  const pem = { dir: '', key: '', cert: '' };
  before(async () => {
    pem.dir = await mkdtemp(join(tmpdir(), prefix));
    Object.assign(pem, await selfSignedCertificate(pem.dir));
  });
  after(async () => {
    if (pem.dir) await rm(pem.dir, { recursive: true, force: true });
  });
  return pem;
}

/** What a connect() that must fail rejected with: a WebSocketError with 1006, whose message and causes do not hold `secret` (if given). */
export async function connectFailure(promise: Promise<WebSocket>, secret?: string): Promise<WebSocketError> {
  try {
    const ws = await promise;
    await ws.close();
  } catch (error) {
    assert.ok(error instanceof WebSocketError, `expected a WebSocketError, got ${String(error)}`);
    assert.equal(error.code, 1006);
    if (secret !== undefined) {
      for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) assert.ok(!e.message.includes(secret), `a secret in: ${e.message}`);
    }
    return error;
  }
  assert.fail('the connection should have failed');
}
