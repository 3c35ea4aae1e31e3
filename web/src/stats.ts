// Connection health from `getStats()`: bitrate, frame rate, loss and round-trip time, and a
// one-word verdict a page can show as a traffic light.

/** A sample of a peer's statistics; rates are over the time since the previous sample. */
export interface ConnectionStats {
  /** When the sample was taken (`performance.now()`-like milliseconds of the stats). */
  timestamp: number;
  /** Media bytes sent, all tracks. */
  bytesSent: number;
  /** Media bytes received, all tracks. */
  bytesReceived: number;
  /** Outgoing media bitrate, bits per second (0 on the first sample). */
  sendBitrateBps: number;
  /** Incoming media bitrate, bits per second (0 on the first sample). */
  receiveBitrateBps: number;
  /** Video frames per second, sent or decoded. */
  framesPerSecond: number;
  /** Video frames decoded so far (watching). */
  framesDecoded: number;
  /** Audio packets received so far (watching). */
  audioPacketsReceived: number;
  /** Fraction of packets lost (0–1), as the far end reports it or as counted here. */
  packetLoss: number;
  /** The round-trip time to the server, in milliseconds, if known. */
  rttMs: number | null;
  /** `good`, `fair` or `poor` from loss and round-trip time; `unknown` before media flows. */
  health: 'good' | 'fair' | 'poor' | 'unknown';
}

/** Samples `pc`; pass the previous sample of the same peer to get rates. */
export async function connectionStats(pc: RTCPeerConnection, previous?: ConnectionStats | null): Promise<ConnectionStats> {
  const report = await pc.getStats();
  let bytesSent = 0;
  let bytesReceived = 0;
  let framesPerSecond = 0;
  let framesDecoded = 0;
  let audioPacketsReceived = 0;
  let packetsLost = 0;
  let packetsReceived = 0;
  let remoteLoss: number | null = null;
  let rttMs: number | null = null;
  let timestamp = 0;
  report.forEach((stat: Record<string, unknown> & { type: string; timestamp: number }) => {
    timestamp = Math.max(timestamp, stat.timestamp ?? 0);
    const num = (key: string) => (typeof stat[key] === 'number' ? (stat[key] as number) : 0);
    switch (stat.type) {
      case 'outbound-rtp':
        bytesSent += num('bytesSent');
        if (stat.kind === 'video') framesPerSecond = Math.max(framesPerSecond, num('framesPerSecond'));
        break;
      case 'inbound-rtp':
        bytesReceived += num('bytesReceived');
        packetsLost += num('packetsLost');
        packetsReceived += num('packetsReceived');
        if (stat.kind === 'video') {
          framesDecoded += num('framesDecoded');
          framesPerSecond = Math.max(framesPerSecond, num('framesPerSecond'));
        } else if (stat.kind === 'audio') {
          audioPacketsReceived += num('packetsReceived');
        }
        break;
      case 'remote-inbound-rtp':
        if (typeof stat.fractionLost === 'number') remoteLoss = Math.max(remoteLoss ?? 0, stat.fractionLost);
        if (typeof stat.roundTripTime === 'number') rttMs = Math.max(rttMs ?? 0, stat.roundTripTime * 1000);
        break;
      case 'candidate-pair':
        if (stat.nominated && typeof stat.currentRoundTripTime === 'number') {
          rttMs = Math.max(rttMs ?? 0, stat.currentRoundTripTime * 1000);
        }
        break;
      default:
        break;
    }
  });
  const seconds = previous ? (timestamp - previous.timestamp) / 1000 : 0;
  const rate = (now: number, before: number | undefined) =>
    seconds > 0 && before !== undefined ? Math.max(0, Math.round(((now - before) * 8) / seconds)) : 0;
  const sendBitrateBps = rate(bytesSent, previous?.bytesSent);
  const receiveBitrateBps = rate(bytesReceived, previous?.bytesReceived);
  const packetLoss = remoteLoss ?? (packetsLost + packetsReceived > 0 ? packetsLost / (packetsLost + packetsReceived) : 0);
  const flowing = bytesSent + bytesReceived > 0;
  let health: ConnectionStats['health'] = 'unknown';
  if (flowing && pc.connectionState === 'connected') {
    const rtt = rttMs ?? 0;
    health = packetLoss > 0.05 || rtt > 400 ? 'poor' : packetLoss > 0.01 || rtt > 150 ? 'fair' : 'good';
  } else if (pc.connectionState === 'failed' || pc.connectionState === 'disconnected') {
    health = 'poor';
  }
  return {
    timestamp,
    bytesSent,
    bytesReceived,
    sendBitrateBps,
    receiveBitrateBps,
    framesPerSecond,
    framesDecoded,
    audioPacketsReceived,
    packetLoss,
    rttMs,
    health,
  };
}
