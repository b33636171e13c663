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
/** What `receive()` yields: TEXT messages as `string`, BINARY messages as `Uint8Array`. */
type Data = string | Uint8Array;
/** One piece of an outgoing message: a string is sent as TEXT, bytes as BINARY. */
type Chunk = string | ArrayBuffer | ArrayBufferView;
/** What `send()` takes: a chunk is one message; an iterable of chunks is one fragmented message. */
type Outgoing = Chunk | Iterable<Chunk> | AsyncIterable<Chunk>;
/** Frame opcodes (RFC 6455 §5.2). */
declare const Opcode: {
    readonly CONTINUATION: 0;
    readonly TEXT: 1;
    readonly BINARY: 2;
    readonly CLOSE: 8;
    readonly PING: 9;
    readonly PONG: 10;
};
/** Close status codes (RFC 6455 §7.4.1 and the IANA registry). */
declare const CloseCode: {
    readonly NORMAL_CLOSURE: 1000;
    readonly GOING_AWAY: 1001;
    readonly PROTOCOL_ERROR: 1002;
    readonly UNSUPPORTED_DATA: 1003;
    readonly NO_STATUS_RECEIVED: 1005;
    readonly ABNORMAL_CLOSURE: 1006;
    readonly INVALID_PAYLOAD: 1007;
    readonly POLICY_VIOLATION: 1008;
    readonly MESSAGE_TOO_BIG: 1009;
    readonly MANDATORY_EXTENSION: 1010;
    readonly INTERNAL_ERROR: 1011;
    readonly SERVICE_RESTART: 1012;
    readonly TRY_AGAIN_LATER: 1013;
    readonly BAD_GATEWAY: 1014;
    readonly TLS_HANDSHAKE: 1015;
};
/** Defaults of every limit and timer; each one is an option. Durations in milliseconds. */
declare const DEFAULTS: {
    maxMessageSize: number;
    maxFragments: number;
    closeTimeout: number;
    pingInterval: number;
    pingTimeout: number;
    handshakeTimeout: number;
    highWaterMark: number;
    maxQueuedMessages: number;
    maxQueuedBytes: number;
};
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
    key?: PemInput | Array<string | Uint8Array | {
        pem: string | Uint8Array;
        passphrase?: string | undefined;
    }> | undefined;
    /** Protocols to offer (client) or accept (server) by ALPN; `http2` sets them itself. */
    ALPNProtocols?: readonly (string | Uint8Array)[] | ArrayBufferView | undefined;
    /** A PKCS#12 bundle instead of `key` and `cert`. */
    pfx?: PemInput | Array<string | Uint8Array | {
        buf: string | Uint8Array;
        passphrase?: string | undefined;
    }> | undefined;
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
declare class WebSocketError extends Error {
    readonly code: number;
    readonly reason: string;
    /** The HTTP status of a refused handshake. */
    readonly status?: number;
    /** The HTTP headers of a refused handshake. */
    readonly headers?: Readonly<Record<string, string>>;
    constructor(code: number, reason?: string, options?: {
        cause?: unknown;
        status?: number;
        headers?: Record<string, string>;
    });
}
/**
 * True for a `WebSocketError` that ends a connection normally: 1000, 1001 or 1005.
 *
 * @example
 * try { for await (const m of ws) handle(m) } catch (error) { if (!isOk(error)) throw error }
 */
declare function isOk(error: unknown): boolean;
/**
 * XORs `data` in place with the 4-byte masking key (RFC 6455 §5.3), as if `data` began at byte
 * `offset` of the payload. Large payloads go through a WebAssembly SIMD kernel where the
 * runtime has one, small ones (and all, without it) through a loop of 32-bit words.
 */
declare function applyMask(data: Uint8Array, key: Uint8Array, offset?: number): void;
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
declare function encodeFrame(frame: Frame): Uint8Array;
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
/**
 * An incremental frame parser over a byte stream: feed it chunks as they arrive; it reports
 * headers, payload pieces and frame ends to a sink. Payload is unmasked in place and handed
 * over as views of the input chunks, so a frame that arrives in one chunk is never copied.
 * Protocol errors throw a `WebSocketError` with code 1002.
 */
