//! Which peer a datagram on the shared media port belongs to.
//!
//! Every peer shares one UDP port. A new remote address is only ever learned from a STUN
//! binding request whose USERNAME starts with a local ufrag we issued (`ours:theirs`); after
//! that the 4-tuple is cached, so DTLS, SRTP and SCTP datagrams route with one hash lookup.
//! A datagram from an unknown address that is not such a STUN request is dropped: nobody can
//! inject into a session without its ICE credentials.

use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::{Message, is_stun_message};
use rtc::stun::textattrs::Username;
use std::collections::HashMap;
use std::net::SocketAddr;

use directo_sfu::PeerId;

/// Routes datagrams to peers by remote address, learned from STUN usernames.
#[derive(Debug, Default)]
pub struct Demuxer {
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
}

impl Demuxer {
    /// Register the local ufrag issued to `peer`.
    pub fn add_peer(&mut self, ufrag: &str, peer: PeerId) {
        self.by_ufrag.insert(ufrag.to_owned(), peer);
    }

    /// Forget `peer`: its ufrag and every address it used.
    pub fn remove_peer(&mut self, ufrag: &str, peer: PeerId) {
        self.by_ufrag.remove(ufrag);
        self.by_addr.retain(|_, p| *p != peer);
    }

    /// The peer a datagram from `from` belongs to, if any.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<PeerId> {
        if is_stun_message(datagram)
            && let Some(peer) = self.route_stun(datagram)
        {
            // A STUN check may move a session to a new address (network change, ICE restart).
            self.by_addr.insert(from, peer);
            return Some(peer);
        }
        self.by_addr.get(&from).copied()
    }

    fn route_stun(&self, datagram: &[u8]) -> Option<PeerId> {
        let mut message = Message::new();
        message.unmarshal_binary(datagram).ok()?;
        let username = Username::get_from_as(&message, ATTR_USERNAME).ok()?;
        let local = username.text.split_once(':')?.0;
        self.by_ufrag.get(local).copied()
    }
}
