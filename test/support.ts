// Small helpers shared by the test suites (not a test file itself).
import { createHash } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';

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

function parseResponse(text: string, closed: boolean): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { text, statusLine, headers, body: end < 0 ? '' : text.slice(end + 4), closed };
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
// `rawServer` accepts clients under test. rawpeer.test.ts and fuzz-kit.ts keep their own.

const randomKey = (size: number): Uint8Array => globalThis.crypto.getRandomValues(new Uint8Array(size));

/** Frame opcodes (RFC 6455 §5.2), spelled out here so the helper does not lean on the library. */
export const WireOp = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export interface WireFrame {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  masked: boolean;
  /** Unmasked. */
  payload: Uint8Array;
}

export interface WireFrameOptions {
  fin?: boolean;
  rsv1?: boolean;
  /** A 4-byte key, `true` for a random one, `false` for none. */
  mask?: boolean | Uint8Array;
}

/** One frame, encoded by hand: header, masking key, payload (masked with the key if any). */
export function wireFrame(opcode: number, payload: Uint8Array | string = new Uint8Array(0), options: WireFrameOptions = {}): Uint8Array {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  const key = options.mask === true ? randomKey(4) : options.mask || null;
  const length = bytes.length;
  const lengthSize = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const headerSize = 2 + lengthSize + (key ? 4 : 0);
  const out = new Uint8Array(headerSize + length);
  out[0] = ((options.fin ?? true) ? 0x80 : 0) | (options.rsv1 ? 0x40 : 0) | opcode;
  out[1] = (key ? 0x80 : 0) | (lengthSize === 0 ? length : lengthSize === 2 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (lengthSize === 2) view.setUint16(2, length);
  if (lengthSize === 8) view.setBigUint64(2, BigInt(length));
  if (key) {
    out.set(key, 2 + lengthSize);
    for (let i = 0; i < length; i++) out[headerSize + i] = bytes[i] ^ key[i & 3];
  } else {
    out.set(bytes, headerSize);
  }
  return out;
}

/** A close frame's payload: the code, big-endian, and the UTF-8 reason. */
export function closeFramePayload(code: number, reason = ''): Uint8Array {
  const text = new TextEncoder().encode(reason);
  const payload = new Uint8Array(2 + text.length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(text, 2);
  return payload;
}

/** Splits a byte stream into frames (masked or not); pieces are joined only once a frame is whole. */
export class WireReader {
  readonly frames: WireFrame[] = [];
  /** When false, frames are counted (`count`) but not kept. */
  keep = true;
  count = 0;
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
      const payload = bytes.slice(headerSize);
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= bytes[headerSize - 4 + (i & 3)];
      this.count++;
      if (this.keep) this.frames.push({ fin: (bytes[0] & 0x80) !== 0, rsv1: (bytes[0] & 0x40) !== 0, opcode: bytes[0] & 0x0f, masked, payload });
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
  /** Sec-WebSocket-Extensions to offer. */
  extensions?: string;
  /** Sec-WebSocket-Protocol to offer, as is. */
  protocols?: string;
  /** More request header lines, as is. */
  headers?: string[];
  allowHalfOpen?: boolean;
  /** Handshake deadline (ms); default 3,000. */
  timeout?: number;
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
  readonly masks: boolean;
  bytesReceived = 0;
  ended = false;
  closed = false;
  #wakeups: Array<() => void> = [];
  #read = 0;

  private constructor(socket: net.Socket, head: string, masks: boolean, rest: Uint8Array) {
    this.socket = socket;
    this.head = head;
    this.masks = masks;
    const wake = () => {
      for (const resolve of this.#wakeups.splice(0)) resolve();
    };
    socket.on('data', (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      this.reader.push(chunk);
      wake();
    });
    socket.on('end', () => {
      this.ended = true;
      wake();
    });
    socket.on('close', () => {
      this.closed = true;
      wake();
    });
    if (socket.destroyed) this.closed = true;
    if (rest.length > 0) {
      this.bytesReceived += rest.length;
      this.reader.push(rest);
    }
  }

  /** Connects to a server on 127.0.0.1 and completes the opening handshake (any 101 with the right accept). */
  static async connect(port: number, options: RawPeerOptions = {}): Promise<RawPeer> {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const key = Buffer.from(randomKey(16)).toString('base64');
    const lines = [
      `GET ${options.path ?? '/'} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13',
      ...(options.extensions !== undefined ? [`Sec-WebSocket-Extensions: ${options.extensions}`] : []),
      ...(options.protocols !== undefined ? [`Sec-WebSocket-Protocol: ${options.protocols}`] : []),
      ...(options.headers ?? []),
    ];
    const { head, rest } = await readHead(socket, `${lines.join('\r\n')}\r\n\r\n`, options.timeout ?? 3_000);
    if (!head.startsWith('HTTP/1.1 101 ') || !head.toLowerCase().includes(`sec-websocket-accept: ${acceptFor(key).toLowerCase()}`)) {
      socket.destroy();
      throw new Error(`handshake failed: ${head}`);
    }
    return new RawPeer(socket, head, true, rest);
  }

  get frames(): WireFrame[] {
    return this.reader.frames;
  }

  /** Whether the other side agreed to permessage-deflate (client peer). */
  get deflate(): boolean {
    return /^sec-websocket-extensions:\s*permessage-deflate/im.test(this.head);
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
    const deadline = performance.now() + timeout;
    while (!condition()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${timeout} ms waiting for ${what}; frames so far: ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wakeups.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next frame received (any opcode), in arrival order. */
  async next(timeout = 2_000): Promise<WireFrame> {
    await this.until(() => this.frames.length > this.#read || this.closed, timeout, 'a frame');
    if (this.frames.length <= this.#read) throw new Error(`the connection closed with no further frame; frames: ${this.describe()}`);
    return this.frames[this.#read++];
  }

  /** The next TEXT, BINARY or CONTINUATION frame, skipping pings and pongs (and failing on a close). */
  async nextData(timeout = 2_000): Promise<WireFrame> {
    for (;;) {
      const frame = await this.next(timeout);
      if (frame.opcode === WireOp.CLOSE) throw new Error(`a close frame came instead of data: ${this.describe()}`);
      if (frame.opcode !== WireOp.PING && frame.opcode !== WireOp.PONG) return frame;
    }
  }

  /** The first close frame received (waiting for it if need be): its code (null if empty) and reason. */
  async closeFrame(timeout = 2_000): Promise<{ code: number | null; reason: string }> {
    const find = () => this.frames.find((frame) => frame.opcode === WireOp.CLOSE);
    await this.until(() => find() !== undefined || this.closed, timeout, 'a close frame');
    const frame = find();
    if (!frame) throw new Error(`the connection closed without a close frame; frames: ${this.describe()}`);
    const { payload } = frame;
    return payload.length < 2
      ? { code: null, reason: '' }
      : { code: (payload[0] << 8) | payload[1], reason: new TextDecoder().decode(payload.subarray(2)) };
  }

  /** Waits for the TCP connection to close. */
  async tcpClosed(timeout = 2_000): Promise<void> {
    await this.until(() => this.closed, timeout, 'the TCP connection to close');
  }

  describe(): string {
    const frames = this.frames.slice(0, 12).map((f) => `${f.opcode}${f.fin ? '' : '(nofin)'}${f.rsv1 ? '(rsv1)' : ''}:${f.payload.length}`);
    return `[${frames.join(' ')}${this.frames.length > 12 ? ` … ${this.frames.length} frames` : ''}]`;
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** @internal For rawServer. */
  static accepted(socket: net.Socket, head: string, rest: Uint8Array): RawPeer {
    return new RawPeer(socket, head, false, rest);
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
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

/**
 * A raw WebSocket server on 127.0.0.1 for a client under test: answers each handshake with a
 * 101 (the accept for its key, plus `responseHeaders(request)`), or, if `respond` returns a
 * string, with that string as is (then the connection ends); hands each accepted peer to `onPeer`.
 */
export async function rawServer(
  onPeer: (peer: RawPeer) => void,
  options: { responseHeaders?: (request: string) => string[]; respond?: (request: string) => string | null } = {},
): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const requests: string[] = [];
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
      const key = /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1] ?? '';
      const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor(key)}`, ...(options.responseHeaders?.(head) ?? [])];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      onPeer(RawPeer.accepted(socket, head, rest));
    }, () => socket.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
