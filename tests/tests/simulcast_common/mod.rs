//! What the simulcast link tests (`simulcast_links.rs`, `simulcast_netns.rs`) share: the load
//! generator's configuration (a simulcast publisher, a dozen viewers, a quarter of them over
//! narrow links) and the checks of what its viewers saw.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use directo_benches::load::{LoadConfig, Target};
use directo_benches::report::Report;
use directo_benches::synth::VideoShape;
use directo_tests::{LOSS_BUDGET, TestServer};

pub const VIEWERS: usize = 12;
/// Every fourth viewer (3 of 12) is constrained.
pub const CONSTRAINED_SHARE: f64 = 0.25;
pub const CONSTRAINED: usize = 3;
/// The picture widths of the publisher's smallest and largest layers (¼ and all of 640×360).
pub const SMALLEST_WIDTH: u16 = 160;
pub const LARGEST_WIDTH: u16 = 640;

/// Ten seconds of the simulcast publisher (1.5 Mbit/s on top, transport feedback from every
/// viewer) and [`VIEWERS`] viewers of `stream` on `server`, a quarter of them over links of
/// `constrained_kbps` — narrowed by the viewers themselves, or, with `constrained_bind_ip`,
/// outside them for traffic to that address and the next ones.
pub fn config(
    server: &TestServer,
    stream: &str,
    constrained_kbps: u32,
    constrained_bind_ip: Option<IpAddr>,
) -> LoadConfig {
    LoadConfig {
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
        viewer_servers: Vec::new(),
        simulcast: true,
        constrained_share: CONSTRAINED_SHARE,
        constrained_kbps,
        constrained_bind_ip,
        transport_cc: true,
        api_pollers: 0,
        poll_interval: Duration::from_secs(2),
    }
}

/// Prints the run's figures and returns the report as JSON, for the assertions' messages.
pub fn summarize(report: &Report) -> String {
    println!(
        "constrained {} on layers (width: viewers) {:?}, others on {:?}, loss {:.4}, \
         constrained loss {:.3}, publisher keyframe requests {}, temporal layers lately \
         (constrained {:?}, others {:?}), picture-id gaps {}, probe packets {}",
        report.constrained,
        report.constrained_layer_widths,
        report.other_layer_widths,
        report.loss_ratio,
        report.constrained_loss_ratio,
        report.publisher_keyframe_requests,
        report.constrained_temporal_layers,
        report.other_temporal_layers,
        report.picture_id_gaps,
        report.probe_packets
    );
    serde_json::to_string_pretty(report).unwrap_or_default()
}

/// What users would notice: everybody connected, the constrained viewers on the smallest layer
/// (at every frame when `whole_smallest_layer`, their link carrying it, otherwise thinned to
/// fewer frames), the others on the largest layer at every frame with no more loss than a busy
/// machine's loopback drops ([`LOSS_BUDGET`]; these viewers send no NACKs, so it is raw loss),
/// no picture-id hole anywhere, and the publisher not flooded with keyframe requests.
pub fn assert_layers(report: &Report, summary: &str, whole_smallest_layer: bool) {
    assert_eq!(report.connected, VIEWERS, "{summary}");
    assert_eq!(report.constrained, CONSTRAINED, "{summary}");
    // Widths, not just the viewers compared with each other: the layers must be the
    // publisher's smallest and largest ones.
    assert_eq!(
        report.constrained_layer_widths,
        BTreeMap::from([(SMALLEST_WIDTH, CONSTRAINED)]),
        "every constrained viewer on the smallest layer: {summary}"
    );
    assert_eq!(
        report.other_layer_widths,
        BTreeMap::from([(LARGEST_WIDTH, VIEWERS - CONSTRAINED)]),
        "every other viewer on the top layer: {summary}"
    );
    if whole_smallest_layer {
        assert_eq!(
            report.constrained_temporal_layers,
            BTreeMap::from([(2, CONSTRAINED)]),
            "a link that carries the smallest layer gets all of its frames: {summary}"
        );
    } else {
        let thinned: usize = report
            .constrained_temporal_layers
            .iter()
            .filter(|&(&layer, _)| layer < 2)
            .map(|(_, viewers)| viewers)
            .sum();
        assert_eq!(
            thinned, CONSTRAINED,
            "the constrained viewers' layer thinned to fewer frames: {summary}"
        );
    }
    assert_eq!(
        report.other_temporal_layers,
        BTreeMap::from([(2, VIEWERS - CONSTRAINED)]),
        "the others get every frame: {summary}"
    );
    assert_eq!(
        report.picture_id_gaps, 0,
        "dropped frames leave no hole in the picture ids: {summary}"
    );
    assert!(
        report.loss_ratio < LOSS_BUDGET,
        "the unconstrained viewers lost more than a busy loopback drops: {summary}"
    );
    // Layer switches cost a keyframe of the new layer each, collapsed across viewers and
    // throttled; a weak viewer's own requests never reach the publisher one by one.
    assert!(
        report.publisher_keyframe_requests <= 3 * 10,
        "the publisher was flooded with keyframe requests: {summary}"
    );
}
