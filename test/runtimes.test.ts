// The runtime matrix: the unbuilt websockets.ts (and test/shared-client.ts, also TypeScript)
// loaded directly by Node 24 and Node 22 (type stripping, no flag needed), Deno and Bun, each
// fetched from the npm registry with npx (`node@24`, `node@22`, `deno@2`, `bun@1`: the packages
// carry their binaries; the first run downloads them, hence the generous timeouts).
//
// In each runtime (one driver process per mode):
//   client  — our own client (`connect`) runs the shared scenario, the abnormal close and the
//             edge cases against our Node server; the same runs over the runtime's native
//             WebSocket through `wrap` (the facade); and wrap() meets native sockets that never
//             open, have closed, or are still CONNECTING;
//   server  — `listen` runs the scenario's echo server there, and our Node client runs the
//             shared scenario and the edge cases against it.
// Every result must also equal, field for field, what the same scenario gives in this Node.
// Everything is on 127.0.0.1; every child process is bounded and killed on timeout.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { connect, listen } from '../websockets.ts';
import type { Server } from '../websockets.ts';
import { PROTOCOL, runClientScenario, runEdgeScenario, scenarioHandler } from './shared-client.ts';
import type { AbnormalResult, EdgeResult, Result, WrapEdges } from './shared-client.ts';
import { assertAbnormal, assertEdge, assertScenario, assertWrapAlreadyClosed, assertWrapConnecting, assertWrapNeverOpened, listenKiller, portablePart } from './scenario-checks.ts';
import type { KillerServer } from './scenario-checks.ts';
import { findRoot } from './chromium.ts';
import { startChild as start } from './support.ts';

/** A first run downloads the runtime from the npm registry. */
const RUN_MS = 180_000;

interface Runtime {
  name: string;
  /** The command line that runs a script, before the script's own arguments. */
  command: (script: string) => string[];
  version: RegExp;
}

const RUNTIMES: Runtime[] = [
  { name: 'Node 24', command: (script) => ['npx', '-y', '-p', 'node@24', 'node', script], version: /^node v24\./ },
  { name: 'Node 22', command: (script) => ['npx', '-y', '-p', 'node@22', 'node', script], version: /^node v22\./ },
  { name: 'Deno', command: (script) => ['npx', '-y', 'deno@2', 'run', '-A', script], version: /^deno 2\./ },
  { name: 'Bun', command: (script) => ['npx', '-y', 'bun@1', script], version: /^bun 1\./ },
];

/** Plain JavaScript (so only the library and the shared client are TypeScript). */
function driverSource(root: string): string {
  const library = JSON.stringify(pathToFileURL(join(root, 'websockets.ts')).href);
  const client = JSON.stringify(pathToFileURL(join(root, 'test', 'shared-client.ts')).href);
  return `
import { listen, wrap } from ${library};
import { runClientScenario, runAbnormalClose, runEdgeScenario, runWrapEdges, scenarioHandler, PROTOCOL } from ${client};

const [mode, url, killerUrl, refusedUrl] = globalThis.Deno ? Deno.args : process.argv.slice(2);
const say = (line) => console.log(line);
const hardStop = setTimeout(() => { say('RESULT ' + JSON.stringify({ error: 'driver timed out' })); process.exit(2); }, 150000);

try {
  if (mode === 'client') {
    const own = await runClientScenario(url);
    const ownAbnormal = await runAbnormalClose(killerUrl);
    const ownEdge = await runEdgeScenario(url);
    // The runtime's own WebSocket, through the facade, wrapped once open (as connect() does
    // where there is no Node); wrap() of a socket in other states is runWrapEdges' business.
    const wrapWhenOpen = (target, protocols) => new Promise((resolve, reject) => {
      const native = new globalThis.WebSocket(target, protocols);
      native.addEventListener('open', () => resolve(wrap(native)));
      native.addEventListener('error', () => reject(new Error('the native WebSocket failed to open')));
    });
    const facade = await runClientScenario(url, { connect: (target) => wrapWhenOpen(target, []) });
    const facadeAbnormal = await runAbnormalClose(killerUrl, { connect: (target) => wrapWhenOpen(target, []) });
    const facadeEdge = await runEdgeScenario(url, { connect: (target) => wrapWhenOpen(target, ['chat.v1', PROTOCOL]) });
    const wrapEdges = await runWrapEdges(refusedUrl, url);
    say('RESULT ' + JSON.stringify({ own, ownAbnormal, ownEdge, facade, facadeAbnormal, facadeEdge, wrapEdges }));
    clearTimeout(hardStop);
    process.exit(0);
  } else if (mode === 'server') {
    let stop;
    const stopped = new Promise((resolve) => (stop = resolve));
    const server = await listen('127.0.0.1', 0, async (ws) => {
      if (ws.url === '/stop') return stop();
      return scenarioHandler(ws);
    }, { protocols: [PROTOCOL], onError: (error) => say('SERVER-ERROR ' + String(error && error.stack || error)) });
    say('LISTENING ' + server.url);
    await stopped;
    await server.close();
    say('STOPPED');
    clearTimeout(hardStop);
    process.exit(0);
  } else throw new Error('unknown mode ' + mode);
} catch (error) {
  say('RESULT ' + JSON.stringify({ error: String((error && error.stack) || error) }));
  process.exit(1);
}
`;
}

interface ClientRun {
  error?: string;
  own: Result;
  ownAbnormal: AbnormalResult;
  ownEdge: EdgeResult;
  facade: Result;
  facadeAbnormal: AbnormalResult;
  facadeEdge: EdgeResult;
  wrapEdges: WrapEdges;
}

