//! Bad input over real HTTP gets the documented status and JSON error code, and never hurts
//! the server: other streams keep working, and a viewer that never finishes connecting is
//! dropped on its own.

use anyhow::Context;
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, Publisher, PublisherConfig, TestServer, Viewer,
    ViewerConfig, padded_offer, post_offer, read_error, single_codec_offer, wait_for,
};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use signaling_proto::ErrorCode;
use std::time::Duration;

/// Bodies above this are refused (64 KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// One bad request and the refusal it must get.
struct Case {
    method: Method,
    path: String,
    body: Vec<u8>,
    key: Option<String>,
    status: u16,
    /// Acceptable codes (more than one only where the contract leaves room).
    codes: &'static [ErrorCode],
}

impl Case {
    fn post(path: impl Into<String>, body: impl Into<Vec<u8>>, key: Option<&str>) -> Self {
        Case {
            method: Method::POST,
            path: path.into(),
            body: body.into(),
            key: key.map(str::to_owned),
            status: 0,
            codes: &[],
        }
    }

    fn delete(path: impl Into<String>, key: Option<&str>) -> Self {
        Case {
            method: Method::DELETE,
            ..Case::post(path, "", key)
        }
    }

    fn expect(self, status: u16, codes: &'static [ErrorCode]) -> Self {
        Case {
            status,
            codes,
            ..self
        }
    }

