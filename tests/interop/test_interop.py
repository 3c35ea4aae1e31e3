"""Interoperability of Directo with an independent WebRTC stack: aiortc (Python).

An aiortc publisher sends a synthetic video track (a moving luma ramp on a slowly changing
colour) and a 440 Hz Opus sine over WHIP; an aiortc viewer watches over WHEP and must decode
the video at the size it was sent, see the pattern move, and hear the sine. Nothing here shares
code with Directo or with webrtc-rs, so SDP, ICE-lite, DTLS, SRTP, RTP packetization, PLI and
WHIP/WHEP semantics are all checked against somebody else's reading of the specs.

Every peer only gathers a loopback host candidate and uses no STUN server: the test must not
send a packet anywhere but this machine.
"""

import asyncio
import fractions
import re
import json
import math
import time
import urllib.error
import urllib.request
from array import array

import aioice.ice
import av
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver

# aioice gathers a host candidate on every interface except 127.0.0.1; Directo announces only
# 127.0.0.1 here, so offer exactly that and nothing routable.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

# What arrived on the wire, per receiver: the codec of each RTP payload type seen. The answer
# may list several codecs; this says which one Directo really sent.
WIRE_CODECS: dict[int, set[str]] = {}
_handle_rtp_packet = RTCRtpReceiver._handle_rtp_packet


async def _recording_handle_rtp_packet(self, packet, arrival_time_ms):
    codec = self._RTCRtpReceiver__codecs.get(packet.payload_type)
    name = codec.mimeType if codec else f"unknown payload type {packet.payload_type}"
    WIRE_CODECS.setdefault(id(self), set()).add(name)
    return await _handle_rtp_packet(self, packet, arrival_time_ms)


RTCRtpReceiver._handle_rtp_packet = _recording_handle_rtp_packet

WIDTH, HEIGHT = 320, 240
MIN_VIDEO_FRAMES = 30
MIN_AUDIO_FRAMES = 50  # one second of 20 ms Opus frames
SINE_HZ = 440
SINE_AMPLITUDE = 8000
MEDIA_TIMEOUT_S = 40
HTTP_TIMEOUT_S = 10


def config() -> RTCConfiguration:
    # No ICE servers: aiortc's default is a public STUN server.
    return RTCConfiguration(iceServers=[])


# ---------------------------------------------------------------------------------------------
# HTTP (stdlib only, run in a thread so the event loop keeps serving ICE/DTLS)


