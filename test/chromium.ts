// Headless Chromium for the browser tests (test/browser.test.ts, test/browser-http2.test.ts) and the demo test
// (test/demo.test.ts): launching it, driving it over the Chrome DevTools Protocol with OUR OWN
// WebSocket client, stopping it, and the policy for when it is not installed.
//
// Chromium is /usr/bin/chromium, or $CHROMIUM. When it is missing, the tests that need it are
// skipped with a clear `SKIPPED: chromium not found (install: apt-get install -y chromium)`
// line, unless CI=true: in CI (.ci/run installs it) a missing browser is a failure, never a skip.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WebSocket } from '../websockets.ts';
import { peerMissing } from './peers.ts';
import type { SystemPeer } from './peers.ts';

export const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
const CHROMIUM_START_MS = 30_000;
export const CDP_CALL_MS = 15_000;

/** Debian's Chromium, or $CHROMIUM. */
const CHROMIUM_PEER: SystemPeer = {
  name: CHROMIUM === '/usr/bin/chromium' ? 'chromium' : `chromium (looked for ${CHROMIUM})`,
  install: 'apt-get install -y chromium',
  present: () => existsSync(CHROMIUM),
};

/**
 * The browser-test policy, for a test's `skip` option: `false` (run) when Chromium is installed
 * or when CI=true (where launchChromium then fails, loudly); otherwise a reason to skip, after
 * printing the SKIPPED line once per test file.
 *
 * @example test('in the browser', { skip: chromiumMissing() }, async () => { … })
 */
export function chromiumMissing(): string | false {
  return peerMissing(CHROMIUM_PEER);
}

/** The repository root: the nearest directory above this file that holds websockets.ts. */
export function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'websockets.ts'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (websockets.ts) above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

export function withTimeout<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

// ── the Chrome DevTools Protocol, over our own client ───────────────────────────────────────

export interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: string };
  sessionId?: string;
}

export interface RemoteObject {
  type: string;
  subtype?: string;
  value?: unknown;
  description?: string;
}

export interface ExceptionDetails {
  text: string;
  exception?: RemoteObject;
}

export class Cdp {
  readonly ws: WebSocket;
  readonly events: CdpMessage[] = [];
  #nextId = 1;
  readonly #pending = new Map<number, { resolve(result: Record<string, unknown>): void; reject(error: Error): void; method: string }>();
  readonly #listeners = new Set<(event: CdpMessage) => void>();
  /** How the read loop ended. */
  readonly done: Promise<unknown>;

  constructor(ws: WebSocket) {
    this.ws = ws;
    this.done = this.#read();
  }

  async #read(): Promise<unknown> {
    let ending: unknown = null;
    try {
      for await (const data of this.ws) {
        assert.equal(typeof data, 'string', 'the DevTools Protocol speaks TEXT messages');
        const message = JSON.parse(data as string) as CdpMessage;
        if (message.id !== undefined) {
          const pending = this.#pending.get(message.id);
          this.#pending.delete(message.id);
          if (!pending) continue;
          if (message.error) pending.reject(new Error(`${pending.method}: ${message.error.message} ${message.error.data ?? ''}`));
          else pending.resolve(message.result ?? {});
        } else {
          this.events.push(message);
          for (const listener of this.#listeners) listener(message);
        }
      }
    } catch (error) {
      ending = error;
    }
    for (const pending of this.#pending.values()) pending.reject(new Error(`${pending.method}: the DevTools connection ended (${String(ending ?? 'normally')})`));
    this.#pending.clear();
    return ending;
  }

  call(method: string, params: Record<string, unknown> = {}, sessionId?: string, ms = CDP_CALL_MS): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => this.#pending.set(id, { resolve, reject, method }));
    const message: CdpMessage = { id, method, params };
    if (sessionId) message.sessionId = sessionId;
    return withTimeout(this.ws.send(JSON.stringify(message)).then(() => answer), ms, `DevTools ${method}`);
  }

  /** Resolves with the first event `method` of `sessionId` (registered before it is awaited). */
  waitFor(method: string, sessionId: string, ms = CDP_CALL_MS): Promise<CdpMessage> {
    let listener: ((event: CdpMessage) => void) | undefined;
    const seen = new Promise<CdpMessage>((resolve) => {
      listener = (event) => {
        if (event.method === method && event.sessionId === sessionId) resolve(event);
      };
      this.#listeners.add(listener);
    });
    return withTimeout(seen, ms, `DevTools event ${method}`).finally(() => {
      if (listener) this.#listeners.delete(listener);
    });
  }

