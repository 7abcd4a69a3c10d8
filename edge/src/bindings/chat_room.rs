//! The chat room's Durable Object (`ChatRoom`, binding `CHAT`): one per
//! stream, addressed by the stream name. It carries out what
//! [`crate::chat::Room`] decides, over the Workers runtime:
//!
//! - sockets are accepted with the hibernation API (`acceptWebSocket`), so an
//!   idle room is evicted from memory while its sockets stay connected; each
//!   socket's [`Conn`] is its attachment and it is tagged `u:<user>` and
//!   `ip:<address>` so a ban finds every socket of a user;
//! - history and bans are in the object's SQLite storage ([`SqlStore`]);
//! - [`Output::WakeAt`] is the object's alarm.
//!
//! Only the edge Worker reaches it (`bindings/fetch.rs` after the token check), at
//! `https://room/connect?<identity>` (WebSocket), `/history?...`,
//! `/moderate`, and `/announce?session=...&state=...` (a publish session the
//! edge saw start or end, [`crate::chat::notices`]), so it trusts what the
//! URL says.

use std::cell::RefCell;
use std::time::Duration;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Math, Reflect, JSON};
use worker::{
    console_error, durable_object, Date, DurableObject, Env, Request, Response, Result, SqlStorage,
    SqlStorageValue, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use super::io::{json_response, read_limited};
use crate::chat::handoff::MAX_MODERATION_BODY;
use crate::chat::schema::{
    ChatMessage, ClientMessage, ErrorCode, ReactionCount, Refusal, StreamRecord, StreamState,
};
use crate::chat::store::{BanRecord, NewMessage, StoreError, SCHEMA};
use crate::chat::text::clean_name;
use crate::chat::{
    Conn, Frame, HistoryQuery, Identity, Limits, Output, Room, ServerMessage, Store, StreamEvent,
};

/// The Worker var with limit overrides (docs/chat.md).
const CONFIG_VAR: &str = "CHAT_CONFIG";

/// `readyState` of an open socket.
const OPEN: u16 = 1;

#[wasm_bindgen]
extern "C" {
    /// A WebSocket, seen only to send it a JS value: a broadcast converts
    /// its text to a JS string once, not once per socket.
    type Sendable;

    #[wasm_bindgen(method, structural, catch, js_name = send)]
    fn send_value(this: &Sendable, data: &JsValue) -> std::result::Result<(), JsValue>;
}

#[durable_object]
pub struct ChatRoom {
    state: State,
    room: RefCell<Room>,
    store: RefCell<SqlStore>,
    /// The room's sockets for broadcasts, read from the runtime again after
    /// every join and leave (a broadcast to a thousand sockets should not
    /// build the list a thousand times a second).
    broadcast_to: RefCell<Option<Vec<WebSocket>>>,
    /// When this instance was constructed: changes after every eviction
    /// (the moderation stats show it; the hibernation test relies on it).
    since: u64,
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

fn limits(env: &Env) -> Limits {
    let text = Reflect::get(env.as_ref(), &JsValue::from_str(CONFIG_VAR))
        .ok()
        .and_then(|v| {
            v.as_string().or_else(|| {
                v.is_object()
                    .then(|| JSON::stringify(&v).ok().and_then(|s| s.as_string()))
                    .flatten()
            })
        })
        .unwrap_or_default();
    Limits::parse(&text).unwrap_or_else(|e| {
        console_error!("{CONFIG_VAR}: {e}; using the defaults");
        Limits::default()
    })
}

/// 64 random bits as hex (ids, not secrets).
pub(crate) fn random_hex() -> String {
    let n = (Math::random() * 4_294_967_296.0) as u64;
    let m = (Math::random() * 4_294_967_296.0) as u64;
    format!("{n:08x}{m:08x}")
}

fn refusal_response(r: Refusal) -> Result<Response> {
    let status = match r.code {
        ErrorCode::NotFound => 404,
        ErrorCode::Unavailable => 503,
        ErrorCode::NotAllowed => 403,
        _ => 400,
    };
    json_response(status, ServerMessage::error(r).to_json())
}

impl ChatRoom {
    fn sockets(&self) -> Vec<WebSocket> {
        self.state
            .as_raw()
            .get_websockets()
            .map(|v| v.into_iter().map(WebSocket::from).collect())
            .unwrap_or_default()
    }

    fn tagged(&self, tag: &str) -> Vec<WebSocket> {
        self.state
            .as_raw()
            .get_websockets_with_tag(tag)
            .map(|v| v.into_iter().map(WebSocket::from).collect())
            .unwrap_or_default()
    }

    /// Sockets that are open (a closing one is still listed during its
    /// close event).
    fn viewers(&self) -> usize {
        self.sockets()
            .iter()
            .filter(|ws| AsRef::<worker::web_sys::WebSocket>::as_ref(*ws).ready_state() == OPEN)
            .count()
    }

    async fn perform(&self, origin: Option<&WebSocket>, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send(text) => {
                    if let Some(ws) = origin {
                        let _ = ws.send_with_str(&text);
                    }
                }
                Output::Broadcast(text) => {
                    let text = JsValue::from_str(&text);
                    let mut cached = self.broadcast_to.borrow_mut();
                    let sockets = cached.get_or_insert_with(|| self.sockets());
                    for ws in sockets.iter() {
                        // A socket closing meanwhile throws; the others still get it.
                        let _ = AsRef::<worker::web_sys::WebSocket>::as_ref(ws)
                            .unchecked_ref::<Sendable>()
                            .send_value(&text);
                    }
                }
                Output::Close { code, reason } => {
                    if let Some(ws) = origin {
                        let _ = ws.close(Some(code), Some(reason));
                    }
                }
                Output::CloseUser {
                    user,
                    ips,
                    code,
                    reason,
                } => {
                    let mut targets = self.tagged(&user_tag(&user));
                    for ip in &ips {
                        targets.extend(self.tagged(&ip_tag(ip)));
                    }
                    for ws in targets {
                        let _ = ws.close(Some(code), Some(reason));
                    }
                }
                Output::WakeAt(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                    if let Err(e) = self.state.storage().set_alarm(wait).await {
                        console_error!("chat: setting the alarm: {e}");
                    }
                }
                Output::Log(line) => console_error!("chat: {line}"),
            }
        }
    }

    async fn open_socket(&self, req: &Request) -> Result<Response> {
        let url = req.url()?;
        let Some(identity) = Identity::from_query(url.query().unwrap_or("")) else {
            return Response::error("bad handoff", 400);
        };
        let viewers = self.viewers();
        if self.room.borrow().is_full(viewers) {
            return Response::error("room full", 503);
        }
        let pair = WebSocketPair::new()?;
        let server = pair.server;
        let mut tags = vec![JsValue::from_str(&user_tag(&identity.user))];
        if let Some(ip) = &identity.ip {
            tags.push(JsValue::from_str(&ip_tag(ip)));
        }
        if let Err(e) = self
            .state
            .as_raw()
            .accept_websocket_with_tags(server.as_ref(), tags)
        {
            console_error!("chat: acceptWebSocket: {e:?}");
            return Response::error("room unavailable", 503);
        }
        self.broadcast_to.replace(None);
        let max_name = self.room.borrow().limits().max_name_chars;
        let token_name = identity
            .token_name
            .as_deref()
            .and_then(|n| clean_name(n, max_name));
        let conn = Conn {
            id: random_hex(),
            user: identity.user.clone(),
            name: token_name
                .clone()
                .unwrap_or_else(|| identity.default_name()),
            name_fixed: token_name.is_some(),
            moderator: identity.moderator,
            ip: identity.ip.clone(),
        };
        server.serialize_attachment(&conn)?;
        let out = {
            let mut store = self.store.borrow_mut();
            self.room
                .borrow_mut()
                .open(&conn, &mut *store, viewers + 1, now_ms())
        };
        self.perform(Some(&server), out).await;
        Response::from_websocket(pair.client)
    }

    fn history(&self, req: &Request) -> Result<Response> {
        let url = req.url()?;
        let q = match HistoryQuery::parse(url.query().unwrap_or("")) {
            Ok(q) => q,
            Err(r) => return refusal_response(r),
        };
        let answer = self.room.borrow().history(q, &mut *self.store.borrow_mut());
        match answer {
            Ok(body) => json_response(200, body),
            Err(r) => refusal_response(r),
        }
    }

    async fn moderate(&self, mut req: Request) -> Result<Response> {
        if req.inner().method() == "GET" {
            let stored = self
                .state
                .storage()
                .sql()
                .exec("SELECT count(*) AS n FROM messages", None)
                .and_then(|c| c.to_array::<Count>())
                .ok()
                .and_then(|rows| rows.first().map(|c| c.n))
                .unwrap_or(-1);
            let body = format!(
                r#"{{"v":1,"viewers":{},"since":{},"stored":{stored}}}"#,
                self.viewers(),
                self.since
            );
            return json_response(200, body);
        }
        let declared = req.headers().get("content-length")?;
        let body = match read_limited(req.stream().ok(), declared.as_deref(), MAX_MODERATION_BODY)
            .await?
        {
            Ok(body) => String::from_utf8_lossy(&body).into_owned(),
            Err(e) => {
                return json_response(
                    413,
                    ServerMessage::error(Refusal::new(ErrorCode::TooLarge, e.to_string()))
                        .to_json(),
                )
            }
        };
        let msg = match self.room.borrow().parse_moderation(&body) {
            Ok(m) => m,
            Err(r) => return refusal_response(r),
        };
        let ips = match &msg {
            ClientMessage::Ban(b) if b.ip => self.user_ips(&b.user),
            _ => Vec::new(),
        };
        let result = {
            let mut store = self.store.borrow_mut();
            self.room
                .borrow_mut()
                .moderate(msg, &ips, &mut *store, now_ms())
        };
        match result {
            Ok(out) => {
                self.perform(None, out).await;
                json_response(200, r#"{"v":1,"ok":true}"#.into())
            }
            Err(r) => refusal_response(r),
        }
    }

    /// A publish session started or ended (the edge's report; many
    /// isolates send the same one, the room announces it once).
    async fn announce(&self, req: &Request) -> Result<Response> {
        let url = req.url()?;
        let Some(event) = StreamEvent::from_query(url.query().unwrap_or("")) else {
            return Response::error("bad announce", 400);
        };
        let result = {
            let mut store = self.store.borrow_mut();
            self.room
                .borrow_mut()
                .announce(&event, &mut *store, now_ms())
        };
        match result {
            Ok(out) => {
                let news = !out.is_empty();
                self.perform(None, out).await;
                json_response(200, format!(r#"{{"v":1,"announced":{news}}}"#))
            }
            Err(r) => refusal_response(r),
        }
    }

    /// The addresses `user` is connected from.
    fn user_ips(&self, user: &str) -> Vec<String> {
        let mut ips: Vec<String> = self
            .tagged(&user_tag(user))
            .iter()
            .filter_map(|ws| ws.deserialize_attachment::<Conn>().ok().flatten())
            .filter_map(|c| c.ip)
            .collect();
        ips.sort();
        ips.dedup();
        ips
    }

    async fn gone(&self, ws: &WebSocket) {
        self.broadcast_to.replace(None);
        let Ok(Some(conn)) = ws.deserialize_attachment::<Conn>() else {
            return;
        };
        let out = self.room.borrow_mut().closed(&conn, now_ms());
        self.perform(None, out).await;
    }
}

#[derive(serde::Deserialize)]
struct Count {
    n: i64,
}

fn user_tag(user: &str) -> String {
    format!("u:{user}")
}

fn ip_tag(ip: &str) -> String {
    format!("ip:{ip}")
}

impl DurableObject for ChatRoom {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for stmt in SCHEMA {
            if let Err(e) = sql
                .exec(stmt, None)
                .and_then(|c| c.to_array::<serde::de::IgnoredAny>())
            {
                console_error!("chat: schema: {e}");
            }
        }
        Self {
            room: RefCell::new(Room::new(limits(&env))),
            store: RefCell::new(SqlStore { sql }),
            broadcast_to: RefCell::new(None),
            state,
            since: now_ms(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let path = req.url()?.path().to_owned();
        match path.as_str() {
            "/connect" => self.open_socket(&req).await,
            "/history" => self.history(&req),
            "/moderate" => self.moderate(req).await,
            "/announce" => self.announce(&req).await,
            _ => Response::error("not found", 404),
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let Ok(Some(mut conn)) = ws.deserialize_attachment::<Conn>() else {
            let _ = ws.close(Some(1011), Some("lost state"));
            return Ok(());
        };
        let before = conn.clone();
        let frame = match &message {
            WebSocketIncomingMessage::String(s) => Frame::Text(s),
            WebSocketIncomingMessage::Binary(b) => Frame::Binary(b.len()),
        };
        let out = {
            let mut store = self.store.borrow_mut();
            self.room.borrow_mut().frame(
                &mut conn,
                frame,
                &mut *store,
                &|u| self.user_ips(u),
                now_ms(),
            )
        };
        if conn != before {
            if let Err(e) = ws.serialize_attachment(&conn) {
                console_error!("chat: attachment: {e}");
            }
        }
        self.perform(Some(&ws), out).await;
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        // Finish the closing handshake, echoing the code where it may be
        // sent (1000 and 3000-4999); 1001, 1005, 1006... get 1000.
        let code = u16::try_from(code)
            .ok()
            .filter(|c| *c == 1000 || (3000..=4999).contains(c))
            .unwrap_or(1000);
        let _ = ws.close(Some(code), Some("bye"));
        self.gone(&ws).await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.gone(&ws).await;
        Ok(())
    }

    async fn alarm(&self) -> Result<Response> {
        let viewers = self.viewers();
        let out = {
            let mut store = self.store.borrow_mut();
            self.room.borrow_mut().wake(&mut *store, viewers, now_ms())
        };
        self.perform(None, out).await;
        Response::ok("")
    }
}

/// [`Store`] over the object's SQLite storage (statements run synchronously).
struct SqlStore {
    sql: SqlStorage,
}

fn store_err(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

fn int(v: i64) -> SqlStorageValue {
    SqlStorageValue::Integer(v)
}

fn text(s: &str) -> SqlStorageValue {
    SqlStorageValue::String(s.to_owned())
}

fn opt_int(v: Option<i64>) -> SqlStorageValue {
    v.map_or(SqlStorageValue::Null, int)
}

#[derive(serde::Deserialize)]
struct Row {
    id: i64,
    pdt: Option<i64>,
    ts: i64,
    user: String,
    name: String,
    text: String,
    moderator: i64,
}

impl From<Row> for ChatMessage {
    fn from(r: Row) -> Self {
        ChatMessage {
            id: r.id,
            user: r.user,
            name: r.name,
            text: r.text,
            pdt: r.pdt,
            ts: r.ts,
            moderator: r.moderator != 0,
            nonce: None,
        }
    }
}

#[derive(serde::Deserialize)]
struct Id {
    id: i64,
}

#[derive(serde::Deserialize)]
struct ReactionRow {
    slot: i64,
    emoji: String,
    n: i64,
}

#[derive(serde::Deserialize)]
struct BanRow {
    subject: String,
    until: Option<i64>,
    reason: Option<String>,
}

#[derive(serde::Deserialize)]
struct StreamRow {
    id: i64,
    ts: i64,
    state: String,
    session: Option<String>,
}

const COLUMNS: &str = "id, pdt, ts, user, name, text, moderator";

impl SqlStore {
    fn rows(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<ChatMessage>> {
        let rows: Vec<Row> = self.sql.exec(query, bindings)?.to_array()?;
        Ok(rows.into_iter().map(ChatMessage::from).collect())
    }

    /// Runs a statement to completion (a cursor nobody reads may stop early).
    fn run(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<()> {
        self.sql
            .exec(query, bindings)?
            .to_array::<serde::de::IgnoredAny>()
            .map(|_| ())
    }

    fn stream_rows(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> std::result::Result<Vec<StreamRecord>, StoreError> {
        let rows: Vec<StreamRow> = self
            .sql
            .exec(query, bindings)
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(StreamRecord {
                    id: r.id,
                    event: StreamState::parse(&r.state)?,
                    session: r.session,
                    ts: r.ts,
                })
            })
            .collect())
    }

    fn ids(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<i64>> {
        let rows: Vec<Id> = self.sql.exec(query, bindings)?.to_array()?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }
}

impl Store for SqlStore {
    fn insert(&mut self, m: &NewMessage) -> std::result::Result<i64, StoreError> {
        self.sql
            .exec(
                "INSERT INTO messages (at, pdt, ts, user, name, text, moderator) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                vec![
                    int(m.at()),
                    opt_int(m.pdt),
                    int(m.ts),
                    text(&m.user),
                    text(&m.name),
                    text(&m.text),
                    int(i64::from(m.moderator)),
                ],
            )
            .and_then(|c| c.to_array::<Id>())
            .map_err(store_err)?
            .first()
            .map(|r| r.id)
            .ok_or_else(|| StoreError("insert returned no id".into()))
    }

    fn delete(&mut self, ids: &[i64]) -> std::result::Result<Vec<i64>, StoreError> {
        let mut gone = Vec::new();
        for &id in ids {
            gone.extend(
                self.ids(
                    "DELETE FROM messages WHERE id = ? RETURNING id",
                    vec![int(id)],
                )
                .map_err(store_err)?,
            );
        }
        Ok(gone)
    }

    fn delete_user(&mut self, user: &str) -> std::result::Result<Vec<i64>, StoreError> {
        self.ids(
            "DELETE FROM messages WHERE user = ? RETURNING id",
            vec![text(user)],
        )
        .map(|mut ids| {
            ids.sort_unstable();
            ids
        })
        .map_err(store_err)
    }

    fn recent(&mut self, n: usize) -> std::result::Result<Vec<ChatMessage>, StoreError> {
        let mut rows = self
            .rows(
                &format!("SELECT {COLUMNS} FROM messages ORDER BY id DESC LIMIT ?"),
                vec![int(n as i64)],
            )
            .map_err(store_err)?;
        rows.reverse();
        Ok(rows)
    }

    fn range(
        &mut self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> std::result::Result<Vec<ChatMessage>, StoreError> {
        self.rows(
            &format!(
                "SELECT {COLUMNS} FROM messages WHERE at >= ? AND at < ? ORDER BY at, id LIMIT ?"
            ),
            vec![int(from), int(to), int(limit as i64)],
        )
        .map_err(store_err)
    }

    fn add_reactions(&mut self, counts: &[ReactionCount]) -> std::result::Result<(), StoreError> {
        for c in counts {
            let Some(slot) = c.pdt else { continue };
            self.run(
                "INSERT INTO reactions (slot, emoji, n) VALUES (?, ?, ?) \
                     ON CONFLICT (slot, emoji) DO UPDATE SET n = n + excluded.n",
                vec![int(slot), text(c.emoji), int(c.n as i64)],
            )
            .map_err(store_err)?;
        }
        Ok(())
    }

    fn reactions(
        &mut self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> std::result::Result<Vec<ReactionCount>, StoreError> {
        let rows: Vec<ReactionRow> = self
            .sql
            .exec(
                "SELECT slot, emoji, n FROM reactions WHERE slot >= ? AND slot < ? \
                 ORDER BY slot, emoji LIMIT ?",
                vec![int(from), int(to), int(limit as i64)],
            )
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let emoji = crate::chat::schema::Emoji::parse(&r.emoji)?.as_str();
                Some(ReactionCount {
                    emoji,
                    pdt: Some(r.slot),
                    n: u64::try_from(r.n).unwrap_or(0),
                })
            })
            .collect())
    }

    fn add_stream(
        &mut self,
        state: StreamState,
        session: Option<&str>,
        ts: i64,
    ) -> std::result::Result<i64, StoreError> {
        self.sql
            .exec(
                "INSERT INTO streams (ts, state, session) VALUES (?, ?, ?) RETURNING id",
                vec![
                    int(ts),
                    text(state.as_str()),
                    session.map_or(SqlStorageValue::Null, text),
                ],
            )
            .and_then(|c| c.to_array::<Id>())
            .map_err(store_err)?
            .first()
            .map(|r| r.id)
            .ok_or_else(|| StoreError("insert returned no id".into()))
    }

    fn last_stream(&mut self) -> std::result::Result<Option<StreamEvent>, StoreError> {
        let rows = self.stream_rows(
            "SELECT id, ts, state, session FROM streams WHERE session IS NOT NULL \
             ORDER BY id DESC LIMIT 1",
            vec![],
        )?;
        Ok(rows.into_iter().next().and_then(|r| {
            Some(StreamEvent {
                session: r.session?,
                state: r.event,
            })
        }))
    }

    fn streams(
        &mut self,
        range: Option<(i64, i64)>,
        limit: usize,
    ) -> std::result::Result<Vec<StreamRecord>, StoreError> {
        match range {
            None => {
                let mut rows = self.stream_rows(
                    "SELECT id, ts, state, session FROM streams ORDER BY id DESC LIMIT ?",
                    vec![int(limit as i64)],
                )?;
                rows.reverse();
                Ok(rows)
            }
            Some((from, to)) => self.stream_rows(
                "SELECT id, ts, state, session FROM streams WHERE ts >= ? AND ts < ? \
                 ORDER BY ts, id LIMIT ?",
                vec![int(from), int(to), int(limit as i64)],
            ),
        }
    }

    fn prune(&mut self, messages: usize, reactions: usize) -> std::result::Result<(), StoreError> {
        self.run(
            "DELETE FROM messages WHERE id <= \
                 (SELECT id FROM messages ORDER BY id DESC LIMIT 1 OFFSET ?)",
            vec![int(messages as i64)],
        )
        .map_err(store_err)?;
        self.run(
            "DELETE FROM streams WHERE id <= \
                 (SELECT id FROM streams ORDER BY id DESC LIMIT 1 OFFSET ?)",
            vec![int(messages as i64)],
        )
        .map_err(store_err)?;
        self.run(
            "DELETE FROM reactions WHERE slot <= \
                 (SELECT slot FROM reactions ORDER BY slot DESC LIMIT 1 OFFSET ?)",
            vec![int(reactions as i64)],
        )
        .map_err(store_err)?;
        Ok(())
    }

    fn ban(&mut self, ban: &BanRecord) -> std::result::Result<(), StoreError> {
        self.run(
                "INSERT INTO bans (subject, until, reason) VALUES (?, ?, ?) \
                 ON CONFLICT (subject) DO UPDATE SET until = excluded.until, reason = excluded.reason",
                vec![
                    text(&ban.subject),
                    opt_int(ban.until),
                    ban.reason.as_deref().map_or(SqlStorageValue::Null, text),
                ],
            )
            .map_err(store_err)
    }

    fn unban(&mut self, subject: &str) -> std::result::Result<bool, StoreError> {
        let rows: Vec<BanRow> = self
            .sql
            .exec(
                "DELETE FROM bans WHERE subject = ? RETURNING subject, until, reason",
                vec![text(subject)],
            )
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(!rows.is_empty())
    }

    fn banned(
        &mut self,
        subjects: &[&str],
        now: i64,
    ) -> std::result::Result<Option<BanRecord>, StoreError> {
        for subject in subjects {
            let rows: Vec<BanRow> = self
                .sql
                .exec(
                    "SELECT subject, until, reason FROM bans \
                     WHERE subject = ? AND (until IS NULL OR until > ?)",
                    vec![text(subject), int(now)],
                )
                .and_then(|c| c.to_array())
                .map_err(store_err)?;
            if let Some(r) = rows.into_iter().next() {
                return Ok(Some(BanRecord {
                    subject: r.subject,
                    until: r.until,
                    reason: r.reason,
                }));
            }
        }
        Ok(None)
    }
}
