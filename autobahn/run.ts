// Runs the Autobahn testsuite (crossbario's wstest) against websockets.ts and,
// for comparison, the `ws` package, then summarises the reports.
//
//   npx esbuild autobahn/*.ts --bundle --platform=node --format=esm --packages=external --outdir=build/autobahn
//   node build/autobahn/run.js [--via direct,nghttpx] [--only server|client|summary] [--cases 1.*,2.*] [--skip-setup] [--timeout-minutes N]
//
// Two routes, side by side (one lane each; a lane runs its phases one after
// the other): "direct", wstest and the testees over HTTP/1.1 (phases a, b, c),
// and "nghttpx", the same phases (h2 a, h2 b, h2 c) for websockets.ts only
// with nghttpx in the middle: HTTP/1.1 on wstest's side, RFC 8441 over
// HTTP/2 with TLS on ours (see `Route` below). Reports under reports/ and
// reports/h2-*, one section per route and side in summary.md.
//
// 1. autobahn/setup.sh installs wstest into autobahn/.tooling (cached).
// 2. Phase a, server side, groups 1–11: starts build/autobahn/server.js
//    (websockets.ts) and build/autobahn/ws-server.js (ws) and runs
//    `wstest -m fuzzingclient` against both; reports in autobahn/reports/servers.
//    Nothing else of its lane runs meanwhile, so the 9.* timings of the two
//    compare (the other lane does share the machine: --via direct for a quiet one).
// 3. Phase b, client side, groups 1–11: runs `wstest -m fuzzingserver` and
//    build/autobahn/client.js (websockets.ts) against it; reports in
//    autobahn/reports/clients.
// 4. Phase c, groups 12–13 (permessage-deflate), websockets.ts only: the server
//    side (fuzzingclient → server.js, reports/servers-deflate) and the client
//    side (client.js → fuzzingserver, reports/clients-deflate) in parallel.
//    ws is left out by "exclude-agent-cases" in fuzzingclient.json.
// 5. writes autobahn/summary.md (one table per direction over all the reports
//    of that direction), prints it, and exits 0 only if every case of
//    websockets.ts passed (see `rejection` below for the rule). The ws agent's
//    results are reported but never gate.
// With --cases, each selected side is one wstest run of just those cases
// (into reports/servers, reports/clients, and their h2- twins).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { selfSignedCertificate, type Certificate } from '../test/certificate.ts';
import { NGHTTPX, nghttpxCommand, peerMissing } from '../test/peers.ts';
import { parseVersionLine, type VersionStats } from './versions.ts';

// ----------------------------------------------------------------- the pass rule

const OUR_AGENT = 'websockets.ts';
const WS_AGENT = 'ws';

// Cases whose outcome is implementation-defined: the testsuite sets their
// behavior and behaviorClose to INFORMATIONAL unconditionally
// (autobahntestsuite/case/case7_1_6.py, case7_13_1.py, case7_13_2.py).
// INFORMATIONAL is accepted for these cases only. Everything else, groups 12
// and 13 (permessage-deflate) included, must be OK.
const INFORMATIONAL_CASES: ReadonlySet<string> = new Set(['7.1.6', '7.13.1', '7.13.2']);

const GROUP_NAMES: Readonly<Record<string, string>> = {
  '1': 'Framing',
  '2': 'Pings/Pongs',
  '3': 'Reserved Bits',
  '4': 'Opcodes',
  '5': 'Fragmentation',
  '6': 'UTF-8 Handling',
  '7': 'Close Handling',
  '9': 'Limits/Performance',
  '10': 'Misc',
  '12': 'Compression (payloads)',
  '13': 'Compression (parameters)',
};

// The permessage-deflate groups: 1000 compressed round trips per case, slow
// under wstest (CPython), so they get their own phase.
const DEFLATE_GROUPS: readonly string[] = ['12', '13'];
const DEFLATE_PATTERNS: readonly string[] = DEFLATE_GROUPS.map((g) => `${g}.*`);

// ----------------------------------------------------------------- paths and options

const BUILD_DIR = dirname(fileURLToPath(import.meta.url)); // build/autobahn
const ROOT = resolve(BUILD_DIR, '..', '..');
const AB = join(ROOT, 'autobahn');
const TOOLING = process.env['AUTOBAHN_TOOLING'] ?? join(AB, '.tooling');
const WSTEST = join(TOOLING, 'bin', 'wstest');
const REPORTS = join(AB, 'reports');
const LOGS = join(REPORTS, 'logs');
const SUMMARY = join(AB, 'summary.md');

const TESTEES: Readonly<Record<string, string>> = {
  [OUR_AGENT]: join(BUILD_DIR, 'server.js'),
  [WS_AGENT]: join(BUILD_DIR, 'ws-server.js'),
};
// The client side tests websockets.ts only.
const CLIENTS: Readonly<Record<string, string>> = {
  [OUR_AGENT]: join(BUILD_DIR, 'client.js'),
};

type Side = 'server' | 'client';

// Report directories under autobahn/reports, per side, in summary order
// (a route's prefix goes in front: reportDirs()).
const REPORT_DIRS: Readonly<Record<Side, readonly string[]>> = {
  server: ['servers', 'servers-deflate'],
  client: ['clients', 'clients-deflate'],
};

// ----------------------------------------------------------------- routes

// How wstest and our testees reach each other. Each route has its own ports,
// report directories (prefix) and summary sections, so the routes run side by side.
type RouteName = 'direct' | 'nghttpx';

interface Route {
  name: RouteName;
  /** In headings, phase names and the summary. */
  title: string;
  /** What ws.request.httpVersion (server side) and ws.response.httpVersion (client side) must be for every handshake of our agent. */
  httpVersion: string;
  /** In front of the report directories' names and the phases' letters. */
  tag: string;
  /** Added to the ports of fuzzingclient.json and fuzzingserver.json. */
  portShift: number;
}

// "nghttpx": wstest fuzzingclient --HTTP/1.1--> nghttpx --RFC 8441, h2, TLS--> server.js
// (http2: true); client.js (http2: true) --RFC 8441, h2, TLS--> nghttpx --HTTP/1.1--> wstest
// fuzzingserver. wstest's ports are the specs' + 10 (9011: nghttpx in front of our server; 9013:
// the fuzzingserver); our end of nghttpx is NGHTTPX_HOP further (9021: our server; 9023:
// nghttpx's TLS frontend for our client). ws has no HTTP/2 server: that route tests websockets.ts only.
const ROUTES: Readonly<Record<RouteName, Route>> = {
  direct: { name: 'direct', title: 'HTTP/1.1', httpVersion: '1.1', tag: '', portShift: 0 },
  nghttpx: { name: 'nghttpx', title: 'HTTP/2 via nghttpx', httpVersion: '2', tag: 'h2', portShift: 10 },
};
const NGHTTPX_HOP = 10;

