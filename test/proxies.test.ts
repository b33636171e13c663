// How the client reaches a server (the dialers): unix domain sockets (client and server, TLS and
// compression over them, stale and bad paths), HTTP CONNECT proxies (Debian's tinyproxy, with
// and without Basic authentication, and behind TLS as an https: proxy), SOCKS5 proxies (Debian's
// microsocks, with and without username/password, socks5: and socks5h:), proxies that refuse,
// fail or say nothing, the environment's proxy settings, and redirects. Everything on loopback;
// every proxy is started here on a free port and stopped after.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { pbkdf2 } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { connect, listen, WebSocketError } from '../websockets.ts';
import type { ClientOptions, Server, ServerOptions, WebSocket } from '../websockets.ts';
import { MICROSOCKS, TINYPROXY, peerMissing } from './peers.ts';
import { connectFailure, freePort, sleep, temporaryCertificate } from './support.ts';

const T = { timeout: 30_000 };
const pem = temporaryCertificate('websockets-proxies-');

/** An echo server that also tells what it saw of the request: Host, Proxy-Authorization, its URL. */
function echoServer(where: string, options: ServerOptions = {}): Promise<Server> {
  return listen(where, 0, async (ws) => {
    for await (const message of ws) {
      await ws.send(JSON.stringify({ message, host: ws.request.headers['host'], proxyAuthorization: ws.request.headers['proxy-authorization'] ?? null, url: ws.url }));
    }
  }, { pingInterval: 0, ...options });
}

/** Connects, sends one message, returns what the server saw, closes. */
async function roundTrip(url: string, options: ClientOptions): Promise<{ message: string; host: string; proxyAuthorization: string | null; url: string; ws: WebSocket }> {
  const ws = await connect(url, { pingInterval: 0, handshakeTimeout: 5_000, ...options });
  try {
    await ws.send('through');
    return { ...JSON.parse(await ws.receive() as string), ws };
  } finally {
    await ws.close();
  }
}

/** What a failed connect() rejected with: a WebSocketError, checked to carry none of the tests' secret. */
const failure = (promise: Promise<WebSocket>): Promise<WebSocketError> => connectFailure(promise, 's3cret');

/** A child process (a proxy) started for a test, ready once its port accepts connections. */
async function startProcess(command: string, args: string[], port: number): Promise<{ child: ChildProcess; output: () => string; stop(): Promise<void> }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`${command} exited: ${output}`);
    const up = await new Promise<boolean>((resolve) => net.connect(port, '127.0.0.1').on('connect', function (this: net.Socket) { this.destroy(); resolve(true); }).on('error', () => resolve(false)));
    if (up) return { child, output: () => output, stop };
    await sleep(50);
  }
  await stop();
  throw new Error(`${command} did not listen on ${port}: ${output}`);
}

/** tinyproxy on a free port, in the foreground, logging each CONNECT; `settings` are more config lines. */
async function tinyproxy(settings: string[] = []): Promise<{ url: string; port: number; log: () => string; stop(): Promise<void> }> {
  const port = await freePort();
  const config = join(pem.dir, `tinyproxy-${port}.conf`);
  await writeFile(config, [`Port ${port}`, 'Listen 127.0.0.1', 'Timeout 30', 'MaxClients 50', 'LogLevel Connect', 'Allow 127.0.0.1', 'DisableViaHeader Yes', ...settings].join('\n'));
  const proxy = await startProcess('tinyproxy', ['-d', '-c', config], port);
  return { url: `http://127.0.0.1:${port}`, port, log: proxy.output, stop: proxy.stop };
}

async function microsocks(credentials?: [string, string]): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const proxy = await startProcess('microsocks', ['-i', '127.0.0.1', '-p', String(port), ...(credentials ? ['-u', credentials[0], '-P', credentials[1]] : [])], port);
  return { port, stop: proxy.stop };
}

