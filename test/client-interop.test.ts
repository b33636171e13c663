// The interop matrix, our client's half: our client (`connect`) against other libraries' native
// servers, each started as a child process on 127.0.0.1 (port 0: it prints the port it got):
//   python-websockets (Debian python3-websockets, /usr/bin/python3), permessage-deflate on by default;
//   Bun's `Bun.serve({ fetch, websocket })` through `npx bun@1`, with `perMessageDeflate: true`
//     (and `send(message, true)`: Bun compresses only the messages it is told to);
//   Deno's `Deno.upgradeWebSocket` through `npx deno@2 run -A` (it never negotiates permessage-deflate).
// Each server runs the same small protocol, chosen by the request path, and prints a line per
// connection that ends, so the test sees what the server saw:
//   /echo      every message goes back as it came (TEXT as TEXT, BINARY as BINARY), as on every
//              path but /describe;
//   /describe  every message is answered by a TEXT {"type","length","sha256"} (of its bytes, UTF-8
//              for TEXT): one answer per message shows that a fragmented one was reassembled;
//   /close     the server closes at once with 4002 "y";
//   /ping      the server pings ("hi") and sends TEXT "pong:hi" once our client's pong is there
//              (python-websockets and Bun); Deno's WebSocket has no ping(), so there the
//              connection gets `idleTimeout: 1`: Deno pings every 0.5 s and closes with 1001
//              ("No response from ping frame.") when a pong is 1 s late;
//   at the end of every connection: `CLOSED <target> {"code","reason"}` on stdout.
// The query string only makes each target unique. Every wait is bounded; the servers are
// killed (their whole process group) at the end.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../websockets.ts';
import type { WebSocket } from '../websockets.ts';
import { peerMissing, PYTHON_WEBSOCKETS } from './peers.ts';
import { sleep, startChild, within } from './support.ts';
import type { Child } from './support.ts';

const MiB = 1024 * 1024;
/** A first run downloads Bun or Deno from the npm registry. */
const START_MS = 180_000;
const T = { timeout: 20_000 };
const T_BIG = { timeout: 60_000 };

const PYTHON_SERVER = String.raw`
import asyncio, hashlib, json, sys
import websockets

def describe(message):
    data = message.encode() if isinstance(message, str) else message
    return json.dumps({"type": "text" if isinstance(message, str) else "binary", "length": len(data), "sha256": hashlib.sha256(data).hexdigest()})

async def handler(ws):
    target = ws.path
    path = target.split("?")[0]
    try:
        if path == "/close":
            await ws.close(4002, "y")
        elif path == "/ping":
            await (await ws.ping(b"hi"))
            await ws.send("pong:hi")
        async for message in ws:
            await ws.send(describe(message) if path == "/describe" else message)
    except websockets.ConnectionClosed:
        pass
    finally:
        await ws.wait_closed()
        print("CLOSED " + target + " " + json.dumps({"code": ws.close_code, "reason": ws.close_reason}), flush=True)

async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=2 ** 25, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("LISTENING ws://127.0.0.1:%d python-websockets %s" % (port, websockets.__version__), flush=True)
        await asyncio.Future()

asyncio.run(main())
`;

/** What Bun's and Deno's servers share: the answer to a message on a path (null: none). */
const JS_COMMON = String.raw`
import { createHash } from 'node:crypto';
const bytesOf = (message) => (typeof message === 'string' ? new TextEncoder().encode(message) : new Uint8Array(message));
const describe = (message) => {
  const bytes = bytesOf(message);
  return JSON.stringify({ type: typeof message === 'string' ? 'text' : 'binary', length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
};
const answer = (path, message) => (path === '/describe' ? describe(message) : message);
const closed = (target, code, reason) => console.log('CLOSED ' + target + ' ' + JSON.stringify({ code, reason }));
`;

const BUN_SERVER = JS_COMMON + String.raw`
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch(request, server) {
    const url = new URL(request.url);
    if (server.upgrade(request, { data: { target: url.pathname + url.search, path: url.pathname } })) return undefined;
    return new Response('not a WebSocket handshake', { status: 400 });
  },
  websocket: {
    perMessageDeflate: true,
    maxPayloadLength: 32 * 1024 * 1024,
    backpressureLimit: 64 * 1024 * 1024,
    idleTimeout: 0,
    sendPings: false,
    open(ws) {
      if (ws.data.path === '/close') ws.close(4002, 'y');
      else if (ws.data.path === '/ping') ws.ping('hi');
    },
    message(ws, message) {
      // Bun compresses a message only when asked to (send's second argument).
      ws.send(answer(ws.data.path, message), true);
    },
    pong(ws, data) {
      if (ws.data.path === '/ping') ws.send('pong:' + new TextDecoder().decode(data));
    },
    close(ws, code, reason) {
      closed(ws.data.target, code, reason);
    },
  },
});
console.log('LISTENING ws://127.0.0.1:' + server.port + ' Bun ' + Bun.version);
`;