function reportDirs(route: Route, side: Side): string[] {
  return REPORT_DIRS[side].map((dir) => (route.tag === '' ? dir : `${route.tag}-${dir}`));
}

// Always --conf=/dev/null: Debian's /etc/nghttpx/nghttpx.conf adds a listener on
// :3000 and logs to syslog. An idle WebSocket is cut by the read timeouts (a
// minute by default), and some cases idle for longer: lift them all.
const NGHTTPX_COMMON = [
  '--conf=/dev/null', '--workers=1', '--no-ocsp',
  '--backend-read-timeout=1h', '--backend-write-timeout=1h', '--stream-read-timeout=0', '--stream-write-timeout=0',
  '--frontend-read-timeout=1h', '--frontend-write-timeout=1h', '--frontend-http2-read-timeout=1h',
  '--accesslog-file=/dev/stdout', '--errorlog-file=/dev/stderr',
];

// Server side: a plain HTTP/1.1 frontend for wstest, an h2 backend with TLS
// (-k: our certificate is self-signed); nghttpx turns the backend's 200 into
// the 101 wstest expects and computes Sec-WebSocket-Accept itself. Client
// side: a TLS frontend that offers h2 and SETTINGS_ENABLE_CONNECT_PROTOCOL,
// an HTTP/1.1 backend; --host-rewrite, because wstest's fuzzingserver answers
// 400 to a Host whose port is not the one it listens on.
function nghttpxArgs(side: Side, front: number, back: number, pem: Certificate): string[] {
  return side === 'server'
    ? [...NGHTTPX_COMMON, '-k', `-f127.0.0.1,${front};no-tls`, `-b127.0.0.1,${back};;proto=h2;tls`]
    : [...NGHTTPX_COMMON, '--host-rewrite', `-f127.0.0.1,${front}`, `-b127.0.0.1,${back}`, pem.keyFile, pem.certFile];
}

const USAGE = `usage: node build/autobahn/run.js [options]
  --via direct,nghttpx          the routes to run, side by side (default both): direct
                                (HTTP/1.1), nghttpx (RFC 8441 over HTTP/2 between nghttpx
                                and websockets.ts; without nghttpx: skipped, or failed if CI=true)
  --only server|client|summary  run only the server side (wstest fuzzingclient against
                                our and ws's echo servers), only the client side (our
                                echo client against wstest fuzzingserver), or only
                                summarise the reports already in autobahn/reports
  --cases 1.*,2.*               run just these cases (one wstest run per side)
  --skip-setup                  do not run autobahn/setup.sh
  --timeout-minutes N           bound for each wstest run (default 25)
  -h, --help`;

