// Process signals (issue 17): examples/echo-server.ts, run as a child process, handles SIGTERM
// (and SIGINT) with server.close(): every client gets 1001 (going away), a client that never
// answers the close is cut off at closeTimeout, and then the process exits by itself, code 0.
// Loopback only, bounded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WS from 'ws';
import { connect, DEFAULTS, WebSocketError } from '../websockets.ts';
import type { CloseInfo } from '../websockets.ts';
import { RawPeer, WireOp, within } from './support.ts';

function root(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'websockets.ts')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

const ECHO_SERVER = join(root(), 'build', 'examples', 'echo-server.js');

interface Child {
  process: ChildProcess;
  url: string;
  port: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the echo server on a free port and waits for its "listening on ws://…" line. */
async function startEchoServer(): Promise<Child> {
  const child = spawn(process.execPath, [ECHO_SERVER], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let out = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (out += text));
  const ready = new Promise<Child>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (text: string) => {
      out += text;
      const match = /listening on (ws:\/\/127\.0\.0\.1:(\d+))/.exec(out);
      if (match) resolve({ process: child, url: match[1], port: Number(match[2]), exited });
    });
    void exited.then(({ code, signal }) => reject(new Error(`the echo server exited (code ${code}, signal ${signal}) before it was ready:\n${out}`)));
  });
  const started = await within(ready, 10_000);
  if (!started) {
    child.kill('SIGKILL');
    throw new Error(`the echo server did not start within 10 s:\n${out}`);
  }
  return started;
}

// SIGINT without the silent peer: the same path, without waiting out the close timeout again.
for (const [signal, withSilent] of [['SIGTERM', true], ['SIGINT', false]] as const) {
  test(`${signal}: the echo server example closes every connection with 1001${withSilent ? ', cuts off a silent one at closeTimeout,' : ''} and exits with code 0`, { timeout: 30_000 }, async (t) => {
    const child = await startEchoServer();
    try {
      const ours = await connect(child.url);
      await ours.send('hello');
      assert.equal(await ours.receive(), 'hello');
      const theirs = new WS(child.url);
      theirs.on('error', () => {});
      const theirsClosed = new Promise<CloseInfo>((resolve) => theirs.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
      await new Promise<void>((resolve, reject) => {
        theirs.once('open', () => resolve());
        theirs.once('close', () => reject(new Error('ws closed before open')));
      });
      // A peer that reads but never answers a close frame.
      const silent = withSilent ? await RawPeer.connect(child.port) : null;
      const start = performance.now();
      child.process.kill(signal);
      const received = await ours.receive().then(() => null, (error: unknown) => error);
      assert.ok(received instanceof WebSocketError);
      assert.equal(received.code, 1001);
      assert.deepEqual(await within(ours.closed, 5_000), { code: 1001, reason: '' });
      assert.equal((await within(theirsClosed, 5_000))?.code, 1001);
      if (silent) assert.equal((await silent.closeFrame(5_000)).code, 1001);
      const clientsClosed = Math.round(performance.now() - start);
      const exit = await within(child.exited, DEFAULTS.closeTimeout + 5_000);
      const exitedAfter = Math.round(performance.now() - start);
      assert.deepEqual(exit, { code: 0, signal: null }, 'the process exits by itself, code 0');
      if (silent) {
        assert.ok(exitedAfter >= DEFAULTS.closeTimeout - 100, `it waited for the silent peer up to closeTimeout (exited after ${exitedAfter} ms)`);
        assert.ok(silent.frames.every((frame) => frame.opcode === WireOp.CLOSE), 'the silent peer got only the close frame');
        silent.destroy();
      } else {
        assert.ok(exitedAfter < 3_000, `with every client answering, it exits at once (after ${exitedAfter} ms)`);
      }
      t.diagnostic(`figure: ${signal}: 1001 to our client, a ws client${silent ? ' and a silent raw peer' : ''} within ${clientsClosed} ms; exit code 0 after ${exitedAfter} ms${silent ? ` (closeTimeout ${DEFAULTS.closeTimeout} ms for the silent peer)` : ''}`);
    } finally {
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
    }
  });
}
