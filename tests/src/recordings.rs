//! The server's recordings, as tests see them: the `GET /api/recordings` list, waiting for a
//! file to be finished, where it is on disk, the admin switch, and `directo recover`.

use crate::error::{ClientError, Result};
use crate::http::status_error;
use crate::server::{TestServer, binary_path};
use reqwest::StatusCode;
use signaling_proto::RecordingEntry;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// `GET /api/recordings`.
pub async fn list_recordings(server: &TestServer) -> Result<Vec<RecordingEntry>> {
    let response = server
        .http()
        .get(server.url("api/recordings"))
        .send()
        .await?;
    if response.status() != StatusCode::OK {
        return Err(status_error(response).await);
    }
    let text = response.text().await?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError::Protocol(format!("/api/recordings is not a list {text:?}: {e}")))
}

/// The recordings of `stream`, from the API.
pub async fn stream_recordings(server: &TestServer, stream: &str) -> Result<Vec<RecordingEntry>> {
    let mut all = list_recordings(server).await?;
    all.retain(|r| r.stream == stream);
    Ok(all)
}

/// Polls `/api/recordings` until `stream` has a recording and every one of them is finished
/// (seekable); returns them. The server finishes a file a few seconds after its publisher
/// leaves, so give this well over that.
pub async fn wait_finished(
    server: &TestServer,
    stream: &str,
    timeout: Duration,
) -> Result<Vec<RecordingEntry>> {
    crate::wait::wait_for(
        &format!("the recording of {stream} to be finished"),
        timeout,
        || async {
            let entries = stream_recordings(server, stream).await?;
            let done = !entries.is_empty() && entries.iter().all(|r| r.seekable);
            Ok(done.then_some(entries))
        },
    )
    .await
}

/// Where a recording is on disk.
pub fn recording_path(server: &TestServer, entry: &RecordingEntry) -> PathBuf {
    server.data_dir().join("recordings").join(&entry.id)
}

/// The recording files of `stream` on disk (whatever the server's state), sorted by name
/// (their names are their UTC start times).
pub fn recording_files(server: &TestServer, stream: &str) -> Vec<PathBuf> {
    let dir = server.data_dir().join("recordings").join(stream);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|ext| ext == "webm" || ext == "mkv")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// `POST /api/streams/{stream}/recording {"enabled": enabled}` with an optional admin token
/// (a `--dev` server needs none).
pub async fn set_recording(
    server: &TestServer,
    stream: &str,
    enabled: bool,
    admin_token: Option<&str>,
) -> Result<()> {
    let mut request = server
        .http()
        .post(server.url(&format!("api/streams/{stream}/recording")))
        .json(&serde_json::json!({ "enabled": enabled }));
    if let Some(token) = admin_token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    if response.status() != StatusCode::OK {
        return Err(status_error(response).await);
    }
    Ok(())
}

/// Runs `directo recover FILE`; returns what it printed, or its failure.
pub async fn recover(file: &std::path::Path) -> Result<String> {
    let output = tokio::process::Command::new(binary_path()?)
        .arg("recover")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| ClientError::Server(format!("cannot run `directo recover`: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(ClientError::Server(format!(
            "`directo recover {}` exited with {}: {stdout}{}",
            file.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}
