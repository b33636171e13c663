// Real-browser tests: Debian's headless Chromium, driven over the Chrome DevTools Protocol by
// OUR OWN WebSocket client (itself an interop test against a server nobody here wrote).
//
//   - the shared client scenario (test/shared-client.ts) in Node and, bundled for the browser,
//     in the page, where `connect` goes through the facade over the native WebSocket; both
//     results must agree on everything but ping/pong and timings;
//   - an abnormal close (the server destroys the TCP connection) and the contract's edge cases
//     in both, with the same answers;
//   - wrap() of a native WebSocket that never opens, has already closed, or is still CONNECTING;
//   - Chromium's native WebSocket as a plain client of our server, permessage-deflate offered;
//   - the browser bundle (the package.json command) loads in the page without touching Node,
//     and what a browser cannot do fails with a clear error;
//   - the DevTools connection itself (our client ↔ Chromium's server): large replies, many
//     calls in flight, ping.
//
// Chromium is /usr/bin/chromium (or $CHROMIUM), started on first use by the browser tests
// (test/chromium.ts has the launcher and the CDP client). When it is missing they print
// `SKIPPED: chromium not found (install: apt-get install -y chromium)` and skip, except with CI=true, where
// they FAIL: CI installs it with `apt-get install -y chromium`. The Node-only tests here run
// without it.
// Everything listens on 127.0.0.1 with port 0; Chromium and its profile are removed at the end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { connect, listen } from '../websockets.ts';
import type { Server, ServerOptions } from '../websockets.ts';
import { PROTOCOL, runAbnormalClose, runClientScenario, runEdgeScenario, scenarioHandler } from './shared-client.ts';
import type { AbnormalResult, EdgeResult, Result, WrapEdges } from './shared-client.ts';
import { assertAbnormal, assertEdge, assertScenario, assertWrapAlreadyClosed, assertWrapConnecting, assertWrapNeverOpened, listenKiller, portablePart } from './scenario-checks.ts';
import type { KillerServer } from './scenario-checks.ts';
import { closeHttp, listenHttp, sleep } from './support.ts';
import { Cdp, chromiumMissing, closeChromium, findRoot, launchChromium, newTab, withTimeout } from './chromium.ts';
import type { Browser } from './chromium.ts';

const SCENARIO_MS = 120_000;
/** The browser tests' `skip` option: skipped (with a SKIPPED line) without Chromium, unless CI=true. */
const needsChromium = chromiumMissing();
/** The browser bundle's budget (bytes): minified, and minified + gzip -9 (of which the MIT licence, kept as a legal comment, is about 600). About 40 % of it is Node-only code (HTTP/2, proxies, the server) that never runs in a browser. */
const BUNDLE_BUDGET = { minified: 88 * 1024, gzipped: 31 * 1024 };

// ── fixtures ────────────────────────────────────────────────────────────────────────────────

const root = findRoot();
let workDir = '';
let browser: Browser | undefined;
let cdp: Cdp | undefined;
let pageUrl = '';
let bundle = { minified: 0, gzipped: 0, text: '' };

/** Our echo server for the shared scenario; errors of its handlers land here. */
let scenarioServer: Server;
const serverErrors: unknown[] = [];
/** A node:http server with upgrade(): destroys the TCP connection on DIE_REQUEST. */
let killerServer: KillerServer | undefined;
let killerUrl = '';
/** The page's static files. */
let staticServer: HttpServer;

interface NativeSide {
  offered: string;
  extensions: string;
  received: string[];
  closed?: { code: number; reason: string };
}

