// directo-client: publish to and watch a Directo server from the browser, with chat and
// moderation. See web/README.md for the API.

export { publish, Publisher, SIMULCAST_LAYERS, type PublishOptions } from './publish.js';
export { watch, Viewer, type Quality, type WatchOptions } from './watch.js';
export {
  Session,
  type SessionEvents,
  type SessionOptions,
  type SessionState,
} from './session.js';
export { type StreamStatus } from './status.js';
export {
  Chat,
  type BannedEvent,
  type ChatHistory,
  type ChatMessage,
  type ChatRole,
  type ChatUser,
  type MutedEvent,
  type SendOptions,
} from './chat.js';
export { DirectoError, type ErrorCode } from './errors.js';
export { getMedia, type DeviceChoice, type MediaSourceKind } from './media.js';
export { connectionStats, type ConnectionStats } from './stats.js';
export { backoffDelay, type BackoffOptions } from './backoff.js';
