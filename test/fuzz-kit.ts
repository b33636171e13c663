// The machinery of the fuzz tests (test/fuzz.test.ts, the quick run; test/fuzz-long.ts, the
// long run): a seeded PRNG, generators of frame streams and handshakes with their mutations,
// an independent model of what a server must answer to a byte stream (the oracle), and
// runners that feed inputs to FrameParser directly or to a live server over loopback.
//
// The oracle is written from RFC 6455 / RFC 7692, not from the library: it splits the stream
// into frames by itself and predicts, for every input, the echoes, the pongs and how the
// connection ends (the close echoed, or failed with 1002 / 1007 / 1009, or still waiting for
// bytes). Any difference is reported with the seed and the input in hex, so a failure can be
// replayed with FUZZ_SEED.
import net from 'node:net';
import zlib from 'node:zlib';
import { randomInt } from 'node:crypto';
import { FrameParser, WebSocketError, connect, listen } from '../websockets.ts';
import type { Server, WebSocket } from '../websockets.ts';
import { acceptFor, RawPeer, WireReader, wireFrame, describeFrames } from './support.ts';
import type { WireFrame } from './support.ts';

// ── PRNG ─────────────────────────────────────────────────────────────────────────────────────

/** A small seeded PRNG (xoshiro128**): the same seed gives the same inputs on every machine. */
export class Rng {
  #s: Uint32Array;

  constructor(seed: number) {
    // splitmix32 spreads the seed over the four words of state.
    this.#s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.#s.every((word) => word === 0)) this.#s[0] = 1;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 2 ** 32) * n);
  }

