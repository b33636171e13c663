// WebSockets over HTTP/2 (RFC 8441) against HTTP/1.1, our client against our server, over TLS
// on 127.0.0.1 (issue 13, "Benchmarks").
//
//   npm run bench:http2        (builds, then node build/bench/http2.js [--reps 3] [--quick] [--help])
//
// Every repetition runs each scenario once over h2 and once over HTTP/1.1, in alternating order,
// so every figure also has a same-run ratio h2/h1. Each run is a fresh server process (CPU 0)
// and a fresh client process (CPU 1), pinned with taskset, both under --expose-gc, driven by
// this runner over their IPC channel; every step has a time bound and the children are killed
// when the runner exits. Scenarios:
//
//   open N     N WebSockets opened, C handshakes in flight (a sliding window): handshakes/s at
//              the client. Over h2 the server's maxConcurrentStreams is N, so they share one h2
//              connection; over HTTP/1.1 each is its own TLS connection. Once all N are open,
//              each echoes one message, and after an idle pause both processes report RSS and
//              heap+external after a full GC: the delta from a baseline taken before the first
//              connection (after a warm-up of a few WebSockets, closed again), per WebSocket.
//   echo       one WebSocket, 16-byte TEXT messages echoed with 64 in flight: messages/s.
//   echo ×64   64 WebSockets (one h2 connection, or 64 TLS connections), one 16-byte message in
//              flight on each: messages/s.
//   stream     64 KiB BINARY messages client → server over one WebSocket as fast as
//              backpressure allows: MB/s at the server.
//
// HTTP/1.1 is served by `listen(…, { tls })` (node:https) unless `--h1-server h2`, where the
// same `listen(…, { tls, http2: true })` serves it by ALPN fallback.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeHeapSnapshot } from 'node:v8';
import { connect, listen } from '../websockets.ts';
import type { ClientOptions, Server, WebSocket } from '../websockets.ts';
import { selfSignedCertificate } from '../test/certificate.ts';
import { KiB, Window, binaryPayload, byteLength, formatProfile, ignore, measureMemory, median, summarizeProfile, textPayload } from './common.ts';
import type { MemorySample, Values } from './common.ts';

const SELF = fileURLToPath(import.meta.url);
const HOST = '127.0.0.1';

type Protocol = 'h2' | 'h1';
type Kind = 'open' | 'echo' | 'echo64' | 'stream';

/** One run of one scenario over one protocol: everything both processes need. */
interface Job {
  protocol: Protocol;
  kind: Kind;
  /** open: WebSockets opened; echo64: WebSockets */
  count: number;
  /** open: handshakes in flight */
  concurrency: number;
  /** echo: messages in flight on the one WebSocket */
  inFlight: number;
  warmupMs: number;
  durationMs: number;
  /** serve HTTP/1.1 with the HTTP/2 server (ALPN fallback) instead of node:https */
  h1ViaH2: boolean;
  key: string;
  cert: string;
  /** open: where to write heap snapshots at the baseline and once all are open (a path prefix), or '' */
  heapSnapshot: string;
}

const SMALL_SIZE = 16;
const STREAM_SIZE = 64 * KiB;
const WARM_SOCKETS = 20;
const HANDSHAKE_TIMEOUT = 60_000;

// ── IPC: the runner asks, a child answers each request in turn ─────────────────────────────

type Command =
  | { type: 'listen'; job: Job }
  | { type: 'warm'; job: Job; port: number }
  | { type: 'baseline' }
  | { type: 'open' }
  | { type: 'memory'; count: number }
  | { type: 'echo' }
  | { type: 'stream' }
  | { type: 'sinkResult' };

type Reply =
  | { type: 'port'; port: number }
  | { type: 'memory'; sample: MemorySample }
  | { type: 'opened'; seconds: number; cpuSeconds: number; http2: number }
  | { type: 'values'; values: Values }
  | { type: 'done' }
  | { type: 'error'; message: string };

interface Request {
  id: number;
  command: Command;
}

interface Answer {
  id: number;
  reply: Reply;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a rejection naming `what` after `ms`. */
function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `condition` every 20 ms for at most `ms`; false if it never held. */
async function until(condition: () => boolean, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(20)) if (condition()) return true;
  return condition();
}

/** A child: answers the runner's requests one at a time, in order. */
function serveRequests(handle: (command: Command) => Promise<Reply>): void {
  let queue = Promise.resolve();
  process.on('disconnect', () => process.exit(0)); // the runner went away
  process.on('message', (request: Request) => {
    queue = queue.then(async () => {
      let reply: Reply;
      try {
        reply = await handle(request.command);
      } catch (error) {
        reply = { type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) };
      }
      process.send?.({ id: request.id, reply } satisfies Answer);
    });
  });
}

