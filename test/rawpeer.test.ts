// A raw peer that speaks frames by hand over node:net, against our server (and, once, a raw
// server against our client): protocol errors, UTF-8 validation, close codes, limits,
// keepalive and the closing handshake (RFC 6455 §5, §7, §8).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { listen, connect, encodeFrame, FrameParser, Opcode, WebSocketError } from '../websockets.ts';
import type { Server, ServerOptions, WebSocket, Frame, CloseInfo } from '../websockets.ts';
import { acceptFor, sleep, within } from './support.ts';

const T = { timeout: 5_000 };
const utf8 = (text: string) => new TextEncoder().encode(text);


interface RawFrame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

interface Close {
  code: number | null;
  reason: string;
}

function parseClose(frame: RawFrame): Close {
  assert.equal(frame.opcode, Opcode.CLOSE, `expected a close frame, got opcode ${frame.opcode}`);
  if (frame.payload.length < 2) return { code: null, reason: '' };
  return { code: (frame.payload[0] << 8) | frame.payload[1], reason: new TextDecoder().decode(frame.payload.subarray(2)) };
}

function closePayload(code: number, reason: Uint8Array | string = ''): Uint8Array {
  const reasonBytes = typeof reason === 'string' ? utf8(reason) : reason;
  const payload = new Uint8Array(2 + reasonBytes.length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(reasonBytes, 2);
  return payload;
}

/** Collects whole frames from a byte stream. */
function frameCollector(expectMasked: boolean, onFrame: (frame: RawFrame) => void): FrameParser {
  let header: { fin: boolean; opcode: number } = { fin: true, opcode: 0 };
  let parts: Uint8Array[] = [];
  return new FrameParser(
    {
      onFrameHeader(h) {
        header = { fin: h.fin, opcode: h.opcode };
        parts = [];
      },
      onFramePayload(bytes) {
        parts.push(bytes.slice());
      },
      onFrameEnd() {
        onFrame({ ...header, payload: Uint8Array.from(Buffer.concat(parts)) });
      },
    },
    { expectMasked },
  );
}

/** A WebSocket client written by hand: manual handshake, hand-built frames, every frame it receives kept in order. */
class RawPeer {
  readonly socket: net.Socket;
  readonly frames: RawFrame[] = [];
  /** When the server's FIN arrived (performance.now()), once it has. */
  endedAt: number | null = null;
  /** When the TCP connection closed, once it has. */
  closedAt: number | null = null;
  /** Answer pings with pongs automatically. */
  autoPong = false;
  #wakeups: Array<() => void> = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
  }

  static async connect(port: number, options: { allowHalfOpen?: boolean; path?: string } = {}): Promise<RawPeer> {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const peer = new RawPeer(socket);
    await once(socket, 'connect');
    const key = randomBytes(16).toString('base64');
    socket.write(
      `GET ${options.path ?? '/'} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const parser = frameCollector(false, (frame) => {
      if (peer.autoPong && frame.opcode === Opcode.PING) peer.send({ opcode: Opcode.PONG, payload: frame.payload });
      peer.frames.push(frame);
      peer.#wake();
    });
    let head: Buffer | null = Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        if (head === null) return parser.push(Uint8Array.from(chunk));
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        const rest = head.subarray(end + 4);
        head = null;
        if (!text.startsWith('HTTP/1.1 101 ') || !text.toLowerCase().includes(`sec-websocket-accept: ${acceptFor(key).toLowerCase()}`)) {
          reject(new Error(`handshake failed: ${text}`));
          return;
        }
        resolve();
        if (rest.length > 0) parser.push(Uint8Array.from(rest));
      });
      socket.on('close', () => reject(new Error('closed during the handshake')));
    });
    socket.on('end', () => {
      peer.endedAt = performance.now();
      peer.#wake();
    });
    socket.on('close', () => {
      peer.closedAt = performance.now();
      peer.#wake();
    });
    return peer;
  }

  #wake(): void {
    for (const wake of this.#wakeups.splice(0)) wake();
  }

  /** Waits until `condition` holds, or fails after `timeout` ms. */
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

  describe(): string {
    return JSON.stringify(this.frames.map((f) => ({ fin: f.fin, opcode: f.opcode, payload: Buffer.from(f.payload).toString('hex') })));
  }

  /** The next frame (any opcode), in arrival order. */
  #read = 0;
  async next(timeout = 1_000): Promise<RawFrame> {
    await this.until(() => this.frames.length > this.#read || this.closedAt !== null, timeout, 'a frame');
    if (this.frames.length <= this.#read) throw new Error(`the connection closed with no further frame; frames: ${this.describe()}`);
    return this.frames[this.#read++];
  }

  /** The next frame that is not a ping or pong. */
  async nextData(timeout = 1_000): Promise<RawFrame> {
    for (;;) {
      const frame = await this.next(timeout);
      if (frame.opcode !== Opcode.PING && frame.opcode !== Opcode.PONG) return frame;
    }
  }

  /** Waits for the server's close frame, skipping anything before it. */
  async closeFrame(timeout = 1_000): Promise<Close> {
    const deadline = performance.now() + timeout;
    for (;;) {
      const frame = await this.next(Math.max(1, deadline - performance.now()));
      if (frame.opcode === Opcode.CLOSE) return parseClose(frame);
    }
  }

  /** Waits for the TCP connection to close. */
  async tcpClosed(timeout = 1_000): Promise<number> {
    await this.until(() => this.closedAt !== null, timeout, 'the TCP connection to close');
    return this.closedAt as number;
  }

  /** Sends one frame, masked with a random key unless `mask: false`. */
  send(frame: Frame): void {
    this.write(encodeFrame({ mask: true, ...frame }));
  }

  write(bytes: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A queue of values that arrive over time. */
class Arrivals<V> {
  readonly items: V[] = [];
  #waiters: Array<(value: V) => void> = [];
  #read = 0;
  push(value: V): void {
    this.items.push(value);
    const waiter = this.#waiters.shift();
    if (waiter) waiter(this.items[this.#read++]);
  }
  next(timeout = 1_000): Promise<V> {
    if (this.#read < this.items.length) return Promise.resolve(this.items[this.#read++]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nothing arrived within ${timeout} ms`)), timeout);
      this.#waiters.push((value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  }
}

