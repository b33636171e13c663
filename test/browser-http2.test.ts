// Chromium's own WebSocket over HTTP/2 (RFC 8441), against `listen(…, { tls, http2: true })`:
// issue 13, "Real peers, in CI", item 1.
//
//   - with http2 on, the page's `new WebSocket('wss://…')` reaches our server as an extended
//     CONNECT stream (ws.request.httpVersion '2', method CONNECT, :protocol websocket), echoes,
//     and closes with 1000 on both sides;
//   - with http2 off (plain `listen(…, { tls })`) the same page's WebSocket is an HTTP/1.1
//     upgrade;
//   - several WebSockets of one page, open at once, share ONE TLS connection over h2, and
//     take one connection each over HTTP/1.1. The connections are counted on the server's side
//     by a TCP proxy of the test's own in front of the server (Chromium dials the proxy).
//
// Chromium 156 takes RFC 8441 for wss:// only when it already holds an h2 connection, made
// with credentials, to the origin, whose server sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1: the
// page (http://127.0.0.1, served by the test) first fetches the wss origin as https:// with
// `mode: 'no-cors', credentials: 'include'` (our server answers that GET with 426, which a
// no-cors fetch takes). The certificate is self-signed, made at run time, and trusted with
// --ignore-certificate-errors-spki-list (test/chromium.ts, trustCertificateArgs).
//
// Chromium is /usr/bin/chromium (or $CHROMIUM). Without it these tests print
// `SKIPPED: chromium not found (install: apt-get install -y chromium)` and skip, except with
// CI=true, where they fail (test/peers.ts). Everything listens on 127.0.0.1, port 0.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, listen } from '../websockets.ts';
import type { WebSocket } from '../websockets.ts';
import { Cdp, chromiumMissing, closeChromium, launchChromium, newTab, trustCertificateArgs, withTimeout } from './chromium.ts';
import type { Browser, CdpMessage } from './chromium.ts';
import { closeHttp, listenHttp, temporaryCertificate } from './support.ts';

/** The tests' `skip` option: skipped (with a SKIPPED line) without Chromium, unless CI=true. */
const needsChromium = chromiumMissing();
const T = { skip: needsChromium, timeout: 90_000 };
/** How many WebSockets the page opens at once in the sharing test. */
const MANY = 6;
const pem = temporaryCertificate('websockets-browser-http2-');

// ── what the server and the page saw ─────────────────────────────────────────────────────────

interface ServerSide {
  httpVersion: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  received: string[];
  close?: { code: number; reason: string };
}

interface PageSocket {
  url: string;
  protocol: string;
  extensions: string;
  text: string;
  binary: number[];
  close: { code: number; reason: string; wasClean: boolean };
}

interface PageResult {
  origin: string;
  warmUp: string;
  sockets: PageSocket[];
}

interface Outcome {
  /** The wss: origin the page dialled (the proxy's). */
  target: string;
  page: PageResult;
  server: ServerSide[];
  /** TCP (so TLS) connections Chromium made to the server, counted by the proxy. */
  connections: number;
  /** The HTTP version Chromium reports (DevTools Network.responseReceived) for the warm-up fetch. */
  fetchProtocol: string;
  /** What Chromium's DevTools shows of the WebSocket handshakes (Network.webSocketWillSendHandshakeRequest). */
  handshakes: Array<Record<string, unknown>>;
  serverErrors: unknown[];
}

// ── a TCP proxy that counts connections ──────────────────────────────────────────────────────