function run(command: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>websockets.ts browser test</title>
<script type="module">
  window.pageState = 'loading';
  try {
    // The library bundle exactly as published, then the shared client bundled for the browser.
    window.lib = await import('./websockets.browser.js');
    window.client = await import('./shared-client.js');
    window.pageState = 'ready';
  } catch (error) {
    window.pageState = 'import failed: ' + ((error && error.stack) || error);
  }
</script>
`;

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'websockets-browser-'));

  // The browser bundle, with the very command package.json runs (outfile in the temp dir).
  const esbuild = join(root, 'node_modules', '.bin', 'esbuild');
  await run(esbuild, ['websockets.ts', '--bundle', '--format=esm', '--platform=browser', '--minify', '--sourcemap', '--target=es2022', '--external:node:*', `--outfile=${join(workDir, 'websockets.browser.js')}`, '--log-level=warning'], root);
  const text = await readFile(join(workDir, 'websockets.browser.js'), 'utf8');
  bundle = { minified: Buffer.byteLength(text), gzipped: gzipSync(text, { level: 9 }).length, text };

  // The shared client, bundled for the browser with esbuild's JS API.
  await build({
    entryPoints: [join(root, 'test', 'shared-client.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    external: ['node:*'],
    sourcemap: true,
    outfile: join(workDir, 'shared-client.js'),
    logLevel: 'warning',
  });
  await writeFile(join(workDir, 'index.html'), PAGE);

  const files: Record<string, string> = {
    '/': 'index.html',
    '/index.html': 'index.html',
    '/websockets.browser.js': 'websockets.browser.js',
    '/websockets.browser.js.map': 'websockets.browser.js.map',
    '/shared-client.js': 'shared-client.js',
    '/shared-client.js.map': 'shared-client.js.map',
  };
  staticServer = createServer((request, response) => {
    const name = files[new URL(request.url ?? '/', 'http://x').pathname];
    if (!name) {
      response.writeHead(404).end('not found');
      return;
    }
    const type = name.endsWith('.html') ? 'text/html; charset=utf-8' : name.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'application/json';
    readFile(join(workDir, name)).then(
      (body) => response.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body),
      () => response.writeHead(500).end(),
    );
  });
  pageUrl = `http://127.0.0.1:${await listenHttp(staticServer)}/`;

  scenarioServer = await listen('127.0.0.1', 0, scenarioHandler, { protocols: [PROTOCOL], onError: (error) => serverErrors.push(error) });

  killerServer = await listenKiller((error) => serverErrors.push(error));
  killerUrl = killerServer.url;

}, { timeout: 60_000 });

