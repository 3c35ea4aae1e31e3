// What publishing and watching share: one WHIP/WHEP session at a time with its `chat` data
// channel, watched for failure and replaced with backoff when it breaks, moved to another
// node when a node of a cluster asks (`server.move` on the chat channel), and the stream's
// status (live, offline, viewers) as the server pushes it over that channel — or, on
// request, as the API answers.

import { backoffDelay, type BackoffOptions } from './backoff.js';
import {
  Chat,
  type BannedEvent,
  type ChatEvents,
  type ChatHistory,
  type ChatMessage,
  type MutedEvent,
} from './chat.js';
import { Emitter } from './emitter.js';
import { DirectoError, errorFromResponse, toDirectoError } from './errors.js';
import { authHeaders, endSession, endpointUrl, negotiate } from './signaling.js';
import { StatusTracker, type StreamStatus } from './status.js';

/** A disconnected peer gets this long to come back by itself before it is replaced. */
const DISCONNECTED_GRACE_MS = 3000;
/** A new peer that has not connected after this long is replaced. */
const CONNECT_TIMEOUT_MS = 15_000;

/** Options both `publish` and `watch` take. */
export interface SessionOptions {
  /** The Directo server's base URL (default: the page's origin). */
  server?: string;
  /** The stream name, `[A-Za-z0-9_-]{1,64}`. */
  stream: string;
  /** The display name in the chat, 1–32 characters. */
  name?: string;
  /** Reconnect on its own when the connection drops (default `true`), or the backoff timing. */
  reconnect?: boolean | BackoffOptions;
  /**
   * Also ask the API for the stream's status every this many ms (default 0: never). The
   * server pushes live, offline and viewer counts over the chat channel, so this is only
   * for the bitrate, or for a server too old to push.
   */
  statusIntervalMs?: number;
  /** Extra `RTCPeerConnection` configuration (ICE servers are not needed for Directo). */
  rtcConfiguration?: RTCConfiguration;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
  /** The `RTCPeerConnection` constructor to use (default: the global one; tests pass fakes). */
  RTCPeerConnection?: typeof RTCPeerConnection;
}

/** Where a session is. */
export type SessionState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** Every event a session emits, and its value. */
export interface SessionEvents {
  /** The stream went live (or was live when the chat channel opened). */
  live: StreamStatus;
  /** The stream is not live (when the chat channel opened, or the presenter left). */
  offline: { stream: string };
  /** The number of media viewers changed. */
  viewers: { count: number };
  /** The stream's status changed (pushed, or fetched from the API). */
  status: StreamStatus;
  /** A chat message arrived. */
  chat: ChatMessage;
  /** The whole chat, when the chat channel opens (again after every reconnect). */
  history: ChatHistory;
  /** A chat message was removed. */
  deleted: { id: string };
  /** The pinned message changed (`null`: unpinned). */
  pinned: ChatMessage | null;
  /** A user was muted. */
  muted: MutedEvent;
  /** A user was banned. */
  banned: BannedEvent;
  /** A moderator cleared the chat. */
  cleared: Record<string, never>;
  /** Slow mode changed. */
  slow: { seconds: number };
  /** The number of viewers in the chat changed. */
  presence: { viewers: number };
  /** The connection dropped; the next attempt comes after `delayMs`. */
  reconnecting: { attempt: number; delayMs: number; error: DirectoError };
  /** A new session is connected after a drop. */
  reconnected: { attempts: number; sessionId: string };
  /**
   * The node serving this session asked it to move (it is leaving the cluster) and a new
   * session on `server` replaced it. Later reconnects go to the original `server` again.
   */
  moved: { server: string; reason: string };
  /** The state changed. */
  state: SessionState;
  /** Something failed: a refused chat action, or a fatal error before `closed`. */
  error: DirectoError;
  /** The received media changed (watching only: a new stream after a reconnect). */
  media: MediaStream;
  /** The session ended for good (`close()`, or an error it cannot recover from). */
  closed: { error?: DirectoError };
}