class Reply:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def _http(method: str, url: str, body: bytes | None, headers: dict) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
            return Reply(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


async def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    return await asyncio.to_thread(_http, method, url, body, headers or {})


async def stream_info(server, stream: str) -> dict | None:
    r = await http("GET", f"{server.base_url}/api/streams/{stream}")
    if r.status == 404:
        return None
    assert r.status == 200, f"GET /api/streams/{stream}: {r.status} {r.text}"
    return json.loads(r.body)


async def wait_for(predicate, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = await predicate()
        if ok:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last seen: {last}")


# ---------------------------------------------------------------------------------------------
# Synthetic sources


class PatternTrack(VideoStreamTrack):
    """A horizontal luma ramp that moves 4 px a frame over a colour that drifts slowly."""

    def __init__(self):
        super().__init__()
        self.count = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        t = self.count
        self.count += 1
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        y, u, v = frame.planes
        row = bytes((x + 4 * t) & 0xFF for x in range(y.line_size))
        y.update(row * HEIGHT)
        u.update(bytes([(64 + t) & 0xFF]) * u.buffer_size)
        v.update(bytes([(192 - t) & 0xFF]) * v.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        return frame


class SineTrack(MediaStreamTrack):
    """A 440 Hz mono sine in 20 ms frames at 48 kHz, paced in real time."""

    kind = "audio"
    RATE = 48000
    SAMPLES = 960

    def __init__(self):
        super().__init__()
        self.pts = 0
        self.start = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        else:
            wait = self.start + self.pts / self.RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        step = 2 * math.pi * SINE_HZ / self.RATE
        samples = array(
            "h",
            (int(SINE_AMPLITUDE * math.sin(step * (self.pts + i))) for i in range(self.SAMPLES)),
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = self.RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, self.RATE)
        self.pts += self.SAMPLES
        return frame


# ---------------------------------------------------------------------------------------------
# What a viewer received


class Received:
    def __init__(self):
        self.video_frames = 0
        self.sizes = set()
        self.formats = set()
        # Luma in the middle of the picture, one sample per frame: the ramp moves, so it must
        # sweep a wide range.
        self.luma_samples = []
        self.audio_frames = 0
        self.audio_rates = set()
        self.audio_peak = 0
        self.errors = []
        self.ended = {}

    def enough(self) -> bool:
        return (
            self.video_frames >= MIN_VIDEO_FRAMES
            and self.audio_frames >= MIN_AUDIO_FRAMES
            and self.audio_peak > SINE_AMPLITUDE // 4
        )

    def summary(self) -> str:
        lum = self.luma_samples
        return (
            f"video frames={self.video_frames} sizes={sorted(self.sizes)} formats={self.formats} "
            f"luma range={(min(lum), max(lum)) if lum else None} "
            f"audio frames={self.audio_frames} rates={self.audio_rates} peak={self.audio_peak} "
            f"errors={self.errors} ended={self.ended}"
        )


async def consume(track, got: Received):
    try:
        while True:
            frame = await track.recv()
            if track.kind == "video":
                got.video_frames += 1
                got.sizes.add((frame.width, frame.height))
                got.formats.add(frame.format.name)
                if frame.format.name != "yuv420p":
                    frame = frame.reformat(format="yuv420p")
                plane = frame.planes[0]
                got.luma_samples.append(
                    bytes(plane)[(frame.height // 2) * plane.line_size + frame.width // 2]
                )
            else:
                got.audio_frames += 1
                got.audio_rates.add(frame.sample_rate)
                pcm = array("h", bytes(frame.planes[0]))
                if pcm:
                    got.audio_peak = max(got.audio_peak, max(abs(s) for s in pcm))
    except MediaStreamError:
        got.ended[track.kind] = True
    except Exception as e:  # noqa: BLE001 - a decoder blow-up must fail the test, not hang it
        got.errors.append(f"{track.kind}: {type(e).__name__}: {e}")


# ---------------------------------------------------------------------------------------------
# SDP helpers


def media_sections(sdp: str) -> list[str]:
    parts = sdp.replace("\r\n", "\n").split("\nm=")
    return ["m=" + p for p in parts[1:]]


def section(sdp: str, kind: str) -> str:
    for s in media_sections(sdp):
        if s.startswith(f"m={kind} "):
            return s
    raise AssertionError(f"no m={kind} section in:\n{sdp}")


def codecs(sdp: str, kind: str) -> list[str]:
    """The codec names of a section's payload types, in m-line order (most preferred first)."""
    s = section(sdp, kind)
    m_line = s.split("\n", 1)[0].split()
    assert int(m_line[1]) != 0, f"{kind} was rejected (port 0):\n{s}"
    names = {}
    for line in s.split("\n"):
        if line.startswith("a=rtpmap:"):
            pt, rest = line[len("a=rtpmap:"):].split(" ", 1)
            names[pt] = rest.split("/")[0].upper()
    return [names.get(pt, f"?{pt}") for pt in m_line[3:]]


def first_codec(sdp: str, kind: str) -> str:
    """The answer's most preferred codec of `kind`."""
    return codecs(sdp, kind)[0]


def direction(sdp: str, kind: str) -> str:
    for line in section(sdp, kind).split("\n"):
        if line.strip() in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            return line.strip()[2:]
    return "sendrecv"


# ---------------------------------------------------------------------------------------------
# Peers


async def connected(pc: RTCPeerConnection, timeout: float = 20):
    done = asyncio.Event()

    @pc.on("connectionstatechange")
    def _():
        if pc.connectionState in ("connected", "failed", "closed"):
            done.set()

    if pc.connectionState != "connected":
        await asyncio.wait_for(done.wait(), timeout)
    assert pc.connectionState == "connected", f"peer connection {pc.connectionState}"


def prefer(transceiver, mime: str):
    codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == mime]
    assert codecs, f"aiortc has no {mime}"
    transceiver.setCodecPreferences(codecs)


async def publish(server, stream: str, video_mime: str):
    """Publish over WHIP; returns (pc, location, answer sdp)."""
    pc = RTCPeerConnection(config())
    pc.addTransceiver(SineTrack(), direction="sendonly")
    video = pc.addTransceiver(PatternTrack(), direction="sendonly")
    prefer(video, video_mime)
    # aiortc gathers every candidate inside setLocalDescription, so the offer is complete.
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    assert "a=candidate:" in offer and "127.0.0.1" in offer, offer
    r = await http(
        "POST",
        f"{server.base_url}/whip/{stream}",
        offer.encode(),
        {"Content-Type": "application/sdp", "Authorization": f"Bearer {server.publish_key}"},
    )
    assert r.status == 201, f"WHIP POST: {r.status} {r.text}\noffer:\n{offer}"
    check_answer_reply(r, "whip", stream)
    answer = r.text
    assert first_codec(answer, "video") == video_mime.split("/")[1].upper(), answer
    assert first_codec(answer, "audio") == "OPUS", answer
    assert direction(answer, "video") == "recvonly", answer
    assert direction(answer, "audio") == "recvonly", answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await connected(pc)
    return pc, r.headers["Location"], answer


def check_answer_reply(r: Reply, prefix: str, stream: str):
    ctype = r.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/sdp", f"Content-Type {ctype!r}"
    location = r.headers.get("Location")
    assert location and location.startswith(f"/{prefix}/{stream}/"), f"Location {location!r}"
    answer = r.text
    assert "a=ice-lite" in answer, f"the answer is not ICE-lite:\n{answer}"
    candidates = [l for l in answer.splitlines() if l.startswith("a=candidate:")]
    assert candidates, f"the answer carries no candidate:\n{answer}"
    assert any(" 127.0.0.1 " in c and " udp " in c.lower() for c in candidates), candidates


async def watch(server, stream: str, video_mime: str | None = None):
    """Watch over WHEP (recvonly); returns (pc, location, answer, Received, consumer tasks)."""
    pc = RTCPeerConnection(config())
    pc.addTransceiver("audio", direction="recvonly")
    video = pc.addTransceiver("video", direction="recvonly")
    if video_mime:
        prefer(video, video_mime)
    got = Received()
    tasks = []

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(consume(track, got)))

    await pc.setLocalDescription(await pc.createOffer())
    r = await http(
        "POST",
        f"{server.base_url}/whep/{stream}",
        pc.localDescription.sdp.encode(),
        {"Content-Type": "application/sdp"},
    )
    return pc, r, got, tasks


async def wait_live(server, stream: str, video_mime: str) -> dict:
    async def live():
        info = await stream_info(server, stream)
        tracks = {t["kind"]: t["codec"].lower() for t in (info or {}).get("tracks", [])}
        ok = bool(info and info["live"] and tracks.get("video") == video_mime.lower()
                  and tracks.get("audio") == "audio/opus")
        return ok, info

    return await wait_for(live, f"stream {stream} live with {video_mime} + Opus")


async def delete_twice(server, location: str):
    first = await http("DELETE", f"{server.base_url}{location}")
    assert 200 <= first.status < 300, f"DELETE {location}: {first.status} {first.text}"
    second = await http("DELETE", f"{server.base_url}{location}")
    assert second.status == 404, f"second DELETE {location}: {second.status} {second.text}"


async def publish_and_watch(server, stream: str, video_mime: str, viewer_mime: str | None):
    pub, pub_location, _ = await publish(server, stream, video_mime)
    viewer = None
    try:
        await wait_live(server, stream, video_mime)
        viewer, r, got, tasks = await watch(server, stream, viewer_mime)
        assert r.status == 201, f"WHEP POST: {r.status} {r.text}\noffer:\n{viewer.localDescription.sdp}"
        check_answer_reply(r, "whep", stream)
        answer = r.text
        # The viewer gets the publisher's codec whatever order it offered them in: the answer
        # must allow it (checked on the wire below).
        assert video_mime.split("/")[1].upper() in codecs(answer, "video"), answer
        assert "OPUS" in codecs(answer, "audio"), answer
        print(f"{stream}: WHEP answer codecs video={codecs(answer, 'video')} "
              f"audio={codecs(answer, 'audio')}")
        assert direction(answer, "video") == "sendonly", answer
        assert direction(answer, "audio") == "sendonly", answer
        await viewer.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await connected(viewer)

        async def enough():
            return got.enough() or bool(got.errors), got.summary()

        await wait_for(enough, "decoded media at the viewer", MEDIA_TIMEOUT_S)
        assert not got.errors, got.summary()
        assert got.sizes == {(WIDTH, HEIGHT)}, got.summary()
        assert max(got.luma_samples) - min(got.luma_samples) >= 64, (
            "the decoded picture does not move: " + got.summary()
        )
        assert got.audio_rates == {48000}, got.summary()
        wire = {r.track.kind: WIRE_CODECS.get(id(r), set()) for r in viewer.getReceivers()}
        print(f"{stream}: codecs on the wire to the viewer: {wire}")
        assert wire == {"audio": {"audio/opus"}, "video": {video_mime}}, wire
        print(f"{stream}: {got.summary()}")

        info = await stream_info(server, stream)
        assert info and info["viewers"] == 1, info

        # WHEP DELETE ends the session: a second DELETE finds nothing, the viewer count drops
        # and the viewer's connection is torn down by the server.
        viewer_location = r.headers["Location"]
        await delete_twice(server, viewer_location)

        async def viewer_gone():
            info = await stream_info(server, stream)
            return bool(info and info["viewers"] == 0), info

        await wait_for(viewer_gone, "the viewer count to drop to 0", 10)

        # The server closes DTLS (close_notify): the viewer's media ends too.
        async def viewer_closed():
            return viewer.connectionState in ("closed", "failed"), (
                viewer.connectionState,
                got.ended,
            )

        closed = await wait_for(viewer_closed, "the viewer's connection to close", 10)
        print(f"{stream}: after WHEP DELETE the viewer saw {closed}")
        return pub, pub_location, viewer, got, tasks
    except BaseException:
        await pub.close()
        if viewer:
            await viewer.close()
        raise


async def end_publisher(server, stream: str, pub, pub_location: str):
    await delete_twice(server, pub_location)

    async def offline():
        info = await stream_info(server, stream)
        return info is None or not info["live"], info

    await wait_for(offline, f"stream {stream} to go offline", 10)
    await pub.close()


# ---------------------------------------------------------------------------------------------
# Tests


def test_vp8_opus_publish_and_watch(server):
    async def main():
        stream = "interop-vp8"
        pub, pub_location, viewer, got, tasks = await publish_and_watch(
            server, stream, "video/VP8", None
        )
        try:
            # A viewer that cannot decode the stream's codec is refused with a client error.
            other, r, _, _ = await watch(server, stream, "video/H264")
            await other.close()
            assert 400 <= r.status < 500, f"H264-only viewer of a VP8 stream: {r.status} {r.text}"
            print(f"H264-only viewer of a VP8 stream: {r.status} {r.text.strip()}")
            await end_publisher(server, stream, pub, pub_location)
        finally:
            await viewer.close()
            await pub.close()
            for t in tasks:
                t.cancel()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_h264_opus_publish_and_watch(server):
    names = {c.mimeType for c in RTCRtpSender.getCapabilities("video").codecs}
    if "video/H264" not in names:
        pytest.skip("this aiortc offers no H264")
    try:
        av.codec.Codec("libx264", "w")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"PyAV has no libx264 encoder for aiortc's H264: {e}")

    async def main():
        stream = "interop-h264"
        # The viewer offers aiortc's default order (VP8 first): Directo must answer H264.
        pub, pub_location, viewer, got, tasks = await publish_and_watch(
            server, stream, "video/H264", None
        )
        try:
            await end_publisher(server, stream, pub, pub_location)
        finally:
            await viewer.close()
            await pub.close()
            for t in tasks:
                t.cancel()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_viewer_waiting_before_the_publisher_gets_h264(server):
    """A WHEP viewer that joins before the stream starts (offering VP8 first) gets H264 later."""
    if "video/H264" not in {c.mimeType for c in RTCRtpSender.getCapabilities("video").codecs}:
        pytest.skip("this aiortc offers no H264")

    async def main():
        stream = "interop-early"
        viewer, r, got, tasks = await watch(server, stream, None)
        pub = None
        try:
            assert r.status == 201, f"WHEP POST before the publisher: {r.status} {r.text}"
            check_answer_reply(r, "whep", stream)
            await viewer.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
            await connected(viewer)
            pub, pub_location, _ = await publish(server, stream, "video/H264")
            await wait_live(server, stream, "video/H264")

            async def enough():
                return got.enough() or bool(got.errors), got.summary()

            await wait_for(enough, "decoded media at the early viewer", MEDIA_TIMEOUT_S)
            assert not got.errors and got.sizes == {(WIDTH, HEIGHT)}, got.summary()
            wire = {r.track.kind: WIRE_CODECS.get(id(r), set()) for r in viewer.getReceivers()}
            assert wire == {"audio": {"audio/opus"}, "video": {"video/H264"}}, wire
            print(f"{stream}: {got.summary()}")
            await delete_twice(server, r.headers["Location"])
            await end_publisher(server, stream, pub, pub_location)
        finally:
            await viewer.close()
            if pub:
                await pub.close()
            for t in tasks:
                t.cancel()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_recordings_of_aiortc_streams_decode(server):
    """What Directo recorded from the aiortc publishers decodes with FFmpeg (PyAV)."""
    streams = [
        s for s in ("interop-vp8", "interop-h264")
        if (server.data_dir / "recordings" / s).is_dir()
    ]
    if not streams:
        pytest.skip("no stream was recorded (the publishing tests did not run)")
    # A recording is finished some seconds after its publisher left (Directo waits for the
    # publisher to come back); the server logs each finished file.
    deadline = time.monotonic() + 40
    finished = {}
    while time.monotonic() < deadline:
        log = re.sub(r"\x1b\[[0-9;]*m", "", server.log_path.read_text(errors="replace"))
        finished = {
            s: m.group(1)
            for s in streams
            for m in re.finditer(r"recording finished file=(\S*/recordings/" + s + r"/\S+)", log)
        }
        if len(finished) == len(streams):
            break
        time.sleep(0.5)
    assert len(finished) == len(streams), f"recordings finished: {finished}, wanted {streams}"
    for stream, path in finished.items():
        with av.open(path) as container:
            kinds = {s.type: s.codec_context.name for s in container.streams}
            frames = 0
            sizes = set()
            audio_packets = 0
            for packet in container.demux():
                if packet.stream.type == "audio" and packet.size:
                    audio_packets += 1
                elif packet.stream.type == "video":
                    for frame in packet.decode():
                        frames += 1
                        sizes.add((frame.width, frame.height))
        print(f"{stream}: {path}: streams={kinds} video frames={frames} sizes={sizes} "
              f"audio packets={audio_packets}")
        assert kinds.get("audio") == "opus", kinds
        assert frames >= MIN_VIDEO_FRAMES and sizes == {(WIDTH, HEIGHT)}, (frames, sizes)
        assert audio_packets >= MIN_AUDIO_FRAMES, audio_packets


def test_delete_under_another_stream_and_side_is_404(server):
    async def main():
        stream = "interop-paths"
        pub, pub_location, _ = await publish(server, stream, "video/VP8")
        viewer = None
        try:
            await wait_live(server, stream, "video/VP8")
            viewer, r, _, tasks = await watch(server, stream, None)
            assert r.status == 201, r.text
            await viewer.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
            await connected(viewer)
            session = r.headers["Location"].rsplit("/", 1)[1]
            wrong = await http("DELETE", f"{server.base_url}/whip/some-other-stream/{session}")
            info = await stream_info(server, stream)
            print(f"DELETE /whip/some-other-stream/<viewer session>: {wrong.status}; "
                  f"viewers now {info and info['viewers']}")
            assert wrong.status == 404, f"{wrong.status} {wrong.text}"
            assert info and info["viewers"] == 1, info
        finally:
            if viewer:
                await viewer.close()
            await http("DELETE", f"{server.base_url}{pub_location}")
            await pub.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_whep_delete_of_unknown_session_is_404(server):
    async def main():
        r = await http("DELETE", f"{server.base_url}/whep/interop-none/no-such-session")
        assert r.status == 404, f"{r.status} {r.text}"

    asyncio.run(main())
