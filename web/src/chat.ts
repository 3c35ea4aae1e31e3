// The chat over the `chat` data channel: the wire shapes (signaling-proto/src/chat.rs), the
// state a client keeps (messages, pinned message, slow mode) and the actions it may send.
// The stream's status rides on the same channel (`stream.status`, and the media audience in
// `presence`); the chat parses it and hands it to its session. Text stays text: apps must
// render it with `textContent`, never as HTML.

import { DirectoError, type ErrorCode } from './errors.js';
import type { PushedStatus, StreamStatus } from './status.js';

/** What a chat user may do. */
export type ChatRole = 'presenter' | 'viewer' | 'moderator';

/** Who wrote a message. */
export interface ChatUser {
  /** The user's id (their session id). */
  id: string;
  /** The display name, 1–32 characters. */
  name: string;
  /** The role when the message was written. */
  role: ChatRole;
}

/** One chat message. */
export interface ChatMessage {
  /** The message id (sorts in time order). */
  id: string;
  /** The author. */
  from: ChatUser;
  /** Plain text, 1–500 characters. Render with `textContent`. */
  text: string;
  /** When the server accepted it, in milliseconds since the Unix epoch. */
  ts: number;
  /** The id of the message this one answers. */
  reply_to?: string;
}

/** The full chat state, sent when the channel opens (and again after a reconnect). */
export interface ChatHistory {
  /** The recent messages, oldest first. */
  messages: ChatMessage[];
  /** The pinned message, if any. */
  pinned: ChatMessage | null;
  /** The slow-mode interval in seconds; 0 when off. */
  slowSeconds: number;
}

/** A user was muted. */
export interface MutedEvent {
  user: string;
  name: string;
  /** The end of the mute, in milliseconds since the Unix epoch. */
  until: number;
}

/** A user was banned. */
export interface BannedEvent {
  user: string;
  name: string;
}

/** The chat events, as `Chat` reports them to its session. */
export interface ChatEvents {
  history: ChatHistory;
  chat: ChatMessage;
  deleted: { id: string };
  pinned: ChatMessage | null;
  muted: MutedEvent;
  banned: BannedEvent;
  cleared: Record<string, never>;
  slow: { seconds: number };
  presence: { viewers: number };
  chatError: DirectoError;
  /** The stream's status, pushed (for the session, not an app event). */
  streamStatus: PushedStatus;
  /** The number of media viewers, pushed (for the session, not an app event). */
  watching: { count: number };
}

/** Options of `chat.send`. */
export interface SendOptions {
  /** The id of the message this one answers. */
  replyTo?: string;
}

type Report = <K extends keyof ChatEvents>(type: K, value: ChatEvents[K]) => void;

/** How many messages a client keeps (the server's history holds 200). */
const MAX_KEPT = 500;

/**
 * A stream's chat as one client sees it. The session feeds it what arrives on the data
 * channel (`receive`) and gives it the channel to send on (`attach`).
 */
export class Chat {
  #channel: RTCDataChannel | null = null;
  #messages = new Map<string, ChatMessage>();
  #pinned: ChatMessage | null = null;
  #slowSeconds = 0;
  #report: Report;

  /** @internal */
  constructor(report: Report) {
    this.#report = report;
  }

