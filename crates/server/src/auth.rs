//! Who may do what: signed tokens (see [`crate::token`]), the optional static publish and
//! moderator keys, and each stream's viewing policy. Keys are compared in constant time and
//! never logged.

use signaling_proto::ErrorCode;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::settings::SettingsStore;
use crate::token::{Claims, TokenError, TokenRole, Tokens};

/// Access rules for the server.
#[derive(Clone, Debug)]
pub struct Access {
    /// Open local mode: anyone may publish and administer.
    pub dev: bool,
    /// A static key publishers may present instead of a token (handy for OBS).
    pub publish_key: Option<String>,
    /// A static key moderators may present instead of a token.
    pub moderator_key: Option<String>,
    /// Token signing and checking.
    pub tokens: Arc<Tokens>,
    /// Per-stream viewing policy.
    pub settings: SettingsStore,
}

/// What a viewer's credentials grant.
#[derive(Debug, Clone, Default)]
pub struct ViewGrant {
    /// Whether the viewer may moderate the chat.
    pub moderator: bool,
    /// The display name the token carries.
    pub name: Option<String>,
    /// Set when the credential is a node token: the id of the node pulling the stream to
    /// relay it.
    pub relay_for: Option<String>,
}

/// Constant-time comparison, so a key cannot be guessed byte by byte from response times.
fn same(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message)
}

impl Access {
    fn claims(&self, token: &str) -> Result<Claims, ApiError> {
        self.tokens.verify(token).map_err(|e| match e {
            TokenError::Expired => unauthorized("the token has expired"),
            _ => unauthorized("the key or token is not valid"),
        })
    }

    /// May the bearer of `credential` publish `stream`? Returns the token's display name.
    pub fn authorize_publish(
        &self,
        stream: &str,
        credential: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        if self.dev {
            return Ok(None);
        }
        let credential = credential.ok_or_else(|| {
            unauthorized("publishing needs `Authorization: Bearer <token or publish key>`")
        })?;
        if let Some(key) = &self.publish_key
            && same(credential, key)
        {
            return Ok(None);
        }
        let claims = self.claims(credential)?;
        if !matches!(claims.role, TokenRole::Publisher | TokenRole::Admin) {
            return Err(forbidden("this token does not allow publishing"));
        }
        if !claims.covers(stream) {
            return Err(forbidden(format!("this token is not for stream {stream}")));
        }
        Ok(claims.name)
    }

    /// May the bearer of `credential` (possibly none) watch `stream`, and moderate it?
    pub fn authorize_view(
        &self,
        stream: &str,
        credential: Option<&str>,
    ) -> Result<ViewGrant, ApiError> {
        let Some(credential) = credential else {
            if self.dev || self.settings.get(stream).public {
                return Ok(ViewGrant::default());
            }
            return Err(unauthorized("this stream needs a viewer token"));
        };
        if let Some(key) = &self.moderator_key
            && same(credential, key)
        {
            return Ok(ViewGrant {
                moderator: true,
                name: None,
                relay_for: None,
            });
        }
        let claims = self.claims(credential)?;
        if !claims.covers(stream) {
            return Err(forbidden(format!("this token is not for stream {stream}")));
        }
        if claims.role == TokenRole::Node {
            return Ok(ViewGrant {
                moderator: false,
                name: None,
                relay_for: claims.name,
            });
        }
        Ok(ViewGrant {
            moderator: matches!(claims.role, TokenRole::Moderator | TokenRole::Admin),
            name: claims.name,
            relay_for: None,
        })
    }

    /// The admin-API check for a request about one stream: an admin token in the
    /// `Authorization` header, then a valid stream name.
    pub fn admin_on_stream(
        &self,
        authorization: Option<&str>,
        stream: &str,
    ) -> Result<(), ApiError> {
        self.authorize_admin(bearer(authorization))?;
        check_stream_name(stream)
    }

    /// May the bearer of `credential` use the admin API?
    pub fn authorize_admin(&self, credential: Option<&str>) -> Result<(), ApiError> {
        if self.dev {
            return Ok(());
        }
        let credential =
            credential.ok_or_else(|| unauthorized("the admin API needs an admin token"))?;
        let claims = self.claims(credential)?;
        if claims.role != TokenRole::Admin {
            return Err(forbidden("this token is not an admin token"));
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn access() -> Access {
        Access {
            dev: false,
            publish_key: None,
            moderator_key: None,
            tokens: Arc::new(Tokens::new(b"shared")),
            settings: SettingsStore::default(),
        }
    }

    #[test]
    fn a_node_token_is_a_relay_pull_of_its_stream_and_nothing_else() {
        let access = access();
        let token = access.tokens.mint_node("launch", "edge-1").expect("signed");
        let grant = access
            .authorize_view("launch", Some(&token))
            .expect("a node may pull the stream");
        assert_eq!(grant.relay_for.as_deref(), Some("edge-1"));
        assert!(!grant.moderator && grant.name.is_none());
        assert!(access.authorize_view("other", Some(&token)).is_err());
        assert!(access.authorize_publish("launch", Some(&token)).is_err());
        assert!(access.authorize_admin(Some(&token)).is_err());
    }

    #[test]
    fn a_viewer_token_is_no_relay_pull() {
        let access = access();
        let (token, _) = access
            .tokens
            .mint("launch", TokenRole::Viewer, None, Duration::from_secs(60))
            .expect("signed");
        let grant = access
            .authorize_view("launch", Some(&token))
            .expect("a viewer");
        assert_eq!(grant.relay_for, None);
    }
}
