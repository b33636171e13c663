/**
 * Fan-out across processes and machines through Redis pub/sub, for examples/cluster-chat.ts
 * and bench/fanout.ts. The Redis client is node-redis (`redis` on npm), a devDependency of
 * this repository for the examples only: the library itself has no dependencies.
 *
 * - One channel per room (`chat:room:<name>`), subscribed when the room gets its first local
 *   member (`subscribe`) and unsubscribed after its last (`unsubscribe`).
 * - Every message is tagged with its origin (a unique id of this process) and a sequence
 *   number per room, `<origin> <seq>\n<payload>`. A process delivers its own messages to its
 *   local members itself and ignores them when Redis echoes them, so nobody is served twice;
 *   a message that comes back with the same or a lower number from an origin is dropped.
 * - Redis pub/sub is at most once: what is published while a subscriber is disconnected is
 *   gone. A gap in an origin's numbers counts as lost messages (`stats.lost`, and a log line).
 *   A publish while Redis is down fails at once instead of waiting in an unbounded queue
 *   (`disableOfflineQueue`), and counts in `stats.unpublished`; its number is used up, so the
 *   receivers count it too.
 * - node-redis reconnects by itself and restores the subscriptions of the connection; each
 *   time both connections are back it logs `redis: connected again (N rooms resubscribed)`.
 *   A subscribe or unsubscribe that fails while Redis is down (node-redis then forgets it) is
 *   sent again once the subscriber is back, so the subscriptions always end up as the rooms.
 *   Redis also drops a subscriber that reads too slowly (`client-output-buffer-limit pubsub`):
 *   that is one more disconnection, handled the same way.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createClient } from 'redis';

type Client = ReturnType<typeof createClient>;

/** The channel of a room. */
export function roomChannel(room: string): string {
  return `chat:room:${room}`;
}

/** The wire form of one message: `<origin> <seq>\n<payload>` (the payload is sent as it is, no re-encoding). */
export function encodeEnvelope(origin: string, seq: number, payload: string): string {
  return `${origin} ${seq}\n${payload}`;
}

/** The parts of an envelope, or null for a message that is not one. */
export function decodeEnvelope(message: string): { origin: string; seq: number; payload: string } | null {
  const newline = message.indexOf('\n');
  const space = message.lastIndexOf(' ', newline);
  if (newline < 0 || space <= 0) return null;
  const seq = Number(message.slice(space + 1, newline));
  return Number.isSafeInteger(seq) && seq > 0 ? { origin: message.slice(0, space), seq, payload: message.slice(newline + 1) } : null;
}

export interface FanoutStats {
  /** Messages handed to Redis. */
  published: number;
  /** Publishes that failed (Redis down): those messages reached no other process. */
  unpublished: number;
  /** Messages from other processes delivered here. */
  received: number;
  /** Messages from other processes that never arrived here (gaps in their numbers). */
  lost: number;
  /** Times both connections came back after a disconnection. */
  reconnects: number;
}

interface Room {
  deliver: (payload: string) => void;
  /** The subscription's listener: unsubscribing names it, so that a subscribe sent before the unsubscribe's reply is not undone by it. */
  listener: (message: string) => void;
  /** The last number seen from each origin, to see gaps and repeats. */
  last: Map<string, number>;
  /** Messages lost in this room, for the log. */
  lost: number;
  /** Redis answered its SUBSCRIBE (else it is sent again once the subscriber is back). */
  confirmed: boolean;
}

export interface FanoutOptions {
  /** A log line (the default: nothing). */
  log?: (line: string) => void;
  /** This process's id in the envelopes; default `<hostname>:<pid>:<random>`. */
  origin?: string;
}

export class RedisFanout {
  readonly origin: string;
  readonly stats: FanoutStats = { published: 0, unpublished: 0, received: 0, lost: 0, reconnects: 0 };
  readonly #publisher: Client;
  readonly #subscriber: Client;
  readonly #rooms = new Map<string, Room>();
  /** The next number per room: never reset (a restarted process has a new origin). */
  readonly #seq = new Map<string, number>();
  readonly #log: (line: string) => void;
  /** Which of the two connections are down: logged once when both are back. */
  readonly #down = new Set<string>();
  /** The last error each connection logged: each different one is said once. */
  readonly #lastError = new Map<string, string>();
  /** Unsubscribes that failed (Redis down): the room and the listener, sent again once the subscriber is back. */
  readonly #leftOver = new Map<string, (message: string) => void>();
  #closing = false;

  private constructor(url: string, options: FanoutOptions) {
    this.origin = options.origin ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#log = options.log ?? (() => undefined);
    const settings = {
      url,
      // Retry every 100 ms, up to 1 s apart: a restarted Redis is found again within a second.
      socket: { reconnectStrategy: (retries: number) => Math.min(100 * (retries + 1), 1000), connectTimeout: 5000 },
      disableOfflineQueue: true,
    };
    this.#publisher = createClient(settings);
    this.#subscriber = createClient(settings);
    this.#watch(this.#publisher, 'publisher');
    this.#watch(this.#subscriber, 'subscriber');
  }

