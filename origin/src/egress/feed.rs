//! A live stream's source frames, fanned out to per-viewer queues: the one
//! place the pipeline hands media to real-time egress (WHEP). The pipeline
//! writes into a [`Feed`] as it writes into `serve::hub`; it does not know who
//! reads, nor how (WebRTC is `egress::whep`'s business).
//!
//! Each subscriber has its own bounded queue. A producer never waits: a full
//! queue is emptied and marked with [`Item::Gap`] (the viewer waits for the
//! next keyframe), so one slow viewer costs only itself. Keyframe requests go
//! the other way: viewers ask ([`Feed::request_keyframe`]), and the ingest
//! that can make the publisher send one (WHIP: a PLI) takes them at most once
//! per interval ([`Feed::take_keyframe_request`]), however many viewers asked.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use brook_packager::media::{Frame, TrackInfo};
use brook_packager::UnixMillis;

/// What a subscriber reads, in order.
#[derive(Debug, Clone)]
pub enum Item {
    /// The track list (first, and again when the source's configuration
    /// changes). Frames name tracks by index into it.
    Tracks(Arc<Vec<TrackInfo>>),
    /// A source frame (decoding order within its track) and when it arrived
    /// at the origin.
    Frame(Frame, UnixMillis),
    /// Frames were lost in between (this subscriber's queue overflowed): wait
    /// for the next keyframe.
    Gap,
    /// The source restarted (a reconnect, a new publisher): a new timeline
    /// follows, from a keyframe.
    Restart,
    /// The stream ended.
    End,
}

/// Called after items are queued for a subscriber (wakes its reader).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// The live feeds by stream name.
#[derive(Default)]
pub struct Feeds {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("streams", &lock(&self.feeds).len())
            .finish()
    }
}

impl Feeds {
    /// A new feed for a new session of `stream` (one that was open is ended:
    /// its subscribers get [`Item::End`]).
    pub fn open(&self, stream: &str, keyframe_interval: Duration) -> Arc<Feed> {
        let feed = Arc::new(Feed::new(stream, keyframe_interval));
        let old = lock(&self.feeds).insert(stream.to_string(), feed.clone());
        if let Some(old) = old {
            old.end();
        }
        feed
    }

    /// Ends `feed` and forgets it (unless a newer one replaced it).
    pub fn close(&self, feed: &Arc<Feed>) {
        feed.end();
        let mut feeds = lock(&self.feeds);
        if feeds
            .get(&feed.stream)
            .is_some_and(|f| Arc::ptr_eq(f, feed))
        {
            feeds.remove(&feed.stream);
        }
    }

    /// The feed of `stream`, while its session lasts.
    pub fn get(&self, stream: &str) -> Option<Arc<Feed>> {
        lock(&self.feeds)
            .get(stream)
            .filter(|f| !f.ended())
            .cloned()
    }
}

/// One stream session's frames.
pub struct Feed {
    stream: String,
    state: Mutex<State>,
    /// A subscriber exists (read without the lock, by producers that would
    /// otherwise do work for nobody).
    watched: AtomicBool,
    keyframes: Mutex<Keyframes>,
}

#[derive(Default)]
struct State {
    tracks: Option<Arc<Vec<TrackInfo>>>,
    subscribers: Vec<Weak<Queue>>,
    ended: bool,
}

struct Keyframes {
    interval: Duration,
    wanted: bool,
    last_sent: Option<Instant>,
    requested: u64,
    forwarded: u64,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("stream", &self.stream)
            .finish()
    }
}

impl Feed {
    fn new(stream: &str, keyframe_interval: Duration) -> Self {
        Self {
            stream: stream.to_string(),
            state: Mutex::new(State::default()),
            watched: AtomicBool::new(false),
            keyframes: Mutex::new(Keyframes {
                interval: keyframe_interval,
                wanted: false,
                last_sent: None,
                requested: 0,
                forwarded: 0,
            }),
        }
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Whether anyone subscribes (producers may skip work otherwise).
    pub fn watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    pub fn ended(&self) -> bool {
        lock(&self.state).ended
    }

    /// Subscribers whose subscription is still held (viewers connected).
    pub fn subscribers(&self) -> usize {
        lock(&self.state)
            .subscribers
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// The current track list, if the source has sent one.
    pub fn tracks(&self) -> Option<Arc<Vec<TrackInfo>>> {
        lock(&self.state).tracks.clone()
    }

    /// A new subscriber: its queue holds at most `capacity` items; `wake` is
    /// called (on the producer's thread) after items were queued. It starts
    /// with the current track list, if any.
    pub fn subscribe(self: &Arc<Self>, capacity: usize, wake: Waker) -> Subscription {
        let queue = Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(2),
            overflows: AtomicU64::new(0),
            wake,
        });
        let mut state = lock(&self.state);
        if state.ended {
            queue.push(Item::End, None);
        } else if let Some(t) = &state.tracks {
            queue.push(Item::Tracks(t.clone()), None);
        }
        state.subscribers.retain(|w| w.strong_count() > 0);
        state.subscribers.push(Arc::downgrade(&queue));
        self.watched.store(true, Ordering::Relaxed);
        Subscription {
            queue,
            feed: self.clone(),
        }
    }

