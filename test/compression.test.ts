// permessage-deflate (RFC 7692): negotiation on both sides (raw HTTP against our server, a fake
// raw server against our client), the §7.2.3 worked examples byte for byte, round trips,
// interop with ws and python3-websockets, decompression bombs, invalid compressed data, and the
// memory an idle compressed connection holds.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import readline from 'node:readline';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { sleep, within, withTestServer, withRawServer, WireOp, wireFrame, closeFramePayload } from './support.ts';
import type { RawPeer, RawServer } from './support.ts';
import { peerMissing, PYTHON_WEBSOCKETS } from './peers.ts';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import WS, { WebSocketServer } from 'ws';
import { connect, listen, WebSocketError } from '../websockets.ts';
import type { ClientOptions, ConnectionOptions, Data, Server, ServerOptions, WebSocket } from '../websockets.ts';

// CompressionOptions is not exported by websockets.ts (yet): derived from the option.
type CompressionOptions = Exclude<NonNullable<ConnectionOptions['compression']>, boolean>;

// ── child mode: the memory test runs a server in a child process started with --expose-gc ──
// This file, bundled from the current source, is the child: it never registers a test there.
const MEMORY_CHILD = process.env.WEBSOCKETS_TS_MEMORY_CHILD;
if (MEMORY_CHILD !== undefined) {
  await memoryServerChild(MEMORY_CHILD);
  process.exit(0);
}

/** The child: a compressing echo server that reports its memory on request (stdin: `measure` | `exit`). */
async function memoryServerChild(config: string): Promise<void> {
  const compression = JSON.parse(config) as boolean | CompressionOptions;
  let open = 0;
  let compressed = 0;
  const server = await listen(
    '127.0.0.1',
    0,
    async (ws) => {
      open++;
      if (ws.extensions !== '') compressed++;
      try {
        for await (const message of ws) await ws.send(message);
      } finally {
        open--;
      }
    },
    { compression, pingInterval: 0, closeTimeout: 1_000, onError: () => {} },
  );
  const collect = async () => {
    for (let i = 0; i < 6; i++) {
      globalThis.gc?.();
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  process.stdout.write(`PORT ${server.port} ${typeof globalThis.gc === 'function' ? 'gc' : 'nogc'}\n`);
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (line === 'measure') {
      await collect();
      const { heapUsed, external, arrayBuffers, rss } = process.memoryUsage();
      process.stdout.write(`MEM ${JSON.stringify({ heapUsed, external, arrayBuffers, rss, open, compressed })}\n`);
    } else if (line === 'exit') {
      await server.close();
      return;
    }
  }
}

// ── helpers ───────────────────────────────────────────────────────────────────────────────

const KiB = 1024;
const MiB = 1024 * KiB;
const T = { timeout: 15_000 };
const utf8 = (text: string) => new TextEncoder().encode(text);
const hex = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1 ');
const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');
const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);