  /** An integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }

  pick<V>(items: readonly V[]): V {
    return items[this.int(items.length)];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** A child generator, so that one input's randomness does not depend on another's. */
  fork(): Rng {
    return new Rng(this.u32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The seed of this run: FUZZ_SEED if set (decimal or 0x hex), else a random one. */
export function fuzzSeed(): number {
  const text = process.env.FUZZ_SEED;
  if (text !== undefined && text !== '') {
    const seed = Number(text);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`FUZZ_SEED must be an integer in [0, 2^32), got ${text}`);
    return seed;
  }
  return randomInt(0, 2 ** 32 - 1);
}

// ── bytes ────────────────────────────────────────────────────────────────────────────────────

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;
const encoder = new TextEncoder();
export const utf8 = (text: string): Uint8Array => encoder.encode(text);

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ── frames, written by hand (any field may be wrong on purpose) ──────────────────────────────

/** A frame as the fuzzer builds it: every header field is free, including the lies. */
export interface RawFrameSpec {
  fin: boolean;
  rsv: number; // the three RSV bits, 0..7 (4 = RSV1)
  opcode: number;
  /** null: unmasked. */
  maskKey: Uint8Array | null;
  payload: Uint8Array;
  /** The length written in the header, if not the payload's (a lie), as a bigint for 64-bit values. */
  declaredLength?: bigint;
  /** Length encoding: minimal, or forced 16 / 64-bit (legal but not minimal). */
  encoding?: 'min' | '16' | '64';
}

export function serializeFrame(frame: RawFrameSpec): Uint8Array {
  return wireFrame(frame.opcode, frame.payload, { fin: frame.fin, rsv: frame.rsv, mask: frame.maskKey, length: frame.declaredLength, lengthField: frame.encoding });
}

// ── generators ───────────────────────────────────────────────────────────────────────────────

export interface StreamConfig {
  /** Frames from a client must be masked (a server reads them); from a server, not. */
  masked: boolean;
  maxMessageSize: number;
  maxFragments: number;
  /** permessage-deflate agreed, with client_no_context_takeover (each message on its own). */
  compression: boolean;
}

const CODE_POINTS: Array<[number, number]> = [
  [0x20, 0x7e],
  [0x00, 0x7f],
  [0x80, 0x7ff],
  [0x800, 0xd7ff],
  [0xe000, 0xfffd],
  [0x10000, 0x10ffff],
];

function randomText(rng: Rng, maxBytes: number): Uint8Array {
  const codePoints: number[] = [];
  let bytes = 0;
  const target = rng.int(maxBytes + 1);
  while (bytes < target) {
    const [low, high] = rng.pick(CODE_POINTS);
    const codePoint = rng.range(low, high);
    bytes += codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
    codePoints.push(codePoint);
  }
  return utf8(String.fromCodePoint(...codePoints));
}

/** Payload sizes that sit around the interesting boundaries: 0, 125/126, 65535/65536, the limit. */
function payloadSize(rng: Rng, config: StreamConfig): number {
  const limit = config.maxMessageSize;
  switch (rng.int(8)) {
    case 0:
      return 0;
    case 1:
      return rng.range(124, 127);
    case 2:
      return Math.max(0, limit + rng.range(-2, 2));
    case 3:
      return rng.int(limit + 1);
    default:
      return rng.int(40);
  }
}

const INVALID_UTF8: Uint8Array[] = [
  Uint8Array.of(0xff),
  Uint8Array.of(0xc0, 0x80), // overlong
  Uint8Array.of(0xed, 0xa0, 0x80), // surrogate
  Uint8Array.of(0xf4, 0x90, 0x80, 0x80), // > U+10FFFF
  Uint8Array.of(0xe2, 0x82), // truncated
  Uint8Array.of(0x80), // lone continuation
];

function mask(rng: Rng, config: StreamConfig): Uint8Array | null {
  return config.masked ? rng.bytes(4) : null;
}

function controlFrame(rng: Rng, config: StreamConfig, opcode: number, payload: Uint8Array): RawFrameSpec {
  return { fin: true, rsv: 0, opcode, maskKey: mask(rng, config), payload };
}

/** Close codes at the edges of the valid ranges, valid or not (RFC 6455 §7.4). */
const EDGE_CLOSE_CODES = [0, 999, 1000, 1003, 1004, 1005, 1006, 1007, 1014, 1015, 1016, 2999, 3000, 4999, 5000, 65535];
const VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];

function closeFrame(rng: Rng, config: StreamConfig): RawFrameSpec {
  if (rng.chance(0.2)) return controlFrame(rng, config, OP.CLOSE, new Uint8Array(0));
  const code = rng.pick(VALID_CLOSE_CODES);
  const reason = rng.chance(0.5) ? utf8('bye ' + 'é'.repeat(rng.int(20))) : randomText(rng, 20);
  return controlFrame(rng, config, OP.CLOSE, concat([Uint8Array.of(code >> 8, code & 0xff), reason]));
}

/** One data message, whole or in fragments (with control frames between them), maybe compressed. */
function dataMessage(rng: Rng, config: StreamConfig): RawFrameSpec[] {
  const text = rng.chance(0.5);
  const size = payloadSize(rng, config);
  let payload = text ? randomText(rng, size) : rng.bytes(size);
  if (text && rng.chance(0.1)) {
    const at = rng.int(payload.length + 1);
    payload = concat([payload.subarray(0, at), rng.pick(INVALID_UTF8), payload.subarray(at)]);
  }
  const compressed = config.compression && rng.chance(0.6);
  let wire = payload;
  if (compressed) {
    wire = Uint8Array.from(zlib.deflateRawSync(payload, { finishFlush: zlib.constants.Z_SYNC_FLUSH }));
    if (wire.length >= 4 && rng.chance(0.9)) wire = wire.subarray(0, wire.length - 4); // RFC 7692 §7.2.1: drop 00 00 ff ff
  }
  const fragments = rng.chance(0.6) ? 1 : rng.chance(0.9) ? rng.range(2, 6) : rng.range(config.maxFragments - 1, config.maxFragments + 2);
  const cuts = Array.from({ length: fragments - 1 }, () => rng.int(wire.length + 1)).sort((a, b) => a - b);
  const frames: RawFrameSpec[] = [];
  let start = 0;
  for (let i = 0; i < fragments; i++) {
    const end = i === fragments - 1 ? wire.length : cuts[i];
    frames.push({
      fin: i === fragments - 1,
      rsv: compressed && i === 0 ? 4 : 0,
      opcode: i === 0 ? (text ? OP.TEXT : OP.BINARY) : OP.CONT,
      maskKey: mask(rng, config),
      payload: wire.subarray(start, end),
      encoding: rng.chance(0.05) ? rng.pick(['16', '64'] as const) : 'min',
    });
    start = end;
    if (i < fragments - 1 && rng.chance(0.15)) frames.push(controlFrame(rng, config, rng.pick([OP.PING, OP.PONG]), rng.bytes(rng.int(126))));
  }
  return frames;
}

/** A stream of valid frames: a few messages, pings and pongs, and often a close at the end. */
export function validFrames(rng: Rng, config: StreamConfig): RawFrameSpec[] {
  const frames: RawFrameSpec[] = [];
  const count = rng.range(1, 4);
  for (let i = 0; i < count; i++) {
    if (rng.chance(0.25)) frames.push(controlFrame(rng, config, rng.pick([OP.PING, OP.PONG]), rng.bytes(rng.int(126))));
    else frames.push(...dataMessage(rng, config));
  }
  if (rng.chance(0.6)) frames.push(closeFrame(rng, config));
  return frames;
}

/** Mutations of the frames' fields, before they are written. */
function mutateFrames(rng: Rng, frames: RawFrameSpec[], config: StreamConfig): void {
  if (frames.length === 0) return;
  const frame = rng.pick(frames);
  switch (rng.int(14)) {
    case 0:
      frame.opcode = rng.int(16);
      break;
    case 1:
      frame.rsv = rng.int(8);
      break;
    case 2:
      frame.maskKey = frame.maskKey ? null : rng.bytes(4);
      break;
    case 3:
      frame.fin = !frame.fin;
      break;
    case 4: {
      const at = rng.int(frame.payload.length + 1);
      frame.payload = concat([frame.payload.subarray(0, at), rng.pick(INVALID_UTF8), frame.payload.subarray(at)]);
      break;
    }
    case 5: // a close frame with a 1-byte payload, a code at the edges, a random code, or a bad reason
    case 13:
      frame.opcode = OP.CLOSE;
      frame.fin = true;
      if (rng.chance(0.4)) {
        const code = rng.pick(EDGE_CLOSE_CODES);
        frame.payload = concat([Uint8Array.of(code >> 8, code & 0xff), rng.chance(0.5) ? new Uint8Array(0) : utf8('why')]);
        break;
      }
      frame.payload = rng.pick([
        Uint8Array.of(0x03),
        Uint8Array.of(rng.int(256), rng.int(256)),
        Uint8Array.of(0x03, 0xe8, 0xff, 0xfe),
        concat([Uint8Array.of(0x03, 0xe8), rng.bytes(rng.int(10))]),
      ]);
      break;
    case 6: // an oversized control frame
      frame.opcode = rng.pick([OP.PING, OP.PONG, OP.CLOSE]);
      frame.payload = rng.bytes(rng.range(126, 200));
      break;
    case 7: // a header that lies about the length
      frame.declaredLength = rng.pick([
        BigInt(frame.payload.length + rng.range(1, 10)),
        BigInt(Math.max(0, frame.payload.length - rng.range(1, 10))),
        BigInt(config.maxMessageSize + 1),
        BigInt(config.maxMessageSize),
        2n ** 63n + BigInt(rng.int(1000)), // the most significant bit set
        2n ** 62n,
        2n ** 53n + 1n,
        2n ** 32n,
        0xffffn,
        0x10000n,
      ]);
      frame.encoding = rng.pick(['min', '16', '64'] as const);
      break;
    case 8:
      frames.splice(rng.int(frames.length), 1);
      break;
    case 9:
      frames.splice(rng.int(frames.length), 0, { ...rng.pick(frames) });
      break;
    case 10: {
      const i = rng.int(frames.length);
      const j = rng.int(frames.length);
      [frames[i], frames[j]] = [frames[j], frames[i]];
      break;
    }
    case 11:
      frame.encoding = rng.pick(['16', '64'] as const);
      break;
    default:
      frames.splice(rng.int(frames.length + 1), 0, {
        fin: rng.chance(0.7),
        rsv: rng.chance(0.8) ? 0 : rng.int(8),
        opcode: rng.int(16),
        maskKey: rng.chance(0.8) === config.masked ? rng.bytes(4) : null,
        payload: rng.bytes(rng.int(130)),
      });
  }
}

/** Mutations of the bytes on the wire. */
export function mutateBytes(rng: Rng, bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  switch (rng.int(7)) {
    case 0:
    case 1: {
      const flips = rng.range(1, 4);
      for (let i = 0; i < flips && out.length > 0; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
      return out;
    }
    case 2:
      if (out.length > 0) out[rng.int(out.length)] = rng.int(256);
      return out;
    case 3:
      return out.subarray(0, rng.int(out.length + 1)); // truncation
    case 4: {
      const at = rng.int(out.length + 1);
      return concat([out.subarray(0, at), rng.bytes(rng.range(1, 16)), out.subarray(at)]);
    }
    case 5: {
      const at = rng.int(out.length + 1);
      return concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + rng.range(1, 16)))]);
    }
    default:
      return concat([out, rng.bytes(rng.range(1, 64))]);
  }
}

