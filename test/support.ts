// Small helpers shared by the test suites (not a test file itself).
import { createHash } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';

/** RFC 6455 §1.3: the GUID a server appends to the client's key. */
export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The Sec-WebSocket-Accept value for a Sec-WebSocket-Key. */
export const acceptFor = (key: string): string => createHash('sha1').update(key + GUID).digest('base64');

export const sleep = (ms: number): Promise<void> => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `promise`'s value, or null if it takes longer than `ms` (the timer never outlives the race). */
export async function within<V>(promise: Promise<V>, ms: number): Promise<V | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export interface RawResponse {
  /** Everything the server sent. */
  text: string;
  statusLine: string;
  /** Header names in lower case; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: string;
  /** Whether the server closed the connection (FIN or close) before the deadline. */
  closed: boolean;
}

function parseResponse(text: string, closed: boolean): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { text, statusLine, headers, body: end < 0 ? '' : text.slice(end + 4), closed };
}

/**
 * Sends `request` as is and collects the answer. `until: 'close'` waits for the server to
 * close the connection (up to `wait` ms); `until: 'headers'` stops at the end of the headers.
 */
export async function rawHttp(port: number, request: string | Uint8Array, until: 'close' | 'headers' = 'close', wait = 2_000): Promise<RawResponse> {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  try {
    await once(socket, 'connect');
    socket.write(request);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (until === 'headers' && text.includes('\r\n\r\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      const done = () => {
        closed = true;
        clearTimeout(timer);
        resolve();
      };
      socket.on('end', done);
      socket.on('close', done);
      socket.on('error', () => {});
    });
  } finally {
    socket.destroy();
  }
  return parseResponse(text, closed);
}
