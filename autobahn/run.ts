// Runs the Autobahn testsuite (crossbario's wstest) against websockets.ts and,
// for comparison, the `ws` package, then summarises the reports.
//
//   npx esbuild autobahn/*.ts --bundle --platform=node --format=esm --packages=external --outdir=build/autobahn
//   node build/autobahn/run.js [--only server|client|summary] [--cases 1.*,2.*] [--skip-setup] [--timeout-minutes N]
//
// 1. autobahn/setup.sh installs wstest into autobahn/.tooling (cached).
// 2. Phase a, server side, groups 1–11: starts build/autobahn/server.js
//    (websockets.ts) and build/autobahn/ws-server.js (ws) and runs
//    `wstest -m fuzzingclient` against both; reports in autobahn/reports/servers.
//    Nothing else runs meanwhile, so the 9.* timings of the two compare.
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
// (into reports/servers, reports/clients).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

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

// Report directories under autobahn/reports, per side, in summary order.
const REPORT_DIRS: Readonly<Record<Side, readonly string[]>> = {
  server: ['servers', 'servers-deflate'],
  client: ['clients', 'clients-deflate'],
};

const USAGE = `usage: node build/autobahn/run.js [options]
  --only server|client|summary  run only the server side (wstest fuzzingclient against
                                our and ws's echo servers), only the client side (our
                                echo client against wstest fuzzingserver), or only
                                summarise the reports already in autobahn/reports
  --cases 1.*,2.*               run just these cases (one wstest run per side)
  --skip-setup                  do not run autobahn/setup.sh
  --timeout-minutes N           bound for each wstest run (default 25)
  -h, --help`;

