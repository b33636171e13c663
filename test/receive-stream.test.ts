// ws.receiveStream(): the next message piece by piece, as it comes off the socket. Checked: a
// 1 GiB message passes in bounded memory (plain and compressed), pieces come out of one large
// frame before it ends, TEXT is cut at character boundaries and validated as it comes, the
// next receive() waits for the stream, abandoning drops the rest, the end of the connection
// mid-message is an error, an unread stream stops the sender, and the limits that still apply.
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { constants as zlibConstants, createDeflateRaw } from 'node:zlib';
import assert from 'node:assert/strict';
import { connect, isOk, listen, pair, WebSocketError } from '../websockets.ts';
import type { Data, MessageStream, WebSocket } from '../websockets.ts';
import { closeFramePayload, rawServer, sleep, within, wireFrame, WireOp } from './support.ts';
import type { RawPeer } from './support.ts';

const MiB = 1024 * 1024;

/** Reads a stream to its end: the pieces' types, their joined content, and how many there were. */
async function readAll(stream: MessageStream): Promise<{ text: string | null; bytes: number; pieces: number; types: Set<string> }> {
  const types = new Set<string>();
  let text: string | null = '';
  let bytes = 0;
  let pieces = 0;
  for await (const piece of stream) {
    pieces++;
    types.add(typeof piece);
    if (typeof piece === 'string') text += piece;
    else text = null;
    bytes += piece.length;
  }
  return { text, bytes, pieces, types };
}

/** A 1 MiB chunk whose bytes depend on their position, sent `count` times as one fragmented message. */
const patterned = new Uint8Array(MiB).map((_, i) => (i * 31 + (i >> 11)) % 251);
async function* repeated(chunk: Uint8Array, count: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < count; i++) yield chunk;
}

/** Reads a stream of `patterned` repeats, checking every byte, and the peak of ArrayBuffer memory while it does. */
async function readPatterned(stream: MessageStream): Promise<{ bytes: number; peakArrayBuffers: number }> {
  let bytes = 0;
  let peakArrayBuffers = 0;
  for await (const piece of stream) {
    assert.ok(piece instanceof Uint8Array);
    for (let i = 0; i < piece.length; i += 4093) assert.equal(piece[i], patterned[(bytes + i) % MiB], `byte ${bytes + i}`);
    assert.equal(piece[piece.length - 1], patterned[(bytes + piece.length - 1) % MiB]);
    bytes += piece.length;
    if ((bytes & (16 * MiB - 1)) < piece.length) peakArrayBuffers = Math.max(peakArrayBuffers, process.memoryUsage().arrayBuffers);
  }
  return { bytes, peakArrayBuffers };
}

for (const compression of [false, true]) {
  test(`a 1 GiB message passes through in bounded memory, past maxMessageSize${compression ? ', compressed' : ''}`, { timeout: 120_000 }, async () => {
    const total = 1024; // MiB
    let result: { bytes: number; peakArrayBuffers: number } | null = null;
    const server = await listen('127.0.0.1', 0, async (ws) => {
      result = await readPatterned(ws.receiveStream());
      await ws.send(`got ${result.bytes}`);
    }, { pingInterval: 0, compression });
    const baseline = process.memoryUsage().arrayBuffers;
    try {
      const client = await connect(`ws://127.0.0.1:${server.port}`, { pingInterval: 0, compression });
      await client.send(repeated(patterned, total));
      assert.equal(await client.receive(), `got ${total * MiB}`);
      await client.close();
    } finally {
      await server.close();
    }
    const { peakArrayBuffers } = result as unknown as { peakArrayBuffers: number };
    // The default maxMessageSize is 16 MiB: a buffered message of this size would have been 1009.
    assert.ok(peakArrayBuffers - baseline < 64 * MiB, `ArrayBuffer memory grew by ${((peakArrayBuffers - baseline) / MiB).toFixed(1)} MiB while ${total} MiB passed`);
  });
}

