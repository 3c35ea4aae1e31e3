//! Bad chat input gets an `error` reply with the documented code, and the sender stays
//! connected: a valid message afterwards goes through, and nobody else ever sees the bad
//! ones. Display names outside 1–32 characters are refused before any peer is built.

use anyhow::Context;
use directo_tests::{CHAT_TIMEOUT, ClientError, TestServer, ViewerConfig};
use signaling_proto::{ChatErrorCode, ErrorCode};

const STREAM: &str = "rowdy";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_refused_and_the_channel_stays_open() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let ana = server
        .view_chat(STREAM, ViewerConfig::chat_as("Ana"))
        .await?;
    let bob = server
        .view_chat(STREAM, ViewerConfig::chat_as("Bob"))
        .await?;
    let chat = ana.chat()?;

    let oversize = format!(r#"{{"type":"chat.send","text":"{}"}}"#, "a".repeat(5000));
    let too_long = format!(r#"{{"type":"chat.send","text":"{}"}}"#, "é".repeat(501));
    let cases: [(&str, &str, ChatErrorCode); 11] = [
        ("over 4 KiB", &oversize, ChatErrorCode::TooLarge),
        ("501 characters", &too_long, ChatErrorCode::TextTooLong),
        (
            "empty text",
            r#"{"type":"chat.send","text":""}"#,
            ChatErrorCode::TextEmpty,
        ),
        (
            "only whitespace and control characters",
            r#"{"type":"chat.send","text":" \n\t\u0007 "}"#,
            ChatErrorCode::TextEmpty,
        ),
        ("not JSON", "hello? {", ChatErrorCode::BadRequest),
        ("a JSON array", "[1, 2]", ChatErrorCode::BadRequest),
        ("no type", r#"{"text":"hi"}"#, ChatErrorCode::BadRequest),
        (
            "an unknown type",
            r#"{"type":"chat.dance","moves":3}"#,
            ChatErrorCode::UnknownType,
        ),
        (
            "a known type without its fields",
            r#"{"type":"chat.send"}"#,
            ChatErrorCode::BadRequest,
        ),
        (
            "an unknown field",
            r#"{"type":"chat.send","text":"hi","bold":true}"#,
            ChatErrorCode::BadRequest,
        ),
        (
            "a reply to a message that does not exist",
            r#"{"type":"chat.send","text":"hi","reply_to":"00000000-0000-7000-8000-000000000000"}"#,
            ChatErrorCode::NotFound,
        ),
    ];
    // More refusals than the flood limit allows messages: refusals must not count against it.
    for (what, raw, expected) in cases {
        let from = chat.len();
        chat.send_raw(raw).await?;
        let (code, message) = chat
            .wait_error_from(from, CHAT_TIMEOUT)
            .await
            .with_context(|| format!("no error for {what}"))?;
        assert_eq!(code, expected, "{what}: {message}");
        assert!(
            !message.is_empty(),
            "{what}: the error should say what was wrong"
        );
    }
    assert_eq!(
        chat.link_state(),
        directo_tests::ChatLinkState::Open,
        "bad input closed the chat channel"
    );

    // Still connected: a valid message goes through, HTML and all, as plain text.
    let text = r#"<b>still</b> here & <script>alert(1)</script>"#;
    chat.say(text).await?;
    let message = bob.chat()?.wait_message(text, CHAT_TIMEOUT).await?;
    assert_eq!(message.from.name, "Ana");
    // Control characters are removed, the ends trimmed.
    chat.say("  tab\u{7}bed  ").await?;
    bob.chat()?.wait_message("tabbed", CHAT_TIMEOUT).await?;
    assert_eq!(
        bob.chat()?
            .messages()
            .into_iter()
            .map(|m| m.text)
            .collect::<Vec<_>>(),
        [text, "tabbed"],
        "a refused message reached another member"
    );
    assert!(bob.chat()?.other().is_empty() && chat.other().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_names_outside_1_to_32_characters_are_refused() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    for (what, name) in [
        ("33 characters", "n".repeat(33)),
        ("empty", String::new()),
        ("only spaces", "   ".to_owned()),
    ] {
        let error = match server.view(STREAM, ViewerConfig::chat_as(&name)).await {
            Ok(_) => anyhow::bail!("a viewer named {what} was accepted"),
            Err(error) => error,
        };
        assert_eq!(error.status(), Some(400), "{what}: {error}");
        assert_eq!(
            error.code(),
            Some(ErrorCode::InvalidName),
            "{what}: {error}"
        );
    }
    let long = "é".repeat(32);
    let viewer = server
        .view_chat(STREAM, ViewerConfig::chat_as(&long))
        .await?;
    viewer.chat()?.say("my name is long").await?;
    let message = viewer
        .chat()?
        .wait_message("my name is long", CHAT_TIMEOUT)
        .await?;
    assert_eq!(message.from.name, long);

    let refused = server.chat_ws(STREAM, Some(&"n".repeat(33)), None).await;
    assert!(
        matches!(&refused, Err(ClientError::Protocol(m)) if m.contains("InvalidName")),
        "a /ws chat join with a 33-character name: {:?}",
        refused.err()
    );
    Ok(())
}