declare class FrameParser {
    #private;
    /** `expectMasked`: true on a server (client frames must be masked), false on a client. */
    constructor(sink: FrameSink, options: {
        expectMasked: boolean;
        allowRsv1?: boolean;
    });
    /** Ignores all further input, even the rest of the chunk being parsed (after a close frame). */
    stop(): void;
    /**
     * Stops after the current frame: further input is kept, unparsed, until `release()`. The
     * sink asks for this while it finishes a message asynchronously (inflating it), so that
     * everything behind that message keeps its order.
     */
    hold(): void;
    /** Parses the input kept since `hold()`; it may hold again. */
    release(): void;
    push(chunk: Uint8Array): void;
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
/** Options of `receive()`. */
interface ReceiveOptions {
    /** Gives up waiting: receive() rejects with the signal's reason, and no message is taken. */
    signal?: AbortSignal | undefined;
}
/** What a `MessageStream` tells the WebSocket it reads from. */
interface StreamOwner {
    /** Buffered pieces were read or dropped: there may be room to read again. */
    released(): void;
    /** Read to its end, failed or abandoned; `rest`: the rest of its message is still to come (and is dropped). */
    finished(stream: MessageStream, rest: boolean): void;
}
/**
 * One message, piece by piece, from `ws.receiveStream()`: BINARY as `Uint8Array`s, TEXT as
 * strings cut at character boundaries (validated as they come: invalid UTF-8 is 1007 at the
 * first bad byte). Pieces are the ones read off the socket, even inside one large frame, and
 * at most `maxQueuedBytes` (or `maxQueuedMessages` pieces) wait here: beyond that the socket
 * stops being read until the application takes more, so a message of any size passes in
 * bounded memory. An empty message is one empty piece, so the type is always known.
 * `return()` (a `break`) abandons the message: the rest of it is read and dropped.
 */
declare class MessageStream implements AsyncIterableIterator<Data> {
    #private;
    /** @internal Use `ws.receiveStream()`. */
    constructor(owner: StreamOwner, signal?: AbortSignal);
    /** Bytes of the pieces waiting to be read. */
    get bufferedBytes(): number;
    /** Pieces waiting to be read. */
    get bufferedPieces(): number;
    next(): Promise<IteratorResult<Data>>;
    /** Abandons the message (a `break`): what is buffered and the rest of it are dropped. */
    return(): Promise<IteratorResult<Data>>;
    [Symbol.asyncIterator](): AsyncIterableIterator<Data>;
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
declare class WebSocket implements AsyncIterable<Data> {
    #private;
    /** The URL on the client; the request target on the server. */
    readonly url: string;
    /** The handshake request (header names in lower case). */
    readonly request: RequestInfo;
    /** The handshake response (client side only). */
    readonly response?: ResponseInfo;
    /** The peer's address (Node only). */
    readonly remoteAddress?: string;
    /** @internal Use `open`, `connect`, `listen`, `upgrade` or `wrap`. */
    constructor(link: Link, details: ConnectionDetails, options?: ConnectionOptions);
    /** Resolves with the peer's close code and reason once the connection is gone. */
    get closed(): Promise<CloseInfo>;
    /** The negotiated subprotocol, '' if none. */
    get protocol(): string;
    /** The negotiated extensions, '' if none. */
    get extensions(): string;
    /** The close code the peer sent (1005 if none, 1006 if no close frame came), once closed. */
    get closeCode(): number | undefined;
    /** The close reason the peer sent, once closed. */
    get closeReason(): string | undefined;
    /** Bytes written but not yet handed to the operating system. */
    get bufferedAmount(): number;
    /** Messages and bytes in and out so far, and the last ping's round-trip time. */
    get stats(): ConnectionStats;
    /**
     * The messages as a WHATWG `ReadableStream`: each read is a receive(), so a reader that stops
     * reading is backpressure, as receive() is. It ends on a normal close and errors with the
     * `WebSocketError` of any other; cancel(reason) closes the connection, with the code and
     * reason of a `WebSocketError` given as the reason, else with 1000.
     *
     * @example
     * await ws.readable.pipeThrough(new TransformStream({ transform: (m, c) => c.enqueue(String(m).toUpperCase()) })).pipeTo(ws.writable)
     */
    get readable(): ReadableStream<Data>;
    /**
     * A WHATWG `WritableStream` whose writes are send()s (a write resolves as send() does: at the
     * high-water mark). close() runs the closing handshake with 1000; abort(reason) closes with
     * the code and reason of a `WebSocketError` given as the reason, else with 1011.
     */
    get writable(): WritableStream<Outgoing>;
    /**
     * The next data message: TEXT as a string, BINARY as a Uint8Array. Pings are answered and
     * pongs consumed on the way. Rejects with a `WebSocketError` once the connection has closed
     * and every message that arrived before has been received.
     *
     * @example
     * const message = await ws.receive()
     */
    receive(options?: ReceiveOptions): Promise<Data>;
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
    receiveStream(options?: ReceiveOptions): MessageStream;
    /**
     * Iterates over messages; ends on a normal close (1000, 1001, 1005) and throws on any other.
     *
     * @example
     * for await (const message of ws) await ws.send(message)
     */
    [Symbol.asyncIterator](): AsyncIterableIterator<Data>;
    /**
     * Sends a message: a string as TEXT, bytes as BINARY, an iterable or async iterable of
     * chunks as one fragmented message (one frame per chunk). Messages go out in call order.
     * Resolves when the socket's buffer is below the high-water mark.
     *
     * @example
     * await ws.send('text'); await ws.send(new Uint8Array([1, 2, 3])); await ws.send(['frag', 'ments'])
     */
    send(message: Outgoing): Promise<void>;
    /**
     * Sends a ping and resolves with the round-trip time in milliseconds when its pong arrives.
     * Without `data`, a unique 4-byte payload is used. The pong is read after what the peer sent
     * before it: while the receive queue is full and nothing is read, it waits.
     *
     * @example
     * console.log(`rtt ${await ws.ping()} ms`)
     */
    ping(data?: Chunk): Promise<number>;
    /**
     * Sends an unsolicited pong (RFC 6455 §5.5.3), e.g. as a one-way heartbeat.
     *
     * @example
     * await ws.pong()
     */
    pong(data?: Chunk): Promise<void>;
    /**
     * Starts the closing handshake (RFC 6455 §7.1.2) and resolves when the connection is gone,
     * bounded by the close timeout. Closing twice is harmless. A code that may not be sent
     * or a reason over 123 bytes is a programming error: it throws and nothing is sent.
     *
     * @example
     * await ws.close(1000, 'bye')
     */
    close(code?: number, reason?: string): Promise<void>;
}
/** `receive(ws)`: HTTP.jl-style alias of `ws.receive()`. */
declare function receive(ws: WebSocket, options?: ReceiveOptions): Promise<Data>;
/** `send(ws, message)`: HTTP.jl-style alias of `ws.send(message)`. */
declare function send(ws: WebSocket, message: Outgoing): Promise<void>;
/** `ping(ws, data)`: HTTP.jl-style alias of `ws.ping(data)`. */
declare function ping(ws: WebSocket, data?: Chunk): Promise<number>;
/** `pong(ws, data)`: HTTP.jl-style alias of `ws.pong(data)`. */
declare function pong(ws: WebSocket, data?: Chunk): Promise<void>;
/** `close(ws, code, reason)`: HTTP.jl-style alias of `ws.close(code, reason)`. */
declare function close(ws: WebSocket, code?: number, reason?: string): Promise<void>;
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
declare function broadcast(sockets: Iterable<WebSocket>, message: Chunk, options?: BroadcastOptions): Promise<BroadcastResult>;
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
/**
 * A stream of a node:http2 server, as `upgradeStream()` takes it: what its 'stream' event
 * gives, or the compat API's `response.stream`.
 */
interface UpgradeStream extends UpgradeSocket {
    respond(headers: Record<string, string | number>, options?: {
        endStream?: boolean;
    }): void;
    close(code?: number): void;
    readonly closed: boolean;
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
declare function connect(url: string | URL, options?: ClientOptions): Promise<WebSocket>;
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
declare function open<T>(url: string | URL, handler: (ws: WebSocket) => T | Promise<T>, options?: ClientOptions): Promise<T>;
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
declare function pair(options?: PairOptions): [client: WebSocket, server: WebSocket];
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
    onRetry?: ((retry: {
        attempt: number;
        delay: number;
        error: unknown;
    }) => void) | undefined;
    /** Stops everything at once: a waiting next() rejects with the signal's reason, the current socket closes with 1000. */
    signal?: AbortSignal | undefined;
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
declare function reconnect(url: string | URL, options?: ReconnectOptions): AsyncIterableIterator<WebSocket>;
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
type AsyncDisposeSymbol = SymbolConstructor extends {
    readonly asyncDispose: infer S extends symbol;
} ? S : never;
/** A running WebSocket server from `listen`; `await using server = await listen(…)` closes it at the end of the scope. */
type Server = ServerControls & {
    readonly [K in AsyncDisposeSymbol]: () => Promise<void>;
};
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
declare function listen(host: string, port: number, handler: (ws: WebSocket) => unknown, options?: ServerOptions): Promise<Server>;
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
declare function upgrade(request: UpgradeRequest, socket: UpgradeSocket, head: Uint8Array, handler: (ws: WebSocket) => unknown, options?: ServerOptions): void;
/** True if a `node:http` request asks for a WebSocket upgrade, or a `node:http2` one's headers are an extended CONNECT for one (RFC 8441). */
declare function isUpgrade(request: {
    readonly headers: NodeHeaders;
}): boolean;
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
declare function upgradeStream(stream: UpgradeStream, headers: NodeHeaders, handler: (ws: WebSocket) => unknown, options?: ServerOptions): void;
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
declare function wrap(native: NativeWebSocket, options?: ConnectionOptions): WebSocket;
export { WebSocket, WebSocketError, isOk, open, pair, reconnect, wrap, connect, listen, upgrade, upgradeStream, isUpgrade, receive, send, ping, pong, close, broadcast, Opcode, CloseCode, encodeFrame, applyMask, FrameParser, DEFAULTS, };
export type { Data, Chunk, Outgoing, Server, CloseInfo, RequestInfo, ResponseInfo, Refusal, ConnectionOptions, ClientOptions, ServerOptions, ReceiveOptions, MessageStream, PairOptions, BroadcastOptions, BroadcastResult, ReconnectOptions, CompressionOptions, ClientTlsOptions, ServerTlsOptions, ConnectionStats, NativeWebSocket, Frame, FrameHeader, FrameSink, };