interface Options {
  routes: Route[];
  sides: Side[];
  run: boolean;
  cases: string[] | undefined;
  setup: boolean;
  timeoutMs: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      via: { type: 'string', default: 'direct,nghttpx' },
      only: { type: 'string' },
      cases: { type: 'string' },
      'skip-setup': { type: 'boolean', default: false },
      'timeout-minutes': { type: 'string', default: '25' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const only = values.only;
  if (only !== undefined && only !== 'server' && only !== 'client' && only !== 'summary') {
    throw new Error(`--only must be server, client or summary\n${USAGE}`);
  }
  const routes = [...new Set(values.via.split(',').map((r) => r.trim()))].map((name) => {
    if (name !== 'direct' && name !== 'nghttpx') throw new Error(`--via takes direct and/or nghttpx, not ${JSON.stringify(name)}\n${USAGE}`);
    return ROUTES[name];
  });
  const minutes = Number(values['timeout-minutes']);
  if (!(minutes > 0)) throw new Error('--timeout-minutes must be a positive number');
  const cases = values.cases
    ?.split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  return {
    routes,
    sides: only === 'server' ? ['server'] : only === 'client' ? ['client'] : ['server', 'client'],
    run: only !== 'summary',
    cases: cases !== undefined && cases.length > 0 ? cases : undefined,
    setup: !values['skip-setup'] && only !== 'summary',
    timeoutMs: minutes * 60_000,
  };
}

// ----------------------------------------------------------------- processes

const children = new Set<ChildProcess>();

function log(message: string): void {
  console.log(`[autobahn ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Proc {
  child: ChildProcess;
  name: string;
  exited: Promise<Exit>;
  exit: Exit | undefined;
  stopping: boolean;
}

// Starts a command in its own process group; output goes to a log file and,
// line by line, to onLine.
function start(name: string, command: string, args: string[], logFile: string, onLine?: (line: string) => void): Proc {
  const fd = openSync(logFile, 'w');
  const child = spawn(command, args, { cwd: AB, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  const proc: Proc = {
    child,
    name,
    exit: undefined,
    stopping: false,
    exited: new Promise<Exit>((resolveExit) => {
      child.on('error', (error) => {
        writeSync(fd, `spawn error: ${error.message}\n`);
      });
      child.on('close', (code, signal) => {
        children.delete(child);
        closeSync(fd);
        proc.exit = { code, signal };
        resolveExit(proc.exit);
      });
    }),
  };
  for (const stream of [child.stdout, child.stderr]) {
    let pending = '';
    stream?.on('data', (chunk: Buffer) => {
      writeSync(fd, chunk);
      if (onLine === undefined) return;
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    });
  }
  return proc;
}

function killGroup(proc: Proc, signal: NodeJS.Signals): void {
  const pid = proc.child.pid;
  if (pid === undefined || proc.exit !== undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      proc.child.kill(signal);
    } catch {
      // already gone
    }
  }
}

async function stop(proc: Proc, graceMs = 10_000): Promise<Exit> {
  if (proc.exit !== undefined) return proc.exit;
  proc.stopping = true;
  killGroup(proc, 'SIGTERM');
  const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), graceMs);
  const exit = await proc.exited;
  clearTimeout(timer);
  return exit;
}

// Waits for proc to exit; kills it after timeoutMs. Returns whether it timed out.
async function bounded(proc: Proc, timeoutMs: number): Promise<{ exit: Exit; timedOut: boolean }> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    log(`${proc.name} still running after ${seconds(timeoutMs)}: killing it`);
    void stop(proc);
  }, timeoutMs);
  const exit = await proc.exited;
  clearTimeout(timer);
  return { exit, timedOut };
}

function describeExit(exit: Exit): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

function cleanup(): void {
  for (const child of children) {
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolveAccepts) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolveAccepts(true);
    });
    socket.once('error', () => resolveAccepts(false));
  });
}

async function waitForPort(port: number, proc: Proc, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exit !== undefined) throw new Error(`${proc.name} exited (${describeExit(proc.exit)}) before listening on port ${port}`);
    if (await accepts(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${proc.name} did not listen on port ${port} within ${seconds(timeoutMs)}`);
}

async function ensureFree(port: number): Promise<void> {
  if (await accepts(port)) {
    throw new Error(`port ${port} is already in use (a testee or wstest left over from an earlier run?)`);
  }
}

function portOf(url: string): number {
  const parsed = new URL(url);
  return Number(parsed.port || (parsed.protocol === 'wss:' ? 443 : 80));
}

async function runSetup(): Promise<number> {
  log('setup: autobahn/setup.sh');
  const started = Date.now();
  const proc = start('setup.sh', 'bash', [join(AB, 'setup.sh')], join(LOGS, 'setup.log'), (line) => console.log(line));
  const exit = await proc.exited;
  if (exit.code !== 0) throw new Error(`setup.sh failed (${describeExit(exit)}); see ${relative(ROOT, join(LOGS, 'setup.log'))}`);
  const wallMs = Date.now() - started;
  log(`setup done in ${seconds(wallMs)}`);
  return wallMs;
}

// ----------------------------------------------------------------- wstest specs and the plan

interface ServerEntry {
  agent: string;
  url: string;
}

// A wstest spec file (fuzzingclient.json or fuzzingserver.json).
interface Spec {
  outdir?: string;
  url?: string;
  servers?: ServerEntry[];
  cases?: string[];
  'exclude-cases'?: string[];
  'exclude-agent-cases'?: Record<string, string[]>;
  [key: string]: unknown;
}

function readSpec(name: string): Spec {
  return JSON.parse(readFileSync(join(AB, name), 'utf8')) as Spec;
}

// wstest's pattern rule for "exclude-agent-cases" (autobahntestsuite/caseset.py,
// parseExcludeAgentCases): '.' is literal, '*' matches anything, anchored at both ends.
function wstestPattern(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
}

// The case patterns "exclude-agent-cases" lists for agent.
function excludedPatterns(spec: Spec, agent: string): string[] {
  const patterns: string[] = [];
  for (const [agentPattern, casePatterns] of Object.entries(spec['exclude-agent-cases'] ?? {})) {
    if (wstestPattern(agentPattern).test(agent)) patterns.push(...casePatterns);
  }
  return patterns;
}

// Whether wstest skips case id for agent (it still connects, then closes at once).
function excludedFor(spec: Spec, agent: string, id: string): boolean {
  return excludedPatterns(spec, agent).some((p) => wstestPattern(p).test(id));
}

// Whether "exclude-agent-cases" leaves agent out of a whole group ("12.*" or "*").
function skipsGroup(spec: Spec, agent: string, group: string): boolean {
  return excludedPatterns(spec, agent).some((p) => p === '*' || p === `${group}.*`);
}

// One wstest run: a route, a side, a report directory under autobahn/reports,
// and the spec wstest gets (a temporary file; "outdir" is set to the report directory).
interface RunPlan {
  route: Route;
  side: Side;
  dir: string;
  what: string;
  spec: Spec;
}

// What a run found besides the report: problems fail the side; notes (what
// our testee counted) are shown.
interface RunOutput {
  problems: string[];
  notes: string[];
}

interface RunResult extends RunOutput {
  plan: RunPlan;
  wallMs: number;
}

// The runs of a phase run in parallel; phases run one after the other.
interface Phase {
  name: string;
  plans: RunPlan[];
}

interface PhaseResult {
  name: string;
  wallMs: number;
  runs: RunResult[];
}

// A route's phases; the lanes of the routes run side by side.
interface Lane {
  route: Route;
  phases: Phase[];
}

interface LaneResult {
  route: Route;
  wallMs: number;
  phases: PhaseResult[];
}

const BASE_GROUPS = 'groups 1–10';
const DEFLATE_WHAT = `groups ${DEFLATE_GROUPS.join('–')}`;

function shiftPort(url: string, by: number): string {
  const parsed = new URL(url);
  parsed.port = String(portOf(url) + by);
  return url.endsWith('/') ? parsed.href : parsed.href.replace(/\/$/, '');
}

// The spec as the route sees it: its ports shifted, and via nghttpx our agent only.
function routeSpec(spec: Spec, route: Route): Spec {
  const servers = (spec.servers ?? [])
    .filter((s) => route.name === 'direct' || s.agent === OUR_AGENT)
    .map((s) => ({ ...s, url: shiftPort(s.url, route.portShift) }));
  return { ...spec, ...(spec.servers !== undefined ? { servers } : {}), ...(spec.url !== undefined ? { url: shiftPort(spec.url, route.portShift) } : {}) };
}

function planPhases(options: Options, route: Route): Phase[] {
  const serverSpec = routeSpec(readSpec('fuzzingclient.json'), route);
  const clientSpec = routeSpec(readSpec('fuzzingserver.json'), route);
  const server = options.sides.includes('server');
  const client = options.sides.includes('client');
  const [serverDir = '', serverDeflateDir = ''] = reportDirs(route, 'server');
  const [clientDir = '', clientDeflateDir = ''] = reportDirs(route, 'client');
  const name = (letter: string, what: string): string => `${route.tag === '' ? '' : `${route.tag} `}${letter}${what}, ${route.title}`;
  const plan = (side: Side, dir: string, what: string, spec: Spec): RunPlan => ({ route, side, dir, what, spec });
  const phases: Phase[] = [];

  if (options.cases !== undefined) {
    // Just these cases: one run per side, one after the other.
    const what = `cases ${options.cases.join(', ')}`;
    const only = (spec: Spec): Spec => ({ ...spec, cases: options.cases, 'exclude-cases': [] });
    if (server) phases.push({ name: name('', `server side, ${what}`), plans: [plan('server', serverDir, what, only(serverSpec))] });
    if (client) phases.push({ name: name('', `client side, ${what}`), plans: [plan('client', clientDir, what, only(clientSpec))] });
    return phases;
  }

  const withoutDeflate = (spec: Spec): Spec => ({ ...spec, 'exclude-cases': [...(spec['exclude-cases'] ?? []), ...DEFLATE_PATTERNS] });
  const deflateOnly = (spec: Spec): Spec => ({ ...spec, cases: [...DEFLATE_PATTERNS] });
  if (server) {
    const agents = (serverSpec.servers ?? []).map((s) => s.agent).join(' and ');
    phases.push({
      name: name('a: ', `server side, ${BASE_GROUPS}, ${agents}`),
      plans: [plan('server', serverDir, BASE_GROUPS, withoutDeflate(serverSpec))],
    });
  }
  if (client) {
    phases.push({
      name: name('b: ', `client side, ${BASE_GROUPS}, ${Object.keys(CLIENTS).join(' and ')}`),
      plans: [plan('client', clientDir, BASE_GROUPS, withoutDeflate(clientSpec))],
    });
  }
  const deflate: RunPlan[] = [];
  if (server) {
    // Servers whose "exclude-agent-cases" covers every deflate group (ws) stay out.
    const servers = (serverSpec.servers ?? []).filter((s) => !DEFLATE_GROUPS.every((g) => skipsGroup(serverSpec, s.agent, g)));
    if (servers.length > 0) deflate.push(plan('server', serverDeflateDir, DEFLATE_WHAT, { ...deflateOnly(serverSpec), servers }));
  }
  if (client) deflate.push(plan('client', clientDeflateDir, DEFLATE_WHAT, deflateOnly(clientSpec)));
  if (deflate.length > 0) {
    const agents = [...new Set(deflate.flatMap((p) => (p.side === 'server' ? (p.spec.servers ?? []).map((s) => s.agent) : Object.keys(CLIENTS))))];
    phases.push({
      name: name('c: ', `${DEFLATE_WHAT}, ${agents.join(' and ')}, ${deflate.map((p) => `${p.side} side`).join(' ‖ ')}${deflate.length > 1 ? ' in parallel' : ''}`),
      plans: deflate,
    });
  }
  return phases;
}

// ----------------------------------------------------------------- wstest runs

// A run's temporary files: wstest's spec and, via nghttpx, the certificate of
// the TLS hop (nghttpx's frontend on the client side, our server on the server side).
interface RunFiles {
  spec: string;
  pem: Certificate | undefined;
  remove: () => void;
}

async function writeRunFiles(plan: RunPlan): Promise<RunFiles> {
  const dir = mkdtempSync(join(tmpdir(), 'autobahn-'));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    const spec = join(dir, plan.side === 'server' ? 'fuzzingclient.json' : 'fuzzingserver.json');
    writeFileSync(spec, `${JSON.stringify({ ...plan.spec, outdir: join(REPORTS, plan.dir) }, null, 2)}\n`);
    const pem = plan.route.name === 'nghttpx' ? await selfSignedCertificate(dir) : undefined;
    return { spec, pem, remove };
  } catch (error) {
    remove();
    throw error;
  }
}

