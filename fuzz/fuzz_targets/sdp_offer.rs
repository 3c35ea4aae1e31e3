//! SDP offers as WHIP, WHEP and `/ws` receive them, through the media engine's public
//! surface (`EngineHandle::publish` and `watch`, which check the offer and then negotiate
//! it), and the SDP parser alone: nothing panics, the engine keeps answering, and every
//! session an offer opened is closed again.
#![no_main]

use directo_media::{EngineHandle, Identity, MediaConfig};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::sync::OnceLock;

struct Engine {
    runtime: tokio::runtime::Runtime,
    handle: EngineHandle,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let handle = {
            let _entered = runtime.enter();
            directo_media::start(
                MediaConfig {
                    bind: "127.0.0.1:0".parse().expect("an address"),
                    public_ips: vec!["127.0.0.1".parse().expect("an address")],
                    ..MediaConfig::default()
                },
                None,
            )
            .expect("the media engine starts")
        };
        Engine { runtime, handle }
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = rtc::sdp::SessionDescription::unmarshal(&mut Cursor::new(data));
    let Ok(offer) = std::str::from_utf8(data) else {
        return;
    };
    let engine = engine();
    engine.runtime.block_on(async {
        let handle = &engine.handle;
        if let Ok(answer) = handle
            .publish("fuzz", offer.to_owned(), Identity::default())
            .await
        {
            handle
                .close(&answer.session)
                .await
                .expect("close a publisher");
        }
        if let Ok(answer) = handle
            .watch("fuzz", offer.to_owned(), Identity::default())
            .await
        {
            handle.close(&answer.session).await.expect("close a viewer");
        }
        // The engine is still alive.
        handle.streams().await.expect("the engine answers");
    });
});
