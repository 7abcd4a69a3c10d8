//! One room's rules, on caller-supplied time: what a socket gets when it
//! joins, what each frame does, what is broadcast, and when the room wants
//! to be woken. The Durable Object feeds it events and carries out the
//! [`Output`]s; it never touches a socket or a clock itself.
//!
//! Drive contract:
//! - a socket accepted → [`Room::open`]; each text or binary frame →
//!   [`Room::frame`]; a socket gone → [`Room::closed`];
//! - the time of the last [`Output::WakeAt`] reached → [`Room::wake`]
//!   (reactions and viewer counts are flushed there);
//! - moderation from HTTP → [`Room::moderate`]; VOD replay → [`Room::history`];
//! - the edge saw a publish session start or end → [`Room::announce`];
//! - after each call, perform every output in order: `Send` and `Close` go to
//!   the socket the event came from, `Broadcast` to every socket in the room
//!   (the sender included), `CloseUser` to every socket of that user or
//!   address.
//!
//! What is in memory here (rate-limit buckets, the open reaction window,
//! when viewers were last counted) may be lost whenever the Durable Object
//! is evicted; everything that must survive is in the [`Store`] or in the
//! socket's [`Conn`] (its hibernation attachment).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use super::notices::{advances, StreamEvent};
use super::rate::{take_all, Buckets};
use super::reactions::{Added, Aggregator};
use super::schema::{
    parse_client, parse_frame, Ban, ClientMessage, ErrorCode, ParseLimits, Parsed, PublicLimits,
    Refusal, ServerMessage, StreamState, SystemEvent, EMOJI,
};
use super::store::{BanRecord, NewMessage, Store};

/// WebSocket close codes the room uses.
pub mod close {
    /// Policy violation: too many refused or rate-limited frames in a row.
    pub const POLICY: u16 = 1008;
    /// A frame of `close_frame_bytes` or more.
    pub const TOO_BIG: u16 = 1009;
    /// Banned by a moderator (application code).
    pub const BANNED: u16 = 4003;
}

/// One socket, as stored in its hibernation attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conn {
    /// Unique per socket in this room.
    pub id: String,
    pub user: String,
    pub name: String,
    /// The name came from the token; `join` cannot change it.
    #[serde(default)]
    pub name_fixed: bool,
    #[serde(default, rename = "mod")]
    pub moderator: bool,
    #[serde(default)]
    pub ip: Option<String>,
}

/// A frame as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Text(&'a str),
    /// A binary frame of this many bytes.
    Binary(usize),
}

/// What the Durable Object must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// To the socket the event came from.
    Send(String),
    /// To every socket in the room.
    Broadcast(String),
    /// Close the socket the event came from.
    Close { code: u16, reason: &'static str },
    /// Close every socket of `user` and of these addresses.
    CloseUser {
        user: String,
        ips: Vec<String>,
        code: u16,
        reason: &'static str,
    },
    /// Call [`Room::wake`] at this time (ms). A later `WakeAt` replaces an
    /// earlier one only if it is sooner.
    WakeAt(u64),
    /// Something for the log (storage failures).
    Log(String),
}

/// Strikes: frames in a row dropped or refused.
#[derive(Debug, Default, Clone, Copy)]
struct Strikes {
    count: u32,
    /// When a `rate_limited` notice last went out (at most one a second).
    noticed_at: Option<u64>,
}

/// What kind of frame, for rate limiting.
#[derive(Clone, Copy)]
enum Budget {
    Chat,
    React,
    Control,
}

/// A history request (VOD replay, or a page catching up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Timeline range `[from, to)`, ms since 1970. `None`: the last messages.
    pub range: Option<(i64, i64)>,
    pub limit: Option<usize>,
}

