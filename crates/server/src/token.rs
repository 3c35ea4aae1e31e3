//! Signed access tokens (JWT, HS256): who may publish, watch, moderate or administer which
//! stream, until when.
//!
//! The secret comes from `--secret` (or `DIRECTO_SECRET`), or is generated once and kept in
//! `{data-dir}/secret` (mode 0600), so tokens survive restarts. A token never appears in logs.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Publish the stream.
    Publisher,
    /// Watch the stream (needed only where viewing is not public).
    Viewer,
    /// Watch and moderate the stream's chat.
    Moderator,
    /// Everything, including the admin API.
    Admin,
    /// Another node of the cluster pulling the stream to relay it. Only nodes mint these
    /// ([`Tokens::mint_node`]), for one stream and a few seconds; people cannot.
    Node,
}

/// The claims of a Directo token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The stream the token is for, or `*` for every stream.
    pub stream: String,
    /// What it allows.
    pub role: TokenRole,
    /// The display name of whoever holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
}

impl Claims {
    /// Whether the token covers `stream`.
    pub fn covers(&self, stream: &str) -> bool {
        self.stream == "*" || self.stream == stream
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token's `exp` is in the past.
    #[error("the token has expired")]
    Expired,
    /// Bad signature, malformed, or missing claims.
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// Minting failed.
    #[error("cannot sign a token: {0}")]
    Sign(String),
    /// Node tokens are minted by nodes only ([`Tokens::mint_node`]).
    #[error("node tokens are minted by the nodes of a cluster only")]
    NodeRole,
}

/// How long a node token lives: it is presented once, on the WHEP POST that starts a relay.
pub const NODE_TOKEN_TTL: Duration = Duration::from_secs(30);

/// Signs and checks tokens with one HS256 secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { secret: <hidden> }")
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for `stream` (or `*`) with `role`, valid for `ttl`. Returns it and its expiry.
    /// Refuses [`TokenRole::Node`]: see [`Tokens::mint_node`].
    pub fn mint(
        &self,
        stream: &str,
        role: TokenRole,
        name: Option<String>,
        ttl: Duration,
    ) -> Result<(String, u64), TokenError> {
        if role == TokenRole::Node {
            return Err(TokenError::NodeRole);
        }
        self.sign(stream, role, name, ttl)
    }

    /// A node token: lets node `node_id` pull `stream` from another node (a relay's WHEP
    /// POST), for [`NODE_TOKEN_TTL`].
    pub fn mint_node(&self, stream: &str, node_id: &str) -> Result<String, TokenError> {
        self.sign(
            stream,
            TokenRole::Node,
            Some(node_id.to_owned()),
            NODE_TOKEN_TTL,
        )
        .map(|(token, _)| token)
    }

    fn sign(
        &self,
        stream: &str,
        role: TokenRole,
        name: Option<String>,
        ttl: Duration,
    ) -> Result<(String, u64), TokenError> {
        let exp = unix_now().saturating_add(ttl.as_secs().max(1));
        let claims = Claims {
            stream: stream.to_owned(),
            role,
            name,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok((token, exp))
    }

    /// The claims of a valid, unexpired token signed with our secret.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })
    }
}

/// Read the secret kept in `data_dir`, creating it (32 random bytes, hex) on first start.
pub fn load_or_create_secret(data_dir: &Path) -> std::io::Result<Vec<u8>> {
    let path = data_dir.join("secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options.open(&path)?.write_all(secret.as_bytes())?;
    Ok(secret.into_bytes())
}

/// Parse a lifetime such as `90s`, `15m`, `2h`, `7d` (a bare number is seconds).
pub fn parse_ttl(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_forged_ones_do_not() {
        let tokens = Tokens::new(b"secret-one");
        let (token, _) = tokens
            .mint(
                "launch",
                TokenRole::Publisher,
                Some("Ana".into()),
                Duration::from_secs(60),
            )
            .unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(claims.role, TokenRole::Publisher);
        assert!(claims.covers("launch") && !claims.covers("other"));
        let other = Tokens::new(b"secret-two");
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid(_))));
        assert!(matches!(
            tokens.verify("not.a.token"),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn node_tokens_come_only_from_mint_node() {
        let tokens = Tokens::new(b"s");
        assert!(matches!(
            tokens.mint("launch", TokenRole::Node, None, Duration::from_secs(60)),
            Err(TokenError::NodeRole)
        ));
        let token = tokens.mint_node("launch", "edge-1").unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(claims.role, TokenRole::Node);
        assert_eq!(claims.name.as_deref(), Some("edge-1"));
        assert!(claims.covers("launch") && !claims.covers("other"));
        assert!(claims.exp <= unix_now() + NODE_TOKEN_TTL.as_secs());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let tokens = Tokens::new(b"s");
        let claims = Claims {
            stream: "*".into(),
            role: TokenRole::Admin,
            name: None,
            exp: unix_now() - 10,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &tokens.encoding)
            .unwrap();
        assert!(matches!(tokens.verify(&token), Err(TokenError::Expired)));
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_ttl("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_ttl("0"), None);
        assert_eq!(parse_ttl("2x"), None);
    }
}
