//! One origin answer shared, while it is still arriving, by every request
//! that coalesced on it ([`crate::delivery::coalesce`]): the leader's pump
//! pushes the origin's chunks in as they come, and each request reads them
//! out at its own pace, so a preload-hinted part the origin streams while it
//! is being made reaches every viewer chunk by chunk, not once complete.
//!
//! ```text
//! leader:  body = SharedBody::new(limit); share Flight { status, headers, body }
//!          pump (after the response started): for chunk in origin { body.push(chunk)? }; body.finish()
//! anyone:  let mut r = body.reader();
//!          loop { match r.poll() { Chunk(c) => send(c), Pending => wait for r.on_change(..), End => done, Failed(e) => abort } }
//! ```
//!
//! Workers isolates are single-threaded, hence `Rc` and `RefCell`. How a
//! reader waits is the caller's business ([`Reader::on_change`]); in
//! workerd it is a promise made in the reader's own request and resolved by
//! the pump (see `coalesce` for why).

use std::cell::RefCell;
use std::rc::Rc;

use super::body::TooLarge;
use super::coalesce::Notify;

/// How a shared body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte the origin sent is in.
    Complete,
    /// The origin's body failed, or passed the limit: readers must not take
    /// what they got for the whole.
    Failed(String),
}

#[derive(Default)]
struct Inner {
    chunks: Vec<Rc<[u8]>>,
    len: usize,
    limit: usize,
    end: Option<End>,
    waiting: Vec<Notify>,
}

/// A body being received once and read by many.
#[derive(Clone)]
pub struct SharedBody {
    inner: Rc<RefCell<Inner>>,
}

impl std::fmt::Debug for SharedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("SharedBody")
            .field("len", &inner.len)
            .field("end", &inner.end)
            .finish()
    }
}

impl SharedBody {
    /// An empty body that may grow to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Rc::new(RefCell::new(Inner {
                limit,
                ..Inner::default()
            })),
        }
    }

    /// Appends a chunk. Past the limit the body fails instead (readers get
    /// [`Next::Failed`]) and the caller should stop reading the origin.
    pub fn push(&self, chunk: &[u8]) -> Result<(), TooLarge> {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.end.is_some() || chunk.is_empty() {
                return Ok(());
            }
            if inner.len.saturating_add(chunk.len()) > inner.limit {
                let limit = inner.limit;
                drop(inner);
                self.fail(TooLarge { limit }.to_string());
                return Err(TooLarge { limit });
            }
            inner.len += chunk.len();
            inner.chunks.push(Rc::from(chunk));
        }
        self.wake();
        Ok(())
    }

    /// The origin's body is complete.
    pub fn finish(&self) {
        self.end_with(End::Complete);
    }

    /// The origin's body failed.
    pub fn fail(&self, why: impl Into<String>) {
        self.end_with(End::Failed(why.into()));
    }

    fn end_with(&self, end: End) {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.end.is_some() {
                return;
            }
            inner.end = Some(end);
        }
        self.wake();
    }

    /// Runs every waiting reader's callback, outside the borrow (a callback
    /// may read the body).
    fn wake(&self) {
        let waiting = std::mem::take(&mut self.inner.borrow_mut().waiting);
        waiting.into_iter().for_each(|n| n());
    }

    /// How it ended, once it has.
    pub fn end(&self) -> Option<End> {
        self.inner.borrow().end.clone()
    }

    /// Bytes received so far.
    pub fn len(&self) -> usize {
        self.inner.borrow().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole body once complete (`None` before, or if it failed).
    pub fn complete_bytes(&self) -> Option<Vec<u8>> {
        let inner = self.inner.borrow();
        (inner.end == Some(End::Complete)).then(|| inner.chunks.concat())
    }

    /// A reader from the first byte.
    pub fn reader(&self) -> Reader {
        Reader {
            body: self.clone(),
            next: 0,
        }
    }
}

