//! What a room keeps: messages, aggregated reactions and bans. The Durable
//! Object implements [`Store`] over its SQLite storage with the statements
//! below; [`MemStore`] is the same contract in memory, for tests and
//! benchmarks.
//!
//! History policy: every message is kept (for VOD replay) up to
//! `history_kept`, oldest pruned first; reactions are kept as the
//! aggregated (PDT slot, emoji, count) rows, up to `reactions_kept`. A
//! message is placed on the timeline at its `pdt`, or at the time the room
//! accepted it when the sender was not playing. Stream starts and ends are
//! kept as their own rows (at the room's clock), up to `history_kept` too;
//! the newest one with a session is also the room's record of what it
//! announced last (see [`super::notices`]).

use super::notices::StreamEvent;
use super::schema::{ChatMessage, ReactionCount, StreamRecord, StreamState};

/// Storage failed (the text is for logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chat storage: {0}")]
pub struct StoreError(pub String);

/// A message about to be stored (it gets its id from the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub user: String,
    pub name: String,
    pub text: String,
    pub pdt: Option<i64>,
    pub ts: i64,
    pub moderator: bool,
}

impl NewMessage {
    /// Where the message sits on the stream's timeline.
    pub fn at(&self) -> i64 {
        self.pdt.unwrap_or(self.ts)
    }

    pub fn into_message(self, id: i64) -> ChatMessage {
        ChatMessage {
            id,
            user: self.user,
            name: self.name,
            text: self.text,
            pdt: self.pdt,
            ts: self.ts,
            moderator: self.moderator,
            nonce: None,
        }
    }
}

/// A ban as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    /// The banned user id, or `ip:<address>` for an address ban.
    pub subject: String,
    /// Ms since 1970; `None`: until lifted.
    pub until: Option<i64>,
    pub reason: Option<String>,
}

impl BanRecord {
    pub fn ip_subject(ip: &str) -> String {
        format!("ip:{ip}")
    }
}

pub trait Store {
    /// Stores `m`; returns its id, greater than every id before it.
    fn insert(&mut self, m: &NewMessage) -> Result<i64, StoreError>;
    /// Deletes these ids; returns the ones that were stored.
    fn delete(&mut self, ids: &[i64]) -> Result<Vec<i64>, StoreError>;
    /// Deletes every message of `user`; returns their ids.
    fn delete_user(&mut self, user: &str) -> Result<Vec<i64>, StoreError>;
    /// The last `n` messages, oldest first.
    fn recent(&mut self, n: usize) -> Result<Vec<ChatMessage>, StoreError>;
    /// Messages placed in `[from, to)` on the timeline, in timeline order
    /// (then id), at most `limit`.
    fn range(&mut self, from: i64, to: i64, limit: usize) -> Result<Vec<ChatMessage>, StoreError>;
    /// Adds aggregated counts (only those with a PDT are kept).
    fn add_reactions(&mut self, counts: &[ReactionCount]) -> Result<(), StoreError>;
    /// Reaction counts with a PDT slot in `[from, to)`, in slot order, at most `limit`.
    fn reactions(
        &mut self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<ReactionCount>, StoreError>;
    /// Stores a stream start or end (`session`: `None` from a moderator)
    /// announced at `ts`; returns its id, greater than every id before it.
    fn add_stream(
        &mut self,
        state: StreamState,
        session: Option<&str>,
        ts: i64,
    ) -> Result<i64, StoreError>;
    /// The newest stream event stored with a session.
    fn last_stream(&mut self) -> Result<Option<StreamEvent>, StoreError>;
    /// Stream events with `ts` in `[from, to)` (`None`: the last `limit`),
    /// oldest first, at most `limit`.
    fn streams(
        &mut self,
        range: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError>;
    /// Drops the oldest messages and stream events beyond `messages` and the
    /// oldest reaction rows beyond `reactions`.
    fn prune(&mut self, messages: usize, reactions: usize) -> Result<(), StoreError>;
    fn ban(&mut self, ban: &BanRecord) -> Result<(), StoreError>;
    /// Lifts the ban of `subject`; whether there was one.
    fn unban(&mut self, subject: &str) -> Result<bool, StoreError>;
    /// The ban in force at `now` for any of `subjects`.
    fn banned(&mut self, subjects: &[&str], now: i64) -> Result<Option<BanRecord>, StoreError>;
}

/// The Durable Object's tables. `at` is the timeline position (`pdt`, or
/// `ts` for messages sent while not playing); VOD replay reads by it.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        pdt INTEGER,
        ts INTEGER NOT NULL,
        user TEXT NOT NULL,
        name TEXT NOT NULL,
        text TEXT NOT NULL,
        moderator INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE INDEX IF NOT EXISTS messages_at ON messages (at, id)",
    "CREATE INDEX IF NOT EXISTS messages_user ON messages (user)",
    "CREATE TABLE IF NOT EXISTS reactions (
        slot INTEGER NOT NULL,
        emoji TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (slot, emoji)
    )",
    "CREATE TABLE IF NOT EXISTS bans (
        subject TEXT PRIMARY KEY,
        until INTEGER,
        reason TEXT
    )",
    "CREATE TABLE IF NOT EXISTS streams (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts INTEGER NOT NULL,
        state TEXT NOT NULL,
        session TEXT
    )",
    "CREATE INDEX IF NOT EXISTS streams_ts ON streams (ts, id)",
];