/** Deflates one whole message as a permessage-deflate sender does: sync flush, tail removed (§7.2.1). */
function deflateMessage(data: Uint8Array | string, options: zlib.ZlibOptions = {}): Uint8Array {
  const out = zlib.deflateRawSync(typeof data === 'string' ? utf8(data) : data, { ...options, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual([...out.subarray(-4)], [...DEFLATE_TAIL], 'a sync flush ends with 00 00 ff ff');
  return Uint8Array.from(out.subarray(0, -4));
}

/** Inflates one whole message payload as a permessage-deflate receiver does (§7.2.2). */
function inflateMessage(payload: Uint8Array): Buffer {
  return zlib.inflateRawSync(Buffer.concat([payload, DEFLATE_TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

/** Compressible text of `size` characters (ASCII). */
function compressibleText(size: number, seed = 0): string {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'iota', 'kappa'];
  const parts: string[] = [];
  let length = 0;
  let state = seed + 1;
  while (length < size) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    const word = `${words[state % words.length]} ${state % 97} `;
    parts.push(word);
    length += word.length;
  }
  return parts.join('').slice(0, size);
}

/** Compressible bytes: random blocks repeated (long-distance matches), `size` bytes. */
function compressibleBytes(size: number, block = 700): Uint8Array {
  const pattern = randomBytes(block);
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += block) bytes.set(pattern.subarray(0, Math.min(block, size - offset)), offset);
  return bytes;
}

function assertSameData(actual: Data, expected: Data, what: string): void {
  if (typeof expected === 'string') {
    assert.equal(typeof actual, 'string', `${what}: expected text`);
    if (actual !== expected) assert.fail(`${what}: text differs (length ${actual.length} vs ${expected.length}, sha256 ${sha256(actual as string)} vs ${sha256(expected)})`);
  } else {
    assert.ok(actual instanceof Uint8Array, `${what}: expected bytes, got ${typeof actual}`);
    if (actual.length !== expected.length || sha256(actual) !== sha256(expected)) {
      assert.fail(`${what}: bytes differ (length ${actual.length} vs ${expected.length})`);
    }
  }
}

interface Harness {
  server: Server;
  /** Data messages the server's handler received, in order. */
  received: Data[];
  /** ws.extensions of each server-side connection. */
  extensions: string[];
  errors: unknown[];
  /** A raw client offering `extensions`: one Sec-WebSocket-Extensions header, several (one line each), or none. */
  peer(extensions: string | string[] | null): Promise<RawPeer>;
}

/** Runs `body` against a fresh echo server; closes every raw peer and the server afterwards. */
async function withServer(options: ServerOptions, body: (harness: Harness) => Promise<void>): Promise<void> {
  const received: Data[] = [];
  const extensions: string[] = [];
  const echo = async (ws: WebSocket) => {
    extensions.push(ws.extensions);
    for await (const message of ws) {
      received.push(message);
      await ws.send(message);
    }
  };
  await withTestServer({ closeTimeout: 500, ...options }, echo, ({ server, errors, peer }) =>
    body({ server, received, extensions, errors, peer: (offer) => peer({ extensions: offer ?? undefined }) }), { peer: { wait: 3_000 } });
}

/** What a raw client gets back for `offer`; the handshake must succeed and close cleanly. */
async function negotiate(compression: ServerOptions['compression'], offer: string | string[] | null): Promise<{ answer: string | undefined; serverSide: string }> {
  let result: { answer: string | undefined; serverSide: string } | null = null;
  await withServer({ compression }, async ({ peer, extensions }) => {
    const raw = await peer(offer);
    await raw.close();
    // The server-side socket's `extensions` is what was answered.
    const deadline = performance.now() + 2_000;
    while (extensions.length === 0 && performance.now() < deadline) await sleep(5);
    assert.equal(extensions.length, 1, 'the server handler ran once');
    result = { answer: raw.extensions, serverSide: extensions[0] };
  });
  assert.ok(result);
  return result;
}

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 1. Negotiation, server side
// ═══════════════════════════════════════════════════════════════════════════════════════════

describe('negotiation, server side (raw HTTP upgrade requests)', () => {
  const accepted: Array<[string, ServerOptions['compression'], string | string[], string]> = [
    ['plain offer', true, 'permessage-deflate', 'permessage-deflate'],
    ['client_max_window_bits without a value', true, 'permessage-deflate; client_max_window_bits', 'permessage-deflate'],
    ['client_max_window_bits=12 is echoed', true, 'permessage-deflate; client_max_window_bits=12', 'permessage-deflate; client_max_window_bits=12'],
    ['server_max_window_bits=10', true, 'permessage-deflate; server_max_window_bits=10', 'permessage-deflate; server_max_window_bits=10'],
    ['server_max_window_bits=8', true, 'permessage-deflate; server_max_window_bits=8', 'permessage-deflate; server_max_window_bits=8'],
    // RFC 7692 §7.1.2.1: the server accepts server_max_window_bits by including it in the answer, 15 too.
    ['server_max_window_bits=15', true, 'permessage-deflate; server_max_window_bits=15', 'permessage-deflate; server_max_window_bits=15'],
    ['client_max_window_bits=15 is echoed', true, 'permessage-deflate; client_max_window_bits=15', 'permessage-deflate; client_max_window_bits=15'],
    ['server_max_window_bits as a quoted string', true, 'permessage-deflate; server_max_window_bits="10"', 'permessage-deflate; server_max_window_bits=10'],
    ['whitespace around ; and =', true, 'permessage-deflate ;server_max_window_bits = 11', 'permessage-deflate; server_max_window_bits=11'],
    [
      'both no_context_takeover flags',
      true,
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    ],
    [
      'all four parameters',
      true,
      'permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8',
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8',
    ],
    ['first acceptable offer wins: unknown parameter, then a good one', true, 'permessage-deflate; foo=1, permessage-deflate; client_max_window_bits', 'permessage-deflate'],
    ['first acceptable offer wins: bad window bits, then a good one', true, 'permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=9', 'permessage-deflate; server_max_window_bits=9'],
    ['first acceptable offer wins: two good ones', true, 'permessage-deflate; server_max_window_bits=12, permessage-deflate', 'permessage-deflate; server_max_window_bits=12'],
    ['an unknown extension before ours', true, 'x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover', 'permessage-deflate; server_no_context_takeover'],
    ['offers on two header lines', true, ['permessage-deflate; server_max_window_bits=16', 'permessage-deflate; server_max_window_bits=11'], 'permessage-deflate; server_max_window_bits=11'],
    // Server settings.
    ['server: serverNoContextTakeover', { serverNoContextTakeover: true }, 'permessage-deflate', 'permessage-deflate; server_no_context_takeover'],
    ['server: clientNoContextTakeover', { clientNoContextTakeover: true }, 'permessage-deflate', 'permessage-deflate; client_no_context_takeover'],
    ['server: serverMaxWindowBits, none offered', { serverMaxWindowBits: 10 }, 'permessage-deflate', 'permessage-deflate; server_max_window_bits=10'],
    ['server: serverMaxWindowBits below the offer', { serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=12', 'permessage-deflate; server_max_window_bits=10'],
    ['server: serverMaxWindowBits above the offer', { serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=9', 'permessage-deflate; server_max_window_bits=9'],
    ['server: clientMaxWindowBits, client did not offer it', { clientMaxWindowBits: 10 }, 'permessage-deflate', 'permessage-deflate'],
    ['server: clientMaxWindowBits, client offered it value-less', { clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits', 'permessage-deflate; client_max_window_bits=10'],
    ['server: clientMaxWindowBits below the offer', { clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits=12', 'permessage-deflate; client_max_window_bits=10'],
    ['server: clientMaxWindowBits above the offer', { clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits=9', 'permessage-deflate; client_max_window_bits=9'],
    [
      'server: all four settings',
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 9 },
      'permessage-deflate; client_max_window_bits',
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9',
    ],
  ];
  for (const [name, compression, offer, expected] of accepted) {
    test(`${name}: ${JSON.stringify(offer)} → ${expected}`, T, async () => {
      const { answer, serverSide } = await negotiate(compression, offer);
      assert.equal(answer, expected);
      assert.equal(serverSide, expected, 'ws.extensions on the server is the answer');
    });
  }

  const declined: Array<[string, string | string[]]> = [
    ['duplicate parameter', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover'],
    ['duplicate client_max_window_bits', 'permessage-deflate; client_max_window_bits; client_max_window_bits=10'],
    ['server_max_window_bits=7', 'permessage-deflate; server_max_window_bits=7'],
    ['server_max_window_bits=16', 'permessage-deflate; server_max_window_bits=16'],
    ['server_max_window_bits=08', 'permessage-deflate; server_max_window_bits=08'],
    ['server_max_window_bits=10.0', 'permessage-deflate; server_max_window_bits=10.0'],
    ['server_max_window_bits without a value', 'permessage-deflate; server_max_window_bits'],
    ['client_max_window_bits=0', 'permessage-deflate; client_max_window_bits=0'],
    ['client_max_window_bits=16', 'permessage-deflate; client_max_window_bits=16'],
    ['server_no_context_takeover=1', 'permessage-deflate; server_no_context_takeover=1'],
    ['client_no_context_takeover=true', 'permessage-deflate; client_no_context_takeover=true'],
    ['an unknown parameter', 'permessage-deflate; unknown_param'],
    ['an unknown extension only', 'x-unknown'],
    ['an unknown extension with parameters only', 'x-webkit-deflate-frame; no_context_takeover'],
    ['garbage', ';;;,,='],
  ];
  for (const [name, offer] of declined) {
    test(`declined, handshake still succeeds: ${name}: ${JSON.stringify(offer)}`, T, async () => {
      const { answer, serverSide } = await negotiate(true, offer);
      assert.equal(answer, undefined, 'no Sec-WebSocket-Extensions in the answer');
      assert.equal(serverSide, '');
    });
  }

  test('compression on, nothing offered → no extension', T, async () => {
    const { answer, serverSide } = await negotiate(true, null);
    assert.equal(answer, undefined);
    assert.equal(serverSide, '');
  });

  for (const compression of [undefined, false] as const) {
    test(`compression ${String(compression)} → no extension even when offered`, T, async () => {
      const { answer, serverSide } = await negotiate(compression, 'permessage-deflate; client_max_window_bits');
      assert.equal(answer, undefined);
      assert.equal(serverSide, '');
    });
  }

  test('bad compression settings are refused before listening', T, async () => {
    for (const compression of [{ serverMaxWindowBits: 7 }, { clientMaxWindowBits: 16 }, { level: 10 }, { memLevel: 0 }, { threshold: -1 }]) {
      await assert.rejects(
        listen('127.0.0.1', 0, () => {}, { compression }),
        RangeError,
        JSON.stringify(compression),
      );
    }
  });
});

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 2. Negotiation, client side (a fake raw server)
// ═══════════════════════════════════════════════════════════════════════════════════════════

/**
 * A raw server that answers 101 with `answer` as Sec-WebSocket-Extensions (none if null), then
 * runs `onOpen` with the peer, records the client's frames and answers its close frame.
 */
async function withFakeServer(answer: string | null, body: (fake: RawServer) => Promise<void>, onOpen: (peer: RawPeer) => void = () => {}): Promise<void> {
  const responseHeaders = () => (answer === null ? [] : [`Sec-WebSocket-Extensions: ${answer}`]);
  await withRawServer((peer) => {
    peer.echoClose = true;
    onOpen(peer);
  }, { responseHeaders }, body);
}

async function waitFor(condition: () => boolean, timeout: number, what: string): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** The RFC 7692 §7.2.3.1 "Hello", as an unmasked compressed text frame from a server. */
const HELLO_COMPRESSED = hex('f2 48 cd c9 c9 07 00');

describe('negotiation, client side (fake raw server)', () => {
  const accepted: Array<[string, boolean | CompressionOptions, string, string]> = [
    ['plain answer', true, 'permessage-deflate', 'permessage-deflate; client_max_window_bits'],
    ['server_no_context_takeover', true, 'permessage-deflate; server_no_context_takeover', 'permessage-deflate; client_max_window_bits'],
    ['client_no_context_takeover', true, 'permessage-deflate; client_no_context_takeover', 'permessage-deflate; client_max_window_bits'],
    ['server_max_window_bits=10', true, 'permessage-deflate; server_max_window_bits=10', 'permessage-deflate; client_max_window_bits'],
    ['client_max_window_bits=10', true, 'permessage-deflate; client_max_window_bits=10', 'permessage-deflate; client_max_window_bits'],
    [
      'all four, window bits 8',
      true,
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8',
      'permessage-deflate; client_max_window_bits',
    ],
    [
      'asked for server_no_context_takeover, got it',
      { serverNoContextTakeover: true },
      'permessage-deflate; server_no_context_takeover',
      'permessage-deflate; server_no_context_takeover; client_max_window_bits',
    ],
    [
      'asked for client_no_context_takeover, the server need not repeat it',
      { clientNoContextTakeover: true },
      'permessage-deflate',
      'permessage-deflate; client_no_context_takeover; client_max_window_bits',
    ],
    [
      'asked for server_max_window_bits=10, got 9',
      { serverMaxWindowBits: 10 },
      'permessage-deflate; server_max_window_bits=9',
      'permessage-deflate; server_max_window_bits=10; client_max_window_bits',
    ],
    [
      'offered client_max_window_bits=10, got 10',
      { clientMaxWindowBits: 10 },
      'permessage-deflate; client_max_window_bits=10',
      'permessage-deflate; client_max_window_bits=10',
    ],
    ['offered client_max_window_bits=10, answer without it', { clientMaxWindowBits: 10 }, 'permessage-deflate', 'permessage-deflate; client_max_window_bits=10'],
  ];
  for (const [name, compression, answer, expectedOffer] of accepted) {
    test(`accepts ${name}: ${answer}`, T, async () => {
      await withFakeServer(
        answer,
        async (fake) => {
          const ws = await connect(fake.url, { compression, closeTimeout: 1_000, pingInterval: 0 });
          const [peer] = fake.peers;
          try {
            assert.equal(peer.headers['sec-websocket-extensions'], expectedOffer, 'the offer the client sent');
            assert.equal(ws.extensions, answer, 'ws.extensions is the server answer');
            // The server's compressed "Hello" (RSV1) is inflated.
            assert.equal(await within(ws.receive(), 2_000), 'Hello');
            // And the client compresses what it sends (whole message above the default threshold).
            const text = compressibleText(4 * KiB);
            await ws.send(text);
            await ws.send(text); // a second one: context takeover (or not) must still inflate
            await peer.until(() => peer.frames.filter((f) => f.opcode === WireOp.TEXT).length === 2, 2_000, 'two text frames');
            const [first, second] = peer.frames.filter((f) => f.opcode === WireOp.TEXT);
            assert.ok(first.masked && second.masked, 'the client masks its frames');
            assert.ok(first.rsv1 && second.rsv1, 'RSV1 set: the message is compressed');
            assert.ok(first.payload.length < text.length / 2, `compressed: ${first.payload.length} bytes`);
            const inflater = zlib.createInflateRaw({ windowBits: 15 });
            const inflate = (payload: Uint8Array) =>
              new Promise<string>((resolve, reject) => {
                const out: Buffer[] = [];
                const onData = (chunk: Buffer) => out.push(chunk);
                inflater.on('data', onData);
                inflater.once('error', reject);
                inflater.write(Buffer.concat([payload, DEFLATE_TAIL]));
                inflater.flush(zlib.constants.Z_SYNC_FLUSH, () => {
                  inflater.off('data', onData);
                  resolve(Buffer.concat(out).toString());
                });
              });
            assert.equal(await inflate(first.payload), text);
            assert.equal(await inflate(second.payload), text);
            inflater.close();
            if (/client_no_context_takeover/.test(answer) || (typeof compression === 'object' && compression.clientNoContextTakeover)) {
              assert.deepEqual(second.payload, first.payload, 'no context takeover: the same message compresses the same');
            } else {
              assert.ok(second.payload.length < first.payload.length, 'context takeover: the second copy refers to the first');
            }
          } finally {
            await ws.close();
          }
        },
        (peer) => peer.send(WireOp.TEXT, HELLO_COMPRESSED, { rsv1: true }),
      );
    });
  }

  const rejected: Array<[string, boolean | CompressionOptions | undefined, string, RegExp]> = [
    ['an extension when none was offered', undefined, 'permessage-deflate', /not what was offered/],
    ['an unknown parameter', true, 'permessage-deflate; foo', /unknown parameter foo/],
    ['an unknown parameter with a value', true, 'permessage-deflate; foo=1', /unknown parameter foo/],
    ['server_max_window_bits=16', true, 'permessage-deflate; server_max_window_bits=16', /invalid value for server_max_window_bits/],
    ['server_max_window_bits=7', true, 'permessage-deflate; server_max_window_bits=7', /invalid value for server_max_window_bits/],
    ['server_max_window_bits without a value', true, 'permessage-deflate; server_max_window_bits', /invalid value for server_max_window_bits/],
    ['client_max_window_bits without a value', true, 'permessage-deflate; client_max_window_bits', /invalid value for client_max_window_bits/],
    ['client_max_window_bits above the offer', { clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits=11', /client_max_window_bits above the offer/],
    ['server_max_window_bits above the offer', { serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=12', /server_max_window_bits above the offer/],
    ['server_max_window_bits asked for, not answered', { serverMaxWindowBits: 10 }, 'permessage-deflate', /server_max_window_bits/],
    ['server_no_context_takeover asked for, not answered', { serverNoContextTakeover: true }, 'permessage-deflate', /server_no_context_takeover/],
    ['server_no_context_takeover=1', true, 'permessage-deflate; server_no_context_takeover=1', /invalid value for server_no_context_takeover/],
    ['a duplicate parameter', true, 'permessage-deflate; client_no_context_takeover; client_no_context_takeover', /malformed/],
    ['an x-unknown extension', true, 'x-unknown', /not what was offered/],
    ['two extensions', true, 'permessage-deflate, permessage-deflate', /not what was offered/],
    ['ours and an unknown one', true, 'permessage-deflate, x-unknown', /not what was offered/],
  ];
  for (const [name, compression, answer, why] of rejected) {
    test(`fails the connection (1010) on ${name}: ${answer}`, T, async () => {
      await withFakeServer(answer, async (fake) => {
        const started = performance.now();
        await assert.rejects(connect(fake.url, { compression, pingInterval: 0 }), (error: unknown) => {
          assert.ok(error instanceof WebSocketError, `a WebSocketError, got ${String(error)}`);
          assert.equal(error.code, 1010, `code 1010, got ${error.code}: ${error.message}`);
          assert.match(error.message, why);
          return true;
        });
        assert.ok(performance.now() - started < 2_000, 'fails at once');
        assert.equal(fake.peers.length, 1, 'one connection');
        await fake.peers[0].tcpClosed(2_000); // the client drops the TCP connection
      });
    });
  }

  test('bad compression settings are refused before connecting', T, async () => {
    for (const compression of [{ serverMaxWindowBits: 16 }, { clientMaxWindowBits: 7.5 }, { level: -1 }, { memLevel: 10 }]) {
      await assert.rejects(connect('ws://127.0.0.1:9/', { compression }), RangeError, JSON.stringify(compression));
    }
  });
});

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 3. RFC 7692 §7.2.3 worked examples, byte for byte (raw client ↔ our echo server)
// ═══════════════════════════════════════════════════════════════════════════════════════════

describe('RFC 7692 §7.2.3 worked examples', () => {
  const eager = { compression: { threshold: 0 } };

  test('§7.2.3.1 "Hello" in one compressed frame; our answer is the same bytes', T, async () => {
    await withServer(eager, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      assert.equal(raw.extensions, 'permessage-deflate');
      raw.send(WireOp.TEXT, hex('f2 48 cd c9 c9 07 00'), { rsv1: true });
      const echo = await raw.nextData();
      assert.deepEqual(received, ['Hello']);
      assert.equal(echo.opcode, WireOp.TEXT);
      assert.ok(echo.rsv1 && echo.fin, 'one frame, RSV1 set');
      assert.equal(toHex(echo.payload), 'f2 48 cd c9 c9 07 00');
      await raw.close();
    });
  });

  test('§7.2.3.2 context takeover: the second "Hello" is f2 00 11 00 00, both ways', T, async () => {
    await withServer(eager, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, hex('f2 48 cd c9 c9 07 00'), { rsv1: true });
      raw.send(WireOp.TEXT, hex('f2 00 11 00 00'), { rsv1: true });
      const first = await raw.nextData();
      const second = await raw.nextData();
      assert.deepEqual(received, ['Hello', 'Hello']);
      assert.equal(toHex(first.payload), 'f2 48 cd c9 c9 07 00');
      assert.equal(toHex(second.payload), 'f2 00 11 00 00');
      assert.ok(first.rsv1 && second.rsv1);
      await raw.close();
    });
  });

  test('serverNoContextTakeover: both answers are f2 48 cd c9 c9 07 00', T, async () => {
    await withServer({ compression: { threshold: 0, serverNoContextTakeover: true } }, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      assert.equal(raw.extensions, 'permessage-deflate; server_no_context_takeover');
      raw.send(WireOp.TEXT, hex('f2 48 cd c9 c9 07 00'), { rsv1: true });
      raw.send(WireOp.TEXT, hex('f2 00 11 00 00'), { rsv1: true }); // the client still takes over its context
      const first = await raw.nextData();
      const second = await raw.nextData();
      assert.deepEqual(received, ['Hello', 'Hello']);
      assert.equal(toHex(first.payload), 'f2 48 cd c9 c9 07 00');
      assert.equal(toHex(second.payload), 'f2 48 cd c9 c9 07 00');
      await raw.close();
    });
  });

  test('client_no_context_takeover offered: the server inflates each message on its own', T, async () => {
    await withServer(eager, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate; client_no_context_takeover');
      assert.equal(raw.extensions, 'permessage-deflate; client_no_context_takeover');
      for (let i = 0; i < 3; i++) raw.send(WireOp.TEXT, hex('f2 48 cd c9 c9 07 00'), { rsv1: true });
      for (let i = 0; i < 3; i++) await raw.nextData();
      assert.deepEqual(received, ['Hello', 'Hello', 'Hello']);
      await raw.close();
    });
  });

  test('§7.2.3.3 stored block: 00 05 00 fa ff 48 65 6c 6c 6f 00', T, async () => {
    await withServer(eager, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, hex('00 05 00 fa ff 48 65 6c 6c 6f 00'), { rsv1: true });
      await raw.nextData();
      assert.deepEqual(received, ['Hello']);
      await raw.close();
    });
  });

  test('§7.2.3.1 fragmented: RSV1 f2 48 cd, then continuation c9 c9 07 00', T, async () => {
    await withServer(eager, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, hex('f2 48 cd'), { fin: false, rsv1: true });
      raw.send(WireOp.CONTINUATION, hex('c9 c9 07 00'));
      await raw.nextData();
      assert.deepEqual(received, ['Hello']);
      await raw.close();
    });
  });

  test('a ping between the fragments of a compressed message is answered; the message arrives whole', T, async () => {
    await withServer(eager, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, hex('f2 48 cd'), { fin: false, rsv1: true });
      raw.send(WireOp.PING, utf8('p'));
      raw.send(WireOp.CONTINUATION, hex('c9 c9 07 00'));
      const pong = await raw.next();
      assert.equal(pong.opcode, WireOp.PONG);
      assert.equal(pong.rsv1, false, 'control frames are never compressed');
      const echo = await raw.nextData();
      assert.equal(toHex(echo.payload), 'f2 48 cd c9 c9 07 00');
      assert.deepEqual(received, ['Hello']);
      await raw.close();
    });
  });

  test('§7.2.3.4 BFINAL block (f3 48 cd c9 c9 07 00 00), then another message on the same connection', T, async () => {
    await withServer(eager, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate; client_no_context_takeover');
      raw.send(WireOp.TEXT, hex('f3 48 cd c9 c9 07 00 00'), { rsv1: true });
      raw.send(WireOp.TEXT, hex('f2 48 cd c9 c9 07 00'), { rsv1: true });
      await raw.nextData();
      const second = await raw.nextData();
      assert.equal(second.opcode, WireOp.TEXT, `a second message, not ${raw.describe()}`);
      assert.deepEqual(received, ['Hello', 'Hello']);
      await raw.close();
    });
  });

  test('§7.2.3.4 BFINAL block with context takeover, then a self-contained message', T, async () => {
    await withServer(eager, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, hex('f3 48 cd c9 c9 07 00 00'), { rsv1: true });
      raw.send(WireOp.TEXT, hex('f2 48 cd c9 c9 07 00'), { rsv1: true });
      raw.send(WireOp.TEXT, hex('f3 48 cd c9 c9 07 00 00'), { rsv1: true });
      for (let i = 0; i < 3; i++) {
        const frame = await raw.nextData();
        assert.equal(frame.opcode, WireOp.TEXT, `echo ${i} is a text message, not ${raw.describe()}`);
      }
      assert.deepEqual(received, ['Hello', 'Hello', 'Hello'], 'each message is inflated, none silently empty');
      await raw.close();
    });
  });

  test('§7.2.3.6 compressed empty messages: payload 00 and an empty payload', T, async () => {
    await withServer(eager, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, hex('00'), { rsv1: true });
      raw.send(WireOp.BINARY, new Uint8Array(0), { rsv1: true });
      await raw.nextData();
      await raw.nextData();
      assert.equal(received.length, 2);
      assert.equal(received[0], '');
      assert.deepEqual(received[1], new Uint8Array(0));
      await raw.close();
    });
  });

  test('a compressed binary message, and the server compresses only from its threshold (default 1024 bytes)', T, async () => {
    await withServer({ compression: true }, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      const bytes = compressibleBytes(3000);
      raw.send(WireOp.BINARY, deflateMessage(bytes), { rsv1: true });
      const echo = await raw.nextData();
      assert.deepEqual(received[0], bytes);
      assert.ok(echo.rsv1);
      assert.deepEqual(new Uint8Array(inflateMessage(echo.payload)), bytes);
      for (const size of [0, 1, 1023, 1024, 1025]) {
        raw.send(WireOp.BINARY, compressibleBytes(size));
        const frame = await raw.nextData();
        assert.equal(frame.rsv1, size >= 1024, `a ${size}-byte message is ${size >= 1024 ? '' : 'not '}compressed`);
      }
      await raw.close();
    });
  });

  test('the threshold counts bytes: 600 "é" (1200 UTF-8 bytes) is at least 1024 bytes', T, async () => {
    await withServer({ compression: true }, async ({ peer }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, utf8('é'.repeat(600)));
      const frame = await raw.nextData();
      assert.equal(frame.rsv1, true, 'a 1200-byte text message is above the 1024-byte threshold');
      await raw.close();
    });
  });

  test('RSV1 on a continuation frame → 1002', T, async () => {
    await withServer(eager, async ({ peer }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, hex('f2 48 cd'), { fin: false, rsv1: true });
      raw.send(WireOp.CONTINUATION, hex('c9 c9 07 00'), { rsv1: true });
      assert.equal((await raw.closeFrame()).code, 1002);
    });
  });

  test('RSV1 on a continuation of an uncompressed message → 1002', T, async () => {
    await withServer(eager, async ({ peer }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, utf8('Hel'), { fin: false });
      raw.send(WireOp.CONTINUATION, utf8('lo'), { rsv1: true });
      assert.equal((await raw.closeFrame()).code, 1002);
    });
  });

  test('RSV1 on a ping → 1002', T, async () => {
    await withServer(eager, async ({ peer }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.PING, utf8('x'), { rsv1: true });
      assert.equal((await raw.closeFrame()).code, 1002);
    });
  });

  test('RSV1 on a close frame → 1002', T, async () => {
    await withServer(eager, async ({ peer }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.CLOSE, closeFramePayload(1000), { rsv1: true });
      assert.equal((await raw.closeFrame()).code, 1002);
    });
  });

  test('RSV1 without negotiation → 1002 (server with compression, client did not offer it)', T, async () => {
    await withServer(eager, async ({ peer }) => {
      const raw = await peer(null);
      assert.equal(raw.extensions, undefined);
      raw.send(WireOp.TEXT, hex('f2 48 cd c9 c9 07 00'), { rsv1: true });
      assert.equal((await raw.closeFrame()).code, 1002);
    });
  });

  test('RSV1 without negotiation → 1002 (server without compression)', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer('permessage-deflate');
      assert.equal(raw.extensions, undefined);
      raw.send(WireOp.TEXT, hex('f2 48 cd c9 c9 07 00'), { rsv1: true });
      assert.equal((await raw.closeFrame()).code, 1002);
    });
  });

  test('RSV2/RSV3 stay errors with compression on → 1002', T, async () => {
    for (const bit of [0x20, 0x10]) {
      await withServer(eager, async ({ peer }) => {
        const raw = await peer('permessage-deflate');
        const frame = wireFrame(WireOp.TEXT, utf8('x'), { mask: true });
        frame[0] |= bit;
        raw.write(frame);
        assert.equal((await raw.closeFrame()).code, 1002);
      });
    }
  });
});

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 7. Invalid compressed data
// ═══════════════════════════════════════════════════════════════════════════════════════════

