//! The engine's Prometheus metrics. Handles are registered once, so the per-packet path only
//! does atomic adds; without an installed exporter they are no-ops.

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

/// Every metric the media engine reports.
pub(crate) struct EngineMetrics {
    pub(crate) packets_in: Counter,
    pub(crate) bytes_in: Counter,
    pub(crate) packets_out: Counter,
    pub(crate) nacks: Counter,
    pub(crate) keyframe_requests: Counter,
    pub(crate) recorder_dropped: Counter,
    pub(crate) fanout_dropped: Counter,
    pub(crate) fanout_unowned: Counter,
    pub(crate) srtp_reuse: Counter,
    pub(crate) chat_dropped: Counter,
    pub(crate) sessions_dropped: Counter,
    pub(crate) viewer_rtcp: Counter,
    pub(crate) viewer_rtcp_rejected: Counter,
    pub(crate) viewers_released: Counter,
    pub(crate) released_consent: Counter,
    pub(crate) cached_starts: Counter,
    pub(crate) streams: Gauge,
    pub(crate) publishers: Gauge,
    pub(crate) viewers: Gauge,
    pub(crate) relayed_streams: Gauge,
    pub(crate) relay_pulls: Gauge,
    pub(crate) connect_seconds: Histogram,
    pub(crate) join_seconds: Histogram,
}

impl EngineMetrics {
    pub(crate) fn new() -> Self {
        describe_counter!(
            "directo_packets_in_total",
            "RTP packets received from publishers"
        );
        describe_counter!(
            "directo_bytes_in_total",
            "RTP bytes received from publishers"
        );
        describe_counter!(
            "directo_packets_out_total",
            "RTP packets forwarded to viewers (incl. retransmissions)"
        );
        describe_counter!("directo_nacks_total", "NACKed packets viewers asked for");
        describe_counter!(
            "directo_keyframe_requests_total",
            "PLI/FIR sent to publishers"
        );
        describe_counter!(
            "directo_recorder_dropped_total",
            "packets the recorder could not take"
        );
        describe_counter!(
            "directo_fanout_dropped_total",
            "forwarded packets dropped because a fan-out thread fell behind"
        );
        describe_counter!(
            "directo_fanout_unowned_total",
            "forwarded packets dropped because their viewer had no send leg (never sent through another SRTP context)"
        );
        describe_counter!(
            "directo_srtp_index_reuse_total",
            "SRTP (SSRC, index) pairs protected twice toward viewers, as seen by --srtp-audit (always 0 without it)"
        );
        describe_counter!(
            "directo_chat_dropped_total",
            "chat messages dropped for slow members or a busy chat service"
        );
        describe_counter!(
            "directo_sessions_dropped_total",
            "sessions dropped for not connecting or going silent"
        );
        describe_counter!(
            "directo_viewer_rtcp_total",
            "RTCP datagrams of connected viewers unprotected and read by the engine itself"
        );
        describe_counter!(
            "directo_viewer_rtcp_rejected_total",
            "viewer RTCP datagrams that failed authentication, were replayed or did not parse"
        );
        describe_counter!(
            "directo_viewer_connections_released_total",
            "viewers whose WebRTC connection was released after setup (SRTP, address and ICE consent kept)"
        );
        describe_counter!(
            "directo_released_viewer_consent_total",
            "ICE consent checks of released viewers answered by the engine"
        );
        describe_counter!(
            "directo_cached_starts_total",
            "viewers started on a recent keyframe from the stream's cache instead of waiting for a new one"
        );
        describe_gauge!("directo_streams", "streams with a publisher or viewers");
        describe_gauge!("directo_publishers", "publisher sessions");
        describe_gauge!("directo_viewers", "viewer sessions");
        describe_gauge!(
            "directo_relayed_streams",
            "streams this node pulls from another node of its cluster"
        );
        describe_gauge!(
            "directo_relay_pulls",
            "sessions of other nodes pulling a stream from this one"
        );
        describe_histogram!(
            "directo_connect_seconds",
            "session creation to ICE+DTLS connected"
        );
        describe_histogram!(
            "directo_join_seconds",
            "viewer session creation to its first video packet (a keyframe)"
        );
        EngineMetrics {
            packets_in: counter!("directo_packets_in_total"),
            bytes_in: counter!("directo_bytes_in_total"),
            packets_out: counter!("directo_packets_out_total"),
            nacks: counter!("directo_nacks_total"),
            keyframe_requests: counter!("directo_keyframe_requests_total"),
            recorder_dropped: counter!("directo_recorder_dropped_total"),
            fanout_dropped: counter!("directo_fanout_dropped_total"),
            fanout_unowned: counter!("directo_fanout_unowned_total"),
            srtp_reuse: counter!("directo_srtp_index_reuse_total"),
            chat_dropped: counter!("directo_chat_dropped_total"),
            sessions_dropped: counter!("directo_sessions_dropped_total"),
            viewer_rtcp: counter!("directo_viewer_rtcp_total"),
            viewer_rtcp_rejected: counter!("directo_viewer_rtcp_rejected_total"),
            viewers_released: counter!("directo_viewer_connections_released_total"),
            released_consent: counter!("directo_released_viewer_consent_total"),
            cached_starts: counter!("directo_cached_starts_total"),
            streams: gauge!("directo_streams"),
            publishers: gauge!("directo_publishers"),
            viewers: gauge!("directo_viewers"),
            relayed_streams: gauge!("directo_relayed_streams"),
            relay_pulls: gauge!("directo_relay_pulls"),
            connect_seconds: histogram!("directo_connect_seconds"),
            join_seconds: histogram!("directo_join_seconds"),
        }
    }
}
