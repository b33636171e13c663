/**
 * The demo: an echo server on 127.0.0.1. `npm start` runs it.
 * Reach it with any WebSocket client, for example our own:
 *   node -e "import('websockets.ts').then(async ({ open }) => console.log(await open('ws://127.0.0.1:8080', async (ws) => { await ws.send('hi'); return ws.receive() })))"
 */
import { listen } from '../websockets.ts';

const port = Number(process.env.PORT ?? 8080);
const server = await listen('127.0.0.1', port, async (ws) => {
  for await (const message of ws) await ws.send(message);
});
console.log(`echo server listening on ${server.url} — connect with any WebSocket client; Ctrl+C stops it`);
// SIGTERM (a service manager, `docker stop`, Kubernetes) and Ctrl+C: stop accepting, close every
// connection with 1001 (going away), bounded by closeTimeout; with nothing left the process
// exits by itself, code 0 (test/signals.test.ts checks it).
process.once('SIGINT', () => void server.close());
process.once('SIGTERM', () => void server.close());