describe('invalid compressed data', () => {
  const cases: Array<[string, number, Uint8Array]> = [
    ['ff ff ff (reserved block type), text', WireOp.TEXT, hex('ff ff ff')],
    ['ff ff ff, binary', WireOp.BINARY, hex('ff ff ff')],
    ['a stored block whose NLEN does not match', WireOp.BINARY, hex('00 05 00 00 00 48 65 6c 6c 6f 00')],
    ['a back-reference before the start of the window', WireOp.BINARY, hex('f2 00 11 00 00')],
  ];
  for (const [name, opcode, payload] of cases) {
    test(`${name} → 1007`, T, async () => {
      await withServer({ compression: true }, async ({ peer, received }) => {
        const raw = await peer('permessage-deflate');
        raw.send(opcode, payload, { rsv1: true });
        assert.equal((await raw.closeFrame()).code, 1007);
        assert.deepEqual(received, []);
      });
    });
  }

  test('compressed text that inflates to invalid UTF-8 → 1007', T, async () => {
    await withServer({ compression: true }, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, deflateMessage(Uint8Array.of(0x48, 0xc3, 0x28, 0x48)), { rsv1: true });
      assert.equal((await raw.closeFrame()).code, 1007);
      assert.deepEqual(received, []);
    });
  });

  test('the connection keeps working after a valid message, then fails on garbage (context takeover)', T, async () => {
    await withServer({ compression: true }, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      raw.send(WireOp.TEXT, hex('f2 48 cd c9 c9 07 00'), { rsv1: true });
      await raw.nextData();
      raw.send(WireOp.TEXT, hex('ff ff ff'), { rsv1: true });
      assert.equal((await raw.closeFrame()).code, 1007);
      assert.deepEqual(received, ['Hello']);
    });
  });

  test('our client: invalid compressed data from a server → the client closes with 1007', T, async () => {
    await withFakeServer(
      'permessage-deflate',
      async (fake) => {
        const ws = await connect(fake.url, { compression: true, pingInterval: 0, closeTimeout: 1_000 });
        await assert.rejects(ws.receive(), WebSocketError);
        assert.equal((await fake.peers[0].closeFrame(2_000)).code, 1007, 'the client close frame');
      },
      (peer) => peer.send(WireOp.TEXT, hex('ff ff ff'), { rsv1: true }),
    );
  });
});

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 4. Round trips: our client ↔ our server
// ═══════════════════════════════════════════════════════════════════════════════════════════

