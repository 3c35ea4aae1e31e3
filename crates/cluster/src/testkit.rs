//! Test support (feature `testkit`): a throw-away `redis-server` on a free loopback port
//! (plain or TLS), a `MONITOR` tap to see which commands reached it, and a wait-until helper.
//!
//! The server runs with `--bind 127.0.0.1 --save '' --appendonly no` in a fresh directory,
//! so nothing persists and a restart comes back empty. It is killed on drop. When
//! `redis-server` is not installed, [`RedisServer::start`] prints
//! `skipped: redis-server not installed` and returns `None`; tests return early on that.
//! The TLS variant makes a throw-away CA and server certificate with the `openssl` command
//! (test time only; the crate itself uses rustls) and skips likewise without it.
//! Test support panics with a message where a test would fail anyway.

use std::future::Future;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::config::{ClusterConfig, Timing};

/// How long the helpers wait for something that should happen (generous: CI machines are
/// shared and slow; a passing test never waits this long).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The secret [`config`] gives every node.
pub const TEST_SECRET: &[u8] = b"testkit shared secret";

/// A `redis-server` child process with its own empty directory.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    password: Option<String>,
    tls: Option<Tls>,
}

/// The certificates of a TLS server, kept outside its data directory (which a restart
/// empties).
#[derive(Debug)]
struct Tls {
    dir: PathBuf,
    ca_pem: Vec<u8>,
}

impl RedisServer {
    /// A fresh server, or `None` (with the skip notice printed) if `redis-server` is missing.
    pub fn start() -> Option<Self> {
        Self::launch(None, false)
    }

    /// A fresh server that requires `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Option<Self> {
        Self::launch(Some(password.to_owned()), false)
    }

    /// A fresh server that speaks only TLS (`rediss://`), with a certificate for 127.0.0.1
    /// from a throw-away CA ([`RedisServer::ca_pem`]); `None` without `redis-server` or
    /// `openssl`.
    pub fn start_tls() -> Option<Self> {
        Self::launch(None, true)
    }

    fn launch(password: Option<String>, tls: bool) -> Option<Self> {
        if !installed("redis-server") {
            println!("skipped: redis-server not installed");
            return None;
        }
        if tls && !installed("openssl") {
            println!("skipped: openssl not installed (needed to make test certificates)");
            return None;
        }
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "directo-cluster-redis-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(error) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {error}", dir.display());
        }
        let tls = tls.then(|| {
            let tls_dir = dir.with_extension("tls");
            match make_certificates(&tls_dir) {
                Ok(ca_pem) => Tls {
                    dir: tls_dir,
                    ca_pem,
                },
                Err(error) => panic!("cannot make test certificates: {error}"),
            }
        });
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            password,
            tls,
        };
        // A port found free can be taken before redis-server binds it: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn().is_ok() {
                return Some(server);
            }
        }
        panic!("redis-server did not start on a free port in 5 tries");
    }

    /// `redis[s]://[:password@]127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.password {
            Some(password) => format!("{scheme}://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("{scheme}://127.0.0.1:{}/0", self.port),
        }
    }

    /// The CA (PEM) that signed a TLS server's certificate.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.tls.as_ref().map(|tls| tls.ca_pem.as_slice())
    }

    /// A client for a test's own connections (trusting the test CA for TLS).
    pub fn client(&self) -> redis::Client {
        let client = match self.ca_pem() {
            Some(ca_pem) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca_pem.to_vec()),
                },
            ),
            None => redis::Client::open(self.url()),
        };
        match client {
            Ok(client) => client,
            Err(error) => panic!("no client for the test redis-server: {error}"),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no goodbye to clients, as in a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, as with a
    /// hung Redis or a black-holed network.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let Some(child) = &self.child else {
            panic!("redis-server is not running");
        };
        let sent = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status();
        if !sent.is_ok_and(|status| status.success()) {
            panic!("kill {signal} redis-server failed");
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(error) =
            std::fs::remove_dir_all(&self.dir).and_then(|()| std::fs::create_dir_all(&self.dir))
        {
            panic!("cannot empty {}: {error}", self.dir.display());
        }
        if let Err(error) = self.spawn() {
            panic!(
                "redis-server did not restart on port {}: {error}",
                self.port
            );
        }
    }

    /// Starts the process and waits until it accepts connections.
    fn spawn(&mut self) -> io::Result<()> {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match &self.tls {
            Some(tls) => {
                command
                    .args([
                        "--port",
                        "0",
                        "--tls-port",
                        &port,
                        "--tls-auth-clients",
                        "no",
                    ])
                    .arg("--tls-cert-file")
                    .arg(tls.dir.join("server.crt"))
                    .arg("--tls-key-file")
                    .arg(tls.dir.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(tls.dir.join("ca.crt"));
            }
            None => {
                command.args(["--port", &port]);
            }
        }
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let mut child = command.spawn()?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!("redis-server exited: {status}")));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("redis-server did not listen in time"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A plain connection for a test's own commands.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        match self.client().get_multiplexed_async_connection().await {
            Ok(connection) => connection,
            Err(error) => panic!("cannot connect to the test redis-server: {error}"),
        }
    }

    /// The keys matching `pattern`, sorted.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut connection = self.connection().await;
        let keys: redis::RedisResult<Vec<String>> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut connection)
            .await;
        match keys {
            Ok(mut keys) => {
                keys.sort();
                keys
            }
            Err(error) => panic!("KEYS failed: {error}"),
        }
    }

    /// Starts recording every command the server executes from now on.
    pub async fn monitor(&self) -> Monitor {
        let monitor = match self.client().get_async_monitor().await {
            Ok(monitor) => monitor,
            Err(error) => panic!("MONITOR failed: {error}"),
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let mut stream = monitor.into_on_message::<String>();
        let task = tokio::spawn(async move {
            while let Some(line) = stream.next().await {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                }
            }
        });
        Monitor {
            lines,
            task,
            client: self.client(),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused process still dies of SIGKILL; no resume needed.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(tls) = &self.tls {
            let _ = std::fs::remove_dir_all(&tls.dir);
        }
    }
}