interface CountingProxy {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 to `targetPort`, counting the connections it accepts; bytes pass untouched (TLS and ALPN are end to end). */
async function countingProxy(targetPort: number): Promise<CountingProxy> {
  const sockets = new Set<net.Socket>();
  const keep = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => sockets.delete(socket));
  };
  const proxy: CountingProxy = { port: 0, connections: 0, close: async () => undefined };
  const server = net.createServer((client) => {
    proxy.connections++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    keep(client);
    keep(upstream);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  proxy.port = (server.address() as net.AddressInfo).port;
  proxy.close = () => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return proxy;
}

// ── Chromium and the page ────────────────────────────────────────────────────────────────────

let profile = '';
let browser: Browser | undefined;
let cdp: Cdp | undefined;
let pageServer: HttpServer | undefined;
let pageUrl = '';
let started: Promise<Cdp> | undefined;

/** Chromium trusting our certificate, and the page's origin (http://127.0.0.1:…), started on first use. */
function chromium(): Promise<Cdp> {
  started ??= withTimeout((async () => {
    profile = await mkdtemp(join(tmpdir(), 'websockets-browser-http2-'));
    pageServer = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end('<!doctype html><meta charset="utf-8"><title>websockets.ts over HTTP/2</title>');
    });
    pageUrl = `http://127.0.0.1:${await listenHttp(pageServer)}/`;
    browser = await launchChromium(profile, trustCertificateArgs(pem.cert));
    cdp = new Cdp(await connect(browser.devtoolsUrl, { handshakeTimeout: 10_000 }));
    return cdp;
  })(), 60_000, 'starting Chromium');
  return started;
}