test('a compression bomb streams at the pace of its reader: 256 MiB of zeros, memory bounded', { timeout: 60_000 }, async () => {
  const [client, server] = pair({ compression: true });
  const zeros = new Uint8Array(MiB);
  const sent = client.send(repeated(zeros, 256));
  const baseline = process.memoryUsage().arrayBuffers;
  let bytes = 0;
  let peak = 0;
  for await (const piece of server.receiveStream()) {
    bytes += piece.length;
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    if (bytes % (8 * MiB) < piece.length) await sleep(1); // a reader slower than zlib
  }
  await sent;
  assert.equal(bytes, 256 * MiB);
  assert.ok(peak - baseline < 48 * MiB, `grew by ${((peak - baseline) / MiB).toFixed(1)} MiB`);
  await client.close();
});

/** A raw server whose first peer is handed out; our client connected to it. */
async function rawPair(options: Parameters<typeof connect>[1] = {}): Promise<{ peer: RawPeer; client: WebSocket; close(): Promise<void> }> {
  let resolvePeer!: (peer: RawPeer) => void;
  const arrived = new Promise<RawPeer>((resolve) => (resolvePeer = resolve));
  const server = await rawServer((peer) => resolvePeer(peer));
  const client = await connect(server.url, { pingInterval: 0, ...options });
  const peer = await arrived;
  return {
    peer,
    client,
    close: async () => {
      client.close().catch(() => {});
      await server.close();
    },
  };
}

test('pieces come out of one large frame before it has arrived, each on a buffer of its own', async () => {
  const { peer, client, close } = await rawPair();
  try {
    const stream = client.receiveStream();
    const length = 8 * MiB;
    peer.write(wireFrame(WireOp.BINARY, new Uint8Array(0), { length }));
    peer.write(new Uint8Array(100_000).fill(1));
    const first = await within(stream.next(), 2_000);
    assert.ok(first && !first.done, 'a piece before the frame ended');
    const piece = first.value as Uint8Array;
    assert.ok(piece.length > 0 && piece.length <= 100_000);
    assert.equal(piece.byteLength, piece.buffer.byteLength, 'the piece owns its ArrayBuffer');
    let received = piece.length;
    for (let sent = 100_000; sent < length; sent += 1 * MiB) peer.write(new Uint8Array(Math.min(MiB, length - sent)).fill(2));
    for await (const more of stream) received += more.length;
    assert.equal(received, length);
  } finally {
    await close();
  }
});

test('TEXT is cut at character boundaries across frames and chunks, and joins to the message', async () => {
  const { peer, client, close } = await rawPair();
  try {
    const message = 'zß水🙂'.repeat(5_000);
    const bytes = new TextEncoder().encode(message);
    const stream = client.receiveStream();
    // Fragments of 7 bytes, written 3 bytes at a time: every split of every character.
    let frames: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += 7) {
      frames.push(wireFrame(at === 0 ? WireOp.TEXT : WireOp.CONTINUATION, bytes.subarray(at, at + 7), { fin: at + 7 >= bytes.length }));
    }
    const wire = Buffer.concat(frames);
    frames = [];
    for (let at = 0; at < wire.length; at += 3000) peer.write(wire.subarray(at, at + 3000));
    const { text, pieces, types } = await readAll(stream);
    assert.equal(text, message);
    assert.deepEqual([...types], ['string']);
    assert.ok(pieces > 1, `${pieces} pieces`);
  } finally {
    await close();
  }
});

test('invalid UTF-8 fails the stream with 1007 at the first bad byte, before the message ends', async () => {
  const { peer, client, close } = await rawPair();
  try {
    const stream = client.receiveStream();
    peer.send(WireOp.TEXT, 'valid start, ', { fin: false });
    const first = await within(stream.next(), 2_000);
    assert.deepEqual(first, { value: 'valid start, ', done: false });
    peer.send(WireOp.CONTINUATION, new Uint8Array([0x61, 0xff, 0x62]), { fin: false }); // the message never ends
    await assert.rejects(within(stream.next(), 2_000), (error: unknown) => error instanceof WebSocketError && error.code === 1007);
    const close = await peer.closeFrame();
    assert.equal(close.code, 1007);
  } finally {
    await close();
  }
});

