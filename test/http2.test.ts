// WebSockets over HTTP/2 (RFC 8441): our client and server on node:http2, many WebSockets on
// one connection, the fallback to HTTP/1.1, per-stream limits and errors, flow control as
// backpressure, and the shared client scenarios run again over h2. A self-signed certificate
// is made at run time.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createSecureServer, constants as h2 } from 'node:http2';
import type { Http2SecureServer, Http2Session, ServerHttp2Stream } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { connect, isUpgrade, listen, upgrade, upgradeStream, WebSocketError } from '../websockets.ts';
import type { ClientOptions, Server, ServerOptions, WebSocket } from '../websockets.ts';
import { DIE_REQUEST, PROTOCOL, runAbnormalClose, runClientScenario, runEdgeScenario, scenarioHandler } from './shared-client.ts';
import { assertAbnormal, assertEdge, assertScenario } from './scenario-checks.ts';
import { execFile } from 'node:child_process';
import { PYTHON_H2, peerMissing } from './peers.ts';
import { connectFailure, sleep, startChild, temporaryCertificate, WireOp, wireFrame, within } from './support.ts';

const T = { timeout: 30_000 };
const pem = temporaryCertificate('websockets-http2-');

/** Client options for our certificate, over HTTP/2. */
const h2Client = (extra: ClientOptions = {}): ClientOptions => ({ http2: true, tls: { ca: pem.cert }, ...extra });

async function echo(ws: WebSocket): Promise<void> {
  for await (const message of ws) await ws.send(message);
}

/** `listen` with HTTP/2 on, recording which HTTP version carried each handshake. */
async function listenH2(handler: (ws: WebSocket) => unknown, options: ServerOptions = {}): Promise<{ server: Server; versions: string[]; url: string }> {
  const versions: string[] = [];
  const server = await listen('127.0.0.1', 0, (ws) => {
    versions.push(ws.request.httpVersion);
    return handler(ws);
  }, { tls: { key: pem.key, cert: pem.cert }, http2: true, ...options });
  return { server, versions, url: server.url.replace('127.0.0.1', 'localhost') };
}

/** A node:http2 server of the test's own, counting its connections (sessions) and TLS sockets. */
interface PlainH2 {
  server: Http2SecureServer;
  url: string;
  sessions: Http2Session[];
  sockets: TLSSocket[];
  close(): Promise<void>;
}

