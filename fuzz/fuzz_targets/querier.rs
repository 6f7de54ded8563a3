//! The IGMP querier election, fed queries decoded from arbitrary IGMP
//! messages from arbitrary senders, and the passing of time. No panic; a
//! poll at any instant settles after a few actions; the deadline it gives
//! is never in the past once everything due was done.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wire::igmp::{decode, IgmpMessage};
use wire::querier::{Querier, QuerierConfig};

#[derive(Arbitrary, Debug)]
enum Op {
    Heard { from: u32, message: Vec<u8> },
    Tick(u32),
}

fuzz_target!(|input: (u16, u8, Vec<Op>)| {
    let (interval_s, robustness, ops) = input;
    let mut config = QuerierConfig::new(Duration::from_secs(u64::from(interval_s).max(1)));
    config.robustness = robustness % 8;
    let mut now = Instant::now();
    let mut q = Querier::new(Ipv4Addr::new(10, 0, 0, 5), config, now);
    for op in ops {
        match op {
            Op::Heard { from, message } => {
                if let Ok(IgmpMessage::Query(query)) = decode(&message) {
                    let _ = q.on_query(Ipv4Addr::from(from), &query, now);
                }
            }
            Op::Tick(ms) => now += Duration::from_millis(u64::from(ms)),
        }
        let mut actions = 0;
        while q.poll(now).is_some() {
            actions += 1;
            assert!(actions <= 3, "poll does not settle");
        }
        assert!(
            q.next_deadline() > now,
            "a deadline in the past after polling"
        );
        let _ = q.role();
    }
});
