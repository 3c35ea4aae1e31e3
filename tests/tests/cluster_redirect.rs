//! Routing viewers: a node at `--max-viewers-per-node` answers a WHEP POST with `307
//! Temporary Redirect` to another node, the `Location` carrying a short-lived token in
//! `?token=` (browsers drop `Authorization` on a cross-origin redirect), and the Rust WHEP
//! client follows it (reqwest repeats the POST with its body, as fetch does) to a session on
//! that node. A private stream's viewer gets through the redirect on the token alone.

use directo_tests::{CONNECT_TIMEOUT, Cluster, PublisherConfig, TestServer, ViewerConfig};
use reqwest::StatusCode;
use std::time::Duration;

const STREAM: &str = "routed";

/// A client that does not follow redirects, to see the `307` itself.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Waits until `node`'s engine counts `count` viewers of the stream (its room is judged by it).
async fn counted(node: &TestServer, count: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let local = node
            .stream(STREAM)
            .await?
            .and_then(|info| (info.viewers == count).then_some(()));
        if local.is_some() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "node never counted {count} viewers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_redirects_and_the_whep_client_follows() -> anyhow::Result<()> {
    let Some(cluster) = Cluster::start_with(&["a", "b"], |id| match id {
        "a" => vec!["--max-viewers-per-node".into(), "1".into()],
        _ => Vec::new(),
    })
    .await?
    else {
        return Ok(());
    };
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let publisher = a.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let first = a.view(STREAM, ViewerConfig::default()).await?;
    first.wait_connected(CONNECT_TIMEOUT).await?;
    counted(a, 1).await?;

    let response = no_redirects()
        .post(a.whep_url(STREAM))
        .query(&[("name", "Ana")])
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let target = reqwest::Url::parse(&location)?;
    assert_eq!(
        target.port(),
        b.base_url().port(),
        "redirected to node b: {location}"
    );
    assert_eq!(target.path(), format!("/whep/{STREAM}"));
    let query: Vec<(String, String)> = target.query_pairs().into_owned().collect();
    assert!(query.contains(&("name".into(), "Ana".into())), "{location}");
    assert!(query.contains(&("hop".into(), "1".into())), "{location}");
    assert!(
        query.iter().any(|(k, v)| k == "token" && !v.is_empty()),
        "{location}"
    );

    let second = a.view(STREAM, ViewerConfig::default()).await?;
    let session = second.session().map(|s| s.url.clone());
    assert_eq!(
        session.as_ref().and_then(|url| url.port()),
        b.base_url().port(),
        "the session lives on node b: {session:?}"
    );
    second.wait_connected(CONNECT_TIMEOUT).await?;
    counted(b, 1).await?;
    // The session's URL is absolute and on node b: leaving reaches the right node.
    assert_eq!(second.disconnect(a.http()).await?, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_streams_viewer_gets_through_the_redirect_on_the_token() -> anyhow::Result<()> {
    let Some(cluster) = Cluster::start_with(&["a", "b"], |id| match id {
        "a" => vec!["--max-viewers-per-node".into(), "1".into()],
        _ => Vec::new(),
    })
    .await?
    else {
        return Ok(());
    };
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let admin = cluster.token("admin", "*", None).await?;
    for node in [a, b] {
        let response = node
            .http()
            .put(node.url(&format!("api/streams/{STREAM}/settings")))
            .bearer_auth(&admin)
            .json(&serde_json::json!({ "public": false }))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
    }

    let token = cluster.token("viewer", STREAM, Some("Bo")).await?;
    let with_token = || ViewerConfig {
        bearer: Some(token.clone()),
        ..ViewerConfig::default()
    };
    let first = a.view(STREAM, with_token()).await?;
    first.wait_connected(CONNECT_TIMEOUT).await?;
    counted(a, 1).await?;

    // Without a token the full node refuses rather than redirects.
    let anonymous = no_redirects()
        .post(a.whep_url(STREAM))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // reqwest, like browsers, drops `Authorization` when it follows a redirect to another
    // origin (here: another port): node b admits the viewer on the URL's token.
    let viewer = a.view(STREAM, with_token()).await?;
    let on_b = viewer
        .session()
        .is_some_and(|s| s.url.port() == b.base_url().port());
    assert!(
        on_b,
        "the viewer was served by node b: {:?}",
        viewer.session()
    );
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    counted(b, 1).await?;
    Ok(())
}
