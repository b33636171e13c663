// Cross-process fan-out: 1,000 clients in one room, every message delivered to all of them.
//
//   npm run bench:fanout        (builds, then node build/bench/fanout.js [--reps 3] [--clients 1000])
//
// Two variants, alternated within each repetition so that every figure also has a same-run ratio:
//
//   one process   one server holds the whole room and delivers with broadcast() alone;
//   2 + Redis     two server processes hold half the room each; a message from a client goes
//                 to the local half with broadcast() and through Redis pub/sub
//                 (examples/redis-fanout.ts, the cluster chat's fan-out) to the other process,
//                 which delivers it to its half with broadcast().
//
// The clients are one more process (the publisher is one of them, on the first server), so
// publish-to-receive latency is measured on one clock. Latency: messages sent one at a time,
// each waiting until all clients have it (p50 and p99 over every delivery). Throughput:
// deliveries per second with 32 messages in flight. redis-server is started on a free port and
// stopped at the end. On a 2-core machine the servers, Redis and the clients share two cores:
// the figure says what the Redis hop costs, not how far more cores would carry it.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { broadcast, connect, listen } from '../websockets.ts';
import type { WebSocket } from '../websockets.ts';
import { RedisFanout } from '../examples/redis-fanout.ts';
import { freePort } from '../test/support.ts';

const SELF = fileURLToPath(import.meta.url);
const ROOM = 'bench';
const MAX_BUFFERED = 1024 * 1024;

interface ClientsResult {
  latencyP50: number;
  latencyP99: number;
  deliveriesPerSecond: number;
  /** Deliveries that did not arrive (skipped by the slow-consumer limit, or lost). */
  missing: number;
}

// ── a server: one room, its local members, and optionally the Redis fan-out ──────────────────

async function serve(redisUrl: string | null): Promise<void> {
  const room = new Set<WebSocket>();
  let skipped = 0;
  const toRoom = (message: string) => {
    broadcast(room, message, { maxBuffered: MAX_BUFFERED }).then(({ skipped: slow }) => (skipped += slow.length), () => undefined);
  };
  const fanout = redisUrl ? await RedisFanout.connect(redisUrl) : null;
  await fanout?.subscribe(ROOM, toRoom);
  const server = await listen('127.0.0.1', 0, async (ws) => {
    room.add(ws);
    try {
      for await (const message of ws) {
        toRoom(message as string);
        fanout?.publish(ROOM, message as string);
      }
    } finally {
      room.delete(ws);
    }
  }, { pingInterval: 0 });
  console.log(`PORT ${server.port}`);
  process.on('SIGTERM', () => {
    console.error(`server: skipped ${skipped}, lost ${fanout?.stats.lost ?? 0}`);
    void Promise.all([server.close(), fanout?.close()]).then(() => process.exit(0));
  });
}

// ── the clients: the whole room, one of them publishing ──────────────────────────────────────

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function clients(urls: string[], count: number): Promise<ClientsResult> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i += 100) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, j) => connect(urls[(i + j) % urls.length]!, { pingInterval: 0 })))));
  }
  const received = new Map<number, number>();
  const sentAt = new Map<number, number>();
  let latencies: number[] = [];
  let delivered = 0;
  let waiting = null as { id: number; resolve: () => void } | null;
  let allDone = null as (() => void) | null;
  for (const ws of sockets) {
    void (async () => {
      for await (const data of ws) {
        const id = Number((data as string).slice(0, (data as string).indexOf(' ')));
        latencies.push(performance.now() - (sentAt.get(id) ?? NaN));
        delivered++;
        const got = (received.get(id) ?? 0) + 1;
        received.set(id, got);
        if (got === count) {
          received.delete(id);
          if (waiting?.id === id) waiting.resolve();
          allDone?.();
        }
      }
    })().catch(() => undefined);
  }
  const [publisher] = sockets;
  let nextId = 0;
  const publish = () => {
    const id = ++nextId;
    sentAt.set(id, performance.now());
    void publisher!.send(`${id} ${'x'.repeat(48)}`);
    return id;
  };
  const oneAtATime = async (messages: number) => {
    for (let i = 0; i < messages; i++) {
      const id = publish();
      await Promise.race([new Promise<void>((resolve) => (waiting = { id, resolve })), new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
  };
  await new Promise((resolve) => setTimeout(resolve, 300)); // every join seen by its server
  await oneAtATime(30); // warmup
  latencies = [];
  await oneAtATime(200);
  const sorted = Float64Array.from(latencies).sort();
  const latencyP50 = percentile(sorted, 50);
  const latencyP99 = percentile(sorted, 99);

  // Throughput: 32 messages in flight, 2,000 messages.
  const total = 2000;
  const inFlight = 32;
  const firstId = nextId + 1;
  delivered = 0;
  const started = performance.now();
  let completed = 0;
  await new Promise<void>((resolve) => {
    const deadline = setTimeout(resolve, 60_000);
    const last = firstId + total - 1;
    const refill = () => {
      while (nextId < last && nextId - firstId + 1 - completed < inFlight) publish();
      if (completed === total) {
        clearTimeout(deadline);
        resolve();
      }
    };
    allDone = () => {
      completed++;
      refill();
    };
    refill();
  });
  const elapsed = (performance.now() - started) / 1000;
  const deliveriesPerSecond = delivered / elapsed;
  const missing = total * count - delivered;
  await Promise.all(sockets.map((ws) => ws.close().catch(() => undefined)));
  return { latencyP50, latencyP99, deliveriesPerSecond, missing };
}

// ── the runner ───────────────────────────────────────────────────────────────────────────────

class Proc {
  readonly child: ChildProcess;
  output = '';
  constructor(command: string, args: string[]) {
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
  }
  async line(pattern: RegExp, ms = 20_000): Promise<RegExpExecArray> {
    for (const deadline = Date.now() + ms; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 20))) {
      const match = pattern.exec(this.output);
      if (match) return match;
      if (this.child.exitCode !== null) break;
    }
    throw new Error(`no ${pattern} from ${this.child.spawnargs.join(' ')}:\n${this.output.slice(-2000)}`);
  }
  stop(): Promise<void> {
    if (this.child.exitCode !== null) return Promise.resolve();
    this.child.kill('SIGTERM');
    return new Promise((resolve) => this.child.once('exit', () => resolve()));
  }
}

