// Shared by the benchmark's processes: the configuration they are started with, the messages
// they exchange with the runner over the IPC channel, and small measuring helpers.
//
// Every process is started by build/bench/run.js with one JSON argument (a ProcessConfig),
// talks to it with process.send() (ToParent) and obeys its commands (ToChild). A process whose
// runner goes away exits at once.

import { once } from 'node:events';
import { createRequire } from 'node:module';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/**
 * Which library a process runs: websockets.ts, the `ws` package, uWebSockets.js (servers
 * only), raw node:net (no WebSocket at all), or the lean load-generating client (clients
 * only: bench/lean.ts).
 */
export type Impl = 'ours' | 'ws' | 'uws' | 'net' | 'lean';

/** The socket scenarios; the codec microbenchmarks run in their own process (codec.ts). */
export type Scenario = 'small' | 'stream-up' | 'stream-down' | 'large' | 'conns' | 'compress' | 'active' | 'tls-small' | 'tls-stream';

/** What the server does in each scenario. */
export type ServerMode = 'echo' | 'sink' | 'source' | 'hub';

export const SERVER_MODE: Readonly<Record<Scenario, ServerMode>> = {
  small: 'echo', // echo every message
  large: 'echo',
  'stream-up': 'sink', // count what the client streams (the server is the receiver)
  'stream-down': 'source', // stream to the client (the client is the receiver)
  conns: 'hub', // echo, and broadcast to every connection on command
  compress: 'echo', // echo, permessage-deflate on at both ends
  active: 'echo', // many connections, each echoing a small message every few ms
  'tls-small': 'echo', // small, over TLS (wss://)
  'tls-stream': 'sink', // stream-up, over TLS (wss://)
};

/** The TLS scenarios: what they run, over wss:// (the process's config has `tls`). */
export const OVER_TLS: Readonly<Partial<Record<Scenario, Scenario>>> = { 'tls-small': 'small', 'tls-stream': 'stream-up' };

/** Sizes, counts and durations: the same for every variant of a run. */
export interface Params {
  host: string;
  /** scenario small: message size (bytes, TEXT) and messages in flight */
  smallSize: number;
  inFlight: number;
  /** scenario stream-*: message size (bytes, BINARY) */
  streamSize: number;
  /** scenarios small and stream-*: measured after warmupMs, for durationMs (at the receiver) */
  warmupMs: number;
  durationMs: number;
  /** scenario large: message size, unmeasured + measured round trips, and a time bound */
  largeSize: number;
  largeWarmupTrips: number;
  largeTrips: number;
  largeMaxMs: number;
  /** scenario conns: connections opened (cumulative steps) and how many handshakes in flight */
  connections: number[];
  concurrency: number;
  /** scenario conns: the broadcast message (bytes, TEXT) and the rounds timed after each step */
  broadcastSize: number;
  broadcastWarmupRounds: number;
  broadcastRounds: number;
  /** scenario compress: JSON-like TEXT message size (bytes) and messages in flight, permessage-deflate on */
  compressSize: number;
  compressInFlight: number;
  /** scenario active: connections, each sending an `activeSize`-byte TEXT message every `activeIntervalMs` and awaiting its echo; measured after a warmup */
  activeConnections: number;
  activeSize: number;
  activeIntervalMs: number;
  activeWarmupMs: number;
  activeDurationMs: number;
  /** senders that have no promise-based backpressure (ws, node:net) keep this much buffered at most */
  highWaterMark: number;
  /** codec microbenchmarks: time per measurement */
  codecMs: number;
}

export interface ProcessConfig {
  role: 'server' | 'client' | 'codec';
  impl: Impl;
  scenario: Scenario;
  /** the server's port (clients only) */
  port: number;
  /** the server's implementation (clients only): the lean client skips the handshake and framing expectations against node:net */
  peer?: Impl;
  params: Params;
  /** TLS scenarios: PEM files of a self-signed certificate for 127.0.0.1 (servers use both, clients trust `cert`) */
  tls?: { key: string; cert: string };
}

/** Whether `ws` in this process masks with the bufferutil addon. */
export type BufferutilStatus = 'native' | 'js-fallback' | 'absent' | 'disabled' | 'unused';

