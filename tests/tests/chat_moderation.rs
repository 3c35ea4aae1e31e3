//! Moderation as viewers live it: a moderator (moderator key or moderator token) deletes,
//! mutes, slows and bans; the server enforces every rule on what arrives, so a client that
//! ignores them (sends while muted, floods, writes faster than slow mode) gains nothing; and
//! a plain viewer cannot moderate.

use anyhow::Context;
use directo_tests::{
    CHAT_TIMEOUT, ChatMember, ServerOptions, TestServer, Viewer, ViewerConfig, http_client_from,
};
use signaling_proto::{
    ChatClientMessage, ChatErrorCode, ChatMessage, ChatRole, ChatServerMessage, UserId,
};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const STREAM: &str = "moderated";
const MODERATOR_KEY: &str = "test-moderator-key";

async fn server() -> anyhow::Result<TestServer> {
    Ok(TestServer::start_with(ServerOptions {
        moderator_key: Some(MODERATOR_KEY.to_owned()),
        ..ServerOptions::default()
    })
    .await?)
}

/// A viewer in the chat as `name`, presenting `bearer` on WHEP.
async fn member(server: &TestServer, name: &str, bearer: Option<&str>) -> anyhow::Result<Viewer> {
    let config = ViewerConfig {
        bearer: bearer.map(str::to_owned),
        ..ViewerConfig::chat_as(name)
    };
    server
        .view_chat(STREAM, config)
        .await
        .with_context(|| format!("{name} could not join the chat"))
}

/// Posts `text` as `author` and waits until `witness` got it; returns the message.
async fn post(author: &Viewer, witness: &Viewer, text: &str) -> anyhow::Result<ChatMessage> {
    author.chat()?.say(text).await?;
    witness
        .chat()?
        .wait_message(text, CHAT_TIMEOUT)
        .await
        .with_context(|| format!("{text:?} was not delivered"))
}

/// Sends `message` as `who` and returns the code of the `error` that answers it.
async fn refusal(who: &ChatMember, message: &ChatClientMessage) -> anyhow::Result<ChatErrorCode> {
    let from = who.len();
    who.send(message).await?;
    let (code, _) = who
        .wait_error_from(from, CHAT_TIMEOUT)
        .await
        .with_context(|| format!("no error answered {message:?}"))?;
    Ok(code)
}

/// Waits until `who` hears that `user` was muted; returns the end of the mute.
async fn wait_muted(who: &ChatMember, user: &UserId) -> anyhow::Result<u64> {
    Ok(who
        .wait_for("user.muted", CHAT_TIMEOUT, |m| match m {
            ChatServerMessage::Muted {
                user: muted, until, ..
            } if muted == user => Some(*until),
            _ => None,
        })
        .await?)
}

