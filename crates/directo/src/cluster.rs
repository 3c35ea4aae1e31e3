//! The cluster flags turned into the server's `ClusterOptions`: the checks a node makes
//! before it goes near Redis (an explicit shared secret, a node id, a URL other nodes can
//! reach) and the defaults derived from the other flags.

use anyhow::Context;
use directo_cluster::{ClusterConfig, is_valid_node_id};
use directo_server::ClusterOptions;

use crate::cli::ServeArgs;

/// The options to join the cluster with, or `None` without `--cluster`. `secret` is the
/// explicit `--secret`: a cluster refuses the generated one, which differs on every node.
pub fn options(args: &ServeArgs, secret: Option<&str>) -> anyhow::Result<Option<ClusterOptions>> {
    let Some(url) = args.cluster.as_deref().filter(|url| !url.is_empty()) else {
        return Ok(None);
    };
    let secret = secret.filter(|s| !s.is_empty()).context(
        "--cluster needs --secret (or DIRECTO_SECRET), the same on every node: nodes check \
         each other's tokens and messages with it",
    )?;
    let node_id = match &args.node_id {
        Some(id) => {
            anyhow::ensure!(
                is_valid_node_id(id),
                "--node-id {id:?} is not valid: use 1 to 64 of A-Z a-z 0-9 . _ : -"
            );
            id.clone()
        }
        None => default_node_id(&host_name(), args.http.port())?,
    };
    let node_url = match &args.node_url {
        Some(url) => url.clone(),
        None => default_node_url(args)?,
    };
    let config = ClusterConfig::new(url, node_id, node_url, secret.as_bytes().to_vec());
    // Checked here so a bad flag is reported before anything starts; the error never shows
    // the Redis password.
    config
        .validate()
        .map_err(|error| anyhow::anyhow!("--cluster: {error}"))?;
    Ok(Some(ClusterOptions {
        config,
        max_viewers_per_node: args.max_viewers_per_node,
        max_relays_per_node: args.max_relays_per_node,
    }))
}

/// This machine's host name (Linux), or `node` when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// `{host}:{port}`, the host name cut to what a node id allows.
fn default_node_id(host: &str, port: u16) -> anyhow::Result<String> {
    anyhow::ensure!(
        port != 0,
        "--http uses port 0 (any free port): give this node an explicit --node-id and --node-url"
    );
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(48)
        .collect();
    let host = if host.is_empty() {
        "node".to_owned()
    } else {
        host
    };
    Ok(format!("{host}:{port}"))
}

/// `{scheme}://{address}:{port}`: the first `--public-ip`, else the `--http` address when it
/// is a specific one.
fn default_node_url(args: &ServeArgs) -> anyhow::Result<String> {
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let port = args.http.port();
    anyhow::ensure!(
        port != 0,
        "--http uses port 0 (any free port): give this node an explicit --node-url"
    );
    let ip = match args.public_ip.first() {
        Some(ip) => *ip,
        None if !args.http.ip().is_unspecified() => args.http.ip(),
        None => anyhow::bail!(
            "--http listens on every address: give --node-url (or --public-ip) so other nodes \
             and redirected viewers know where to reach this one"
        ),
    };
    Ok(match ip {
        std::net::IpAddr::V4(ip) => format!("{scheme}://{ip}:{port}"),
        std::net::IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn args(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["directo"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).expect("valid flags").serve
    }

    #[test]
    fn no_cluster_flag_no_cluster() {
        assert!(options(&args(&[]), None).unwrap().is_none());
    }

    #[test]
    fn a_cluster_needs_an_explicit_secret() {
        let flags = args(&["--cluster", "redis://:hunter2@127.0.0.1:6379"]);
        let error = options(&flags, None).unwrap_err().to_string();
        assert!(error.contains("--secret"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn defaults_come_from_the_http_address_and_the_host() {
        let flags = args(&[
            "--cluster",
            "redis://127.0.0.1:6379",
            "--http",
            "127.0.0.1:8081",
        ]);
        let local = options(&flags, Some("s")).unwrap().expect("a cluster");
        assert_eq!(local.config.node_url, "http://127.0.0.1:8081");
        assert!(local.config.node_id.ends_with(":8081"));
        assert_eq!(local.max_relays_per_node, 4);
        assert_eq!(local.max_viewers_per_node, None);

        let flags = args(&[
            "--cluster",
            "redis://127.0.0.1:6379",
            "--http",
            "0.0.0.0:8443",
            "--public-ip",
            "2001:db8::1",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]);
        let public = options(&flags, Some("s")).unwrap().expect("a cluster");
        assert_eq!(public.config.node_url, "https://[2001:db8::1]:8443");

        let flags = args(&[
            "--cluster",
            "redis://127.0.0.1:6379",
            "--http",
            "0.0.0.0:8080",
        ]);
        assert!(options(&flags, Some("s")).is_err());
    }

    #[test]
    fn bad_values_are_named_without_the_password() {
        let bad_id = args(&["--cluster", "redis://:hunter2@h:6379", "--node-id", "a b"]);
        let error = options(&bad_id, Some("s")).unwrap_err().to_string();
        assert!(error.contains("--node-id"), "{error}");
        let bad_url = args(&["--cluster", "http://:hunter2@h:6379", "--node-id", "a"]);
        let error = options(&bad_url, Some("s")).unwrap_err().to_string();
        assert!(
            error.contains("--cluster") && !error.contains("hunter2"),
            "{error}"
        );
    }

    #[test]
    fn node_ids_from_odd_host_names() {
        assert_eq!(default_node_id("web 1(x)", 80).unwrap(), "web1x:80");
        assert_eq!(default_node_id("", 80).unwrap(), "node:80");
        assert!(default_node_id("h", 0).is_err());
    }

    #[test]
    fn cluster_only_flags_need_the_cluster() {
        assert!(Cli::try_parse_from(["directo", "--node-id", "a"]).is_err());
    }
}
