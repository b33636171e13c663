// A driver for Shopify's Toxiproxy (https://github.com/Shopify/toxiproxy), the fault-injecting
// TCP proxy of test/faults.test.ts: starts `toxiproxy-server` on a free loopback port, drives
// it over its HTTP API (proxies, toxics) and stops it. Not a test file itself.
//
// .ci/run builds the binary into .tools/ (`go install …/cmd/server@v2.5.0`); TOXIPROXY_SERVER
// names another one.

import http from 'node:http';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { sleep } from './support.ts';
import type { SystemPeer } from './peers.ts';

/** The repository's root: the first directory above this file that holds websockets.ts (from test/ or build/test/). */
function root(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'websockets.ts')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

export const TOXIPROXY_BINARY = process.env['TOXIPROXY_SERVER'] ?? join(root(), '.tools', 'toxiproxy-server');

export const TOXIPROXY: SystemPeer = {
  name: 'toxiproxy-server',
  install: 'GOBIN=$PWD/.tools go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0 && mv .tools/server .tools/toxiproxy-server (as .ci/run does)',
  present: () => existsSync(TOXIPROXY_BINARY),
};

/** Which way a toxic acts: `upstream` is client → server, `downstream` server → client. */
export type Stream = 'upstream' | 'downstream';

export interface ToxicSpec {
  name: string;
  type: 'latency' | 'bandwidth' | 'slicer' | 'timeout' | 'reset_peer' | 'limit_data' | 'slow_close';
  stream: Stream;
  /** The share of connections the toxic acts on, 0 to 1 (default 1), drawn when a connection starts and when the toxic changes. */
  toxicity?: number;
  attributes: Record<string, number>;
}

export interface Proxy {
  name: string;
  /** The port clients connect to (127.0.0.1). */
  port: number;
  url: string;
}

const free = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });

/** A running toxiproxy-server and its HTTP API. */
export class Toxiproxy {
  readonly port: number;
  readonly #process: ChildProcess;
  #proxies = 0;
  #log = '';

  private constructor(port: number, child: ChildProcess) {
    this.port = port;
    this.#process = child;
    child.stderr?.on('data', (chunk: Buffer) => (this.#log = (this.#log + chunk.toString()).slice(-4_000)));
  }

  /** Starts the server on a free loopback port and waits until its API answers. */
  static async start(): Promise<Toxiproxy> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await free();
      const child = spawn(TOXIPROXY_BINARY, ['-host', '127.0.0.1', '-port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
      const toxiproxy = new Toxiproxy(port, child);
      let failed: Error | null = null;
      const exited = new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.once('error', (error) => {
          failed = error;
          resolve();
        });
      });
      const deadline = performance.now() + 10_000;
      while (performance.now() < deadline && child.exitCode === null && failed === null) {
        try {
          await toxiproxy.#request('GET', '/version');
          return toxiproxy;
        } catch (error) {
          lastError = error;
          await Promise.race([sleep(50), exited]);
        }
      }
      if (failed) throw new Error(`cannot run ${TOXIPROXY_BINARY}: ${String(failed)}`);
      await toxiproxy.stop();
      lastError = new Error(`toxiproxy-server did not start on port ${port}: ${toxiproxy.#log || String(lastError)}`);
    }
    throw lastError;
  }

  /** A new proxy on a free loopback port in front of `127.0.0.1:upstreamPort`. */
  async proxy(upstreamPort: number): Promise<Proxy> {
    const name = `p${++this.#proxies}`;
    const created = (await this.#request('POST', '/proxies', { name, listen: '127.0.0.1:0', upstream: `127.0.0.1:${upstreamPort}`, enabled: true })) as { listen: string };
    const port = Number(created.listen.slice(created.listen.lastIndexOf(':') + 1));
    return { name, port, url: `ws://127.0.0.1:${port}` };
  }

  /** Deletes a proxy: it stops listening and its connections are closed. */
  async remove(proxy: Proxy): Promise<void> {
    await this.#request('DELETE', `/proxies/${proxy.name}`);
  }

  /** Adds a toxic to a proxy; it acts on the connections already open as on new ones. */
  async add(proxy: Proxy, toxic: ToxicSpec): Promise<void> {
    await this.#request('POST', `/proxies/${proxy.name}/toxics`, { toxicity: 1, ...toxic });
  }

  /** Changes a toxic's attributes or toxicity. */
  async update(proxy: Proxy, name: string, change: { toxicity?: number; attributes?: Record<string, number> }): Promise<void> {
    await this.#request('POST', `/proxies/${proxy.name}/toxics/${name}`, change);
  }

  async removeToxic(proxy: Proxy, name: string): Promise<void> {
    await this.#request('DELETE', `/proxies/${proxy.name}/toxics/${name}`);
  }

  /** Runs `body` with a fresh proxy in front of `upstreamPort`, deleted afterwards. */
  async with<V>(upstreamPort: number, body: (proxy: Proxy) => Promise<V>): Promise<V> {
    const proxy = await this.proxy(upstreamPort);
    try {
      return await body(proxy);
    } finally {
      await this.remove(proxy).catch(() => {});
    }
  }

  async stop(): Promise<void> {
    if (this.#process.exitCode !== null || this.#process.signalCode !== null) return;
    const exited = once(this.#process, 'exit');
    this.#process.kill('SIGTERM');
    const timer = setTimeout(() => this.#process.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  }

  /** One API call, on a connection of its own (no keep-alive socket outlives it). */
  #request(method: string, path: string, body?: unknown): Promise<unknown> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const request = http.request({ host: '127.0.0.1', port: this.port, method, path, agent: false, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          if (status < 200 || status >= 300) return reject(new Error(`toxiproxy ${method} ${path}: HTTP ${status} ${text}`));
          try {
            resolve(text === '' ? null : (JSON.parse(text) as unknown));
          } catch {
            resolve(text);
          }
        });
        response.on('error', reject);
      });
      request.on('error', reject);
      request.end(payload);
    });
  }
}
