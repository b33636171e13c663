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
import type { TLSSocket } from 'node:tls';
import { connect, isUpgrade, listen, upgrade, upgradeStream, WebSocketError } from '../websockets.ts';
import type { ClientOptions, Server, ServerOptions, WebSocket } from '../websockets.ts';
import { DIE_REQUEST, PROTOCOL, runAbnormalClose, runClientScenario, runEdgeScenario, scenarioHandler } from './shared-client.ts';
import { assertAbnormal, assertEdge, assertScenario } from './scenario-checks.ts';
import { connectFailure, sleep, startChild, temporaryCertificate, within } from './support.ts';

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

  test('h2 flow control is the backpressure: send() waits while the peer does not read, nothing is lost', T, async () => {
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

  test('an HTTP/2 connection never keeps the process alive after its WebSockets', T, async () => {
    const { server, url } = await listenH2(echo);
    try {
      const child = startChild([process.execPath, '--input-type=module', '-e', `
        import { connect } from ${JSON.stringify(new URL('../../dist/websockets.js', import.meta.url).href)};
        const ws = await connect(${JSON.stringify(url)}, { http2: true, tls: { ca: ${JSON.stringify(pem.cert)} } });
        await ws.send('bye'); console.log('GOT', await ws.receive(), ws.response.httpVersion); await ws.close();
        console.log('CLOSED');
      `], process.cwd());
      const started = Date.now();
      assert.equal(await within(child.exit, 10_000), 0, child.output());
      assert.match(child.output(), /GOT bye 2/);
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
