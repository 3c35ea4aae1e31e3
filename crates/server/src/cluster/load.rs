//! The load this node reports with every heartbeat: viewers and outgoing bitrate from the
//! engine's stream snapshot, CPU from `/proc/self/stat`, its viewer limit and whether it is
//! draining. Other nodes route viewers by it.

use std::time::Instant;

use directo_cluster::NodeLoad;
use signaling_proto::StreamInfo;

/// The load as the snapshot of streams shows it. Outgoing bitrate is estimated as each
/// stream's incoming bitrate times its viewers (a viewer on a smaller simulcast layer costs
/// less, so this is an upper bound).
pub fn node_load(
    streams: &[StreamInfo],
    cpu_percent: f32,
    max_viewers: Option<u64>,
    draining: bool,
) -> NodeLoad {
    let viewers: u64 = streams.iter().map(|s| s.viewers as u64).sum();
    let bitrate_bps = streams
        .iter()
        .map(|s| s.bitrate_bps.saturating_mul(s.viewers as u64))
        .fold(0u64, u64::saturating_add);
    NodeLoad {
        viewers,
        // The relays this node pulls are not in the snapshot: the caller sets them.
        relays: 0,
        bitrate_bps,
        cpu_percent,
        max_viewers: max_viewers.unwrap_or(0),
        draining,
    }
}

/// Viewers on this node now, all streams together.
pub fn local_viewers(streams: &[StreamInfo]) -> u64 {
    streams.iter().map(|s| s.viewers as u64).sum()
}

/// This process's CPU use between two samples, from `/proc/self/stat` (Linux; elsewhere it
/// reads 0).
#[derive(Debug)]
pub struct CpuMeter {
    ticks_per_second: f64,
    last: Option<(u64, Instant)>,
}

impl Default for CpuMeter {
    fn default() -> Self {
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Self {
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            last: None,
        }
    }
}

impl CpuMeter {
    /// CPU use since the previous sample, 100 per fully used core (0 on the first).
    pub fn sample(&mut self, now: Instant) -> f32 {
        let Some(ticks) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| cpu_ticks(&stat))
        else {
            return 0.0;
        };
        let percent = match self.last {
            Some((before, at)) if now > at => {
                let used = ticks.saturating_sub(before) as f64 / self.ticks_per_second;
                (100.0 * used / now.duration_since(at).as_secs_f64()) as f32
            }
            _ => 0.0,
        };
        self.last = Some((ticks, now));
        percent
    }
}

/// User plus system time, in clock ticks, from a `/proc/<pid>/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Fields 3.. follow the name; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(viewers: usize, bitrate_bps: u64) -> StreamInfo {
        StreamInfo {
            name: "s".into(),
            live: true,
            tracks: Vec::new(),
            viewers,
            bitrate_bps,
            recording: false,
        }
    }

    #[test]
    fn viewers_and_outgoing_bitrate_add_up_over_streams() {
        let load = node_load(
            &[stream(10, 1_000_000), stream(2, 500_000)],
            12.5,
            Some(100),
            false,
        );
        assert_eq!(load.viewers, 12);
        assert_eq!(load.bitrate_bps, 11_000_000);
        assert_eq!(load.max_viewers, 100);
        assert!(load.has_room());
        assert!(!node_load(&[], 0.0, None, true).has_room());
    }

    #[test]
    fn cpu_ticks_skip_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (directo (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1000 0 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn the_meter_reads_this_process() {
        let mut meter = CpuMeter::default();
        let t0 = Instant::now();
        assert_eq!(meter.sample(t0), 0.0);
        let mut spin = 0u64;
        while t0.elapsed() < std::time::Duration::from_millis(50) {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(meter.sample(Instant::now()) >= 0.0);
    }
}