/// [`Store`] in memory.
#[derive(Debug, Default)]
pub struct MemStore {
    messages: Vec<(i64, ChatMessage)>,
    next_id: i64,
    reactions: std::collections::BTreeMap<(i64, &'static str), u64>,
    bans: Vec<BanRecord>,
    streams: Vec<StreamRecord>,
    next_stream_id: i64,
    /// Make every call fail (tests of the failure path).
    pub fail: bool,
}

impl MemStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.fail {
            Err(StoreError("injected failure".into()))
        } else {
            Ok(())
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

impl Store for MemStore {
    fn insert(&mut self, m: &NewMessage) -> Result<i64, StoreError> {
        self.check()?;
        self.next_id += 1;
        let id = self.next_id;
        self.messages.push((m.at(), m.clone().into_message(id)));
        Ok(id)
    }

    fn delete(&mut self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        self.check()?;
        let mut gone = Vec::new();
        self.messages.retain(|(_, m)| {
            let hit = ids.contains(&m.id);
            if hit {
                gone.push(m.id);
            }
            !hit
        });
        Ok(gone)
    }

    fn delete_user(&mut self, user: &str) -> Result<Vec<i64>, StoreError> {
        let ids: Vec<i64> = self
            .messages
            .iter()
            .filter(|(_, m)| m.user == user)
            .map(|(_, m)| m.id)
            .collect();
        self.delete(&ids)
    }

    fn recent(&mut self, n: usize) -> Result<Vec<ChatMessage>, StoreError> {
        self.check()?;
        let skip = self.messages.len().saturating_sub(n);
        Ok(self
            .messages
            .iter()
            .skip(skip)
            .map(|(_, m)| m.clone())
            .collect())
    }

    fn range(&mut self, from: i64, to: i64, limit: usize) -> Result<Vec<ChatMessage>, StoreError> {
        self.check()?;
        let mut hits: Vec<&(i64, ChatMessage)> = self
            .messages
            .iter()
            .filter(|(at, _)| (from..to).contains(at))
            .collect();
        hits.sort_by_key(|(at, m)| (*at, m.id));
        Ok(hits
            .into_iter()
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect())
    }

    fn add_reactions(&mut self, counts: &[ReactionCount]) -> Result<(), StoreError> {
        self.check()?;
        for c in counts {
            if let Some(slot) = c.pdt {
                *self.reactions.entry((slot, c.emoji)).or_insert(0) += c.n;
            }
        }
        Ok(())
    }

    fn reactions(
        &mut self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<ReactionCount>, StoreError> {
        self.check()?;
        Ok(self
            .reactions
            .range((from, "")..(to, ""))
            .take(limit)
            .map(|(&(slot, emoji), &n)| ReactionCount {
                emoji,
                pdt: Some(slot),
                n,
            })
            .collect())
    }

    fn add_stream(
        &mut self,
        state: StreamState,
        session: Option<&str>,
        ts: i64,
    ) -> Result<i64, StoreError> {
        self.check()?;
        self.next_stream_id += 1;
        let id = self.next_stream_id;
        self.streams.push(StreamRecord {
            id,
            event: state,
            session: session.map(str::to_owned),
            ts,
        });
        Ok(id)
    }

    fn last_stream(&mut self) -> Result<Option<StreamEvent>, StoreError> {
        self.check()?;
        Ok(self.streams.iter().rev().find_map(|r| {
            Some(StreamEvent {
                session: r.session.clone()?,
                state: r.event,
            })
        }))
    }

    fn streams(
        &mut self,
        range: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        self.check()?;
        Ok(match range {
            None => {
                let skip = self.streams.len().saturating_sub(limit);
                self.streams.iter().skip(skip).cloned().collect()
            }
            Some((from, to)) => {
                let mut hits: Vec<StreamRecord> = self
                    .streams
                    .iter()
                    .filter(|r| (from..to).contains(&r.ts))
                    .cloned()
                    .collect();
                hits.sort_by_key(|r| (r.ts, r.id));
                hits.truncate(limit);
                hits
            }
        })
    }

    fn prune(&mut self, messages: usize, reactions: usize) -> Result<(), StoreError> {
        self.check()?;
        let extra = self.messages.len().saturating_sub(messages);
        self.messages.drain(..extra);
        let extra = self.streams.len().saturating_sub(messages);
        self.streams.drain(..extra);
        while self.reactions.len() > reactions {
            self.reactions.pop_first();
        }
        Ok(())
    }

    fn ban(&mut self, ban: &BanRecord) -> Result<(), StoreError> {
        self.check()?;
        self.bans.retain(|b| b.subject != ban.subject);
        self.bans.push(ban.clone());
        Ok(())
    }

    fn unban(&mut self, subject: &str) -> Result<bool, StoreError> {
        self.check()?;
        let before = self.bans.len();
        self.bans.retain(|b| b.subject != subject);
        Ok(self.bans.len() != before)
    }

    fn banned(&mut self, subjects: &[&str], now: i64) -> Result<Option<BanRecord>, StoreError> {
        self.check()?;
        Ok(self
            .bans
            .iter()
            .find(|b| subjects.contains(&b.subject.as_str()) && b.until.is_none_or(|u| u > now))
            .cloned())
    }
}