interface Started {
  proc: Proc;
  logFile: string;
}

// nghttpx from port front to port back (see nghttpxArgs), once it listens.
async function startNghttpx(plan: RunPlan, front: number, back: number, pem: Certificate): Promise<Started> {
  await ensureFree(front);
  const logFile = join(LOGS, `${plan.dir}-nghttpx.log`);
  const proc = start(`nghttpx (${plan.dir})`, nghttpxCommand(), nghttpxArgs(plan.side, front, back, pem), logFile);
  try {
    await waitForPort(front, proc);
  } catch (error) {
    await stop(proc);
    throw new Error(`${error instanceof Error ? error.message : String(error)}; see ${relative(ROOT, logFile)}`);
  }
  log(`${plan.dir}: nghttpx on 127.0.0.1:${front}${plan.side === 'server' ? '' : ' (TLS)'} → 127.0.0.1:${back}${plan.side === 'server' ? ' (h2, TLS)' : ''}`);
  return { proc, logFile };
}

// Stops what a run started, last started first; one that was already gone is a problem.
async function stopAll(started: Started[], out: RunOutput): Promise<void> {
  for (const { proc, logFile } of [...started].reverse()) {
    if (proc.exit !== undefined) out.problems.push(`${proc.name} exited during the run (${describeExit(proc.exit)}); see ${relative(ROOT, logFile)}`);
    await stop(proc, 5_000);
  }
}

// Collects the line our testee prints about its handshakes (autobahn/versions.ts).
function statsWatcher(): { onLine: (line: string) => void; stats: () => VersionStats | undefined } {
  let stats: VersionStats | undefined;
  return {
    onLine: (line) => {
      stats = parseVersionLine(line) ?? stats;
    },
    stats: () => stats,
  };
}

// Every handshake of our testee must have come over the route's HTTP version,
// at least one per case; the counts become a note of the run.
function checkHandshakes(plan: RunPlan, who: string, stats: VersionStats | undefined, out: RunOutput): void {
  const want = plan.route.httpVersion;
  const field = plan.side === 'server' ? 'ws.request.httpVersion' : 'ws.response.httpVersion';
  if (stats === undefined) {
    out.problems.push(`${who} did not say which HTTP versions carried its handshakes (${field})`);
    return;
  }
  const cases = readExpected(plan.dir).get(OUR_AGENT)?.length ?? 0;
  const total = Object.values(stats.versions).reduce((sum, n) => sum + n, 0);
  const counts = Object.entries(stats.versions).map(([version, n]) => `${n} over HTTP/${version || '?'}`).join(', ');
  if (total !== (stats.versions[want] ?? 0) || total < cases) {
    out.problems.push(`${who}: handshakes ${counts || 'none'} (${field}); expected every one, at least ${cases}, over HTTP/${want}`);
  }
  out.notes.push(
    `${who}: ${total} handshakes, ${counts || 'none'} (${field}); at most ${stats.maxOpen} open at once; ` +
      `the slowest close took ${stats.slowestCloseMs} ms after its last message.`,
  );
}

// Records, per agent, the cases wstest announces minus those "exclude-agent-cases"
// skips for that agent: what the report should hold.
function writeExpected(plan: RunPlan, cases: string[], agents: string[]): Map<string, number> {
  const dir = join(REPORTS, plan.dir);
  mkdirSync(dir, { recursive: true });
  const perAgent: Record<string, string[]> = {};
  for (const agent of agents) perAgent[agent] = cases.filter((id) => !excludedFor(plan.spec, agent, id));
  writeFileSync(join(dir, 'expected.json'), `${JSON.stringify({ agents, cases: perAgent }, null, 2)}\n`);
  return new Map(Object.entries(perAgent).map(([agent, ids]) => [agent, ids.length]));
}

