// The cluster chat (examples/cluster-chat.ts) against a real redis-server, over loopback:
//
//   - a primary with two workers on one port, and a separate primary with one worker on
//     another port standing in for a second machine: room members on three processes (each
//     worker says its pid on connect);
//   - once every process has subscribed (PUBSUB NUMSUB), every client publishes K numbered
//     messages and receives exactly 1..K from every publisher, in order, none twice;
//   - Redis restarted mid-run: every worker resubscribes by itself, delivery resumes, and what
//     was published during the outage is lost, counted and reported by each worker: exactly
//     what its clients missed;
//   - a worker stopped with SIGSTOP past a low `client-output-buffer-limit pubsub`: Redis
//     drops its connection; after SIGCONT it reconnects, resubscribes, counts what it lost
//     and serves again;
//   - a client that stops reading: the others in its room get every message, the worker
//     closes it (1008, too slow) and its memory stays bounded;
//   - a worker killed with SIGKILL: the primary forks another, the clients reconnect
//     (`reconnect()`) and rejoin;
//   - SIGTERM to a primary: every client of its workers gets 1001, the workers unsubscribe
//     and exit, the primary exits 0; the other machine carries on.
//
// redis-server is a system peer (test/peers.ts): without it, one SKIPPED line; with CI=true, a
// failure. Needs `npm run build` (build/examples/cluster-chat.js); npm test does.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from 'redis';
import { connect, reconnect } from '../websockets.ts';
import type { WebSocket } from '../websockets.ts';
import { encodeEnvelope, RedisFanout, roomChannel } from '../examples/redis-fanout.ts';
import { findRoot, withTimeout } from './chromium.ts';
import { peerMissing, REDIS_SERVER } from './peers.ts';
import { freePort, sleep } from './support.ts';

const CLUSTER_CHAT = join(findRoot(), 'build', 'examples', 'cluster-chat.js');
const skip = peerMissing(REDIS_SERVER);
const WAIT_MS = 10_000;
/** The chat's message budget, out of the way of the tests (they send in bursts). */
const ENV = { CHAT_BURST: '100000', CHAT_RATE: '100000' };

// ── processes: redis-server and the cluster chat ─────────────────────────────────────────────

class Child {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the process is gone and its output all read (or it could not start). */
  readonly #gone: Promise<void>;
  readonly #listeners = new Set<() => void>();

  constructor(command: string, args: string[], env: Record<string, string> = {}) {
    this.child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.#gone = new Promise((resolve) => {
      this.child.once('close', () => resolve());
      this.child.once('error', (error) => {
        this.output += `\n${command}: ${error.message}\n`;
        resolve();
      });
    });
    const take = (chunk: Buffer) => {
      this.output += chunk.toString();
      for (const listener of this.#listeners) listener();
    };
    this.child.stdout?.on('data', take);
    this.child.stderr?.on('data', take);
  }

  /** The first match of `pattern` in the output from `from` on (a position in it), now or to come; fails when the process ends without it. */
  waitFor(pattern: RegExp, label: string, from = 0, ms = WAIT_MS): Promise<RegExpExecArray> {
    let listener: (() => void) | undefined;
    const found = new Promise<RegExpExecArray>((resolve, reject) => {
      listener = () => {
        const match = pattern.exec(this.output.slice(from));
        if (match) resolve(match);
      };
      this.#listeners.add(listener);
      listener();
      void this.#gone.then(() => {
        listener?.();
        reject(new Error(`${label}: the process ended without it; output:\n${this.output.slice(-3000)}`));
      });
    });
    return withTimeout(found, ms, `${label}; output:\n${this.output.slice(-3000)}`).finally(() => listener && this.#listeners.delete(listener));
  }

  /** Every match of a global `pattern` in the output from `from` on. */
  all(pattern: RegExp, from = 0): RegExpExecArray[] {
    return [...this.output.slice(from).matchAll(pattern)];
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    try {
      return await withTimeout(this.exited, WAIT_MS, `the exit of ${this.child.spawnfile} after ${signal}`);
    } catch (error) {
      this.child.kill('SIGKILL');
      throw error;
    }
  }
}