const DENO_SERVER = JS_COMMON + String.raw`
Deno.serve({ hostname: '127.0.0.1', port: 0, onListen: ({ port }) => console.log('LISTENING ws://127.0.0.1:' + port + ' Deno ' + Deno.version.deno) }, (request) => {
  if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return new Response('not a WebSocket handshake', { status: 400 });
  const url = new URL(request.url);
  const target = url.pathname + url.search;
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: url.pathname === '/ping' ? 1 : 0 });
  socket.binaryType = 'arraybuffer';
  socket.onopen = () => {
    if (url.pathname === '/close') socket.close(4002, 'y');
  };
  socket.onmessage = (event) => socket.send(answer(url.pathname, event.data));
  socket.onclose = (event) => closed(target, event.code, event.reason);
  return response;
});
`;

interface ServerPeer {
  name: string;
  file: string;
  source: string;
  command: (script: string) => string[];
  /** The version the LISTENING line must name. */
  version: RegExp;
  skip: string | false;
  /** The Sec-WebSocket-Extensions it answers our client's default offer with (null: permessage-deflate is not negotiated). */
  deflate: string | null;
  /** How the server pings us: its WebSocket's ping() (then it says "pong:hi"), or only its keepalive (Deno's idleTimeout). */
  pings: 'ping()' | 'keepalive';
}

const PEERS: ServerPeer[] = [
  {
    name: 'python-websockets',
    file: 'server.py',
    source: PYTHON_SERVER,
    command: (script) => ['/usr/bin/python3', script],
    version: /^python-websockets 10\./,
    skip: peerMissing(PYTHON_WEBSOCKETS),
    deflate: 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12',
    pings: 'ping()',
  },
  {
    name: 'Bun',
    file: 'bun-server.mjs',
    source: BUN_SERVER,
    command: (script) => ['npx', '-y', 'bun@1', script],
    version: /^Bun 1\./,
    skip: false,
    deflate: 'permessage-deflate; client_no_context_takeover; server_no_context_takeover',
    pings: 'ping()',
  },
  {
    name: 'Deno',
    file: 'deno-server.mjs',
    source: DENO_SERVER,
    command: (script) => ['npx', '-y', 'deno@2', 'run', '-A', script],
    version: /^Deno 2\./,
    skip: false,
    deflate: null,
    pings: 'keepalive',
  },
];

const sha256 = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');

interface Description {
  type: 'text' | 'binary';
  length: number;
  sha256: string;
}

const describeLocally = (message: string | Uint8Array): Description => {
  const bytes = typeof message === 'string' ? new TextEncoder().encode(message) : message;
  return { type: typeof message === 'string' ? 'text' : 'binary', length: bytes.length, sha256: sha256(bytes) };
};

/** A TEXT message of `size` bytes, compressible but not trivially (digits and words). */
function textOf(size: number): string {
  let text = '';
  for (let i = 0; text.length < size; i++) text += `${i} message${i % 7 === 0 ? '\n' : ' '}`;
  return text.slice(0, size);
}

let dir = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'websockets-client-interop-'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

