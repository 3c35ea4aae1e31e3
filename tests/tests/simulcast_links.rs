//! Simulcast with Rust clients over narrowed links: a publisher sends three RID layers (¼, ½
//! and full size at ~150, ~500 and 1,500 kbit/s) and a dozen viewers watch, a quarter of them
//! over a link narrowed to 400 kbit/s (a token bucket in the viewer drops what the link cannot
//! carry, and the viewer reports its loss in receiver reports and its arrivals in transport-wide
//! feedback, as a browser would). Every viewer is a real `rtc` peer connection (ICE, DTLS,
//! SRTP), the generator of `benches/` run for ten seconds against a real `directo`.
//! `simulcast_netns.rs` is the same run with the links narrowed in the kernel instead (HTB
//! classes on the loopback of a network namespace of its own, so packets queue before they are
//! dropped); both shape the rate only, as this machine's kernel has no netem, tbf or tc actions
//! to inject loss with.
//!
//! Users would notice: the constrained viewers end up on the smallest layer (their link carries
//! it), the others keep the largest one and lose nothing, and the publisher is not flooded with
//! keyframe requests by the weak viewers' trouble. A second run narrows the links below even
//! the smallest layer: those viewers get it thinned to its lower temporal layers (the
//! generator's VP8 is L1T3, like Chrome's simulcast), renumbered so that no picture id is
//! missing for a decoder to wait on.

mod simulcast_common;

use directo_benches::load::run;
use directo_benches::report::Report;
use directo_tests::{ServerOptions, TestServer};
use simulcast_common::{assert_layers, config, summarize};

/// Ten seconds of the simulcast publisher and its viewers against a fresh server, a quarter of
/// the viewers narrowing their own links to `constrained_kbps`.
async fn run_links(stream: &str, constrained_kbps: u32) -> anyhow::Result<(Report, String)> {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("DIRECTO_MAX_SESSIONS_PER_IP".into(), "1000".into())],
        ..ServerOptions::default()
    })
    .await?;
    let config = config(&server, stream, constrained_kbps, None);
    let report = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(run(config)).map_err(anyhow::Error::from))
    })
    .await??;
    let summary = summarize(&report);
    Ok((report, summary))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constrained_viewers_get_the_small_layer_and_the_others_the_top_one() -> anyhow::Result<()>
{
    let (report, summary) = run_links("simulcast-links", 400).await?;
    assert_layers(&report, &summary, true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_below_the_smallest_layer_gets_it_at_fewer_frames() -> anyhow::Result<()> {
    // The smallest layer is ~150 kbit/s and audio ~40; 120 kbit/s carries audio and the
    // smallest layer's base temporal layer (~40 % of it), not the whole layer.
    let (report, summary) = run_links("simulcast-thinner", 120).await?;
    assert_layers(&report, &summary, false);
    Ok(())
}