after(async () => {
  try {
    await closeChromium(cdp, browser);
  } finally {
    await closeHttp(pageServer);
    if (profile) await rm(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}, { timeout: 30_000 });

// Plain page JavaScript: Chromium's own fetch and WebSocket. Every wait is bounded.
const PAGE_CLIENT = `async (origin, count) => {
  const within = (promise, ms, what) => Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(what + ': not within ' + ms + ' ms')), ms))]);
  // The warm-up: a credentialed connection to the origin (an opaque answer: our 426).
  const warm = await within(fetch(origin + '/warm-up', { mode: 'no-cors', credentials: 'include', cache: 'no-store' }), 10000, 'the warm-up fetch');
  const open = async (i) => {
    const ws = new WebSocket(origin.replace('https:', 'wss:') + '/socket/' + i);
    ws.binaryType = 'arraybuffer';
    const inbox = [], waiters = [];
    ws.onmessage = (event) => { const waiter = waiters.shift(); if (waiter) waiter(event.data); else inbox.push(event.data); };
    const next = () => within(inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiters.push(resolve)), 10000, 'an echo on socket ' + i);
    const closed = new Promise((resolve) => { ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean }); });
    await within(Promise.race([new Promise((resolve) => { ws.onopen = resolve; }), closed.then((info) => { throw new Error('socket ' + i + ' closed before open: ' + JSON.stringify(info)); })]), 10000, 'opening socket ' + i);
    ws.send('hello ' + i + ' ✓');
    const text = await next();
    ws.send(new Uint8Array([i, 0, 255]));
    const binary = Array.from(new Uint8Array(await next()));
    return { ws, closed, result: { url: ws.url, protocol: ws.protocol, extensions: ws.extensions, text, binary } };
  };
  // All open and echoing at once, then all closed.
  const sockets = await Promise.all(Array.from({ length: count }, (_, i) => open(i)));
  for (const [i, { ws }] of sockets.entries()) ws.close(1000, 'bye ' + i);
  const results = [];
  for (const { closed, result } of sockets) results.push({ ...result, close: await within(closed, 10000, 'the close of ' + result.url) });
  return { origin: location.origin, warmUp: warm.type, sockets: results };
}`;

/**
 * Our server (`http2` on or off) behind a counting proxy; a fresh tab of the page fetches the
 * proxy's https origin, then opens `count` WebSockets to it at once, each echoing a text and a
 * binary message, then closing with 1000.
 */
async function scenario(http2: boolean, count: number): Promise<Outcome> {
  const devtools = await chromium();
  const server: ServerSide[] = [];
  const serverErrors: unknown[] = [];
  const settled: Array<Promise<void>> = [];
  const ours = await listen('127.0.0.1', 0, (ws: WebSocket) => {
    const side: ServerSide = { httpVersion: ws.request.httpVersion, method: ws.request.method, url: ws.request.url, headers: { ...ws.request.headers }, received: [] };
    server.push(side);
    const echo = (async () => {
      try {
        for await (const message of ws) {
          side.received.push(typeof message === 'string' ? message : `bytes ${Array.from(message).join(',')}`);
          await ws.send(message);
        }
      } catch {
        // any close ends the echo
      }
      side.close = { code: ws.closeCode ?? -1, reason: ws.closeReason ?? '' };
    })();
    settled.push(echo);
    return echo;
  }, { tls: { key: pem.key, cert: pem.cert }, http2, onError: (error) => serverErrors.push(error) });
  const proxy = await countingProxy(ours.port);
  let targetId = '';
  try {
    const tab = await newTab(devtools, pageUrl);
    targetId = tab.targetId;
    await devtools.call('Network.enable', {}, tab.sessionId);
    const origin = `https://127.0.0.1:${proxy.port}`;
    const page = await devtools.evaluate<PageResult>(tab.sessionId, `(${PAGE_CLIENT})(${JSON.stringify(origin)}, ${count})`, 45_000);
    await withTimeout(Promise.all(settled), 10_000, 'the server to see every close');
    const events = devtools.events.filter((event: CdpMessage) => event.sessionId === tab.sessionId);
    const fetched = events.find((event) => event.method === 'Network.responseReceived' && String((event.params?.['response'] as { url?: string } | undefined)?.url).endsWith('/warm-up'));
    const handshakes = events
      .filter((event) => event.method === 'Network.webSocketWillSendHandshakeRequest')
      .map((event) => (event.params?.['request'] as { headers?: Record<string, unknown> } | undefined)?.headers ?? {});
    return {
      target: origin.replace('https:', 'wss:'),
      page,
      server,
      connections: proxy.connections,
      fetchProtocol: String((fetched?.params?.['response'] as { protocol?: string } | undefined)?.protocol ?? '?'),
      handshakes,
      serverErrors,
    };
  } finally {
    if (targetId) await devtools.call('Target.closeTarget', { targetId }).catch(() => undefined);
    await Promise.allSettled([ours.close(), proxy.close()]);
  }
}

/** The page and the server agree: every socket echoed its two messages and closed with 1000 on both sides. */
function assertEchoedAndClosed(outcome: Outcome, count: number): void {
  const { page, server } = outcome;
  assert.equal(page.warmUp, 'opaque', 'the warm-up fetch got its (opaque) answer');
  assert.equal(page.sockets.length, count);
  assert.equal(server.length, count, 'every WebSocket reached the server');
  for (const [i, socket] of page.sockets.entries()) {
    assert.deepEqual(socket, {
      url: `${outcome.target}/socket/${i}`,
      protocol: '',
      extensions: '',
      text: `hello ${i} ✓`,
      binary: [i, 0, 255],
      close: { code: 1000, reason: `bye ${i}`, wasClean: true },
    }, `socket ${i} in the page`);
  }
  const byPath = new Map(server.map((side) => [side.url, side]));
  for (let i = 0; i < count; i++) {
    const side = byPath.get(`/socket/${i}`);
    assert.ok(side, `the server saw /socket/${i}`);
    assert.deepEqual(side.received, [`hello ${i} ✓`, `bytes ${i},0,255`], `socket ${i} on the server`);
    assert.deepEqual(side.close, { code: 1000, reason: `bye ${i}` }, `socket ${i}: the close the server saw`);
    assert.equal(side.headers['origin'], page.origin, 'Origin is the page\'s');
    assert.equal(side.headers['sec-websocket-version'], '13');
  }
  assert.deepEqual(outcome.serverErrors, []);
}

function assertRfc8441(outcome: Outcome): void {
  for (const side of outcome.server) {
    assert.equal(side.httpVersion, '2', `${side.url} came over HTTP/2`);
    assert.equal(side.method, 'CONNECT');
    assert.equal(side.headers[':protocol'], 'websocket');
    assert.equal(side.headers[':scheme'], 'https');
    assert.equal(side.headers[':authority'], new URL(outcome.target).host);
    assert.equal(side.headers['sec-websocket-key'], undefined, 'RFC 8441 §5: no key');
  }
  assert.equal(outcome.fetchProtocol, 'h2', 'Chromium fetched the origin over h2');
  // Chromium's own view (DevTools): handshakes without a key, as RFC 8441 has none.
  assert.equal(outcome.handshakes.length, outcome.server.length);
  for (const headers of outcome.handshakes) assert.equal(headers['Sec-WebSocket-Key'], undefined, 'DevTools shows an RFC 8441 handshake');
}

function assertHttp1(outcome: Outcome): void {
  for (const side of outcome.server) {
    assert.equal(side.httpVersion, '1.1', `${side.url} came over HTTP/1.1`);
    assert.equal(side.method, 'GET');
    assert.match(side.headers['upgrade'] ?? '', /^websocket$/i);
    assert.match(side.headers['sec-websocket-key'] ?? '', /^[A-Za-z0-9+/]{22}==$/);
  }
  assert.equal(outcome.fetchProtocol, 'http/1.1', 'Chromium fetched the origin over HTTP/1.1');
  assert.equal(outcome.handshakes.length, outcome.server.length);
  for (const headers of outcome.handshakes) assert.equal(typeof headers['Sec-WebSocket-Key'], 'string', 'DevTools shows an RFC 6455 handshake');
}

/** The extended CONNECT as the server saw it, for the log: pseudo-headers first. */
function describeRequest(side: ServerSide | undefined): string {
  if (!side) return 'none';
  // Over h2 the server copies :authority into host (ws.request's rule): not Chromium's.
  const names = Object.keys(side.headers).filter((name) => side.httpVersion !== '2' || name !== 'host').sort((a, b) => Number(b.startsWith(':')) - Number(a.startsWith(':')) || a.localeCompare(b));
  return `${side.method} (HTTP ${side.httpVersion}) ${names.map((name) => `${name}: ${name === 'user-agent' ? side.headers[name]?.replace(/^.*(Chrome\/\S+).*$/, '$1') : side.headers[name]}`).join('; ')}`;
}

// ── the tests ────────────────────────────────────────────────────────────────────────────────

test('Chromium\'s native WebSocket reaches listen({ tls, http2: true }) as an RFC 8441 stream; echo, then 1000 on both sides', T, async (t) => {
  const outcome = await scenario(true, 1);
  t.diagnostic(`server saw: ${describeRequest(outcome.server[0])}`);
  t.diagnostic(`Chromium's DevTools shows the handshake as: ${JSON.stringify(outcome.handshakes[0])}`);
  assertEchoedAndClosed(outcome, 1);
  assertRfc8441(outcome);
  assert.equal(outcome.connections, 1, 'the warm-up fetch and the WebSocket shared one TLS connection');
});

test('with http2 off (listen({ tls })), the same page\'s WebSocket arrives as an HTTP/1.1 upgrade', T, async (t) => {
  const outcome = await scenario(false, 1);
  t.diagnostic(`server saw: ${describeRequest(outcome.server[0])}`);
  assertEchoedAndClosed(outcome, 1);
  assertHttp1(outcome);
  assert.equal(outcome.connections, 2, 'HTTP/1.1: the warm-up fetch, then a connection of the WebSocket\'s own');
});

test(`${MANY} WebSockets of one page, open at once, share one TLS connection over h2 (and take one each over HTTP/1.1)`, T, async (t) => {
  const h2 = await scenario(true, MANY);
  assertEchoedAndClosed(h2, MANY);
  assertRfc8441(h2);
  // The counter's control: the same page over HTTP/1.1 takes one connection per WebSocket.
  const h1 = await scenario(false, MANY);
  assertEchoedAndClosed(h1, MANY);
  assertHttp1(h1);
  t.diagnostic(`TLS connections counted by the proxy: ${h2.connections} over h2, ${h1.connections} over HTTP/1.1 (warm-up fetch included)`);
  assert.equal(h2.connections, 1, `over h2 the fetch and ${MANY} WebSockets shared one connection`);
  assert.equal(h1.connections, MANY + 1, 'over HTTP/1.1 each WebSocket had a connection of its own');
});
