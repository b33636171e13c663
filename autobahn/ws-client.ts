// Autobahn testee: the same echo client built on the `ws` package, as a
// reference for client-side results and 9.* timings (never gates).
//
//   node build/autobahn/ws-client.js [url] [agent]   (defaults: ws://127.0.0.1:9003, ws)
import WebSocket from 'ws';

const base = (process.argv[2] ?? process.env['AUTOBAHN_URL'] ?? 'ws://127.0.0.1:9003').replace(/\/+$/, '');
const agent = process.argv[3] ?? process.env['AUTOBAHN_AGENT'] ?? 'ws';
const CASE_TIMEOUT_MS = Number(process.env['AUTOBAHN_CASE_TIMEOUT_MS'] ?? 120_000);
// As in ws-server.ts: no compression, 16 MiB messages, no fragment limit.
const options = { maxPayload: 16 * 1024 * 1024, maxFragments: 0, perMessageDeflate: false };

// Opens url, calls onMessage for each message, resolves when the connection closes.
function session(url: string, onMessage: (ws: WebSocket, data: WebSocket.RawData, isBinary: boolean) => void): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, options);
    const timer = setTimeout(() => ws.terminate(), CASE_TIMEOUT_MS);
    ws.on('message', (data, isBinary) => onMessage(ws, data, isBinary));
    ws.on('error', () => {});
    ws.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const started = Date.now();
let count = -1;
await session(`${base}/getCaseCount`, (_, data) => {
  count = Number(data.toString());
});
if (!Number.isInteger(count) || count < 0) throw new Error('no case count from the fuzzing server');
console.log(`[ws-client] ${count} cases from ${base} as agent "${agent}"`);
for (let i = 1; i <= count; i++) {
  await session(`${base}/runCase?case=${i}&agent=${encodeURIComponent(agent)}`, (ws, data, isBinary) => ws.send(data, { binary: isBinary }));
  if (i % 100 === 0 || i === count) console.log(`[ws-client] ${i}/${count} cases done (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}
await session(`${base}/updateReports?agent=${encodeURIComponent(agent)}`, () => {});
console.log(`[ws-client] reports updated; ${count} cases in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(0);
