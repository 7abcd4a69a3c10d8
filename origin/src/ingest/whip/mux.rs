//! Every WHIP session on one UDP port. A datagram is routed to its session by
//! the ICE username of a STUN binding request (the session's ufrag, from its
//! answer), which also teaches the mux the client's address; DTLS, SRTP and
//! SRTCP are then routed by source address. Anything else is dropped and
//! counted, before any session sees it.
//!
//! Sans-IO: [`Mux::handle_datagram`] / [`Mux::handle_timeout`] with the time,
//! then [`Mux::poll_transmit`] until `None` and [`Mux::poll_ended`] until
//! `None`; call `handle_timeout` again at [`Mux::next_deadline`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use super::session::{Datagram, Session, State};
use super::stun;

/// What the mux needs of a session on the shared port: WHIP publishers
/// ([`Session`]) and WHEP viewers (`egress::whep`) alike. The drive contract is
/// str0m's (see [`Session`]).
pub trait Peer: Send + std::fmt::Debug {
    fn id(&self) -> &str;
    /// The ICE username fragment of this session's answer.
    fn local_ufrag(&self) -> &str;
    /// Whether the session claims this datagram (STUN: by ICE credentials).
    fn accepts(
        &self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool;
    fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    );
    fn handle_timeout(&mut self, now: Instant);
    /// Something outside the socket has work for the session (a viewer's
    /// frames arrived). Default: nothing to do.
    fn handle_wakeup(&mut self, _now: Instant) {}
    fn deadline(&self) -> Instant;
    fn poll_transmit(&mut self) -> Option<Datagram>;
    /// `Some(reason)` once the session ended.
    fn ended(&self) -> Option<&str>;
    fn end(&mut self, reason: &str);
}

impl Peer for Session {
    fn id(&self) -> &str {
        Session::id(self)
    }
    fn local_ufrag(&self) -> &str {
        Session::local_ufrag(self)
    }
    fn accepts(
        &self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        Session::accepts(self, now, source, destination, data)
    }
    fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        Session::handle_datagram(self, now, source, destination, data)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Session::handle_timeout(self, now)
    }
    fn deadline(&self) -> Instant {
        Session::deadline(self)
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        Session::poll_transmit(self)
    }
    fn ended(&self) -> Option<&str> {
        match self.state() {
            State::Ended(reason) => Some(reason),
            _ => None,
        }
    }
    fn end(&mut self, reason: &str) {
        Session::end(self, reason)
    }
}

impl<P: Peer + ?Sized> Peer for Box<P> {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn local_ufrag(&self) -> &str {
        (**self).local_ufrag()
    }
    fn accepts(
        &self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        (**self).accepts(now, source, destination, data)
    }
    fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        (**self).handle_datagram(now, source, destination, data)
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now)
    }
    fn handle_wakeup(&mut self, now: Instant) {
        (**self).handle_wakeup(now)
    }
    fn deadline(&self) -> Instant {
        (**self).deadline()
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        (**self).poll_transmit()
    }
    fn ended(&self) -> Option<&str> {
        (**self).ended()
    }
    fn end(&mut self, reason: &str) {
        (**self).end(reason)
    }
}

/// Counters for the socket loop's logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MuxStats {
    pub datagrams: u64,
    /// Datagrams no session claimed (unknown ufrag or address, garbage).
    pub unrouted: u64,
    pub sessions_started: u64,
    pub sessions_ended: u64,
}

#[derive(Debug)]
pub struct Mux<S: Peer = Session> {
    sessions: HashMap<String, S>,
    by_ufrag: HashMap<String, String>,
    by_addr: HashMap<SocketAddr, String>,
    /// Host candidates of this socket (what clients send to).
    candidates: Vec<SocketAddr>,
    out: VecDeque<Datagram>,
    ended: VecDeque<(String, String)>,
    stats: MuxStats,
}