/** The base of `Publisher` and `Viewer`. */
export abstract class Session extends Emitter<SessionEvents> {
  /** The stream name. */
  readonly stream: string;
  /** The server's base URL. */
  readonly server: string;
  /** The chat: messages, and the actions to send. */
  readonly chat: Chat;

  #options: SessionOptions;
  #fetch: typeof fetch;
  #Peer: typeof RTCPeerConnection;
  #state: SessionState = 'connecting';
  #pc: RTCPeerConnection | null = null;
  #location: string | null = null;
  #sessionId: string | null = null;
  #status: StatusTracker;
  #attempts = 0;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #poller: ReturnType<typeof setInterval> | null = null;
  #wake: (() => void) | null = null;
  #moving = false;

  /** @internal */
  constructor(options: SessionOptions) {
    super();
    if (!options.stream) throw new DirectoError('invalid_stream_name', 'a stream name is required');
    this.#options = options;
    this.stream = options.stream;
    this.server = options.server ?? globalThis.location?.origin ?? '';
    if (!this.server) throw new DirectoError('bad_request', 'no server URL given (and no page origin to default to)');
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    const Peer = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
    if (!Peer) throw new DirectoError('bad_request', 'this environment has no RTCPeerConnection');
    this.#Peer = Peer;
    this.#status = new StatusTracker(this.stream, (type, value) => this.emit(type, value as never));
    this.chat = new Chat((type, value) => {
      if (type === 'chatError') this.emit('error', value as DirectoError);
      else if (type === 'streamStatus') this.#status.pushed(value as ChatEvents['streamStatus']);
      else if (type === 'watching') this.#status.watching((value as ChatEvents['watching']).count);
      else this.emit(type as Exclude<typeof type, 'chatError' | 'streamStatus' | 'watching'>, value as never);
    });
  }

  /** The current peer connection (a new one after each reconnect), for `getStats()`. */
  get pc(): RTCPeerConnection | null {
    return this.#pc;
  }

  /** The current session's URL (WHIP/WHEP `Location`). */
  /** @internal The WHIP/WHEP endpoint to post the offer to (a subclass may add query parameters). */
  protected endpoint(url: string): string {
    return url;
  }

  /** @internal The `fetch` the session uses. */
  protected get fetcher(): typeof fetch {
    return this.#fetch;
  }

  get location(): string | null {
    return this.#location;
  }

  /** The current session's id, which is also this client's user id in the chat. */
  get sessionId(): string | null {
    return this.#sessionId;
  }

  /** Where the session is. */
  get state(): SessionState {
    return this.#state;
  }

  /** The stream's last known status (pushed, or fetched), if any. */
  get status(): StreamStatus | null {
    return this.#status.status;
  }

  /** Whether the stream is live, as last heard (`null`: not known yet). */
  get live(): boolean | null {
    return this.#status.status?.live ?? null;
  }

  /** Ends the session: the server is told, the peer closed, nothing reconnects. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    await this.#finish();
  }

  /** `whip` or `whep`. */
  protected abstract readonly kind: 'whip' | 'whep';
  /** The Bearer credential for the POST and DELETE, if any. */
  protected abstract credential(): string | undefined;
  /** Adds this side's transceivers to a new peer. */
  protected abstract preparePeer(pc: RTCPeerConnection): void;

  /** @internal Connects the first session (and starts polling, if asked); throws if refused. */
  async start(): Promise<void> {
    try {
      await this.#connect();
    } catch (error) {
      await this.#finish();
      throw toDirectoError(error);
    }
    // Polling starts only now, so the first `live`/`offline`/`viewers` events come after
    // `publish()`/`watch()` resolved and the app had its chance to listen (pushed ones come
    // later still: the chat channel opens once the connection is up).
    this.#startPolling();
  }