  /** Connects both connections (a publisher, and a subscriber: a subscribed connection can do nothing else). */
  static async connect(url: string, options: FanoutOptions = {}): Promise<RedisFanout> {
    const fanout = new RedisFanout(url, options);
    await Promise.all([fanout.#publisher.connect(), fanout.#subscriber.connect()]);
    return fanout;
  }

  #watch(client: Client, role: string): void {
    client.on('error', (error: Error) => {
      if (this.#closing) return;
      // node-redis reports every failed reconnection attempt: say each different error once.
      const text = `${role}: ${error.message || error.name}`;
      if (text !== this.#lastError.get(role)) this.#log(`redis ${text}`);
      this.#lastError.set(role, text);
    });
    client.on('reconnecting', () => {
      if (!this.#closing && !this.#down.has(role)) {
        this.#down.add(role);
        this.#log(`redis: the ${role} connection is down, reconnecting`);
      }
    });
    client.on('ready', () => {
      if (client === this.#subscriber) this.#reconcile();
      if (!this.#down.delete(role) || this.#down.size > 0) return;
      this.stats.reconnects++;
      this.#lastError.clear();
      this.#log(`redis: connected again (${this.#rooms.size} room(s) resubscribed)`);
    });
  }

  /**
   * Makes the subscriptions the rooms again: node-redis restores only the subscriptions Redis
   * had confirmed, and keeps those whose unsubscribe failed. Runs each time the subscriber is back.
   */
  #reconcile(): void {
    for (const [room, listener] of this.#leftOver) {
      this.#leftOver.delete(room);
      this.#unsubscribeRoom(room, listener).catch(() => undefined); // a failure waits for the next ready
    }
    for (const [room, state] of this.#rooms) {
      if (!state.confirmed) this.#subscribeRoom(room, state).catch(() => undefined); // a failure waits for the next ready
    }
  }

  async #subscribeRoom(room: string, state: Room): Promise<void> {
    await this.#subscriber.subscribe(roomChannel(room), state.listener);
    state.confirmed = true;
  }

  #unsubscribeRoom(room: string, listener: (message: string) => void): Promise<void> {
    return this.#subscriber.unsubscribe(roomChannel(room), listener).catch((error: unknown) => {
      if (!this.#closing) this.#leftOver.set(room, listener);
      throw error;
    });
  }

  /** Starts receiving a room's messages from other processes. */
  async subscribe(room: string, deliver: (payload: string) => void): Promise<void> {
    if (this.#rooms.has(room)) throw new Error(`already subscribed to ${room}`);
    const state: Room = { deliver, listener: (message: string) => this.#receive(room, state, message), last: new Map(), lost: 0, confirmed: false };
    this.#rooms.set(room, state);
    await this.#subscribeRoom(room, state);
  }

  /** Stops receiving a room's messages (its last local member left). */
  async unsubscribe(room: string): Promise<void> {
    const state = this.#rooms.get(room);
    if (!state) return;
    this.#rooms.delete(room);
    await this.#unsubscribeRoom(room, state.listener);
  }

  /** Sends a message to the room's members on other processes (the local ones are served by the caller). */
  publish(room: string, payload: string): void {
    const seq = (this.#seq.get(room) ?? 0) + 1;
    this.#seq.set(room, seq);
    this.#publisher.publish(roomChannel(room), encodeEnvelope(this.origin, seq, payload)).then(
      () => void this.stats.published++,
      (error: Error) => {
        this.stats.unpublished++;
        if (this.stats.unpublished === 1 || this.stats.unpublished % 100 === 0) this.#log(`redis: could not publish to room ${room} (${error.message}); ${this.stats.unpublished} unpublished in all`);
      },
    );
  }

  #receive(room: string, state: Room, message: string): void {
    if (this.#rooms.get(room) !== state) return; // unsubscribed meanwhile
    const envelope = decodeEnvelope(message);
    if (!envelope || envelope.origin === this.origin) return; // not ours to deliver, or our own echo
    const last = state.last.get(envelope.origin);
    if (last !== undefined && envelope.seq <= last) return; // a repeat: never serve twice
    if (last !== undefined && envelope.seq > last + 1) {
      const gap = envelope.seq - last - 1;
      this.stats.lost += gap;
      state.lost += gap;
      this.#log(`redis: lost ${gap} message(s) in room ${room} from ${envelope.origin} (${state.lost} in this room, ${this.stats.lost} in all)`);
    }
    state.last.set(envelope.origin, envelope.seq);
    this.stats.received++;
    state.deliver(envelope.payload);
  }

  /** Unsubscribes from everything and closes both connections. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#rooms.clear();
    await Promise.allSettled([this.#subscriber.close(), this.#publisher.close()]);
  }
}