/** Our client connected to our echo server, both with the given compression settings. */
async function withEchoPair(
  serverCompression: ServerOptions['compression'],
  clientCompression: ClientOptions['compression'],
  body: (ws: WebSocket, received: Data[]) => Promise<void>,
  extra: { server?: ServerOptions; client?: ClientOptions } = {},
): Promise<void> {
  await withServer({ compression: serverCompression, ...extra.server }, async ({ server, received, errors }) => {
    const ws = await connect(server.url, { compression: clientCompression, pingInterval: 0, closeTimeout: 2_000, ...extra.client });
    try {
      await body(ws, received);
    } finally {
      await ws.close();
    }
    assert.deepEqual(errors, [], 'no handler errors on the server');
  });
}

async function roundTrip(ws: WebSocket, message: Data, what: string): Promise<void> {
  await ws.send(message);
  const echo = await within(ws.receive(), 20_000);
  assert.ok(echo !== null, `${what}: echo within 20 s`);
  assertSameData(echo, message, what);
}

describe('round trips (our client ↔ our server)', () => {
  test('text and binary, empty, below and above the threshold', T, async () => {
    await withEchoPair(true, true, async (ws) => {
      assert.equal(ws.extensions, 'permessage-deflate');
      const messages: Data[] = ['', new Uint8Array(0), 'x', Uint8Array.of(1, 2, 3), 'é'.repeat(511), compressibleText(1023), compressibleText(1024), compressibleBytes(1024), compressibleText(100 * KiB), '😀'.repeat(5000)];
      for (const [index, message] of messages.entries()) await roundTrip(ws, message, `message ${index}`);
    });
  });

  test('threshold 0: even empty messages are compressed', T, async () => {
    await withEchoPair({ threshold: 0 }, { threshold: 0 }, async (ws) => {
      for (const message of ['', new Uint8Array(0), 'a', Uint8Array.of(0)] as Data[]) await roundTrip(ws, message, JSON.stringify(message));
    });
  });

  test('1 MiB random and 16 MiB compressible (the default limit, inclusive)', { timeout: 60_000 }, async () => {
    await withEchoPair(true, true, async (ws) => {
      await roundTrip(ws, randomBytes(MiB), '1 MiB random');
      await roundTrip(ws, compressibleBytes(16 * MiB), '16 MiB compressible');
      await roundTrip(ws, compressibleText(16 * MiB), '16 MiB compressible text');
    });
  });

  test('16 MiB random (incompressible: deflate makes it slightly bigger) is still within the 16 MiB limit', { timeout: 60_000 }, async () => {
    await withEchoPair(true, true, async (ws) => {
      await roundTrip(ws, randomBytes(16 * MiB), '16 MiB random');
    });
  });

  test('fragmented sync and async iterables arrive as one message', T, async () => {
    await withEchoPair({ threshold: 0 }, { threshold: 0 }, async (ws) => {
      const parts = ['Hel', 'lo, ', '', compressibleText(5000), ' world'];
      await ws.send(parts);
      assertSameData(await ws.receive(), parts.join(''), 'sync text fragments');
      const byteParts = [compressibleBytes(3000), new Uint8Array(0), randomBytes(2000)];
      await ws.send(byteParts);
      assertSameData(await ws.receive(), Buffer.concat(byteParts), 'sync byte fragments');
      async function* slowly(): AsyncGenerator<string> {
        for (const part of parts) {
          await sleep(5);
          yield part;
        }
      }
      await ws.send(slowly());
      assertSameData(await ws.receive(), parts.join(''), 'async text fragments');
      async function* bytesSlowly(): AsyncGenerator<Uint8Array> {
        for (const part of byteParts) {
          await sleep(5);
          yield part;
        }
      }
      await ws.send(bytesSlowly());
      assertSameData(await ws.receive(), Buffer.concat(byteParts), 'async byte fragments');
      await ws.send([]);
      assertSameData(await ws.receive(), new Uint8Array(0), 'an empty iterable');
      await ws.send((async function* () {})());
      assertSameData(await ws.receive(), new Uint8Array(0), 'an empty async iterable');
    });
  });

  test('fragmented sends interleaved with whole messages keep their order (not awaited)', T, async () => {
    await withEchoPair(true, true, async (ws) => {
      async function* gen(): AsyncGenerator<string> {
        yield 'a'.repeat(2000);
        await sleep(10);
        yield 'b'.repeat(2000);
      }
      const expected: Data[] = ['first', 'a'.repeat(2000) + 'b'.repeat(2000), compressibleText(3000), 'x'.repeat(3000) + 'y', 'last'];
      const sends = [ws.send('first'), ws.send(gen()), ws.send(expected[2]), ws.send(['x'.repeat(3000), 'y']), ws.send('last')];
      await Promise.all(sends);
      for (const [index, message] of expected.entries()) assertSameData(await ws.receive(), message, `message ${index}`);
    });
  });

  for (const awaited of [true, false]) {
    test(`2000 mixed messages in order (${awaited ? 'each send awaited' : 'sends not awaited'})`, { timeout: 60_000 }, async () => {
      await withEchoPair(true, true, async (ws) => {
        const messages: Data[] = [];
        for (let i = 0; i < 2000; i++) {
          const size = [0, 10, 500, 1023, 1024, 1500, 4000, 20_000][i % 8] + (i % 3);
          messages.push(i % 2 === 0 ? `${i}:${compressibleText(size, i)}` : Uint8Array.from(Buffer.concat([Buffer.from(`${i}:`), compressibleBytes(size, 97)])));
        }
        const receiving = (async () => {
          for (const [index, message] of messages.entries()) assertSameData(await ws.receive(), message, `message ${index}`);
        })();
        if (awaited) {
          for (const message of messages) await ws.send(message);
        } else {
          await Promise.all(messages.map((message) => ws.send(message)));
        }
        await receiving;
      });
    });
  }

  test('a send not awaited before close() still goes out first (compressed, as when uncompressed)', T, async () => {
    for (const compression of [false, { threshold: 0 }] as const) {
      await withServer({ compression: true }, async ({ server, received }) => {
        const ws = await connect(server.url, { compression, pingInterval: 0, closeTimeout: 2_000 });
        const sent = ws.send('last words');
        await ws.close();
        const outcome = await sent.then(
          () => 'sent',
          (error: unknown) => `rejected: ${String(error)}`,
        );
        await sleep(50); // let the server handler take its turn
        assert.deepEqual(received, ['last words'], `compression ${JSON.stringify(compression)}: the message arrived before the close (send: ${outcome})`);
        assert.equal(outcome, 'sent');
      });
    }
  });

  test('a server handler that sends without awaiting and returns: the client still gets the message', T, async () => {
    for (const compression of [false, { threshold: 0 }] as const) {
      const server = await listen(
        '127.0.0.1',
        0,
        (ws) => {
          void ws.send('greeting').catch(() => {});
        },
        { compression, pingInterval: 0, closeTimeout: 1_000, onError: () => {} },
      );
      try {
        const ws = await connect(server.url, { compression: true, pingInterval: 0, closeTimeout: 1_000 });
        const got = await ws.receive().then(
          (data) => data,
          (error: unknown) => `rejected: ${String(error)}`,
        );
        await ws.close();
        assert.equal(got, 'greeting', `server compression ${JSON.stringify(compression)}`);
      } finally {
        await server.close();
      }
    }
  });

  test('50 connections × 100 compressed messages at once, each in order (the shared zlib limit)', { timeout: 60_000 }, async () => {
    await withServer({ compression: { threshold: 0 } }, async ({ server, errors }) => {
      const clients = await Promise.all(Array.from({ length: 50 }, () => connect(server.url, { compression: { threshold: 0 }, pingInterval: 0 })));
      try {
        await Promise.all(
          clients.map(async (ws, c) => {
            const messages = Array.from({ length: 100 }, (_, i) => (i % 2 ? `${c}/${i} ${compressibleText(200 + i * 40, i)}` : compressibleBytes(100 + i * 50, 50 + c)));
            const receiving = (async () => {
              for (const [i, message] of messages.entries()) assertSameData(await ws.receive(), message, `client ${c} message ${i}`);
            })();
            await Promise.all(messages.map((message) => ws.send(message)));
            await receiving;
          }),
        );
      } finally {
        await Promise.all(clients.map((ws) => ws.close()));
      }
      assert.deepEqual(errors, []);
    });
  });

  test('a slow consumer: compressed messages wait in the bounded queue (reading pauses), none lost', { timeout: 30_000 }, async () => {
    const received: Data[] = [];
    const server = await listen(
      '127.0.0.1',
      0,
      async (ws) => {
        await sleep(300);
        for await (const message of ws) {
          received.push(message);
          if (received.length % 100 === 0) await sleep(10);
        }
      },
      { compression: { threshold: 0 }, maxQueuedMessages: 10, maxQueuedBytes: 64 * KiB, pingInterval: 0, onError: () => {} },
    );
    try {
      const ws = await connect(server.url, { compression: { threshold: 0 }, pingInterval: 0 });
      const messages = Array.from({ length: 1000 }, (_, i) => `${i} ${compressibleText(3000, i)}`);
      await Promise.all(messages.map((message) => ws.send(message)));
      await waitFor(() => received.length === messages.length, 20_000, 'all messages');
      for (const [i, message] of messages.entries()) assertSameData(received[i], message, `message ${i}`);
      await ws.close();
    } finally {
      await server.close();
    }
  });

  const configurations: Array<[string, CompressionOptions, CompressionOptions, string]> = [
    ['context takeover (defaults)', {}, {}, 'permessage-deflate'],
    ['no context takeover, asked by the client', {}, { serverNoContextTakeover: true, clientNoContextTakeover: true }, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
    ['no context takeover, imposed by the server', { serverNoContextTakeover: true, clientNoContextTakeover: true }, {}, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
    ['window bits 8 (client)', {}, { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }, 'permessage-deflate; server_max_window_bits=8; client_max_window_bits=8'],
    ['window bits 8 (server)', { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }, {}, 'permessage-deflate; server_max_window_bits=8; client_max_window_bits=8'],
    ['window bits 9', {}, { serverMaxWindowBits: 9, clientMaxWindowBits: 9 }, 'permessage-deflate; server_max_window_bits=9; client_max_window_bits=9'],
    ['window bits 15', {}, { serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, 'permessage-deflate; server_max_window_bits=15; client_max_window_bits=15'],
    [
      'window bits 8, no context takeover, level 9, memLevel 1',
      { level: 9, memLevel: 1 },
      { serverMaxWindowBits: 8, clientMaxWindowBits: 8, serverNoContextTakeover: true, clientNoContextTakeover: true, level: 9, memLevel: 1 },
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8',
    ],
    ['level 0 (stored blocks)', { level: 0 }, { level: 0 }, 'permessage-deflate'],
  ];
  for (const [name, server, client, extensions] of configurations) {
    test(`${name}: ${extensions}`, { timeout: 30_000 }, async () => {
      await withEchoPair({ threshold: 0, ...server }, { threshold: 0, ...client }, async (ws) => {
        assert.equal(ws.extensions, extensions);
        // Matches at every distance: within 256 bytes, within 512, and far (up to 32 KiB).
        const messages: Data[] = [
          'Hello',
          'Hello',
          compressibleBytes(50_000, 200),
          compressibleBytes(50_000, 400),
          compressibleBytes(200_000, 20_000),
          compressibleText(100_000),
          compressibleText(100_000),
          randomBytes(70_000),
        ];
        for (const [index, message] of messages.entries()) await roundTrip(ws, message, `message ${index}`);
        // Context that spans messages: many small similar messages.
        for (let i = 0; i < 50; i++) await roundTrip(ws, `message number ${i} ${'abc'.repeat(i)}`, `small ${i}`);
      });
    });
  }
});

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 5. Interop with ws
// ═══════════════════════════════════════════════════════════════════════════════════════════

function wsData(data: WS.RawData, isBinary: boolean): Data {
  const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
  return isBinary ? Uint8Array.from(buffer) : buffer.toString('utf8');
}

function interopMessages(): Data[] {
  const messages: Data[] = ['hi', '', new Uint8Array(0), compressibleText(64 * KiB), randomBytes(MiB), compressibleBytes(4 * MiB)];
  for (let i = 0; i < 50; i++) messages.push(i % 2 ? `${i} ${compressibleText(300 + i * 37, i)}` : compressibleBytes(100 + i * 53, 61));
  return messages;
}

type WsDeflate = Exclude<WS.PerMessageDeflateOptions, boolean>;

describe('interop with ws (perMessageDeflate)', () => {
  const settings: Array<[string, WsDeflate, CompressionOptions, string[], string[]]> = [
    ['defaults', {}, {}, ['permessage-deflate'], ['no_context_takeover', 'server_max_window_bits']],
    ['serverNoContextTakeover', { serverNoContextTakeover: true }, {}, ['server_no_context_takeover'], ['client_no_context_takeover']],
    ['clientNoContextTakeover', { clientNoContextTakeover: true }, {}, ['client_no_context_takeover'], ['server_no_context_takeover']],
    ['both no_context_takeover, asked by our client', {}, { serverNoContextTakeover: true, clientNoContextTakeover: true }, ['server_no_context_takeover', 'client_no_context_takeover'], []],
    ['window bits 9 from ws', { serverMaxWindowBits: 9, clientMaxWindowBits: 9 }, {}, ['server_max_window_bits=9', 'client_max_window_bits=9'], []],
    ['window bits 9 from our client', {}, { serverMaxWindowBits: 9, clientMaxWindowBits: 9 }, ['server_max_window_bits=9', 'client_max_window_bits=9'], []],
    ['window bits 8 from ws', { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }, {}, ['server_max_window_bits=8', 'client_max_window_bits=8'], []],
    ['window bits 8 from our client', {}, { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }, ['server_max_window_bits=8', 'client_max_window_bits=8'], []],
    ['window bits 15, explicitly', {}, { serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, ['server_max_window_bits=15', 'client_max_window_bits=15'], []],
    [
      'everything small',
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
      {},
      ['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits=8', 'client_max_window_bits=8'],
      [],
    ],
  ];

  /** The answer has every parameter of `present` and none of `absent` (ws orders them its own way). */
  const assertParams = (answer: string, present: string[], absent: string[]) => {
    const params = answer.split(';').map((part) => part.trim());
    assert.equal(params[0], 'permessage-deflate', answer);
    for (const param of present) if (param !== 'permessage-deflate') assert.ok(params.includes(param), `${param} in ${answer}`);
    for (const param of absent) assert.ok(!answer.includes(param), `no ${param} in ${answer}`);
  };

  for (const [name, wsOptions, ourOptions, present, absent] of settings) {
    test(`our client ↔ ws server: ${name}`, { timeout: 30_000 }, async () => {
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: { threshold: 0, ...wsOptions } });
      const answers: string[] = [];
      wss.on('headers', (headers) => {
        const line = headers.find((header) => /^sec-websocket-extensions:/i.test(header));
        answers.push(line ? line.slice(line.indexOf(':') + 1).trim() : '');
      });
      wss.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
      await once(wss, 'listening');
      const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
      try {
        const ws = await connect(url, { compression: { threshold: 0, ...ourOptions }, pingInterval: 0, closeTimeout: 2_000 });
        try {
          assert.equal(ws.extensions, answers[0], 'ws.extensions is what ws answered');
          assertParams(ws.extensions, present, absent);
          for (const [index, message] of interopMessages().entries()) await roundTrip(ws, message, `message ${index}`);
        } finally {
          await ws.close();
        }
      } finally {
        for (const client of wss.clients) client.terminate();
        await new Promise((resolve) => wss.close(resolve));
      }
    });

    test(`ws client ↔ our server: ${name}`, { timeout: 30_000 }, async () => {
      // The roles swap: ws gets the client-side settings, we get the server-side ones.
      await withServer({ compression: { threshold: 0, ...ourOptions } }, async ({ server, extensions, errors }) => {
        const client = new WS(server.url, { perMessageDeflate: { threshold: 0, ...wsOptions } });
        let answer = '';
        client.on('upgrade', (response) => (answer = String(response.headers['sec-websocket-extensions'] ?? '')));
        const incoming: Data[] = [];
        const wakeups: Array<() => void> = [];
        client.on('message', (data, isBinary) => {
          incoming.push(wsData(data, isBinary));
          for (const wake of wakeups.splice(0)) wake();
        });
        client.on('error', () => {});
        await once(client, 'open');
        try {
          assertParams(answer, present, absent);
          assert.equal(extensions[0], answer, "our ws.extensions is our answer");
          const messages = interopMessages();
          for (const [index, message] of messages.entries()) {
            client.send(message);
            const deadline = performance.now() + 10_000;
            while (incoming.length <= index) {
              assert.ok(performance.now() < deadline, `echo of message ${index} within 10 s`);
              await new Promise<void>((resolve) => {
                wakeups.push(resolve);
                setTimeout(resolve, 100);
              });
            }
            assertSameData(incoming[index], message, `message ${index}`);
          }
        } finally {
          client.close(1000);
          await within(once(client, 'close'), 3_000);
          client.terminate();
        }
        assert.deepEqual(errors, []);
      });
    });
  }

  test('ws client with compression ↔ our server without → no extension, messages flow', T, async () => {
    await withServer({}, async ({ server }) => {
      const client = new WS(server.url, { perMessageDeflate: true });
      client.on('error', () => {});
      await once(client, 'open');
      try {
        assert.equal(client.extensions, '');
        client.send('plain');
        const [data, isBinary] = (await once(client, 'message')) as [WS.RawData, boolean];
        assert.equal(wsData(data, isBinary), 'plain');
      } finally {
        client.terminate();
      }
    });
  });
});

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 6. Decompression bombs
// ═══════════════════════════════════════════════════════════════════════════════════════════

/** 1 GiB of zeros deflated in 1 MiB writes (never 1 GiB in memory): about 1 MiB, tail removed. */
async function gigabyteOfZeros(): Promise<Uint8Array> {
  const deflater = zlib.createDeflateRaw({ strategy: zlib.constants.Z_RLE });
  const out: Buffer[] = [];
  deflater.on('data', (chunk: Buffer) => out.push(chunk));
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < 1024; i++) {
    if (!deflater.write(zeros)) await once(deflater, 'drain');
  }
  await new Promise<void>((resolve) => deflater.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve()));
  deflater.close();
  const bytes = Buffer.concat(out);
  assert.deepEqual([...bytes.subarray(-4)], [...DEFLATE_TAIL]);
  return Uint8Array.from(bytes.subarray(0, -4));
}