export type InputKind = 'valid' | 'mutated-frames' | 'mutated-bytes' | 'random-bytes' | 'random-frames';

export interface FuzzInput {
  kind: InputKind;
  bytes: Uint8Array;
}

/** One fuzz input: a byte stream for one connection's worth of frames. */
export function frameInput(rng: Rng, config: StreamConfig): FuzzInput {
  const roll = rng.int(20);
  if (roll === 0) return { kind: 'random-bytes', bytes: rng.bytes(rng.range(1, 300)) };
  if (roll === 1) {
    const frames: RawFrameSpec[] = [];
    const count = rng.range(1, 5);
    for (let i = 0; i < count; i++) {
      frames.push({
        fin: rng.chance(0.8),
        rsv: rng.chance(0.7) ? 0 : rng.int(8),
        opcode: rng.int(16),
        maskKey: rng.chance(0.9) === config.masked ? rng.bytes(4) : null,
        payload: rng.bytes(rng.int(140)),
      });
    }
    return { kind: 'random-frames', bytes: concat(frames.map(serializeFrame)) };
  }
  const frames = validFrames(rng, config);
  if (roll < 5) return { kind: 'valid', bytes: concat(frames.map(serializeFrame)) };
  if (roll < 13) {
    const mutations = rng.range(1, 3);
    for (let i = 0; i < mutations; i++) mutateFrames(rng, frames, config);
    return { kind: 'mutated-frames', bytes: concat(frames.map(serializeFrame)) };
  }
  let bytes = concat(frames.map(serializeFrame));
  const mutations = rng.range(1, 3);
  for (let i = 0; i < mutations; i++) bytes = mutateBytes(rng, bytes);
  return { kind: 'mutated-bytes', bytes };
}

// ── the oracle: what a server must answer (RFC 6455 §5–7, RFC 7692 §6–7) ─────────────────────

export interface ExpectedMessage {
  opcode: number;
  payload: Uint8Array;
}

export type ExpectedEnd =
  /** A valid close frame: echoed with its payload (code and reason). */
  | { kind: 'close-echo'; payload: Uint8Array }
  /** The connection fails: a close frame with one of these codes. */
  | { kind: 'fail'; codes: number[]; why: string }
  /** The stream stopped in the middle of a frame: the server waits for more. */
  | { kind: 'incomplete' };

export interface Expectation {
  echoes: ExpectedMessage[];
  pongs: Uint8Array[];
  end: ExpectedEnd;
}

const isValidCloseCode = (code: number) => (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);

/** One frame, as the oracle splits the stream: the header, and as much payload as arrived. */
interface SplitFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  /** The declared length: a number (exact below 2^53), or Infinity when the top bit is set. */
  length: number;
  msbSet: boolean;
  /** The unmasked payload bytes that arrived (all of them when `complete`). */
  payload: Uint8Array;
  complete: boolean;
  /** Header and payload bytes of the whole frame. */
  size: number;
}

/** Splits a byte stream into frames; stops at the first header that has not fully arrived. */
export function* splitFrames(stream: Uint8Array): Generator<SplitFrame> {
  let offset = 0;
  while (offset < stream.length) {
    if (stream.length - offset < 2) return;
    const b0 = stream[offset];
    const b1 = stream[offset + 1];
    const masked = (b1 & 0x80) !== 0;
    const short = b1 & 0x7f;
    const extended = short === 126 ? 2 : short === 127 ? 8 : 0;
    const headerSize = 2 + extended + (masked ? 4 : 0);
    if (stream.length - offset < headerSize) return;
    let length: number;
    let msbSet = false;
    if (short === 126) {
      length = (stream[offset + 2] << 8) | stream[offset + 3];
    } else if (short === 127) {
      const big = new DataView(stream.buffer, stream.byteOffset + offset + 2, 8).getBigUint64(0);
      msbSet = big >= 2n ** 63n;
      length = Number(big);
    } else {
      length = short;
    }
    const key = masked ? stream.subarray(offset + headerSize - 4, offset + headerSize) : null;
    const start = offset + headerSize;
    const available = Math.min(length, stream.length - start);
    const payload = stream.slice(start, start + available);
    if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
    const complete = available === length;
    yield { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, length, msbSet, payload, complete, size: headerSize + length };
    if (!complete) return;
    offset = start + length;
  }
}

const DEFLATE_TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff);

/** What the parser alone must say of a frame header (RFC 6455 §5.2, §5.5): a 1002 reason, or null. */
export function headerViolation(frame: SplitFrame, expectMasked: boolean, allowRsv1: boolean): string | null {
  if ((frame.rsv & 3) !== 0 || ((frame.rsv & 4) !== 0 && !allowRsv1)) return 'reserved bits';
  if (!(frame.opcode <= 2 || (frame.opcode >= 8 && frame.opcode <= 10))) return 'reserved opcode';
  if (frame.masked !== expectMasked) return 'masking';
  if (frame.msbSet) return 'length with the top bit set';
  if (frame.opcode >= 8 && !frame.fin) return 'fragmented control frame';
  if (frame.opcode >= 8 && frame.length > 125) return 'control frame over 125 bytes';
  return null;
}

/**
 * What a server (or, with `masked: false`, a client) must do with `stream`: echo each data
 * message (the echo handler), answer each ping, and end as RFC 6455 says.
 */
