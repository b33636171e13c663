// The demo (`npm start`, examples/chat.ts and examples/chat.html), end to end:
//
//   - the compiled server, build/examples/chat.js, runs as a child process with PORT=0 and
//     prints its URL; it serves the page and the browser bundle, and refuses what it should;
//   - Node clients (our `connect`) chat through it: history, join, members, messages, leave;
//   - bad clients are closed with the code the demo documents (1003, 1008, 1009, 4001);
//   - two pages in headless Chromium (two DevTools targets, driven by our own client) and a
//     Node client chat with each other; join and leave notices show in the page;
//   - SIGTERM closes every connection with 1001 and exits 0, and the page reconnects by itself
//     when the server comes back on the same port.
//
// The browser tests follow the policy of test/chromium.ts: skipped with a SKIPPED line when
// Chromium is missing, a failure when CI=true. With DEMO_SCREENSHOT=/tmp/chat.png the browser
// test saves a screenshot of a page with two messages there.
// Needs `npm run build` (build/examples/chat.js and dist/websockets.browser.js); npm test does.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, WebSocketError } from '../websockets.ts';
import type { WebSocket } from '../websockets.ts';
import { Cdp, chromiumMissing, closeChromium, findRoot, launchChromium, newTab, withTimeout } from './chromium.ts';
import type { Browser, CdpMessage } from './chromium.ts';

const root = findRoot();
const DEMO = join(root, 'build', 'examples', 'chat.js');
const BUNDLE = join(root, 'dist', 'websockets.browser.js');
const START_MS = 10_000;
const EVENT_MS = 5_000;
const PAGE_MS = 10_000;
const needsChromium = chromiumMissing();

// ── the demo server, as a child process ──────────────────────────────────────────────────────

