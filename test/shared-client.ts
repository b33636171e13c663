// One shared test client, written once against the public API, run unchanged in Node (our
// RFC 6455 client), in headless Chromium (the same module bundled for the browser, where
// `connect` goes through the facade over the native WebSocket), and unbuilt under Node 24/22,
// Deno and Bun. It proves the isomorphism: test/browser.test.ts and test/runtimes.test.ts call
// these very functions and compare what they return (checks in test/scenario-checks.ts).
//
//   runClientScenario — echoes (text, binary, 1 MiB, 16 MiB, iterables), order, ping/pong, and
//                       a server-initiated close with 4001 'bye';
//   runAbnormalClose  — the server destroys the connection: receive() rejects with 1006;
//   runEdgeScenario   — subprotocol, bad arguments, iteration, a client-initiated close, open();
//   runWrapEdges      — wrap() of a native WebSocket that never opens, has closed, or is CONNECTING.
//
// The server it talks to is `scenarioHandler` below (an echo server that closes with 4001 'bye'
// on 'please close' and with 1000 'done' on 'please close normally'), run with
// `protocols: [PROTOCOL]`; the abnormal close needs a server that destroys the socket on
// 'please die' (listenKiller in test/scenario-checks.ts).
//
// Only erasable TypeScript, `import type` for types, and nothing Node-only: this file must load
// in a browser bundle and under Node's type stripping.

import { connect, open, wrap, WebSocketError } from '../websockets.ts';
import type { Data, WebSocket } from '../websockets.ts';

/** Large echoes: 1 MiB and exactly 16 MiB (the default maximum message size, inclusive). */
export const LARGE_SIZES = [1024 * 1024, 16 * 1024 * 1024];
/** The close the server starts when it receives CLOSE_REQUEST. */
export const CLOSE_REQUEST = 'please close';
export const CLOSE_CODE = 4001;
export const CLOSE_REASON = 'bye';
/** The server closes with 1000 'done' when it receives this. */
export const NORMAL_CLOSE_REQUEST = 'please close normally';
/** The subprotocol the scenario servers accept (run them with `protocols: [PROTOCOL]`). */
export const PROTOCOL = 'chat.v2';
/** The test servers that support it destroy the TCP connection when they receive this. */
export const DIE_REQUEST = 'please die';
export const TEXT = 'héllo ✓ 🎉';
export const BINARY = [0, 1, 2, 127, 128, 253, 254, 255];

/** How one received value looks, described in plain JSON (it crosses the DevTools Protocol). */
export interface Described {
  /** 'string', or the constructor's name ('Uint8Array', 'Buffer', 'ArrayBuffer', …). */
  type: string;
  /** `instanceof Uint8Array`, in the realm that received it. */
  isUint8Array: boolean;
  length: number;
  /** The text, or the bytes as numbers (short values only). */
  value?: string | number[];
}

export interface LargeEcho {
  size: number;
  received: Described;
  /** FNV-1a (32-bit) of what was sent, computed before sending. */
  expected: number;
  /** FNV-1a of what came back. */
  checksum: number;
  /** FNV-1a of the sent buffer after send() resolved: send must not mask in place. */
  sentAfter: number;
  ms: number;
}

export type Outcome =
  | { outcome: 'resolved'; value: number | null }
  | { outcome: 'threw'; name: string; message: string }
  | { outcome: 'rejected'; name: string; message: string; isError: boolean; isWebSocketError: boolean; code?: number; reason?: string };

export interface CloseResult {
  /** How the receive() after the close request ended. */
  receive: Outcome;
  closeCode?: number;
  closeReason?: string;
  closed: { code: number; reason: string };
  /** What a further receive() does: the same error again. */
  again: Outcome;
  /** What a send() after the close does. */
  sendAfter: Outcome;
}

export interface Result {
  /** Who ran it: `navigator.userAgent`, or the runtime's name and version. */
  runtime: string;
  /** True where `connect` gave our own RFC 6455 client (it has the handshake response); false over a native WebSocket. */
  ownClient: boolean;
  protocol: string;
  extensions: string;
  text: Described;
  binary: Described;
  emptyText: Described;
  emptyBinary: Described;
  large: LargeEcho[];
  /** send(['it', 'er', 'able ✓']) then send('after'): the two receives. */
  iterableText: [Described, Described];
  /** send([Uint8Array, ArrayBuffer, DataView]) (bytes 1…6). */
  iterableBinary: Described;
  /** send(generator of strings). */
  iterableGenerator: Described;
  /** send(async generator of strings). */
  asyncIterable: Described;
  /** Ten sends not awaited, then ten receives: the order they came back in. */
  order: string[];
  /** ping(): an RTT in Node, a rejection in a browser. */
  ping: Outcome;
  /** pong(): resolves in Node, rejects in a browser. */
  pong: Outcome;
  close: CloseResult;
  /** Wall time of the whole scenario. */
  ms: number;
}

