// A viewer that loses UDP mid-stream moves to ICE-TCP and keeps decoding (issue 13). The server
// answers with a passive ICE-TCP candidate on its media port besides the UDP one; Chromium
// checks both and, when the UDP pair stops answering, switches its selected pair to TCP (a
// webrtc-rs client never re-nominates a pair once one is selected, so this needs a browser).
//
// The server and Chromium run inside a network namespace this test makes (`Netns` in
// harness.mjs). A Chromium studio goes live; a Chromium viewer watches over WHEP (a bare
// RTCPeerConnection, so the test can read its selected candidate pair) and decodes over UDP.
// Then the test drops the viewer's UDP inside the namespace with `tc` on `lo` (an HTB class of
// 8 bit/s with a one-packet queue, chosen by a u32 filter on the viewer's UDP port: the kernel
// here has no tc actions to drop with), and waits until the viewer's selected pair is TCP and
// its decoded frame count goes on growing.
//
// It needs root (the namespace, tc) and iproute2: without them it prints `skipped: …`, which
// `DIRECTO_REQUIRE_ROOT_TESTS=1` turns into a failure.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, Netns, goLive, waitFor } from './harness.mjs';

const PUBLISH_KEY = 'ice-tcp-test-key';
const STREAM = 'ice-tcp';
/** Time between the two stats samples that must show frames still being decoded. */
const SAMPLE_GAP_MS = 3_000;

function unavailable() {
  const netns = Netns.unavailable();
  if (netns) return netns;
  try {
    execFileSync('tc', ['-V'], { stdio: 'pipe' });
    return null;
  } catch (error) {
    return `no \`tc\` (iproute2): ${error.message}`;
  }
}

const reason = unavailable();
if (reason) {
  assert.notEqual(
    process.env.DIRECTO_REQUIRE_ROOT_TESTS,
    '1',
    `ice_tcp: ${reason}, and DIRECTO_REQUIRE_ROOT_TESTS=1 asks for every root-only test`,
  );
  console.log(`skipped: ice_tcp (${reason})`);
}
const skip = reason ?? false;
const harness = new Harness('ice-tcp');
let netns = null;

before(async () => {
  if (skip) return;
  netns = Netns.create();
  await harness.start(['--publish-key', PUBLISH_KEY], { netns });
});

after(() => (skip ? undefined : harness.close()));

/** Runs `tc` with `args` inside the namespace. */
function tc(...args) {
  execFileSync('ip', netns.execArgs('tc', args), { stdio: 'pipe' });
}

/** Drops the UDP to and from local `port` inside the namespace (everything else flows). */
function dropUdp(port) {
  tc('qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10');
  tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '10gbit');
  tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', '8bit', 'ceil', '8bit');
  tc('qdisc', 'add', 'dev', 'lo', 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', '1');
  for (const direction of ['sport', 'dport']) {
    tc(
      'filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32',
      'match', 'ip', 'protocol', '17', '0xff', 'match', 'ip', direction, String(port), '0xffff',
      'flowid', '1:20',
    );
  }
}

/** Starts a WHEP viewer in `page` (kept as `window.pc`) and returns once it is answered. */
async function watch(page, stream) {
  await page.evaluate(async (stream) => {
    const pc = new RTCPeerConnection();
    window.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const video = document.createElement('video');
    video.muted = true;
    video.autoplay = true;
    document.body.append(video);
    pc.ontrack = (event) => {
      video.srcObject = event.streams[0] ?? new MediaStream([event.track]);
    };
    await pc.setLocalDescription(await pc.createOffer());
    // No trickle: the offer carries every candidate.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
    });
    const response = await fetch(`/whep/${stream}`, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) throw new Error(`WHEP answered ${response.status}: ${await response.text()}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
  }, stream);
}

/** The viewer's decoded video frames and its selected pair's local candidate. */
function viewerStats(page) {
  return page.evaluate(async () => {
    const stats = await window.pc.getStats();
    const byId = new Map();
    stats.forEach((report) => byId.set(report.id, report));
    let frames = 0;
    let pair = null;
    stats.forEach((report) => {
      if (report.type === 'inbound-rtp' && report.kind === 'video') frames = report.framesDecoded ?? 0;
      if (report.type === 'transport' && report.selectedCandidatePairId) pair = byId.get(report.selectedCandidatePairId);
    });
    const local = pair ? byId.get(pair.localCandidateId) : null;
    return { frames, protocol: local?.protocol ?? null, port: local?.port ?? null, state: window.pc.connectionState };
  });
}

/** Waits until the viewer decodes more frames than it has now (`SAMPLE_GAP_MS` apart). */
async function assertDecoding(page, when) {
  const before = await viewerStats(page);
  await sleep(SAMPLE_GAP_MS);
  const later = await viewerStats(page);
  assert.ok(later.frames > before.frames + 10, `${when}: frames decoded went from ${before.frames} to ${later.frames}`);
  return later;
}

test('a viewer that loses UDP mid-stream moves to ICE-TCP and keeps decoding', { skip }, async () => {
  const studio = await harness.openPage('ice-tcp-studio');
  const viewer = await harness.openPage('ice-tcp-viewer');
  try {
    await goLive(studio, `${harness.baseUrl}/studio/${STREAM}#key=${PUBLISH_KEY}`);
    await viewer.goto(`${harness.baseUrl}/healthz`);
    await watch(viewer, STREAM);
    const onUdp = await waitFor('the viewer decodes video over UDP', async () => {
      const stats = await viewerStats(viewer);
      return stats.frames > 30 && stats.protocol === 'udp' ? stats : null;
    });
    await assertDecoding(viewer, 'over UDP');

    dropUdp(onUdp.port);
    const onTcp = await waitFor('the viewer moves to ICE-TCP', async () => {
      const stats = await viewerStats(viewer);
      return stats.protocol === 'tcp' ? stats : null;
    });
    console.log(`viewer moved from UDP port ${onUdp.port} to TCP after ${onTcp.frames} frames`);
    // Frames resume once a keyframe arrives over the new path (the viewer asks for one).
    await waitFor('the viewer decodes again over ICE-TCP', async () => {
      const stats = await viewerStats(viewer);
      return stats.frames > onTcp.frames + 10;
    });
    const later = await assertDecoding(viewer, 'after the move to ICE-TCP');
    assert.equal(later.protocol, 'tcp', 'still on ICE-TCP');
    assert.deepEqual(harness.uncaughtErrors, []);
  } finally {
    await harness.snapshot(viewer, 'ice-tcp-viewer');
    await studio.close();
    await viewer.close();
  }
});
