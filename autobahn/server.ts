// Autobahn testee: echo server built on websockets.ts.
//
//   node build/autobahn/server.js [port]                    (default 9001, or $PORT)
//   node build/autobahn/server.js port key.pem cert.pem     wss://, HTTP/1.1 and HTTP/2
//
// Echoes every message back with its type: TEXT arrives as a string and is
// sent back as TEXT, BINARY arrives as a Uint8Array and is sent back as BINARY.
// wstest's fuzzingclient (see fuzzingclient.json) connects here, directly or
// through nghttpx. With a key and a certificate it serves TLS with
// `http2: true` (ALPN picks h2 or http/1.1): nghttpx's h2 backend reaches it
// over RFC 8441. On SIGTERM it prints, before closing, how many handshakes
// each HTTP version carried (ws.request.httpVersion) and the most WebSockets
// open at once (autobahn/versions.ts); run.js checks the versions.
import { readFileSync } from 'node:fs';
import { listen } from '../dist/websockets.js';
import { versionTally } from './versions.ts';

const port = Number(process.argv[2] ?? process.env['PORT'] ?? 9001);
const [keyFile, certFile] = process.argv.slice(3);
const tls = keyFile !== undefined && certFile !== undefined ? { key: readFileSync(keyFile), cert: readFileSync(certFile) } : undefined;
const versions = versionTally();

const server = await listen(
  '127.0.0.1',
  port,
  async (ws) => {
    const ended = versions.opened(ws.request.httpVersion, ws.closed);
    try {
      for await (const message of ws) await ws.send(message);
    } catch {
      // The peer broke the protocol or the connection dropped: the library has
      // already failed the connection; nothing to do for an echo server.
    }
    ended();
  },
  // No keep-alive pings (they would add frames wstest does not expect), and
  // room for the 16 MiB messages of the 9.* cases.
  { pingInterval: 0, maxMessageSize: 16 * 1024 * 1024, compression: { threshold: 0 }, ...(tls !== undefined ? { tls, http2: true } : {}) },
);

console.log(`websockets.ts echo server listening on ${server.url}${tls !== undefined ? ' (HTTP/1.1 and HTTP/2)' : ''}`);

const stop = (): void => {
  console.log(versions.line());
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