export interface ProcessInfo {
  impl: Impl;
  pid: number;
  node: string;
  bufferutil: BufferutilStatus;
  /** websockets.ts only: whether the library exports broadcast() */
  hasBroadcast?: boolean;
}

export interface MemorySample {
  heapUsed: number;
  /** the V8 heap's committed size (heapUsed and what its pages hold free) */
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  rss: number;
  /** open connections the server knows of when it measured */
  connections: number;
}

/** A measurement: named numbers. */
export type Values = Record<string, number>;

/** Process → runner. */
export type ToParent =
  | { type: 'ready'; port: number; info: ProcessInfo }
  | { type: 'result'; values: Values }
  | { type: 'memory'; sample: MemorySample }
  | { type: 'opened'; total: number; seconds: number }
  | { type: 'broadcasted'; total: number; ms: number[] }
  | { type: 'measuring' }
  | { type: 'cpu'; usage: NodeJS.CpuUsage }
  | { type: 'snapshot'; file: string }
  | { type: 'error'; message: string };

/** Runner → process. */
export type ToChild =
  | { type: 'memory' }
  | { type: 'open'; total: number }
  | { type: 'broadcast'; warmupRounds: number; rounds: number }
  | { type: 'active' }
  | { type: 'cpu' }
  | { type: 'snapshot'; file: string }
  | { type: 'stop' };

/** The text a client sends on one connection to make the hub broadcast. */
export const BROADCAST_COMMAND = 'broadcast';

// ── conns: a client's many connections, and broadcast rounds over them ────────────────

/** The connections of the conns scenario, as a client makes them. */
export interface Fleet {
  /** Opens one connection, echoes one message, then counts what it receives (`counter.count`). */
  openOne(): Promise<void>;
  /** Asks the server to broadcast (over the first connection). */
  trigger(): void;
  /** What one broadcast round must deliver in all: messages (WebSocket) or bytes (node:net, frames). */
  perRound(): number;
}

/** Counts what a broadcast round delivers; the round ends once its target has arrived. */
export class RoundCounter {
  received = 0;
  target = Infinity;
  #done: (() => void) | null = null;

  readonly count = (amount: number): void => {
    this.received += amount;
    if (this.received < this.target || !this.#done) return;
    const done = this.#done;
    this.#done = null;
    done();
  };

  /** Runs one round: `trigger`, then waits (at most 20 s) for `target`; resolves with its milliseconds. */
  async round(target: number, trigger: () => void): Promise<number> {
    this.received = 0;
    this.target = target;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`broadcast round: ${this.received} of ${this.target} received after 20 s`)), 20_000);
      this.#done = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    const t0 = performance.now();
    trigger();
    await done;
    this.target = Infinity;
    return performance.now() - t0;
  }
}

