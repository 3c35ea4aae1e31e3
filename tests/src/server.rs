//! `TestServer`: one `directo serve` process per test, on free local ports, killed on drop.
//!
//! The binary is `target/<profile>/directo`, found next to the test executable (which runs
//! from `target/<profile>/deps/`); `DIRECTO_BIN` overrides it. Cargo does not build another
//! package's binary for our tests, so `cargo build -p directo` must run first. The server's
//! output goes to a log file, printed when a test fails while the server is up. A server can
//! be killed and started again on the same data directory, as after a crash.

use crate::chat::ChatMember;
use crate::error::{ClientError, Result};
use crate::http::{http_client, status_error};
use crate::publisher::{Publisher, PublisherConfig};
use crate::viewer::{Viewer, ViewerConfig};
use crate::{CHAT_TIMEOUT, CONNECT_TIMEOUT};
use directo_testkit::scratch::scratch_dir;
use reqwest::{Client, StatusCode, Url};
use signaling_proto::{ExportedChatMessage, StreamInfo};
use std::fs::OpenOptions;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    /// The `--moderator-key`, if moderators may use one.
    pub moderator_key: Option<String>,
    /// More command-line arguments, after the standard ones.
    pub extra_args: Vec<String>,
    /// Environment variables for the process (`RUST_LOG` here replaces the default filter).
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            publish_key: DEFAULT_PUBLISH_KEY.to_owned(),
            moderator_key: None,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A running `directo serve`.
