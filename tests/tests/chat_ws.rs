//! Chat without WebRTC: a `/ws` `join` with no SDP makes the socket a chat member. It hears
//! the data-channel members and they hear it, in one room; a moderator on `/ws` moderates
//! everyone; chat sent on a socket that never joined the chat is refused.

use directo_tests::{CHAT_TIMEOUT, ServerOptions, TestServer, ViewerConfig, WsClient};
use signaling_proto::{
    ChatClientMessage, ChatErrorCode, ChatRole, ChatServerMessage, ErrorCode, ServerMessage,
};

const STREAM: &str = "lobby";
const MODERATOR_KEY: &str = "test-moderator-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_members_and_data_channel_members_share_one_chat() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        moderator_key: Some(MODERATOR_KEY.to_owned()),
        ..ServerOptions::default()
    })
    .await?;
    let dana = server
        .view_chat(STREAM, ViewerConfig::chat_as("Dana"))
        .await?;
    let wes = server.chat_ws(STREAM, Some("Wes"), None).await?;
    wes.wait_history(CHAT_TIMEOUT).await?;
    let moderator = server
        .chat_ws(STREAM, Some("Mo"), Some(MODERATOR_KEY))
        .await?;
    moderator.wait_history(CHAT_TIMEOUT).await?;

    // Socket members count as viewers too.
    directo_tests::wait_until("presence to count 3 viewers", CHAT_TIMEOUT, || {
        dana.chat().is_ok_and(|c| c.presence() == Some(3))
    })
    .await?;

    dana.chat()?.say("hello from WebRTC").await?;
    let from_dana = wes.wait_message("hello from WebRTC", CHAT_TIMEOUT).await?;
    assert_eq!(from_dana.from.name, "Dana");
    assert_eq!(from_dana.from.role, ChatRole::Viewer);

    wes.reply("hello from a socket", &from_dana.id).await?;
    let from_wes = dana
        .chat()?
        .wait_message("hello from a socket", CHAT_TIMEOUT)
        .await?;
    assert_eq!(from_wes.from.name, "Wes");
    assert_eq!(from_wes.reply_to.as_ref(), Some(&from_dana.id));

    // A socket viewer cannot moderate; a socket moderator can.
    let from = wes.len();
    wes.send(&ChatClientMessage::Delete {
        id: from_dana.id.clone(),
    })
    .await?;
    assert_eq!(
        wes.wait_error_from(from, CHAT_TIMEOUT).await?.0,
        ChatErrorCode::Forbidden
    );
    moderator
        .send(&ChatClientMessage::Delete {
            id: from_dana.id.clone(),
        })
        .await?;
    let deleted = |m: &ChatServerMessage| {
        matches!(m, ChatServerMessage::Deleted { id } if *id == from_dana.id).then_some(())
    };
    dana.chat()?
        .wait_for("chat.deleted", CHAT_TIMEOUT, deleted)
        .await?;
    wes.wait_for("chat.deleted", CHAT_TIMEOUT, deleted).await?;
    moderator.say("thanks all").await?;
    let note = dana
        .chat()?
        .wait_message("thanks all", CHAT_TIMEOUT)
        .await?;
    assert_eq!(note.from.role, ChatRole::Moderator);

    // Bad chat input on a socket is refused the same way, and the socket stays a member.
    let from = wes.len();
    wes.send_raw(&format!(
        r#"{{"type":"chat.send","text":"{}"}}"#,
        "a".repeat(5000)
    ))
    .await?;
    assert_eq!(
        wes.wait_error_from(from, CHAT_TIMEOUT).await?.0,
        ChatErrorCode::TooLarge
    );
    wes.say("still here").await?;
    dana.chat()?
        .wait_message("still here", CHAT_TIMEOUT)
        .await?;

    // Leaving the socket leaves the chat.
    wes.close().await?;
    directo_tests::wait_until("presence to drop to 2 viewers", CHAT_TIMEOUT, || {
        dana.chat().is_ok_and(|c| c.presence() == Some(2))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_on_a_socket_that_did_not_join_is_refused() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    ws.send_text(r#"{"type":"chat.send","text":"hi"}"#).await?;
    match ws.recv(CHAT_TIMEOUT).await? {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::BadRequest),
        other => anyhow::bail!("expected an error, got {other:?}"),
    }
    Ok(())
}