interface Harness {
  server: Server;
  /** Server-side sockets, in order of arrival. */
  accepted: Arrivals<WebSocket>;
  /** What the handlers threw (through onError). */
  errors: unknown[];
  peer(options?: { allowHalfOpen?: boolean }): Promise<RawPeer>;
}

const echo = async (ws: WebSocket) => {
  for await (const message of ws) await ws.send(message);
};

/** Runs `body` against a fresh server; closes every raw peer and the server afterwards. */
async function withServer(
  options: ServerOptions,
  body: (harness: Harness) => Promise<void>,
  handler: (ws: WebSocket) => unknown = echo,
): Promise<void> {
  const accepted = new Arrivals<WebSocket>();
  const errors: unknown[] = [];
  const peers: RawPeer[] = [];
  const server = await listen(
    '127.0.0.1',
    0,
    (ws) => {
      accepted.push(ws);
      return handler(ws);
    },
    { closeTimeout: 300, pingInterval: 0, onError: (error) => errors.push(error), ...options },
  );
  try {
    await body({
      server,
      accepted,
      errors,
      peer: async (peerOptions) => {
        const peer = await RawPeer.connect(server.port, peerOptions);
        peers.push(peer);
        return peer;
      },
    });
  } finally {
    for (const peer of peers) peer.destroy();
    await server.close();
  }
}

/** Expects the server to answer with a close frame carrying `code`, then to close TCP. */
async function expectFailure(peer: RawPeer, code: number, timeout = 1_000): Promise<Close> {
  const close = await peer.closeFrame(timeout);
  assert.equal(close.code, code, `expected close ${code}, got ${String(close.code)} (${close.reason}); frames: ${peer.describe()}`);
  await peer.tcpClosed(timeout);
  return close;
}

