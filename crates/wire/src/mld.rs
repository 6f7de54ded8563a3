//! MLD messages (IPv6 multicast listener discovery): RFC 2710 (MLDv1) and
//! RFC 3810 (MLDv2). MLD messages are ICMPv6 messages.
//!
//! ```text
//! v1 (24 bytes)        type(1) code(1) checksum(2) max-resp-delay(2, ms) reserved(2) group(16)
//! v2 query (≥ 28)      130 code(1) checksum(2) max-resp-code(2) reserved(2) group(16)
//!                      resv(4 bits) S(1) QRV(3) QQIC(1) N(2) N × source(16)
//! v2 report            143 reserved(1) checksum(2) reserved(2) M(2)
//!                      M × [record-type(1) aux-len(1) N(2) group(16) N × source(16) aux]
//! ```
//!
//! | type | message |
//! |---|---|
//! | 130 | multicast listener query: 24 bytes is v1, ≥ 28 bytes is v2; 25–27 bytes is invalid |
//! | 131 | v1 multicast listener report |
//! | 132 | v1 multicast listener done |
//! | 143 | v2 multicast listener report |
//!
//! The checksum is ICMPv6's: the Internet checksum over a pseudo-header
//! (source, destination, length, next header 58) and the message, so
//! checking it needs the addresses ([`checksum_ok`]).

use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use crate::membership::{
    decode_code, encode_code, fmt_records, internet_checksum, put_records, put_source_query,
    read_records, read_source_query, DecodeError, GroupRecord, Query, Reader,
};

/// ICMPv6 types of MLD messages.
pub mod kind {
    pub const QUERY: u8 = 130;
    pub const V1_REPORT: u8 = 131;
    pub const V1_DONE: u8 = 132;
    pub const V2_REPORT: u8 = 143;
}

/// Whether an ICMPv6 type is one of MLD's.
pub fn is_mld_type(code: u8) -> bool {
    matches!(
        code,
        kind::QUERY | kind::V1_REPORT | kind::V1_DONE | kind::V2_REPORT
    )
}

/// Length of an MLDv1 message.
pub const V1_LEN: usize = 24;
/// Length of an MLDv2 query without sources.
pub const V2_QUERY_MIN_LEN: usize = 28;
/// Length of an MLDv2 report header.
pub const V2_REPORT_MIN_LEN: usize = 8;
/// IPv6 next-header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// One MLD message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MldMessage {
    /// A multicast listener query, v1 or v2.
    Query(Query<Ipv6Addr>),
    /// An MLDv1 report.
    V1Report { group: Ipv6Addr },
    /// An MLDv1 done (the listener left).
    V1Done { group: Ipv6Addr },
    /// An MLDv2 report.
    V2Report { records: Vec<GroupRecord<Ipv6Addr>> },
}

/// Decodes one MLD message (the ICMPv6 message). The checksum is not
/// checked here: see [`checksum_ok`].
pub fn decode(buf: &[u8]) -> Result<MldMessage, DecodeError> {
    let mut r = Reader::new(buf);
    let code = r.u8("the type")?;
    let min = if code == kind::V2_REPORT {
        V2_REPORT_MIN_LEN
    } else {
        V1_LEN
    };
    if buf.len() < min {
        return Err(DecodeError::TooShort {
            len: buf.len(),
            min,
        });
    }
    r.take(3, "the code and checksum")?;
    match code {
        kind::V2_REPORT => {
            r.take(2, "the reserved field")?;
            let count = r.u16("the number of records")?;
            Ok(MldMessage::V2Report {
                records: read_records(&mut r, count)?,
            })
        }
        kind::QUERY => {
            let max_resp = r.u16("the max response code")?;
            r.take(2, "the reserved field")?;
            let group = r.addr("the group")?;
            let query = if buf.len() == V1_LEN {
                Query {
                    version: 1,
                    group,
                    max_resp_ms: u32::from(max_resp),
                    v3: None,
                }
            } else if buf.len() >= V2_QUERY_MIN_LEN {
                Query {
                    version: 2,
                    group,
                    max_resp_ms: decode_code(max_resp, 12),
                    v3: Some(read_source_query(&mut r)?),
                }
            } else {
                return Err(DecodeError::QueryLength {
                    len: buf.len(),
                    short: V1_LEN,
                    long: V2_QUERY_MIN_LEN,
                });
            };
            Ok(MldMessage::Query(query))
        }
        kind::V1_REPORT | kind::V1_DONE => {
            r.take(4, "the delay and reserved fields")?;
            let group = r.addr("the group")?;
            Ok(if code == kind::V1_DONE {
                MldMessage::V1Done { group }
            } else {
                MldMessage::V1Report { group }
            })
        }
        other => Err(DecodeError::UnknownType(other)),
    }
}

