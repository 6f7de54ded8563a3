//! The IGMP querier election (RFC 2236 §3 and §7, RFC 3376 §6.6.2), without
//! sockets or clocks: the caller feeds in the queries it hears and the
//! current time, and does what [`Querier::poll`] says.
//!
//! Every querier starts as the querier and sends general queries: first
//! [`QuerierConfig::robustness`] start-up queries a quarter interval apart,
//! then one per query interval. Hearing a query from a lower IPv4 address
//! makes it a non-querier; it takes over again once no such query has been
//! heard for the other-querier-present interval (robustness × query
//! interval + half the query response interval; an IGMPv3 querier's own QRV
//! and QQI are used when its queries carry them, as RFC 3376 §4.1.6–4.1.7 asks).
//!
//! ```
//! use std::net::Ipv4Addr;
//! use std::time::{Duration, Instant};
//! use wire::querier::{Action, Querier, QuerierConfig};
//!
//! let t0 = Instant::now();
//! let mut q = Querier::new(Ipv4Addr::new(10, 0, 0, 2), QuerierConfig::new(Duration::from_secs(10)), t0);
//! assert_eq!(q.poll(t0), Some(Action::SendGeneralQuery));
//! let lower = Ipv4Addr::new(10, 0, 0, 1);
//! let heard = QuerierConfig::new(Duration::from_secs(10)).general_query();
//! assert_eq!(q.on_query(lower, &heard, t0), Some(Action::SteppedDown { querier: lower }));
//! ```

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::membership::{Query, SourceQuery};

/// The RFC default query response interval (the max response time of general queries).
pub const DEFAULT_RESPONSE_INTERVAL: Duration = Duration::from_secs(10);
/// The RFC default robustness variable.
pub const DEFAULT_ROBUSTNESS: u8 = 2;

/// A querier's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuerierConfig {
    /// Time between general queries (RFC default 125 s).
    pub query_interval: Duration,
    /// Robustness variable, 1..=7 (RFC default 2).
    pub robustness: u8,
    /// Max response time advertised in general queries.
    pub response_interval: Duration,
}

impl QuerierConfig {
    /// RFC defaults with another query interval; the response interval is
    /// 10 s or half the query interval, whichever is shorter (it must be
    /// shorter than the query interval).
    pub fn new(query_interval: Duration) -> QuerierConfig {
        QuerierConfig {
            query_interval,
            robustness: DEFAULT_ROBUSTNESS,
            response_interval: DEFAULT_RESPONSE_INTERVAL.min(query_interval / 2),
        }
    }

    /// Robustness × query interval + half the response interval.
    pub fn other_querier_present(&self) -> Duration {
        other_present(self.robustness, self.query_interval, self.response_interval)
    }

    /// A quarter of the query interval.
    pub fn startup_interval(&self) -> Duration {
        self.query_interval / 4
    }

    /// The IGMPv3 general query this querier sends.
    pub fn general_query(&self) -> Query<Ipv4Addr> {
        Query {
            version: 3,
            group: Ipv4Addr::UNSPECIFIED,
            max_resp_ms: u32::try_from(self.response_interval.as_millis()).unwrap_or(u32::MAX),
            v3: Some(SourceQuery {
                suppress: false,
                qrv: self.robustness.min(7),
                qqi_s: u32::try_from(self.query_interval.as_secs()).unwrap_or(u32::MAX),
                sources: Vec::new(),
            }),
        }
    }
}

fn other_present(robustness: u8, interval: Duration, response: Duration) -> Duration {
    interval * u32::from(robustness) + response / 2
}

/// Who queries the segment, as far as this querier knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We do.
    Querier,
    /// A querier with a lower address does.
    NonQuerier { querier: Ipv4Addr },
}

/// What the caller must do or report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send a general query now ([`QuerierConfig::general_query`]).
    SendGeneralQuery,
    /// A query from `querier`, a lower address, was heard: we stopped querying.
    SteppedDown { querier: Ipv4Addr },
    /// `previous` fell silent for the other-querier-present interval: we query again.
    TookOver {
        previous: Ipv4Addr,
        silent_for: Duration,
    },
}