describe('UTF-8 validation', () => {
  test('invalid UTF-8 in a text message → close 1007, then TCP close', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send({ opcode: Opcode.TEXT, payload: Uint8Array.of(0x61, 0xff, 0xfe) });
      await expectFailure(raw, 1007);
    });
  });

  for (const [what, bytes] of [
    ['an overlong encoding (C0 80)', [0xc0, 0x80]],
    ['a UTF-16 surrogate (ED A0 80)', [0xed, 0xa0, 0x80]],
    ['a code point above U+10FFFF (F4 90 80 80)', [0xf4, 0x90, 0x80, 0x80]],
    ['a message ending mid-sequence (E2 82)', [0x61, 0xe2, 0x82]],
  ] as const) {
    test(`${what} → 1007`, T, async () => {
      await withServer({}, async ({ peer }) => {
        const raw = await peer();
        raw.send({ opcode: Opcode.TEXT, payload: Uint8Array.from(bytes) });
        await expectFailure(raw, 1007);
      });
    });
  }

  test('a fragmented message whose last fragment ends mid-sequence → 1007', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send({ opcode: Opcode.TEXT, payload: utf8('abc'), fin: false });
      raw.send({ opcode: Opcode.CONTINUATION, payload: Uint8Array.of(0xe2, 0x82), fin: true });
      await expectFailure(raw, 1007);
    });
  });

  test('invalid UTF-8 in a first fragment → 1007 before the final fragment is sent (fail fast)', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send({ opcode: Opcode.TEXT, payload: Uint8Array.of(0x61, 0x62, 0xff), fin: false });
      // The final fragment is never sent: the close must come from the first one alone.
      await expectFailure(raw, 1007);
    });
  });

  test('invalid UTF-8 early in a frame whose payload has not all arrived → 1007 (fail fast)', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      const frame = encodeFrame({ opcode: Opcode.TEXT, payload: Uint8Array.from([0x61, 0xff, ...new Uint8Array(998).fill(0x61)]), mask: true });
      raw.write(frame.subarray(0, 8 + 10)); // the header (2 + 2 + 4 bytes) and the first 10 payload bytes
      await expectFailure(raw, 1007);
    });
  });

  test('UTF-8 split across fragments at every byte position (boundaries and mid-sequence) is accepted', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      const text = 'aé€𝄞z';
      const bytes = utf8(text);
      assert.equal(bytes.length, 11);
      for (let split = 1; split < bytes.length; split++) {
        raw.send({ opcode: Opcode.TEXT, payload: bytes.subarray(0, split), fin: false });
        raw.send({ opcode: Opcode.CONTINUATION, payload: bytes.subarray(split), fin: true });
        const reply = await raw.nextData();
        assert.equal(reply.opcode, Opcode.TEXT);
        assert.equal(new TextDecoder('utf-8', { fatal: true }).decode(reply.payload), text, `split at byte ${split}`);
      }
      // one byte per fragment, with empty fragments in between
      raw.send({ opcode: Opcode.TEXT, payload: new Uint8Array(0), fin: false });
      for (const byte of bytes) {
        raw.send({ opcode: Opcode.CONTINUATION, payload: Uint8Array.of(byte), fin: false });
        raw.send({ opcode: Opcode.CONTINUATION, payload: new Uint8Array(0), fin: false });
      }
      raw.send({ opcode: Opcode.CONTINUATION, payload: new Uint8Array(0), fin: true });
      assert.equal(new TextDecoder().decode((await raw.nextData()).payload), text);
    });
  });

  test('one text frame split across TCP writes in the middle of a code point is accepted', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      const text = '€'.repeat(200) + '𝄞';
      const frame = encodeFrame({ opcode: Opcode.TEXT, payload: utf8(text), mask: true });
      const headerSize = 2 + 2 + 4;
      for (const cut of [headerSize + 1, headerSize + 302, frame.length - 2]) {
        raw.write(frame.subarray(0, cut));
        await sleep(20);
        raw.write(frame.subarray(cut));
        assert.equal(new TextDecoder().decode((await raw.nextData()).payload), text, `cut at ${cut}`);
      }
    });
  });
});

