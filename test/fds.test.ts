// Out of file descriptors (issue 17): a server whose process has a low `ulimit -n` and runs
// out, and a client that does. The server and the client under the limit are child processes
// of this same file (FDS_ROLE=server or client, started through `sh -c 'ulimit -n N; exec …'`),
// talking JSON lines; the other side is this process, with its ordinary limit. Loopback only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import readline from 'node:readline';
import { readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, listen, WebSocketError } from '../websockets.ts';
import type { WebSocket } from '../websockets.ts';
import { sleep, within } from './support.ts';

const ROLE = 'FDS_ROLE';

type Message = Record<string, unknown> & { event: string };

const say = (message: Message): void => void process.stdout.write(`${JSON.stringify(message)}\n`);

/** How a failed connect() looked: its code, message and the cause's errno code. */
function failure(error: unknown): { code: number | string; message: string; cause: string } {
  const cause = error instanceof Error ? (error.cause as { code?: string } | undefined) : undefined;
  return { code: error instanceof WebSocketError ? error.code : String(error), message: error instanceof Error ? error.message : String(error), cause: cause?.code ?? '' };
}

// ── the child roles ──────────────────────────────────────────────────────────────────────

async function serverRole(): Promise<void> {
  const server = await listen('127.0.0.1', 0, async (ws) => {
    for await (const message of ws) await ws.send(message);
  }, { pingInterval: 0, handshakeTimeout: 2_000, onError: (error) => say({ event: 'onError', error: String(error), code: (error as { code?: string }).code ?? '' }) });
  say({ event: 'listening', port: server.port, fds: readdirSync('/proc/self/fd').length });
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'fds') say({ event: 'fds', fds: readdirSync('/proc/self/fd').length });
    if (line === 'accept-error') {
      // What node:net does when libuv reports an accept error it could not absorb (its
      // EMFILE trick needs a spare descriptor): the server emits 'error' (lib/net.js, onconnection).
      const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
      const httpServer = handles.find((handle): handle is http.Server => handle instanceof http.Server);
      const error = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' });
      say({ event: 'emitting', found: httpServer !== undefined });
      httpServer?.emit('error', error);
      setTimeout(() => say({ event: 'alive' }), 100);
    }
    if (line === 'exit') void server.close().then(() => process.exit(0));
  });
}

async function clientRole(): Promise<void> {
  const port = Number(process.env['FDS_PORT']);
  const open: WebSocket[] = [];
  const failures: Array<ReturnType<typeof failure>> = [];
  for (let i = 0; i < 80 && failures.length < 10; i++) {
    try {
      open.push(await connect(`ws://127.0.0.1:${port}`, { handshakeTimeout: 3_000 }));
    } catch (error) {
      failures.push(failure(error));
    }
  }
  // The connections it has still work, and once some are closed it connects again.
  for (const ws of open) {
    await ws.send('still there');
    assert.equal(await ws.receive(), 'still there');
  }
  for (const ws of open.splice(0, 5)) await ws.close();
  const again: Array<string | number> = [];
  for (let i = 0; i < 3; i++) {
    try {
      const ws = await connect(`ws://127.0.0.1:${port}`, { handshakeTimeout: 3_000 });
      await ws.send('again');
      again.push(String(await ws.receive()));
      open.push(ws);
    } catch (error) {
      again.push(failure(error).code);
    }
  }
  await Promise.all(open.map((ws) => ws.close()));
  say({ event: 'result', opened: open.length - again.filter((x) => x === 'again').length, failures, again });
}

// ── the parent ───────────────────────────────────────────────────────────────────────────

/** This file as a child process in `role`, with `ulimit -n limit`. */
class Child {
  readonly process: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  #messages: Message[] = [];
  #exitedAt: number | null = null;

  constructor(role: string, limit: number, env: Record<string, string> = {}) {
    const childEnv: Record<string, string> = {};
    for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !name.startsWith('NODE_TEST')) childEnv[name] = value;
    this.process = spawn('/bin/sh', ['-c', `ulimit -n ${limit} && exec "$0" "$@"`, process.execPath, '--unhandled-rejections=strict', fileURLToPath(import.meta.url)], {
      env: { ...childEnv, ...env, [ROLE]: role },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.process.once('exit', (code, signal) => {
      this.#exitedAt = performance.now();
      resolve({ code, signal });
    }));
    readline.createInterface({ input: this.process.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.#messages.push(JSON.parse(line) as Message);
      } catch {
        this.stderr += `(stdout) ${line}\n`;
      }
    });
    this.process.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
  }

  get alive(): boolean {
    return this.#exitedAt === null;
  }

  messages(event: string): Message[] {
    return this.#messages.filter((message) => message.event === event);
  }

  async next(event: string, timeout: number): Promise<Message> {
    const deadline = performance.now() + timeout;
    for (;;) {
      const index = this.#messages.findIndex((message) => message.event === event);
      if (index >= 0) return this.#messages.splice(index, 1)[0];
      if (performance.now() > deadline || !this.alive) assert.fail(`no '${event}' from the ${this.process.spawnargs.at(-1)} child within ${timeout} ms (alive: ${this.alive}); stderr: ${this.stderr.slice(0, 2_000)}`);
      await sleep(20);
    }
  }

  send(line: string): void {
    this.process.stdin?.write(`${line}\n`);
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.process.kill('SIGKILL');
    await this.exited;
  }
}

const LIMIT = 64;

async function withServerChild(body: (child: Child, port: number, baseline: number) => Promise<void>): Promise<void> {
  const child = new Child('server', LIMIT);
  try {
    const listening = await child.next('listening', 10_000);
    await body(child, Number(listening.port), Number(listening.fds));
  } finally {
    await child.stop();
  }
}

