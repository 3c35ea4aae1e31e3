//! Who outranks whom: a member may mute or ban only someone of lower rank, so nobody
//! silences themselves and a moderator cannot silence the presenter.

use signaling_proto::ChatRole;

/// A role's rank: viewer < moderator < presenter.
pub(crate) fn rank(role: ChatRole) -> u8 {
    match role {
        ChatRole::Viewer => 0,
        ChatRole::Moderator => 1,
        ChatRole::Presenter => 2,
    }
}

/// A role as a refusal names it.
pub(crate) fn role_name(role: ChatRole) -> &'static str {
    match role {
        ChatRole::Viewer => "viewer",
        ChatRole::Moderator => "moderator",
        ChatRole::Presenter => "presenter",
    }
}