const root = findRoot();
let dir = '';
let script = '';
let nodeServer: Server;
let killer: KillerServer;
const serverErrors: unknown[] = [];
/** The shared scenario run by this Node (20) process: every runtime must agree with it. */
let reference: Result;
let referenceEdge: EdgeResult;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'websockets-runtimes-'));
  script = join(dir, 'driver.mjs');
  await writeFile(script, driverSource(root));
  nodeServer = await listen('127.0.0.1', 0, scenarioHandler, { protocols: [PROTOCOL], onError: (error) => serverErrors.push(error) });
  killer = await listenKiller((error) => serverErrors.push(error));
  reference = await runClientScenario(nodeServer.url);
  assertScenario(reference, { ownClient: true });
  referenceEdge = await runEdgeScenario(nodeServer.url);
  assertEdge(referenceEdge);
}, { timeout: 60_000 });

after(async () => {
  await Promise.allSettled([nodeServer?.close(), killer?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A ws:// URL on 127.0.0.1 where nobody listens: bind a port, then let it go. */
async function refusedUrl(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return `ws://127.0.0.1:${port}/`;
}

for (const runtime of RUNTIMES) {
  describe(runtime.name, () => {
    // One run of the driver in client mode; its parts are checked by the tests below.
    let clientRun: Promise<ClientRun> | undefined;
    const runClient = (): Promise<ClientRun> => {
      clientRun ??= (async () => {
        const child = start([...runtime.command(script), 'client', nodeServer.url, killer.url, await refusedUrl()], dir);
        try {
          const run = JSON.parse(await child.line('RESULT ', RUN_MS)) as ClientRun;
          assert.equal(run.error, undefined, `${run.error}\n${child.output()}`);
          assert.equal(await child.exit, 0, child.output());
          return run;
        } finally {
          child.kill();
        }
      })();
      return clientRun;
    };

    test(`${runtime.name}: our client ↔ our Node server (scenario, abnormal close, edge cases)`, { timeout: RUN_MS + 10_000 }, async (t) => {
      const run = await runClient();
      t.diagnostic(`${run.own.runtime}: scenario ${run.own.ms} ms`);
      assert.match(run.own.runtime, runtime.version);
      assertScenario(run.own, { ownClient: true });
      assert.deepEqual(portablePart(run.own), portablePart(reference), 'the same answers as in Node 20');
      assertAbnormal(run.ownAbnormal);
      assertEdge(run.ownEdge);
      assert.deepEqual({ ...run.ownEdge, runtime: '' }, { ...referenceEdge, runtime: '' }, 'the same edge-case answers as in Node 20');
      assert.deepEqual(serverErrors, []);
    });

    test(`${runtime.name}: the facade over its native WebSocket (wrap): the shared scenario`, { timeout: RUN_MS + 10_000 }, async (t) => {
      const run = await runClient();
      t.diagnostic(`${run.facade.runtime}: scenario over wrap() ${run.facade.ms} ms`);
      assertScenario(run.facade, { ownClient: false });
      assert.deepEqual(portablePart(run.facade), portablePart(reference), 'the facade gives the same answers');
    });

    test(`${runtime.name}: the facade over its native WebSocket (wrap): abnormal close → 1006`, { timeout: RUN_MS + 10_000 }, async () => {
      assertAbnormal((await runClient()).facadeAbnormal);
    });

    test(`${runtime.name}: the facade over its native WebSocket (wrap): edge cases`, { timeout: RUN_MS + 10_000 }, async () => {
      assertEdge((await runClient()).facadeEdge, { open: false });
    });

    test(`${runtime.name}: wrap() of a native WebSocket that never opens → receive() and a pending send() reject with 1006`, { timeout: RUN_MS + 10_000 }, async (t) => {
      const run = await runClient();
      t.diagnostic(JSON.stringify(run.wrapEdges.neverOpened));
      assertWrapNeverOpened(run.wrapEdges);
    });

    test(`${runtime.name}: wrap() of a native WebSocket already closed → receive(), closed and close() settle`, { timeout: RUN_MS + 10_000 }, async (t) => {
      const run = await runClient();
      t.diagnostic(JSON.stringify(run.wrapEdges.alreadyClosed));
      assertWrapAlreadyClosed(run.wrapEdges);
    });

    test(`${runtime.name}: wrap() of a CONNECTING native WebSocket → protocol and extensions as negotiated`, { timeout: RUN_MS + 10_000 }, async (t) => {
      const run = await runClient();
      t.diagnostic(JSON.stringify(run.wrapEdges.connecting));
      assertWrapConnecting(run.wrapEdges);
    });

    test(`${runtime.name}: listen() there ↔ our Node client`, { timeout: RUN_MS + 10_000 }, async (t) => {
      const child = start([...runtime.command(script), 'server'], dir);
      try {
        const url = await child.line('LISTENING ', RUN_MS);
        assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+$/);
        const result = await runClientScenario(url);
        assertScenario(result, { ownClient: true });
        assert.deepEqual(portablePart(result), portablePart(reference), 'the same answers as from a Node server');
        const edge = await runEdgeScenario(url);
        assertEdge(edge);
        // Stop it: a connection to /stop makes the driver close the server and exit.
        const stopper = await connect(`${url}/stop`);
        await stopper.closed;
        await child.line('STOPPED', 15_000);
        assert.equal(await child.exit, 0, child.output());
        assert.doesNotMatch(child.output(), /SERVER-ERROR/, 'the server reported handler errors');
        t.diagnostic(`${runtime.name} server: scenario ${result.ms} ms`);
      } finally {
        child.kill();
      }
    });
  });
}
