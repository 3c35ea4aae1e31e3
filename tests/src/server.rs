//! `TestServer`: one `directo serve` process per test, on free local ports, killed on drop.
//!
//! The binary is `target/<profile>/directo`, found next to the test executable (which runs
//! from `target/<profile>/deps/`); `DIRECTO_BIN` overrides it. Cargo does not build another
//! package's binary for our tests, so `cargo build -p directo` must run first. The server's
//! output goes to a log file, printed when a test fails while the server is up.

use crate::error::{ClientError, Result};
use crate::http::{http_client, status_error};
use crate::publisher::{Publisher, PublisherConfig};
use crate::viewer::{Viewer, ViewerConfig};
use reqwest::{Client, StatusCode, Url};
use signaling_proto::StreamInfo;
use std::fs::File;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The publish key test servers are started with unless a test picks another.
pub const DEFAULT_PUBLISH_KEY: &str = "test-publish-key";

/// How long a starting server has to answer `/healthz`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Server log lines shown when a test fails.
const LOG_TAIL_LINES: usize = 150;

/// How to start a test server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The `--publish-key`.
    pub publish_key: String,
    /// More command-line arguments, after the standard ones.
    pub extra_args: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            publish_key: DEFAULT_PUBLISH_KEY.to_owned(),
            extra_args: Vec::new(),
        }
    }
}

/// A running `directo serve`.
pub struct TestServer {
    child: Child,
    base: Url,
    media_port: u16,
    publish_key: String,
    root: PathBuf,
    http: Client,
}

impl TestServer {
    /// Starts a server with the default options and waits until `/healthz` answers 200.
    pub async fn start() -> Result<Self> {
        TestServer::start_with(ServerOptions::default()).await
    }

    /// Starts a server with `options` and waits until `/healthz` answers 200.
    pub async fn start_with(options: ServerOptions) -> Result<Self> {
        let binary = binary_path()?;
        // A port found free can be taken before the server binds it; try again with others.
        let mut last_error = None;
        for _ in 0..3 {
            match TestServer::spawn(&binary, &options).await {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Server("could not start".into())))
    }

    async fn spawn(binary: &Path, options: &ServerOptions) -> Result<Self> {
        let http_port = free_tcp_port()?;
        let media_port = free_udp_port()?;
        let root = scratch_dir()?;
        let data_dir = root.join("data");
        std::fs::create_dir_all(&data_dir).map_err(io_error("create the data dir"))?;
        let log = File::create(root.join("server.log")).map_err(io_error("create the log"))?;
        let log_err = log.try_clone().map_err(io_error("open the log"))?;

        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--http")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--media-port")
            .arg(media_port.to_string())
            .arg("--public-ip")
            .arg("127.0.0.1")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--publish-key")
            .arg(&options.publish_key)
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env(
                "RUST_LOG",
                "warn,directo=info,directo_media=info,directo_server=info,directo_sfu=info",
            );
        }
        let child = command
            .spawn()
            .map_err(|e| ClientError::Server(format!("cannot run {}: {e}", binary.display())))?;
        let base = Url::parse(&format!("http://127.0.0.1:{http_port}/"))
            .map_err(|e| ClientError::Server(e.to_string()))?;
        let mut server = TestServer {
            child,
            base,
            media_port,
            publish_key: options.publish_key.clone(),
            root,
            http: http_client(),
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        let url = self.url("healthz");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ClientError::Server(format!(
                    "directo exited with {status} before answering /healthz; its log:\n{}",
                    self.log_tail()
                )));
            }
            if let Ok(response) = self.http.get(url.clone()).send().await
                && response.status() == StatusCode::OK
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Server(format!(
                    "/healthz did not answer 200 within {STARTUP_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> Url {
        self.base
            .join(path.trim_start_matches('/'))
            .unwrap_or_else(|_| self.base.clone())
    }

    /// The base URL, `http://127.0.0.1:<port>/`.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The WHIP endpoint of a stream.
    pub fn whip_url(&self, stream: &str) -> String {
        format!("{}whip/{stream}", self.base)
    }

    /// The WHEP endpoint of a stream.
    pub fn whep_url(&self, stream: &str) -> String {
        format!("{}whep/{stream}", self.base)
    }

    /// The `/ws` signaling URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.base.authority())
    }

    /// The UDP media port.
    pub fn media_port(&self) -> u16 {
        self.media_port
    }

    /// The publish key the server accepts.
    pub fn publish_key(&self) -> &str {
        &self.publish_key
    }

    /// An HTTP client for this server.
    pub fn http(&self) -> &Client {
        &self.http
    }

    /// Publishes synthetic media to `stream` over WHIP with the server's key.
    pub async fn publish(&self, stream: &str, config: PublisherConfig) -> Result<Publisher> {
        Publisher::connect_whip(
            &self.http,
            &self.whip_url(stream),
            Some(&self.publish_key),
            config,
        )
        .await
    }

    /// Watches `stream` over WHEP.
    pub async fn view(&self, stream: &str, config: ViewerConfig) -> Result<Viewer> {
        Viewer::connect_whep(&self.http, &self.whep_url(stream), config).await
    }

    /// `GET /api/streams/{stream}`; `None` on 404.
    pub async fn stream(&self, stream: &str) -> Result<Option<StreamInfo>> {
        let response = self
            .http
            .get(self.url(&format!("api/streams/{stream}")))
            .send()
            .await?;
        match response.status() {
            StatusCode::OK => Ok(Some(parse_json(response).await?)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(response).await),
        }
    }

    /// `GET /api/streams`: a JSON array, or an object holding one under `streams`.
    pub async fn streams(&self) -> Result<Vec<StreamInfo>> {
        let response = self.http.get(self.url("api/streams")).send().await?;
        if response.status() != StatusCode::OK {
            return Err(status_error(response).await);
        }
        let value: serde_json::Value = parse_json(response).await?;
        let list = match value {
            serde_json::Value::Object(mut map) => map
                .remove("streams")
                .unwrap_or(serde_json::Value::Object(map)),
            other => other,
        };
        serde_json::from_value(list)
            .map_err(|e| ClientError::Protocol(format!("/api/streams is not a stream list: {e}")))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- directo log (last {LOG_TAIL_LINES} lines, {}) ----\n{}\n---- end of directo log ----",
                self.root.display(),
                self.log_tail()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Where the `directo` binary is: `DIRECTO_BIN`, or next to the test executable's `deps/`.
pub fn binary_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("DIRECTO_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(io_error("find the test executable"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join(format!("directo{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(ClientError::Server(format!(
            "the directo binary is not at {}: run `cargo build -p directo` first \
             (or set DIRECTO_BIN)",
            binary.display()
        )))
    }
}

async fn parse_json<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let text = response.text().await?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError::Protocol(format!("unexpected JSON {text:?}: {e}")))
}

fn free_tcp_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("find a free TCP port"))?;
    Ok(listener
        .local_addr()
        .map_err(io_error("read a port"))?
        .port())
}

fn free_udp_port() -> Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(io_error("find a free UDP port"))?;
    Ok(socket.local_addr().map_err(io_error("read a port"))?.port())
}

/// A fresh directory under the system temp dir for one server's data and log.
fn scratch_dir() -> Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "directo-test-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(io_error("create a scratch dir"))?;
    Ok(dir)
}

fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> ClientError {
    move |e| ClientError::Server(format!("cannot {what}: {e}"))
}