function startRedis(port: number): Promise<Child> {
  const redis = new Child('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  return redis.waitFor(/Ready to accept connections/, 'redis-server starting').then(() => redis);
}

/** A primary with `workers` workers on a free port, once they all listen. */
async function startCluster(workers: number, redisUrl: string): Promise<{ proc: Child; url: string }> {
  const proc = new Child(process.execPath, [CLUSTER_CHAT], { ...ENV, PORT: '0', WORKERS: String(workers), REDIS_URL: redisUrl });
  const [, port] = await proc.waitFor(/cluster chat on http:\/\/127\.0\.0\.1:(\d+) with/, 'the cluster chat starting');
  return { proc, url: `ws://127.0.0.1:${port}/chat` };
}

/** A process's resident memory, from /proc (Linux). */
function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1]) * 1024;
}

// ── chat clients ─────────────────────────────────────────────────────────────────────────────

interface ChatEvent {
  type: string;
  name?: string;
  text?: string;
  pid?: number;
  code?: number;
}

/** A member of a room: knows the pid of the worker it is on, keeps every event it gets. */
class Member {
  readonly ws: WebSocket;
  readonly name: string;
  readonly pid: number;
  readonly events: ChatEvent[] = [];
  readonly #listeners = new Set<() => void>();

  private constructor(ws: WebSocket, name: string, pid: number) {
    this.ws = ws;
    this.name = name;
    this.pid = pid;
    void (async () => {
      try {
        for await (const data of ws) this.#push(JSON.parse(data as string) as ChatEvent);
      } catch {
        // the end of the connection: the tests look at ws.closed
      }
      this.#push({ type: 'closed', code: ws.closeCode ?? 0 });
    })();
  }

  #push(event: ChatEvent): void {
    this.events.push(event);
    for (const listener of this.#listeners) listener();
  }

  /** Connects, reads the worker's pid, says hello in `room` and waits for its own join. */
  static async join(url: string, room: string, name: string): Promise<Member> {
    const ws = await connect(url);
    const greeting = JSON.parse((await ws.receive()) as string) as ChatEvent;
    assert.equal(greeting.type, 'server');
    const member = new Member(ws, name, greeting.pid ?? 0);
    await ws.send(JSON.stringify({ type: 'hello', name, room }));
    await member.until(() => member.events.some((event) => event.type === 'join' && event.name === name), `${name}'s join`);
    return member;
  }

