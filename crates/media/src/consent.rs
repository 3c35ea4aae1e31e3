//! ICE consent for a viewer whose `rtc` connection was released after setup
//! (`engine/release.rs`): its browser goes on sending STUN binding requests (consent
//! freshness, RFC 7675, about every 5 s; a new nomination if its network changes), and stops
//! sending to us — and so watching — if they go unanswered for 30 s. Answering one needs only
//! the local ICE password: the request's MESSAGE-INTEGRITY is checked with it and the success
//! response (the transaction id, XOR-MAPPED-ADDRESS of where it came from, MESSAGE-INTEGRITY,
//! FINGERPRINT) signed with it, as the full ICE agent would.
//!
//! Sans-IO: a datagram in, the response's bytes out.

use rtc::crypto::RTCCrypto;
use rtc::stun::attributes::{ATTR_USE_CANDIDATE, ATTR_USERNAME};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use rtc::stun::textattrs::Username;
use rtc::stun::xoraddr::XorMappedAddress;
use std::net::SocketAddr;

/// A binding request answered.
#[derive(Debug)]
pub(crate) struct Answered {
    /// The success response, to send back to where the request came from.
    pub(crate) response: Vec<u8>,
    /// Whether the request nominated this address (USE-CANDIDATE): media goes there now.
    pub(crate) nominated: bool,
}

/// Why a STUN datagram got no answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a STUN message, or not a binding request (a response or an indication).
    NotARequest,
    /// Its USERNAME does not start with our ufrag, or its MESSAGE-INTEGRITY is missing or wrong.
    Unauthenticated,
}

/// Answer a binding request to `ufrag`/`pwd` (our local ICE credentials) that came from `from`.
pub(crate) fn answer(
    datagram: &[u8],
    from: SocketAddr,
    ufrag: &str,
    pwd: &str,
    crypto: &dyn RTCCrypto,
) -> Result<Answered, Refused> {
    let mut request = Message::new();
    request
        .unmarshal_binary(datagram)
        .map_err(|_| Refused::NotARequest)?;
    if request.typ != BINDING_REQUEST {
        return Err(Refused::NotARequest);
    }
    let username =
        Username::get_from_as(&request, ATTR_USERNAME).map_err(|_| Refused::Unauthenticated)?;
    if username.text.split_once(':').map(|(ours, _)| ours) != Some(ufrag) {
        return Err(Refused::Unauthenticated);
    }
    let nominated = request.contains(ATTR_USE_CANDIDATE);
    MessageIntegrity::check(&mut request, pwd.as_bytes(), crypto)
        .map_err(|_| Refused::Unauthenticated)?;
    let mut response = Message::new();
    let setters: [Box<dyn Setter + '_>; 5] = [
        Box::new(request),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            pwd.to_owned(),
            crypto,
        )),
        Box::new(FINGERPRINT),
    ];
    response.build(&setters).map_err(|_| Refused::NotARequest)?;
    Ok(Answered {
        response: response.raw,
        nominated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::{Getter, TransactionId};
    use rtc::stun::textattrs::TextAttribute;

    const UFRAG: &str = "directoufrag";
    const PWD: &str = "directopasswordthatislongenough";

    struct UseCandidate;
    impl Setter for UseCandidate {
        fn add_to(&self, m: &mut Message) -> rtc::shared::error::Result<()> {
            m.add(ATTR_USE_CANDIDATE, &[]);
            Ok(())
        }
    }

    /// A binding request as a browser's ICE agent sends one, signed with `pwd`.
    fn request(username: &str, pwd: &str, nominate: bool, crypto: &dyn RTCCrypto) -> Vec<u8> {
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        ];
        if nominate {
            setters.push(Box::new(UseCandidate));
        }
        setters.push(Box::new(
            MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), crypto),
        ));
        setters.push(Box::new(FINGERPRINT));
        m.build(&setters).unwrap();
        m.raw
    }

    #[test]
    fn a_consent_check_is_answered_as_the_ice_agent_would() {
        let provider = rtc::crypto::default_provider().unwrap();
        let crypto = provider.crypto();
        let from: SocketAddr = "192.0.2.7:50123".parse().unwrap();
        let datagram = request(&format!("{UFRAG}:browser"), PWD, false, crypto);
        let answered = answer(&datagram, from, UFRAG, PWD, crypto).unwrap();
        assert!(!answered.nominated);

        let mut sent = Message::new();
        sent.unmarshal_binary(&datagram).unwrap();
        let mut response = Message::new();
        response.unmarshal_binary(&answered.response).unwrap();
        assert_eq!(response.typ, BINDING_SUCCESS);
        assert_eq!(response.transaction_id, sent.transaction_id);
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&response).unwrap();
        assert_eq!(SocketAddr::new(mapped.ip, mapped.port), from);
        FINGERPRINT.check(&response).unwrap();
        MessageIntegrity::check(&mut response, PWD.as_bytes(), crypto).unwrap();
    }

    #[test]
    fn a_nomination_is_reported() {
        let provider = rtc::crypto::default_provider().unwrap();
        let crypto = provider.crypto();
        let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let datagram = request(&format!("{UFRAG}:browser"), PWD, true, crypto);
        assert!(
            answer(&datagram, from, UFRAG, PWD, crypto)
                .unwrap()
                .nominated
        );
    }

    #[test]
    fn a_request_without_our_credentials_or_not_a_request_gets_nothing() {
        let provider = rtc::crypto::default_provider().unwrap();
        let crypto = provider.crypto();
        let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let wrong_pwd = request(
            &format!("{UFRAG}:browser"),
            "not-the-password",
            false,
            crypto,
        );
        let other_ufrag = request("someoneelse:browser", PWD, false, crypto);
        for datagram in [wrong_pwd, other_ufrag] {
            assert_eq!(
                answer(&datagram, from, UFRAG, PWD, crypto).unwrap_err(),
                Refused::Unauthenticated
            );
        }
        // A success response (what our own checks would get back) and garbage.
        let mut response = Message::new();
        response
            .build(&[Box::new(BINDING_SUCCESS), Box::new(TransactionId::new())])
            .unwrap();
        for datagram in [response.raw, vec![0u8, 1, 2, 3]] {
            assert_eq!(
                answer(&datagram, from, UFRAG, PWD, crypto).unwrap_err(),
                Refused::NotARequest
            );
        }
    }
}