interface Demo {
  child: ChildProcess;
  url: string;
  port: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

/** Starts build/examples/chat.js on `port` (0: a free one) and waits for its "chat demo on …" line. */
function startDemo(port = 0): Promise<Demo> {
  const child = spawn(process.execPath, [DEMO], { env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const output = () => out;
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (out += text));
  const started = new Promise<Demo>((resolve, reject) => {
    child.stdout?.on('data', (text: string) => {
      out += text;
      const match = /chat demo on (http:\/\/127\.0\.0\.1:(\d+)) — open it in two browser tabs/.exec(out);
      if (match) resolve({ child, url: match[1]!, port: Number(match[2]), exited, output });
    });
    void exited.then(({ code, signal }) => reject(new Error(`the demo exited (code ${code}, signal ${signal}) before it was ready:\n${out}`)));
  });
  return withTimeout(started, START_MS, 'starting the demo').catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
}

/** Sends `signal` to the demo and waits (bounded) for it to exit; kills it if it does not. */
async function stopDemo(demo: Demo, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (demo.child.exitCode !== null || demo.child.signalCode !== null) return demo.exited;
  demo.child.kill(signal);
  try {
    return await withTimeout(demo.exited, 10_000, `the demo's exit after ${signal}`);
  } catch (error) {
    demo.child.kill('SIGKILL');
    await demo.exited;
    throw error;
  }
}

// ── a Node chat client ───────────────────────────────────────────────────────────────────────

interface ChatEvent {
  type: string;
  name?: string;
  names?: string[];
  text?: string;
  time?: number;
  messages?: ChatEvent[];
}

class ChatClient {
  readonly ws: WebSocket;
  readonly events: ChatEvent[] = [];
  readonly #listeners = new Set<(event: ChatEvent) => void>();
  readonly done: Promise<unknown>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.done = (async () => {
      try {
        for await (const data of ws) {
          assert.equal(typeof data, 'string', 'the chat speaks JSON text');
          const event = JSON.parse(data as string) as ChatEvent;
          this.events.push(event);
          for (const listener of this.#listeners) listener(event);
        }
        return null;
      } catch (error) {
        return error;
      }
    })();
  }

  static async join(url: string, name: string): Promise<ChatClient> {
    const client = new ChatClient(await connect(url));
    await client.ws.send(JSON.stringify({ type: 'hello', name }));
    await client.waitFor((event) => event.type === 'join' && event.name === name, `${name}'s own join`);
    return client;
  }

  /** The first event, already received or to come, that matches. */
  waitFor(match: (event: ChatEvent) => boolean, label: string, ms = EVENT_MS): Promise<ChatEvent> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    let listener: ((event: ChatEvent) => void) | undefined;
    const future = new Promise<ChatEvent>((resolve) => {
      listener = (event) => {
        if (match(event)) resolve(event);
      };
      this.#listeners.add(listener);
    });
    return withTimeout(future, ms, `waiting for ${label}; got ${JSON.stringify(this.events)}`).finally(() => {
      if (listener) this.#listeners.delete(listener);
    });
  }

  /** The last members list received. */
  members(): string[] | undefined {
    return this.events.filter((event) => event.type === 'members').at(-1)?.names;
  }

  send(text: string): Promise<void> {
    return this.ws.send(JSON.stringify({ type: 'message', text }));
  }

  close(): Promise<void> {
    return withTimeout(this.ws.close(), 6_000, 'closing a chat client').catch(() => undefined);
  }
}

/** Connects, does `misbehave`, and returns the close code and reason the server sent. */
async function closedBy(url: string, misbehave: (ws: WebSocket) => Promise<void>): Promise<{ code: number; reason: string }> {
  const ws = await connect(url);
  try {
    await misbehave(ws).catch((error: unknown) => {
      if (!(error instanceof WebSocketError)) throw error; // a send may meet the close already
    });
    const { code, reason } = await withTimeout(ws.closed, EVENT_MS, 'the server closing a bad client');
    return { code, reason };
  } finally {
    await ws.close().catch(() => undefined);
  }
}

const hello = (name: unknown) => JSON.stringify({ type: 'hello', name });
const message = (text: unknown) => JSON.stringify({ type: 'message', text });

// ── fixtures ─────────────────────────────────────────────────────────────────────────────────

let demo: Demo;
let chatUrl = '';
let profile = '';
let browser: Browser | undefined;
let cdp: Cdp | undefined;
const clients: ChatClient[] = [];

before(async () => {
  assert.ok(existsSync(DEMO), `${DEMO} is missing: run \`npm run build:dev\` (npm test does)`);
  assert.ok(existsSync(BUNDLE), `${BUNDLE} is missing: run \`npm run build:lib\` (npm test does)`);
  demo = await startDemo();
  chatUrl = `${demo.url.replace(/^http/, 'ws')}/chat`;
});

after(async () => {
  await Promise.allSettled(clients.map((client) => client.close()));
  try {
    await closeChromium(cdp, browser);
  } finally {
    if (demo) await stopDemo(demo).catch(() => undefined);
    if (profile) await rm(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}, { timeout: 30_000 });

// ── the server, with Node clients ────────────────────────────────────────────────────────────

test('the demo serves the page and the browser bundle, and refuses what it should', async () => {
  const page = await fetch(`${demo.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  const html = await page.text();
  assert.match(html, /import \{ reconnect \} from '\/websockets\.browser\.js'/, 'the page uses the browser bundle, and its reconnect()');
  assert.doesNotMatch(html, /(?:src|href)="(?:https?:)?\/\//, 'no external resources: it works offline');

  const bundle = await fetch(`${demo.url}/websockets.browser.js`);
  assert.equal(bundle.status, 200);
  assert.match(bundle.headers.get('content-type') ?? '', /^text\/javascript/);
  assert.equal(await bundle.text(), await readFile(BUNDLE, 'utf8'), 'the very dist/websockets.browser.js');

  assert.equal((await fetch(`${demo.url}/nothing-here`)).status, 404);
  assert.equal((await fetch(`${demo.url}/../package.json`)).status, 404);
  assert.equal((await fetch(`${demo.url}/chat`)).status, 426, 'plain HTTP on the WebSocket endpoint');

  // A WebSocket on another path, or from a page of another origin, is refused.
  await assert.rejects(connect(`${demo.url.replace(/^http/, 'ws')}/elsewhere`), (error: unknown) => error instanceof WebSocketError && error.status === 404);
  await assert.rejects(connect(chatUrl, { headers: { origin: 'http://evil.example' } }), (error: unknown) => error instanceof WebSocketError && error.status === 403);
  const sameOrigin = await connect(chatUrl, { headers: { origin: demo.url } });
  await sameOrigin.close();
});

test('two Node clients chat: history, join, members, messages, leave', async () => {
  const ann = await ChatClient.join(chatUrl, 'ann');
  clients.push(ann);
  assert.deepEqual(ann.events[0], { type: 'history', messages: [] }, 'a newcomer gets the history first');
  assert.deepEqual(ann.members(), ['ann']);

  const bob = await ChatClient.join(chatUrl, 'bob');
  clients.push(bob);
  await ann.waitFor((event) => event.type === 'join' && event.name === 'bob', 'bob joining');
  await ann.waitFor((event) => event.type === 'members' && event.names?.join() === 'ann,bob', 'members ann,bob');
  assert.deepEqual(bob.members(), ['ann', 'bob']);

  const before = Date.now();
  await ann.send('  hi bob, ünïcödé ✓ 👋  ');
  for (const client of [ann, bob]) {
    const got = await client.waitFor((event) => event.type === 'message', 'the message');
    assert.equal(got.name, 'ann');
    assert.equal(got.text, 'hi bob, ünïcödé ✓ 👋', 'trimmed, otherwise intact');
    assert.ok(typeof got.time === 'number' && got.time >= before - 1000 && got.time <= Date.now() + 1000, `time ${got.time}`);
  }
  await bob.send('line one\nline two');
  await ann.waitFor((event) => event.type === 'message' && event.text === 'line one\nline two', 'a two-line message');

  // A later arrival gets the history.
  const cat = await ChatClient.join(chatUrl, 'cat');
  clients.push(cat);
  assert.deepEqual(cat.events[0]?.messages?.map((event) => `${event.name}: ${event.text}`), ['ann: hi bob, ünïcödé ✓ 👋', 'bob: line one\nline two']);

  await bob.close();
  await ann.waitFor((event) => event.type === 'leave' && event.name === 'bob', 'bob leaving');
  await ann.waitFor((event) => event.type === 'members' && event.names?.join() === 'ann,cat', 'members ann,cat');
  await cat.close();
  await ann.waitFor((event) => event.type === 'members' && event.names?.join() === 'ann', 'members ann');
  await ann.close();
  assert.equal(await ann.done, null, 'the iteration ended normally');
});

test('bad clients are closed with a clear code; the chat carries on', async () => {
  const watcher = await ChatClient.join(chatUrl, 'watcher');
  clients.push(watcher);
  const long = 'x'.repeat(501);
  const cases: Array<[string, (ws: WebSocket) => Promise<void>, number, RegExp]> = [
    ['binary', (ws) => ws.send(new Uint8Array([1, 2, 3])), 1003, /binary/],
    ['not JSON', (ws) => ws.send('hello?'), 1008, /JSON/],
    ['a JSON array', (ws) => ws.send('[1,2]'), 1008, /JSON object/],
    ['no type', (ws) => ws.send('{"name":"x"}'), 1008, /type/],
    ['a message before hello', (ws) => ws.send(message('hi')), 1008, /hello/],
    ['a name that is not a string', (ws) => ws.send(hello(42)), 1008, /name/],
    ['an empty name', (ws) => ws.send(hello('   ')), 1008, /name/],
    ['a name too long', (ws) => ws.send(hello('n'.repeat(25))), 1008, /name/],
    ['a control character in the name', (ws) => ws.send(hello('a\u0007b')), 1008, /name/],
    ['a name taken (any case)', (ws) => ws.send(hello('WATCHER')), 4001, /taken/],
    ['a second hello', async (ws) => { await ws.send(hello('twice')); await ws.send(hello('twice')); }, 1008, /already/],
    ['an unknown type', async (ws) => { await ws.send(hello('odd')); await ws.send('{"type":"shout"}'); }, 1008, /unknown/],
    ['a message too long', async (ws) => { await ws.send(hello('wordy')); await ws.send(message(long)); }, 1008, /500/],
    ['an empty message', async (ws) => { await ws.send(hello('mute')); await ws.send(message(' ')); }, 1008, /message/],
    ['a message text that is not a string', async (ws) => { await ws.send(hello('numbers')); await ws.send(message(7)); }, 1008, /message/],
    ['a frame over 8 KiB', (ws) => ws.send(hello('y'.repeat(9000))), 1009, /.*/],
    ['a flood', async (ws) => { await ws.send(hello('flood')); for (let i = 0; i < 30; i++) await ws.send(message(`spam ${i}`)); }, 1008, /too many/],
  ];
  for (const [label, misbehave, code, reason] of cases) {
    const closed = await closedBy(chatUrl, misbehave);
    assert.equal(closed.code, code, `${label}: closed with ${JSON.stringify(closed)}`);
    assert.match(closed.reason, reason, `${label}: the reason says why`);
  }
  // The chat still works, and everyone who got in is gone again.
  await watcher.send('still here');
  await watcher.waitFor((event) => event.type === 'message' && event.text === 'still here', 'a message after the bad clients');
  for (let i = 0; i < 50 && watcher.members()?.join() !== 'watcher'; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(watcher.members(), ['watcher']);
  await watcher.close();
  assert.doesNotMatch(demo.output(), /failed|Error/, 'no handler errors in the demo output');
});

// ── headless Chromium ────────────────────────────────────────────────────────────────────────

interface Tab {
  cdp: Cdp;
  sessionId: string;
  targetId: string;
  label: string;
}

/** What a tab shows: the status, the members, and every line of the feed. */
interface View {
  status: string;
  members: string[];
  feed: string[];
  joinVisible: boolean;
  joinError: string;
}

const VIEW = `(() => ({
  status: document.body.dataset.status,
  members: [...document.querySelectorAll('#members li > span:last-child')].map((span) => span.textContent),
  feed: [...document.querySelectorAll('#messages li')].map((li) => li.classList.contains('message')
    ? li.dataset.name + ': ' + li.querySelector('.text').textContent + (li.classList.contains('mine') ? ' (mine)' : '')
    : '— ' + li.textContent),
  joinVisible: !document.getElementById('join').hidden,
  joinError: document.getElementById('join-error').textContent,
}))()`;

async function chromium(): Promise<Cdp> {
  if (cdp) return cdp;
  profile = await mkdtemp(join(tmpdir(), 'websockets-demo-'));
  browser = await launchChromium(profile);
  cdp = new Cdp(await connect(browser.devtoolsUrl, { handshakeTimeout: 10_000 }));
  return cdp;
}

async function openTab(label: string, url: string): Promise<Tab> {
  const devtools = await chromium();
  const { targetId, sessionId } = await newTab(devtools, url, {
    newWindow: true,
    ms: PAGE_MS,
    beforeNavigate: (session) => devtools.call('Emulation.setDeviceMetricsOverride', { width: 1000, height: 640, deviceScaleFactor: 1, mobile: false }, session),
  });
  return { cdp: devtools, sessionId, targetId, label };
}

function view(tab: Tab): Promise<View> {
  return tab.cdp.evaluate<View>(tab.sessionId, VIEW);
}

/** Polls `check(view)` in Node until it holds; fails with what the tab shows. */
async function until(tab: Tab, what: string, check: (view: View) => boolean, ms = PAGE_MS): Promise<View> {
  const deadline = Date.now() + ms;
  let last: View | undefined;
  while (Date.now() < deadline) {
    last = await view(tab);
    if (check(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`${tab.label}: ${what} within ${ms} ms; the page shows ${JSON.stringify(last, null, 1)}`);
}

/** Types into an input of the page and submits its form, as a user would. */
async function type(tab: Tab, input: string, text: string): Promise<void> {
  await tab.cdp.evaluate(tab.sessionId, `(() => {
    const input = document.getElementById(${JSON.stringify(input)});
    input.value = ${JSON.stringify(text)};
    input.form.requestSubmit();
  })()`);
}

function pageErrors(devtools: Cdp): string[] {
  const errors = devtools.pageExceptions();
  // Failed loads and console.error calls are worth a look too.
  const logged = devtools.events
    .filter((event: CdpMessage) => event.method === 'Runtime.consoleAPICalled' && event.params?.['type'] === 'error')
    .map((event) => JSON.stringify(event.params?.['args']));
  return [...errors, ...logged];
}

let alice: Tab | undefined;

test('two tabs in headless Chromium and a Node client chat with each other', { skip: needsChromium, timeout: 120_000 }, async (t) => {
  // A fresh server: no history from the tests above.
  await stopDemo(demo);
  demo = await startDemo();
  chatUrl = `${demo.url.replace(/^http/, 'ws')}/chat`;
  alice = await openTab('Alice\'s tab', `${demo.url}/`);
  const asked = await view(alice);
  assert.equal(asked.joinVisible, true, 'the page asks for a name');
  await type(alice, 'name', 'Alice');
  await until(alice, 'connected, Alice online', (v) => v.status === 'connected' && v.members.join() === 'Alice');
  await until(alice, 'the own join notice', (v) => v.feed.includes('— You joined as Alice'));

  const node = await ChatClient.join(chatUrl, 'node');
  clients.push(node);
  await until(alice, 'node joined', (v) => v.feed.includes('— node joined') && v.members.length === 2);

  const bob = await openTab('Bob\'s tab', `${demo.url}/`);
  await type(bob, 'name', 'Bob');
  await until(bob, 'connected', (v) => v.status === 'connected');
  const aliceSees = await until(alice, 'Bob joined', (v) => v.feed.includes('— Bob joined') && v.members.length === 3);
  assert.deepEqual(aliceSees.members, ['Alice', 'node', 'Bob']);
  await node.waitFor((event) => event.type === 'join' && event.name === 'Bob', 'Bob joining, in Node');

  // Alice types a message: it shows in Bob's tab and reaches the Node client.
  await type(alice, 'text', 'Hi Bob! This message went from one tab to the other 👋');
  await until(bob, 'Alice\'s message', (v) => v.feed.includes('Alice: Hi Bob! This message went from one tab to the other 👋'));
  await until(alice, 'her own message, as hers', (v) => v.feed.includes('Alice: Hi Bob! This message went from one tab to the other 👋 (mine)'));
  const inNode = await node.waitFor((event) => event.type === 'message' && event.name === 'Alice', 'Alice\'s message, in Node');
  assert.equal(inNode.text, 'Hi Bob! This message went from one tab to the other 👋');

  await type(bob, 'text', 'Hello Alice — same API in Node and in the browser: connect, send, for await … of ws.');
  await until(alice, 'Bob\'s reply', (v) => v.feed.some((line) => line.startsWith('Bob: Hello Alice')));
  const screenshot = process.env['DEMO_SCREENSHOT'];
  if (screenshot) {
    const shot = await alice.cdp.call('Page.captureScreenshot', { format: 'png' }, alice.sessionId);
    await writeFile(screenshot, Buffer.from(String(shot['data']), 'base64'));
    t.diagnostic(`screenshot: ${screenshot}`);
  }

  // The Node client's message shows in both tabs.
  await node.send('and hello from Node');
  for (const tab of [alice, bob]) await until(tab, 'the Node client\'s message', (v) => v.feed.includes('node: and hello from Node'));

  // A third tab that picks a name in use (in another case) is asked for another one.
  const copycat = await openTab('a third tab', `${demo.url}/`);
  await type(copycat, 'name', 'BOB');
  await until(copycat, 'asked for another name', (v) => v.joinVisible && /“BOB” is taken/.test(v.joinError) && v.status !== 'connected');
  await copycat.cdp.call('Target.closeTarget', { targetId: copycat.targetId });

  // Leaving: the Node client closes, then Bob's tab is closed.
  await node.close();
  await until(alice, 'node left', (v) => v.feed.includes('— node left') && v.members.join() === 'Alice,Bob');
  await bob.cdp.call('Target.closeTarget', { targetId: bob.targetId });
  await until(alice, 'Bob left', (v) => v.feed.includes('— Bob left') && v.members.join() === 'Alice');
  assert.deepEqual(pageErrors(alice.cdp), [], 'errors in the pages');
});

test('SIGTERM closes every connection with 1001 and exits 0; the page reconnects when the server is back', { skip: needsChromium, timeout: 120_000 }, async () => {
  assert.ok(alice, 'the previous test opened Alice\'s tab');
  const node = await ChatClient.join(chatUrl, 'restart-watcher');
  const { port } = demo;
  const exit = await stopDemo(demo, 'SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, `a clean exit; output:\n${demo.output()}`);
  assert.match(demo.output(), /SIGTERM: closing 2 connection\(s\) with 1001/);
  assert.equal(await node.done, null, 'iteration ended quietly: a normal close');
  assert.equal(node.ws.closeCode, 1001);
  assert.equal(node.ws.closeReason, 'server shutting down');

  await until(alice, 'offline, and says so', (v) => v.status === 'offline' && v.feed.some((line) => line.startsWith('— Disconnected (the server went away)')));
  // Let the page fail to reconnect at least once: the backoff grows and keeps trying.
  await new Promise((resolve) => setTimeout(resolve, 1_500));

  demo = await startDemo(port);
  const back = await until(alice, 'reconnected', (v) => v.status === 'connected' && v.members.join() === 'Alice', 20_000);
  assert.ok(back.feed.filter((line) => line === '— You joined as Alice').length >= 2, 'joined again');

  const after = await ChatClient.join(chatUrl, 'after-restart');
  clients.push(after);
  await type(alice, 'text', 'back online');
  const got = await after.waitFor((event) => event.type === 'message', 'a message from the reconnected page');
  assert.deepEqual([got.name, got.text], ['Alice', 'back online']);
  assert.deepEqual(pageErrors(alice.cdp), [], 'errors in the pages');
});

test('SIGINT stops the demo cleanly too', async () => {
  const other = await startDemo();
  const client = await ChatClient.join(`${other.url.replace(/^http/, 'ws')}/chat`, 'last');
  const exit = await stopDemo(other, 'SIGINT');
  assert.deepEqual(exit, { code: 0, signal: null }, other.output());
  assert.equal(await client.done, null);
  assert.equal(client.ws.closeCode, 1001);
  assert.match(other.output(), /chat demo stopped/);
});
