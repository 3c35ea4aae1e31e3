//! Signed tokens as an operator relies on them: every endpoint refuses a missing, garbage,
//! forged, unsigned, tampered or expired credential with `401 unauthorized`, and a valid token
//! of the wrong role or stream with `403 forbidden`; the right token works. Tokens come from
//! `directo token` (with `--secret` and with the data directory's secret) and `POST
//! /api/tokens`.

use directo_tests::access::{
    Probe, SecretSource, TokenSpec, UNSIGNED_ADMIN_TOKEN, mint_token, tampered_to_admin,
};
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, Publisher, PublisherConfig, ServerOptions, TestServer,
    ViewerConfig, WsClient,
};
use reqwest::Method;
use signaling_proto::{ClientMessage, ErrorCode, MintedToken, Role, ServerMessage, StreamSessions};
use std::time::Duration;

const SECRET: &str = "security-tokens-test-secret-0123456789";
const OTHER_SECRET: &str = "an-attackers-guess-at-the-secret";
const MODERATOR_KEY: &str = "security-tokens-moderator-key";
const STREAM: &str = "guarded";
const OTHER_STREAM: &str = "elsewhere";

/// A server signing with [`SECRET`], with a moderator key, and no practical request or
/// failed-credential limit (these tests send a hundred bad credentials from one address).
async fn server() -> anyhow::Result<TestServer> {
    Ok(TestServer::start_with(ServerOptions {
        moderator_key: Some(MODERATOR_KEY.to_owned()),
        extra_args: vec![
            "--secret".into(),
            SECRET.into(),
            "--max-requests-per-minute".into(),
            "1000000".into(),
            "--max-auth-failures-per-minute".into(),
            "1000000".into(),
        ],
        ..ServerOptions::default()
    })
    .await?)
}

async fn token(role: &str, stream: &str) -> anyhow::Result<String> {
    Ok(mint_token(SecretSource::Explicit(SECRET), TokenSpec::new(role, stream)).await?)
}

async fn forged(role: &str, stream: &str) -> anyhow::Result<String> {
    Ok(mint_token(
        SecretSource::Explicit(OTHER_SECRET),
        TokenSpec::new(role, stream),
    )
    .await?)
}

/// A token that expired a moment ago (`--ttl 1s`, then waited out).
async fn expired(role: &str, stream: &str) -> anyhow::Result<String> {
    let token = mint_token(
        SecretSource::Explicit(SECRET),
        TokenSpec::new(role, stream).ttl("1s"),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    Ok(token)
}

/// Credentials that are not valid tokens at all, each with what it is: all must get 401.
async fn invalid_credentials(role: &str, stream: &str) -> anyhow::Result<Vec<(String, String)>> {
    let valid = token(role, stream).await?;
    Ok(vec![
        ("garbage".into(), "garbage".into()),
        ("three garbage segments".into(), "a.b.c".into()),
        (
            format!("a {role} token signed with another secret"),
            forged(role, stream).await?,
        ),
        (
            "an unsigned (alg none) admin token".into(),
            UNSIGNED_ADMIN_TOKEN.into(),
        ),
        (
            format!("a {role} token whose claims were swapped for admin"),
            tampered_to_admin(&valid),
        ),
        (
            format!("a {role} token with its signature cut off"),
            valid
                .rsplit_once('.')
                .map(|(head, _)| head.to_owned())
                .unwrap_or_default(),
        ),
        (
            format!("an expired {role} token"),
            expired(role, stream).await?,
        ),
    ])
}

#[tokio::test]
async fn publishing_needs_a_publisher_token_for_the_stream() -> anyhow::Result<()> {
    let server = server().await?;
    let http = server.http();
    let whip = Probe::new(Method::POST, server.whip_url(STREAM).parse()?).sdp("v=0\r\n");

    whip.expect_refused(http, None, "no credential", 401, ErrorCode::Unauthorized)
        .await?;
    for (what, credential) in invalid_credentials("publisher", STREAM).await? {
        whip.expect_refused(http, Some(&credential), &what, 401, ErrorCode::Unauthorized)
            .await?;
    }
    whip.expect_refused(
        http,
        Some(MODERATOR_KEY),
        "the moderator key",
        401,
        ErrorCode::Unauthorized,
    )
    .await?;
    for role in ["viewer", "moderator"] {
        whip.expect_refused(
            http,
            Some(&token(role, STREAM).await?),
            &format!("a {role} token"),
            403,
            ErrorCode::Forbidden,
        )
        .await?;
    }
    whip.expect_refused(
        http,
        Some(&token("publisher", OTHER_STREAM).await?),
        "a publisher token for another stream",
        403,
        ErrorCode::Forbidden,
    )
    .await?;
    // A WebSocket join checks the same credentials.
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    ws.send(&ClientMessage::Join {
        stream: STREAM.into(),
        role: Role::Publisher,
        key: Some(forged("publisher", STREAM).await?),
        name: None,
        sdp: None,
    })
    .await?;
    match ws.recv(Duration::from_secs(10)).await? {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::Unauthorized),
        other => panic!("a forged token joined /ws as publisher: {other:?}"),
    }

    // The right tokens publish: a publisher token for the stream, and an admin token for `*`.
    let publisher = Publisher::connect_whip(
        http,
        &server.whip_url(STREAM),
        Some(&token("publisher", STREAM).await?),
        PublisherConfig::default(),
    )
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let admin = Publisher::connect_whip(
        http,
        &server.whip_url(OTHER_STREAM),
        Some(&token("admin", "*").await?),
        PublisherConfig::default(),
    )
    .await?;
    admin.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = server.view(STREAM, ViewerConfig::default()).await?;
    viewer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    Ok(())
}

