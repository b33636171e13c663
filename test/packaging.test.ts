// The packaging suite (issue 11, "drops into any project"): what a new user meets when they copy
// websockets.ts into a project, install the npm package, or take it from JSR.
//
//   header   — the file carries its SPDX licence line and the package's version, and the dist
//              builds keep that header; LICENSE, jsr.json and package.json agree.
//   types    — the file, copied alone next to consumer code that uses the client and the server
//              API, type-checks with zero errors in a browser-only, a Node-only, a strict-flags
//              and an isolatedDeclarations project, each with moduleResolution bundler, node16
//              and nodenext, with TypeScript 5.4, the newest 5.x and 7.x; and under `deno check`.
//   bundle   — a browser app bundles without errors or warnings with esbuild, webpack, Vite,
//              Rollup and Bun, for the vendored file and for the npm package; a Node app
//              bundled by esbuild and webpack runs (an echo over 127.0.0.1).
//   npm      — `npm pack`'s file list; attw and publint are clean; the tarball, installed into a
//              fresh project, works from `import` and from `require()`, and its types check from
//              .mts and .cts consumers.
//   jsr      — `deno publish --dry-run` is clean and publishes exactly the library, README, LICENSE.
//
// Every project lives in a fresh directory under os.tmpdir(), where no node_modules of this
// repository is visible (the Node projects point typeRoots at this repository's @types). The
// tools are this repository's dev dependencies, except Deno and Bun, which come from npm through
// npx as in runtimes.test.ts (their binaries stay in npm's cache, shared with that suite; DENO_DIR,
// where deno check keeps @types/node, is .cache/packaging/deno, git-ignored). All tsc runs start
// with the suite, at most one per core, while the bundlers run in this process; every child
// process is killed past its time limit. PACKAGING_KEEP=1 keeps the temporary projects.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createRequire } from 'node:module';
import { findRoot } from './chromium.ts';

const root = findRoot();
const requireHere = createRequire(join(root, 'package.json'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string; license: string; sideEffects?: unknown };
const cache = join(root, '.cache', 'packaging');

/** One TypeScript compile of a small project (2–5 s as a rule). */
const TSC_MS = 60_000;
/** npx may download Deno or Bun on a first run. */
const NPX_MS = 240_000;
/** A bundler run, a Node run, an npm command. */
const TOOL_MS = 120_000;
/** No child process starts later than this after the suite did (a bound for CI, whatever hangs). */
const SUITE_MS = 15 * 60_000;
const suiteStarted = Date.now();

// ─── child processes, bounded ───────────────────────────────────────────────────────────────

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr, for assertion messages. */
  output: string;
}

interface RunOptions {
  cwd: string;
  timeout: number;
  env?: Record<string, string>;
}

/** tsc runs at once: one per core. */
const slots = Math.max(1, availableParallelism());
let running = 0;
const waiting: Array<() => void> = [];

/** A tsc run: CPU-bound, queued for a free core (the other tools start at once). */
async function runQueued(argv: string[], options: RunOptions): Promise<Ran> {
  if (running >= slots) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await run(argv, options);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function run(argv: string[], { cwd, timeout, env }: RunOptions): Promise<Ran> {
  const [command, ...args] = argv;
  assert.ok(command);
  if (Date.now() - suiteStarted > SUITE_MS) {
    const output = `$ ${argv.join(' ')}\nnot started: the suite has run for more than ${SUITE_MS / 60_000} minutes`;
    return Promise.resolve({ code: null, stdout: '', stderr: '', output });
  }
  return new Promise((resolve) => {
    // Its own process group: npx starts the tool as a grandchild, and a kill must reach it.
    const child = spawn(command, args, {
      cwd,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        NO_COLOR: '1',
        npm_config_update_notifier: 'false',
        npm_config_fund: 'false',
        npm_config_audit: 'false',
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const kill = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeout);
    const finish = (code: number | null, note = '') => {
      clearTimeout(timer);
      kill(); // stragglers of the group
      const limit = timedOut ? `\n(killed after ${timeout} ms)` : '';
      const output = `$ ${argv.join(' ')}   (in ${cwd})${limit}${note}\nstdout:\n${stdout.slice(-6000)}\nstderr:\n${stderr.slice(-6000)}`;
      resolve({ code: timedOut ? null : code, stdout, stderr, output });
    };
    child.once('error', (error) => finish(null, `\nspawn failed: ${error.message}`));
    child.once('close', (code) => finish(code));
  });
}

function binOf(packageName: string, bin: string): string {
  const manifest = requireHere.resolve(`${packageName}/package.json`);
  const { bin: bins } = JSON.parse(readFileSync(manifest, 'utf8')) as { bin: string | Record<string, string> };
  const path = typeof bins === 'string' ? bins : bins[bin];
  assert.ok(path, `${packageName} has no ${bin} binary`);
  return join(dirname(manifest), path);
}

function versionOf(packageName: string): string {
  return (JSON.parse(readFileSync(requireHere.resolve(`${packageName}/package.json`), 'utf8')) as { version: string }).version;
}

async function write(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text);
}

const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n';

/** Memoised: set-up steps that several tests share run once, when the first one needs them. */
function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => (made ??= make());
}

// ─── consumer code: the API as a user writes it ─────────────────────────────────────────────