async function plainH2(settings: { enableConnectProtocol: boolean }, onStream: (stream: ServerHttp2Stream, headers: Record<string, string | string[] | undefined>) => void): Promise<PlainH2> {
  const server = createSecureServer({ key: pem.key, cert: pem.cert, allowHTTP1: true, settings });
  const sessions: Http2Session[] = [];
  const sockets: TLSSocket[] = [];
  server.on('session', (session) => sessions.push(session));
  server.on('secureConnection', (socket: TLSSocket) => sockets.push(socket));
  server.on('stream', onStream);
  server.on('upgrade', (request, socket, head) => upgrade(request, socket, head, echo));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `wss://localhost:${port}`,
    sessions,
    sockets,
    close: async () => {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('our client and server over HTTP/2', () => {
  let scenario: { server: Server; versions: string[]; url: string };
  before(async () => {
    scenario = await listenH2(scenarioHandler, { protocols: [PROTOCOL] });
  });
  after(() => scenario?.server.close());

  test('the shared client scenario, every step, over h2 streams', { timeout: 90_000 }, async () => {
    const result = await runClientScenario(scenario.url, { connect: (url) => connect(url, h2Client()) });
    assertScenario(result, { ownClient: true });
    assert.ok(scenario.versions.length > 0 && scenario.versions.every((version) => version === '2'), `HTTP versions seen by the server: ${scenario.versions.join(', ')}`);
  });

  test('the shared edge cases over h2 streams', T, async () => {
    const before = scenario.versions.length;
    const result = await runEdgeScenario(scenario.url, { connect: (url) => connect(url, h2Client({ protocols: ['chat.v1', PROTOCOL] })) });
    assertEdge(result, { open: false });
    assert.deepEqual(scenario.versions.slice(before), ['2', '2']);
  });

  test('with http2 off, the same server takes the RFC 6455 upgrade over HTTP/1.1', T, async () => {
    const ws = await connect(scenario.url, { tls: { ca: pem.cert } });
    try {
      assert.equal(ws.response?.httpVersion, '1.1');
      assert.equal(ws.request.method, 'GET');
      await ws.send('h1');
      assert.equal(await ws.receive(), 'h1');
      assert.equal(scenario.versions.at(-1), '1.1');
    } finally {
      await ws.close();
    }
  });

  test('request and response describe the extended CONNECT; subprotocol and permessage-deflate work over h2', T, async () => {
    let seen: WebSocket['request'] | undefined;
    const { server, url } = await listenH2(async (ws) => {
      seen = ws.request;
      await echo(ws);
    }, { protocols: ['b'], compression: true });
    try {
      const ws = await connect(`${url}/room/7?x=1`, h2Client({ protocols: ['a', 'b'], compression: true, headers: { 'X-Trace': 't1', Host: 'example.test' } }));
      assert.equal(ws.protocol, 'b');
      assert.match(ws.extensions, /^permessage-deflate/);
      assert.equal(ws.response?.status, 200);
      assert.equal(ws.response?.httpVersion, '2');
      assert.equal(ws.request.method, 'CONNECT');
      const text = 'compressible '.repeat(100_000);
      await ws.send(text);
      assert.equal(await ws.receive(), text);
      assert.ok(ws.stats.bytesIn < text.length / 10, `compressed on the wire: ${ws.stats.bytesIn} bytes`);
      await ws.close();
      assert.ok(seen);
      assert.equal(seen.method, 'CONNECT');
      assert.equal(seen.url, '/room/7?x=1');
      assert.equal(seen.httpVersion, '2');
      assert.equal(seen.headers[':protocol'], 'websocket');
      assert.equal(seen.headers[':scheme'], 'https');
      assert.equal(seen.headers[':authority'], 'example.test', 'a Host header becomes :authority');
      assert.equal(seen.headers['host'], 'example.test', 'host mirrors :authority');
      assert.equal(seen.headers['x-trace'], 't1');
      assert.equal(seen.headers['sec-websocket-key'], undefined, 'RFC 8441 §5: no key');
    } finally {
      await server.close();
    }
  });

  test('a refusal answers on its stream with status and headers; the connection goes on', T, async () => {
    const { server, url } = await listenH2(echo, {
      verify: (request) => request.url !== '/private' || { status: 401, headers: { 'WWW-Authenticate': 'Basic realm="x"' }, body: 'who are you?' },
    });
    try {
      const open = await connect(`${url}/public`, h2Client());
      const error = await connectFailure(connect(`${url}/private`, h2Client()));
      assert.equal(error.status, 401);
      assert.equal(error.headers?.['www-authenticate'], 'Basic realm="x"');
      assert.match(error.message, /HTTP 401/);
      await open.send('still here');
      assert.equal(await open.receive(), 'still here');
      await open.close();
    } finally {
      await server.close();
    }
  });

  test('redirects over h2 are followed when asked, and refused by default', T, async () => {
    const { server, url } = await listenH2(echo, {
      verify: (request) => request.url !== '/old' || { status: 308, headers: { Location: '/new' } },
    });
    try {
      const refused = await connectFailure(connect(`${url}/old`, h2Client()));
      assert.equal(refused.status, 308);
      const ws = await connect(`${url}/old`, h2Client({ followRedirects: true }));
      assert.equal(ws.url, `${url}/new`);
      assert.equal(ws.response?.httpVersion, '2');
      await ws.close();
    } finally {
      await server.close();
    }
  });

  test('each stream has its own limits: a message too big closes that WebSocket only (1009)', T, async () => {
    const { server, url } = await listenH2(echo, { maxMessageSize: 1_000 });
    try {
      const [a, b] = await Promise.all([connect(url, h2Client()), connect(url, h2Client())]);
      await a.send(new Uint8Array(5_000));
      await assert.rejects(a.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1009);
      await b.send('sibling');
      assert.equal(await b.receive(), 'sibling');
      await b.close();
    } finally {
      await server.close();
    }
  });

  test('Server.close() closes every WebSocket of every connection with 1001, then the connections', T, async () => {
    const { server, url } = await listenH2(echo);
    const sockets = await Promise.all([1, 2, 3].map(() => connect(url, h2Client())));
    const closing = server.close();
    const codes = await Promise.all(sockets.map(async (ws) => (await ws.closed).code));
    assert.deepEqual(codes, [1001, 1001, 1001]);
    assert.notEqual(await within(closing, 5_000), null, 'Server.close() resolved');
  });

  test('Server.close() is bounded by closeTimeout whatever is left: a TLS connection that never sends a request', T, async () => {
    const { server } = await listenH2(echo, { closeTimeout: 300 });
    const silent = tlsConnect({ host: '127.0.0.1', port: Number(new URL(server.url).port), ALPNProtocols: ['http/1.1'], rejectUnauthorized: false });
    silent.on('error', () => {});
    await once(silent, 'secureConnect');
    const started = Date.now();
    assert.notEqual(await within(server.close(), 5_000), null, 'Server.close() resolved');
    assert.ok(Date.now() - started < 2_000, `after ${Date.now() - started} ms`);
    silent.destroy();
  });

  test('the header limits of HTTP/1.1 hold over h2: maxHeaders above 128 is honoured', T, async () => {
    const { server, url } = await listenH2(echo, { maxHeaders: 200 });
    try {
      const headers = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`x-h${i}`, 'v']));
      const ws = await connect(url, h2Client({ headers }));
      assert.equal(ws.response?.httpVersion, '2');
      await ws.close();
    } finally {
      await server.close();
    }
  });

  test('h2 flow control is the backpressure: send() waits while the peer does not read, nothing is lost', T, async (t) => {
    const MESSAGE = 64 * 1024;
    const COUNT = 400;
    let sent = 0;
    const { server, url } = await listenH2(async (ws) => {
      for (let i = 0; i < COUNT; i++) {
        const message = new Uint8Array(MESSAGE).fill(i % 251);
        await ws.send(message);
        sent = i + 1;
      }
      await ws.receive().catch(() => undefined);
    });
    try {
      const ws = await connect(url, h2Client({ maxQueuedMessages: 4 }));
      await sleep(1_000);
      const stalled = sent;
      await sleep(500);
      assert.equal(sent, stalled, 'the sender stopped while nobody read');
      t.diagnostic(`the sender got ${stalled} of ${COUNT} messages of 64 KiB out without a reader`);
      assert.ok(stalled < COUNT / 2, `the sender got ${stalled} of ${COUNT} messages out without a reader`);
      for (let i = 0; i < COUNT; i++) {
        const message = (await ws.receive()) as Uint8Array;
        assert.equal(message.length, MESSAGE);
        assert.equal(message[MESSAGE - 1], i % 251, `message ${i} in order`);
      }
      assert.equal(sent, COUNT);
      await ws.close();
    } finally {
      await server.close();
    }
  });
});