/// The ICMPv6 checksum of `msg` sent from `src` to `dst` (with the
/// message's own checksum field counted as it is).
fn pseudo_sum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let len = (msg.len() as u32).to_be_bytes();
    let next = [0, 0, 0, NEXT_HEADER_ICMPV6];
    internet_checksum(&[&src.octets(), &dst.octets(), &len, &next, msg])
}

/// Whether the ICMPv6 checksum of `msg`, sent from `src` to `dst`, is right.
pub fn checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> bool {
    pseudo_sum(src, dst, msg) == 0
}

impl MldMessage {
    /// The message's bytes, checksum filled in for `src` → `dst`.
    pub fn encode(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut out = Vec::with_capacity(V1_LEN);
        match self {
            MldMessage::Query(q) => {
                let code = match &q.v3 {
                    Some(_) => encode_code(q.max_resp_ms, 12),
                    None => q.max_resp_ms.min(u32::from(u16::MAX)) as u16,
                };
                out.extend_from_slice(&[kind::QUERY, 0, 0, 0]);
                out.extend_from_slice(&code.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&q.group.octets());
                if let Some(v3) = &q.v3 {
                    put_source_query(v3, &mut out);
                }
            }
            MldMessage::V1Report { group } | MldMessage::V1Done { group } => {
                let code = match self {
                    MldMessage::V1Done { .. } => kind::V1_DONE,
                    _ => kind::V1_REPORT,
                };
                out.extend_from_slice(&[code, 0, 0, 0, 0, 0, 0, 0]);
                out.extend_from_slice(&group.octets());
            }
            MldMessage::V2Report { records } => {
                out.extend_from_slice(&[kind::V2_REPORT, 0, 0, 0, 0, 0]);
                out.extend_from_slice(&(records.len() as u16).to_be_bytes());
                put_records(records, &mut out);
            }
        }
        let sum = pseudo_sum(src, dst, &out);
        out[2..4].copy_from_slice(&sum.to_be_bytes());
        out
    }

    /// The group the message is about, if one (a general query has none).
    pub fn group(&self) -> Option<Ipv6Addr> {
        match self {
            MldMessage::Query(q) if !q.is_general() => Some(q.group),
            MldMessage::V1Report { group } | MldMessage::V1Done { group } => Some(*group),
            _ => None,
        }
    }
}