for (const peer of PEERS) {
  describe(`our client → ${peer.name} server`, { skip: peer.skip }, () => {
    let child: Child | undefined;
    let base = '';
    let connections = 0;

    before(async () => {
      const script = join(dir, peer.file);
      await writeFile(script, peer.source);
      child = startChild(peer.command(script), dir);
      const [url = '', ...version] = (await child.line('LISTENING ', START_MS)).split(' ');
      assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+$/);
      assert.match(version.join(' '), peer.version);
      base = url;
    }, { timeout: START_MS + 10_000 });

    after(async () => {
      child?.kill();
      if (child) await within(child.exit, 5_000);
    });

    /** The server's view of a connection's end: the code and reason it got. */
    const serverSaw = async (target: string): Promise<{ code: number; reason: string }> => {
      assert.ok(child);
      return JSON.parse(await child.line(`CLOSED ${target} `, 10_000)) as { code: number; reason: string };
    };

    /**
     * Connects our client to `path` (a unique target), runs `body`, closes with 1000 and checks
     * that the server saw that 1000.
     */
    const withClient = async (path: string, compression: boolean, body: (ws: WebSocket) => Promise<void>): Promise<void> => {
      const target = `${path}?c=${++connections}`;
      const ws = await connect(`${base}${target}`, { compression, pingInterval: 0, handshakeTimeout: 10_000 });
      try {
        await body(ws);
        await ws.close(1000, 'done');
      } finally {
        if (ws.closeCode === undefined) await within(ws.close(), 6_000);
      }
      assert.deepEqual(await serverSaw(target), { code: 1000, reason: 'done' });
    };

    const receiveWithin = async (ws: WebSocket, ms = 10_000): Promise<string | Uint8Array> => ws.receive({ signal: AbortSignal.timeout(ms) });

    const describedAs = async (ws: WebSocket, expected: Description): Promise<void> => {
      const answer = await receiveWithin(ws, 30_000);
      assert.equal(typeof answer, 'string');
      assert.deepEqual(JSON.parse(answer as string), expected);
    };

    const modes: Array<[string, boolean]> = peer.deflate === null ? [['uncompressed', false]] : [['uncompressed', false], ['permessage-deflate', true]];

    if (peer.deflate === null) {
      test(`${peer.name}: permessage-deflate offered, not negotiated: the connection runs uncompressed`, T, async (t) => {
        await withClient('/echo', true, async (ws) => {
          assert.equal(ws.extensions, '');
          assert.equal(ws.response?.headers['sec-websocket-extensions'], undefined);
          const text = textOf(256 * 1024);
          await ws.send(text);
          assert.equal(await receiveWithin(ws), text);
          assert.ok(ws.stats.bytesIn > text.length, `not compressed: ${ws.stats.bytesIn} bytes in`);
          t.diagnostic(`answer to "permessage-deflate; client_max_window_bits": no Sec-WebSocket-Extensions`);
        });
      });
    }

    for (const [mode, compression] of modes) {
      const name = `${peer.name} (${mode})`;

      if (compression) {
        test(`${name}: negotiated, and both directions compressed on the wire`, T, async (t) => {
          await withClient('/echo', true, async (ws) => {
            assert.equal(ws.extensions, peer.deflate);
            const text = textOf(MiB);
            await ws.send(text);
            assert.equal(await receiveWithin(ws), text);
            const { bytesIn, bytesOut } = ws.stats;
            t.diagnostic(`extensions "${ws.extensions}"; 1 MiB of text: ${bytesOut} bytes out, ${bytesIn} bytes in`);
            assert.ok(bytesOut < MiB / 4, `our client compressed: ${bytesOut} bytes out`);
            assert.ok(bytesIn < MiB / 4, `the server compressed: ${bytesIn} bytes in`);
          });
        });
      }

      test(`${name}: text and binary echoed, types kept`, T, async () => {
        await withClient('/echo', compression, async (ws) => {
          const messages: Array<string | Uint8Array> = ['Hello', '', 'héllo wörld ✓ 🎉', textOf(100_000), new Uint8Array(0), new Uint8Array([0, 1, 2, 255]), randomBytes(300_000), new Uint8Array(200_000).fill(7)];
          for (const message of messages) {
            await ws.send(message);
            const echo = await receiveWithin(ws);
            if (typeof message === 'string') assert.equal(echo, message);
            else {
              assert.ok(echo instanceof Uint8Array, `BINARY came back as ${typeof echo}`);
              assert.equal(sha256(echo), sha256(message));
              assert.equal(echo.length, message.length);
            }
          }
          assert.equal(ws.stats.messagesIn, messages.length);
        });
      });

      test(`${name}: fragmented messages (iterables, sync and async) reassembled by the server`, T, async () => {
        await withClient('/describe', compression, async (ws) => {
          const parts = ['frag', 'mented ', 'x'.repeat(5000), ' ✓'];
          await ws.send(parts);
          await describedAs(ws, describeLocally(parts.join('')));
          const chunks = Array.from({ length: 100 }, (_, i) => randomBytes(100 + i * 37));
          await ws.send(chunks);
          await describedAs(ws, describeLocally(Buffer.concat(chunks)));
          async function* produce(): AsyncGenerator<Uint8Array> {
            for (let i = 0; i < 20; i++) yield new Uint8Array(64 * 1024).fill(i);
          }
          await ws.send(produce());
          await describedAs(ws, describeLocally(Buffer.concat(Array.from({ length: 20 }, (_, i) => new Uint8Array(64 * 1024).fill(i)))));
          // An empty first fragment, then text.
          await ws.send(['', 'after an empty fragment']);
          await describedAs(ws, describeLocally('after an empty fragment'));
        });
      });

      test(`${name}: ping() → the server's automatic pong gives a round-trip time`, T, async (t) => {
        await withClient('/echo', compression, async (ws) => {
          const rtts = [await ws.ping(), await ws.ping('payload'), await ws.ping(new Uint8Array(125).fill(1))];
          for (const rtt of rtts) assert.ok(typeof rtt === 'number' && rtt >= 0 && rtt < 5_000, `rtt ${rtt}`);
          assert.equal(ws.stats.latency, rtts[2]);
          t.diagnostic(`round trips: ${rtts.map((rtt) => rtt.toFixed(2)).join(', ')} ms`);
          // The connection still carries messages after the pings.
          await ws.send('after pings');
          assert.equal(await receiveWithin(ws), 'after pings');
        });
      });

      if (peer.pings === 'ping()') {
        test(`${name}: the server's ping() answered by our client's automatic pong`, T, async () => {
          await withClient('/ping', compression, async (ws) => {
            assert.equal(await receiveWithin(ws), 'pong:hi');
          });
        });
      } else {
        test(`${name}: the server's keepalive pings (idleTimeout 1 s) answered by our client's automatic pong`, T, async (t) => {
          await withClient('/ping', compression, async (ws) => {
            await sleep(2_500);
            // Pings arrived (bytes in, no message), and were answered: a late pong is a 1001 after 1 s.
            assert.equal(ws.closeCode, undefined, `closed by the server: ${ws.closeCode} ${ws.closeReason}`);
            assert.equal(ws.stats.messagesIn, 0);
            assert.ok(ws.stats.bytesIn >= 3 * 2, `pings received: ${ws.stats.bytesIn} bytes in`);
            t.diagnostic(`${ws.stats.bytesIn / 2} empty pings in 2.5 s, each answered`);
            await ws.send('still here');
            assert.equal(await receiveWithin(ws), 'still here');
          });
        });
      }

      test(`${name}: close codes both ways: our close(4001, 'x') seen by the server; its close(4002, 'y') seen by our client`, T, async () => {
        const ours = `/echo?c=${++connections}`;
        const ws = await connect(`${base}${ours}`, { compression, pingInterval: 0 });
        await ws.send('before the close');
        assert.equal(await receiveWithin(ws), 'before the close');
        assert.ok(await within(ws.close(4001, 'x'), 6_000) !== null, 'close() resolved');
        assert.deepEqual(await serverSaw(ours), { code: 4001, reason: 'x' });
        // The server echoes our close: what our client got back.
        assert.equal(ws.closeCode, 4001);

        const theirs = `/close?c=${++connections}`;
        const closing = await connect(`${base}${theirs}`, { compression, pingInterval: 0 });
        const closed = await within(closing.closed, 10_000);
        assert.deepEqual(closed, { code: 4002, reason: 'y' });
        assert.equal(closing.closeCode, 4002);
        assert.equal(closing.closeReason, 'y');
        await assert.rejects(closing.receive(), (error: Error & { code?: number }) => error.code === 4002);
        assert.deepEqual(await serverSaw(theirs), { code: 4002, reason: 'y' });
      });

      test(`${name}: 16 MiB messages both ways (BINARY and TEXT echoed)`, T_BIG, async (t) => {
        await withClient('/echo', compression, async (ws) => {
          const binary = randomBytes(16 * MiB);
          let started = performance.now();
          await ws.send(binary);
          const echo = await receiveWithin(ws, 50_000);
          assert.ok(echo instanceof Uint8Array);
          assert.equal(echo.length, 16 * MiB);
          assert.equal(sha256(echo), sha256(binary));
          const binaryMs = performance.now() - started;
          const text = textOf(16 * MiB);
          started = performance.now();
          await ws.send(text);
          const textEcho = await receiveWithin(ws, 50_000);
          assert.equal(typeof textEcho, 'string');
          assert.equal((textEcho as string).length, text.length);
          assert.ok(textEcho === text, 'the 16 MiB text came back intact');
          t.diagnostic(`16 MiB round trip: BINARY (random) ${binaryMs.toFixed(0)} ms, TEXT ${(performance.now() - started).toFixed(0)} ms; ${ws.stats.bytesOut} bytes out, ${ws.stats.bytesIn} in`);
        });
      });
    }

    test(`${peer.name}: the server wrote no error to stderr`, async () => {
      assert.ok(child);
      assert.doesNotMatch(child.stderr(), /Traceback|Error|error:|panic/, `the ${peer.name} server reported an error\n${child.output()}`);
    });
  });
}