/** Calls `openOne` for `from` … `total - 1`, `concurrency` at a time; resolves with the seconds it took. */
export async function openMany(from: number, total: number, concurrency: number, openOne: (index: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  let next = from;
  const worker = async () => {
    while (next < total) await openOne(next++);
  };
  await Promise.all(Array.from({ length: Math.max(0, Math.min(concurrency, total - from)) }, worker));
  return (performance.now() - t0) / 1000;
}

/** Serves the runner's 'open' (up to a total, `concurrency` at a time) and 'broadcast' commands over `fleet`. */
export function serveFleet(fleet: Fleet, counter: RoundCounter, concurrency: number): void {
  let opened = 0;
  const openUpTo = async (total: number): Promise<number> => {
    const seconds = await openMany(opened, total, concurrency, () => fleet.openOne());
    opened = total;
    return seconds;
  };
  const broadcastRounds = async (warmupRounds: number, rounds: number): Promise<number[]> => {
    const times: number[] = [];
    for (let round = 0; round < warmupRounds + rounds; round++) {
      const ms = await counter.round(fleet.perRound(), () => fleet.trigger());
      if (round >= warmupRounds) times.push(ms);
    }
    return times;
  };
  serveCommands(async (command) => {
    if (command.type === 'open') {
      const seconds = await openUpTo(command.total);
      post({ type: 'opened', total: opened, seconds });
    } else if (command.type === 'broadcast') {
      const ms = await broadcastRounds(command.warmupRounds, command.rounds);
      post({ type: 'broadcasted', total: opened, ms });
    }
  });
}

// ── uWebSockets.js (an optional dev dependency) ─────────────────────────────────────────

/** The npm package that ships prebuilt uWebSockets.js binaries (Node 16, 18 and 20 ABIs). */
export const UWS_PACKAGE = '@trufflesuite/uws-js-unofficial';

/** The part of a uWebSockets.js WebSocket the benchmark uses. */
export interface UwsSocket {
  /** 1: sent, 0: sent with backpressure, 2: dropped (over maxBackpressure) */
  send(message: ArrayBuffer | Uint8Array | string, isBinary?: boolean, compress?: boolean): number;
  getBufferedAmount(): number;
  subscribe(topic: string): boolean;
}

/** The part of uWebSockets.js's WebSocketBehavior the benchmark uses. */
export interface UwsBehavior {
  maxPayloadLength?: number;
  idleTimeout?: number;
  maxBackpressure?: number;
  compression?: number;
  sendPingsAutomatically?: boolean;
  open?: (ws: UwsSocket) => void;
  message?: (ws: UwsSocket, message: ArrayBuffer, isBinary: boolean) => void;
  drain?: (ws: UwsSocket) => void;
  close?: (ws: UwsSocket, code: number, message: ArrayBuffer) => void;
}

export interface UwsApp {
  ws(pattern: string, behavior: UwsBehavior): UwsApp;
  listen(host: string, port: number, callback: (listenSocket: unknown) => void): UwsApp;
  publish(topic: string, message: ArrayBuffer | Uint8Array | string, isBinary?: boolean, compress?: boolean): boolean;
}

export interface Uws {
  App(): UwsApp;
  SSLApp(options: { key_file_name: string; cert_file_name: string }): UwsApp;
  us_socket_local_port(listenSocket: unknown): number;
}

/**
 * Loads uWebSockets.js's native binary itself: the package's own entry point falls back,
 * with only a warning, to a JavaScript implementation built on `ws` where its binary does not
 * load (e.g. Node 22), and that must never be measured as uWS.
 */
export function loadUws(): { uws: Uws; version: string } | { error: string } {
  const require = createRequire(import.meta.url);
  let dir: string;
  let version: string;
  try {
    const manifest = require.resolve(`${UWS_PACKAGE}/package.json`);
    dir = dirname(manifest);
    version = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  } catch {
    return { error: `${UWS_PACKAGE} is not installed` };
  }
  const binary = resolve(dir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  try {
    const loaded: unknown = require(binary);
    if (!loaded || typeof Reflect.get(loaded, 'App') !== 'function') return { error: `${basename(binary)} has no App()` };
    return { uws: loaded as Uws, version };
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return { error: `no binary for Node ${process.version} (ABI ${process.versions.modules}, ${process.platform}-${process.arch}) in ${UWS_PACKAGE} ${version}: ${message}` };
  }
}

// ── the IPC channel ──────────────────────────────────────────────────────────────────────

export function readConfig(): ProcessConfig {
  const raw = process.argv[2];
  if (!raw) throw new Error('expected a JSON ProcessConfig as the first argument (start me with build/bench/run.js)');
  return JSON.parse(raw) as ProcessConfig;
}

export function post(message: ToParent): void {
  process.send?.(message);
}

/**
 * Wires the process to its runner: commands go to `handler` one at a time, `stop` exits
 * normally (so that --cpu-prof writes its profile), and losing the runner exits at once.
 */
export function serveCommands(handler: (command: ToChild) => Promise<void> | void): void {
  if (!process.send) throw new Error('this process must be started by build/bench/run.js (it needs an IPC channel)');
  let queue: Promise<void> = Promise.resolve();
  process.on('message', (command: ToChild) => {
    if (command.type === 'stop') process.exit(0);
    queue = queue.then(() => handler(command)).catch((error: unknown) => fail(error));
  });
  process.on('disconnect', () => process.exit(0));
}

export function fail(error: unknown): void {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  post({ type: 'error', message });
  process.stderr.write(`${message}\n`);
}

export const ignore = (): void => {};

// ── raw sockets ──────────────────────────────────────────────────────────────────────────

/** A node:net connection, or node:tls trusting `ca` when given: connected, Nagle off, errors ignored (the runner ends runs by killing). */
export async function dial(host: string, port: number, ca?: string): Promise<Socket> {
  const socket = ca ? tlsConnect({ host, port, ca }) : netConnect({ host, port });
  await once(socket, ca ? 'secureConnect' : 'connect');
  socket.setNoDelay(true);
  socket.on('error', ignore);
  return socket;
}

// ── payloads ─────────────────────────────────────────────────────────────────────────────

/** ASCII text of `size` bytes. */
export function textPayload(size: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let text = '';
  for (let i = 0; i < size; i++) text += alphabet[i % alphabet.length];
  return text;
}

/**
 * JSON-like ASCII text of exactly `size` bytes: an array of small records whose values vary
 * (a deterministic pseudo-random sequence), so that deflate has real work, not one repeat.
 */
export function jsonPayload(size: number): string {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];
  const records: string[] = [];
  let length = 2;
  for (;;) {
    const record = JSON.stringify({
      id: next() % 100000,
      user: `user-${next() % 5000}`,
      text: Array.from({ length: 3 + (next() % 6) }, () => words[next() % words.length]).join(' '),
      score: (next() % 10000) / 100,
      tags: [words[next() % words.length], words[next() % words.length]],
      ts: 1700000000000 + (next() % 100000000),
    });
    if (length + record.length + 1 > size) break;
    records.push(record);
    length += record.length + 1;
  }
  const text = `[${records.join(',')}`;
  return `${text}${' '.repeat(Math.max(0, size - text.length - 1))}]`;
}

/** Random bytes (not all zero: masking must really change them). */
export function binaryPayload(size: number): Uint8Array {
  return randomFillSync(new Uint8Array(size));
}

/** Length of a received message in bytes (TEXT here is ASCII, so string length is byte length). */
export function byteLength(data: string | ArrayBuffer | ArrayBufferView | readonly ArrayBufferView[]): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  let total = 0;
  for (const part of data) total += part.byteLength;
  return total;
}

