//! Credentials for access-control tests: tokens minted by `directo token`, credentials no
//! server may accept (forged, unsigned, tampered, expired), and requests that carry them.
//!
//! Tokens are minted by the real binary, not by a JWT library in the tests, so a test also
//! checks that the CLI's tokens are the server's tokens.

use crate::error::{ClientError, Result};
use crate::server::binary_path;
use reqwest::header::AUTHORIZATION;
use reqwest::{Client, Method, Url};
use signaling_proto::{ErrorBody, ErrorCode};
use std::path::Path;
use std::process::Stdio;

/// A well-formed token with `"alg": "none"` and no signature that claims admin on every
/// stream until 2100: the classic JWT forgery, which an HS256-only server must refuse.
pub const UNSIGNED_ADMIN_TOKEN: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
eyJzdHJlYW0iOiIqIiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";

/// The payload segment of [`UNSIGNED_ADMIN_TOKEN`]: admin on `*` until 2100.
pub const ADMIN_CLAIMS_SEGMENT: &str =
    "eyJzdHJlYW0iOiIqIiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwfQ";

/// Where `directo token` gets its signing secret.
#[derive(Debug, Clone, Copy)]
pub enum SecretSource<'a> {
    /// `--secret <secret>`.
    Explicit(&'a str),
    /// `--data-dir <dir>`: the secret a server keeps there.
    DataDir(&'a Path),
}

/// What `directo token` is asked for.
#[derive(Debug, Clone, Copy)]
pub struct TokenSpec<'a> {
    /// `--role`: publisher, viewer, moderator or admin.
    pub role: &'a str,
    /// `--stream`: a stream name or `*`.
    pub stream: &'a str,
    /// `--ttl`, e.g. `1h` or `1s`.
    pub ttl: &'a str,
    /// `--name`, if any.
    pub name: Option<&'a str>,
}

impl<'a> TokenSpec<'a> {
    /// A token for `role` on `stream`, valid for an hour, without a name.
    pub fn new(role: &'a str, stream: &'a str) -> Self {
        TokenSpec {
            role,
            stream,
            ttl: "1h",
            name: None,
        }
    }

    /// The same token with another lifetime.
    pub fn ttl(self, ttl: &'a str) -> Self {
        TokenSpec { ttl, ..self }
    }
}

/// Runs `directo token` and returns the one token it printed.
pub async fn mint_token(secret: SecretSource<'_>, spec: TokenSpec<'_>) -> Result<String> {
    let mut command = tokio::process::Command::new(binary_path()?);
    command
        .arg("token")
        .args([
            "--role",
            spec.role,
            "--stream",
            spec.stream,
            "--ttl",
            spec.ttl,
        ])
        .env_remove("DIRECTO_SECRET")
        .stdin(Stdio::null());
    match secret {
        SecretSource::Explicit(secret) => command.args(["--secret", secret]),
        SecretSource::DataDir(dir) => command.arg("--data-dir").arg(dir),
    };
    if let Some(name) = spec.name {
        command.args(["--name", name]);
    }
    let output = command
        .output()
        .await
        .map_err(|e| ClientError::Server(format!("cannot run `directo token`: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = stdout.trim();
    let looks_like_jwt = token.split('.').count() == 3 && !token.contains(char::is_whitespace);
    if !output.status.success() || !looks_like_jwt {
        return Err(ClientError::Server(format!(
            "`directo token` exited with {} and printed {stdout:?}; stderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(token.to_owned())
}

/// `token` with its payload replaced by [`ADMIN_CLAIMS_SEGMENT`], keeping its header and
/// signature: a privilege escalation a signature check must catch.
pub fn tampered_to_admin(token: &str) -> String {
    let mut parts = token.split('.');
    let header = parts.next().unwrap_or_default();
    let signature = parts.nth(1).unwrap_or_default();
    format!("{header}.{ADMIN_CLAIMS_SEGMENT}.{signature}")
}

/// One HTTP request of an access test: method, URL, optional JSON body.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: Url,
    /// A JSON body, if any.
    pub body: Option<serde_json::Value>,
    /// A raw body with its content type (WHIP/WHEP offers), if any.
    pub raw: Option<(&'static str, String)>,
}

impl Probe {
    /// A request without a body.
    pub fn new(method: Method, url: Url) -> Self {
        Probe {
            method,
            url,
            body: None,
            raw: None,
        }
    }

    /// The same request with a JSON body.
    pub fn json(self, body: serde_json::Value) -> Self {
        Probe {
            body: Some(body),
            ..self
        }
    }

    /// The same request with an SDP body.
    pub fn sdp(self, sdp: &str) -> Self {
        Probe {
            raw: Some(("application/sdp", sdp.to_owned())),
            ..self
        }
    }

    /// Sends it with `authorization` as the raw `Authorization` header value (e.g.
    /// `Bearer <token>`), or none; returns the status and the JSON error body if there is one.
    pub async fn send(
        &self,
        http: &Client,
        authorization: Option<&str>,
    ) -> Result<(u16, Option<ErrorBody>, String)> {
        let mut request = http.request(self.method.clone(), self.url.clone());
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        if let Some((content_type, body)) = &self.raw {
            request = request
                .header(reqwest::header::CONTENT_TYPE, *content_type)
                .body(body.clone());
        }
        let response = request.send().await?;
        Ok(crate::http::read_error(response).await)
    }

    /// Sends it with `Bearer <credential>` (or nothing) and checks the refusal: `status` with a
    /// JSON body whose code is `code`. The error says which request and credential failed.
    pub async fn expect_refused(
        &self,
        http: &Client,
        credential: Option<&str>,
        what: &str,
        status: u16,
        code: ErrorCode,
    ) -> Result<()> {
        let header = credential.map(|c| format!("Bearer {c}"));
        let (got, body, text) = self.send(http, header.as_deref()).await?;
        if got == status && body.as_ref().is_some_and(|b| b.code == code) {
            return Ok(());
        }
        Err(ClientError::Protocol(format!(
            "{} {} with {what}: expected {status} {code:?}, got {got} {text}",
            self.method, self.url
        )))
    }
}