export interface AbnormalResult {
  runtime: string;
  /** The echo before the server killed the connection. */
  echo: Described;
  receive: Outcome;
  closeCode?: number;
  closeReason?: string;
  closed: { code: number; reason: string };
}

// ── helpers (plain JavaScript: no node: built-ins, no crypto.subtle) ─────────────────────────

/** FNV-1a, 32-bit, over bytes. */
export function fnv1a(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i];
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Deterministic pseudo-random bytes (xorshift32), so no two regions of a large message look alike. */
export function patternBytes(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[i] = state & 0xff;
  }
  return bytes;
}

export function describeData(data: unknown): Described {
  if (typeof data === 'string') {
    return { type: 'string', isUint8Array: false, length: data.length, ...(data.length <= 64 ? { value: data } : {}) };
  }
  const name = typeof data === 'object' && data !== null ? (data.constructor?.name ?? 'object') : typeof data;
  const isUint8Array = data instanceof Uint8Array;
  const length = isUint8Array ? data.length : data instanceof ArrayBuffer ? data.byteLength : -1;
  const described: Described = { type: name, isUint8Array, length };
  if (isUint8Array && data.length <= 64) described.value = Array.from(data);
  return described;
}

export async function settle(promise: Promise<unknown>): Promise<Outcome> {
  try {
    const value = await promise;
    return { outcome: 'resolved', value: typeof value === 'number' ? value : null };
  } catch (error) {
    const isError = error instanceof Error;
    const outcome: Outcome = {
      outcome: 'rejected',
      name: isError ? error.name : typeof error,
      message: isError ? error.message : String(error),
      isError,
      isWebSocketError: error instanceof WebSocketError,
    };
    if (error instanceof WebSocketError) {
      outcome.code = error.code;
      outcome.reason = error.reason;
    }
    return outcome;
  }
}

/** Like `settle`, but tells a synchronous throw apart from a rejection (an async API should only reject). */
export async function attempt(call: () => Promise<unknown>): Promise<Outcome> {
  let promise: Promise<unknown>;
  try {
    promise = call();
  } catch (error) {
    return { outcome: 'threw', name: error instanceof Error ? error.name : typeof error, message: error instanceof Error ? error.message : String(error) };
  }
  return settle(promise);
}