  /** The messages, oldest first. */
  get messages(): ChatMessage[] {
    return [...this.#messages.values()];
  }

  /** The message with this id, if it is still in the chat. */
  message(id: string): ChatMessage | undefined {
    return this.#messages.get(id);
  }

  /** The pinned message, if any. */
  get pinned(): ChatMessage | null {
    return this.#pinned;
  }

  /** The slow-mode interval in seconds; 0 when off. */
  get slowSeconds(): number {
    return this.#slowSeconds;
  }

  /** Whether messages can be sent now. */
  get open(): boolean {
    return this.#channel?.readyState === 'open';
  }

  /** Posts `text`, optionally as a reply. */
  send(text: string, options: SendOptions = {}): void {
    this.#send({ type: 'chat.send', text, ...(options.replyTo ? { reply_to: options.replyTo } : {}) });
  }

  /** Removes a message for everyone (moderators and the presenter). */
  delete(id: string): void {
    this.#send({ type: 'chat.delete', id });
  }

  /** Stops a user writing for `minutes` (moderators and the presenter). */
  mute(user: string, minutes: number): void {
    this.#send({ type: 'user.mute', user, minutes: Math.max(1, Math.round(minutes)) });
  }

  /** Closes a user's chat and media and refuses them for the stream's life. */
  ban(user: string): void {
    this.#send({ type: 'user.ban', user });
  }

  /** One message per `seconds` per user; 0 turns slow mode off. */
  slow(seconds: number): void {
    this.#send({ type: 'chat.slow', seconds: Math.max(0, Math.round(seconds)) });
  }

  /** Removes every message for everyone. */
  clear(): void {
    this.#send({ type: 'chat.clear' });
  }

  /** Pins a message above the chat; `null` unpins. */
  pin(id: string | null): void {
    this.#send(id === null ? { type: 'chat.pin', id: null } : { type: 'chat.pin', id });
  }

  /** @internal Uses `channel` from now on (a new one after each reconnect). */
  attach(channel: RTCDataChannel | null): void {
    this.#channel = channel;
  }

  /** @internal Handles one message from the server. Malformed ones are ignored. */
  receive(raw: unknown): void {
    if (typeof raw !== 'string') return;
    let msg: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null) return;
      msg = parsed as Record<string, unknown>;
    } catch {
      return;
    }
    switch (msg.type) {
      case 'chat.history': {
        const messages = Array.isArray(msg.messages) ? msg.messages.filter(isChatMessage) : [];
        this.#messages = new Map(messages.map((m) => [m.id, m]));
        this.#pinned = isChatMessage(msg.pinned) ? msg.pinned : null;
        this.#slowSeconds = typeof msg.slow_seconds === 'number' ? msg.slow_seconds : 0;
        this.#report('history', { messages, pinned: this.#pinned, slowSeconds: this.#slowSeconds });
        break;
      }
      case 'chat.message': {
        if (!isChatMessage(msg)) return;
        const { type: _type, ...rest } = msg;
        const message = rest as unknown as ChatMessage;
        this.#messages.set(message.id, message);
        if (this.#messages.size > MAX_KEPT) {
          const oldest = this.#messages.keys().next().value;
          if (oldest !== undefined) this.#messages.delete(oldest);
        }
        this.#report('chat', message);
        break;
      }
      case 'chat.deleted':
        if (typeof msg.id !== 'string') return;
        this.#messages.delete(msg.id);
        if (this.#pinned?.id === msg.id) this.#pinned = null;
        this.#report('deleted', { id: msg.id });
        break;
      case 'chat.pinned':
        this.#pinned = isChatMessage(msg.message) ? msg.message : null;
        this.#report('pinned', this.#pinned);
        break;
      case 'user.muted':
        if (typeof msg.user !== 'string') return;
        this.#report('muted', { user: msg.user, name: String(msg.name ?? ''), until: Number(msg.until ?? 0) });
        break;
      case 'user.banned':
        if (typeof msg.user !== 'string') return;
        for (const [id, m] of this.#messages) {
          if (m.from.id === msg.user) this.#messages.delete(id);
        }
        this.#report('banned', { user: msg.user, name: String(msg.name ?? '') });
        break;
      case 'chat.cleared':
        this.#messages.clear();
        this.#pinned = null;
        this.#report('cleared', {});
        break;
      case 'chat.slow':
        this.#slowSeconds = typeof msg.seconds === 'number' ? msg.seconds : 0;
        this.#report('slow', { seconds: this.#slowSeconds });
        break;
      case 'presence':
        if (typeof msg.viewers !== 'number') return;
        this.#report('presence', { viewers: msg.viewers });
        if (typeof msg.watching === 'number') this.#report('watching', { count: msg.watching });
        break;
      case 'stream.status':
        if (typeof msg.live !== 'boolean') return;
        this.#report('streamStatus', {
          live: msg.live,
          tracks: Array.isArray(msg.tracks) ? msg.tracks.filter(isTrack) : [],
          recording: msg.recording === true,
        });
        break;
      case 'error': {
        const code = (typeof msg.code === 'string' ? msg.code : 'internal') as ErrorCode;
        const text = typeof msg.message === 'string' ? msg.message : code;
        this.#report('chatError', new DirectoError(code, text));
        break;
      }
      default:
        // A newer server may send types this client does not know; skip them.
        break;
    }
  }

  #send(message: Record<string, unknown>): void {
    const channel = this.#channel;
    if (!channel || channel.readyState !== 'open') {
      throw new DirectoError('not_connected', 'the chat is not connected (yet); try again in a moment');
    }
    channel.send(JSON.stringify(message));
  }
}

function isTrack(value: unknown): value is StreamStatus['tracks'][number] {
  if (typeof value !== 'object' || value === null) return false;
  const t = value as Record<string, unknown>;
  return typeof t.kind === 'string' && typeof t.codec === 'string';
}

function isChatMessage(value: unknown): value is ChatMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  const from = m.from as Record<string, unknown> | undefined;
  return (
    typeof m.id === 'string' &&
    typeof m.text === 'string' &&
    typeof from === 'object' &&
    from !== null &&
    typeof from.id === 'string' &&
    typeof from.name === 'string' &&
    typeof from.role === 'string'
  );
}
