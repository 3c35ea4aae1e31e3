//! The media engine's demultiplexer with 1,000 sessions on the shared port: routing a media
//! datagram from a known address (the per-packet case: one hash lookup) and a STUN binding
//! request by its USERNAME (the first contact of a session, or a consent check).

mod common;

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};

use common::quick;
use criterion::{Criterion, criterion_group, criterion_main};
use directo_media::Demuxer;
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::{BINDING_REQUEST, Message, TransactionId};
use rtc::stun::textattrs::Username;

const SESSIONS: u64 = 1000;

fn address(index: u64) -> SocketAddr {
    SocketAddr::from((
        Ipv4Addr::new(10, 0, (index / 250) as u8, (index % 250) as u8),
        50_000,
    ))
}

fn binding_request(ufrag: &str) -> Vec<u8> {
    let mut message = Message::new();
    message
        .build(&[
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(Username::new(ATTR_USERNAME, format!("{ufrag}:remote"))),
        ])
        .expect("a STUN message");
    message.raw.clone()
}

fn demux(c: &mut Criterion) {
    let mut demuxer = Demuxer::default();
    let mut requests = Vec::new();
    for index in 0..SESSIONS {
        let ufrag = format!("ufrag{index:04}");
        demuxer.add_peer(&ufrag, index);
        let request = binding_request(&ufrag);
        demuxer.route(address(index), &request);
        requests.push(request);
    }
    // An SRTP packet's first bytes (RTP version 2, payload type 96); routing never reads more.
    let mut media = vec![0u8; 1200];
    media[0] = 0x80;
    media[1] = 96;
    let mut group = c.benchmark_group("demux_1000_sessions");
    let mut next = 0u64;
    group.bench_function("media_from_known_address", |b| {
        b.iter(|| {
            next = (next + 1) % SESSIONS;
            black_box(demuxer.route(address(next), &media))
        })
    });
    group.bench_function("stun_binding_request", |b| {
        b.iter(|| {
            next = (next + 1) % SESSIONS;
            black_box(demuxer.route(address(next), &requests[next as usize]))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = demux
}
criterion_main!(benches);