async function runVariant(servers: number, redisUrl: string | null, count: number): Promise<ClientsResult> {
  const procs = Array.from({ length: servers }, () => new Proc(process.execPath, [SELF, 'server', JSON.stringify({ redis: redisUrl })]));
  try {
    const ports = await Promise.all(procs.map(async (proc) => Number((await proc.line(/PORT (\d+)/))[1])));
    const client = new Proc(process.execPath, [SELF, 'clients', JSON.stringify({ urls: ports.map((port) => `ws://127.0.0.1:${port}`), count })]);
    const [, json] = await client.line(/RESULT (.*)/, 180_000);
    return JSON.parse(json!) as ClientsResult;
  } finally {
    await Promise.all(procs.map((proc) => proc.stop()));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function run(): Promise<void> {
  const { values } = parseArgs({ options: { reps: { type: 'string', default: '3' }, clients: { type: 'string', default: '1000' } } });
  const reps = Number(values.reps);
  const count = Number(values.clients);
  const redisPort = await freePort();
  const redis = new Proc('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  redis.child.on('error', () => undefined);
  try {
    await redis.line(/Ready to accept connections/).catch(() => {
      throw new Error('redis-server did not start (install: apt-get install -y redis-server)');
    });
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    const rows: Array<{ single: ClientsResult; cluster: ClientsResult }> = [];
    for (let rep = 0; rep < reps; rep++) {
      // Rotate the order: the second run of a repetition does not always find a warmer machine.
      const order = rep % 2 === 0 ? ['single', 'cluster'] : ['cluster', 'single'];
      const row: Partial<{ single: ClientsResult; cluster: ClientsResult }> = {};
      for (const which of order) row[which as 'single' | 'cluster'] = which === 'single' ? await runVariant(1, null, count) : await runVariant(2, redisUrl, count);
      rows.push(row as { single: ClientsResult; cluster: ClientsResult });
      console.log(`rep ${rep + 1}: ${JSON.stringify(row)}`);
    }
    const fmt = (n: number, digits = 2) => n.toLocaleString('en-US', { maximumFractionDigits: digits });
    const metric = (label: string, unit: string, get: (r: ClientsResult) => number, digits: number) => {
      const single = median(rows.map((r) => get(r.single)));
      const cluster = median(rows.map((r) => get(r.cluster)));
      const ratios = rows.map((r) => get(r.cluster) / get(r.single));
      return `| ${label} | ${unit} | ${fmt(single, digits)} | ${fmt(cluster, digits)} | ${fmt(median(ratios))}× (${fmt(Math.min(...ratios))}–${fmt(Math.max(...ratios))}) |`;
    };
    console.log(`\n${count} clients in one room; median of ${reps} repetition(s); ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.versions.node}\n`);
    console.log('| metric | unit | one process, broadcast() | 2 processes + Redis pub/sub | ratio (2 + Redis / one), same run |');
    console.log('| --- | --- | ---: | ---: | ---: |');
    console.log(metric('deliveries, 32 messages in flight', 'deliveries/s', (r) => r.deliveriesPerSecond, 0));
    console.log(metric('publish → receive, one message at a time, p50', 'ms', (r) => r.latencyP50, 2));
    console.log(metric('publish → receive, one message at a time, p99', 'ms', (r) => r.latencyP99, 2));
    const missing = rows.reduce((sum, r) => sum + r.single.missing + r.cluster.missing, 0);
    console.log(`\ndeliveries missing (slow-consumer skips or losses): ${missing}`);
  } finally {
    await redis.stop();
  }
}

const [role, config] = process.argv.slice(2);
if (role === 'server') {
  await serve((JSON.parse(config ?? '{}') as { redis: string | null }).redis);
} else if (role === 'clients') {
  const { urls, count } = JSON.parse(config ?? '{}') as { urls: string[]; count: number };
  console.log(`RESULT ${JSON.stringify(await clients(urls, count))}`);
  process.exit(0);
} else {
  await run();
}
