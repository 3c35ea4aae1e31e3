// The stream's status as a session knows it. The server pushes it over the chat channel the
// session already has: `stream.status` when the stream goes live or offline (and to each
// member when its channel opens), and the number of media viewers in `presence`. The API
// (`refreshStatus()`, or polling when asked for) gives the same figures plus the bitrate.
// Whatever the source, `live`, `offline` and `viewers` are emitted only when they change,
// and `status` on every update.

/** A stream as `GET /api/streams/{stream}` describes it. */
export interface StreamStatus {
  name: string;
  live: boolean;
  /** `layers`: a simulcast video's RIDs, smallest picture first. */
  tracks: { kind: string; codec: string; layers?: string[] }[];
  /** Viewers watching the media now (with or without the chat). */
  viewers: number;
  /**
   * Incoming media bitrate at the server, bits per second: only the API has it, so it is the
   * last fetched value (0 if the status was never fetched).
   */
  bitrate_bps: number;
  /** Whether the server is recording the stream. */
  recording: boolean;
  /** On a cluster: the node the publisher is on (`viewers` is then the cluster's total). */
  origin?: string;
  /** On a cluster: viewers per node, by node id. */
  nodes?: Record<string, number>;
}

/** What a `stream.status` chat message says. */
export interface PushedStatus {
  live: boolean;
  tracks: StreamStatus['tracks'];
  recording: boolean;
}

/** The events a status change makes. */
export interface StatusEvents {
  live: StreamStatus;
  offline: { stream: string };
  viewers: { count: number };
  status: StreamStatus;
}

type Report = <K extends keyof StatusEvents>(type: K, value: StatusEvents[K]) => void;

/** The last known status of one stream, and the events its changes make. */
export class StatusTracker {
  #stream: string;
  #report: Report;
  #status: StreamStatus | null = null;
  /** The viewer count last reported (`null`: none yet). */
  #viewers: number | null = null;

  constructor(stream: string, report: Report) {
    this.#stream = stream;
    this.#report = report;
  }

  /** The last known status (`null`: nothing said yet whether the stream is live). */
  get status(): StreamStatus | null {
    return this.#status;
  }

  /** A `stream.status` pushed over the chat channel. */
  pushed(update: PushedStatus): void {
    const base = this.#status ?? {
      name: this.#stream,
      live: false,
      tracks: [],
      viewers: this.#viewers ?? 0,
      bitrate_bps: 0,
      recording: false,
    };
    this.#setLive({ ...base, live: update.live, tracks: update.tracks, recording: update.recording });
  }

  /** The number of media viewers, from a `presence` pushed over the chat channel. */
  watching(count: number): void {
    if (this.#viewers === count) return;
    this.#viewers = count;
    this.#report('viewers', { count });
    if (this.#status !== null) {
      this.#status = { ...this.#status, viewers: count };
      this.#report('status', this.#status);
    }
  }

  /** A status fetched from the API. */
  fetched(status: StreamStatus): void {
    this.#setLive(status);
    if (this.#viewers !== status.viewers) {
      this.#viewers = status.viewers;
      this.#report('viewers', { count: status.viewers });
    }
  }

  #setLive(next: StreamStatus): void {
    const before = this.#status;
    this.#status = next;
    this.#report('status', next);
    if (before === null || before.live !== next.live) {
      if (next.live) this.#report('live', next);
      else this.#report('offline', { stream: this.#stream });
    }
  }
}
