//! Request coalescing within one isolate: the first request for a key goes
//! to the origin (the *leader*); identical requests that arrive while it is in
//! flight wait for its result instead of asking again (*followers*).
//!
//! ```text
//! loop {
//!     match coalescer.join(key) {
//!         Join::Leader(lead) => {
//!             let v = fetch().await;       // the origin's answer, body still arriving
//!             lead.publish(v.clone());     // followers have it now, later joiners too...
//!             keep `lead` until the body is in and stored; drop it  // ...until then
//!             return v
//!         }
//!         Join::Follower(wait) => match wait.await {
//!             Some(v) => return v,   // the leader's result, shared
//!             None => continue,      // the leader gave up (cancelled): try again
//!         },
//!     }
//! }
//! ```
//!
//! The flight stays joinable from [`Leader::publish`] until the leader is
//! dropped: a request arriving while the body streams in, or while it is
//! being written to the Cache API, shares it instead of asking the origin
//! again.
//!
//! Together with the Cache API this is how a thousand viewers blocked on the
//! same `_HLS_msn`/`_HLS_part` cost one origin request per isolate; the Cache
//! API then answers later arrivals in the same location. Workers isolates are
//! single-threaded, hence `Rc` and `RefCell`: nothing here is `Send`.
//!
//! How a follower learns that the flight ended is up to the caller
//! ([`Follower::on_settled`]); the `Future` impl (a Rust waker) is for native
//! use and tests. In workerd two rules shape the Worker glue's choice:
//! a request that waits only on something another request will settle (no
//! I/O or timer of its own) is cancelled as hung, so each follower races its
//! wait against a timer (which also bounds it); and a follower waits on a JS
//! promise made in its own request and resolved by the leader, so workerd
//! continues it in its own request context, not in the leader's (which may
//! be finished by then).

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

/// Called once when a flight ends.
pub type Notify = Box<dyn FnOnce()>;

enum Slot<T> {
    Pending(Vec<Notify>),
    Done(Rc<T>),
    Abandoned,
}

impl<T> Slot<T> {
    fn is_pending(&self) -> bool {
        matches!(self, Slot::Pending(_))
    }
}

/// The caller's role for one key.
pub enum Join<T> {
    /// Nobody is fetching this key: fetch it, then [`Leader::finish`].
    Leader(Leader<T>),
    /// Someone is: wait for their result.
    Follower(Follower<T>),
}