describe('HTTP/2 connections on the client', () => {
  test('WebSockets to one origin share one connection, opened concurrently or one after another', T, async () => {
    const peer = await plainH2({ enableConnectProtocol: true }, (stream, headers) => {
      if (isUpgrade({ headers })) upgradeStream(stream, headers, echo);
    });
    try {
      const together = await Promise.all(Array.from({ length: 8 }, () => connect(peer.url, h2Client())));
      const later = await connect(peer.url, h2Client());
      for (const [i, ws] of [...together, later].entries()) {
        await ws.send(`n${i}`);
        assert.equal(await ws.receive(), `n${i}`);
        assert.equal(ws.response?.httpVersion, '2');
      }
      assert.equal(peer.sessions.length, 1, 'one HTTP/2 connection for nine WebSockets');
      await Promise.all([...together, later].map((ws) => ws.close()));
      // After its last WebSocket, the connection closes by itself (an idle delay of a second).
      const closed = await within(once(peer.sessions[0] as Http2Session, 'close'), 5_000);
      assert.notEqual(closed, null, 'the idle connection was closed');
    } finally {
      await peer.close();
    }
  });

  test('an RST_STREAM(CANCEL) from the server ends that WebSocket with 1006, its siblings go on', T, async () => {
    const peer = await plainH2({ enableConnectProtocol: true }, (stream, headers) => {
      upgradeStream(stream, headers, async (ws) => {
        for await (const message of ws) {
          if (message === DIE_REQUEST) stream.close(h2.NGHTTP2_CANCEL);
          else await ws.send(message);
        }
      }, { onError: () => {} });
    });
    try {
      const sibling = await connect(peer.url, h2Client());
      assertAbnormal(await runAbnormalClose(peer.url, { connect: (url) => connect(url, h2Client()) }));
      await sibling.send('alive');
      assert.equal(await sibling.receive(), 'alive');
      assert.equal(peer.sessions.length, 1);
      await sibling.close();
    } finally {
      await peer.close();
    }
  });

  test('falls back to HTTP/1.1: a server without extended CONNECT, a server that picks http/1.1 by ALPN, and ws:', T, async () => {
    const noConnect = await plainH2({ enableConnectProtocol: false }, (stream) => stream.respond({ ':status': 404 }, { endStream: true }));
    const https = createHttpsServer({ key: pem.key, cert: pem.cert });
    const httpsSockets: TLSSocket[] = [];
    https.on('secureConnection', (socket: TLSSocket) => httpsSockets.push(socket));
    https.on('upgrade', (request, socket, head) => upgrade(request, socket, head, echo));
    https.listen(0, '127.0.0.1');
    await once(https, 'listening');
    const plain = await listen('127.0.0.1', 0, echo);
    try {
      const a = await connect(noConnect.url, h2Client());
      assert.equal(a.response?.httpVersion, '1.1');
      assert.equal(noConnect.sessions.length, 1, 'the h2 connection was tried');
      assert.equal(noConnect.sockets.length, 2, 'then a connection of its own for HTTP/1.1');
      const b = await connect(`wss://localhost:${(https.address() as AddressInfo).port}`, h2Client());
      assert.equal(b.response?.httpVersion, '1.1');
      assert.equal(httpsSockets.length, 1, 'ALPN chose HTTP/1.1: that same connection carries the upgrade');
      const c = await connect(plain.url, h2Client());
      assert.equal(c.response?.httpVersion, '1.1');
      for (const ws of [a, b, c]) {
        await ws.send('h1');
        assert.equal(await ws.receive(), 'h1');
        await ws.close();
      }
    } finally {
      await Promise.all([noConnect.close(), plain.close(), new Promise((resolve) => {
        for (const socket of httpsSockets) socket.destroy();
        https.close(resolve);
      })]);
    }
  });

  test("concurrent connects never count the same place under the server's stream limit: past it, new connections", T, async () => {
    const { server, url } = await listenH2(echo, { maxConcurrentStreams: 2 });
    try {
      const sockets = await Promise.all(Array.from({ length: 5 }, () => connect(url, h2Client({ handshakeTimeout: 5_000 }))));
      for (const ws of sockets) assert.equal(ws.response?.httpVersion, '2');
      const ports = new Set(sockets.map((ws) => ws.request.headers[':authority']));
      assert.equal(ports.size, 1);
      await Promise.all(sockets.map(async (ws, i) => {
        await ws.send(`s${i}`);
        assert.equal(await ws.receive(), `s${i}`);
        await ws.close();
      }));
    } finally {
      await server.close();
    }
  });

  test("the URL's credentials go as Authorization but are not shown in ws.request, as over HTTP/1.1", T, async () => {
    let seen = '';
    const { server, url } = await listenH2(async (ws) => {
      seen = ws.request.headers['authorization'] ?? '';
      await echo(ws);
    });
    try {
      const ws = await connect(url.replace('wss://', 'wss://alice:s3cret@'), h2Client());
      assert.equal(seen, `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
      assert.equal(ws.request.headers['authorization'], undefined);
      assert.doesNotMatch(JSON.stringify(ws.request) + ws.url, /s3cret/);
      await ws.close();
    } finally {
      await server.close();
    }
  });

  test('the handshake timeout covers a server that never answers the CONNECT', T, async () => {
    const peer = await plainH2({ enableConnectProtocol: true }, () => {});
    try {
      const started = Date.now();
      const error = await connectFailure(connect(peer.url, h2Client({ handshakeTimeout: 300 })));
      assert.match(error.message, /timed out/);
      assert.ok(Date.now() - started < 3_000);
    } finally {
      await peer.close();
    }
  });

  test('an HTTP/2 connection never keeps the process alive after its WebSockets, nor after a refusal', T, async () => {
    const { server, url } = await listenH2(echo, { verify: (request) => request.url !== '/refused' });
    try {
      const child = startChild([process.execPath, '--input-type=module', '-e', `
        import { connect } from ${JSON.stringify(new URL('../../dist/websockets.js', import.meta.url).href)};
        const options = { http2: true, tls: { ca: ${JSON.stringify(pem.cert)} } };
        const ws = await connect(${JSON.stringify(url)}, options);
        await ws.send('bye'); console.log('GOT', await ws.receive(), ws.response.httpVersion); await ws.close();
        // A refused handshake (its stream has a body nobody reads) holds nothing either.
        await connect(${JSON.stringify(`${url}/refused`)}, options).catch((error) => console.log('REFUSED', error.status));
        console.log('CLOSED');
      `], process.cwd());
      const started = Date.now();
      assert.equal(await within(child.exit, 10_000), 0, child.output());
      assert.match(child.output(), /GOT bye 2/);
      assert.match(child.output(), /REFUSED 403/);
      assert.ok(Date.now() - started < 8_000, `exited after ${Date.now() - started} ms`);
    } finally {
      await server.close();
    }
  });
});

describe('node:http2 servers of the application', () => {
  test('upgradeStream() on the core API: refuses what is not a WebSocket on its stream, serves the rest', T, async () => {
    const peer = await plainH2({ enableConnectProtocol: true }, (stream, headers) => upgradeStream(stream, headers, echo, { protocols: ['p'] }));
    try {
      const ws = await connect(peer.url, h2Client({ protocols: ['p'] }));
      assert.equal(ws.protocol, 'p');
      await ws.send('core');
      assert.equal(await ws.receive(), 'core');
      await ws.close();
    } finally {
      await peer.close();
    }
  });

  test("upgradeStream() on the compat API's 'connect' event, beside plain requests", T, async () => {
    const server = createSecureServer({ key: pem.key, cert: pem.cert, allowHTTP1: true, settings: { enableConnectProtocol: true } }, (_request, response) => response.end('page'));
    server.on('connect', (request, response) => {
      if (isUpgrade(request)) upgradeStream(response.stream, request.headers, echo);
      else response.writeHead(405).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const ws = await connect(`wss://localhost:${(server.address() as AddressInfo).port}`, h2Client());
      assert.equal(ws.response?.httpVersion, '2');
      await ws.send('compat');
      assert.equal(await ws.receive(), 'compat');
      await ws.close();
    } finally {
      server.close();
    }
  });
});

// ── hostile HTTP/2 peers: test/h2peer.py (python3-h2) sends what no decent client would ──────

/** One event test/h2peer.py printed. */
interface PeerEvent {
  event: string;
  stream?: number;
  code?: number;
  length?: number;
  hex?: string;
  headers?: [string, string][];
  values?: Record<string, number>;
}

type Step = Record<string, unknown>;

/** Runs test/h2peer.py against 127.0.0.1:`port` over TLS with `steps`; resolves with its events. */
function h2peer(port: number, steps: Step[], seconds = 20): Promise<PeerEvent[]> {
  const script = new URL('../../test/h2peer.py', import.meta.url).pathname;
  return new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/python3', [script, '127.0.0.1', String(port), '--tls', '--timeout', String(seconds)], { timeout: (seconds + 10) * 1000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`h2peer failed: ${error.message}\n${stderr}`));
      resolve(stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as PeerEvent));
    });
    child.stdin?.end(JSON.stringify(steps));
  });
}