describe('close frames from the peer', () => {
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
    test(`close code ${code} → 1002`, T, async () => {
      await withServer({}, async ({ peer }) => {
        const raw = await peer();
        raw.send({ opcode: Opcode.CLOSE, payload: closePayload(code) });
        await expectFailure(raw, 1002);
      });
    });
  }

  test('valid close codes are echoed, with the reason, and the server records them', T, async () => {
    const codes = [1000, 1001, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
    await withServer({}, async ({ peer, accepted }) => {
      for (const code of codes) {
        const raw = await peer();
        const ws = await accepted.next();
        raw.send({ opcode: Opcode.CLOSE, payload: closePayload(code, `reason ${code} ✓`) });
        const echoed = await raw.closeFrame();
        assert.deepEqual(echoed, { code, reason: `reason ${code} ✓` }, `code ${code}`);
        await raw.tcpClosed();
        const info: CloseInfo = await ws.closed;
        assert.deepEqual({ ...info }, { code, reason: `reason ${code} ✓` });
        assert.equal(ws.closeCode, code);
      }
    });
  });

  test('a close payload of 1 byte → 1002', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send({ opcode: Opcode.CLOSE, payload: Uint8Array.of(0x03) });
      await expectFailure(raw, 1002);
    });
  });

  test('a close reason that is not valid UTF-8 → 1007', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send({ opcode: Opcode.CLOSE, payload: closePayload(1000, Uint8Array.of(0x61, 0xff)) });
      await expectFailure(raw, 1007);
    });
  });

  test('an empty close → the server records 1005 and echoes an empty close', T, async () => {
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.send({ opcode: Opcode.CLOSE });
      const frame = await raw.nextData();
      assert.equal(frame.opcode, Opcode.CLOSE);
      assert.equal(frame.payload.length, 0, 'the echoed close must be empty (1005 is never sent on the wire)');
      await raw.tcpClosed();
      const info = await ws.closed;
      assert.equal(info.code, 1005);
      assert.equal(info.reason, '');
      assert.equal(ws.closeCode, 1005);
    });
  });

  // RFC 6455 §5.5.1: nothing follows a close frame. The frames are written in one TCP write so
  // that the server reads them in one chunk, right behind the close.
  test('a text message and a ping behind a close frame (same chunk) are ignored', T, async () => {
    const received: unknown[] = [];
    const handlerDone = new Arrivals<boolean>();
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.write(Buffer.concat([
        encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000), mask: true }),
        encodeFrame({ opcode: Opcode.TEXT, payload: utf8('too late'), mask: true }),
        encodeFrame({ opcode: Opcode.PING, payload: utf8('too late'), mask: true }),
      ]));
      await raw.tcpClosed();
      await handlerDone.next();
      assert.deepEqual(
        { closeCode: (await ws.closed).code, framesBack: raw.describe(), messagesToTheApplication: received },
        {
          closeCode: 1000,
          framesBack: JSON.stringify([{ fin: true, opcode: Opcode.CLOSE, payload: '03e8' }]), // only the close echo
          messagesToTheApplication: [],
        },
      );
    }, async (ws) => {
      await sleep(50); // a busy application: whatever arrives meanwhile waits in the queue
      try {
        for await (const message of ws) received.push(message);
      } finally {
        handlerDone.push(true);
      }
    });
  });

  test('garbage behind a close frame (same chunk) does not turn the close echo into 1002', T, async () => {
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.write(Buffer.concat([
        encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000, 'bye'), mask: true }),
        encodeFrame({ opcode: 0x3, payload: utf8('reserved opcode'), mask: true }),
      ]));
      const echoed = await raw.closeFrame();
      await raw.tcpClosed();
      assert.deepEqual({ echoed, serverSaw: { ...(await ws.closed) } }, { echoed: { code: 1000, reason: 'bye' }, serverSaw: { code: 1000, reason: 'bye' } });
    });
  });

  test('frames sent after a close frame (separate chunks) are ignored', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send({ opcode: Opcode.CLOSE, payload: closePayload(1000) });
      await sleep(20);
      raw.send({ opcode: Opcode.TEXT, payload: utf8('too late') });
      raw.send({ opcode: Opcode.PING, payload: utf8('too late') });
      await raw.tcpClosed();
      assert.deepEqual(raw.frames.map((f) => f.opcode), [Opcode.CLOSE], `only the close echo may come back: ${raw.describe()}`);
    });
  });
});