test('the next receive() waits until the stream is read to its end, and gets the message after it', async () => {
  const [client, server] = pair();
  const stream = server.receiveStream();
  const afterwards = server.receive();
  let settled = false;
  void afterwards.then(() => (settled = true));
  await client.send([new Uint8Array(300_000), new Uint8Array(300_000)]);
  await client.send('second');
  const first = await stream.next();
  assert.equal(first.done, false);
  await sleep(20);
  assert.equal(settled, false, 'receive() waits while the stream is unread');
  let bytes = (first.value as Uint8Array).length;
  for await (const piece of stream) bytes += piece.length;
  assert.equal(bytes, 600_000);
  assert.equal(await afterwards, 'second');
  await client.close();
});

test('stream after stream: each large message goes to the next receiveStream(), none is buffered whole', async () => {
  const [client, server] = pair({ maxMessageSize: MiB });
  const sending = (async () => {
    for (let i = 0; i < 10; i++) await client.send(repeated(patterned.subarray(0, MiB / 2), 8)); // 4 MiB each, above maxMessageSize
  })();
  // Asking for the next one as soon as this one ends.
  for (let i = 0; i < 5; i++) assert.equal((await readAll(server.receiveStream())).bytes, 4 * MiB, `message ${i}`);
  // Asking for the next one before reading this one: then the reader may do work in between.
  let next = server.receiveStream();
  for (let i = 5; i < 10; i++) {
    const stream = next;
    if (i < 9) next = server.receiveStream();
    assert.equal((await readAll(stream)).bytes, 4 * MiB, `message ${i}`);
    await sleep(2);
  }
  await sending;
  await client.close();
});

test('break abandons the message: the rest is dropped, and the next message is received whole', async () => {
  const [client, server] = pair();
  const stream = server.receiveStream();
  const sent = client.send(repeated(patterned, 32));
  void client.send('next');
  for await (const piece of stream) {
    assert.ok(piece.length > 0);
    break;
  }
  assert.equal(await server.receive(), 'next');
  // Kept, the rest would have filled the receive buffer and stopped the sender (backpressure).
  assert.notEqual(await within(sent.then(() => 'sent'), 10_000), null, 'the rest was read and dropped, not kept');
  assert.equal(server.stats.messagesIn, 2);
  await client.close();
});

test('a message already queued comes whole, as one piece; an empty message is one empty piece', async () => {
  const [client, server] = pair();
  await client.send('queued');
  await client.send(new Uint8Array(0));
  await client.send('');
  await sleep(5);
  assert.deepEqual(await readAll(server.receiveStream()), { text: 'queued', bytes: 6, pieces: 1, types: new Set(['string']) });
  const empty = await server.receiveStream().next();
  assert.ok(!empty.done && empty.value instanceof Uint8Array && empty.value.length === 0);
  assert.deepEqual(await readAll(server.receiveStream()), { text: '', bytes: 0, pieces: 1, types: new Set(['string']) });
  await client.close();
});

test('an unread stream is backpressure: the sender stops, the receiver holds about maxQueuedBytes', async () => {
  const server = await listen('127.0.0.1', 0, async (ws) => {
    const stream = ws.receiveStream();
    await stream.next();
    await sleep(300); // not reading
    held.push(process.memoryUsage().arrayBuffers);
    await readAll(stream);
    await ws.send('done');
  }, { pingInterval: 0, maxQueuedBytes: 256 * 1024 });
  const held: number[] = [];
  try {
    const client = await connect(`ws://127.0.0.1:${server.port}`, { pingInterval: 0 });
    let sentMiB = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for (; sentMiB < 64; sentMiB++) yield patterned;
    }
    const sending = client.send(counted());
    await sleep(250);
    assert.ok(sentMiB < 32, `the sender went on: ${sentMiB} MiB handed out while the receiver did not read`);
    await sending;
    assert.equal(await client.receive(), 'done');
    await client.close();
  } finally {
    await server.close();
  }
});

