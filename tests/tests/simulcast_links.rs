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

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use directo_benches::load::{LoadConfig, Target, run};
use directo_benches::report::Report;
use directo_benches::synth::VideoShape;
use directo_tests::{ServerOptions, TestServer};

const VIEWERS: usize = 12;
const CONSTRAINED_SHARE: f64 = 0.25;

/// Ten seconds of the simulcast publisher and [`VIEWERS`] viewers against a fresh server, a
/// quarter of them over links of `constrained_kbps`; prints and returns the report and its JSON.
async fn run_links(stream: &str, constrained_kbps: u32) -> anyhow::Result<(Report, String)> {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("DIRECTO_MAX_SESSIONS_PER_IP".into(), "1000".into())],
        ..ServerOptions::default()
    })
    .await?;
    let config = LoadConfig {
        target: Target::Directo {
            server: server.base_url().clone(),
            stream: stream.into(),
            key: Some(server.publish_key().to_owned()),
        },
        viewers: VIEWERS,
        seconds: 10.0,
        ramp_per_s: 20.0,
        shape: VideoShape {
            bitrate_kbps: 1500,
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            packet_size: 1200,
            pace_factor: 2.5,
        },
        server_pid: None,
        threads: 1,
        per_viewer: false,
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        chat_flood: 0,
        simulcast: true,
        constrained_share: CONSTRAINED_SHARE,
        constrained_kbps,
        constrained_bind_ip: None,
        transport_cc: true,
    };
    let report = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(run(config)).map_err(anyhow::Error::from))
    })
    .await??;
    let summary = serde_json::to_string_pretty(&report)?;
    println!(
        "constrained {} on the lowest layer {}, others on the top layer {}, loss {:.4}, \
         constrained loss {:.3}, publisher keyframe requests {}, temporal layers lately \
         (constrained {:?}, others {:?}), picture-id gaps {}",
        report.constrained,
        report.constrained_on_lowest_layer,
        report.others_on_top_layer,
        report.loss_ratio,
        report.constrained_loss_ratio,
        report.publisher_keyframe_requests,
        report.constrained_temporal_layers,
        report.other_temporal_layers,
        report.picture_id_gaps
    );
    Ok((report, summary))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constrained_viewers_get_the_small_layer_and_the_others_the_top_one() -> anyhow::Result<()>
{
    let (report, summary) = run_links("simulcast-links", 400).await?;
    let constrained = (VIEWERS as f64 * CONSTRAINED_SHARE) as usize;
    assert_eq!(report.connected, VIEWERS, "{summary}");
    assert_eq!(report.constrained, constrained, "{summary}");
    assert_eq!(
        report.constrained_on_lowest_layer, constrained,
        "every constrained viewer on the smallest layer: {summary}"
    );
    assert_eq!(
        report.others_on_top_layer,
        VIEWERS - constrained,
        "every other viewer on the top layer: {summary}"
    );
    // The counts above compare viewers with each other (the smallest and largest picture any
    // of them got); the widths say the layers are the publisher's smallest and largest ones
    // (¼ and all of 640×360).
    assert_eq!(
        report.constrained_layer_widths,
        BTreeMap::from([(160, constrained)]),
        "{summary}"
    );
    assert_eq!(
        report.other_layer_widths,
        BTreeMap::from([(640, VIEWERS - constrained)]),
        "{summary}"
    );
    assert!(
        report.loss_ratio < 0.001,
        "the unconstrained viewers lost nothing: {summary}"
    );
    // Layer switches cost a keyframe of the new layer each, collapsed across viewers and
    // throttled; a weak viewer's own requests never reach the publisher one by one.
    assert!(
        report.publisher_keyframe_requests <= 3 * 10,
        "the publisher was flooded with keyframe requests: {summary}"
    );
    assert_eq!(
        report.constrained_temporal_layers,
        BTreeMap::from([(2, constrained)]),
        "a link that carries the smallest layer gets all of its frames: {summary}"
    );
    assert_eq!(report.picture_id_gaps, 0, "{summary}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_below_the_smallest_layer_gets_it_at_fewer_frames() -> anyhow::Result<()> {
    // The smallest layer is ~150 kbit/s and audio ~40; 120 kbit/s carries audio and the
    // smallest layer's base temporal layer (~40 % of it), not the whole layer.
    let (report, summary) = run_links("simulcast-thinner", 120).await?;
    let constrained = (VIEWERS as f64 * CONSTRAINED_SHARE) as usize;
    assert_eq!(report.connected, VIEWERS, "{summary}");
    assert_eq!(
        report.constrained_layer_widths,
        BTreeMap::from([(160, constrained)]),
        "the constrained viewers on the smallest layer: {summary}"
    );
    let thinned: usize = report
        .constrained_temporal_layers
        .iter()
        .filter(|&(&layer, _)| layer < 2)
        .map(|(_, viewers)| viewers)
        .sum();
    assert_eq!(
        thinned, constrained,
        "the constrained viewers' layer thinned to fewer frames: {summary}"
    );
    assert_eq!(
        report.other_temporal_layers,
        BTreeMap::from([(2, VIEWERS - constrained)]),
        "the others get every frame: {summary}"
    );
    assert_eq!(
        report.picture_id_gaps, 0,
        "dropped frames leave no hole in the picture ids: {summary}"
    );
    assert!(
        report.loss_ratio < 0.001,
        "the unconstrained viewers lost nothing: {summary}"
    );
    Ok(())
}