impl HistoryQuery {
    /// From `from=<ms>&to=<ms>&limit=<n>` (all optional; `to` defaults to
    /// one hour after `from`).
    pub fn parse(query: &str) -> Result<Self, Refusal> {
        let num = |name: &str| -> Result<Option<i64>, Refusal> {
            match crate::query::param(query, name) {
                None => Ok(None),
                Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                    Refusal::new(ErrorCode::BadRequest, format!("`{name}` is an integer"))
                }),
            }
        };
        let from = num("from")?;
        let to = num("to")?;
        let limit = num("limit")?;
        let range = match (from, to) {
            (None, None) => None,
            (Some(f), t) => {
                let t = t.unwrap_or(f.saturating_add(3_600_000));
                if t < f {
                    return Err(Refusal::new(ErrorCode::BadRequest, "`to` before `from`"));
                }
                Some((f, t))
            }
            (None, Some(_)) => {
                return Err(Refusal::new(ErrorCode::BadRequest, "`to` needs `from`"));
            }
        };
        let limit = match limit {
            Some(l) if l <= 0 => {
                return Err(Refusal::new(ErrorCode::BadRequest, "`limit` is positive"))
            }
            l => l.and_then(|l| usize::try_from(l).ok()),
        };
        Ok(Self { range, limit })
    }
}

/// One room.
#[derive(Debug)]
pub struct Room {
    limits: Limits,
    chat_conn: Buckets,
    chat_ip: Buckets,
    react_conn: Buckets,
    react_ip: Buckets,
    control: Buckets,
    strikes: HashMap<String, Strikes>,
    reactions: Aggregator,
    /// When the viewer count was last broadcast, and what it was.
    presence_sent: Option<(u64, usize)>,
    /// Joins or leaves since the last viewer count.
    presence_dirty: bool,
    /// The earliest wake asked for and not yet seen.
    wake_at: Option<u64>,
}

/// Prune storage every this many messages (by id).
const PRUNE_EVERY: i64 = 100;

/// Anonymous ids for the counters of frames without an address.
const NO_IP: &str = "-";

impl Room {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            chat_conn: Buckets::default(),
            chat_ip: Buckets::default(),
            react_conn: Buckets::default(),
            react_ip: Buckets::default(),
            control: Buckets::default(),
            strikes: HashMap::new(),
            reactions: Aggregator::default(),
            presence_sent: None,
            presence_dirty: false,
            wake_at: None,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether a room with `viewers` sockets takes no more.
    pub fn is_full(&self, viewers: usize) -> bool {
        viewers >= self.limits.max_connections
    }

    fn parse_limits(&self) -> ParseLimits {
        ParseLimits {
            max_text_chars: self.limits.max_text_chars,
            max_name_chars: self.limits.max_name_chars,
        }
    }

    fn schedule(&mut self, at: u64, out: &mut Vec<Output>) {
        if self.wake_at.is_none_or(|w| at < w) {
            self.wake_at = Some(at);
            out.push(Output::WakeAt(at));
        }
    }

    fn presence_changed(&mut self, now: u64, out: &mut Vec<Output>) {
        self.presence_dirty = true;
        let at = match self.presence_sent {
            Some((sent, _)) => sent
                .saturating_add(self.limits.presence_interval_ms)
                .max(now),
            None => now,
        };
        self.schedule(at, out);
    }

    /// A socket was accepted; `viewers` counts it. Banned users and
    /// addresses get an error and are closed (4003); everyone else gets
    /// `welcome` and `history`.
    pub fn open(
        &mut self,
        conn: &Conn,
        store: &mut impl Store,
        viewers: usize,
        now: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let ip_subject = conn.ip.as_deref().map(BanRecord::ip_subject);
        let mut subjects = vec![conn.user.as_str()];
        if let Some(s) = &ip_subject {
            subjects.push(s);
        }
        match store.banned(&subjects, now as i64) {
            Ok(Some(_)) => {
                out.push(Output::Send(
                    ServerMessage::error(Refusal::new(ErrorCode::Banned, "banned from this chat"))
                        .to_json(),
                ));
                out.push(Output::Close {
                    code: close::BANNED,
                    reason: "banned",
                });
                return out;
            }
            Ok(None) => {}
            Err(e) => out.push(Output::Log(e.to_string())),
        }
        out.push(Output::Send(
            ServerMessage::Welcome {
                user: conn.user.clone(),
                name: conn.name.clone(),
                moderator: conn.moderator,
                viewers,
                ts: now as i64,
                limits: PublicLimits {
                    max_text_chars: self.limits.max_text_chars,
                    max_name_chars: self.limits.max_name_chars,
                    max_frame_bytes: self.limits.max_frame_bytes,
                    emoji: EMOJI,
                },
            }
            .to_json(),
        ));
        let messages = match store.recent(self.limits.history_on_join) {
            Ok(m) => m,
            Err(e) => {
                out.push(Output::Log(e.to_string()));
                Vec::new()
            }
        };
        let events = match store.streams(None, self.limits.history_on_join) {
            Ok(e) => e,
            Err(e) => {
                out.push(Output::Log(e.to_string()));
                Vec::new()
            }
        };
        out.push(Output::Send(
            ServerMessage::History {
                messages,
                reactions: Vec::new(),
                events,
                more: None,
            }
            .to_json(),
        ));
        self.presence_changed(now, &mut out);
        out
    }

