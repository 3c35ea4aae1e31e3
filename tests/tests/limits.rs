//! Capacity limits as a client meets them: over `--max-streams` or `--max-viewers-per-stream`
//! a new session gets `503` with a `Retry-After`; over `--max-sessions-per-ip` (publishers) or
//! `--max-requests-per-minute` the one address gets `429` with a `Retry-After`, while other
//! addresses, and the viewers already watching, are not hurt. (Viewers from one address, and
//! failed credentials: `one_address.rs`.)

use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, Publisher, PublisherConfig, ServerOptions,
    TestServer, Viewer, ViewerConfig, http_client_from, post_offer_raw,
};
use signaling_proto::ErrorCode;
use std::net::IpAddr;

/// A server with these extra flags (and otherwise the defaults).
async fn server(flags: &[&str]) -> anyhow::Result<TestServer> {
    Ok(TestServer::start_with(ServerOptions {
        extra_args: flags.iter().map(|f| (*f).to_owned()).collect(),
        ..ServerOptions::default()
    })
    .await?)
}

/// A real viewer offer (recvonly audio + video), to send by hand.
async fn viewer_offer() -> anyhow::Result<String> {
    Ok(Viewer::new(ViewerConfig::default())
        .await?
        .create_offer()
        .await?)
}

/// A real publisher offer (sendonly Opus + VP8), to send by hand.
async fn publisher_offer() -> anyhow::Result<String> {
    Ok(Publisher::new(PublisherConfig::default())
        .await?
        .create_offer()
        .await?)
}

#[tokio::test]
async fn over_max_streams_is_503_with_retry_after() -> anyhow::Result<()> {
    let server = server(&["--max-streams", "1"]).await?;
    let _first = server.publish("first", PublisherConfig::default()).await?;

    let refused = post_offer_raw(
        server.http(),
        &server.whip_url("second"),
        &publisher_offer().await?,
        Some(server.publish_key()),
    )
    .await?;
    refused.assert_refused(503, ErrorCode::Unavailable, "a second stream's publisher");
    // Watching a stream that does not exist yet would open a stream too.
    let refused = post_offer_raw(
        server.http(),
        &server.whep_url("second"),
        &viewer_offer().await?,
        None,
    )
    .await?;
    refused.assert_refused(503, ErrorCode::Unavailable, "a second stream's viewer");

    // The stream within the limit is served as usual.
    let viewer = server.view("first", ViewerConfig::default()).await?;
    viewer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    Ok(())
}

#[tokio::test]
async fn over_max_viewers_per_stream_is_503_until_a_seat_frees() -> anyhow::Result<()> {
    let server = server(&["--max-viewers-per-stream", "2"]).await?;
    let _publisher = server.publish("show", PublisherConfig::default()).await?;
    let first = server.view("show", ViewerConfig::default()).await?;
    let second = server.view("show", ViewerConfig::default()).await?;

    let refused = post_offer_raw(
        server.http(),
        &server.whep_url("show"),
        &viewer_offer().await?,
        None,
    )
    .await?;
    refused.assert_refused(503, ErrorCode::Unavailable, "a third viewer");
    // Another stream has its own seats.
    let elsewhere = server.view("other", ViewerConfig::default()).await?;
    elsewhere.wait_connected(CONNECT_TIMEOUT).await?;

    first.disconnect(server.http()).await?;
    let third = server.view("show", ViewerConfig::default()).await?;
    for viewer in [&second, &third] {
        viewer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    }
    Ok(())
}