/** Client and server API, valid everywhere: no DOM and no Node names. */
const COMMON_TS = `
import { broadcast, close, CloseCode, connect, DEFAULTS, isOk, listen, open, ping, receive, send, WebSocketError } from './websockets.ts';
import type { ClientOptions, CloseInfo, Data, Outgoing, Refusal, RequestInfo, Server, ServerOptions, WebSocket } from './websockets.ts';

export async function chat(url: string | URL, text: string): Promise<string[]> {
  const options: ClientOptions = { protocols: ['chat.v2', 'chat.v1'], maxMessageSize: 1 << 20, pingInterval: 0, compression: { threshold: 64 } };
  const ws: WebSocket = await connect(url, options);
  const seen: string[] = [ws.protocol, ws.extensions, ws.url, String(ws.response?.status), ws.request.headers['host'] ?? ''];
  await ws.send(text);
  await send(ws, new Uint8Array([1, 2, 3]));
  const pieces: Outgoing = ['frag', 'ments'];
  await ws.send(pieces);
  const first: Data = await ws.receive();
  const second = await receive(ws);
  seen.push(typeof first === 'string' ? first : String(first.byteLength), typeof second === 'string' ? second : String(second.byteLength));
  seen.push(String(await ping(ws)), String(ws.bufferedAmount));
  try {
    for await (const message of ws) seen.push(typeof message === 'string' ? message : \`\${message.byteLength} bytes\`);
  } catch (error) {
    if (!isOk(error)) {
      if (error instanceof WebSocketError) seen.push(String(error.code), error.reason, String(error.status), error.headers?.['location'] ?? '');
      throw error;
    }
  }
  await close(ws, CloseCode.NORMAL_CLOSURE, 'bye');
  const end: CloseInfo = await ws.closed;
  seen.push(\`\${end.code} \${end.reason}\`, String(ws.closeCode), ws.closeReason ?? '');
  return seen;
}

export function ask(url: string, question: string): Promise<Data> {
  return open(url, async (ws) => {
    await ws.send(question);
    return ws.receive();
  }, { closeTimeout: 1_000, handshakeTimeout: DEFAULTS.handshakeTimeout });
}

export async function chatServer(port: number): Promise<Server> {
  const room = new Set<WebSocket>();
  const verify = (request: RequestInfo): boolean | Refusal =>
    request.headers['origin'] === 'https://chat.example' ? true : { status: 403, headers: { 'content-type': 'text/plain' }, body: 'go away' };
  const options: ServerOptions = {
    protocols: ['chat.v2'],
    verify,
    onError: (error: unknown, ws?: WebSocket) => console.error(ws?.url, error),
    maxQueuedMessages: 64,
    pingInterval: 30_000,
  };
  const server = await listen('127.0.0.1', port, async (ws) => {
    room.add(ws);
    try {
      for await (const message of ws) await broadcast(room, message);
    } finally {
      room.delete(ws);
    }
  }, options);
  console.log(server.url, server.host, server.port);
  return server;
}

export function failure(code: number): WebSocketError {
  return new WebSocketError(code, 'why', { cause: new Error('because') });
}
`;

/** Node only: node:http's upgrade event, node:tls options typed by @types/node. */
const NODE_TS = `
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions, SecureContextOptions } from 'node:tls';
import { connect, isUpgrade, listen, upgrade } from './websockets.ts';
import type { Server, WebSocket } from './websockets.ts';

export function withHttp(): HttpServer {
  const http = createServer((_request, response) => response.end('hello'));
  http.on('upgrade', (request, socket, head) => {
    if (!isUpgrade(request) || request.url !== '/ws') return void socket.destroy();
    upgrade(request, socket, head, async (ws: WebSocket) => {
      for await (const message of ws) await ws.send(message);
    }, { verify: async (info) => info.headers['authorization'] === 'Bearer t', selectProtocol: (offered) => offered[0] });
  });
  return http;
}

export async function secureClient(url: string): Promise<string | undefined> {
  const tls: ConnectionOptions = { ca: readFileSync('ca.pem'), servername: 'localhost', rejectUnauthorized: true, minVersion: 'TLSv1.2' };
  const ws = await connect(url, { tls, headers: { authorization: 'Bearer t' }, signal: AbortSignal.timeout(5_000) });
  const address = ws.remoteAddress;
  await ws.close();
  return address;
}

export function secureServer(): Promise<Server> {
  const context: SecureContextOptions = { minVersion: 'TLSv1.2', ciphers: 'HIGH' };
  return listen('127.0.0.1', 0, (ws) => ws.close(), { tls: { ...context, key: readFileSync('key.pem'), cert: readFileSync('cert.pem') } });
}
`;

/** Browser only: the facade over the DOM's own WebSocket. */
const BROWSER_TS = `
import { connect, wrap } from './websockets.ts';

export async function viaNative(url: string): Promise<string> {
  const native = new WebSocket(url, ['chat.v2']);
  native.binaryType = 'arraybuffer';
  await new Promise<void>((resolve, reject) => {
    native.addEventListener('open', () => resolve());
    native.addEventListener('error', () => reject(new Error('no connection')));
  });
  const ws = wrap(native, { maxMessageSize: 1 << 16 });
  await ws.send('hi');
  const reply = await ws.receive();
  await ws.close(1000, 'done');
  const again = await connect(new URL(url), { signal: AbortSignal.timeout(5_000) });
  await again.close();
  return typeof reply === 'string' ? reply : new TextDecoder().decode(reply);
}
`;