    /// The source's track list.
    pub fn push_tracks(&self, tracks: &[TrackInfo]) {
        let mut state = lock(&self.state);
        if state.ended || state.tracks.as_deref().is_some_and(|t| t == tracks) {
            return;
        }
        let tracks = Arc::new(tracks.to_vec());
        state.tracks = Some(tracks.clone());
        self.deliver(&mut state, Item::Tracks(tracks));
    }

    /// A source frame.
    pub fn push_frame(&self, frame: &Frame, arrived: UnixMillis) {
        if !self.watched() {
            return;
        }
        let mut state = lock(&self.state);
        if state.ended || state.tracks.is_none() {
            return;
        }
        self.deliver(&mut state, Item::Frame(frame.clone(), arrived));
    }

    /// The source restarted: a new timeline follows.
    pub fn restart(&self) {
        let mut state = lock(&self.state);
        if !state.ended {
            self.deliver(&mut state, Item::Restart);
        }
    }

    /// The stream ended: subscribers get [`Item::End`].
    pub fn end(&self) {
        let mut state = lock(&self.state);
        if state.ended {
            return;
        }
        state.ended = true;
        self.deliver(&mut state, Item::End);
    }

    fn deliver(&self, state: &mut MutexGuard<'_, State>, item: Item) {
        let tracks = state.tracks.clone();
        state.subscribers.retain(|w| match w.upgrade() {
            Some(q) => {
                q.push(item.clone(), tracks.as_ref());
                true
            }
            None => false,
        });
        self.watched
            .store(!state.subscribers.is_empty(), Ordering::Relaxed);
    }

    /// A viewer needs a keyframe (it joined, or lost one).
    pub fn request_keyframe(&self) {
        let mut k = lock(&self.keyframes);
        k.wanted = true;
        k.requested += 1;
    }

    /// For the ingest: whether to ask the publisher for a keyframe now. True at
    /// most once per interval, and only when a viewer asked since the last one.
    pub fn take_keyframe_request(&self, now: Instant) -> bool {
        let mut k = lock(&self.keyframes);
        let due = k
            .last_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= k.interval);
        if k.wanted && due {
            k.wanted = false;
            k.last_sent = Some(now);
            k.forwarded += 1;
            true
        } else {
            false
        }
    }

    /// (keyframe requests from viewers, requests forwarded to the publisher).
    pub fn keyframe_counts(&self) -> (u64, u64) {
        let k = lock(&self.keyframes);
        (k.requested, k.forwarded)
    }
}

/// One subscriber's queue.
struct Queue {
    items: Mutex<VecDeque<Item>>,
    capacity: usize,
    overflows: AtomicU64,
    wake: Waker,
}

impl Queue {
    /// Queues `item`; a full queue is emptied first, keeping only what the
    /// subscriber needs to go on: the track list, then a [`Item::Gap`].
    fn push(&self, item: Item, tracks: Option<&Arc<Vec<TrackInfo>>>) {
        {
            let mut items = lock(&self.items);
            if items.len() >= self.capacity {
                items.clear();
                if let Some(t) = tracks {
                    items.push_back(Item::Tracks(t.clone()));
                }
                items.push_back(Item::Gap);
                self.overflows.fetch_add(1, Ordering::Relaxed);
            }
            items.push_back(item);
        }
        (self.wake)();
    }
}

/// A subscriber's end of a [`Feed`]; dropping it unsubscribes.
pub struct Subscription {
    queue: Arc<Queue>,
    feed: Arc<Feed>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("stream", &self.feed.stream)
            .finish()
    }
}

impl Subscription {
    /// The next item, if one is queued.
    pub fn pop(&self) -> Option<Item> {
        lock(&self.queue.items).pop_front()
    }

    /// Times this subscriber's queue overflowed (frames it lost).
    pub fn overflows(&self) -> u64 {
        self.queue.overflows.load(Ordering::Relaxed)
    }

    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_packager::codec::opus::OpusConfig;
    use brook_packager::media::CodecConfig;
    use bytes::Bytes;
    use std::sync::atomic::AtomicUsize;

