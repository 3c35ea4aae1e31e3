//! WHIP and WHEP over HTTP: post an SDP offer, get the answer and the session's URL, delete
//! the session at the end.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Client, StatusCode, Url};

use crate::error::{LoadError, Result};

/// A WHIP or WHEP session the server created.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session's resource URL; `DELETE` it to leave.
    pub url: Url,
    /// The server's SDP answer.
    pub answer: String,
}

/// Posts `offer` to `endpoint` (with `key` as bearer token, if any); expects `201`, an SDP
/// answer and a `Location`.
pub async fn post_offer(
    http: &Client,
    endpoint: &Url,
    offer: String,
    key: Option<&str>,
) -> Result<Session> {
    let mut request = http
        .post(endpoint.clone())
        .header(CONTENT_TYPE, "application/sdp")
        .body(offer);
    if let Some(key) = key {
        request = request.header(AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = request.send().await?;
    let status = response.status();
    if status != StatusCode::CREATED {
        let body = response.text().await.unwrap_or_default();
        return Err(LoadError::Protocol(format!(
            "POST {endpoint} answered {status}: {}",
            body.chars().take(200).collect::<String>()
        )));
    }
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| LoadError::Protocol(format!("POST {endpoint}: 201 without Location")))?
        .to_owned();
    let url = endpoint
        .join(&location)
        .map_err(|e| LoadError::Protocol(format!("bad Location {location:?}: {e}")))?;
    let answer = response.text().await?;
    Ok(Session { url, answer })
}

/// Ends a session; errors are ignored (the server may be gone already at teardown).
pub async fn delete_session(http: &Client, session: &Session) {
    let _ = http.delete(session.url.clone()).send().await;
}