const CONNECT_HEADERS: [string, string][] = [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'https'], [':path', '/'], [':authority', 'localhost'], ['sec-websocket-version', '13']];

const without = (name: string): [string, string][] => CONNECT_HEADERS.filter(([header]) => header !== name);
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const maskedText = (text: string): string => hex(wireFrame(WireOp.TEXT, text, { mask: true }));

/** The steps of a good WebSocket on `stream` that sends `text` and waits for its echo. */
const goodWebSocket = (stream: number, text: string): Step[] => [
  { op: 'request', stream, headers: CONNECT_HEADERS },
  { op: 'wait', event: 'response', stream, timeout: 5 },
  { op: 'data', stream, hex: maskedText(text) },
  { op: 'wait', event: 'data', stream, timeout: 5 },
];

const status = (events: PeerEvent[], stream: number): string | undefined =>
  events.find((e) => e.event === 'response' && e.stream === stream)?.headers?.find(([name]) => name === ':status')?.[1];
const dataOn = (events: PeerEvent[], stream: number): string =>
  events.filter((e) => e.event === 'data' && e.stream === stream).map((e) => e.hex ?? '').join('');
const resetOn = (events: PeerEvent[], stream: number): number | undefined => events.find((e) => e.event === 'reset' && e.stream === stream)?.code;
/** The server's echo of `text`: an unmasked TEXT frame. */
const echoOf = (text: string): string => hex(wireFrame(WireOp.TEXT, text));

