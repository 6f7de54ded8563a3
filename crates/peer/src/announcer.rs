//! Which tracker to announce to, when, and with which event. Sans-IO: the
//! session's tracker task asks [`Announcer::next`], does the announce and
//! reports back; time comes in as an [`Instant`].
//!
//! **Several trackers** (BEP 12, one tier): the peer announces to one
//! tracker at a time, the first in its list that is not backing off. When
//! an announce fails (refused, timed out, an error reply) that tracker backs
//! off (1, 2, 4, … 30 s, its own count) and the next one is asked at once;
//! a tracker that answers moves to the front of the list. The first
//! request to each tracker is `started`.
//!
//! **Two dialects.** A reply with `interval` comes from one of our trackers;
//! a reply without one from the seed's original tracker, where `completed`
//! means "I am leaving" and a request without `event` kills it. So towards
//! the seed's tracker the peer refreshes with `started` again, does not send
//! `completed` when the download finishes, and sends `completed` (not
//! `stopped`) when it leaves. Towards ours: `started`, refreshes without
//! `event`, `completed` once when the download finishes, `stopped` when
//! leaving.

use std::time::{Duration, Instant};

use wire::tracker::Event;

/// Seconds between refreshes when the tracker names none (the seed's).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Bounds on the interval a tracker may ask for.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// With `--exit-when-done`, give up telling the trackers after this many
/// failed announces in a row once the download is complete.
pub const GIVE_UP_AFTER: u32 = 3;

/// Backoff after `failures` consecutive failures of one tracker: 1, 2, 4, …
/// capped at 30 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30))
}

/// What a tracker's replies say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// It has not answered yet.
    Unknown,
    /// Its replies carry `interval`: one of ours.
    Ours,
    /// Its replies carry no `interval`: the seed's original tracker.
    Seeds,
}

#[derive(Debug)]
struct Tracker {
    addr: String,
    dialect: Dialect,
    failures: u32,
    retry_at: Option<Instant>,
    told_started: bool,
    told_completed: bool,
}

impl Tracker {
    fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| at <= now)
    }
}

/// One announce to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub tracker: String,
    pub event: Option<Event>,
}

/// What the tracker task does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Announce(Announce),
    /// Nothing before this (unless the download completes meanwhile).
    WaitUntil(Instant),
}

/// Whether the session goes on after an announce (or a completed download).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Continue,
    /// `--exit-when-done` and the trackers know (or cannot be told).
    Exit,
}

/// The tracker list and the announce schedule.
#[derive(Debug)]
pub struct Announcer {
    /// In order of preference: the one that answered last first.
    trackers: Vec<Tracker>,
    complete: bool,
    exit_when_done: bool,
    /// When the next periodic announce is due.
    due: Instant,
    /// Failed announces in a row since the download completed.
    failures_when_done: u32,
}

impl Announcer {
    /// Announces to `trackers` (in this order of preference), starting now.
    pub fn new(trackers: Vec<String>, exit_when_done: bool, now: Instant) -> Announcer {
        Announcer {
            trackers: trackers
                .into_iter()
                .map(|addr| Tracker {
                    addr,
                    dialect: Dialect::Unknown,
                    failures: 0,
                    retry_at: None,
                    told_started: false,
                    told_completed: false,
                })
                .collect(),
            complete: false,
            exit_when_done,
            due: now,
            failures_when_done: 0,
        }
    }

    /// The trackers, in the order they are tried.
    pub fn order(&self) -> Vec<&str> {
        self.trackers.iter().map(|t| t.addr.as_str()).collect()
    }

    /// What a tracker's replies said it is.
    pub fn dialect(&self, tracker: &str) -> Option<Dialect> {
        self.trackers
            .iter()
            .find(|t| t.addr == tracker)
            .map(|t| t.dialect)
    }

    /// Whether the last announce to `tracker` failed.
    pub fn failing(&self, tracker: &str) -> bool {
        self.trackers
            .iter()
            .any(|t| t.addr == tracker && t.failures > 0)
    }

    /// The event to send `t` now.
    fn event_for(&self, t: &Tracker) -> Option<Event> {
        match t.dialect {
            // Its refresh is `started`; `completed` would mean leaving.
            Dialect::Seeds => Some(Event::Started),
            _ if !t.told_started => Some(Event::Started),
            _ if self.complete && !t.told_completed => Some(Event::Completed),
            _ => None,
        }
    }

    /// The next announce, or when to look again.
    pub fn next(&self, now: Instant) -> Step {
        let Some(t) = self.trackers.iter().find(|t| t.ready(now)) else {
            let wake = self.trackers.iter().filter_map(|t| t.retry_at).min();
            return Step::WaitUntil(wake.unwrap_or(self.due));
        };
        let event = self.event_for(t);
        let urgent = match event {
            Some(Event::Started) => !t.told_started,
            Some(Event::Completed) => true,
            _ => false,
        };
        if urgent || now >= self.due {
            Step::Announce(Announce {
                tracker: t.addr.clone(),
                event,
            })
        } else {
            Step::WaitUntil(self.due)
        }
    }

