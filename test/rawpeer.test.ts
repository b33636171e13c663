// A raw peer that speaks frames by hand over node:net, against our server (and, once, a raw
// server against our client): protocol errors, UTF-8 validation, close codes, limits,
// keepalive and the closing handshake (RFC 6455 §5, §7, §8).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, WebSocketError } from '../websockets.ts';
import type { ServerOptions, WebSocket, CloseInfo } from '../websockets.ts';
import { sleep, within, Arrivals, withTestServer, withRawServer, wireFrame, closeFramePayload, parseClose, WireOp } from './support.ts';
import type { Harness, RawPeer } from './support.ts';

const T = { timeout: 5_000 };
const utf8 = (text: string) => new TextEncoder().encode(text);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

const echo = async (ws: WebSocket) => {
  for await (const message of ws) await ws.send(message);
};

/** Runs `body` against a fresh server (closeTimeout 300 ms, every wait 1 s); closes every raw peer and the server afterwards. */
const withServer = (options: ServerOptions, body: (harness: Harness) => Promise<void>, handler: (ws: WebSocket) => unknown = echo): Promise<void> =>
  withTestServer({ closeTimeout: 300, ...options }, handler, body, { wait: 1_000, peer: { wait: 1_000 } });

/** Expects the server to answer with a close frame carrying `code`, then to close TCP. */
async function expectFailure(peer: RawPeer, code: number, timeout = 1_000): Promise<void> {
  const close = await peer.closeFrame(timeout);
  assert.equal(close.code, code, `expected close ${code}, got ${String(close.code)} (${close.reason}); frames: ${peer.describe()}`);
  await peer.tcpClosed(timeout);
}

describe('UTF-8 validation', () => {
  test('invalid UTF-8 in a text message → close 1007, then TCP close', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send(WireOp.TEXT, Uint8Array.of(0x61, 0xff, 0xfe));
      await expectFailure(raw, 1007);
    });
  });

  for (const [what, bytes] of [
    ['an overlong encoding (C0 80)', [0xc0, 0x80]],
    ['a UTF-16 surrogate (ED A0 80)', [0xed, 0xa0, 0x80]],
    ['a code point above U+10FFFF (F4 90 80 80)', [0xf4, 0x90, 0x80, 0x80]],
    ['a message ending mid-sequence (E2 82)', [0x61, 0xe2, 0x82]],
  ] as const) {
    test(`${what} → 1007`, T, async () => {
      await withServer({}, async ({ peer }) => {
        const raw = await peer();
        raw.send(WireOp.TEXT, Uint8Array.from(bytes));
        await expectFailure(raw, 1007);
      });
    });
  }

  test('a fragmented message whose last fragment ends mid-sequence → 1007', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send(WireOp.TEXT, utf8('abc'), { fin: false });
      raw.send(WireOp.CONTINUATION, Uint8Array.of(0xe2, 0x82), { fin: true });
      await expectFailure(raw, 1007);
    });
  });

  test('invalid UTF-8 in a first fragment → 1007 before the final fragment is sent (fail fast)', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send(WireOp.TEXT, Uint8Array.of(0x61, 0x62, 0xff), { fin: false });
      // The final fragment is never sent: the close must come from the first one alone.
      await expectFailure(raw, 1007);
    });
  });

  test('invalid UTF-8 early in a frame whose payload has not all arrived → 1007 (fail fast)', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      const frame = wireFrame(WireOp.TEXT, Uint8Array.from([0x61, 0xff, ...new Uint8Array(998).fill(0x61)]), { mask: true });
      raw.write(frame.subarray(0, 8 + 10)); // the header (2 + 2 + 4 bytes) and the first 10 payload bytes
      await expectFailure(raw, 1007);
    });
  });

  test('UTF-8 split across fragments at every byte position (boundaries and mid-sequence) is accepted', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      const text = 'aé€𝄞z';
      const bytes = utf8(text);
      assert.equal(bytes.length, 11);
      for (let split = 1; split < bytes.length; split++) {
        raw.send(WireOp.TEXT, bytes.subarray(0, split), { fin: false });
        raw.send(WireOp.CONTINUATION, bytes.subarray(split), { fin: true });
        const reply = await raw.nextData();
        assert.equal(reply.opcode, WireOp.TEXT);
        assert.equal(new TextDecoder('utf-8', { fatal: true }).decode(reply.payload), text, `split at byte ${split}`);
      }
      // one byte per fragment, with empty fragments in between
      raw.send(WireOp.TEXT, new Uint8Array(0), { fin: false });
      for (const byte of bytes) {
        raw.send(WireOp.CONTINUATION, Uint8Array.of(byte), { fin: false });
        raw.send(WireOp.CONTINUATION, new Uint8Array(0), { fin: false });
      }
      raw.send(WireOp.CONTINUATION, new Uint8Array(0), { fin: true });
      assert.equal(new TextDecoder().decode((await raw.nextData()).payload), text);
    });
  });

  test('one text frame split across TCP writes in the middle of a code point is accepted', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      const text = '€'.repeat(200) + '𝄞';
      const frame = wireFrame(WireOp.TEXT, utf8(text), { mask: true });
      const headerSize = 2 + 2 + 4;
      for (const cut of [headerSize + 1, headerSize + 302, frame.length - 2]) {
        raw.write(frame.subarray(0, cut));
        await sleep(20);
        raw.write(frame.subarray(cut));
        assert.equal(new TextDecoder().decode((await raw.nextData()).payload), text, `cut at ${cut}`);
      }
    });
  });
});