if (process.env[ROLE] === 'server') {
  await serverRole();
} else if (process.env[ROLE] === 'client') {
  await clientRole();
} else {
  test(`a server out of descriptors (ulimit -n ${LIMIT}): it does not crash, its connections keep working, and it accepts again once descriptors are free`, { timeout: 60_000 }, async (t) => {
    await withServerChild(async (child, port, baseline) => {
      const open: WebSocket[] = [];
      const failures: Array<ReturnType<typeof failure>> = [];
      let attempts = 0;
      try {
        while (attempts < 200 && failures.length < 20) {
          attempts++;
          const result = await within(connect(`ws://127.0.0.1:${port}`, { handshakeTimeout: 3_000 }).then((ws) => ws, (error: unknown) => failure(error)), 5_000);
          assert.ok(result !== null, `connect() number ${attempts} neither resolved nor rejected within 5 s`);
          if ('code' in result && !('send' in result)) failures.push(result);
          else open.push(result as WebSocket);
        }
        assert.ok(failures.length > 0, `the server ran out (${open.length} connections opened)`);
        assert.ok(open.length >= 10 && open.length < LIMIT, `${open.length} connections before it ran out`);
        for (const each of failures) assert.equal(each.code, 1006, `a refused connection is a 1006: ${each.message}`);
        assert.ok(child.alive, `the server is alive; stderr: ${child.stderr}`);
        // Every connection it had still echoes.
        for (const [i, ws] of open.entries()) {
          await ws.send(`echo ${i}`);
          assert.equal(await within(ws.receive(), 5_000), `echo ${i}`);
        }
        // Descriptors free up: it accepts again.
        for (const ws of open.splice(0, 10)) await ws.close();
        await sleep(200);
        for (let i = 0; i < 5; i++) {
          const ws = await connect(`ws://127.0.0.1:${port}`, { handshakeTimeout: 3_000 });
          await ws.send('back');
          assert.equal(await ws.receive(), 'back');
          open.push(ws);
        }
        child.send('fds');
        const atEnd = Number((await child.next('fds', 5_000)).fds);
        await Promise.all(open.splice(0).map((ws) => ws.close()));
        await sleep(300);
        child.send('fds');
        const afterClose = Number((await child.next('fds', 5_000)).fds);
        assert.equal(afterClose, baseline, 'the server is back to its baseline of descriptors');
        const onError = child.messages('onError');
        const causes = [...new Set(failures.map((each) => each.cause || each.message))];
        t.diagnostic(`figure: ulimit -n ${LIMIT}, ${baseline} descriptors at start: ${attempts - failures.length} connections accepted before it ran out; then ${failures.length} connect() rejected with 1006 (cause ${causes.join(', ')}): libuv accepts and closes what it cannot keep (its EMFILE trick), so Node reports no accept error and onError got ${onError.length === 0 ? 'nothing' : JSON.stringify(onError)}; every open connection kept echoing; after 10 closed it accepted 5 more; ${atEnd} descriptors at the end, ${afterClose} after all closed`);
      } finally {
        for (const ws of open) ws.close().catch(() => {});
      }
    });
  });

  test('an accept error that Node does report (the server emits \'error\', as node:net does when libuv cannot absorb EMFILE) goes to onError and does not crash the server', { timeout: 30_000 }, async () => {
    await withServerChild(async (child, port) => {
      const ws = await connect(`ws://127.0.0.1:${port}`);
      child.send('accept-error');
      assert.equal((await child.next('emitting', 5_000)).found, true, 'the child found its http.Server');
      await within(child.next('alive', 2_000).catch(() => null), 2_000);
      assert.ok(child.alive, `the server survives the error; it died with: ${child.stderr.split('\n').find((line) => /Error/.test(line)) ?? child.stderr.slice(0, 300)}`);
      const reported = child.messages('onError');
      assert.ok(reported.some((message) => message.code === 'EMFILE'), 'the error reached onError');
      await ws.send('after');
      assert.equal(await ws.receive(), 'after');
      await ws.close();
    });
  });

  test('a client out of descriptors (ulimit -n 40): connect() rejects with 1006 carrying the cause (EMFILE); its other connections keep working', { timeout: 60_000 }, async (t) => {
    const server = await listen('127.0.0.1', 0, async (ws) => {
      for await (const message of ws) await ws.send(message);
    }, { pingInterval: 0 });
    const child = new Child('client', 40, { FDS_PORT: String(server.port) });
    try {
      const result = await child.next('result', 40_000);
      const exit = await within(child.exited, 10_000);
      assert.deepEqual(exit, { code: 0, signal: null }, `the client process ends normally; stderr: ${child.stderr.slice(0, 1_000)}`);
      const failures = result.failures as Array<ReturnType<typeof failure>>;
      assert.ok(failures.length > 0, 'the client ran out');
      for (const each of failures) {
        assert.equal(each.code, 1006);
        assert.equal(each.cause, 'EMFILE', `the cause says why: ${each.message}`);
        assert.match(each.message, /EMFILE/);
      }
      assert.deepEqual(result.again, ['again', 'again', 'again'], 'once it closed some, it connects again');
      t.diagnostic(`figure: a client under ulimit -n 40: ${String(result.opened)} connections, then connect() rejected with 1006, cause EMFILE ("${failures[0]?.message}"); its connections kept echoing, and after closing 5 it connected 3 more; exit code 0`);
    } finally {
      await child.stop();
      await server.close();
    }
  });
}
