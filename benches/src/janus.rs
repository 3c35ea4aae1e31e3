//! A Janus Streaming plugin client over the Janus HTTP API, so the same viewers can watch a
//! Janus mountpoint: create a session, attach `janus.plugin.streaming`, `watch` a mountpoint
//! (Janus offers), answer with `start`, keep the session alive, destroy it at the end.

use std::time::{Duration, Instant};

use reqwest::{Client, Url};
use serde_json::{Value, json};

use crate::error::{LoadError, Result};

/// How often a session sends a keepalive (Janus's default session timeout is 60 s).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(25);

/// One Janus session with the Streaming plugin attached.
#[derive(Debug, Clone)]
pub struct JanusSession {
    http: Client,
    session: Url,
    handle: Url,
    handle_id: u64,
}

fn transaction() -> String {
    format!("{:016x}", rand::random::<u64>())
}

async fn post(http: &Client, url: &Url, body: Value) -> Result<Value> {
    let response = http.post(url.clone()).json(&body).send().await?;
    let value: Value = response.json().await?;
    if value["janus"] == "error" {
        return Err(LoadError::Protocol(format!(
            "janus error: {}",
            value["error"]
        )));
    }
    Ok(value)
}

fn child(base: &Url, id: u64) -> Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| LoadError::Protocol(format!("{base} cannot be a base URL")))?
        .pop_if_empty()
        .push(&id.to_string());
    Ok(url)
}

impl JanusSession {
    /// Creates a session at `api` (e.g. `http://127.0.0.1:8088/janus`) and attaches the
    /// Streaming plugin.
    pub async fn attach(http: &Client, api: &Url) -> Result<JanusSession> {
        let created = post(
            http,
            api,
            json!({"janus": "create", "transaction": transaction()}),
        )
        .await?;
        let session_id = created["data"]["id"]
            .as_u64()
            .ok_or_else(|| LoadError::Protocol(format!("create: no session id in {created}")))?;
        let session = child(api, session_id)?;
        let attached = post(
            http,
            &session,
            json!({"janus": "attach", "plugin": "janus.plugin.streaming", "transaction": transaction()}),
        )
        .await?;
        let handle_id = attached["data"]["id"]
            .as_u64()
            .ok_or_else(|| LoadError::Protocol(format!("attach: no handle id in {attached}")))?;
        let handle = child(&session, handle_id)?;
        Ok(JanusSession {
            http: http.clone(),
            session,
            handle,
            handle_id,
        })
    }

    /// Asks to watch `mountpoint` and waits for Janus's SDP offer.
    pub async fn watch(&self, mountpoint: u64) -> Result<String> {
        post(
            &self.http,
            &self.handle,
            json!({"janus": "message", "transaction": transaction(),
                   "body": {"request": "watch", "id": mountpoint}}),
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let mut url = self.session.clone();
            url.query_pairs_mut()
                .append_pair("maxev", "5")
                .append_pair("rid", &transaction());
            let events: Value = self.http.get(url).send().await?.json().await?;
            let events = match events {
                Value::Array(events) => events,
                single => vec![single],
            };
            for event in events {
                if event["sender"].as_u64() != Some(self.handle_id) {
                    continue;
                }
                if let Some(error) = event["plugindata"]["data"].get("error") {
                    return Err(LoadError::Protocol(format!("watch {mountpoint}: {error}")));
                }
                if let Some(sdp) = event["jsep"]["sdp"].as_str() {
                    return Ok(sdp.to_owned());
                }
            }
        }
        Err(LoadError::Timeout("the Janus offer"))
    }

    /// Answers the offer: `start` with our SDP.
    pub async fn start(&self, answer: String) -> Result<()> {
        post(
            &self.http,
            &self.handle,
            json!({"janus": "message", "transaction": transaction(),
                   "body": {"request": "start"},
                   "jsep": {"type": "answer", "sdp": answer}}),
        )
        .await?;
        Ok(())
    }

    /// Tells Janus the session is still in use.
    pub async fn keepalive(&self) -> Result<()> {
        post(
            &self.http,
            &self.session,
            json!({"janus": "keepalive", "transaction": transaction()}),
        )
        .await?;
        Ok(())
    }

    /// Destroys the session (and with it the handle and the peer connection); errors are
    /// ignored at teardown.
    pub async fn destroy(&self) {
        let _ = post(
            &self.http,
            &self.session,
            json!({"janus": "destroy", "transaction": transaction()}),
        )
        .await;
    }
}