export function expect(stream: Uint8Array, config: StreamConfig): Expectation {
  const echoes: ExpectedMessage[] = [];
  const pongs: Uint8Array[] = [];
  const fail = (codes: number[], why: string): Expectation => ({ echoes, pongs, end: { kind: 'fail', codes, why } });
  let messageOpcode = 0;
  let compressed = false;
  let fragments = 0;
  let size = 0;
  let parts: Uint8Array[] = [];
  let decoder: TextDecoder | null = null;
  for (const frame of splitFrames(stream)) {
    const violation = headerViolation(frame, config.masked, config.compression);
    if (violation) return fail([1002], violation);
    const control = frame.opcode >= 8;
    const rsv1 = (frame.rsv & 4) !== 0;
    if (rsv1 && (control || frame.opcode === OP.CONT)) return fail([1002], 'RSV1 on a control or continuation frame');
    if (control) {
      if (!frame.complete) break;
      if (frame.opcode === OP.PING) pongs.push(frame.payload);
      if (frame.opcode === OP.CLOSE) {
        const p = frame.payload;
        if (p.length === 1) return fail([1002], 'close payload of 1 byte');
        if (p.length >= 2) {
          const code = (p[0] << 8) | p[1];
          if (!isValidCloseCode(code)) return fail([1002], `close code ${code}`);
          try {
            new TextDecoder('utf-8', { fatal: true }).decode(p.subarray(2));
          } catch {
            return fail([1007], 'close reason not UTF-8');
          }
        }
        return { echoes, pongs, end: { kind: 'close-echo', payload: p } };
      }
      continue;
    }
    if (frame.opcode === OP.CONT) {
      if (messageOpcode === 0) return fail([1002], 'continuation without a message');
    } else {
      if (messageOpcode !== 0) return fail([1002], 'new message inside a fragmented one');
      messageOpcode = frame.opcode;
      compressed = rsv1;
      decoder = messageOpcode === OP.TEXT && !compressed ? new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }) : null;
    }
    fragments++;
    if (config.maxFragments > 0 && fragments > config.maxFragments) return fail([1009], 'too many fragments');
    // From the header, before any payload. A compressed message may grow by deflate's worst
    // case on the wire (the library allows limit + limit/256 + 1 KiB); its inflated size is what counts.
    const wireLimit = compressed ? config.maxMessageSize + (config.maxMessageSize >>> 8) + 1024 : config.maxMessageSize;
    if (config.maxMessageSize > 0 && size + frame.length > wireLimit) return fail([1009], 'too big (from the header)');
    size += frame.length;
    if (decoder) {
      try {
        decoder.decode(frame.payload, { stream: !(frame.fin && frame.complete) });
      } catch {
        return fail([1007], 'text not UTF-8');
      }
    }
    if (!frame.complete) break;
    parts.push(frame.payload);
    if (!frame.fin) continue;
    // The message is complete.
    let payload = concat(parts);
    if (compressed) {
      let inflated: Uint8Array;
      try {
        inflated = Uint8Array.from(zlib.inflateRawSync(concat([payload, DEFLATE_TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }));
      } catch {
        // Output that came before the error may already be over the limit.
        return fail([1007, 1009], 'invalid compressed data');
      }
      const tooBig = config.maxMessageSize > 0 && inflated.length > config.maxMessageSize;
      let validText = true;
      if (messageOpcode === OP.TEXT) {
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(inflated);
        } catch {
          validText = false;
        }
      }
      // Both checks run as the output comes, so whichever comes first wins.
      if (tooBig) return fail(validText ? [1009] : [1007, 1009], 'too big once inflated');
      if (!validText) return fail([1007], 'inflated text not UTF-8');
      payload = inflated;
    }
    echoes.push({ opcode: messageOpcode, payload });
    messageOpcode = 0;
    compressed = false;
    fragments = 0;
    size = 0;
    parts = [];
    decoder = null;
  }
  return { echoes, pongs, end: { kind: 'incomplete' } };
}

// ── FrameParser against the oracle's splitter (no sockets) ───────────────────────────────────

interface ParserEvent {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  length: number;
  payload: Uint8Array;
  ended: boolean;
}

/** Feeds `stream` to a FrameParser in the given pieces; returns what it reported and how it stopped. */
export function runParser(stream: Uint8Array, cuts: number[], expectMasked: boolean, allowRsv1: boolean): { events: ParserEvent[]; error: unknown } {
  const events: ParserEvent[] = [];
  let current: ParserEvent | null = null;
  let pieces: Uint8Array[] = [];
  const parser = new FrameParser(
    {
      onFrameHeader(header) {
        current = { fin: header.fin, rsv1: header.rsv1, opcode: header.opcode, length: header.length, payload: new Uint8Array(0), ended: false };
        pieces = [];
        events.push(current);
      },
      onFramePayload(bytes) {
        pieces.push(bytes.slice());
      },
      onFrameEnd() {
        if (current) {
          current.payload = concat(pieces);
          current.ended = true;
        }
      },
    },
    { expectMasked, allowRsv1 },
  );
  const copy = stream.slice(); // the parser unmasks in place
  let error: unknown = null;
  let start = 0;
  try {
    for (const cut of [...cuts, copy.length]) {
      if (cut < start) continue;
      parser.push(copy.subarray(start, cut));
      start = cut;
    }
  } catch (caught) {
    error = caught;
  }
  if (current && !(current as ParserEvent).ended) (current as ParserEvent).payload = concat(pieces);
  return { events, error };
}

/**
 * FrameParser must agree with the splitter, frame by frame, however the stream is cut: the
 * same headers, the same unmasked payload, and a 1002 exactly where the header breaks a
 * rule. Returns a description of the first difference, or null.
 */
export function checkParser(stream: Uint8Array, rng: Rng, expectMasked: boolean, allowRsv1: boolean): string | null {
  const expected: ParserEvent[] = [];
  let expectedError: string | null = null;
  for (const frame of splitFrames(stream)) {
    const violation = headerViolation(frame, expectMasked, allowRsv1);
    if (violation) {
      expectedError = violation;
      break;
    }
    expected.push({ fin: frame.fin, rsv1: (frame.rsv & 4) !== 0, opcode: frame.opcode, length: frame.length, payload: frame.payload, ended: frame.complete });
    if (!frame.complete) break;
  }
  // Whole, in a few random pieces, or (short inputs) one byte at a time.
  const bytewise = stream.length <= 256 && rng.chance(0.15);
  const cuts = bytewise ? Array.from({ length: stream.length }, (_, i) => i + 1) : Array.from({ length: rng.int(5) }, () => rng.int(stream.length + 1)).sort((a, b) => a - b);
  const { events, error } = runParser(stream, cuts, expectMasked, allowRsv1);
  if (error !== null && !(error instanceof WebSocketError && error.code === 1002)) return `the parser threw something other than a 1002 WebSocketError: ${String(error)}`;
  if (expectedError && error === null) return `expected a 1002 (${expectedError}), the parser accepted it`;
  if (!expectedError && error !== null) return `the parser threw ${String(error)}, the oracle saw no violation`;
  if (events.length !== expected.length) return `the parser reported ${events.length} frames, the oracle ${expected.length}`;
  for (let i = 0; i < events.length; i++) {
    const a = events[i];
    const b = expected[i];
    if (a.fin !== b.fin || a.rsv1 !== b.rsv1 || a.opcode !== b.opcode || a.length !== b.length || a.ended !== b.ended || !sameBytes(a.payload, b.payload)) {
      return `frame ${i} differs: parser ${describeEvent(a)}, oracle ${describeEvent(b)} (cuts ${cuts.slice(0, 20).join(',')})`;
    }
  }
  return null;
}

