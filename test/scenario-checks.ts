// What test/shared-client.ts must return, wherever it ran: the assertions and the Node-side
// fixtures that test/browser.test.ts and test/runtimes.test.ts share. Node only.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { isUpgrade, upgrade } from '../websockets.ts';
import { BINARY, CLOSE_CODE, CLOSE_REASON, DIE_REQUEST, LARGE_SIZES, PROTOCOL, TEXT } from './shared-client.ts';
import type { AbnormalResult, Bounded, EdgeResult, Outcome, Result, WrapEdges } from './shared-client.ts';

export interface Expectation {
  /** True for our own RFC 6455 client (Node, Deno, Bun); false over a native WebSocket (a browser, or `wrap`). */
  ownClient: boolean;
  /** The extensions the server negotiated; '' by default. */
  extensions?: string;
}

function rejected(outcome: Outcome, label: string): Extract<Outcome, { outcome: 'rejected' }> {
  assert.equal(outcome.outcome, 'rejected', `${label}: expected a rejection, got ${JSON.stringify(outcome)}`);
  return outcome as Extract<Outcome, { outcome: 'rejected' }>;
}

/** Asserts every step of `runClientScenario`'s result. */
export function assertScenario(result: Result, expect: Expectation): void {
  const where = `[${result.runtime}]`;
  assert.equal(result.ownClient, expect.ownClient, `${where} ownClient`);
  assert.equal(result.protocol, '', `${where} protocol`);
  assert.equal(result.extensions, expect.extensions ?? '', `${where} extensions`);

  assert.deepEqual(result.text, { type: 'string', isUint8Array: false, length: TEXT.length, value: TEXT }, `${where} text echo`);
  assert.deepEqual(result.binary, { type: 'Uint8Array', isUint8Array: true, length: BINARY.length, value: BINARY }, `${where} binary echo arrives as a Uint8Array`);
  assert.deepEqual(result.emptyText, { type: 'string', isUint8Array: false, length: 0, value: '' }, `${where} empty text echo`);
  assert.deepEqual(result.emptyBinary, { type: 'Uint8Array', isUint8Array: true, length: 0, value: [] }, `${where} empty binary echo`);

  assert.deepEqual(result.large.map((echo) => echo.size), LARGE_SIZES, `${where} large echo sizes`);
  for (const echo of result.large) {
    assert.deepEqual(echo.received, { type: 'Uint8Array', isUint8Array: true, length: echo.size }, `${where} ${echo.size}-byte echo arrives as one Uint8Array`);
    assert.equal(echo.checksum, echo.expected, `${where} ${echo.size}-byte echo checksum`);
    assert.equal(echo.sentAfter, echo.expected, `${where} ${echo.size}-byte send() left the caller's buffer intact`);
  }

  assert.deepEqual(result.iterableText, [
    { type: 'string', isUint8Array: false, length: 'iterable ✓'.length, value: 'iterable ✓' },
    { type: 'string', isUint8Array: false, length: 5, value: 'after' },
  ], `${where} an iterable arrives as one message`);
  assert.deepEqual(result.iterableBinary, { type: 'Uint8Array', isUint8Array: true, length: 6, value: [1, 2, 3, 4, 5, 6] }, `${where} binary iterable`);
  assert.deepEqual(result.iterableGenerator, { type: 'string', isUint8Array: false, length: 9, value: 'generated' }, `${where} generator`);
  assert.deepEqual(result.asyncIterable, { type: 'string', isUint8Array: false, length: 5, value: 'async' }, `${where} async iterable`);
  assert.deepEqual(result.order, Array.from({ length: 10 }, (_, i) => `n${i}`), `${where} unawaited sends keep their order`);

  if (expect.ownClient) {
    assert.equal(result.ping.outcome, 'resolved', `${where} ping() resolves on our own client: ${JSON.stringify(result.ping)}`);
    assert.ok(result.ping.outcome === 'resolved' && typeof result.ping.value === 'number' && result.ping.value >= 0, `${where} ping() resolves with an RTT`);
    assert.equal(result.pong.outcome, 'resolved', `${where} pong() resolves on our own client: ${JSON.stringify(result.pong)}`);
  } else {
    const ping = rejected(result.ping, `${where} ping() over a native WebSocket`);
    assert.equal(ping.isError, true, `${where} ping() rejects with an Error`);
    assert.equal(ping.isWebSocketError, false, `${where} ping()'s error is not a connection error`);
    assert.match(ping.message, /ping/, `${where} ping()'s error names ping`);
    assert.match(ping.message, /browser|native/i, `${where} ping()'s error says why`);
    const pong = rejected(result.pong, `${where} pong() over a native WebSocket`);
    assert.equal(pong.isError, true, `${where} pong() rejects with an Error`);
    assert.match(pong.message, /pong/, `${where} pong()'s error names pong`);
  }

  const receive = rejected(result.close.receive, `${where} receive() after the server's close`);
  assert.equal(receive.name, 'WebSocketError', `${where} close error name`);
  assert.equal(receive.isWebSocketError, true, `${where} close error is a WebSocketError`);
  assert.equal(receive.code, CLOSE_CODE, `${where} close code`);
  assert.equal(receive.reason, CLOSE_REASON, `${where} close reason`);
  assert.equal(result.close.closeCode, CLOSE_CODE, `${where} ws.closeCode`);
  assert.equal(result.close.closeReason, CLOSE_REASON, `${where} ws.closeReason`);
  assert.deepEqual(result.close.closed, { code: CLOSE_CODE, reason: CLOSE_REASON }, `${where} ws.closed`);
  assert.deepEqual(result.close.again, result.close.receive, `${where} a second receive() rejects the same way`);
  const sendAfter = rejected(result.close.sendAfter, `${where} send() after the close`);
  assert.equal(sendAfter.isError, true, `${where} send() after the close rejects with an Error`);
}

