//! A viewer that disappears without a goodbye (its process dies: no `DELETE`, no DTLS
//! close, no more ICE checks) is freed by the idle timeout: its session leaves the admin
//! listing and the viewer count, while a viewer that is still there keeps watching.

use directo_tests::{MEDIA_TIMEOUT, PublisherConfig, TestServer, ViewerConfig, wait_for};
use signaling_proto::StreamSessions;
use std::time::{Duration, Instant};

const STREAM: &str = "vanishing";
/// The server's default `--idle-timeout-s` is 15 s; the session must be gone well within this.
const FREED_WITHIN: Duration = Duration::from_secs(30);

/// Watches `STREAM` on a runtime of its own until media arrives, then kills that runtime:
/// every task and socket of the viewer is dropped unpolled, as when a process is killed.
/// Returns the WHEP session id.
fn watch_then_vanish(whep_url: String) -> anyhow::Result<String> {
    std::thread::spawn(move || -> anyhow::Result<String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let viewer = runtime.block_on(async {
            let http = directo_tests::http_client();
            let viewer =
                directo_tests::Viewer::connect_whep(&http, &whep_url, ViewerConfig::default())
                    .await?;
            viewer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
            anyhow::Ok(viewer)
        })?;
        let session = viewer
            .session()
            .and_then(|s| s.url.path_segments()?.next_back().map(str::to_owned))
            .ok_or_else(|| anyhow::anyhow!("the viewer has no WHEP session"))?;
        // No close: the viewer's drop would close the peer politely, so it is leaked, and
        // its runtime stops without running anything again.
        std::mem::forget(viewer);
        runtime.shutdown_background();
        Ok(session)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the vanishing viewer's thread panicked"))?
}

/// The session ids `GET /api/admin/streams` lists for `STREAM`.
async fn sessions(server: &TestServer, admin: &str) -> anyhow::Result<Vec<String>> {
    let listing: Vec<StreamSessions> = server
        .http()
        .get(server.url("api/admin/streams"))
        .bearer_auth(admin)
        .send()
        .await?
        .json()
        .await?;
    Ok(listing
        .into_iter()
        .filter(|s| s.stream.name == STREAM)
        .flat_map(|s| s.sessions)
        .map(|s| s.session)
        .collect())
}

#[tokio::test]
async fn a_viewer_that_vanishes_is_freed_by_the_idle_timeout() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let admin = server.token("admin", "*", None).await?;
    let _publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    let staying = server.view(STREAM, ViewerConfig::default()).await?;
    staying.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;

    let url = server.whep_url(STREAM);
    let gone = tokio::task::spawn_blocking(move || watch_then_vanish(url)).await??;
    let vanished_at = Instant::now();
    assert!(sessions(&server, &admin).await?.contains(&gone));

    wait_for(
        "the vanished viewer's session to be freed",
        FREED_WITHIN,
        || async {
            let open = sessions(&server, &admin)
                .await
                .map_err(|e| directo_tests::ClientError::Protocol(e.to_string()))?;
            Ok((!open.contains(&gone)).then_some(()))
        },
    )
    .await?;
    eprintln!(
        "the vanished viewer was freed {:.1} s after it vanished",
        vanished_at.elapsed().as_secs_f64()
    );
    let info = server.stream(STREAM).await?;
    assert_eq!(
        info.map(|i| i.viewers),
        Some(1),
        "only the staying viewer is counted"
    );

    // The viewer that stayed was not touched.
    let before = staying.packets(directo_tests::MediaKind::Video);
    staying
        .wait_for_packets(0, before + 30, MEDIA_TIMEOUT)
        .await?;
    Ok(())
}