    /// `tracker` answered the announce carrying `event`; its reply had this
    /// `interval` (seconds) or none.
    pub fn answered(
        &mut self,
        tracker: &str,
        event: Option<Event>,
        interval: Option<u64>,
        now: Instant,
    ) -> After {
        let Some(i) = self.trackers.iter().position(|t| t.addr == tracker) else {
            return After::Continue;
        };
        let mut t = self.trackers.remove(i);
        t.failures = 0;
        t.retry_at = None;
        t.dialect = if interval.is_some() {
            Dialect::Ours
        } else {
            Dialect::Seeds
        };
        match event {
            Some(Event::Started) => t.told_started = true,
            Some(Event::Completed) if t.dialect == Dialect::Ours => {
                t.told_started = true;
                t.told_completed = true;
            }
            _ => {}
        }
        let every = interval.map_or(DEFAULT_INTERVAL, Duration::from_secs);
        self.due = now + every.clamp(MIN_INTERVAL, MAX_INTERVAL);
        self.trackers.insert(0, t);
        self.failures_when_done = 0;
        self.after()
    }

    /// The announce to `tracker` failed.
    pub fn failed(&mut self, tracker: &str, now: Instant) -> After {
        if let Some(t) = self.trackers.iter_mut().find(|t| t.addr == tracker) {
            t.failures += 1;
            t.retry_at = Some(now + backoff(t.failures - 1));
        }
        if self.complete && self.exit_when_done {
            self.failures_when_done += 1;
            if self.failures_when_done >= GIVE_UP_AFTER {
                return After::Exit;
            }
        }
        After::Continue
    }

    /// The download is complete.
    pub fn download_complete(&mut self) -> After {
        self.complete = true;
        self.after()
    }

    /// Exit with `--exit-when-done` once the front tracker knows we are done:
    /// ours was told `completed`; the seed's is never told (it would take
    /// it for leaving), so there it is time as soon as the download is.
    fn after(&self) -> After {
        let told = self.trackers.first().is_some_and(|t| match t.dialect {
            Dialect::Ours => t.told_completed,
            Dialect::Seeds => t.told_started,
            Dialect::Unknown => false,
        });
        if self.exit_when_done && self.complete && told {
            After::Exit
        } else {
            After::Continue
        }
    }