    fn tracks() -> Vec<TrackInfo> {
        vec![TrackInfo {
            id: 1,
            timescale: 48_000,
            codec: CodecConfig::Opus(OpusConfig::webrtc()),
        }]
    }

    fn frame(n: i64) -> Frame {
        Frame {
            track: 0,
            dts: n * 960,
            pts: n * 960,
            keyframe: true,
            duration: Some(960),
            data: Bytes::from_static(b"x"),
        }
    }

    fn drain(s: &Subscription) -> Vec<Item> {
        std::iter::from_fn(|| s.pop()).collect()
    }

    #[test]
    fn subscribers_get_the_tracks_then_frames_and_the_end() {
        let feeds = Feeds::default();
        let feed = feeds.open("cam1", Duration::from_millis(500));
        feed.push_tracks(&tracks());
        feed.push_frame(&frame(0), UnixMillis(0)); // nobody watches: not kept
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        let sub = feed.subscribe(
            8,
            Arc::new(move || {
                w.fetch_add(1, Ordering::Relaxed);
            }),
        );
        assert!(feed.watched());
        assert_eq!(feed.subscribers(), 1);
        let gone = feed.subscribe(8, Arc::new(|| {}));
        assert_eq!(feed.subscribers(), 2);
        drop(gone);
        assert_eq!(feed.subscribers(), 1, "a viewer that left is not counted");
        feed.push_frame(&frame(1), UnixMillis(20));
        feed.push_tracks(&tracks()); // unchanged: not repeated
        feeds.close(&feed);
        let items = drain(&sub);
        assert!(matches!(items[0], Item::Tracks(_)));
        assert!(matches!(&items[1], Item::Frame(f, UnixMillis(20)) if f.dts == 960));
        assert!(matches!(items[2], Item::End));
        assert_eq!(items.len(), 3);
        // The track list on subscribing, the frame, the end.
        assert_eq!(woken.load(Ordering::Relaxed), 3);
        assert!(feeds.get("cam1").is_none());
    }

    #[test]
    fn a_slow_subscriber_loses_frames_not_the_tracks_and_others_lose_nothing() {
        let feeds = Feeds::default();
        let feed = feeds.open("cam1", Duration::from_millis(500));
        feed.push_tracks(&tracks());
        let slow = feed.subscribe(4, Arc::new(|| {}));
        let fast = feed.subscribe(1000, Arc::new(|| {}));
        let _ = drain(&slow);
        for n in 0..10 {
            feed.push_frame(&frame(n), UnixMillis(0));
        }
        let items = drain(&slow);
        assert!(matches!(items[0], Item::Tracks(_)), "{items:?}");
        assert!(matches!(items[1], Item::Gap), "{items:?}");
        assert!(items.len() <= 4, "{items:?}");
        assert!(slow.overflows() >= 1);
        let fast_frames = drain(&fast)
            .iter()
            .filter(|i| matches!(i, Item::Frame(..)))
            .count();
        assert_eq!(fast_frames, 10);
        assert_eq!(fast.overflows(), 0);
        drop(slow);
        drop(fast);
        feed.push_frame(&frame(11), UnixMillis(0));
        assert!(!feed.watched(), "unsubscribed on drop");
    }

    #[test]
    fn keyframe_requests_are_coalesced_per_interval() {
        let feeds = Feeds::default();
        let feed = feeds.open("cam1", Duration::from_millis(500));
        let t0 = Instant::now();
        assert!(!feed.take_keyframe_request(t0), "nobody asked");
        for _ in 0..5 {
            feed.request_keyframe();
        }
        assert!(feed.take_keyframe_request(t0));
        assert!(!feed.take_keyframe_request(t0), "taken");
        feed.request_keyframe();
        assert!(!feed.take_keyframe_request(t0 + Duration::from_millis(499)));
        assert!(feed.take_keyframe_request(t0 + Duration::from_millis(500)));
        assert_eq!(feed.keyframe_counts(), (6, 2));
    }

    #[test]
    fn a_new_session_ends_the_old_feed() {
        let feeds = Feeds::default();
        let old = feeds.open("cam1", Duration::from_millis(500));
        let sub = old.subscribe(8, Arc::new(|| {}));
        let new = feeds.open("cam1", Duration::from_millis(500));
        assert!(matches!(drain(&sub).last(), Some(Item::End)));
        assert!(Arc::ptr_eq(&feeds.get("cam1").unwrap(), &new));
        feeds.close(&old); // the old one's close does not remove the new one
        assert!(feeds.get("cam1").is_some());
        let late = old.subscribe(8, Arc::new(|| {}));
        assert!(matches!(drain(&late).as_slice(), [Item::End]));
    }
}
