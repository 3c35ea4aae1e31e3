//! What a server process costs, read from `/proc/<pid>`: CPU time (user + system, from
//! `stat`) and resident memory (`VmRSS`, from `status`). Linux only; elsewhere, and for a pid
//! that is gone, a sample is `None` and the report leaves the figures out.

use std::fs;
use std::time::Duration;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

impl ProcSample {
    /// Reads the counters of process `pid`.
    pub fn read(pid: u32) -> Option<ProcSample> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some(ProcSample {
            cpu: cpu_time(&stat, clock_ticks_per_second())?,
            rss_kib: rss_kib(&status)?,
        })
    }
}

/// CPU time (user + system) of the threads of process `pid` named `name` (as the kernel
/// keeps it: at most 15 bytes), summed; `None` if the process is gone or has no such thread.
pub fn thread_cpu(pid: u32, name: &str) -> Option<Duration> {
    let mut total = None;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let path = task.path();
        let comm = fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = fs::read_to_string(path.join("stat")).ok()?;
        let cpu = cpu_time(&stat, clock_ticks_per_second())?;
        total = Some(total.unwrap_or(Duration::ZERO) + cpu);
    }
    total
}

/// utime + stime from a `/proc/<pid>/stat` line.
fn cpu_time(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    // The command name (field 2) may hold spaces and parentheses: fields after it are counted
    // from its closing parenthesis. utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second as f64,
    ))
}

/// VmRSS in KiB from `/proc/<pid>/status`.
fn rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// USER_HZ: 100 on every Linux architecture Directo runs on (the kernel ABI fixes it there).
fn clock_ticks_per_second() -> u64 {
    100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_spaced_name_and_status() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_time(stat, 100), Some(Duration::from_secs(3)));
        let status = "Name:\tdirecto\nVmPeak:\t  2000 kB\nVmRSS:\t   12345 kB\nThreads: 4\n";
        assert_eq!(rss_kib(status), Some(12_345));
    }

    #[test]
    fn reads_this_process() {
        let sample = ProcSample::read(std::process::id());
        assert!(sample.is_some_and(|s| s.rss_kib > 0));
        let name = "proc-stats-test";
        let (started, stop) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _ = started.0.send(());
                let _ = stop.1.recv();
            })
            .unwrap();
        started.1.recv().unwrap();
        assert!(thread_cpu(std::process::id(), name).is_some());
        assert!(thread_cpu(std::process::id(), "no-such-thread").is_none());
        stop.0.send(()).unwrap();
        thread.join().unwrap();
    }
}