after(async () => {
  try {
    await closeChromium(cdp, browser);
  } finally {
    await Promise.allSettled([scenarioServer?.close(), killerServer?.close(), closeHttp(staticServer)]);
    if (workDir) await rm(workDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}, { timeout: 30_000 });


interface Page {
  cdp: Cdp;
  sessionId: string;
}
let pagePromise: Promise<Page> | undefined;

/**
 * Chromium with our page loaded, started on first use (so the Node-only tests run without it).
 * Memoized: when Chromium is missing or fails to start, every browser test fails with that error.
 */
function page(): Promise<Page> {
  pagePromise ??= withTimeout((async () => {
    browser = await launchChromium(workDir);
    // Our own client against Chromium's DevTools server.
    cdp = new Cdp(await connect(browser.devtoolsUrl, { handshakeTimeout: 10_000 }));
    const { sessionId } = await newTab(cdp, pageUrl);
    const state = await cdp.evaluate<string>(
      sessionId,
      `new Promise((resolve) => { const check = () => window.pageState && window.pageState !== 'loading' ? resolve(window.pageState) : setTimeout(check, 20); check(); })`,
    );
    assert.equal(state, 'ready', 'the page imported both bundles');
    return { cdp, sessionId };
  })(), 90_000, 'starting Chromium and loading the page');
  return pagePromise;
}

/** A ws:// URL on 127.0.0.1 where nobody listens: bind a port, then let it go. */
async function refusedUrl(): Promise<string> {
  const probe = createServer();
  const url = `ws://127.0.0.1:${await listenHttp(probe)}/`;
  await closeHttp(probe);
  return url;
}

function expression(call: string, ...args: unknown[]): string {
  return `${call}(${args.map((arg) => JSON.stringify(arg)).join(', ')})`;
}

// ── the tests ───────────────────────────────────────────────────────────────────────────────

test('browser bundle: builds with the package.json command, small, no static node: import', async (t) => {
  t.diagnostic(`dist/websockets.browser.js: ${bundle.minified} bytes minified, ${bundle.gzipped} bytes gzip -9`);
  assert.ok(bundle.minified > 0);
  assert.ok(bundle.minified <= BUNDLE_BUDGET.minified, `minified ${bundle.minified} > ${BUNDLE_BUDGET.minified}`);
  assert.ok(bundle.gzipped <= BUNDLE_BUDGET.gzipped, `gzipped ${bundle.gzipped} > ${BUNDLE_BUDGET.gzipped}`);
  // node: built-ins only behind dynamic import(), never as a static import.
  assert.doesNotMatch(bundle.text, /(?:^|[;}\s])import\s*[^(;]*?["']node:/, 'a static import of a node: module');
  assert.doesNotMatch(bundle.text, /\brequire\(\s*["']node:/, 'a require of a node: module');
});

test('browser bundle: imports in Chromium without throwing and exports the public API', { skip: needsChromium, timeout: 120_000 }, async () => {
  // page() checked that the page's `import()` of both bundles did not throw.
  const { cdp, sessionId } = await page();
  const names = await cdp.evaluate<string[]>(sessionId, 'Object.keys(window.lib).sort()');
  for (const name of ['WebSocket', 'WebSocketError', 'isOk', 'open', 'connect', 'listen', 'upgrade', 'isUpgrade', 'wrap', 'receive', 'send', 'ping', 'pong', 'close', 'CloseCode', 'Opcode']) {
    assert.ok(names.includes(name), `the browser bundle exports ${name}`);
  }
});

let nodeResult: Result | undefined;

test('shared client scenario in Node (our RFC 6455 client)', { timeout: SCENARIO_MS }, async () => {
  nodeResult = await runClientScenario(scenarioServer.url);
  assertScenario(nodeResult, { ownClient: true });
  assert.deepEqual(serverErrors, []);
});

/**
 * Runs `call` in the page with the global WebSocketStream hidden while `connect` runs, so the
 * facade takes the plain WebSocket, as in browsers without WebSocketStream (Firefox, Safari).
 */
function withoutWebSocketStream(call: string): string {
  return `(async () => {
    const saved = window.WebSocketStream;
    window.WebSocketStream = undefined;
    try { return await ${call}; } finally { window.WebSocketStream = saved; }
  })()`;
}

for (const native of ['WebSocketStream', 'WebSocket'] as const) {
  test(`shared client scenario in headless Chromium (the facade over the native ${native})`, { skip: needsChromium, timeout: SCENARIO_MS }, async (t) => {
    const { cdp, sessionId } = await page();
    if (native === 'WebSocketStream') assert.equal(await cdp.evaluate<string>(sessionId, 'typeof window.WebSocketStream'), 'function', 'Chromium has WebSocketStream');
    const call = expression('window.client.runClientScenario', scenarioServer.url);
    const result = await cdp.evaluate<Result>(sessionId, native === 'WebSocket' ? withoutWebSocketStream(call) : call, SCENARIO_MS - 5_000);
    t.diagnostic(`${result.runtime}: ${result.ms} ms; 16 MiB echo ${result.large[1]?.ms} ms`);
    assertScenario(result, { ownClient: false });
    assert.match(result.runtime, /Chrome\//);
    // The isomorphism: the same module, the same answers, in Node and in the browser.
    assert.ok(nodeResult, 'the Node run of the scenario must have passed first');
    assert.deepEqual(portablePart(result), portablePart(nodeResult));
    assert.deepEqual(serverErrors, []);
    assert.deepEqual(cdp.pageExceptions(), [], 'uncaught exceptions in the page');
  });
}

test('receive backpressure in Chromium: over WebSocketStream a page that does not read stops the server; over WebSocket it cannot', { skip: needsChromium, timeout: 120_000 }, async (t) => {
  const MESSAGES = 2_000; // of 64 KiB: 125 MiB at most, what the plain WebSocket takes in
  const flood = { sent: 0, stop: false };
  const floodServer = await listen('127.0.0.1', 0, async (ws) => {
    flood.sent = 0;
    flood.stop = false;
    const message = new Uint8Array(64 * 1024);
    while (!flood.stop && flood.sent < MESSAGES) {
      message[0] = flood.sent & 0xff;
      await ws.send(message); // resolves while the page's side takes the bytes in
      flood.sent++;
    }
    await ws.send('end');
    await ws.closed;
  });
  /** Connects the page, lets the server send for a while unread, then reads everything. */
  const measure = async (connectCall: string): Promise<{ stalledAt: number; later: number; sent: number; received: number; inOrder: boolean }> => {
    const { cdp, sessionId } = await page();
    assert.equal(await cdp.evaluate<string>(sessionId, `(async () => { window.floodWs = await ${connectCall}; return 'connected'; })()`, 15_000), 'connected');
    await sleep(1_500);
    const stalledAt = flood.sent;
    await sleep(1_000);
    const later = flood.sent;
    flood.stop = true;
    const read = await cdp.evaluate<{ received: number; inOrder: boolean }>(sessionId, `(async () => {
      const ws = window.floodWs;
      let received = 0, inOrder = true;
      for (;;) {
        const message = await ws.receive();
        if (typeof message === 'string') break;
        if (message[0] !== (received & 0xff)) inOrder = false;
        received++;
      }
      await ws.close();
      return { received, inOrder };
    })()`, 60_000);
    return { stalledAt, later, sent: flood.sent, ...read };
  };
  try {
    const url = JSON.stringify(floodServer.url);
    const options = '{ maxQueuedMessages: 16, maxQueuedBytes: 1048576 }';
    const bounded = await measure(`window.lib.connect(${url}, ${options})`);
    const unbounded = await measure(withoutWebSocketStream(`window.lib.connect(${url}, ${options})`));
    t.diagnostic(`WebSocketStream: the server's send() stopped at ${bounded.stalledAt} messages (${(bounded.stalledAt / 16).toFixed(1)} MiB); plain WebSocket: ${unbounded.later} sent unread`);
    assert.equal(bounded.later, bounded.stalledAt, 'over WebSocketStream the server stays stopped while the page does not read');
    assert.ok(bounded.stalledAt < MESSAGES / 4, `the page took in ${bounded.stalledAt} messages unread`);
    assert.equal(bounded.received, bounded.sent, 'then every message sent arrives');
    assert.ok(bounded.inOrder);
    assert.ok(unbounded.later > bounded.stalledAt * 2, `without WebSocketStream the browser reads on regardless (${unbounded.later} sent)`);
    assert.equal(unbounded.received, unbounded.sent);
    assert.ok(unbounded.inOrder);
    const { cdp } = await page();
    assert.deepEqual(cdp.pageExceptions(), [], 'uncaught exceptions in the page');
  } finally {
    await floodServer.close();
  }
});

test('receiveStream() in Chromium: each message whole, as one piece (a native WebSocket hands over whole messages)', { skip: needsChromium, timeout: 120_000 }, async () => {
  const { cdp, sessionId } = await page();
  const pieces = await cdp.evaluate<string[]>(sessionId, `(async (url) => {
    const [client, server] = window.lib.pair();
    await client.send(['stre', 'amed']);
    const inMemory = [];
    for await (const piece of server.receiveStream()) inMemory.push(piece);
    const ws = await window.lib.connect(url, { protocols: [${JSON.stringify(PROTOCOL)}] });
    await ws.send('echo me');
    const overNative = [];
    for await (const piece of ws.receiveStream()) overNative.push(piece);
    await ws.close();
    await client.close();
    return [...inMemory, '|', ...overNative];
  })(${JSON.stringify(scenarioServer.url)})`, 25_000);
  assert.deepEqual(pieces, ['stre', 'amed', '|', 'echo me']);
  assert.deepEqual(cdp.pageExceptions(), [], 'uncaught exceptions in the page');
});

test('abnormal close: the server destroys the connection → receive() rejects with 1006 (Node and Chromium)', { skip: needsChromium, timeout: 120_000 }, async () => {
  const inNode = await runAbnormalClose(killerUrl);
  assertAbnormal(inNode);
  const { cdp, sessionId } = await page();
  const inBrowser = await cdp.evaluate<AbnormalResult>(sessionId, expression('window.client.runAbnormalClose', killerUrl), 30_000);
  assertAbnormal(inBrowser);
  assert.equal(inBrowser.receive.outcome === 'rejected' && inBrowser.receive.name, 'WebSocketError');
  assert.deepEqual(cdp.pageExceptions(), [], 'uncaught exceptions in the page');
});

test('edge cases of the contract: the same in Node and in Chromium', { skip: needsChromium, timeout: 120_000 }, async () => {
  const inNode = await runEdgeScenario(scenarioServer.url);
  assertEdge(inNode);
  const { cdp, sessionId } = await page();
  const inBrowser = await cdp.evaluate<EdgeResult>(sessionId, expression('window.client.runEdgeScenario', scenarioServer.url), 60_000);
  assertEdge(inBrowser);
  assert.deepEqual({ ...inBrowser, runtime: '' }, { ...inNode, runtime: '' }, 'the same answers in Node and in the browser');
  assert.deepEqual(serverErrors, []);
  assert.deepEqual(cdp.pageExceptions(), [], 'uncaught exceptions in the page');
});

let wrapEdges: Promise<WrapEdges> | undefined;
/** One run of `runWrapEdges` in the page; the three tests below check its parts. */
function wrapEdgesInPage(): Promise<WrapEdges> {
  wrapEdges ??= (async () => {
    const { cdp, sessionId } = await page();
    return cdp.evaluate<WrapEdges>(sessionId, expression('window.client.runWrapEdges', await refusedUrl(), scenarioServer.url), 60_000);
  })();
  return wrapEdges;
}

test('wrap() in Chromium: a native WebSocket that never opens → receive() and a pending send() reject with 1006', { skip: needsChromium, timeout: 120_000 }, async (t) => {
  const result = await wrapEdgesInPage();
  t.diagnostic(JSON.stringify(result.neverOpened));
  assertWrapNeverOpened(result);
});

test('wrap() in Chromium: a native WebSocket already closed → receive(), closed and close() settle', { skip: needsChromium, timeout: 120_000 }, async (t) => {
  const result = await wrapEdgesInPage();
  t.diagnostic(JSON.stringify(result.alreadyClosed));
  assertWrapAlreadyClosed(result);
});

test('wrap() in Chromium: a CONNECTING native WebSocket → protocol and extensions as negotiated', { skip: needsChromium, timeout: 120_000 }, async (t) => {
  const result = await wrapEdgesInPage();
  t.diagnostic(JSON.stringify(result.connecting));
  assertWrapConnecting(result);
  const { cdp } = await page();
  assert.deepEqual(cdp.pageExceptions(), [], 'uncaught exceptions in the page');
});

interface NativeResult {
  protocol: string;
  extensions: string;
  text: string;
  binary: number[];
  binaryType: string;
  compressible: { length: number; same: boolean };
  random: { length: number; same: boolean };
  close: { code: number; reason: string; wasClean: boolean };
}

// Plain page JavaScript: Chromium's own WebSocket, no facade.
const NATIVE_CLIENT = `async (url) => {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const inbox = [], waiters = [];
  ws.onmessage = (event) => { const waiter = waiters.shift(); if (waiter) waiter(event.data); else inbox.push(event.data); };
  const next = () => inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiters.push(resolve));
  const closed = new Promise((resolve) => { ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean }); });
  await Promise.race([new Promise((resolve) => { ws.onopen = resolve; }), closed.then((info) => { throw new Error('closed before open: ' + JSON.stringify(info)); })]);
  const out = { protocol: ws.protocol, extensions: ws.extensions };
  ws.send('native héllo ✓');
  out.text = await next();
  ws.send(new Uint8Array([9, 8, 7, 0, 255]));
  const binary = await next();
  out.binaryType = Object.prototype.toString.call(binary);
  out.binary = Array.from(new Uint8Array(binary));
  const compressible = 'all work and no play makes jack a dull boy. '.repeat(20000);
  ws.send(compressible);
  const compressibleBack = await next();
  out.compressible = { length: compressibleBack.length, same: compressibleBack === compressible };
  const random = new Uint8Array(1 << 20);
  let s = 7; for (let i = 0; i < random.length; i++) { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; random[i] = s & 255; }
  ws.send(random);
  const randomBack = new Uint8Array(await next());
  out.random = { length: randomBack.length, same: randomBack.length === random.length && randomBack.every((v, i) => v === random[i]) };
  ws.close(1000, 'done');
  out.close = await closed;
  return out;
}`;

async function nativeEcho(options: ServerOptions): Promise<{ page: NativeResult; server: NativeSide }> {
  const side: NativeSide = { offered: '', extensions: '', received: [] };
  const server = await listen('127.0.0.1', 0, async (ws) => {
    side.offered = ws.request.headers['sec-websocket-extensions'] ?? '';
    side.extensions = ws.extensions;
    try {
      for await (const message of ws) {
        side.received.push(typeof message === 'string' ? `text ${message.length}` : `${message.constructor.name} ${message.length}`);
        await ws.send(message);
      }
    } catch {
      // any close ends the echo
    }
    side.closed = { code: ws.closeCode ?? -1, reason: ws.closeReason ?? '' };
  }, { ...options, onError: (error) => serverErrors.push(error) });
  try {
    const { cdp, sessionId } = await page();
    const inPage = await cdp.evaluate<NativeResult>(sessionId, `(${NATIVE_CLIENT})(${JSON.stringify(server.url)})`, 30_000);
    for (let i = 0; i < 100 && !side.closed; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    return { page: inPage, server: side };
  } finally {
    await server.close();
  }
}

function assertNativeEcho({ page, server }: { page: NativeResult; server: NativeSide }): void {
  assert.match(server.offered, /permessage-deflate/, 'Chromium offers permessage-deflate');
  assert.equal(page.extensions, server.extensions, 'the page sees what our server negotiated');
  assert.ok(page.extensions === '' || /^permessage-deflate\b/.test(page.extensions), `negotiated ${JSON.stringify(page.extensions)}`);
  assert.equal(page.protocol, '');
  assert.equal(page.text, 'native héllo ✓');
  assert.equal(page.binaryType, '[object ArrayBuffer]');
  assert.deepEqual(page.binary, [9, 8, 7, 0, 255]);
  assert.deepEqual(page.compressible, { length: 'all work and no play makes jack a dull boy. '.length * 20000, same: true });
  assert.deepEqual(page.random, { length: 1 << 20, same: true });
  assert.deepEqual(page.close, { code: 1000, reason: 'done', wasClean: true });
  assert.deepEqual(server.received, ['text 14', 'Uint8Array 5', `text ${'all work and no play makes jack a dull boy. '.length * 20000}`, `Uint8Array ${1 << 20}`]);
  assert.deepEqual(server.closed, { code: 1000, reason: 'done' });
}

test('Chromium native WebSocket ↔ our server (default options: permessage-deflate offered, declined)', { skip: needsChromium, timeout: 120_000 }, async (t) => {
  const echo = await nativeEcho({});
  t.diagnostic(`offered: ${echo.server.offered}; negotiated: ${JSON.stringify(echo.page.extensions)}`);
  assertNativeEcho(echo);
  assert.equal(echo.page.extensions, '', 'compression is off unless asked for');
  assert.deepEqual(serverErrors, []);
});

test('Chromium native WebSocket ↔ our server with compression: true', { skip: needsChromium, timeout: 120_000 }, async (t) => {
  const echo = await nativeEcho({ compression: true });
  t.diagnostic(`offered: ${echo.server.offered}; negotiated: ${JSON.stringify(echo.page.extensions)}`);
  assertNativeEcho(echo);
  assert.deepEqual(serverErrors, []);
});

test('browser limitations fail clearly; open() works through the bundle', { skip: needsChromium, timeout: 120_000 }, async () => {
  const closedUrl = await refusedUrl();
  const { cdp, sessionId } = await page();
  const result = await cdp.evaluate<Record<string, string>>(sessionId, `(async (url, closedUrl) => {
    const lib = window.lib;
    const why = async (promise) => { try { await promise; return 'resolved'; } catch (error) { return (error && error.name) + ': ' + (error && error.message); } };
    return {
      listen: await why(lib.listen('127.0.0.1', 0, () => {})),
      headers: await why(lib.connect(url, { headers: { 'x-test': '1' } })),
      tls: await why(lib.connect(url, { tls: { rejectUnauthorized: false } })),
      open: String(await lib.open(url, async (ws) => { await ws.send('via open'); return ws.receive(); })),
      refused: await why(lib.connect(closedUrl)),
    };
  })(${JSON.stringify(scenarioServer.url)}, ${JSON.stringify(closedUrl)})`, 25_000);
  assert.match(result['listen'] ?? '', /Node/, `listen: ${result['listen']}`);
  assert.match(result['headers'] ?? '', /^TypeError: .*headers/, `headers: ${result['headers']}`);
  assert.match(result['tls'] ?? '', /^TypeError: .*tls/, `tls: ${result['tls']}`);
  assert.equal(result['open'], 'via open');
  assert.match(result['refused'] ?? '', /^WebSocketError: .*1006/, `a refused connection: ${result['refused']}`);
  assert.deepEqual(cdp.pageExceptions(), [], 'uncaught exceptions in the page');
});

test('facade in Chromium: unawaited send()s then close() → the messages reach the server before the close', { skip: needsChromium, timeout: 120_000 }, async () => {
  const received: Array<{ type: string; length: number }> = [];
  let closeCode: number | undefined;
  let serverDone!: () => void;
  const done = new Promise<void>((resolve) => (serverDone = resolve));
  const lastWordsServer = await listen('127.0.0.1', 0, async (ws) => {
    try {
      for await (const message of ws) received.push({ type: typeof message, length: message.length });
    } finally {
      closeCode = ws.closeCode;
      serverDone();
    }
  });
  try {
    const { cdp, sessionId } = await page();
    const sent = await cdp.evaluate<string>(sessionId, `(async (url) => {
      const ws = await window.lib.connect(url);
      ws.send('last words');                 // not awaited
      ws.send(new Uint8Array(70000));        // not awaited, larger than the high-water mark
      await ws.close(1000, 'bye');
      return 'closed ' + ws.closeCode;
    })(${JSON.stringify(lastWordsServer.url)})`, 25_000);
    await withTimeout(done, 10_000, 'the server to see the close');
    assert.equal(sent, 'closed 1000');
    assert.deepEqual(received, [{ type: 'string', length: 10 }, { type: 'object', length: 70_000 }], 'both messages arrived, in order, before the close');
    assert.equal(closeCode, 1000);
    assert.deepEqual(cdp.pageExceptions(), [], 'uncaught exceptions in the page');
  } finally {
    await lastWordsServer.close();
  }
});

test('pair() in Chromium: the protocol in memory, no server, and ws.readable/ws.writable piped; compression says it needs Node', { skip: needsChromium, timeout: 120_000 }, async () => {
  const { cdp, sessionId } = await page();
  const result = await cdp.evaluate<Record<string, unknown>>(sessionId, `(async () => {
    const [client, server] = window.lib.pair({ protocol: 'in-page' });
    const echoed = (async () => { for await (const message of server) await server.send(message); })();
    await client.send('hello');
    const text = await client.receive();
    await client.send(new Uint8Array([1, 2, 3]));
    const bytes = Array.from(await client.receive());
    const rtt = await client.ping();
    await client.close(1000, 'bye');
    await echoed;
    let compression = 'no error';
    try { window.lib.pair({ compression: true }); } catch (error) { compression = error.name + ': ' + error.message; }
    // WHATWG streams, the browser's own: an upper-casing echo piped through a TransformStream.
    const [a, b] = window.lib.pair();
    const piped = b.readable.pipeThrough(new TransformStream({ transform: (m, c) => c.enqueue(String(m).toUpperCase()) })).pipeTo(b.writable);
    const writer = a.writable.getWriter();
    await writer.write('up');
    const streamed = (await a.readable.getReader().read()).value;
    await writer.close();
    await piped;
    return { text, bytes, rtt: typeof rtt, protocol: server.protocol, closed: await server.closed, compression, streamed, streamClose: b.closeCode };
  })()`, 25_000);
  assert.deepEqual(result, {
    text: 'hello',
    bytes: [1, 2, 3],
    rtt: 'number',
    protocol: 'in-page',
    closed: { code: 1000, reason: 'bye' },
    compression: 'TypeError: compression in pair() needs Node.js (zlib)',
    streamed: 'UP',
    streamClose: 1000,
  });
  assert.deepEqual(cdp.pageExceptions(), [], 'uncaught exceptions in the page');
});

test('the DevTools connection itself: our client against Chromium\'s server', { skip: needsChromium, timeout: 120_000 }, async () => {
  const { cdp: devtools, sessionId } = await page();
  assert.equal(devtools.ws.protocol, '');
  assert.equal(devtools.ws.response?.status, 101);
  const version = await devtools.call('Browser.getVersion');
  assert.match(String(version['product']), /Chrome\//);
  // A large TEXT reply: Runtime.evaluate returning 4 MiB (fragmented or not, it is one message).
  const big = await devtools.evaluate<string>(sessionId, `'x'.repeat(4 * 1024 * 1024)`);
  assert.equal(big.length, 4 * 1024 * 1024);
  // Many calls in flight at once: answers matched by id.
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => devtools.evaluate<number>(sessionId, `${i} * 2`)));
  assert.deepEqual(answers, Array.from({ length: 50 }, (_, i) => i * 2));
  // Does Chromium's DevTools server answer pings? (Our keepalive relies on it.)
  const rtt = await withTimeout(devtools.ws.ping(), 5_000, 'ping to the DevTools server');
  assert.ok(rtt >= 0);
});