// Follows wstest's output: records the case list it announces and prints a
// progress line whenever the case group or agent changes (and every 30 s).
function wstestProgress(plan: RunPlan, agents: string[]): { onLine: (line: string) => void; done: () => void } {
  const label = plan.dir;
  const started = Date.now();
  let lastGroup = '';
  let lastCase = '';
  let lastPrint = Date.now();
  let totals = new Map<string, number>();
  const counts = new Map<string, number>();
  const skipping = new Set<string>();
  const heartbeat = setInterval(() => {
    if (Date.now() - lastPrint >= 30_000) {
      log(`${label}: still running, last case ${lastCase || '(none yet)'} (${seconds(Date.now() - started)})`);
      lastPrint = Date.now();
    }
  }, 5_000);
  const onLine = (line: string): void => {
    const running = /^Running test case ID (\S+) for agent (.+) from peer/.exec(line);
    if (running !== null) {
      const [, id = '', agent = ''] = running;
      if (excludedFor(plan.spec, agent, id)) return; // wstest skips it right after the handshake
      const n = (counts.get(agent) ?? 0) + 1;
      counts.set(agent, n);
      lastCase = `${id} (${agent})`;
      const group = `${agent} ${groupOf(id)}`;
      if (group !== lastGroup) {
        lastGroup = group;
        lastPrint = Date.now();
        log(`${label}: ${agent}: case ${id} (${n}/${totals.get(agent) ?? '?'}, ${seconds(Date.now() - started)})`);
      }
      return;
    }
    const skipped = /^Skipping test case (\S+) for agent (.+) by test configuration/.exec(line);
    if (skipped !== null) {
      const agent = skipped[2] ?? '';
      if (!skipping.has(agent)) {
        skipping.add(agent);
        log(`${label}: ${agent}: skipping the cases "exclude-agent-cases" excludes for it`);
      }
      return;
    }
    const cases = /^Cases = \[(.*)\]/.exec(line);
    if (cases !== null) {
      const ids = [...(cases[1] ?? '').matchAll(/'([0-9.]+)'/g)].map((m) => m[1] ?? '');
      totals = writeExpected(plan, ids, agents);
      return;
    }
    if (/^(Running test case|Skipping test case)/.test(line) || line.trim() === '') return;
    console.log(`  [${label}] ${line}`);
  };
  return { onLine, done: () => clearInterval(heartbeat) };
}

// Via nghttpx, our server listens NGHTTPX_HOP above the port wstest connects
// to, with TLS and http2: true, and nghttpx takes wstest's port.
async function runServerSide(plan: RunPlan, options: Options, out: RunOutput): Promise<void> {
  const servers = plan.spec.servers ?? [];
  const agents = servers.map((s) => s.agent);
  const started: Started[] = [];
  const ours = statsWatcher();
  const files = await writeRunFiles(plan);
  const { pem } = files;
  try {
    for (const server of servers) {
      const script = TESTEES[server.agent];
      if (script === undefined) throw new Error(`no testee program for agent ${server.agent} in fuzzingclient.json`);
      if (!existsSync(script)) throw new Error(`${relative(ROOT, script)} is missing: build first (npm run build)`);
      const port = portOf(server.url);
      const testeePort = pem !== undefined ? port + NGHTTPX_HOP : port;
      await ensureFree(testeePort);
      const logFile = join(LOGS, `${plan.dir}-testee-${server.agent}.log`);
      const args = [script, String(testeePort), ...(pem !== undefined ? [pem.keyFile, pem.certFile] : [])];
      const proc = start(`testee ${server.agent}`, process.execPath, args, logFile, server.agent === OUR_AGENT ? ours.onLine : undefined);
      started.push({ proc, logFile });
      await waitForPort(testeePort, proc);
      log(`${plan.dir}: ${server.agent} testee listening on 127.0.0.1:${testeePort}${pem !== undefined ? ' (TLS, HTTP/1.1 and h2)' : ''}`);
      if (pem !== undefined) started.push(await startNghttpx(plan, port, testeePort, pem));
    }

    const logFile = join(LOGS, `${plan.dir}-wstest.log`);
    log(`${plan.dir}: wstest -m fuzzingclient, ${plan.what} (bounded to ${seconds(options.timeoutMs)}; log: ${relative(ROOT, logFile)})`);
    const progress = wstestProgress(plan, agents);
    const wstest = start(`wstest fuzzingclient (${plan.dir})`, WSTEST, ['-m', 'fuzzingclient', '-s', files.spec], logFile, progress.onLine);
    const { exit, timedOut } = await bounded(wstest, options.timeoutMs);
    progress.done();
    if (timedOut) out.problems.push(`wstest fuzzingclient (${plan.what}) did not finish within ${seconds(options.timeoutMs)} and was killed`);
    else if (exit.code !== 0) out.problems.push(`wstest fuzzingclient (${plan.what}) ended with ${describeExit(exit)}; see ${relative(ROOT, logFile)}`);
  } finally {
    // Our testee prints its handshake count when it stops.
    await stopAll(started, out);
    files.remove();
  }
  if (agents.includes(OUR_AGENT)) checkHandshakes(plan, `the ${OUR_AGENT} server`, ours.stats(), out);
}

// Via nghttpx, our client goes to nghttpx's TLS frontend, NGHTTPX_HOP above
// the port wstest listens on, with http2: true.
async function runClientSide(plan: RunPlan, options: Options, out: RunOutput): Promise<void> {
  for (const script of Object.values(CLIENTS)) {
    if (!existsSync(script)) throw new Error(`${relative(ROOT, script)} is missing: build first (npm run build)`);
  }
  const url = plan.spec.url ?? 'ws://127.0.0.1:9003';
  const port = portOf(url);
  await ensureFree(port);

  const files = await writeRunFiles(plan);
  const { pem } = files;
  const logFile = join(LOGS, `${plan.dir}-wstest.log`);
  log(`${plan.dir}: wstest -m fuzzingserver on ${url}, ${plan.what} (log: ${relative(ROOT, logFile)})`);
  const progress = wstestProgress(plan, Object.keys(CLIENTS));
  const wstest = start(`wstest fuzzingserver (${plan.dir})`, WSTEST, ['-m', 'fuzzingserver', '-s', files.spec, '--webport', '0'], logFile, progress.onLine);
  const started: Started[] = [{ proc: wstest, logFile }];
  try {
    await waitForPort(port, wstest, 60_000);
    let target = url;
    let flags: string[] = [];
    if (pem !== undefined) {
      started.push(await startNghttpx(plan, port + NGHTTPX_HOP, port, pem));
      target = `wss://127.0.0.1:${port + NGHTTPX_HOP}`;
      flags = ['--http2', '--ca', pem.certFile];
    }
    for (const [agent, script] of Object.entries(CLIENTS)) {
      const clientLog = join(LOGS, `${plan.dir}-client-${agent}.log`);
      log(`${plan.dir}: ${agent}: ${relative(ROOT, script)} ${[target, ...flags].join(' ')} (bounded to ${seconds(options.timeoutMs)})`);
      const stats = statsWatcher();
      const client = start(`${agent} client`, process.execPath, [script, target, agent, ...flags], clientLog, (line) => {
        stats.onLine(line);
        console.log(`  [${plan.dir}] ${line}`);
      });
      const { exit, timedOut } = await bounded(client, options.timeoutMs);
      if (timedOut) out.problems.push(`the ${agent} client (${plan.what}) did not finish within ${seconds(options.timeoutMs)} and was killed`);
      else if (exit.code !== 0) out.problems.push(`the ${agent} client (${plan.what}) ended with ${describeExit(exit)}; see ${relative(ROOT, clientLog)}`);
      if (agent === OUR_AGENT) checkHandshakes(plan, `the ${agent} client`, stats.stats(), out);
      if (wstest.exit !== undefined) break;
    }
  } finally {
    progress.done();
    await stopAll(started, out);
    files.remove();
  }
}

