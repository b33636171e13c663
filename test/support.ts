// Small helpers shared by the test suites (not a test file itself).
import { createHash } from 'node:crypto';

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