    /// Sends the request and asserts the status, a JSON content type, the code and a message.
    async fn check(self, server: &TestServer) -> anyhow::Result<()> {
        let what = format!("{} {}", self.method, self.path);
        let mut request = server
            .http()
            .request(self.method, server.url(&self.path))
            .header(CONTENT_TYPE, "application/sdp")
            .body(self.body);
        if let Some(key) = &self.key {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let response = request.send().await.with_context(|| what.clone())?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (status, body, text) = read_error(response).await;
        assert_eq!(status, self.status, "{what}: body {text:?}");
        assert!(
            content_type.starts_with("application/json"),
            "{what}: error Content-Type is {content_type:?}"
        );
        let body = body.with_context(|| format!("{what}: not a JSON error body: {text:?}"))?;
        assert!(
            self.codes.contains(&body.code),
            "{what}: code {:?}, expected one of {:?}: {text}",
            body.code,
            self.codes
        );
        assert!(!body.message.is_empty(), "{what}: empty message");
        Ok(())
    }
}

async fn check_all(server: &TestServer, cases: Vec<Case>) -> anyhow::Result<()> {
    for case in cases {
        case.check(server).await?;
    }
    Ok(())
}

/// A real publisher offer (Opus + VP8), for requests that should fail for another reason.
async fn good_offer() -> anyhow::Result<String> {
    let publisher = Publisher::new(PublisherConfig::default()).await?;
    let offer = publisher.create_offer().await?;
    publisher.close().await?;
    Ok(offer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_empty_sdp_is_invalid_sdp() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let key = Some(server.publish_key());
    let mut cases = Vec::new();
    for body in ["", "this is not an SDP offer"] {
        cases.push(Case::post("/whip/s1", body, key).expect(400, &[ErrorCode::InvalidSdp]));
        cases.push(Case::post("/whep/s1", body, None).expect(400, &[ErrorCode::InvalidSdp]));
    }
    // Not even UTF-8: an unreadable body may also be called a bad request.
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let unreadable = &[ErrorCode::InvalidSdp, ErrorCode::BadRequest];
    cases.push(Case::post("/whip/s1", binary.clone(), key).expect(400, unreadable));
    cases.push(Case::post("/whep/s1", binary, None).expect(400, unreadable));
    check_all(&server, cases).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_without_a_supported_codec_is_unsupported_codec() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let key = Some(server.publish_key());
    let mut cases = Vec::new();
    // Directo forwards Opus, VP8, VP9 and H.264; AV1 video or PCMU audio alone is refused.
    for mime in ["video/AV1", "audio/PCMU"] {
        let offer = single_codec_offer(mime).await?;
        cases.push(
            Case::post("/whip/codecs", offer, key).expect(400, &[ErrorCode::UnsupportedCodec]),
        );
    }
    check_all(&server, cases).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_key_is_unauthorized() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let offer = good_offer().await?;
    let cases = [None, Some("wrong-key"), Some("")]
        .into_iter()
        .map(|key| {
            Case::post("/whip/locked", offer.clone(), key).expect(401, &[ErrorCode::Unauthorized])
        })
        .collect();
    check_all(&server, cases).await?;
    // The refused publishers did not take the stream: the right key still publishes.
    let publisher = server.publish("locked", PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_64_kib_is_payload_too_large() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let offer = padded_offer(&good_offer().await?, BODY_LIMIT + 1024);
    let too_large = &[ErrorCode::PayloadTooLarge];
    let cases = vec![
        Case::post("/whip/big", offer.clone(), Some(server.publish_key())).expect(413, too_large),
        Case::post("/whep/big", offer, None).expect(413, too_large),
    ];
    check_all(&server, cases).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_stream_name_is_invalid_stream_name() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let offer = good_offer().await?;
    let too_long = "a".repeat(65);
    let names = ["a%20b", &too_long, "%C3%BCber", "bad.name", "semi%3Bcolon"];
    let invalid = &[ErrorCode::InvalidStreamName];
    let mut cases = Vec::new();
    for name in names {
        let key = Some(server.publish_key());
        cases.push(Case::post(format!("/whip/{name}"), offer.clone(), key).expect(400, invalid));
        cases.push(Case::post(format!("/whep/{name}"), offer.clone(), None).expect(400, invalid));
    }
    check_all(&server, cases).await?;
    // The longest valid name is fine.
    let viewer = server
        .view(&"b".repeat(64), ViewerConfig::default())
        .await?;
    viewer.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_unknown_session_is_session_not_found() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let not_found = &[ErrorCode::SessionNotFound];
    let mut cases = Vec::new();
    for session in ["does-not-exist", "00000000-0000-0000-0000-000000000000"] {
        let key = Some(server.publish_key());
        cases.push(Case::delete(format!("/whip/ghost/{session}"), key).expect(404, not_found));
        cases.push(Case::delete(format!("/whep/ghost/{session}"), None).expect(404, not_found));
    }
    check_all(&server, cases).await?;

    // A real session, deleted twice: the second time it is gone.
    let viewer = server.view("ghost", ViewerConfig::default()).await?;
    let url = viewer.session().context("WHEP session")?.url.clone();
    let status = viewer.disconnect(server.http()).await?;
    assert!(status == 200 || status == 204, "DELETE answered {status}");
    Case::delete(url.path(), None)
        .expect(404, not_found)
        .check(&server)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_serving_after_garbage() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;

    let server = TestServer::start().await?;
    let http_addr = format!("127.0.0.1:{}", server.base_url().port().unwrap_or(80));

    // Garbage on the HTTP port: not HTTP at all, a request cut off mid-body, a path escape.
    for junk in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage"[..],
        b"POST /whip/x HTTP/1.1\r\nContent-Length: 100000\r\n\r\nv=0",
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&http_addr).await?;
        stream.write_all(junk).await?;
        drop(stream);
    }
    // Garbage on the media port: random bytes, a STUN request for nobody, an RTP-looking packet.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let media = format!("127.0.0.1:{}", server.media_port());
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7u8; 12]);
    let rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    for datagram in [vec![0u8; 1], vec![0xffu8; 1400], stun, rtp] {
        udp.send_to(&datagram, &media).await?;
    }
    // Garbage over HTTP.
    check_all(
        &server,
        vec![
            Case::post("/whip/junk", "\0\0\0", Some(server.publish_key()))
                .expect(400, &[ErrorCode::InvalidSdp, ErrorCode::BadRequest]),
            Case::post("/whep/junk", vec![0xffu8; 70_000], None)
                .expect(413, &[ErrorCode::PayloadTooLarge]),
        ],
    )
    .await?;

    // The server is alive and serves another stream end to end.
    let health = server.http().get(server.url("/healthz")).send().await?;
    assert_eq!(health.status(), 200);
    let publisher = server.publish("clean", PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = server.view("clean", ViewerConfig::default()).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    viewer.wait_for_packets(25, 50, MEDIA_TIMEOUT).await?;
    let first = viewer.report().video.first.context("no video")?;
    assert!(publisher.began_at_a_keyframe(&first), "{first:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_never_connects_is_dropped() -> anyhow::Result<()> {
    const STREAM: &str = "abandoned";
    let server = TestServer::start().await?;
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;

    // The offer is real, but the answer is never applied: no ICE check, no DTLS, ever.
    let ghost = Viewer::new(ViewerConfig::default()).await?;
    let offer = ghost.create_offer().await?;
    ghost.close().await?;
    let session = post_offer(server.http(), &server.whep_url(STREAM), &offer, None).await?;

    let info = server
        .stream(STREAM)
        .await?
        .context("live stream missing from the API")?;
    assert_eq!(
        info.viewers, 1,
        "the new WHEP session should count as a viewer: {info:?}"
    );

    let started = std::time::Instant::now();
    wait_for(
        "the unconnected viewer to be dropped",
        Duration::from_secs(60),
        || async {
            let viewers = server.stream(STREAM).await?.map(|i| i.viewers);
            Ok((viewers == Some(0)).then_some(()))
        },
    )
    .await?;
    eprintln!("unconnected viewer dropped after {:?}", started.elapsed());

    // Its session is gone, not just uncounted.
    Case::delete(session.url.path(), None)
        .expect(404, &[ErrorCode::SessionNotFound])
        .check(&server)
        .await?;
    // The publisher was not disturbed.
    let viewer = server.view(STREAM, ViewerConfig::default()).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    viewer.wait_for_packets(0, 30, MEDIA_TIMEOUT).await?;
    assert!(viewer.packets(MediaKind::Video) >= 30);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_quality_request_is_refused_and_a_good_one_accepted() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let offer = good_offer().await?;
    let viewer = server.view("layers", ViewerConfig::default()).await?;
    let session = viewer.session().context("the viewer has a session")?;
    let own = session.url.path().to_owned();
    let bad = &[ErrorCode::BadRequest];
    check_all(
        &server,
        vec![
            Case::post("/whep/layers?quality=ultra", offer, None).expect(400, bad),
            Case::post(format!("{own}/quality"), r#"{"quality":"ultra"}"#, None).expect(400, bad),
            Case::post(format!("{own}/quality"), "not json", None).expect(400, bad),
            Case::post(
                "/whep/layers/does-not-exist/quality",
                r#"{"quality":"low"}"#,
                None,
            )
            .expect(404, &[ErrorCode::SessionNotFound]),
            Case::post("/whip/layers/any/quality", r#"{"quality":"low"}"#, None)
                .expect(405, &[ErrorCode::MethodNotAllowed]),
        ],
    )
    .await?;
    // The viewer's own session may change its layer: 204, and it keeps its session.
    let response = server
        .http()
        .post(server.url(&format!("{own}/quality")))
        .body(r#"{"quality":"low"}"#)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 204);
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    viewer.close().await?;
    Ok(())
}