  until(done: () => boolean, label: string, ms = WAIT_MS): Promise<void> {
    let listener: (() => void) | undefined;
    const reached = new Promise<void>((resolve) => {
      listener = () => done() && resolve();
      this.#listeners.add(listener);
      listener();
    });
    return withTimeout(reached, ms, `${this.name} waiting for ${label}`).finally(() => listener && this.#listeners.delete(listener));
  }

  /** The numbers received from each publisher (message texts are `<tag> <n>`). */
  numbers(tag: string): Map<string, number[]> {
    const byName = new Map<string, number[]>();
    for (const event of this.events) {
      const [prefix, n] = event.type === 'message' ? (event.text ?? '').split(' ') : [];
      if (prefix !== tag || event.name === undefined) continue;
      byName.set(event.name, [...(byName.get(event.name) ?? []), Number(n)]);
    }
    return byName;
  }

  async publish(tag: string, from: number, to: number, gapMs = 0): Promise<void> {
    for (let n = from; n <= to; n++) {
      await this.ws.send(JSON.stringify({ type: 'message', text: `${tag} ${n}` }));
      if (gapMs) await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
  }

  close(): Promise<void> {
    return withTimeout(this.ws.close(), 7_000, `closing ${this.name}`).catch(() => undefined);
  }
}

/** Members of `room` on `url`, joined until there are `perWorker` on each of `workers` distinct workers. */
async function spread(url: string, room: string, prefix: string, workers: number, perWorker: number): Promise<Member[]> {
  const kept: Member[] = [];
  const extra: Member[] = [];
  for (let i = 0; kept.length < workers * perWorker; i++) {
    assert.ok(i < workers * perWorker * 4, `the primary did not spread connections over ${workers} workers`);
    const member = await Member.join(url, room, `${prefix}${i}`);
    const onSame = kept.filter((other) => other.pid === member.pid).length;
    const pids = new Set(kept.map((other) => other.pid));
    if (onSame < perWorker && (pids.has(member.pid) || pids.size < workers)) kept.push(member);
    else extra.push(member);
  }
  await Promise.all(extra.map((member) => member.close()));
  return kept;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// ── the suite ────────────────────────────────────────────────────────────────────────────────

describe('the cluster chat over Redis pub/sub', { skip, timeout: 120_000 }, () => {
  let redisPort = 0;
  let redis: Child;
  let admin: ReturnType<typeof createClient>;
  /** Two workers under one primary on one port. */
  let cluster: { proc: Child; url: string };
  /** A second "machine": its own primary and worker on another port. */
  let machine: { proc: Child; url: string };
  const open: Member[] = [];

  /** Waits until `count` processes are subscribed to the room's channel. */
  async function subscribed(room: string, count: number): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const got = (await admin.pubSubNumSub(roomChannel(room)))[roomChannel(room)];
      if (got === count) return;
      assert.ok(Date.now() < deadline, `PUBSUB NUMSUB ${roomChannel(room)} is ${got}, not ${count}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** What the workers' logs say about the room's lost messages: the last count per worker pid. */
  function lostIn(room: string): Map<number, number> {
    const lost = new Map<number, number>();
    for (const proc of [cluster.proc, machine.proc]) {
      for (const [, pid, count] of proc.all(new RegExp(`\\[worker (\\d+)\\] redis: lost \\d+ message\\(s\\) in room ${room} from \\S+ \\((\\d+) in this room`, 'g'))) {
        lost.set(Number(pid), Number(count));
      }
    }
    return lost;
  }

  async function joinAll(room: string, prefix: string, perWorker: number): Promise<Member[]> {
    const members = [...(await spread(cluster.url, room, `${prefix}a`, 2, perWorker)), ...(await spread(machine.url, room, `${prefix}m`, 1, perWorker))];
    open.push(...members);
    assert.equal(new Set(members.map((member) => member.pid)).size, 3, 'members on three processes');
    await subscribed(room, 3);
    return members;
  }

  before(async () => {
    if (skip) return;
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    admin = createClient({ url: redisUrl, socket: { reconnectStrategy: () => 100 } });
    admin.on('error', () => undefined);
    await admin.connect();
    [cluster, machine] = await Promise.all([startCluster(2, redisUrl), startCluster(1, redisUrl)]);
  });

  after(async () => {
    if (skip) return;
    await Promise.all(open.map((member) => member.close()));
    await Promise.allSettled([cluster?.proc.stop(), machine?.proc.stop()]);
    await admin?.close().catch(() => undefined);
    await redis?.stop();
  });

  test('members on three processes: every client gets exactly 1..K from every publisher, in order, none twice', async () => {
    const K = 40;
    const members = await joinAll('fanout', 'f', 2);
    await Promise.all(members.map((member) => member.publish('n', 1, K)));
    for (const member of members) {
      await member.until(() => [...member.numbers('n').values()].flat().length >= K * members.length, `${K} messages from each publisher`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100)); // a repeat would come within this
    for (const member of members) {
      const numbers = member.numbers('n');
      assert.deepEqual([...numbers.keys()].sort(), members.map((other) => other.name).sort(), `${member.name} hears every publisher`);
      for (const [name, got] of numbers) assert.deepEqual(got, range(1, K), `${member.name} from ${name}`);
    }
    assert.deepEqual(lostIn('fanout'), new Map(), 'nothing lost');
  });

  test('Redis restarted mid-run: every worker resubscribes, delivery resumes, the messages lost meanwhile are counted and reported', async (t) => {
    const members = await joinAll('restart', 'r', 2);
    await Promise.all(members.map((member) => member.publish('n', 1, 5)));
    for (const member of members) await member.until(() => member.numbers('n').get(members[5]!.name)?.length === 5 && [...member.numbers('n').values()].flat().length === 30, 'the first 5 from everyone');

    const clusterMark = cluster.proc.output.length;
    const machineMark = machine.proc.output.length;
    await redis.stop();
    await cluster.proc.waitFor(/\[worker (\d+)\] redis: the subscriber connection is down[^]*\[worker (?!\1)\d+\] redis: the subscriber connection is down/, 'both workers see Redis gone', clusterMark);
    await machine.proc.waitFor(/redis: the subscriber connection is down/, 'the machine sees Redis gone', machineMark);
    await Promise.all(members.map((member) => member.publish('n', 6, 10, 10))); // during the outage
    redis = await startRedis(redisPort);
    await cluster.proc.waitFor(/\[worker (\d+)\] redis: connected again \(\d+ room\(s\) resubscribed\)[^]*\[worker (?!\1)\d+\] redis: connected again/, 'both workers reconnected', clusterMark);
    await machine.proc.waitFor(/redis: connected again \(\d+ room\(s\) resubscribed\)/, 'the machine reconnected', machineMark);
    await subscribed('restart', 3);
    await Promise.all(members.map((member) => member.publish('n', 11, 15)));
    for (const member of members) {
      await member.until(() => [...member.numbers('n').values()].every((got) => got.at(-1) === 15) && member.numbers('n').size === 6, 'the last 5 from everyone');
    }

    for (const member of members) {
      let missed = 0;
      for (const [name, got] of member.numbers('n')) {
        const local = members.find((other) => other.name === name)!.pid === member.pid;
        // Local members are served by their own worker, Redis or not; the others' messages of the outage are gone.
        assert.deepEqual(got, local ? range(1, 15) : [...range(1, 5), ...range(11, 15)], `${member.name} from ${name}`);
        missed += 15 - got.length;
      }
      assert.equal(missed, 20, `${member.name} missed the outage's messages of the 4 publishers on other processes`);
      // The log comes through the primary's pipe, possibly after the messages that showed the gap.
      for (let wait = 0; wait < 100 && lostIn('restart').get(member.pid) !== missed; wait++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(lostIn('restart').get(member.pid), missed, `worker ${member.pid} reports what its clients missed`);
    }
    const lost = lostIn('restart');
    assert.equal(lost.size, 3, 'every worker counted its losses');
    t.diagnostic(`lost during the outage, per worker: ${[...lost].map(([pid, count]) => `${pid}: ${count}`).join(', ')}`);
    assert.equal(cluster.proc.all(/could not publish to room restart/g, clusterMark).length, 2, 'both workers say their publishes failed');
  });

  test('a worker stalled (SIGSTOP) past the pubsub output buffer limit is dropped by Redis; after SIGCONT it resubscribes and serves again', async (t) => {
    await admin.configSet('client-output-buffer-limit', 'pubsub 256kb 0 0');
    try {
      const [stalled] = await spread(cluster.url, 'stall', 's', 1, 1);
      const [other] = await spread(machine.url, 'stall', 'o', 1, 1);
      open.push(stalled!, other!);
      await subscribed('stall', 2);
      const mark = cluster.proc.output.length;
      const redisMark = redis.output.length;
      process.kill(stalled!.pid, 'SIGSTOP');
      let seq = 0;
      try {
        // A busy room, straight into Redis: 64 KiB messages until Redis gives up on the stalled subscriber.
        const big = JSON.stringify({ type: 'message', name: 'flood', text: 'x'.repeat(64 * 1024), time: 0 });
        for (let batch = 0; batch < 16 && !/overcoming of output buffer limits/.test(redis.output.slice(redisMark)); batch++) {
          await Promise.all(range(1, 16).map(() => admin.publish(roomChannel('stall'), encodeEnvelope('flood', ++seq, big))));
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await redis.waitFor(/scheduled to be closed ASAP for overcoming of output buffer limits/, 'Redis dropping the stalled subscriber', redisMark);
      } finally {
        process.kill(stalled!.pid, 'SIGCONT');
      }
      await cluster.proc.waitFor(new RegExp(`\\[worker ${stalled!.pid}\\] redis: connected again \\(\\d+ room\\(s\\) resubscribed\\)`), 'the stalled worker reconnecting', mark);
      await subscribed('stall', 2);
      await admin.publish(roomChannel('stall'), encodeEnvelope('flood', ++seq, JSON.stringify({ type: 'message', name: 'flood', text: 'last', time: 0 })));
      await other!.publish('n', 1, 3);
      await stalled!.until(() => stalled!.numbers('n').get(other!.name)?.join() === '1,2,3', 'messages after the stall');
      const [, gap] = await cluster.proc.waitFor(new RegExp(`\\[worker ${stalled!.pid}\\] redis: lost (\\d+) message\\(s\\) in room stall from flood`), 'the loss counted', mark);
      const floods = stalled!.events.filter((event) => event.name === 'flood').length;
      assert.equal(Number(gap) + floods, seq, 'what it got and what it counted as lost make up all that was published');
      assert.ok(Number(gap) > 0);
      t.diagnostic(`of ${seq} messages published while it was stopped, the worker got ${floods} and counted ${gap} lost`);
    } finally {
      await admin.configSet('client-output-buffer-limit', 'pubsub 32mb 8mb 60');
    }
  });

  test('a client that stops reading: the others in its room get everything, it is closed as too slow, the worker\'s memory stays bounded', async (t) => {
    const [healthy] = await spread(cluster.url, 'slow', 'h', 1, 1);
    const pid = healthy!.pid;
    // A client that reads nothing: its library stops reading once one message waits (TCP backpressure, then the server's buffer).
    let stalled: WebSocket | undefined;
    for (let i = 0; i < 8 && !stalled; i++) {
      const ws = await connect(cluster.url, { maxQueuedMessages: 1, maxQueuedBytes: 1024, pingInterval: 0 });
      if ((JSON.parse((await ws.receive()) as string) as ChatEvent).pid === pid) stalled = ws;
      else await ws.close();
    }
    assert.ok(stalled, 'a second connection on the same worker');
    await stalled.send(JSON.stringify({ type: 'hello', name: 'stalled', room: 'slow' }));
    const [remote] = await spread(machine.url, 'slow', 'r', 1, 1);
    open.push(healthy!, remote!);
    await subscribed('slow', 2);
    await healthy!.until(() => healthy!.events.some((event) => event.type === 'join' && event.name === 'stalled'), 'the stalled client joining');

    const mark = cluster.proc.output.length;
    const text = 'y'.repeat(64 * 1024);
    const big = (n: number) => JSON.stringify({ type: 'message', name: 'feed', text: `${n} ${text}`, time: 0 });
    let n = 0;
    /** The worker's RSS after each batch. */
    const memory: number[] = [];
    // 32 MiB for the room, in paced batches of 512 KiB (each waits for the readers): far more than the
    // limit (1 MiB) and the kernel's buffers. Whatever a stalled client made the worker keep would grow with it.
    for (let batch = 0; batch < 64; batch++) {
      await Promise.all(range(1, 8).map(() => admin.publish(roomChannel('slow'), encodeEnvelope('feed', ++n, big(n)))));
      for (const reader of [healthy!, remote!]) await reader.until(() => reader.events.filter((event) => event.name === 'feed').length === n, `feed message ${n}`);
      memory.push(rss(pid));
    }
    for (const reader of [healthy!, remote!]) {
      const got = reader.events.filter((event) => event.name === 'feed').map((event) => Number(event.text?.split(' ')[0]));
      assert.deepEqual(got, range(1, n), `${reader.name} got every message in order`);
    }
    await cluster.proc.waitFor(new RegExp(`\\[worker ${pid}\\] closing [^:]+: too slow to keep up`), 'the stalled client closed as too slow', mark);
    // The heap grows as it serves, whoever reads; what must not grow is what the second 16 MiB add to the first.
    const MiB = 1024 * 1024;
    const firstHalf = Math.max(...memory.slice(0, 32));
    const secondHalf = Math.max(...memory.slice(32));
    t.diagnostic(`the worker's RSS: ${(memory[0]! / MiB).toFixed(0)} MiB after the first 512 KiB, at most ${(firstHalf / MiB).toFixed(0)} after 16 MiB, ${(secondHalf / MiB).toFixed(0)} after 32 MiB`);
    assert.ok(secondHalf - firstHalf < 8 * MiB, `the worker's memory grew by ${((secondHalf - firstHalf) / MiB).toFixed(1)} MiB over the second 16 MiB`);
    stalled.close().catch(() => undefined);
  });

  test('a worker killed with SIGKILL: the primary forks another, its clients reconnect and rejoin', async () => {
    const [steady] = await spread(machine.url, 'kill', 'k', 1, 1);
    open.push(steady!);
    const stop = new AbortController();
    const sessions: Array<{ pid: number; events: ChatEvent[] }> = [];
    let changed = () => {};
    const reconnecting = (async () => {
      for await (const ws of reconnect(cluster.url, { delay: 100, maxDelay: 500, signal: stop.signal })) {
        const session = { pid: (JSON.parse((await ws.receive()) as string) as ChatEvent).pid ?? 0, events: [] as ChatEvent[] };
        sessions.push(session);
        await ws.send(JSON.stringify({ type: 'hello', name: 'phoenix', room: 'kill' }));
        for await (const data of ws) {
          session.events.push(JSON.parse(data as string) as ChatEvent);
          changed();
        }
      }
    })().catch(() => undefined);
    const until = (done: () => boolean, label: string) =>
      withTimeout(new Promise<void>((resolve) => { changed = () => done() && resolve(); changed(); }), WAIT_MS, label);
    try {
      await until(() => sessions.length === 1 && sessions[0]!.events.some((event) => event.type === 'join' && event.name === 'phoenix'), 'the first session joined');
      const victim = sessions[0]!.pid;
      const mark = cluster.proc.output.length;
      process.kill(victim, 'SIGKILL');
      await cluster.proc.waitFor(new RegExp(`worker ${victim} killed by SIGKILL: starting another`), 'the primary noticing', mark);
      const [, replacement] = await cluster.proc.waitFor(/worker (\d+) listening/, 'a new worker listening', mark);
      assert.notEqual(Number(replacement), victim);
      await until(() => sessions.length === 2 && sessions[1]!.events.some((event) => event.type === 'join' && event.name === 'phoenix'), 'the client back and rejoined');
      assert.notEqual(sessions[1]!.pid, victim, 'on a living worker');
      await steady!.publish('n', 1, 2);
      await until(() => sessions[1]!.events.filter((event) => event.type === 'message' && event.name === steady!.name).length === 2, 'messages after the rejoin');
    } finally {
      stop.abort();
      await reconnecting;
    }
  });

  test('SIGTERM to a primary: its workers close every client with 1001, unsubscribe and exit; the primary exits 0', async () => {
    const members = await joinAll('drain', 'd', 1);
    const [local1, local2, remote] = members;
    const result = await cluster.proc.stop('SIGTERM');
    assert.deepEqual(result, { code: 0, signal: null }, cluster.proc.output.slice(-2000));
    for (const member of [local1!, local2!]) assert.equal((await withTimeout(member.ws.closed, WAIT_MS, 'the close')).code, 1001);
    await cluster.proc.waitFor(/\[worker (\d+)\] stopped: published[^]*\[worker (?!\1)\d+\] stopped: published[^]*cluster chat stopped/, 'both workers drained');
    await subscribed('drain', 1);
    await remote!.until(() => remote!.events.filter((event) => event.type === 'leave').length === 2, 'the leaves of the drained members');
    await remote!.publish('n', 1, 1);
    await remote!.until(() => remote!.numbers('n').get(remote!.name)?.length === 1, 'the machine carrying on');
  });
});

// Found by an outside review: node-redis forgets a SUBSCRIBE or UNSUBSCRIBE that fails while
// Redis is down, and a worker still waiting for Redis ignored the primary's drain.
describe('Redis outages', { skip, timeout: 60_000 }, () => {
  test('a room joined, and one left, while Redis is down: once it is back the subscriptions are the rooms again', async () => {
    const port = await freePort();
    let redis = await startRedis(port);
    const url = `redis://127.0.0.1:${port}`;
    const [a, b] = await Promise.all([RedisFanout.connect(url), RedisFanout.connect(url)]);
    const admin = createClient({ url, socket: { reconnectStrategy: () => 100 } });
    admin.on('error', () => undefined);
    await admin.connect();
    const subscribers = (room: string) => admin.pubSubNumSub(roomChannel(room)).then((counts) => counts[roomChannel(room)], () => -1);
    try {
      await a.subscribe('left', () => undefined);
      await redis.stop('SIGKILL');
      const got: string[] = [];
      await assert.rejects(a.subscribe('joined', (payload) => got.push(payload)));
      await assert.rejects(a.unsubscribe('left'));
      redis = await startRedis(port);
      const deadline = Date.now() + WAIT_MS;
      while ((await subscribers('joined')) !== 1 || (await subscribers('left')) !== 0) {
        assert.ok(Date.now() < deadline, `NUMSUB joined ${await subscribers('joined')} (want 1), left ${await subscribers('left')} (want 0)`);
        await sleep(50);
      }
      while (got.length === 0 && Date.now() < deadline) {
        b.publish('joined', 'hello');
        await sleep(100);
      }
      assert.equal(got[0], 'hello', 'the room joined during the outage hears the other process');
    } finally {
      await Promise.allSettled([a.close(), b.close(), admin.close()]);
      await redis.stop();
    }
  });

  test('SIGTERM to a primary whose worker has not reached Redis yet: it exits 0 at once', async () => {
    const nobody = await freePort();
    const proc = new Child(process.execPath, [CLUSTER_CHAT], { ...ENV, PORT: '0', WORKERS: '1', REDIS_URL: `redis://127.0.0.1:${nobody}` });
    await proc.waitFor(/ECONNREFUSED/, 'the worker trying to reach Redis');
    assert.deepEqual(await proc.stop('SIGTERM'), { code: 0, signal: null }, proc.output.slice(-2000));
  });
});
