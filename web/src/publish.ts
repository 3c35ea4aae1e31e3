// Publishing: WHIP with the presenter's tracks and the `chat` data channel. After a drop the
// same tracks go out on a new WHIP session, so the audience sees a short gap, not an end.

import { connectionStats, type ConnectionStats } from './stats.js';
import { getMedia, type DeviceChoice, type MediaSourceKind } from './media.js';
import { Session, type SessionOptions } from './session.js';

/** Options of `publish`. */
export interface PublishOptions extends SessionOptions {
  /** The publish key or a publisher token (sent as `Authorization: Bearer`). */
  key?: string;
  /** What to send: a `MediaStream`, or sources to capture (default camera and microphone). */
  media?: MediaStream | MediaSourceKind | MediaSourceKind[];
  /** The devices to capture from, when `media` names sources. */
  devices?: DeviceChoice;
  /**
   * Send the video as three simulcast layers (RIDs `q`, `h`, `f`: a quarter, half and full
   * resolution), so each viewer gets the one its network carries. Default `false`.
   */
  simulcast?: boolean;
}

/** The simulcast layers `publish({ simulcast: true })` sends, smallest first. */
export const SIMULCAST_LAYERS: RTCRtpEncodingParameters[] = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];

/** A live publication. `close()` (or `stop()`) ends it. */
export class Publisher extends Session {
  protected readonly kind = 'whip' as const;
  /** The media being sent. */
  readonly media: MediaStream;
  #key: string | undefined;
  #ownsMedia: boolean;
  #simulcast: boolean;
  #lastStats: { pc: RTCPeerConnection; sample: ConnectionStats } | null = null;

  /** @internal Use `publish()`. */
  constructor(options: PublishOptions, media: MediaStream, ownsMedia: boolean) {
    super(options);
    this.#key = options.key;
    this.media = media;
    this.#ownsMedia = ownsMedia;
    this.#simulcast = options.simulcast ?? false;
  }

  /** Ends the publication; stops the tracks the SDK captured itself. Same as `close()`. */
  stop(): Promise<void> {
    return this.close();
  }

  /**
   * Sends `track` instead of the current track of the same kind (a camera or microphone
   * switch) without renegotiating. The replaced track is stopped if the SDK captured it.
   */
  async replaceTrack(track: MediaStreamTrack): Promise<void> {
    const old = this.media.getTracks().find((t) => t.kind === track.kind);
    for (const sender of this.pc?.getSenders() ?? []) {
      if (sender.track?.kind === track.kind || (sender.track === null && old && sender.track === old)) {
        await sender.replaceTrack(track);
      }
    }
    if (old) {
      this.media.removeTrack(old);
      if (this.#ownsMedia) old.stop();
    }
    this.media.addTrack(track);
  }

  /** Samples outgoing bitrate, frame rate, loss and round-trip time (`null` while not connected). */
  async stats(): Promise<ConnectionStats | null> {
    const pc = this.pc;
    if (!pc) return null;
    const previous = this.#lastStats?.pc === pc ? this.#lastStats.sample : null;
    const sample = await connectionStats(pc, previous);
    this.#lastStats = { pc, sample };
    return sample;
  }

  protected credential(): string | undefined {
    return this.#key;
  }

  protected preparePeer(pc: RTCPeerConnection): void {
    for (const track of this.media.getTracks()) {
      const init: RTCRtpTransceiverInit = { direction: 'sendonly', streams: [this.media] };
      if (this.#simulcast && track.kind === 'video') init.sendEncodings = SIMULCAST_LAYERS.map((layer) => ({ ...layer }));
      pc.addTransceiver(track, init);
    }
  }

  protected override stopped(): void {
    if (this.#ownsMedia) this.media.getTracks().forEach((t) => t.stop());
  }
}

/**
 * Goes live on `stream`: captures the media (unless given a `MediaStream`), sends it over
 * WHIP and opens the chat. Rejects with a `DirectoError` (the server's `code`) if refused.
 */
export async function publish(options: PublishOptions): Promise<Publisher> {
  const given = options.media instanceof MediaStream ? options.media : null;
  const media = given ?? (await getMedia((options.media as MediaSourceKind | MediaSourceKind[] | undefined) ?? undefined, options.devices));
  const publisher = new Publisher(options, media, given === null);
  await publisher.start();
  return publisher;
}