/** An app that uses the whole API (so a bundler cannot drop any of it). */
const appSource = (specifier: string, ts: boolean): string => `
import * as websockets from '${specifier}';
import { connect } from '${specifier}';

async function chat(url${ts ? ': string' : ''}) {
  const ws = await connect(url, { protocols: ['chat.v2'] });
  await ws.send('hello');
  for await (const message of ws) console.log(message);
}

Object.assign(globalThis, { websockets, chat });
`;

/** A Node program: an echo between listen() and open() on 127.0.0.1. No top-level await (CommonJS bundles). */
const echoSource = (importLine: string, label: string): string => `
${importLine}

async function main() {
  const server = await listen('127.0.0.1', 0, async (ws) => {
    for await (const message of ws) await ws.send(message);
  });
  try {
    const reply = await open(server.url, async (ws) => {
      await ws.send(${JSON.stringify(label)});
      const text = await ws.receive();
      await ws.send(new Uint8Array([1, 2, 3]));
      const bytes = await ws.receive();
      return text + ' ' + Array.from(bytes).join(',');
    });
    console.log('ECHO ' + reply);
  } finally {
    await server.close();
  }
}
main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
`;

// ─── the shared fixtures ────────────────────────────────────────────────────────────────────

let work = '';
const BUNDLE_MARK = 'websocket closed with status';

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'websockets-packaging-'));
  // Every tsc run starts now and waits only for a free core; each test awaits its own result,
  // while the bundlers run in this process.
  for (const check of [...packageChecks.values(), ...vendoredChecks.values()]) void check().catch(() => {});
});

after(async () => {
  // PACKAGING_KEEP=1 keeps the projects, to look at what a failing tool saw.
  if (process.env['PACKAGING_KEEP']) console.log(`packaging: the projects are kept in ${work}`);
  else if (work) await rm(work, { recursive: true, force: true });
});

/** The library file, copied alone, beside the consumer files: a vendored project. */
const vendoredProject = once(async () => {
  const dir = join(work, 'vendored');
  await mkdir(dir, { recursive: true });
  await copyFile(join(root, 'websockets.ts'), join(dir, 'websockets.ts'));
  await write(join(dir, 'package.json'), json({ name: 'vendored', private: true, type: 'module' }));
  await write(join(dir, 'common.ts'), COMMON_TS);
  await write(join(dir, 'node.ts'), NODE_TS);
  await write(join(dir, 'browser.ts'), BROWSER_TS);
  return dir;
});

