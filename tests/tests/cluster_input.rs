//! A stream name, a token or a session id from outside never reaches a Redis command
//! unchecked: hostile ones are refused (`400`, `401`, `404`) on a node of a cluster, and
//! Redis' `MONITOR` shows that no command carried them.

use directo_tests::{Cluster, WsClient};
use signaling_proto::{ClientMessage, Role, ServerMessage};
use std::time::Duration;

/// Every hostile value carries this marker, so MONITOR's log can be searched for it.
const MARK: &str = "evil";

fn hostile_names() -> Vec<String> {
    vec![
        format!("{MARK}:key"),
        format!("{MARK}*"),
        format!("{MARK}%0D%0AFLUSHALL"),
        format!("{MARK}%20name"),
        format!("{MARK}.."),
        format!("{MARK}{}", "x".repeat(70)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_refused_before_redis_sees_them() -> anyhow::Result<()> {
    let Some(cluster) = Cluster::start(&["a"]).await? else {
        return Ok(());
    };
    let node = cluster.node("a");
    let http = node.http();
    let admin = cluster.token("admin", "*", None).await?;
    let monitor = cluster.redis().monitor().await;

    for name in hostile_names() {
        let sdp = |request: reqwest::RequestBuilder| {
            request
                .header("content-type", "application/sdp")
                .body("v=0\r\n")
        };
        let whip = sdp(http.post(node.url(&format!("whip/{name}"))))
            .bearer_auth(node.publish_key())
            .send()
            .await?;
        let whep = sdp(http.post(node.url(&format!("whep/{name}"))))
            .send()
            .await?;
        let info = http
            .get(node.url(&format!("api/streams/{name}")))
            .send()
            .await?;
        let end = http
            .delete(node.url(&format!("api/admin/streams/{name}")))
            .bearer_auth(&admin)
            .send()
            .await?;
        for (what, response) in [("whip", whip), ("whep", whep), ("info", info), ("end", end)] {
            let status = response.status().as_u16();
            assert!(
                status == 400 || status == 404,
                "{what} of {name:?} answered {status}"
            );
        }
        let kick = http
            .delete(node.url(&format!("api/admin/streams/ok/sessions/{name}")))
            .bearer_auth(&admin)
            .send()
            .await?;
        assert_eq!(kick.status().as_u16(), 404, "kick of session {name:?}");
    }

    // Forged tokens are refused before anything is looked up.
    let forged = format!("{MARK}.{MARK}.{MARK}");
    let whep = http
        .post(node.url(&format!("whep/ok?token={forged}")))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    assert_eq!(whep.status().as_u16(), 401);
    let whip = http
        .post(node.url("whip/ok"))
        .bearer_auth(&forged)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    assert_eq!(whip.status().as_u16(), 401);

    let mut ws = WsClient::connect(&node.ws_url()).await?;
    ws.send(&ClientMessage::Join {
        stream: format!("{MARK}:ws"),
        role: Role::Publisher,
        key: Some(node.publish_key().to_owned()),
        name: None,
        sdp: Some("v=0\r\n".into()),
    })
    .await?;
    let reply = ws.recv(Duration::from_secs(10)).await?;
    assert!(matches!(reply, ServerMessage::Error { .. }), "{reply:?}");

    // A valid name, by the same path, does reach Redis: the tap sees what the node sends.
    let control = http
        .get(node.url("api/streams/control-name"))
        .send()
        .await?;
    assert_eq!(control.status().as_u16(), 404);

    let commands = monitor.commands().await;
    let leaked: Vec<&String> = commands.iter().filter(|c| c.contains(MARK)).collect();
    assert!(leaked.is_empty(), "hostile input reached Redis: {leaked:?}");
    assert!(
        commands.iter().any(|c| c.contains("control-name")),
        "MONITOR did not see the valid name's lookup: the check would prove nothing"
    );
    Ok(())
}
