// How long to wait before reconnect attempt n: exponential with full jitter, capped, and
// never shorter than what the server asked for with Retry-After.

/** Reconnection timing. */
export interface BackoffOptions {
  /** The first delay, in milliseconds (default 500). */
  initialMs?: number;
  /** The longest delay, in milliseconds (default 10 000). */
  maxMs?: number;
  /** The growth per attempt (default 2). */
  factor?: number;
}

/**
 * The delay before attempt `attempt` (0-based). Jitter spreads a crowd of viewers that lost
 * the server at the same moment, so they do not all come back in the same millisecond.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  retryAfterSeconds?: number,
  random: () => number = Math.random,
): number {
  const initial = options.initialMs ?? 500;
  const max = options.maxMs ?? 10_000;
  const factor = options.factor ?? 2;
  const ceiling = Math.min(max, initial * factor ** Math.max(0, attempt));
  // Half fixed, half random: never zero, never above the ceiling.
  const delay = ceiling / 2 + (random() * ceiling) / 2;
  const floor = retryAfterSeconds === undefined ? 0 : retryAfterSeconds * 1000;
  return Math.round(Math.max(delay, floor));
}