test('the end of the connection mid-message is an error after the pieces that came, never a short message', async () => {
  const { peer, client, close } = await rawPair();
  try {
    const stream = client.receiveStream();
    peer.send(WireOp.BINARY, new Uint8Array(1000).fill(9), { fin: false });
    const first = await stream.next();
    assert.equal((first.value as Uint8Array).length, 1000);
    peer.destroy();
    await assert.rejects(within(stream.next(), 2_000), (error: unknown) => error instanceof WebSocketError && error.code === 1006 && /before the message/.test(error.message));
    assert.deepEqual(await stream.next(), { value: undefined, done: true }, 'then done');
    await assert.rejects(client.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1006);
  } finally {
    await close();
  }
});

test('a signal: aborted while waiting, the stream rejects and the message goes to the next receive(); mid-message, the rest is dropped', async () => {
  const [client, server] = pair();
  const waiting = new AbortController();
  const early = server.receiveStream({ signal: waiting.signal });
  waiting.abort(new Error('gave up'));
  await assert.rejects(early.next(), /gave up/);
  await client.send('for receive');
  assert.equal(await server.receive(), 'for receive');

  const midway = new AbortController();
  const stream = server.receiveStream({ signal: midway.signal });
  const sent = client.send(repeated(patterned, 8));
  const after = client.send('after');
  const first = await stream.next();
  assert.equal(first.done, false);
  midway.abort(new Error('enough'));
  await assert.rejects(stream.next(), /enough/);
  assert.equal(await server.receive(), 'after');
  await Promise.all([sent, after]);
  await assert.rejects(server.receiveStream({ signal: AbortSignal.abort(new Error('already')) }).next(), /already/);
  await client.close();
});

test('maxMessageSize still guards buffered messages: receive() of a larger one closes 1009', async () => {
  const [client, server] = pair({ maxMessageSize: 1000 });
  await client.send(new Uint8Array(5000));
  await assert.rejects(server.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1009);
  assert.equal((await client.closed).code, 1009);
});

test('streams and iteration share one line: messages keep their order whoever takes them', async () => {
  const [client, server] = pair();
  for (let i = 0; i < 6; i++) await client.send(i % 2 ? `text ${i}` : new Uint8Array([i]));
  await client.close();
  const taken: Data[] = [];
  const streams = [server.receiveStream(), server.receiveStream()];
  const received = server.receive();
  for (const stream of streams) for await (const piece of stream) taken.push(piece);
  taken.push(await received);
  for await (const message of server) taken.push(message);
  assert.deepEqual(taken.map((m) => (typeof m === 'string' ? m : m[0])), [0, 'text 1', 2, 'text 3', 4, 'text 5']);
});

// ── found by an outside review of receiveStream() (each failed before its fix) ──────────────

/** One compressed BINARY message as frames, one fragment per block, each block deflated with a sync flush (as a peer streaming it would). */
async function deflatedFragments(blocks: Uint8Array[]): Promise<Buffer> {
  const deflater = createDeflateRaw();
  const fragments: Buffer[] = [];
  for (const block of blocks) {
    deflater.write(block);
    await new Promise<void>((resolve) => deflater.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve()));
    const out: Buffer[] = [];
    for (let chunk: Buffer | null; (chunk = deflater.read() as Buffer | null);) out.push(chunk);
    fragments.push(Buffer.concat(out));
  }
  deflater.close();
  const last = fragments.length - 1;
  fragments[last] = (fragments[last] as Buffer).subarray(0, -4); // RFC 7692 §7.2.1: without 00 00 ff ff
  return Buffer.concat(fragments.map((payload, i) => wireFrame(i === 0 ? WireOp.BINARY : WireOp.CONTINUATION, payload, { fin: i === last, rsv1: i === 0 })));
}

