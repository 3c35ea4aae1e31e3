//! Chat across the nodes of a cluster, as members live it: the publisher's node (the origin)
//! is the stream's chat authority; members on other nodes write through it and hear it. One
//! order everywhere, moderation everywhere, the history from the authority, the cluster's
//! audience in `presence`, and a clear error while the authority is gone.

use anyhow::Context;
use directo_tests::{
    CHAT_TIMEOUT, CONNECT_TIMEOUT, Cluster, Publisher, PublisherConfig, TestServer, Viewer,
    ViewerConfig, http_client_from, wait_for,
};
use signaling_proto::{ChatClientMessage, ChatErrorCode, ChatServerMessage};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const MODERATOR_KEY: &str = "cluster-moderator-key";
/// Origins are found, counted and lost through Redis once a heartbeat (and leases last
/// three): seconds.
const CLUSTER_WITHIN: Duration = Duration::from_secs(30);

async fn cluster(ids: &[&str]) -> anyhow::Result<Option<Cluster>> {
    Ok(Cluster::start_with(ids, |_| {
        vec!["--moderator-key".to_owned(), MODERATOR_KEY.to_owned()]
    })
    .await?)
}

/// A presenter with a chat channel, publishing little media.
async fn presenter(node: &TestServer, stream: &str) -> anyhow::Result<Publisher> {
    let config = PublisherConfig {
        fps: 5,
        payload_size: 200,
        chat: true,
        name: Some("Host".into()),
        ..PublisherConfig::default()
    };
    let publisher = node.publish(stream, config).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    publisher.chat()?.wait_history(CHAT_TIMEOUT).await?;
    Ok(publisher)
}

/// A viewer in the chat on `node` as `name`, from its own loopback address (bans match the
/// address too), holding the moderator key if `moderator`.
async fn member(
    node: &TestServer,
    stream: &str,
    name: &str,
    address: u8,
    moderator: bool,
) -> anyhow::Result<Viewer> {
    let http = http_client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, address)));
    let config = ViewerConfig {
        bearer: moderator.then(|| MODERATOR_KEY.to_owned()),
        ..ViewerConfig::chat_as(name)
    };
    let viewer = Viewer::connect_whep(&http, &node.whep_url(stream), config).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    viewer
        .chat()?
        .wait_history(CHAT_TIMEOUT)
        .await
        .with_context(|| format!("{name} got no history"))?;
    Ok(viewer)
}

