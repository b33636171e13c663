// Interop with Node 22's built-in WHATWG WebSocket client (undici) against our server.
// The client runs in a separate Node 22 process, fetched with `npx -y -p node@22` (the first
// run downloads it from the npm registry, hence the generous timeout).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listen, WebSocketError } from '../websockets.ts';
import type { Data, WebSocket } from '../websockets.ts';

const CLIENT_TIMEOUT = 120_000;

// Plain JavaScript for Node 22: uses only the global WebSocket, Blob and console.
const CLIENT_SCRIPT = String.raw`
const url = process.argv[2];
const out = { version: process.version };
const finish = (extra) => {
  console.log('RESULT ' + JSON.stringify({ ...out, ...extra }));
  process.exit(0);
};
setTimeout(() => finish({ error: 'client timed out' }), 30000);
try {
  if (typeof WebSocket !== 'function') throw new Error('no global WebSocket');
  const ws = new WebSocket(url, ['chat.v1', 'chat.v2']);
  ws.binaryType = 'arraybuffer';
  const inbox = [];
  const waiters = [];
  ws.onmessage = (event) => {
    const waiter = waiters.shift();
    if (waiter) waiter(event.data);
    else inbox.push(event.data);
  };
  const next = () => (inbox.length > 0 ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiters.push(resolve)));
  const closed = new Promise((resolve) => {
    ws.onclose = (event) => resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
  });
  ws.onerror = (event) => { out.errorEvent = String(event.message ?? event.type); };
  await Promise.race([
    new Promise((resolve) => { ws.onopen = resolve; }),
    closed.then((info) => { throw new Error('closed before open: ' + JSON.stringify(info)); }),
  ]);
  out.protocol = ws.protocol;
  out.extensions = ws.extensions;
  const kind = (data) => (typeof data === 'string' ? 'string' : Object.prototype.toString.call(data));

  ws.send('héllo ✓ 🎉');
  let data = await next();
  out.text = { kind: kind(data), value: data };

  ws.send(new Uint8Array([0, 1, 2, 253, 254, 255]));
  data = await next();
  out.binary = { kind: kind(data), value: Array.from(new Uint8Array(data)) };

  ws.send('');
  data = await next();
  out.emptyText = { kind: kind(data), value: data };

  ws.send(new Uint8Array(0));
  data = await next();
  out.emptyBinary = { kind: kind(data), length: data.byteLength };

  ws.send(new Blob(['blob ', 'data']));
  data = await next();
  out.blob = { kind: kind(data), value: new TextDecoder().decode(data) };

  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 255;
  ws.send(big);
  data = new Uint8Array(await next());
  out.big = { length: data.length, ok: data.every((value, i) => value === ((i * 31 + 7) & 255)) };

  ws.send('fragments please');
  data = await next();
  out.fragmented = { kind: kind(data), value: data };

  ws.send('ping me');
  out.afterPing = await next();

  for (let i = 0; i < 1000; i++) ws.send('n' + i);
  const order = [];
  for (let i = 0; i < 1000; i++) order.push(await next());
  out.orderOk = order.every((value, i) => value === 'n' + i);

  ws.close(4000, 'done: ✓');
  out.close = await closed;
  finish({});
} catch (error) {
  finish({ error: String((error && error.stack) || error) });
}
`;

interface ClientRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runNode22(script: string, url: string, cwd: string): Promise<ClientRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['-y', '-p', 'node@22', 'node', script, url], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node@22 client did not finish within ${CLIENT_TIMEOUT} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, CLIENT_TIMEOUT);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface ClientResult {
  version: string;
  error?: string;
  errorEvent?: string;
  protocol: string;
  extensions: string;
  text: { kind: string; value: string };
  binary: { kind: string; value: number[] };
  emptyText: { kind: string; value: string };
  emptyBinary: { kind: string; length: number };
  blob: { kind: string; value: string };
  big: { length: number; ok: boolean };
  fragmented: { kind: string; value: string };
  afterPing: string;
  orderOk: boolean;
  close: { code: number; reason: string; wasClean: boolean };
}

