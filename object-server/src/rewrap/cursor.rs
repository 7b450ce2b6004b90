//! The cursor of a unit walked with several keys in flight. Keys are started in ascending
//! order but finish in any order; the cursor saved to disk (the last key done,
//! [`super::state::UnitState::cursor`]) may only move past a key when that key and every key
//! before it are done, or a crash would skip the ones still in flight. So each started key
//! waits in a window, in order, until it and all before it are done; then the done prefix
//! leaves the window, and the cursor and the saved counts move past it together (the counts on
//! disk are always exactly those of the keys up to the cursor).
use std::collections::VecDeque;

use super::state::Tally;

/// Started keys not yet behind the cursor, in ascending order, with the tally of each done one.
#[derive(Debug, Default)]
pub struct Window {
    keys: VecDeque<(String, Option<Tally>)>,
    in_flight: usize,
}

/// What left the window: the new cursor and the tally of the keys up to it.
#[derive(Debug, PartialEq, Eq)]
pub struct Advance {
    pub cursor: String,
    pub tally: Tally,
}

impl Window {
    /// Starts `key`, which sorts after every key started before.
    pub fn start(&mut self, key: String) {
        debug_assert!(
            self.keys.back().is_none_or(|(k, _)| *k < key),
            "keys in order"
        );
        self.keys.push_back((key, None));
        self.in_flight += 1;
    }

    /// Keys started and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Records that `key` (started, not finished before) is done with `tally`, and returns what
    /// leaves the window: `None` while a key before it is still in flight.
    pub fn finish(&mut self, key: &str, tally: Tally) -> Option<Advance> {
        let i = self
            .keys
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .expect("a started key");
        let slot = &mut self.keys[i].1;
        assert!(slot.is_none(), "a key finishes once");
        *slot = Some(tally);
        self.in_flight -= 1;
        let mut advance: Option<Advance> = None;
        while self.keys.front().is_some_and(|(_, t)| t.is_some()) {
            let (key, tally) = self.keys.pop_front().expect("a front");
            let tally = tally.expect("done");
            match &mut advance {
                Some(a) => {
                    a.cursor = key;
                    a.tally.add(&tally);
                }
                None => advance = Some(Advance { cursor: key, tally }),
            }
        }
        advance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(rewrapped: u64) -> Tally {
        let mut t = Tally::default();
        t.counts.scanned = rewrapped;
        t.counts.rewrapped = rewrapped;
        t
    }

    #[test]
    fn moves_only_past_a_done_prefix() {
        let mut w = Window::default();
        for k in ["a", "b", "c", "d"] {
            w.start(k.into());
        }
        assert_eq!(w.in_flight(), 4);
        // Out of order: nothing before "a" is done.
        assert_eq!(w.finish("c", tally(3)), None);
        assert_eq!(w.finish("b", tally(2)), None);
        assert_eq!(w.in_flight(), 2);
        // "a" done: a, b and c leave together, with their counts summed.
        assert_eq!(
            w.finish("a", tally(1)),
            Some(Advance {
                cursor: "c".into(),
                tally: tally(6)
            })
        );
        w.start("e".into());
        assert_eq!(w.finish("e", tally(5)), None, "d is still in flight");
        assert_eq!(
            w.finish("d", tally(4)),
            Some(Advance {
                cursor: "e".into(),
                tally: tally(9)
            })
        );
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn a_crash_never_skips_a_key_in_flight() {
        // Every order of completion of 5 keys: after each step, the cursor (what a crash
        // resumes after) never passes a key not yet done, and in the end it reaches the last.
        let keys = ["k1", "k2", "k3", "k4", "k5"];
        let mut orders = vec![vec![]];
        for _ in 0..keys.len() {
            orders = orders
                .into_iter()
                .flat_map(|o: Vec<usize>| {
                    (0..keys.len())
                        .filter(|i| !o.contains(i))
                        .map(|i| [o.clone(), vec![i]].concat())
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        assert_eq!(orders.len(), 120);
        for order in orders {
            let mut w = Window::default();
            keys.iter().for_each(|k| w.start((*k).into()));
            let (mut cursor, mut counted, mut done) = (None::<String>, 0, vec![false; 5]);
            for i in order {
                done[i] = true;
                if let Some(a) = w.finish(keys[i], tally(1)) {
                    counted += a.tally.counts.rewrapped;
                    cursor = Some(a.cursor);
                }
                let behind = keys
                    .iter()
                    .filter(|k| cursor.as_deref().is_some_and(|c| **k <= c))
                    .count();
                assert!(done[..behind].iter().all(|d| *d), "skipped a key in flight");
                assert_eq!(
                    counted, behind as u64,
                    "the counts are those of the keys behind"
                );
            }
            assert_eq!(cursor.as_deref(), Some("k5"));
        }
    }
}
