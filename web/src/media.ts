// Getting the presenter's media: camera, microphone and/or screen, in as few permission
// prompts as the browser allows.

import { DirectoError } from './errors.js';

/** A source of media to publish. */
export type MediaSourceKind = 'camera' | 'microphone' | 'screen';

/** Which devices to use (ids from `navigator.mediaDevices.enumerateDevices()`). */
export interface DeviceChoice {
  /** The camera's `deviceId`. */
  videoDeviceId?: string;
  /** The microphone's `deviceId`. */
  audioDeviceId?: string;
}

/**
 * Captures `sources` into one `MediaStream`. Throws a `DirectoError` with code `media` if
 * the browser refuses or has no such device.
 */
export async function getMedia(
  sources: MediaSourceKind | MediaSourceKind[] = ['camera', 'microphone'],
  devices: DeviceChoice = {},
): Promise<MediaStream> {
  const wanted = new Set(Array.isArray(sources) ? sources : [sources]);
  const mediaDevices = globalThis.navigator?.mediaDevices;
  if (!mediaDevices) throw new DirectoError('media', 'this browser cannot capture media (is the page served over https?)');
  const out = new MediaStream();
  try {
    if (wanted.has('screen')) {
      // The screen's own audio (a tab's sound) only when no microphone is wanted.
      const screen = await mediaDevices.getDisplayMedia({ video: true, audio: !wanted.has('microphone') });
      screen.getTracks().forEach((t) => out.addTrack(t));
    }
    const video = wanted.has('camera') && !wanted.has('screen');
    const audio = wanted.has('microphone');
    if (video || audio) {
      const user = await mediaDevices.getUserMedia({
        video: video ? (devices.videoDeviceId ? { deviceId: { exact: devices.videoDeviceId } } : true) : false,
        audio: audio ? (devices.audioDeviceId ? { deviceId: { exact: devices.audioDeviceId } } : true) : false,
      });
      user.getTracks().forEach((t) => out.addTrack(t));
    }
  } catch (error) {
    out.getTracks().forEach((t) => t.stop());
    const reason = error instanceof Error ? error.message : String(error);
    throw new DirectoError('media', `could not get the ${[...wanted].join(' and ')}: ${reason}`, { cause: error });
  }
  if (out.getTracks().length === 0) throw new DirectoError('media', 'no media to publish');
  return out;
}