/** `npm pack` into a temporary directory (no scripts: dist/ is what `npm run build` made). */
const packed = once(async () => {
  const dir = join(work, 'pack');
  await mkdir(dir, { recursive: true });
  const ran = await run(['npm', 'pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, timeout: TOOL_MS });
  assert.equal(ran.code, 0, ran.output);
  const [info] = JSON.parse(ran.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  assert.ok(info, ran.output);
  return { tarball: join(dir, info.filename), files: info.files.map((file) => file.path).sort() };
});

/** A fresh project with the tarball installed (npm install of a local file: no network). */
const consumerProject = once(async () => {
  const { tarball } = await packed();
  const dir = join(work, 'consumer');
  await write(join(dir, 'package.json'), json({ name: 'consumer', private: true, type: 'module', dependencies: { [pkg.name]: `file:${relative(dir, tarball)}` } }));
  const ran = await run(['npm', 'install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, timeout: TOOL_MS });
  assert.equal(ran.code, 0, ran.output);
  const installed = JSON.parse(await readFile(join(dir, 'node_modules', pkg.name, 'package.json'), 'utf8')) as { version: string };
  assert.equal(installed.version, pkg.version);
  return dir;
});

function errorLines(output: string, limit = 40): string {
  const lines = output.split('\n').filter((line) => /error|warn/i.test(line));
  return (lines.length ? lines : output.split('\n')).slice(0, limit).join('\n');
}

// ─── 1. the header, the licence, the versions ───────────────────────────────────────────────

describe('licence and provenance', () => {
  const HEADER_LINES = 15;
  const VERSION_LINE = /websockets\.ts v?(\d+\.\d+\.\d+)/;

  function checkHeader(file: string, text: string, { atTop }: { atTop: boolean }): void {
    const lines = text.split('\n');
    const head = (atTop ? lines.slice(0, HEADER_LINES) : lines).join('\n');
    const version = VERSION_LINE.exec(head)?.[1];
    const where = atTop ? `the first ${HEADER_LINES} lines of ${file}` : file;
    assert.equal(version, pkg.version, `${where}: a line "websockets.ts ${pkg.version} — …" (the package.json version)`);
    assert.match(head, /SPDX-License-Identifier: MIT\b/, `${where}: an "SPDX-License-Identifier: MIT" line`);
  }

  test('websockets.ts starts with a header naming the package version and the SPDX licence', async () => {
    checkHeader('websockets.ts', await readFile(join(root, 'websockets.ts'), 'utf8'), { atTop: true });
  });

  test('the dist builds keep that header (esbuild keeps only /*! … */ or @license comments)', async () => {
    const failures: string[] = [];
    for (const [file, atTop] of [
      ['websockets.js', true],
      ['websockets.browser.js', true],
      ['websockets.d.ts', true],
      ['websockets.d.cts', true],
      // esbuild's CommonJS preamble (__export, __toCommonJS) comes before the first statement.
      ['websockets.cjs', false],
    ] as const) {
      try {
        checkHeader(`dist/${file}`, await readFile(join(root, 'dist', file), 'utf8'), { atTop });
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
    assert.deepEqual(failures, []);
  });

  test('LICENSE is the MIT licence of "the websockets.ts authors", as package.json and jsr.json say', async () => {
    const license = await readFile(join(root, 'LICENSE'), 'utf8');
    assert.match(license, /^MIT License\n\nCopyright \(c\) 2026 the websockets\.ts authors\n/);
    assert.match(license, /THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND/);
    assert.equal(pkg.license, 'MIT');
    const jsr = JSON.parse(await readFile(join(root, 'jsr.json'), 'utf8')) as { license?: string };
    assert.equal(jsr.license, 'MIT');
  });
});

// ─── 2. the type-checking matrix (its tests are at the end of the file) ─────────────────────

interface TypeScript {
  label: string;
  tsc: string;
  version: string;
}

const TYPESCRIPTS: TypeScript[] = [
  { pkg: 'typescript-5.4', major: /^5\.4\./ },
  { pkg: 'typescript-5', major: /^5\./ },
  { pkg: 'typescript', major: /^7\./ },
].map(({ pkg: name, major }) => {
  const version = versionOf(name);
  assert.match(version, major, `${name} is TypeScript ${version}`);
  return { label: `TypeScript ${version}`, tsc: binOf(name, 'tsc'), version };
});

const RESOLUTIONS = {
  bundler: { module: 'esnext', moduleResolution: 'bundler' },
  node16: { module: 'node16', moduleResolution: 'node16' },
  nodenext: { module: 'nodenext', moduleResolution: 'nodenext' },
} as const;

/** @types/node from this repository, and nothing else. */
const NODE_TYPES = { types: ['node'], typeRoots: [join(root, 'node_modules', '@types')] };
const NO_TYPES = { types: [], typeRoots: [] };
const STRICT_FAMILY = {
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  noImplicitOverride: true,
  noPropertyAccessFromIndexSignature: true,
  noImplicitReturns: true,
  useUnknownInCatchVariables: true,
  verbatimModuleSyntax: true,
  noUnusedLocals: true,
  noUnusedParameters: true,
};

interface Profile {
  what: string;
  files: string[];
  options: Record<string, unknown>;
  /** The oldest TypeScript that has every option. */
  since?: [number, number];
}

const PROFILES: Record<string, Profile> = {
  browser: { what: 'lib es2022+dom, types: [] (no @types/node)', files: ['common.ts', 'browser.ts'], options: { lib: ['es2022', 'dom'], ...NO_TYPES } },
  node: { what: 'lib es2022, types: ["node"] (no DOM)', files: ['common.ts', 'node.ts'], options: { lib: ['es2022'], ...NODE_TYPES } },
  strict: { what: 'the strict family, lib es2022+dom and @types/node', files: ['common.ts', 'node.ts', 'browser.ts'], options: { lib: ['es2022', 'dom'], ...NODE_TYPES, ...STRICT_FAMILY } },
  isolatedDeclarations: {
    what: 'isolatedDeclarations with declaration: true, lib es2022, @types/node',
    files: ['common.ts', 'node.ts'],
    options: { lib: ['es2022'], ...NODE_TYPES, isolatedDeclarations: true, declaration: true, emitDeclarationOnly: true, noEmit: false },
    since: [5, 5],
  },
};

function supports(ts: TypeScript, since: [number, number] | undefined): boolean {
  if (!since) return true;
  const [major = 0, minor = 0] = ts.version.split('.').map(Number);
  return major > since[0] || (major === since[0] && minor >= since[1]);
}

/** A tsconfig in `dir`, run with `ts`; zero diagnostics expected. */
async function tsc(ts: TypeScript, dir: string, name: string, compilerOptions: Record<string, unknown>, files: string[]): Promise<Ran> {
  const config = `tsconfig.${name}.json`;
  await write(join(dir, config), json({ compilerOptions: { outDir: `out/${name}`, ...compilerOptions }, files }));
  return runQueued(['node', ts.tsc, '-p', config, '--pretty', 'false'], { cwd: dir, timeout: TSC_MS });
}

function assertCompiled(ran: Ran): void {
  const diagnostics = (ran.stdout + ran.stderr).trim();
  assert.ok(ran.code === 0 && diagnostics === '', `${ran.code === null ? 'tsc did not finish' : 'tsc reported errors'}:\n${errorLines(diagnostics, 60)}\n\n${ran.output}`);
}

/** Every tsc run of the suite starts as soon as the suite does, and waits only for a free core. */
const vendoredChecks = new Map<string, () => Promise<Ran>>();
for (const ts of TYPESCRIPTS) {
  for (const [profileName, profile] of Object.entries(PROFILES)) {
    if (!supports(ts, profile.since)) continue;
    for (const [resolution, moduleOptions] of Object.entries(RESOLUTIONS)) {
      const name = `${ts.version}-${profileName}-${resolution}`;
      vendoredChecks.set(
        name,
        once(async () => {
          const dir = await vendoredProject();
          const options = { target: 'es2022', strict: true, noEmit: true, allowImportingTsExtensions: true, ...moduleOptions, ...profile.options };
          return tsc(ts, dir, name, options, ['websockets.ts', ...profile.files]);
        }),
      );
    }
  }
}

// ─── 3. bundling ────────────────────────────────────────────────────────────────────────────

/** An app directory: the vendored file beside a TypeScript app, or a JavaScript app in the consumer project. */
async function appDir(source: 'vendored' | 'package', bundler: string): Promise<{ dir: string; entry: string }> {
  if (source === 'vendored') {
    const dir = join(work, 'apps', `${bundler}-vendored`);
    await mkdir(dir, { recursive: true });
    await copyFile(join(root, 'websockets.ts'), join(dir, 'websockets.ts'));
    await write(join(dir, 'app.ts'), appSource('./websockets.ts', true));
    return { dir, entry: 'app.ts' };
  }
  const dir = join(await consumerProject(), 'apps', bundler);
  await write(join(dir, 'app.js'), appSource(pkg.name, false));
  return { dir, entry: 'app.js' };
}

/** Browser (and Node) builds collect every warning and error as text. */
interface Bundled {
  problems: string[];
  code: string;
}

/** The JavaScript a build wrote under `dir` ('' if it wrote nothing). */
async function readOutputs(dir: string): Promise<string> {
  let code = '';
  if (!existsSync(dir)) return code;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && /\.(c|m)?js$/.test(entry.name)) code += await readFile(join(entry.parentPath, entry.name), 'utf8');
  }
  return code;
}

async function esbuildBundle(dir: string, entry: string, platform: 'browser' | 'node'): Promise<Bundled> {
  const esbuild = await import('esbuild');
  const outfile = join(dir, 'out', platform === 'node' ? 'app.cjs' : 'app.js');
  try {
    const result = await esbuild.build({ absWorkingDir: dir, entryPoints: [entry], bundle: true, platform, outfile, logLevel: 'silent' });
    const problems = [...result.errors, ...result.warnings];
    const text = await esbuild.formatMessages(problems, { kind: 'warning' });
    return { problems: text, code: await readOutputs(dirname(outfile)) };
  } catch (error) {
    const failure = error as { errors?: esbuildMessage[]; warnings?: esbuildMessage[] };
    const text = await esbuild.formatMessages([...(failure.errors ?? []), ...(failure.warnings ?? [])], { kind: 'error' });
    return { problems: text.length ? text : [String(error)], code: '' };
  }
}
type esbuildMessage = import('esbuild').Message;

async function webpackBundle(dir: string, entry: string, target: 'web' | 'node'): Promise<Bundled> {
  const { default: webpack } = await import('webpack');
  const out = join(dir, 'out');
  const compiler = webpack({
    mode: 'production',
    context: dir,
    target,
    entry: `./${entry}`,
    output: { path: out, filename: target === 'node' ? 'app.cjs' : 'app.js' },
    // A vendored .ts needs a TypeScript loader: esbuild-loader with its defaults (ts-loader works alike).
    module: { rules: [{ test: /\.ts$/, loader: requireHere.resolve('esbuild-loader') }] },
    infrastructureLogging: { level: 'warn' },
  });
  const stats = await new Promise<import('webpack').Stats | undefined>((resolve, reject) => compiler.run((error, result) => (error ? reject(error) : resolve(result))));
  await new Promise<void>((resolve) => compiler.close(() => resolve()));
  assert.ok(stats);
  const info = stats.toJson({ all: false, errors: true, warnings: true });
  const problems = [...(info.errors ?? []), ...(info.warnings ?? [])].map((problem) => `${problem.moduleName ?? ''} ${problem.message}`);
  return { problems, code: await readOutputs(out) };
}

async function viteBundle(dir: string, entry: string): Promise<Bundled> {
  const vite = await import('vite');
  await write(join(dir, 'index.html'), `<!doctype html>\n<html><head><title>chat</title></head><body><script type="module" src="./${entry}"></script></body></html>\n`);
  const problems: string[] = [];
  const logger = vite.createLogger('info');
  logger.warn = (message) => void problems.push(`warning: ${message}`);
  logger.warnOnce = (message) => void problems.push(`warning: ${message}`);
  logger.error = (message) => void problems.push(`error: ${message}`);
  logger.info = () => {};
  try {
    // The default build: no config file, root = the app, index.html as the entry.
    await vite.build({ root: dir, customLogger: logger, logLevel: 'info' });
  } catch (error) {
    problems.push(`error: ${String((error as Error).stack ?? error)}`);
  }
  return { problems, code: await readOutputs(join(dir, 'dist')) };
}

async function rollupBundle(dir: string, entry: string): Promise<Bundled> {
  const { rollup } = await import('rollup');
  const { nodeResolve } = await import('@rollup/plugin-node-resolve');
  const plugins: import('rollup').Plugin[] = [nodeResolve({ browser: true })];
  if (entry.endsWith('.ts')) {
    // A vendored .ts needs a TypeScript plugin: rollup-plugin-esbuild, with its defaults.
    // (@rollup/plugin-typescript loads the TypeScript API, which TypeScript 7 no longer has.)
    const { default: esbuild } = await import('rollup-plugin-esbuild');
    plugins.push(esbuild());
  }
  const problems: string[] = [];
  try {
    const bundle = await rollup({
      input: join(dir, entry),
      plugins,
      onLog: (level, log) => {
        if (level !== 'info') problems.push(`${level}: ${log.plugin ? `[${log.plugin}] ` : ''}${log.message}`);
      },
    });
    await bundle.write({ dir: join(dir, 'out'), format: 'es' });
    await bundle.close();
  } catch (error) {
    problems.push(`error: ${String((error as Error).message ?? error)}`);
  }
  return { problems, code: await readOutputs(join(dir, 'out')) };
}

async function bunBundle(dir: string, entry: string): Promise<Bundled> {
  const ran = await run(['npx', '-y', 'bun@1', 'build', `./${entry}`, '--target=browser', '--outdir=out'], { cwd: dir, timeout: NPX_MS });
  const problems: string[] = [];
  if (ran.code !== 0) problems.push(`error: exit ${ran.code}\n${ran.output}`);
  const lines = (ran.stdout + ran.stderr).split('\n').filter((line) => /warn|error/i.test(line));
  problems.push(...lines);
  return { problems, code: await readOutputs(join(dir, 'out')) };
}

const BROWSER_BUNDLERS: Record<string, { how: string; build: (dir: string, entry: string) => Promise<Bundled> }> = {
  esbuild: { how: 'esbuild --bundle --platform=browser', build: (dir, entry) => esbuildBundle(dir, entry, 'browser') },
  webpack: { how: 'webpack 5, mode production, no resolve.fallback', build: (dir, entry) => webpackBundle(dir, entry, 'web') },
  vite: { how: 'vite build, no config', build: viteBundle },
  rollup: { how: 'Rollup with @rollup/plugin-node-resolve ({ browser: true })', build: rollupBundle },
  bun: { how: 'bun build --target=browser', build: bunBundle },
};

function assertBundled(bundled: Bundled): void {
  assert.deepEqual(bundled.problems, [], 'no errors and no warnings');
  assert.ok(bundled.code.includes(BUNDLE_MARK), 'the bundle holds the library');
  const at = bundled.code.indexOf('node:');
  assert.equal(at, -1, `the bundle holds a "node:" string: …${bundled.code.slice(Math.max(0, at - 80), at + 80)}…`);
}

describe('bundling for a browser, with each bundler\u2019s defaults: no errors, no warnings, no node:', () => {
  test('dist/websockets.browser.js holds no "node:" string at all', async () => {
    const code = await readFile(join(root, 'dist', 'websockets.browser.js'), 'utf8');
    const at = code.indexOf('node:');
    assert.equal(at, -1, `…${code.slice(Math.max(0, at - 80), at + 80)}…`);
  });

  for (const [name, bundler] of Object.entries(BROWSER_BUNDLERS)) {
    for (const source of ['vendored', 'package'] as const) {
      const what = source === 'vendored' ? 'the vendored websockets.ts' : 'the npm package (from the packed tarball)';
      test(`${bundler.how}: ${what}`, { timeout: NPX_MS }, async () => {
        const { dir, entry } = await appDir(source, name);
        assertBundled(await bundler.build(dir, entry));
      });
    }
  }
});

describe('bundling for Node, then running the bundle: an echo over 127.0.0.1', () => {
  const NODE_BUNDLERS = {
    'esbuild --bundle --platform=node': (dir: string, entry: string) => esbuildBundle(dir, entry, 'node'),
    "webpack 5, target: 'node'": (dir: string, entry: string) => webpackBundle(dir, entry, 'node'),
  };
  for (const [how, build] of Object.entries(NODE_BUNDLERS)) {
    for (const source of ['vendored', 'package'] as const) {
      test(`${how}: ${source === 'vendored' ? 'the vendored websockets.ts' : 'the npm package'}`, { timeout: TOOL_MS * 2 }, async () => {
        const bundler = how.startsWith('esbuild') ? 'node-esbuild' : 'node-webpack';
        const { dir, entry } = await appDir(source, bundler);
        const specifier = source === 'vendored' ? './websockets.ts' : pkg.name;
        await write(join(dir, entry), echoSource(`import { listen, open } from '${specifier}';`, `bundled by ${bundler}`));
        const bundled = await build(dir, entry);
        assert.deepEqual(bundled.problems, [], 'no errors and no warnings');
        const ran = await run(['node', join(dir, 'out', 'app.cjs')], { cwd: dir, timeout: TOOL_MS });
        assert.equal(ran.code, 0, ran.output);
        assert.equal(ran.stdout.trim(), `ECHO bundled by ${bundler} 1,2,3`, ran.output);
      });
    }
  }
});

/** Type-checking the installed package: .mts and .cts consumers in Node, and a browser app. */
const CONSUMER_MTS = `
import { connect, listen, WebSocketError, isOk } from '${pkg.name}';
import type { ClientOptions, Server, WebSocket } from '${pkg.name}';
import type { ConnectionOptions } from 'node:tls';

const tls: ConnectionOptions = { rejectUnauthorized: true };
const options: ClientOptions = { protocols: ['chat'], tls };
const server: Server = await listen('127.0.0.1', 0, async (ws: WebSocket) => {
  for await (const message of ws) await ws.send(message);
}, { verify: (request) => request.headers['origin'] !== undefined });
const ws = await connect(server.url, options);
try {
  await ws.send('hi');
  const reply: string | Uint8Array = await ws.receive();
  console.log(reply);
} catch (error) {
  if (!isOk(error) && error instanceof WebSocketError) console.log(error.code, error.reason);
}
await server.close();
`;
const CONSUMER_CTS = `
import websockets = require('${pkg.name}');
import type { ServerOptions } from '${pkg.name}';

const options: ServerOptions = { protocols: ['chat'], onError: (error: unknown) => console.error(error) };
async function main(): Promise<void> {
  const server = await websockets.listen('127.0.0.1', 0, (ws) => ws.close(), options);
  const reply = await websockets.open(server.url, async (ws) => {
    await ws.send('hi');
    return ws.receive();
  });
  console.log(reply, new websockets.WebSocketError(1000).code);
  await server.close();
}
void main();
`;
const CONSUMER_BROWSER = `
import { connect, wrap } from '${pkg.name}';

export async function chat(url: string): Promise<void> {
  const ws = await connect(url);
  for await (const message of ws) console.log(message);
  const native = wrap(new WebSocket(url));
  await native.close();
}
`;
const PACKAGE_CONFIGS = {
  'node16 (.mts and .cts, @types/node)': { options: { module: 'node16', moduleResolution: 'node16', lib: ['es2022'], ...NODE_TYPES }, files: ['esm.mts', 'cjs.cts'] },
  'nodenext (.mts and .cts, @types/node)': { options: { module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022'], ...NODE_TYPES }, files: ['esm.mts', 'cjs.cts'] },
  'bundler (a browser app: lib es2022+dom, types: [])': { options: { module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom'], ...NO_TYPES }, files: ['browser.ts'] },
};
const typesProject = once(async () => {
  const dir = join(await consumerProject(), 'types');
  await write(join(dir, 'esm.mts'), CONSUMER_MTS);
  await write(join(dir, 'cjs.cts'), CONSUMER_CTS);
  await write(join(dir, 'browser.ts'), CONSUMER_BROWSER);
  return dir;
});
const packageChecks = new Map<string, () => Promise<Ran>>();
for (const ts of TYPESCRIPTS) {
  for (const [configName, config] of Object.entries(PACKAGE_CONFIGS)) {
    const name = `${ts.version}-${configName.split(' ')[0]}`;
    packageChecks.set(
      `${ts.version} ${configName}`,
      once(async () => tsc(ts, await typesProject(), name, { target: 'es2022', strict: true, noEmit: true, ...config.options }, config.files)),
    );
  }
}

// ─── 4. the npm package ─────────────────────────────────────────────────────────────────────

describe('the npm package', () => {
  test('dist/ is built from the current websockets.ts (else: npm run build:lib)', async () => {
    const esbuild = await import('esbuild');
    const { code } = await esbuild.transform(await readFile(join(root, 'websockets.ts'), 'utf8'), { loader: 'ts', format: 'esm', target: 'es2022' });
    assert.ok(code === (await readFile(join(root, 'dist', 'websockets.js'), 'utf8')), 'dist/websockets.js differs from what build:lib makes of websockets.ts: the package tests below test a stale dist/');
  });

  test('npm pack: exactly the library, its builds and types, README, LICENSE, package.json', async () => {
    const { files } = await packed();
    assert.deepEqual(files, [
      'LICENSE',
      'README.md',
      'dist/websockets.browser.js',
      'dist/websockets.browser.js.map',
      'dist/websockets.cjs',
      'dist/websockets.d.cts',
      'dist/websockets.d.ts',
      'dist/websockets.js',
      'package.json',
      'websockets.ts',
    ]);
  });

  test('package.json: sideEffects false, no runtime dependencies', () => {
    const manifest = pkg as Record<string, unknown>;
    assert.equal(manifest['sideEffects'], false);
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) assert.equal(manifest[field], undefined, `no ${field}`);
  });

  test('attw (are the types wrong): node10, node16 from CommonJS and from ESM, bundler all green', { timeout: TOOL_MS }, async () => {
    const { tarball } = await packed();
    const ran = await run(['node', binOf('@arethetypeswrong/cli', 'attw'), tarball, '--format', 'json'], { cwd: work, timeout: TOOL_MS });
    const report = JSON.parse(ran.stdout) as {
      analysis: { entrypoints: Record<string, unknown> };
      problems?: Record<string, Array<{ kind: string; entrypoint?: string; resolutionKind?: string }>>;
    };
    assert.deepEqual(Object.keys(report.analysis.entrypoints).sort(), ['.', './package.json', './websockets.ts']);
    const problems = Object.values(report.problems ?? {})
      .flat()
      // The TypeScript source subpath is ESM (for bundlers, Deno and Bun): require() cannot load it, and attw says so.
      .filter((problem) => !(problem.kind === 'CJSResolvesToESM' && problem.entrypoint === './websockets.ts' && problem.resolutionKind === 'node16-cjs'));
    assert.deepEqual(problems, [], ran.output);
  });

  test('publint (strict, down to suggestions): no messages', { timeout: TOOL_MS }, async () => {
    const { tarball } = await packed();
    const { publint } = await import('publint');
    const { formatMessage } = await import('publint/utils');
    const bytes = await readFile(tarball);
    const result = await publint({ pack: { tarball: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer }, level: 'suggestion', strict: true });
    const messages = result.messages.map((message) => `${message.type}: ${formatMessage(message, result.pkg, { color: false }) ?? message.code}`);
    assert.deepEqual(messages, []);
  });

  test('import from ESM in Node: an echo over 127.0.0.1', { timeout: TOOL_MS }, async () => {
    const dir = await consumerProject();
    await write(join(dir, 'esm.mjs'), echoSource(`import { listen, open } from '${pkg.name}';`, 'from ESM'));
    const ran = await run(['node', 'esm.mjs'], { cwd: dir, timeout: TOOL_MS });
    assert.equal(ran.code, 0, ran.output);
    assert.equal(ran.stdout.trim(), 'ECHO from ESM 1,2,3', ran.output);
  });

  test('require() from CommonJS in Node: an echo over 127.0.0.1, and the CommonJS build is what loads', { timeout: TOOL_MS }, async () => {
    const dir = await consumerProject();
    const check = `if (!require.resolve('${pkg.name}').endsWith('websockets.cjs')) throw new Error('require() resolved ' + require.resolve('${pkg.name}'));`;
    await write(join(dir, 'cjs.cjs'), echoSource(`const { listen, open } = require('${pkg.name}');\n${check}`, 'from CommonJS'));
    const ran = await run(['node', 'cjs.cjs'], { cwd: dir, timeout: TOOL_MS });
    assert.equal(ran.code, 0, ran.output);
    assert.equal(ran.stdout.trim(), 'ECHO from CommonJS 1,2,3', ran.output);
  });

  for (const ts of TYPESCRIPTS) {
    for (const configName of Object.keys(PACKAGE_CONFIGS)) {
      test(`types of the installed package, ${ts.label}, ${configName}`, { timeout: TSC_MS * 5 }, async () => {
        const check = packageChecks.get(`${ts.version} ${configName}`);
        assert.ok(check);
        assertCompiled(await check());
      });
    }
  }
});

// ─── 5. JSR ─────────────────────────────────────────────────────────────────────────────────

describe('JSR', () => {
  test('jsr.json: a scoped name, the package.json version, the one file as its export', async () => {
    const jsr = JSON.parse(await readFile(join(root, 'jsr.json'), 'utf8')) as { name: string; version: string; exports: unknown };
    assert.match(jsr.name, /^@[a-z0-9-]{2,20}\/[a-z0-9-]{2,58}$/);
    assert.equal(jsr.version, pkg.version);
    assert.equal(jsr.exports, './websockets.ts');
  });

  test('deno publish --dry-run: no slow types, no warnings; exactly websockets.ts, README.md, LICENSE (and jsr.json)', { timeout: NPX_MS }, async () => {
    const ran = await run(['npx', '-y', 'deno@2', 'publish', '--dry-run', '--allow-dirty'], { cwd: root, timeout: NPX_MS, env: { DENO_DIR: join(cache, 'deno') } });
    assert.equal(ran.code, 0, ran.output);
    const output = ran.stdout + ran.stderr;
    assert.doesNotMatch(output, /warning|error/i, ran.output);
    const files = [...output.matchAll(/^\s+file:\/\/\S*?\/([^/\s]+) \(/gm)].map((match) => match[1]).sort();
    assert.deepEqual(files, ['LICENSE', 'README.md', 'jsr.json', 'websockets.ts'], ran.output);
  });
});

// ─── the vendored file's type-checks (last: by then most of their tsc runs are done) ────────

describe('the vendored file type-checks in users\u2019 projects', () => {
  test('the temporary projects cannot see any node_modules (so types: [] means no @types/node)', () => {
    for (let dir = work; ; dir = dirname(dir)) {
      assert.ok(!existsSync(join(dir, 'node_modules')), `${dir}/node_modules exists: the browser-only check would see it`);
      if (dirname(dir) === dir) break;
    }
  });

  for (const ts of TYPESCRIPTS) {
    for (const [profileName, profile] of Object.entries(PROFILES)) {
      for (const resolution of Object.keys(RESOLUTIONS)) {
        // No test where the compiler predates the profile's flag (isolatedDeclarations is 5.5+): nothing to check there.
        const check = vendoredChecks.get(`${ts.version}-${profileName}-${resolution}`);
        if (!check) continue;
        test(`${ts.label}, ${profileName} (${profile.what}), moduleResolution ${resolution}`, { timeout: TSC_MS * 3 }, async () => assertCompiled(await check()));
      }
    }
  }

  test('deno check: the file and the consumers (Deno\u2019s own lib, node: types)', { timeout: NPX_MS }, async () => {
    // A Deno project: deno.json, no package.json (with one, Deno wants @types/node in node_modules).
    const dir = join(work, 'deno');
    await mkdir(dir, { recursive: true });
    await copyFile(join(root, 'websockets.ts'), join(dir, 'websockets.ts'));
    await write(join(dir, 'deno.json'), json({}));
    await write(join(dir, 'common.ts'), COMMON_TS);
    await write(join(dir, 'node.ts'), NODE_TS);
    await write(join(dir, 'browser.ts'), BROWSER_TS);
    const ran = await run(['npx', '-y', 'deno@2', 'check', 'websockets.ts', 'common.ts', 'node.ts', 'browser.ts'], { cwd: dir, timeout: NPX_MS, env: { DENO_DIR: join(cache, 'deno') } });
    assert.equal(ran.code, 0, `${errorLines(ran.stdout + ran.stderr)}\n\n${ran.output}`);
    assert.doesNotMatch(ran.stdout + ran.stderr, /warning|error/i, ran.output);
  });
});