    /// A socket is gone; `viewers` no longer counts it.
    pub fn closed(&mut self, conn: &Conn, now: u64) -> Vec<Output> {
        for b in [&mut self.chat_conn, &mut self.react_conn, &mut self.control] {
            b.remove(&conn.id);
        }
        self.strikes.remove(&conn.id);
        let mut out = Vec::new();
        self.presence_changed(now, &mut out);
        out
    }

    /// One frame from `conn`. `conn` may change (`join`): store it again
    /// (the socket's attachment) if it did. `ips_of(user)` gives the
    /// addresses a user's sockets come from (for a moderator's `ban` with
    /// `ip`; only called then).
    pub fn frame(
        &mut self,
        conn: &mut Conn,
        frame: Frame<'_>,
        store: &mut impl Store,
        ips_of: &dyn Fn(&str) -> Vec<String>,
        now: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let len = match frame {
            Frame::Text(t) => t.len(),
            Frame::Binary(n) => n,
        };
        if len >= self.limits.close_frame_bytes {
            out.push(Output::Close {
                code: close::TOO_BIG,
                reason: "message too big",
            });
            return out;
        }
        let refused = |r| Parsed {
            message: Err(r),
            sent: None,
        };
        let Parsed {
            message: parsed,
            sent,
        } = match frame {
            Frame::Binary(_) => refused(Refusal::new(ErrorCode::Binary, "frames are JSON text")),
            Frame::Text(t) if t.len() > self.limits.max_frame_bytes => refused(Refusal::new(
                ErrorCode::TooLarge,
                format!("frames are at most {} bytes", self.limits.max_frame_bytes),
            )),
            Frame::Text(t) => parse_frame(t, self.parse_limits()),
        };
        let budget = match &parsed {
            Ok(ClientMessage::Chat { .. }) => Budget::Chat,
            Ok(ClientMessage::React { .. }) => Budget::React,
            _ => Budget::Control,
        };
        if let Err(retry_ms) = self.take(conn, budget, self.charged_at(sent, now)) {
            self.strike(conn, now, Some(retry_ms), &mut out);
            return out;
        }
        let msg = match parsed {
            Ok(m) => m,
            Err(refusal) => {
                out.push(Output::Send(ServerMessage::error(refusal).to_json()));
                self.strike(conn, now, None, &mut out);
                return out;
            }
        };
        match self.handle(conn, msg, store, ips_of, now, &mut out) {
            Ok(()) => {
                if let Some(s) = self.strikes.get_mut(&conn.id) {
                    s.count = 0;
                }
            }
            Err(refusal) => {
                out.push(Output::Send(ServerMessage::error(refusal).to_json()));
                self.strike(conn, now, None, &mut out);
            }
        }
        out
    }

    /// The time a frame is charged at: when the client sent it (`sent`, on
    /// the room's clock), not when the room got to it, so frames that queued
    /// up while the room was busy are not released onto the buckets as one
    /// burst (a sender within its limits is then never dropped, however long
    /// the backlog). A `sent` ahead of the room's clock counts as at most
    /// `sent_lead_ms` ahead, which bounds what a lying client gains to
    /// `sent_lead_ms` worth of refill, once: the buckets never go back in
    /// time, so a `sent` in the past only refills nothing. Without `sent`:
    /// the room's clock.
    fn charged_at(&self, sent: Option<u64>, now: u64) -> u64 {
        sent.map_or(now, |s| s.min(now.saturating_add(self.limits.sent_lead_ms)))
    }