  /** Negotiates a new session (on `server`, by default the one given) and makes it current. */
  async #connect(server: string = this.server): Promise<void> {
    const pc = new this.#Peer(this.#options.rtcConfiguration);
    const channel = pc.createDataChannel('chat');
    this.preparePeer(pc);
    const headers = authHeaders(this.credential());
    const url = this.endpoint(endpointUrl(server, this.kind, this.stream, this.#options.name));
    let negotiated;
    try {
      negotiated = await negotiate(pc, url, headers, this.#fetch);
    } catch (error) {
      pc.close();
      throw error;
    }
    if (this.#state === 'closed') {
      pc.close();
      await endSession(negotiated.location, headers, this.#fetch);
      return;
    }
    this.#pc = pc;
    this.#location = negotiated.location;
    this.#sessionId = negotiated.sessionId;
    this.#setState('connecting');
    this.chat.attach(channel);
    this.#watchPeer(pc, channel);
    this.peerReady(pc);
  }

  /** Called with each new current peer, once negotiated (the viewer shows its media). */
  protected peerReady(_pc: RTCPeerConnection): void {}

  /** Follows the peer and its chat channel; a failure of either replaces the session. */
  #watchPeer(pc: RTCPeerConnection, channel: RTCDataChannel): void {
    const current = () => this.#pc === pc && this.#state !== 'closed';
    let grace: ReturnType<typeof setTimeout> | null = null;
    const connectTimer = this.#timer(() => {
      if (current() && pc.connectionState !== 'connected') {
        this.#lost(new DirectoError('network', 'the connection to the server could not be established'));
      }
    }, CONNECT_TIMEOUT_MS);
    pc.addEventListener('connectionstatechange', () => {
      if (!current()) return;
      const state = pc.connectionState;
      if (state === 'connected') {
        this.#clearTimer(connectTimer);
        if (grace !== null) this.#clearTimer(grace);
        grace = null;
        const resumed = this.#attempts > 0;
        const attempts = this.#attempts;
        this.#attempts = 0;
        this.#setState('connected');
        if (resumed) this.emit('reconnected', { attempts, sessionId: this.#sessionId ?? '' });
      } else if (state === 'failed' || state === 'closed') {
        this.#lost(new DirectoError('network', `the connection to the server ${state}`));
      } else if (state === 'disconnected' && grace === null) {
        grace = this.#timer(() => {
          grace = null;
          if (current() && pc.connectionState !== 'connected') {
            this.#lost(new DirectoError('network', 'the connection to the server was interrupted'));
          }
        }, DISCONNECTED_GRACE_MS);
      }
    });
    channel.addEventListener('message', (event) => {
      if (!current()) return;
      const data = (event as MessageEvent).data;
      const notice = moveNotice(data);
      if (notice) void this.#move(notice.url, notice.reason);
      else this.chat.receive(data);
    });
    // The server closes the channel when it ends the session (a ban, a restart, a DELETE).
    channel.addEventListener('close', () => {
      if (current()) this.#lost(new DirectoError('network', 'the server closed the session'));
    });
  }

