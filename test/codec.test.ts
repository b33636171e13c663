// The frame codec as pure functions over bytes: no sockets.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { encodeFrame, applyMask, FrameParser, Opcode, WebSocketError } from '../websockets.ts';
import type { FrameHeader } from '../websockets.ts';

interface ParsedFrame extends FrameHeader {
  payload: Uint8Array;
  pieces: number;
}

/** Parses a byte stream fed in the given chunks, collecting whole frames. */
function parse(chunks: Uint8Array[], expectMasked: boolean): ParsedFrame[] {
  const frames: ParsedFrame[] = [];
  let current: ParsedFrame | null = null;
  let parts: Uint8Array[] = [];
  const parser = new FrameParser(
    {
      onFrameHeader(header) {
        current = { ...header, payload: new Uint8Array(0), pieces: 0 };
        parts = [];
      },
      onFramePayload(bytes) {
        parts.push(bytes.slice());
        current!.pieces++;
      },
      onFrameEnd() {
        current!.payload = Uint8Array.from(Buffer.concat(parts));
        frames.push(current!);
        current = null;
      },
    },
    { expectMasked },
  );
  for (const chunk of chunks) parser.push(chunk);
  return frames;
}

const hex = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const utf8 = (text: string) => new TextEncoder().encode(text);
const MASK = hex('37fa213d');