// ── measuring ────────────────────────────────────────────────────────────────────────────

/**
 * Counts messages and bytes at a receiver: the clock starts at the first message, the first
 * `warmupMs` are not counted, then `durationMs` are; `done` gets the rates. Timers only read
 * the counters, so the per-message cost is two additions.
 */
export class Window {
  messages = 0;
  bytes = 0;
  started = false;
  readonly #warmupMs: number;
  readonly #durationMs: number;
  readonly #done: (values: Values) => void;

  constructor(warmupMs: number, durationMs: number, done: (values: Values) => void) {
    this.#warmupMs = warmupMs;
    this.#durationMs = durationMs;
    this.#done = done;
  }

  add(bytes: number, messages = 1): void {
    this.messages += messages;
    this.bytes += bytes;
    if (!this.started) this.#start();
  }

  #start(): void {
    this.started = true;
    setTimeout(() => {
      const m0 = this.messages;
      const b0 = this.bytes;
      const t0 = performance.now();
      setTimeout(() => {
        const seconds = (performance.now() - t0) / 1000;
        const messages = this.messages - m0;
        const bytes = this.bytes - b0;
        this.#done({ messages, bytes, seconds, messagesPerSecond: messages / seconds, megabytesPerSecond: bytes / 1e6 / seconds });
      }, this.#durationMs);
    }, this.#warmupMs);
  }
}

/** Full garbage collections until what is left is live (needs --expose-gc). */
export async function collectGarbage(): Promise<void> {
  const gc: unknown = Reflect.get(globalThis, 'gc');
  if (typeof gc !== 'function') throw new Error('measuring memory needs node --expose-gc');
  for (let i = 0; i < 4; i++) {
    (gc as () => void)();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Heap, external and RSS after a full garbage collection (needs --expose-gc). */
export async function measureMemory(connections: number): Promise<MemorySample> {
  await collectGarbage();
  const { heapUsed, heapTotal, external, arrayBuffers, rss } = process.memoryUsage();
  return { heapUsed, heapTotal, external, arrayBuffers, rss, connections };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The values at these quantiles (0 … 1, nearest rank) of `values` (sorted here, in place). */
export function percentiles(values: Float64Array, quantiles: readonly number[]): number[] {
  values.sort();
  const n = values.length;
  return quantiles.map((q) => (n === 0 ? Number.NaN : values[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]));
}

/** Which masking `ws` uses in this process (ws decides once, when it is loaded). */
export function bufferutilStatus(impl: Impl): BufferutilStatus {
  if (impl !== 'ws') return 'unused';
  if (process.env['WS_NO_BUFFER_UTIL']) return 'disabled';
  // Resolved as ws resolves it: the project's node_modules, then NODE_PATH.
  const require = createRequire(import.meta.url);
  let loaded: unknown;
  try {
    loaded = require('bufferutil');
  } catch {
    return 'absent';
  }
  const mask: unknown = loaded && typeof loaded === 'object' ? Reflect.get(loaded, 'mask') : undefined;
  return typeof mask === 'function' && String(mask).includes('[native code]') ? 'native' : 'js-fallback';
}

export function processInfo(impl: Impl, hasBroadcast?: boolean): ProcessInfo {
  const info: ProcessInfo = { impl, pid: process.pid, node: process.version, bufferutil: bufferutilStatus(impl) };
  if (hasBroadcast !== undefined) info.hasBroadcast = hasBroadcast;
  return info;
}

// ── CPU profiles (node --cpu-prof) ───────────────────────────────────────────────────────

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileRow {
  name: string;
  /** the source module (from esbuild's `// path` markers in a bundle) or file, and line */
  where: string;
  selfMs: number;
  /** share of the busy (non-idle) time */
  percent: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  idleMs: number;
  busyMs: number;
  top: ProfileRow[];
  /** self time per source module: websockets.ts, ws, node internals, GC… */
  byModule: Array<{ module: string; selfMs: number; percent: number }>;
  /** per module, the time with at least one of its functions on the stack (what it and all it calls cost) */
  inclusiveByModule: Array<{ module: string; selfMs: number; percent: number }>;
}

/** Where each line of an esbuild bundle came from: the `// path/to/file.ts` markers it writes. */
function bundleModules(url: string): ((line: number) => string) | null {
  if (!url.startsWith('file://')) return null;
  let text: string;
  try {
    text = readFileSync(fileURLToPath(url), 'utf8');
  } catch {
    return null;
  }
  const starts: Array<[number, string]> = [];
  text.split('\n').forEach((line, index) => {
    const match = /^\/\/ (\S+\.(?:ts|js|mjs|cjs))$/.exec(line);
    if (match) starts.push([index, match[1]]);
  });
  if (starts.length === 0) return null;
  return (line) => {
    let module = basename(fileURLToPath(url));
    for (const [start, name] of starts) {
      if (start > line) break;
      module = name;
    }
    return module;
  };
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The line where a function is defined in a source file that was bundled (profiles of a
 * bundle give bundle lines; esbuild's TypeScript stripping shifts them). First match wins.
 */
function definitionLine(source: string, name: string): number | null {
  const bare = name.replace(/^(get|set) /, '');
  const n = escapeRegExp(bare);
  const accessor = name !== bare ? `${name.slice(0, 3)}\\s+` : '';
  const patterns = [
    new RegExp(`^\\s*(?:export\\s+)?(?:async\\s+)?function\\s*\\*?\\s*${n}\\s*[(<]`),
    new RegExp(`^\\s*(?:static\\s+)?(?:async\\s+)?${accessor}\\*?${n}\\s*[(<]`),
    new RegExp(`^\\s*(?:export\\s+)?class\\s+${n}\\b`),
    new RegExp(`^\\s*(?:export\\s+)?(?:const|let|var)\\s+${n}\\s*=`),
    new RegExp(`(?:^|[^\\w$#])${n}\\s*[:=]\\s*(?:async\\s*)?\\(`),
  ];
  const lines = source.split('\n');
  for (const pattern of patterns) {
    const index = lines.findIndex((line) => pattern.test(line));
    if (index >= 0) return index + 1;
  }
  return null;
}

const sources = new Map<string, string | null>();

/** The source text of a bundled module (its marker path is relative to where esbuild ran). */
function moduleSource(bundleUrl: string, module: string): string | null {
  const candidates = [resolve(process.cwd(), module), resolve(dirname(fileURLToPath(bundleUrl)), '..', '..', module)];
  for (const file of candidates) {
    if (!sources.has(file)) {
      try {
        sources.set(file, readFileSync(file, 'utf8'));
      } catch {
        sources.set(file, null);
      }
    }
    const text = sources.get(file);
    if (text) return text;
  }
  return null;
}

/** Module and line of a profiled function: node internals, a package file, or a bundled source file. */
function locate(frame: CallFrame, maps: Map<string, ((line: number) => string) | null>): { module: string; where: string } {
  const { url, functionName, lineNumber } = frame;
  if (url === '') {
    const module = functionName.startsWith('(') ? functionName : '(native)';
    return { module, where: module };
  }
  if (url.startsWith('node:')) return { module: 'node internals', where: `${url}:${lineNumber + 1}` };
  const inPackage = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url);
  if (inPackage) return { module: inPackage[1], where: `${inPackage[1]}/${inPackage[2]}:${lineNumber + 1}` };
  if (!maps.has(url)) maps.set(url, bundleModules(url));
  const map = maps.get(url);
  if (!map) return { module: basename(url), where: `${basename(url)}:${lineNumber + 1}` };
  const marker = map(lineNumber);
  const module = marker.replace(/^(\.\.\/)+/, '');
  const source = moduleSource(url, marker);
  const line = source && functionName ? definitionLine(source, functionName) : null;
  return { module, where: line ? `${module}:${line}` : module };
}

/** Self time per function of a .cpuprofile, with the busiest functions first. */
export function summarizeProfile(file: string, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0) {
    // timeDeltas[i] is the time before sample i; charge sample i with the time until the next one.
    for (let i = 0; i < samples.length; i++) {
      const delta = i + 1 < deltas.length ? deltas[i + 1] : 0;
      selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, delta));
    }
  } else {
    const interval = (profile.endTime - profile.startTime) / Math.max(1, profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0));
    for (const node of profile.nodes) selfUs.set(node.id, (node.hitCount ?? 0) * interval);
  }
  const maps = new Map<string, ((line: number) => string) | null>();
  const functions = new Map<string, { name: string; where: string; us: number }>();
  const modules = new Map<string, number>();
  // The modules on each node's stack (its own and its callers'), for inclusive time.
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const onStack = new Map<number, ReadonlySet<string>>();
  const stackModules = (id: number): ReadonlySet<string> => {
    const known = onStack.get(id);
    if (known) return known;
    const node = byId.get(id);
    const up = parent.get(id);
    const set = new Set(up === undefined ? [] : stackModules(up));
    if (node && node.callFrame.url !== '') set.add(locate(node.callFrame, maps).module);
    onStack.set(id, set);
    return set;
  };
  const inclusive = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const frame = node.callFrame;
    totalUs += us;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const { module, where } = locate(frame, maps);
    const name = frame.functionName || '(anonymous)';
    const key = `${name}@${where}`;
    const entry = functions.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
    modules.set(module, (modules.get(module) ?? 0) + us);
    for (const on of stackModules(id)) inclusive.set(on, (inclusive.get(on) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const percent = (us: number) => (busyUs > 0 ? (100 * us) / busyUs : 0);
  return {
    file,
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    busyMs: busyUs / 1000,
    top: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map(({ name, where, us }) => ({ name, where, selfMs: us / 1000, percent: percent(us) })),
    byModule: [...modules.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([module, us]) => ({ module, selfMs: us / 1000, percent: percent(us) })),
    inclusiveByModule: [...inclusive.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([module, us]) => ({ module, selfMs: us / 1000, percent: percent(us) })),
  };
}

// ── heap snapshots (v8.writeHeapSnapshot) ────────────────────────────────────────────────

interface HeapSnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Objects and their shallow bytes in a heap snapshot, per kind: constructor (objects), function (closures), or V8's category. */
export function heapCensus(file: string): Map<string, { count: number; bytes: number }> {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshotFile;
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((field) => fields.indexOf(field));
  const census = new Map<string, { count: number; bytes: number }>();
  const { nodes, strings } = snapshot;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]];
    const name = strings[nodes[i + nameAt]];
    const kind =
      type === 'object' || type === 'closure' || type === 'native' ? `${name || '(anonymous)'} (${type})` : type === 'array' || type === 'hidden' ? name : `(${type})`;
    const entry = census.get(kind) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += nodes[i + sizeAt];
    census.set(kind, entry);
  }
  return census;
}