describe('close frames from the peer', () => {
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
    test(`close code ${code} → 1002`, T, async () => {
      await withServer({}, async ({ peer }) => {
        const raw = await peer();
        raw.send(WireOp.CLOSE, closeFramePayload(code));
        await expectFailure(raw, 1002);
      });
    });
  }

  test('valid close codes are echoed, with the reason, and the server records them', T, async () => {
    const codes = [1000, 1001, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
    await withServer({}, async ({ peer, accepted }) => {
      for (const code of codes) {
        const raw = await peer();
        const ws = await accepted.next();
        raw.send(WireOp.CLOSE, closeFramePayload(code, `reason ${code} ✓`));
        const echoed = await raw.closeFrame();
        assert.deepEqual(echoed, { code, reason: `reason ${code} ✓` }, `code ${code}`);
        await raw.tcpClosed();
        const info: CloseInfo = await ws.closed;
        assert.deepEqual({ ...info }, { code, reason: `reason ${code} ✓` });
        assert.equal(ws.closeCode, code);
      }
    });
  });

  test('a close payload of 1 byte → 1002', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send(WireOp.CLOSE, Uint8Array.of(0x03));
      await expectFailure(raw, 1002);
    });
  });

  test('a close reason that is not valid UTF-8 → 1007', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send(WireOp.CLOSE, closeFramePayload(1000, Uint8Array.of(0x61, 0xff)));
      await expectFailure(raw, 1007);
    });
  });

  test('an empty close → the server records 1005 and echoes an empty close', T, async () => {
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.send(WireOp.CLOSE);
      const frame = await raw.next();
      assert.equal(frame.opcode, WireOp.CLOSE);
      assert.equal(frame.payload.length, 0, 'the echoed close must be empty (1005 is never sent on the wire)');
      await raw.tcpClosed();
      const info = await ws.closed;
      assert.equal(info.code, 1005);
      assert.equal(info.reason, '');
      assert.equal(ws.closeCode, 1005);
    });
  });

  // RFC 6455 §5.5.1: nothing follows a close frame. The frames are written in one TCP write so
  // that the server reads them in one chunk, right behind the close.
  test('a text message and a ping behind a close frame (same chunk) are ignored', T, async () => {
    const received: unknown[] = [];
    const handlerDone = new Arrivals<boolean>(1_000);
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.write(Buffer.concat([
        wireFrame(WireOp.CLOSE, closeFramePayload(1000), { mask: true }),
        wireFrame(WireOp.TEXT, utf8('too late'), { mask: true }),
        wireFrame(WireOp.PING, utf8('too late'), { mask: true }),
      ]));
      await raw.tcpClosed();
      await handlerDone.next();
      assert.deepEqual(
        { closeCode: (await ws.closed).code, framesBack: raw.frames.map((f) => ({ fin: f.fin, opcode: f.opcode, payload: hex(f.payload) })), messagesToTheApplication: received },
        {
          closeCode: 1000,
          framesBack: [{ fin: true, opcode: WireOp.CLOSE, payload: '03e8' }], // only the close echo
          messagesToTheApplication: [],
        },
      );
    }, async (ws) => {
      await sleep(50); // a busy application: whatever arrives meanwhile waits in the queue
      try {
        for await (const message of ws) received.push(message);
      } finally {
        handlerDone.push(true);
      }
    });
  });

  test('garbage behind a close frame (same chunk) does not turn the close echo into 1002', T, async () => {
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.write(Buffer.concat([
        wireFrame(WireOp.CLOSE, closeFramePayload(1000, 'bye'), { mask: true }),
        wireFrame(0x3, utf8('reserved opcode'), { mask: true }),
      ]));
      const echoed = await raw.closeFrame();
      await raw.tcpClosed();
      assert.deepEqual({ echoed, serverSaw: { ...(await ws.closed) } }, { echoed: { code: 1000, reason: 'bye' }, serverSaw: { code: 1000, reason: 'bye' } });
    });
  });

  test('frames sent after a close frame (separate chunks) are ignored', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send(WireOp.CLOSE, closeFramePayload(1000));
      await sleep(20);
      raw.send(WireOp.TEXT, utf8('too late'));
      raw.send(WireOp.PING, utf8('too late'));
      await raw.tcpClosed();
      assert.deepEqual(raw.frames.map((f) => f.opcode), [WireOp.CLOSE], `only the close echo may come back: ${raw.describe()}`);
    });
  });
});