describe('decompression bombs', () => {
  for (const opcode of [WireOp.BINARY, WireOp.TEXT]) {
    test(`1 GiB of zeros in ~1 MiB (${opcode === WireOp.TEXT ? 'text' : 'binary'}) → 1009 quickly, memory bounded`, { timeout: 60_000 }, async (t) => {
      const prepared = performance.now();
      const bomb = await gigabyteOfZeros();
      t.diagnostic(`bomb: 1 GiB of zeros deflated to ${(bomb.length / MiB).toFixed(2)} MiB in ${(performance.now() - prepared).toFixed(0)} ms`);
      await withServer({ compression: true }, async ({ peer, received }) => {
        const raw = await peer('permessage-deflate');
        globalThis.gc?.();
        const rssBefore = process.memoryUsage().rss;
        let rssPeak = rssBefore;
        const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 2);
        try {
          const started = performance.now();
          raw.send(opcode, bomb, { rsv1: true });
          const code = (await raw.closeFrame(10_000)).code;
          const elapsed = performance.now() - started;
          rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
          const growth = (rssPeak - rssBefore) / MiB;
          const message = `bomb → close ${code} after ${elapsed.toFixed(0)} ms; RSS ${(rssBefore / MiB).toFixed(0)} MiB before, peak growth ${growth.toFixed(1)} MiB`;
          t.diagnostic(message);
          console.log(`# ${message}`);
          assert.equal(code, 1009);
          assert.ok(elapsed < 5_000, `closed within 5 s (took ${elapsed.toFixed(0)} ms)`);
          assert.ok(growth < 200, `RSS grew by less than 200 MiB (${growth.toFixed(1)} MiB)`);
          assert.deepEqual(received, []);
        } finally {
          clearInterval(sampler);
        }
      });
    });
  }

  test('maxMessageSize 1000: 1001 bytes compressed to a few bytes → 1009; exactly 1000 → delivered', T, async () => {
    await withServer({ compression: true, maxMessageSize: 1000 }, async ({ peer, received }) => {
      const ok = await peer('permessage-deflate');
      const thousand = deflateMessage(new Uint8Array(1000));
      assert.ok(thousand.length < 30, `1000 zeros deflate to ${thousand.length} bytes`);
      ok.send(WireOp.BINARY, thousand, { rsv1: true });
      await ok.nextData();
      assert.deepEqual(received, [new Uint8Array(1000)]);
      const text = deflateMessage('a'.repeat(1000));
      ok.send(WireOp.TEXT, text, { rsv1: true });
      await ok.nextData();
      assert.equal(received[1], 'a'.repeat(1000));
      await ok.close();

      const tooBig = await peer('permessage-deflate');
      const payload = deflateMessage(new Uint8Array(1001));
      assert.ok(payload.length < 30, `1001 zeros deflate to ${payload.length} bytes`);
      tooBig.send(WireOp.BINARY, payload, { rsv1: true });
      assert.equal((await tooBig.closeFrame()).code, 1009);

      const tooBigText = await peer('permessage-deflate');
      tooBigText.send(WireOp.TEXT, deflateMessage('a'.repeat(1001)), { rsv1: true });
      assert.equal((await tooBigText.closeFrame()).code, 1009);
      assert.equal(received.length, 2);
    });
  });

  test('maxMessageSize 1000, fragmented: the inflated total counts, not each fragment', T, async () => {
    await withServer({ compression: true, maxMessageSize: 1000 }, async ({ peer, received }) => {
      const raw = await peer('permessage-deflate');
      const payload = deflateMessage(new Uint8Array(1500));
      raw.send(WireOp.BINARY, payload.subarray(0, 3), { fin: false, rsv1: true });
      raw.send(WireOp.CONTINUATION, payload.subarray(3));
      assert.equal((await raw.closeFrame()).code, 1009);
      assert.deepEqual(received, []);
    });
  });

  test('our client: a bomb from a server → the client closes with 1009 (maxMessageSize 1 MiB)', T, async () => {
    const bomb = deflateMessage(new Uint8Array(64 * MiB));
    await withFakeServer(
      'permessage-deflate',
      async (fake) => {
        const ws = await connect(fake.url, { compression: true, pingInterval: 0, closeTimeout: 1_000, maxMessageSize: MiB });
        await assert.rejects(ws.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1009);
        assert.equal((await fake.peers[0].closeFrame(2_000)).code, 1009, 'the client close frame');
      },
      (peer) => peer.send(WireOp.BINARY, bomb, { rsv1: true }),
    );
  });
});

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 8. Memory per idle connection (server in a child process with --expose-gc)
// ═══════════════════════════════════════════════════════════════════════════════════════════

