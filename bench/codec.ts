// Codec microbenchmarks, no sockets: one process per implementation (the runner sets
// WS_NO_BUFFER_UTIL for ws's pure-JS variant, since ws picks its masking once, at load).
//
//   mask   XOR a 64 KiB and a 16 MiB buffer in place with a masking key, GB/s: the library's
//          exported applyMask vs ws's `unmask` from ws/lib/buffer-util.js (its JS loop, or
//          bufferutil's native code when the addon loads)
//   parse  16-byte BINARY frames, masked as a client sends them, parsed per second: the
//          library's exported FrameParser (with a sink that only counts) vs ws's Receiver
//          (which also assembles each message and emits a 'message' event)

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { FrameParser, applyMask, encodeFrame } from '../websockets.ts';
import { KiB, MiB, binaryPayload, fail, post, processInfo, readConfig, serveCommands, type Values } from './common.ts';

const config = readConfig();
const require = createRequire(import.meta.url);
/** ws's internals are not in its package exports: load them by path, from the ws that `import 'ws'` finds. */
const wsInternal = (file: string): unknown => require(join(dirname(require.resolve('ws')), 'lib', file));

const MASK_KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);
const FRAME_PAYLOAD = 16;

/** Runs `run` (which handles `units` units per call) for `ms` after a warmup; units per second. */
function measure(run: () => void, units: number, ms: number): number {
  const now = () => performance.now();
  // Warm up and calibrate: calls per batch so that one batch takes about a millisecond.
  let batch = 1;
  const warmupEnd = now() + ms / 4;
  while (now() < warmupEnd) {
    const t0 = now();
    for (let i = 0; i < batch; i++) run();
    if (now() - t0 < 1) batch *= 2;
  }
  let calls = 0;
  const t0 = now();
  let t = t0;
  do {
    for (let i = 0; i < batch; i++) run();
    calls += batch;
    t = now();
  } while (t - t0 < ms);
  return (calls * units) / ((t - t0) / 1000);
}

type Unmask = (buffer: Uint8Array, key: Uint8Array) => void;

interface WsBufferUtil {
  unmask: Unmask;
}

interface WsReceiver {
  write(chunk: Buffer): boolean;
  on(event: 'message', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

type WsReceiverClass = new (options: Record<string, unknown>) => WsReceiver;

/** `count` masked 16-byte BINARY frames back to back (what a server reads). */
function clientFrames(count: number): Buffer {
  const payload = binaryPayload(FRAME_PAYLOAD);
  const frame = encodeFrame({ opcode: 0x2, payload, mask: MASK_KEY });
  const bytes = Buffer.alloc(frame.length * count);
  for (let i = 0; i < count; i++) bytes.set(frame, i * frame.length);
  return bytes;
}

function run(): Values {
  const ms = config.params.codecMs;
  const values: Values = {};
  const unmask: Unmask =
    config.impl === 'ours'
      ? (buffer, key) => applyMask(buffer, key, 0)
      : (wsInternal('buffer-util.js') as WsBufferUtil).unmask;
  const key = config.impl === 'ours' ? MASK_KEY : Buffer.from(MASK_KEY);
  for (const [name, size] of [
    ['mask64k', 64 * KiB],
    ['mask16m', 16 * MiB],
  ] as const) {
    // ws's native path wants a Buffer; both are plain, 8-byte-aligned allocations.
    const buffer = config.impl === 'ours' ? binaryPayload(size) : Buffer.from(binaryPayload(size).buffer);
    values[name] = measure(() => unmask(buffer, key), size, ms) / 1e9; // GB/s
  }

  // Frames: ~64 KiB of them per call, as a socket would hand them over.
  const frameCount = Math.floor((64 * KiB) / (FRAME_PAYLOAD + 6));
  const chunk = clientFrames(frameCount);
  let frames = 0;
  let pushChunk: () => void;
  if (config.impl === 'ours') {
    const parser = new FrameParser(
      {
        onFrameHeader() {},
        onFramePayload() {},
        onFrameEnd() {
          frames++;
        },
      },
      { expectMasked: true },
    );
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    pushChunk = () => parser.push(bytes);
  } else {
    const Receiver = wsInternal('receiver.js') as WsReceiverClass;
    // ws's defaults for a server-side socket (see ws/lib/websocket.js, setSocket).
    const receiver = new Receiver({ allowSynchronousEvents: true, binaryType: 'nodebuffer', extensions: {}, isServer: true, maxPayload: 100 * MiB, skipUTF8Validation: false });
    receiver.on('message', () => frames++);
    receiver.on('error', (error) => fail(error));
    pushChunk = () => void receiver.write(chunk);
  }
  pushChunk();
  if (frames !== frameCount) throw new Error(`parsed ${frames} frames of ${frameCount}`);
  values['parse16'] = measure(pushChunk, frameCount, ms); // frames/s
  return values;
}

serveCommands(() => {});
post({ type: 'ready', port: 0, info: processInfo(config.impl === 'ours' ? 'ours' : 'ws') });
try {
  post({ type: 'result', values: run() });
} catch (error) {
  fail(error);
  process.exit(1);
}