/// The texts of the chat messages `who` saw live.
fn texts(who: &Viewer) -> anyhow::Result<Vec<String>> {
    Ok(who.chat()?.messages().into_iter().map(|m| m.text).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_disappears_for_everyone_and_from_later_history() -> anyhow::Result<()> {
    let server = server().await?;
    let ana = member(&server, "Ana", None).await?;
    let bob = member(&server, "Bob", None).await?;
    let moderator = member(&server, "Mia", Some(MODERATOR_KEY)).await?;

    let spam = post(&ana, &moderator, "cheap followers at example.com").await?;
    let kept = post(&bob, &moderator, "great stream").await?;
    let note = post(&moderator, &ana, "please stay on topic").await?;
    assert_eq!(note.from.role, ChatRole::Moderator);

    moderator
        .chat()?
        .send(&ChatClientMessage::Delete {
            id: spam.id.clone(),
        })
        .await?;
    for (who, viewer) in [("Ana", &ana), ("Bob", &bob), ("Mia", &moderator)] {
        viewer
            .chat()?
            .wait_for("chat.deleted", CHAT_TIMEOUT, |m| {
                matches!(m, ChatServerMessage::Deleted { id } if *id == spam.id).then_some(())
            })
            .await
            .with_context(|| format!("{who} was not told of the deletion"))?;
    }

    let late = member(&server, "Cleo", None).await?;
    let history = late.chat()?.wait_history(CHAT_TIMEOUT).await?;
    assert_eq!(
        history.messages,
        [kept, note],
        "a later viewer's history must leave the deleted message out"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_moderate() -> anyhow::Result<()> {
    let server = server().await?;
    let ana = member(&server, "Ana", None).await?;
    let bob = member(&server, "Bob", None).await?;
    let message = post(&ana, &bob, "first!").await?;

    let attempts = [
        ChatClientMessage::Delete {
            id: message.id.clone(),
        },
        ChatClientMessage::Mute {
            user: message.from.id.clone(),
            minutes: 5,
        },
        ChatClientMessage::Ban {
            user: message.from.id.clone(),
        },
        ChatClientMessage::Slow { seconds: 30 },
        ChatClientMessage::Clear {},
        ChatClientMessage::Pin {
            id: Some(message.id.clone()),
        },
    ];
    for attempt in &attempts {
        assert_eq!(
            refusal(bob.chat()?, attempt).await?,
            ChatErrorCode::Forbidden,
            "a viewer sent {attempt:?}"
        );
    }

    // Nothing happened: Ana still writes, and a newcomer still sees her first message.
    post(&ana, &bob, "still here").await?;
    let late = member(&server, "Cleo", None).await?;
    let history = late.chat()?.wait_history(CHAT_TIMEOUT).await?;
    assert_eq!(history.messages.first(), Some(&message));
    assert_eq!(history.slow_seconds, 0);
    assert_eq!(history.pinned, None);
    for viewer in [&ana, &bob] {
        let unexpected: Vec<_> = viewer
            .chat()?
            .received()
            .into_iter()
            .filter(|m| {
                !matches!(
                    m,
                    ChatServerMessage::History { .. }
                        | ChatServerMessage::Presence { .. }
                        | ChatServerMessage::StreamStatus { .. }
                        | ChatServerMessage::Message(_)
                        | ChatServerMessage::Error { .. }
                )
            })
            .collect();
        assert!(
            unexpected.is_empty(),
            "a refused action still reached members: {unexpected:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_viewer_is_refused_and_nobody_sees_what_they_send() -> anyhow::Result<()> {
    let server = server().await?;
    // This moderator holds a signed moderator token instead of the key.
    let token = server.token("moderator", STREAM, Some("Jay")).await?;
    let moderator = member(&server, "Jay", Some(&token)).await?;
    let ana = member(&server, "Ana", None).await?;
    let bob = member(&server, "Bob", None).await?;
    let hello = post(&ana, &bob, "hello").await?;

    let from = ana.chat()?.len();
    moderator
        .chat()?
        .send(&ChatClientMessage::Mute {
            user: hello.from.id.clone(),
            minutes: 1,
        })
        .await?;
    for (who, viewer) in [("Ana", &ana), ("Bob", &bob), ("Jay", &moderator)] {
        let until = wait_muted(viewer.chat()?, &hello.from.id)
            .await
            .with_context(|| format!("{who} was not told of the mute"))?;
        assert!(
            until >= hello.ts + 60_000,
            "a one-minute mute must last a minute"
        );
    }
    let muted_name = ana
        .chat()?
        .wait_for_from(from, "user.muted", CHAT_TIMEOUT, |m| match m {
            ChatServerMessage::Muted { name, .. } => Some(name.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(muted_name, "Ana");

    // Ana's client ignores the mute and keeps sending.
    for text in ["can you hear me?", "hello??"] {
        assert_eq!(
            refusal(
                ana.chat()?,
                &ChatClientMessage::Send {
                    text: text.into(),
                    reply_to: None
                }
            )
            .await?,
            ChatErrorCode::Muted
        );
    }
    // Bob still writes, and his message is the only one after the mute that anyone sees.
    post(&bob, &ana, "the show goes on").await?;
    for viewer in [&bob, &moderator] {
        // Delivery is in order: once this arrived, everything before it has too.
        viewer
            .chat()?
            .wait_message("the show goes on", CHAT_TIMEOUT)
            .await?;
        assert_eq!(texts(viewer)?, ["hello", "the show goes on"]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_allows_a_viewer_one_message_per_interval() -> anyhow::Result<()> {
    let server = server().await?;
    let moderator = member(&server, "Mia", Some(MODERATOR_KEY)).await?;
    let ana = member(&server, "Ana", None).await?;
    let bob = member(&server, "Bob", None).await?;

    moderator
        .chat()?
        .send(&ChatClientMessage::Slow { seconds: 30 })
        .await?;
    for (who, viewer) in [("Ana", &ana), ("Bob", &bob), ("Mia", &moderator)] {
        viewer
            .chat()?
            .wait_for("chat.slow", CHAT_TIMEOUT, |m| {
                matches!(m, ChatServerMessage::Slow { seconds: 30 }).then_some(())
            })
            .await
            .with_context(|| format!("{who} was not told of slow mode"))?;
    }

    post(&ana, &bob, "one").await?;
    // Ana's client does not wait the 30 s out.
    assert_eq!(
        refusal(
            ana.chat()?,
            &ChatClientMessage::Send {
                text: "two".into(),
                reply_to: None
            }
        )
        .await?,
        ChatErrorCode::SlowMode
    );
    // Slow mode is per user, and moderators are exempt.
    post(&bob, &ana, "bob's one").await?;
    post(&moderator, &ana, "mia's one").await?;
    post(&moderator, &ana, "mia's two").await?;
    let late = member(&server, "Cleo", None).await?;
    assert_eq!(
        late.chat()?.wait_history(CHAT_TIMEOUT).await?.slow_seconds,
        30
    );

    moderator
        .chat()?
        .send(&ChatClientMessage::Slow { seconds: 0 })
        .await?;
    ana.chat()?
        .wait_for("slow mode off", CHAT_TIMEOUT, |m| {
            matches!(m, ChatServerMessage::Slow { seconds: 0 }).then_some(())
        })
        .await?;
    post(&ana, &bob, "three").await?;
    assert_eq!(
        texts(&bob)?,
        ["one", "bob's one", "mia's one", "mia's two", "three"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_viewer_is_cut_off_at_the_sixth_message_and_muted() -> anyhow::Result<()> {
    let server = server().await?;
    let moderator = member(&server, "Mia", Some(MODERATOR_KEY)).await?;
    let ana = member(&server, "Ana", None).await?;
    let bob = member(&server, "Bob", None).await?;

    // Six messages back to back, as a script would send them.
    let from = ana.chat()?.len();
    for i in 1..=6 {
        ana.chat()?.say(&format!("flood {i}")).await?;
    }
    let (code, _) = ana.chat()?.wait_error_from(from, CHAT_TIMEOUT).await?;
    assert_eq!(code, ChatErrorCode::RateLimited);
    let fifth = bob.chat()?.wait_message("flood 5", CHAT_TIMEOUT).await?;
    for (who, viewer) in [("Ana", &ana), ("Bob", &bob), ("Mia", &moderator)] {
        let until = wait_muted(viewer.chat()?, &fifth.from.id)
            .await
            .with_context(|| format!("{who} was not told Ana was muted"))?;
        assert!(
            until >= fifth.ts + 60_000,
            "the automatic mute lasts a minute"
        );
    }
    // Muted now: the next message is refused as such.
    assert_eq!(
        refusal(
            ana.chat()?,
            &ChatClientMessage::Send {
                text: "flood 7".into(),
                reply_to: None
            }
        )
        .await?,
        ChatErrorCode::Muted
    );

    post(&bob, &moderator, "calm again").await?;
    let expected = [
        "flood 1",
        "flood 2",
        "flood 3",
        "flood 4",
        "flood 5",
        "calm again",
    ];
    assert_eq!(texts(&moderator)?, expected);
    post(&moderator, &bob, "thanks").await?;
    assert_eq!(texts(&bob)?[..6], expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_viewer_is_disconnected_and_cannot_come_back() -> anyhow::Result<()> {
    let server = server().await?;
    // Bans also match the origin (the client's IP), so the people who must stay in connect
    // from other loopback addresses than the troll's 127.0.0.1.
    let elsewhere = http_client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let third_place = http_client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    let join_from = |http: &reqwest::Client, config: ViewerConfig| {
        let http = http.clone();
        let endpoint = server.whep_url(STREAM);
        async move {
            let viewer = Viewer::connect_whep(&http, &endpoint, config).await?;
            viewer
                .wait_connected(directo_tests::CONNECT_TIMEOUT)
                .await?;
            viewer.chat()?.wait_history(CHAT_TIMEOUT).await?;
            anyhow::Ok(viewer)
        }
    };
    let moderator = join_from(
        &elsewhere,
        ViewerConfig {
            bearer: Some(MODERATOR_KEY.to_owned()),
            ..ViewerConfig::chat_as("Mia")
        },
    )
    .await?;
    let bea = join_from(&elsewhere, ViewerConfig::chat_as("Bea")).await?;
    let troll = member(&server, "Troll", None).await?;
    let spam = post(&troll, &moderator, "buy followers").await?;

    moderator
        .chat()?
        .send(&ChatClientMessage::Ban {
            user: spam.from.id.clone(),
        })
        .await?;
    for (who, viewer) in [("Bea", &bea), ("Mia", &moderator)] {
        let name = viewer
            .chat()?
            .wait_for("user.banned", CHAT_TIMEOUT, |m| match m {
                ChatServerMessage::Banned { user, name } if *user == spam.from.id => {
                    Some(name.clone())
                }
                _ => None,
            })
            .await
            .with_context(|| format!("{who} was not told of the ban"))?;
        assert_eq!(name, "Troll");
    }

    // The server ends the troll's chat and media.
    troll
        .chat()?
        .wait_closed(CHAT_TIMEOUT)
        .await
        .context("the banned viewer's chat channel stayed open")?;
    directo_tests::wait_until(
        "the banned viewer's peer connection to go down",
        Duration::from_secs(60),
        || troll.state() != directo_tests::RTCPeerConnectionState::Connected,
    )
    .await?;
    // Whatever its client still tries reaches nobody.
    let _ = troll.chat()?.say("I'm back").await;

    // No way back in: not under the same name (any case, any origin), not from the same
    // origin under another name, not over /ws.
    for (what, attempt) in [
        (
            "the same name",
            join_from(&third_place, ViewerConfig::chat_as("troll")).await,
        ),
        (
            "the same origin",
            join_from(&server.http().clone(), ViewerConfig::chat_as("Newcomer")).await,
        ),
    ] {
        let error = attempt
            .err()
            .with_context(|| format!("a banned viewer came back with {what}"))?;
        let status = error
            .downcast_ref::<directo_tests::ClientError>()
            .and_then(|e| e.status());
        assert_eq!(status, Some(403), "{what}: {error:#}");
    }
    assert!(
        server.chat_ws(STREAM, Some("Troll"), None).await.is_err(),
        "a banned name joined the chat over /ws"
    );

    // Everyone else carries on, and a newcomer from elsewhere is welcome.
    post(&bea, &moderator, "good riddance").await?;
    let newcomer = join_from(&third_place, ViewerConfig::chat_as("Newcomer")).await?;
    post(&newcomer, &bea, "hi all").await?;
    assert!(
        !texts(&bea)?.iter().any(|t| t == "I'm back"),
        "a banned viewer's message got through"
    );
    Ok(())
}