  /** Runs `expression` in the page, awaits its promise, and returns its value as JSON. */
  async evaluate<T>(sessionId: string, expression: string, ms = CDP_CALL_MS): Promise<T> {
    const reply = await this.call('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId, ms);
    const details = reply['exceptionDetails'] as ExceptionDetails | undefined;
    if (details) throw new Error(`in the page: ${details.exception?.description ?? details.text}`);
    return (reply['result'] as RemoteObject).value as T;
  }

  /** Exceptions the pages did not catch (including unhandled rejections). */
  pageExceptions(): string[] {
    return this.events
      .filter((event) => event.method === 'Runtime.exceptionThrown')
      .map((event) => {
        const details = (event.params?.['exceptionDetails'] ?? {}) as ExceptionDetails;
        return details.exception?.description ?? details.text;
      });
  }
}

export interface TabSession {
  targetId: string;
  sessionId: string;
}

/**
 * Opens a tab (a DevTools target attached in flat mode, Runtime and Page enabled), runs
 * `beforeNavigate` (e.g. an Emulation call), then loads `url` and waits for its load event.
 */
export async function newTab(cdp: Cdp, url: string, options: { newWindow?: boolean; ms?: number; beforeNavigate?: (sessionId: string) => Promise<unknown> } = {}): Promise<TabSession> {
  const { targetId } = (await cdp.call('Target.createTarget', { url: 'about:blank', ...(options.newWindow ? { newWindow: true } : {}) })) as { targetId: string };
  const { sessionId } = (await cdp.call('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
  await cdp.call('Runtime.enable', {}, sessionId);
  await cdp.call('Page.enable', {}, sessionId);
  await options.beforeNavigate?.(sessionId);
  const loaded = cdp.waitFor('Page.loadEventFired', sessionId, options.ms ?? 20_000);
  await cdp.call('Page.navigate', { url }, sessionId);
  await loaded;
  return { targetId, sessionId };
}

// ── Chromium ──────────────────────────────────────────────────────────────────────────────────

export interface Browser {
  process: ChildProcess;
  devtoolsUrl: string;
  exited: Promise<void>;
  stderrTail(): string;
}

/**
 * Chromium's flags that make it accept one self-signed certificate (PEM) and still reuse its
 * connections (an h2 connection for WebSockets, test/browser-http2.test.ts):
 * `--ignore-certificate-errors` with the base64 SHA-256 of the certificate's SPKI in
 * `--ignore-certificate-errors-spki-list`, the pair PEERS.md records. (In Chromium 156
 * headless either flag alone passed those tests too; with neither, the fetch fails.)
 */
export function trustCertificateArgs(certPem: string): string[] {
  const spki = createPublicKey(certPem).export({ type: 'spki', format: 'der' });
  return ['--ignore-certificate-errors', `--ignore-certificate-errors-spki-list=${createHash('sha256').update(spki).digest('base64')}`];
}

/** Starts headless Chromium with its profile in `profile`; `extraArgs` go before the first URL. */
export function launchChromium(profile: string, extraArgs: readonly string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM${process.env['CI'] === 'true' ? '; CI=true, so this is a failure, not a skip' : ''}`);
  }
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
    '--remote-debugging-port=0',
    `--user-data-dir=${join(profile, 'user-data')}`,
    ...extraArgs,
    'about:blank',
  ];
  // Its own process group, so that the renderers and helpers can be killed with it.
  const child = spawn(CHROMIUM, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, XDG_CONFIG_HOME: join(profile, 'config'), XDG_CACHE_HOME: join(profile, 'cache') },
  });
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise<Browser>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => finish(new Error(`Chromium printed no DevTools URL within ${CHROMIUM_START_MS} ms`)), CHROMIUM_START_MS);
    const finish = (error: Error | null, devtoolsUrl = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const browser: Browser = { process: child, devtoolsUrl, exited, stderrTail: () => lines.slice(-30).join('\n') };
      if (error) {
        void stopChromium(browser).then(() => reject(new Error(`${error.message}\nstderr:\n${browser.stderrTail()}`)));
      } else resolve(browser);
    };
    let buffered = '';
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      buffered += text;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (lines.length > 200) lines.shift();
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(line);
        if (match) finish(null, match[1]);
      }
    });
    child.once('error', (error) => finish(error));
    child.once('exit', (code, signal) => finish(new Error(`Chromium exited early (code ${code}, signal ${signal})`)));
  });
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Asks Chromium to close over DevTools, closes the DevTools connection, then makes sure the process group is gone. */
export async function closeChromium(cdp: Cdp | undefined, browser: Browser | undefined): Promise<void> {
  try {
    if (cdp) {
      await cdp.call('Browser.close', {}, undefined, 5_000).catch(() => undefined);
      await withTimeout(cdp.ws.close(), 5_000, 'DevTools close').catch(() => undefined);
    }
  } finally {
    if (browser) await stopChromium(browser);
  }
}

/** Kills Chromium's process group (only the processes it started) and waits until it is gone. */
export async function stopChromium(browser: Browser): Promise<void> {
  const pid = browser.process.pid;
  if (pid === undefined) return;
  if (browser.process.exitCode === null && browser.process.signalCode === null) {
    await withTimeout(browser.exited, 5_000, 'Chromium exit').catch(() => undefined);
  }
  if (groupAlive(pid)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 50 && groupAlive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100));
}
