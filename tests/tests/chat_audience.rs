//! A presenter and fifty viewers chat over their peer connections' `chat` data channels: a
//! viewer asks, the presenter answers, and every member sees both messages, in the same
//! order, with the author's role and the reply's link. Presence counts the viewers as they
//! come and go.

use anyhow::Context;
use directo_tests::{
    CHAT_TIMEOUT, CONNECT_TIMEOUT, ChatMember, PublisherConfig, TestServer, Viewer, ViewerConfig,
    http_client_from,
};
use futures::{FutureExt, StreamExt, TryStreamExt};
use signaling_proto::{ChatMessage, ChatRole};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const STREAM: &str = "townhall";
const VIEWERS: usize = 50;
/// Viewers joining at once: enough to be a crowd, few enough for a 2-core machine.
const JOINING_AT_ONCE: usize = 10;
/// Loopback addresses the viewers connect from.
const ORIGINS: u8 = 5;

/// Waits until the last `presence` a member heard says `viewers`.
async fn wait_presence(member: &ChatMember, viewers: usize) -> anyhow::Result<()> {
    directo_tests::wait_until(
        &format!("presence to say {viewers} viewers"),
        CHAT_TIMEOUT,
        || member.presence() == Some(viewers),
    )
    .await
    .with_context(|| format!("last presence heard: {:?}", member.presence()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_viewers_see_a_question_and_the_presenters_reply_in_order() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    // Little media: the chat is under test, and fifty viewers share two cores.
    let publisher = server
        .publish(
            STREAM,
            PublisherConfig {
                fps: 5,
                payload_size: 200,
                keyframe_packets: 1,
                delta_packets: 1,
                chat: true,
                name: Some("Host".into()),
                ..PublisherConfig::default()
            },
        )
        .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let presenter = publisher.chat()?;
    presenter.wait_history(CHAT_TIMEOUT).await?;

    // An audience comes from many addresses (and the server caps sessions per address).
    let origins: Vec<reqwest::Client> = (1..=ORIGINS)
        .map(|i| http_client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 1, i))))
        .collect();
    let viewers: Vec<_> = futures::stream::iter(1..=VIEWERS)
        .map(|i| {
            let http = &origins[i % origins.len()];
            let endpoint = server.whep_url(STREAM);
            async move {
                let config = ViewerConfig::chat_as(&format!("Viewer {i:02}"));
                let viewer = Viewer::connect_whep(http, &endpoint, config).await?;
                viewer.wait_connected(CONNECT_TIMEOUT).await?;
                viewer.chat()?.wait_history(CHAT_TIMEOUT).await?;
                anyhow::Ok(viewer)
            }
            .map(move |joined| joined.with_context(|| format!("viewer {i} could not join")))
        })
        .buffered(JOINING_AT_ONCE)
        .try_collect()
        .await?;

    // Everyone hears the full audience; the presenter is not counted.
    wait_presence(presenter, VIEWERS)
        .await
        .context("presenter")?;
    for (i, viewer) in viewers.iter().enumerate() {
        wait_presence(viewer.chat()?, VIEWERS)
            .await
            .with_context(|| format!("viewer {}", i + 1))?;
    }

    let asker = viewers[6].chat()?;
    asker.say("Which codecs does Directo forward?").await?;
    let question = presenter
        .wait_message("Which codecs does Directo forward?", CHAT_TIMEOUT)
        .await
        .context("the presenter did not get the question")?;
    assert_eq!(question.from.name, "Viewer 07");
    assert_eq!(question.from.role, ChatRole::Viewer);
    assert_eq!(question.reply_to, None);

    presenter
        .reply("VP8, H.264 and Opus, untouched.", &question.id)
        .await?;
    let expect_reply = |reply: &ChatMessage| {
        assert_eq!(reply.from.role, ChatRole::Presenter, "{reply:?}");
        assert_eq!(reply.from.name, "Host", "{reply:?}");
        assert_eq!(reply.reply_to.as_ref(), Some(&question.id), "{reply:?}");
    };

    let members = std::iter::once(("presenter".to_owned(), presenter)).chain(
        viewers
            .iter()
            .enumerate()
            .map(|(i, v)| Ok((format!("viewer {}", i + 1), v.chat()?)))
            .collect::<directo_tests::Result<Vec<_>>>()?,
    );
    let mut reference: Option<Vec<ChatMessage>> = None;
    for (who, chat) in members {
        let reply = chat
            .wait_message("VP8, H.264 and Opus, untouched.", CHAT_TIMEOUT)
            .await
            .with_context(|| format!("{who} did not get the reply"))?;
        expect_reply(&reply);
        // Exactly the two messages, question first, identical for everyone.
        let seen = chat.messages();
        assert_eq!(
            seen.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            [question.id.as_str(), reply.id.as_str()],
            "{who} saw {seen:?}"
        );
        match &reference {
            Some(first) => assert_eq!(&seen, first, "{who} saw other messages than the presenter"),
            None => reference = Some(seen),
        }
        assert!(
            chat.other().is_empty(),
            "{who} got non-chat frames: {:?}",
            chat.other()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_drops_when_a_viewer_leaves() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut viewers = Vec::new();
    for name in ["Ana", "Bob", "Cleo"] {
        viewers.push(
            server
                .view_chat(STREAM, ViewerConfig::chat_as(name))
                .await?,
        );
    }
    for viewer in &viewers {
        wait_presence(viewer.chat()?, 3).await?;
    }

    // Cleo closes only her chat channel and keeps watching.
    viewers[2].chat()?.close().await?;
    for viewer in &viewers[..2] {
        wait_presence(viewer.chat()?, 2)
            .await
            .context("a viewer whose chat channel closed is still counted")?;
    }

    // Bob leaves the way a page does on close: WHEP DELETE.
    let bob = viewers.remove(1);
    bob.disconnect(server.http()).await?;
    wait_presence(viewers[0].chat()?, 1)
        .await
        .context("a viewer who left (WHEP DELETE) is still counted")?;

    // Give a stale count time to come back, then look again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(viewers[0].chat()?.presence(), Some(1));
    Ok(())
}