#[tokio::test]
async fn over_max_sessions_per_ip_is_429_for_that_address_only() -> anyhow::Result<()> {
    let server = server(&["--max-sessions-per-ip", "1"]).await?;
    let here = server.http();
    let _publisher = server.publish("show", PublisherConfig::default()).await?;

    let refused = post_offer_raw(
        here,
        &server.whip_url("second"),
        &publisher_offer().await?,
        Some(server.publish_key()),
    )
    .await?;
    refused.assert_refused(
        429,
        ErrorCode::RateLimited,
        "a second publisher from one address",
    );
    // Viewers are not counted per address.
    let _one = server.view("show", ViewerConfig::default()).await?;
    let two = server.view("show", ViewerConfig::default()).await?;
    two.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;

    // Another address is not counted against this one.
    let there = http_client_from(IpAddr::from([127, 0, 0, 2]));
    let other = Publisher::connect_whip(
        &there,
        &server.whip_url("second"),
        Some(server.publish_key()),
        PublisherConfig::default(),
    )
    .await?;
    other.wait_connected(CONNECT_TIMEOUT).await?;
    Ok(())
}

#[tokio::test]
async fn a_flooding_address_gets_429_and_nobody_else_is_hurt() -> anyhow::Result<()> {
    let server = server(&["--max-requests-per-minute", "20"]).await?;
    // The server's own start-up polling came from 127.0.0.1; the honest clients use fresh
    // addresses so their budget is their own.
    let publisher_http = http_client_from(IpAddr::from([127, 0, 0, 2]));
    let viewer_http = http_client_from(IpAddr::from([127, 0, 0, 3]));
    let flood_http = http_client_from(IpAddr::from([127, 0, 0, 4]));
    let publisher = Publisher::connect_whip(
        &publisher_http,
        &server.whip_url("calm"),
        Some(server.publish_key()),
        PublisherConfig::default(),
    )
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let watching = Viewer::connect_whep(
        &viewer_http,
        &server.whep_url("calm"),
        ViewerConfig::default(),
    )
    .await?;
    watching.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;

    // The flood: a hundred publish attempts for another stream as fast as they go.
    let offer = publisher_offer().await?;
    let url = server.whip_url("stormy");
    let flood = futures::future::join_all(
        (0..100).map(|_| post_offer_raw(&flood_http, &url, &offer, None)),
    )
    .await;
    let mut limited = 0;
    for answer in flood {
        let answer = answer?;
        if answer.status == 429 {
            answer.assert_refused(429, ErrorCode::RateLimited, "a flood request");
            limited += 1;
        }
    }
    assert!(
        limited >= 50,
        "only {limited} of 100 flood requests were refused"
    );
    // Still refused right after (the bucket refills at 20 a minute).
    let again = post_offer_raw(&flood_http, &url, &offer, None).await?;
    again.assert_refused(
        429,
        ErrorCode::RateLimited,
        "a request right after the flood",
    );

    // Meanwhile: the viewer kept receiving, and a new viewer from its address joins.
    let before = watching.packets(MediaKind::Video);
    watching
        .wait_for_packets(0, before + 30, MEDIA_TIMEOUT)
        .await?;
    let newcomer = Viewer::connect_whep(
        &viewer_http,
        &server.whep_url("calm"),
        ViewerConfig::default(),
    )
    .await?;
    newcomer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    let health = viewer_http.get(server.url("healthz")).send().await?;
    assert_eq!(health.status(), 200);
    Ok(())
}

/// Page loads, health checks and `/metrics` scrapes do not take from an address's signaling
/// budget: only requests that create work count.
#[tokio::test]
async fn pages_and_health_checks_leave_the_signaling_budget_alone() -> anyhow::Result<()> {
    let server = server(&["--max-requests-per-minute", "5"]).await?;
    let _publisher = Publisher::connect_whip(
        &http_client_from(IpAddr::from([127, 0, 0, 2])),
        &server.whip_url("show"),
        Some(server.publish_key()),
        PublisherConfig::default(),
    )
    .await?;
    let browser = http_client_from(IpAddr::from([127, 0, 0, 5]));
    for path in ["", "watch/show", "healthz", "metrics", "api/streams"]
        .iter()
        .cycle()
        .take(20)
    {
        browser.get(server.url(path)).send().await?;
    }
    let viewer =
        Viewer::connect_whep(&browser, &server.whep_url("show"), ViewerConfig::default()).await?;
    viewer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    Ok(())
}
