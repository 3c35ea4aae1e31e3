//! A WHEP viewer's WebRTC connection is released on the server once it is set up: only its
//! SRTP contexts, address, RTCP handling and ICE consent are kept. What a viewer notices must
//! not change: it keeps getting media, sender reports and keyframes on request; its ICE
//! consent checks are answered (only with its credentials); a nomination of a new address
//! moves its media there; and when the server ends its session, its media and consent stop.

use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, PublisherConfig, TestServer, Viewer, ViewerConfig,
    delete_session, wait_for, wait_until,
};
use rtc::crypto::RTCCrypto;
use rtc::stun::attributes::{ATTR_USE_CANDIDATE, ATTR_USERNAME};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    BINDING_REQUEST, BINDING_SUCCESS, Getter, Message, Setter, TransactionId,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

const STREAM: &str = "released";
/// How long to listen for an answer that must not come.
const SILENCE: Duration = Duration::from_secs(2);

/// The server's ICE ufrag and password from its answer.
fn ice_credentials(answer: &str) -> (String, String) {
    let value = |key: &str| {
        answer
            .lines()
            .find_map(|l| l.trim().strip_prefix(key).map(str::to_owned))
            .unwrap_or_default()
    };
    (value("a=ice-ufrag:"), value("a=ice-pwd:"))
}

struct UseCandidate;
impl Setter for UseCandidate {
    fn add_to(&self, m: &mut Message) -> rtc::shared::error::Result<()> {
        m.add(ATTR_USE_CANDIDATE, &[]);
        Ok(())
    }
}

/// A binding request to `ufrag` signed with `pwd`, as a browser's consent check is.
fn binding_request(ufrag: &str, pwd: &str, nominate: bool, crypto: &dyn RTCCrypto) -> Message {
    let mut setters: Vec<Box<dyn Setter + '_>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(TextAttribute::new(ATTR_USERNAME, format!("{ufrag}:test"))),
    ];
    if nominate {
        setters.push(Box::new(UseCandidate));
    }
    setters.push(Box::new(
        MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), crypto),
    ));
    setters.push(Box::new(FINGERPRINT));
    let mut m = Message::new();
    m.build(&setters).expect("a binding request");
    m
}

/// Sends `request` from `socket` and returns the STUN message that comes back, if one does
/// within `wait` (media arriving meanwhile is skipped).
async fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &Message,
    wait: Duration,
) -> anyhow::Result<Option<Message>> {
    socket.send_to(&request.raw, server).await?;
    let mut buf = vec![0u8; 2048];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
        let n = received?;
        let mut m = Message::new();
        if buf[0] < 4 && m.unmarshal_binary(&buf[..n]).is_ok() {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

async fn released_viewers(server: &TestServer) -> directo_tests::Result<f64> {
    Ok(server
        .metric("directo_viewer_connections_released_total")
        .await?
        .unwrap_or(0.0))
}

async fn watching(server: &TestServer, released_before: f64) -> anyhow::Result<Viewer> {
    let viewer = server.view(STREAM, ViewerConfig::default()).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    viewer.wait_for_packets(20, 20, MEDIA_TIMEOUT).await?;
    wait_for(
        "the viewer's connection to be released",
        MEDIA_TIMEOUT,
        || async { Ok((released_viewers(server).await? > released_before).then_some(())) },
    )
    .await?;
    Ok(viewer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_viewer_keeps_watching_and_keeps_consent_until_its_session_ends()
-> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let publisher = server
        .publish(STREAM, PublisherConfig::keyframes_on_request())
        .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = watching(&server, 0.0).await?;

    // Media, sender reports and a keyframe on request, after the release.
    let (audio, video) = (
        viewer.packets(MediaKind::Audio),
        viewer.packets(MediaKind::Video),
    );
    let reports = viewer.sender_reports();
    viewer
        .wait_for_packets(audio + 50, video + 50, MEDIA_TIMEOUT)
        .await?;
    wait_until("sender reports after the release", MEDIA_TIMEOUT, || {
        viewer.sender_reports() > reports
    })
    .await?;
    let keyframes = viewer.keyframes();
    viewer.request_keyframe().await?;
    wait_until("a keyframe on request", MEDIA_TIMEOUT, || {
        viewer.keyframes() > keyframes
    })
    .await?;

    // A consent check with the session's credentials is answered, from wherever it comes.
    let session = viewer.session().expect("a WHEP session").clone();
    let (ufrag, pwd) = ice_credentials(&session.answer);
    let media = SocketAddr::from(([127, 0, 0, 1], server.media_port()));
    let provider = rtc::crypto::default_provider()?;
    let crypto = provider.crypto();
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let request = binding_request(&ufrag, &pwd, false, crypto);
    let mut response = exchange(&socket, media, &request, MEDIA_TIMEOUT)
        .await?
        .expect("an answer to a consent check");
    assert_eq!(response.typ, BINDING_SUCCESS);
    assert_eq!(response.transaction_id, request.transaction_id);
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&response)?;
    assert_eq!(
        SocketAddr::new(mapped.ip, mapped.port),
        socket.local_addr()?
    );
    MessageIntegrity::check(&mut response, pwd.as_bytes(), crypto)?;
    // Without the password, nothing.
    let forged = binding_request(&ufrag, "not-the-password-of-this-session", false, crypto);
    assert!(exchange(&socket, media, &forged, SILENCE).await?.is_none());
    // The checks did not move its media.
    let video = viewer.packets(MediaKind::Video);
    viewer
        .wait_for_packets(0, video + 30, MEDIA_TIMEOUT)
        .await?;

    // The server ends the session: its media stops and its consent checks go unanswered, so
    // its ICE fails even if the DTLS close_notify sent with the end is lost.
    delete_session(server.http(), &session.url).await?;
    let request = binding_request(&ufrag, &pwd, false, crypto);
    assert!(exchange(&socket, media, &request, SILENCE).await?.is_none());
    let video = viewer.packets(MediaKind::Video);
    tokio::time::sleep(SILENCE).await;
    assert_eq!(
        viewer.packets(MediaKind::Video),
        video,
        "media after the end"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_viewer_that_nominates_a_new_address_gets_its_media_there() -> anyhow::Result<()>
{
    let server = TestServer::start().await?;
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = watching(&server, 0.0).await?;
    let session = viewer.session().expect("a WHEP session").clone();
    let (ufrag, pwd) = ice_credentials(&session.answer);
    let media = SocketAddr::from(([127, 0, 0, 1], server.media_port()));
    let provider = rtc::crypto::default_provider()?;

    // As a viewer whose network changed: a nomination from its new address.
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let request = binding_request(&ufrag, &pwd, true, provider.crypto());
    let response = exchange(&socket, media, &request, MEDIA_TIMEOUT).await?;
    assert!(response.is_some_and(|r| r.typ == BINDING_SUCCESS));
    let mut buf = vec![0u8; 2048];
    let mut rtp = 0;
    while rtp < 20 {
        let n = tokio::time::timeout(MEDIA_TIMEOUT, socket.recv(&mut buf)).await??;
        // SRTP: version 2, not an RTCP packet type.
        if n >= 12 && buf[0] >> 6 == 2 && !(192..=223).contains(&buf[1]) {
            rtp += 1;
        }
    }
    Ok(())
}