describe('hostile HTTP/2 input, each answered on its stream while the connection goes on', { skip: peerMissing(PYTHON_H2) }, () => {
  let target: { server: Server; versions: string[]; url: string };
  let port: number;
  before(async () => {
    target = await listenH2(echo, { onError: () => {} });
    port = Number(new URL(target.server.url).port);
  });
  after(() => target?.server.close());

  // What nghttp2 itself finds malformed (RFC 9113 §8.1.1) it resets before node:http2 sees it.
  const refusals: [string, [string, string][], 'response' | 'reset', (events: PeerEvent[]) => void][] = [
    ['a plain CONNECT (no :protocol): 405', [[':method', 'CONNECT'], [':authority', 'localhost:1']], 'response', (e) => assert.equal(status(e, 1), '405')],
    ['no sec-websocket-version: 13: 426', without('sec-websocket-version'), 'response', (e) => assert.equal(status(e, 1), '426')],
    ['a :protocol other than websocket: 501', CONNECT_HEADERS.map(([n, v]) => [n, n === ':protocol' ? 'chat' : v]), 'response', (e) => assert.equal(status(e, 1), '501')],
    ['a GET, a plain request: 426', [[':method', 'GET'], [':scheme', 'https'], [':path', '/'], [':authority', 'localhost']], 'response', (e) => assert.equal(status(e, 1), '426')],
    ['101 headers over the limit: 431', [...CONNECT_HEADERS, ...Array.from({ length: 101 }, (_, i): [string, string] => [`x-h${i}`, 'v'])], 'response', (e) => assert.equal(status(e, 1), '431')],
    ['no :path: reset', without(':path'), 'reset', (e) => assert.equal(resetOn(e, 1), h2.NGHTTP2_PROTOCOL_ERROR)],
    ['no :scheme: reset', without(':scheme'), 'reset', (e) => assert.equal(resetOn(e, 1), h2.NGHTTP2_PROTOCOL_ERROR)],
    ['no :authority: reset', without(':authority'), 'reset', (e) => assert.equal(resetOn(e, 1), h2.NGHTTP2_PROTOCOL_ERROR)],
  ];
  for (const [name, headers, answer, check] of refusals) {
    test(`refused: ${name}; the next stream is a WebSocket`, T, async () => {
      const events = await h2peer(port, [
        { op: 'request', stream: 1, headers },
        { op: 'wait', event: answer, stream: 1, timeout: 3 },
        ...goodWebSocket(3, 'after'),
        { op: 'close' },
      ]);
      check(events);
      assert.equal(status(events, 3), '200', JSON.stringify(events));
      assert.ok(dataOn(events, 3).startsWith(echoOf('after')), `echo on stream 3: ${JSON.stringify(events)}`);
    });
  }

  test(':protocol to a server that did not enable extended CONNECT: a reset, and its connection still serves', T, async () => {
    const peer = await plainH2({ enableConnectProtocol: false }, (stream) => stream.respond({ ':status': 204 }, { endStream: true }));
    try {
      const events = await h2peer(Number(new URL(peer.url).port), [
        { op: 'request', stream: 1, headers: CONNECT_HEADERS },
        { op: 'wait', event: 'reset', stream: 1, timeout: 3 },
        { op: 'request', stream: 3, headers: [[':method', 'GET'], [':scheme', 'https'], [':path', '/'], [':authority', 'localhost']], end_stream: true },
        { op: 'wait', event: 'response', stream: 3, timeout: 3 },
        { op: 'close' },
      ]);
      assert.notEqual(resetOn(events, 1), undefined, JSON.stringify(events));
      assert.equal(status(events, 3), '204');
    } finally {
      await peer.close();
    }
  });

  test('DATA before the answer: frames of an accepted WebSocket are read after it, a refused one is never read', T, async () => {
    const slow = await listenH2(echo, {
      verify: async (request) => {
        await sleep(200);
        return request.url !== '/refused';
      },
    });
    try {
      const events = await h2peer(Number(new URL(slow.server.url).port), [
        { op: 'request', stream: 1, headers: CONNECT_HEADERS },
        { op: 'data', stream: 1, hex: maskedText('early') },
        { op: 'request', stream: 3, headers: CONNECT_HEADERS.map(([n, v]) => [n, n === ':path' ? '/refused' : v]) },
        { op: 'data', stream: 3, hex: maskedText('never') },
        { op: 'wait', event: 'data', stream: 1, timeout: 5 },
        { op: 'wait', event: 'response', stream: 3, timeout: 5 },
        { op: 'sleep', seconds: 0.3 },
        { op: 'close' },
      ]);
      assert.equal(status(events, 1), '200');
      assert.ok(dataOn(events, 1).startsWith(echoOf('early')), JSON.stringify(events));
      assert.equal(status(events, 3), '403');
      assert.ok(!dataOn(events, 3).includes(echoOf('never')), 'the refused stream was not read as frames');
    } finally {
      await slow.server.close();
    }
  });

  test('a protocol error on one stream closes that WebSocket (1002), not its siblings nor the connection', T, async () => {
    const events = await h2peer(port, [
      { op: 'request', stream: 1, headers: CONNECT_HEADERS },
      { op: 'request', stream: 3, headers: CONNECT_HEADERS },
      { op: 'wait', event: 'response', stream: 1, timeout: 5 },
      { op: 'wait', event: 'response', stream: 3, timeout: 5 },
      { op: 'data', stream: 1, hex: hex(wireFrame(WireOp.TEXT, 'unmasked')) }, // RFC 6455 §5.1: a client masks
      { op: 'wait', event: 'end', stream: 1, timeout: 5 },
      { op: 'data', stream: 3, hex: maskedText('sibling') },
      { op: 'wait', event: 'data', stream: 3, timeout: 5 },
      { op: 'close' },
    ]);
    assert.match(dataOn(events, 1), /^88[0-7][0-9a-f]03ea/, 'a close frame with 1002 on stream 1');
    assert.ok(dataOn(events, 3).startsWith(echoOf('sibling')), JSON.stringify(events));
  });

  test('a close frame that comes with END_STREAM is answered (RFC 6455 §5.5.1) before the server ends its side', T, async () => {
    const events = await h2peer(port, [
      { op: 'request', stream: 1, headers: CONNECT_HEADERS },
      { op: 'wait', event: 'response', stream: 1, timeout: 5 },
      { op: 'data', stream: 1, hex: hex(wireFrame(WireOp.CLOSE, new Uint8Array([0x03, 0xe8]), { mask: true })), end_stream: true },
      { op: 'wait', event: 'end', stream: 1, timeout: 5 },
      { op: 'close' },
    ]);
    assert.equal(dataOn(events, 1), '880203e8', JSON.stringify(events));
  });

  test('a connection left without WebSockets for handshakeTimeout is closed, also after an idle WebSocket', T, async () => {
    const quick = await listenH2(echo, { handshakeTimeout: 300 });
    try {
      const events = await h2peer(Number(new URL(quick.server.url).port), [
        { op: 'request', stream: 1, headers: CONNECT_HEADERS },
        { op: 'wait', event: 'response', stream: 1, timeout: 5 },
        { op: 'sleep', seconds: 0.7 }, // idle past the timeout, with a WebSocket open: kept
        { op: 'data', stream: 1, hex: hex(wireFrame(WireOp.CLOSE, new Uint8Array([0x03, 0xe8]), { mask: true })), end_stream: true },
        { op: 'wait', event: 'end', stream: 1, timeout: 5 },
        { op: 'wait', event: 'goaway', timeout: 3 }, // then, with none: closed
        { op: 'close' },
      ]);
      assert.ok(events.some((e) => e.event === 'goaway'), JSON.stringify(events));
    } finally {
      await quick.server.close();
    }
  });

  test('streams opened and reset in a loop: nothing is held, and the server goes on serving', { timeout: 60_000 }, async (t) => {
    const before = process.memoryUsage();
    const events = await h2peer(port, [
      { op: 'open_reset_loop', count: 3_000, headers: CONNECT_HEADERS, code: 8 },
      { op: 'sleep', seconds: 0.5 },
      { op: 'close' },
    ], 40);
    const after = process.memoryUsage();
    assert.ok(events.some((e) => e.event === 'reset_loop_done' || e.event === 'goaway'), JSON.stringify(events.slice(-5)));
    const grown = (after.heapUsed + after.external - before.heapUsed - before.external) / 2 ** 20;
    t.diagnostic(`heap + external grew by ${grown.toFixed(1)} MiB; the flood ended with ${JSON.stringify(events.filter((e) => e.event !== 'reset').slice(-3))}`);
    assert.ok(grown < 64, `heap + external grew by ${grown.toFixed(1)} MiB over 3,000 reset streams`);
    // Whatever the flood cost that connection, a new one is served.
    const ws = await connect(target.url, h2Client());
    await ws.send('after the flood');
    assert.equal(await ws.receive(), 'after the flood');
    await ws.close();
  });

  test('a peer that never opens its window: send() stops resolving, the sender holds a bounded amount', T, async (t) => {
    let resolved = 0;
    let buffered = 0;
    const stalled = await listenH2(async (ws) => {
      const message = new Uint8Array(64 * 1024);
      for (let i = 0; i < 200; i++) {
        await ws.send(message);
        resolved++;
        buffered = ws.bufferedAmount;
      }
    }, { onError: () => {} });
    try {
      const events = await h2peer(Number(new URL(stalled.server.url).port), [
        { op: 'window', initial: 0 },
        { op: 'request', stream: 1, headers: CONNECT_HEADERS },
        { op: 'wait', event: 'response', stream: 1, timeout: 5 },
        { op: 'sleep', seconds: 1.5 },
        { op: 'close' },
      ]);
      assert.equal(status(events, 1), '200');
      assert.equal(dataOn(events, 1), '', 'no DATA through a closed window');
      t.diagnostic(`send() resolved ${resolved} times, ${buffered} bytes buffered`);
      assert.ok(resolved < 200, `send() resolved ${resolved} times of 200 through a window that never opened`);
      assert.ok(buffered < 8 * 2 ** 20, `the sender holds ${buffered} bytes`);
    } finally {
      await stalled.server.close();
    }
  });
});
