//! WHIP and WHEP over HTTP: post an offer, get the answer and the session's URL, delete it.
//!
//! Also the small helpers tests use to read Directo's JSON error bodies.

use crate::error::{ClientError, Result};
use reqwest::RequestBuilder;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Response, StatusCode, Url};
use signaling_proto::{ErrorBody, ErrorCode};
use std::net::IpAddr;
use std::time::Duration;

/// An HTTP client for talking to a local test server: no proxy, generous timeouts.
pub fn http_client() -> Client {
    Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|_| Client::new())
}

/// An HTTP client like [`http_client`] whose connections come from `local` (any 127.x.y.z
/// works on Linux loopback), so the server sees another origin: bans match by origin.
pub fn http_client_from(local: IpAddr) -> Client {
    Client::builder()
        .no_proxy()
        .local_address(local)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|_| Client::new())
}

/// `endpoint` with `?name=<name>` (URL-encoded) when a display name is given.
pub fn with_name(endpoint: &str, name: Option<&str>) -> Result<String> {
    let Some(name) = name else {
        return Ok(endpoint.to_owned());
    };
    let mut url = Url::parse(endpoint)
        .map_err(|e| ClientError::Protocol(format!("bad endpoint URL {endpoint}: {e}")))?;
    url.query_pairs_mut().append_pair("name", name);
    Ok(url.into())
}

/// A WHIP or WHEP session the server created.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session's resource URL (from `Location`, made absolute); `DELETE` it to leave.
    pub url: Url,
    /// The server's SDP answer.
    pub answer: String,
}

/// Posts an SDP offer to a WHIP/WHEP endpoint; expects `201` with an SDP answer and a
/// `Location`, after following redirects (`307` to another node of a cluster). Any other status is a [`ClientError::Status`] carrying the JSON error body.
pub async fn post_offer(
    http: &Client,
    endpoint: &str,
    offer: &str,
    bearer: Option<&str>,
) -> Result<Session> {
    let response = offer_request(http, endpoint, offer, bearer)?.send().await?;
    if response.status() != StatusCode::CREATED {
        return Err(status_error(response).await);
    }
    let content_type = header(&response, CONTENT_TYPE.as_str()).unwrap_or_default();
    if !content_type.starts_with("application/sdp") {
        return Err(ClientError::Protocol(format!(
            "answer has Content-Type {content_type:?}, expected application/sdp"
        )));
    }
    let location = header(&response, LOCATION.as_str())
        .ok_or_else(|| ClientError::Protocol("201 without a Location header".into()))?;
    // Relative to the URL that answered: another node's when a cluster redirected the POST
    // (reqwest follows a 307 with the body, as browsers' fetch does).
    let url = response
        .url()
        .join(&location)
        .map_err(|e| ClientError::Protocol(format!("bad Location {location:?}: {e}")))?;
    let answer = response.text().await?;
    if !answer.starts_with("v=0") {
        return Err(ClientError::Protocol(format!(
            "answer is not SDP: {:?}",
            answer.chars().take(80).collect::<String>()
        )));
    }
    Ok(Session { url, answer })
}

/// What a POSTed offer was answered, whatever the status: for tests of refusals.
#[derive(Debug)]
pub struct PostAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON error body's code, if the body is one.
    pub code: Option<ErrorCode>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    /// The body: the SDP answer of a `201`, the error otherwise.
    pub body: String,
}

impl PostAnswer {
    /// Asserts a refusal with `status` and `code` that says when to retry (`what` names it).
    pub fn assert_refused(&self, status: u16, code: ErrorCode, what: &str) {
        assert_eq!(
            (self.status, self.code),
            (status, Some(code)),
            "{what}: {self:?}"
        );
        assert!(
            self.retry_after.is_some_and(|s| s >= 1),
            "{what} has no usable Retry-After: {self:?}"
        );
    }
}

/// Posts an SDP offer to a WHIP/WHEP endpoint and returns whatever came back.
pub async fn post_offer_raw(
    http: &Client,
    endpoint: &str,
    offer: &str,
    bearer: Option<&str>,
) -> Result<PostAnswer> {
    let response = offer_request(http, endpoint, offer, bearer)?.send().await?;
    let status = response.status().as_u16();
    let retry_after = header(&response, "retry-after").and_then(|v| v.trim().parse().ok());
    let body = response.text().await?;
    let code = serde_json::from_str::<ErrorBody>(&body)
        .ok()
        .map(|b| b.code);
    Ok(PostAnswer {
        status,
        code,
        retry_after,
        body,
    })
}

/// The POST of an SDP offer, with the bearer token if there is one.
fn offer_request(
    http: &Client,
    endpoint: &str,
    offer: &str,
    bearer: Option<&str>,
) -> Result<RequestBuilder> {
    let endpoint = Url::parse(endpoint)
        .map_err(|e| ClientError::Protocol(format!("bad endpoint URL {endpoint}: {e}")))?;
    let request = http
        .post(endpoint)
        .header(CONTENT_TYPE, "application/sdp")
        .body(offer.to_owned());
    Ok(match bearer {
        Some(key) => request.header(AUTHORIZATION, format!("Bearer {key}")),
        None => request,
    })
}

/// Deletes a session; `Ok(status)` on 200 or 204, [`ClientError::Status`] otherwise.
pub async fn delete_session(http: &Client, url: &Url) -> Result<u16> {
    let response = http.delete(url.clone()).send().await?;
    match response.status() {
        StatusCode::OK | StatusCode::NO_CONTENT => Ok(response.status().as_u16()),
        _ => Err(status_error(response).await),
    }
}

/// Reads a refused response: its status, its JSON error body if it has a valid one, the text.
pub async fn read_error(response: Response) -> (u16, Option<ErrorBody>, String) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str::<ErrorBody>(&text).ok();
    (status, body, text)
}

/// Turns a refused response into a [`ClientError::Status`].
pub async fn status_error(response: Response) -> ClientError {
    let (status, body, text) = read_error(response).await;
    ClientError::Status { status, body, text }
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