/** A seeded PRNG (mulberry32), so failures reproduce. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('RFC 6455 §5.7 examples', () => {
  test('a single-frame unmasked text message', () => {
    assert.deepEqual(encodeFrame({ opcode: Opcode.TEXT, payload: utf8('Hello') }), hex('810548656c6c6f'));
  });
  test('a single-frame masked text message', () => {
    assert.deepEqual(encodeFrame({ opcode: Opcode.TEXT, payload: utf8('Hello'), mask: MASK }), hex('818537fa213d7f9f4d5158'));
  });
  test('a fragmented unmasked text message', () => {
    assert.deepEqual(encodeFrame({ opcode: Opcode.TEXT, fin: false, payload: utf8('Hel') }), hex('010348656c'));
    assert.deepEqual(encodeFrame({ opcode: Opcode.CONTINUATION, payload: utf8('lo') }), hex('80026c6f'));
  });
  test('unmasked ping and masked pong', () => {
    assert.deepEqual(encodeFrame({ opcode: Opcode.PING, payload: utf8('Hello') }), hex('890548656c6c6f'));
    assert.deepEqual(encodeFrame({ opcode: Opcode.PONG, payload: utf8('Hello'), mask: MASK }), hex('8a8537fa213d7f9f4d5158'));
  });
  test('256 bytes and 64 KiB binary messages in a single unmasked frame', () => {
    const small = encodeFrame({ opcode: Opcode.BINARY, payload: new Uint8Array(256) });
    assert.deepEqual(small.subarray(0, 4), hex('827e0100'));
    const large = encodeFrame({ opcode: Opcode.BINARY, payload: new Uint8Array(65536) });
    assert.deepEqual(large.subarray(0, 10), hex('827f0000000000010000'));
  });
  test('the parser reads the examples back', () => {
    const [masked] = parse([hex('818537fa213d7f9f4d5158')], true);
    assert.equal(new TextDecoder().decode(masked.payload), 'Hello');
    assert.equal(masked.fin, true);
    assert.equal(masked.opcode, Opcode.TEXT);
    const fragments = parse([hex('010348656c 80026c6f')], false);
    assert.deepEqual(fragments.map((f) => [f.fin, f.opcode, new TextDecoder().decode(f.payload)]), [
      [false, Opcode.TEXT, 'Hel'],
      [true, Opcode.CONTINUATION, 'lo'],
    ]);
  });
});

describe('length encodings', () => {
  for (const [length, headerSize] of [[0, 2], [125, 2], [126, 4], [65535, 4], [65536, 10], [70000, 10]]) {
    test(`${length} bytes use a ${headerSize}-byte header and read back`, () => {
      const payload = Uint8Array.from({ length }, (_, i) => i & 0xff);
      const frame = encodeFrame({ opcode: Opcode.BINARY, payload });
      assert.equal(frame.length, headerSize + length);
      const [parsed] = parse([frame], false);
      assert.equal(parsed.length, length);
      assert.deepEqual(parsed.payload, payload);
      const maskedFrame = encodeFrame({ opcode: Opcode.BINARY, payload, mask: true });
      assert.equal(maskedFrame.length, headerSize + 4 + length);
      assert.deepEqual(parse([maskedFrame], true)[0].payload, payload);
    });
  }
  test('a 64-bit length with its top bit set is a protocol error', () => {
    assert.throws(() => parse([hex('827f8000000000000001')], false), (error: WebSocketError) => error.code === 1002 && /significant/.test(error.reason));
  });
});

describe('payload target', () => {
  test('a sink that offers a buffer gets the rest of the frame unmasked in place there, as views of it', () => {
    const random = prng(4);
    for (const masked of [true, false]) {
      const payload = Uint8Array.from({ length: 70_001 }, () => Math.floor(random() * 256));
      const frame = encodeFrame({ opcode: Opcode.BINARY, payload, mask: masked });
      const target = new Uint8Array(payload.length);
      let received = 0;
      let viewsOfTarget = 0;
      const parser = new FrameParser(
        {
          onFrameHeader() {},
          onFramePayload(bytes) {
            if (bytes.buffer === target.buffer) {
              viewsOfTarget++;
              assert.equal(bytes.byteOffset, received, 'each piece sits at its offset in the frame');
            } else {
              target.set(bytes, received); // before the target is offered, the sink copies itself
            }
            received += bytes.length;
          },
          onFrameEnd() {},
          payloadTarget: () => (received >= 1_000 ? target : null),
        },
        { expectMasked: masked },
      );
      // Odd chunk sizes: pieces start at every key phase.
      for (let at = 0; at < frame.length; at += 4_099) parser.push(frame.slice(at, at + 4_099));
      assert.equal(received, payload.length);
      assert.ok(viewsOfTarget > 10, `${viewsOfTarget} pieces went to the target`);
      assert.deepEqual(target, payload, masked ? 'unmasked while copied' : 'copied');
    }
  });
});

describe('masking', () => {
  test('masking twice restores the payload, at any alignment and offset', () => {
    const random = prng(1);
    for (let round = 0; round < 200; round++) {
      const length = Math.floor(random() * 300);
      const start = Math.floor(random() * 4);
      const offset = Math.floor(random() * 4);
      const buffer = Uint8Array.from({ length: length + start }, () => Math.floor(random() * 256));
      const data = buffer.subarray(start);
      const original = data.slice();
      const key = Uint8Array.from({ length: 4 }, () => Math.floor(random() * 256));
      applyMask(data, key, offset);
      for (let i = 0; i < length; i++) assert.equal(data[i], original[i] ^ key[(offset + i) & 3], `byte ${i} of round ${round}`);
      applyMask(data, key, offset);
      assert.deepEqual(data, original);
    }
  });
  // The sizes where the masking code changes path: the WebAssembly kernel from 64 bytes (copying)
  // and 512 (in place), its 16 KiB blocks, and the word loop's 32-byte minimum.
  const edgeSizes = [0, 1, 3, 31, 32, 33, 63, 64, 65, 511, 512, 513, 16383, 16384, 16385, 16400, 40000, 70001];

  test('masking in place matches a byte-by-byte reference at every path edge, alignment and offset', () => {
    const random = prng(2);
    for (const length of edgeSizes) {
      for (let start = 0; start < 4; start++) {
        const offset = Math.floor(random() * 4);
        const buffer = Uint8Array.from({ length: length + start + 8 }, () => Math.floor(random() * 256));
        const before = buffer.slice();
        const key = Uint8Array.from({ length: 4 }, () => Math.floor(random() * 256));
        applyMask(buffer.subarray(start, start + length), key, offset);
        for (let i = 0; i < buffer.length; i++) {
          const inside = i >= start && i < start + length;
          const expected = inside ? before[i] ^ key[(offset + i - start) & 3] : before[i];
          if (buffer[i] !== expected) assert.fail(`length ${length}, start ${start}, offset ${offset}: byte ${i} is ${buffer[i]}, expected ${expected}`);
        }
      }
    }
  });
  test('a masked frame carries the payload masked with its key, at every path edge', () => {
    const random = prng(3);
    for (const length of edgeSizes) {
      const payload = Uint8Array.from({ length }, () => Math.floor(random() * 256));
      const key = Uint8Array.from({ length: 4 }, () => Math.floor(random() * 256));
      const frame = encodeFrame({ opcode: Opcode.BINARY, payload, mask: key });
      const body = frame.subarray(frame.length - length);
      assert.deepEqual(frame.subarray(frame.length - length - 4, frame.length - length), key);
      for (let i = 0; i < length; i++) if (body[i] !== (payload[i] ^ key[i & 3])) assert.fail(`length ${length}: byte ${i}`);
    }
  });
  test('without WebAssembly (node --jitless) masking falls back to the word loop and gives the same bytes', () => {
    const script = `
      import { applyMask, encodeFrame } from ${JSON.stringify(new URL('../../dist/websockets.js', import.meta.url).href)};
      if (typeof WebAssembly !== 'undefined') throw new Error('WebAssembly is still there');
      const data = Uint8Array.from({ length: 70001 }, (_, i) => (i * 7) & 255);
      applyMask(data.subarray(1), Uint8Array.of(1, 2, 3, 4), 2);
      const frame = encodeFrame({ opcode: 2, payload: Uint8Array.from({ length: 1000 }, (_, i) => i & 255), mask: Uint8Array.of(9, 8, 7, 6) });
      process.stdout.write(JSON.stringify([Array.from(data), Array.from(frame)]));`;
    const output = execFileSync(process.execPath, ['--jitless', '--input-type=module', '-e', script], { encoding: 'utf8' });
    const [data, frame] = JSON.parse(output) as [number[], number[]];
    const expectedData = Uint8Array.from({ length: 70001 }, (_, i) => (i * 7) & 255);
    applyMask(expectedData.subarray(1), Uint8Array.of(1, 2, 3, 4), 2);
    const expectedFrame = encodeFrame({ opcode: 2, payload: Uint8Array.from({ length: 1000 }, (_, i) => i & 255), mask: Uint8Array.of(9, 8, 7, 6) });
    assert.deepEqual(Uint8Array.from(data), expectedData);
    assert.deepEqual(Uint8Array.from(frame), expectedFrame);
  });
  test('encodeFrame never masks the caller’s buffer in place', () => {
    const payload = utf8('do not touch me, please');
    const copy = payload.slice();
    encodeFrame({ opcode: Opcode.TEXT, payload, mask: true });
    assert.deepEqual(payload, copy);
  });
  test('random masks differ between frames', () => {
    const a = encodeFrame({ opcode: Opcode.TEXT, payload: utf8('x'), mask: true });
    const b = encodeFrame({ opcode: Opcode.TEXT, payload: utf8('x'), mask: true });
    const c = encodeFrame({ opcode: Opcode.TEXT, payload: utf8('x'), mask: true });
    assert.ok(!(Buffer.from(a.subarray(2, 6)).equals(b.subarray(2, 6)) && Buffer.from(b.subarray(2, 6)).equals(c.subarray(2, 6))));
  });
});

describe('streamed parsing', () => {
  test('random frames split at random points parse the same as whole', () => {
    const random = prng(42);
    for (let round = 0; round < 100; round++) {
      const frames = Array.from({ length: 1 + Math.floor(random() * 6) }, () => {
        const length = [0, 1, 125, 126, 127, 1000, 65535, 65536][Math.floor(random() * 8)];
        const payload = Uint8Array.from({ length }, () => Math.floor(random() * 256));
        return { opcode: Opcode.BINARY, fin: random() < 0.5, payload };
      });
      const stream = Buffer.concat(frames.map((frame) => encodeFrame({ ...frame, mask: true })));
      const chunks: Uint8Array[] = [];
      for (let offset = 0; offset < stream.length; ) {
        const size = 1 + Math.floor(random() * (random() < 0.5 ? 8 : 70000));
        chunks.push(Uint8Array.from(stream.subarray(offset, offset + size)));
        offset += size;
      }
      const parsed = parse(chunks, true);
      assert.equal(parsed.length, frames.length, `round ${round}`);
      parsed.forEach((frame, i) => {
        assert.equal(frame.fin, frames[i].fin);
        assert.deepEqual(frame.payload, frames[i].payload);
      });
    }
  });
  test('a frame that arrives whole is handed over in one piece, without a copy', () => {
    const chunk = encodeFrame({ opcode: Opcode.BINARY, payload: new Uint8Array(1000).fill(7) });
    let seen: Uint8Array | null = null;
    const parser = new FrameParser({ onFrameHeader() {}, onFramePayload: (bytes) => (seen = bytes), onFrameEnd() {} }, { expectMasked: false });
    parser.push(chunk);
    assert.ok(seen);
    assert.equal((seen as Uint8Array).buffer, chunk.buffer);
  });
  test('a header split byte by byte still parses', () => {
    const frame = encodeFrame({ opcode: Opcode.TEXT, payload: new Uint8Array(70000), mask: MASK });
    const chunks = [...frame.subarray(0, 14)].map((byte) => Uint8Array.of(byte));
    chunks.push(frame.slice(14));
    const [parsed] = parse(chunks, true);
    assert.equal(parsed.length, 70000);
    assert.deepEqual(parsed.payload, new Uint8Array(70000));
  });
});

describe('protocol errors', () => {
  const cases: Array<[string, string, boolean, RegExp]> = [
    ['reserved bit 1 without an extension', 'c100', false, /reserved bits/],
    ['reserved bit 2', 'a100', false, /reserved bits/],
    ['reserved bit 3', '9100', false, /reserved bits/],
    ['reserved data opcode 3', '8300', false, /reserved opcode 3/],
    ['reserved control opcode 11', '8b00', false, /reserved opcode 11/],
    ['a fragmented ping', '0900', false, /fragmented control/],
    ['a 126-byte ping', '897e007e' + '00'.repeat(126), false, /125/],
    ['an unmasked frame at a server', '8100', true, /unmasked/],
    ['a masked frame at a client', '818000000000', false, /masked frame from a server/],
  ];
  for (const [name, bytes, expectMasked, reason] of cases) {
    test(`${name} → 1002`, () => {
      assert.throws(
        () => parse([hex(bytes)], expectMasked),
        (error: unknown) => error instanceof WebSocketError && error.code === 1002 && reason.test(error.reason),
      );
    });
  }
  test('RSV1 is accepted when an extension allows it', () => {
    const frames: FrameHeader[] = [];
    new FrameParser({ onFrameHeader: (h) => frames.push(h), onFramePayload() {}, onFrameEnd() {} }, { expectMasked: false, allowRsv1: true }).push(hex('c100'));
    assert.equal(frames[0].rsv1, true);
  });
  test('a fuzz loop over the parser yields only WebSocketErrors with code 1002', () => {
    const random = prng(7);
    let errors = 0;
    for (let round = 0; round < 5000; round++) {
      const length = Math.floor(random() * 40);
      const bytes = Uint8Array.from({ length }, () => Math.floor(random() * 256));
      try {
        parse([bytes], random() < 0.5);
      } catch (error) {
        assert.ok(error instanceof WebSocketError && error.code === 1002, String(error));
        errors++;
      }
    }
    assert.ok(errors > 1000, `only ${errors} inputs failed`);
  });
});