async function runPlan(plan: RunPlan, options: Options): Promise<RunResult> {
  const started = Date.now();
  const out: RunOutput = { problems: [], notes: [] };
  try {
    if (plan.side === 'server') await runServerSide(plan, options, out);
    else await runClientSide(plan, options, out);
  } catch (error) {
    out.problems.push(error instanceof Error ? error.message : String(error));
  }
  const wallMs = Date.now() - started;
  log(`${plan.dir}: done in ${seconds(wallMs)}${out.problems.length > 0 ? ` (${out.problems.length} problem(s))` : ''}`);
  return { plan, wallMs, ...out };
}

async function runPhases(phases: Phase[], options: Options): Promise<PhaseResult[]> {
  const results: PhaseResult[] = [];
  for (const phase of phases) {
    log(`phase ${phase.name}`);
    const started = Date.now();
    const runs = await Promise.all(phase.plans.map((plan) => runPlan(plan, options)));
    const wallMs = Date.now() - started;
    log(`phase ${phase.name}: done in ${seconds(wallMs)}`);
    results.push({ name: phase.name, wallMs, runs });
  }
  return results;
}

function runLanes(lanes: Lane[], options: Options): Promise<LaneResult[]> {
  return Promise.all(
    lanes.map(async ({ route, phases }) => {
      const started = Date.now();
      const results = await runPhases(phases, options);
      return { route, wallMs: Date.now() - started, phases: results };
    }),
  );
}

// ----------------------------------------------------------------- reports

interface IndexEntry {
  behavior: string;
  behaviorClose: string;
  duration: number;
  remoteCloseCode: number | null;
  reportfile: string;
}
type Index = Record<string, Record<string, IndexEntry>>;

// A result with the report directory it comes from.
interface Result extends IndexEntry {
  dir: string;
}

interface CaseReport {
  description?: string;
  expectation?: string;
  result?: string;
  resultClose?: string;
  localCloseCode?: number | null;
  remoteCloseCode?: number | null;
  wasClean?: boolean;
  wasNotCleanReason?: string | null;
  droppedByMe?: boolean;
}

const COLUMNS = ['OK', 'NON-STRICT', 'INFORMATIONAL', 'UNIMPLEMENTED', 'FAILED'] as const;
type Column = (typeof COLUMNS)[number];

// wstest's other verdicts (WRONG CODE, UNCLEAN, FAILED BY CLIENT, NO_CLOSE) count as FAILED.
function column(value: string): Column {
  return (COLUMNS as readonly string[]).includes(value) ? (value as Column) : 'FAILED';
}