describe('protocol errors → 1002', () => {
  const violations: Array<[string, (raw: RawPeer) => void]> = [
    ['an unmasked client frame', (raw) => raw.send({ opcode: Opcode.TEXT, payload: utf8('hi'), mask: false })],
    ['a continuation with no message', (raw) => raw.send({ opcode: Opcode.CONTINUATION, payload: utf8('hi') })],
    [
      'a new text frame while a fragmented message is open',
      (raw) => {
        raw.send({ opcode: Opcode.TEXT, payload: utf8('one'), fin: false });
        raw.send({ opcode: Opcode.TEXT, payload: utf8('two'), fin: true });
      },
    ],
    ['RSV1 set without an extension', (raw) => raw.send({ opcode: Opcode.TEXT, payload: utf8('hi'), rsv1: true })],
    ['reserved opcode 3', (raw) => raw.send({ opcode: 3, payload: utf8('hi') })],
    ['reserved opcode 0xB', (raw) => raw.send({ opcode: 0xb })],
    ['a fragmented ping', (raw) => raw.send({ opcode: Opcode.PING, payload: utf8('hi'), fin: false })],
    ['a ping with a 126-byte payload', (raw) => raw.send({ opcode: Opcode.PING, payload: new Uint8Array(126) })],
  ];
  for (const [what, violate] of violations) {
    test(`${what} → 1002`, T, async () => {
      await withServer({}, async ({ peer, accepted }) => {
        const raw = await peer();
        const ws = await accepted.next();
        violate(raw);
        await expectFailure(raw, 1002);
        await assert.rejects(ws.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1002);
      }, (ws) => ws.closed);
    });
  }
});

describe('pings from the peer', () => {
  test('a ping with a payload → a pong with the same payload', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      for (const payload of [utf8('hello'), new Uint8Array(0), Uint8Array.from(randomBytes(125))]) {
        raw.send({ opcode: Opcode.PING, payload });
        const pong = await raw.next();
        assert.equal(pong.opcode, Opcode.PONG);
        assert.deepEqual(pong.payload, payload);
      }
    });
  });

  test('a ping between two fragments is answered at once, and the message still arrives whole', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send({ opcode: Opcode.TEXT, payload: utf8('Hel'), fin: false });
      raw.send({ opcode: Opcode.PING, payload: utf8('between') });
      const pong = await raw.next();
      assert.equal(pong.opcode, Opcode.PONG, 'the pong comes before the message is finished');
      assert.deepEqual(pong.payload, utf8('between'));
      raw.send({ opcode: Opcode.CONTINUATION, payload: utf8('lo'), fin: true });
      const message = await raw.nextData();
      assert.equal(message.opcode, Opcode.TEXT);
      assert.equal(new TextDecoder().decode(message.payload), 'Hello');
    });
  });
});

