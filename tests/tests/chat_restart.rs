//! The chat outlives the process: after the server is killed and started again on the same
//! data directory, a new viewer's history holds the messages from before, without the
//! deleted one and with the pin, and `GET /api/streams/{stream}/chat` exports them all.

use anyhow::Context;
use directo_tests::{CHAT_TIMEOUT, ServerOptions, TestServer, Viewer, ViewerConfig};
use signaling_proto::{ChatClientMessage, ChatMessage, ChatRole, ChatServerMessage};

const STREAM: &str = "persistent";
const MODERATOR_KEY: &str = "test-moderator-key";

/// Posts `text` as `author` (a reply to `reply_to` if given) and waits until `witness` got it.
async fn post(
    author: &Viewer,
    witness: &Viewer,
    text: &str,
    reply_to: Option<&ChatMessage>,
) -> anyhow::Result<ChatMessage> {
    match reply_to {
        Some(to) => author.chat()?.reply(text, &to.id).await?,
        None => author.chat()?.say(text).await?,
    }
    witness
        .chat()?
        .wait_message(text, CHAT_TIMEOUT)
        .await
        .with_context(|| format!("{text:?} was not delivered"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_crash_and_the_log_exports() -> anyhow::Result<()> {
    let mut server = TestServer::start_with(ServerOptions {
        moderator_key: Some(MODERATOR_KEY.to_owned()),
        ..ServerOptions::default()
    })
    .await?;
    let ana = server
        .view_chat(STREAM, ViewerConfig::chat_as("Ana"))
        .await?;
    let moderator = server
        .view_chat(
            STREAM,
            ViewerConfig {
                bearer: Some(MODERATOR_KEY.to_owned()),
                ..ViewerConfig::chat_as("Mia")
            },
        )
        .await?;

    let question = post(&ana, &moderator, "is this recorded?", None).await?;
    let oops = post(&ana, &moderator, "my phone number is 555-0100", None).await?;
    let answer = post(&moderator, &ana, "yes, and so is the chat", Some(&question)).await?;
    moderator
        .chat()?
        .send(&ChatClientMessage::Delete {
            id: oops.id.clone(),
        })
        .await?;
    moderator
        .chat()?
        .send(&ChatClientMessage::Pin {
            id: Some(answer.id.clone()),
        })
        .await?;
    // Delivered means logged: the log is written before anyone is told.
    ana.chat()?
        .wait_for("chat.pinned", CHAT_TIMEOUT, |m| {
            matches!(m, ChatServerMessage::Pinned { message: Some(_) }).then_some(())
        })
        .await?;
    drop((ana, moderator));

    server
        .restart()
        .await
        .context("the server did not come back")?;

    let cleo = server
        .view_chat(STREAM, ViewerConfig::chat_as("Cleo"))
        .await
        .context("no chat after the restart")?;
    let history = cleo.chat()?.wait_history(CHAT_TIMEOUT).await?;
    assert_eq!(
        history.messages,
        [question.clone(), answer.clone()],
        "the history after a restart"
    );
    assert_eq!(history.pinned.as_ref(), Some(&answer));
    assert_eq!(history.messages[1].from.role, ChatRole::Moderator);
    assert_eq!(
        history.messages[1].reply_to.as_ref(),
        Some(&question.id),
        "the reply lost its link"
    );

    // The chat carries on after the restart, and the next id still sorts after the old ones.
    let after = post(&cleo, &cleo, "welcome back", None).await?;
    assert!(after.id > answer.id, "{} vs {}", after.id, answer.id);

    let export = server.chat_export(STREAM).await?;
    let exported: Vec<(&ChatMessage, bool)> =
        export.iter().map(|m| (&m.message, m.deleted)).collect();
    assert_eq!(
        exported,
        [
            (&question, false),
            (&oops, true),
            (&answer, false),
            (&after, false)
        ],
        "the export keeps every message, deleted ones marked"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_chat_exports_an_empty_log() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    assert!(server.chat_export("never-used").await?.is_empty());
    Ok(())
}