    /// The announces that say goodbye: to every tracker told `started`,
    /// `stopped` to ours and `completed` to the seed's.
    pub fn leaving(&self) -> Vec<Announce> {
        self.trackers
            .iter()
            .filter(|t| t.told_started)
            .map(|t| Announce {
                tracker: t.addr.clone(),
                event: Some(match t.dialect {
                    Dialect::Seeds => Event::Completed,
                    _ => Event::Stopped,
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "10.0.0.1:6666";
    const B: &str = "10.0.0.2:6666";
    const C: &str = "10.0.0.3:6666";

    fn announcer(exit_when_done: bool) -> (Announcer, Instant) {
        let now = Instant::now();
        let list = [A, B, C].map(String::from).to_vec();
        (Announcer::new(list, exit_when_done, now), now)
    }

    fn announce(tracker: &str, event: Option<Event>) -> Step {
        Step::Announce(Announce {
            tracker: tracker.into(),
            event,
        })
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }

    #[test]
    fn failures_move_on_at_once_and_the_one_that_answers_goes_first() {
        let (mut a, t0) = announcer(false);
        assert_eq!(a.next(t0), announce(A, Some(Event::Started)));
        a.failed(A, t0);
        assert_eq!(a.next(t0), announce(B, Some(Event::Started)));
        a.failed(B, t0);
        assert_eq!(a.next(t0), announce(C, Some(Event::Started)));
        a.answered(C, Some(Event::Started), Some(30), t0);
        assert_eq!(a.order(), [C, A, B]);
        // Refreshes go to C, without event, every 30 s.
        assert_eq!(a.next(t0), Step::WaitUntil(t0 + Duration::from_secs(30)));
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(a.next(t1), announce(C, None));
        // C dies: A has served its backoff and is asked, with `started`.
        a.failed(C, t1);
        assert_eq!(a.next(t1), announce(A, Some(Event::Started)));
        a.answered(A, Some(Event::Started), Some(30), t1);
        assert_eq!(a.order(), [A, C, B]);
    }

    #[test]
    fn each_tracker_backs_off_on_its_own() {
        let (mut a, t0) = announcer(false);
        for t in [A, B, C] {
            a.failed(t, t0);
        }
        // All backing off: wait for the first to be ready again.
        assert_eq!(a.next(t0), Step::WaitUntil(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(a.next(t1), announce(A, Some(Event::Started)));
        a.failed(A, t1);
        // A now waits 2 s; B is ready.
        assert_eq!(a.next(t1), announce(B, Some(Event::Started)));
        a.failed(B, t1);
        a.failed(C, t1);
        assert_eq!(a.next(t1), Step::WaitUntil(t1 + Duration::from_secs(2)));
    }

    #[test]
    fn ours_hears_completed_once_then_stopped() {
        let (mut a, t0) = announcer(false);
        a.answered(A, Some(Event::Started), Some(60), t0);
        assert_eq!(a.download_complete(), After::Continue);
        assert_eq!(a.next(t0), announce(A, Some(Event::Completed)));
        a.answered(A, Some(Event::Completed), Some(60), t0);
        assert_eq!(a.next(t0 + Duration::from_secs(60)), announce(A, None));
        // Failing over after completion: the next one hears started, then completed.
        a.failed(A, t0 + Duration::from_secs(60));
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(a.next(t1), announce(B, Some(Event::Started)));
        a.answered(B, Some(Event::Started), Some(60), t1);
        assert_eq!(a.next(t1), announce(B, Some(Event::Completed)));
        a.answered(B, Some(Event::Completed), Some(60), t1);
        let bye = a.leaving();
        assert_eq!(bye.len(), 2, "{bye:?}");
        assert!(bye.iter().all(|b| b.event == Some(Event::Stopped)));
    }

    #[test]
    fn the_seeds_tracker_hears_only_started_and_completed_on_leaving() {
        let (mut a, t0) = announcer(false);
        a.answered(A, Some(Event::Started), None, t0);
        assert_eq!(a.dialect(A), Some(Dialect::Seeds));
        assert_eq!(a.next(t0), Step::WaitUntil(t0 + DEFAULT_INTERVAL));
        assert_eq!(
            a.next(t0 + DEFAULT_INTERVAL),
            announce(A, Some(Event::Started))
        );
        a.download_complete();
        let t1 = t0 + DEFAULT_INTERVAL;
        a.answered(A, Some(Event::Started), None, t1);
        // No completed on finishing; refreshes stay `started`.
        assert_eq!(a.next(t1), Step::WaitUntil(t1 + DEFAULT_INTERVAL));
        assert_eq!(
            a.next(t1 + DEFAULT_INTERVAL),
            announce(A, Some(Event::Started))
        );
        assert_eq!(
            a.leaving(),
            vec![Announce {
                tracker: A.into(),
                event: Some(Event::Completed)
            }]
        );
    }

    #[test]
    fn exit_when_done_waits_for_the_tracker_to_know() {
        let (mut a, t0) = announcer(true);
        a.answered(A, Some(Event::Started), Some(60), t0);
        assert_eq!(a.download_complete(), After::Continue);
        assert_eq!(
            a.answered(A, Some(Event::Completed), Some(60), t0),
            After::Exit
        );
        // The seed's tracker is never told: done is enough.
        let (mut s, t0) = announcer(true);
        s.answered(A, Some(Event::Started), None, t0);
        assert_eq!(s.download_complete(), After::Exit);
        // Nobody reachable: give up after a few tries.
        let (mut n, t0) = announcer(true);
        n.download_complete();
        assert_eq!(n.failed(A, t0), After::Continue);
        assert_eq!(n.failed(B, t0), After::Continue);
        assert_eq!(n.failed(C, t0), After::Exit);
        assert!(n.leaving().is_empty(), "nobody was told started");
    }

    #[test]
    fn a_seeder_starts_before_it_completes() {
        let (mut a, t0) = announcer(false);
        a.download_complete();
        // The dialect is unknown: `completed` could mean leaving.
        assert_eq!(a.next(t0), announce(A, Some(Event::Started)));
        a.answered(A, Some(Event::Started), Some(60), t0);
        assert_eq!(a.next(t0), announce(A, Some(Event::Completed)));
    }

    #[test]
    fn no_request_without_event_ever_reaches_the_seeds_tracker() {
        // Any interleaving of answers and failures: once a tracker replied
        // without interval, every request to it carries started.
        let (mut a, mut now) = announcer(false);
        for round in 0..200u32 {
            if round == 50 {
                a.download_complete();
            }
            let Step::Announce(next) = a.next(now) else {
                now += Duration::from_secs(61);
                continue;
            };
            if a.dialect(&next.tracker) == Some(Dialect::Seeds) {
                assert_eq!(next.event, Some(Event::Started), "round {round}");
            }
            let seeds = next.tracker == B;
            if round % 7 == 3 {
                a.failed(&next.tracker, now);
            } else {
                a.answered(&next.tracker, next.event, (!seeds).then_some(60), now);
            }
            now += Duration::from_secs(1);
        }
    }
}
