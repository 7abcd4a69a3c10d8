//! Request coalescing within one isolate: the first request for a key goes
//! to the origin (the *leader*); identical requests that arrive while it is in
//! flight wait for its result instead of asking again (*followers*).
//!
//! ```text
//! loop {
//!     match coalescer.join(key) {
//!         Join::Leader(lead) => { let v = fetch().await; lead.finish(v.clone()); return v }
//!         Join::Follower(wait) => match wait.await {
//!             Some(v) => return v,   // the leader's result, shared
//!             None => continue,      // the leader gave up (cancelled): try again
//!         },
//!     }
//! }
//! ```
//!
//! Together with the Cache API this is how a thousand viewers blocked on the
//! same `_HLS_msn`/`_HLS_part` cost one origin request per isolate; the Cache
//! API then answers later arrivals in the same location. Workers isolates are
//! single-threaded, hence `Rc` and `RefCell`: nothing here is `Send`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

type Map<T> = HashMap<String, Rc<RefCell<Slot<T>>>>;

/// In-flight requests by key. `T` is the shared result.
pub struct Coalescer<T> {
    inflight: Rc<RefCell<Map<T>>>,
}

impl<T> Default for Coalescer<T> {
    fn default() -> Self {
        Self {
            inflight: Rc::default(),
        }
    }
}

enum Slot<T> {
    Pending(Vec<Waker>),
    Done(Rc<T>),
    Abandoned,
}

/// The caller's role for one key.
pub enum Join<T> {
    /// Nobody is fetching this key: fetch it, then [`Leader::finish`].
    Leader(Leader<T>),
    /// Someone is: await this for their result.
    Follower(Wait<T>),
}

impl<T> Coalescer<T> {
    pub fn join(&self, key: &str) -> Join<T> {
        let mut map = self.inflight.borrow_mut();
        if let Some(slot) = map.get(key) {
            return Join::Follower(Wait { slot: slot.clone() });
        }
        let slot = Rc::new(RefCell::new(Slot::Pending(Vec::new())));
        map.insert(key.to_owned(), slot.clone());
        Join::Leader(Leader {
            key: key.to_owned(),
            slot,
            map: Rc::downgrade(&self.inflight),
            finished: false,
        })
    }

    /// Keys in flight right now.
    pub fn len(&self) -> usize {
        self.inflight.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The one request that fetches a key. Dropping it without
/// [`finish`](Leader::finish) (e.g. the client went away and the runtime
/// cancelled the request) releases the followers with `None`.
pub struct Leader<T> {
    key: String,
    slot: Rc<RefCell<Slot<T>>>,
    map: std::rc::Weak<RefCell<Map<T>>>,
    finished: bool,
}

impl<T> Leader<T> {
    /// Hands `value` to every follower and ends the flight: the next request
    /// for the key starts a new one (and should find the Cache API filled).
    pub fn finish(mut self, value: Rc<T>) {
        self.settle(Slot::Done(value));
    }

    fn settle(&mut self, outcome: Slot<T>) {
        self.finished = true;
        if let Some(map) = self.map.upgrade() {
            let mut map = map.borrow_mut();
            if map
                .get(&self.key)
                .is_some_and(|s| Rc::ptr_eq(s, &self.slot))
            {
                map.remove(&self.key);
            }
        }
        let previous = std::mem::replace(&mut *self.slot.borrow_mut(), outcome);
        if let Slot::Pending(wakers) = previous {
            wakers.into_iter().for_each(Waker::wake);
        }
    }
}

impl<T> Drop for Leader<T> {
    fn drop(&mut self) {
        if !self.finished {
            self.settle(Slot::Abandoned);
        }
    }
}

/// A follower's wait: `Some(result)`, or `None` if the leader gave up.
pub struct Wait<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

impl<T> Future for Wait<T> {
    type Output = Option<Rc<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.slot.borrow_mut();
        match &mut *slot {
            Slot::Done(v) => Poll::Ready(Some(v.clone())),
            Slot::Abandoned => Poll::Ready(None),
            Slot::Pending(wakers) => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_thousand_waiters_one_leader() {
        let c: Coalescer<String> = Coalescer::default();
        let Join::Leader(lead) = c.join("k") else {
            panic!("first join must lead")
        };
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let mut waits: Vec<Wait<String>> = (0..1000)
            .map(|_| match c.join("k") {
                Join::Follower(w) => w,
                Join::Leader(_) => panic!("only one leader per key"),
            })
            .collect();
        for w in &mut waits {
            assert!(poll(w, &waker).is_pending());
        }
        // Another key has its own leader.
        assert!(matches!(c.join("other"), Join::Leader(_)));
        assert_eq!(c.len(), 1, "the dropped `other` leader left nothing behind");

        lead.finish(Rc::new("body".into()));
        assert!(woken.0.load(Ordering::SeqCst) >= 1);
        for w in &mut waits {
            assert_eq!(poll(w, &waker), Poll::Ready(Some(Rc::new("body".into()))));
        }
        assert!(c.is_empty());
        assert!(
            matches!(c.join("k"), Join::Leader(_)),
            "a new flight after finish"
        );
    }

    #[test]
    fn an_abandoned_flight_releases_followers() {
        let c: Coalescer<u32> = Coalescer::default();
        let lead = match c.join("k") {
            Join::Leader(l) => l,
            Join::Follower(_) => panic!(),
        };
        let mut w = match c.join("k") {
            Join::Follower(w) => w,
            Join::Leader(_) => panic!(),
        };
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        assert!(poll(&mut w, &waker).is_pending());
        drop(lead);
        assert_eq!(poll(&mut w, &waker), Poll::Ready(None));
        assert!(c.is_empty());
        // The follower retries and becomes the leader.
        assert!(matches!(c.join("k"), Join::Leader(_)));
    }
}