/** What `after` holds more than `before`, per connection: a markdown table of the kinds that grew most. */
export function formatCensusDiff(before: Map<string, { count: number; bytes: number }>, after: Map<string, { count: number; bytes: number }>, connections: number, title: string, top = 25): string {
  const rows = [...after].map(([kind, a]) => {
    const b = before.get(kind) ?? { count: 0, bytes: 0 };
    return { kind, count: (a.count - b.count) / connections, bytes: (a.bytes - b.bytes) / connections };
  });
  for (const [kind, b] of before) if (!after.has(kind)) rows.push({ kind, count: -b.count / connections, bytes: -b.bytes / connections });
  const total = rows.reduce((sum, row) => sum + row.bytes, 0);
  const objects = rows.reduce((sum, row) => sum + row.count, 0);
  rows.sort((x, y) => y.bytes - x.bytes);
  return [
    `#### ${title}`,
    '',
    `Per connection: ${total.toFixed(0)} bytes of V8 heap (shallow sizes), ${objects.toFixed(1)} objects.`,
    '',
    '| objects / conn | bytes / conn | kind |',
    '| ---: | ---: | --- |',
    ...rows.slice(0, top).map((row) => `| ${row.count.toFixed(2)} | ${row.bytes.toFixed(0)} | \`${row.kind.replace(/`/g, "'").slice(0, 80)}\` |`),
    '',
  ].join('\n');
}