/** Bounds one step, so a hang names the step instead of timing out the whole test. */
function step<T>(label: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step "${label}" did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

function runtimeName(): string {
  const scope = globalThis as { Deno?: { version: { deno: string } }; Bun?: { version: string }; process?: { version?: string }; navigator?: { userAgent?: string } };
  if (scope.Deno) return `deno ${scope.Deno.version.deno}`;
  if (scope.Bun) return `bun ${scope.Bun.version}`;
  if (typeof scope.process?.version === 'string') return `node ${scope.process.version}`;
  return scope.navigator?.userAgent ?? 'unknown';
}

const STEP_MS = 10_000;
const LARGE_STEP_MS = 60_000;

export interface ScenarioOptions {
  /** How to get the socket; default `connect` (e.g. a `wrap` of the runtime's own WebSocket instead). */
  connect?: (url: string) => Promise<WebSocket>;
}

// ── the scenario ─────────────────────────────────────────────────────────────────────────────

/**
 * Connects to `url` (a `scenarioHandler` server) and runs every step; resolves with what it
 * saw, in plain JSON. It only throws if a step that should succeed fails or hangs.
 */
export async function runClientScenario(url: string, options: ScenarioOptions = {}): Promise<Result> {
  const started = Date.now();
  const ws = await step('connect', STEP_MS, (options.connect ?? connect)(url));
  try {
    const echo = async (label: string, message: Parameters<WebSocket['send']>[0], ms = STEP_MS): Promise<Data> => {
      return step(label, ms, (async () => {
        await ws.send(message);
        return ws.receive();
      })());
    };

    const text = describeData(await echo('text echo', TEXT));
    const binary = describeData(await echo('binary echo', new Uint8Array(BINARY)));
    const emptyText = describeData(await echo('empty text echo', ''));
    const emptyBinary = describeData(await echo('empty binary echo', new Uint8Array(0)));

    const large: LargeEcho[] = [];
    for (const size of LARGE_SIZES) {
      const bytes = patternBytes(size, size + 17);
      const expected = fnv1a(bytes);
      const t0 = Date.now();
      const reply = await echo(`${size}-byte binary echo`, bytes, LARGE_STEP_MS);
      const ms = Date.now() - t0;
      large.push({
        size,
        received: describeData(reply),
        expected,
        checksum: reply instanceof Uint8Array ? fnv1a(reply) : -1,
        sentAfter: fnv1a(bytes),
        ms,
      });
    }

    await step('iterable send', STEP_MS, ws.send(['it', 'er', 'able ✓']));
    await step('send after iterable', STEP_MS, ws.send('after'));
    const iterableText: [Described, Described] = [
      describeData(await step('receive iterable', STEP_MS, ws.receive())),
      describeData(await step('receive after iterable', STEP_MS, ws.receive())),
    ];
    const iterableBinary = describeData(
      await echo('binary iterable echo', [new Uint8Array([1, 2]), new Uint8Array([3, 4]).buffer, new DataView(new Uint8Array([5, 6]).buffer)]),
    );
    function* words(): Generator<string> {
      yield 'gen';
      yield 'erated';
    }
    const iterableGenerator = describeData(await echo('generator echo', words()));
    async function* slowWords(): AsyncGenerator<string> {
      yield 'as';
      await new Promise((resolve) => setTimeout(resolve, 5));
      yield 'ync';
    }
    const asyncIterable = describeData(await echo('async iterable echo', slowWords()));

    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < 10; i++) sends.push(ws.send(`n${i}`));
    await step('unawaited sends', STEP_MS, Promise.all(sends));
    const order: string[] = [];
    for (let i = 0; i < 10; i++) {
      const message = await step('receive in order', STEP_MS, ws.receive());
      order.push(typeof message === 'string' ? message : `<${describeData(message).type}>`);
    }

    const ping = await step('ping', STEP_MS, settle(ws.ping()));
    const pong = await step('pong', STEP_MS, settle(ws.pong()));
    // After a ping/pong the connection still works.
    const afterControl = await echo('echo after ping', 'still here');
    if (afterControl !== 'still here') throw new Error(`echo after ping returned ${JSON.stringify(describeData(afterControl))}`);

    // The server closes with 4001 'bye' when asked to.
    await step('close request', STEP_MS, ws.send(CLOSE_REQUEST));
    const receive = await step('receive after close', STEP_MS, settle(ws.receive()));
    const closed = await step('closed', STEP_MS, ws.closed);
    const close: CloseResult = {
      receive,
      closed: { code: closed.code, reason: closed.reason },
      again: await step('receive again', STEP_MS, settle(ws.receive())),
      sendAfter: await step('send after close', STEP_MS, settle(ws.send('too late'))),
    };
    if (ws.closeCode !== undefined) close.closeCode = ws.closeCode;
    if (ws.closeReason !== undefined) close.closeReason = ws.closeReason;

    return {
      runtime: runtimeName(),
      ownClient: ws.response !== undefined,
      protocol: ws.protocol,
      extensions: ws.extensions,
      text,
      binary,
      emptyText,
      emptyBinary,
      large,
      iterableText,
      iterableBinary,
      iterableGenerator,
      asyncIterable,
      order,
      ping,
      pong,
      close,
      ms: Date.now() - started,
    };
  } finally {
    // Harmless when the server already closed; bounded if it did not.
    await step('final close', STEP_MS, ws.close()).catch(() => undefined);
  }
}

/** Connects, checks one echo, asks the server to destroy the connection, and reports how receive() ends. */
export async function runAbnormalClose(url: string, options: ScenarioOptions = {}): Promise<AbnormalResult> {
  const ws = await step('connect', STEP_MS, (options.connect ?? connect)(url));
  try {
    await step('send', STEP_MS, ws.send('before'));
    const echo = describeData(await step('echo', STEP_MS, ws.receive()));
    await step('die request', STEP_MS, ws.send(DIE_REQUEST));
    const receive = await step('receive after the connection died', STEP_MS, settle(ws.receive()));
    const closed = await step('closed', STEP_MS, ws.closed);
    const result: AbnormalResult = { runtime: runtimeName(), echo, receive, closed: { code: closed.code, reason: closed.reason } };
    if (ws.closeCode !== undefined) result.closeCode = ws.closeCode;
    if (ws.closeReason !== undefined) result.closeReason = ws.closeReason;
    return result;
  } finally {
    await step('final close', STEP_MS, ws.close()).catch(() => undefined);
  }
}