function describeEvent(event: ParserEvent): string {
  return JSON.stringify({ ...event, payload: hex(event.payload.subarray(0, 32)) + (event.payload.length > 32 ? '…' : '') });
}

// ── live: raw TCP peers against a server ─────────────────────────────────────────────────────


/** What the splitting alone says is wrong with a server's frames: a masked one. */
function malformed(frames: readonly WireFrame[]): string | null {
  return frames.some((frame) => frame.masked) ? 'a masked frame from the server' : null;
}

export interface LiveOutcome {
  frames: WireFrame[];
  malformed: string | null;
  /** The TCP connection closed (before the deadline). */
  closed: boolean;
  /** Milliseconds from the first byte sent to the TCP close. */
  elapsed: number;
}

function openSocket(port: number, allowHalfOpen: boolean): { socket: net.Socket; closed: Promise<void>; isClosed: () => boolean } {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen });
  socket.setNoDelay(true);
  socket.on('error', () => {});
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  return { socket, closed, isClosed: () => isClosed };
}


/** Writes `bytes` in a few pieces, each in its own macrotask (so, mostly, its own TCP segment). */
async function writeInPieces(socket: net.Socket, bytes: Uint8Array, rng: Rng): Promise<void> {
  const count = rng.chance(0.5) ? 1 : rng.range(2, 4);
  const cuts = Array.from({ length: count - 1 }, () => rng.int(bytes.length + 1)).sort((a, b) => a - b);
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > start && !socket.destroyed) socket.write(bytes.subarray(start, cut));
    start = Math.max(start, cut);
    if (cut !== bytes.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Runs one input against a live server and compares what came back with the oracle. Returns
 * a description of the difference, or null. `deadline` bounds the whole exchange (a hang is
 * a failure).
 */
export async function runLive(port: number, input: Uint8Array, config: StreamConfig, rng: Rng, deadline = 3_000): Promise<{ problem: string | null; outcome: LiveOutcome; expected: Expectation }> {
  const expected = expect(input, config);
  const peer = await RawPeer.connect(port, { path: '/fuzz', extensions: config.compression ? 'permessage-deflate; client_no_context_takeover; server_no_context_takeover' : undefined });
  const { socket, frames } = peer;
  const started = performance.now();
  const limit = started + deadline;
  const outcome = (): LiveOutcome => ({ frames, malformed: malformed(frames), closed: peer.closed, elapsed: performance.now() - started });
  /** Waits (bounded by the deadline) until `condition` holds or the connection closes; then whether it holds. */
  const waitFor = async (condition: () => boolean): Promise<boolean> => {
    await peer.until(() => condition() || peer.closed, limit - performance.now(), 'the server').catch(() => {});
    return condition();
  };
  try {
    if (config.compression && !peer.deflate) throw new Error(`compression not agreed: ${peer.head}`);
    await writeInPieces(socket, input, rng);
    const dataCount = () => frames.filter((f) => f.opcode !== OP.PONG && f.opcode !== OP.CLOSE).length;
    const pongCount = () => frames.filter((f) => f.opcode === OP.PONG).length;
    if (expected.end.kind === 'incomplete') {
      // Wait for what must come back; then our FIN ends the connection (no close frame from us).
      await waitFor(() => dataCount() >= expected.echoes.length && pongCount() >= expected.pongs.length);
      await new Promise<void>((resolve) => setTimeout(resolve, 5));
      socket.end();
    }
    await waitFor(() => peer.closed);
    const problem = compare(expected, outcome(), config);
    return { problem, outcome: outcome(), expected };
  } finally {
    socket.destroy();
  }
}

/** The server's replies against the oracle. */
export function compare(expected: Expectation, outcome: LiveOutcome, config: StreamConfig): string | null {
  const problems: string[] = [];
  if (outcome.malformed) problems.push(outcome.malformed);
  if (!outcome.closed) problems.push(`the TCP connection did not close within the deadline (${Math.round(outcome.elapsed)} ms)`);
  const frames = outcome.frames;
  const closes = frames.filter((f) => f.opcode === OP.CLOSE);
  const pongs = frames.filter((f) => f.opcode === OP.PONG).map((f) => f.payload);
  const data = frames.filter((f) => f.opcode !== OP.CLOSE && f.opcode !== OP.PONG);
  // Echoes: one frame per message (the echo handler sends whole messages), inflated if RSV1.
  const echoes: ExpectedMessage[] = [];
  for (const frame of data) {
    if (!frame.fin || (frame.opcode !== OP.TEXT && frame.opcode !== OP.BINARY)) {
      problems.push(`unexpected data frame from the server: ${describeFrames([frame], Infinity)}`);
      continue;
    }
    let payload = frame.payload;
    if (frame.rsv === 4 && config.compression) {
      try {
        payload = Uint8Array.from(zlib.inflateRawSync(concat([payload, DEFLATE_TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }));
      } catch (error) {
        problems.push(`the server's compressed echo does not inflate: ${String(error)}`);
      }
    } else if (frame.rsv !== 0) {
      problems.push(`RSV bits ${frame.rsv} on a server frame`);
    }
    echoes.push({ opcode: frame.opcode, payload });
  }
  const closing = expected.end.kind !== 'incomplete';
  // With compression, an echo still being deflated when the close comes is legitimately dropped.
  const prefixOk = closing && config.compression;
  if (prefixOk ? echoes.length > expected.echoes.length : echoes.length !== expected.echoes.length) {
    problems.push(`${echoes.length} echoes, expected ${prefixOk ? 'at most ' : ''}${expected.echoes.length}`);
  }
  for (let i = 0; i < Math.min(echoes.length, expected.echoes.length); i++) {
    if (echoes[i].opcode !== expected.echoes[i].opcode || !sameBytes(echoes[i].payload, expected.echoes[i].payload)) {
      problems.push(`echo ${i} differs: opcode ${echoes[i].opcode} ${echoes[i].payload.length} bytes, expected opcode ${expected.echoes[i].opcode} ${expected.echoes[i].payload.length} bytes`);
      break;
    }
  }
  if (pongs.length !== expected.pongs.length || pongs.some((p, i) => !sameBytes(p, expected.pongs[i]))) {
    problems.push(`pongs ${pongs.map(hex).join(',')} expected ${expected.pongs.map(hex).join(',')}`);
  }
  if (closes.length > 1) problems.push(`${closes.length} close frames`);
  if (frames.length > 0 && closes.length === 1 && frames[frames.length - 1].opcode !== OP.CLOSE) problems.push('frames after the close frame');
  const close = closes[0];
  const end = expected.end;
  if (end.kind === 'incomplete') {
    if (close) problems.push(`a close frame (${hex(close.payload)}) although the stream was incomplete`);
  } else if (!close) {
    problems.push(`no close frame; expected ${end.kind === 'fail' ? end.codes.join('/') + ` (${end.why})` : `the echo ${hex(end.payload)}`}`);
  } else if (end.kind === 'close-echo') {
    if (!sameBytes(close.payload, end.payload)) problems.push(`close echo ${hex(close.payload)}, expected ${hex(end.payload)}`);
  } else {
    const code = close.payload.length >= 2 ? (close.payload[0] << 8) | close.payload[1] : null;
    if (code === null || !end.codes.includes(code)) problems.push(`close code ${String(code)}, expected ${end.codes.join('/')} (${end.why})`);
  }
  if (problems.length === 0) return null;
  return `${problems.join('; ')}\n    received: ${describeFrames(frames, Infinity)}`;
}

// ── handshakes ───────────────────────────────────────────────────────────────────────────────

export interface HandshakeInput {
  kind: string;
  bytes: Uint8Array;
  /** Half-close after sending (so a truncated request is answered at once). */
  fin: boolean;
  /** The part after the request that is meant as frames (pipelined), if any. */
  pipelined: Uint8Array | null;
}

const BASE_HEADERS: Array<[string, string]> = [
  ['Host', '127.0.0.1'],
  ['Upgrade', 'websocket'],
  ['Connection', 'Upgrade'],
  ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
  ['Sec-WebSocket-Version', '13'],
];

const HEADER_NOISE = ['', ' ', '\t', '\0', '\r', '\n', ':', ',', 'é', '\x7f', 'websocket', 'upgrade', 'Upgrade, keep-alive', '12', '13 ', '=='];

function requestText(method: string, target: string, version: string, headers: Array<[string, string]>): string {
  return `${method} ${target} ${version}\r\n${headers.map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`;
}

export function handshakeInput(rng: Rng, config: StreamConfig): HandshakeInput {
  const headers = BASE_HEADERS.map(([name, value]): [string, string] => [name, value]);
  const method = 'GET';
  const target = '/';
  const version = 'HTTP/1.1';
  const latin1 = (text: string) => Uint8Array.from(Buffer.from(text, 'latin1'));
  const roll = rng.int(10);
  if (roll === 0) {
    const bytes = rng.chance(0.5) ? rng.bytes(rng.range(1, 400)) : latin1(Array.from({ length: rng.range(1, 200) }, () => String.fromCharCode(rng.range(0x20, 0x7e))).join(''));
    return { kind: 'garbage', bytes, fin: rng.chance(0.7), pipelined: null };
  }
  if (roll === 1) {
    const full = latin1(requestText(method, target, version, headers));
    return { kind: 'truncated', bytes: full.subarray(0, rng.int(full.length)), fin: rng.chance(0.7), pipelined: null };
  }
  if (roll === 2) {
    // A valid request with frames right behind it, in the same write: they are the first frames.
    const frames = frameInput(rng, { ...config, compression: false }).bytes;
    return { kind: 'pipelined', bytes: concat([latin1(requestText(method, target, version, headers)), frames]), fin: false, pipelined: frames };
  }
  return mutatedHandshake(rng, config, headers);
}

function mutatedHandshake(rng: Rng, config: StreamConfig, headers: Array<[string, string]>): HandshakeInput {
  const latin1 = (text: string) => Uint8Array.from(Buffer.from(text, 'latin1'));
  let method = 'GET';
  let target = '/';
  let version = 'HTTP/1.1';
  if (config.compression && rng.chance(0.5)) {
    headers.push(['Sec-WebSocket-Extensions', rng.pick(['permessage-deflate', 'permessage-deflate; client_max_window_bits', 'permessage-deflate; server_max_window_bits=8', 'x-unknown, permessage-deflate; foo', 'permessage-deflate; client_max_window_bits=16', 'permessage-deflate;;', 'permessage-deflate; server_max_window_bits'])]);
  }
  const edits = rng.range(1, 3);
  for (let i = 0; i < edits; i++) {
    switch (rng.int(12)) {
      case 0:
        headers.splice(rng.int(headers.length), 1);
        break;
      case 1:
        headers.push([...rng.pick(headers)] as [string, string]);
        break;
      case 2: {
        const header = rng.pick(headers);
        header[1] = rng.pick(HEADER_NOISE) + header[1].slice(rng.int(header[1].length + 1)) + rng.pick(HEADER_NOISE);
        break;
      }
      case 3: {
        const header = rng.pick(headers);
        header[0] = rng.chance(0.5) ? header[0].toUpperCase() : header[0] + rng.pick(HEADER_NOISE);
        break;
      }
      case 4:
        headers.splice(rng.int(headers.length + 1), 0, [`X-${rng.int(1000)}`, 'a'.repeat(rng.pick([0, 10, 1000, 9000]))]);
        break;
      case 5:
        method = rng.pick(['POST', 'get', 'HEAD', 'OPTIONS', 'CONNECT', 'GET GET', 'PRI', '']);
        break;
      case 6:
        target = rng.pick(['*', '', '/%00', '/a b', 'http://x/', '/' + 'p'.repeat(rng.pick([10, 5000, 20000])), '/\r\n']);
        break;
      case 7:
        version = rng.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'HTTP/0.9', 'HTTP/11', 'HTTPS/1.1', '', 'HTTP/1.1 extra']);
        break;
      case 8: {
        const key = headers.find(([name]) => name === 'Sec-WebSocket-Key');
        if (key) key[1] = Buffer.from(rng.bytes(rng.pick([15, 16, 16, 17, 32]))).toString('base64').slice(0, rng.chance(0.8) ? undefined : rng.range(1, 30));
        break;
      }
      case 9: {
        const i = rng.int(headers.length);
        const j = rng.int(headers.length);
        [headers[i], headers[j]] = [headers[j], headers[i]];
        break;
      }
      case 10:
        headers.push(...Array.from({ length: rng.pick([100, 1000, 2100]) }, (_, n): [string, string] => [`h${n}`, 'v']));
        break;
      default:
        headers.splice(rng.int(headers.length + 1), 0, ['Sec-WebSocket-Protocol', rng.pick(['chat', 'a, b', '', ',,,', 'x y', '\u00e9'])]);
    }
  }
  let bytes: Uint8Array = latin1(requestText(method, target, version, headers));
  if (rng.chance(0.3)) bytes = mutateBytes(rng, bytes);
  return { kind: 'mutated', bytes, fin: rng.chance(0.5), pipelined: null };
}

