/**
 * The demo chat on every core of a machine, and on many machines: `npm run start:cluster`.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npm run start:cluster
 *   REDIS_URL=… PORT=8081 WORKERS=1 node build/examples/cluster-chat.js   # a second "machine"
 *
 * The primary forks WORKERS workers (default: one per core) under `node:cluster`; they share
 * one port (the primary hands out connections in turn: WebSockets need no sticky sessions)
 * and run the chat of examples/chat-app.ts. A room's messages reach its members on other
 * workers and machines through Redis pub/sub (examples/redis-fanout.ts): one channel per
 * room, each message tagged with its origin so that no member is served twice. Redis
 * pub/sub is at most once: what a worker misses while Redis is away is lost, and counted in
 * its log (`redis: lost N message(s) …`); it resubscribes by itself when Redis is back.
 *
 * A worker that dies is replaced. SIGTERM or SIGINT to the primary drains every worker (each
 * closes its connections with 1001, then its Redis connections) and exits 0 when all have
 * exited; a worker sent SIGTERM by itself drains and exits, and the primary starts another.
 *
 * Settings from the environment: PORT (8080; 0 picks a free one), WORKERS, REDIS_URL
 * (required), CHAT_BURST and CHAT_RATE (the per-client message budget: 8, then 2 per
 * second), CHAT_MAX_BACKLOG (bytes waiting for a member before it is too slow: 1 MiB).
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { checkBundle, HOST, startChat, stopOnSignals, timestamped } from './chat-app.ts';
import { RedisFanout } from './redis-fanout.ts';

const PORT = Number(process.env['PORT'] ?? 8080);
const WORKERS = Number(process.env['WORKERS'] ?? availableParallelism());
const REDIS_URL = process.env['REDIS_URL'];
/** A number from the environment, or undefined (the chat's default). */
const setting = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);

if (!REDIS_URL) {
  console.error('set REDIS_URL, for example: REDIS_URL=redis://127.0.0.1:6379 npm run start:cluster (without Redis: npm start)');
  process.exit(1);
}

if (cluster.isPrimary) {
  let stopping = false;
  let announced = false;
  /** Workers that got as far as listening: one that dies before is not restarted (it would only die again). */
  const listening = new Set<number>();
  const fork = () => cluster.fork();
  cluster.on('listening', (worker: Worker, address) => {
    timestamped(`worker ${worker.process.pid} listening`);
    listening.add(worker.id);
    if (!announced && listening.size === WORKERS) {
      announced = true;
      checkBundle();
      console.log(`cluster chat on http://${HOST}:${address.port} with ${WORKERS} worker(s) — open it in two browser tabs`);
    }
  });
  cluster.on('exit', (worker: Worker, code: number | null, signal: string | null) => {
    const how = signal ? `killed by ${signal}` : `exited with ${code}`;
    if (stopping) {
      timestamped(`worker ${worker.process.pid} ${how}`);
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        console.log('cluster chat stopped');
        process.exit(0);
      }
      return;
    }
    if (!listening.delete(worker.id)) {
      console.error(`worker ${worker.process.pid} ${how} before it could serve: stopping`);
      process.exit(1);
    }
    timestamped(`worker ${worker.process.pid} ${how}: starting another`);
    fork();
  });
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: draining ${Object.keys(cluster.workers ?? {}).length} worker(s)`);
    // By message, not by signal: after Ctrl+C the workers have their own SIGINT too, and a second signal means "now".
    for (const worker of Object.values(cluster.workers ?? {})) worker?.send('drain');
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  for (let i = 0; i < WORKERS; i++) fork();
} else {
  const log = (line: string) => timestamped(`[worker ${process.pid}] ${line}`);
  // Listening for the primary's drain from the start: a worker still waiting for Redis has
  // nothing to drain, and must not keep the primary waiting.
  let drain: (() => void) | null = null;
  process.on('message', (message) => {
    if (message !== 'drain') return;
    if (drain) return drain();
    log('drain before serving (Redis not reached yet): exiting');
    process.exit(0);
  });
  const fanout = await RedisFanout.connect(REDIS_URL, { log });
  const chat = await startChat({
    port: PORT,
    fanout,
    greeting: { pid: process.pid, origin: fanout.origin },
    burst: setting('CHAT_BURST'),
    rate: setting('CHAT_RATE'),
    maxBacklog: setting('CHAT_MAX_BACKLOG'),
    log,
  });
  const exit = () => {
    const { published, unpublished, received, lost, reconnects } = fanout.stats;
    log(`stopped: published ${published}, unpublished ${unpublished}, received ${received}, lost ${lost}, reconnected ${reconnects} time(s)`);
    process.exit(0);
  };
  stopOnSignals(chat, exit);
  drain = () => void chat.stop().then(exit);
}