export function formatProfile(summary: ProfileSummary, title: string): string {
  const lines = [
    `#### ${title}`,
    '',
    `${basename(summary.file)}: ${summary.busyMs.toFixed(0)} ms busy, ${summary.idleMs.toFixed(0)} ms idle`,
    '',
    '| self ms | % busy | function | where |',
    '| ---: | ---: | --- | --- |',
    ...summary.top.map((row) => `| ${row.selfMs.toFixed(1)} | ${row.percent.toFixed(1)} | \`${row.name}\` | ${row.where} |`),
    '',
    'By module: ' + summary.byModule.slice(0, 8).map((m) => `${m.module} ${m.percent.toFixed(1)}%`).join(', '),
    '',
    'Inclusive (a function of the module on the stack): ' + summary.inclusiveByModule.slice(0, 8).map((m) => `${m.module} ${m.percent.toFixed(1)}%`).join(', '),
    '',
  ];
  return lines.join('\n');
}

// ── senders without promise-based backpressure ───────────────────────────────────────────

/** The part of a `ws` WebSocket that pumpWs needs (ws itself is loaded only where it runs). */
interface WsSender {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array, callback?: (error?: Error) => void): void;
}

/**
 * Streams `chunk` over a ws socket as fast as backpressure allows: sends while at most
 * `highWaterMark` bytes are buffered; the last send of each burst calls back once written.
 */
export function pumpWs(ws: WsSender, chunk: Uint8Array, highWaterMark: number): void {
  const OPEN = 1;
  const pump = (error?: Error) => {
    if (error || ws.readyState !== OPEN) return;
    while (ws.bufferedAmount + chunk.byteLength < highWaterMark) ws.send(chunk);
    ws.send(chunk, pump);
  };
  pump();
}

/** The part of a node:net socket that pumpNet needs. */
interface NetSender {
  readonly destroyed: boolean;
  write(chunk: Uint8Array): boolean;
  on(event: 'drain', listener: () => void): unknown;
}

/** Streams `chunk` over a node:net socket: write until write() says the buffer is full, then wait for 'drain'. */
export function pumpNet(socket: NetSender, chunk: Uint8Array): void {
  const pump = () => {
    while (!socket.destroyed && socket.write(chunk));
  };
  socket.on('drain', pump);
  pump();
}
