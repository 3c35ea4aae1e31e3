//! Simulcast over links narrowed in the kernel: the variant of `simulcast_links.rs` in which no
//! client simulates its link. The test moves its own thread into a new network namespace
//! (`unshare(CLONE_NEWNET)`; the threads and processes it starts afterwards, the `directo` child
//! among them, are in it too, which the test checks), brings `lo` up and shapes it with `tc`: an
//! HTB root whose default class is fast, and one 400 kbit/s class per constrained viewer with a
//! short tail-drop FIFO (7,500 bytes, about 150 ms of that rate, like a small router buffer),
//! chosen by a u32 filter on the viewer's address (127.0.0.2, .3 and .4: all of 127/8 is local
//! on `lo`). So exactly the server's packets to the constrained viewers wait and overflow in a
//! kernel queue, and those viewers' transport-wide feedback shows the queueing delay as well as
//! the loss, as over a real narrow link (the token bucket of `simulcast_links.rs` drops at once
//! and never delays). The same publisher, viewers and assertions otherwise, and the test checks
//! from the classes' counters that the constrained viewers' media did go through them.
//!
//! Rates only: no random loss and no added delay. The kernel this was written on has HTB, u32
//! filters, the FIFOs and network namespaces but neither netem nor tbf nor tc actions (gact,
//! police), so tc cannot inject loss there; the only loss is what overflows a queue.
//!
//! It needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN in it) and iproute2; without
//! them it prints `skipped: …` and returns without testing anything. `./test.sh` installs
//! iproute2 and, when it runs as root, sets `DIRECTO_REQUIRE_ROOT_TESTS=1`, which makes that
//! skip a failure.
//!
//! Users would notice: the constrained viewers end up on the smallest layer (their link carries
//! it), the others keep the largest one and lose nothing, and the publisher is not flooded with
//! keyframe requests by the weak viewers' trouble.

mod simulcast_common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, ensure};
use directo_benches::load::run;
use directo_testkit::skip::skip_root_only;
use directo_tests::{LOSS_BUDGET, ServerOptions, TestServer};
use simulcast_common::{CONSTRAINED, assert_layers, config, summarize};

/// The first constrained viewer's address; the others take the next ones.
const FIRST_CONSTRAINED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The narrow links' rate.
const LINK_KBPS: u32 = 400;
/// The narrow links' queue, bytes: about 150 ms at 400 kbit/s.
const LINK_QUEUE_BYTES: u32 = 7_500;