impl<T> Coalescer<T> {
    pub fn join(&self, key: &str) -> Join<T> {
        let mut map = self.inflight.borrow_mut();
        if let Some(slot) = map.get(key) {
            return Join::Follower(Follower { slot: slot.clone() });
        }
        let slot = Rc::new(RefCell::new(Slot::Pending(Vec::new())));
        map.insert(key.to_owned(), slot.clone());
        Join::Leader(Leader {
            key: key.to_owned(),
            slot,
            map: Rc::downgrade(&self.inflight),
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

/// The one request that fetches a key. Dropping it ends the flight (the
/// next request for the key starts a new one, and should find the Cache API
/// filled); dropping it before [`publish`](Leader::publish) (e.g. the
/// client went away and the runtime cancelled the request) releases the
/// followers with `None`.
pub struct Leader<T> {
    key: String,
    slot: Rc<RefCell<Slot<T>>>,
    map: std::rc::Weak<RefCell<Map<T>>>,
}

impl<T> Leader<T> {
    /// Hands `value` to every follower, and to every request that joins
    /// until this leader is dropped.
    pub fn publish(&self, value: Rc<T>) {
        if self.slot.borrow().is_pending() {
            self.settle(Slot::Done(value));
        }
    }

    /// [`publish`](Leader::publish), then end the flight.
    pub fn finish(self, value: Rc<T>) {
        self.publish(value);
    }

    fn settle(&self, outcome: Slot<T>) {
        let previous = std::mem::replace(&mut *self.slot.borrow_mut(), outcome);
        // The slot is no longer borrowed: a callback may look at it.
        if let Slot::Pending(notify) = previous {
            notify.into_iter().for_each(|n| n());
        }
    }
}

impl<T> Drop for Leader<T> {
    fn drop(&mut self) {
        if let Some(map) = self.map.upgrade() {
            let mut map = map.borrow_mut();
            if map
                .get(&self.key)
                .is_some_and(|s| Rc::ptr_eq(s, &self.slot))
            {
                map.remove(&self.key);
            }
        }
        if self.slot.borrow().is_pending() {
            self.settle(Slot::Abandoned);
        }
    }
}

/// A request waiting for another one's origin fetch.
pub struct Follower<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

impl<T> Follower<T> {
    /// Calls `notify` once the flight ends (right away if it has).
    pub fn on_settled(&self, notify: Notify) {
        let mut slot = self.slot.borrow_mut();
        if let Slot::Pending(list) = &mut *slot {
            list.push(notify);
            return;
        }
        drop(slot);
        notify();
    }

    /// `None` while in flight; then `Some(Some(result))`, or `Some(None)`
    /// if the leader gave up.
    pub fn outcome(&self) -> Option<Option<Rc<T>>> {
        match &*self.slot.borrow() {
            Slot::Pending(_) => None,
            Slot::Done(v) => Some(Some(v.clone())),
            Slot::Abandoned => Some(None),
        }
    }
}

/// Waker-based waiting, for native callers: `Some(result)`, or `None` if the
/// leader gave up.
impl<T> Future for Follower<T> {
    type Output = Option<Rc<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.outcome() {
            Some(v) => Poll::Ready(v),
            None => {
                let waker: Waker = cx.waker().clone();
                self.on_settled(Box::new(move || waker.wake()));
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
        let mut waits: Vec<Follower<String>> = (0..1000)
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
    fn callbacks_run_once_settled_and_may_look_at_the_outcome() {
        let c: Coalescer<u32> = Coalescer::default();
        let Join::Leader(lead) = c.join("k") else {
            panic!()
        };
        let Join::Follower(f) = c.join("k") else {
            panic!()
        };
        let f = Rc::new(f);
        let seen = Rc::new(RefCell::new(Vec::new()));
        for _ in 0..3 {
            let (f2, seen2) = (f.clone(), seen.clone());
            f.on_settled(Box::new(move || seen2.borrow_mut().push(f2.outcome())));
        }
        assert!(seen.borrow().is_empty());
        assert_eq!(f.outcome(), None);
        lead.finish(Rc::new(7));
        assert_eq!(*seen.borrow(), vec![Some(Some(Rc::new(7))); 3]);
        // Registering after the end calls back at once.
        let seen2 = seen.clone();
        f.on_settled(Box::new(move || seen2.borrow_mut().push(None)));
        assert_eq!(seen.borrow().len(), 4);
    }

    #[test]
    fn a_published_flight_stays_joinable_until_the_leader_ends_it() {
        let c: Coalescer<u32> = Coalescer::default();
        let Join::Leader(lead) = c.join("k") else {
            panic!()
        };
        let Join::Follower(early) = c.join("k") else {
            panic!()
        };
        lead.publish(Rc::new(7));
        assert_eq!(early.outcome(), Some(Some(Rc::new(7))));
        // While the body streams in (or is being stored), newcomers share it.
        let Join::Follower(late) = c.join("k") else {
            panic!("a published flight is still joinable")
        };
        assert_eq!(late.outcome(), Some(Some(Rc::new(7))));
        lead.publish(Rc::new(8));
        assert_eq!(late.outcome(), Some(Some(Rc::new(7))), "published once");
        assert_eq!(c.len(), 1);
        drop(lead);
        assert!(c.is_empty());
        assert!(matches!(c.join("k"), Join::Leader(_)), "then a new flight");
        assert_eq!(
            early.outcome(),
            Some(Some(Rc::new(7))),
            "followers keep the value"
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