/** A TCP server on loopback: `onSocket` decides what each connection gets. */
async function tcpServer(onSocket: (socket: net.Socket) => void): Promise<{ port: number; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ── unix domain sockets ─────────────────────────────────────────────────────────────────────

describe('unix domain sockets', () => {
  test('listen("unix:…") and ws+unix: URLs, or socketPath with an ordinary URL: messages, compression, ws.url, Server.url', T, async () => {
    const path = join(pem.dir, 'app.sock');
    const server = await echoServer(`unix:${path}`, { compression: true });
    try {
      assert.equal(server.url, `ws+unix:${path}`);
      assert.equal(server.host, `unix:${path}`);
      assert.equal(server.port, 0);
      const viaUrl = await roundTrip(`ws+unix:${path}:/chat?room=1`, { compression: true });
      assert.deepEqual([viaUrl.message, viaUrl.host, viaUrl.url], ['through', 'localhost', '/chat?room=1']);
      assert.equal(viaUrl.ws.url, `ws+unix:${path}:/chat?room=1`);
      assert.match(viaUrl.ws.extensions, /^permessage-deflate/);
      const viaOption = await roundTrip('ws://app.internal/feed', { socketPath: path });
      assert.deepEqual([viaOption.host, viaOption.url, viaOption.ws.url], ['app.internal', '/feed', 'ws://app.internal/feed']);
      const bare = await roundTrip(`ws+unix:${path}`, {});
      assert.equal(bare.url, '/');
    } finally {
      await server.close();
    }
    assert.equal(existsSync(path), false, 'close() removes the socket file');
  });

  test('TLS over a unix socket: wss+unix:, the certificate checked for localhost', T, async () => {
    const path = join(pem.dir, 'tls.sock');
    const server = await echoServer(`unix:${path}`, { tls: { key: pem.key, cert: pem.cert } });
    try {
      assert.equal(server.url, `wss+unix:${path}`);
      const trip = await roundTrip(`wss+unix:${path}:/secure`, { tls: { ca: pem.cert } });
      assert.deepEqual([trip.message, trip.url], ['through', '/secure']);
      const untrusted = await failure(connect(`wss+unix:${path}:/`, { handshakeTimeout: 5_000 }));
      assert.match(untrusted.message, /self.signed|certificate/i);
    } finally {
      await server.close();
    }
  });

  test('a path that does not exist, or is not a socket: a clear 1006 at once', T, async () => {
    const missing = await failure(connect(`ws+unix:${join(pem.dir, 'nothing-here.sock')}:/`));
    assert.match(missing.message, /ENOENT/);
    const file = join(pem.dir, 'plain-file');
    writeFileSync(file, 'not a socket');
    const notSocket = await failure(connect('ws://x/', { socketPath: file }));
    assert.match(notSocket.message, /ECONNREFUSED|ENOTSOCK/);
    await assert.rejects(listen(`unix:${file}`, 0, () => {}), /exists and is not a socket/);
    assert.equal(readFileSync(file, 'utf8'), 'not a socket', 'a file that is not a socket is never removed');
  });

  test('a stale socket file (its server was killed) is replaced; a live one is EADDRINUSE', T, async () => {
    const path = join(pem.dir, 'stale.sock');
    // A process that listens on the path and dies without removing the file.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(existsSync(path), true, 'the killed server left its socket file');
    const server = await echoServer(`unix:${path}`);
    try {
      assert.equal((await roundTrip(`ws+unix:${path}:/`, {})).message, 'through');
      await assert.rejects(listen(`unix:${path}`, 0, () => {}), (error: NodeJS.ErrnoException) => error.code === 'EADDRINUSE');
      assert.equal((await roundTrip(`ws+unix:${path}:/`, {})).message, 'through', 'the live server was left alone');
    } finally {
      await server.close();
    }
  });
});

// ── HTTP CONNECT proxies ────────────────────────────────────────────────────────────────────

describe('through an HTTP CONNECT proxy (tinyproxy)', { skip: peerMissing(TINYPROXY) }, () => {
  let plain: Server;
  let secure: Server;
  before(async () => {
    plain = await echoServer('127.0.0.1');
    secure = await echoServer('127.0.0.1', { tls: { key: pem.key, cert: pem.cert } });
  });
  after(async () => {
    await plain?.close();
    await secure?.close();
  });

  test('ws:// and wss:// through it: the tunnel carries the handshake, TLS runs inside it', T, async () => {
    const proxy = await tinyproxy();
    try {
      const trip = await roundTrip(plain.url, { proxy: proxy.url });
      assert.equal(trip.message, 'through');
      const tlsTrip = await roundTrip(secure.url, { proxy: proxy.url, tls: { ca: pem.cert } });
      assert.equal(tlsTrip.message, 'through');
      assert.match(proxy.log(), new RegExp(`CONNECT 127\\.0\\.0\\.1:${plain.port} HTTP/1\\.1`));
      assert.match(proxy.log(), new RegExp(`CONNECT 127\\.0\\.0\\.1:${secure.port} HTTP/1\\.1`));
    } finally {
      await proxy.stop();
    }
  });

  test('Basic authentication: the right credentials pass; wrong or none are a 407 from the proxy, with Proxy-Authenticate', T, async () => {
    const proxy = await tinyproxy(['BasicAuth alice s3cret']);
    try {
      const trip = await roundTrip(plain.url, { proxy: `http://alice:s3cret@127.0.0.1:${proxy.port}` });
      assert.equal(trip.message, 'through');
      assert.equal(trip.proxyAuthorization, null, 'the server never sees the proxy credentials');
      assert.equal(trip.ws.request.headers['proxy-authorization'], undefined, 'nor does ws.request hold them');
      // No credentials: 407 with Proxy-Authenticate. Wrong ones: tinyproxy answers 401 (with
      // WWW-Authenticate) where RFC 9110 §15.5.8 has 407; the error carries what the proxy said.
      const none = await failure(connect(plain.url, { proxy: proxy.url, handshakeTimeout: 5_000 }));
      assert.equal(none.status, 407);
      assert.match(none.headers?.['proxy-authenticate'] ?? '', /^Basic/i);
      assert.match(none.message, new RegExp(`the proxy http://127\\.0\\.0\\.1:${proxy.port} refused the tunnel to 127\\.0\\.0\\.1:${plain.port}: HTTP 407 Proxy Authentication Required`));
      const wrong = await failure(connect(plain.url, { proxy: `http://alice:wrong-s3cret@127.0.0.1:${proxy.port}`, handshakeTimeout: 5_000 }));
      assert.ok(wrong.status === 401 || wrong.status === 407, `status ${wrong.status}`);
      assert.match(wrong.message, new RegExp(`the proxy http://127\\.0\\.0\\.1:${proxy.port} refused the tunnel .*: HTTP ${wrong.status}`));
    } finally {
      await proxy.stop();
    }
  });

  test('a refused CONNECT (a port the proxy does not allow) rejects with the proxy\'s 403', T, async () => {
    const proxy = await tinyproxy(['ConnectPort 443']);
    try {
      const refused = await failure(connect(plain.url, { proxy: proxy.url }));
      assert.equal(refused.status, 403);
      assert.match(refused.message, /the proxy .* refused the tunnel .*HTTP 403/);
    } finally {
      await proxy.stop();
    }
  });

  test('an https: proxy: TLS to the proxy (proxyTls), then the tunnel, then TLS to the server inside it', T, async () => {
    const proxy = await tinyproxy();
    // TLS in front of tinyproxy, as an https: proxy offers it.
    const open = new Set<net.Socket>();
    const front = tls.createServer({ key: pem.key, cert: pem.cert }, (client) => {
      const upstream = net.connect(proxy.port, '127.0.0.1');
      for (const socket of [client, upstream]) {
        open.add(socket);
        socket.on('close', () => open.delete(socket));
      }
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const frontUrl = `https://127.0.0.1:${(front.address() as net.AddressInfo).port}`;
    try {
      assert.equal((await roundTrip(secure.url, { proxy: frontUrl, proxyTls: { ca: pem.cert }, tls: { ca: pem.cert } })).message, 'through');
      assert.equal((await roundTrip(plain.url, { proxy: frontUrl, proxyTls: { ca: pem.cert } })).message, 'through');
      const untrusted = await failure(connect(plain.url, { proxy: frontUrl, handshakeTimeout: 5_000 }));
      assert.match(untrusted.message, /could not reach the proxy https:\/\/127\.0\.0\.1:\d+: .*(self.signed|certificate)/i);
    } finally {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => front.close(() => resolve()));
      await proxy.stop();
    }
  });
});

// ── SOCKS5 proxies ──────────────────────────────────────────────────────────────────────────

describe('through a SOCKS5 proxy (microsocks)', { skip: peerMissing(MICROSOCKS) }, () => {
  let plain: Server;
  let secure: Server;
  before(async () => {
    plain = await echoServer('127.0.0.1');
    // On "localhost": whichever address it resolves to first, as the name is resolved by us (socks5) or by the proxy (socks5h).
    secure = await echoServer('localhost', { tls: { key: pem.key, cert: pem.cert } });
  });
  after(async () => {
    await plain?.close();
    await secure?.close();
  });

  test('socks5: and socks5h:, ws:// and wss://; a name is resolved by us (socks5) or by the proxy (socks5h)', T, async () => {
    const proxy = await microsocks();
    try {
      for (const scheme of ['socks5', 'socks5h']) {
        const url = `${scheme}://127.0.0.1:${proxy.port}`;
        assert.equal((await roundTrip(plain.url, { proxy: url })).message, 'through', url);
        assert.equal((await roundTrip(`wss://localhost:${secure.port}`, { proxy: url, tls: { ca: pem.cert } })).message, 'through', `${url}, wss by name`);
      }
    } finally {
      await proxy.stop();
    }
  });

  test('username and password (RFC 1929): right ones pass; wrong ones and none are errors that say so', T, async () => {
    const proxy = await microsocks(['alice', 's3cret']);
    try {
      assert.equal((await roundTrip(plain.url, { proxy: `socks5://alice:s3cret@127.0.0.1:${proxy.port}` })).message, 'through');
      const wrong = await failure(connect(plain.url, { proxy: `socks5://alice:wrong-s3cret@127.0.0.1:${proxy.port}` }));
      assert.match(wrong.message, /the SOCKS5 proxy socks5:\/\/127\.0\.0\.1:\d+ refused the user name and password/);
      const none = await failure(connect(plain.url, { proxy: `socks5://127.0.0.1:${proxy.port}` }));
      assert.match(none.message, /requires authentication/);
    } finally {
      await proxy.stop();
    }
  });

  test('a target the proxy cannot reach: the reply code named (RFC 1928 §6)', T, async () => {
    const proxy = await microsocks();
    const closedPort = await freePort();
    try {
      const refused = await failure(connect(`ws://127.0.0.1:${closedPort}/`, { proxy: `socks5://127.0.0.1:${proxy.port}` }));
      assert.match(refused.message, new RegExp(`could not connect to 127\\.0\\.0\\.1:${closedPort}: (connection refused|general SOCKS server failure|host unreachable)`));
    } finally {
      await proxy.stop();
    }
  });
});

// ── proxies that fail ───────────────────────────────────────────────────────────────────────

describe('proxies that fail: unreachable, silent, not a proxy; bad proxy URLs', () => {
  test('an unreachable proxy is a 1006 that names it and carries the cause', T, async () => {
    const port = await freePort();
    for (const scheme of ['http', 'socks5']) {
      const error = await failure(connect('ws://127.0.0.1:9/', { proxy: `${scheme}://alice:s3cret@127.0.0.1:${port}` }));
      assert.match(error.message, new RegExp(`could not reach the proxy ${scheme}://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    }
  });

  test('a proxy that accepts and says nothing: the handshake timeout and the signal cover it, and its socket is closed', T, async () => {
    const silent = await tcpServer((socket) => socket.resume()); // reads, so that it sees the end
    try {
      for (const scheme of ['http', 'socks5']) {
        const started = performance.now();
        const timedOut = await failure(connect('ws://127.0.0.1:9/', { proxy: `${scheme}://127.0.0.1:${silent.port}`, handshakeTimeout: 300 }));
        assert.match(timedOut.message, /handshake timed out after 300 ms/);
        assert.ok(performance.now() - started < 2_000);
        const aborted = connect('ws://127.0.0.1:9/', { proxy: `${scheme}://127.0.0.1:${silent.port}`, signal: AbortSignal.timeout(200) });
        await assert.rejects(aborted, (error: Error) => error.name === 'TimeoutError');
      }
      const deadline = performance.now() + 2_000;
      while (silent.sockets.size > 0 && performance.now() < deadline) await sleep(20);
      assert.equal(silent.sockets.size, 0, 'every connection to the proxy was closed');
    } finally {
      await silent.close();
    }
  });

  test('something that is not a proxy: an HTTP answer that is not HTTP, a SOCKS answer that is not SOCKS5', T, async () => {
    const liar = await tcpServer((socket) => socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
    try {
      const http = await failure(connect('ws://127.0.0.1:9/', { proxy: `http://127.0.0.1:${liar.port}` }));
      assert.match(http.message, /refused the tunnel .*: not HTTP: "SSH-2\.0/);
      const socks = await failure(connect('ws://127.0.0.1:9/', { proxy: `socks5://127.0.0.1:${liar.port}` }));
      assert.match(socks.message, /is not a SOCKS5 server/);
    } finally {
      await liar.close();
    }
  });

  test('a bad proxy URL is a TypeError before any I/O, and does not show its credentials', async () => {
    await assert.rejects(connect('ws://127.0.0.1:9/', { proxy: 'ftp://alice:s3cret@127.0.0.1:21' }), (error: Error) => error instanceof TypeError && /http:, https:, socks5: or socks5h:/.test(error.message) && !error.message.includes('s3cret'));
    await assert.rejects(connect('ws://127.0.0.1:9/', { proxy: 'http://[not a url' }), (error: Error) => error instanceof TypeError && !error.message.includes('not a url'));
  });
});

// ── the environment's proxy settings ────────────────────────────────────────────────────────

describe("the environment's proxy settings", () => {
  // A "proxy" that records the CONNECT it was asked for and refuses it: it shows which proxy,
  // if any, a connection went to, with no DNS and no connection beyond loopback.
  let recorders: Array<{ port: number; asked: string[]; close(): Promise<void> }> = [];
  const names = ['http_proxy', 'https_proxy', 'all_proxy', 'no_proxy'];
  const saved: Record<string, string | undefined> = {};
  let server: Server;

  async function recorder(): Promise<{ port: number; asked: string[]; close(): Promise<void> }> {
    const asked: string[] = [];
    const tcp = await tcpServer((socket) => socket.once('data', (chunk) => {
      asked.push(String(chunk).split('\r\n')[0] ?? '');
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
    }));
    const made = { port: tcp.port, asked, close: tcp.close };
    recorders.push(made);
    return made;
  }

  function setEnvironment(values: Record<string, string>): void {
    for (const name of names) {
      delete process.env[name];
      delete process.env[name.toUpperCase()];
    }
    Object.assign(process.env, values);
  }

  /** Which proxy a connection to `url` went to: its recorder's port, or 'direct' if it reached our server. */
  async function route(url: string): Promise<string> {
    try {
      const ws = await connect(url, { handshakeTimeout: 3_000 });
      await ws.close();
      return 'direct';
    } catch (error) {
      const asked = recorders.find((made) => made.asked.length > 0);
      if (!asked) throw error;
      const line = asked.asked.splice(0).join(' ');
      return `${asked.port} ${line}`;
    }
  }

  before(async () => {
    for (const name of names) {
      saved[name] = process.env[name];
      saved[name.toUpperCase()] = process.env[name.toUpperCase()];
    }
    server = await echoServer('127.0.0.1');
  });
  after(async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await server?.close();
    await Promise.all(recorders.map((made) => made.close()));
    recorders = [];
  });

  test('http_proxy for ws:, https_proxy for wss:, then all_proxy; lower case before upper case; proxy: false turns it off', T, async () => {
    const [http, https, all, upper] = await Promise.all([recorder(), recorder(), recorder(), recorder()]);
    setEnvironment({ http_proxy: `http://127.0.0.1:${http.port}`, https_proxy: `127.0.0.1:${https.port}`, all_proxy: `http://127.0.0.1:${all.port}`, HTTP_PROXY: `http://127.0.0.1:${upper.port}` });
    assert.equal(await route('ws://ws.example:8080/'), `${http.port} CONNECT ws.example:8080 HTTP/1.1`);
    assert.equal(await route('wss://ws.example/'), `${https.port} CONNECT ws.example:443 HTTP/1.1`, 'a value without a scheme is http:');
    setEnvironment({ all_proxy: `http://127.0.0.1:${all.port}` });
    assert.equal(await route('ws://ws.example/'), `${all.port} CONNECT ws.example:80 HTTP/1.1`);
    setEnvironment({ HTTP_PROXY: `http://127.0.0.1:${upper.port}` });
    assert.equal(await route('ws://ws.example/'), `${upper.port} CONNECT ws.example:80 HTTP/1.1`);
    // Loopback is never proxied from the environment; the option overrides it both ways.
    setEnvironment({ http_proxy: `http://127.0.0.1:${http.port}` });
    assert.equal(await route(server.url), 'direct');
    assert.equal(await route(`ws://localhost:${server.port}/`), 'direct');
    await assert.rejects(connect(server.url, { proxy: `http://127.0.0.1:${http.port}` }), (error: WebSocketError) => error.status === 403);
    assert.equal(http.asked.splice(0).length, 1, 'an explicit proxy is used even for loopback');
    const direct = await connect(`ws://0.0.0.0:${server.port}/`, { proxy: false });
    await direct.close();
    assert.equal(http.asked.length, 0);
  });

  test('no_proxy: *, IP addresses, CIDR ranges and ports select what goes direct', T, async () => {
    const proxy = await recorder();
    const target = `ws://0.0.0.0:${server.port}/`; // this host, not a loopback address: the environment applies
    const via = `${proxy.port} CONNECT 0.0.0.0:${server.port} HTTP/1.1`;
    const cases: Array<[string, string]> = [
      ['', via],
      ['*', 'direct'],
      ['0.0.0.0', 'direct'],
      ['0.0.0.1', via],
      ['0.0.0.0/8', 'direct'],
      ['10.0.0.0/8, 0.0.0.0/32', 'direct'],
      ['1.0.0.0/8', via],
      [`0.0.0.0:${server.port}`, 'direct'],
      ['0.0.0.0:1', via],
      ['::/0', via],
      ['example.com,other.org 0.0.0.0', 'direct'],
    ];
    for (const [noProxy, expected] of cases) {
      setEnvironment({ http_proxy: `http://127.0.0.1:${proxy.port}`, no_proxy: noProxy });
      assert.equal(await route(target), expected, `no_proxy=${JSON.stringify(noProxy)}`);
    }
    setEnvironment({ HTTP_PROXY: `http://127.0.0.1:${proxy.port}`, NO_PROXY: '0.0.0.0' });
    assert.equal(await route(target), 'direct', 'NO_PROXY');
  });

  test('no_proxy host names: the name and its subdomains, a leading dot or *. alike, never a mere suffix', T, async () => {
    const proxy = await recorder();
    const hosts = await readFile('/etc/hosts', 'utf8').catch(() => '');
    // A name this machine's hosts file maps to a loopback address (not "localhost", which is never proxied).
    const local = hosts.split('\n').map((line) => line.replace(/#.*/, '').trim().split(/\s+/))
      .flatMap(([address, ...aliases]) => (address?.startsWith('127.') ? aliases : []))
      .find((name) => name && !/(^|\.)localhost$/i.test(name) && /^[a-z0-9.-]+$/i.test(name));
    const via = (host: string) => `${proxy.port} CONNECT ${host}:${server.port} HTTP/1.1`;
    setEnvironment({ http_proxy: `http://127.0.0.1:${proxy.port}`, no_proxy: 'example.com' });
    assert.equal(await route(`ws://notexample.com:${server.port}/`), via('notexample.com'), 'a suffix that is not a subdomain');
    assert.equal(await route(`ws://example.com.evil:${server.port}/`), via('example.com.evil'));
    if (!local) return assert.fail('no name in /etc/hosts maps to 127.x besides localhost: add one (e.g. the host name) to run this test');
    for (const entry of [local, `.${local}`, `*.${local}`, local.toUpperCase(), `${local}:${server.port}`]) {
      setEnvironment({ http_proxy: `http://127.0.0.1:${proxy.port}`, no_proxy: entry });
      assert.equal(await route(`ws://${local}:${server.port}/`), 'direct', `no_proxy=${entry}`);
    }
    setEnvironment({ http_proxy: `http://127.0.0.1:${proxy.port}`, no_proxy: `${local}:1` });
    assert.equal(await route(`ws://${local}:${server.port}/`), via(local));
  });
});

// ── redirects ───────────────────────────────────────────────────────────────────────────────

describe('redirects', () => {
  /** A server that answers every handshake with `status` and a Location computed from the request. */
  function redirector(status: number, location: (path: string) => string, seen: Array<Record<string, string>> = []): Promise<Server> {
    return listen('127.0.0.1', 0, () => {}, {
      verify: (request) => {
        seen.push(request.headers);
        return { status, headers: { Location: location(request.url) } };
      },
    });
  }

  test('301, 302, 303, 307 and 308 are followed when asked; ws.url is the final URL; off by default', T, async () => {
    const target = await echoServer('127.0.0.1');
    try {
      for (const status of [301, 302, 303, 307, 308]) {
        const hop = await redirector(status, (path) => `${target.url}/landed${path}`);
        try {
          const trip = await roundTrip(`${hop.url}/start?x=1`, { followRedirects: true });
          assert.equal(trip.url, '/landed/start?x=1', `HTTP ${status}`);
          assert.equal(trip.ws.url, `${target.url}/landed/start?x=1`);
          const refused = await failure(connect(`${hop.url}/start`));
          assert.equal(refused.status, status);
          assert.equal(refused.headers?.['location'], `${target.url}/landed/start`);
          assert.match(refused.message, /followRedirects is off/);
        } finally {
          await hop.close();
        }
      }
      // A relative Location, and http(s): as ws(s):.
      const relative = await redirector(302, () => `http://127.0.0.1:${target.port}/from-http`);
      try {
        assert.equal((await roundTrip(relative.url, { followRedirects: true })).url, '/from-http');
      } finally {
        await relative.close();
      }
    } finally {
      await target.close();
    }
  });

  test('a loop stops at maxRedirects with the chain in the error; maxRedirects: 0 follows none', T, async () => {
    let port = 0;
    const loop = await redirector(302, (path) => `ws://127.0.0.1:${port}${path === '/a' ? '/b' : '/a'}`);
    port = loop.port;
    try {
      const error = await failure(connect(`${loop.url}/a`, { followRedirects: true, maxRedirects: 3 }));
      assert.match(error.message, /too many redirects \(more than 3\)/);
      assert.ok(error.message.includes(`${loop.url}/a → ${loop.url}/b → ${loop.url}/a → ${loop.url}/b → ${loop.url}/a`), error.message);
      const none = await failure(connect(`${loop.url}/a`, { followRedirects: true, maxRedirects: 0 }));
      assert.match(none.message, /more than 0/);
    } finally {
      await loop.close();
    }
  });

  test('credentials stay in their origin: URL userinfo, Authorization and Cookie are dropped when the redirect leaves it', T, async () => {
    const seenThere: Array<Record<string, string>> = [];
    const seenHere: Array<Record<string, string>> = [];
    const there = await redirector(403 as number, () => '', seenThere); // records, then refuses
    const sameOrigin: { url: string } = { url: '' };
    const here = await listen('127.0.0.1', 0, () => {}, {
      verify: (request) => {
        seenHere.push(request.headers);
        return request.url === '/first'
          ? { status: 307, headers: { Location: `${sameOrigin.url}/second` } }
          : { status: 308, headers: { Location: `${there.url}/elsewhere` } };
      },
    });
    sameOrigin.url = here.url;
    try {
      const secretUrl = `ws://alice:s3cret@127.0.0.1:${here.port}/first`;
      const refused = await failure(connect(secretUrl, { followRedirects: true, headers: { Authorization: 'Bearer s3cret', Cookie: 'session=s3cret', 'X-Kept': 'yes' } }));
      assert.equal(refused.status, 403);
      assert.equal(seenHere.length, 2);
      for (const headers of seenHere) {
        assert.match(headers['authorization'] ?? '', /^Bearer s3cret$/, 'the same origin keeps the Authorization header');
        assert.equal(headers['cookie'], 'session=s3cret');
      }
      assert.equal(seenThere.length, 1);
      assert.equal(seenThere[0]?.['authorization'], undefined, 'another origin gets no Authorization');
      assert.equal(seenThere[0]?.['cookie'], undefined, 'nor the cookie');
      assert.equal(seenThere[0]?.['x-kept'], 'yes');
    } finally {
      await here.close();
      await there.close();
    }
  });

  test('wss: to ws: is refused; a Location that is no WebSocket URL is an error that says so', T, async () => {
    const secureHop = await listen('127.0.0.1', 0, () => {}, { tls: { key: pem.key, cert: pem.cert }, verify: () => ({ status: 301, headers: { Location: 'ws://127.0.0.1:9/plain' } }) });
    const ftp = await redirector(302, () => 'ftp://127.0.0.1/file');
    try {
      const downgrade = await failure(connect(secureHop.url, { followRedirects: true, tls: { ca: pem.cert } }));
      assert.match(downgrade.message, /from wss: to an unencrypted URL is refused/);
      const notWs = await failure(connect(ftp.url, { followRedirects: true }));
      assert.match(notWs.message, /not a WebSocket URL/);
    } finally {
      await secureHop.close();
      await ftp.close();
    }
  });
});

// ── found by an outside review of the dialers (each failed before its fix) ──────────────────

describe('found by an outside review', () => {
  test('review 1: credentials with a bad %-escape are a TypeError before any I/O (URL, http and socks5 proxies)', T, async () => {
    const peer = await tcpServer((socket) => socket.resume());
    try {
      const cases: Array<[string, ClientOptions]> = [
        [`ws://al%zz:pw@127.0.0.1:${peer.port}/`, {}],
        ['ws://127.0.0.1:9/', { proxy: `http://alice:s3cret%zz@127.0.0.1:${peer.port}` }],
        ['ws://127.0.0.1:9/', { proxy: `socks5://alice:s3cret%zz@127.0.0.1:${peer.port}` }],
      ];
      for (const [url, options] of cases) {
        await assert.rejects(connect(url, options), (error: Error) => error instanceof TypeError && /not valid percent-encoding/.test(error.message) && !error.message.includes('s3cret'));
      }
      await sleep(100);
      assert.equal(peer.sockets.size, 0, 'no connection was opened');
    } finally {
      await peer.close();
    }
  });

  test('review 2: a socks5 proxy that resets, or a timeout, while we resolve the name: no crash, no socket left', T, async () => {
    const proxy = await tcpServer((socket) => socket.once('data', () => {
      socket.write(Uint8Array.of(5, 0));
      setTimeout(() => socket.resetAndDestroy(), 100);
    }));
    try {
      // The resolver's threads busy, so that the lookup of "localhost" waits behind them.
      const busy = () => Array.from({ length: 4 }, () => new Promise((resolve) => pbkdf2('x', 'y', 1_000_000, 32, 'sha256', resolve)));
      let jobs = busy();
      const reset = await failure(connect('ws://localhost:9/', { proxy: `socks5://127.0.0.1:${proxy.port}`, handshakeTimeout: 10_000 }));
      assert.match(reset.message, /SOCKS5 proxy .*(closed|ECONNRESET)|could not resolve|ECONNRESET|connection/);
      await Promise.all(jobs);
      jobs = busy();
      const timedOut = await failure(connect('ws://localhost:9/', { proxy: `socks5://127.0.0.1:${proxy.port}`, handshakeTimeout: 50 }));
      assert.match(timedOut.message, /timed out/);
      await Promise.all(jobs);
      await sleep(200);
      assert.equal(proxy.sockets.size, 0, 'the connection to the proxy was closed');
    } finally {
      await proxy.close();
    }
  });

  test('review 3: a socks5h target name over 255 bytes is refused and the proxy connection closed', T, async () => {
    const proxy = await tcpServer((socket) => socket.once('data', () => socket.write(Uint8Array.of(5, 0))));
    try {
      const host = Array(6).fill('a'.repeat(50)).join('.');
      const error = await failure(connect(`ws://${host}/`, { proxy: `socks5h://127.0.0.1:${proxy.port}` }));
      assert.match(error.message, /over 255 bytes/);
      await sleep(200);
      assert.equal(proxy.sockets.size, 0);
    } finally {
      await proxy.close();
    }
  });

  test('review 4: a unix socket path too long for sockaddr_un is refused, never cut short', async () => {
    const long = join(pem.dir, `${'y'.repeat(120)}.sock`);
    await assert.rejects(listen(`unix:${long}`, 0, () => {}), (error: Error) => error instanceof TypeError && /at most 10[37] bytes/.test(error.message));
    await assert.rejects(connect(`ws+unix:${long}:/`), (error: Error) => error instanceof TypeError && /at most 10[37] bytes/.test(error.message));
    await assert.rejects(connect('ws://x/', { socketPath: long }), TypeError);
  });

  test('review 5: Server.url goes back into connect() whatever the path holds (%, %41, :, ?, #, a space)', T, async () => {
    for (const name of ['50%.sock', 'a%41b.sock', 'co:lon.sock', 'q?x.sock', 'h#x.sock', 'sp ace.sock']) {
      const path = join(pem.dir, name);
      const server = await echoServer(`unix:${path}`);
      try {
        assert.equal((await roundTrip(server.url, {})).message, 'through', name);
        assert.equal((await roundTrip(`${server.url}:/chat`, {})).url, '/chat', name);
      } finally {
        await server.close();
      }
    }
  });

  test('review 6: two listen() calls on one stale socket file: the second is EADDRINUSE, the first keeps its file', T, async () => {
    const path = join(pem.dir, 'race.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    await new Promise((resolve) => child.once('exit', resolve));
    const results = await Promise.allSettled([echoServer(`unix:${path}`), echoServer(`unix:${path}`)]);
    const servers = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    try {
      assert.equal(servers.length, 1, 'one listen() succeeds');
      const rejected = results.find((result) => result.status === 'rejected') as PromiseRejectedResult;
      assert.equal((rejected.reason as NodeJS.ErrnoException).code, 'EADDRINUSE');
      assert.equal((await roundTrip(`ws+unix:${path}`, {})).message, 'through');
      assert.equal(existsSync(path), true);
    } finally {
      await Promise.all(servers.map((server) => server.close()));
    }
  });

  test('review 8: no_proxy entries with a trailing dot match; an empty CIDR prefix matches nothing', T, async () => {
    const server = await echoServer('127.0.0.1');
    const asked: string[] = [];
    const proxy = await tcpServer((socket) => socket.once('data', (chunk) => {
      asked.push(String(chunk).split('\r\n')[0] ?? '');
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
    }));
    const saved = { http_proxy: process.env['http_proxy'], no_proxy: process.env['no_proxy'] };
    try {
      process.env['http_proxy'] = `http://127.0.0.1:${proxy.port}`;
      for (const [noProxy, direct] of [['0.0.0.0.', true], ['10.1.2.3/', false], ['10.1.2.3/x', false]] as const) {
        process.env['no_proxy'] = noProxy;
        const outcome = await connect(`ws://0.0.0.0:${server.port}/`, { handshakeTimeout: 3_000 }).then(async (ws) => (await ws.close(), 'direct'), () => 'proxied');
        assert.equal(outcome, direct ? 'direct' : 'proxied', `no_proxy=${noProxy}`);
      }
      assert.equal(asked.length, 2);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      await proxy.close();
      await server.close();
    }
  });

  test('review 8: a redirect to a unix socket is refused; a Location with a #fragment is followed without it', T, async () => {
    const target = await echoServer('127.0.0.1');
    const toUnix = await listen('127.0.0.1', 0, () => {}, { verify: () => ({ status: 302, headers: { Location: `ws+unix:${join(pem.dir, 'any.sock')}:/x` } }) });
    const withFragment = await listen('127.0.0.1', 0, () => {}, { verify: () => ({ status: 302, headers: { Location: `${target.url}/landed#top` } }) });
    try {
      const refused = await failure(connect(toUnix.url, { followRedirects: true }));
      assert.match(refused.message, /a redirect to a unix socket is refused/);
      const trip = await roundTrip(withFragment.url, { followRedirects: true });
      assert.equal(trip.url, '/landed');
    } finally {
      await Promise.all([target.close(), toUnix.close(), withFragment.close()]);
    }
  });
});
