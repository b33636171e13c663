// Autobahn testee: echo client built on websockets.ts, driven by wstest's
// fuzzingserver (see fuzzingserver.json).
//
//   node build/autobahn/client.js [url] [agent] [--http2 [--ca cert.pem]]
//
// url defaults to $AUTOBAHN_URL or ws://127.0.0.1:9003, agent to
// $AUTOBAHN_AGENT or websockets.ts. It asks the fuzzing server for the number
// of cases, runs each one by echoing every message back with its type until
// the server ends the case, and finally asks the server to write its reports.
// With --http2 (wss: URLs: nghttpx in front of the fuzzing server) it connects
// with `http2: true`, trusting the certificate in --ca. At the end it prints
// how many handshakes each HTTP version carried (ws.response.httpVersion;
// autobahn/versions.ts); run.js checks the versions.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connect, type WebSocket } from '../dist/websockets.js';
import { versionTally } from './versions.ts';

const { values: flags, positionals } = parseArgs({
  options: { http2: { type: 'boolean', default: false }, ca: { type: 'string' } },
  allowPositionals: true,
});
const base = (positionals[0] ?? process.env['AUTOBAHN_URL'] ?? 'ws://127.0.0.1:9003').replace(/\/+$/, '');
const agent = positionals[1] ?? process.env['AUTOBAHN_AGENT'] ?? 'websockets.ts';
// The slowest cases (9.*) let wstest wait up to 100 s before it gives up.
const CASE_TIMEOUT_MS = Number(process.env['AUTOBAHN_CASE_TIMEOUT_MS'] ?? 120_000);
const options = {
  pingInterval: 0,
  maxMessageSize: 16 * 1024 * 1024,
  compression: { threshold: 0 },
  ...(flags.http2 ? { http2: true } : {}),
  ...(flags.ca !== undefined ? { tls: { ca: readFileSync(flags.ca) } } : {}),
};
const versions = versionTally();

// connect(), counted by the HTTP version of its handshake; ended() when its messages end.
async function open(url: string): Promise<{ ws: WebSocket; ended: () => void }> {
  const ws = await connect(url, options);
  return { ws, ended: versions.opened(ws.response?.httpVersion ?? '', ws.closed) };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

async function caseCount(): Promise<number> {
  const { ws } = await open(`${base}/getCaseCount`);
  const message = await ws.receive();
  await ws.close().catch(() => {});
  const count = Number(message);
  if (typeof message !== 'string' || !Number.isInteger(count) || count < 0) {
    throw new Error(`unexpected case count ${JSON.stringify(String(message))}`);
  }
  return count;
}

// The iteration ends with the close frame; wstest records a case's result only
// when the TCP connection is gone (the server closes it first, RFC 6455
// §7.1.1), so the next case, and above all the final updateReports, waits for
// ws.closed: otherwise the last case can be missing from the report.
async function runCase(index: number): Promise<void> {
  const { ws, ended } = await open(`${base}/runCase?case=${index}&agent=${encodeURIComponent(agent)}`);
  try {
    for await (const message of ws) await ws.send(message);
  } catch (error) {
    // Many cases end with a protocol error on purpose; the library has
    // already failed the connection. Make sure the socket is gone anyway.
    await ws.close().catch(() => {});
    throw error;
  } finally {
    ended();
    await ws.closed;
  }
}

async function runCaseBounded(index: number): Promise<string | undefined> {
  try {
    await withTimeout(runCase(index), CASE_TIMEOUT_MS, `case ${index}`);
    return undefined;
  } catch (error) {
    return describe(error);
  }
}

async function updateReports(): Promise<void> {
  const { ws } = await open(`${base}/updateReports?agent=${encodeURIComponent(agent)}`);
  // The server closes the connection once the reports are written.
  try {
    for await (const _ of ws) {
      // no messages expected
    }
  } catch {
    // ignore a non-normal close: the reports are written before it
  }
}

const started = Date.now();
const count = await withTimeout(caseCount(), 30_000, 'getCaseCount');
console.log(`[client] ${count} cases from ${base} as agent "${agent}"`);

let errors = 0;
let timeouts = 0;
for (let i = 1; i <= count; i++) {
  const error = await runCaseBounded(i);
  if (error !== undefined) {
    errors++;
    if (error.includes('timed out')) {
      timeouts++;
      console.log(`[client] case ${i}: ${error}`);
    }
  }
  if (i % 100 === 0 || i === count) {
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    console.log(`[client] ${i}/${count} cases done (${seconds} s; ${errors} ended with an error, ${timeouts} timed out)`);
  }
}

await withTimeout(updateReports(), 120_000, 'updateReports');
console.log(`[client] reports updated; ${count} cases in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(versions.line());
process.exit(0);
