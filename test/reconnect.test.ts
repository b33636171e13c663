// reconnect(): a client that comes back. Real servers on 127.0.0.1 that stop, restart, refuse
// and close with chosen codes; short delays (tens of ms) with the jitter measured, not trusted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { listen, reconnect, WebSocketError } from '../websockets.ts';
import type { ReconnectOptions, Server, WebSocket } from '../websockets.ts';
import { freePort, sleep, within } from './support.ts';

/** Fast retries for tests: 20 ms, then 40, 80, at most 80 (before the 50–100 % jitter). */
const FAST: ReconnectOptions = { delay: 20, factor: 2, maxDelay: 80, pingInterval: 0, handshakeTimeout: 2_000 };

/** An echo server on `port` that says which instance it is in its first message. */
function echoServer(port: number, name: string): Promise<Server> {
  return listen('127.0.0.1', port, async (ws) => {
    await ws.send(`hello from ${name}`);
    for await (const message of ws) await ws.send(message);
  }, { pingInterval: 0, closeTimeout: 500 });
}

/** A raw HTTP server that answers every request with `response` (a refused handshake); counts the attempts. */
async function refusingServer(response: string): Promise<{ port: number; attempts: number[]; close(): Promise<void> }> {
  const attempts: number[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      attempts.push(performance.now());
      socket.end(response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    attempts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('a server that stops and restarts on the same port: the client comes back, and the inner loop just ends', { timeout: 20_000 }, async () => {
  const port = await freePort();
  let server = await echoServer(port, 'first');
  const greetings: string[] = [];
  const endings: Array<number | undefined> = [];
  const retries: number[] = [];
  const controller = new AbortController();
  const run = (async () => {
    for await (const ws of reconnect(`ws://127.0.0.1:${port}/`, { ...FAST, signal: controller.signal, onRetry: ({ attempt }) => retries.push(attempt) })) {
      for await (const message of ws) {
        greetings.push(String(message));
        if (greetings.length === 1) {
          // The server goes away (1001), and stays away for a while: retries fail meanwhile.
          void server.close().then(() => sleep(300)).then(async () => (server = await echoServer(port, 'second')));
        }
        if (greetings.length === 2) return ws;
      }
      endings.push(ws.closeCode);
    }
    return null;
  })();
  const last = await within(run, 15_000);
  assert.ok(last, 'the client never got a message from the restarted server');
  assert.deepEqual(greetings, ['hello from first', 'hello from second']);
  assert.deepEqual(endings, [1001], 'the first connection ended with the server going away, quietly');
  assert.ok(retries.length >= 2 && retries[0] === 1, `retries: ${retries.join(', ')}`);
  await last.close();
  await server.close();
});

test('refused with 503 again and again: attempts in a row back off (20, 40, 80, 80 ms before jitter), maxRetries ends it with the last error', { timeout: 20_000 }, async () => {
  const refusing = await refusingServer('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  try {
    const delays: number[] = [];
    const iterator = reconnect(`ws://127.0.0.1:${refusing.port}/`, { ...FAST, maxRetries: 4, onRetry: ({ delay }) => delays.push(delay) });
    const error = await iterator.next().then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof WebSocketError && error.status === 503, `the iteration ended with ${String(error)}`);
    assert.equal(refusing.attempts.length, 5, 'the first try and 4 retries');
    const bases = [20, 40, 80, 80];
    delays.forEach((delay, i) => assert.ok(delay >= bases[i]! / 2 && delay <= bases[i]!, `retry ${i + 1} waited ${delay} ms, not 50–100 % of ${bases[i]}`));
    for (let i = 1; i < refusing.attempts.length; i++) {
      const gap = refusing.attempts[i]! - refusing.attempts[i - 1]!;
      assert.ok(gap >= delays[i - 1]! - 5, `attempt ${i + 1} came ${gap.toFixed(1)} ms after the one before, its delay was ${delays[i - 1]} ms`);
    }
    assert.deepEqual(await iterator.next(), { value: undefined, done: true }, 'and stays ended');
  } finally {
    await refusing.close();
  }
});

test('a 403 ends it at once, with the refusal; a 429 with Retry-After waits that long', { timeout: 20_000 }, async () => {
  const forbidden = await refusingServer('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  try {
    const error = await reconnect(`ws://127.0.0.1:${forbidden.port}/`, FAST).next().then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof WebSocketError && error.status === 403, `ended with ${String(error)}`);
    assert.equal(forbidden.attempts.length, 1);
  } finally {
    await forbidden.close();
  }
  const busy = await refusingServer('HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  try {
    const delays: number[] = [];
    await reconnect(`ws://127.0.0.1:${busy.port}/`, { ...FAST, maxRetries: 1, onRetry: ({ delay }) => delays.push(delay) }).next().catch(() => {});
    assert.deepEqual(delays, [1000], 'Retry-After: 1 is a second, whatever the backoff says');
    assert.equal(busy.attempts.length, 2);
    assert.ok(busy.attempts[1]! - busy.attempts[0]! >= 990, 'the retry came a second later');
  } finally {
    await busy.close();
  }
});

test('close codes: 1012 and 1011 are retried, 1008 ends it (the inner loop throws it), shouldReconnect decides otherwise', { timeout: 20_000 }, async () => {
  const codes = [1012, 1011, 1008];
  let served = 0;
  const server = await listen('127.0.0.1', 0, async (ws) => {
    const code = codes[served++] ?? 1000;
    await ws.close(code, `closing with ${code}`);
  }, { pingInterval: 0 });
  try {
    const seen: number[] = [];
    const outcome = await (async () => {
      try {
        for await (const ws of reconnect(server.url, FAST)) {
          for await (const message of ws) void message;
          seen.push(ws.closeCode ?? 0);
        }
        return 'ended';
      } catch (error) {
        return error;
      }
    })();
    assert.deepEqual(seen, [1012, 1011], 'the retried endings ended the inner loop quietly');
    assert.ok(outcome instanceof WebSocketError && outcome.code === 1008, `the last ending: ${String(outcome)}`);
    // The same server, now closing with 1000 each time: a hook that says no ends the iteration with that ending.
    const decided: unknown[] = [];
    const ended = await (async () => {
      try {
        for await (const ws of reconnect(server.url, { ...FAST, shouldReconnect: (error) => (decided.push(error), false) })) await ws.closed;
        return 'done';
      } catch (error) {
        return error;
      }
    })();
    assert.ok(ended instanceof WebSocketError && ended.code === 1000, `with shouldReconnect → false: ${String(ended)}`);
    assert.ok(decided.length >= 1);
  } finally {
    await server.close();
  }
});

test('break closes the current socket with 1000 and stops; the signal stops a wait at once and leaves no timer', { timeout: 20_000 }, async () => {
  let serverSide: WebSocket | undefined;
  const server = await listen('127.0.0.1', 0, async (ws) => {
    serverSide = ws;
    await ws.send('hi');
    await ws.closed;
  }, { pingInterval: 0 });
  try {
    for await (const ws of reconnect(server.url, FAST)) {
      assert.equal(await ws.receive(), 'hi');
      break;
    }
    assert.deepEqual(await within(serverSide!.closed, 3_000), { code: 1000, reason: '' });
  } finally {
    await server.close();
  }
  const port = await freePort(); // nobody there: it waits between tries
  const controller = new AbortController();
  const timersBefore = process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
  const iterator = reconnect(`ws://127.0.0.1:${port}/`, { ...FAST, delay: 60_000, maxDelay: 60_000, signal: controller.signal });
  const pending = iterator.next().then(() => 'resolved', (error: unknown) => error);
  await sleep(100); // the first try failed; the minute-long wait has begun
  const abortedAt = performance.now();
  controller.abort(new Error('stop'));
  const result = await within(pending, 1_000);
  assert.ok(result instanceof Error && result.message === 'stop', `next() after abort: ${String(result)}`);
  assert.ok(performance.now() - abortedAt < 500, 'at once');
  await sleep(10);
  assert.equal(process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length, timersBefore, 'no timer left behind');
  assert.deepEqual(await iterator.next(), { value: undefined, done: true });
});

test('bad options are errors before anything happens', () => {
  assert.throws(() => reconnect('ws://127.0.0.1:1/', { factor: 0.5 }), RangeError);
  assert.throws(() => reconnect('ws://127.0.0.1:1/', { delay: -1 }), RangeError);
  assert.throws(() => reconnect('ftp://127.0.0.1:1/'), TypeError);
});

test('a connection that lived resetAfter starts the delays over; shorter ones keep backing off', { timeout: 20_000 }, async () => {
  const server = await listen('127.0.0.1', 0, async (ws) => {
    await sleep(60);
    await ws.close(1012, 'restarting');
  }, { pingInterval: 0 });
  try {
    const streak = async (resetAfter: number) => {
      const attempts: number[] = [];
      let connections = 0;
      for await (const ws of reconnect(server.url, { ...FAST, resetAfter, onRetry: ({ attempt }) => attempts.push(attempt) })) {
        await ws.closed;
        if (++connections === 4) break;
      }
      return attempts;
    };
    assert.deepEqual(await streak(40), [1, 1, 1], 'each connection lived 60 ms ≥ resetAfter: every retry is a first one');
    assert.deepEqual(await streak(10_000), [1, 2, 3], 'each lived less than resetAfter: the retries count up');
  } finally {
    await server.close();
  }
});

test('a Retry-After of years, or an Infinity delay, waits (at most a timer\u2019s 24.8 days), never a tight loop', { timeout: 20_000 }, async () => {
  const refusing = await refusingServer('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3000000\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  try {
    for (const options of [{}, { delay: Infinity, maxDelay: Infinity }]) {
      refusing.attempts.length = 0;
      const controller = new AbortController();
      const pending = reconnect(`ws://127.0.0.1:${refusing.port}/`, { ...FAST, ...options, signal: controller.signal }).next().catch(() => 'stopped');
      await sleep(500);
      controller.abort();
      assert.equal(await pending, 'stopped');
      assert.equal(refusing.attempts.length, 1, `${JSON.stringify(options)}: ${refusing.attempts.length} attempts in half a second`);
    }
  } finally {
    await refusing.close();
  }
});

test('next() called twice at once: the calls are served in turn, each with a connection of its own', { timeout: 20_000 }, async () => {
  const server = await echoServer(0, 'one');
  try {
    const iterator = reconnect(server.url, FAST);
    const [first, second] = await Promise.all([iterator.next(), iterator.next()]);
    assert.equal(first.done, false);
    assert.equal(second.done, false, 'the second call is not told the iteration ended');
    assert.notEqual(first.value, second.value);
    assert.equal((first.value as WebSocket).closeCode, 1000, 'the first connection was closed to make way for the second');
    await iterator.return?.();
  } finally {
    await server.close();
  }
});
