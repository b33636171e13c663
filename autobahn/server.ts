// Autobahn testee: echo server built on websockets.ts.
//
//   node build/autobahn/server.js [port]      (default 9001, or $PORT)
//
// Echoes every message back with its type: TEXT arrives as a string and is
// sent back as TEXT, BINARY arrives as a Uint8Array and is sent back as BINARY.
// wstest's fuzzingclient (see fuzzingclient.json) connects here.
import { listen } from '../dist/websockets.js';

const port = Number(process.argv[2] ?? process.env['PORT'] ?? 9001);

const server = await listen(
  '127.0.0.1',
  port,
  async (ws) => {
    try {
      for await (const message of ws) await ws.send(message);
    } catch {
      // The peer broke the protocol or the connection dropped: the library has
      // already failed the connection; nothing to do for an echo server.
    }
  },
  // No keep-alive pings (they would add frames wstest does not expect), and
  // room for the 16 MiB messages of the 9.* cases.
  { pingInterval: 0, maxMessageSize: 16 * 1024 * 1024, compression: { threshold: 0 } },
);

console.log(`websockets.ts echo server listening on ${server.url}`);

const stop = (): void => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