  /**
   * Moves to the node at `server`. A viewer opens the new session first and ends the old
   * one once it is negotiated (if that fails it stays where it is: the old node serves it
   * until it leaves, and the session is then replaced as after any drop). A publisher ends
   * the old session first, since a stream has one publisher and the new node can take the
   * stream only once the old one gave it up.
   */
  async #move(server: string, reason: string): Promise<void> {
    if (this.#moving || this.#state === 'closed' || this.#state === 'reconnecting') return;
    this.#moving = true;
    const old = { pc: this.#pc, location: this.#location };
    const headers = authHeaders(this.credential());
    try {
      if (this.kind === 'whip') {
        this.#pc = null;
        this.#location = null;
        this.chat.attach(null);
        old.pc?.close();
        if (old.location) await endSession(old.location, headers, this.#fetch);
        try {
          await this.#connect(server);
        } catch (error) {
          this.#lost(toDirectoError(error));
          return;
        }
      } else {
        try {
          await this.#connect(server);
        } catch {
          return;
        }
        old.pc?.close();
        if (old.location) void endSession(old.location, headers, this.#fetch);
      }
      // (A getter: TypeScript does not see the awaits above change the state.)
      if (this.state !== 'closed') this.emit('moved', { server, reason });
    } finally {
      this.#moving = false;
    }
  }

  /** The current session broke: replace it, with backoff, unless reconnecting is off. */
  #lost(error: DirectoError): void {
    if (this.#state === 'closed' || this.#state === 'reconnecting') return;
    const old = { pc: this.#pc, location: this.#location };
    this.#pc = null;
    this.chat.attach(null);
    old.pc?.close();
    if (old.location) void endSession(old.location, authHeaders(this.credential()), this.#fetch);
    if (this.#options.reconnect === false) {
      this.emit('error', error);
      void this.#finish(error);
      return;
    }
    void this.#reconnect(error);
  }

  async #reconnect(error: DirectoError): Promise<void> {
    this.#setState('reconnecting');
    const backoff = typeof this.#options.reconnect === 'object' ? this.#options.reconnect : {};
    let last = error;
    while (this.#state === 'reconnecting') {
      const delayMs = backoffDelay(this.#attempts, backoff, last.retryAfter);
      this.#attempts += 1;
      this.emit('reconnecting', { attempt: this.#attempts, delayMs, error: last });
      await this.#sleep(delayMs);
      if (this.#state !== 'reconnecting') return;
      try {
        await this.#connect();
        return;
      } catch (failure) {
        last = toDirectoError(failure);
        if (!last.retryable) {
          this.emit('error', last);
          await this.#finish(last);
          return;
        }
      }
    }
  }

  #setState(state: SessionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  async #finish(error?: DirectoError): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    if (this.#poller !== null) clearInterval(this.#poller);
    this.#poller = null;
    this.#wake?.();
    const { pc, location } = { pc: this.#pc, location: this.#location };
    this.#pc = null;
    this.chat.attach(null);
    pc?.close();
    this.stopped();
    if (location) await endSession(location, authHeaders(this.credential()), this.#fetch);
    this.emit('closed', error ? { error } : {});
  }

  /** Called once when the session closes (the publisher stops media it acquired). */
  protected stopped(): void {}

  #startPolling(): void {
    const every = this.#options.statusIntervalMs ?? 0;
    if (every <= 0 || this.#state === 'closed') return;
    void this.refreshStatus();
    this.#poller = setInterval(() => void this.refreshStatus(), every);
  }

  /**
   * Asks the API for the stream's status now (with the bitrate, which is not pushed) and
   * emits `status`, and `live`, `offline` and `viewers` when they changed. Returns the
   * status, or `null` if the server could not say.
   */
  async refreshStatus(): Promise<StreamStatus | null> {
    const base = this.server.endsWith('/') ? this.server : `${this.server}/`;
    const url = new URL(`api/streams/${encodeURIComponent(this.stream)}`, base).href;
    let status: StreamStatus;
    try {
      const response = await this.#fetch(url, { headers: { Accept: 'application/json' } });
      if (response.ok) {
        status = (await response.json()) as StreamStatus;
      } else {
        const error = await errorFromResponse(response);
        if (error.code !== 'stream_not_found') return null;
        status = { name: this.stream, live: false, tracks: [], viewers: 0, bitrate_bps: 0, recording: false };
      }
    } catch {
      return null;
    }
    if (this.#state === 'closed') return null;
    this.#status.fetched(status);
    return status;
  }

  #timer(run: () => void, ms: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }

  #clearTimer(timer: ReturnType<typeof setTimeout>): void {
    clearTimeout(timer);
    this.#timers.delete(timer);
  }

  /** Waits `ms`, or less if the session closes meanwhile. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.#timer(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        this.#clearTimer(timer);
        this.#wake = null;
        resolve();
      };
    });
  }
}

/** A node's `server.move` notice on the chat channel, if `data` is one. */
function moveNotice(data: unknown): { url: string; reason: string } | null {
  if (typeof data !== 'string' || !data.includes('server.move')) return null;
  try {
    const message = JSON.parse(data) as Record<string, unknown>;
    if (message?.type !== 'server.move' || typeof message.url !== 'string') return null;
    return { url: message.url, reason: typeof message.reason === 'string' ? message.reason : 'unknown' };
  } catch {
    return null;
  }
}
