// What a testee tells run.js about its WebSockets: how many handshakes each
// HTTP version carried ('1.1', or '2' for an RFC 8441 stream), the most open
// at once, and how long the slowest took to close once its messages ended
// (the close handshake plus the wait for the peer's end of the connection).
// The testee prints it as one line; run.js finds that line in the output.

const PREFIX = '[testee] websockets ';

export interface VersionStats {
  versions: Record<string, number>;
  maxOpen: number;
  slowestCloseMs: number;
}

export interface VersionTally {
  /** A WebSocket opened over `version`, gone when `closed` settles; call the result when its messages end. */
  opened(version: string, closed: Promise<unknown>): () => void;
  /** The line to print. */
  line(): string;
}

export function versionTally(): VersionTally {
  const stats: VersionStats = { versions: {}, maxOpen: 0, slowestCloseMs: 0 };
  let open = 0;
  return {
    opened(version, closed) {
      stats.versions[version] = (stats.versions[version] ?? 0) + 1;
      stats.maxOpen = Math.max(stats.maxOpen, ++open);
      let endedAt: number | undefined;
      const gone = (): void => {
        open--;
        if (endedAt !== undefined) stats.slowestCloseMs = Math.max(stats.slowestCloseMs, Date.now() - endedAt);
      };
      closed.then(gone, gone);
      return () => {
        endedAt ??= Date.now();
      };
    },
    line: () => `${PREFIX}${JSON.stringify(stats)}`,
  };
}

/** The stats in a line of a testee's output, or undefined if the line is not that one. */
export function parseVersionLine(line: string): VersionStats | undefined {
  return line.startsWith(PREFIX) ? (JSON.parse(line.slice(PREFIX.length)) as VersionStats) : undefined;
}