describe('limits', () => {
  test('maxMessageSize: 1000 → a 1000-byte message arrives', T, async () => {
    await withServer({ maxMessageSize: 1000 }, async ({ peer }) => {
      const raw = await peer();
      const payload = Uint8Array.from(randomBytes(1000));
      raw.send({ opcode: Opcode.BINARY, payload });
      const reply = await raw.nextData();
      assert.equal(reply.opcode, Opcode.BINARY);
      assert.deepEqual(reply.payload, payload);
      // also in fragments: 600 + 400
      raw.send({ opcode: Opcode.BINARY, payload: payload.subarray(0, 600), fin: false });
      raw.send({ opcode: Opcode.CONTINUATION, payload: payload.subarray(600), fin: true });
      assert.deepEqual((await raw.nextData()).payload, payload);
    });
  });

  test('maxMessageSize: 1000 → a 1001-byte message gets 1009', T, async () => {
    await withServer({ maxMessageSize: 1000 }, async ({ peer }) => {
      const raw = await peer();
      raw.send({ opcode: Opcode.BINARY, payload: new Uint8Array(1001) });
      await expectFailure(raw, 1009);
    });
  });

  test('maxMessageSize: 1000 → fragments adding up to 1001 bytes get 1009', T, async () => {
    await withServer({ maxMessageSize: 1000 }, async ({ peer }) => {
      const raw = await peer();
      raw.send({ opcode: Opcode.TEXT, payload: utf8('a'.repeat(600)), fin: false });
      raw.send({ opcode: Opcode.CONTINUATION, payload: utf8('a'.repeat(401)), fin: true });
      await expectFailure(raw, 1009);
    });
  });

  test('the header of a 2^40-byte frame alone → 1009, without a byte of payload', T, async () => {
    await withServer({ maxMessageSize: 1000 }, async ({ peer }) => {
      const raw = await peer();
      const header = new Uint8Array(2 + 8 + 4);
      header[0] = 0x80 | Opcode.BINARY;
      header[1] = 0x80 | 127;
      new DataView(header.buffer).setBigUint64(2, 2n ** 40n);
      header.set(randomBytes(4), 10);
      raw.write(header);
      await expectFailure(raw, 1009);
    });
  });

  test('maxFragments: 10 → 10 fragments arrive, the 11th fragment gets 1009', T, async () => {
    await withServer({ maxFragments: 10 }, async ({ peer }) => {
      const raw = await peer();
      for (let i = 0; i < 10; i++) raw.send({ opcode: i === 0 ? Opcode.TEXT : Opcode.CONTINUATION, payload: utf8(String(i)), fin: i === 9 });
      assert.equal(new TextDecoder().decode((await raw.nextData()).payload), '0123456789');
      for (let i = 0; i < 10; i++) raw.send({ opcode: i === 0 ? Opcode.TEXT : Opcode.CONTINUATION, payload: utf8(String(i)), fin: false });
      await sleep(100);
      assert.equal(raw.frames.filter((f) => f.opcode === Opcode.CLOSE).length, 0, '10 open fragments are within the limit');
      raw.send({ opcode: Opcode.CONTINUATION, payload: utf8('x'), fin: false });
      await expectFailure(raw, 1009);
    });
  });

  test('maxFragments counts empty fragments', T, async () => {
    await withServer({ maxFragments: 10 }, async ({ peer }) => {
      const raw = await peer();
      for (let i = 0; i < 11; i++) raw.send({ opcode: i === 0 ? Opcode.BINARY : Opcode.CONTINUATION, fin: i === 10 });
      await expectFailure(raw, 1009);
    });
  });
});

describe('abnormal ends', () => {
  test('a peer that ends TCP mid-message → closed resolves with 1006 and receive rejects with 1006', T, async () => {
    const received = new Arrivals<unknown>();
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.send({ opcode: Opcode.TEXT, payload: utf8('half a mess'), fin: false });
      await sleep(30);
      raw.socket.end();
      const info = await within(ws.closed, 1_000);
      assert.ok(info, 'closed did not resolve within 1 s');
      assert.equal(info.code, 1006);
      assert.equal(ws.closeCode, 1006);
      const error = await received.next();
      assert.ok(error instanceof WebSocketError, `receive rejected with ${String(error)}`);
      assert.equal(error.code, 1006);
    }, async (ws) => {
      try {
        const message = await ws.receive();
        received.push(new Error(`receive resolved with ${JSON.stringify(message)}`));
      } catch (error) {
        received.push(error);
      }
    });
  });

  test('a peer that vanishes (TCP reset) → closed resolves with 1006', T, async () => {
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.socket.resetAndDestroy();
      const info = await within(ws.closed, 1_000);
      assert.ok(info, 'closed did not resolve within 1 s');
      assert.equal(info.code, 1006);
    });
  });
});

describe('keepalive', () => {
  test('a peer that never answers pings → close 1011 and TCP dropped within ~1 s', T, async () => {
    await withServer({ pingInterval: 100, pingTimeout: 100 }, async ({ peer, accepted }) => {
      const started = performance.now();
      const raw = await peer();
      const ws = await accepted.next();
      const closedAt = await raw.tcpClosed(2_000);
      const elapsed = closedAt - started;
      assert.ok(elapsed < 1_000, `TCP closed after ${Math.round(elapsed)} ms`);
      assert.ok(raw.frames.some((f) => f.opcode === Opcode.PING), `the server sent pings: ${raw.describe()}`);
      const close = raw.frames.find((f) => f.opcode === Opcode.CLOSE);
      assert.ok(close, `the server sent a close frame before dropping TCP: ${raw.describe()}`);
      assert.equal(parseClose(close).code, 1011);
      const info = await ws.closed;
      assert.equal(info.code, 1006, 'no close frame came from the peer');
    });
  });

  test('a peer that answers pings stays connected past 5 intervals', T, async () => {
    await withServer({ pingInterval: 100, pingTimeout: 100 }, async ({ peer }) => {
      const raw = await peer();
      raw.autoPong = true;
      await sleep(750);
      assert.equal(raw.closedAt, null, `the connection dropped: ${raw.describe()}`);
      assert.equal(raw.frames.filter((f) => f.opcode === Opcode.CLOSE).length, 0);
      const pings = raw.frames.filter((f) => f.opcode === Opcode.PING).length;
      assert.ok(pings >= 5, `only ${pings} pings in 750 ms with pingInterval 100`);
      raw.send({ opcode: Opcode.TEXT, payload: utf8('still here') });
      assert.equal(new TextDecoder().decode((await raw.nextData()).payload), 'still here');
    });
  });
});

