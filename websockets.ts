/*!
 * websockets.ts 0.1.0 — a WebSocket client and server for Node.js in one file, with the same
 * small API over the browser's native WebSocket. npm: websockets.ts; JSR: @websockets-ts/websockets.
 *
 * SPDX-License-Identifier: MIT
 *
 * Copyright (c) 2026 the websockets.ts authors
 *
 * Permission is hereby granted, free of charge, to any person obtaining a copy
 * of this software and associated documentation files (the "Software"), to deal
 * in the Software without restriction, including without limitation the rights
 * to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 * copies of the Software, and to permit persons to whom the Software is
 * furnished to do so, subject to the following conditions:
 *
 * The above copyright notice and this permission notice shall be included in all
 * copies or substantial portions of the Software.
 *
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 * IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 * FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 * AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 * LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 * OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 * SOFTWARE.
 */

/**
 * Protocol: RFC 6455 (https://www.rfc-editor.org/rfc/rfc6455). API after Julia's HTTP.jl
 * `WebSockets` module: a `WebSocket` you `receive` from, `send` to, `ping`, `pong`, `close`
 * and iterate; `open(url, handler)` for clients and `listen(host, port, handler)` for servers.
 * Zero dependencies: Node built-ins are loaded lazily (process.getBuiltinModule, Node ≥ 20.16),
 * so this file loads and bundles for a browser too, with no `node:` import for a bundler to resolve.
 *
 * Contents
 *   1. Constants and errors
 *   2. Handshake (RFC 6455 §4), and permessage-deflate negotiation (RFC 7692 §7.1)
 *   3. Frame codec (RFC 6455 §5): pure functions over bytes; masking (a WebAssembly SIMD
 *      kernel, a word loop where there is none); the incremental FrameParser
 *   4. Connection core: the WebSocket (receive queue, message iterator, public API) over a
 *      Link; ProtocolLink, the RFC 6455 state machine, independent of the transport;
 *      broadcast; MemoryTransport, the in-memory byte stream of pair()
 *   5. Node transport: node:* loaded lazily, SocketTransport (writes batched per tick), zlib
 *      compression (RFC 7692 §7.2)
 *   6. open / connect / pair / listen / upgrade
 *   7. Browser facade (wrap)
 *   8. Exports
 */

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 1. Constants and errors
// ═══════════════════════════════════════════════════════════════════════════════════════════

/** What `receive()` yields: TEXT messages as `string`, BINARY messages as `Uint8Array`. */
type Data = string | Uint8Array;
/** One piece of an outgoing message: a string is sent as TEXT, bytes as BINARY. */
type Chunk = string | ArrayBuffer | ArrayBufferView;
/** What `send()` takes: a chunk is one message; an iterable of chunks is one fragmented message. */
type Outgoing = Chunk | Iterable<Chunk> | AsyncIterable<Chunk>;

/** Frame opcodes (RFC 6455 §5.2). */
const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** Close status codes (RFC 6455 §7.4.1 and the IANA registry). */
const CloseCode = {
  NORMAL_CLOSURE: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  NO_STATUS_RECEIVED: 1005,
  ABNORMAL_CLOSURE: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_GATEWAY: 1014,
  TLS_HANDSHAKE: 1015,
} as const;

const CLOSE_CODE_DESCRIPTIONS: Partial<Record<number, string>> = {
  1000: 'normal closure',
  1001: 'going away',
  1002: 'protocol error',
  1003: 'unsupported data',
  1005: 'no status received',
  1006: 'abnormal closure',
  1007: 'invalid payload data',
  1008: 'policy violation',
  1009: 'message too big',
  1010: 'mandatory extension',
  1011: 'internal error',
  1012: 'service restart',
  1013: 'try again later',
  1014: 'bad gateway',
  1015: 'TLS handshake failure',
};

function describeCloseCode(code: number): string {
  const description = CLOSE_CODE_DESCRIPTIONS[code];
  if (description !== undefined) return description;
  if (code >= 4000 && code <= 4999) return 'private use';
  if (code >= 3000 && code <= 3999) return 'registered';
  return 'unknown';
}

const KiB = 1024;

/** Defaults of every limit and timer; each one is an option. Durations in milliseconds. */
const DEFAULTS = {
  maxMessageSize: 16_777_216, // 16 MiB, inclusive; Autobahn 9.* sends exactly 16 MiB
  maxFragments: 131_072, // Autobahn 9.3.1 sends 4 MiB in 65,536 fragments
  closeTimeout: 5_000,
  pingInterval: 20_000,
  pingTimeout: 20_000,
  handshakeTimeout: 10_000,
  highWaterMark: 65_536, // 64 KiB
  maxQueuedMessages: 1_024,
  maxQueuedBytes: 1_048_576, // 1 MiB
};

/** Most request headers a server accepts (a browser sends about 15). */
const DEFAULT_MAX_HEADERS = 100;

/** RFC 6455 §1.3: the GUID appended to Sec-WebSocket-Key before hashing. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Options of one WebSocket connection, on either side. */
interface ConnectionOptions {
  /** Largest message accepted, in bytes, inclusive; larger closes with 1009. 0: no limit. */
  maxMessageSize?: number | undefined;
  /** Most frames in one message (empty ones count); more closes with 1009. 0: no limit. */
  maxFragments?: number | undefined;
  /** Keepalive: ping this often (ms). 0 disables keepalive. */
  pingInterval?: number | undefined;
  /** Keepalive: close with 1011 if no pong arrives within this time (ms). */
  pingTimeout?: number | undefined;
  /** How long the closing handshake may take before the socket is destroyed (ms). */
  closeTimeout?: number | undefined;
  /** How long the opening handshake may take (ms). 0: no limit. */
  handshakeTimeout?: number | undefined;
  /** `send()` resolves once no more than this many bytes wait in the socket's buffer. */
  highWaterMark?: number | undefined;
  /** Unreceived messages kept before the socket stops reading (TCP backpressure). */
  maxQueuedMessages?: number | undefined;
  /** Unreceived bytes kept before the socket stops reading (TCP backpressure). */
  maxQueuedBytes?: number | undefined;
  /** permessage-deflate (RFC 7692): `true` for the defaults, or its settings. Off by default. */
  compression?: boolean | CompressionOptions | undefined;
}

/** Settings of permessage-deflate (RFC 7692). Window bits are 8–15. */
interface CompressionOptions {
  /** Ask (client) or make (server) the server reset its compression context after each message. */
  serverNoContextTakeover?: boolean | undefined;
  /** Ask (client) or make (server) the client reset its compression context after each message. */
  clientNoContextTakeover?: boolean | undefined;
  /** Largest LZ77 window the server may compress with. */
  serverMaxWindowBits?: number | undefined;
  /** Largest LZ77 window the client may compress with. */
  clientMaxWindowBits?: number | undefined;
  /** Messages smaller than this many bytes are sent uncompressed. Default 1024. */
  threshold?: number | undefined;
  /** zlib compression level, 0–9. Default 6. */
  level?: number | undefined;
  /** zlib memory level, 1–9. Default 8. */
  memLevel?: number | undefined;
}

/** PEM text or DER bytes (a Buffer is a Uint8Array), or several. */
type PemInput = string | Uint8Array | Array<string | Uint8Array>;

/**
 * The node:tls options both sides share, typed as node:tls types them, so that options typed
 * with @types/node (`tls.ConnectionOptions`, `tls.SecureContextOptions`) pass as they are.
 * Whatever else is set is handed to node:tls too.
 */
interface TlsOptions {
  ca?: PemInput | undefined;
  cert?: PemInput | undefined;
  /** PEM, or several keys, each possibly with its own passphrase. */
  key?: PemInput | Array<string | Uint8Array | { pem: string | Uint8Array; passphrase?: string | undefined }> | undefined;
  /** Protocols to offer (client) or accept (server) by ALPN; `http2` sets them itself. */
  ALPNProtocols?: readonly (string | Uint8Array)[] | ArrayBufferView | undefined;
  /** A PKCS#12 bundle instead of `key` and `cert`. */
  pfx?: PemInput | Array<string | Uint8Array | { buf: string | Uint8Array; passphrase?: string | undefined }> | undefined;
  passphrase?: string | undefined;
  crl?: PemInput | undefined;
  ciphers?: string | undefined;
  ecdhCurve?: string | undefined;
  sigalgs?: string | undefined;
  minVersion?: string | undefined;
  maxVersion?: string | undefined;
  rejectUnauthorized?: boolean | undefined;
  /** A `tls.createSecureContext()` result. */
  secureContext?: object | undefined;
}

/** TLS options for a `wss://` client, handed to `tls.connect`. */
interface ClientTlsOptions extends TlsOptions {
  servername?: string | undefined;
  session?: Uint8Array | undefined;
  /** Checks the server's certificate (node:tls passes a `PeerCertificate`); return an Error to refuse it. */
  checkServerIdentity?: ((hostname: string, certificate: never) => Error | undefined) | undefined;
}

/** TLS options for a `wss://` server, handed to `https.createServer`: `key` and `cert` (or `pfx`) at least. */
interface ServerTlsOptions extends TlsOptions {
  requestCert?: boolean | undefined;
  honorCipherOrder?: boolean | undefined;
  sessionTimeout?: number | undefined;
  dhparam?: string | Uint8Array | undefined;
  SNICallback?: ((servername: string, callback: (error: Error | null, context?: object) => void) => void) | undefined;
}

/** Options of `open` and `connect`. */
interface ClientOptions extends ConnectionOptions {
  /** Subprotocols to offer, in order of preference. */
  protocols?: string | string[] | undefined;
  /** Extra request headers (Node only; a browser cannot set them). */
  headers?: Record<string, string> | undefined;
  /** Aborts the opening handshake. */
  signal?: AbortSignal | undefined;
  /** TLS options for `wss://` (Node only). */
  tls?: ClientTlsOptions | undefined;
  /**
   * The proxy to go through (Node only): an `http:`, `https:`, `socks5:` or `socks5h:` URL, with
   * credentials if it needs them; `false` for none. Default: the environment's (`https_proxy`,
   * `http_proxy`, `all_proxy`, `no_proxy`), never for loopback.
   */
  proxy?: string | URL | false | undefined;
  /** TLS options for an `https:` proxy (Node only). */
  proxyTls?: ClientTlsOptions | undefined;
  /** A unix domain socket to connect to instead of the URL's host (Node only); the URL gives the Host header and the request target. */
  socketPath?: string | undefined;
  /** Follow a 301, 302, 303, 307 or 308 answer to the handshake (Node only). Default false, as browsers never do. */
  followRedirects?: boolean | undefined;
  /** Most redirects followed. Default 10. */
  maxRedirects?: number | undefined;
  /**
   * Offer HTTP/2 for wss: (Node only): WebSockets to one origin then share one connection, as
   * RFC 8441 streams, where the server enables it; otherwise HTTP/1.1. ws: URLs always use
   * HTTP/1.1 (no h2c). Default false.
   */
  http2?: boolean | undefined;
}

/**
 * The handshake request: method, request target and headers (names in lower case). Over
 * HTTP/2 (RFC 8441) the method is CONNECT and the headers hold the pseudo-headers
 * `:authority`, `:scheme` and `:protocol`, and `host` (copied from `:authority` unless sent).
 */
interface RequestInfo {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The HTTP version that carried the handshake: '1.1', or '2' for an HTTP/2 stream; '' where unknown (a browser's WebSocket, `pair()`). */
  readonly httpVersion: string;
}

/** The handshake response the client received. */
interface ResponseInfo {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** '1.1', or '2' for an HTTP/2 stream; '' where unknown. */
  readonly httpVersion: string;
}

/** How a server refuses a handshake. */
interface Refusal {
  status: number;
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
}

/** Options of `listen` and `upgrade`. */
interface ServerOptions extends ConnectionOptions {
  /** Subprotocols the server accepts, in its order of preference (first match wins). */
  protocols?: string[] | undefined;
  /** Picks the subprotocol among those the client offered; return '' or undefined for none. */
  selectProtocol?: (offered: string[], request: RequestInfo) => string | null | undefined;
  /** Accepts (`true`) or refuses (`false` → 403, or a `Refusal`) a handshake, e.g. on Origin or auth. */
  verify?: ((request: RequestInfo) => boolean | Refusal | Promise<boolean | Refusal>) | undefined;
  /** Where errors of the handler (with its `ws`) and of `verify`/`selectProtocol` (no `ws`) go; the default writes them to stderr. */
  onError?: ((error: unknown, ws?: WebSocket) => void) | undefined;
  /** `{ key, cert, … }` to serve `wss://` (`listen` only). */
  tls?: ServerTlsOptions | undefined;
  /** Largest request header block, in bytes; larger gets 431 (`listen` only; node:http's default is 16 KiB). */
  maxHeaderSize?: number | undefined;
  /** Most request headers; more gets 431. Default 100. */
  maxHeaders?: number | undefined;
  /**
   * Bind with SO_REUSEPORT (`listen` only): several processes (node:cluster workers, or any)
   * listen on one port and the kernel spreads the connections. Node ≥ 22.12 or ≥ 23.1, on
   * Linux, FreeBSD, DragonFly BSD, Solaris or AIX; elsewhere listen() rejects and says so.
   */
  reusePort?: boolean | undefined;
  /**
   * Serve WebSockets over HTTP/2 too (RFC 8441), beside HTTP/1.1 on the same port (`listen`
   * only, with `tls`: ALPN picks the version per connection). Default false.
   */
  http2?: boolean | undefined;
  /** Most streams (WebSockets, requests) one HTTP/2 connection may have open at once. Default 1000. */
  maxConcurrentStreams?: number | undefined;
}

/** What ended a connection: the close code and reason the peer sent (1005: none, 1006: no close frame). */
interface CloseInfo {
  readonly code: number;
  readonly reason: string;
}

/**
 * The one error for everything that ends a connection: a close frame received, a protocol
 * error detected (1002, 1007, 1009, …), a dead link (1006) or a refused handshake (1006, with
 * the HTTP `status` and `headers` the server answered).
 *
 * @example
 * try { await ws.receive() } catch (error) { if (error instanceof WebSocketError) console.log(error.code) }
 */
class WebSocketError extends Error {
  readonly code: number;
  readonly reason: string;
  /** The HTTP status of a refused handshake. */
  readonly status?: number;
  /** The HTTP headers of a refused handshake. */
  readonly headers?: Readonly<Record<string, string>>;

  constructor(
    code: number,
    reason = '',
    options: { cause?: unknown; status?: number; headers?: Record<string, string> } = {},
  ) {
    const detail = reason ? `: ${reason}` : '';
    super(`websocket closed with status ${code} (${describeCloseCode(code)})${detail}`, { cause: options.cause });
    this.name = 'WebSocketError';
    this.code = code;
    this.reason = reason;
    if (options.status !== undefined) this.status = options.status;
    if (options.headers !== undefined) this.headers = options.headers;
  }
}

/**
 * True for a `WebSocketError` that ends a connection normally: 1000, 1001 or 1005.
 *
 * @example
 * try { for await (const m of ws) handle(m) } catch (error) { if (!isOk(error)) throw error }
 */
function isOk(error: unknown): boolean {
  return error instanceof WebSocketError && (error.code === 1000 || error.code === 1001 || error.code === 1005);
}

/**
 * RFC 6455 §7.4: codes below 1000 are unused; 1004, 1005, 1006 and 1015 are reserved and never
 * sent on the wire; 1016–2999 are reserved for future revisions of the protocol (1012–1014
 * were registered with IANA after the RFC); 3000–4999 belong to libraries and applications.
 */
function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** Checks what a user passes to `close()`: programming mistakes throw, they never reach the wire. */
function checkCloseArguments(code: number, reason: string): void {
  if (!Number.isInteger(code)) throw new TypeError(`close code must be an integer, got ${String(code)}`);
  if (!isValidCloseCode(code)) throw new RangeError(`close code ${code} may not be sent (RFC 6455 §7.4)`);
  const bytes = utf8Length(reason);
  if (bytes > MAX_CLOSE_REASON) throw new RangeError(`close reason is ${bytes} bytes; at most ${MAX_CLOSE_REASON} fit in a close frame`);
}

/** RFC 6455 §5.5: a control frame's payload is at most 125 bytes, 2 of them a close frame's code. */
const MAX_CLOSE_REASON = 123;

/** The UTF-8 length of `text`, without encoding it (a lone surrogate counts 3, as TextEncoder writes U+FFFD). */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) {
      bytes += 1;
    } else if (unit >= 0xd800 && unit <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 4 bytes for its 2 units
      i++;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

const textEncoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the message, not a byte-order mark to strip.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function isDataView(value: unknown): value is ArrayBufferView | ArrayBuffer {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

function toBytes(chunk: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return new Uint8Array(chunk);
}

function byteLength(parts: Uint8Array[]): number {
  let length = 0;
  for (const part of parts) length += part.length;
  return length;
}

/** Makes a buffer whose every byte the caller writes: Node's `Buffer.allocUnsafe` skips zero-filling. */
type Allocate = (size: number) => Uint8Array;
const allocateZeroed: Allocate = (size) => new Uint8Array(size);

function concatBytes(parts: Uint8Array[], length = byteLength(parts), allocate = allocateZeroed): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = allocate(length);
  copyParts(parts, out);
  return out;
}

/** Copies `parts` one after another to the start of `target`. */
/**
 * A received BINARY message, on memory the application may keep: one piece that spans most
 * of its buffer is handed out as it is; anything else is copied, so that a small message never
 * keeps the whole read chunk it came in alive.
 */
function ownedMessage(parts: Uint8Array[], length: number, allocate: Allocate): Uint8Array {
  const only = parts.length === 1 ? parts[0]! : null;
  if (only && only.byteLength * 2 >= only.buffer.byteLength) return only;
  const message = allocate(length);
  copyParts(parts, message);
  return message;
}

function copyParts(parts: Uint8Array[], target: Uint8Array): void {
  let offset = 0;
  for (const part of parts) {
    target.set(part, offset);
    offset += part.length;
  }
}

/** Cryptographically random bytes, drawn from a pool so each frame's mask costs no system call. */
let randomPool = new Uint8Array(0);
let randomOffset = 0;
function randomBytes(length: number): Uint8Array {
  if (randomOffset + length > randomPool.length) {
    randomPool = globalThis.crypto.getRandomValues(new Uint8Array(Math.max(4096, length)));
    randomOffset = 0;
  }
  const bytes = randomPool.subarray(randomOffset, randomOffset + length);
  randomOffset += length;
  return bytes;
}

/** Bytes as a string of the same code units (ISO-8859-1): what HTTP heads and btoa take. */
function latin1(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]!);
  return text;
}

function base64(bytes: Uint8Array): string {
  return btoa(latin1(bytes));
}

type Timer = ReturnType<typeof setTimeout>;

/** Runs `callback` in a later macrotask, after the pending microtasks (the application's turn). */
const setImmediateIfAny = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;
const defer: (callback: () => void) => void = setImmediateIfAny ? (callback) => void setImmediateIfAny(callback) : (callback) => void setTimeout(callback, 0);

/** The UTF-8 bytes of `text`, cut to at most `limit` bytes at a character boundary. */
function truncateUtf8(text: string, limit: number): Uint8Array {
  const bytes = textEncoder.encode(text);
  if (bytes.length <= limit) return bytes;
  let end = limit;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // do not cut a multi-byte sequence
  return bytes.subarray(0, end);
}

/** For promise callbacks whose value does not matter. */
function ignoreValue(): void {}

/** The longest delay a timer takes: past it, Node and browsers fire after 1 ms instead. */
const MAX_TIMER_MS = 2_147_483_647;

/** A delay as setTimeout can honour it: Infinity, or anything past about 24.8 days, becomes the longest one. */
function timerDelay(ms: number): number {
  return ms <= MAX_TIMER_MS ? ms : MAX_TIMER_MS; // NaN too: never a tight loop
}

/** A timer that never keeps a process alive by itself. */
function startTimer(ms: number, callback: () => void): Timer {
  const timer = setTimeout(callback, timerDelay(ms));
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 2. Handshake (RFC 6455 §4)
// ═══════════════════════════════════════════════════════════════════════════════════════════

/** RFC 7230 §3.2.6: header names and subprotocols are tokens. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 7230 §3.2: a header value may not contain CR, LF or NUL (no header injection). */
const UNSAFE_HEADER_VALUE = /[\r\n\0]/;
/** RFC 6455 §4.1: the key is 16 random bytes, base64-encoded: 22 characters and '=='. */
const KEY = /^[A-Za-z0-9+/]{22}==$/;
/** Headers the handshake owns; a user may not set them. */
const HANDSHAKE_HEADERS = new Set([
  'upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'sec-websocket-extensions',
]);

const HTTP_REASONS: Record<number, string> = {
  101: 'Switching Protocols', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 426: 'Upgrade Required', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable',
};

/** Splits a comma-separated header into its tokens, trimmed. */
function headerTokens(value: string | undefined): string[] {
  if (!value) return [];
  return value.split(',').map((token) => token.trim()).filter((token) => token !== '');
}

function hasToken(value: string | undefined, token: string): boolean {
  return headerTokens(value).some((item) => item.toLowerCase() === token);
}

function normalizeProtocols(protocols: string | string[] | undefined): string[] {
  const list = protocols === undefined ? [] : typeof protocols === 'string' ? [protocols] : protocols;
  for (const protocol of list) {
    if (!TOKEN.test(protocol)) throw new TypeError(`invalid subprotocol ${JSON.stringify(protocol)}: it must be an HTTP token`);
  }
  if (new Set(list).size !== list.length) throw new TypeError('subprotocols must be unique');
  return list;
}

/** Validates user headers for a client request; CR/LF would let a value inject headers. */
function checkClientHeaders(headers: Record<string, string> | undefined): Record<string, string> {
  const checked: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (typeof value !== 'string' || UNSAFE_HEADER_VALUE.test(value)) {
      throw new TypeError(`invalid value for header ${name}: it must be a string without CR, LF or NUL`);
    }
    if (HANDSHAKE_HEADERS.has(name.toLowerCase())) throw new TypeError(`header ${name} is set by the handshake itself`);
    checked[name] = value;
  }
  return checked;
}

/** RFC 6455 §4.2.2: Sec-WebSocket-Accept is base64(SHA-1(key + GUID)). */
function acceptKey(key: string, sha1Base64: (text: string) => string): string {
  return sha1Base64(key + WEBSOCKET_GUID);
}

/** What the server learned from a valid opening handshake. */
interface ClientHello {
  key: string;
  protocols: string[];
}

/**
 * RFC 6455 §4.2.1: validates a client's opening handshake. Returns the key and offered
 * subprotocols, or the HTTP refusal to answer with.
 */
function checkClientRequest(method: string, httpVersion: string, headers: Record<string, string>): ClientHello | Refusal {
  if (method !== 'GET') return { status: 405, headers: { Allow: 'GET' }, body: 'the WebSocket handshake must be a GET request' };
  const [major = 0, minor = 0] = httpVersion.split('.').map(Number);
  if (!(major > 1 || (major === 1 && minor >= 1))) return { status: 400, body: 'the WebSocket handshake needs HTTP/1.1' };
  if (!hasToken(headers['upgrade'], 'websocket')) {
    return { status: 426, headers: { Upgrade: 'websocket' }, body: 'this is a WebSocket endpoint: Upgrade: websocket required' };
  }
  if (!hasToken(headers['connection'], 'upgrade')) return { status: 400, body: 'Connection header must contain "upgrade"' };
  if (!headers['host']) return { status: 400, body: 'Host header missing' };
  const offer = checkWebSocketOffer(headers);
  if ('status' in offer) return offer;
  const key = headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(key)) return { status: 400, body: 'Sec-WebSocket-Key must be 16 bytes in base64' };
  return { key, protocols: offer.protocols };
}

/** The headers both handshakes share: the version (13), and the subprotocols offered. */
function checkWebSocketOffer(headers: Record<string, string>): { protocols: string[] } | Refusal {
  if (headers['sec-websocket-version'] !== '13') {
    return { status: 426, headers: { 'Sec-WebSocket-Version': '13' }, body: 'unsupported Sec-WebSocket-Version: only 13 is supported' };
  }
  const protocols = headerTokens(headers['sec-websocket-protocol']);
  // RFC 6455 §4.1: each offered subprotocol is a token; an invalid one is never echoed.
  if (!protocols.every((protocol) => TOKEN.test(protocol))) return { status: 400, body: 'Sec-WebSocket-Protocol must be a list of tokens' };
  return { protocols };
}

// ── RFC 8441: the handshake as an HTTP/2 extended CONNECT ───────────────────────────────
//
// Over HTTP/2 a WebSocket is one stream: the client sends CONNECT with `:protocol: websocket`
// (allowed once the server's SETTINGS carried SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, §3), the
// server answers 200, and the stream's DATA carries the frames of RFC 6455 §5 unchanged
// (client frames still masked). No Sec-WebSocket-Key nor Accept (§5): the stream is already
// bound to this request. Header names are in lower case; pseudo-headers start with ':'.

/** RFC 8441 §4–5: validates an extended CONNECT; the subprotocols offered, or the refusal. */
function checkExtendedConnect(headers: Record<string, string>): { protocols: string[] } | Refusal {
  if (headers[':method'] !== 'CONNECT') return { status: 405, headers: { Allow: 'CONNECT' }, body: 'a WebSocket over HTTP/2 opens with CONNECT' };
  const protocol = headers[':protocol'];
  if (protocol === undefined) return { status: 405, body: 'only an extended CONNECT with :protocol websocket is served here (RFC 8441)' };
  if (protocol.toLowerCase() !== 'websocket') return { status: 501, body: `the :protocol ${JSON.stringify(protocol)} is not served here; only websocket` };
  // §4: an extended CONNECT carries :scheme and :path, and :authority as any CONNECT.
  for (const name of [':scheme', ':path', ':authority']) {
    if (!headers[name]) return { status: 400, body: `an extended CONNECT needs ${name} (RFC 8441 §4)` };
  }
  return checkWebSocketOffer(headers);
}

/** Headers that mean something only to one HTTP/1.1 connection: HTTP/2 forbids them (RFC 9113 §8.2.2). */
const HTTP1_ONLY_HEADERS: ReadonlySet<string> = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'host']);

/** The client's extended CONNECT (RFC 8441 §4): the user's headers in lower case, their Host as :authority. */
function extendedConnectHeaders(target: URL, headers: Record<string, string>, protocols: string[], extensions: string): Record<string, string> {
  const request: Record<string, string> = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':authority': target.host,
    ':path': target.pathname + target.search,
  };
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'host') request[':authority'] = value;
    else if (!HTTP1_ONLY_HEADERS.has(lower)) request[lower] = value;
  }
  request['sec-websocket-version'] = '13';
  if (protocols.length > 0) request['sec-websocket-protocol'] = protocols.join(', ');
  if (extensions) request['sec-websocket-extensions'] = extensions;
  return request;
}

function formatHeaders(headers: Record<string, string>): string {
  let text = '';
  for (const name in headers) text += `${name}: ${headers[name]}\r\n`;
  return text;
}

/** The 101 answer that completes a handshake (RFC 6455 §4.2.2). */
function formatAcceptance(accept: string, protocol: string, extensions: string): string {
  const headers: Record<string, string> = { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Accept': accept };
  if (protocol) headers['Sec-WebSocket-Protocol'] = protocol;
  if (extensions) headers['Sec-WebSocket-Extensions'] = extensions;
  return `HTTP/1.1 101 Switching Protocols\r\n${formatHeaders(headers)}\r\n`;
}

/** An HTTP answer that refuses a handshake and closes the connection. */
function formatRefusal(refusal: Refusal): string {
  const { body, headers } = refusalContent(refusal);
  return `HTTP/1.1 ${refusal.status} ${HTTP_REASONS[refusal.status] ?? 'Refused'}\r\n${formatHeaders(headers)}\r\n${body}`;
}

/** The body and headers of a refusal; the connection closes after it. */
function refusalContent(refusal: Refusal): { body: string; headers: Record<string, string> } {
  const body = refusal.body ?? HTTP_REASONS[refusal.status] ?? '';
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(refusal.headers ?? {})) {
    if (!TOKEN.test(name) || UNSAFE_HEADER_VALUE.test(value)) throw new TypeError(`invalid refusal header ${name}`);
    headers[name] = value;
  }
  headers['Content-Type'] = 'text/plain; charset=utf-8';
  headers['Content-Length'] = String(textEncoder.encode(body).length);
  // RFC 9110 §7.8: whoever sends Upgrade lists "upgrade" in Connection too.
  headers['Connection'] = 'Upgrade' in headers ? 'Upgrade, close' : 'close';
  return { body, headers };
}

/** Chooses the subprotocol: the server's hook, else its first accepted protocol that the client offered. */
function chooseProtocol(offered: string[], request: RequestInfo, options: ServerOptions): string {
  if (options.selectProtocol) {
    const chosen = options.selectProtocol(offered, request) ?? '';
    if (chosen !== '' && !offered.includes(chosen)) throw new Error(`selectProtocol chose ${JSON.stringify(chosen)}, which the client did not offer`);
    return chosen;
  }
  return options.protocols?.find((protocol) => offered.includes(protocol)) ?? '';
}

/**
 * RFC 6455 §4.1: the client checks the server's 101 answer. Returns the agreed subprotocol,
 * or throws a WebSocketError saying what is wrong.
 */
function checkServerResponse(headers: Record<string, string>, expectedAccept: string, offered: string[]): string {
  const fail = handshakeFailure(101, headers);
  if (!hasToken(headers['upgrade'], 'websocket')) throw fail('the response has no "Upgrade: websocket"');
  if (!hasToken(headers['connection'], 'upgrade')) throw fail('the response has no "Connection: upgrade"');
  if (headers['sec-websocket-accept'] !== expectedAccept) throw fail('Sec-WebSocket-Accept does not match the key');
  return chosenProtocol(headers, offered, fail);
}

/** RFC 8441 §5: a 2xx answer to the extended CONNECT accepts; its subprotocol must be one offered. */
function checkStreamResponse(status: number, headers: Record<string, string>, offered: string[]): string {
  return chosenProtocol(headers, offered, handshakeFailure(status, headers));
}

function handshakeFailure(status: number, headers: Record<string, string>): (why: string) => WebSocketError {
  return (why) => new WebSocketError(1006, `handshake failed: ${why}`, { status, headers });
}

function chosenProtocol(headers: Record<string, string>, offered: string[], fail: (why: string) => WebSocketError): string {
  const protocol = headers['sec-websocket-protocol'] ?? '';
  if (protocol !== '' && !offered.includes(protocol)) throw fail(`the server chose subprotocol ${JSON.stringify(protocol)}, which was not offered`);
  return protocol;
}

// ── permessage-deflate negotiation (RFC 7692 §7.1) ───────────────────────────────────────

/** What both ends agreed on; "server" and "client" as in RFC 7692. */
interface DeflateParameters {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
}

/** One extension of a Sec-WebSocket-Extensions header: its name and parameters (`true` when value-less). */
interface ExtensionOffer {
  name: string;
  params: Map<string, string | true>;
}

const DEFLATE = 'permessage-deflate';
const DEFLATE_PARAMS = new Set(['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits']);

/** Checks compression settings: programming mistakes throw before any I/O. */
function checkCompressionOptions(compression: boolean | CompressionOptions | undefined): CompressionOptions | null {
  if (!compression) return null;
  const settings = compression === true ? {} : compression;
  for (const key of ['serverMaxWindowBits', 'clientMaxWindowBits'] as const) {
    const bits = settings[key];
    if (bits !== undefined && !(Number.isInteger(bits) && bits >= 8 && bits <= 15)) throw new RangeError(`compression.${key} must be an integer from 8 to 15, got ${String(bits)}`);
  }
  const { level, memLevel, threshold } = settings;
  if (level !== undefined && !(Number.isInteger(level) && level >= 0 && level <= 9)) throw new RangeError(`compression.level must be an integer from 0 to 9, got ${String(level)}`);
  if (memLevel !== undefined && !(Number.isInteger(memLevel) && memLevel >= 1 && memLevel <= 9)) throw new RangeError(`compression.memLevel must be an integer from 1 to 9, got ${String(memLevel)}`);
  if (threshold !== undefined && !(threshold >= 0)) throw new RangeError(`compression.threshold must be a number ≥ 0, got ${String(threshold)}`);
  return settings;
}

/**
 * Parses a Sec-WebSocket-Extensions header (RFC 7692 §5.1, RFC 6455 §9.1):
 * `name; param; param=value, name2`. Returns null if it is malformed.
 */
function parseExtensions(header: string): ExtensionOffer[] | null {
  const offers: ExtensionOffer[] = [];
  for (const item of header.split(',')) {
    const [name = '', ...rawParams] = item.split(';').map((part) => part.trim());
    if (name === '' && rawParams.length === 0) continue; // RFC 7230 §7: empty list elements are ignored
    if (!TOKEN.test(name)) return null;
    const params = new Map<string, string | true>();
    for (const raw of rawParams) {
      const parameter = parseExtensionParameter(raw);
      if (!parameter || params.has(parameter[0])) return null; // RFC 7692 §7.1: no parameter twice
      params.set(...parameter);
    }
    offers.push({ name, params });
  }
  return offers;
}

