// wss:// — our server and client over TLS, with a self-signed certificate made at run time
// (nothing secret is committed), and interop with ws over TLS in both directions.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import WS, { WebSocketServer } from 'ws';
import { connect, listen } from '../websockets.ts';
import type { Data, WebSocket } from '../websockets.ts';
import { connectFailure, temporaryCertificate } from './support.ts';

const T = { timeout: 20_000 };

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function echo(ws: WebSocket): Promise<void> {
  for await (const message of ws) await ws.send(message);
}

/** The message and the whole cause chain, for matching on what went wrong. */
function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown }).code;
      parts.push(`${e.message}${code !== undefined ? ` [${String(code)}]` : ''}`);
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join(' <- ');
}

describe('wss:// with a self-signed certificate', () => {
  const pem = temporaryCertificate('websockets-tls-');

  test('our client ↔ our server: messages over wss with the CA', T, async () => {
    const seen: Data[] = [];
    const server = await listen('127.0.0.1', 0, async (ws) => {
      for await (const message of ws) {
        seen.push(message);
        await ws.send(message);
      }
    }, { tls: { key: pem.key, cert: pem.cert } });
    try {
      assert.match(server.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(server.url, `wss://127.0.0.1:${server.port}`);
      const ws = await connect(server.url, { tls: { ca: pem.cert } });
      assert.equal(ws.url, `${server.url}/`);
      await ws.send('secret ✓');
      assert.equal(await ws.receive(), 'secret ✓');
      await ws.send(new Uint8Array([1, 2, 3]));
      const bytes = await ws.receive();
      assert.ok(bytes instanceof Uint8Array);
      assert.deepEqual(Array.from(bytes), [1, 2, 3]);
      await ws.send(['frag', 'ments']);
      assert.equal(await ws.receive(), 'fragments');
      const rtt = await ws.ping();
      assert.ok(Number.isFinite(rtt) && rtt >= 0);

      // 4 MiB, many TLS records each way.
      const big = new Uint8Array(randomBytes(4 * 1024 * 1024));
      await ws.send(big);
      const back = await ws.receive();
      assert.ok(back instanceof Uint8Array);
      assert.equal(sha256(back), sha256(big));

      await ws.close(4001, 'bye');
      assert.deepEqual(await ws.closed, { code: 4001, reason: 'bye' });
      assert.equal(seen.length, 4);
      assert.equal(seen[0], 'secret ✓');
    } finally {
      await server.close();
    }
  });

  test('without the CA the connection fails with 1006, naming the certificate problem', T, async () => {
    const server = await listen('127.0.0.1', 0, echo, { tls: { key: pem.key, cert: pem.cert } });
    try {
      const error = await connectFailure(connect(server.url));
      const text = describeError(error);
      assert.match(text, /certificate/i, text);
      assert.ok(error.cause instanceof Error, 'the TLS error is the cause');
      assert.equal((error.cause as { code?: unknown }).code, 'DEPTH_ZERO_SELF_SIGNED_CERT');

      // The right CA but a name the certificate does not cover also fails, and says so.
      const mismatch = await connectFailure(connect(server.url, { tls: { ca: pem.cert, servername: 'example.com' } }));
      const mismatchText = describeError(mismatch);
      assert.match(mismatchText, /altnames|certificate|example\.com/i, mismatchText);
      assert.equal((mismatch.cause as { code?: unknown }).code, 'ERR_TLS_CERT_ALTNAME_INVALID');

      // The server survives failed handshakes.
      const ws = await connect(server.url, { tls: { ca: pem.cert } });
      await ws.send('still up');
      assert.equal(await ws.receive(), 'still up');
      await ws.close();
    } finally {
      await server.close();
    }
  });

  test('rejectUnauthorized: false connects without the CA', T, async () => {
    const server = await listen('127.0.0.1', 0, echo, { tls: { key: pem.key, cert: pem.cert } });
    try {
      const ws = await connect(server.url, { tls: { rejectUnauthorized: false } });
      await ws.send('insecure but works');
      assert.equal(await ws.receive(), 'insecure but works');
      await ws.close();
      assert.equal((await ws.closed).code, 1000);
    } finally {
      await server.close();
    }
  });

  test('a plain ws:// client against the wss server fails cleanly with 1006', T, async () => {
    const server = await listen('127.0.0.1', 0, echo, { tls: { key: pem.key, cert: pem.cert }, handshakeTimeout: 3_000 });
    try {
      await connectFailure(connect(server.url.replace('wss:', 'ws:'), { handshakeTimeout: 3_000 }));
    } finally {
      await server.close();
    }
  });

  test('Server.close() over TLS closes connections with 1001', T, async () => {
    const server = await listen('127.0.0.1', 0, echo, { tls: { key: pem.key, cert: pem.cert } });
    const ws = await connect(server.url, { tls: { ca: pem.cert } });
    await ws.send('hi');
    assert.equal(await ws.receive(), 'hi');
    await server.close();
    assert.equal((await ws.closed).code, 1001);
  });

  test('a ws client with the CA ↔ our wss server', T, async () => {
    const seen: Data[] = [];
    const server = await listen('127.0.0.1', 0, async (ws) => {
      for await (const message of ws) {
        seen.push(message);
        await ws.send(message);
      }
    }, { tls: { key: pem.key, cert: pem.cert }, protocols: ['p2'] });
    const client = new WS(server.url, ['p1', 'p2'], { ca: pem.cert });
    const closed = new Promise<[number, string]>((resolve) => client.once('close', (code, reason) => resolve([code, reason.toString()])));
    try {
      await once(client, 'open');
      assert.equal(client.protocol, 'p2');
      const messages: Array<[string, boolean]> = [];
      const got = new Promise<void>((resolve) =>
        client.on('message', (data, isBinary) => {
          messages.push([isBinary ? Array.from(data as Buffer).join(',') : String(data), isBinary]);
          if (messages.length === 2) resolve();
        }),
      );
      client.send('over tls ✓');
      client.send(Buffer.from([9, 8, 7]));
      await got;
      assert.deepEqual(messages, [['over tls ✓', false], ['9,8,7', true]]);
      assert.equal(seen[0], 'over tls ✓');
      assert.ok(seen[1] instanceof Uint8Array);
      client.close(4002, 'tls bye');
      assert.deepEqual(await closed, [4002, 'tls bye']);
    } finally {
      if (client.readyState !== WS.CLOSED) client.terminate();
      await server.close();
    }
  });

  test('our client ↔ a ws server on https.createServer', T, async () => {
    const https = createServer({ key: pem.key, cert: pem.cert });
    const wss = new WebSocketServer({ server: https });
    const received: Array<[string, boolean]> = [];
    const peerClosed = new Promise<[number, string]>((resolve) =>
      wss.on('connection', (peer) => {
        peer.on('message', (data, isBinary) => {
          received.push([isBinary ? 'binary' : String(data), isBinary]);
          peer.send(data, { binary: isBinary });
        });
        peer.on('close', (code, reason) => resolve([code, reason.toString()]));
      }),
    );
    https.listen(0, '127.0.0.1');
    await once(https, 'listening');
    const url = `wss://127.0.0.1:${(https.address() as AddressInfo).port}`;
    try {
      const ws = await connect(url, { tls: { ca: pem.cert } });
      await ws.send('to ws over tls');
      assert.equal(await ws.receive(), 'to ws over tls');
      await ws.send(new Uint8Array([0, 255]));
      const bytes = await ws.receive();
      assert.ok(bytes instanceof Uint8Array);
      assert.deepEqual(Array.from(bytes), [0, 255]);
      await ws.close(4003, 'done');
      assert.deepEqual(await peerClosed, [4003, 'done']);
      assert.deepEqual(received, [['to ws over tls', false], ['binary', true]]);

      const refused = await connectFailure(connect(url));
      assert.match(describeError(refused), /certificate/i);
    } finally {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      https.closeAllConnections();
      await new Promise<void>((resolve) => https.close(() => resolve()));
    }
  });
});