interface MemorySample {
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  rss: number;
  open: number;
  compressed: number;
}

async function measureServerMemory(compression: boolean | CompressionOptions, connections: number): Promise<{ baseline: MemorySample; idle: MemorySample; closed: MemorySample; gc: boolean }> {
  const env: NodeJS.ProcessEnv = { ...process.env, WEBSOCKETS_TS_MEMORY_CHILD: JSON.stringify(compression) };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url)], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const pending: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  lines.on('line', (line) => {
    const waiter = waiters.shift();
    if (waiter) waiter(line);
    else pending.push(line);
  });
  const nextLine = (timeout = 20_000) =>
    new Promise<string>((resolve, reject) => {
      const line = pending.shift();
      if (line !== undefined) return resolve(line);
      const timer = setTimeout(() => reject(new Error('the memory child did not answer')), timeout);
      waiters.push((value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  const measure = async (): Promise<MemorySample> => {
    child.stdin.write('measure\n');
    const line = await nextLine();
    assert.match(line, /^MEM /);
    return JSON.parse(line.slice(4)) as MemorySample;
  };
  const clients: WebSocket[] = [];
  try {
    const [, port, gc] = (await nextLine()).split(' ');
    const url = `ws://127.0.0.1:${port}/`;
    const options: ClientOptions = { compression: true, pingInterval: 0, closeTimeout: 2_000 };
    const message = compressibleText(8 * KiB);
    // Warm-up: one connection, so that lazy loading and first-use costs are in the baseline.
    const warm = await connect(url, options);
    await warm.send(message);
    await warm.receive();
    await warm.close();
    await sleep(50);
    const baseline = await measure();
    for (let batch = 0; batch < connections; batch += 20) {
      const opened = await Promise.all(Array.from({ length: Math.min(20, connections - batch) }, () => connect(url, options)));
      await Promise.all(
        opened.map(async (ws) => {
          await ws.send(message);
          assertSameData(await ws.receive(), message, 'echo');
        }),
      );
      clients.push(...opened);
    }
    const idle = await measure();
    await Promise.all(clients.splice(0).map((ws) => ws.close()));
    await sleep(100);
    const closed = await measure();
    return { baseline, idle, closed, gc: gc === 'gc' };
  } finally {
    for (const ws of clients) await ws.close().catch(() => {});
    child.stdin.write('exit\n');
    if ((await within(once(child, 'exit'), 5_000)) === null) child.kill();
  }
}

describe('memory per idle connection', () => {
  test('heap + external per connection, with and without context takeover', { timeout: 120_000 }, async (t) => {
    const connections = 200;
    const perConnection = (from: MemorySample, to: MemorySample) => (to.heapUsed + to.external - from.heapUsed - from.external) / connections / KiB;
    const results: Record<string, { idle: number; rss: number; afterClose: number }> = {};
    for (const [name, compression] of [
      ['compression off', false],
      ['context takeover', true],
      ['no context takeover', { serverNoContextTakeover: true, clientNoContextTakeover: true }],
    ] as Array<[string, boolean | CompressionOptions]>) {
      const { baseline, idle, closed, gc } = await measureServerMemory(compression, connections);
      assert.ok(gc, 'the child runs with --expose-gc');
      assert.equal(idle.open, connections, 'all connections are open on the server');
      assert.equal(idle.compressed, compression ? connections + 1 : 0, 'compression was agreed on each (+ the warm-up)');
      results[name] = { idle: perConnection(baseline, idle), rss: (idle.rss - baseline.rss) / connections / KiB, afterClose: perConnection(baseline, closed) };
      const line =
        `${name}: ${results[name].idle.toFixed(1)} KiB heap+external per idle connection ` +
        `(heap ${((idle.heapUsed - baseline.heapUsed) / connections / KiB).toFixed(1)}, external ${((idle.external - baseline.external) / connections / KiB).toFixed(1)}, ` +
        `RSS ${results[name].rss.toFixed(1)}); after all ${connections} closed: ${results[name].afterClose.toFixed(1)} KiB per connection left`;
      t.diagnostic(line);
      console.log(`# ${line}`);
    }
    const off = results['compression off'];
    const takeover = results['context takeover'];
    const noTakeover = results['no context takeover'];
    // process.memoryUsage().external sees only part of zlib's native memory (Node reports its
    // allocations lazily and partially): RSS is the truer figure for the zlib state, and the
    // noisier one. Loose bounds only.
    assert.ok(off.idle > 0 && off.idle < 256, `no compression: a sane figure (${off.idle.toFixed(1)} KiB)`);
    assert.ok(takeover.idle < 2048 && takeover.rss < 4096, `context takeover: under 2 MiB heap+external, 4 MiB RSS per connection`);
    assert.ok(takeover.idle > noTakeover.idle, `context takeover keeps zlib state (${takeover.idle.toFixed(1)} vs ${noTakeover.idle.toFixed(1)} KiB)`);
    assert.ok(takeover.rss > 128, `context takeover: the zlib state shows in RSS (${takeover.rss.toFixed(1)} KiB per connection)`);
    assert.ok(noTakeover.idle < off.idle + 16, `no context takeover: (almost) no zlib state while idle (${noTakeover.idle.toFixed(1)} vs ${off.idle.toFixed(1)} KiB)`);
    for (const [name, result] of Object.entries(results)) {
      assert.ok(result.afterClose < 32, `${name}: memory is released on close (${result.afterClose.toFixed(1)} KiB per connection left)`);
    }
  });
});

// ═══════════════════════════════════════════════════════════════════════════════════════════
// 9. python3-websockets (Debian package) as a client of our server
// ═══════════════════════════════════════════════════════════════════════════════════════════

const PYTHON = '/usr/bin/python3';
const PYTHON_CLIENT = String.raw`
import asyncio, hashlib, json, os, sys
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

async def main(url, factory):
    kwargs = {"max_size": 2 ** 25}
    if factory is not None:
        kwargs["compression"] = None
        kwargs["extensions"] = [ClientPerMessageDeflateFactory(**factory)]
    async with websockets.connect(url, **kwargs) as ws:
        results = {
            "version": websockets.__version__,
            "offer": ws.request_headers.get("Sec-WebSocket-Extensions"),
            "answer": ws.response_headers.get("Sec-WebSocket-Extensions"),
            "failures": [],
        }
        messages = ["Hello", "", b"", "x" * 100000, os.urandom(300000), bytes(range(256)) * 4000]
        messages += [("%d " % i) * (i * 7) for i in range(100)]
        for index, message in enumerate(messages):
            await ws.send(message)
            echo = await ws.recv()
            if echo != message:
                results["failures"].append(index)
        # A fragmented message (an iterable is sent as fragments).
        await ws.send(["frag", "mented ", "x" * 5000])
        if await ws.recv() != "fragmented " + "x" * 5000:
            results["failures"].append("fragmented")
        results["count"] = len(messages) + 1
    print(json.dumps(results))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
`;

function runPython(args: string[], timeout: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill(), timeout);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('python3-websockets client ↔ our server', () => {
  // [name, our server's settings, python's ClientPerMessageDeflateFactory arguments (null: its default compression), the answer]
  const modes: Array<[string, CompressionOptions, Record<string, number | boolean> | null, string]> = [
    ['its defaults', {}, null, 'permessage-deflate'],
    [
      'no context takeover, window bits 9',
      {},
      { server_no_context_takeover: true, client_no_context_takeover: true, server_max_window_bits: 9, client_max_window_bits: 9 },
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9',
    ],
    // (Not 8: Python's zlib refuses wbits=-8 for raw deflate, so python-websockets cannot compress with client_max_window_bits=8.)
    ['our server imposes window bits 9 and no context takeover', { serverMaxWindowBits: 9, clientMaxWindowBits: 9, serverNoContextTakeover: true, clientNoContextTakeover: true }, null, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9'],
    ['our server compresses with window bits 8', { serverMaxWindowBits: 8 }, null, 'permessage-deflate; server_max_window_bits=8'],
    // python-websockets requires server_max_window_bits in the answer when it asked for it (RFC 7692 §7.1.2.1).
    ['server_max_window_bits=15 asked for', {}, { server_max_window_bits: 15, client_max_window_bits: true }, 'permessage-deflate; server_max_window_bits=15'],
  ];
  for (const [name, compression, factory, expected] of modes) {
    test(`python3-websockets with compression (${name})`, { timeout: 60_000, skip: peerMissing(PYTHON_WEBSOCKETS) }, async () => {
      const check = await runPython(['-c', 'import websockets; print(websockets.__version__)'], 10_000);
      assert.equal(check.code, 0, `python3-websockets is missing (apt-get install -y python3-websockets): ${check.stderr}`);
      await withServer({ compression: { threshold: 0, ...compression }, maxMessageSize: 32 * MiB }, async ({ server, extensions, errors }) => {
        const { code, stdout, stderr } = await runPython(['-c', PYTHON_CLIENT, server.url, JSON.stringify(factory)], 50_000);
        assert.equal(code, 0, `the python client failed:\n${stderr}`);
        const result = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { version: string; offer: string; answer: string; failures: unknown[]; count: number };
        assert.equal(result.answer, expected, `python offered ${result.offer}`);
        assert.equal(extensions[0], expected);
        assert.deepEqual(result.failures, [], 'every echo matched');
        assert.equal(result.count, 107);
        assert.deepEqual(errors, []);
      });
    });
  }
});