/** A full GC's memory sample; with a snapshot prefix, a heap snapshot too (`…-side-moment.heapsnapshot`). */
async function sample(count: number, job: Job | undefined, side: 'server' | 'client', moment: 'before' | 'after'): Promise<Reply> {
  const memory = await measureMemory(count);
  if (job?.heapSnapshot) writeHeapSnapshot(`${job.heapSnapshot}-${side}-${moment}.heapsnapshot`);
  return { type: 'memory', sample: memory };
}

// ── the server process ───────────────────────────────────────────────────────────────────

function runServer(): void {
  let server: Server | undefined;
  let job: Job | undefined;
  let window: Window | undefined;
  let result: Values | undefined;
  const sockets = new Set<WebSocket>();
  serveRequests(async (command) => {
    switch (command.type) {
      case 'listen': {
        job = command.job;
        const sink = job.kind === 'stream';
        if (sink) window = new Window(job.warmupMs, job.durationMs, (values) => (result = values));
        const { protocol, h1ViaH2, count } = job;
        server = await listen(HOST, 0, async (ws) => {
          sockets.add(ws);
          try {
            if (sink) for await (const message of ws) window?.add(byteLength(message));
            else for await (const message of ws) await ws.send(message);
          } finally {
            sockets.delete(ws);
          }
        }, {
          tls: { key: job.key, cert: job.cert },
          http2: protocol === 'h2' || h1ViaH2,
          maxConcurrentStreams: Math.max(count, 100),
          pingInterval: 0,
          handshakeTimeout: HANDSHAKE_TIMEOUT,
        });
        return { type: 'port', port: server.port };
      }
      case 'baseline':
        await until(() => sockets.size === 0, 10_000);
        return sample(sockets.size, job, 'server', 'before');
      case 'memory':
        if (!(await until(() => sockets.size >= command.count, 30_000))) throw new Error(`the server holds ${sockets.size} WebSockets, not ${command.count}`);
        await sleep(300);
        return sample(sockets.size, job, 'server', 'after');
      case 'sinkResult':
        if (!(await until(() => result !== undefined, 60_000))) throw new Error('the sink measured nothing');
        return { type: 'values', values: result ?? {} };
      default:
        throw new Error(`the server does not do ${command.type}`);
    }
  });
}

// ── the client process ───────────────────────────────────────────────────────────────────

