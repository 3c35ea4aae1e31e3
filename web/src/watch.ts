// Watching: WHEP with receive-only audio and video and the `chat` data channel. A viewer
// may join before the presenter (media starts when they go live) and comes back on its own
// after a drop, with a new session and the same video element.

import { connectionStats, type ConnectionStats } from './stats.js';
import { errorFromResponse } from './errors.js';
import { Session, type SessionOptions } from './session.js';

/** Options of `watch`. */
export interface WatchOptions extends SessionOptions {
  /** A viewer or moderator token, or the moderator key (needed for private streams and moderation). */
  token?: string;
  /** A `<video>` (or `<audio>`) element to play the stream in; it is kept across reconnects. */
  video?: HTMLMediaElement | null;
  /**
   * Which simulcast layer to get: `auto` (default; the best the network carries), or pinned
   * to `low`, `medium` or `high`. Without simulcast there is one layer and this changes nothing.
   */
  quality?: Quality;
}

/** A viewer's simulcast layer choice. */
export type Quality = 'auto' | 'low' | 'medium' | 'high';

/** A viewer of a stream. `close()` ends it. */
export class Viewer extends Session {
  protected readonly kind = 'whep' as const;
  /** The element the stream plays in, if one was given. */
  readonly video: HTMLMediaElement | null;
  #token: string | undefined;
  #media: MediaStream | null = null;
  #pending: MediaStream | null = null;
  #lastStats: { pc: RTCPeerConnection; sample: ConnectionStats } | null = null;
  #quality: Quality;

  /** @internal Use `watch()`. */
  constructor(options: WatchOptions) {
    super(options);
    this.#token = options.token;
    this.video = options.video ?? null;
    this.#quality = options.quality ?? 'auto';
  }

  /** The simulcast layer choice in effect. */
  get quality(): Quality {
    return this.#quality;
  }

  /**
   * Switches to another simulcast layer (or back to `auto`); the picture changes at that
   * layer's next keyframe. Kept across reconnects. Rejects with a `DirectoError` if refused.
   */
  async setQuality(quality: Quality): Promise<void> {
    this.#quality = quality;
    const location = this.location;
    if (!location) return;
    const url = new URL(`${location}/quality`, this.server || globalThis.location?.origin);
    const response = await this.fetcher(url.href, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ quality }),
    });
    if (!response.ok) throw await errorFromResponse(response);
  }

  protected override endpoint(url: string): string {
    if (this.#quality === 'auto') return url;
    const withQuality = new URL(url);
    withQuality.searchParams.set('quality', this.#quality);
    return withQuality.href;
  }

  /** The received audio and video (a new stream after each reconnect; see the `media` event). */
  get mediaStream(): MediaStream | null {
    return this.#media;
  }

  /** Samples incoming bitrate, frames decoded, loss and round-trip time (`null` while not connected). */
  async stats(): Promise<ConnectionStats | null> {
    const pc = this.pc;
    if (!pc) return null;
    const previous = this.#lastStats?.pc === pc ? this.#lastStats.sample : null;
    const sample = await connectionStats(pc, previous);
    this.#lastStats = { pc, sample };
    return sample;
  }

  protected credential(): string | undefined {
    return this.#token;
  }

  protected preparePeer(pc: RTCPeerConnection): void {
    // Receivers (and their tracks) exist as soon as the transceivers do, so the stream is
    // complete before any `track` event could fire.
    const received = new MediaStream();
    for (const kind of ['audio', 'video']) {
      received.addTrack(pc.addTransceiver(kind, { direction: 'recvonly' }).receiver.track);
    }
    this.#pending = received;
  }

  protected override peerReady(_pc: RTCPeerConnection): void {
    const media = this.#pending;
    this.#pending = null;
    if (!media) return;
    this.#media = media;
    const video = this.video;
    if (video) {
      video.autoplay = true;
      if ('playsInline' in video) (video as HTMLVideoElement).playsInline = true;
      video.srcObject = media;
      void this.#play(video);
    }
    this.emit('media', media);
  }

  /** Plays `video`; browsers only autoplay muted media, so it falls back to muted. */
  async #play(video: HTMLMediaElement): Promise<void> {
    try {
      await video.play();
    } catch (error) {
      if ((error as Error)?.name === 'NotAllowedError' && !video.muted) {
        video.muted = true;
        await video.play().catch(() => {});
      }
    }
  }
}

/**
 * Watches `stream` over WHEP and opens the chat. Resolves once the session is negotiated
 * (the stream need not be live yet: listen for `live`); rejects with a `DirectoError`.
 */
export async function watch(options: WatchOptions): Promise<Viewer> {
  const viewer = new Viewer(options);
  await viewer.start();
  return viewer;
}
