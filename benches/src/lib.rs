//! Load generation and micro-benchmarks for Directo.
//!
//! The `directo-load` binary is a thin CLI over [`load::run`]: one synthetic publisher
//! ([`publisher`], media from [`synth`]) and N synthetic viewers ([`viewer`]), all real
//! WebRTC (ICE, DTLS, SRTP) on sans-IO `rtc` peer connections ([`peer`]) that share a few
//! threads, so the generator stays cheaper than the server it loads. Every packet carries a
//! send-time stamp ([`stamp`]), so viewers measure forwarding delay on the process's one
//! clock; [`proc_stats`] reads the server's CPU and memory; [`report`] sums it all up.
//!
//! The same viewers can watch a Janus Streaming mountpoint ([`janus`]) fed with the same
//! synthetic RTP, for side-by-side comparisons (`benches/compare-janus.sh`).
//!
//! With `--churn` it runs [`churn`] instead: streams that come and go under fresh names and
//! viewers joining and leaving with their chat channels, for soak runs (`benches/soak.sh`).
//!
//! The criterion benchmarks in `benches/benches/` measure the forwarding core's hot paths.

pub mod api_poll;
pub mod chat_flood;
pub mod churn;
pub mod churn_viewer;
pub mod error;
pub mod histogram;
pub mod janus;
pub mod load;
pub mod peer;
pub mod proc_stats;
pub mod publisher;
pub mod report;
pub mod rx_stamp;
pub mod stamp;
pub mod summary;
pub mod synth;
pub mod twcc_feedback;
pub mod viewer;
pub mod whip;