/** Bytes after the end of the request's head (the blank line), 0 if it has none. */
function trailingBytes(bytes: Uint8Array): number {
  const end = Buffer.from(bytes).indexOf('\r\n\r\n');
  return end < 0 ? 0 : bytes.length - (end + 4);
}

export interface HandshakeOutcome {
  status: number | null;
  statusLine: string;
  closed: boolean;
  problem: string | null;
  elapsed: number;
}

/**
 * Sends one (mutated) handshake and checks the answer: an HTTP 4xx, a 101 with the right
 * accept key, or the socket closed; never a hang past `deadline`. After a 101 the
 * connection is closed properly (or, for pipelined frames, as the oracle says).
 */
export async function runHandshake(port: number, input: HandshakeInput, config: StreamConfig, rng: Rng, deadline = 4_000): Promise<HandshakeOutcome> {
  const { socket, closed, isClosed } = openSocket(port, input.fin);
  const started = performance.now();
  const limit = started + deadline;
  let received = Buffer.alloc(0);
  let frames: WireReader | null = null;
  let wake: () => void = () => {};
  const changed = () => new Promise<void>((resolve) => (wake = resolve));
  socket.on('data', (chunk: Buffer) => {
    if (frames) {
      frames.push(Uint8Array.from(chunk));
    } else {
      received = Buffer.concat([received, chunk]);
      const headerEnd = received.indexOf('\r\n\r\n');
      if (headerEnd >= 0 && received.subarray(0, 13).toString('latin1') === 'HTTP/1.1 101 ') {
        frames = new WireReader();
        const rest = received.subarray(headerEnd + 4);
        received = received.subarray(0, headerEnd + 4);
        if (rest.length > 0) frames.push(Uint8Array.from(rest));
      }
    }
    wake();
  });
  void closed.then(() => wake());
  /** Waits (bounded by the deadline) until `condition` holds or the socket closes. */
  const waitFor = async (condition: () => boolean): Promise<void> => {
    while (!condition() && !isClosed()) {
      const left = limit - performance.now();
      if (left <= 0) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([changed(), new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.min(left, 50))))]);
      clearTimeout(timer);
    }
  };
  try {
    await Promise.race([new Promise<void>((resolve) => socket.once('connect', () => resolve())), closed]);
    if (!isClosed()) {
      socket.write(input.bytes);
      if (input.fin) socket.end();
    }
    await waitFor(() => frames !== null);
    const upgradedFrames = frames as WireReader | null;
    const pipelinedConfig = { ...config, compression: false };
    const pipelinedExpectation = input.pipelined ? expect(input.pipelined, pipelinedConfig) : null;
    if (upgradedFrames && !isClosed() && !input.fin) {
      if (pipelinedExpectation === null && trailingBytes(input.bytes) === 0) {
        // A plain 101: we close properly.
        socket.write(wireFrame(OP.CLOSE, Uint8Array.of(0x03, 0xe8), { mask: rng.bytes(4) }));
      } else if (pipelinedExpectation === null) {
        // A mutation left bytes after the request: perhaps the start of a frame whose rest
        // never comes, which would swallow a close frame of ours. Our FIN ends it instead.
        socket.end();
      } else if (pipelinedExpectation.end.kind === 'incomplete') {
        // The server waits for the rest of a frame: once the expected replies are in, our FIN ends it.
        const replies = pipelinedExpectation.echoes.length + pipelinedExpectation.pongs.length;
        await waitFor(() => upgradedFrames.frames.length >= replies);
        socket.end();
      }
    }
    await waitFor(() => false);
    const text = received.toString('latin1');
    const statusLine = text.slice(0, Math.max(0, text.indexOf('\r\n')));
    const match = /^HTTP\/1\.[01] (\d{3}) /.exec(statusLine);
    const status = match ? Number(match[1]) : null;
    const problems: string[] = [];
    if (!isClosed()) problems.push(`no close within ${deadline} ms (answer so far: ${JSON.stringify(text.slice(0, 80))})`);
    if (text.length > 0 && status === null) problems.push(`an answer that is not an HTTP status line: ${JSON.stringify(text.slice(0, 80))}`);
    if (status !== null && status !== 101 && !(status >= 400 && status <= 499)) problems.push(`status ${status}: neither a 101 nor a 4xx`);
    if (status === 101) {
      const requestKey = /\r\nSec-WebSocket-Key: ([^\r\n]*)\r\n/i.exec(Buffer.from(input.bytes).toString('latin1'))?.[1];
      const answered = /\r\nsec-websocket-accept: ([^\r\n]*)\r\n/i.exec(text)?.[1];
      if (requestKey !== undefined && answered !== acceptFor(requestKey.trim())) problems.push(`101 with accept ${String(answered)} for key ${requestKey}`);
      if (pipelinedExpectation && upgradedFrames) {
        const problem = compare(pipelinedExpectation, { frames: upgradedFrames.frames, malformed: malformed(upgradedFrames.frames), closed: isClosed(), elapsed: performance.now() - started }, pipelinedConfig);
        if (problem) problems.push(`pipelined frames: ${problem}`);
      }
    }
    return { status, statusLine, closed: isClosed(), problem: problems.length > 0 ? problems.join('; ') : null, elapsed: performance.now() - started };
  } finally {
    socket.destroy();
  }
}