describe('protocol errors → 1002', () => {
  const violations: Array<[string, (raw: RawPeer) => void]> = [
    ['an unmasked client frame', (raw) => raw.send(WireOp.TEXT, utf8('hi'), { mask: false })],
    ['a continuation with no message', (raw) => raw.send(WireOp.CONTINUATION, utf8('hi'))],
    [
      'a new text frame while a fragmented message is open',
      (raw) => {
        raw.send(WireOp.TEXT, utf8('one'), { fin: false });
        raw.send(WireOp.TEXT, utf8('two'), { fin: true });
      },
    ],
    ['RSV1 set without an extension', (raw) => raw.send(WireOp.TEXT, utf8('hi'), { rsv1: true })],
    ['reserved opcode 3', (raw) => raw.send(3, utf8('hi'))],
    ['reserved opcode 0xB', (raw) => raw.send(0xb)],
    ['a fragmented ping', (raw) => raw.send(WireOp.PING, utf8('hi'), { fin: false })],
    ['a ping with a 126-byte payload', (raw) => raw.send(WireOp.PING, new Uint8Array(126))],
  ];
  for (const [what, violate] of violations) {
    test(`${what} → 1002`, T, async () => {
      await withServer({}, async ({ peer, accepted }) => {
        const raw = await peer();
        const ws = await accepted.next();
        violate(raw);
        await expectFailure(raw, 1002);
        await assert.rejects(ws.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1002);
      }, (ws) => ws.closed);
    });
  }
});

describe('pings from the peer', () => {
  test('a ping with a payload → a pong with the same payload', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      for (const payload of [utf8('hello'), new Uint8Array(0), Uint8Array.from(randomBytes(125))]) {
        raw.send(WireOp.PING, payload);
        const pong = await raw.next();
        assert.equal(pong.opcode, WireOp.PONG);
        assert.deepEqual(pong.payload, payload);
      }
    });
  });

  test('a ping between two fragments is answered at once, and the message still arrives whole', T, async () => {
    await withServer({}, async ({ peer }) => {
      const raw = await peer();
      raw.send(WireOp.TEXT, utf8('Hel'), { fin: false });
      raw.send(WireOp.PING, utf8('between'));
      const pong = await raw.next();
      assert.equal(pong.opcode, WireOp.PONG, 'the pong comes before the message is finished');
      assert.deepEqual(pong.payload, utf8('between'));
      raw.send(WireOp.CONTINUATION, utf8('lo'), { fin: true });
      const message = await raw.nextData();
      assert.equal(message.opcode, WireOp.TEXT);
      assert.equal(new TextDecoder().decode(message.payload), 'Hello');
    });
  });
});

