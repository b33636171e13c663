/**
 * The demo: a small chat. `npm start` builds everything and runs it; then open
 * http://127.0.0.1:8080 in two browser tabs.
 *
 *   PORT=9000 node build/examples/chat.js     # another port; PORT=0 picks a free one
 *
 * One process, no other service: the server, the page and the protocol are in
 * examples/chat-app.ts (shared with examples/cluster-chat.ts, the same chat on every core and
 * many machines through Redis).
 *
 * SIGINT or SIGTERM stops it cleanly: every connection is closed with 1001 (going away), which
 * the page takes as "reconnect with backoff", so restarting the server is seamless.
 */
import { checkBundle, HOST, startChat, stopOnSignals } from './chat-app.ts';

const PORT = Number(process.env['PORT'] ?? 8080);

const chat = await startChat({ port: PORT }).catch((error: NodeJS.ErrnoException) => {
  console.error(error.code === 'EADDRINUSE' ? `port ${PORT} is in use: try PORT=8081 npm start` : `cannot listen on ${HOST}:${PORT}: ${error.message}`);
  process.exit(1);
});
stopOnSignals(chat, () => console.log('chat demo stopped'));
checkBundle();
console.log(`chat demo on http://${HOST}:${chat.port} — open it in two browser tabs`);