    /// Takes a token for `budget` from the connection's bucket (and the
    /// address's, for chat and reactions).
    fn take(&mut self, conn: &Conn, budget: Budget, now: u64) -> Result<(), u64> {
        let ip = conn.ip.as_deref().unwrap_or(NO_IP);
        let l = &self.limits;
        match budget {
            Budget::Chat => take_all(
                &mut [
                    (
                        self.chat_conn.get(&conn.id, l.chat_per_conn, now),
                        l.chat_per_conn,
                    ),
                    (self.chat_ip.get(ip, l.chat_per_ip, now), l.chat_per_ip),
                ],
                now,
            ),
            Budget::React => take_all(
                &mut [
                    (
                        self.react_conn.get(&conn.id, l.reactions_per_conn, now),
                        l.reactions_per_conn,
                    ),
                    (
                        self.react_ip.get(ip, l.reactions_per_ip, now),
                        l.reactions_per_ip,
                    ),
                ],
                now,
            ),
            Budget::Control => take_all(
                &mut [(
                    self.control.get(&conn.id, l.control_per_conn, now),
                    l.control_per_conn,
                )],
                now,
            ),
        }
    }

    /// A frame dropped (`retry_ms`: by a rate limit) or refused. Too many in
    /// a row close the socket; rate-limit notices go out at most once a second.
    fn strike(&mut self, conn: &Conn, now: u64, retry_ms: Option<u64>, out: &mut Vec<Output>) {
        let s = self.strikes.entry(conn.id.clone()).or_default();
        s.count += 1;
        if s.count >= self.limits.max_strikes {
            out.push(Output::Close {
                code: close::POLICY,
                reason: "too many refused frames",
            });
            return;
        }
        if let Some(retry_ms) = retry_ms {
            if s.noticed_at.is_none_or(|at| now.saturating_sub(at) >= 1000) {
                s.noticed_at = Some(now);
                out.push(Output::Send(
                    ServerMessage::Error {
                        code: ErrorCode::RateLimited,
                        message: "too fast: dropped, not sent".into(),
                        retry_ms: Some(retry_ms),
                    }
                    .to_json(),
                ));
            }
        }
    }