/// Whether `program` runs (it answers `--version`).
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A CA and a server certificate for 127.0.0.1 signed by it (P-256, two days), in `dir`;
/// returns the CA's PEM.
fn make_certificates(dir: &std::path::Path) -> io::Result<Vec<u8>> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let with_ec = |head: &[&'static str], tail: &[&'static str]| -> Vec<&'static str> {
        head.iter().chain(&ec).chain(tail).copied().collect()
    };
    let steps = [
        with_ec(
            &["req", "-x509"],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=directo-testkit-ca",
            ],
        ),
        with_ec(
            &["req"],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let output = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
    }
    std::fs::read(dir.join("ca.crt"))
}

/// Every command a server executed since [`RedisServer::monitor`], as `MONITOR` prints them.
#[derive(Debug)]
pub struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
    client: redis::Client,
}

impl Monitor {
    /// The commands seen so far, complete up to this call: a marker command is sent and
    /// waited for, so nothing executed before it is still in flight.
    pub async fn commands(&self) -> Vec<String> {
        let marker = format!("testkit-marker-{}", uuid::Uuid::new_v4().simple());
        let sent = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            redis::cmd("ECHO")
                .arg(&marker)
                .query_async::<String>(&mut connection)
                .await
        };
        if let Err(error) = sent.await {
            panic!("ECHO to the monitored server failed: {error}");
        }
        wait_for("the MONITOR marker", || async {
            let lines = self.lines.lock().ok()?;
            let at = lines.iter().position(|line| line.contains(&marker))?;
            Some(lines[..at].to_vec())
        })
        .await
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A configuration for `node` against `redis`, with short leases so tests run in seconds:
/// heartbeat 250 ms, lease 1.5 s (six heartbeats: a busy machine may delay a few).
pub fn config(redis: &RedisServer, node: &str) -> ClusterConfig {
    let mut config = ClusterConfig::new(
        redis.url(),
        node,
        format!("https://{node}.test:8443"),
        TEST_SECRET.to_vec(),
    );
    config.tls_ca_pem = redis.ca_pem().map(<[u8]>::to_vec);
    config.timing = Timing {
        heartbeat: Duration::from_millis(250),
        lease: Duration::from_millis(1500),
        op_timeout: Duration::from_secs(1),
        ..Timing::default()
    };
    config
}

/// Polls `check` every 50 ms until it gives a value, and returns it; panics naming `what`
/// after [`PATIENCE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("gave up waiting for {what} after {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()) {
        Ok(address) => address.port(),
        Err(error) => panic!("no free loopback port: {error}"),
    }
}