export interface EdgeResult {
  runtime: string;
  /** Offered ['chat.v1', 'chat.v2'] to a server that accepts 'chat.v2'. */
  protocol: string;
  /** send([]): an empty iterable is one empty BINARY message. */
  emptyIterable: Described;
  /** send(['a', bytes]): mixing text and bytes in one message. */
  mixed: Outcome;
  /** send(42): not a chunk nor an iterable. */
  notAChunk: Outcome;
  /** An echo after the bad sends: they must not break the connection. */
  afterBadSends: Described;
  /** close(1005): a code that may not be sent. */
  closeBadCode: Outcome;
  /** close(4000, 124 bytes): a reason too long for a close frame. */
  closeLongReason: Outcome;
  /** Iteration over three messages, breaking out after two: the third is still there. */
  iterated: string[];
  leftover: Described;
  /** close(4000, 'client bye') from the client, and what it reports afterwards. */
  clientClose: { close: Outcome; closed: { code: number; reason: string }; closeCode?: number; closeReason?: string; receive: Outcome };
  /** Iteration while the server closes with 1000: ends without an error. */
  normalEnd: { messages: string[]; ended: Outcome; closeCode?: number; closeReason?: string };
  /** open(url, handler): the handler's value (not run with a custom `connect`). */
  openValue?: Outcome & { text?: string };
  /** open(url, handler that throws): rejects with that very error object (not run with a custom `connect`). */
  openThrows?: { sameError: boolean; message: string };
}

/** The contract's edge cases, the same wherever the client runs. */
export async function runEdgeScenario(url: string, options: ScenarioOptions = {}): Promise<EdgeResult> {
  const connectTo = options.connect ?? ((target: string) => connect(target, { protocols: ['chat.v1', PROTOCOL] }));
  const ws = await step('connect', STEP_MS, connectTo(url));
  const result: Partial<EdgeResult> = { runtime: runtimeName(), protocol: ws.protocol };
  try {
    const echo = async (label: string, message: Parameters<WebSocket['send']>[0]): Promise<Data> =>
      step(label, STEP_MS, ws.send(message).then(() => ws.receive()));
    result.emptyIterable = describeData(await echo('empty iterable', []));
    result.mixed = await step('mixed send', STEP_MS, attempt(() => ws.send(['a', new Uint8Array([98])])));
    result.notAChunk = await step('bad send', STEP_MS, attempt(() => ws.send(42 as unknown as string)));
    result.afterBadSends = describeData(await echo('echo after bad sends', 'ok'));
    result.closeBadCode = await step('close(1005)', STEP_MS, attempt(() => ws.close(1005)));
    result.closeLongReason = await step('close(long reason)', STEP_MS, attempt(() => ws.close(4000, 'x'.repeat(124))));

    for (const word of ['one', 'two', 'three']) await step('send', STEP_MS, ws.send(word));
    const iterated: string[] = [];
    await step('iterate', STEP_MS, (async () => {
      for await (const message of ws) {
        iterated.push(String(message));
        if (iterated.length === 2) break;
      }
    })());
    result.iterated = iterated;
    result.leftover = describeData(await step('receive after break', STEP_MS, ws.receive()));

    const close = await step('client close', STEP_MS, attempt(() => ws.close(4000, 'client bye')));
    const closed = await step('closed', STEP_MS, ws.closed);
    result.clientClose = { close, closed: { code: closed.code, reason: closed.reason }, receive: await step('receive after close', STEP_MS, settle(ws.receive())) };
    if (ws.closeCode !== undefined) result.clientClose.closeCode = ws.closeCode;
    if (ws.closeReason !== undefined) result.clientClose.closeReason = ws.closeReason;
  } finally {
    await step('final close', STEP_MS, ws.close()).catch(() => undefined);
  }

  const second = await step('connect', STEP_MS, connectTo(url));
  try {
    for (const word of ['x', 'y']) await step('send', STEP_MS, second.send(word));
    await step('normal close request', STEP_MS, second.send(NORMAL_CLOSE_REQUEST));
    const messages: string[] = [];
    const ended = await step('iterate to the end', STEP_MS, settle((async () => {
      for await (const message of second) messages.push(String(message));
    })()));
    result.normalEnd = { messages, ended };
    if (second.closeCode !== undefined) result.normalEnd.closeCode = second.closeCode;
    if (second.closeReason !== undefined) result.normalEnd.closeReason = second.closeReason;
  } finally {
    await step('final close', STEP_MS, second.close()).catch(() => undefined);
  }

  // open() always uses connect(): with a custom connect (wrap) there is nothing of it to check.
  if (!options.connect) {
    let text: string | undefined;
    const opened = await step('open', STEP_MS, settle(open(url, async (socket) => {
      await socket.send('via open');
      text = String(await socket.receive());
    })));
    result.openValue = text === undefined ? opened : { ...opened, text };
    const thrown = new Error('boom from the handler');
    let caught: unknown;
    await step('open that throws', STEP_MS, open(url, () => {
      throw thrown;
    }).catch((error: unknown) => (caught = error)));
    result.openThrows = { sameError: caught === thrown, message: caught instanceof Error ? caught.message : String(caught) };
  }
  return result as EdgeResult;
}

