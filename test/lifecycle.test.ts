// Lifecycles: a process that uses the library exits by itself; Server.close() with clients
// connected; handlers that throw or return on either side (open / listen).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtemp, writeFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { listen, connect, open, isOk, WebSocketError } from '../websockets.ts';
import type { WebSocket, CloseInfo } from '../websockets.ts';
import { sleep, within } from './support.ts';

const T = { timeout: 5_000 };
const CHILD_ENV = 'WEBSOCKETS_LIFECYCLE_CHILD';


/** Waits until `condition` holds (polling), failing after `timeout` ms. */
async function eventually(condition: () => boolean, what: string, timeout = 1_000): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * The child's scenario, run when this very file is started as a plain `node` process with
 * CHILD_ENV set: defaults everywhere (keepalive 20 s, close timeout 5 s), so any timer or
 * socket the library forgets keeps the process alive well past the parent's deadline.
 */
async function childScenario(mode: string): Promise<void> {
  const server = await listen('127.0.0.1', 0, async (ws) => {
    for await (const message of ws) await ws.send(message);
  });
  const ws = await connect(server.url);
  await ws.send('hello');
  const reply = await ws.receive();
  if (mode === 'client-first') {
    await ws.close();
    await server.close();
  } else {
    await server.close(); // the client is still connected: the server closes it with 1001
    await ws.closed;
  }
  const viaOpen = mode === 'client-first' ? undefined : await open(server.url, () => 'unreachable').catch((error: unknown) => (error instanceof WebSocketError ? error.code : String(error)));
  process.stdout.write(JSON.stringify({ reply, closeCode: ws.closeCode, viaOpen }));
}

if (process.env[CHILD_ENV]) {
  await childScenario(process.env[CHILD_ENV] ?? '');
} else {
  defineTests();
}