impl fmt::Display for MldMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MldMessage::Query(q) => write!(f, "MLDv{} {q}", q.version),
            MldMessage::V1Report { group } => write!(f, "MLDv1 report {group}"),
            MldMessage::V1Done { group } => write!(f, "MLDv1 done {group}"),
            MldMessage::V2Report { records } => {
                write!(f, "MLDv2 report, {} record(s)", records.len())?;
                fmt_records(f, records)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{RecordType, SourceQuery};

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    const MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

    fn with_checksum(mut msg: Vec<u8>, dst: Ipv6Addr) -> Vec<u8> {
        let sum = pseudo_sum(SRC, dst, &msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
        msg
    }

    fn group(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0, last)
    }

    #[test]
    fn v1_general_query_per_rfc_2710() {
        let mut bytes = vec![130, 0, 0, 0, 0x27, 0x10, 0, 0];
        bytes.extend_from_slice(&[0; 16]);
        let bytes = with_checksum(bytes, ALL_NODES);
        assert!(checksum_ok(SRC, ALL_NODES, &bytes));
        let msg = decode(&bytes).unwrap();
        assert_eq!(
            msg,
            MldMessage::Query(Query {
                version: 1,
                group: Ipv6Addr::UNSPECIFIED,
                max_resp_ms: 10_000,
                v3: None
            })
        );
        assert_eq!(msg.encode(SRC, ALL_NODES), bytes);
        assert_eq!(
            msg.to_string(),
            "MLDv1 general query, max response 10000 ms"
        );
    }

    #[test]
    fn v1_report_and_done() {
        let mut report = vec![131, 0, 0, 0, 0, 0, 0, 0];
        report.extend_from_slice(&group(0x1234).octets());
        let report = with_checksum(report, group(0x1234));
        assert_eq!(
            decode(&report).unwrap(),
            MldMessage::V1Report {
                group: group(0x1234)
            }
        );
        let mut done = vec![132, 0, 0, 0, 0, 0, 0, 0];
        done.extend_from_slice(&group(0x1234).octets());
        assert_eq!(decode(&done).unwrap().to_string(), "MLDv1 done ff15::1234");
        // Checked against the wrong destination, the checksum fails.
        assert!(!checksum_ok(SRC, ALL_NODES, &report));
    }

    #[test]
    fn v2_query_with_a_source_per_rfc_3810() {
        let mut bytes = vec![130, 0, 0, 0, 0x80, 0x00, 0, 0];
        bytes.extend_from_slice(&group(5).octets());
        bytes.extend_from_slice(&[0x02, 125, 0, 1]); // S=0 QRV=2, QQIC 125, one source
        bytes.extend_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9).octets());
        let bytes = with_checksum(bytes, group(5));
        let msg = decode(&bytes).unwrap();
        assert_eq!(
            msg,
            MldMessage::Query(Query {
                version: 2,
                group: group(5),
                max_resp_ms: 32_768,
                v3: Some(SourceQuery {
                    suppress: false,
                    qrv: 2,
                    qqi_s: 125,
                    sources: vec![Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9)],
                }),
            })
        );
        assert_eq!(msg.encode(SRC, group(5)), bytes);
    }

    #[test]
    fn v2_report_with_an_ssm_record() {
        let mut bytes = vec![143, 0, 0, 0, 0, 0, 0, 1];
        bytes.extend_from_slice(&[5, 0, 0, 1]); // ALLOW, no aux, one source
        bytes.extend_from_slice(&Ipv6Addr::new(0xff35, 0, 0, 0, 0, 0, 0, 5).octets());
        bytes.extend_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9).octets());
        let bytes = with_checksum(bytes, MLDV2_ROUTERS);
        assert!(checksum_ok(SRC, MLDV2_ROUTERS, &bytes));
        let msg = decode(&bytes).unwrap();
        let MldMessage::V2Report { records } = &msg else {
            panic!("{msg:?}")
        };
        assert_eq!(records[0].mode, RecordType::AllowNewSources);
        assert_eq!(
            msg.to_string(),
            "MLDv2 report, 1 record(s): ALLOW ff35::5 {fd00::9}"
        );
        assert_eq!(msg.encode(SRC, MLDV2_ROUTERS), bytes);
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        assert!(matches!(
            decode(&[130, 0]),
            Err(DecodeError::TooShort { min: 24, .. })
        ));
        assert!(matches!(
            decode(&[130; 26]),
            Err(DecodeError::QueryLength { len: 26, .. })
        ));
        assert!(matches!(
            decode(&[143, 0, 0, 0, 0, 0, 0xff, 0xff, 1]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(decode(&[]).is_err());
        assert_eq!(decode(&[128; 24]), Err(DecodeError::UnknownType(128)));
    }
}
