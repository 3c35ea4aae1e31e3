//! Forwarding one publisher packet to N viewers in `directo_sfu::Stream` (on_rtp plus
//! draining the outputs), and then SRTP-encrypting every viewer's copy with `rtc::srtp`
//! under AEAD_AES_128_GCM and under AES_CM_128_HMAC_SHA1_80: the per-viewer cost of one
//! packet with and without the encryption the media engine adds. Throughput is per viewer.

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{FIRST_VIEWER, PUBLISHER, quick, stream_with_viewers};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use directo_sfu::Output;
use rtc::rtp::header::Header;
use rtc::shared::marshal::Marshal;
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    for viewers in [10u64, 100, 1000] {
        let now = Instant::now();
        let (mut stream, mut source) = stream_with_viewers(viewers, now);
        group.throughput(Throughput::Elements(viewers));
        group.bench_function(BenchmarkId::from_parameter(viewers), |b| {
            b.iter(|| {
                stream.on_rtp(PUBLISHER, source.next_packet(), now);
                while let Some(output) = stream.poll_output() {
                    black_box(output);
                }
            })
        });
    }
    group.finish();
}

/// One SRTP context per viewer, as each viewer's DTLS handshake derives its own keys.
fn contexts(viewers: u64, profile: ProtectionProfile) -> Vec<Context> {
    let provider = rtc::crypto::default_provider().expect("a built-in crypto provider");
    (0..viewers)
        .map(|index| {
            let key: Vec<u8> = (0..profile.key_len())
                .map(|i| (i as u64 ^ index) as u8)
                .collect();
            let salt: Vec<u8> = (0..profile.salt_len()).map(|i| (i * 7) as u8).collect();
            Context::new(&key, &salt, profile, None, None, provider.crypto())
                .expect("a valid SRTP context")
        })
        .collect()
}

fn forward_and_encrypt(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward_encrypt");
    let viewers = 100u64;
    group.throughput(Throughput::Elements(viewers));
    for (name, profile) in [
        ("aes128gcm", ProtectionProfile::AeadAes128Gcm),
        ("aes128cm_sha1_80", ProtectionProfile::Aes128CmHmacSha1_80),
    ] {
        let now = Instant::now();
        let (mut stream, mut source) = stream_with_viewers(viewers, now);
        let mut contexts = contexts(viewers, profile);
        group.bench_function(BenchmarkId::new(name, viewers), |b| {
            b.iter(|| {
                stream.on_rtp(PUBLISHER, source.next_packet(), now);
                while let Some(output) = stream.poll_output() {
                    if let Output::Rtp {
                        subscriber, packet, ..
                    } = output
                    {
                        let plain = packet.marshal().expect("marshal");
                        let context = &mut contexts[(subscriber - FIRST_VIEWER) as usize];
                        black_box(
                            context
                                .encrypt_rtp_with_header(&plain, &packet.header)
                                .expect("encrypt"),
                        );
                    }
                }
            })
        });
    }
    group.finish();
}

fn encrypt_one(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_encrypt_1100B");
    group.throughput(Throughput::Elements(1));
    for (name, profile) in [
        ("aes128gcm", ProtectionProfile::AeadAes128Gcm),
        ("aes128cm_sha1_80", ProtectionProfile::Aes128CmHmacSha1_80),
    ] {
        let mut context = contexts(1, profile).remove(0);
        let (_, mut source) = common::PacketSource::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                let packet = source.next_packet();
                let header: &Header = &packet.header;
                let plain = packet.marshal().expect("marshal");
                black_box(
                    context
                        .encrypt_rtp_with_header(&plain, header)
                        .expect("encrypt"),
                );
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = forward, forward_and_encrypt, encrypt_one
}
criterion_main!(benches);