function compareIds(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? -1) - (pb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

function groupOf(id: string): string {
  return id.split('.')[0] ?? id;
}

// Why a case of our agent is not accepted, or undefined if it is.
function rejection(id: string, entry: Result | undefined): string | undefined {
  if (entry === undefined) return 'MISSING from the report';
  const { behavior, behaviorClose } = entry;
  if (behavior === 'OK' && behaviorClose === 'OK') return undefined;
  if (INFORMATIONAL_CASES.has(id) && [behavior, behaviorClose].every((v) => v === 'OK' || v === 'INFORMATIONAL')) return undefined;
  return `behavior ${behavior}, behaviorClose ${behaviorClose}`;
}

function clip(text: string | null | undefined, max = 600): string {
  const t = (text ?? '').replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function readCaseReport(entry: Result): CaseReport {
  try {
    return JSON.parse(readFileSync(join(REPORTS, entry.dir, entry.reportfile), 'utf8')) as CaseReport;
  } catch {
    return {};
  }
}

// The expected cases per agent of one report directory; expected.json is
// written when wstest announces its case list. (An older format had one case
// list for all agents.)
function readExpected(dir: string): Map<string, string[]> {
  const expected = new Map<string, string[]>();
  try {
    const raw = JSON.parse(readFileSync(join(REPORTS, dir, 'expected.json'), 'utf8')) as { agents?: string[]; cases?: string[] | Record<string, string[]> };
    for (const agent of raw.agents ?? []) {
      expected.set(agent, Array.isArray(raw.cases) ? raw.cases : (raw.cases?.[agent] ?? []));
    }
  } catch {
    // no expected.json: only what the report holds
  }
  return expected;
}

function hasReport(dir: string): boolean {
  return existsSync(join(REPORTS, dir, 'index.json')) || existsSync(join(REPORTS, dir, 'expected.json'));
}

interface SideSummary {
  markdown: string[];
  passed: boolean;
  ninesMs: Map<string, number>;
}

// A section of the summary: one route, one side.
interface Section {
  route: Route;
  side: Side;
}

function sectionTitle({ route, side }: Section): string {
  const path =
    route.name === 'direct'
      ? side === 'server'
        ? 'wstest fuzzingclient → echo servers'
        : 'echo client → wstest fuzzingserver'
      : side === 'server'
        ? 'wstest fuzzingclient → HTTP/1.1 → nghttpx → RFC 8441 over h2, TLS → echo server'
        : 'echo client → RFC 8441 over h2, TLS → nghttpx → HTTP/1.1 → wstest fuzzingserver';
  return `${side === 'server' ? 'Server' : 'Client'} side, ${route.title} (${path})`;
}

// One section per route and direction: every report directory of that side
// merged into one table per agent.
function summariseSide(section: Section, runs: RunResult[] | undefined): SideSummary {
  const md: string[] = [`## ${sectionTitle(section)}`, ''];
  const ninesMs = new Map<string, number>();
  let passed = true;

  // The directories to merge: those this invocation wrote, or (--only summary) those on disk.
  const dirs = runs !== undefined ? runs.map((r) => r.plan.dir) : reportDirs(section.route, section.side).filter(hasReport);
  for (const run of runs ?? []) {
    md.push(`- ${relative(ROOT, join(REPORTS, run.plan.dir, 'index.html'))} (${run.plan.what}): wall-clock time ${seconds(run.wallMs)}.`);
    for (const note of run.notes) md.push(`  - ${note}`);
  }
  if (runs === undefined) for (const dir of dirs) md.push(`- ${relative(ROOT, join(REPORTS, dir, 'index.html'))}`);
  md.push('', 'Per case: the linked .html/.json files next to each index.html.', '');
  const problems = (runs ?? []).flatMap((r) => r.problems);
  for (const problem of problems) md.push(`- **Problem:** ${problem}`);
  if (problems.length > 0) {
    md.push('');
    passed = false;
  }
  if (dirs.length === 0) {
    md.push(`**No report** in ${relative(ROOT, REPORTS)} for this side.`, '');
    return { markdown: md, passed: false, ninesMs };
  }

  const index = new Map<string, Map<string, Result>>();
  const expected = new Map<string, Set<string>>();
  for (const dir of dirs) {
    for (const [agent, ids] of readExpected(dir)) {
      const set = expected.get(agent) ?? new Set<string>();
      for (const id of ids) set.add(id);
      expected.set(agent, set);
    }
    const indexFile = join(REPORTS, dir, 'index.json');
    if (!existsSync(indexFile)) {
      md.push(`**No report**: ${relative(ROOT, indexFile)} does not exist.`, '');
      passed = false;
      continue;
    }
    const raw = JSON.parse(readFileSync(indexFile, 'utf8')) as Index;
    for (const [agent, cases] of Object.entries(raw)) {
      const results = index.get(agent) ?? new Map<string, Result>();
      for (const [id, entry] of Object.entries(cases)) results.set(id, { ...entry, dir });
      index.set(agent, results);
    }
  }

  const agents = [...new Set([...expected.keys(), ...index.keys()])].sort((a, b) =>
    a === OUR_AGENT ? -1 : b === OUR_AGENT ? 1 : a.localeCompare(b),
  );
  if (!agents.includes(OUR_AGENT)) agents.unshift(OUR_AGENT);

  for (const agent of agents) {
    const results = index.get(agent) ?? new Map<string, Result>();
    const ids = [...new Set([...(expected.get(agent) ?? []), ...results.keys()])].sort(compareIds);
    const groups = [...new Set(ids.map(groupOf))].sort((a, b) => Number(a) - Number(b));
    const all = [...results.entries()];
    const totalMs = all.reduce((sum, [, e]) => sum + (e.duration ?? 0), 0);
    const nines = all.filter(([id]) => groupOf(id) === '9').reduce((sum, [, e]) => sum + (e.duration ?? 0), 0);
    ninesMs.set(agent, nines);
    const gating = agent === OUR_AGENT;

    md.push(`### ${agent}${gating ? '' : ' (reference, does not gate)'}`, '');
    md.push(`${results.size} of ${ids.length} cases reported; sum of case durations ${seconds(totalMs)} (9.*: ${seconds(nines)}).`, '');
    md.push('| Group | Cases | OK | NON-STRICT | INFO | UNIMPL | FAILED | Close OK | Close NON-STRICT | Close INFO | Close UNIMPL | Close FAILED | Missing |');
    md.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
    const totals = { cases: 0, missing: 0, behavior: new Map<Column, number>(), close: new Map<Column, number>() };
    for (const group of groups) {
      const groupIds = ids.filter((id) => groupOf(id) === group);
      const behavior = new Map<Column, number>();
      const close = new Map<Column, number>();
      let missing = 0;
      for (const id of groupIds) {
        const entry = results.get(id);
        if (entry === undefined) {
          missing++;
          continue;
        }
        const b = column(entry.behavior);
        const c = column(entry.behaviorClose);
        behavior.set(b, (behavior.get(b) ?? 0) + 1);
        close.set(c, (close.get(c) ?? 0) + 1);
        totals.behavior.set(b, (totals.behavior.get(b) ?? 0) + 1);
        totals.close.set(c, (totals.close.get(c) ?? 0) + 1);
      }
      totals.cases += groupIds.length;
      totals.missing += missing;
      const cells = [...COLUMNS.map((k) => behavior.get(k) ?? 0), ...COLUMNS.map((k) => close.get(k) ?? 0), missing];
      md.push(`| ${group} ${GROUP_NAMES[group] ?? ''} | ${groupIds.length} | ${cells.join(' | ')} |`);
    }
    const totalCells = [...COLUMNS.map((k) => totals.behavior.get(k) ?? 0), ...COLUMNS.map((k) => totals.close.get(k) ?? 0), totals.missing];
    md.push(`| **all** | ${totals.cases} | ${totalCells.join(' | ')} |`, '');

    if (!gating) continue;

    // Our agent: every case that is not OK.
    const failing: string[] = [];
    const informational: string[] = [];
    for (const id of ids) {
      const entry = results.get(id);
      if (rejection(id, entry) !== undefined) failing.push(id);
      else if (entry !== undefined && (entry.behavior !== 'OK' || entry.behaviorClose !== 'OK')) informational.push(id);
    }
    if (ids.length === 0) {
      md.push('**No cases were reported for this agent.**', '');
      passed = false;
    }
    if (failing.length > 0) passed = false;

    md.push(`#### ${agent}: cases that are not OK`, '');
    if (failing.length === 0 && informational.length === 0) md.push('None.', '');
    if (failing.length > 0) {
      md.push(`**${failing.length} failing** (not accepted by the pass rule):`, '');
      for (const id of failing) md.push(...describeCase(id, results.get(id), rejection(id, results.get(id)) ?? ''), '');
    }
    if (informational.length > 0) {
      md.push(`Accepted as INFORMATIONAL (implementation-defined outcome): ${informational.length}`, '');
      for (const id of informational) md.push(...describeCase(id, results.get(id), 'INFORMATIONAL (accepted)'), '');
    }
  }
  return { markdown: md, passed, ninesMs };
}

function describeCase(id: string, entry: Result | undefined, verdict: string): string[] {
  if (entry === undefined) return [`- **${id}**: MISSING: the report has no result for this case.`];
  const r = readCaseReport(entry);
  const lines = [
    `- **${id}**: ${verdict}`,
    `  - Description: ${clip(r.description)}`,
    `  - Expectation: ${clip(r.expectation)}`,
    `  - Result: ${clip(r.result)}`,
    `  - Close: ${clip(r.resultClose)} (remote close code ${r.remoteCloseCode ?? entry.remoteCloseCode ?? 'none'}, local ${r.localCloseCode ?? 'none'}, ` +
      `clean ${r.wasClean === undefined ? '?' : String(r.wasClean)}${r.wasNotCleanReason ? `: ${clip(r.wasNotCleanReason, 200)}` : ''}` +
      `${r.droppedByMe ? ', dropped by wstest' : ''})`,
    `  - Report: ${relative(ROOT, join(REPORTS, entry.dir, entry.reportfile.replace(/\.json$/, '.html')))}`,
  ];
  return lines;
}

interface Timing {
  setupMs: number | undefined;
  lanes: LaneResult[];
  totalMs: number;
}

function timingLines(timing: Timing): string[] {
  const lines = ['| Phase | Wall time |', '|---|--:|'];
  if (timing.setupMs !== undefined) lines.push(`| setup.sh | ${seconds(timing.setupMs)} |`);
  for (const lane of timing.lanes) {
    for (const phase of lane.phases) {
      const runs = phase.runs.length > 1 ? ` (${phase.runs.map((r) => `${r.plan.dir} ${seconds(r.wallMs)}`).join(', ')})` : '';
      lines.push(`| ${phase.name} | ${seconds(phase.wallMs)}${runs} |`);
    }
    if (timing.lanes.length > 1) lines.push(`| ${lane.route.title}, all its phases | ${seconds(lane.wallMs)} |`);
  }
  lines.push(`| **total**${timing.lanes.length > 1 ? ` (${timing.lanes.map((l) => l.route.title).join(' ‖ ')} side by side)` : ''} | ${seconds(timing.totalMs)} |`);
  return lines;
}

// The 9.* (Limits/Performance) durations of the server sides.
function performanceLines(summaries: ReadonlyMap<Section, SideSummary>, lanes: number): string[] {
  const nines = (name: RouteName, agent: string): number | undefined =>
    [...summaries].find(([section]) => section.side === 'server' && section.route.name === name)?.[1].ninesMs.get(agent);
  const ours = nines('direct', OUR_AGENT);
  const theirs = nines('direct', WS_AGENT);
  const overH2 = nines('nghttpx', OUR_AGENT);
  const lines: string[] = [];
  if (ours !== undefined && theirs !== undefined && theirs > 0 && ours > 0) {
    lines.push(`- ${OUR_AGENT} ${seconds(ours)} ÷ ${WS_AGENT} ${seconds(theirs)} = **${(ours / theirs).toFixed(2)}** (sum of 9.* case durations; lower is faster).`);
  } else if (ours !== undefined && ours > 0) {
    lines.push(`- ${OUR_AGENT} ${seconds(ours)} (no ${WS_AGENT} run to compare with).`);
  }
  if (overH2 !== undefined && overH2 > 0) {
    const ratio = ours !== undefined && ours > 0 ? ` ÷ ${ROUTES.direct.title} ${seconds(ours)} = **${(overH2 / ours).toFixed(2)}**` : '';
    lines.push(`- ${OUR_AGENT} ${ROUTES.nghttpx.title}: ${seconds(overH2)}${ratio} (nghttpx and TLS included).`);
  }
  if (lines.length === 0) lines.push([...summaries.keys()].some((s) => s.side === 'server') ? '- No 9.* results.' : '- The server side did not run: no comparison.');
  else if (lanes > 1) lines.push('- The routes ran side by side: these timings share the machine (`--via direct` for a quiet one).');
  return lines;
}

function summarise(lanes: LaneResult[] | undefined, sections: Section[], skipped: string[], setupMs: number | undefined, started: number): boolean {
  const md: string[] = ['# Autobahn testsuite summary', ''];
  const totalMs = Date.now() - started;
  md.push(`Generated ${new Date().toISOString()} by \`node build/autobahn/run.js\`; total run time ${seconds(totalMs)}.`, '');
  md.push(
    `Pass rule: every case of ${OUR_AGENT} (groups 1–13, compression included) is OK for behavior and behaviorClose, on every route; ` +
      `INFORMATIONAL is accepted only for ${[...INFORMATIONAL_CASES].join(', ')} (implementation-defined by the testsuite); ` +
      `NON-STRICT, UNIMPLEMENTED and everything else fail; and every handshake of ${OUR_AGENT} came over the route's HTTP version. ` +
      `The ws agent is a reference (${BASE_GROUPS}, server side, ${ROUTES.direct.title} only) and never gates.`,
    '',
  );
  for (const line of skipped) md.push(`- ${line}`, '');
  if (lanes !== undefined) md.push('## Run times', '', ...timingLines({ setupMs, lanes, totalMs }), '');

  const summaries = new Map<Section, SideSummary>();
  const allRuns = lanes?.flatMap((lane) => lane.phases.flatMap((p) => p.runs));
  for (const section of sections) {
    const s = summariseSide(section, allRuns?.filter((r) => r.plan.route === section.route && r.plan.side === section.side));
    summaries.set(section, s);
    md.push(...s.markdown);
  }

  md.push('## Performance (9.* Limits/Performance, server side)', '', ...performanceLines(summaries, lanes?.length ?? 0), '');
  const passed = [...summaries.values()].every((s) => s.passed);
  md.push('## Verdict', '');
  for (const [section, s] of summaries) md.push(`- ${section.side === 'server' ? 'Server' : 'Client'} side, ${section.route.title}: ${s.passed ? 'PASS' : 'FAIL'}`);
  md.push('', `## Verdict: ${passed ? 'PASS' : 'FAIL'}`, '');
  const text = `${md.join('\n')}\n`;
  writeFileSync(SUMMARY, text);
  console.log(`\n${text}`);
  log(`summary written to ${relative(ROOT, SUMMARY)}`);
  return passed;
}

// ----------------------------------------------------------------- main

async function main(): Promise<number> {
  const options = parseOptions();
  const started = Date.now();
  mkdirSync(LOGS, { recursive: true });
  let lanes: LaneResult[] | undefined;
  let setupMs: number | undefined;
  let routes = options.routes;
  const skipped: string[] = [];
  if (options.run) {
    // nghttpx is a system peer (test/peers.ts): without it, one SKIPPED line;
    // with CI=true its route runs anyway and fails.
    routes = routes.filter((route) => {
      const reason = route.name === 'nghttpx' && peerMissing(NGHTTPX);
      if (reason !== false) skipped.push(`${route.title}: ${reason}`);
      return reason === false;
    });
    if (routes.length === 0) return 0; // skipped, as said
    if (options.setup) setupMs = await runSetup();
    if (!existsSync(WSTEST)) throw new Error(`${WSTEST} is missing: run autobahn/setup.sh`);
    const plan = routes.map((route) => ({ route, phases: planPhases(options, route) }));
    // A side that runs starts from empty report directories, so that the
    // summary never merges reports of different runs.
    for (const route of routes) for (const side of options.sides) for (const dir of reportDirs(route, side)) rmSync(join(REPORTS, dir), { recursive: true, force: true });
    lanes = await runLanes(plan, options);
  }
  const sections = routes
    .flatMap((route) => options.sides.map((side) => ({ route, side })))
    .filter(({ route, side }) => options.run || reportDirs(route, side).some(hasReport));
  if (sections.length === 0) throw new Error('no reports to summarise');
  const passed = summarise(lanes, sections, skipped, setupMs, started);
  if (lanes !== undefined) {
    if (setupMs !== undefined) log(`time: setup.sh ${seconds(setupMs)}`);
    for (const lane of lanes) {
      for (const phase of lane.phases) log(`time: phase ${phase.name}: ${seconds(phase.wallMs)}`);
      if (lanes.length > 1) log(`time: ${lane.route.title}, all its phases: ${seconds(lane.wallMs)}`);
    }
    log(`time: total ${seconds(Date.now() - started)}`);
  }
  log(passed ? 'PASS' : 'FAIL');
  return passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`[autobahn] error: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  },
);