test('Node 22 built-in WebSocket client ↔ our server', { timeout: CLIENT_TIMEOUT + 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'websockets-node22-'));
  const received: Data[] = [];
  let serverSocket: WebSocket | undefined;
  let ending: unknown;
  let rtt: number | undefined;
  const server = await listen(
    '127.0.0.1',
    0,
    async (ws) => {
      serverSocket = ws;
      try {
        for await (const message of ws) {
          received.push(message);
          if (message === 'fragments please') await ws.send(['frag', 'men', 'ted ✓']);
          else if (message === 'ping me') {
            rtt = await ws.ping('are you there?');
            await ws.send(`pong after ${typeof rtt}`);
          } else await ws.send(message);
        }
      } catch (error) {
        ending = error;
      }
    },
    { protocols: ['chat.v2'] },
  );
  try {
    const script = join(dir, 'client.mjs');
    await writeFile(script, CLIENT_SCRIPT);
    const run = await runNode22(script, server.url, dir);
    const line = run.stdout.split('\n').find((text) => text.startsWith('RESULT '));
    assert.ok(line, `no result from the node@22 client (exit ${run.code})\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
    const result = JSON.parse(line.slice('RESULT '.length)) as ClientResult;
    assert.equal(result.error, undefined, result.error);
    assert.match(result.version, /^v22\./);

    // What the Node 22 client saw.
    assert.equal(result.protocol, 'chat.v2');
    assert.equal(result.extensions, '');
    assert.deepEqual(result.text, { kind: 'string', value: 'héllo ✓ 🎉' });
    assert.deepEqual(result.binary, { kind: '[object ArrayBuffer]', value: [0, 1, 2, 253, 254, 255] });
    assert.deepEqual(result.emptyText, { kind: 'string', value: '' });
    assert.deepEqual(result.emptyBinary, { kind: '[object ArrayBuffer]', length: 0 });
    assert.deepEqual(result.blob, { kind: '[object ArrayBuffer]', value: 'blob data' });
    assert.deepEqual(result.big, { length: 1 << 20, ok: true });
    assert.deepEqual(result.fragmented, { kind: 'string', value: 'fragmented ✓' });
    assert.equal(result.afterPing, 'pong after number');
    assert.equal(result.orderOk, true);
    assert.deepEqual(result.close, { code: 4000, reason: 'done: ✓', wasClean: true });
    assert.equal(result.errorEvent, undefined);

    // What our server saw.
    assert.ok(serverSocket, 'the server never got a connection');
    assert.equal(serverSocket.protocol, 'chat.v2');
    assert.equal(serverSocket.request.headers['sec-websocket-protocol'], 'chat.v1, chat.v2');
    assert.equal(received[0], 'héllo ✓ 🎉');
    assert.ok(received[1] instanceof Uint8Array);
    assert.deepEqual(Array.from(received[1]), [0, 1, 2, 253, 254, 255]);
    assert.equal(received[2], '');
    assert.ok(received[3] instanceof Uint8Array && received[3].length === 0);
    assert.ok(received[4] instanceof Uint8Array);
    assert.equal(new TextDecoder().decode(received[4]), 'blob data');
    assert.ok(received[5] instanceof Uint8Array && received[5].length === 1 << 20);
    assert.equal(received.length, 8 + 1000);
    assert.ok(typeof rtt === 'number' && Number.isFinite(rtt) && rtt >= 0, `rtt ${rtt}`);
    const closed = await serverSocket.closed;
    assert.deepEqual(closed, { code: 4000, reason: 'done: ✓' });
    assert.equal(serverSocket.closeCode, 4000);
    assert.equal(serverSocket.closeReason, 'done: ✓');
    assert.ok(ending instanceof WebSocketError, `the iteration ended with ${String(ending)}`);
    assert.equal(ending.code, 4000);
    assert.equal(ending.reason, 'done: ✓');
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