    fn check_pdt(&self, pdt: Option<i64>, now: u64) -> Result<(), Refusal> {
        let Some(pdt) = pdt else { return Ok(()) };
        let now = now as i64;
        let oldest = now.saturating_sub(self.limits.max_pdt_age_ms as i64);
        let newest = now.saturating_add(self.limits.max_pdt_lead_ms as i64);
        if pdt < oldest || pdt > newest {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "`pdt` is too far from the room's clock",
            ));
        }
        Ok(())
    }

    fn handle(
        &mut self,
        conn: &mut Conn,
        msg: ClientMessage,
        store: &mut impl Store,
        ips_of: &dyn Fn(&str) -> Vec<String>,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        match msg {
            ClientMessage::Join { name } => {
                if !conn.name_fixed {
                    if let Some(name) = name {
                        conn.name = name;
                    }
                }
                out.push(Output::Send(
                    ServerMessage::Joined {
                        user: conn.user.clone(),
                        name: conn.name.clone(),
                    }
                    .to_json(),
                ));
            }
            ClientMessage::Chat { text, pdt, nonce } => {
                self.check_pdt(pdt, now)?;
                let new = NewMessage {
                    user: conn.user.clone(),
                    name: conn.name.clone(),
                    text,
                    pdt,
                    ts: now as i64,
                    moderator: conn.moderator,
                };
                let id = store.insert(&new).map_err(|e| {
                    out.push(Output::Log(e.to_string()));
                    Refusal::new(ErrorCode::Unavailable, "not stored; try again")
                })?;
                let mut msg = new.into_message(id);
                msg.nonce = nonce;
                out.push(Output::Broadcast(ServerMessage::Chat(msg).to_json()));
                // By id, not by a counter in memory: a room evicted every
                // few dozen messages must still prune.
                if id % PRUNE_EVERY == 0 {
                    if let Err(e) =
                        store.prune(self.limits.history_kept, self.limits.reactions_kept)
                    {
                        out.push(Output::Log(e.to_string()));
                    }
                }
            }
            ClientMessage::React { emoji, pdt } => {
                self.check_pdt(pdt, now)?;
                let l = &self.limits;
                match self.reactions.add(
                    emoji,
                    pdt,
                    now,
                    l.reaction_window_ms,
                    l.reaction_pdt_ms,
                    l.reaction_buckets,
                ) {
                    Added::Counted | Added::Overflow => {}
                    Added::Opened { flush_at } => self.schedule(flush_at, out),
                }
            }
            ClientMessage::Ping { nonce } => {
                out.push(Output::Send(
                    ServerMessage::Pong {
                        ts: now as i64,
                        nonce,
                    }
                    .to_json(),
                ));
            }
            moderation => {
                if !conn.moderator {
                    return Err(Refusal::new(ErrorCode::NotAllowed, "moderators only"));
                }
                let ips = match &moderation {
                    ClientMessage::Ban(b) if b.ip => ips_of(&b.user),
                    _ => Vec::new(),
                };
                out.extend(self.moderate(moderation, &ips, store, now)?);
            }
        }
        Ok(())
    }

    /// Moderation: `delete`, `ban`, `unban`, `notice`, `stream` (from a
    /// moderator's socket or the HTTP API). `ips` are the addresses the
    /// banned user is connected from (used when the ban asks for `ip`).
    pub fn moderate(
        &mut self,
        msg: ClientMessage,
        ips: &[String],
        store: &mut impl Store,
        now: u64,
    ) -> Result<Vec<Output>, Refusal> {
        let unavailable = |e: super::store::StoreError| {
            Refusal::new(ErrorCode::Unavailable, format!("storage failed: {}", e.0))
        };
        let mut out = Vec::new();
        match msg {
            ClientMessage::Delete { id } => {
                let ids = store.delete(&[id]).map_err(unavailable)?;
                if ids.is_empty() {
                    return Err(Refusal::new(ErrorCode::NotFound, "no such message"));
                }
                out.push(Output::Broadcast(ServerMessage::Delete { ids }.to_json()));
            }
            ClientMessage::Ban(Ban {
                user,
                minutes,
                ip,
                purge,
                reason,
            }) => {
                let until =
                    minutes.map(|m| (now as i64).saturating_add((m as i64).saturating_mul(60_000)));
                let ips: Vec<String> = if ip { ips.to_vec() } else { Vec::new() };
                let mut subjects = vec![user.clone()];
                subjects.extend(ips.iter().map(|ip| BanRecord::ip_subject(ip)));
                for subject in subjects {
                    store
                        .ban(&BanRecord {
                            subject,
                            until,
                            reason: reason.clone(),
                        })
                        .map_err(unavailable)?;
                }
                if purge {
                    let ids = store.delete_user(&user).map_err(unavailable)?;
                    if !ids.is_empty() {
                        out.push(Output::Broadcast(ServerMessage::Delete { ids }.to_json()));
                    }
                }
                out.push(Output::Broadcast(
                    ServerMessage::System(SystemEvent::Banned { user: user.clone() }).to_json(),
                ));
                out.push(Output::CloseUser {
                    user,
                    ips,
                    code: close::BANNED,
                    reason: "banned",
                });
            }
            ClientMessage::Unban { user } => {
                let mut any = store.unban(&user).map_err(unavailable)?;
                if let Some(ip) = user.strip_prefix("ip:") {
                    any |= store
                        .unban(&BanRecord::ip_subject(ip))
                        .map_err(unavailable)?;
                }
                if !any {
                    return Err(Refusal::new(ErrorCode::NotFound, "not banned"));
                }
            }
            ClientMessage::Notice { text } => {
                out.push(Output::Broadcast(
                    ServerMessage::System(SystemEvent::Notice { text }).to_json(),
                ));
            }
            ClientMessage::Stream { started } => {
                let state = if started {
                    StreamState::Started
                } else {
                    StreamState::Ended
                };
                // Kept for history, but announced even if storage fails:
                // the moderator asked for it.
                if let Err(e) = store.add_stream(state, None, now as i64) {
                    out.push(Output::Log(e.to_string()));
                }
                out.push(Output::Broadcast(
                    ServerMessage::System(state.event(None)).to_json(),
                ));
            }
            _ => {
                return Err(Refusal::new(
                    ErrorCode::UnknownType,
                    "type is delete, ban, unban, notice or stream",
                ))
            }
        }
        Ok(out)
    }

    /// The edge saw a publish session start or end ([`super::notices`]).
    /// Many isolates report the same event; the room announces it (stored,
    /// then broadcast) only if it [`advances`] the last one stored, and
    /// otherwise returns no outputs. A storage failure is `unavailable` and
    /// announces nothing, so a later report can.
    pub fn announce(
        &mut self,
        event: &StreamEvent,
        store: &mut impl Store,
        now: u64,
    ) -> Result<Vec<Output>, Refusal> {
        let unavailable = |e: super::store::StoreError| {
            Refusal::new(ErrorCode::Unavailable, format!("storage failed: {}", e.0))
        };
        let last = store.last_stream().map_err(unavailable)?;
        if !advances(last.as_ref(), event) {
            return Ok(Vec::new());
        }
        store
            .add_stream(event.state, Some(&event.session), now as i64)
            .map_err(unavailable)?;
        let msg = ServerMessage::System(event.state.event(Some(event.session.clone())));
        Ok(vec![Output::Broadcast(msg.to_json())])
    }

    /// Parses a moderation request body (the HTTP API).
    pub fn parse_moderation(&self, body: &str) -> Result<ClientMessage, Refusal> {
        parse_client(body, self.parse_limits())
    }

    /// The time of a [`Output::WakeAt`] came: closes the reaction window
    /// (stored, then broadcast) and sends the viewer count if it changed.
    /// `viewers` is the number of sockets in the room now.
    pub fn wake(&mut self, store: &mut impl Store, viewers: usize, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.wake_at = None;
        if let Some(counts) = self.reactions.flush(now) {
            if !counts.is_empty() {
                if let Err(e) = store.add_reactions(&counts) {
                    out.push(Output::Log(e.to_string()));
                }
                out.push(Output::Broadcast(
                    ServerMessage::Reactions {
                        counts,
                        ts: now as i64,
                    }
                    .to_json(),
                ));
            }
        }
        if self.presence_dirty {
            let due = self.presence_sent.map_or(now, |(at, _)| {
                at.saturating_add(self.limits.presence_interval_ms)
            });
            if due <= now {
                self.presence_dirty = false;
                if self.presence_sent.is_none_or(|(_, n)| n != viewers) {
                    out.push(Output::Broadcast(
                        ServerMessage::System(SystemEvent::Viewers { viewers }).to_json(),
                    ));
                }
                self.presence_sent = Some((now, viewers));
            } else {
                self.schedule(due, &mut out);
            }
        }
        if let Some(at) = self.reactions.closes_at() {
            self.schedule(at, &mut out);
        }
        let l = &self.limits;
        self.chat_ip.sweep(l.chat_per_ip, now);
        self.react_ip.sweep(l.reactions_per_ip, now);
        out
    }

    /// The answer to a history request: `history` with the messages (and,
    /// for a range, the reaction counts) on that part of the timeline.
    pub fn history(&self, q: HistoryQuery, store: &mut impl Store) -> Result<String, Refusal> {
        let page = self.limits.history_page;
        let limit = q.limit.unwrap_or(page).min(page);
        let unavailable = |e: super::store::StoreError| {
            Refusal::new(ErrorCode::Unavailable, format!("storage failed: {}", e.0))
        };
        let msg = match q.range {
            None => ServerMessage::History {
                messages: store.recent(limit).map_err(unavailable)?,
                reactions: Vec::new(),
                events: store.streams(None, limit).map_err(unavailable)?,
                more: None,
            },
            Some((from, to)) => {
                let mut messages = store.range(from, to, limit + 1).map_err(unavailable)?;
                let more = messages.len() > limit;
                messages.truncate(limit);
                let reactions = store
                    .reactions(from, to, limit.saturating_mul(EMOJI.len()))
                    .map_err(unavailable)?;
                let events = store
                    .streams(Some((from, to)), limit)
                    .map_err(unavailable)?;
                ServerMessage::History {
                    messages,
                    reactions,
                    events,
                    more: Some(more),
                }
            }
        };
        Ok(msg.to_json())
    }
}
