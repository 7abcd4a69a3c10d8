//! Reaction aggregation: reactions are counted per (emoji, PDT slot) over a
//! short window and sent as one `reactions` message when it closes, so a
//! thousand viewers pressing ❤️ at once cost one message per window for
//! everyone, not a million.
//!
//! Counts are kept apart per slot of program date time (`reaction_pdt_ms`)
//! rather than merged, so each viewer's page can still show a reaction when
//! its own playback reaches the moment it was sent at.

use std::collections::BTreeMap;

use super::schema::{Emoji, ReactionCount};

/// The open window.
#[derive(Debug, Default)]
pub struct Aggregator {
    counts: BTreeMap<(Option<i64>, Emoji), u64>,
    /// When the open window closes (`None`: nothing counted).
    closes_at: Option<u64>,
    /// Reactions refused because the window had too many slots.
    pub overflow: u64,
}

/// What [`Aggregator::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Counted in the open window.
    Counted,
    /// Counted, and this opened a window: flush at this time.
    Opened { flush_at: u64 },
    /// The window already holds `max_slots` slots and this is a new one.
    Overflow,
}

impl Aggregator {
    /// Counts one reaction at `now`.
    pub fn add(
        &mut self,
        emoji: Emoji,
        pdt: Option<i64>,
        now: u64,
        window_ms: u64,
        pdt_slot_ms: u64,
        max_slots: usize,
    ) -> Added {
        let slot_ms = i64::try_from(pdt_slot_ms.max(1)).unwrap_or(i64::MAX);
        let slot = pdt.map(|p| p - p.rem_euclid(slot_ms));
        let key = (slot, emoji);
        if !self.counts.contains_key(&key) && self.counts.len() >= max_slots {
            self.overflow += 1;
            return Added::Overflow;
        }
        *self.counts.entry(key).or_insert(0) += 1;
        match self.closes_at {
            Some(_) => Added::Counted,
            None => {
                let at = now.saturating_add(window_ms);
                self.closes_at = Some(at);
                Added::Opened { flush_at: at }
            }
        }
    }

    /// When the open window closes.
    pub fn closes_at(&self) -> Option<u64> {
        self.closes_at
    }

    /// The window's counts if it has closed by `now` (and a new window
    /// starts); `None` if it is still open or empty. Ordered by slot, then
    /// emoji.
    pub fn flush(&mut self, now: u64) -> Option<Vec<ReactionCount>> {
        match self.closes_at {
            Some(at) if at <= now => {}
            _ => return None,
        }
        self.closes_at = None;
        let counts = std::mem::take(&mut self.counts);
        Some(
            counts
                .into_iter()
                .map(|((pdt, emoji), n)| ReactionCount {
                    emoji: emoji.as_str(),
                    pdt,
                    n,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Emoji {
        Emoji::parse(s).unwrap()
    }

    #[test]
    fn a_thousand_hearts_are_one_message() {
        let mut agg = Aggregator::default();
        let mut opened = 0;
        // 1000 viewers within 400 ms, all watching the same second of video
        // (their latencies differ, their PDT does not).
        for i in 0..1000u64 {
            if let Added::Opened { flush_at } = agg.add(
                e("❤️"),
                Some(1_000_000 + (i % 900) as i64),
                10_000 + i * 2 / 5,
                500,
                1000,
                64,
            ) {
                assert_eq!(flush_at, 10_500);
                opened += 1;
            }
        }
        assert_eq!(opened, 1);
        assert_eq!(agg.flush(10_499), None, "window still open");
        let out = agg.flush(10_500).unwrap();
        assert_eq!(
            out,
            vec![ReactionCount {
                emoji: "❤️",
                pdt: Some(1_000_000),
                n: 1000
            }]
        );
        assert_eq!(agg.flush(20_000), None, "nothing since");
    }

    #[test]
    fn slots_keep_the_timeline() {
        let mut agg = Aggregator::default();
        agg.add(e("🔥"), Some(5_999), 0, 500, 1000, 64);
        agg.add(e("🔥"), Some(6_000), 1, 500, 1000, 64);
        agg.add(e("❤️"), Some(6_500), 2, 500, 1000, 64);
        agg.add(e("👍"), None, 3, 500, 1000, 64);
        agg.add(e("👍"), None, 4, 500, 1000, 64);
        let out = agg.flush(500).unwrap();
        let got: Vec<(&str, Option<i64>, u64)> =
            out.iter().map(|c| (c.emoji, c.pdt, c.n)).collect();
        assert_eq!(
            got,
            [
                ("👍", None, 2),
                ("🔥", Some(5_000), 1),
                ("❤️", Some(6_000), 1),
                ("🔥", Some(6_000), 1),
            ]
        );
    }

    #[test]
    fn slots_are_bounded() {
        let mut agg = Aggregator::default();
        for i in 0..10 {
            agg.add(e("❤️"), Some(i * 1000), 0, 500, 1000, 4);
        }
        assert_eq!(agg.overflow, 6);
        // Existing slots still count.
        assert_eq!(agg.add(e("❤️"), Some(0), 1, 500, 1000, 4), Added::Counted);
        assert_eq!(agg.flush(500).unwrap().len(), 4);
    }

    #[test]
    fn negative_pdt_slots_round_down() {
        let mut agg = Aggregator::default();
        agg.add(e("❤️"), Some(-1), 0, 500, 1000, 4);
        assert_eq!(agg.flush(500).unwrap()[0].pdt, Some(-1000));
    }
}