describe('limits', () => {
  test('maxMessageSize: 1000 → a 1000-byte message arrives', T, async () => {
    await withServer({ maxMessageSize: 1000 }, async ({ peer }) => {
      const raw = await peer();
      const payload = Uint8Array.from(randomBytes(1000));
      raw.send(WireOp.BINARY, payload);
      const reply = await raw.nextData();
      assert.equal(reply.opcode, WireOp.BINARY);
      assert.deepEqual(reply.payload, payload);
      // also in fragments: 600 + 400
      raw.send(WireOp.BINARY, payload.subarray(0, 600), { fin: false });
      raw.send(WireOp.CONTINUATION, payload.subarray(600), { fin: true });
      assert.deepEqual((await raw.nextData()).payload, payload);
    });
  });

  test('maxMessageSize: 1000 → a 1001-byte message gets 1009', T, async () => {
    await withServer({ maxMessageSize: 1000 }, async ({ peer }) => {
      const raw = await peer();
      raw.send(WireOp.BINARY, new Uint8Array(1001));
      await expectFailure(raw, 1009);
    });
  });

  test('maxMessageSize: 1000 → fragments adding up to 1001 bytes get 1009', T, async () => {
    await withServer({ maxMessageSize: 1000 }, async ({ peer }) => {
      const raw = await peer();
      raw.send(WireOp.TEXT, utf8('a'.repeat(600)), { fin: false });
      raw.send(WireOp.CONTINUATION, utf8('a'.repeat(401)), { fin: true });
      await expectFailure(raw, 1009);
    });
  });

  test('the header of a 2^40-byte frame alone → 1009, without a byte of payload', T, async () => {
    await withServer({ maxMessageSize: 1000 }, async ({ peer }) => {
      const raw = await peer();
      raw.write(wireFrame(WireOp.BINARY, undefined, { length: 2n ** 40n, mask: true }));
      await expectFailure(raw, 1009);
    });
  });

  test('maxFragments: 10 → 10 fragments arrive, the 11th fragment gets 1009', T, async () => {
    await withServer({ maxFragments: 10 }, async ({ peer }) => {
      const raw = await peer();
      for (let i = 0; i < 10; i++) raw.send(i === 0 ? WireOp.TEXT : WireOp.CONTINUATION, utf8(String(i)), { fin: i === 9 });
      assert.equal(new TextDecoder().decode((await raw.nextData()).payload), '0123456789');
      for (let i = 0; i < 10; i++) raw.send(i === 0 ? WireOp.TEXT : WireOp.CONTINUATION, utf8(String(i)), { fin: false });
      await sleep(100);
      assert.equal(raw.frames.filter((f) => f.opcode === WireOp.CLOSE).length, 0, '10 open fragments are within the limit');
      raw.send(WireOp.CONTINUATION, utf8('x'), { fin: false });
      await expectFailure(raw, 1009);
    });
  });

  test('maxFragments counts empty fragments', T, async () => {
    await withServer({ maxFragments: 10 }, async ({ peer }) => {
      const raw = await peer();
      for (let i = 0; i < 11; i++) raw.send(i === 0 ? WireOp.BINARY : WireOp.CONTINUATION, undefined, { fin: i === 10 });
      await expectFailure(raw, 1009);
    });
  });
});

describe('abnormal ends', () => {
  test('a peer that ends TCP mid-message → closed resolves with 1006 and receive rejects with 1006', T, async () => {
    const received = new Arrivals<unknown>(1_000);
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.send(WireOp.TEXT, utf8('half a mess'), { fin: false });
      await sleep(30);
      raw.socket.end();
      const info = await within(ws.closed, 1_000);
      assert.ok(info, 'closed did not resolve within 1 s');
      assert.equal(info.code, 1006);
      assert.equal(ws.closeCode, 1006);
      const error = await received.next();
      assert.ok(error instanceof WebSocketError, `receive rejected with ${String(error)}`);
      assert.equal(error.code, 1006);
    }, async (ws) => {
      try {
        const message = await ws.receive();
        received.push(new Error(`receive resolved with ${JSON.stringify(message)}`));
      } catch (error) {
        received.push(error);
      }
    });
  });

  test('a peer that vanishes (TCP reset) → closed resolves with 1006', T, async () => {
    await withServer({}, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      raw.socket.resetAndDestroy();
      const info = await within(ws.closed, 1_000);
      assert.ok(info, 'closed did not resolve within 1 s');
      assert.equal(info.code, 1006);
    });
  });
});

