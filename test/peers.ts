// The policy for test suites that need a system peer (Chromium, python3-websockets, …): on a
// developer's machine without the peer, the tests that need it are skipped, after one line
// naming the peer and the exact command that installs it; with CI=true (where .ci/run installs
// every peer) a missing peer is never a skip: the tests run and fail loudly.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface SystemPeer {
  /** What the tests need, as the SKIPPED line names it. */
  name: string;
  /** The exact command that installs it. */
  install: string;
  /** Whether it is here (checked once). */
  present(): boolean;
}

const announced = new Set<string>();

/**
 * For a test's `skip` option: `false` (run) when the peer is present or CI=true, else the
 * reason to skip, printed once per test file as `SKIPPED: <name> not found (install: <command>)`.
 *
 * @example test('against python', { skip: peerMissing(PYTHON_WEBSOCKETS) }, async () => { … })
 */
export function peerMissing(peer: SystemPeer): string | false {
  if (process.env['CI'] === 'true' || peer.present()) return false;
  const reason = `SKIPPED: ${peer.name} not found (install: ${peer.install})`;
  if (!announced.has(peer.name)) {
    announced.add(peer.name);
    console.log(reason);
  }
  return reason;
}

/** Debian's python3-websockets, the interop peer of the compression suite. */
export const PYTHON_WEBSOCKETS: SystemPeer = {
  name: 'python3-websockets',
  install: 'apt-get install -y python3-websockets',
  present: () => spawnSync('/usr/bin/python3', ['-c', 'import websockets'], { stdio: 'ignore', timeout: 10_000 }).status === 0,
};

/** Debian's redis-server, the pub/sub engine of the cluster chat (examples/cluster-chat.ts). */
export const REDIS_SERVER: SystemPeer = {
  name: 'redis-server',
  install: 'apt-get install -y redis-server',
  present: () => spawnSync('redis-server', ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0,
};

/** Whether `command` is on the PATH. */
const onPath = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore', timeout: 10_000 }).status === 0;

/** Debian's tinyproxy, the HTTP CONNECT proxy of test/proxies.test.ts. */
export const TINYPROXY: SystemPeer = {
  name: 'tinyproxy',
  install: 'apt-get install -y tinyproxy',
  present: () => onPath('tinyproxy'),
};

/** Debian's microsocks, the SOCKS5 proxy of test/proxies.test.ts. */
export const MICROSOCKS: SystemPeer = {
  name: 'microsocks',
  install: 'apt-get install -y microsocks',
  present: () => onPath('microsocks'),
};

/** Debian's python3-h2, under test/h2peer.py: the raw HTTP/2 client of test/http2.test.ts's hostile cases. */
export const PYTHON_H2: SystemPeer = {
  name: 'python3-h2',
  install: 'apt-get install -y python3-h2',
  present: () => spawnSync('/usr/bin/python3', ['-c', 'import h2'], { stdio: 'ignore', timeout: 10_000 }).status === 0,
};

/** Debian installs nghttpx in /usr/sbin, which a user's PATH often lacks. */
const NGHTTPX_IN_SBIN = '/usr/sbin/nghttpx';

/** Debian's nghttpx (package nghttp2-proxy), the HTTP/2 proxy of the Autobahn runs over RFC 8441 (autobahn/run.ts). */
export const NGHTTPX: SystemPeer = {
  name: 'nghttpx',
  install: 'apt-get install -y nghttp2-proxy',
  present: () => onPath('nghttpx') || existsSync(NGHTTPX_IN_SBIN),
};

/** How to run nghttpx: from the PATH, else from /usr/sbin. */
export const nghttpxCommand = (): string => (onPath('nghttpx') ? 'nghttpx' : NGHTTPX_IN_SBIN);