/// Every admin endpoint, as a request an attacker could send.
fn admin_probes(server: &TestServer) -> anyhow::Result<Vec<Probe>> {
    let url = |path: &str| server.url(path);
    Ok(vec![
        Probe::new(Method::GET, url("api/admin/streams")),
        Probe::new(
            Method::DELETE,
            url(&format!(
                "api/admin/streams/{STREAM}/sessions/no-such-session"
            )),
        ),
        Probe::new(
            Method::DELETE,
            url(&format!("api/admin/streams/{OTHER_STREAM}")),
        ),
        Probe::new(
            Method::POST,
            url(&format!("api/admin/streams/{STREAM}/chat")),
        )
        .json(serde_json::json!({"type": "chat.slow", "seconds": 0})),
        Probe::new(
            Method::POST,
            url(&format!("api/streams/{STREAM}/recording")),
        )
        .json(serde_json::json!({"enabled": false})),
        Probe::new(
            Method::DELETE,
            url(&format!(
                "api/recordings/{STREAM}/2020-01-01T00-00-00Z.webm"
            )),
        ),
        Probe::new(Method::GET, url(&format!("api/streams/{STREAM}/stats"))),
        Probe::new(Method::POST, url("api/tokens"))
            .json(serde_json::json!({"stream": "*", "role": "admin", "ttl": "7d"})),
        Probe::new(Method::PUT, url(&format!("api/streams/{STREAM}/settings")))
            .json(serde_json::json!({"public": false})),
    ])
}