// ── helpers for runs ─────────────────────────────────────────────────────────────────────────

/** Runs `task` over `inputs` with at most `concurrency` at once. */
export async function pool<I, O>(inputs: readonly I[], concurrency: number, task: (input: I, index: number) => Promise<O>): Promise<O[]> {
  const results: O[] = new Array<O>(inputs.length);
  let next = 0;
  const worker = async () => {
    while (next < inputs.length) {
      const index = next++;
      results[index] = await task(inputs[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, worker));
  return results;
}

/** A plain client proves the server still works: connect, echo, close. */
export async function serverStillEchoes(server: Server): Promise<void> {
  const ws = await connect(server.url, { closeTimeout: 1_000, handshakeTimeout: 2_000, pingInterval: 0 });
  try {
    const message = `alive ${Math.random()}`;
    await ws.send(message);
    const reply = await ws.receive();
    if (reply !== message) throw new Error(`the server echoed ${JSON.stringify(reply)}, not ${JSON.stringify(message)}`);
  } finally {
    await ws.close();
  }
}

export function memory(): { heap: number; external: number; arrayBuffers: number; rss: number } {
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers, rss: usage.rss };
}

export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** An echo server for fuzzing, which counts its live handlers and keeps what reaches onError. */
export interface FuzzServer {
  server: Server;
  /** What reached onError: a handler failure that is not the connection's own end. */
  errors: unknown[];
  /** Handlers running now. */
  active(): number;
  /** Handlers started so far. */
  started(): number;
  /** Close codes the server saw (ws.closed), by code. */
  closeCodes: Map<number, number>;
}

export async function fuzzServer(config: StreamConfig, handshakeTimeout = 500): Promise<FuzzServer> {
  const errors: unknown[] = [];
  const closeCodes = new Map<number, number>();
  let active = 0;
  let started = 0;
  const server = await listen(
    '127.0.0.1',
    0,
    async (ws: WebSocket) => {
      active++;
      started++;
      void ws.closed.then(({ code }) => closeCodes.set(code, (closeCodes.get(code) ?? 0) + 1));
      try {
        for await (const message of ws) await ws.send(message);
      } finally {
        active--;
      }
    },
    {
      pingInterval: 0,
      closeTimeout: 500,
      handshakeTimeout,
      maxMessageSize: config.maxMessageSize,
      maxFragments: config.maxFragments,
      compression: config.compression ? { threshold: 64 } : false,
      onError: (error) => errors.push(error),
    },
  );
  return { server, errors, active: () => active, started: () => started, closeCodes };
}

/** Waits until `condition` holds, polling; false if it still does not after `timeout` ms. */
export async function eventually(condition: () => boolean, timeout: number): Promise<boolean> {
  const deadline = performance.now() + timeout;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise<void>((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

export interface LiveReport {
  inputs: number;
  failures: string[];
  kinds: Map<string, number>;
  ends: Map<string, number>;
  handshakeStatuses: Map<string, number>;
}

export function newReport(): LiveReport {
  return { inputs: 0, failures: [], kinds: new Map(), ends: new Map(), handshakeStatuses: new Map() };
}

const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

function endLabel(outcome: LiveOutcome): string {
  const close = outcome.frames.find((f) => f.opcode === OP.CLOSE);
  if (!close) return 'no close frame';
  if (close.payload.length < 2) return 'close (no code)';
  return `close ${(close.payload[0] << 8) | close.payload[1]}`;
}

/** Runs `count` frame inputs from `rng` against `target`; records failures with what replays them. */
export async function fuzzFrames(target: FuzzServer, config: StreamConfig, rng: Rng, count: number, report: LiveReport, label: string, concurrency = 16): Promise<void> {
  const inputs = Array.from({ length: count }, () => {
    const inputRng = rng.fork();
    return { input: frameInput(inputRng, config), writeRng: inputRng.fork() };
  });
  await pool(inputs, concurrency, async ({ input, writeRng }, index) => {
    report.inputs++;
    bump(report.kinds, input.kind);
    try {
      const { problem, outcome } = await runLive(target.server.port, input.bytes, config, writeRng);
      bump(report.ends, endLabel(outcome));
      if (problem) report.failures.push(`${label} #${index} (${input.kind}): ${problem}\n    input: ${hex(input.bytes.subarray(0, 2048))}`);
    } catch (error) {
      report.failures.push(`${label} #${index} (${input.kind}): ${String(error)}\n    input: ${hex(input.bytes.subarray(0, 2048))}`);
    }
  });
}

/** Runs `count` handshake inputs from `rng` against `target`. */
export async function fuzzHandshakes(target: FuzzServer, config: StreamConfig, rng: Rng, count: number, report: LiveReport, label: string, concurrency = 32): Promise<void> {
  const inputs = Array.from({ length: count }, () => {
    const inputRng = rng.fork();
    return { input: handshakeInput(inputRng, config), runRng: inputRng.fork() };
  });
  await pool(inputs, concurrency, async ({ input, runRng }, index) => {
    report.inputs++;
    bump(report.kinds, input.kind);
    try {
      const outcome = await runHandshake(target.server.port, input, config, runRng);
      bump(report.handshakeStatuses, outcome.status === null ? 'closed without an answer' : String(outcome.status));
      if (outcome.problem) report.failures.push(`${label} #${index} (${input.kind}): ${outcome.problem}\n    input: ${JSON.stringify(Buffer.from(input.bytes.subarray(0, 600)).toString('latin1'))}`);
    } catch (error) {
      report.failures.push(`${label} #${index} (${input.kind}): ${String(error)}`);
    }
  });
}

export function describeReport(report: LiveReport): string {
  const list = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).map(([key, n]) => `${key}: ${n}`).join(', ');
  const lines = [`${report.inputs} inputs (${list(report.kinds)})`];
  if (report.ends.size > 0) lines.push(`  outcomes: ${list(report.ends)}`);
  if (report.handshakeStatuses.size > 0) lines.push(`  HTTP answers: ${list(report.handshakeStatuses)}`);
  return lines.join('\n');
}