/// One request's position in a [`SharedBody`].
#[derive(Debug, Clone)]
pub struct Reader {
    body: SharedBody,
    next: usize,
}

/// What a reader gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Chunk(Rc<[u8]>),
    /// Nothing new yet: wait for [`Reader::on_change`].
    Pending,
    /// Everything read.
    End,
    /// The body failed: what was read so far is not the whole.
    Failed(String),
}

impl Reader {
    pub fn poll(&mut self) -> Next {
        let inner = self.body.inner.borrow();
        if let Some(End::Failed(why)) = &inner.end {
            return Next::Failed(why.clone());
        }
        if let Some(chunk) = inner.chunks.get(self.next) {
            self.next += 1;
            return Next::Chunk(chunk.clone());
        }
        match &inner.end {
            Some(End::Complete) => Next::End,
            Some(End::Failed(why)) => Next::Failed(why.clone()),
            None => Next::Pending,
        }
    }

    /// Calls `notify` once there is something new for this reader (at once
    /// if there already is).
    pub fn on_change(&self, notify: Notify) {
        let mut inner = self.body.inner.borrow_mut();
        if inner.end.is_some() || self.next < inner.chunks.len() {
            drop(inner);
            notify();
            return;
        }
        inner.waiting.push(notify);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn text(n: Next) -> String {
        match n {
            Next::Chunk(c) => String::from_utf8_lossy(&c).into_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn readers_get_chunks_as_they_arrive() {
        let body = SharedBody::new(100);
        let mut early = body.reader();
        assert_eq!(early.poll(), Next::Pending);
        let woken = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let w = woken.clone();
            early.on_change(Box::new(move || w.set(w.get() + 1)));
        }
        body.push(b"moof").unwrap();
        assert_eq!(woken.get(), 3, "every waiting callback ran once");
        assert_eq!(text(early.poll()), "moof");
        assert_eq!(early.poll(), Next::Pending);
        body.push(b"mdat").unwrap();
        // A reader that joins late starts from the first byte.
        let mut late = body.reader();
        assert_eq!(text(late.poll()), "moof");
        assert_eq!(text(late.poll()), "mdat");
        assert_eq!(text(early.poll()), "mdat");
        assert_eq!(body.complete_bytes(), None, "not complete yet");
        body.finish();
        assert_eq!(early.poll(), Next::End);
        assert_eq!(late.poll(), Next::End);
        assert_eq!(body.complete_bytes().unwrap(), b"moofmdat");
        // Asking after the end answers at once.
        let called = Rc::new(Cell::new(false));
        let c = called.clone();
        early.on_change(Box::new(move || c.set(true)));
        assert!(called.get());
    }

    #[test]
    fn a_body_past_its_limit_fails_for_every_reader() {
        let body = SharedBody::new(6);
        let mut r = body.reader();
        body.push(b"1234").unwrap();
        assert_eq!(body.push(b"567"), Err(TooLarge { limit: 6 }));
        assert!(
            matches!(r.poll(), Next::Failed(_)),
            "never a truncated whole"
        );
        assert!(matches!(body.end(), Some(End::Failed(_))));
        assert_eq!(body.complete_bytes(), None);
        // Pushing after the end changes nothing.
        body.push(b"x").unwrap();
        assert_eq!(body.len(), 4);
    }

    #[test]
    fn a_failed_origin_body_fails_readers_and_callbacks_may_read() {
        let body = SharedBody::new(100);
        let r = Rc::new(RefCell::new(body.reader()));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (r2, seen2) = (r.clone(), seen.clone());
        r.borrow().on_change(Box::new(move || {
            seen2.borrow_mut().push(r2.borrow_mut().poll())
        }));
        body.fail("connection reset");
        assert_eq!(*seen.borrow(), [Next::Failed("connection reset".into())]);
        body.finish();
        assert_eq!(
            body.end(),
            Some(End::Failed("connection reset".into())),
            "the first end stays"
        );
    }
}