/// The election state of one querier on one segment.
#[derive(Debug, Clone)]
pub struct Querier {
    me: Ipv4Addr,
    config: QuerierConfig,
    role: Role,
    next_query: Instant,
    startup_left: u8,
    last_heard: Instant,
    other_expires: Instant,
}

impl Querier {
    /// A querier with address `me` starting at `now`, as the querier.
    pub fn new(me: Ipv4Addr, config: QuerierConfig, now: Instant) -> Querier {
        Querier {
            me,
            config,
            role: Role::Querier,
            next_query: now,
            startup_left: config.robustness.max(1),
            last_heard: now,
            other_expires: now,
        }
    }

    /// Our role now.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The timers in use.
    pub fn config(&self) -> &QuerierConfig {
        &self.config
    }

    /// A query from `from` was heard at `now`. Queries from our own address
    /// or from higher addresses change nothing.
    pub fn on_query(
        &mut self,
        from: Ipv4Addr,
        query: &Query<Ipv4Addr>,
        now: Instant,
    ) -> Option<Action> {
        if from >= self.me {
            return None;
        }
        let present = match &query.v3 {
            Some(v3) if v3.qrv > 0 && v3.qqi_s > 0 => other_present(
                v3.qrv,
                Duration::from_secs(u64::from(v3.qqi_s)),
                Duration::from_millis(u64::from(query.max_resp_ms)),
            ),
            _ => self.config.other_querier_present(),
        };
        self.last_heard = now;
        self.other_expires = now + present;
        match self.role {
            Role::Querier => {
                self.role = Role::NonQuerier { querier: from };
                Some(Action::SteppedDown { querier: from })
            }
            Role::NonQuerier { querier } => {
                if from < querier {
                    self.role = Role::NonQuerier { querier: from };
                }
                None
            }
        }
    }