/** An outcome, or 'hung' when it did not settle in time (a promise that never settles is the bug). */
export type Bounded = Outcome | { outcome: 'hung'; ms: number };

function bounded(promise: Promise<unknown>, ms: number): Promise<Bounded> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<Bounded>((resolve) => {
    timer = setTimeout(() => resolve({ outcome: 'hung', ms }), ms);
  });
  return Promise.race([settle(promise), hung]).finally(() => clearTimeout(timer));
}

export interface WrapEdges {
  runtime: string;
  /** wrap(new WebSocket(url nobody listens on)): the connection never opens. */
  neverOpened: { send: Bounded; receive: Bounded; closed: Bounded; closeCode?: number };
  /** wrap() of a native WebSocket that has already closed (the server closed it with 4001). */
  alreadyClosed: { nativeState: number; receive: Bounded; closed: Bounded; close: Bounded };
  /** wrap(new WebSocket(url, ['chat.v1', 'chat.v2'])) while CONNECTING: after an echo, what it says was negotiated. */
  connecting: { echo: Described; protocol: string; nativeProtocol: string; extensions: string; nativeExtensions: string };
}

interface NativeConstructor {
  new (url: string, protocols?: string[]): Parameters<typeof wrap>[0];
}

/** `wrap` over the runtime's own WebSocket where the native object is not (or no longer) open. */
export async function runWrapEdges(refusedUrl: string, url: string, ms = 5_000): Promise<WrapEdges> {
  const Native = (globalThis as unknown as { WebSocket: NativeConstructor }).WebSocket;
  const failing = wrap(new Native(refusedUrl));
  const send = bounded(failing.send('into the void'), ms);
  const receive = bounded(failing.receive(), ms);
  const closed = bounded(failing.closed, ms);
  const neverOpened: WrapEdges['neverOpened'] = { send: await send, receive: await receive, closed: await closed };
  if (failing.closeCode !== undefined) neverOpened.closeCode = failing.closeCode;

  const native = new Native(url);
  await step('native close', STEP_MS, new Promise<void>((resolve) => {
    native.addEventListener('open', () => native.send(CLOSE_REQUEST));
    native.addEventListener('close', () => resolve());
  }));
  const late = wrap(native);
  const [lateReceive, lateClosed, lateClose] = await Promise.all([bounded(late.receive(), ms), bounded(late.closed, ms), bounded(late.close(), ms)]);
  const alreadyClosed = { nativeState: native.readyState, receive: lateReceive, closed: lateClosed, close: lateClose };

  const connectingNative = new Native(url, ['chat.v1', PROTOCOL]);
  const connectingSocket = wrap(connectingNative);
  let connecting: WrapEdges['connecting'];
  try {
    const echo = describeData(await step('echo over wrap(CONNECTING)', STEP_MS, connectingSocket.send('hi').then(() => connectingSocket.receive())));
    connecting = {
      echo,
      protocol: connectingSocket.protocol,
      nativeProtocol: connectingNative.protocol,
      extensions: connectingSocket.extensions,
      nativeExtensions: connectingNative.extensions,
    };
  } finally {
    await step('final close', STEP_MS, connectingSocket.close()).catch(() => undefined);
  }
  return { runtime: runtimeName(), neverOpened, alreadyClosed, connecting };
}

/**
 * The server side of the scenario, for `listen` or `upgrade` on any runtime: echoes every
 * message, closes with 4001 'bye' on 'please close' and with 1000 'done' on 'please close
 * normally'. Ends quietly on any close. Run it with `protocols: [PROTOCOL]`.
 */
export async function scenarioHandler(ws: WebSocket): Promise<void> {
  try {
    for await (const message of ws) {
      if (message === CLOSE_REQUEST) {
        await ws.close(CLOSE_CODE, CLOSE_REASON);
        return;
      }
      if (message === NORMAL_CLOSE_REQUEST) {
        await ws.close(1000, 'done');
        return;
      }
      await ws.send(message);
    }
  } catch (error) {
    if (!(error instanceof WebSocketError)) throw error;
  }
}