/// Waits until `who` hears the authority's `presence` counting `viewers` chat members.
async fn wait_presence(who: &directo_tests::ChatMember, viewers: usize) -> anyhow::Result<()> {
    wait_for(
        &format!("a presence of {viewers} viewers"),
        CLUSTER_WITHIN,
        || async { Ok((who.presence() == Some(viewers)).then_some(())) },
    )
    .await
    .with_context(|| format!("last presence heard: {:?}", who.presence()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chat_across_three_nodes() -> anyhow::Result<()> {
    const STREAM: &str = "crosstalk";
    let Some(cluster) = cluster(&["a", "b", "c"]).await? else {
        return Ok(());
    };
    let (a, b, c) = (cluster.node("a"), cluster.node("b"), cluster.node("c"));
    let publisher = presenter(a, STREAM).await?;
    let host = publisher.chat()?;
    let ana = member(b, STREAM, "Ana", 2, false).await?;
    let bob = member(c, STREAM, "Bob", 3, false).await?;
    let mia = member(b, STREAM, "Mia", 4, true).await?;

    // Everyone hears the authority's presence: three viewers in the chat, on two other
    // nodes, and three watching the media across the cluster (none of them on a).
    for (who, chat) in [
        ("Host", host),
        ("Ana", ana.chat()?),
        ("Bob", bob.chat()?),
        ("Mia", mia.chat()?),
    ] {
        wait_presence(chat, 3).await.with_context(|| who)?;
    }
    wait_for("the host to hear 3 watching", CLUSTER_WITHIN, || async {
        Ok((host.watching() == Some(3)).then_some(()))
    })
    .await
    .with_context(|| format!("watching: {:?}", host.watching()))?;

    // Three writers on three nodes, interleaving.
    for round in 0..3 {
        let (h, a, b) = (
            format!("host {round}"),
            format!("ana {round}"),
            format!("bob {round}"),
        );
        let (x, y, z) = tokio::join!(host.say(&h), ana.chat()?.say(&a), bob.chat()?.say(&b));
        x?;
        y?;
        z?;
    }
    let mut orders = Vec::new();
    for (who, chat) in [
        ("Host", host),
        ("Ana", ana.chat()?),
        ("Bob", bob.chat()?),
        ("Mia", mia.chat()?),
    ] {
        let messages = wait_for(
            &format!("{who} to get 9 messages"),
            CHAT_TIMEOUT,
            || async {
                let messages = chat.messages();
                Ok((messages.len() >= 9).then_some(messages))
            },
        )
        .await?;
        assert_eq!(
            messages.len(),
            9,
            "{who} got more than was written: {messages:?}"
        );
        orders.push((who, messages));
    }
    let (_, first) = &orders[0];
    for (who, messages) in &orders[1..] {
        assert_eq!(messages, first, "{who} saw another order than the host");
    }
    for writer in ["host", "ana", "bob"] {
        let texts: Vec<&str> = first
            .iter()
            .filter(|m| m.text.starts_with(writer))
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(
            texts,
            [0, 1, 2].map(|r| format!("{writer} {r}")),
            "each writer's messages keep their order"
        );
    }

    // A moderator on b deletes a message written on c: it disappears everywhere.
    let deleted = first
        .iter()
        .find(|m| m.text == "bob 1")
        .cloned()
        .context("bob 1")?;
    mia.chat()?
        .send(&ChatClientMessage::Delete {
            id: deleted.id.clone(),
        })
        .await?;
    for (who, chat) in [
        ("Host", host),
        ("Ana", ana.chat()?),
        ("Bob", bob.chat()?),
        ("Mia", mia.chat()?),
    ] {
        chat.wait_for("chat.deleted", CHAT_TIMEOUT, |m| {
            matches!(m, ChatServerMessage::Deleted { id } if *id == deleted.id).then_some(())
        })
        .await
        .with_context(|| format!("{who} was not told of the deletion"))?;
    }

    // The presenter on a bans Bob, who watches on c: c disconnects him.
    host.send(&ChatClientMessage::Ban {
        user: deleted.from.id.clone(),
    })
    .await?;
    for (who, chat) in [("Ana", ana.chat()?), ("Mia", mia.chat()?)] {
        chat.wait_for("user.banned", CHAT_TIMEOUT, |m| {
            matches!(m, ChatServerMessage::Banned { user, .. } if *user == deleted.from.id)
                .then_some(())
        })
        .await
        .with_context(|| format!("{who} was not told of the ban"))?;
    }
    bob.chat()?
        .wait_closed(CHAT_TIMEOUT)
        .await
        .context("the banned viewer's chat on node c stayed open")?;
    directo_tests::wait_until(
        "the banned viewer's peer connection on node c to go down",
        Duration::from_secs(60),
        || bob.state() != directo_tests::RTCPeerConnectionState::Connected,
    )
    .await?;

    // A late joiner on b gets the history from the authority: written on a, b and c,
    // without the deleted message.
    let cleo = member(b, STREAM, "Cleo", 5, false).await?;
    let history = cleo.chat()?.wait_history(CHAT_TIMEOUT).await?;
    let expected: Vec<_> = first
        .iter()
        .filter(|m| m.id != deleted.id)
        .cloned()
        .collect();
    assert_eq!(history.messages, expected, "the late joiner's history");
    drop(publisher);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_says_so_while_the_origin_is_gone_and_chat_resumes_on_a_new_origin()
-> anyhow::Result<()> {
    const STREAM: &str = "failover";
    let Some(mut cluster) = cluster(&["a", "b"]).await? else {
        return Ok(());
    };
    let first = presenter(cluster.node("a"), STREAM).await?;
    let ana = member(cluster.node("b"), STREAM, "Ana", 2, false).await?;
    let chat = ana.chat()?;
    // The origin counts Ana (it has no viewer of its own): b forwards her chat there.
    wait_presence(first.chat()?, 1).await?;
    chat.say("before").await?;
    first.chat()?.wait_message("before", CHAT_TIMEOUT).await?;
    // Back on b too: b has it in its mirror of the chat.
    chat.wait_message("before", CHAT_TIMEOUT).await?;

    // The origin's process dies: what Ana writes now gets a clear error, not silence.
    cluster.node_mut("a").kill();
    let from = chat.len();
    chat.say("into the void").await?;
    let (code, message) = chat.wait_error_from(from, CHAT_TIMEOUT).await?;
    assert_eq!(code, ChatErrorCode::Unavailable, "{message}");
    drop(first);

    // The publisher comes back on b (once a's claim has run out): chat works again, with
    // the history b mirrored.
    let b = cluster.node("b");
    let second = wait_for("node b to take the publisher", CLUSTER_WITHIN, || async {
        Ok(presenter(b, STREAM).await.ok())
    })
    .await?;
    let host = second.chat()?;
    let history = host.wait_history(CHAT_TIMEOUT).await?;
    assert_eq!(
        history
            .messages
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["before"],
        "the new origin's history; Ana got {:?}",
        chat.received()
    );
    // A client retries `unavailable` (the SDK does): the authority follows the claim within
    // a heartbeat.
    let mut attempt = 0;
    let back = loop {
        attempt += 1;
        let from = host.len();
        let text = format!("back {attempt}");
        host.say(&text).await?;
        let outcome = host
            .wait_for_from(from, "the message or an error", CHAT_TIMEOUT, |m| match m {
                ChatServerMessage::Message(message) if message.text == text => {
                    Some(Ok(text.clone()))
                }
                ChatServerMessage::Error { code, message } => Some(Err((*code, message.clone()))),
                _ => None,
            })
            .await?;
        match outcome {
            Ok(text) => break text,
            Err((ChatErrorCode::Unavailable, _)) if attempt < 4 => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => anyhow::bail!("the chat did not resume: {error:?}"),
        }
    };
    chat.wait_message(&back, CHAT_TIMEOUT).await?;
    chat.say("and Ana too").await?;
    host.wait_message("and Ana too", CHAT_TIMEOUT).await?;
    Ok(())
}