/**
 * The part of a result that must be identical in every runtime: everything except who ran it,
 * timings, and what only our own client can do (ping/pong).
 */
export function portablePart(result: Result): Omit<Result, 'runtime' | 'ownClient' | 'ping' | 'pong' | 'ms'> {
  const { runtime: _runtime, ownClient: _ownClient, ping: _ping, pong: _pong, ms: _ms, ...rest } = result;
  return { ...rest, large: rest.large.map((echo) => ({ ...echo, ms: 0 })) };
}

/** Asserts `runEdgeScenario`'s result; `open`: whether it ran open() (not with a custom connect). */
export function assertEdge(result: EdgeResult, expect: { open: boolean } = { open: true }): void {
  const where = `[${result.runtime}]`;
  assert.deepEqual(result.emptyIterable, { type: 'Uint8Array', isUint8Array: true, length: 0, value: [] }, `${where} send([]) is one empty BINARY message`);
  const expectRejection = (outcome: Outcome, name: string, label: string) => {
    assert.ok(outcome.outcome !== 'threw', `${where} ${label} threw synchronously instead of rejecting: ${JSON.stringify(outcome)}`);
    assert.equal(rejected(outcome, `${where} ${label}`).name, name, `${where} ${label}: ${JSON.stringify(outcome)}`);
  };
  expectRejection(result.mixed, 'TypeError', "send(['a', bytes])");
  expectRejection(result.notAChunk, 'TypeError', 'send(42)');
  assert.deepEqual(result.afterBadSends, { type: 'string', isUint8Array: false, length: 2, value: 'ok' }, `${where} the connection survives bad sends`);
  expectRejection(result.closeBadCode, 'RangeError', 'close(1005)');
  expectRejection(result.closeLongReason, 'RangeError', 'close(4000, 124-byte reason)');
  assert.deepEqual(result.iterated, ['one', 'two'], `${where} iteration`);
  assert.deepEqual(result.leftover, { type: 'string', isUint8Array: false, length: 5, value: 'three' }, `${where} breaking out of iteration keeps the next message`);
  assert.equal(result.clientClose.close.outcome, 'resolved', `${where} close(4000, 'client bye'): ${JSON.stringify(result.clientClose.close)}`);
  assert.deepEqual(result.clientClose.closed, { code: 4000, reason: 'client bye' }, `${where} ws.closed after the client's close (the server echoes it)`);
  assert.equal(result.clientClose.closeCode, 4000, `${where} ws.closeCode after the client's close`);
  assert.equal(result.clientClose.closeReason, 'client bye', `${where} ws.closeReason after the client's close`);
  const afterClose = rejected(result.clientClose.receive, `${where} receive() after the client's close`);
  assert.equal(afterClose.isWebSocketError, true, `${where} receive() after the client's close: a WebSocketError`);
  assert.equal(afterClose.code, 4000, `${where} receive() after the client's close: the code`);
  assert.deepEqual(result.normalEnd.messages, ['x', 'y'], `${where} iteration up to a normal close`);
  assert.equal(result.normalEnd.ended.outcome, 'resolved', `${where} iteration ends without an error on 1000: ${JSON.stringify(result.normalEnd.ended)}`);
  assert.equal(result.normalEnd.closeCode, 1000, `${where} closeCode after the server's normal close`);
  assert.equal(result.normalEnd.closeReason, 'done', `${where} closeReason after the server's normal close`);
  assert.equal(result.protocol, PROTOCOL, `${where} the subprotocol the server chose`);
  if (!expect.open) {
    assert.equal(result.openValue, undefined);
    assert.equal(result.openThrows, undefined);
    return;
  }
  assert.deepEqual(result.openValue, { outcome: 'resolved', value: null, text: 'via open' }, `${where} open() resolves with the handler's value`);
  assert.deepEqual(result.openThrows, { sameError: true, message: 'boom from the handler' }, `${where} open() rejects with the handler's own error`);
}