#[test]
fn viewers_behind_kernel_shaped_links_get_the_small_layer_and_the_others_the_top_one()
-> anyhow::Result<()> {
    let started = Instant::now();
    let namespace = match enter_shaped_namespace() {
        Ok(namespace) => namespace,
        Err(reason) => {
            skip_root_only(
                "simulcast_netns",
                &format!(
                    "{reason}; it needs a network namespace and tc with HTB and u32 on its loopback"
                ),
            );
            return Ok(());
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(watch_over_shaped_links(namespace))?;
    println!("took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn watch_over_shaped_links(namespace: PathBuf) -> anyhow::Result<()> {
    // What the namespace setup relies on: threads started from this one after `unshare` and
    // child processes share its network namespace.
    let worker_namespace = tokio::spawn(async { current_namespace() }).await??;
    ensure!(
        worker_namespace == namespace,
        "a runtime worker is in {worker_namespace:?}, not in the test's {namespace:?}"
    );
    let server = TestServer::start_with(ServerOptions {
        env: vec![("DIRECTO_MAX_SESSIONS_PER_IP".into(), "1000".into())],
        ..ServerOptions::default()
    })
    .await?;
    let server_namespace = std::fs::read_link(format!("/proc/{}/ns/net", server.pid()))?;
    ensure!(
        server_namespace == namespace,
        "directo runs in {server_namespace:?}, not in the test's {namespace:?}"
    );
    let config = config(
        &server,
        "simulcast-netns",
        LINK_KBPS,
        Some(IpAddr::V4(FIRST_CONSTRAINED_IP)),
    );
    let report = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let report = runtime.block_on(run(config))?;
        anyhow::Ok((report, current_namespace()?))
    })
    .await?;
    let (report, load_namespace) = report?;
    ensure!(
        load_namespace == namespace,
        "the load generator ran in {load_namespace:?}, not in the test's {namespace:?}"
    );
    let classes = class_stats()?;
    let summary = summarize(&report);
    let mut narrow = Vec::new();
    for class in 2..2 + CONSTRAINED as u32 {
        let stats = classes.get(&class).copied().unwrap_or_default();
        println!(
            "tc class 1:{class:x} ({LINK_KBPS} kbit/s): {} packets sent, {} dropped",
            stats.packets, stats.dropped
        );
        narrow.push(stats);
    }
    let fast = classes.get(&1).copied().unwrap_or_default();
    println!(
        "tc class 1:1 (everything else): {} packets sent, {} dropped",
        fast.packets, fast.dropped
    );

    // The shaping did apply: every constrained viewer's media went through its own class.
    assert!(
        narrow.iter().all(|class| class.packets > 0),
        "a narrow class carried nothing ({narrow:?}): {summary}"
    );
    assert!(
        (fast.dropped as f64) < LOSS_BUDGET * fast.packets as f64,
        "the fast class dropped more than a busy machine's queue would: {summary}"
    );
    assert_layers(&report, &summary, true);
    Ok(())
}

/// Moves this thread into a new network namespace with `lo` up and shaped; returns the
/// namespace (its `/proc` link), or why it could not.
fn enter_shaped_namespace() -> Result<PathBuf, String> {
    let host = current_namespace().map_err(|e| e.to_string())?;
    // SAFETY: `unshare` takes only flags; CLONE_NEWNET moves the calling thread alone (not the
    // test harness's other threads) into a new, empty network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "cannot create a network namespace (root or CAP_SYS_ADMIN needed): {}",
            std::io::Error::last_os_error()
        ));
    }
    let namespace = current_namespace().map_err(|e| e.to_string())?;
    if namespace == host {
        return Err(format!(
            "unshare(CLONE_NEWNET) left this thread in {host:?}"
        ));
    }
    command("ip", &["link", "set", "lo", "up"])?;
    // Unclassified traffic (the publisher, HTTP, the other viewers, everyone's RTCP) goes to
    // a class far faster than anything here.
    command(
        "tc",
        &[
            "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "1",
        ],
    )?;
    command(
        "tc",
        &[
            "class", "add", "dev", "lo", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit",
            "burst", "1m", "cburst", "1m", "quantum", "60000",
        ],
    )?;
    let rate = format!("{LINK_KBPS}kbit");
    let queue = LINK_QUEUE_BYTES.to_string();
    for n in 0..CONSTRAINED as u8 {
        // Class 1:2 for 127.0.0.2, 1:3 for 127.0.0.3, ...: one narrow link per viewer, its
        // bucket one packet deep, its queue short and dropping at the tail.
        let [a, b, c, d] = FIRST_CONSTRAINED_IP.octets();
        let address = Ipv4Addr::new(a, b, c, d + n);
        let class = format!("1:{:x}", n + 2);
        let handle = format!("{:x}:", n + 2);
        command(
            "tc",
            &[
                "class", "add", "dev", "lo", "parent", "1:", "classid", &class, "htb", "rate",
                &rate, "ceil", &rate, "burst", "1600", "cburst", "1600",
            ],
        )?;
        command(
            "tc",
            &[
                "qdisc", "add", "dev", "lo", "parent", &class, "handle", &handle, "bfifo", "limit",
                &queue,
            ],
        )?;
        command(
            "tc",
            &[
                "filter",
                "add",
                "dev",
                "lo",
                "parent",
                "1:",
                "protocol",
                "ip",
                "prio",
                "1",
                "u32",
                "match",
                "ip",
                "dst",
                &format!("{address}/32"),
                "flowid",
                &class,
            ],
        )?;
    }
    Ok(namespace)
}

/// The calling thread's network namespace (`net:[inode]`).
fn current_namespace() -> std::io::Result<PathBuf> {
    std::fs::read_link("/proc/thread-self/ns/net")
}

/// Runs `program args` (from `PATH`, else `/usr/sbin` or `/sbin`, where Debian puts
/// iproute2 and which a non-login `PATH` may lack) in this thread's namespace; its output, or
/// why it failed.
fn command(program: &str, args: &[&str]) -> Result<String, String> {
    let mut output = Err(std::io::ErrorKind::NotFound.into());
    for path in [
        program,
        &format!("/usr/sbin/{program}"),
        &format!("/sbin/{program}"),
    ] {
        output = Command::new(path).args(args).output();
        if !matches!(&output, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            break;
        }
    }
    let output = output.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("`{program}` is not installed (Debian: apt-get install iproute2)")
        } else {
            format!("cannot run `{program}`: {e}")
        }
    })?;
    if !output.status.success() {
        return Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What one HTB class passed and dropped.
#[derive(Debug, Default, Clone, Copy)]
struct ClassStats {
    packets: u64,
    dropped: u64,
}

/// The counters of every HTB class on `lo`, by minor class id (1 for `1:1`).
fn class_stats() -> anyhow::Result<HashMap<u32, ClassStats>> {
    let text = command("tc", &["-s", "class", "show", "dev", "lo"]).map_err(anyhow::Error::msg)?;
    let mut classes = HashMap::new();
    let mut current = None;
    // class htb 1:2 root leaf 2: prio 0 rate 400Kbit ...
    //  Sent 109296 bytes 88 pkt (dropped 211, overlimits 87 requeues 0)
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["class", "htb", id, ..] => {
                let minor = id.rsplit(':').next().unwrap_or_default();
                current = Some(
                    u32::from_str_radix(minor, 16)
                        .with_context(|| format!("class id in {line:?}"))?,
                );
            }
            ["Sent", _, "bytes", packets, "pkt", "(dropped", dropped, ..] => {
                if let Some(class) = current.take() {
                    let number = |word: &str| {
                        word.trim_end_matches(',')
                            .parse::<u64>()
                            .with_context(|| format!("a count in {line:?}"))
                    };
                    classes.insert(
                        class,
                        ClassStats {
                            packets: number(packets)?,
                            dropped: number(dropped)?,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    Ok(classes)
}