#[tokio::test]
async fn admin_endpoints_need_an_admin_token() -> anyhow::Result<()> {
    let server = server().await?;
    let http = server.http();
    let probes = admin_probes(&server)?;
    let mut unauthorized = invalid_credentials("admin", "*").await?;
    unauthorized.push(("the publish key".into(), server.publish_key().to_owned()));
    unauthorized.push(("the moderator key".into(), MODERATOR_KEY.into()));
    let mut forbidden = Vec::new();
    for role in ["publisher", "viewer", "moderator"] {
        forbidden.push((format!("a {role} token for *"), token(role, "*").await?));
    }
    forbidden.push((
        "a moderator token for the stream".into(),
        token("moderator", STREAM).await?,
    ));

    for probe in &probes {
        probe
            .expect_refused(http, None, "no credential", 401, ErrorCode::Unauthorized)
            .await?;
        // `Basic` is not a bearer credential, whatever it carries.
        let (status, body, _) = probe
            .send(http, Some(&format!("Basic {}", token("admin", "*").await?)))
            .await?;
        assert_eq!(
            (status, body.map(|b| b.code)),
            (401, Some(ErrorCode::Unauthorized)),
            "{} {} with Basic auth",
            probe.method,
            probe.url
        );
        for (what, credential) in &unauthorized {
            probe
                .expect_refused(http, Some(credential), what, 401, ErrorCode::Unauthorized)
                .await?;
        }
        for (what, credential) in &forbidden {
            probe
                .expect_refused(http, Some(credential), what, 403, ErrorCode::Forbidden)
                .await?;
        }
    }

    // Nothing above changed anything: the stream is still public.
    let settings: serde_json::Value = http
        .get(server.url(&format!("api/streams/{STREAM}/settings")))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(settings["public"], true, "a refused PUT changed settings");

    // An admin token passes every check (the answers are the endpoints' own: 2xx or 404).
    let admin = format!("Bearer {}", token("admin", "*").await?);
    for probe in &probes {
        let (status, body, text) = probe.send(http, Some(&admin)).await?;
        let allowed = (200..300).contains(&status)
            || (status == 404
                && body.is_some_and(|b| {
                    matches!(
                        b.code,
                        ErrorCode::SessionNotFound | ErrorCode::StreamNotFound
                    )
                }));
        assert!(
            allowed,
            "{} {} with an admin token: {status} {text}",
            probe.method, probe.url
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_private_stream_needs_a_viewer_token_and_tokens_grant_moderation() -> anyhow::Result<()> {
    let server = server().await?;
    let http = server.http();
    let admin = token("admin", "*").await?;
    let whep = Probe::new(Method::POST, server.whep_url(STREAM).parse()?).sdp("v=0\r\n");

    // A public stream needs no token, but a bad one presented is still refused.
    let _publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    let anonymous = server.view(STREAM, ViewerConfig::default()).await?;
    anonymous.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    for (what, credential) in invalid_credentials("viewer", STREAM).await? {
        whep.expect_refused(http, Some(&credential), &what, 401, ErrorCode::Unauthorized)
            .await?;
    }
    whep.expect_refused(
        http,
        Some(&token("viewer", OTHER_STREAM).await?),
        "a viewer token for another stream",
        403,
        ErrorCode::Forbidden,
    )
    .await?;

    // Made private: no token is refused, over WHEP and over /ws.
    let response = http
        .put(server.url(&format!("api/streams/{STREAM}/settings")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"public": false}))
        .send()
        .await?;
    assert_eq!(response.status(), 200, "{}", response.text().await?);
    whep.expect_refused(http, None, "no token", 401, ErrorCode::Unauthorized)
        .await?;
    whep.expect_refused(
        http,
        Some(&forged("viewer", STREAM).await?),
        "a forged viewer token",
        401,
        ErrorCode::Unauthorized,
    )
    .await?;
    whep.expect_refused(
        http,
        Some(&token("viewer", OTHER_STREAM).await?),
        "a viewer token for another stream",
        403,
        ErrorCode::Forbidden,
    )
    .await?;
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    ws.send(&ClientMessage::Join {
        stream: STREAM.into(),
        role: Role::Viewer,
        key: None,
        name: Some("Sneaky".into()),
        sdp: None,
    })
    .await?;
    match ws.recv(Duration::from_secs(10)).await? {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::Unauthorized),
        other => panic!("an anonymous /ws join of a private stream: {other:?}"),
    }

    // A viewer token watches (as a viewer); a moderator token and the key watch as moderators.
    let viewer = server
        .view(
            STREAM,
            ViewerConfig {
                bearer: Some(token("viewer", STREAM).await?),
                ..ViewerConfig::default()
            },
        )
        .await?;
    viewer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    let moderator = server
        .view(
            STREAM,
            ViewerConfig {
                bearer: Some(token("moderator", STREAM).await?),
                ..ViewerConfig::default()
            },
        )
        .await?;
    let keyholder = server
        .view(
            STREAM,
            ViewerConfig {
                bearer: Some(MODERATOR_KEY.into()),
                ..ViewerConfig::default()
            },
        )
        .await?;
    moderator.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    keyholder.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;

    let listing: Vec<StreamSessions> = http
        .get(server.url("api/admin/streams"))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let moderator_of = |viewer: &directo_tests::Viewer| -> Option<bool> {
        let id = viewer
            .session()?
            .url
            .path_segments()?
            .next_back()?
            .to_owned();
        listing
            .iter()
            .flat_map(|s| &s.sessions)
            .find(|s| s.session == id)
            .map(|s| s.moderator)
    };
    assert_eq!(moderator_of(&viewer), Some(false), "{listing:?}");
    assert_eq!(moderator_of(&moderator), Some(true), "{listing:?}");
    assert_eq!(moderator_of(&keyholder), Some(true), "{listing:?}");
    Ok(())
}

#[tokio::test]
async fn tokens_from_the_cli_and_the_api_work_against_the_server() -> anyhow::Result<()> {
    // No --secret: the server generates one in its data directory, and `directo token
    // --data-dir` signs with it.
    let server = TestServer::start().await?;
    let http = server.http();
    let data_dir = server.data_dir();
    let cli = |role, stream| {
        let dir = data_dir.clone();
        async move { mint_token(SecretSource::DataDir(&dir), TokenSpec::new(role, stream)).await }
    };
    let publisher = Publisher::connect_whip(
        http,
        &server.whip_url(STREAM),
        Some(&cli("publisher", STREAM).await?),
        PublisherConfig::default(),
    )
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;

    // An admin token from the CLI mints a viewer token over the API.
    let admin = cli("admin", "*").await?;
    let response = http
        .post(server.url("api/tokens"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"stream": STREAM, "role": "viewer", "name": "Ana", "ttl": "2h"}))
        .send()
        .await?;
    assert_eq!(response.status(), 201);
    let MintedToken {
        token: viewer_token,
        expires_at,
    } = response.json().await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    assert!(
        (now + 7000..=now + 7300).contains(&expires_at),
        "a 2h token expires at {expires_at}, now is {now}"
    );

    let response = http
        .put(server.url(&format!("api/streams/{STREAM}/settings")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"public": false}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let viewer = server
        .view(
            STREAM,
            ViewerConfig {
                bearer: Some(viewer_token.clone()),
                ..ViewerConfig::default()
            },
        )
        .await?;
    viewer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;

    // The API's token is a viewer token: it cannot publish.
    let whip = Probe::new(Method::POST, server.whip_url(STREAM).parse()?).sdp("v=0\r\n");
    whip.expect_refused(
        http,
        Some(&viewer_token),
        "an API-minted viewer token",
        403,
        ErrorCode::Forbidden,
    )
    .await?;
    // And a token signed with --secret (not this server's secret) is refused.
    let stranger = mint_token(
        SecretSource::Explicit(OTHER_SECRET),
        TokenSpec::new("admin", "*"),
    )
    .await?;
    Probe::new(Method::GET, server.url("api/admin/streams"))
        .expect_refused(
            http,
            Some(&stranger),
            "a token signed with another secret",
            401,
            ErrorCode::Unauthorized,
        )
        .await?;
    Ok(())
}

/// A private stream's chat log (deleted messages included) and its recordings need a viewer
/// token, and its recordings are not listed to anonymous callers.
#[tokio::test]
async fn a_private_streams_chat_log_and_recordings_need_a_token() -> anyhow::Result<()> {
    let server = server().await?;
    let http = server.http();
    let admin = token("admin", "*").await?;
    let response = http
        .put(server.url(&format!("api/streams/{STREAM}/settings")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"public": false}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let file = directo_tests::wait_for("a recording file", MEDIA_TIMEOUT, || async {
        Ok(directo_tests::recordings::recording_files(&server, STREAM)
            .into_iter()
            .next())
    })
    .await?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();

    Probe::new(
        Method::GET,
        server.url(&format!("api/streams/{STREAM}/chat")),
    )
    .expect_refused(http, None, "no token", 401, ErrorCode::Unauthorized)
    .await?;
    Probe::new(
        Method::GET,
        server.url(&format!("api/recordings/{STREAM}/{name}")),
    )
    .expect_refused(http, None, "no token", 401, ErrorCode::Unauthorized)
    .await?;
    let listing = http
        .get(server.url("api/recordings"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        !listing.contains(&name),
        "an anonymous listing shows the private stream's recording: {listing}"
    );
    Ok(())
}