describe('keepalive', () => {
  test('a peer that never answers pings → close 1011 and TCP dropped within ~1 s', T, async () => {
    await withServer({ pingInterval: 100, pingTimeout: 100 }, async ({ peer, accepted }) => {
      const started = performance.now();
      const raw = await peer();
      const ws = await accepted.next();
      const closedAt = await raw.tcpClosed(2_000);
      const elapsed = closedAt - started;
      assert.ok(elapsed < 1_000, `TCP closed after ${Math.round(elapsed)} ms`);
      assert.ok(raw.frames.some((f) => f.opcode === WireOp.PING), `the server sent pings: ${raw.describe()}`);
      const close = raw.frames.find((f) => f.opcode === WireOp.CLOSE);
      assert.ok(close, `the server sent a close frame before dropping TCP: ${raw.describe()}`);
      assert.equal(parseClose(close).code, 1011);
      const info = await ws.closed;
      assert.equal(info.code, 1006, 'no close frame came from the peer');
    });
  });

  test('a peer that answers pings stays connected past 5 intervals', T, async () => {
    await withServer({ pingInterval: 100, pingTimeout: 100 }, async ({ peer }) => {
      const raw = await peer();
      raw.autoPong = true;
      await sleep(750);
      assert.equal(raw.closedAt, null, `the connection dropped: ${raw.describe()}`);
      assert.equal(raw.frames.filter((f) => f.opcode === WireOp.CLOSE).length, 0);
      const pings = raw.frames.filter((f) => f.opcode === WireOp.PING).length;
      assert.ok(pings >= 5, `only ${pings} pings in 750 ms with pingInterval 100`);
      raw.send(WireOp.TEXT, utf8('still here'));
      assert.equal(new TextDecoder().decode((await raw.nextData()).payload), 'still here');
    });
  });
});

describe('closing handshake', () => {
  test('close() with a silent peer resolves after about closeTimeout (300 ms) and drops the socket', T, async () => {
    const durations = new Arrivals<number>(1_000);
    await withServer({ closeTimeout: 300 }, async ({ peer, accepted }) => {
      const raw = await peer();
      const ws = await accepted.next();
      assert.deepEqual(await raw.closeFrame(), { code: 1000, reason: 'bye' });
      const duration = await durations.next(2_000);
      assert.ok(duration >= 250 && duration < 1_000, `close() took ${Math.round(duration)} ms`);
      await raw.tcpClosed(500);
      assert.equal((await ws.closed).code, 1006, 'the peer never sent a close frame');
    }, async (ws) => {
      const started = performance.now();
      await ws.close(1000, 'bye');
      durations.push(performance.now() - started);
    });
  });

  test('server-initiated close: after the peer’s close frame the server closes TCP first (RFC 6455 §7.1.1)', T, async () => {
    const durations = new Arrivals<number>(1_000);
    await withServer({ closeTimeout: 2_000 }, async ({ peer, accepted }) => {
      const raw = await peer({ allowHalfOpen: true });
      const ws = await accepted.next();
      assert.deepEqual(await raw.closeFrame(), { code: 4000, reason: 'done' });
      assert.equal(raw.endedAt, null, 'the server must wait for our close frame before its FIN');
      const answeredAt = performance.now();
      raw.send(WireOp.CLOSE, closeFramePayload(1000, 'ok'));
      await raw.until(() => raw.endedAt !== null, 1_000, 'the server’s FIN');
      const endedAt = raw.endedAt as number | null; // (narrowed to null by the assertion above)
      assert.ok(endedAt !== null);
      const finDelay = endedAt - answeredAt;
      assert.ok(finDelay < 500, `FIN came ${Math.round(finDelay)} ms after our close: the server waited instead of closing first`);
      raw.socket.end();
      await raw.tcpClosed();
      const duration = await durations.next();
      assert.ok(duration < 1_000, `close() took ${Math.round(duration)} ms`);
      assert.deepEqual({ ...(await ws.closed) }, { code: 1000, reason: 'ok' });
    }, async (ws) => {
      const started = performance.now();
      await ws.close(4000, 'done');
      durations.push(performance.now() - started);
    });
  });
});

describe('a raw server against our client', () => {
  test('a masked frame from the server → the client sends close 1002', T, async () => {
    const peers = new Arrivals<RawPeer>(1_000);
    let ws: WebSocket | undefined;
    await withRawServer((peer) => {
      peers.push(peer);
      peer.send(WireOp.TEXT, utf8('masked!'), { mask: true });
    }, { wait: 1_000 }, async (server) => {
      try {
        ws = await connect(server.url, { closeTimeout: 300, handshakeTimeout: 1_000 });
        await assert.rejects(ws.receive(), (error: unknown) => error instanceof WebSocketError && error.code === 1002);
        const frame = await (await peers.next()).next();
        assert.equal(parseClose(frame).code, 1002);
      } finally {
        ws?.closed.catch(() => {});
      }
    });
    if (ws) assert.equal((await ws.closed).code, 1006, 'the raw server never sent a close frame');
  });
});