function runClient(): void {
  let job: Job | undefined;
  let url = '';
  let options: ClientOptions = {};
  const sockets: WebSocket[] = [];
  let unexpected = 0; // bytes received by idle WebSockets (none)
  const currentJob = (): Job => {
    if (!job) throw new Error('no job yet');
    return job;
  };
  /** Opens `count` WebSockets with `concurrency` handshakes in flight (a sliding window). */
  const openMany = async (count: number, concurrency: number): Promise<WebSocket[]> => {
    const opened: WebSocket[] = [];
    let started = 0;
    const worker = async () => {
      while (started < count) {
        started++;
        opened.push(await connect(url, options));
      }
    };
    await bounded(Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker)), 300_000, `opening ${count} WebSockets`);
    return opened;
  };
  /** One message echoed on each, `concurrency` at a time: every WebSocket is up at both ends. */
  const echoOnce = async (list: WebSocket[], concurrency: number) => {
    for (let i = 0; i < list.length; i += concurrency) {
      await Promise.all(list.slice(i, i + concurrency).map(async (ws) => {
        const reply = ws.receive();
        await ws.send('x');
        await reply;
      }));
    }
  };
  serveRequests(async (command) => {
    switch (command.type) {
      case 'warm': {
        job = command.job;
        url = `wss://${HOST}:${command.port}/`;
        // A long handshake timeout: on a busy machine 100 TLS handshakes in flight can take longer than the default 10 s.
        options = { tls: { ca: job.cert }, pingInterval: 0, handshakeTimeout: HANDSHAKE_TIMEOUT, ...(job.protocol === 'h2' ? { http2: true } : {}) };
        if (job.kind !== 'open') return { type: 'done' };
        // Warm-up: the code paths compiled and node:http2 or node:https loaded before the baseline.
        const warm = await openMany(WARM_SOCKETS, WARM_SOCKETS);
        await echoOnce(warm, WARM_SOCKETS);
        await Promise.all(warm.map((ws) => ws.close()));
        await sleep(job.protocol === 'h2' ? 1_300 : 300); // the h2 connection closes 1 s after its last stream
        return { type: 'done' };
      }
      case 'baseline':
        return sample(sockets.length, job, 'client', 'before');
      case 'open': {
        const { count, concurrency } = currentJob();
        const t0 = performance.now();
        const cpu0 = process.cpuUsage();
        const opened = await openMany(count, concurrency);
        const seconds = (performance.now() - t0) / 1000;
        const { user, system } = process.cpuUsage(cpu0);
        sockets.push(...opened);
        await echoOnce(opened, concurrency);
        // Like a user, each WebSocket is read; nothing more arrives.
        for (const ws of opened) void (async () => {
          for await (const message of ws) unexpected += byteLength(message);
        })().catch(ignore);
        return { type: 'opened', seconds, cpuSeconds: (user + system) / 1e6, http2: opened.filter((ws) => ws.response?.httpVersion === '2').length };
      }
      case 'memory':
        await sleep(300);
        if (unexpected > 0) throw new Error(`idle WebSockets received ${unexpected} bytes`);
        return sample(sockets.length, job, 'client', 'after');
      case 'echo': {
        const { kind, count, inFlight, warmupMs, durationMs, protocol } = currentJob();
        const message = textPayload(SMALL_SIZE);
        let values: Values | undefined;
        const window = new Window(warmupMs, durationMs, (measured) => (values = measured));
        const list = await openMany(kind === 'echo64' ? count : 1, 100);
        const http2 = list.filter((ws) => ws.response?.httpVersion === '2').length;
        if (http2 !== (protocol === 'h2' ? list.length : 0)) throw new Error(`${http2} of ${list.length} WebSockets over h2`);
        const perSocket = kind === 'echo64' ? 1 : inFlight;
        const deadline = Date.now() + warmupMs + durationMs + 30_000;
        await Promise.all(list.map(async (ws) => {
          for (let i = 0; i < perSocket; i++) ws.send(message).catch(ignore);
          for await (const reply of ws) {
            window.add(byteLength(reply));
            if (values !== undefined || Date.now() > deadline) break;
            await ws.send(message);
          }
        }));
        if (values === undefined) throw new Error('the echo measured nothing in time');
        return { type: 'values', values };
      }
      case 'stream': {
        const { protocol, warmupMs, durationMs } = currentJob();
        const [ws] = await openMany(1, 1);
        if (!ws || (ws.response?.httpVersion === '2') !== (protocol === 'h2')) throw new Error(`the WebSocket went over HTTP/${ws?.response?.httpVersion}`);
        const chunk = binaryPayload(STREAM_SIZE);
        const deadline = Date.now() + warmupMs + durationMs + 30_000;
        void (async () => {
          while (Date.now() < deadline) await ws.send(chunk);
        })().catch(ignore);
        return { type: 'done' };
      }
      default:
        throw new Error(`the client does not do ${command.type}`);
    }
  });
}

// ── the runner ───────────────────────────────────────────────────────────────────────────

const HELP = `node build/bench/http2.js [options]   (npm run bench:http2 builds first)

WebSockets over HTTP/2 (RFC 8441) against HTTP/1.1 over TLS on 127.0.0.1, websockets.ts at both
ends, h2 and h1 alternated within each repetition (same-run ratios h2/h1). Writes
bench/http2-results.md and bench/http2-results.json.

  --reps N           repetitions (default 3)
  --quick            short run: 1 repetition, 1,000 WebSockets only, shorter windows
  --connections L    WebSockets to open, comma-separated (default 1000,5000)
  --concurrency C    handshakes in flight while opening (default 100)
  --only LIST        scenarios to run: open,echo,echo64,stream (default all)
  --h1-server S      https (default: listen with tls) or h2 (the http2 server's HTTP/1.1 fallback)
  --no-pin           do not pin the server to CPU 0 and the client to CPU 1
  --profile SIDE     after the runs, one run of each scenario per protocol under node --cpu-prof
                     on SIDE (server or client); summaries to build/bench/http2-profiles/
  --heap             after the runs, heap snapshots of both sides before and after opening the
                     first --connections count, over h2 and h1: the growth per WebSocket by
                     class, to build/bench/http2-heap/ (--reps 0: only these, or only --profile)
  --out PREFIX       results file prefix (default bench/http2-results)
  --help             this text`;

interface Settings {
  reps: number;
  connections: number[];
  concurrency: number;
  kinds: Kind[];
  warmupMs: number;
  durationMs: number;
  h1ViaH2: boolean;
  pin: boolean;
  profile: 'server' | 'client' | null;
  heap: boolean;
  out: string;
}

/** A child process of the runner, with request/answer over IPC. */
class Child {
  readonly process: ChildProcess;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  #nextId = 0;
  #exited = false;