/** `runWrapEdges`: a connection that never opened ends like any dead link (1006), every promise settles. */
export function assertWrapNeverOpened(result: WrapEdges): void {
  const where = `[${result.runtime}] wrap() of a connection that never opened:`;
  const is1006 = (outcome: Bounded, label: string) => {
    assert.notEqual(outcome.outcome, 'hung', `${where} ${label} never settled`);
    const error = rejected(outcome as Outcome, `${where} ${label}`);
    assert.equal(error.isWebSocketError, true, `${where} ${label}: ${JSON.stringify(error)}`);
    assert.equal(error.code, 1006, `${where} ${label}: ${JSON.stringify(error)}`);
  };
  is1006(result.neverOpened.receive, 'receive()');
  assert.equal(result.neverOpened.closed.outcome, 'resolved', `${where} ws.closed ${JSON.stringify(result.neverOpened.closed)}`);
  assert.equal(result.neverOpened.closeCode, 1006, `${where} closeCode`);
  is1006(result.neverOpened.send, 'a send() made while CONNECTING');
}

/** `runWrapEdges`: wrap() of a native socket that is already CLOSED settles receive(), closed and close(). */
export function assertWrapAlreadyClosed(result: WrapEdges): void {
  const where = `[${result.runtime}] wrap() of a socket already closed:`;
  assert.equal(result.alreadyClosed.nativeState, 3, `${where} the native socket was CLOSED before wrap()`);
  assert.notEqual(result.alreadyClosed.receive.outcome, 'hung', `${where} receive() never settled`);
  const receive = rejected(result.alreadyClosed.receive as Outcome, `${where} receive()`);
  assert.equal(receive.isWebSocketError, true, `${where} receive() ${JSON.stringify(receive)}`);
  assert.equal(result.alreadyClosed.closed.outcome, 'resolved', `${where} ws.closed ${JSON.stringify(result.alreadyClosed.closed)}`);
  assert.equal(result.alreadyClosed.close.outcome, 'resolved', `${where} close() ${JSON.stringify(result.alreadyClosed.close)}`);
}

/** `runWrapEdges`: wrap() of a CONNECTING socket reports the subprotocol and extensions negotiated once it opened. */
export function assertWrapConnecting(result: WrapEdges): void {
  const where = `[${result.runtime}] wrap() of a CONNECTING socket:`;
  const { connecting } = result;
  assert.deepEqual(connecting.echo, { type: 'string', isUint8Array: false, length: 2, value: 'hi' }, `${where} echo`);
  assert.equal(connecting.nativeProtocol, PROTOCOL, `${where} the native socket negotiated ${PROTOCOL}`);
  assert.equal(connecting.protocol, connecting.nativeProtocol, `${where} ws.protocol`);
  assert.equal(connecting.extensions, connecting.nativeExtensions, `${where} ws.extensions`);
}

/** Asserts `runAbnormalClose`'s result: the connection died without a close frame → 1006. */
export function assertAbnormal(result: AbnormalResult): void {
  const where = `[${result.runtime}]`;
  assert.deepEqual(result.echo, { type: 'string', isUint8Array: false, length: 6, value: 'before' }, `${where} echo before the connection died`);
  const receive = rejected(result.receive, `${where} receive() after the connection died`);
  assert.equal(receive.isWebSocketError, true, `${where} a WebSocketError: ${JSON.stringify(receive)}`);
  assert.equal(receive.code, 1006, `${where} code 1006 (abnormal closure)`);
  assert.equal(result.closeCode, 1006, `${where} ws.closeCode`);
  assert.equal(result.closed.code, 1006, `${where} ws.closed.code`);
}

export interface KillerServer {
  url: string;
  close(): Promise<void>;
}

/**
 * A node:http server that hands upgrades to `upgrade()` with an echo handler which destroys
 * the TCP connection (no close frame) when it receives DIE_REQUEST. 127.0.0.1, port 0.
 */
export async function listenKiller(onError: (error: unknown) => void): Promise<KillerServer> {
  const server: HttpServer = createServer((_, response) => response.writeHead(426).end());
  server.on('upgrade', (request, socket: Socket, head: Buffer) => {
    if (!isUpgrade(request)) return socket.destroy();
    upgrade(request, socket, head, async (ws) => {
      try {
        for await (const message of ws) {
          if (message === DIE_REQUEST) socket.destroy();
          else await ws.send(message);
        }
      } catch {
        // the connection died: that is the point
      }
    }, { onError });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