interface Options {
  sides: Side[];
  run: boolean;
  cases: string[] | undefined;
  setup: boolean;
  timeoutMs: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
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
  const minutes = Number(values['timeout-minutes']);
  if (!(minutes > 0)) throw new Error('--timeout-minutes must be a positive number');
  const cases = values.cases
    ?.split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  return {
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

// One wstest run: a side, a report directory under autobahn/reports, and the
// spec wstest gets (a temporary file; "outdir" is set to the report directory).
interface RunPlan {
  side: Side;
  dir: string;
  what: string;
  spec: Spec;
}

interface RunResult {
  plan: RunPlan;
  wallMs: number;
  problems: string[];
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

const BASE_GROUPS = 'groups 1–10';
const DEFLATE_WHAT = `groups ${DEFLATE_GROUPS.join('–')}`;

function planPhases(options: Options): Phase[] {
  const serverSpec = readSpec('fuzzingclient.json');
  const clientSpec = readSpec('fuzzingserver.json');
  const server = options.sides.includes('server');
  const client = options.sides.includes('client');
  const phases: Phase[] = [];

  if (options.cases !== undefined) {
    // Just these cases: one run per side, one after the other.
    const what = `cases ${options.cases.join(', ')}`;
    const only = (spec: Spec): Spec => ({ ...spec, cases: options.cases, 'exclude-cases': [] });
    if (server) phases.push({ name: `server side, ${what}`, plans: [{ side: 'server', dir: 'servers', what, spec: only(serverSpec) }] });
    if (client) phases.push({ name: `client side, ${what}`, plans: [{ side: 'client', dir: 'clients', what, spec: only(clientSpec) }] });
    return phases;
  }

  const withoutDeflate = (spec: Spec): Spec => ({ ...spec, 'exclude-cases': [...(spec['exclude-cases'] ?? []), ...DEFLATE_PATTERNS] });
  const deflateOnly = (spec: Spec): Spec => ({ ...spec, cases: [...DEFLATE_PATTERNS] });
  if (server) {
    const agents = (serverSpec.servers ?? []).map((s) => s.agent).join(' and ');
    phases.push({
      name: `a: server side, ${BASE_GROUPS}, ${agents}`,
      plans: [{ side: 'server', dir: 'servers', what: BASE_GROUPS, spec: withoutDeflate(serverSpec) }],
    });
  }
  if (client) {
    phases.push({
      name: `b: client side, ${BASE_GROUPS}, ${Object.keys(CLIENTS).join(' and ')}`,
      plans: [{ side: 'client', dir: 'clients', what: BASE_GROUPS, spec: withoutDeflate(clientSpec) }],
    });
  }
  const deflate: RunPlan[] = [];
  if (server) {
    // Servers whose "exclude-agent-cases" covers every deflate group (ws) stay out.
    const servers = (serverSpec.servers ?? []).filter((s) => !DEFLATE_GROUPS.every((g) => skipsGroup(serverSpec, s.agent, g)));
    if (servers.length > 0) deflate.push({ side: 'server', dir: 'servers-deflate', what: DEFLATE_WHAT, spec: { ...deflateOnly(serverSpec), servers } });
  }
  if (client) deflate.push({ side: 'client', dir: 'clients-deflate', what: DEFLATE_WHAT, spec: deflateOnly(clientSpec) });
  if (deflate.length > 0) {
    const agents = [...new Set(deflate.flatMap((p) => (p.side === 'server' ? (p.spec.servers ?? []).map((s) => s.agent) : Object.keys(CLIENTS))))];
    phases.push({
      name: `c: ${DEFLATE_WHAT}, ${agents.join(' and ')}, ${deflate.map((p) => `${p.side} side`).join(' ‖ ')}${deflate.length > 1 ? ' in parallel' : ''}`,
      plans: deflate,
    });
  }
  return phases;
}

// ----------------------------------------------------------------- wstest runs

function writeSpec(plan: RunPlan): { file: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'autobahn-'));
  const file = join(dir, plan.side === 'server' ? 'fuzzingclient.json' : 'fuzzingserver.json');
  writeFileSync(file, `${JSON.stringify({ ...plan.spec, outdir: join(REPORTS, plan.dir) }, null, 2)}\n`);
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
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

async function runServerSide(plan: RunPlan, options: Options, problems: string[]): Promise<void> {
  const servers = plan.spec.servers ?? [];
  const agents = servers.map((s) => s.agent);
  const testees: { proc: Proc; logFile: string }[] = [];
  const spec = writeSpec(plan);
  try {
    for (const server of servers) {
      const script = TESTEES[server.agent];
      if (script === undefined) throw new Error(`no testee program for agent ${server.agent} in fuzzingclient.json`);
      if (!existsSync(script)) throw new Error(`${relative(ROOT, script)} is missing: build first (npm run build)`);
      const port = portOf(server.url);
      await ensureFree(port);
      const logFile = join(LOGS, `${plan.dir}-testee-${server.agent}.log`);
      const proc = start(`testee ${server.agent}`, process.execPath, [script, String(port)], logFile);
      testees.push({ proc, logFile });
      await waitForPort(port, proc);
      log(`${plan.dir}: ${server.agent} testee listening on ${server.url}`);
    }

    const logFile = join(LOGS, `${plan.dir}-wstest.log`);
    log(`${plan.dir}: wstest -m fuzzingclient, ${plan.what} (bounded to ${seconds(options.timeoutMs)}; log: ${relative(ROOT, logFile)})`);
    const progress = wstestProgress(plan, agents);
    const wstest = start(`wstest fuzzingclient (${plan.dir})`, WSTEST, ['-m', 'fuzzingclient', '-s', spec.file], logFile, progress.onLine);
    const { exit, timedOut } = await bounded(wstest, options.timeoutMs);
    progress.done();
    if (timedOut) problems.push(`wstest fuzzingclient (${plan.what}) did not finish within ${seconds(options.timeoutMs)} and was killed`);
    else if (exit.code !== 0) problems.push(`wstest fuzzingclient (${plan.what}) ended with ${describeExit(exit)}; see ${relative(ROOT, logFile)}`);
  } finally {
    for (const { proc, logFile } of testees) {
      if (proc.exit !== undefined) problems.push(`${proc.name} exited during the run (${describeExit(proc.exit)}); see ${relative(ROOT, logFile)}`);
      await stop(proc, 5_000);
    }
    spec.remove();
  }
}

async function runClientSide(plan: RunPlan, options: Options, problems: string[]): Promise<void> {
  for (const script of Object.values(CLIENTS)) {
    if (!existsSync(script)) throw new Error(`${relative(ROOT, script)} is missing: build first (npm run build)`);
  }
  const url = plan.spec.url ?? 'ws://127.0.0.1:9003';
  const port = portOf(url);
  await ensureFree(port);

  const spec = writeSpec(plan);
  const logFile = join(LOGS, `${plan.dir}-wstest.log`);
  log(`${plan.dir}: wstest -m fuzzingserver on ${url}, ${plan.what} (log: ${relative(ROOT, logFile)})`);
  const progress = wstestProgress(plan, Object.keys(CLIENTS));
  const wstest = start(`wstest fuzzingserver (${plan.dir})`, WSTEST, ['-m', 'fuzzingserver', '-s', spec.file, '--webport', '0'], logFile, progress.onLine);
  try {
    await waitForPort(port, wstest, 60_000);
    for (const [agent, script] of Object.entries(CLIENTS)) {
      const clientLog = join(LOGS, `${plan.dir}-client-${agent}.log`);
      log(`${plan.dir}: ${agent}: ${relative(ROOT, script)} (bounded to ${seconds(options.timeoutMs)})`);
      const client = start(`${agent} client`, process.execPath, [script, url, agent], clientLog, (line) => console.log(`  [${plan.dir}] ${line}`));
      const { exit, timedOut } = await bounded(client, options.timeoutMs);
      if (timedOut) problems.push(`the ${agent} client (${plan.what}) did not finish within ${seconds(options.timeoutMs)} and was killed`);
      else if (exit.code !== 0) problems.push(`the ${agent} client (${plan.what}) ended with ${describeExit(exit)}; see ${relative(ROOT, clientLog)}`);
      if (wstest.exit !== undefined) break;
    }
  } finally {
    progress.done();
    if (wstest.exit !== undefined) problems.push(`wstest fuzzingserver (${plan.what}) exited during the run (${describeExit(wstest.exit)}); see ${relative(ROOT, logFile)}`);
    await stop(wstest);
    spec.remove();
  }
}

async function runPlan(plan: RunPlan, options: Options): Promise<RunResult> {
  const started = Date.now();
  const problems: string[] = [];
  try {
    if (plan.side === 'server') await runServerSide(plan, options, problems);
    else await runClientSide(plan, options, problems);
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  const wallMs = Date.now() - started;
  log(`${plan.dir}: done in ${seconds(wallMs)}${problems.length > 0 ? ` (${problems.length} problem(s))` : ''}`);
  return { plan, wallMs, problems };
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

// One section per direction: every report directory of that side merged into
// one table per agent.
function summariseSide(side: Side, runs: RunResult[] | undefined): SideSummary {
  const title = side === 'server' ? 'Server side (wstest fuzzingclient → echo servers)' : 'Client side (echo client → wstest fuzzingserver)';
  const md: string[] = [`## ${title}`, ''];
  const ninesMs = new Map<string, number>();
  let passed = true;

  // The directories to merge: those this invocation wrote, or (--only summary) those on disk.
  const dirs = runs !== undefined ? runs.map((r) => r.plan.dir) : REPORT_DIRS[side].filter(hasReport);
  for (const run of runs ?? []) {
    md.push(`- ${relative(ROOT, join(REPORTS, run.plan.dir, 'index.html'))} (${run.plan.what}): wall-clock time ${seconds(run.wallMs)}.`);
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
  phases: PhaseResult[];
  totalMs: number;
}

function timingLines(timing: Timing): string[] {
  const lines = ['| Phase | Wall time |', '|---|--:|'];
  if (timing.setupMs !== undefined) lines.push(`| setup.sh | ${seconds(timing.setupMs)} |`);
  for (const phase of timing.phases) {
    const runs = phase.runs.length > 1 ? ` (${phase.runs.map((r) => `${r.plan.dir} ${seconds(r.wallMs)}`).join(', ')})` : '';
    lines.push(`| ${phase.name} | ${seconds(phase.wallMs)}${runs} |`);
  }
  lines.push(`| **total** | ${seconds(timing.totalMs)} |`);
  return lines;
}

function summarise(phases: PhaseResult[] | undefined, sides: Side[], timing: Omit<Timing, 'totalMs'>, started: number): boolean {
  const md: string[] = ['# Autobahn testsuite summary', ''];
  const totalMs = Date.now() - started;
  md.push(`Generated ${new Date().toISOString()} by \`node build/autobahn/run.js\`; total run time ${seconds(totalMs)}.`, '');
  md.push(
    `Pass rule: every case of ${OUR_AGENT} (groups 1–13, compression included) is OK for behavior and behaviorClose; ` +
      `INFORMATIONAL is accepted only for ${[...INFORMATIONAL_CASES].join(', ')} (implementation-defined by the testsuite); ` +
      `NON-STRICT, UNIMPLEMENTED and everything else fail. The ws agent is a reference (${BASE_GROUPS} on the server side only) and never gates.`,
    '',
  );
  if (phases !== undefined) md.push('## Run times', '', ...timingLines({ ...timing, totalMs }), '');

  let passed = true;
  const sideSummaries = new Map<Side, SideSummary>();
  const allRuns = phases?.flatMap((p) => p.runs);
  for (const side of sides) {
    const s = summariseSide(side, allRuns?.filter((r) => r.plan.side === side));
    sideSummaries.set(side, s);
    passed &&= s.passed;
    md.push(...s.markdown);
  }

  md.push('## Performance (9.* Limits/Performance, server side)', '');
  const server = sideSummaries.get('server');
  const ours = server?.ninesMs.get(OUR_AGENT);
  const theirs = server?.ninesMs.get(WS_AGENT);
  if (server === undefined) {
    md.push('- The server side did not run: no comparison.');
  } else if (ours !== undefined && theirs !== undefined && theirs > 0 && ours > 0) {
    md.push(`- ${OUR_AGENT} ${seconds(ours)} ÷ ${WS_AGENT} ${seconds(theirs)} = **${(ours / theirs).toFixed(2)}** (sum of 9.* case durations; lower is faster).`);
  } else if (ours !== undefined && ours > 0) {
    md.push(`- ${OUR_AGENT} ${seconds(ours)} (no ${WS_AGENT} run to compare with).`);
  } else {
    md.push('- No 9.* results.');
  }
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
  let phases: PhaseResult[] | undefined;
  let setupMs: number | undefined;
  if (options.run) {
    if (options.setup) setupMs = await runSetup();
    if (!existsSync(WSTEST)) throw new Error(`${WSTEST} is missing: run autobahn/setup.sh`);
    const plan = planPhases(options);
    // A side that runs starts from empty report directories, so that the
    // summary never merges reports of different runs.
    for (const side of options.sides) for (const dir of REPORT_DIRS[side]) rmSync(join(REPORTS, dir), { recursive: true, force: true });
    phases = await runPhases(plan, options);
  }
  const sides = options.run ? options.sides : options.sides.filter((s) => REPORT_DIRS[s].some(hasReport));
  if (sides.length === 0) throw new Error('no reports to summarise');
  const passed = summarise(phases, sides, { setupMs, phases: phases ?? [] }, started);
  if (phases !== undefined) {
    if (setupMs !== undefined) log(`time: setup.sh ${seconds(setupMs)}`);
    for (const phase of phases) log(`time: phase ${phase.name}: ${seconds(phase.wallMs)}`);
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