  constructor(role: 'server' | 'client', cpu: number, pin: boolean, extraArgs: string[]) {
    const nodeArgs = ['--expose-gc', ...extraArgs, SELF, role];
    const [command, args] = pin ? ['taskset', ['-c', String(cpu), process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
    this.process = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(this.process);
    this.process.on('message', (answer: Answer) => {
      this.#pending.get(answer.id)?.(answer.reply);
      this.#pending.delete(answer.id);
    });
    this.process.once('exit', () => {
      this.#exited = true;
      children.delete(this.process);
      for (const resolve of this.#pending.values()) resolve({ type: 'error', message: `the ${role} exited` });
      this.#pending.clear();
    });
  }

  async ask(command: Command, ms: number): Promise<Reply> {
    if (this.#exited) throw new Error('the child has exited');
    const id = this.#nextId++;
    const answer = new Promise<Reply>((resolve) => this.#pending.set(id, resolve));
    this.process.send({ id, command } satisfies Request);
    const reply = await bounded(answer, ms, command.type);
    if (reply.type === 'error') throw new Error(reply.message);
    return reply;
  }

  /** CPU time it used so far, in clock ticks (/proc/<pid>/stat: utime + stime), 0 where unknown. */
  cpuTicks(): number {
    try {
      const fields = readFileSync(`/proc/${this.process.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return Number(fields[11]) + Number(fields[12]) || 0;
    } catch {
      return 0;
    }
  }

  /** Lets it write its profile (SIGTERM would not), then kills it if it lingers. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.process.disconnect();
    await bounded(exited, 10_000, 'exit').catch(() => this.process.kill('SIGKILL'));
  }
}

const children = new Set<ChildProcess>();

function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

/** Busy and total CPU ticks of the whole machine (/proc/stat), or null elsewhere. */
function machineTicks(): { busy: number; total: number } | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    const total = fields.reduce((sum, n) => sum + n, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/** Established TCP connections whose local port is `port` (the server's ends), from /proc/net/tcp. */
function tcpConnections(port: number): number {
  try {
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    return readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1]?.endsWith(`:${hex}`) && fields[3] === '01';
    }).length;
  } catch {
    return NaN;
  }
}

const perSocketKiB = (before: MemorySample, after: MemorySample, count: number, field: 'rss' | 'heapExternal') => {
  const value = (sample: MemorySample) => (field === 'rss' ? sample.rss : sample.heapUsed + sample.external);
  return (value(after) - value(before)) / count / KiB;
};

/** One scenario over one protocol: fresh server and client processes, measured, then stopped. */
/** What a run records besides its figures: a CPU profile of one side, heap snapshots (a path prefix). */
interface Recording {
  profile?: { side: 'server' | 'client'; dir: string };
  heapSnapshot?: string;
}

async function runOne(settings: Settings, pem: { key: string; cert: string }, protocol: Protocol, kind: Kind, count: number, recording: Recording = {}): Promise<Values> {
  const job: Job = {
    protocol, kind, count, concurrency: settings.concurrency, inFlight: 64,
    warmupMs: settings.warmupMs, durationMs: settings.durationMs, h1ViaH2: settings.h1ViaH2, ...pem,
    heapSnapshot: recording.heapSnapshot ?? '',
  };
  const { profile } = recording;
  const profArgs = (side: 'server' | 'client') => (profile?.side === side ? ['--cpu-prof', `--cpu-prof-dir=${profile.dir}`, `--cpu-prof-name=${protocol}-${kind}${kind === 'open' ? count : ''}-${side}.cpuprofile`] : []);
  const server = new Child('server', 0, settings.pin, profArgs('server'));
  const client = new Child('client', 1, settings.pin, profArgs('client'));
  const ticks0 = machineTicks();
  const t0 = performance.now();
  try {
    const listening = await server.ask({ type: 'listen', job }, 20_000);
    if (listening.type !== 'port') throw new Error('no port');
    const { port } = listening;
    await client.ask({ type: 'warm', job, port }, 60_000);
    const values: Values = {};
    if (kind === 'open') {
      const [serverBefore, clientBefore] = [await server.ask({ type: 'baseline' }, 30_000), await client.ask({ type: 'baseline' }, 30_000)];
      const serverTicks = server.cpuTicks();
      const opened = await client.ask({ type: 'open' }, 330_000);
      if (opened.type !== 'opened') throw new Error('not opened');
      // How busy each side was while opening (CPUs): the open rate is CPU-bound where it is near 1.
      // CPU time per handshake: less noisy than the rate on a shared machine.
      values['clientBusy'] = opened.cpuSeconds / opened.seconds;
      values['serverBusy'] = (server.cpuTicks() - serverTicks) / 100 / opened.seconds;
      values['clientCpuMs'] = (opened.cpuSeconds * 1000) / count;
      values['serverCpuMs'] = ((server.cpuTicks() - serverTicks) * 10) / count;
      if (opened.http2 !== (protocol === 'h2' ? count : 0)) throw new Error(`${opened.http2} of ${count} WebSockets went over h2`);
      values['handshakesPerSecond'] = count / opened.seconds;
      values['tcpConnections'] = tcpConnections(port);
      const [serverAfter, clientAfter] = [await server.ask({ type: 'memory', count }, 60_000), await client.ask({ type: 'memory', count }, 60_000)];
      if (serverBefore.type !== 'memory' || clientBefore.type !== 'memory' || serverAfter.type !== 'memory' || clientAfter.type !== 'memory') throw new Error('no memory sample');
      values['clientRssKiB'] = perSocketKiB(clientBefore.sample, clientAfter.sample, count, 'rss');
      values['clientHeapKiB'] = perSocketKiB(clientBefore.sample, clientAfter.sample, count, 'heapExternal');
      values['serverRssKiB'] = perSocketKiB(serverBefore.sample, serverAfter.sample, count, 'rss');
      values['serverHeapKiB'] = perSocketKiB(serverBefore.sample, serverAfter.sample, count, 'heapExternal');
    } else if (kind === 'stream') {
      await client.ask({ type: 'stream' }, 30_000);
      const measured = await server.ask({ type: 'sinkResult' }, settings.warmupMs + settings.durationMs + 60_000);
      if (measured.type !== 'values') throw new Error('no result');
      values['megabytesPerSecond'] = measured.values['megabytesPerSecond'] ?? NaN;
    } else {
      const measured = await client.ask({ type: 'echo' }, settings.warmupMs + settings.durationMs + 60_000);
      if (measured.type !== 'values') throw new Error('no result');
      values['messagesPerSecond'] = measured.values['messagesPerSecond'] ?? NaN;
    }
    const ticks1 = machineTicks();
    const seconds = (performance.now() - t0) / 1000;
    if (ticks0 && ticks1) {
      const ticksPerSecond = 100; // USER_HZ on Linux
      const ours = server.cpuTicks() + client.cpuTicks();
      values['otherCpus'] = Math.max(0, (ticks1.busy - ticks0.busy - ours) / ticksPerSecond / seconds);
    }
    return values;
  } catch (error) {
    throw new Error(`${protocol} ${kind}${kind === 'open' ? ` ${count}` : ''}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    await Promise.all([client.stop(), server.stop()]);
  }
}

/** One measured figure of the table: where it comes from, and the issue's target if it has one. */
interface Metric {
  id: string;
  label: string;
  unit: string;
  kind: Kind;
  count: number;
  field: string;
  digits: number;
  /** target on the ratio h2/h1: at least (≥) or at most (≤) */
  target?: { op: '≥' | '≤'; ratio: number };
}

function metricsFor(settings: Settings): Metric[] {
  const list: Metric[] = [];
  const c = settings.concurrency;
  for (const n of settings.connections) {
    if (!settings.kinds.includes('open')) break;
    const at = n.toLocaleString('en-US');
    list.push(
      { id: `open${n}.rate`, label: `open ${at} WebSockets, ${c} in flight`, unit: 'handshakes/s', kind: 'open', count: n, field: 'handshakesPerSecond', digits: 0, target: { op: '≥', ratio: 3 } },
      { id: `open${n}.clientCpu`, label: `client CPU per handshake (${at})`, unit: 'ms', kind: 'open', count: n, field: 'clientCpuMs', digits: 3 },
      { id: `open${n}.serverCpu`, label: `server CPU per handshake (${at}; with its echo)`, unit: 'ms', kind: 'open', count: n, field: 'serverCpuMs', digits: 3 },
      { id: `open${n}.clientHeap`, label: `client heap+external per WebSocket (${at} open, idle)`, unit: 'KiB', kind: 'open', count: n, field: 'clientHeapKiB', digits: 2, target: { op: '≤', ratio: 0.5 } },
      { id: `open${n}.clientRss`, label: `client RSS per WebSocket (${at} open, idle)`, unit: 'KiB', kind: 'open', count: n, field: 'clientRssKiB', digits: 2, target: { op: '≤', ratio: 0.5 } },
      { id: `open${n}.serverHeap`, label: `server heap+external per WebSocket (${at} open, idle)`, unit: 'KiB', kind: 'open', count: n, field: 'serverHeapKiB', digits: 2 },
      { id: `open${n}.serverRss`, label: `server RSS per WebSocket (${at} open, idle)`, unit: 'KiB', kind: 'open', count: n, field: 'serverRssKiB', digits: 2 },
    );
  }
  if (settings.kinds.includes('echo')) list.push({ id: 'echo', label: '16 B echo, 1 WebSocket, 64 in flight', unit: 'msg/s', kind: 'echo', count: 1, field: 'messagesPerSecond', digits: 0, target: { op: '≥', ratio: 0.7 } });
  if (settings.kinds.includes('echo64')) list.push({ id: 'echo64', label: '16 B echo, 64 WebSockets, 1 in flight each', unit: 'msg/s', kind: 'echo64', count: 64, field: 'messagesPerSecond', digits: 0, target: { op: '≥', ratio: 0.7 } });
  if (settings.kinds.includes('stream')) list.push({ id: 'stream', label: '64 KiB client → server, 1 WebSocket', unit: 'MB/s', kind: 'stream', count: 1, field: 'megabytesPerSecond', digits: 1, target: { op: '≥', ratio: 0.7 } });
  return list;
}

/** The runs of a repetition: each scenario (and size) once, the key of its values. */
function runsFor(settings: Settings): Array<{ key: string; kind: Kind; count: number }> {
  const runs: Array<{ key: string; kind: Kind; count: number }> = [];
  for (const kind of settings.kinds) {
    if (kind === 'open') for (const n of settings.connections) runs.push({ key: `open${n}`, kind, count: n });
    else runs.push({ key: kind, kind, count: kind === 'echo64' ? 64 : 1 });
  }
  return runs;
}

type Repetition = Record<string, Record<Protocol, Values>>;

const fmt = (n: number, digits: number) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—');

interface Row {
  metric: Metric;
  h2: number[];
  h1: number[];
  ratios: number[];
  met: boolean | null;
}

function tabulate(metrics: Metric[], reps: Repetition[]): Row[] {
  return metrics.map((metric) => {
    const key = metric.id.split('.')[0] ?? metric.id;
    const pick = (protocol: Protocol) => reps.map((rep) => rep[key]?.[protocol]?.[metric.field] ?? NaN);
    const h2 = pick('h2');
    const h1 = pick('h1');
    const ratios = h2.map((value, i) => value / (h1[i] ?? NaN));
    const ratio = median(ratios);
    const met = !metric.target || !Number.isFinite(ratio) ? null : metric.target.op === '≥' ? ratio >= metric.target.ratio : ratio <= metric.target.ratio;
    return { metric, h2, h1, ratios, met };
  });
}

function markdownTable(rows: Row[]): string {
  const range = (values: number[], digits: number) => `${fmt(median(values), digits)} (${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)})`;
  return [
    '| scenario | unit | h2 median (min–max) | HTTP/1.1 median (min–max) | h2/h1 median (min–max) | target | met? |',
    '| --- | --- | ---: | ---: | ---: | :-: | :-: |',
    ...rows.map(({ metric, h2, h1, ratios, met }) =>
      `| ${metric.label} | ${metric.unit} | ${range(h2, metric.digits)} | ${range(h1, metric.digits)} | ${range(ratios, 2)}× | ${metric.target ? `${metric.target.op} ${metric.target.ratio}×` : '—'} | ${met === null ? '—' : met ? 'yes' : '**no**'} |`),
  ].join('\n');
}

async function profileRuns(settings: Settings, pem: { key: string; cert: string }, side: 'server' | 'client'): Promise<string> {
  const dir = join(process.cwd(), 'build', 'bench', 'http2-profiles');
  await mkdir(dir, { recursive: true });
  for (const file of await readdir(dir)) if (file.endsWith(`-${side}.cpuprofile`)) await rm(join(dir, file));
  const sections: string[] = [];
  for (const run of runsFor(settings)) {
    for (const protocol of ['h2', 'h1'] as const) {
      console.log(`profile: ${protocol} ${run.key} (${side})`);
      await runOne(settings, pem, protocol, run.kind, run.count, { profile: { side, dir } });
    }
  }
  for (const file of (await readdir(dir)).filter((name) => name.endsWith(`-${side}.cpuprofile`)).sort()) {
    sections.push(formatProfile(summarizeProfile(join(dir, file), 15), file.replace('.cpuprofile', '')));
  }
  const text = sections.join('\n');
  await writeFile(join(dir, `summary-${side}.md`), text);
  console.log(`profiles and summary-${side}.md in ${dir}`);
  return text;
}

// ── heap snapshots: what one more WebSocket costs, by class ───────────────────────────────

interface HeapSnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: unknown[] } };
  nodes: number[];
  strings: string[];
}

/** Objects of a heap snapshot by kind (constructor or closure name; strings, code and arrays lumped): count and self bytes. */
function heapClasses(file: string): Map<string, { count: number; bytes: number }> {
  const data = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshotFile;
  const fields = data.snapshot.meta.node_fields;
  const types = (data.snapshot.meta.node_types[0] ?? []) as string[];
  const [typeAt, nameAt, sizeAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const classes = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < data.nodes.length; i += fields.length) {
    const type = types[data.nodes[i + typeAt] ?? 0] ?? '?';
    const name = data.strings[data.nodes[i + nameAt] ?? 0] ?? '?';
    const key = type === 'object' || type === 'closure' || type === 'native' ? `${type} ${name.slice(0, 60)}` : `(${type})`;
    const entry = classes.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += data.nodes[i + sizeAt] ?? 0;
    classes.set(key, entry);
  }
  return classes;
}

/** The growth from `before` to `after`, per WebSocket, the largest first. */
function heapGrowth(before: string, after: string, count: number, top: number): string {
  const [a, b] = [heapClasses(before), heapClasses(after)];
  const rows = [...b.entries()].map(([key, { count: n, bytes }]) => ({ key, count: (n - (a.get(key)?.count ?? 0)) / count, bytes: (bytes - (a.get(key)?.bytes ?? 0)) / count }));
  const total = rows.reduce((sum, row) => sum + row.bytes, 0);
  return [
    `self size in the JS heap per WebSocket: ${fmt(total, 0)} B in all (heap snapshots before and after, the delta divided by ${count})`,
    '',
    '| bytes per WebSocket | objects per WebSocket | kind |',
    '| ---: | ---: | --- |',
    ...rows.sort((x, y) => y.bytes - x.bytes).slice(0, top).map((row) => `| ${fmt(row.bytes, 0)} | ${fmt(row.count, 2)} | \`${row.key}\` |`),
    '',
  ].join('\n');
}

async function heapRuns(settings: Settings, pem: { key: string; cert: string }): Promise<void> {
  const dir = join(process.cwd(), 'build', 'bench', 'http2-heap');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const count = settings.connections[0] ?? 1000;
  const sections: string[] = [];
  for (const protocol of ['h2', 'h1'] as const) {
    console.log(`heap snapshots: ${protocol}, ${count} WebSockets`);
    const prefix = join(dir, protocol);
    await runOne(settings, pem, protocol, 'open', count, { heapSnapshot: prefix });
    for (const side of ['client', 'server'] as const) {
      sections.push(`#### ${side}, ${protocol === 'h2' ? 'HTTP/2' : 'HTTP/1.1'}, ${count.toLocaleString('en-US')} WebSockets\n\n${heapGrowth(`${prefix}-${side}-before.heapsnapshot`, `${prefix}-${side}-after.heapsnapshot`, count, 25)}`);
    }
  }
  const text = sections.join('\n');
  await writeFile(join(dir, 'summary.md'), text);
  console.log(`\n${text}\nsnapshots and summary.md in ${dir}`);
}

async function runner(): Promise<void> {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string' }, quick: { type: 'boolean', default: false }, connections: { type: 'string' },
      concurrency: { type: 'string', default: '100' }, only: { type: 'string' }, 'h1-server': { type: 'string', default: 'https' },
      'no-pin': { type: 'boolean', default: false }, profile: { type: 'string' }, heap: { type: 'boolean', default: false }, out: { type: 'string', default: 'bench/http2-results' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return console.log(HELP);
  const quick = values.quick ?? false;
  const kinds = (values.only ?? 'open,echo,echo64,stream').split(',') as Kind[];
  const known: readonly string[] = ['open', 'echo', 'echo64', 'stream'];
  for (const kind of kinds) if (!known.includes(kind)) throw new Error(`--only: unknown scenario ${kind}`);
  if (values.profile !== undefined && values.profile !== 'server' && values.profile !== 'client') throw new Error('--profile is server or client');
  if (values['h1-server'] !== 'https' && values['h1-server'] !== 'h2') throw new Error('--h1-server is https or h2');
  const settings: Settings = {
    reps: Number(values.reps ?? (quick ? 1 : 3)),
    connections: (values.connections ?? (quick ? '1000' : '1000,5000')).split(',').map(Number),
    concurrency: Number(values.concurrency),
    kinds,
    warmupMs: quick ? 500 : 1_000,
    durationMs: quick ? 1_500 : 3_000,
    h1ViaH2: values['h1-server'] === 'h2',
    pin: !values['no-pin'],
    profile: values.profile ?? null,
    heap: values.heap ?? false,
    out: values.out ?? 'bench/http2-results',
  };
  if (!(settings.reps >= 0) || settings.connections.some((n) => !(n > 0)) || !(settings.concurrency > 0)) throw new Error('--reps, --connections and --concurrency are positive numbers');
  if (settings.pin) {
    const probe = spawn('taskset', ['-c', '1', 'true'], { stdio: 'ignore' });
    const ok = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.once('exit', (code) => resolve(code === 0));
    });
    if (!ok) {
      console.log('taskset -c 1 does not work here: not pinning');
      settings.pin = false;
    }
  }
  const started = new Date();
  const load0 = loadavg();
  const dir = await mkdtemp(join(tmpdir(), 'bench-http2-'));
  try {
    const pem = await selfSignedCertificate(dir);
    const reps: Repetition[] = [];
    for (let rep = 0; rep < settings.reps; rep++) {
      const repetition: Repetition = {};
      for (const run of runsFor(settings)) {
        const order: Protocol[] = rep % 2 === 0 ? ['h2', 'h1'] : ['h1', 'h2'];
        const pair: Partial<Record<Protocol, Values>> = {};
        for (const protocol of order) pair[protocol] = await runOne(settings, pem, protocol, run.kind, run.count);
        repetition[run.key] = { h2: pair.h2 ?? {}, h1: pair.h1 ?? {} };
        const show = (v: Values) => Object.entries(v).map(([k, n]) => `${k} ${fmt(n, 2)}`).join(', ');
        console.log(`rep ${rep + 1} ${run.key}: h2 {${show(repetition[run.key]?.h2 ?? {})}} h1 {${show(repetition[run.key]?.h1 ?? {})}}`);
      }
      reps.push(repetition);
    }
    if (settings.heap) await heapRuns(settings, pem);
    if (settings.reps === 0) {
      if (settings.profile) console.log(`\n${await profileRuns(settings, pem, settings.profile)}`);
      return;
    }
    const load1 = loadavg();
    const seconds = (Date.now() - started.getTime()) / 1000;
    const rows = tabulate(metricsFor(settings), reps);
    const others = reps.flatMap((rep) => Object.values(rep).flatMap((pair) => [pair.h2['otherCpus'] ?? NaN, pair.h1['otherCpus'] ?? NaN])).filter(Number.isFinite);
    const tcp = reps.flatMap((rep) => settings.connections.map((n) => `${n}: h2 ${rep[`open${n}`]?.h2['tcpConnections'] ?? '?'}, h1 ${rep[`open${n}`]?.h1['tcpConnections'] ?? '?'}`));
    const command = `node build/bench/http2.js ${process.argv.slice(2).join(' ')}`.trim();
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.versions.node}`;
    const loadLine = `load average (1, 5, 15 min) ${load0.map((n) => n.toFixed(2)).join(', ')} at the start, ${load1.map((n) => n.toFixed(2)).join(', ')} at the end`;
    const othersLine = others.length ? `other processes kept ${fmt(median(others), 2)} CPUs busy during the median run (${fmt(Math.min(...others), 2)}–${fmt(Math.max(...others), 2)})` : 'other processes: unknown (no /proc/stat)';
    const report = [
      `# WebSockets over HTTP/2 vs HTTP/1.1 (bench/http2.ts)`,
      '',
      `\`${command}\` on ${started.toISOString()} (${seconds.toFixed(0)} s): ${settings.reps} repetition(s), h2 and h1 alternated; ${machine}; ${settings.pin ? 'server on CPU 0, client on CPU 1 (taskset)' : 'not pinned'}; TLS on ${HOST}, websockets.ts at both ends; HTTP/1.1 served by ${settings.h1ViaH2 ? 'the HTTP/2 server (ALPN fallback)' : 'node:https (`listen` with `tls`)'}.`,
      '',
      `Machine: ${loadLine}; ${othersLine}.`,
      '',
      markdownTable(rows),
      '',
      'CPU per handshake: the CPU time each process used while the WebSockets opened, divided by their number (the server\'s includes the echo that each WebSocket sends once open): less sensitive than the rate to other processes taking the pinned CPUs.',
      '',
      `Memory: the delta from a baseline after a warm-up (${WARM_SOCKETS} WebSockets opened and closed), after a full GC, divided by the WebSockets open. Established TCP connections at the server once all were open: ${tcp.join('; ')}.`,
      '',
    ].join('\n');
    console.log(`\n${report}`);
    await writeFile(`${settings.out}.md`, report);
    await writeFile(`${settings.out}.json`, `${JSON.stringify({ command, started: started.toISOString(), seconds, machine, loadavg: { start: load0, end: load1 }, settings: { ...settings }, reps, rows: rows.map((row) => ({ id: row.metric.id, label: row.metric.label, unit: row.metric.unit, h2: row.h2, h1: row.h1, ratios: row.ratios, target: row.metric.target ?? null, met: row.met })) }, null, 2)}\n`);
    console.log(`wrote ${settings.out}.md and ${settings.out}.json`);
    if (settings.profile) console.log(`\n${await profileRuns(settings, pem, settings.profile)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const role = process.argv[2];
if (role === 'server') runServer();
else if (role === 'client') runClient();
else {
  process.on('exit', killChildren);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      killChildren();
      process.exit(130);
    });
  }
  await runner();
}
