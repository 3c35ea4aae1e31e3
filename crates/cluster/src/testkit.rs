//! Test support (feature `testkit`): a throw-away `redis-server` on a free loopback port,
//! a `MONITOR` tap to see which commands reached it, and a wait-until helper.
//!
//! The server runs with `--bind 127.0.0.1 --save '' --appendonly no` in a fresh directory,
//! so nothing persists and a restart comes back empty. It is killed on drop. When
//! `redis-server` is not installed, [`RedisServer::start`] prints
//! `skipped: redis-server not installed` and returns `None`; tests return early on that.
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
}

impl RedisServer {
    /// A fresh server, or `None` (with the skip notice printed) if `redis-server` is missing.
    pub fn start() -> Option<Self> {
        Self::launch(None)
    }

    /// A fresh server that requires `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Option<Self> {
        Self::launch(Some(password.to_owned()))
    }

    fn launch(password: Option<String>) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            println!("skipped: redis-server not installed");
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
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            password,
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

    /// `redis://[:password@]127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
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
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
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
        let connected = async {
            redis::Client::open(self.url())?
                .get_multiplexed_async_connection()
                .await
        };
        match connected.await {
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
        let started = async {
            let client = redis::Client::open(self.url())?;
            client.get_async_monitor().await
        };
        let monitor = match started.await {
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
            url: self.url(),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every command a server executed since [`RedisServer::monitor`], as `MONITOR` prints them.
#[derive(Debug)]
pub struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
    url: String,
}

impl Monitor {
    /// The commands seen so far, complete up to this call: a marker command is sent and
    /// waited for, so nothing executed before it is still in flight.
    pub async fn commands(&self) -> Vec<String> {
        let marker = format!("testkit-marker-{}", uuid::Uuid::new_v4().simple());
        let sent = async {
            let mut connection = redis::Client::open(self.url.as_str())?
                .get_multiplexed_async_connection()
                .await?;
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