impl<S: Peer> Mux<S> {
    pub fn new(candidates: Vec<SocketAddr>) -> Self {
        Self {
            sessions: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            candidates,
            out: VecDeque::new(),
            ended: VecDeque::new(),
            stats: MuxStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn stats(&self) -> MuxStats {
        self.stats
    }

    pub fn session(&self, id: &str) -> Option<&S> {
        self.sessions.get(id)
    }

    pub fn sessions(&self) -> impl Iterator<Item = &S> {
        self.sessions.values()
    }

    /// Takes a new session (its answer was sent). A session with the same id
    /// or ufrag replaces nothing: ids and ufrags are random.
    pub fn insert(&mut self, mut session: S) {
        self.stats.sessions_started += 1;
        self.by_ufrag
            .insert(session.local_ufrag().to_string(), session.id().to_string());
        while let Some(d) = session.poll_transmit() {
            self.out.push_back(d);
        }
        self.sessions.insert(session.id().to_string(), session);
    }

    /// Ends a session (DELETE, shutdown). False if there is no such session.
    pub fn end(&mut self, id: &str, reason: &str) -> bool {
        let Some(s) = self.sessions.get_mut(id) else {
            return false;
        };
        s.end(reason);
        self.collect(id);
        true
    }

    /// Ends every session.
    pub fn end_all(&mut self, reason: &str) {
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in ids {
            self.end(&id, reason);
        }
    }

    /// One datagram from `source`.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.stats.datagrams += 1;
        let id = if stun::is_stun(data) {
            stun::local_ufrag(data)
                .and_then(|u| self.by_ufrag.get(u))
                .cloned()
        } else {
            self.by_addr.get(&source).cloned()
        };
        let Some(id) = id else {
            self.stats.unrouted += 1;
            return;
        };
        let destination = self.destination_for(source);
        let Some(session) = self.sessions.get_mut(&id) else {
            self.stats.unrouted += 1;
            return;
        };
        if stun::is_stun(data) {
            if !session.accepts(now, source, destination, data) {
                self.stats.unrouted += 1;
                return;
            }
            // The client's address for what follows (DTLS, SRTP). A client that
            // moves (new network) is found again by its next binding request.
            self.by_addr.insert(source, id.clone());
        }
        session.handle_datagram(now, source, destination, data);
        self.collect(&id);
    }

    /// Drives every session whose deadline has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.deadline() <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.handle_timeout(now);
            }
            self.collect(&id);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.sessions.values().map(S::deadline).min()
    }

    /// Work from outside the socket (viewers' frames): every session looks.
    pub fn handle_wakeup(&mut self, now: Instant) {
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in ids {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.handle_wakeup(now);
            }
            self.collect(&id);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    /// Sessions that ended since the last call: `(id, reason)`.
    pub fn poll_ended(&mut self) -> Option<(String, String)> {
        self.ended.pop_front()
    }

    /// Moves a session's datagrams out; forgets it once it ended.
    fn collect(&mut self, id: &str) {
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        while let Some(d) = s.poll_transmit() {
            self.out.push_back(d);
        }
        if let Some(reason) = s.ended() {
            let reason = reason.to_string();
            if let Some(s) = self.sessions.remove(id) {
                self.by_ufrag.remove(s.local_ufrag());
            }
            self.by_addr.retain(|_, v| v != id);
            self.stats.sessions_ended += 1;
            self.ended.push_back((id.to_string(), reason));
        }
    }

    /// The host candidate a datagram from `source` was sent to. The socket may
    /// be bound to a wildcard address, so this is inferred: a loopback client
    /// reached the loopback candidate, others the first candidate of their
    /// address family.
    fn destination_for(&self, source: SocketAddr) -> SocketAddr {
        let same_family = |c: &&SocketAddr| c.is_ipv4() == source.is_ipv4();
        self.candidates
            .iter()
            .filter(same_family)
            .find(|c| c.ip().is_loopback() == source.ip().is_loopback())
            .or_else(|| self.candidates.iter().find(same_family))
            .or(self.candidates.first())
            .copied()
            .unwrap_or(source)
    }

    /// Invariants after every step (tests and fuzzing check them).
    pub fn check_invariants(&self) {
        assert_eq!(self.by_ufrag.len(), self.sessions.len());
        for (ufrag, id) in &self.by_ufrag {
            let s = &self.sessions[id];
            assert_eq!(s.local_ufrag(), ufrag);
            assert!(s.ended().is_none());
        }
        for id in self.by_addr.values() {
            assert!(self.sessions.contains_key(id));
        }
    }
}