test('review 1: stalled readers of compressed streams hold no zlib slot: other connections still inflate and deflate', { timeout: 30_000 }, async () => {
  const big = await deflatedFragments(Array.from({ length: 300 }, () => randomBytes(4096)));
  const small = await deflatedFragments([new Uint8Array(4096).fill(1)]);
  const server = await rawServer((peer) => void sleep(100).then(() => peer.write(/probe/.test(peer.head) ? small : big)), {
    responseHeaders: () => ['Sec-WebSocket-Extensions: permessage-deflate'],
  });
  const options = { compression: true, pingInterval: 0 };
  try {
    const stalled = await Promise.all(Array.from({ length: 12 }, () => connect(`${server.url}/big`, options)));
    const streams = stalled.map((ws) => ws.receiveStream()); // never read
    await sleep(800);
    assert.ok(streams.every((stream) => stream.bufferedBytes > 0), 'every stalled stream started');
    const [a] = pair({ compression: true });
    assert.equal(await within(a.send('x'.repeat(5_000)).then(() => 'sent'), 3_000), 'sent', 'an unrelated compressed send() goes out');
    const probe = await connect(`${server.url}/probe`, options);
    const received = await within(probe.receive(), 3_000);
    assert.ok(received instanceof Uint8Array && received.length === 4096, 'a compressed message on another connection gets through');
    for (const stream of streams) await stream.return();
    await Promise.all([probe, a, ...stalled].map((ws) => ws.close()));
  } finally {
    await server.close();
  }
});

test('review 2: close() after a streamed message still delivers a message that had arrived', async () => {
  const [client, server] = pair();
  await client.send('first');
  await client.send('second');
  let first = '';
  for await (const piece of server.receiveStream()) first += piece;
  assert.equal(first, 'first');
  await sleep(20);
  const closing = server.close(1000, 'bye');
  assert.equal(await server.receive(), 'second');
  await closing;
});

test('review 3: after a streamed message, the peer\'s close is read and echoed (no 1006, no hang)', async () => {
  const server = await listen('127.0.0.1', 0, async (ws) => {
    await sleep(100);
    await ws.send('first');
    await sleep(50);
    await ws.send('second'); // arrives after the stream of 'first' was read: it waited for someone to ask
    await sleep(50);
    await ws.close(1000, 'bye');
  }, { pingInterval: 0 });
  try {
    const client = await connect(`ws://127.0.0.1:${server.port}`, { pingInterval: 0 });
    for await (const piece of client.receiveStream()) assert.equal(piece, 'first');
    assert.deepEqual(await within(client.closed, 3_000), { code: 1000, reason: 'bye' });
    assert.equal(await client.receive(), 'second');
  } finally {
    await server.close();
  }
});

test('review 4: a queued BINARY message handed to a stream owns its buffer', async () => {
  const { peer, client, close } = await rawPair();
  try {
    const binary = wireFrame(WireOp.BINARY, new Uint8Array(40_000).fill(0xaa));
    const text = wireFrame(WireOp.TEXT, 'secret-'.repeat(3000));
    peer.write(Buffer.concat([binary, text]));
    await sleep(100);
    for await (const piece of client.receiveStream()) {
      assert.ok(piece instanceof Uint8Array);
      assert.equal(piece.byteLength, piece.buffer.byteLength, 'its ArrayBuffer holds the piece alone');
    }
    assert.equal(await client.receive(), 'secret-'.repeat(3000));
  } finally {
    await close();
  }
});

test('review 5: a message cut short by a normal close is still an abnormal end for the stream (1006, not isOk)', async () => {
  const { peer, client, close } = await rawPair();
  try {
    const stream = client.receiveStream();
    peer.send(WireOp.BINARY, new Uint8Array(10).fill(1), { fin: false });
    assert.equal(((await stream.next()).value as Uint8Array).length, 10);
    peer.send(WireOp.CLOSE, closeFramePayload(1000, 'done'));
    await assert.rejects(stream.next(), (error: unknown) => error instanceof WebSocketError && error.code === 1006 && !isOk(error) && /ended \(1000 done\) before the message did/.test(error.message));
  } finally {
    await close();
  }
});