/** `name`, `name=token` or `name="quoted"`, where the unescaped quoted value must be a token too (RFC 6455 §9.1). */
const EXTENSION_PARAMETER = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?:\s*=\s*(?:([!#$%&'*+\-.^_`|~0-9A-Za-z]+)|"((?:[^"\\]|\\.)*)"))?$/;

function parseExtensionParameter(raw: string): [string, string | true] | null {
  const match = EXTENSION_PARAMETER.exec(raw);
  if (!match) return null;
  const [, name = '', token, quoted] = match;
  if (quoted === undefined) return [name, token ?? true];
  const value = quoted.replace(/\\(.)/g, '$1'); // RFC 7230 §3.2.6: a quoted-pair stands for its second character
  return TOKEN.test(value) ? [name, value] : null;
}

/** A window-bits value: an integer from 8 to 15 (RFC 7692 §7.1.2), or null. */
function windowBits(value: string | true | undefined): number | null {
  return typeof value === 'string' && /^(8|9|1[0-5])$/.test(value) ? Number(value) : null;
}

/** The client's offer: what it asks for, and `client_max_window_bits` so the server may limit it. */
function formatDeflateOffer(settings: CompressionOptions): string {
  const params = [DEFLATE];
  if (settings.serverNoContextTakeover) params.push('server_no_context_takeover');
  if (settings.clientNoContextTakeover) params.push('client_no_context_takeover');
  if (settings.serverMaxWindowBits !== undefined) params.push(`server_max_window_bits=${settings.serverMaxWindowBits}`);
  params.push(settings.clientMaxWindowBits !== undefined ? `client_max_window_bits=${settings.clientMaxWindowBits}` : 'client_max_window_bits');
  return params.join('; ');
}

function formatDeflateParameters(agreed: DeflateParameters, includeServerBits: boolean, includeClientBits: boolean): string {
  const params = [DEFLATE];
  if (agreed.serverNoContextTakeover) params.push('server_no_context_takeover');
  if (agreed.clientNoContextTakeover) params.push('client_no_context_takeover');
  if (includeServerBits) params.push(`server_max_window_bits=${agreed.serverMaxWindowBits}`);
  if (includeClientBits) params.push(`client_max_window_bits=${agreed.clientMaxWindowBits}`);
  return params.join('; ');
}

/**
 * The server picks the first permessage-deflate offer it can accept (RFC 7692 §5); offers
 * with unknown or malformed parameters are declined. Returns the agreement and the
 * response header, or null for no compression.
 */
function acceptDeflateOffer(header: string | undefined, settings: CompressionOptions): { agreed: DeflateParameters; response: string } | null {
  for (const { name, params } of parseExtensions(header ?? '') ?? []) {
    if (name !== DEFLATE || [...params.keys()].some((key) => !DEFLATE_PARAMS.has(key))) continue;
    const serverNoContext = params.get('server_no_context_takeover');
    const clientNoContext = params.get('client_no_context_takeover');
    const serverBits = params.get('server_max_window_bits');
    const clientBits = params.get('client_max_window_bits');
    if ((serverNoContext !== undefined && serverNoContext !== true) || (clientNoContext !== undefined && clientNoContext !== true)) continue;
    if (serverBits !== undefined && windowBits(serverBits) === null) continue;
    if (clientBits !== undefined && clientBits !== true && windowBits(clientBits) === null) continue;
    const offeredServerBits = serverBits === undefined ? 15 : (windowBits(serverBits) as number);
    const offeredClientBits = clientBits === undefined || clientBits === true ? 15 : (windowBits(clientBits) as number);
    const agreed: DeflateParameters = {
      serverNoContextTakeover: serverNoContext === true || settings.serverNoContextTakeover === true,
      clientNoContextTakeover: clientNoContext === true || settings.clientNoContextTakeover === true,
      serverMaxWindowBits: Math.min(offeredServerBits, settings.serverMaxWindowBits ?? 15),
      // A client that did not offer client_max_window_bits cannot be limited (RFC 7692 §7.1.2.2).
      clientMaxWindowBits: clientBits === undefined ? 15 : Math.min(offeredClientBits, settings.clientMaxWindowBits ?? 15),
    };
    // RFC 7692 §7.1.2.1: a server accepts server_max_window_bits by echoing it (with its
    // value), and may state its own even when not offered.
    const limitServer = serverBits !== undefined || settings.serverMaxWindowBits !== undefined;
    const limitClient = clientBits !== undefined && (settings.clientMaxWindowBits !== undefined || clientBits !== true);
    return { agreed, response: formatDeflateParameters(agreed, limitServer, limitClient) };
  }
  return null;
}

/**
 * The client checks the server's Sec-WebSocket-Extensions answer against its offer (RFC 7692
 * §7.1): anything not offered, malformed or out of range fails the connection with 1010.
 */
function checkDeflateResponse(header: string | undefined, offered: CompressionOptions | null): DeflateParameters | null {
  if (!header) return null;
  const fail = (why: string) => new WebSocketError(CloseCode.MANDATORY_EXTENSION, `the server's extensions are not acceptable: ${why} (${header})`);
  const extensions = parseExtensions(header);
  if (!extensions) throw fail('malformed header');
  const [extension] = extensions;
  if (!offered || !extension || extensions.length !== 1 || extension.name !== DEFLATE) throw fail('not what was offered');
  const { params } = extension;
  for (const [key, value] of params) {
    if (!DEFLATE_PARAMS.has(key)) throw fail(`unknown parameter ${key}`);
    if (key.endsWith('no_context_takeover') ? value !== true : windowBits(value) === null) throw fail(`invalid value for ${key}`);
  }
  const serverBits = windowBits(params.get('server_max_window_bits')) ?? 15;
  const clientBits = windowBits(params.get('client_max_window_bits')) ?? offered.clientMaxWindowBits ?? 15;
  if (offered.serverMaxWindowBits !== undefined && serverBits > offered.serverMaxWindowBits) throw fail('server_max_window_bits above the offer');
  if (clientBits > (offered.clientMaxWindowBits ?? 15)) throw fail('client_max_window_bits above the offer');
  if (offered.serverNoContextTakeover && !params.has('server_no_context_takeover')) throw fail('server_no_context_takeover was asked for');
  return {
    serverNoContextTakeover: params.has('server_no_context_takeover'),
    clientNoContextTakeover: params.has('client_no_context_takeover') || offered.clientNoContextTakeover === true,
    serverMaxWindowBits: serverBits,
    clientMaxWindowBits: clientBits,
  };
}

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 3. Frame codec (RFC 6455 §5)
// ═══════════════════════════════════════════════════════════════════════════════════════════

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * XORs `data` in place with the 4-byte masking key (RFC 6455 §5.3), as if `data` began at byte
 * `offset` of the payload. Large payloads go through a WebAssembly SIMD kernel where the
 * runtime has one, small ones (and all, without it) through a loop of 32-bit words.
 */
function applyMask(data: Uint8Array, key: Uint8Array, offset = 0): void {
  maskInPlace(data, keyWord(key), offset);
}

/** The masking key at `key[at]` as one 32-bit number, its first byte in the low byte: the key's bytes in little-endian memory. */
function keyWord(key: Uint8Array, at = 0): number {
  return key[at]! | (key[at + 1]! << 8) | (key[at + 2]! << 16) | (key[at + 3]! << 24);
}

/** The key word for a payload that starts at byte `offset`: key[offset & 3] moves to the low byte. */
function rotateKey(word: number, offset: number): number {
  const shift = (offset & 3) << 3;
  return shift === 0 ? word : (word >>> shift) | (word << (32 - shift));
}

/** `applyMask` with the key as a word. */
function maskInPlace(data: Uint8Array, word: number, offset: number): void {
  const kernel = data.length >= KERNEL_MIN_MASK ? maskKernel() : null;
  if (kernel) maskThroughKernel(kernel, data, data, 0, rotateKey(word, offset));
  else maskWords(data, word, offset);
}

/** Copies `source` into `target` at `targetOffset` and masks the copy; `source` is left alone. */
function copyMasked(source: Uint8Array, target: Uint8Array, targetOffset: number, key: Uint8Array): void {
  copyMaskedWord(source, target, targetOffset, keyWord(key), 0);
}

/** `copyMasked` with the key as a word, for a source that starts at payload byte `offset`. */
function copyMaskedWord(source: Uint8Array, target: Uint8Array, targetOffset: number, word: number, offset: number): void {
  const kernel = source.length >= KERNEL_MIN_COPY ? maskKernel() : null;
  if (kernel) return maskThroughKernel(kernel, source, target, targetOffset, rotateKey(word, offset));
  target.set(source, targetOffset);
  maskWords(target.subarray(targetOffset, targetOffset + source.length), word, offset);
}

// Measured on Node 20 and 22 (x86-64): the kernel beats the word loop from about 300 bytes in
// place and from 64 bytes when copying; it masks 64 KiB at 12–14 GB/s against 4–5.
const KERNEL_MIN_MASK = 512;
const KERNEL_MIN_COPY = 64;
/** The kernel's memory holds one block: data is copied in, masked there, copied out. */
const KERNEL_BLOCK = 16 * 1024;

/*
 * The masking kernel, 253 bytes of WebAssembly:
 *   (memory (export "m") 1 1)                     one page that never grows, so views of it stay valid
 *   (func (export "x") (param $at i32) (param $length i32) (param $key i32)
 *     v = i32x4.splat(key)
 *     64 bytes at a time: four v128.store(at + 16j, v128.xor(v128.load(at + 16j), v))
 *     then 16 bytes at a time, then byte by byte: store8(at, load8_u(at) ^ key); key = rotr(key, 8))
 */
const MASK_KERNEL =
  'AGFzbQEAAAABBwFgA39/fwADAgEABQQBAQEBBwkCAW0CAAF4AAAK1AEB0QECAX8BeyAC/REhBCAAIAFBQHFqIQMCQANAIAAgA08NASAAIAD9AAQAIAT9Uf0LBAAgACAA' +
  '/QAEECAE/VH9CwQQIAAgAP0ABCAgBP1R/QsEICAAIAD9AAQwIAT9Uf0LBDAgAEHAAGohAAwACwsgAyABQTBxaiEDAkADQCAAIANPDQEgACAA/QAEACAE/VH9CwQAIABB' +
  'EGohAAwACwsgAyABQQ9xaiEDAkADQCAAIANPDQEgACAALQAAIAJzOgAAIAJBCHghAiAAQQFqIQAMAAsLCw==';

interface MaskKernel {
  memory: Uint8Array;
  xor(at: number, length: number, key: number): void;
}

/** The parts of the WebAssembly API used here (this file compiles without DOM or Node types). */
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: { m: { buffer: ArrayBuffer }; x: MaskKernel['xor'] } };
}

let kernel: MaskKernel | null | undefined; // undefined: not tried yet; null: not available

/**
 * The kernel, compiled on first use (synchronously: it is far below the size browsers allow
 * on the main thread). Null without WebAssembly, without SIMD (validate fails), or where a
 * content security policy forbids compiling it: then the word loop does all the masking.
 */
function maskKernel(): MaskKernel | null {
  if (kernel !== undefined) return kernel;
  kernel = null;
  const wasm = (globalThis as unknown as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  try {
    const bytes = Uint8Array.from(atob(MASK_KERNEL), (char) => char.charCodeAt(0));
    if (wasm?.validate(bytes)) {
      const { exports } = new wasm.Instance(new wasm.Module(bytes));
      kernel = { memory: new Uint8Array(exports.m.buffer, 0, KERNEL_BLOCK), xor: exports.x };
    }
  } catch {
    // compiling is forbidden here: stay with the loop
  }
  return kernel;
}

/** Masks `source` into `target` at `targetOffset` (they may be the same), a block at a time through the kernel's memory. */
function maskThroughKernel(kernel: MaskKernel, source: Uint8Array, target: Uint8Array, targetOffset: number, word: number): void {
  const length = source.length;
  // Blocks are multiples of 16 bytes, so the key's phase holds from one to the next.
  for (let at = 0; at < length; at += KERNEL_BLOCK) {
    const size = Math.min(KERNEL_BLOCK, length - at);
    kernel.memory.set(size === length ? source : source.subarray(at, at + size));
    kernel.xor(0, (size + 15) & ~15, word); // whole 16-byte lanes: the bytes past `size` are scratch
    target.set(size === KERNEL_BLOCK ? kernel.memory : kernel.memory.subarray(0, size), targetOffset + at);
  }
}

/** The word loop: 32-bit words where the data is aligned, bytes at the edges. */
function maskWords(data: Uint8Array, keyWord: number, offset: number): void {
  const length = data.length;
  let i = 0;
  if (length >= 32 && LITTLE_ENDIAN) {
    const head = (4 - (data.byteOffset & 3)) & 3;
    for (; i < head; i++) data[i]! ^= rotateKey(keyWord, offset + i) & 0xff;
    const words = (length - i) >>> 2;
    const word = rotateKey(keyWord, offset + i);
    // Int32Array, not Uint32Array: values stay small integers for V8 (no boxing to doubles);
    // unrolled by four, this runs about twice as fast as the plain word loop.
    const view = new Int32Array(data.buffer, data.byteOffset + i, words);
    const unrolled = words - (words & 3);
    let w = 0;
    for (; w < unrolled; w += 4) {
      view[w]! ^= word;
      view[w + 1]! ^= word;
      view[w + 2]! ^= word;
      view[w + 3]! ^= word;
    }
    for (; w < words; w++) view[w]! ^= word;
    i += words << 2;
  }
  for (; i < length; i++) data[i]! ^= rotateKey(keyWord, offset + i) & 0xff;
}

/** Bytes of a frame header for a payload of this length (RFC 6455 §5.2: 7, 16 or 64-bit length). */
function frameHeaderSize(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/** Writes a frame header at the start of `target`; the masking key, if any, goes in its last 4 bytes. */
function writeFrameHeader(target: Uint8Array, fin: boolean, rsv1: boolean, opcode: number, length: number, maskKey: Uint8Array | null): void {
  target[0] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const maskBit = maskKey ? 0x80 : 0;
  let offset: number;
  if (length < 126) {
    target[1] = maskBit | length;
    offset = 2;
  } else if (length < 65536) {
    target[1] = maskBit | 126;
    target[2] = length >>> 8;
    target[3] = length & 0xff;
    offset = 4;
  } else {
    target[1] = maskBit | 127;
    const high = Math.floor(length / 2 ** 32);
    const low = length >>> 0;
    target[2] = 0;
    target[3] = 0;
    target[4] = (high >>> 8) & 0xff;
    target[5] = high & 0xff;
    target[6] = low >>> 24;
    target[7] = (low >>> 16) & 0xff;
    target[8] = (low >>> 8) & 0xff;
    target[9] = low & 0xff;
    offset = 10;
  }
  if (maskKey) target.set(maskKey, offset);
}

/** A frame to encode. */
interface Frame {
  fin?: boolean;
  rsv1?: boolean;
  opcode: number;
  payload?: Uint8Array;
  /** A 4-byte masking key, or `true` for a random one (clients must mask, RFC 6455 §5.3). */
  mask?: Uint8Array | boolean;
}

/**
 * Encodes one frame into a new buffer. The payload is copied, never masked in place.
 *
 * @example
 * encodeFrame({ opcode: Opcode.TEXT, payload: new TextEncoder().encode('Hello') }) // 81 05 48 65 6c 6c 6f
 */
function encodeFrame(frame: Frame): Uint8Array {
  const maskKey = frame.mask === true ? randomBytes(4) : frame.mask || null;
  return buildFrame(frame.fin ?? true, frame.rsv1 ?? false, frame.opcode, frame.payload ?? new Uint8Array(0), maskKey);
}

/** Header and payload in one new buffer; a masked payload is masked while it is copied, never in place. */
function buildFrame(fin: boolean, rsv1: boolean, opcode: number, payload: Uint8Array, maskKey: Uint8Array | null, allocate = allocateZeroed): Uint8Array {
  const headerSize = frameHeaderSize(payload.length, maskKey !== null);
  const bytes = allocate(headerSize + payload.length);
  writeFrameHeader(bytes, fin, rsv1, opcode, payload.length, maskKey);
  if (maskKey) copyMasked(payload, bytes, headerSize, maskKey);
  else bytes.set(payload, headerSize);
  return bytes;
}

/**
 * A final TEXT frame with the string encoded straight into it, saving the intermediate bytes.
 * UTF-8 takes at most 3 bytes per UTF-16 code unit: the text is encoded after room for the
 * largest header it could need, and the header is then written right before it.
 */
function buildTextFrame(text: string, maskKey: Uint8Array | null, allocate = allocateZeroed): Uint8Array {
  const masked = maskKey !== null;
  const room = frameHeaderSize(text.length * 3, masked);
  const buffer = allocate(room + text.length * 3);
  const { written } = textEncoder.encodeInto(text, buffer.subarray(room));
  const frame = buffer.subarray(room - frameHeaderSize(written, masked), room + written);
  writeFrameHeader(frame, true, false, Opcode.TEXT, written, maskKey);
  if (maskKey) applyMask(buffer.subarray(room, room + written), maskKey);
  return frame;
}

/** A frame header, as the parser reports it before any payload byte. */
interface FrameHeader {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  length: number;
}

/** Receives what a `FrameParser` reads. A method may throw `WebSocketError` to stop parsing. */
interface FrameSink {
  /** A header was read; nothing of the payload is buffered yet (check limits here). */
  onFrameHeader(header: FrameHeader): void;
  /** Payload bytes, already unmasked, in order; `complete` is true on the frame's last piece. */
  onFramePayload(bytes: Uint8Array, complete: boolean): void;
  /**
   * A buffer for the current frame's whole payload, if the sink has one: the parser then
   * copies the next piece, `available` bytes, (unmasked on the way) to its place there, and
   * reports it as a view of it.
   */
  payloadTarget?(available: number): Uint8Array | null;
  /** The frame ended (also called after a header whose length is 0). */
  onFrameEnd(): void;
}

const isControl = (opcode: number) => opcode >= 0x8;
const isKnownOpcode = (opcode: number) => opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa);

/**
 * An incremental frame parser over a byte stream: feed it chunks as they arrive; it reports
 * headers, payload pieces and frame ends to a sink. Payload is unmasked in place and handed
 * over as views of the input chunks, so a frame that arrives in one chunk is never copied.
 * Protocol errors throw a `WebSocketError` with code 1002.
 */
class FrameParser {
  readonly #sink: FrameSink;
  readonly #expectMasked: boolean;
  readonly #allowRsv1: boolean;
  /** Header bytes from the end of the previous chunk, waiting for the rest. */
  #pending: Uint8Array | null = null;
  #stopped = false;
  /** While held, input waits here: what followed the frame that asked for the hold, then new chunks. */
  #held: Uint8Array[] | null = null;
  #holdRequested = false;
  /** Payload bytes still to come in the current frame; -1 between frames. */
  #remaining = -1;
  #masked = false;
  /** The frame's masking key as a word (see `keyWord`): a number, not a 4-byte array per connection. */
  #maskWord = 0;
  /** Payload bytes of the current frame read so far. */
  #payloadRead = 0;

  /** `expectMasked`: true on a server (client frames must be masked), false on a client. */
  constructor(sink: FrameSink, options: { expectMasked: boolean; allowRsv1?: boolean }) {
    this.#sink = sink;
    this.#expectMasked = options.expectMasked;
    this.#allowRsv1 = options.allowRsv1 ?? false;
  }

  /** Ignores all further input, even the rest of the chunk being parsed (after a close frame). */
  stop(): void {
    this.#stopped = true;
    this.#pending = null;
    this.#held = null;
  }

  /**
   * Stops after the current frame: further input is kept, unparsed, until `release()`. The
   * sink asks for this while it finishes a message asynchronously (inflating it), so that
   * everything behind that message keeps its order.
   */
  hold(): void {
    this.#holdRequested = true;
  }

  /** Parses the input kept since `hold()`; it may hold again. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = null;
    for (let i = 0; i < held.length; i++) {
      this.push(held[i]!);
      if (this.#held) {
        (this.#held as Uint8Array[]).push(...held.slice(i + 1));
        return;
      }
    }
  }

  push(chunk: Uint8Array): void {
    if (this.#stopped) return;
    if (this.#held) {
      this.#held.push(chunk);
      return;
    }
    let bytes = chunk;
    if (this.#pending) {
      bytes = concatBytes([this.#pending, chunk], this.#pending.length + chunk.length);
      this.#pending = null;
    }
    let offset = 0;
    while (offset < bytes.length && !this.#stopped) {
      if (this.#remaining < 0) {
        const consumed = this.#readHeader(bytes, offset);
        if (consumed === 0) {
          this.#pending = bytes.slice(offset);
          return;
        }
        offset += consumed;
      } else {
        offset = this.#readPayload(bytes, offset);
      }
      if (this.#holdRequested) {
        this.#holdRequested = false;
        this.#held = offset < bytes.length ? [bytes.subarray(offset)] : [];
        return;
      }
    }
  }

  /** Reads a header at `offset`; returns its size, or 0 if it is not complete yet. */
  #readHeader(bytes: Uint8Array, offset: number): number {
    const available = bytes.length - offset;
    if (available < 2) return 0;
    const first = bytes[offset]!;
    const second = bytes[offset + 1]!;
    const masked = (second & 0x80) !== 0;
    let length = second & 0x7f;
    const size = (length < 126 ? 2 : length === 126 ? 4 : 10) + (masked ? 4 : 0);
    if (available < size) return 0;

    const fin = (first & 0x80) !== 0;
    const rsv1 = (first & 0x40) !== 0;
    const opcode = first & 0x0f;
    // RFC 6455 §5.2: reserved bits must be 0 unless an extension defines them.
    if ((first & 0x30) !== 0 || (rsv1 && !this.#allowRsv1)) throw protocolError('reserved bits set');
    if (!isKnownOpcode(opcode)) throw protocolError(`reserved opcode ${opcode}`);
    // RFC 6455 §5.1: a client masks every frame it sends; a server masks none.
    if (masked !== this.#expectMasked) throw protocolError(masked ? 'masked frame from a server' : 'unmasked frame from a client');
    if (length === 126) {
      length = (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
    } else if (length === 127) {
      // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
      if (bytes[offset + 2]! & 0x80) throw protocolError('frame length has its most significant bit set');
      const high = ((bytes[offset + 2]! << 24) | (bytes[offset + 3]! << 16) | (bytes[offset + 4]! << 8) | bytes[offset + 5]!) >>> 0;
      const low = ((bytes[offset + 6]! << 24) | (bytes[offset + 7]! << 16) | (bytes[offset + 8]! << 8) | bytes[offset + 9]!) >>> 0;
      length = high * 2 ** 32 + low;
    }
    if (isControl(opcode)) {
      // RFC 6455 §5.5: control frames are never fragmented and carry at most 125 bytes.
      if (!fin) throw protocolError('fragmented control frame');
      if (length > 125) throw protocolError('control frame longer than 125 bytes');
    }
    this.#masked = masked;
    if (masked) this.#maskWord = keyWord(bytes, offset + size - 4);
    this.#payloadRead = 0;
    this.#sink.onFrameHeader({ fin, rsv1, opcode, length });
    if (length === 0) {
      this.#sink.onFrameEnd();
    } else {
      this.#remaining = length;
    }
    return size;
  }

  #readPayload(bytes: Uint8Array, offset: number): number {
    const take = Math.min(this.#remaining, bytes.length - offset);
    let piece = bytes.subarray(offset, offset + take);
    const target = this.#sink.payloadTarget?.(take) ?? null;
    const at = this.#payloadRead;
    if (target) {
      // One pass instead of two: unmask while copying to the sink's buffer.
      if (this.#masked) copyMaskedWord(piece, target, at, this.#maskWord, at);
      else target.set(piece, at);
      piece = target.subarray(at, at + take);
    } else if (this.#masked) {
      maskInPlace(piece, this.#maskWord, at);
    }
    this.#payloadRead += take;
    this.#remaining -= take;
    const complete = this.#remaining === 0;
    if (complete) this.#remaining = -1;
    this.#sink.onFramePayload(piece, complete);
    if (complete) this.#sink.onFrameEnd();
    return offset + take;
  }
}

function protocolError(reason: string): WebSocketError {
  return new WebSocketError(CloseCode.PROTOCOL_ERROR, reason);
}

/** RFC 6455 §5.5.1: a close payload is empty, or a 2-byte code and a UTF-8 reason. */
function parseClosePayload(payload: Uint8Array): CloseInfo {
  if (payload.length === 0) return { code: CloseCode.NO_STATUS_RECEIVED, reason: '' };
  if (payload.length === 1) throw protocolError('close frame with a 1-byte payload');
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isValidCloseCode(code)) throw protocolError(`invalid close code ${code}`);
  let reason: string;
  try {
    reason = utf8Decoder.decode(payload.subarray(2));
  } catch (cause) {
    throw new WebSocketError(CloseCode.INVALID_PAYLOAD, 'close reason is not valid UTF-8', { cause });
  }
  return { code, reason };
}

function encodeClosePayload(code: number, reasonBytes: Uint8Array): Uint8Array {
  if (code === CloseCode.NO_STATUS_RECEIVED) return new Uint8Array(0);
  const payload = new Uint8Array(2 + reasonBytes.length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(reasonBytes, 2);
  return payload;
}

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 4. Connection core: the WebSocket and the RFC 6455 protocol
// ═══════════════════════════════════════════════════════════════════════════════════════════
//
// A `WebSocket` is the public surface: a bounded queue of received messages, receive() and
// iteration, and how the connection ended. It moves messages through a `Link`: either a
// `ProtocolLink`, the RFC 6455 state machine over a byte stream (a Node socket, or anything
// that implements `Transport`), or the browser facade's link over a native WebSocket.

/** What a transport tells the protocol. */
interface TransportEvents {
  onTransportData(chunk: Uint8Array): void;
  /** The peer finished sending (TCP FIN). */
  onTransportEnd(): void;
  /** The transport is gone; `error` if it failed. */
  onTransportClose(error?: Error): void;
  /** Written bytes reached the operating system: the buffer shrank. */
  onTransportWritten(): void;
}

/** The byte stream the protocol runs over: a Node socket, or a test double. */
interface Transport {
  start(events: TransportEvents): void;
  /**
   * `more`: another write of the same frame follows at once, so both should leave together.
   * `written`: called once the bytes reached the operating system, or with the error that
   * stopped them; until then the transport holds `bytes` by reference.
   */
  write(bytes: Uint8Array, more?: boolean, written?: (error?: Error | null) => void): void;
  /** A buffer for a frame to write; it may be a slice of a shared pool. */
  allocateFrame: Allocate;
  /** A buffer for a received message, on an ArrayBuffer of its own: the application gets it. */
  allocateMessage: Allocate;
  readonly bufferedAmount: number;
  pause(): void;
  resume(): void;
  /** Sends FIN after what is buffered. */
  end(): void;
  destroy(): void;
  /** True once the transport is gone, possibly before its close event arrives. */
  readonly destroyed: boolean;
}

/**
 * permessage-deflate for one connection (RFC 7692), built by the side that has zlib (Node).
 * Operations run one at a time per connection, in call order.
 */
interface MessageCompression {
  /** Messages smaller than this many bytes go out uncompressed. */
  readonly threshold: number;
  /** Deflates the next piece of a message; `final` ends it, without the 00 00 ff ff tail (§7.2.1). */
  compress(data: Uint8Array, final: boolean): Promise<Uint8Array>;
  /**
   * Inflates the next pieces of a message (§7.2.2), `end` with its end, handing out the output
   * as it comes; `onOutput` may throw to stop, or return a promise to pause the output until it settles.
   */
  decompress(parts: Uint8Array[], end: boolean, onOutput: (chunk: Uint8Array) => Promise<void> | void): Promise<void>;
  /** Releases the zlib resources. */
  close(): void;
}

/** How the link reads a data message that starts: whole, piece by piece, or not yet (see `startMessage`). */
type MessageMode = 'whole' | 'stream' | 'wait';

/** What a link tells its WebSocket. */
interface LinkEvents {
  /**
   * A data message starts (a link that reads frames asks; a native WebSocket cannot): 'stream'
   * if a receiveStream() is first in line for it, 'wait' while one is still being read (then
   * the link stops reading until `proceed()`), else 'whole'.
   */
  startMessage(): MessageMode;
  /** A piece of the message being streamed; `last` once it ends (the piece may be empty). Bytes are a view, valid during the call. */
  piece(data: Data, last: boolean): void;
  /** A complete data message arrived. */
  message(data: Data): void;
  /** The connection is ending: receive() reports this error once the queue is empty; `info` is the peer's close frame, if one came. */
  ended(error: WebSocketError, info?: CloseInfo): void;
  /** The connection is gone, with the close code and reason the peer sent. */
  closed(info: CloseInfo): void;
}

/** How a WebSocket moves messages. */
interface Link {
  start(events: LinkEvents): void;
  send(message: Outgoing): Promise<void>;
  ping(data?: Chunk): Promise<number>;
  pong(data?: Chunk): Promise<void>;
  /** Starts the closing handshake; the arguments are already checked. */
  close(code: number, reason: string): void;
  readonly bufferedAmount: number;
  /** Set where they are only known later than construction (a native socket wrapped while connecting). */
  readonly protocol?: string;
  readonly extensions?: string;
  /** Stop and restart reading (backpressure from the receive queue). */
  pause(): void;
  resume(): void;
  /** A message that waited for a stream to be read may start now (see `startMessage`). */
  proceed(): void;
  /** What the connection has carried so far. */
  readonly stats: ConnectionStats;
  /** Whether send() takes a message now: open, and no close requested or received. */
  readonly accepting: boolean;
}

/** What a connection has carried so far (`ws.stats`), for dashboards. */
interface ConnectionStats {
  /** Data messages received and sent; a fragmented message counts once. */
  readonly messagesIn: number;
  readonly messagesOut: number;
  /** Bytes received and sent: on the wire, frame headers included (Node); the messages' own bytes through a browser's WebSocket. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** The round-trip time (ms) of the last ping answered, keepalive or `ping()`; undefined until one is (and always in a browser). */
  readonly latency: number | undefined;
}

/** Connection details given at construction. */
interface ConnectionDetails {
  url: string;
  request: RequestInfo;
  response?: ResponseInfo;
  protocol: string;
  extensions: string;
  remoteAddress?: string | undefined;
}

/** Closes for a stream's cancel or abort: with a `WebSocketError` reason's code (where it may be sent) and its reason, cut to what fits; else with `otherwise`. */
function closeFor(ws: WebSocket, reason: unknown, otherwise: number): Promise<void> {
  if (!(reason instanceof WebSocketError) || !isValidCloseCode(reason.code)) return ws.close(otherwise);
  return ws.close(reason.code, utf8Decoder.decode(truncateUtf8(reason.reason, MAX_CLOSE_REASON)));
}

/** Options of `receive()`. */
interface ReceiveOptions {
  /** Gives up waiting: receive() rejects with the signal's reason, and no message is taken. */
  signal?: AbortSignal | undefined;
}

/** A receive() waiting for a message, an iterator's next() (which gets an IteratorResult), or a receiveStream(). */
interface Waiter {
  resolve(value: Data | IteratorResult<Data>): void;
  reject(error: unknown): void;
  iterator: MessageIterator | null;
  stream?: MessageStream;
}

/** The receive queue drops its consumed head once it is this long and at least half the array. */
const QUEUE_COMPACT_AT = 64;

/** The limits and timers of a connection, defaults filled in. */
type Limits = typeof DEFAULTS;

/** Resolved once per options object: the connections of one server share their limits. */
const resolvedOptions = new WeakMap<ConnectionOptions, Limits>();

function resolveOptions(options: ConnectionOptions): Limits {
  let resolved = resolvedOptions.get(options);
  if (resolved) return resolved;
  resolved = readNumbers(DEFAULTS, options);
  resolvedOptions.set(options, resolved);
  return resolved;
}

/** `defaults`, with each one `options` sets: a number ≥ its minimum (0 unless `minimum` says otherwise), or a RangeError. */
function readNumbers<T extends Record<string, number>>(defaults: T, options: Partial<Record<keyof T, unknown>>, minimum: Partial<T> = {}): T {
  const read = { ...defaults };
  for (const key of Object.keys(defaults) as Array<keyof T & string>) {
    const value = options[key];
    if (value === undefined) continue;
    const least = minimum[key] ?? 0;
    if (typeof value !== 'number' || !(value >= least)) throw new RangeError(`option ${key} must be a number ≥ ${least}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
    read[key] = value as T[keyof T & string];
  }
  return read;
}

/** How a connection ended, if it has: the error receive() rejects with (module-private). */
let endOf: (ws: WebSocket) => WebSocketError | null;
/** Settles a receive() or an iterator's next() once the connection has ended and the queue is empty; `quiet`: an iteration ends without throwing. */
function settleEnded(waiter: Waiter, error: WebSocketError, quiet: boolean): void {
  if (waiter.iterator) waiter.iterator.finished = true;
  if (waiter.iterator && quiet) waiter.resolve(DONE);
  else waiter.reject(error);
}

/** Lets iteration end quietly on more endings than a normal close: those reconnect() will retry (module-private). */
let endQuietlyOn: (ws: WebSocket, quiet: (error: WebSocketError) => boolean) => void;

/** A connection's link (module-private), for `broadcast`. */
let linkOf: (ws: WebSocket) => Link;
/** Puts a server connection in its server's set, which it leaves once closed (module-private). */
let track: (ws: WebSocket, sockets: Set<WebSocket>) => void;
/** The next message for an iterator (module-private). */
let nextFor: (ws: WebSocket, iterator: MessageIterator) => Promise<IteratorResult<Data>>;
/** Ends an iterator's waiting next() with `done`, so that no later message goes to it (module-private). */
let abandon: (ws: WebSocket, iterator: MessageIterator) => void;

const DONE: IteratorResult<Data> = Object.freeze({ value: undefined, done: true });

/**
 * `for await (const message of ws)`: ends on a normal close, throws on any other. A small
 * object whose next() waits in the receive queue itself: no generator, no closures.
 */
class MessageIterator implements AsyncIterableIterator<Data> {
  readonly #ws: WebSocket;
  finished = false;

  constructor(ws: WebSocket) {
    this.#ws = ws;
  }

  next(): Promise<IteratorResult<Data>> {
    return this.finished ? Promise.resolve(DONE) : nextFor(this.#ws, this);
  }

  /** Ends the iteration (a `break`); a next() still waiting ends with `done` and takes no message. */
  return(): Promise<IteratorResult<Data>> {
    this.finished = true;
    abandon(this.#ws, this);
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Data> {
    return this;
  }
}

/** What a `MessageStream` tells the WebSocket it reads from. */
interface StreamOwner {
  /** Buffered pieces were read or dropped: there may be room to read again. */
  released(): void;
  /** Read to its end, failed or abandoned; `rest`: the rest of its message is still to come (and is dropped). */
  finished(stream: MessageStream, rest: boolean): void;
}

/** Hands a stream a piece of its message (module-private): the first binds it to the message. */
let pushPiece: (stream: MessageStream, data: Data, last: boolean) => void;
/** Ends a stream with an error, after the pieces it holds (module-private). */
let failStream: (stream: MessageStream, error: unknown) => void;

/**
 * One message, piece by piece, from `ws.receiveStream()`: BINARY as `Uint8Array`s, TEXT as
 * strings cut at character boundaries (validated as they come: invalid UTF-8 is 1007 at the
 * first bad byte). Pieces are the ones read off the socket, even inside one large frame, and
 * at most `maxQueuedBytes` (or `maxQueuedMessages` pieces) wait here: beyond that the socket
 * stops being read until the application takes more, so a message of any size passes in
 * bounded memory. An empty message is one empty piece, so the type is always known.
 * `return()` (a `break`) abandons the message: the rest of it is read and dropped.
 */
class MessageStream implements AsyncIterableIterator<Data> {
  readonly #owner: StreamOwner;
  readonly #pieces: Data[] = [];
  #bytes = 0;
  #readers: Array<{ resolve(result: IteratorResult<Data>): void; reject(error: unknown): void }> = [];
  /** The message has started arriving here, and has arrived in full. */
  #bound = false;
  #ended = false;
  /** What the next read after the pieces throws, once; null if nothing failed. */
  #error: { reason: unknown } | null = null;
  /** Read to its end, failed or abandoned: nothing more is taken in. */
  #finished = false;
  /** Removes the signal's listener. */
  #onFinish: (() => void) | null = null;

  static {
    pushPiece = (stream, data, last) => stream.#push(data, last);
    failStream = (stream, error) => stream.#fail(error);
  }

  /** @internal Use `ws.receiveStream()`. */
  constructor(owner: StreamOwner, signal?: AbortSignal) {
    this.#owner = owner;
    if (!signal) return;
    const onAbort = () => this.#giveUp({ reason: signal.reason });
    signal.addEventListener('abort', onAbort, { once: true });
    this.#onFinish = () => signal.removeEventListener('abort', onAbort);
  }

  /** Bytes of the pieces waiting to be read. */
  get bufferedBytes(): number {
    return this.#bytes;
  }

  /** Pieces waiting to be read. */
  get bufferedPieces(): number {
    return this.#pieces.length;
  }

  next(): Promise<IteratorResult<Data>> {
    if (this.#pieces.length > 0) return Promise.resolve({ value: this.#take(), done: false });
    if (this.#error) {
      const { reason } = this.#error;
      this.#error = null;
      return Promise.reject(reason);
    }
    if (this.#finished) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => this.#readers.push({ resolve, reject }));
  }

  /** Abandons the message (a `break`): what is buffered and the rest of it are dropped. */
  return(): Promise<IteratorResult<Data>> {
    this.#giveUp(null);
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Data> {
    return this;
  }

  #take(): Data {
    const piece = this.#pieces.shift() as Data;
    this.#bytes -= piece.length;
    if (this.#pieces.length === 0 && this.#ended) this.#finish();
    this.#owner.released();
    return piece;
  }

  #push(data: Data, last: boolean): void {
    if (this.#finished) return;
    const first = !this.#bound;
    this.#bound = true;
    if (last) this.#ended = true;
    // Empty pieces are skipped, except for an empty message: its one piece tells its type.
    if (data.length > 0 || (first && last)) {
      const reader = this.#readers.shift();
      if (reader) reader.resolve({ value: data, done: false });
      else {
        this.#pieces.push(data);
        this.#bytes += data.length;
      }
    }
    if (this.#ended && this.#pieces.length === 0) this.#finish();
  }

  #fail(reason: unknown): void {
    if (this.#finished || this.#ended) return;
    this.#error = { reason };
    this.#finish();
  }

  /** Abandoned (`error` null) or aborted: nothing more is read or taken in. */
  #giveUp(error: { reason: unknown } | null): void {
    if (this.#finished && this.#pieces.length === 0) return;
    this.#pieces.length = 0;
    this.#bytes = 0;
    this.#error = error;
    this.#settleReaders();
    if (!this.#finished) this.#finish();
    this.#owner.released();
  }

  /** Waiting reads end: with the error, once, else done. */
  #settleReaders(): void {
    for (const reader of this.#readers.splice(0)) {
      if (this.#error) {
        reader.reject(this.#error.reason);
        this.#error = null;
      } else reader.resolve(DONE);
    }
  }

  #finish(): void {
    this.#finished = true;
    if (this.#pieces.length === 0) this.#settleReaders();
    this.#onFinish?.();
    this.#owner.finished(this, this.#bound && !this.#ended);
  }
}

/**
 * One WebSocket connection. Get one from `open`, `connect`, `listen`, `upgrade` or `wrap`;
 * it is not constructed directly.
 *
 * @example
 * await open('ws://127.0.0.1:8080', async (ws) => {
 *   await ws.send('hello')
 *   console.log(await ws.receive())
 * })
 */
class WebSocket implements AsyncIterable<Data> {
  /** The URL on the client; the request target on the server. */
  readonly url: string;
  /** The handshake request (header names in lower case). */
  readonly request: RequestInfo;
  /** The handshake response (client side only). */
  readonly response?: ResponseInfo;
  /** The peer's address (Node only). */
  readonly remoteAddress?: string;
  readonly #link: Link;
  readonly #protocol: string;
  readonly #extensions: string;
  readonly #maxQueuedMessages: number;
  readonly #maxQueuedBytes: number;
  // A bounded queue of received messages, and the receive() calls waiting for one: the
  // first in a field, any more (rare) in a list. Both made on first use: memory per idle connection.
  #queue: Data[] | null = null;
  #queueHead = 0;
  #queuedBytes = 0;
  #waiter: Waiter | null = null;
  #moreWaiters: Waiter[] | null = null;
  #readingPaused = false;
  /** How the connection ends, once known; receive() reports it after the queue. */
  #error: WebSocketError | null = null;
  #closeInfo?: CloseInfo;
  /** `closed`, made on first use, and its resolver; `#gone` once the link has closed. */
  #closed: Promise<CloseInfo> | null = null;
  #resolveClosed: ((info: CloseInfo) => void) | null = null;
  #gone = false;
  /** The set of its server's connections, which this one leaves once closed. */
  #tracker: Set<WebSocket> | null = null;
  /** Endings other than a normal close on which iteration ends without throwing (see reconnect). */
  #quietOn: ((error: WebSocketError) => boolean) | null = null;
  /** `readable` and `writable`, made on first use. */
  #readable: ReadableStream<Data> | null = null;
  #writable: WritableStream<Outgoing> | null = null;
  /** The receiveStream() being read: messages wait behind it until it is finished. */
  #stream: MessageStream | null = null;
  /** The rest of an abandoned stream's message is being dropped. */
  #discarding = false;
  /** The link waits to start a message until #stream is finished, and one macrotask more (#settling; see #startMessage). */
  #linkWaiting = false;
  #settling = false;
  /** What streams tell this socket, made on first use. */
  #streamOwner: StreamOwner | null = null;

  static {
    endOf = (ws) => ws.#error;
    endQuietlyOn = (ws, quiet) => (ws.#quietOn = quiet);
    linkOf = (ws) => ws.#link;
    track = (ws, sockets) => {
      if (ws.#gone) return;
      ws.#tracker = sockets;
      sockets.add(ws);
    };
    nextFor = (ws, iterator) => ws.#wait(iterator) as Promise<IteratorResult<Data>>;
    abandon = (ws, iterator) => {
      for (const waiter of ws.#waiters()) {
        if (waiter.iterator !== iterator) continue;
        ws.#removeWaiter(waiter);
        waiter.resolve(DONE);
      }
    };
  }

  /** What the link tells this socket: one small object with methods, not a closure each. */
  static readonly #Events = class implements LinkEvents {
    readonly #ws: WebSocket;

    constructor(ws: WebSocket) {
      this.#ws = ws;
    }

    startMessage(): MessageMode {
      return this.#ws.#startMessage();
    }

    piece(data: Data, last: boolean): void {
      this.#ws.#piece(data, last);
    }

    message(data: Data): void {
      this.#ws.#deliver(data);
    }

    ended(error: WebSocketError, info?: CloseInfo): void {
      if (info) this.#ws.#closeInfo ??= info;
      this.#ws.#onEnded(error);
    }

    closed(info: CloseInfo): void {
      const ws = this.#ws;
      ws.#closeInfo = info;
      ws.#gone = true;
      ws.#resolveClosed?.(info);
      ws.#resolveClosed = null;
      ws.#tracker?.delete(ws);
      ws.#tracker = null;
    }
  };

  /** @internal Use `open`, `connect`, `listen`, `upgrade` or `wrap`. */
  constructor(link: Link, details: ConnectionDetails, options: ConnectionOptions = {}) {
    this.#link = link;
    const { maxQueuedMessages, maxQueuedBytes } = resolveOptions(options);
    this.#maxQueuedMessages = maxQueuedMessages;
    this.#maxQueuedBytes = maxQueuedBytes;
    this.url = details.url;
    this.request = details.request;
    if (details.response) this.response = details.response;
    this.#protocol = details.protocol;
    this.#extensions = details.extensions;
    if (details.remoteAddress !== undefined) this.remoteAddress = details.remoteAddress;
    link.start(new WebSocket.#Events(this));
  }

  /** Resolves with the peer's close code and reason once the connection is gone. */
  get closed(): Promise<CloseInfo> {
    return (this.#closed ??= this.#gone
      ? Promise.resolve(this.#closeInfo as CloseInfo)
      : new Promise((resolve) => (this.#resolveClosed = resolve)));
  }

  /** The negotiated subprotocol, '' if none. */
  get protocol(): string {
    return this.#link.protocol ?? this.#protocol;
  }

  /** The negotiated extensions, '' if none. */
  get extensions(): string {
    return this.#link.extensions ?? this.#extensions;
  }

  /** The close code the peer sent (1005 if none, 1006 if no close frame came), once closed. */
  get closeCode(): number | undefined {
    return this.#closeInfo?.code;
  }

  /** The close reason the peer sent, once closed. */
  get closeReason(): string | undefined {
    return this.#closeInfo?.reason;
  }

  /** Bytes written but not yet handed to the operating system. */
  get bufferedAmount(): number {
    return this.#link.bufferedAmount;
  }

  /** Messages and bytes in and out so far, and the last ping's round-trip time. */
  get stats(): ConnectionStats {
    return this.#link.stats;
  }

  /**
   * The messages as a WHATWG `ReadableStream`: each read is a receive(), so a reader that stops
   * reading is backpressure, as receive() is. It ends on a normal close and errors with the
   * `WebSocketError` of any other; cancel(reason) closes the connection, with the code and
   * reason of a `WebSocketError` given as the reason, else with 1000.
   *
   * @example
   * await ws.readable.pipeThrough(new TransformStream({ transform: (m, c) => c.enqueue(String(m).toUpperCase()) })).pipeTo(ws.writable)
   */
  get readable(): ReadableStream<Data> {
    return (this.#readable ??= new ReadableStream<Data>({
      pull: (controller) => this.receive().then(
        (message) => controller.enqueue(message),
        (error: unknown) => (isOk(error) ? controller.close() : controller.error(error)),
      ),
      cancel: (reason: unknown) => closeFor(this, reason, CloseCode.NORMAL_CLOSURE),
    }, { highWaterMark: 0 }));
  }

  /**
   * A WHATWG `WritableStream` whose writes are send()s (a write resolves as send() does: at the
   * high-water mark). close() runs the closing handshake with 1000; abort(reason) closes with
   * the code and reason of a `WebSocketError` given as the reason, else with 1011.
   */
  get writable(): WritableStream<Outgoing> {
    return (this.#writable ??= new WritableStream<Outgoing>({
      write: (message) => this.send(message),
      close: () => this.close(),
      abort: (reason: unknown) => closeFor(this, reason, CloseCode.INTERNAL_ERROR),
    }));
  }

  /**
   * The next data message: TEXT as a string, BINARY as a Uint8Array. Pings are answered and
   * pongs consumed on the way. Rejects with a `WebSocketError` once the connection has closed
   * and every message that arrived before has been received.
   *
   * @example
   * const message = await ws.receive()
   */
  receive(options?: ReceiveOptions): Promise<Data> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this.#wait(null, signal) as Promise<Data>;
  }

  /**
   * The next message as it arrives, piece by piece (see `MessageStream`), for messages too
   * large to hold: a 1 GiB upload passes through in bounded memory. The next receive() (or
   * stream) gets the message after it, once this one is read to its end or abandoned.
   * `maxMessageSize` and `maxFragments` protect buffered messages and do not apply to a
   * streamed one: count its bytes and close with 1009 to set a limit of your own. A message
   * that had started arriving before the call, or that a native WebSocket delivers (the
   * browser facade), comes whole, as one piece. `signal` abandons the stream.
   *
   * @example
   * for await (const piece of ws.receiveStream()) await file.write(piece)
   */
  receiveStream(options?: ReceiveOptions): MessageStream {
    const stream = new MessageStream((this.#streamOwner ??= this.#makeStreamOwner()), options?.signal);
    if (options?.signal?.aborted) failStream(stream, options.signal.reason);
    else if (!this.#stream && this.#hasQueued()) this.#giveTo({ resolve() {}, reject() {}, iterator: null, stream }, this.#dequeue());
    else if (this.#error && !this.#hasQueued()) failStream(stream, this.#error);
    else this.#line({ resolve() {}, reject: (error) => failStream(stream, error), iterator: null, stream });
    return stream;
  }

  #makeStreamOwner(): StreamOwner {
    return {
      released: () => this.#resumeIfRoom(),
      finished: (stream, rest) => this.#streamFinished(stream, rest),
    };
  }

  /** A data message starts at the link: it goes to a stream first in line, or waits while a stream is being read. */
  #startMessage(): MessageMode {
    if (this.#stream || this.#settling) {
      this.#linkWaiting = true;
      return 'wait';
    }
    const stream = this.#waiter?.stream;
    if (!stream) return 'whole';
    this.#nextWaiter();
    this.#stream = stream;
    return 'stream';
  }

  #piece(data: Data, last: boolean): void {
    if (this.#discarding) {
      if (last) this.#discarding = false;
      return;
    }
    // A copy, so that each piece owns its buffer (the link's bytes are a view of what it read).
    if (this.#stream) pushPiece(this.#stream, typeof data === 'string' ? data : data.slice(), last);
    this.#pauseIfFull();
  }

  #streamFinished(stream: MessageStream, rest: boolean): void {
    if (this.#stream !== stream) {
      // Still in line: it leaves it.
      const waiter = this.#waiter?.stream === stream ? this.#waiter : this.#moreWaiters?.find((other) => other.stream === stream);
      if (waiter) this.#removeWaiter(waiter);
      return;
    }
    this.#stream = null;
    this.#discarding = rest;
    // Messages that waited behind the stream go to those who asked since, in order.
    while (!this.#stream && this.#waiter && this.#hasQueued()) this.#giveTo(this.#nextWaiter() as Waiter, this.#dequeue());
    if (!this.#stream && this.#error && !this.#hasQueued()) this.#onEnded(this.#error);
    this.#resumeIfRoom();
    // The next message waits one macrotask more: an application that reads stream after
    // stream asks for the next one by then (the stream may end inside the link's own call).
    this.#settling = true;
    defer(() => {
      this.#settling = false;
      if (this.#stream || !this.#linkWaiting) return;
      this.#linkWaiting = false;
      this.#link.proceed();
    });
  }

  #hasQueued(): boolean {
    return this.#queue !== null && this.#queueHead < this.#queue.length;
  }

  /** Hands a message to a waiter: a stream gets it as one piece, and is read before anything else. */
  #giveTo(waiter: Waiter, message: Data): void {
    if (!waiter.stream) return waiter.resolve(waiter.iterator ? { value: message, done: false } : message);
    this.#stream = waiter.stream;
    // A piece owns its buffer (a queued message may be a view of the chunk it came in).
    const owned = typeof message === 'string' || message.byteLength === message.buffer.byteLength ? message : message.slice();
    pushPiece(waiter.stream, owned, true);
  }

  #line(waiter: Waiter): void {
    if (!this.#waiter) this.#waiter = waiter;
    else (this.#moreWaiters ??= []).push(waiter);
  }

  /** receive(), or an iterator's next() when `iterator` is given. */
  #wait(iterator: MessageIterator | null, signal?: AbortSignal): Promise<Data | IteratorResult<Data>> {
    if (!this.#stream && this.#hasQueued()) {
      const message = this.#dequeue();
      return Promise.resolve(iterator ? { value: message, done: false } : message);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, iterator };
      if (this.#error && !this.#hasQueued()) return settleEnded(waiter, this.#error, this.#endsQuietly(this.#error));
      if (signal) this.#abortOn(signal, waiter);
      this.#line(waiter);
    });
  }

  /** An aborted receive() leaves the line without taking a message, and rejects with the signal's reason. */
  #abortOn(signal: AbortSignal, waiter: Waiter): void {
    const { resolve, reject } = waiter;
    const onAbort = () => {
      this.#removeWaiter(waiter);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    waiter.resolve = (value) => {
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    waiter.reject = (error) => {
      signal.removeEventListener('abort', onAbort);
      reject(error);
    };
  }

  #waiters(): Waiter[] {
    return this.#waiter ? [this.#waiter, ...(this.#moreWaiters ?? [])] : [];
  }

  #removeWaiter(waiter: Waiter): void {
    if (this.#waiter === waiter) {
      this.#nextWaiter();
      return;
    }
    const index = this.#moreWaiters?.indexOf(waiter) ?? -1;
    if (index >= 0) this.#moreWaiters?.splice(index, 1);
    if (this.#moreWaiters?.length === 0) this.#moreWaiters = null;
  }

  /**
   * Iterates over messages; ends on a normal close (1000, 1001, 1005) and throws on any other.
   *
   * @example
   * for await (const message of ws) await ws.send(message)
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Data> {
    return new MessageIterator(this);
  }

  /**
   * Sends a message: a string as TEXT, bytes as BINARY, an iterable or async iterable of
   * chunks as one fragmented message (one frame per chunk). Messages go out in call order.
   * Resolves when the socket's buffer is below the high-water mark.
   *
   * @example
   * await ws.send('text'); await ws.send(new Uint8Array([1, 2, 3])); await ws.send(['frag', 'ments'])
   */
  send(message: Outgoing): Promise<void> {
    return this.#link.send(message);
  }

  /**
   * Sends a ping and resolves with the round-trip time in milliseconds when its pong arrives.
   * Without `data`, a unique 4-byte payload is used. The pong is read after what the peer sent
   * before it: while the receive queue is full and nothing is read, it waits.
   *
   * @example
   * console.log(`rtt ${await ws.ping()} ms`)
   */
  ping(data?: Chunk): Promise<number> {
    return this.#link.ping(data);
  }

  /**
   * Sends an unsolicited pong (RFC 6455 §5.5.3), e.g. as a one-way heartbeat.
   *
   * @example
   * await ws.pong()
   */
  pong(data?: Chunk): Promise<void> {
    return this.#link.pong(data);
  }

  /**
   * Starts the closing handshake (RFC 6455 §7.1.2) and resolves when the connection is gone,
   * bounded by the close timeout. Closing twice is harmless. A code that may not be sent
   * or a reason over 123 bytes is a programming error: it throws and nothing is sent.
   *
   * @example
   * await ws.close(1000, 'bye')
   */
  async close(code: number = CloseCode.NORMAL_CLOSURE, reason = ''): Promise<void> {
    checkCloseArguments(code, reason);
    this.#link.close(code, reason);
    await this.closed;
  }

  #dequeue(): Data {
    const queue = this.#queue as Data[];
    const message = queue[this.#queueHead]!;
    queue[this.#queueHead++] = '';
    this.#queuedBytes -= message.length;
    if (this.#queueHead === queue.length) {
      this.#queue = null;
      this.#queueHead = 0;
    } else if (this.#queueHead >= QUEUE_COMPACT_AT && this.#queueHead * 2 >= queue.length) {
      // A consumer that never quite catches up never empties the queue: drop the consumed
      // half in one go (amortised O(1) a message), so the array stays within twice its content.
      queue.splice(0, this.#queueHead);
      this.#queueHead = 0;
    }
    this.#resumeIfRoom();
    return message;
  }

  /** Full at the limits; with `divisor` 2, at half of them (where reading resumes). What a stream holds counts too. */
  #queueIsFull(divisor = 1): boolean {
    const count = (this.#queue?.length ?? 0) - this.#queueHead + (this.#stream?.bufferedPieces ?? 0);
    const bytes = this.#queuedBytes + (this.#stream?.bufferedBytes ?? 0);
    return count * divisor >= this.#maxQueuedMessages || bytes * divisor >= this.#maxQueuedBytes;
  }

  #resumeIfRoom(): void {
    if (!this.#readingPaused || this.#queueIsFull(2)) return;
    this.#readingPaused = false;
    this.#link.resume();
  }

  /** Backpressure: stop reading until the application catches up. */
  #pauseIfFull(): void {
    if (this.#readingPaused || !this.#queueIsFull()) return;
    this.#readingPaused = true;
    this.#link.pause();
  }

  #deliver(message: Data): void {
    const waiter = this.#stream ? null : this.#nextWaiter();
    if (waiter) return this.#giveTo(waiter, message);
    (this.#queue ??= []).push(message);
    this.#queuedBytes += message.length;
    this.#pauseIfFull();
  }

  #onEnded(error: WebSocketError): void {
    this.#error ??= error;
    // A message cut short by the end is never passed off as whole.
    // A normal close cut the message short: for the message, an abnormal end (1006, not isOk()).
    const cut = isOk(error) ? CloseCode.ABNORMAL_CLOSURE : error.code;
    if (this.#stream) failStream(this.#stream, new WebSocketError(cut, `the connection ended (${error.code}${error.reason ? ` ${error.reason}` : ''}) before the message did`, { cause: error }));
    if (this.#stream && this.#hasQueued()) return; // the rest waits behind the stream, and ends after it
    const quiet = this.#endsQuietly(this.#error);
    for (let waiter = this.#nextWaiter(); waiter; waiter = this.#nextWaiter()) settleEnded(waiter, this.#error, quiet);
  }

  #endsQuietly(error: WebSocketError): boolean {
    return isOk(error) || (this.#quietOn?.(error) ?? false);
  }

  #nextWaiter(): Waiter | null {
    const waiter = this.#waiter;
    this.#waiter = this.#moreWaiters?.shift() ?? null;
    if (this.#moreWaiters?.length === 0) this.#moreWaiters = null;
    return waiter;
  }
}

// ── the RFC 6455 protocol over a byte stream ─────────────────────────────────────────────

const State = { OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;

interface PendingPing {
  payload: Uint8Array;
  sentAt: number;
  resolve(rtt: number): void;
  reject(error: unknown): void;
}

const RESOLVED = Promise.resolve();
const EMPTY = new Uint8Array(0);

/** Connections made so far in this process: each gets the next number, for NODE_DEBUG=websockets. */
let connectionCount = 0;

const OPCODE_NAMES: Partial<Record<number, string>> = { 0: 'CONTINUATION', 1: 'TEXT', 2: 'BINARY', 8: 'CLOSE', 9: 'PING', 10: 'PONG' };

/** The payload length a whole frame's header announces (RFC 6455 §5.2). */
function payloadLength(frame: Uint8Array): number {
  const length = frame[1]! & 0x7f;
  if (length < 126) return length;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  return length === 126 ? view.getUint16(2) : Number(view.getBigUint64(2));
}

/** A frame for the debug log: opcode, FIN and length, never the payload. */
function describeFrame(opcode: number, fin: boolean, length: number): string {
  return `${OPCODE_NAMES[opcode] ?? `opcode ${opcode}`}${fin ? '' : ' (not FIN)'} ${length} B`;
}
const NO_CLOSE_FRAME: CloseInfo = Object.freeze({ code: CloseCode.ABNORMAL_CLOSURE, reason: '' });
/** A single-frame BINARY message larger than this, arriving in pieces, is collected into its final buffer as it comes (see payloadTarget). */
const LARGE_FRAME = 16 * KiB;
/** A text message's decoded pieces are joined in batches of this many. */
const TEXT_JOIN_EVERY = 1024;
/** Pieces of a message smaller than this are copied together instead of kept as views (see #collectPart). */
const SMALL_PART = 1024;
/** The buffers small pieces are copied into. */
const SMALL_PARTS_BUFFER = 16 * KiB;
/** Frames at most this large are written as one buffer with their header; larger ones as two writes or more. */
const COPY_THRESHOLD = 16 * KiB;
/** A large masked payload is written in pieces of this size. */
const MASKED_PIECE = 64 * KiB;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The RFC 6455 state machine: frames in, messages out; messages in, frames out; pings,
 * keepalive and the closing handshake. It knows nothing of sockets: bytes come and go
 * through a `Transport`.
 */
class ProtocolLink implements Link, FrameSink, TransportEvents {
  readonly #transport: Transport;
  readonly #client: boolean;
  readonly #options: Limits;
  readonly #parser: FrameParser;
  readonly #compression: MessageCompression | null;
  #events!: LinkEvents;
  #state: number = State.OPEN;

  // The message being reassembled, and the frame being read.
  #messageOpcode = 0;
  // Lists made on first use and dropped after each message (memory per idle connection).
  #messageParts: Uint8Array[] | null = null;
  #messageSize = 0;
  #messageFragments = 0;
  #messageCompressed = false;
  /** A large single-frame BINARY message: its length, its final buffer once allocated, the bytes received. */
  #largeFrame = 0;
  #messageBuffer: Uint8Array | null = null;
  #messageFilled = 0;
  /** The buffer small pieces are being copied into (the last of #messageParts), and its bytes used. */
  #smallParts: Uint8Array | null = null;
  #smallFilled = 0;
  /** Bytes of the small pieces since the last large one (see #collectPart). */
  #smallRun = 0;
  #textParts: string[] | null = null;
  /** How many of #textParts, at its start, are joined batches. */
  #textBatches = 0;
  #textDecoder: InstanceType<typeof TextDecoder> | null = null;
  #frameOpcode = 0;
  #frameFin = false;
  #controlParts: Uint8Array[] | null = null;
  // Reading (see #updateReading): why it would stop, and whether it has.
  #queueFull = false;
  #inflating = false;
  #readingPaused = false;
  /** Closing with a full receive queue: data frames are read and dropped, from a message boundary on. */
  #dropData = false;
  /** The data message being read is dropped (see #dropData). */
  #messageDropped = false;
  /** The data message being read goes to a receiveStream() piece by piece (#streamPiece). */
  #messageStreamed = false;
  /** A message's first frame that waits for a stream to be read (LinkEvents.startMessage), and whether it already ended (empty). */
  #waitingHeader: FrameHeader | null = null;
  #waitingFrameEnded = false;
  /** A streamed compressed message: compressed pieces waiting for the inflater, and whether its end is among them. */
  #inflateInput: Uint8Array[] | null = null;
  #inflateEnd = false;
  /** The inflater of a streamed message, waiting for room in the receive buffer: the promise, and what resolves it. */
  #room: Promise<void> | null = null;
  #onRoom: (() => void) | null = null;

  // Sending: async iterables and compressed messages hold the message lock; later sends wait behind them.
  #sequencer: SendSequencer | null = null;
  #drainWaiters: Array<() => void> | null = null;
  #pings: PendingPing[] | null = null;
  #pingCounter = 0;
  #pendingPong: Uint8Array | null = null;
  /** Ends a send(asyncIterable) waiting for its iterable once nothing more can be written (the close frame went out, the transport is gone). */
  readonly #writesEnd = new StepAbort();

  // Closing. `#state` is OPEN, CLOSING or CLOSED; within CLOSING, what each side has done:
  //
  //   what happened                      fields set                          what it changes
  //   close() called                     #state CLOSING, #closeRequested     new sends refused; sends accepted before still go out
  //   our close frame written            #closeSent                          nothing more is written (#canWrite false)
  //   the peer's close frame read,       #discardInput, #error,              input ignored from here on; the answer (echo, or
  //     or a protocol error found        #pendingReaction                    fail) runs one macrotask later (#react)
  //   the transport closed               #state CLOSED                       everything settles (onTransportClose)
  //
  // `#closing` is true from the first two rows on, and once the reaction to the third has run.
  // #updateReading decides reading in every row.
  #closeSent = false;
  #closeRequested: CloseInfo | null = null;
  #discardInput = false;
  /** Why the connection ended, for receive() and send(); set once. */
  #error: WebSocketError | null = null;
  #closeInfo: CloseInfo = NO_CLOSE_FRAME;
  #pendingReaction: (() => void) | null = null;
  #closeTimer: Timer | null = null;
  // What ws.stats reports, and the id NODE_DEBUG=websockets names the connection by.
  #messagesIn = 0;
  #messagesOut = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #latency: number | undefined = undefined;
  readonly #id = ++connectionCount;
  /** The next keepalive ping, or the pong deadline while `#awaitingPong`. */
  #keepaliveTimer: Timer | null = null;
  #awaitingPong = false;
  /** Counts keepalive rounds, so that a late pong of an earlier round starts nothing. */
  #keepaliveRound = 0;
  /** A frame arrived since the keepalive ping went out. */
  #heardSincePing = false;
  /** Unsolicited pongs while we are not reading (see #startHeartbeat). */
  #heartbeatTimer: Timer | null = null;

  constructor(transport: Transport, client: boolean, options: ConnectionOptions, compression: MessageCompression | null = null) {
    this.#transport = transport;
    this.#client = client;
    this.#options = resolveOptions(options);
    this.#compression = compression;
    // RFC 7692 §6: permessage-deflate gives RSV1 a meaning; without it RSV1 stays an error.
    this.#parser = new FrameParser(this, { expectMasked: !client, allowRsv1: compression !== null });
  }

  start(events: LinkEvents): void {
    this.#events = events;
    if (DEBUG) debugLog(this.#id, `open (${this.#client ? 'client' : 'server'}${this.#compression ? ', permessage-deflate' : ''})`);
    this.#scheduleKeepalive();
    this.#transport.start(this);
  }

  get bufferedAmount(): number {
    return this.#transport.bufferedAmount;
  }

  get stats(): ConnectionStats {
    return { messagesIn: this.#messagesIn, messagesOut: this.#messagesOut, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut, latency: this.#latency };
  }

  get accepting(): boolean {
    return this.#canSend() && !this.#discardInput;
  }

  /** Every write goes through here: counted for ws.stats. */
  #write(bytes: Uint8Array, more?: boolean, written?: (error?: Error | null) => void): void {
    this.#bytesOut += bytes.length;
    this.#transport.write(bytes, more, written);
  }

  pause(): void {
    this.#queueFull = true;
    this.#updateReading();
  }

  resume(): void {
    this.#queueFull = false;
    this.#updateReading();
  }

  /** Closing: close() was called, a close frame went out, or the connection failed or ended. */
  get #closing(): boolean {
    return this.#state !== State.OPEN || this.#closeSent;
  }

  /**
   * The one place that pauses and resumes reading. Reading stops while a message is being
   * inflated (the parser holds what comes behind it, so that stays bounded too) and while the
   * receive queue is full (TCP backpressure) — except once closing: then the peer's close
   * frame must get through, so reading goes on, and data messages that start while the queue
   * is full are read and dropped instead of queued (#dropData). Reading also stops while a
   * message waits for a stream to be read (#waitingHeader). While reading is paused the
   * keepalive's pong deadline is suspended: a pong we are not reading cannot arrive.
   */
  #updateReading(): void {
    if (this.#state === State.CLOSED) return;
    const closing = this.#closing;
    if (this.#onRoom && (!this.#queueFull || closing)) this.#wakeInflater();
    // Closing: a message that waits for a stream to be read is dropped, so the close frame gets through.
    if (this.#waitingHeader && closing) defer(() => this.proceed());
    const paused = this.#inflating || (this.#waitingHeader !== null && !closing) || (this.#queueFull && !closing);
    if (paused === this.#readingPaused) return;
    this.#readingPaused = paused;
    if (paused) {
      this.#transport.pause();
      this.#suspendPongDeadline();
      this.#startHeartbeat();
    } else {
      this.#transport.resume();
      this.#stopHeartbeat();
      this.#armPongDeadline();
    }
  }

  /**
   * While we do not read, the peer's pings go unanswered: an unsolicited pong (RFC 6455
   * §5.5.3, a unidirectional heartbeat) every half `pingInterval` tells it we are alive.
   */
  #startHeartbeat(): void {
    const { pingInterval } = this.#options;
    if (pingInterval <= 0 || this.#heartbeatTimer) return;
    this.#heartbeatTimer = startTimer(pingInterval / 2, () => {
      this.#heartbeatTimer = null;
      if (!this.#canSend() || !this.#readingPaused) return;
      this.#writeFrame(Opcode.PONG, EMPTY, true);
      this.#startHeartbeat();
    });
  }

  #stopHeartbeat(): void {
    if (this.#heartbeatTimer) clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = null;
  }

  // ── receiving ──────────────────────────────────────────────────────────────────────────

  /** @internal TransportEvents: called by the transport. */
  onTransportData(chunk: Uint8Array): void {
    this.#bytesIn += chunk.length;
    if (this.#discardInput) return;
    try {
      this.#parser.push(chunk);
    } catch (caught) {
      this.#onParseError(caught);
    }
  }

  /** A parse failure fails the connection once the application has had its turn. */
  #onParseError(caught: unknown): void {
    // The parser's failures carry their close code; anything else is our bug: 1011.
    const error = caught instanceof WebSocketError ? caught : new WebSocketError(CloseCode.INTERNAL_ERROR, '', { cause: caught });
    this.#setError(error);
    this.#react(() => this.#fail(error));
  }

  /** @internal FrameSink: called by the parser. */
  onFrameHeader(header: FrameHeader): void {
    const { opcode, length } = header;
    this.#heardSincePing = true;
    if (DEBUG) debugLog(this.#id, `← ${describeFrame(opcode, header.fin, length)}${header.rsv1 ? ' rsv1' : ''}`);
    this.#frameOpcode = opcode;
    this.#frameFin = header.fin;
    // RFC 7692 §6.1: RSV1 marks the first frame of a compressed message, and no other frame.
    if (header.rsv1 && (isControl(opcode) || opcode === Opcode.CONTINUATION)) throw protocolError('RSV1 set on a control or continuation frame');
    if (isControl(opcode)) return;
    if (opcode === Opcode.CONTINUATION) {
      if (this.#messageOpcode === 0) throw protocolError('continuation frame without a message to continue');
    } else {
      // RFC 6455 §5.4: the fragments of one message are not interleaved with another message.
      if (this.#messageOpcode !== 0) throw protocolError('new message started before the previous one ended');
      this.#messageOpcode = opcode;
      this.#messageCompressed = header.rsv1;
      // Closing, and the application is not taking messages: the rest can only be dropped.
      // Sticky: with context takeover, a message after a dropped one could not be inflated.
      if (this.#queueFull && this.#closing) this.#dropData = true;
      this.#messageDropped = this.#dropData;
      if (!this.#messageDropped && !this.#chooseMode()) {
        this.#waitingHeader = header;
        this.#parser.hold();
        this.#updateReading();
        return;
      }
    }
    this.#checkFrame(header);
  }

  /** Asks how the message that starts is read; false: it waits for a stream to be read (see proceed). */
  #chooseMode(): boolean {
    const mode = this.#events.startMessage();
    this.#messageStreamed = mode === 'stream';
    return mode !== 'wait';
  }

  /**
   * A message that waited for a stream to be read starts now (LinkEvents.startMessage asks
   * again), or is dropped if the connection is closing. The input held meanwhile is parsed.
   */
  proceed(): void {
    const header = this.#waitingHeader;
    if (!header || this.#state === State.CLOSED) return;
    if (this.#closing) {
      // Closing: it is read whole into the receive queue while that has room, else dropped (as #dropData).
      this.#messageStreamed = false;
      if (this.#queueFull) this.#messageDropped = this.#dropData = true;
    } else if (!this.#chooseMode()) return;
    this.#waitingHeader = null;
    const ended = this.#waitingFrameEnded;
    this.#waitingFrameEnded = false;
    try {
      this.#checkFrame(header);
      if (ended) this.onFrameEnd();
      this.#updateReading();
      this.#parser.release();
    } catch (caught) {
      this.#onParseError(caught);
    }
  }

  /** The limits of a data frame, checked from its header before a byte of its payload is buffered. */
  #checkFrame(header: FrameHeader): void {
    const { opcode, length } = header;
    this.#largeFrame = 0;
    // A streamed message holds little at a time: its size is the application's to limit.
    if (this.#messageDropped || this.#messageStreamed) return;
    const { maxMessageSize, maxFragments } = this.#options;
    this.#messageFragments++;
    if (maxFragments > 0 && this.#messageFragments > maxFragments) {
      throw new WebSocketError(CloseCode.MESSAGE_TOO_BIG, `message has more than ${maxFragments} fragments`);
    }
    // Checked from the header, before a byte of the payload is buffered. A compressed message
    // is allowed deflate's worst-case growth here; its inflated size is checked while inflating.
    const limit = this.#messageCompressed ? maxMessageSize + (maxMessageSize >>> 8) + 1024 : maxMessageSize;
    if (maxMessageSize > 0 && this.#messageSize + length > limit) {
      throw new WebSocketError(CloseCode.MESSAGE_TOO_BIG, `message is larger than ${maxMessageSize} bytes`);
    }
    this.#messageSize += length;
    this.#largeFrame = header.fin && opcode === Opcode.BINARY && !header.rsv1 && length > LARGE_FRAME ? length : 0;
  }

  /** @internal FrameSink: called by the parser. */
  onFramePayload(bytes: Uint8Array, complete: boolean): void {
    if (isControl(this.#frameOpcode)) {
      (this.#controlParts ??= []).push(bytes);
    } else if (this.#messageDropped) {
      // read and dropped (closing, queue full)
    } else if (this.#messageStreamed) {
      this.#streamPiece(bytes);
    } else if (this.#largeFrame > 0) {
      this.#collectLargeFrame(bytes);
    } else if (this.#streamsText(complete)) {
      this.#decodeTextPiece(bytes);
    } else {
      this.#collectPart(bytes);
    }
  }

  /**
   * Whether this piece of an uncompressed TEXT message is decoded now: always, except when
   * the whole message is this one piece (one frame, in one chunk), which is decoded once at
   * the end. A compressed message is decoded as it inflates instead.
   */
  #streamsText(complete: boolean): boolean {
    if (this.#messageOpcode !== Opcode.TEXT || this.#messageCompressed) return false;
    const wholeMessage = complete && this.#frameFin && this.#messageParts === null;
    return this.#textDecoder !== null || !wholeMessage;
  }

  /** The pieces collected so far, which the message no longer holds. */
  #takeParts(): Uint8Array[] {
    const parts = this.#messageParts ?? [];
    this.#messageParts = null;
    this.#smallParts = null;
    this.#smallRun = 0;
    return parts;
  }

  /**
   * Keeps a piece of the message being reassembled. The first piece stays a view, as does any
   * piece of SMALL_PART bytes or more; later small pieces (a peer's thousands of one-byte
   * fragments) are copied together, so the memory a message holds follows the bytes received,
   * not the number of pieces.
   */
  #collectPart(bytes: Uint8Array): void {
    const parts = this.#messageParts;
    if (!parts) {
      this.#messageParts = [bytes];
      return;
    }
    if (bytes.length >= SMALL_PART) {
      this.#smallParts = null;
      this.#smallRun = 0;
      parts.push(bytes);
      return;
    }
    let buffer = this.#smallParts;
    if (!buffer || this.#smallFilled + bytes.length > buffer.length) {
      // Each buffer of a run of small pieces is as large as the run so far (64 bytes to
      // SMALL_PARTS_BUFFER): what is set aside stays within about twice what arrived, however
      // small pieces and large ones alternate.
      buffer = this.#smallParts = new Uint8Array(Math.min(SMALL_PARTS_BUFFER, Math.max(64, bytes.length, this.#smallRun)));
      this.#smallFilled = 0;
      parts.push(buffer);
    }
    buffer.set(bytes, this.#smallFilled);
    this.#smallFilled += bytes.length;
    this.#smallRun += bytes.length;
    parts[parts.length - 1] = buffer.subarray(0, this.#smallFilled);
  }

  #collectLargeFrame(bytes: Uint8Array): void {
    this.#messageFilled += bytes.length;
    if (!this.#messageBuffer) this.#collectPart(bytes); // else the parser put the bytes in place
  }

  /**
   * @internal FrameSink. A large frame that arrives in pieces is copied into its final buffer
   * as it comes (and unmasked on the way), instead of each chunk being held to the end and
   * copied again: the chunks die young, and the garbage collector is not pushed to promote
   * them. The buffer is allocated once half of the frame is here, never on the header's word
   * alone, so a peer cannot make us set aside more than twice what it sent. A frame that is
   * here whole needs no buffer: it is handed out as a view (see ownedMessage).
   */
  payloadTarget(available: number): Uint8Array | null {
    if (this.#largeFrame === 0 || this.#messageBuffer) return this.#messageBuffer;
    const arrived = this.#messageFilled + available;
    if (arrived * 2 < this.#largeFrame || (this.#messageFilled === 0 && arrived === this.#largeFrame)) return null;
    const buffer = (this.#messageBuffer = this.#transport.allocateMessage(this.#largeFrame));
    copyParts(this.#takeParts(), buffer);
    return buffer;
  }

  /**
   * A text message that arrives in pieces is validated as it comes, so invalid UTF-8 fails
   * the connection at the first bad byte, not at the end of the message (RFC 6455 §8.1).
   */
  #decodeTextPiece(bytes: Uint8Array): void {
    if (!this.#textDecoder) {
      this.#textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
      this.#textParts = this.#takeParts().map((part) => this.#decodeText(part, true));
    }
    const parts = (this.#textParts ??= []);
    parts.push(this.#decodeText(bytes, true));
    // Many tiny fragments: every TEXT_JOIN_EVERY pieces are joined into one string, so a piece
    // does not cost an array slot until the end (each character is copied twice at most).
    if (parts.length - this.#textBatches >= TEXT_JOIN_EVERY) {
      parts.push(parts.splice(this.#textBatches).join(''));
      this.#textBatches++;
    }
  }

  #decodeText(bytes: Uint8Array, stream: boolean): string {
    try {
      return this.#textDecoder ? this.#textDecoder.decode(bytes, { stream }) : utf8Decoder.decode(bytes);
    } catch (cause) {
      throw new WebSocketError(CloseCode.INVALID_PAYLOAD, 'text message is not valid UTF-8', { cause });
    }
  }

  /** @internal FrameSink: called by the parser. */
  onFrameEnd(): void {
    if (this.#waitingHeader) {
      this.#waitingFrameEnded = true; // an empty first frame: it ends once the message starts
      return;
    }
    const opcode = this.#frameOpcode;
    if (isControl(opcode)) {
      const payload = concatBytes(this.#controlParts ?? []);
      this.#controlParts = null;
      this.#onControlFrame(opcode, payload);
    } else if (this.#frameFin) {
      this.#onMessageEnd();
    }
  }

  #onMessageEnd(): void {
    if (this.#messageDropped) this.#resetMessage();
    else if (this.#messageStreamed && this.#messageCompressed) this.#inflatePiece(null, true);
    else if (this.#messageStreamed) this.#endStream();
    else if (this.#messageCompressed) this.#inflateMessage();
    else this.#finishMessage();
  }

  // ── streamed messages (receiveStream) ──────────────────────────────────────────────────

  /** A piece of a streamed message goes out as it comes: decoded (TEXT), inflated, or copied (BINARY). */
  #streamPiece(bytes: Uint8Array): void {
    // Closing, and the application is not reading: the rest can only be dropped (as #dropData).
    if (this.#queueFull && this.#closing) this.#messageDropped = this.#dropData = true;
    else if (this.#messageCompressed) this.#inflatePiece(bytes, false);
    else this.#emitPiece(bytes, false);
  }

  /** TEXT is decoded as it comes, validating it (1007 at the first bad byte). */
  #emitPiece(bytes: Uint8Array, last: boolean): void {
    if (this.#messageOpcode !== Opcode.TEXT) return this.#events.piece(bytes, last);
    this.#textDecoder ??= new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    this.#events.piece(this.#decodeText(bytes, !last), last);
  }

  #endStream(): void {
    this.#emitPiece(EMPTY, true);
    this.#messagesIn++;
    this.#resetMessage();
  }

  /**
   * Inflates a streamed compressed message as it arrives, one run at a time: what arrives
   * during a run (the parser is held, so little does) waits in #inflateInput for the next.
   * While the receive buffer is full the inflater waits for room (see #inflateOutput), so a
   * bomb inflates no faster than the application reads.
   */
  #inflatePiece(bytes: Uint8Array | null, end: boolean): void {
    if (bytes) (this.#inflateInput ??= []).push(bytes);
    if (end) this.#inflateEnd = true;
    if (this.#inflating) return;
    this.#parser.hold();
    this.#inflating = true;
    this.#updateReading();
    this.#runInflate();
  }

  #runInflate(): void {
    const input = this.#inflateInput ?? [];
    const end = this.#inflateEnd;
    this.#inflateInput = null;
    this.#inflateEnd = false;
    (this.#compression as MessageCompression).decompress(input, end, (chunk) => this.#inflateOutput(chunk)).then(
      // A run can end with the buffer full (its last output filled it): nothing more is
      // inflated, nor parsed, until there is room, or zlib would hold a slot for a reader.
      () => (this.#room ?? RESOLVED).then(() => this.#afterInflateRun(end)),
      (error: unknown) => this.#onInflateError(error),
    );
  }

  #afterInflateRun(end: boolean): void {
    if (this.#discardInput || this.#state === State.CLOSED) return this.#endInflating();
    if (this.#inflateInput || this.#inflateEnd) return this.#runInflate();
    try {
      if (end) this.#endStream();
      this.#endInflating();
      this.#parser.release();
    } catch (caught) {
      this.#onParseError(caught);
    }
  }

  /** Output of a streamed message's inflater; a promise while it must wait for room. */
  #inflateOutput(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#messageDropped) return undefined;
    if (this.#queueFull && this.#closing) {
      this.#messageDropped = this.#dropData = true;
      return undefined;
    }
    this.#emitPiece(chunk, false);
    if (!this.#queueFull || this.#closing) return undefined;
    return (this.#room = new Promise((resolve) => (this.#onRoom = resolve)));
  }

  #wakeInflater(): void {
    const wake = this.#onRoom;
    this.#onRoom = null;
    this.#room = null;
    wake?.();
  }

  /**
   * Inflates a compressed message (RFC 7692 §7.2.2). The parser holds everything behind it
   * until it is done, so messages and control frames keep their order. `maxMessageSize`
   * applies to the inflated size and is checked as the output comes, so a small bomb that
   * would inflate to gigabytes stops at the limit with 1009; TEXT is validated as it comes.
   */
  #inflateMessage(): void {
    const compressed = this.#takeParts();
    const { maxMessageSize } = this.#options;
    this.#messageSize = 0;
    this.#parser.hold();
    this.#inflating = true;
    this.#updateReading();
    const onOutput = (chunk: Uint8Array) => {
      this.#messageSize += chunk.length;
      if (maxMessageSize > 0 && this.#messageSize > maxMessageSize) {
        throw new WebSocketError(CloseCode.MESSAGE_TOO_BIG, `message is larger than ${maxMessageSize} bytes once inflated`);
      }
      if (this.#messageOpcode === Opcode.TEXT) this.#decodeTextPiece(chunk);
      else this.#collectPart(chunk);
    };
    (this.#compression as MessageCompression).decompress(compressed, true, onOutput).then(
      () => {
        this.#endInflating();
        // Nothing is delivered once the connection has ended, even a message inflated in full.
        if (this.#discardInput || this.#state === State.CLOSED) return;
        try {
          this.#finishMessage();
          this.#parser.release(); // what arrived meanwhile, in order
        } catch (caught) {
          this.#onParseError(caught);
        }
      },
      (error: unknown) => this.#onInflateError(error),
    );
  }

  #onInflateError(error: unknown): void {
    this.#endInflating(); // reading goes on, so that the closing handshake can complete
    if (this.#discardInput) return;
    this.#onParseError(error instanceof WebSocketError ? error : new WebSocketError(CloseCode.INVALID_PAYLOAD, 'invalid compressed data', { cause: error }));
  }

  #endInflating(): void {
    this.#inflating = false;
    this.#updateReading();
  }

  #finishMessage(): void {
    let message: Data;
    if (this.#messageOpcode === Opcode.TEXT) {
      if (this.#textDecoder) {
        const parts = this.#textParts ?? [];
        parts.push(this.#decodeText(new Uint8Array(0), false));
        message = parts.join('');
        this.#textParts = null;
        this.#textBatches = 0;
        this.#textDecoder = null;
      } else {
        message = this.#decodeText(concatBytes(this.#messageParts ?? [], this.#messageSize, this.#transport.allocateFrame), false);
      }
    } else {
      message = this.#messageBuffer ?? ownedMessage(this.#messageParts ?? [], this.#messageSize, this.#transport.allocateMessage);
    }
    this.#resetMessage();
    this.#messagesIn++;
    this.#events.message(message);
  }

  #resetMessage(): void {
    this.#messageOpcode = 0;
    this.#largeFrame = 0;
    this.#takeParts();
    this.#messageBuffer = null;
    this.#messageFilled = 0;
    this.#messageSize = 0;
    this.#messageFragments = 0;
    this.#messageCompressed = false;
    this.#messageDropped = false;
    this.#messageStreamed = false;
    this.#textDecoder = null;
  }

  #onControlFrame(opcode: number, payload: Uint8Array): void {
    if (opcode === Opcode.PING) {
      this.#answerPing(payload);
    } else if (opcode === Opcode.PONG) {
      this.#onPong(payload);
    } else {
      this.#onCloseFrame(parseClosePayload(payload));
    }
  }

  /**
   * RFC 6455 §5.5.2: answer with a pong carrying the same payload, unless closing. While the
   * peer does not read (our buffer is above the high-water mark), only the latest ping is
   * answered, on drain (§5.5.3 allows it), so a ping flood cannot pile up pongs in memory.
   */
  #answerPing(payload: Uint8Array): void {
    if (this.#closeSent) return;
    if (this.#transport.bufferedAmount > this.#options.highWaterMark) this.#pendingPong = payload;
    else this.#writeFrame(Opcode.PONG, payload, true);
  }

  /** A pong answers the ping with the same payload and, implicitly, every earlier one. */
  #onPong(payload: Uint8Array): void {
    const index = this.#pings?.findIndex((ping) => sameBytes(ping.payload, payload)) ?? -1;
    if (index < 0) return; // unsolicited pong (RFC 6455 §5.5.3): nothing to do
    const now = performance.now();
    const answered = (this.#pings as PendingPing[]).splice(0, index + 1);
    this.#latency = now - (answered[answered.length - 1] as PendingPing).sentAt;
    if (DEBUG) debugLog(this.#id, `pong: round trip ${this.#latency.toFixed(1)} ms`);
    for (const ping of answered) ping.resolve(now - ping.sentAt);
  }

  #onCloseFrame(info: CloseInfo): void {
    if (DEBUG) debugLog(this.#id, `close frame received: ${info.code} ${JSON.stringify(info.reason)}`);
    this.#closeInfo = info;
    this.#parser.stop(); // RFC 6455 §5.5.1: nothing follows a close frame
    this.#setError(new WebSocketError(info.code, info.reason), info);
    // RFC 6455 §5.5.1: answer a close frame with a close frame, echoing it.
    this.#react(() => {
      this.#state = State.CLOSING;
      if (!this.#closeSent) this.#sendClose(info.code, info.reason);
      this.#finishClosing();
    });
  }

  /**
   * A close frame or a protocol error is acted upon in the next macrotask, not in the middle
   * of the chunk that carried it: the messages that arrived just before it are delivered
   * first and the application gets its turn to answer them, as it would with a synchronous
   * 'message' event. receive() reports the end at once; close() acts at once.
   */
  #react(reaction: () => void): void {
    this.#discardInput = true;
    this.#pendingReaction = reaction;
    defer(() => this.#reactNow());
  }

  #reactNow(): void {
    const reaction = this.#pendingReaction;
    this.#pendingReaction = null;
    if (reaction && this.#state !== State.CLOSED) reaction();
  }

  /**
   * After both close frames: RFC 6455 §7.1.1 has the server close the TCP connection first;
   * the client waits for that, bounded by the close timeout.
   */
  #finishClosing(): void {
    if (!this.#client) this.#transport.end();
    this.#startCloseTimer();
  }

  /**
   * @internal TransportEvents: the peer sends nothing more: finish our side too, after the
   * answer to a close frame that came with the end (§5.5.1: it is answered; an HTTP/2 peer's
   * END_STREAM arrives in the same macrotask as the DATA before it).
   */
  onTransportEnd(): void {
    if (this.#pendingReaction) defer(() => this.#transport.end());
    else this.#transport.end();
  }

  /** @internal TransportEvents. */
  onTransportClose(cause?: Error): void {
    if (this.#state === State.CLOSED) return;
    if (DEBUG) debugLog(this.#id, `connection closed: ${this.#closeInfo.code} ${JSON.stringify(this.#closeInfo.reason)}${cause ? ` (${cause.message})` : ''}`);
    this.#state = State.CLOSED;
    this.#pendingReaction = null;
    this.#wakeInflater();
    const reason = cause ? cause.message : 'connection closed without a close frame';
    this.#setError(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, reason, { cause }));
    this.#clearTimers();
    this.#compression?.close();
    for (const ping of this.#pings?.splice(0) ?? []) ping.reject(this.#error);
    this.#writesEnd.abort(this.#sendError());
    this.#wakeDrainWaiters();
    this.#events.closed(this.#closeInfo);
  }

  #setError(error: WebSocketError, info?: CloseInfo): void {
    if (this.#error) return;
    this.#error = error;
    this.#events.ended(error, info);
  }

  /** RFC 6455 §7.1.7: fail the connection: send a close frame with the error's code, stop reading. */
  #fail(error: WebSocketError): void {
    if (DEBUG) debugLog(this.#id, `failed: ${error.message}`);
    this.#setError(error);
    this.#discardInput = true;
    if (this.#state === State.OPEN) this.#state = State.CLOSING;
    // 1011 goes out without its reason: internal details can be security-sensitive.
    if (!this.#closeSent) this.#sendClose(error.code, error.code === CloseCode.INTERNAL_ERROR ? '' : error.reason);
    this.#transport.end();
    this.#startCloseTimer();
  }

  // ── sending ────────────────────────────────────────────────────────────────────────────

  /**
   * Sends go straight out when nothing is queued and nothing needs compressing; otherwise
   * they queue behind the message in progress (an async iterable, a compression).
   */
  send(message: Outgoing): Promise<void> {
    if (!this.#canSend()) return Promise.reject(this.#sendError());
    if (typeof message === 'string' && this.#sendsTextDirectly(message)) {
      const frame = buildTextFrame(message, this.#maskKey(), this.#transport.allocateFrame);
      this.#write(frame);
      this.#sent(Opcode.TEXT, true, DEBUG ? payloadLength(frame) : 0);
      return this.#backpressure();
    }
    if (isAsyncIterable(message)) return this.#sendQueue().enqueue(() => this.#sendAsyncFragments(message));
    let parts: Array<[Uint8Array, number]>;
    try {
      // Strings are encoded and iterables read now: later changes by the caller do not count.
      parts = isChunk(message) ? [encodeChunk(message)] : readFragments(message);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#sending || this.#compresses(parts)) return this.#sendQueue().enqueue(() => this.#sendParts(parts));
    return this.#afterWrites(this.#writeParts(parts));
  }

  /**
   * Writes a ready-made unmasked frame (for `broadcast`), or returns null when this link
   * cannot take one: a client (it must mask), compression, or a message in progress.
   */
  sendFrame(frame: Uint8Array): Promise<void> | null {
    if (this.#client || this.#compression || this.#sending) return null;
    if (!this.#canSend()) return Promise.reject(this.#sendError());
    this.#write(frame);
    this.#sent(frame[0]! & 0x0f, true, DEBUG ? payloadLength(frame) : 0);
    return this.#backpressure();
  }

  /** True while a message holds the send queue (an async iterable, a compression). */
  get #sending(): boolean {
    return this.#sequencer?.busy ?? false;
  }

  #sendQueue(): SendSequencer {
    return (this.#sequencer ??= new SendSequencer());
  }

  /** Whether new messages are accepted: open, and no close requested. */
  #canSend(): boolean {
    this.#noticeDestroyed();
    return this.#state === State.OPEN && !this.#closeSent;
  }

  /** Whether messages already accepted may still go out: until the close frame is sent. */
  #canWrite(): boolean {
    this.#noticeDestroyed();
    return this.#state !== State.CLOSED && !this.#closeSent;
  }

  /** A socket destroyed a moment ago has not told us yet: then a send would vanish silently. */
  #noticeDestroyed(): void {
    if (this.#state !== State.CLOSED && this.#transport.destroyed) this.onTransportClose(new Error('the socket was destroyed'));
  }

  /** A string that goes out now, uncompressed: short enough to encode straight into its frame. */
  #sendsTextDirectly(text: string): boolean {
    const maxBytes = text.length * 3;
    return maxBytes <= COPY_THRESHOLD && !this.#sending && (this.#compression === null || maxBytes < this.#compression.threshold);
  }

  /** Compression is agreed and the message is not below the threshold (in bytes). */
  #compresses(parts: Array<[Uint8Array, number]>): boolean {
    return this.#compression !== null && byteLength(parts.map(([bytes]) => bytes)) >= this.#compression.threshold;
  }

  async #sendParts(parts: Array<[Uint8Array, number]>): Promise<void> {
    if (!this.#canWrite()) throw this.#sendError();
    if (this.#compresses(parts)) await this.#sendCompressed(parts);
    else await this.#afterWrites(this.#writeParts(parts));
  }

  /** One frame per chunk, the last one with FIN (RFC 6455 §5.4); settles once every payload the transport holds is written. */
  #writeParts(parts: Array<[Uint8Array, number]>): Promise<void> | null {
    let written: Array<Promise<void>> | null = null;
    parts.forEach(([bytes, opcode], index) => {
      const write = this.#writeFrame(index === 0 ? opcode : Opcode.CONTINUATION, bytes, index === parts.length - 1);
      if (write) (written ??= []).push(write);
    });
    return written ? Promise.all(written).then(ignoreValue) : null;
  }

  /** One compressed frame per chunk, RSV1 on the first (RFC 7692 §6.1), one deflate stream for the message. */
  async #sendCompressed(parts: Array<[Uint8Array, number]>): Promise<void> {
    const written: Array<Promise<void> | null> = [];
    for (let index = 0; index < parts.length; index++) {
      const [bytes, opcode] = parts[index]!;
      const last = index === parts.length - 1;
      const payload = await this.#compress(bytes, last);
      if (!this.#canWrite()) throw this.#sendError();
      const write = this.#writeFrame(index === 0 ? opcode : Opcode.CONTINUATION, payload, last, index === 0);
      write?.catch(ignoreValue); // handled now: the loop may stop before Promise.all below
      written.push(write);
    }
    await Promise.all(written);
    await this.#backpressure();
  }

  /**
   * Each chunk goes out as it arrives; an empty final frame carries FIN. The next chunk is
   * asked for once the previous one is written (the iterable may reuse its buffer). If the
   * iterable throws mid-message, the message cannot be finished, so the connection closes
   * with 1011. If the connection can no longer write while the iterable is waiting, send()
   * rejects at once and the iterator's return() is called, so its `finally` runs.
   */
  async #sendAsyncFragments(chunks: AsyncIterable<Chunk>): Promise<void> {
    const compression = this.#compression;
    let opcode = 0;
    try {
      if (!this.#canWrite()) throw this.#sendError();
      await forEachChunk(chunks, this.#writesEnd, async (chunk) => {
        const [bytes, chunkOpcode] = encodeChunk(chunk);
        if (opcode !== 0 && chunkOpcode !== opcode) throw new TypeError('a fragmented message mixes strings and bytes');
        const payload = compression ? await this.#compress(bytes, false) : bytes;
        if (!this.#canWrite()) throw this.#sendError();
        const write = this.#writeFrame(opcode === 0 ? chunkOpcode : Opcode.CONTINUATION, payload, false, compression !== null && opcode === 0);
        opcode = chunkOpcode;
        await this.#afterWrites(write);
      });
    } catch (error) {
      if (opcode !== 0 && this.#canWrite()) this.#fail(new WebSocketError(CloseCode.INTERNAL_ERROR, '', { cause: error }));
      throw error;
    }
    const tail = compression ? await this.#compress(new Uint8Array(0), true) : new Uint8Array(0);
    if (!this.#canWrite()) throw this.#sendError();
    await this.#afterWrites(this.#writeFrame(opcode === 0 ? Opcode.BINARY : Opcode.CONTINUATION, tail, true, compression !== null && opcode === 0));
  }

  /** Compresses a piece; a compression cut short because the connection ended fails as the connection's end, not as zlib's. */
  async #compress(bytes: Uint8Array, final: boolean): Promise<Uint8Array> {
    try {
      return await (this.#compression as MessageCompression).compress(bytes, final);
    } catch (error) {
      throw this.#canWrite() ? error : this.#sendError();
    }
  }


  #backpressure(): Promise<void> {
    if (this.#transport.bufferedAmount <= this.#options.highWaterMark) return RESOLVED;
    return new Promise((resolve, reject) =>
      (this.#drainWaiters ??= []).push(() => (this.#state === State.CLOSED ? reject(this.#sendError()) : resolve())),
    );
  }

  /**
   * @internal TransportEvents. Each write that reaches the OS lets the waiting sends go as
   * soon as the buffer is back at the high-water mark — not only once it is empty, which
   * would stall a stream of large messages at every one.
   */
  onTransportWritten(): void {
    // A write that failed because the socket is gone (its buffer then reads 0) wakes nobody
    // as a drain: the connection ends here, and the sends still waiting are rejected.
    this.#noticeDestroyed();
    if (this.#state === State.CLOSED || this.#transport.bufferedAmount > this.#options.highWaterMark) return;
    this.#flushPendingPong();
    this.#wakeDrainWaiters();
  }

  /** The latest ping that came while the peer was not reading gets its answer now (see #answerPing). */
  #flushPendingPong(): void {
    const pong = this.#pendingPong;
    this.#pendingPong = null;
    if (pong && this.#canSend()) this.#writeFrame(Opcode.PONG, pong, true);
  }

  /** The sends waiting for the buffer to drain: they resolve, or reject once the connection is gone. */
  #wakeDrainWaiters(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = null;
    if (waiters) for (const wake of waiters) wake();
  }

  #sendError(): WebSocketError {
    return this.#error ?? new WebSocketError(this.#closeRequested?.code ?? CloseCode.NORMAL_CLOSURE, 'the connection is closing');
  }

  /**
   * Writes one frame; a client masks it with a fresh key (RFC 6455 §5.3), never in the
   * caller's buffer. Returns null when the payload was copied, or, when the transport holds
   * the payload itself, a promise that settles once it is written: the caller's buffer is
   * only free for reuse then.
   */
  #writeFrame(opcode: number, payload: Uint8Array, fin: boolean, rsv1 = false): Promise<void> | null {
    const maskKey = this.#maskKey();
    const { allocateFrame } = this.#transport;
    if (payload.length <= COPY_THRESHOLD) {
      this.#sent(opcode, fin, payload.length);
      this.#write(buildFrame(fin, rsv1, opcode, payload, maskKey, allocateFrame));
      return null;
    }
    // A large frame goes out as its header, then its payload: unmasked as it is, without a
    // copy; masked in pieces, each in a buffer of its own that is freed once written, rather
    // than in one buffer as large as the message.
    const header = allocateFrame(frameHeaderSize(payload.length, maskKey !== null));
    writeFrameHeader(header, fin, rsv1, opcode, payload.length, maskKey);
    this.#sent(opcode, fin, payload.length);
    this.#write(header, true);
    if (!maskKey) {
      return new Promise((resolve, reject) => this.#write(payload, false, (error) => (error ? reject(this.#sendError()) : resolve())));
    }
    for (let at = 0; at < payload.length; at += MASKED_PIECE) {
      const source = payload.subarray(at, at + MASKED_PIECE);
      const piece = allocateFrame(source.length);
      copyMasked(source, piece, 0, maskKey); // `at` is a multiple of 4: the key starts over
      this.#write(piece, at + MASKED_PIECE < payload.length);
    }
    return null;
  }

  /** Counts a message whose last frame goes out; NODE_DEBUG=websockets logs every frame (never its payload). */
  #sent(opcode: number, fin: boolean, length: number): void {
    if (fin && !isControl(opcode)) this.#messagesOut++;
    if (DEBUG) debugLog(this.#id, `→ ${describeFrame(opcode, fin, length)}`);
  }

  /** Resolves once `written` (the payloads the transport holds) is out and the buffer is at the high-water mark. */
  #afterWrites(written: Promise<void> | null): Promise<void> {
    return written ? written.then(() => this.#backpressure()) : this.#backpressure();
  }

  /** A fresh masking key for each frame a client sends (RFC 6455 §5.3); none on a server. */
  #maskKey(): Uint8Array | null {
    return this.#client ? randomBytes(4) : null;
  }

  // ── control frames ─────────────────────────────────────────────────────────────────────

  ping(data?: Chunk): Promise<number> {
    if (!this.#canSend()) return Promise.reject(this.#sendError());
    let payload: Uint8Array;
    try {
      payload = data === undefined ? this.#nextPingPayload() : controlPayload(data);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      (this.#pings ??= []).push({ payload, sentAt: performance.now(), resolve, reject });
      this.#writeFrame(Opcode.PING, payload, true);
    });
  }

  pong(data?: Chunk): Promise<void> {
    if (!this.#canSend()) return Promise.reject(this.#sendError());
    try {
      this.#writeFrame(Opcode.PONG, data === undefined ? EMPTY : controlPayload(data), true);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#backpressure();
  }

  #nextPingPayload(): Uint8Array {
    const payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, ++this.#pingCounter);
    return payload;
  }

  /**
   * Keepalive: ping every `pingInterval`; no pong within `pingTimeout` fails with 1011. The
   * one timer is either the next ping or, while a keepalive ping is out, the pong deadline,
   * which only runs while we read (see #updateReading). Any frame that arrives after the ping
   * also shows the peer alive: a peer whose own receive queue is full cannot read our ping,
   * but sends heartbeats (#startHeartbeat) meanwhile.
   */
  #scheduleKeepalive(): void {
    const { pingInterval } = this.#options;
    if (pingInterval > 0) this.#keepaliveTimer = startTimer(pingInterval, () => this.#sendKeepalivePing());
  }

  #sendKeepalivePing(): void {
    this.#keepaliveTimer = null;
    if (!this.#canSend()) return;
    const round = ++this.#keepaliveRound;
    this.#awaitingPong = true;
    this.#heardSincePing = false;
    this.#armPongDeadline();
    this.ping().then(() => {
      if (round === this.#keepaliveRound) this.#nextKeepaliveRound();
    }, ignoreValue);
  }

  #nextKeepaliveRound(): void {
    this.#suspendPongDeadline();
    this.#awaitingPong = false;
    this.#keepaliveRound++; // a pong that comes later for this round's ping changes nothing
    this.#scheduleKeepalive();
  }

  #armPongDeadline(): void {
    const { pingTimeout } = this.#options;
    if (this.#awaitingPong && pingTimeout > 0 && !this.#readingPaused && !this.#keepaliveTimer) {
      this.#keepaliveTimer = startTimer(pingTimeout, () => this.#onKeepaliveTimeout());
    }
  }

  #suspendPongDeadline(): void {
    if (!this.#awaitingPong || !this.#keepaliveTimer) return;
    clearTimeout(this.#keepaliveTimer);
    this.#keepaliveTimer = null;
  }

  #onKeepaliveTimeout(): void {
    this.#keepaliveTimer = null;
    if (this.#state !== State.OPEN) return;
    if (this.#heardSincePing) return this.#nextKeepaliveRound();
    this.#fail(new WebSocketError(CloseCode.INTERNAL_ERROR, 'keepalive ping timeout'));
    // The peer is unresponsive; waiting for its close frame would be pointless.
    this.#transport.destroy();
  }

  // ── closing ────────────────────────────────────────────────────────────────────────────

  /**
   * New sends are refused at once; messages already accepted (queued behind a compression or
   * an async iterable) still go out before the close frame. The close timeout bounds it all.
   */
  close(code: number, reason: string): void {
    this.#reactNow(); // a close frame or an error already received decides the code
    if (!this.#canSend()) return;
    this.#state = State.CLOSING;
    this.#closeRequested = { code, reason };
    this.#startCloseTimer();
    this.#updateReading();
    const sendClose = () => {
      if (this.#canWrite()) this.#sendClose(code, reason);
    };
    if (this.#sending) this.#sendQueue().enqueue(async () => sendClose()).catch(() => {});
    else sendClose();
  }

  #sendClose(code: number, reason: string): void {
    if (DEBUG) debugLog(this.#id, `close frame sent: ${code} ${JSON.stringify(reason)}`);
    this.#closeSent = true;
    this.#writesEnd.abort(this.#sendError());
    this.#updateReading();
    this.#writeFrame(Opcode.CLOSE, encodeClosePayload(code, truncateUtf8(reason, 123)), true);
  }

  #startCloseTimer(): void {
    if (this.#closeTimer || this.#state === State.CLOSED) return;
    const { closeTimeout } = this.#options;
    if (closeTimeout > 0) this.#closeTimer = startTimer(closeTimeout, () => this.#transport.destroy());
  }

  #clearTimers(): void {
    if (this.#closeTimer) clearTimeout(this.#closeTimer);
    if (this.#keepaliveTimer) clearTimeout(this.#keepaliveTimer);
    this.#closeTimer = this.#keepaliveTimer = null;
    this.#awaitingPong = false;
    this.#stopHeartbeat();
  }
}

/**
 * Keeps messages in `send()` order while one of them takes time (an async iterable being
 * sent): later sends queue behind it. When idle, sends go straight out.
 */
class SendSequencer {
  #tail: Promise<void> | null = null;
  #pending = 0;

  get busy(): boolean {
    return this.#tail !== null;
  }

  enqueue(task: () => Promise<void>): Promise<void> {
    this.#pending++;
    const done = (this.#tail ?? RESOLVED).then(task);
    const release = () => {
      if (--this.#pending === 0) this.#tail = null;
    };
    this.#tail = done.then(release, release);
    return done;
  }
}

function isChunk(value: unknown): value is Chunk {
  return typeof value === 'string' || isDataView(value);
}

/**
 * Lets one step at a time (an async iterable's next()) be cut short by the end of its
 * connection. One slot, not a promise raced over and over: a settled race keeps its value
 * alive for as long as the promise it raced against, which would be every chunk ever sent.
 * The end is final: a step started after it fails at once.
 */
class StepAbort {
  #reject: ((error: unknown) => void) | null = null;
  #ended = false;
  #error: unknown;

  race<T>(step: Promise<T>): Promise<T> {
    if (this.#ended) return Promise.reject(this.#error);
    return new Promise<T>((resolve, reject) => {
      this.#reject = reject;
      step.then(resolve, reject).finally(() => {
        if (this.#reject === reject) this.#reject = null;
      });
    });
  }

  abort(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#reject?.(error);
    this.#reject = null;
  }
}

/**
 * Reads an async iterable chunk by chunk, each next() raced against `end`, and hands each chunk
 * to `take` before asking for the next. If the reading stops early (`end`, or `take` throws),
 * the iterator's return() is called, so its `finally` runs.
 */
async function forEachChunk(chunks: AsyncIterable<Chunk>, end: StepAbort, take: (chunk: Chunk) => unknown): Promise<void> {
  const iterator = chunks[Symbol.asyncIterator]();
  let open = true; // neither finished nor thrown: it must be closed if we stop
  try {
    for (;;) {
      const next = iterator.next().catch((error: unknown) => {
        open = false;
        throw error;
      });
      const result = await end.race(next);
      if (result.done) {
        open = false;
        return;
      }
      await take(result.value);
    }
  } catch (error) {
    if (open) closeIterator(iterator);
    throw error;
  }
}

/** Ends an iterator we stop reading early (its `finally` runs); a return() that throws or never settles changes nothing. */
function closeIterator(iterator: AsyncIterator<Chunk>): void {
  try {
    Promise.resolve(iterator.return?.()).catch(ignoreValue);
  } catch {
    // the iterator's own failure: nothing more to do
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Chunk> {
  return value !== null && typeof value === 'object' && Symbol.asyncIterator in value;
}

/** Bytes and opcode of one chunk of an outgoing message. */
function encodeChunk(chunk: Chunk): [Uint8Array, number] {
  if (typeof chunk === 'string') return [textEncoder.encode(chunk), Opcode.TEXT];
  if (isDataView(chunk)) return [toBytes(chunk), Opcode.BINARY];
  throw new TypeError('send() takes a string, bytes, or an iterable or async iterable of them');
}

/** Reads a synchronous iterable of chunks completely: all strings or all bytes. An empty one is an empty BINARY message. */
function readFragments(chunks: Iterable<Chunk>): Array<[Uint8Array, number]> {
  if (chunks === null || typeof chunks !== 'object' || !(Symbol.iterator in chunks)) {
    throw new TypeError('send() takes a string, bytes, or an iterable or async iterable of them');
  }
  const parts = Array.from(chunks, encodeChunk);
  const [first] = parts;
  if (!first) return [[new Uint8Array(0), Opcode.BINARY]];
  if (parts.some(([, opcode]) => opcode !== first[1])) throw new TypeError('a fragmented message mixes strings and bytes');
  return parts;
}

function controlPayload(data: Chunk): Uint8Array {
  const [bytes] = encodeChunk(data);
  // RFC 6455 §5.5: control frames carry at most 125 bytes.
  if (bytes.length > 125) throw new RangeError(`a ping or pong payload is at most 125 bytes, got ${bytes.length}`);
  return bytes.slice();
}

/** `receive(ws)`: HTTP.jl-style alias of `ws.receive()`. */
function receive(ws: WebSocket, options?: ReceiveOptions): Promise<Data> {
  return ws.receive(options);
}

/** `send(ws, message)`: HTTP.jl-style alias of `ws.send(message)`. */
function send(ws: WebSocket, message: Outgoing): Promise<void> {
  return ws.send(message);
}

/** `ping(ws, data)`: HTTP.jl-style alias of `ws.ping(data)`. */
function ping(ws: WebSocket, data?: Chunk): Promise<number> {
  return ws.ping(data);
}

/** `pong(ws, data)`: HTTP.jl-style alias of `ws.pong(data)`. */
function pong(ws: WebSocket, data?: Chunk): Promise<void> {
  return ws.pong(data);
}

/** `close(ws, code, reason)`: HTTP.jl-style alias of `ws.close(code, reason)`. */
function close(ws: WebSocket, code?: number, reason?: string): Promise<void> {
  return ws.close(code, reason);
}

/** Options of `broadcast`: the slow-consumer policy. */
interface BroadcastOptions {
  /**
   * Most bytes that may wait in a socket's buffer (`bufferedAmount`) for it to get this
   * message; a socket with more is slow, and `onLimit` says what happens to it. Setting it
   * also means broadcast() does not wait for anyone's buffer to drain. 0 (the default): no
   * limit, and broadcast() resolves when every socket is back at its high-water mark.
   */
  maxBuffered?: number | undefined;
  /** For a slow socket: `'skip'` this message for it (the default), or `'close'` it with 1013 (try again later). */
  onLimit?: 'skip' | 'close' | undefined;
}

/** What broadcast() did: how many sockets it handed the message to, and which slow ones it skipped or closed. */
interface BroadcastResult {
  readonly sent: number;
  readonly skipped: readonly WebSocket[];
  readonly closed: readonly WebSocket[];
}

/**
 * Sends one message to many sockets. Server frames are never masked, so the frame is built
 * once and the same bytes are written to every server-side socket; the others (clients,
 * compressed or browser sockets, or one busy sending a long message) get an ordinary
 * `send`; closed ones are passed over. Without `maxBuffered` it resolves when every socket
 * is back at its high-water mark or has closed, each waiting on its own. With it, a socket
 * whose buffer holds more is skipped or closed with 1013 (`onLimit`), so a stalled client
 * can neither hold up the room nor grow the server's memory, and it resolves at once.
 *
 * @example
 * const { skipped } = await broadcast(room, JSON.stringify({ type: 'tick' }), { maxBuffered: 1024 * 1024 })
 */
async function broadcast(sockets: Iterable<WebSocket>, message: Chunk, options: BroadcastOptions = {}): Promise<BroadcastResult> {
  const { maxBuffered = 0, onLimit = 'skip' } = options;
  if (typeof maxBuffered !== 'number' || !(maxBuffered >= 0)) throw new RangeError(`maxBuffered must be a number ≥ 0, got ${String(maxBuffered)}`);
  if (onLimit !== 'skip' && onLimit !== 'close') throw new TypeError(`onLimit must be 'skip' or 'close', got ${String(onLimit)}`);
  const [payload, opcode] = encodeChunk(message);
  let frame: Uint8Array | null = null;
  const pending: Array<Promise<void>> = [];
  const skipped: WebSocket[] = [];
  const closed: WebSocket[] = [];
  for (const ws of sockets) {
    const link = linkOf(ws);
    if (!link.accepting) continue; // closed or closing: nothing to send it
    if (maxBuffered > 0 && ws.bufferedAmount > maxBuffered) {
      if (onLimit === 'close') {
        ws.close(CloseCode.TRY_AGAIN_LATER, 'too slow: messages were waiting').catch(ignoreValue);
        closed.push(ws);
      } else skipped.push(ws);
      continue;
    }
    const sent = link instanceof ProtocolLink ? link.sendFrame((frame ??= encodeFrame({ opcode, payload }))) : null;
    pending.push((sent ?? ws.send(message)).catch(ignoreValue));
  }
  if (maxBuffered === 0) await Promise.all(pending);
  return { sent: pending.length, skipped, closed };
}

// ── an in-memory transport, for pair() ───────────────────────────────────────────────────

/**
 * One end of an in-memory byte stream: what one end writes, the other receives, in order, a
 * macrotask later (as from a socket), through the same codec a socket would carry. Reading
 * can pause: writes then wait in the reader's inbox and count in the writer's
 * `bufferedAmount`, so backpressure works as over TCP. `end()` is a FIN after what is queued;
 * once both ends have ended, or either is destroyed, both close.
 */
class MemoryTransport implements Transport {
  readonly allocateFrame: Allocate = allocateZeroed;
  readonly allocateMessage: Allocate = allocateZeroed;
  peer!: MemoryTransport;
  #events: TransportEvents | null = null;
  /** What the peer wrote that this end has not read yet; a FIN is `null`. */
  readonly #inbox: Array<Uint8Array | null> = [];
  #delivering = false;
  #paused = false;
  /** Bytes this end wrote that the peer has not read yet. */
  #buffered = 0;
  #ended = false;
  #peerEnded = false;
  #destroyed = false;

  start(events: TransportEvents): void {
    this.#events = events;
    this.#scheduleDelivery();
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** The bytes are copied: the writer's buffer is free at once, and the reader owns what it gets. */
  write(bytes: Uint8Array, _more?: boolean, written?: (error?: Error | null) => void): void {
    if (this.#destroyed || this.#ended) return written?.(new Error('the connection is closed'));
    this.#buffered += bytes.length;
    this.peer.#receive(bytes.slice()); // a socket copies too; a frame may be written to several peers (broadcast)
    written?.();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#scheduleDelivery();
  }

  end(): void {
    if (this.#ended || this.#destroyed) return;
    this.#ended = true;
    this.peer.#receive(null);
    this.#closeIfDone();
  }

  destroy(): void {
    this.#close();
    this.peer.#close();
  }

  #receive(bytes: Uint8Array | null): void {
    this.#inbox.push(bytes);
    this.#scheduleDelivery();
  }

  #scheduleDelivery(): void {
    if (this.#delivering || this.#paused || !this.#events || this.#inbox.length === 0) return;
    this.#delivering = true;
    defer(() => this.#deliver());
  }

  /** Hands the inbox to the protocol, chunk by chunk, until it pauses. */
  #deliver(): void {
    this.#delivering = false;
    const events = this.#events as TransportEvents;
    while (!this.#paused && !this.#destroyed && this.#inbox.length > 0) {
      const bytes = this.#inbox.shift() as Uint8Array | null;
      if (bytes === null) {
        this.#peerEnded = true;
        events.onTransportEnd();
        this.#closeIfDone();
        continue;
      }
      this.peer.#buffered -= bytes.length;
      events.onTransportData(bytes);
      this.peer.#events?.onTransportWritten();
    }
  }

  #closeIfDone(): void {
    if (this.#ended && this.#peerEnded) this.destroy();
  }

  #close(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#inbox.length = 0;
    this.#buffered = 0;
    defer(() => this.#events?.onTransportClose());
  }
}

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 5. Node transport
// ═══════════════════════════════════════════════════════════════════════════════════════════

// The few parts of Node's built-ins this file uses, declared structurally (as the WebAssembly
// API above is), so the file type-checks without @types/node and without the DOM lib. Real
// Node objects satisfy them; the built-ins are reached through `process.getBuiltinModule`
// (Node ≥ 20.16, Deno, Bun), so no `node:` specifier is left for a browser bundler to resolve.

/** A listener of a Node event; the arguments are the event's. */
type NodeListener = (...args: never[]) => void;

interface NodeEmitter {
  on(event: string, listener: NodeListener): unknown;
  once(event: string, listener: NodeListener): unknown;
  off(event: string, listener: NodeListener): unknown;
}

/**
 * The socket of an upgraded HTTP request, as `upgrade()` takes it: what node:http's 'upgrade'
 * event gives (typed `stream.Duplex`, in fact a `net.Socket` or a `tls.TLSSocket`).
 */
interface UpgradeSocket {
  write(bytes: Uint8Array | string, callback?: (error?: Error | null) => void): boolean;
  end(bytes?: Uint8Array | string): unknown;
  destroy(error?: Error): unknown;
  cork(): void;
  uncork(): void;
  pause(): unknown;
  resume(): unknown;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  readonly writableLength: number;
}

/** A `net.Socket` or `tls.TLSSocket`. */
interface NodeSocket extends UpgradeSocket, NodeEmitter {
  setNoDelay?(noDelay?: boolean): unknown;
  unshift(chunk: Uint8Array): void;
  readonly remoteAddress?: string | undefined;
  /** A TLS socket's protocol chosen by ALPN ('h2', 'http/1.1'), false if none. */
  readonly alpnProtocol?: string | false | null | undefined;
}

/** Request headers as `node:http` gives them (names in lower case). */
type NodeHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** The request of an upgrade, as `upgrade()` takes it: node:http's `IncomingMessage`. */
interface UpgradeRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly httpVersion: string;
  readonly headers: NodeHeaders;
  readonly rawHeaders: readonly string[];
}

/** An `http.IncomingMessage`: a request a server received, or the response a client got. */
interface NodeIncomingMessage extends UpgradeRequest, NodeEmitter {
  readonly statusCode?: number | undefined;
  readonly statusMessage?: string | undefined;
  resume(): unknown;
}

interface NodeServerResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(body: string): unknown;
}

interface NodeHttpServer extends NodeEmitter {
  maxHeadersCount: number | null;
  listen(options: { port: number; host: string; reusePort?: boolean } | { path: string }, callback: () => void): unknown;
  address(): { port: number } | string | null;
  close(callback: () => void): unknown;
  /** node:http and node:https; an HTTP/2 server has closeIdleConnections() only. */
  closeAllConnections?(): void;
  closeIdleConnections?(): void;
}

interface NodeClientRequest extends NodeEmitter {
  end(): unknown;
  destroy(): unknown;
}

type RequestListener = (request: NodeIncomingMessage, response: NodeServerResponse) => void;

interface NodeHttp {
  request(options: object): NodeClientRequest;
  createServer(options: object, listener: RequestListener): NodeHttpServer;
}

interface NodeHttps {
  createServer(options: object, listener: RequestListener): NodeHttpServer;
}

interface NodeNet {
  connect(options: object): NodeSocket;
  isIP(host: string): number;
}

interface NodeTls {
  connect(options: object): NodeSocket;
}

/** An `http2.Http2Stream`: a duplex of DATA frames, as a socket is one of bytes. */
interface NodeHttp2Stream extends NodeSocket {
  respond(headers: Record<string, string | number>, options?: { endStream?: boolean }): void;
  /** Sends RST_STREAM with `code` and destroys the stream. */
  close(code?: number): void;
  /** True once the stream is closed (both ends, or a reset). */
  readonly closed: boolean;
  readonly session?: NodeHttp2Session | undefined;
  readonly rstCode?: number | undefined;
  /** True if the request's HEADERS carried END_STREAM. */
  readonly endAfterHeaders?: boolean | undefined;
}

/**
 * A stream of a node:http2 server, as `upgradeStream()` takes it: what its 'stream' event
 * gives, or the compat API's `response.stream`.
 */
interface UpgradeStream extends UpgradeSocket {
  respond(headers: Record<string, string | number>, options?: { endStream?: boolean }): void;
  close(code?: number): void;
  readonly closed: boolean;
}

/** An `http2.Http2Session`: one HTTP/2 connection. */
interface NodeHttp2Session extends NodeEmitter {
  request(headers: Record<string, string>, options: { endStream: boolean }): NodeHttp2Stream;
  readonly remoteSettings: { readonly enableConnectProtocol?: boolean; readonly maxConcurrentStreams?: number };
  /** A proxy of the socket: its address can be read, but node:http2 forbids using it. */
  readonly socket?: { readonly remoteAddress?: string | undefined } | undefined;
  readonly closed: boolean;
  readonly destroyed: boolean;
  /** GOAWAY, then the end once the open streams are done. */
  close(callback?: () => void): void;
  destroy(): void;
  ref(): void;
  unref(): void;
  /** Grants the peer this much connection-level flow-control window. */
  setLocalWindowSize(size: number): void;
  /** Emits 'timeout' each time the session was idle for `ms`. */
  setTimeout(ms: number): void;
}

interface NodeHttp2 {
  connect(authority: string, options: object): NodeHttp2Session;
  createSecureServer(options: object, listener: RequestListener): NodeHttpServer;
  readonly constants: { readonly NGHTTP2_CANCEL: number; readonly NGHTTP2_REFUSED_STREAM: number };
}

interface ZlibOptions {
  windowBits?: number;
  level?: number;
  memLevel?: number;
}

/** A `zlib.DeflateRaw` or `zlib.InflateRaw`. */
interface ZlibStream extends NodeEmitter {
  write(bytes: Uint8Array): boolean;
  pause(): unknown;
  resume(): unknown;
  flush(kind: number, callback: (error?: Error | null) => void): void;
  close(): void;
  readonly readableEnded: boolean;
  readonly readableLength: number;
}

interface NodeZlib {
  createDeflateRaw(options: ZlibOptions): ZlibStream;
  createInflateRaw(options: ZlibOptions): ZlibStream;
  readonly constants: { readonly Z_SYNC_FLUSH: number; readonly Z_DEFAULT_COMPRESSION: number };
}

interface NodeCrypto {
  createHash(algorithm: string): { update(text: string): { digest(encoding: 'base64'): string } };
}

interface NodeBuffer {
  allocUnsafe(size: number): Uint8Array;
  allocUnsafeSlow(size: number): Uint8Array;
}

interface NodeProcess {
  readonly versions: { readonly node?: string | undefined; readonly bun?: string | undefined };
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly pid?: number;
  readonly platform?: string;
  getBuiltinModule?(id: string): unknown;
  nextTick(callback: () => void): void;
}

/** `process` where there is one (Node, Deno, Bun), undefined in a browser. */
const nodeProcess: NodeProcess | undefined = (globalThis as { process?: NodeProcess }).process;
const isNode = typeof nodeProcess?.versions?.node === 'string';

/**
 * NODE_DEBUG=websockets turns on the debug log, as NODE_DEBUG=http does Node's (util.debuglog:
 * a comma-separated list of names, `*` as a wildcard): one line per handshake, frame (opcode,
 * FIN, length, never the payload), pong with its round-trip time, close and failure, on stderr.
 */
const DEBUG = debugEnabled('websockets', nodeProcess?.env?.['NODE_DEBUG'] ?? '');

/** Whether NODE_DEBUG's list names `section`, as util.debuglog reads it. */
function debugEnabled(section: string, list: string): boolean {
  return list.split(/[\s,]+/).some((name) => {
    if (name === '') return false;
    const pattern = name.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
    return new RegExp(`^${pattern}$`, 'i').test(section);
  });
}

/** A URL as the debug log shows it: no user name, password or query (where tokens travel). */
function loggedUrl(url: URL): string {
  return url.origin + url.pathname;
}

function debugLog(id: number | string, text: string): void {
  console.error(`WEBSOCKETS ${nodeProcess?.pid ?? ''}: [${id}] ${text}`);
}

interface NodeDns {
  lookup(host: string, options: object, callback: (error: Error | null, address: string) => void): void;
}

interface NodeFs {
  lstatSync(path: string, options: { throwIfNoEntry: false }): { isSocket(): boolean } | undefined;
  unlinkSync(path: string): void;
}

interface NodeModules {
  http: NodeHttp;
  https: NodeHttps;
  net: NodeNet;
  tls: NodeTls;
  zlib: NodeZlib;
  dns: NodeDns;
  fs: NodeFs;
  /** node:http2, loaded on first use (only HTTP/2 needs it). */
  http2(): NodeHttp2;
  sha1Base64(text: string): string;
  /** `Buffer.allocUnsafe`: no zero-filling, and a Buffer is written to a socket without conversion. */
  allocateFrame: Allocate;
  /** Uninitialised too, but never from Buffer's pool: its ArrayBuffer holds nothing else. */
  allocateMessage: Allocate;
  /** `process.nextTick`: runs after the current macrotask's microtasks. */
  nextTick(callback: () => void): void;
}

let nodeModules: NodeModules | undefined;

/** Node built-ins, loaded on first use; a runtime without them gets a clear error. */
function loadNode(): NodeModules {
  return (nodeModules ??= loadBuiltins());
}

function loadBuiltins(): NodeModules {
  const process = nodeProcess;
  const load = process?.getBuiltinModule?.bind(process);
  if (!process || !load) throw new Error('websockets.ts needs Node.js 20.16 or newer (process.getBuiltinModule)');
  const crypto = load('crypto') as NodeCrypto;
  const { Buffer } = load('buffer') as { Buffer: NodeBuffer };
  return {
    http: load('http') as NodeHttp,
    https: load('https') as NodeHttps,
    net: load('net') as NodeNet,
    tls: load('tls') as NodeTls,
    zlib: load('zlib') as NodeZlib,
    dns: load('dns') as NodeDns,
    fs: load('fs') as NodeFs,
    http2: () => load('http2') as NodeHttp2,
    sha1Base64: (text) => crypto.createHash('sha1').update(text).digest('base64'),
    allocateFrame: (size) => Buffer.allocUnsafe(size),
    allocateMessage: (size) => new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size),
    nextTick: (callback) => process.nextTick(callback),
  };
}

/** A task's hold on one of a Limiter's slots. */
interface Turn {
  /** Holds a slot now. */
  held: boolean;
  /** Its place in the line while it waits for a slot. */
  wake: (() => void) | null;
  /** The task is over: it takes no slot again. */
  ended: boolean;
}

/**
 * Runs at most `limit` tasks at once; the others wait their turn, in order. A long task
 * calls `yieldTurn` now and then: when others wait, its slot goes to the first of them and it
 * queues up again behind them, so no task holds a slot for long while others starve.
 */
class Limiter {
  readonly #limit: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Whether a task is waiting for a slot. */
  get contended(): boolean {
    return this.#waiting.length > 0;
  }

  async run<T>(task: (turn: Turn) => Promise<T>): Promise<T> {
    const turn: Turn = { held: false, wake: null, ended: false };
    await this.#acquire(turn);
    try {
      return await task(turn);
    } finally {
      turn.ended = true;
      this.#release(turn);
    }
  }

  /** Frees the slot while the task waits for `until`, and resolves once it has one again (unless it ended meanwhile). */
  async lendTurn(turn: Turn, until: Promise<void>): Promise<void> {
    this.#release(turn);
    await until;
    if (!turn.ended) await this.#acquire(turn);
  }

  /** Lets the first waiting task run, and resolves once `turn` has a slot again. */
  yieldTurn(turn: Turn): Promise<void> {
    if (!turn.held || !this.contended) return RESOLVED;
    this.#release(turn);
    return this.#acquire(turn);
  }

  #acquire(turn: Turn): Promise<void> {
    if (this.#running < this.#limit) {
      this.#running++;
      turn.held = true;
      return RESOLVED;
    }
    return new Promise((resolve) => {
      turn.wake = () => {
        turn.wake = null;
        this.#running++; // the slot passes straight from the releasing task to this one
        turn.held = true;
        resolve();
      };
      this.#waiting.push(turn.wake);
    });
  }

  /** Frees the slot, or the place in the line of a task that ends while waiting to resume. */
  #release(turn: Turn): void {
    if (turn.wake) {
      this.#waiting.splice(this.#waiting.indexOf(turn.wake), 1);
      turn.wake = null;
    }
    if (!turn.held) return;
    turn.held = false;
    this.#running--;
    this.#waiting.shift()?.();
  }
}

/**
 * zlib operations in flight at once, over all connections: unbounded zlib concurrency
 * fragments memory badly (ws#1202), and the thread pool has only a few threads anyway.
 */
const zlibLimiter = new Limiter(10);

/** Output of one inflate between two chances for other connections' zlib work to go first. */
const INFLATE_SLICE = 1024 * KiB;

/** RFC 7692 §7.2.1: the empty stored block a sync flush ends with; stripped from each message, restored before inflating. */
const DEFLATE_TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff);

function endsWithDeflateTail(bytes: Uint8Array): boolean {
  const n = bytes.length;
  return n >= 4 && bytes[n - 4] === 0x00 && bytes[n - 3] === 0x00 && bytes[n - 2] === 0xff && bytes[n - 1] === 0xff;
}

/**
 * Writes `input` to a zlib stream and flushes it. `onOutput` gets each piece of output as
 * zlib produces it, and may throw to stop (then the stream is closed and the promise rejects).
 */
function flushZlib(stream: ZlibStream, input: Uint8Array[], flush: number, onOutput: (chunk: Uint8Array) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let failed = false;
    let flushed = false;
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('error', fail);
    };
    const fail = (error: unknown) => {
      if (failed) return;
      failed = true;
      cleanup();
      stream.close();
      reject(error);
    };
    // Done once the flush completed and its output was handed out: a paused stream (see
    // decompress) may still hold some when the flush completes.
    const finishIfDrained = () => {
      if (!flushed || failed || stream.readableLength > 0) return;
      cleanup();
      resolve();
    };
    const onData = (chunk: Uint8Array) => {
      try {
        onOutput(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } catch (error) {
        return fail(error);
      }
      finishIfDrained();
    };
    stream.on('data', onData);
    stream.on('error', fail);
    for (const part of input) stream.write(part);
    // A stream closed before the flush completes (the connection ended) passes an error here:
    // then the output is incomplete, and must never pass for a whole message.
    stream.flush(flush, (error?: Error | null) => {
      if (error) return fail(error);
      flushed = true;
      finishIfDrained();
    });
  });
}

/**
 * permessage-deflate over node:zlib. The zlib streams are made on first use and, where the
 * agreement says a side resets its context after each message, closed after each message:
 * an idle connection then holds no zlib memory at all.
 */
class ZlibCompression implements MessageCompression {
  readonly threshold: number;
  readonly #zlib: NodeZlib;
  readonly #deflateOptions: ZlibOptions;
  readonly #inflateOptions: ZlibOptions;
  /** Our side's no_context_takeover: a fresh deflate context for each message. */
  readonly #resetDeflater: boolean;
  /** The peer's no_context_takeover: nothing to remember between its messages. */
  readonly #resetInflater: boolean;
  #deflater: ZlibStream | null = null;
  #inflater: ZlibStream | null = null;

  constructor(zlib: NodeZlib, agreed: DeflateParameters, client: boolean, settings: CompressionOptions) {
    this.#zlib = zlib;
    this.threshold = settings.threshold ?? 1024;
    this.#deflateOptions = {
      windowBits: client ? agreed.clientMaxWindowBits : agreed.serverMaxWindowBits,
      level: settings.level ?? zlib.constants.Z_DEFAULT_COMPRESSION,
      memLevel: settings.memLevel ?? 8,
    };
    this.#inflateOptions = { windowBits: client ? agreed.serverMaxWindowBits : agreed.clientMaxWindowBits };
    this.#resetDeflater = client ? agreed.clientNoContextTakeover : agreed.serverNoContextTakeover;
    this.#resetInflater = client ? agreed.serverNoContextTakeover : agreed.clientNoContextTakeover;
  }

  compress(data: Uint8Array, final: boolean): Promise<Uint8Array> {
    return zlibLimiter.run(async () => {
      const deflater = (this.#deflater ??= quiet(this.#zlib.createDeflateRaw(this.#deflateOptions)));
      const output: Uint8Array[] = [];
      try {
        await flushZlib(deflater, [data], this.#zlib.constants.Z_SYNC_FLUSH, (chunk) => output.push(chunk));
      } catch (error) {
        this.#deflater = null;
        throw error;
      }
      let bytes = concatBytes(output);
      if (final) {
        if (endsWithDeflateTail(bytes)) bytes = bytes.subarray(0, bytes.length - 4);
        if (this.#resetDeflater) this.#closeDeflater();
      }
      return bytes;
    });
  }

  /**
   * Inflates a message. A message that inflates a lot (a small frame can hold 16 MiB of
   * zeros, about 60 ms of zlib) pauses the stream every INFLATE_SLICE of output while other
   * connections wait for zlib, and lets them go first: one peer's bombs cannot hold zlib for
   * everyone (zlib honours the pause: it stops once its readable buffer is full).
   */
  decompress(parts: Uint8Array[], end: boolean, onOutput: (chunk: Uint8Array) => Promise<void> | void): Promise<void> {
    return zlibLimiter.run(async (turn) => {
      const inflater = (this.#inflater ??= quiet(this.#zlib.createInflateRaw(this.#inflateOptions)));
      let sliceOutput = 0;
      const output = (chunk: Uint8Array) => {
        const room = onOutput(chunk);
        if (room) {
          // The application reads slower than zlib inflates: zlib waits, and lends its slot.
          inflater.pause();
          void zlibLimiter.lendTurn(turn, room).then(() => inflater.resume());
          return;
        }
        sliceOutput += chunk.length;
        if (sliceOutput < INFLATE_SLICE || !zlibLimiter.contended) return;
        sliceOutput = 0;
        inflater.pause();
        void zlibLimiter.yieldTurn(turn).then(() => inflater.resume());
      };
      // RFC 7692 §7.2.3.4: a block with BFINAL set ends the deflate stream (zlib ignores what
      // follows it); the next message starts a new one.
      if (!inflater.readableEnded) {
        try {
          await flushZlib(inflater, end ? [...parts, DEFLATE_TAIL] : parts, this.#zlib.constants.Z_SYNC_FLUSH, output);
        } catch (error) {
          this.#inflater = null;
          throw error;
        }
        // A pause above can outlast the run (its last output paused the stream, and the run
        // ended before the slot came back): the next run must find the stream flowing.
        inflater.resume();
      }
      if (end && (inflater.readableEnded || this.#resetInflater)) this.#closeInflater();
    });
  }

  close(): void {
    this.#closeDeflater();
    this.#closeInflater();
  }

  #closeDeflater(): void {
    this.#deflater?.close();
    this.#deflater = null;
  }

  #closeInflater(): void {
    this.#inflater?.close();
    this.#inflater = null;
  }
}

/** A zlib stream whose late errors (after it was given up on) cannot crash the process. */
function quiet(stream: ZlibStream): ZlibStream {
  stream.on('error', () => {});
  return stream;
}

/**
 * A Node socket as a transport. Writes made in one tick are corked and flushed together, so
 * a burst of small messages costs one system call.
 */
const Writes = { NONE: 0, ONE: 1, CORKED: 2 } as const;

/** Node's socket events, as functions shared by all connections: the socket knows its transport. */
const TRANSPORT = Symbol('websockets.ts transport');
type TransportSocket = NodeSocket & { [TRANSPORT]: SocketTransport };

function onSocketData(this: TransportSocket, chunk: Uint8Array): void {
  // Plain Uint8Array views, not Buffers: the same type as in a browser.
  this[TRANSPORT].events.onTransportData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
}
function onSocketEnd(this: TransportSocket): void {
  this[TRANSPORT].events.onTransportEnd();
}
function onSocketError(this: TransportSocket, error: Error): void {
  this[TRANSPORT].failure = error;
}
function onSocketClose(this: TransportSocket): void {
  const transport = this[TRANSPORT];
  transport.events.onTransportClose(transport.failure);
}

/**
 * The transports that wrote during this tick. The first write of a tick goes straight out;
 * later ones are corked until the application's turn is over (after the microtasks), then
 * leave together in one writev. One `nextTick` ends the tick for every socket.
 */
let wroteThisTick: SocketTransport[] = [];
function endTick(): void {
  const transports = wroteThisTick;
  wroteThisTick = [];
  for (const transport of transports) transport.endTick();
}

class SocketTransport implements Transport {
  readonly #socket: TransportSocket;
  readonly #node: NodeModules;
  readonly #afterWrite = () => this.events.onTransportWritten();
  #writes: number = Writes.NONE;
  /** Bytes that came with the handshake, until `start` hands them over. */
  #head: Uint8Array | null;
  events!: TransportEvents;
  failure: Error | undefined;

  constructor(socket: NodeSocket, head: Uint8Array, node: NodeModules) {
    this.#socket = Object.assign(socket, { [TRANSPORT]: this });
    this.#head = head;
    this.#node = node;
  }

  start(events: TransportEvents): void {
    const socket = this.#socket;
    const head = this.#head;
    this.#head = null;
    this.events = events;
    socket.setNoDelay?.(true);
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    if (head && head.length > 0) onSocketData.call(socket, head);
    if (socket.destroyed) events.onTransportClose(new Error('socket closed during the handshake'));
  }

  write(bytes: Uint8Array, more = false, written?: (error?: Error | null) => void): void {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return written?.(new Error('the socket is closed'));
    if (this.#writes === Writes.NONE) {
      this.#writes = Writes.ONE;
      if (wroteThisTick.push(this) === 1) this.#node.nextTick(endTick);
    } else if (this.#writes === Writes.ONE) {
      this.#cork();
    }
    if (more && this.#writes === Writes.ONE) this.#cork();
    socket.write(bytes, written ? (error) => this.#afterOwnWrite(written, error) : this.#afterWrite);
  }

  /**
   * A write whose caller waits for it. A socket destroyed meanwhile may still report success
   * (Node 20 does, for writes that were corked together): bytes it did not hand on are lost.
   */
  #afterOwnWrite(written: (error?: Error | null) => void, error: Error | null | undefined): void {
    written(error ?? (this.#socket.destroyed ? new Error('the socket was destroyed before the write completed') : null));
    this.#afterWrite();
  }

  #cork(): void {
    this.#writes = Writes.CORKED;
    this.#socket.cork();
  }

  /** @internal Called once at the end of a tick in which this transport wrote. */
  endTick(): void {
    if (this.#writes === Writes.CORKED) this.#socket.uncork();
    this.#writes = Writes.NONE;
  }

  get allocateFrame(): Allocate {
    return this.#node.allocateFrame;
  }

  get allocateMessage(): Allocate {
    return this.#node.allocateMessage;
  }

  get bufferedAmount(): number {
    return this.#socket.writableLength;
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  end(): void {
    if (!this.#socket.writableEnded) this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  get destroyed(): boolean {
    return this.#socket.destroyed;
  }
}

/**
 * An HTTP/2 stream as a transport (RFC 8441 §5): the frames travel as the stream's DATA,
 * `end()` is END_STREAM (TCP's FIN), and `destroy()` resets the stream with CANCEL, the
 * stream's RST; the peer sees either as the end of the connection. HTTP/2 flow control is
 * the backpressure: a write's callback waits for the stream's window.
 */
class Http2StreamTransport extends SocketTransport {
  readonly #stream: NodeHttp2Stream;
  readonly #cancel: number;

  constructor(stream: NodeHttp2Stream, node: NodeModules) {
    super(stream, EMPTY, node);
    this.#stream = stream;
    this.#cancel = node.http2().constants.NGHTTP2_CANCEL;
  }

  override destroy(): void {
    cancelStream(this.#stream, this.#cancel);
  }
}

/**
 * RST_STREAM(CANCEL). The unread rest of the stream is discarded first: node:http2 never
 * closes a stream whose readable side still holds data, and it would be held for ever.
 */
function cancelStream(stream: NodeHttp2Stream, cancel: number): void {
  stream.resume();
  if (!stream.destroyed) stream.close(cancel);
}

function lowerCaseHeaders(raw: NodeHeaders): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name in raw) {
    const value = raw[name];
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

// ── dialers: how a client reaches the server ────────────────────────────────────────────
//
// Getting a byte stream to the server, before any WebSocket byte, is one function per way:
// TCP, a unix socket, an HTTP CONNECT tunnel, a SOCKS5 tunnel; for wss: TLS then runs over
// whichever of them. The handshake and the connection run unchanged over what they return.

/** Where the client goes: a host and port, or a unix socket; `secure`: TLS over it, for `servername`. */
interface DialTarget {
  host: string;
  port: number;
  socketPath: string | null;
  secure: boolean;
}

/** A proxy, parsed: `http:`, `https:`, `socks5:` (we resolve the name) or `socks5h:` (the proxy does). */
interface Proxy {
  url: URL;
  /** For messages: the URL without its credentials. */
  shown: string;
  /** The user name and password, decoded. */
  login: [string, string] | null;
}

/** Proxy URL schemes and their default ports. */
const PROXY_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443, 'socks5:': 1080, 'socks5h:': 1080 };

/** The longest answer a proxy may give to CONNECT before its blank line. */
const MAX_PROXY_ANSWER = 16 * KiB;

/** Reaches `target` (through `proxy` if any), with TLS for wss:; `signal` stops it and destroys what it opened. */
async function dial(node: NodeModules, target: DialTarget, proxy: Proxy | null, tls: ClientTlsOptions | undefined, proxyTls: ClientTlsOptions | undefined, signal: AbortSignal): Promise<NodeSocket> {
  const stream = target.socketPath !== null
    ? await connected(node.net.connect({ path: target.socketPath }), 'connect', signal)
    : proxy
      ? await dialProxy(node, target, proxy, proxyTls, signal)
      : await connected(node.net.connect({ host: target.host, port: target.port }), 'connect', signal);
  return target.secure ? startTls(node, stream, target.host, tls, signal) : stream;
}

/** TLS over a connected stream; SNI names the host unless it is an IP address (RFC 6066 §3). */
function startTls(node: NodeModules, socket: NodeSocket, host: string, tls: ClientTlsOptions | undefined, signal: AbortSignal): Promise<NodeSocket> {
  const servername = node.net.isIP(host) ? undefined : host;
  return connected(node.tls.connect({ servername, ...tls, socket }), 'secureConnect', signal, socket);
}

/** What `connected` waits on: a socket, or an HTTP/2 session. */
type Connecting = NodeEmitter & { destroy(): unknown };

/**
 * Resolves with `socket` once it emits `event`; rejects on its error, its close or the
 * abort, destroying it (and `under`, the stream it runs over).
 */
function connected<T extends Connecting>(socket: T, event: string, signal: AbortSignal, under?: NodeSocket): Promise<T> {
  return new Promise((resolve, reject) => {
    const fail = (error: unknown) => {
      cleanup();
      socket.destroy();
      under?.destroy();
      reject(error);
    };
    const onError = (error: unknown) => fail(error);
    const onClose = () => fail(new Error('the connection closed'));
    const onAbort = () => fail(signal.reason);
    const onDone = () => {
      cleanup();
      resolve(socket);
    };
    const cleanup = () => {
      socket.off(event, onDone);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    if (signal.aborted) return fail(signal.reason);
    socket.on(event, onDone);
    socket.on('error', onError);
    socket.on('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Reads `socket` until `complete(bytes)` says how many of the bytes so far make the answer
 * (0: not yet); what follows is put back for whoever reads next. Fails past `limit` bytes.
 */
function readAnswer(socket: NodeSocket, signal: AbortSignal, what: string, complete: (bytes: Uint8Array) => number, limit = MAX_PROXY_ANSWER): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let bytes: Uint8Array = new Uint8Array(0);
    const finish = (error: unknown, answer?: Uint8Array) => {
      socket.pause();
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      if (error === null) return resolve(answer as Uint8Array);
      socket.destroy();
      reject(error);
    };
    const onData = (chunk: Uint8Array) => {
      bytes = concatBytes([bytes, chunk]);
      let size: number;
      try {
        size = complete(bytes);
      } catch (error) {
        return finish(error);
      }
      if (size > 0) {
        finish(null, bytes.subarray(0, size)); // paused first: what is put back waits for the next reader
        if (size < bytes.length) socket.unshift(bytes.subarray(size));
        return;
      }
      if (bytes.length > limit) finish(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what}: answer longer than ${limit} bytes`));
    };
    const onError = (cause: unknown) => finish(cause);
    const onClose = () => finish(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what}: the connection closed before the answer`));
    const onAbort = () => finish(signal.reason);
    if (signal.aborted) return onAbort();
    if (socket.destroyed) return onClose();
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.resume();
  });
}

/** `host:port` as a request target, an IPv6 address in brackets. */
function authority(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The user name and password of a URL, decoded; null if it has none. A bad %-escape is a TypeError that does not show them. */
function credentials(url: URL, what: string): [string, string] | null {
  if (!url.username && !url.password) return null;
  try {
    return [decodeURIComponent(url.username), decodeURIComponent(url.password)];
  } catch {
    throw new TypeError(`the user name or password in ${what} is not valid percent-encoding (write % as %25)`);
  }
}

/** Through a proxy: TCP (TLS for https:) to it, then a tunnel to the target. */
async function dialProxy(node: NodeModules, target: DialTarget, proxy: Proxy, proxyTls: ClientTlsOptions | undefined, signal: AbortSignal): Promise<NodeSocket> {
  const { url } = proxy;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port) || (PROXY_PORTS[url.protocol] as number);
  let socket: NodeSocket;
  try {
    socket = await connected(node.net.connect({ host, port }), 'connect', signal);
    if (url.protocol === 'https:') socket = await startTls(node, socket, host, proxyTls, signal);
  } catch (cause) {
    if (signal.aborted) throw cause;
    throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `could not reach the proxy ${proxy.shown}: ${(cause as Error).message}`, { cause });
  }
  // Between the tunnel's steps (a name lookup, say) nothing reads: an error then is seen by
  // the next step (the socket is destroyed), and any failure destroys the socket.
  const quiet = () => {};
  socket.on('error', quiet);
  try {
    return url.protocol === 'http:' || url.protocol === 'https:' ? await httpTunnel(socket, target, proxy, signal) : await socks5Tunnel(node, socket, target, proxy, signal);
  } catch (error) {
    socket.destroy();
    throw error;
  } finally {
    socket.off('error', quiet);
  }
}

/** An HTTP CONNECT tunnel (RFC 9110 §9.3.6): any 2xx opens it; anything else is the proxy's refusal, with its status and headers. */
async function httpTunnel(socket: NodeSocket, target: DialTarget, proxy: Proxy, signal: AbortSignal): Promise<NodeSocket> {
  const to = authority(target.host, target.port);
  const { login } = proxy;
  const lines = [`CONNECT ${to} HTTP/1.1`, `Host: ${to}`];
  if (login) lines.push(`Proxy-Authorization: Basic ${base64(textEncoder.encode(`${login[0]}:${login[1]}`))}`);
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  const what = `the proxy ${proxy.shown}`;
  const answer = await readAnswer(socket, signal, what, (bytes) => {
    const end = indexOfBlankLine(bytes);
    return end < 0 ? 0 : end + 4;
  });
  const [statusLine = '', ...headerLines] = latin1(answer).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  if (status >= 200 && status < 300) return socket;
  socket.destroy();
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const said = status ? `HTTP ${statusLine.slice(9).trim()}` : `not HTTP: ${JSON.stringify(statusLine.slice(0, 40))}`;
  throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what} refused the tunnel to ${to}: ${said}`, { status, headers });
}

/** Where the header block of an HTTP answer ends (the index of its \r\n\r\n), or -1. */
function indexOfBlankLine(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i;
  }
  return -1;
}

/** RFC 1928 §6: what a SOCKS5 reply code means. */
const SOCKS5_REPLIES: readonly string[] = [
  'succeeded', 'general SOCKS server failure', 'connection not allowed by ruleset', 'network unreachable',
  'host unreachable', 'connection refused', 'TTL expired', 'command not supported', 'address type not supported',
];

/**
 * A SOCKS5 tunnel (RFC 1928), with username/password authentication (RFC 1929) when the
 * proxy URL has credentials. socks5: sends the address we resolved; socks5h: sends the name.
 */
async function socks5Tunnel(node: NodeModules, socket: NodeSocket, target: DialTarget, proxy: Proxy, signal: AbortSignal): Promise<NodeSocket> {
  const what = `the SOCKS5 proxy ${proxy.shown}`;
  const fail = (reason: string) => {
    socket.destroy();
    return new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what} ${reason}`);
  };
  const { login } = proxy;
  // §3: version 5, the methods offered: 0 (none) or 2 (username/password).
  socket.write(Uint8Array.of(5, 1, login ? 2 : 0));
  const choice = await readAnswer(socket, signal, what, (bytes) => (bytes.length >= 2 ? 2 : 0));
  if (choice[0] !== 5) throw fail('is not a SOCKS5 server');
  if (choice[1] !== (login ? 2 : 0)) throw fail(login ? 'does not accept username/password authentication' : 'requires authentication (give the user name and password in the proxy URL)');
  if (login) {
    // RFC 1929 §2: a user name and a password of 1 to 255 bytes each.
    const [user, password] = login.map((part) => textEncoder.encode(part)) as [Uint8Array, Uint8Array];
    if (user.length === 0 || user.length > 255 || password.length > 255) throw fail('needs a user name of 1 to 255 bytes and a password of at most 255');
    socket.write(concatBytes([Uint8Array.of(1, user.length), user, Uint8Array.of(password.length), password]));
    const verdict = await readAnswer(socket, signal, what, (bytes) => (bytes.length >= 2 ? 2 : 0));
    if (verdict[0] !== 1 || verdict[1] !== 0) throw fail('refused the user name and password');
  }
  const address = proxy.url.protocol === 'socks5h:' ? target.host : await resolveHost(node, target.host, signal);
  socket.write(concatBytes([Uint8Array.of(5, 1, 0), socksAddress(node, address), Uint8Array.of(target.port >> 8, target.port & 0xff)]));
  const reply = await readAnswer(socket, signal, what, (bytes) => socksReplyLength(bytes, what));
  if (reply[1] !== 0) throw fail(`could not connect to ${authority(target.host, target.port)}: ${SOCKS5_REPLIES[reply[1]!] ?? `reply code ${reply[1]}`}`);
  return socket;
}

/** §4: an address as ATYP and its bytes: IPv4, IPv6 or a domain name. */
function socksAddress(node: NodeModules, host: string): Uint8Array {
  const kind = node.net.isIP(host);
  if (kind === 4) return Uint8Array.of(1, ...host.split('.').map(Number));
  if (kind === 6) {
    const value = ipValue(host) as bigint;
    const bytes = new Uint8Array(17);
    bytes[0] = 4;
    for (let i = 0; i < 16; i++) bytes[16 - i] = Number((value >> BigInt(8 * i)) & 0xffn);
    return bytes;
  }
  const name = textEncoder.encode(host);
  if (name.length > 255) throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, 'a host name over 255 bytes cannot go through SOCKS5');
  return concatBytes([Uint8Array.of(3, name.length), name]);
}

/** §6: the length of a whole reply (version, code, reserved, the bound address, port), or 0 while incomplete; a failure is whole at its code. */
function socksReplyLength(bytes: Uint8Array, what: string): number {
  if (bytes.length < 2) return 0;
  if (bytes[0] !== 5) throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what} sent a malformed reply`);
  if (bytes[1] !== 0) return bytes.length; // a failure: its code is what matters, whatever address follows
  if (bytes.length < 5) return 0;
  const kind = bytes[3];
  const size = 6 + (kind === 1 ? 4 : kind === 4 ? 16 : kind === 3 ? 1 + bytes[4]! : 0);
  if (size === 6) throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `${what} sent a malformed reply`);
  return bytes.length >= size ? size : 0;
}

/** socks5: the client resolves the name (the system's resolver, as net.connect would). */
function resolveHost(node: NodeModules, host: string, signal: AbortSignal): Promise<string> {
  if (node.net.isIP(host)) return Promise.resolve(host);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    node.dns.lookup(host, {}, (error, address) => {
      signal.removeEventListener('abort', onAbort);
      if (error) reject(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `could not resolve ${host}: ${error.message}`, { cause: error }));
      else resolve(address);
    });
  });
}

// ── which proxy: the `proxy` option, or the environment's ───────────────────────────────

/** The proxy for `target`: the option if given (false: none), else the environment's; never for a unix socket. */
function chooseProxy(option: string | URL | false | undefined, target: DialTarget): Proxy | null {
  if (option === false || target.socketPath !== null) return null;
  if (option !== undefined) return parseProxy(option, 'the proxy option');
  const found = proxyFromEnvironment(target);
  return found ? parseProxy(found.value, `the environment variable ${found.name}`) : null;
}

/** Checks a proxy URL; a value without a scheme is http: (as curl reads it). Never shows the credentials. */
function parseProxy(value: string | URL, what: string): Proxy {
  let url: URL;
  try {
    url = new URL(typeof value === 'string' && !value.includes('://') ? `http://${value}` : value);
  } catch {
    throw new TypeError(`${what} must be a proxy URL: http://, https://, socks5:// or socks5h://, host and port`);
  }
  if (!(url.protocol in PROXY_PORTS)) throw new TypeError(`${what}: a proxy URL must start with http:, https:, socks5: or socks5h:, got ${url.protocol}`);
  return { url, shown: `${url.protocol}//${url.host}`, login: credentials(url, what) };
}

/**
 * The environment's proxy for `target`, as curl and python-websockets read it: https_proxy
 * (wss:) or http_proxy (ws:), then all_proxy, each in lower case first, then upper case;
 * none for loopback or for a host no_proxy names.
 */
function proxyFromEnvironment(target: DialTarget): { name: string; value: string } | null {
  if (isLoopback(target.host)) return null;
  const found = environment(target.secure ? 'https_proxy' : 'http_proxy') ?? environment('all_proxy');
  if (!found || bypassesProxy(environment('no_proxy')?.value ?? '', target.host, target.port)) return null;
  return found;
}

/** A variable set to something, in lower case first, then in upper case. */
function environment(name: string): { name: string; value: string } | null {
  const env = nodeProcess?.env ?? {};
  for (const each of [name, name.toUpperCase()]) if (env[each]) return { name: each, value: env[each] as string };
  return null;
}

/** localhost, *.localhost (RFC 6761 §6.3), 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
function isLoopback(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  const value = ipValue(name);
  if (value === null) return false;
  return name.includes(':') ? value === 1n || value >> 24n === 0xffff7fn : value >> 24n === 127n;
}

/**
 * Whether no_proxy names the host: `*`, a host name (which covers its subdomains; a leading
 * `.` or `*.` is the same), an IP address, a CIDR range (an IP host only: names are not
 * resolved for it), each optionally with a port (`host:8080`, `[::1]:8080`); entries are
 * separated by commas or spaces.
 */
function bypassesProxy(list: string, host: string, port: number): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  const address = ipValue(name);
  return list.split(/[\s,]+/).some((raw) => {
    let entry = raw.toLowerCase();
    if (entry === '*') return true;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    const hostPort = bracketed ? null : /^([^:]+):(\d+)$/.exec(entry);
    const entryPort = bracketed?.[2] ?? hostPort?.[2];
    entry = bracketed?.[1] ?? hostPort?.[1] ?? entry;
    entry = entry.replace(/\.$/, '');
    if (!entry || (entryPort !== undefined && Number(entryPort) !== port)) return false;
    const slash = entry.indexOf('/');
    const bits = entry.slice(slash + 1);
    if (slash >= 0) return /^\d{1,3}$/.test(bits) && inRange(address, name.includes(':'), entry.slice(0, slash), Number(bits));
    const value = ipValue(entry);
    if (value !== null) return value === address && entry.includes(':') === name.includes(':');
    const domain = entry.replace(/^\*?\./, '');
    return name === domain || name.endsWith(`.${domain}`);
  });
}

/** Whether an address (its value, and whether it is IPv6) lies in network/bits. */
function inRange(address: bigint | null, v6: boolean, network: string, bits: number): boolean {
  const base = ipValue(network);
  const width = network.includes(':') ? 128 : 32;
  if (address === null || base === null || v6 !== (width === 128) || !(bits >= 0 && bits <= width)) return false;
  const shift = BigInt(width - bits);
  return base >> shift === address >> shift;
}

/** An IPv4 or IPv6 address as a number; null for anything else (a name, a zone index). */
function ipValue(text: string): bigint | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const parts = v4.slice(1).map(Number);
    return parts.some((part) => part > 255) ? null : parts.reduce((value, part) => (value << 8n) | BigInt(part), 0n);
  }
  if (!text.includes(':')) return null;
  let groups = text;
  const embedded = /(\d+\.\d+\.\d+\.\d+)$/.exec(text); // ::ffff:127.0.0.1
  if (embedded) {
    const four = ipValue(embedded[1] as string);
    if (four === null) return null;
    groups = `${text.slice(0, -(embedded[1] as string).length)}${(four >> 16n).toString(16)}:${(four & 0xffffn).toString(16)}`;
  }
  const halves = groups.split('::');
  if (halves.length > 2) return null;
  const split = (half: string) => (half ? half.split(':') : []);
  const head = split(halves[0] as string);
  const tail = halves.length === 2 ? split(halves[1] as string) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  let value = 0n;
  for (const group of [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail]) {
    if (!/^[0-9a-f]{1,4}$/i.test(group)) return null;
    value = (value << 16n) | BigInt(`0x${group}`);
  }
  return value;
}

// ── HTTP/2: WebSockets to one origin share one connection (RFC 8441) ───────────────────────
//
// With `http2: true`, a wss: client offers h2 by ALPN. If the server takes it and its SETTINGS
// enable extended CONNECT (§3), each WebSocket is a stream of one shared connection; if ALPN
// gives HTTP/1.1, that socket carries the RFC 6455 handshake; if the server speaks h2 without
// extended CONNECT, a new connection offers HTTP/1.1 only.

/** How long a client's HTTP/2 connection stays open after its last WebSocket ended. */
const HTTP2_IDLE_CLOSE = 1_000;

/**
 * node:http2's cap on one connection's memory (MB: frames queued, header tables), 10 by
 * default, past which it refuses new streams (ENHANCE_YOUR_CALM): far too little for a
 * thousand WebSockets. Our own limits (highWaterMark per stream) bound the real use.
 */
const HTTP2_SESSION_MEMORY = 1_024;

/**
 * HTTP/2 flow-control windows we grant (RFC 9113 §6.9): 64 KiB by default, which holds a fast
 * sender to one window per round trip of WINDOW_UPDATEs. A stream's window is at most what a
 * WebSocket that stops reading makes us hold, beside its receive queue (maxQueuedBytes, 1 MiB
 * by default); the connection's bounds all its streams together.
 */
const HTTP2_STREAM_WINDOW = 1024 * KiB;
const HTTP2_CONNECTION_WINDOW = 32 * 1024 * KiB;

/** A client's HTTP/2 connection, shared by its WebSockets to one origin as far as the server's stream limit allows. */
class SharedSession {
  readonly session: NodeHttp2Session;
  #streams = 0;
  #idle: Timer | null = null;

  constructor(session: NodeHttp2Session) {
    this.session = session;
    this.#becomeIdle();
  }

  /**
   * Takes a place for one more stream under the server's SETTINGS_MAX_CONCURRENT_STREAMS
   * (RFC 9113 §5.1.2), if one is left, at once: concurrent connects never count the same
   * place. `request()` fills it; while any is taken, the connection keeps the process alive.
   */
  reserve(): boolean {
    const session = this.session;
    if (session.closed || session.destroyed || this.#streams >= (session.remoteSettings.maxConcurrentStreams ?? 100)) return false;
    this.#streams++;
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = null;
    session.ref();
    return true;
  }

  /** Opens a stream in the place `reserve()` took; the place is free again once the stream closes. */
  request(headers: Record<string, string>): NodeHttp2Stream {
    let stream: NodeHttp2Stream;
    try {
      stream = this.session.request(headers, { endStream: false });
    } catch (error) {
      this.#release();
      throw error;
    }
    stream.once('close', () => this.#release());
    return stream;
  }

  #release(): void {
    if (--this.#streams === 0) this.#becomeIdle();
  }

  #becomeIdle(): void {
    this.session.unref();
    this.#idle = startTimer(HTTP2_IDLE_CLOSE, () => this.session.close());
  }
}

/** A connection being opened or open, for the WebSockets to one place. */
interface SessionSlot {
  /** The connection; a socket if ALPN chose HTTP/1.1; null if the server did not enable extended CONNECT. */
  ready: Promise<SharedSession | NodeSocket | null>;
}

/** The client's HTTP/2 connections, by where they go: origin, unix socket, proxy and TLS options. */
const http2Sessions = new Map<string, SessionSlot>();

/**
 * A connection for one more WebSocket to `target`: the shared one if it has room, else a new
 * one (shared from then on). Waits for another attempt's connection being opened, bounded by
 * this attempt's signal; if that one fails, this attempt opens its own.
 */
async function http2Session(attempt: Attempt, target: DialTarget, proxy: Proxy | null): Promise<SharedSession | NodeSocket | null> {
  const key = sessionKey(target, proxy, attempt.options.tls);
  for (let shared = http2Sessions.get(key); shared; shared = http2Sessions.get(key)) {
    const reached = await untilAborted(shared.ready.catch(() => undefined), attempt.signal);
    if (reached === null || (reached instanceof SharedSession && reached.reserve())) return reached;
    if (http2Sessions.get(key) === shared) break; // full: open another (unless someone else did meanwhile)
  }
  const slot: SessionSlot = { ready: openSession(attempt, target, proxy) };
  const forget = () => {
    if (http2Sessions.get(key) === slot) http2Sessions.delete(key);
  };
  http2Sessions.set(key, slot);
  slot.ready.then((reached) => {
    if (reached instanceof SharedSession) {
      reached.session.once('close', forget);
      reached.session.once('goaway', forget);
    } else {
      forget(); // an HTTP/1.1 socket is this attempt's own; null is found out anew each time
    }
  }, forget);
  const reached = await slot.ready;
  if (reached instanceof SharedSession && !reached.reserve()) {
    throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, 'connection failed: the server allows no stream on its new HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS 0)');
  }
  return reached;
}

/** TLS offering h2 and HTTP/1.1 by ALPN; over h2, waits for the server's SETTINGS (RFC 8441 §3: no :protocol before them). */
async function openSession(attempt: Attempt, target: DialTarget, proxy: Proxy | null): Promise<SharedSession | NodeSocket | null> {
  const { builtins: node, options, signal } = attempt;
  const socket = await dial(node, target, proxy, { ...options.tls, ALPNProtocols: ['h2', 'http/1.1'] }, options.proxyTls, signal);
  if (socket.alpnProtocol !== 'h2') return socket;
  socket.setNoDelay?.(true);
  const authority = target.socketPath !== null ? 'localhost' : `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  const session = node.http2().connect(`https://${authority}`, {
    createConnection: () => socket,
    maxSessionMemory: HTTP2_SESSION_MEMORY,
    settings: { initialWindowSize: HTTP2_STREAM_WINDOW },
  });
  session.once('connect', () => session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW));
  session.on('error', ignoreError); // each stream reports the failure to its WebSocket
  await connected(session, 'remoteSettings', signal);
  if (session.remoteSettings.enableConnectProtocol) return new SharedSession(session);
  if (DEBUG) debugLog(`handshake ${target.host}:${target.port}`, 'the HTTP/2 server did not enable extended CONNECT: HTTP/1.1 instead');
  session.close();
  return null;
}

function ignoreError(): void {}

/** `promise`, or the signal's reason if it aborts first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Connections are shared only between attempts with the same target, proxy and TLS options (objects by identity). */
function sessionKey(target: DialTarget, proxy: Proxy | null, tls: ClientTlsOptions | undefined): string {
  return JSON.stringify([target.host, target.port, target.socketPath, proxy?.url.href ?? null, tls ? tlsKey(tls) : '']);
}

/** TLS options as a key, made once per options object (a PEM `ca` is long). */
const tlsKeys = new WeakMap<ClientTlsOptions, string>();

function tlsKey(tls: ClientTlsOptions): string {
  let key = tlsKeys.get(tls);
  if (key === undefined) {
    key = Object.entries(tls)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, value]) => `${name}=${typeof value === 'object' || typeof value === 'function' ? `#${objectId(value as object)}` : JSON.stringify(value)}`)
      .join(';');
    tlsKeys.set(tls, key);
  }
  return key;
}

const objectIds = new WeakMap<object, number>();
let lastObjectId = 0;

function objectId(value: object | null): number {
  if (value === null) return 0;
  let id = objectIds.get(value);
  if (id === undefined) objectIds.set(value, (id = ++lastObjectId));
  return id;
}

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 6. open / connect / pair / listen / upgrade
// ═══════════════════════════════════════════════════════════════════════════════════════════

/** The URL as `ws.url` shows it: without the user name and password it may carry. */
function withoutCredentials(url: URL): string {
  if (!url.username && !url.password) return url.href;
  const shown = new URL(url.href);
  shown.username = '';
  shown.password = '';
  return shown.href;
}

/** Parses and checks a client URL: ws:, wss: (http: and https: are accepted as aliases), ws+unix: and wss+unix:. */
function parseUrl(url: string | URL): URL {
  const parsed = new URL(url);
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  if (!['ws:', 'wss:', 'ws+unix:', 'wss+unix:'].includes(parsed.protocol)) throw new TypeError(`a WebSocket URL must start with ws:, wss: or ws+unix:, got ${parsed.protocol}`);
  // RFC 6455 §3: fragment identifiers are meaningless in WebSocket URIs.
  if (parsed.hash) throw new TypeError('a WebSocket URL may not have a #fragment');
  return parsed;
}

/** What a client dials and asks for. */
interface Destination {
  /** A ws: or wss: URL: its host is the Host header, its path and query the request target. */
  url: URL;
  socketPath: string | null;
  /** What ws.url shows: the URL, without credentials. */
  shown: string;
}

/** `ws+unix:/path/to.sock:/request-path` (as `ws` writes it): the socket, and ws://localhost with the request path; else the URL and `socketPath`. */
function destination(url: URL, socketPath: string | undefined): Destination {
  if (socketPath !== undefined) checkSocketPath(socketPath);
  if (!url.protocol.endsWith('+unix:')) return { url, socketPath: socketPath ?? null, shown: withoutCredentials(url) };
  const colon = url.pathname.indexOf(':');
  let path: string;
  try {
    path = decodeURIComponent(colon < 0 ? url.pathname : url.pathname.slice(0, colon));
  } catch {
    throw new TypeError('the socket path of a ws+unix: URL is not valid percent-encoding (write % as %25)');
  }
  const request = colon < 0 ? '/' : url.pathname.slice(colon + 1).replace(/^(?!\/)/, '/');
  if (!path) throw new TypeError('a ws+unix: URL names its socket: ws+unix:/path/to.sock:/request-path');
  checkSocketPath(path);
  const http = new URL(`${url.protocol === 'wss+unix:' ? 'wss' : 'ws'}://localhost${request}${url.search}`);
  return { url: http, socketPath: path, shown: url.href };
}

/** The redirects a handshake may answer with (RFC 9110 §15.4). */
const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** A handshake answered with a redirect. */
interface Redirect {
  status: number;
  headers: Record<string, string>;
  location: string;
}

/** What every attempt of one connect() shares. */
interface Attempt {
  builtins: NodeModules;
  protocols: string[];
  compression: CompressionOptions | null;
  options: ClientOptions;
  /** The handshake timeout and the caller's signal, for every step (dial, proxy, handshake, redirects). */
  signal: AbortSignal;
}

/** The handshake timeout and the caller's signal as one signal, and what stops the timer. */
function handshakeDeadline(options: ClientOptions): { signal: AbortSignal; clear(): void } {
  const deadline = new AbortController();
  const timeout = options.handshakeTimeout ?? DEFAULTS.handshakeTimeout;
  const timer = timeout > 0 ? startTimer(timeout, () => deadline.abort(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `handshake timed out after ${timeout} ms`))) : null;
  const onAbort = () => deadline.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: deadline.signal,
    clear: () => {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * Opens a client connection and resolves with the WebSocket once the handshake is done:
 * dial (TCP, TLS, a unix socket, a proxy's tunnel), then the RFC 6455 handshake, following
 * redirects if asked. Rejects with a `WebSocketError` (code 1006, with `status` and `headers`
 * when the server or the proxy answered) if the handshake fails or times out, and with the
 * signal's reason if `signal` aborts it.
 *
 * @example
 * const ws = await connect('ws://127.0.0.1:8080', { protocols: ['chat'] })
 */
async function connect(url: string | URL, options: ClientOptions = {}): Promise<WebSocket> {
  const target = parseUrl(url);
  const protocols = normalizeProtocols(options.protocols);
  if (!isNode) return connectNative(target, protocols, options);
  let headers = checkClientHeaders(options.headers);
  resolveOptions(options); // reject bad options before any I/O
  const { maxRedirects } = readNumbers({ maxRedirects: 10 }, options);
  if (options.proxy) parseProxy(options.proxy, 'the proxy option');
  credentials(target, 'the URL');
  const compression = checkCompressionOptions(options.compression);
  options.signal?.throwIfAborted();
  const deadline = handshakeDeadline(options);
  const attempt: Attempt = { builtins: loadNode(), protocols, compression, options, signal: deadline.signal };
  try {
    let at = destination(target, options.socketPath);
    const chain = [at.shown];
    for (;;) {
      const outcome = await connectTo(attempt, at, headers);
      if (outcome instanceof WebSocket) return outcome;
      const next = redirected(at, outcome, options);
      chain.push(next.shown);
      if (chain.length - 1 > maxRedirects) {
        const shown = chain.length > 12 ? [...chain.slice(0, 5), `… ${chain.length - 10} more …`, ...chain.slice(-5)] : chain;
        throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `too many redirects (more than ${maxRedirects}): ${shown.join(' → ')}`, { status: outcome.status, headers: outcome.headers });
      }
      // Credentials go no further than their origin.
      if (next.url.origin !== at.url.origin || next.socketPath !== at.socketPath) headers = withoutCredentialHeaders(headers);
      at = next;
    }
  } finally {
    deadline.clear();
  }
}

/** Where a redirect goes: relative to the URL asked, http(s): as ws(s):, never from wss: to ws:. */
function redirected(from: Destination, redirect: Redirect, options: ClientOptions): Destination {
  const refused = (why: string) => new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `handshake refused: the server answered HTTP ${redirect.status} to ${redirect.location}${why}`, { status: redirect.status, headers: redirect.headers });
  if (!options.followRedirects) throw refused(' (followRedirects is off)');
  let url: URL;
  try {
    const location = new URL(redirect.location, from.url);
    location.hash = ''; // a fragment means nothing to a WebSocket
    url = parseUrl(location);
  } catch (cause) {
    throw refused(`, which is not a WebSocket URL (${(cause as Error).message})`);
  }
  // A server on the network may not send us to a socket on this machine.
  if (url.protocol.endsWith('+unix:')) throw refused(': a redirect to a unix socket is refused');
  if (from.url.protocol === 'wss:' && url.protocol !== 'wss:') throw refused(': a redirect from wss: to an unencrypted URL is refused');
  // On a unix socket, a redirect to the same origin (ws://localhost) stays on it.
  if (from.socketPath !== null && url.origin === from.url.origin) return { url, socketPath: from.socketPath, shown: withoutCredentials(url) };
  return destination(url, undefined);
}

function withoutCredentialHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !/^(authorization|cookie)$/i.test(name)));
}

/** One attempt: dial, then the handshake over what the dial gave. */
async function connectTo(attempt: Attempt, at: Destination, headers: Record<string, string>, retried = false): Promise<WebSocket | Redirect> {
  const { options, signal } = attempt;
  const secure = at.url.protocol === 'wss:';
  const host = at.url.hostname.replace(/^\[|\]$/g, '');
  const target: DialTarget = { host, port: Number(at.url.port) || (secure ? 443 : 80), socketPath: at.socketPath, secure };
  const proxy = chooseProxy(options.proxy, target);
  if (DEBUG) debugLog(`handshake ${loggedUrl(at.url)}`, `dial ${at.socketPath !== null ? `unix socket ${at.socketPath}` : proxy ? `through the proxy ${proxy.shown}` : 'direct'}`);
  let reached: SharedSession | NodeSocket;
  try {
    reached = await reach(attempt, target, proxy);
  } catch (cause) {
    if (DEBUG) debugLog(`handshake ${loggedUrl(at.url)}`, `connection failed: ${signal.aborted ? String((signal.reason as Error)?.message ?? signal.reason) : (cause as Error).message}`);
    if (signal.aborted) throw signal.reason;
    throw cause instanceof WebSocketError ? cause : new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: ${(cause as Error).message}`, { cause });
  }
  if (!(reached instanceof SharedSession)) return handshake(attempt, at, headers, reached);
  try {
    return await extendedConnect(attempt, at, headers, reached);
  } catch (error) {
    // A stream the server did not process (a GOAWAY raced it) is tried once more: the
    // connection that refused it is no longer shared, so the retry goes to a new one.
    if (!unprocessed.has(error as object) || retried) throw error;
    if (DEBUG) debugLog(`handshake ${loggedUrl(at.url)}`, 'the server refused the stream unprocessed: trying again');
    return connectTo(attempt, at, headers, true);
  }
}

/** Dials the server: a shared HTTP/2 connection when asked for and offered, else a socket for HTTP/1.1. */
async function reach(attempt: Attempt, target: DialTarget, proxy: Proxy | null): Promise<SharedSession | NodeSocket> {
  const { builtins: node, options, signal } = attempt;
  if (!options.http2 || !target.secure) return dial(node, target, proxy, options.tls, options.proxyTls, signal);
  const reached = await http2Session(attempt, target, proxy);
  if (reached) return reached;
  // An HTTP/2 server that did not enable extended CONNECT: HTTP/1.1, on a connection of its own.
  try {
    return await dial(node, target, proxy, { ...options.tls, ALPNProtocols: ['http/1.1'] }, options.proxyTls, signal);
  } catch (cause) {
    if (signal.aborted) throw cause;
    throw new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: the server speaks HTTP/2 without WebSockets (no SETTINGS_ENABLE_CONNECT_PROTOCOL), and HTTP/1.1 failed: ${(cause as Error).message}`, { cause });
  }
}

/**
 * The RFC 8441 opening handshake on a new stream of a shared HTTP/2 connection: extended
 * CONNECT, answered 2xx to accept (§5); a WebSocket, a redirect, or an error.
 */
function extendedConnect(attempt: Attempt, at: Destination, headers: Record<string, string>, shared: SharedSession): Promise<WebSocket | Redirect> {
  const { builtins: node, protocols, compression, signal } = attempt;
  const target = at.url;
  const login = credentials(target, 'the URL');
  const withLogin = login && !Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')
    ? { ...headers, authorization: `Basic ${base64(textEncoder.encode(login.join(':')))}` }
    : headers;
  const offer = compression ? formatDeflateOffer(compression) : '';
  const requestHeaders = extendedConnectHeaders(target, withLogin, protocols, offer);
  // As over HTTP/1.1, the URL's credentials are not shown in ws.request.
  const shownHeaders = withLogin === headers ? requestHeaders : extendedConnectHeaders(target, headers, protocols, offer);
  const requestInfo: RequestInfo = { method: 'CONNECT', url: requestHeaders[':path'] ?? '/', headers: shownHeaders, httpVersion: '2' };
  const logged = `handshake ${loggedUrl(target)}`;
  return new Promise((resolve, reject) => {
    let stream: NodeHttp2Stream;
    try {
      stream = shared.request(requestHeaders);
    } catch (cause) {
      return reject(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: ${(cause as Error).message}`, { cause }));
    }
    const cancel = () => cancelStream(stream, node.http2().constants.NGHTTP2_CANCEL);
    const outcome = oneOutcome(signal, reject, cancel);
    if (outcome.settled) return;
    stream.on('error', (cause: Error) => outcome.fail(streamFailure(stream, node, cause)));
    stream.once('close', () => outcome.fail(streamFailure(stream, node)));
    stream.once('response', (raw: NodeHeaders) => {
      if (!outcome.settle()) return;
      const status = Number(raw[':status']);
      const responseHeaders = lowerCaseHeaders(raw);
      delete responseHeaders[':status'];
      try {
        if (status < 200 || status > 299) {
          if (DEBUG) debugLog(logged, `← HTTP/2 ${status}: refused`);
          const answer = refusedHandshake(status, HTTP_REASONS[status] ?? '', responseHeaders);
          if (answer instanceof WebSocketError) throw answer;
          cancel();
          return resolve(answer);
        }
        const protocol = checkStreamResponse(status, responseHeaders, protocols);
        const answer = { status, headers: responseHeaders, httpVersion: '2' };
        resolve(clientWebSocket(attempt, at, new Http2StreamTransport(stream, node), requestInfo, answer, protocol, shared.session.socket?.remoteAddress));
      } catch (error) {
        if (DEBUG) debugLog(logged, `← HTTP/2 ${status} refused: ${(error as Error).message}`);
        cancel();
        reject(error);
      }
    });
    if (DEBUG) debugLog(logged, `→ HTTP/2 CONNECT ${target.pathname}${protocols.length > 0 ? `, protocols ${protocols.join(', ')}` : ''}`);
  });
}

/** Errors of streams the server did not process (RFC 9113 §8.7: REFUSED_STREAM, or past a GOAWAY): they may be tried again. */
const unprocessed = new WeakSet<object>();

/** Why a stream ended before its answer. */
function streamFailure(stream: NodeHttp2Stream, node: NodeModules, cause?: Error): WebSocketError {
  const code = stream.rstCode;
  const error = cause
    ? new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: ${cause.message}`, { cause })
    : new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: the server ended the stream${code ? ` (RST_STREAM code ${code})` : ''} before its answer`);
  if (code === node.http2().constants.NGHTTP2_REFUSED_STREAM) unprocessed.add(error);
  return error;
}

/** A handshake answered with something else than a WebSocket: a redirect to follow, or the error. */
function refusedHandshake(status: number, statusText: string, headers: Record<string, string>): Redirect | WebSocketError {
  const location = headers['location'];
  if (REDIRECTS.has(status) && location !== undefined) return { status, headers, location };
  return new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `handshake refused: the server answered HTTP ${status} ${statusText}`.trimEnd(), { status, headers });
}

/** The RFC 6455 opening handshake (§4.1) over a connected socket: a WebSocket, a redirect, or an error. */
function handshake(attempt: Attempt, at: Destination, headers: Record<string, string>, socket: NodeSocket): Promise<WebSocket | Redirect> {
  const { builtins: node, protocols, compression, signal } = attempt;
  const target = at.url;
  const key = base64(randomBytes(16));
  const requestHeaders: Record<string, string> = {
    // RFC 6455 §4.1, RFC 7230 §5.4: the port only when it is not the scheme's default (URL.host leaves that out).
    Host: target.host,
    ...headers,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
  };
  if (protocols.length > 0) requestHeaders['Sec-WebSocket-Protocol'] = protocols.join(', ');
  if (compression) requestHeaders['Sec-WebSocket-Extensions'] = formatDeflateOffer(compression);
  const path = target.pathname + target.search;
  const request = node.http.request({
    path,
    method: 'GET',
    headers: requestHeaders,
    createConnection: () => {
      // Dialled already; a tunnel's socket was paused after the proxy's answer: it reads
      // again once node:http listens (it does so a tick later).
      defer(() => socket.resume());
      return socket;
    },
    auth: credentials(target, 'the URL')?.join(':'),
  });
  const requestInfo: RequestInfo = {
    method: 'GET',
    url: path,
    headers: Object.fromEntries(Object.entries(requestHeaders).map(([name, value]) => [name.toLowerCase(), value])),
    httpVersion: '1.1',
  };
  const logged = `handshake ${loggedUrl(target)}`;
  return new Promise((resolve, reject) => {
    const outcome = oneOutcome(signal, reject, () => {
      request.destroy();
      socket.destroy();
    });
    if (outcome.settled) return;
    request.on('error', (cause: Error) => {
      if (DEBUG) debugLog(logged, `connection failed: ${cause.message}`);
      outcome.fail(new WebSocketError(CloseCode.ABNORMAL_CLOSURE, `connection failed: ${cause.message}`, { cause }));
    });
    request.on('response', (response: NodeIncomingMessage) => {
      const status = response.statusCode ?? 0;
      if (DEBUG) debugLog(logged, `← HTTP ${status}: refused`);
      response.resume();
      const answer = refusedHandshake(status, response.statusMessage ?? '', lowerCaseHeaders(response.headers));
      if (answer instanceof WebSocketError) return outcome.fail(answer);
      if (!outcome.settle()) return;
      request.destroy();
      socket.destroy();
      resolve(answer);
    });
    request.on('upgrade', (response: NodeIncomingMessage, upgraded: NodeSocket, head: Uint8Array) => {
      if (!outcome.settle()) return void upgraded.destroy();
      const responseHeaders = lowerCaseHeaders(response.headers);
      try {
        const protocol = checkServerResponse(responseHeaders, acceptKey(key, node.sha1Base64), protocols);
        const answer = { status: response.statusCode ?? 101, headers: responseHeaders, httpVersion: response.httpVersion };
        resolve(clientWebSocket(attempt, at, new SocketTransport(upgraded, head, node), requestInfo, answer, protocol, upgraded.remoteAddress));
      } catch (error) {
        if (DEBUG) debugLog(logged, `← 101 refused by the client: ${(error as Error).message}`);
        upgraded.destroy();
        reject(error);
      }
    });
    if (DEBUG) debugLog(logged, `→ GET ${target.pathname}${protocols.length > 0 ? `, protocols ${protocols.join(', ')}` : ''}`);
    request.end();
  });
}

/**
 * The client's end of an accepted handshake: checks the extensions the server agreed to
 * (RFC 6455 §9.1: one the client did not offer fails the connection, and throws), then the WebSocket.
 */
function clientWebSocket(attempt: Attempt, at: Destination, transport: Transport, request: RequestInfo, response: ResponseInfo, protocol: string, remoteAddress: string | undefined): WebSocket {
  const { builtins: node, compression, options } = attempt;
  const offered = response.headers['sec-websocket-extensions'];
  const agreed = checkDeflateResponse(offered, compression);
  const extensions = agreed ? (offered ?? '') : '';
  if (DEBUG) debugLog(`handshake ${loggedUrl(at.url)}`, `← HTTP/${response.httpVersion} ${response.status}, protocol ${JSON.stringify(protocol)}, extensions ${JSON.stringify(extensions)}`);
  const deflate = agreed && compression ? new ZlibCompression(node.zlib, agreed, true, compression) : null;
  const link = new ProtocolLink(transport, true, options, deflate);
  return new WebSocket(link, { url: at.shown, request, response, protocol, extensions, remoteAddress }, options);
}

/** A handshake's one outcome: the first `settle()` wins; `fail` also abandons the attempt; the signal's abort fails it. */
interface Outcome {
  readonly settled: boolean;
  /** True if this call settled it (false: settled already). */
  settle(): boolean;
  fail(error: unknown): void;
}

function oneOutcome(signal: AbortSignal, reject: (error: unknown) => void, abandon: () => void): Outcome {
  const onAbort = () => outcome.fail(signal.reason);
  const outcome = {
    settled: false,
    settle(): boolean {
      if (outcome.settled) return false;
      outcome.settled = true;
      signal.removeEventListener('abort', onAbort);
      return true;
    },
    fail(error: unknown): void {
      if (!outcome.settle()) return;
      abandon();
      reject(error);
    },
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return outcome;
}

/**
 * Connects, runs `handler` with the socket, closes it with 1000 when the handler returns and
 * resolves with the handler's value. If the handler throws, closes with 1008 and rejects with
 * that same error.
 *
 * @example
 * const reply = await open('ws://127.0.0.1:8080', async (ws) => {
 *   await ws.send('ping?')
 *   return ws.receive()
 * })
 */
async function open<T>(url: string | URL, handler: (ws: WebSocket) => T | Promise<T>, options: ClientOptions = {}): Promise<T> {
  const ws = await connect(url, options);
  return new Promise<T>((resolve, reject) => runHandler(ws, handler, CloseCode.POLICY_VIOLATION, resolve, reject));
}

/** Options of `pair`: those of a connection, for both ends. */
interface PairOptions extends ConnectionOptions {
  /** The subprotocol both ends report as negotiated; default ''. */
  protocol?: string | undefined;
  /** `ws.url` of the client (the server's is its path); default `ws://pair/`. */
  url?: string | URL | undefined;
}

/**
 * A client and a server WebSocket connected in memory: no sockets, no ports, but the real
 * protocol between them (client frames masked, every frame parsed, limits, keepalive, the
 * closing handshake, permessage-deflate when `compression` asks for it, which needs Node).
 * For unit tests of handlers; it works in a browser too.
 *
 * @example
 * const [client, server] = pair();
 * void echoHandler(server);
 * await client.send('hi'); // echoHandler's answer: await client.receive()
 */
function pair(options: PairOptions = {}): [client: WebSocket, server: WebSocket] {
  resolveOptions(options); // bad options throw before anything is made
  const settings = checkCompressionOptions(options.compression);
  if (settings && !isNode) throw new TypeError('compression in pair() needs Node.js (zlib)');
  const protocol = options.protocol ?? '';
  if (protocol !== '') normalizeProtocols(protocol);
  const target = parseUrl(options.url ?? 'ws://pair/');
  const path = target.pathname + target.search;
  // The negotiation a handshake would run (RFC 7692 §7.1), so both ends agree as they would over a socket.
  const accepted = settings ? acceptDeflateOffer(formatDeflateOffer(settings), settings) : null;
  const extensions = accepted?.response ?? '';
  const compression = (client: boolean): ZlibCompression | null => {
    if (!settings || !accepted) return null;
    const agreed = client ? checkDeflateResponse(extensions, settings) : accepted.agreed;
    return agreed ? new ZlibCompression(loadNode().zlib, agreed, client, settings) : null;
  };
  const clientEnd = new MemoryTransport();
  const serverEnd = new MemoryTransport();
  clientEnd.peer = serverEnd;
  serverEnd.peer = clientEnd;
  const request: RequestInfo = { method: 'GET', url: path, headers: {}, httpVersion: '' };
  const client = new WebSocket(new ProtocolLink(clientEnd, true, options, compression(true)), {
    url: withoutCredentials(target),
    request,
    response: { status: 101, headers: {}, httpVersion: '' },
    protocol,
    extensions,
  }, options);
  const server = new WebSocket(new ProtocolLink(serverEnd, false, options, compression(false)), { url: path, request, protocol, extensions }, options);
  return [client, server];
}

/** Options of `reconnect`: those of `connect`, and how to retry. */
interface ReconnectOptions extends ClientOptions {
  /** The first retry's delay (ms), before jitter; default 500. */
  delay?: number | undefined;
  /** The longest delay (ms), before jitter; default 30,000. */
  maxDelay?: number | undefined;
  /** Each retry in a row waits this many times longer; default 1.6. */
  factor?: number | undefined;
  /** A connection that lived this long (ms) starts the delays over; default 10,000. */
  resetAfter?: number | undefined;
  /** Retries in a row (without a connection that lived `resetAfter`) before the iteration ends with the last error; 0: no limit (the default). */
  maxRetries?: number | undefined;
  /** Whether an ending is retried: return true or false, or undefined for the default (see the README's table). */
  shouldReconnect?: ((error: unknown) => boolean | undefined) | undefined;
  /** Told before each wait: the attempt about to be made (1 for the first retry), the delay and what ended the last try. */
  onRetry?: ((retry: { attempt: number; delay: number; error: unknown }) => void) | undefined;
  /** Stops everything at once: a waiting next() rejects with the signal's reason, the current socket closes with 1000. */
  signal?: AbortSignal | undefined;
}

const RECONNECT_DEFAULTS = { delay: 500, maxDelay: 30_000, factor: 1.6, resetAfter: 10_000, maxRetries: 0 };

/** Close codes after which reconnecting is pointless, or harmful: the peer said the client is at fault. */
const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([1002, 1003, 1007, 1008, 1009, 1010]);

/**
 * The default of `shouldReconnect`. Retried: network errors and 1006; a normal close by the
 * peer (1000, 1001, 1005: a server restarting says 1001); 1011–1014; a refused handshake with
 * 5xx, 408 or 429. Final: protocol and policy errors (1002, 1003, 1007–1010), the
 * application's own codes (3000–4999: the application knows what they mean), other refusals
 * (4xx), and errors that are not WebSocketErrors (bad options, an aborted signal).
 */
function isRetriable(error: unknown): boolean {
  if (!(error instanceof WebSocketError)) return false;
  if (error.status !== undefined) return error.status >= 500 || error.status === 408 || error.status === 429;
  return error.code < 3000 && !FINAL_CLOSE_CODES.has(error.code);
}

/** A refused handshake's Retry-After (RFC 9110 §10.2.3: seconds, or an HTTP date), in ms; 0 if none. */
function retryAfter(error: unknown): number {
  const value = error instanceof WebSocketError ? error.headers?.['retry-after'] : undefined;
  if (!value) return 0;
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/**
 * A client that reconnects: an async iterable of connected WebSockets, a new one each time
 * the last has ended, after a jittered exponential backoff. Iterating a socket it yields ends
 * quietly on every ending it retries (so an inner `for await` just ends), and throws on one
 * that ends the reconnecting; `break` closes the current socket with 1000 and stops.
 *
 * @example
 * for await (const ws of reconnect('wss://example.com/feed', { protocols: ['v1'] })) {
 *   for await (const message of ws) render(message);
 * }
 */
function reconnect(url: string | URL, options: ReconnectOptions = {}): AsyncIterableIterator<WebSocket> {
  return new Reconnector(parseUrl(url), options);
}

class Reconnector implements AsyncIterableIterator<WebSocket> {
  readonly #url: URL;
  readonly #options: ReconnectOptions;
  readonly #settings: typeof RECONNECT_DEFAULTS;
  /** Aborted by return() or by the user's signal: stops a handshake or a wait in progress. */
  readonly #stop = new AbortController();
  readonly #connectOptions: ClientOptions;
  #current: WebSocket | null = null;
  #connectedAt = 0;
  /** Retries in a row (a connection that lives `resetAfter` starts over). */
  #streak = 0;
  /** The last next() call, which the next one waits for. */
  #previous: Promise<void> = RESOLVED;
  #done = false;

  constructor(url: URL, options: ReconnectOptions) {
    this.#url = url;
    this.#options = options;
    this.#settings = readNumbers(RECONNECT_DEFAULTS, options, { factor: 1 });
    // The user's signal ends everything through #stop, which also aborts a handshake in progress.
    if (options.signal?.aborted) this.#end();
    else options.signal?.addEventListener('abort', () => this.#end(), { once: true });
    this.#connectOptions = { ...options, signal: this.#stop.signal };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<WebSocket> {
    return this;
  }

  /** Calls made at once are served one after the other: each gets the connection after the previous call's. */
  next(): Promise<IteratorResult<WebSocket>> {
    const step = this.#previous.then(() => this.#step());
    this.#previous = step.then(ignoreValue, ignoreValue);
    return step;
  }

  async #step(): Promise<IteratorResult<WebSocket>> {
    if (this.#done) return { value: undefined, done: true };
    const error: unknown = this.#current ? await this.#ended(this.#current) : null;
    return this.#connect(error);
  }

  /** Connects, after a backoff when `error` says what ended the last try; throws an ending that is not retried. */
  async #connect(lastError: unknown): Promise<IteratorResult<WebSocket>> {
    let error = lastError;
    for (;;) {
      if (error !== null) {
        if (!this.#retries(error) || (this.#settings.maxRetries > 0 && this.#streak >= this.#settings.maxRetries)) {
          this.#done = true;
          throw error;
        }
        await this.#wait(error);
      }
      try {
        const ws = await connect(this.#url, this.#connectOptions);
        this.#current = ws;
        this.#connectedAt = Date.now();
        endQuietlyOn(ws, (ending) => this.#retries(ending));
        return { value: ws, done: false };
      } catch (caught) {
        error = caught;
      }
    }
  }

  /** Ends the iteration (a `break`): the current socket closes with 1000. */
  async return(): Promise<IteratorResult<WebSocket>> {
    this.#end();
    return { value: undefined, done: true };
  }

  /** Waits for the current socket's end (closing it if the caller left it open) and says what ended it. */
  async #ended(ws: WebSocket): Promise<unknown> {
    this.#current = null;
    if (!endOf(ws)) await ws.close(CloseCode.NORMAL_CLOSURE).catch(ignoreValue);
    else await ws.closed;
    if (Date.now() - this.#connectedAt >= this.#settings.resetAfter) this.#streak = 0;
    return endOf(ws) ?? new WebSocketError(ws.closeCode ?? CloseCode.ABNORMAL_CLOSURE, ws.closeReason ?? '');
  }

  #retries(error: unknown): boolean {
    if (this.#stop.signal.aborted) return false;
    return this.#options.shouldReconnect?.(error) ?? isRetriable(error);
  }

  /** The backoff of the n-th retry in a row: delay × factor^(n − 1), at most maxDelay, jittered to 50–100 %, and at least Retry-After. */
  async #wait(error: unknown): Promise<void> {
    const { delay, maxDelay, factor } = this.#settings;
    const attempt = ++this.#streak;
    const backoff = Math.min(maxDelay, delay * factor ** (attempt - 1));
    const wait = Math.max(backoff * (0.5 + Math.random() / 2), retryAfter(error));
    this.#options.onRetry?.({ attempt, delay: wait, error });
    const signal = this.#connectOptions.signal as AbortSignal;
    signal.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, timerDelay(wait));
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #end(): void {
    this.#done = true;
    this.#stop.abort(this.#options.signal?.reason ?? new DOMException('reconnect() was stopped', 'AbortError'));
    this.#current?.close(CloseCode.NORMAL_CLOSURE).catch(ignoreValue);
    this.#current = null;
  }
}

/**
 * Runs a connection's handler: when it returns, closes with 1000, then calls `returned` with
 * its value; when it throws, closes with `failCode`, then calls `threw` with the error.
 * Promise callbacks, not an async function: while a server's handler runs, a suspended async
 * function here would cost every idle connection close to a kilobyte.
 */
function runHandler<T>(
  ws: WebSocket,
  handler: (ws: WebSocket) => T | Promise<T>,
  failCode: number,
  returned: (value: T) => void,
  threw: (error: unknown, ws: WebSocket) => void,
): void {
  const failed = (error: unknown) => void ws.close(failCode).then(() => threw(error, ws));
  let result: T | Promise<T>;
  try {
    result = handler(ws);
  } catch (error) {
    return failed(error);
  }
  Promise.resolve(result).then((value) => void ws.close(CloseCode.NORMAL_CLOSURE).then(() => returned(value)), failed);
}

interface ServerControls {
  /** As given to listen(): an address, or `unix:/path/to.sock`. */
  readonly host: string;
  /** The port bound (0 on a unix socket). */
  readonly port: number;
  /** `ws://host:port` (or `wss://`); `ws+unix:/path/to.sock` on a unix socket. */
  readonly url: string;
  /** Stops accepting, closes every connection with 1001 and resolves when they are gone. */
  close(): Promise<void>;
}

/** `Symbol.asyncDispose` where the project's lib declares it (ES2025's disposable, or @types/node); `never` elsewhere. */
type AsyncDisposeSymbol = SymbolConstructor extends { readonly asyncDispose: infer S extends symbol } ? S : never;

/** A running WebSocket server from `listen`; `await using server = await listen(…)` closes it at the end of the scope. */
type Server = ServerControls & { readonly [K in AsyncDisposeSymbol]: () => Promise<void> };

/** The runtime's `Symbol.asyncDispose` (Node has it from 20 on). */
const ASYNC_DISPOSE: AsyncDisposeSymbol = ((Symbol as { asyncDispose?: symbol }).asyncDispose ?? Symbol.for('nodejs.asyncDispose')) as AsyncDisposeSymbol;

/** Connections of one server, so that closing the server can close them. */
interface ConnectionTracker {
  sockets: Set<WebSocket>;
  pending: Set<NodeSocket>;
  /** The server's HTTP/2 connections, with how many WebSockets each carries. */
  sessions: Map<NodeHttp2Session, number>;
  /** The server's TCP connections, whatever runs over them, from their first byte. */
  connections: Set<NodeSocket>;
  closing: boolean;
  /** Where a connection handler's failure goes: made once per server, not per connection. */
  handlerFailed(error: unknown, ws: WebSocket): void;
}

function trackConnections(options: ServerOptions): ConnectionTracker {
  const handlerFailed = (error: unknown, ws: WebSocket) => {
    // The connection's own end (the peer closed, or broke the protocol) is no handler failure.
    if (error !== endOf(ws)) reportError(options, error, ws);
  };
  return { sockets: new Set(), pending: new Set(), sessions: new Map(), connections: new Set(), closing: false, handlerFailed };
}

/**
 * Keeps `tracker.connections` to the server's open TCP connections, from their first byte (for
 * Server.close() to cut what is left). One 'close' listener serves every socket: a closure or
 * once() per socket would cost about 200 bytes of heap per idle connection.
 */
function trackSockets(httpServer: NodeHttpServer, tracker: ConnectionTracker): void {
  const untrack = function (this: NodeSocket) {
    tracker.connections.delete(this);
  };
  httpServer.on('connection', (socket: NodeSocket) => {
    tracker.connections.add(socket);
    socket.on('close', untrack);
  });
}

/**
 * Starts a WebSocket server. Each connection runs `handler`; when it returns, the socket is
 * closed with 1000; when it throws, the error goes to `onError` and the socket closes with
 * 1011. Port 0 picks a free port. Plain HTTP requests get 426 Upgrade Required.
 *
 * @example
 * const server = await listen('127.0.0.1', 8080, async (ws) => {
 *   for await (const message of ws) await ws.send(message)
 * })
 * console.log(server.url)
 */
async function listen(host: string, port: number, handler: (ws: WebSocket) => unknown, options: ServerOptions = {}): Promise<Server> {
  if (!isNode) throw new Error('listen() needs Node.js: a browser cannot accept connections');
  if (options.reusePort) checkReusePort();
  resolveOptions(options);
  checkCompressionOptions(options.compression);
  const node = loadNode();
  const handshakeTimeout = options.handshakeTimeout ?? DEFAULTS.handshakeTimeout;
  const serverOptions = {
    headersTimeout: handshakeTimeout,
    requestTimeout: handshakeTimeout,
    connectionsCheckingInterval: Math.min(handshakeTimeout || 30_000, 1_000),
    ...(options.maxHeaderSize !== undefined ? { maxHeaderSize: options.maxHeaderSize } : {}),
  };
  const answerPlainHttp: RequestListener = (request, response) => {
    const verdict = checkClientRequest(request.method ?? '', request.httpVersion, lowerCaseHeaders(request.headers));
    // A plain HTTP request; a valid handshake without Connection: upgrade never gets here.
    const refusal: Refusal = 'status' in verdict ? verdict : { status: 426, headers: { Upgrade: 'websocket' } };
    const { body, headers } = refusalContent(refusal);
    response.writeHead(refusal.status, request.httpVersion === '2.0' ? http2Headers(headers) : headers);
    response.end(body);
  };
  const tracker = trackConnections(options);
  if (options.http2 && !options.tls) throw new TypeError('http2 needs tls: HTTP/2 is chosen by ALPN in the TLS handshake (h2c is not served)');
  const httpServer = options.http2
    ? createHttp2Server(node, options, serverOptions, answerPlainHttp, handler, tracker)
    : options.tls
      ? node.https.createServer({ ...options.tls, ...serverOptions }, answerPlainHttp)
      : node.http.createServer(serverOptions, answerPlainHttp);
  httpServer.maxHeadersCount = (options.maxHeaders ?? DEFAULT_MAX_HEADERS) + 1; // one more, to see "too many"
  httpServer.on('upgrade', (request: NodeIncomingMessage, socket: NodeSocket, head: Uint8Array) => acceptUpgrade(node, request, socket, head, handler, options, tracker));
  const scheme = options.tls ? 'wss' : 'ws';
  let closing: Promise<void> | undefined;
  trackSockets(httpServer, tracker);
  const closeTimeout = options.closeTimeout ?? DEFAULTS.closeTimeout;
  const closeServer = () => (closing ??= shutdown(httpServer, tracker, closeTimeout));
  const controls = { close: closeServer, [ASYNC_DISPOSE]: closeServer };
  if (host.startsWith('unix:')) {
    const path = host.slice('unix:'.length);
    await listenOnSocketFile(node, httpServer, path);
    reportServerErrors(httpServer, options);
    // The path as a ws+unix: URL holds it: %, ?, # and : escaped (connect() decodes them).
    return { host, port: 0, url: `${scheme}+unix:${path.replace(/[%?#:]/g, encodeURIComponent)}`, ...controls };
  }
  await bindServer(httpServer, { port, host, ...(options.reusePort ? { reusePort: true } : {}) });
  reportServerErrors(httpServer, options);
  const address = httpServer.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return { host, port: boundPort, url: `${scheme}://${urlHost}:${boundPort}`, ...controls };
}

function bindServer(httpServer: NodeHttpServer, where: { port: number; host: string; reusePort?: boolean } | { path: string }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(where, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
}

/** Once listening, the server's own errors (an accept that fails: EMFILE, ENFILE, …) go to onError, never crash the process. */
function reportServerErrors(httpServer: NodeHttpServer, options: ServerOptions): void {
  httpServer.on('error', (error: unknown) => reportError(options, error));
}

/** Unix socket paths this process listens on, or is binding: a second listen() on one is EADDRINUSE. */
const socketPathsInUse = new Set<string>();

/**
 * Listens on a unix domain socket. A socket file that refuses connections (left by a process
 * that died) is replaced; one where a server answers (or that we may not connect to) is
 * EADDRINUSE, and a file that is not a socket is never removed. Node removes the file on
 * close(). An abstract socket (a path starting with NUL, Linux) has no file.
 */
async function listenOnSocketFile(node: NodeModules, httpServer: NodeHttpServer, path: string): Promise<void> {
  checkSocketPath(path);
  if (socketPathsInUse.has(path)) throw Object.assign(new Error(`listen EADDRINUSE: this process already listens on ${path}`), { code: 'EADDRINUSE' });
  socketPathsInUse.add(path);
  httpServer.once('close', () => socketPathsInUse.delete(path));
  try {
    await bindOrReplaceStale(node, httpServer, path);
  } catch (error) {
    socketPathsInUse.delete(path);
    throw error;
  }
}

async function bindOrReplaceStale(node: NodeModules, httpServer: NodeHttpServer, path: string): Promise<void> {
  try {
    return await bindServer(httpServer, { path });
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'EADDRINUSE' || path.startsWith('\0')) throw error;
    if (!node.fs.lstatSync(path, { throwIfNoEntry: false })?.isSocket()) throw new Error(`cannot listen on ${path}: it exists and is not a socket`, { cause: error });
    const refused = await connected(node.net.connect({ path }), 'connect', new AbortController().signal).then(
      (probe) => (probe.destroy(), false),
      (probeError: unknown) => (probeError as { code?: unknown }).code === 'ECONNREFUSED',
    );
    if (!refused) throw error;
    node.fs.unlinkSync(path);
  }
  await bindServer(httpServer, { path });
}

/** A unix socket path must fit in sockaddr_un (108 bytes on Linux, 104 elsewhere, with its NUL): Node would cut it short. */
function checkSocketPath(path: string): void {
  const limit = nodeProcess?.platform === 'linux' ? 107 : 103;
  if (!path) throw new TypeError('a unix socket path may not be empty');
  if (utf8Length(path) > limit) throw new TypeError(`a unix socket path may be at most ${limit} bytes here; ${JSON.stringify(path.slice(0, 40))}… is ${utf8Length(path)}`);
}

/** SO_REUSEPORT, as Node offers it (net.Server#listen's reusePort): never a silent fallback to an ordinary bind. */
function checkReusePort(): void {
  const version = nodeProcess?.versions.node ?? '';
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (!(major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12))) {
    throw new Error(`reusePort needs Node.js 22.12 or 23.1 and newer; this is Node.js ${version}`);
  }
  if (nodeProcess?.versions.bun) throw new Error('reusePort is not available on Bun: its HTTP server ignores the option');
  const platform = nodeProcess?.platform ?? '';
  if (!REUSE_PORT_PLATFORMS.has(platform)) throw new Error(`reusePort is not available on ${platform}: Node offers it on ${[...REUSE_PORT_PLATFORMS].join(', ')}`);
}

const REUSE_PORT_PLATFORMS: ReadonlySet<string> = new Set(['linux', 'freebsd', 'dragonfly', 'sunos', 'aix']);

async function shutdown(httpServer: NodeHttpServer, tracker: ConnectionTracker, closeTimeout: number): Promise<void> {
  tracker.closing = true;
  const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()));
  if (httpServer.closeAllConnections) httpServer.closeAllConnections();
  else httpServer.closeIdleConnections?.();
  for (const socket of tracker.pending) socket.destroy();
  await Promise.all([...tracker.sockets].map((ws) => ws.close(CloseCode.GOING_AWAY).catch(() => {})));
  // Every WebSocket is gone: HTTP/2 connections get GOAWAY, and end after their last request.
  for (const session of tracker.sessions.keys()) session.close();
  // What is left after the close timeout is cut: a TLS handshake that never ends, an
  // HTTP/1.1 connection that sent nothing, an HTTP/2 peer that does not go after GOAWAY.
  if (closeTimeout > 0) {
    let timer: Timer | undefined;
    const late = await Promise.race([stopped.then(() => false), new Promise<boolean>((resolve) => (timer = startTimer(closeTimeout, () => resolve(true))))]);
    clearTimeout(timer);
    if (late) for (const socket of tracker.connections) socket.destroy();
  }
  await stopped;
}

/** Most streams at once on one of the server's HTTP/2 connections. */
const DEFAULT_MAX_STREAMS = 1_000;

/**
 * An HTTP/2 server with HTTP/1.1 on the same port (ALPN chooses), extended CONNECT enabled
 * (RFC 8441 §3): only a server that serves WebSockets advertises it, as browsers take it as a
 * promise. The compat API hands every CONNECT to its 'connect' event.
 */
function createHttp2Server(node: NodeModules, options: ServerOptions, http1Options: object, answerPlainHttp: RequestListener, handler: (ws: WebSocket) => unknown, tracker: ConnectionTracker): NodeHttpServer {
  const { maxConcurrentStreams } = readNumbers({ maxConcurrentStreams: DEFAULT_MAX_STREAMS }, options, { maxConcurrentStreams: 1 });
  // The request limits of HTTP/1.1 (node:http's 16 KiB): a larger header list is reset by
  // nghttp2 (ENHANCE_YOUR_CALM); headers past maxHeaders get our 431 (pseudo-headers, and
  // one more to see "too many", are room on top).
  const settings = { enableConnectProtocol: true, maxConcurrentStreams, maxHeaderListSize: options.maxHeaderSize ?? 16 * KiB, initialWindowSize: HTTP2_STREAM_WINDOW };
  const maxHeaderListPairs = (options.maxHeaders ?? DEFAULT_MAX_HEADERS) + 8;
  const server = node.http2().createSecureServer({
    ...options.tls, allowHTTP1: true, noDelay: true, settings, maxHeaderListPairs, maxSessionMemory: HTTP2_SESSION_MEMORY,
  }, answerPlainHttp);
  // node:http2 sets its HTTP/1.1 timeouts itself: ours replace them.
  Object.assign(server, http1Options);
  server.on('connect', (request: { readonly headers: NodeHeaders }, response: { readonly stream: NodeHttp2Stream }) =>
    acceptStream(node, response.stream, request.headers, handler, options, tracker));
  server.on('session', (session: NodeHttp2Session) => watchSession(session, options, tracker));
  return server;
}

/** Tracks a connection of the HTTP/2 server; one that carries no WebSocket for the handshake timeout is closed. */
function watchSession(session: NodeHttp2Session, options: ServerOptions, tracker: ConnectionTracker): void {
  tracker.sessions.set(session, 0);
  session.on('error', ignoreError); // its streams report to their WebSockets
  session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW);
  session.once('close', () => tracker.sessions.delete(session));
  const timeout = options.handshakeTimeout ?? DEFAULTS.handshakeTimeout;
  if (timeout > 0) {
    // A callback given to setTimeout() is called once only; 'timeout' comes each time.
    session.setTimeout(timeout);
    session.on('timeout', () => {
      if (!tracker.sessions.get(session)) session.close();
    });
  }
}

/**
 * Completes a WebSocket handshake on a request that a `node:http` or `node:https` server
 * received in its 'upgrade' event, then runs `handler` as `listen` does. A bad handshake gets
 * an HTTP 4xx answer and the socket is closed.
 *
 * @example
 * httpServer.on('upgrade', (request, socket, head) => {
 *   if (isUpgrade(request)) upgrade(request, socket, head, async (ws) => { for await (const m of ws) await ws.send(m) })
 * })
 */
function upgrade(
  request: UpgradeRequest,
  socket: UpgradeSocket,
  head: Uint8Array,
  handler: (ws: WebSocket) => unknown,
  options: ServerOptions = {},
): void {
  resolveOptions(options);
  checkCompressionOptions(options.compression);
  const tracker = trackConnections(options);
  void acceptUpgrade(loadNode(), request, socket as NodeSocket, head, handler, options, tracker);
}

/** True if a `node:http` request asks for a WebSocket upgrade, or a `node:http2` one's headers are an extended CONNECT for one (RFC 8441). */
function isUpgrade(request: { readonly headers: NodeHeaders }): boolean {
  const { headers } = request;
  if (headers[':method'] === 'CONNECT') return String(headers[':protocol'] ?? '').toLowerCase() === 'websocket';
  const upgradeHeader = headers['upgrade'];
  return hasToken(Array.isArray(upgradeHeader) ? upgradeHeader.join(',') : upgradeHeader, 'websocket');
}

/**
 * Completes a WebSocket handshake over HTTP/2 (RFC 8441) on a stream that a `node:http2`
 * server received, then runs `handler` as `listen` does; a bad request is answered on that
 * stream alone. The server must enable extended CONNECT (`settings: { enableConnectProtocol:
 * true }`). For the compat API, pass `response.stream` and `request.headers` from its
 * 'connect' event.
 *
 * @example
 * const server = http2.createSecureServer({ key, cert, allowHTTP1: true, settings: { enableConnectProtocol: true } })
 * server.on('stream', (stream, headers) => {
 *   if (isUpgrade({ headers })) upgradeStream(stream, headers, async (ws) => { for await (const m of ws) await ws.send(m) })
 * })
 */
function upgradeStream(stream: UpgradeStream, headers: NodeHeaders, handler: (ws: WebSocket) => unknown, options: ServerOptions = {}): void {
  resolveOptions(options);
  checkCompressionOptions(options.compression);
  void acceptStream(loadNode(), stream as NodeHttp2Stream, headers, handler, options, trackConnections(options));
}

function reportError(options: ServerOptions, error: unknown, ws?: WebSocket): void {
  try {
    if (options.onError) options.onError(error, ws);
    else console.error(`websockets.ts: ${ws ? 'connection handler' : 'handshake hook'} failed:`, error);
  } catch {
    // an onError that throws must not take the server down either
  }
}

/** Answers a handshake with an HTTP refusal and closes the socket. */
function refuse(socket: NodeSocket, refusal: Refusal): void {
  if (DEBUG) debugLog(`handshake from ${socket.remoteAddress ?? '?'}`, `→ HTTP ${refusal.status}: refused`);
  if (socket.destroyed) return;
  socket.end(formatRefusal(refusal));
  startTimer(1_000, () => socket.destroy());
}

function destroySocket(this: NodeSocket): void {
  this.destroy();
}

async function acceptUpgrade(
  node: NodeModules,
  request: UpgradeRequest,
  socket: NodeSocket,
  head: Uint8Array,
  handler: (ws: WebSocket) => unknown,
  options: ServerOptions,
  tracker: ConnectionTracker,
): Promise<void> {
  socket.on('error', destroySocket);
  if (tracker.closing) return refuse(socket, { status: 503, body: 'the server is shutting down' });
  const headers = lowerCaseHeaders(request.headers);
  const requestInfo: RequestInfo = { method: request.method ?? '', url: request.url ?? '/', headers, httpVersion: request.httpVersion };
  // node:http drops headers past its own count limit silently; ours is below it.
  if (request.rawHeaders.length / 2 > (options.maxHeaders ?? DEFAULT_MAX_HEADERS)) return refuse(socket, { status: 431, body: 'too many headers' });
  const hello = checkClientRequest(requestInfo.method, request.httpVersion, headers);
  if ('status' in hello) return refuse(socket, hello);

  const protocol = await negotiate(requestInfo, hello.protocols, socket, options, tracker);
  if (typeof protocol !== 'string') return refuse(socket, protocol);
  if (socket.destroyed) return;
  const { extensions, compression } = acceptCompression(node, headers, options);
  if (DEBUG) debugLog(`handshake from ${socket.remoteAddress ?? '?'}`, `→ 101 for ${requestInfo.url.split('?')[0]}, protocol ${JSON.stringify(protocol)}, extensions ${JSON.stringify(extensions)}`);
  socket.write(formatAcceptance(acceptKey(hello.key, node.sha1Base64), protocol, extensions));
  const details = { url: requestInfo.url, request: requestInfo, protocol, extensions, remoteAddress: socket.remoteAddress };
  startConnection(new SocketTransport(socket, head, node), details, compression, handler, options, tracker);
  socket.off('error', destroySocket); // the transport listens for errors now
}

/**
 * Completes an RFC 8441 handshake (extended CONNECT) on a stream of an HTTP/2 server, then
 * runs the handler; a bad request is answered on its stream only.
 */
async function acceptStream(
  node: NodeModules,
  stream: NodeHttp2Stream,
  rawHeaders: NodeHeaders,
  handler: (ws: WebSocket) => unknown,
  options: ServerOptions,
  tracker: ConnectionTracker,
): Promise<void> {
  stream.on('error', ignoreError); // a reset before the answer just ends the stream
  const remoteAddress = stream.session?.socket?.remoteAddress;
  if (tracker.closing) return refuseStream(stream, { status: 503, body: 'the server is shutting down' }, remoteAddress);
  const headers = lowerCaseHeaders(rawHeaders);
  const count = Object.keys(headers).filter((name) => !name.startsWith(':')).length; // pseudo-headers do not count
  if (count > (options.maxHeaders ?? DEFAULT_MAX_HEADERS)) return refuseStream(stream, { status: 431, body: 'too many headers' }, remoteAddress);
  const hello = checkExtendedConnect(headers);
  if ('status' in hello) return refuseStream(stream, hello, remoteAddress);
  if (stream.endAfterHeaders) return refuseStream(stream, { status: 400, body: 'an extended CONNECT that ends its stream at once cannot carry a WebSocket' }, remoteAddress);
  headers['host'] ??= headers[':authority'] as string;
  const requestInfo: RequestInfo = { method: 'CONNECT', url: headers[':path'] as string, headers, httpVersion: '2' };
  const protocol = await negotiate(requestInfo, hello.protocols, stream, options, tracker);
  if (typeof protocol !== 'string') return refuseStream(stream, protocol, remoteAddress);
  if (stream.closed || stream.destroyed) return;
  const { extensions, compression } = acceptCompression(node, headers, options);
  if (DEBUG) debugLog(`handshake from ${remoteAddress ?? '?'}`, `→ HTTP/2 200 for ${requestInfo.url.split('?')[0]}, protocol ${JSON.stringify(protocol)}, extensions ${JSON.stringify(extensions)}`);
  stream.respond({ ':status': 200, ...(protocol ? { 'sec-websocket-protocol': protocol } : {}), ...(extensions ? { 'sec-websocket-extensions': extensions } : {}) });
  countStream(stream, tracker);
  const details = { url: requestInfo.url, request: requestInfo, protocol, extensions, remoteAddress };
  startConnection(new Http2StreamTransport(stream, node), details, compression, handler, options, tracker);
  stream.off('error', ignoreError);
}

/** Counts a WebSocket stream on its connection while it is open (see watchSession). */
function countStream(stream: NodeHttp2Stream, tracker: ConnectionTracker): void {
  const session = stream.session;
  const count = session && tracker.sessions.get(session);
  if (!session || count === undefined) return;
  tracker.sessions.set(session, count + 1);
  stream.once('close', () => {
    const now = tracker.sessions.get(session);
    if (now !== undefined) tracker.sessions.set(session, now - 1);
  });
}

/** Runs `verify` and chooses the subprotocol: the protocol ('' for none), or the refusal. */
async function negotiate(request: RequestInfo, offered: string[], pending: NodeSocket, options: ServerOptions, tracker: ConnectionTracker): Promise<string | Refusal> {
  tracker.pending.add(pending);
  try {
    const verdict = options.verify ? await verifyWithTimeout(options.verify, options, request) : true; // no await without a hook
    if (verdict !== true) return verdict === false ? { status: 403 } : verdict;
    return chooseProtocol(offered, request, options);
  } catch (error) {
    reportError(options, error);
    return { status: 500 };
  } finally {
    tracker.pending.delete(pending);
  }
}

/** permessage-deflate, if the server has it on and the client offered it: the answer's header and the compressor. */
function acceptCompression(node: NodeModules, headers: Record<string, string>, options: ServerOptions): { extensions: string; compression: ZlibCompression | null } {
  const settings = checkCompressionOptions(options.compression);
  const deflate = settings ? acceptDeflateOffer(headers['sec-websocket-extensions'], settings) : null;
  const compression = deflate && settings ? new ZlibCompression(node.zlib, deflate.agreed, false, settings) : null;
  return { extensions: deflate?.response ?? '', compression };
}

/** The handshake is answered: the server's WebSocket, tracked, and its handler started. */
function startConnection(transport: Transport, details: ConnectionDetails, compression: ZlibCompression | null, handler: (ws: WebSocket) => unknown, options: ServerOptions, tracker: ConnectionTracker): void {
  const ws = new WebSocket(new ProtocolLink(transport, false, options, compression), details, options);
  track(ws, tracker.sockets);
  // Not awaited: the handshake's frame (the HTTP request) is freed at once. The handler's
  // errors go to onError, never further.
  runHandler(ws, handler, CloseCode.INTERNAL_ERROR, ignoreValue, tracker.handlerFailed);
}

/** Answers an extended CONNECT with an HTTP refusal on its stream; the connection and its other streams go on. */
function refuseStream(stream: NodeHttp2Stream, refusal: Refusal, remoteAddress: string | undefined): void {
  if (DEBUG) debugLog(`handshake from ${remoteAddress ?? '?'}`, `→ HTTP/2 ${refusal.status}: refused`);
  if (stream.closed || stream.destroyed) return;
  const { body, headers } = refusalContent(refusal);
  stream.resume(); // what the client sent is discarded, so the stream can close
  stream.respond({ ':status': refusal.status, ...http2Headers(headers) });
  stream.end(body);
}

/** Headers for an HTTP/2 answer: names in lower case, without those of HTTP/1.1 connections. */
function http2Headers(headers: Record<string, string>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!HTTP1_ONLY_HEADERS.has(lower)) kept[lower] = value;
  }
  return kept;
}

/** Runs the server's `verify` hook, bounded by the handshake timeout. */
async function verifyWithTimeout(verify: NonNullable<ServerOptions['verify']>, options: ServerOptions, request: RequestInfo): Promise<boolean | Refusal> {
  const timeout = options.handshakeTimeout ?? DEFAULTS.handshakeTimeout;
  const verdict = Promise.resolve(verify(request));
  if (timeout <= 0) return verdict;
  let timer: Timer | undefined;
  const expired = new Promise<Refusal>((resolve) => (timer = startTimer(timeout, () => resolve({ status: 408, body: 'handshake timed out' }))));
  try {
    return await Promise.race([verdict, expired]);
  } finally {
    clearTimeout(timer);
  }
}

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 7. Browser facade (wrap)
// ═══════════════════════════════════════════════════════════════════════════════════════════

/** The part of a WHATWG `WebSocket` (a browser's, Deno's, Bun's, Node 22's) that `wrap` uses. */
interface NativeWebSocket {
  readonly url: string;
  readonly protocol: string;
  readonly extensions: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType: string;
  /** Views are passed as their own ArrayBuffer (see nativePayload): DOM typings disagree on shared-memory views. */
  send(data: string | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: NativeEvent) => void): void;
}

/** What the facade reads of `open`, `message`, `close` and `error` events. */
interface NativeEvent {
  readonly data?: unknown;
  readonly code?: number;
  readonly reason?: string;
}

const NativeState = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;
/** How often `send()` looks at `bufferedAmount`: the WHATWG API has no drain event. */
const BUFFER_POLL_MS = 10;

/**
 * The facade's link: messages through a native WebSocket. The native object does the
 * protocol; this maps its events onto the same receive queue and errors as on Node.
 */
class NativeLink implements Link {
  readonly #native: NativeWebSocket;
  readonly #highWaterMark: number;
  readonly #closeTimeout: number;
  /** close() was called: new sends are refused; the close waits for the sends before it. */
  #closing = false;
  readonly #sequencer = new SendSequencer();
  readonly #opened: Promise<void>;
  #resolveOpened!: () => void;
  #events!: LinkEvents;
  /** Set once the native socket has closed. */
  #error: WebSocketError | null = null;
  /** Ends a send(asyncIterable) still waiting for its iterable once the socket has closed. */
  readonly #closedEnd = new StepAbort();
  #messagesIn = 0;
  #messagesOut = 0;
  #bytesIn = 0;
  #bytesOut = 0;

  get stats(): ConnectionStats {
    return { messagesIn: this.#messagesIn, messagesOut: this.#messagesOut, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut, latency: undefined };
  }

  get accepting(): boolean {
    return !this.#error && !this.#closing;
  }

  constructor(native: NativeWebSocket, options: ConnectionOptions) {
    this.#native = native;
    ({ highWaterMark: this.#highWaterMark, closeTimeout: this.#closeTimeout } = resolveOptions(options));
    native.binaryType = 'arraybuffer';
    this.#opened = new Promise((resolve) => (this.#resolveOpened = resolve));
    if (native.readyState === NativeState.OPEN) this.#resolveOpened();
    else native.addEventListener('open', () => this.#resolveOpened());
  }

  /** Read live: a socket wrapped while connecting learns them when it opens. */
  get protocol(): string {
    return this.#native.protocol;
  }

  get extensions(): string {
    return this.#native.extensions;
  }

  start(events: LinkEvents): void {
    this.#events = events;
    const native = this.#native;
    native.addEventListener('message', ({ data }) => {
      const message = typeof data === 'string' ? data : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data as ArrayBuffer);
      this.#messagesIn++;
      this.#bytesIn += messageBytes(message);
      events.message(message);
    });
    native.addEventListener('close', ({ code, reason }) => this.#onClose(code, reason));
    // Node 22's WebSocket reports a failed connection with 'error' alone: no 'close', and
    // readyState stays CONNECTING. An error before the socket opened is that failure.
    native.addEventListener('error', () => defer(() => {
      const state = native.readyState;
      if (state === NativeState.CONNECTING || state === NativeState.CLOSED) this.#onClose(CloseCode.ABNORMAL_CLOSURE, '');
    }));
    if (native.readyState === NativeState.CLOSED) this.#onClose(CloseCode.ABNORMAL_CLOSURE, '');
  }

  #onClose(code: number | undefined, reason = ''): void {
    if (this.#error) return;
    // A code outside the RFC's range (Deno reports 0 for an abnormal end) means no close frame came.
    const info: CloseInfo = code !== undefined && code >= 1000 && code <= 4999
      ? { code, reason }
      : { code: CloseCode.ABNORMAL_CLOSURE, reason: '' };
    this.#error = new WebSocketError(info.code, info.reason);
    this.#closedEnd.abort(this.#error);
    this.#resolveOpened(); // a send waiting for 'open' now fails
    this.#events.ended(this.#error, info);
    this.#events.closed(info);
  }

  get bufferedAmount(): number {
    return this.#native.bufferedAmount;
  }

  /** A plain WebSocket cannot stop reading (its receive queue is unbounded); one over a WebSocketStream can. */
  pause(): void {
    if (this.#native instanceof StreamSocket) this.#native.pause();
  }

  resume(): void {
    if (this.#native instanceof StreamSocket) this.#native.resume();
  }

  /** Never waits: a native WebSocket hands over whole messages. */
  proceed(): void {}

  /**
   * A browser cannot send fragments: an iterable is joined into one message. Resolves when
   * `bufferedAmount` is at or below the high-water mark, polled every few milliseconds.
   */
  send(message: Outgoing): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closing) return Promise.reject(new WebSocketError(CloseCode.NORMAL_CLOSURE, 'the connection is closing'));
    return this.#sequencer.enqueue(async () => {
      const payload = isAsyncIterable(message) ? joinChunks(await this.#collect(message)) : isChunk(message) ? message : joinChunks(message);
      await this.#opened;
      if (this.#error) throw this.#error;
      if (this.#native.readyState !== NativeState.OPEN) throw new WebSocketError(CloseCode.NORMAL_CLOSURE, 'the connection is closing');
      const sent = nativePayload(payload);
      this.#native.send(sent);
      this.#messagesOut++;
      this.#bytesOut += messageBytes(sent);
      while (!this.#error && this.#native.bufferedAmount > this.#highWaterMark) await new Promise((resolve) => setTimeout(resolve, BUFFER_POLL_MS));
    });
  }

  /** The chunks of an async iterable, to be joined into one message (a browser cannot send fragments). */
  async #collect(chunks: AsyncIterable<Chunk>): Promise<Chunk[]> {
    const collected: Chunk[] = [];
    await forEachChunk(chunks, this.#closedEnd, (chunk) => collected.push(chunk));
    return collected;
  }

  ping(): Promise<number> {
    return Promise.reject(new Error('ping() is not available in a browser: its WebSocket API cannot send pings (the browser answers the server\'s pings itself)'));
  }

  pong(): Promise<void> {
    return Promise.reject(new Error('pong() is not available in a browser: its WebSocket API cannot send pongs'));
  }

  /**
   * Messages sent before close() go out first: the native close waits for them (as the Node
   * side does), bounded by the close timeout. A browser may only send 1000 and 3000–4999;
   * other codes (like `open`'s 1008) go out as 1000.
   */
  close(code: number, reason: string): void {
    if (this.#error || this.#closing) return;
    this.#closing = true;
    const closeNative = () => {
      if (this.#error || this.#native.readyState >= NativeState.CLOSING) return;
      this.#native.close(code === CloseCode.NORMAL_CLOSURE || (code >= 3000 && code <= 4999) ? code : CloseCode.NORMAL_CLOSURE, reason);
    };
    if (!this.#sequencer.busy) return closeNative();
    const timer = this.#closeTimeout > 0 ? startTimer(this.#closeTimeout, closeNative) : null;
    this.#sequencer.enqueue(async () => closeNative()).finally(() => timer && clearTimeout(timer)).catch(() => {});
  }
}

/** The part of a WHATWG `WebSocketStream` (Chromium's) the facade uses. */
interface NativeWebSocketStream {
  readonly url: string;
  readonly opened: Promise<{
    readonly readable: ReadableStream<unknown>;
    readonly writable: WritableStream<string | ArrayBuffer>;
    readonly protocol: string;
    readonly extensions: string;
  }>;
  readonly closed: Promise<{ readonly closeCode?: number; readonly reason?: string }>;
  close(info?: { closeCode?: number; reason?: string }): void;
}

type NativeListener = (event: NativeEvent) => void;

/**
 * A `WebSocketStream` behind the `WebSocket` interface the facade's link speaks, with the one
 * thing a plain WebSocket lacks: it stops reading (pause) while the receive queue is full, so
 * the browser stops reading the socket and TCP slows the server down. `bufferedAmount` counts
 * the bytes of writes not yet done.
 */
class StreamSocket implements NativeWebSocket {
  readonly url: string;
  protocol = '';
  extensions = '';
  readyState: number = NativeState.CONNECTING;
  bufferedAmount = 0;
  binaryType = 'arraybuffer';
  readonly #stream: NativeWebSocketStream;
  readonly #listeners = new Map<string, NativeListener[]>();
  #writer: WritableStreamDefaultWriter<string | ArrayBuffer> | null = null;
  #reader: ReadableStreamDefaultReader<unknown> | null = null;
  #paused = false;
  #reading = false;

  constructor(stream: NativeWebSocketStream) {
    this.#stream = stream;
    this.url = stream.url;
    stream.opened.then(({ readable, writable, protocol, extensions }) => {
      if (this.readyState !== NativeState.CONNECTING) return;
      this.protocol = protocol;
      this.extensions = extensions;
      this.readyState = NativeState.OPEN;
      this.#writer = writable.getWriter();
      this.#reader = readable.getReader();
      this.#emit('open', {});
      void this.#read();
    }, () => this.#emit('error', {}));
    // An unclean end rejects `closed`: no close frame came (1006).
    stream.closed.then(({ closeCode, reason }) => this.#onClosed(closeCode, reason), () => this.#onClosed(CloseCode.ABNORMAL_CLOSURE, ''));
  }

  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: NativeListener): void {
    const listeners = this.#listeners.get(type);
    if (listeners) listeners.push(listener);
    else this.#listeners.set(type, [listener]);
  }

  send(data: string | ArrayBuffer): void {
    const writer = this.#writer;
    if (!writer) return;
    const bytes = messageBytes(data);
    this.bufferedAmount += bytes;
    writer.write(data).then(() => (this.bufferedAmount -= bytes), () => {}); // a failed write ends the stream: `closed` says how
  }

  close(code?: number, reason?: string): void {
    if (this.readyState >= NativeState.CLOSING) return;
    this.readyState = NativeState.CLOSING;
    this.#stream.close({ ...(code === undefined ? {} : { closeCode: code }), ...(reason === undefined ? {} : { reason }) });
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    if (!this.#reading) void this.#read();
  }

  /** Reads messages one at a time while not paused: an unread stream is the browser's backpressure. */
  async #read(): Promise<void> {
    const reader = this.#reader;
    if (!reader) return;
    this.#reading = true;
    try {
      while (!this.#paused) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#emit('message', { data: value });
      }
    } catch {
      // the stream errored: `closed` reports the end
    } finally {
      this.#reading = false;
    }
  }

  #onClosed(code: number | undefined, reason: string | undefined): void {
    if (this.readyState === NativeState.CLOSED) return;
    this.readyState = NativeState.CLOSED;
    this.#emit('close', { code: code ?? CloseCode.ABNORMAL_CLOSURE, reason: reason ?? '' });
  }

  #emit(type: string, event: NativeEvent): void {
    for (const listener of this.#listeners.get(type) ?? []) listener(event);
  }
}

/** The bytes of a message: a string's in UTF-8. */
function messageBytes(message: string | ArrayBuffer | Uint8Array): number {
  return typeof message === 'string' ? utf8Length(message) : message.byteLength;
}

/** A message as a native send() is typed to take it: a string, or its bytes as an ArrayBuffer (copied only if they are a part of a larger one). */
function nativePayload(message: Chunk): string | ArrayBuffer {
  if (typeof message === 'string' || message instanceof ArrayBuffer) return message;
  const bytes = toBytes(message);
  if (bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer;
  const copy = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(copy).set(bytes);
  return copy;
}


/** One message from the chunks of a would-be fragmented message: one string, or one byte array. */
function joinChunks(chunks: Iterable<Chunk>): string | Uint8Array {
  const parts = readFragments(chunks);
  if (parts[0]![1] === Opcode.TEXT) return parts.map(([bytes]) => utf8Decoder.decode(bytes)).join('');
  return concatBytes(parts.map(([bytes]) => bytes));
}

/**
 * Wraps a WHATWG WebSocket — a browser's, or the global one of Deno, Bun and Node 22+ — in
 * this library's API: `receive`, `send`, iteration and `close` work as on Node; BINARY
 * arrives as `Uint8Array`. What the native API cannot do (`ping`, `pong`, real fragments)
 * is said by a clear error or done another way (iterables are joined into one message).
 *
 * @example
 * const ws = wrap(new globalThis.WebSocket('wss://example.com'))
 * await ws.send('hello')
 */
function wrap(native: NativeWebSocket, options: ConnectionOptions = {}): WebSocket {
  const link = new NativeLink(native, options);
  return new WebSocket(link, { url: native.url, request: { method: 'GET', url: native.url, headers: {}, httpVersion: '' }, protocol: '', extensions: '' }, options);
}

/** `connect` where there is no Node: the runtime's own WebSocket, through `wrap`. */
function connectNative(target: URL, protocols: string[], options: ClientOptions): Promise<WebSocket> {
  if (options.headers) return Promise.reject(new TypeError('headers cannot be set in a browser: its WebSocket API has no way to send them'));
  if (options.tls) return Promise.reject(new TypeError('tls options are Node-only: a browser uses its own certificate store'));
  if (options.socketPath || target.protocol.endsWith('+unix:')) return Promise.reject(new TypeError('unix domain sockets are Node-only: a browser cannot reach one'));
  const { WebSocket: NativeConstructor, WebSocketStream: StreamConstructor } = globalThis as {
    WebSocket?: new (url: string, protocols: string[]) => NativeWebSocket;
    WebSocketStream?: new (url: string, options: { protocols: string[] }) => NativeWebSocketStream;
  };
  if (!NativeConstructor && !StreamConstructor) return Promise.reject(new Error('this runtime has neither Node built-ins nor a WebSocket'));
  options.signal?.throwIfAborted();
  // WebSocketStream (Chromium) can stop reading: the receive queue is bounded there too.
  const native = StreamConstructor ? new StreamSocket(new StreamConstructor(target.href, { protocols })) : new (NativeConstructor as NonNullable<typeof NativeConstructor>)(target.href, protocols);
  return new Promise((resolve, reject) => {
    let settled = false;
    const deadline = handshakeDeadline(options);
    const settle = (error: unknown) => {
      if (settled) return;
      settled = true;
      deadline.clear();
      deadline.signal.removeEventListener('abort', onAbort);
      if (error) {
        native.close();
        reject(error);
      } else {
        // Build the facade before any message event can be dispatched.
        resolve(wrap(native, options));
      }
    };
    const onAbort = () => settle(deadline.signal.reason);
    deadline.signal.addEventListener('abort', onAbort, { once: true });
    native.addEventListener('open', () => settle(null));
    // A browser does not say why a handshake failed (no status, no headers).
    native.addEventListener('close', ({ code = CloseCode.ABNORMAL_CLOSURE, reason = '' }) => settle(new WebSocketError(code, reason || 'connection failed')));
  });
}

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 8. Exports
// ═══════════════════════════════════════════════════════════════════════════════════════════

export {
  // the connection
  WebSocket,
  WebSocketError,
  isOk,
  // clients and servers
  open,
  pair,
  reconnect,
  wrap,
  connect,
  listen,
  upgrade,
  upgradeStream,
  isUpgrade,
  // HTTP.jl-style free functions
  receive,
  send,
  ping,
  pong,
  close,
  broadcast,
  // low level: the frame codec and the protocol's constants
  Opcode,
  CloseCode,
  encodeFrame,
  applyMask,
  FrameParser,
  DEFAULTS,
};
export type {
  Data,
  Chunk,
  Outgoing,
  Server,
  CloseInfo,
  RequestInfo,
  ResponseInfo,
  Refusal,
  ConnectionOptions,
  ClientOptions,
  ServerOptions,
  ReceiveOptions,
  MessageStream,
  PairOptions,
  BroadcastOptions,
  BroadcastResult,
  ReconnectOptions,
  CompressionOptions,
  ClientTlsOptions,
  ServerTlsOptions,
  ConnectionStats,
  NativeWebSocket,
  Frame,
  FrameHeader,
  FrameSink,
};
