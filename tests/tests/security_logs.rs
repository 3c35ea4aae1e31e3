//! No secret in the logs: a server at `RUST_LOG=debug` given a signing secret, a publish key
//! and a moderator key, and sent requests carrying each of them and tokens (valid, forged,
//! expired, wrong keys), logs none of those strings. The one exception: the publish key the
//! server generates when none is configured, logged once at startup so the operator can use it.

use directo_tests::access::{SecretSource, TokenSpec, mint_token};
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, Publisher, PublisherConfig, ServerOptions, TestServer,
    ViewerConfig, WsClient,
};
use signaling_proto::{ClientMessage, MintedToken, Role};
use std::time::Duration;

const SECRET: &str = "log-hygiene-signing-secret-Zq8Xv";
const PUBLISH_KEY: &str = "log-hygiene-publish-key-Wm3Rt";
const MODERATOR_KEY: &str = "log-hygiene-moderator-key-Kp7Ny";
const WRONG_PUBLISH_KEY: &str = "log-hygiene-wrong-publish-key-Hd2Lc";
const WRONG_MODERATOR_KEY: &str = "log-hygiene-wrong-moderator-key-Bv9Js";
const STREAM: &str = "quiet";

fn debug_logging() -> Vec<(String, String)> {
    vec![("RUST_LOG".into(), "debug".into())]
}

/// Sends `credential` as a bearer in a WHIP or WHEP POST with a real offer; the answer is
/// whatever it is.
async fn post_with(server: &TestServer, url: &str, offer: &str, credential: &str) {
    let _ = server
        .http()
        .post(url)
        .header("content-type", "application/sdp")
        .bearer_auth(credential)
        .body(offer.to_owned())
        .send()
        .await;
}

/// `text` without ANSI colour sequences (the server colours its log's field names).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of `log` that contain `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_key_or_token_reaches_the_log() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        publish_key: PUBLISH_KEY.into(),
        moderator_key: Some(MODERATOR_KEY.into()),
        extra_args: vec!["--secret".into(), SECRET.into()],
        env: debug_logging(),
    })
    .await?;
    let secret = SecretSource::Explicit(SECRET);
    let admin = mint_token(secret, TokenSpec::new("admin", "*")).await?;
    let publisher_token = mint_token(secret, TokenSpec::new("publisher", STREAM)).await?;
    let forged = mint_token(
        SecretSource::Explicit("not-the-secret"),
        TokenSpec::new("admin", "*"),
    )
    .await?;
    let expired = mint_token(secret, TokenSpec::new("viewer", STREAM).ttl("1s")).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // Valid credentials, used for real.
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let moderator = server
        .view(
            STREAM,
            ViewerConfig {
                bearer: Some(MODERATOR_KEY.into()),
                ..ViewerConfig::default()
            },
        )
        .await?;
    moderator.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    let minted: MintedToken = server
        .http()
        .post(server.url("api/tokens"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"stream": STREAM, "role": "viewer"}))
        .send()
        .await?
        .json()
        .await?;
    let viewer_token = minted.token;
    assert!(
        !viewer_token.is_empty(),
        "POST /api/tokens gave an empty token"
    );
    let viewer = server
        .view(
            STREAM,
            ViewerConfig {
                bearer: Some(viewer_token.clone()),
                ..ViewerConfig::default()
            },
        )
        .await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    let response = server
        .http()
        .get(server.url("api/admin/streams"))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(response.status(), 200);

    // Invalid ones, refused.
    let offer = Publisher::new(PublisherConfig::default())
        .await?
        .create_offer()
        .await?;
    let whip = server.whip_url("other");
    let whep = server.whep_url(STREAM);
    for credential in [WRONG_PUBLISH_KEY, forged.as_str(), MODERATOR_KEY, SECRET] {
        post_with(&server, &whip, &offer, credential).await;
    }
    for credential in [
        WRONG_MODERATOR_KEY,
        forged.as_str(),
        expired.as_str(),
        SECRET,
    ] {
        post_with(&server, &whep, &offer, credential).await;
    }
    for credential in [forged.as_str(), expired.as_str(), PUBLISH_KEY, SECRET] {
        let _ = server
            .http()
            .get(server.url("api/admin/streams"))
            .bearer_auth(credential)
            .send()
            .await?;
    }
    // And over /ws, where credentials travel in the join message.
    for (role, key) in [
        (Role::Publisher, WRONG_PUBLISH_KEY),
        (Role::Publisher, publisher_token.as_str()),
        (Role::Viewer, WRONG_MODERATOR_KEY),
        (Role::Viewer, MODERATOR_KEY),
        (Role::Viewer, forged.as_str()),
    ] {
        let mut ws = WsClient::connect(&server.ws_url()).await?;
        ws.send(&ClientMessage::Join {
            stream: STREAM.into(),
            role,
            key: Some(key.into()),
            name: Some("Probe".into()),
            sdp: None,
        })
        .await?;
        let _ = ws.recv(Duration::from_secs(10)).await?;
        let _ = ws.close().await;
    }
    // Let the last of it reach the log.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = plain(&server.log());
    assert!(
        log.lines().count() > 100,
        "debug logging is not on: only {} lines",
        log.lines().count()
    );
    let mut secrets = vec![
        ("the signing secret", SECRET.to_owned()),
        ("the publish key", PUBLISH_KEY.to_owned()),
        ("the moderator key", MODERATOR_KEY.to_owned()),
        ("a wrong publish key", WRONG_PUBLISH_KEY.to_owned()),
        ("a wrong moderator key", WRONG_MODERATOR_KEY.to_owned()),
    ];
    for (what, token) in [
        ("an admin token", &admin),
        ("a publisher token", &publisher_token),
        ("a minted viewer token", &viewer_token),
        ("a forged token", &forged),
        ("an expired token", &expired),
    ] {
        secrets.push((what, token.clone()));
        // The signature alone is as good as a leak of the token.
        if let Some((_, signature)) = token.rsplit_once('.') {
            secrets.push((what, signature.to_owned()));
        }
    }
    let leaks: Vec<String> = secrets
        .iter()
        .flat_map(|(what, secret)| {
            lines_with(&log, secret)
                .into_iter()
                .map(move |line| format!("{what}: {line}"))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "secrets in the log:\n{}",
        leaks.join("\n")
    );
    eprintln!(
        "{} debug log lines, none with a secret",
        log.lines().count()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_publish_key_is_logged_once_at_startup_and_never_again() -> anyhow::Result<()> {
    // An empty --publish-key means none configured: the server generates one.
    let server = TestServer::start_with(ServerOptions {
        publish_key: String::new(),
        env: debug_logging(),
        ..ServerOptions::default()
    })
    .await?;
    let log = plain(&server.log());
    let line = lines_with(&log, "generated a publish key");
    assert_eq!(line.len(), 1, "the startup lines: {line:?}");
    let key = line[0]
        .split("publish_key=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no key in {:?}", line[0]))?
        .to_owned();

    // The key works, and using it (or a wrong one) logs it nowhere else.
    let publisher = Publisher::connect_whip(
        server.http(),
        &server.whip_url(STREAM),
        Some(&key),
        PublisherConfig::default(),
    )
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let offer = Publisher::new(PublisherConfig::default())
        .await?
        .create_offer()
        .await?;
    post_with(
        &server,
        &server.whip_url("other"),
        &offer,
        &format!("{key}x"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = plain(&server.log());
    assert_eq!(
        lines_with(&log, &key).len(),
        1,
        "the generated key is logged again: {:?}",
        lines_with(&log, &key)
    );
    Ok(())
}