pub struct TestServer {
    child: Child,
    base: Url,
    media_port: u16,
    options: ServerOptions,
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
        let root = scratch_dir("test").map_err(io_error("create a scratch dir"))?;
        std::fs::create_dir_all(root.join("data")).map_err(io_error("create the data dir"))?;
        let http = http_client();
        let process = spawn_retrying(&http, &options, &root, None).await?;
        Ok(TestServer {
            child: process.child,
            base: process.base,
            media_port: process.media_port,
            options,
            root,
            http,
        })
    }

    /// Kills the server (SIGKILL: no clean shutdown, as in a crash) and starts it again with
    /// the same options and data directory, on the same ports when they are still free.
    pub async fn restart(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let ports = self.base.port().map(|http| (http, self.media_port));
        let process = spawn_retrying(&self.http, &self.options, &self.root, ports).await?;
        self.child = process.child;
        self.base = process.base;
        self.media_port = process.media_port;
        Ok(())
    }

    /// Kills the server with SIGKILL (a crash: nothing is finished or flushed) and waits for
    /// it to exit. The data directory stays until the `TestServer` is dropped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM (a clean shutdown: recordings are finished) and waits up
    /// to `timeout` for it to exit; returns whether it exited successfully. The data directory
    /// stays until the `TestServer` is dropped.
    pub async fn terminate(&mut self, timeout: Duration) -> Result<bool> {
        self.signal_term().await?;
        self.wait_exit(timeout).await
    }

    /// Sends SIGTERM and returns at once (a node of a cluster then drains).
    pub async fn signal_term(&self) -> Result<()> {
        // std has no SIGTERM; `kill` from procps/coreutils sends it, to this one process id.
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .await
            .map_err(io_error("run `kill -TERM`"))?;
        if !status.success() {
            return Err(ClientError::Server(format!(
                "`kill -TERM` exited with {status}"
            )));
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; returns whether it exited successfully.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status.success()),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(None) => {
                    return Err(ClientError::timeout("the server to exit", timeout));
                }
                Err(e) => return Err(ClientError::Server(format!("cannot wait for it: {e}"))),
            }
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
        &self.options.publish_key
    }

    /// The moderator key the server accepts, if it was given one.
    pub fn moderator_key(&self) -> Option<&str> {
        self.options.moderator_key.as_deref()
    }

    /// The server's `--data-dir` (recordings, chat logs, the token secret).
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
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
            Some(&self.options.publish_key),
            config,
        )
        .await
    }

    /// Watches `stream` over WHEP.
    pub async fn view(&self, stream: &str, config: ViewerConfig) -> Result<Viewer> {
        Viewer::connect_whep(&self.http, &self.whep_url(stream), config).await
    }

    /// Watches `stream` over WHEP with `config` (which should have `chat: true`) and returns
    /// once the viewer is connected and in the chat (its `chat.history` arrived).
    pub async fn view_chat(&self, stream: &str, config: ViewerConfig) -> Result<Viewer> {
        let viewer = self.view(stream, config).await?;
        viewer.wait_connected(CONNECT_TIMEOUT).await?;
        viewer.chat()?.wait_history(CHAT_TIMEOUT).await?;
        Ok(viewer)
    }

    /// Joins `stream`'s chat over `/ws` (no WebRTC) as `name`, with an optional moderator key
    /// or token.
    pub async fn chat_ws(
        &self,
        stream: &str,
        name: Option<&str>,
        key: Option<&str>,
    ) -> Result<ChatMember> {
        ChatMember::join_ws(&self.ws_url(), stream, name, key).await
    }

    /// `GET /api/streams/{stream}/chat`: the stream's chat log, deleted messages included.
    pub async fn chat_export(&self, stream: &str) -> Result<Vec<ExportedChatMessage>> {
        let response = self
            .http
            .get(self.url(&format!("api/streams/{stream}/chat")))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(status_error(response).await);
        }
        parse_json(response).await
    }

    /// A signed access token from `directo token --role <role> --stream <stream>`, made with
    /// this server's secret (read from its data directory).
    pub async fn token(&self, role: &str, stream: &str, name: Option<&str>) -> Result<String> {
        let binary = binary_path()?;
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("token")
            .args(["--role", role, "--stream", stream, "--data-dir"])
            .arg(self.data_dir())
            .stdin(Stdio::null());
        if let Some(name) = name {
            command.args(["--name", name]);
        }
        let output = command
            .output()
            .await
            .map_err(io_error("run `directo token`"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let token = stdout.trim();
        if !output.status.success() || token.is_empty() || token.contains(char::is_whitespace) {
            return Err(ClientError::Server(format!(
                "`directo token` exited with {} and printed {stdout:?}; stderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(token.to_owned())
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

    /// The value of one series on `/metrics` — a name, with its labels as the server writes
    /// them (`directo_rate_limited_total{limit="new_sessions"}`) — if the server exports it.
    pub async fn metric(&self, series: &str) -> Result<Option<f64>> {
        let text = self
            .http
            .get(self.url("metrics"))
            .send()
            .await?
            .text()
            .await?;
        Ok(text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.trim().parse().ok())?
        }))
    }

    /// Everything the server logged so far (every run, when it was restarted).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    /// The server's process id (for signals a test sends itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        log_tail(&self.root)
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
        } else if std::env::var_os("DIRECTO_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A started server process that answered `/healthz`.
struct Process {
    child: Child,
    base: Url,
    media_port: u16,
}

/// Starts the server on `ports` if given, else on free ports; a port found free can be taken
/// before the server binds it, so a failed start is retried on other ports.
async fn spawn_retrying(
    http: &Client,
    options: &ServerOptions,
    root: &Path,
    ports: Option<(u16, u16)>,
) -> Result<Process> {
    let binary = binary_path()?;
    let mut last_error = None;
    for attempt in 0..3 {
        let (http_port, media_port) = match ports.filter(|_| attempt == 0) {
            Some(ports) => ports,
            None => (free_tcp_port()?, free_udp_port()?),
        };
        let mut child = spawn(&binary, options, root, http_port, media_port)?;
        let base = Url::parse(&format!("http://127.0.0.1:{http_port}/"))
            .map_err(|e| ClientError::Server(e.to_string()))?;
        match wait_healthy(http, &mut child, &base, root).await {
            Ok(()) => {
                return Ok(Process {
                    child,
                    base,
                    media_port,
                });
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| ClientError::Server("could not start".into())))
}

fn spawn(
    binary: &Path,
    options: &ServerOptions,
    root: &Path,
    http_port: u16,
    media_port: u16,
) -> Result<Child> {
    // Appended, so the log of a restarted server follows the log of its first run.
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("server.log"))
        .map_err(io_error("open the log"))?;
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
        .arg(root.join("data"))
        .arg("--publish-key")
        .arg(&options.publish_key)
        .args(
            options
                .moderator_key
                .iter()
                .flat_map(|key| ["--moderator-key", key.as_str()]),
        )
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
    command.envs(options.env.iter().map(|(k, v)| (k, v)));
    command
        .spawn()
        .map_err(|e| ClientError::Server(format!("cannot run {}: {e}", binary.display())))
}

async fn wait_healthy(http: &Client, child: &mut Child, base: &Url, root: &Path) -> Result<()> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    let url = base.join("healthz").unwrap_or_else(|_| base.clone());
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ClientError::Server(format!(
                "directo exited with {status} before answering /healthz; its log:\n{}",
                log_tail(root)
            )));
        }
        if let Ok(response) = http.get(url.clone()).send().await
            && response.status() == StatusCode::OK
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::Server(format!(
                "/healthz did not answer 200 within {STARTUP_TIMEOUT:?}; log:\n{}",
                log_tail(root)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last lines a server under `root` logged.
fn log_tail(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
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

fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> ClientError {
    move |e| ClientError::Server(format!("cannot {what}: {e}"))
}