describe('closing handshake', () => {
  test('close() with a silent peer resolves after about closeTimeout (300 ms) and drops the socket', T, async () => {
    const durations = new Arrivals<number>();
    await withServer({ closeTimeout: 300 }, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      assert.deepEqual(await raw.closeFrame(), { code: 1000, reason: 'bye' });
      const duration = await durations.next(2_000);
      assert.ok(duration >= 250 && duration < 1_000, `close() took ${Math.round(duration)} ms`);
      await raw.tcpClosed(500);
      assert.equal((await ws.closed).code, 1006, 'the peer never sent a close frame');
    }, async (ws) => {
      const started = performance.now();
      await ws.close(1000, 'bye');
      durations.push(performance.now() - started);
    });
  });

  test('server-initiated close: after the peer’s close frame the server closes TCP first (RFC 6455 §7.1.1)', T, async () => {
    const durations = new Arrivals<number>();
    await withServer({ closeTimeout: 2_000 }, async ({ peer, accepted }) => {
      const raw = await peer({ allowHalfOpen: true });
      const ws = await accepted.next();
      assert.deepEqual(await raw.closeFrame(), { code: 4000, reason: 'done' });
      assert.equal(raw.endedAt, null, 'the server must wait for our close frame before its FIN');
      const answeredAt = performance.now();
      raw.send({ opcode: Opcode.CLOSE, payload: closePayload(1000, 'ok') });
      await raw.until(() => raw.endedAt !== null, 1_000, 'the server’s FIN');
      const endedAt = raw.endedAt as number | null; // (narrowed to null by the assertion above)
      assert.ok(endedAt !== null);
      const finDelay = endedAt - answeredAt;
      assert.ok(finDelay < 500, `FIN came ${Math.round(finDelay)} ms after our close: the server waited instead of closing first`);
      raw.socket.end();
      await raw.tcpClosed();
      const duration = await durations.next();
      assert.ok(duration < 1_000, `close() took ${Math.round(duration)} ms`);
      assert.deepEqual({ ...(await ws.closed) }, { code: 1000, reason: 'ok' });
    }, async (ws) => {
      const started = performance.now();
      await ws.close(4000, 'done');
      durations.push(performance.now() - started);
    });
  });
});

describe('a raw server against our client', () => {
  test('a masked frame from the server → the client sends close 1002', T, async () => {
    const clientFrames = new Arrivals<RawFrame>();
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      const parser = frameCollector(true, (frame) => clientFrames.push(frame));
      let head: Buffer | null = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        if (head === null) return parser.push(Uint8Array.from(chunk));
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const key = /^sec-websocket-key:\s*(\S+)/im.exec(head.subarray(0, end).toString('latin1'))?.[1] ?? '';
        head = null;
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`);
        socket.write(encodeFrame({ opcode: Opcode.TEXT, payload: utf8('masked!'), mask: true }));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    let ws: WebSocket | undefined;
    try {
      ws = await connect(`ws://127.0.0.1:${address.port}`, { closeTimeout: 300, handshakeTimeout: 1_000 });
      await assert.rejects(ws.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1002);
      const frame = await clientFrames.next();
      assert.equal(parseClose(frame).code, 1002);
    } finally {
      ws?.closed.catch(() => {});
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (ws) assert.equal((await ws.closed).code, 1006, 'the raw server never sent a close frame');
  });
});
