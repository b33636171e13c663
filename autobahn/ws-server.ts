// Autobahn testee: the same echo server built on the `ws` package, as a
// reference to compare websockets.ts against.
//
//   node build/autobahn/ws-server.js [port]   (default 9002, or $PORT)
//
// permessage-deflate is on, with every message compressed (threshold 0), as
// for websockets.ts. It runs groups 1–10 only ("exclude-agent-cases" in
// fuzzingclient.json leaves 12.* and 13.* to websockets.ts: under wstest they
// take a quarter of an hour or more per agent and direction), so compression is never
// negotiated with it; it is there for the side-by-side tables and the 9.* ratio.
// maxFragments is lifted (0 = no limit): ws's default of 16384 fragments per
// message fails 9.3.1, 9.3.2, 9.4.1 and 9.4.2 (4 MiB sent in 64- and 256-byte
// fragments) with 1008 at once, which would also skew the 9.* timings.
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? process.env['PORT'] ?? 9002);

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 16 * 1024 * 1024,
  maxFragments: 0,
  perMessageDeflate: { threshold: 0 },
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {
    // Protocol errors: ws has already closed the connection with the right code.
  });
});

wss.on('listening', () => {
  console.log(`ws echo server listening on ws://127.0.0.1:${port}`);
});

const stop = (): void => {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