    /// What is due at `now`: call it until it returns `None`, then wait
    /// until [`Querier::next_deadline`] (or the next query heard).
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        match self.role {
            Role::NonQuerier { querier } if now >= self.other_expires => {
                self.role = Role::Querier;
                self.next_query = now;
                Some(Action::TookOver {
                    previous: querier,
                    silent_for: now.saturating_duration_since(self.last_heard),
                })
            }
            Role::Querier if now >= self.next_query => {
                let wait = if self.startup_left > 1 {
                    self.config.startup_interval()
                } else {
                    self.config.query_interval
                };
                self.startup_left = self.startup_left.saturating_sub(1);
                self.next_query = now + wait;
                Some(Action::SendGeneralQuery)
            }
            _ => None,
        }
    }

    /// When [`Querier::poll`] next has something to do.
    pub fn next_deadline(&self) -> Instant {
        match self.role {
            Role::Querier => self.next_query,
            Role::NonQuerier { .. } => self.other_expires,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Polls until nothing is due, returning what was.
    fn drain(q: &mut Querier, now: Instant) -> Vec<Action> {
        std::iter::from_fn(|| q.poll(now)).collect()
    }

    fn v2_query() -> Query<Ipv4Addr> {
        Query {
            version: 2,
            group: Ipv4Addr::UNSPECIFIED,
            max_resp_ms: 10_000,
            v3: None,
        }
    }

    #[test]
    fn a_lone_querier_sends_startup_queries_then_one_per_interval() {
        let t0 = Instant::now();
        let cfg = QuerierConfig::new(secs(8.0));
        let mut q = Querier::new(B, cfg, t0);
        assert_eq!(drain(&mut q, t0), [Action::SendGeneralQuery]);
        assert_eq!(q.next_deadline(), t0 + secs(2.0));
        assert_eq!(drain(&mut q, t0 + secs(1.9)), []);
        assert_eq!(drain(&mut q, t0 + secs(2.0)), [Action::SendGeneralQuery]);
        assert_eq!(q.next_deadline(), t0 + secs(10.0));
        assert_eq!(drain(&mut q, t0 + secs(10.0)), [Action::SendGeneralQuery]);
        assert_eq!(q.next_deadline(), t0 + secs(18.0));
        assert_eq!(q.role(), Role::Querier);
    }

    #[test]
    fn the_higher_address_steps_down_the_lower_keeps_querying() {
        let t0 = Instant::now();
        let cfg = QuerierConfig::new(secs(1.0));
        let mut a = Querier::new(A, cfg, t0);
        let mut b = Querier::new(B, cfg, t0);
        let query = cfg.general_query();
        assert_eq!(a.on_query(B, &query, t0), None);
        assert_eq!(a.role(), Role::Querier);
        assert_eq!(
            b.on_query(A, &query, t0),
            Some(Action::SteppedDown { querier: A })
        );
        assert_eq!(b.role(), Role::NonQuerier { querier: A });
        // While A keeps querying every second, B never queries.
        for s in 1..30 {
            let now = t0 + secs(f64::from(s));
            assert_eq!(drain(&mut b, now), []);
            assert_eq!(b.on_query(A, &query, now), None);
        }
        // Our own queries, looped back, change nothing.
        assert_eq!(a.on_query(A, &query, t0), None);
    }

    #[test]
    fn takes_over_after_the_other_querier_present_interval() {
        let t0 = Instant::now();
        let cfg = QuerierConfig::new(secs(1.0));
        // 2 × 1 s + 0.5 s / 2.
        assert_eq!(cfg.other_querier_present(), secs(2.25));
        let mut b = Querier::new(B, cfg, t0);
        drain(&mut b, t0);
        b.on_query(A, &cfg.general_query(), t0 + secs(1.0));
        assert_eq!(b.next_deadline(), t0 + secs(3.25));
        assert_eq!(drain(&mut b, t0 + secs(3.2)), []);
        assert_eq!(
            drain(&mut b, t0 + secs(3.25)),
            [
                Action::TookOver {
                    previous: A,
                    silent_for: secs(2.25)
                },
                Action::SendGeneralQuery
            ]
        );
        assert_eq!(b.role(), Role::Querier);
        assert_eq!(b.next_deadline(), t0 + secs(4.25));
    }

    #[test]
    fn the_other_queriers_own_qrv_and_qqi_set_the_timeout() {
        let t0 = Instant::now();
        let mut c = Querier::new(C, QuerierConfig::new(secs(125.0)), t0);
        let mut theirs = QuerierConfig::new(secs(4.0));
        theirs.robustness = 3;
        c.on_query(A, &theirs.general_query(), t0);
        // 3 × 4 s + 2 s / 2.
        assert_eq!(c.next_deadline(), t0 + secs(13.0));
        // A v2 query carries neither: our own timers apply.
        c.on_query(A, &v2_query(), t0);
        assert_eq!(c.next_deadline(), t0 + secs(255.0));
    }

    #[test]
    fn a_still_lower_querier_replaces_the_one_we_follow() {
        let t0 = Instant::now();
        let cfg = QuerierConfig::new(secs(1.0));
        let mut c = Querier::new(C, cfg, t0);
        c.on_query(B, &v2_query(), t0);
        assert_eq!(c.on_query(A, &v2_query(), t0), None);
        assert_eq!(c.role(), Role::NonQuerier { querier: A });
        c.on_query(B, &v2_query(), t0);
        assert_eq!(c.role(), Role::NonQuerier { querier: A });
    }

    #[test]
    fn general_query_carries_the_timers() {
        let q = QuerierConfig::new(secs(125.0)).general_query();
        assert_eq!(q.max_resp_ms, 10_000);
        let v3 = q.v3.unwrap();
        assert_eq!((v3.qrv, v3.qqi_s), (2, 125));
        let short = QuerierConfig::new(secs(1.0)).general_query();
        assert_eq!(short.max_resp_ms, 500);
    }
}