interface ChildResult {
  exitedWithin: number | null;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node args…` and waits up to `deadline` ms for it to exit by itself; kills it otherwise. */
async function runChild(args: string[], env: Record<string, string>, deadline: number): Promise<ChildResult> {
  const childEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !name.startsWith('NODE_TEST')) childEnv[name] = value;
  const child = spawn(process.execPath, args, { env: { ...childEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const started = performance.now();
  const exit = new Promise<{ code: number | null }>((resolve) => child.on('exit', (code) => resolve({ code })));
  const outcome = await within(exit, deadline);
  if (outcome === null) {
    child.kill('SIGKILL'); // this child only, by its handle
    await exit;
    return { exitedWithin: null, code: null, stdout, stderr };
  }
  return { exitedWithin: performance.now() - started, code: outcome.code, stdout, stderr };
}


/** A raw TCP client that completes the handshake (or only starts it) and then stays silent. */
async function silentPeer(port: number, completeHandshake: boolean): Promise<{ socket: net.Socket; closed: Promise<void>; rest: string }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const closed = once(socket, 'close').then(() => {});
  await once(socket, 'connect');
  socket.resume();
  const request = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  if (!completeHandshake) {
    socket.write(request.slice(0, 20));
    return { socket, closed, rest: request.slice(20) };
  }
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  socket.write(request);
  for (let i = 0; i < 100 && !answer.includes('\r\n\r\n'); i++) await sleep(5);
  assert.match(answer, /^HTTP\/1\.1 101 /);
  return { socket, closed, rest: '' };
}

function defineTests(): void {
  describe('the process exits by itself', () => {
    for (const mode of ['client-first', 'server-first']) {
      test(`a child process using listen + connect with default timers exits within 3 s (${mode})`, { timeout: 10_000 }, async () => {
        const self = fileURLToPath(import.meta.url);
        const result = await runChild([self], { [CHILD_ENV]: mode }, 3_000);
        assert.notEqual(result.exitedWithin, null, `the child did not exit within 3 s (leaked timer or socket?)\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
        assert.equal(result.code, 0, `stderr: ${result.stderr}`);
        const report: unknown = JSON.parse(result.stdout);
        assert.deepEqual(report, mode === 'client-first' ? { reply: 'hello', closeCode: 1000 } : { reply: 'hello', closeCode: 1001, viaOpen: 1006 });
      });
    }

    test('the same with the built dist/websockets.js, from a .mjs script in a temp dir', { timeout: 10_000 }, async (t) => {
      // build/test/lifecycle.test.js → the repository root is two levels up.
      const root = new URL('../../', import.meta.url);
      const dist = new URL('dist/websockets.js', root);
      const source = new URL('websockets.ts', root);
      const [distStat, sourceStat] = await Promise.all([stat(dist).catch(() => null), stat(source).catch(() => null)]);
      if (!distStat || !sourceStat || distStat.mtimeMs < sourceStat.mtimeMs) {
        t.skip('dist/websockets.js is missing or older than websockets.ts: run `npm run build:lib` (npm test does)');
        return;
      }
      const dir = await mkdtemp(join(tmpdir(), 'websockets-lifecycle-'));
      try {
        const script = join(dir, 'child.mjs');
        await writeFile(
          script,
          `import { listen, connect } from ${JSON.stringify(pathToFileURL(fileURLToPath(dist)).href)};
const server = await listen('127.0.0.1', 0, async (ws) => { for await (const m of ws) await ws.send(m); });
const ws = await connect(server.url);
await ws.send('hello');
const reply = await ws.receive();
await ws.close();
await server.close();
process.stdout.write(JSON.stringify({ reply, closeCode: ws.closeCode }));
`,
        );
        const result = await runChild([script], {}, 3_000);
        assert.notEqual(result.exitedWithin, null, `the child did not exit within 3 s\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
        assert.equal(result.code, 0, `stderr: ${result.stderr}`);
        assert.deepEqual(JSON.parse(result.stdout), { reply: 'hello', closeCode: 1000 });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });

  describe('Server.close()', () => {
    test('with 3 clients connected: each sees 1001 and close() resolves within the close timeout', T, async () => {
      const errors: unknown[] = [];
      const handlerEnds: Array<Promise<void>> = [];
      const server = await listen(
        '127.0.0.1',
        0,
        (ws) => {
          const done = (async () => {
            for await (const message of ws) await ws.send(message);
          })();
          handlerEnds.push(done.catch(() => {}));
          return done;
        },
        { closeTimeout: 300, onError: (error) => errors.push(error) },
      );
      const clients: WebSocket[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          const ws = await connect(server.url, { closeTimeout: 300 });
          await ws.send(`client ${i}`);
          assert.equal(await ws.receive(), `client ${i}`);
          clients.push(ws);
        }
        const pending = clients.map((ws) => ws.receive().then(
          (message) => new Error(`receive resolved with ${JSON.stringify(message)}`),
          (error: unknown) => error,
        ));
        const started = performance.now();
        await server.close();
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 300, `server.close() took ${Math.round(elapsed)} ms; closeTimeout is 300`);
        for (const [i, ws] of clients.entries()) {
          const info = await within(ws.closed, 1_000);
          assert.ok(info, `client ${i} is still open 1 s after server.close()`);
          assert.equal(info.code, 1001, `client ${i}`);
          assert.equal(ws.closeCode, 1001, `client ${i}`);
          const error = await pending[i];
          assert.ok(error instanceof WebSocketError, `client ${i}'s receive rejected with ${String(error)}`);
          assert.equal(error.code, 1001);
          assert.ok(isOk(error));
        }
        await Promise.all(handlerEnds);
        assert.deepEqual(errors, [], 'a 1001 shutdown is not a handler error');
        await assert.rejects(connect(server.url, { handshakeTimeout: 1_000 }), (error: unknown) => error instanceof WebSocketError && error.code === 1006);
      } finally {
        for (const ws of clients) ws.close().catch(() => {});
        await server.close();
      }
    });

    test('a WebSocket peer that never answers the 1001 → close() resolves after about the close timeout', T, async () => {
      const server = await listen('127.0.0.1', 0, (ws) => ws.closed, { closeTimeout: 300, pingInterval: 0 });
      const peer = await silentPeer(server.port, true);
      try {
        const started = performance.now();
        await server.close();
        const elapsed = performance.now() - started;
        assert.ok(elapsed >= 250 && elapsed < 1_000, `server.close() took ${Math.round(elapsed)} ms; closeTimeout is 300`);
        assert.notEqual(await within(peer.closed, 500), null, 'the silent peer was not disconnected');
      } finally {
        peer.socket.destroy();
      }
    });

    test('a handshake still in progress does not hold up close() (default 10 s handshake timeout)', T, async () => {
      const server = await listen('127.0.0.1', 0, (ws) => ws.closed, { closeTimeout: 300 });
      const peer = await silentPeer(server.port, false);
      try {
        await sleep(20);
        const started = performance.now();
        await server.close();
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 500, `server.close() took ${Math.round(elapsed)} ms`);
        assert.notEqual(await within(peer.closed, 500), null, 'the half-done handshake was not dropped');
      } finally {
        peer.socket.destroy();
      }
    });

    test('a handshake waiting on an async verify does not hold up close(), and never becomes a connection', T, async () => {
      let handlerCalls = 0;
      let releaseVerify = () => {};
      const verifying = new Promise<void>((resolve) => (releaseVerify = resolve));
      let verifyCalled = false;
      const server = await listen('127.0.0.1', 0, (ws) => {
        handlerCalls++;
        return ws.closed;
      }, {
        closeTimeout: 300,
        verify: async () => {
          verifyCalled = true;
          await verifying;
          return true;
        },
      });
      const peer = await silentPeer(server.port, false);
      try {
        peer.socket.write(peer.rest);
        await eventually(() => verifyCalled, 'verify to be called');
        const started = performance.now();
        await server.close();
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 500, `server.close() took ${Math.round(elapsed)} ms`);
        releaseVerify();
        await sleep(50);
        assert.equal(handlerCalls, 0, 'a connection verified after close() must not reach the handler');
        assert.notEqual(await within(peer.closed, 500), null, 'the pending handshake was not dropped');
      } finally {
        releaseVerify();
        peer.socket.destroy();
      }
    });

    test('close() twice and [Symbol.asyncDispose] resolve; the port is released', T, async () => {
      const server = await listen('127.0.0.1', 0, () => {}, { closeTimeout: 300 });
      const first = server.close();
      const second = server.close();
      await Promise.all([first, second, server[Symbol.asyncDispose]()]);
      const again = await listen('127.0.0.1', server.port, () => {}, { closeTimeout: 300 });
      await again.close();
    });
  });

  describe('handlers on the server (listen)', () => {
    test('a handler that throws → the client sees 1011, onError gets that error, the server keeps serving', T, async () => {
      const boom = new Error('handler exploded (expected by the test)');
      const reported: Array<{ error: unknown; ws: WebSocket | undefined }> = [];
      const serverSockets: WebSocket[] = [];
      const server = await listen(
        '127.0.0.1',
        0,
        async (ws) => {
          serverSockets.push(ws);
          const message = await ws.receive();
          if (message === 'boom') throw boom;
          await ws.send(message);
          for await (const more of ws) await ws.send(more);
        },
        { closeTimeout: 300, onError: (error, ws) => reported.push({ error, ws }) },
      );
      try {
        const first = await connect(server.url, { closeTimeout: 300 });
        await first.send('boom');
        await assert.rejects(first.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1011);
        const info: CloseInfo = await first.closed;
        assert.equal(info.code, 1011);
        await eventually(() => reported.length > 0, 'onError');
        assert.equal(reported.length, 1);
        assert.equal(reported[0].error, boom, 'onError gets the very error the handler threw');
        assert.equal(reported[0].ws, serverSockets[0], 'onError gets the server-side socket');

        const second = await connect(server.url, { closeTimeout: 300 });
        await second.send('fine');
        assert.equal(await second.receive(), 'fine');
        await second.close();
        assert.equal((await second.closed).code, 1000);
        assert.equal(reported.length, 1);
      } finally {
        await server.close();
      }
    });

    test('a handler that throws synchronously → 1011 as well', T, async () => {
      const boom = new Error('sync handler exploded (expected by the test)');
      const reported: unknown[] = [];
      const server = await listen('127.0.0.1', 0, () => {
        throw boom;
      }, { closeTimeout: 300, onError: (error) => reported.push(error) });
      try {
        const ws = await connect(server.url, { closeTimeout: 300 });
        assert.equal((await ws.closed).code, 1011);
        await eventually(() => reported.length > 0, 'onError');
        assert.deepEqual(reported, [boom]);
      } finally {
        await server.close();
      }
    });

    test('a handler that returns → the client sees 1000 and onError is not called', T, async () => {
      const reported: unknown[] = [];
      const server = await listen('127.0.0.1', 0, async (ws) => {
        await ws.send('bye');
        return 'ignored';
      }, { closeTimeout: 300, onError: (error) => reported.push(error) });
      try {
        const ws = await connect(server.url, { closeTimeout: 300 });
        assert.equal(await ws.receive(), 'bye');
        assert.equal((await ws.closed).code, 1000);
        assert.deepEqual(reported, []);
      } finally {
        await server.close();
      }
    });

    test('an onError that throws does not take the server down', T, async () => {
      const server = await listen('127.0.0.1', 0, async (ws) => {
        if ((await ws.receive()) === 'boom') throw new Error('handler exploded (expected by the test)');
        await ws.send('ok');
      }, {
        closeTimeout: 300,
        onError: () => {
          throw new Error('onError exploded (expected by the test)');
        },
      });
      try {
        const first = await connect(server.url, { closeTimeout: 300 });
        await first.send('boom');
        assert.equal((await first.closed).code, 1011);
        const second = await connect(server.url, { closeTimeout: 300 });
        await second.send('hi');
        assert.equal(await second.receive(), 'ok');
        await second.closed;
      } finally {
        await server.close();
      }
    });
  });

  describe('handlers on the client (open)', () => {
    /** A server that records how each connection ended. */
    async function recordingServer() {
      const ends: Array<Promise<{ info: CloseInfo; receiveError: unknown; messages: unknown[] }>> = [];
      const server = await listen('127.0.0.1', 0, (ws) => {
        const end = (async () => {
          const messages: unknown[] = [];
          let receiveError: unknown;
          try {
            for (;;) messages.push(await ws.receive());
          } catch (error) {
            receiveError = error;
          }
          return { info: await ws.closed, receiveError, messages };
        })();
        ends.push(end);
        return end;
      }, { closeTimeout: 300, onError: () => {} });
      return { server, ends };
    }

    test('open() whose handler throws → the server sees 1008 and open rejects with that very error', T, async () => {
      const { server, ends } = await recordingServer();
      try {
        const boom = new Error('client handler exploded (expected by the test)');
        const outcome = await open(server.url, async (ws) => {
          await ws.send('before the error');
          throw boom;
        }, { closeTimeout: 300 }).then(
          (value) => new Error(`open resolved with ${String(value)}`),
          (error: unknown) => error,
        );
        assert.equal(outcome, boom, 'open rejects with the very same error object');
        assert.equal(ends.length, 1);
        const { info, receiveError, messages } = await ends[0];
        assert.equal(info.code, 1008);
        assert.deepEqual(messages, ['before the error']);
        assert.ok(receiveError instanceof WebSocketError && receiveError.code === 1008);
      } finally {
        await server.close();
      }
    });

    test('open() whose handler throws synchronously → 1008 and the same error', T, async () => {
      const { server, ends } = await recordingServer();
      try {
        const boom = new TypeError('sync client handler exploded (expected by the test)');
        await assert.rejects(open(server.url, () => {
          throw boom;
        }, { closeTimeout: 300 }), (error: unknown) => error === boom);
        assert.equal((await ends[0]).info.code, 1008);
      } finally {
        await server.close();
      }
    });

    test('open() whose handler returns a value → resolves with it and the server sees 1000', T, async () => {
      const { server, ends } = await recordingServer();
      try {
        const value = { answer: 42 };
        const result = await open(server.url, async (ws) => {
          await ws.send('hello');
          return value;
        }, { closeTimeout: 300 });
        assert.equal(result, value, 'open resolves with the handler’s very value');
        const { info, messages } = await ends[0];
        assert.equal(info.code, 1000);
        assert.deepEqual(messages, ['hello']);
      } finally {
        await server.close();
      }
    });

    test('open() resolves only once the connection is closed', T, async () => {
      const { server } = await recordingServer();
      try {
        let socket: WebSocket | undefined;
        await open(server.url, (ws) => {
          socket = ws;
        }, { closeTimeout: 300 });
        assert.ok(socket);
        assert.equal(socket.closeCode, 1000, 'closed (the server echoed 1000) by the time open resolves');
        await assert.rejects(socket.send('after'), WebSocketError);
      } finally {
        await server.close();
      }
    });
  });
}
