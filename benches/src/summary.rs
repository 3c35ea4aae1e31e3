//! Tables over several runs, for the scripts: one row per run, and a side-by-side of Directo
//! and Janus with ratios (CPU per forwarded packet, most viewers at under 0.1% loss, latency).
//! Reads the JSON lines `directo-load --json` printed, so the scripts need nothing but bash.

use std::fmt::Write as _;

use crate::report::Report;

/// The loss ratio under which a run counts as clean.
pub const CLEAN_LOSS: f64 = 0.001;

/// Parses one report per non-empty line.
pub fn parse_lines(text: &str) -> Result<Vec<Report>, serde_json::Error> {
    text.lines()
        .filter(|line| line.trim_start().starts_with('{'))
        .map(serde_json::from_str)
        .collect()
}

fn cell(value: Option<f64>, precision: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.precision$}"))
}

/// One row per run.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9} {:>8} {:>8}",
        "target",
        "viewers",
        "connected",
        "loss%",
        "lat p50",
        "lat p95",
        "lat p99",
        "join p50",
        "fwd pkt/s",
        "cpu us/p",
        "srv cpu%",
        "KiB/view",
        "gen cpu%"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<8} {:>7} {:>9} {:>8.4} {:>8.2} {:>8.2} {:>8.2} {:>8.0} {:>9} {:>8} {:>9} {:>8} {:>8}",
            r.target,
            r.viewers,
            r.connected,
            r.loss_ratio * 100.0,
            r.latency_ms.p50,
            r.latency_ms.p95,
            r.latency_ms.p99,
            r.join_ms.p50,
            cell(r.forwarded_pps, 0),
            cell(r.server_cpu_us_per_packet, 2),
            cell(r.server_cpu_percent, 1),
            cell(r.server_rss_kib_per_viewer, 1),
            cell(r.generator_cpu_percent, 1),
        );
    }
    out
}

/// The most viewers in a clean run (all connected, loss under [`CLEAN_LOSS`]).
pub fn max_clean_viewers(reports: &[Report]) -> Option<usize> {
    reports
        .iter()
        .filter(|r| r.connected == r.viewers && r.loss_ratio < CLEAN_LOSS)
        .map(|r| r.viewers)
        .max()
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (count > 0).then(|| sum / count as f64)
}

/// Both tables, then Janus over Directo for CPU per packet and latency (averaged over the
/// runs both did at the same viewer count) and the most viewers each served cleanly.
pub fn compare(directo: &[Report], janus: &[Report]) -> String {
    let mut out = table(&[directo, janus].concat());
    let pairs: Vec<(&Report, &Report)> = directo
        .iter()
        .filter_map(|d| {
            janus
                .iter()
                .find(|j| j.viewers == d.viewers)
                .map(|j| (d, j))
        })
        .collect();
    let ratio = |f: &dyn Fn(&Report) -> Option<f64>| {
        mean(pairs.iter().filter_map(|(d, j)| {
            let (d, j) = (f(d)?, f(j)?);
            (d > 0.0).then(|| j / d)
        }))
    };
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Janus / Directo, same viewer counts ({} pairs):",
        pairs.len()
    );
    let _ = writeln!(
        out,
        "  server CPU per forwarded packet  {}x",
        cell(ratio(&|r| r.server_cpu_us_per_packet), 2)
    );
    let _ = writeln!(
        out,
        "  server memory per viewer         {}x",
        cell(ratio(&|r| r.server_rss_kib_per_viewer), 2)
    );
    let _ = writeln!(
        out,
        "  latency p50 / p99                {}x / {}x",
        cell(ratio(&|r| Some(r.latency_ms.p50)), 2),
        cell(ratio(&|r| Some(r.latency_ms.p99)), 2)
    );
    let clean = |reports: &[Report]| {
        max_clean_viewers(reports).map_or_else(|| "none".to_owned(), |n| n.to_string())
    };
    let _ = writeln!(
        out,
        "  most viewers at < {}% loss       Directo {} / Janus {}",
        CLEAN_LOSS * 100.0,
        clean(directo),
        clean(janus)
    );
    out
}
