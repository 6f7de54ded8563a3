//! IGMP messages (IPv4 group membership): RFC 1112 (v1), RFC 2236 (v2),
//! RFC 3376 (v3). The IGMP message is the payload of an IPv4 packet with
//! protocol 2.
//!
//! ```text
//! v1/v2 (8 bytes)      type(1) max-resp(1, 1/10 s) checksum(2) group(4)
//! v3 query (≥ 12)      0x11 max-resp-code(1) checksum(2) group(4)
//!                      resv(4 bits) S(1) QRV(3) QQIC(1) N(2) N × source(4)
//! v3 report            0x22 reserved(1) checksum(2) reserved(2) M(2)
//!                      M × [record-type(1) aux-len(1) N(2) group(4) N × source(4) aux]
//! ```
//!
//! | type | message |
//! |---|---|
//! | 0x11 | membership query: 8 bytes with max-resp 0 is v1, 8 bytes is v2, ≥ 12 bytes is v3; 9–11 bytes is invalid |
//! | 0x12 | v1 membership report |
//! | 0x16 | v2 membership report |
//! | 0x17 | v2 leave group |
//! | 0x22 | v3 membership report |
//!
//! The checksum is the Internet checksum of the whole IGMP message; a
//! message whose checksum is wrong still decodes (see [`checksum_ok`]) so
//! that a tool can show it as such.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::membership::{
    decode_code, encode_code, fmt_records, internet_checksum, put_records, put_source_query,
    read_records, read_source_query, DecodeError, GroupRecord, Query, Reader,
};

/// IGMP message types.
pub mod kind {
    pub const QUERY: u8 = 0x11;
    pub const V1_REPORT: u8 = 0x12;
    pub const V2_REPORT: u8 = 0x16;
    pub const V2_LEAVE: u8 = 0x17;
    pub const V3_REPORT: u8 = 0x22;
}

/// Length of a v1/v2 message and of a v1/v2 query.
pub const SHORT_LEN: usize = 8;
/// Length of a v3 query without sources.
pub const V3_QUERY_MIN_LEN: usize = 12;
/// The all-systems group general queries go to.
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// The all-routers group IGMPv2 leaves go to.
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// The group IGMPv3 reports go to.
pub const V3_REPORTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);
/// The max response time an IGMPv1 query implies (its field is zero).
pub const V1_MAX_RESP_MS: u32 = 10_000;

/// One IGMP message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IgmpMessage {
    /// A membership query, v1, v2 or v3.
    Query(Query<Ipv4Addr>),
    /// A v1 membership report.
    V1Report { group: Ipv4Addr },
    /// A v2 membership report.
    V2Report { group: Ipv4Addr },
    /// A v2 leave group.
    V2Leave { group: Ipv4Addr },
    /// A v3 membership report.
    V3Report { records: Vec<GroupRecord<Ipv4Addr>> },
    /// A type this decoder does not know (DVMRP, mtrace, …), shown as such.
    Other { code: u8, len: usize },
}

/// Decodes one IGMP message (the IPv4 payload). The checksum is not checked
/// here: see [`checksum_ok`].
pub fn decode(buf: &[u8]) -> Result<IgmpMessage, DecodeError> {
    if buf.len() < SHORT_LEN {
        return Err(DecodeError::TooShort {
            len: buf.len(),
            min: SHORT_LEN,
        });
    }
    let mut r = Reader::new(buf);
    let code = r.u8("the type")?;
    let max_resp = r.u8("the max response field")?;
    r.take(2, "the checksum")?;
    match code {
        kind::QUERY => decode_query(buf.len(), max_resp, &mut r),
        kind::V1_REPORT | kind::V2_REPORT | kind::V2_LEAVE => {
            let group = r.addr("the group")?;
            Ok(match code {
                kind::V1_REPORT => IgmpMessage::V1Report { group },
                kind::V2_REPORT => IgmpMessage::V2Report { group },
                _ => IgmpMessage::V2Leave { group },
            })
        }
        kind::V3_REPORT => {
            r.take(2, "the reserved field")?;
            let count = r.u16("the number of group records")?;
            let records = read_records(&mut r, count)?;
            Ok(IgmpMessage::V3Report { records })
        }
        other => Ok(IgmpMessage::Other {
            code: other,
            len: buf.len(),
        }),
    }
}

fn decode_query(len: usize, max_resp: u8, r: &mut Reader<'_>) -> Result<IgmpMessage, DecodeError> {
    let group = r.addr("the group")?;
    let query = if len == SHORT_LEN {
        let (version, max_resp_ms) = match max_resp {
            0 => (1, V1_MAX_RESP_MS),
            tenths => (2, u32::from(tenths) * 100),
        };
        Query {
            version,
            group,
            max_resp_ms,
            v3: None,
        }
    } else if len >= V3_QUERY_MIN_LEN {
        Query {
            version: 3,
            group,
            max_resp_ms: decode_code(u16::from(max_resp), 4) * 100,
            v3: Some(read_source_query(r)?),
        }
    } else {
        return Err(DecodeError::QueryLength {
            len,
            short: SHORT_LEN,
            long: V3_QUERY_MIN_LEN,
        });
    };
    Ok(IgmpMessage::Query(query))
}

/// Whether the IGMP checksum of `buf` (the whole message) is right.
pub fn checksum_ok(buf: &[u8]) -> bool {
    internet_checksum(&[buf]) == 0
}

impl IgmpMessage {
    /// The message's bytes, checksum filled in. A v2 query's max response
    /// time is rounded down to tenths of a second (at most 25.5 s), a v3
    /// query's to what its code can express.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SHORT_LEN);
        match self {
            IgmpMessage::Query(q) => {
                let tenths = q.max_resp_ms / 100;
                let code = match (&q.v3, q.version) {
                    (Some(_), _) => encode_code(tenths, 4) as u8,
                    (None, 1) => 0,
                    (None, _) => tenths.clamp(1, 255) as u8,
                };
                out.extend_from_slice(&[kind::QUERY, code, 0, 0]);
                out.extend_from_slice(&q.group.octets());
                if let Some(v3) = &q.v3 {
                    put_source_query(v3, &mut out);
                }
            }
            IgmpMessage::V1Report { group }
            | IgmpMessage::V2Report { group }
            | IgmpMessage::V2Leave { group } => {
                let code = match self {
                    IgmpMessage::V1Report { .. } => kind::V1_REPORT,
                    IgmpMessage::V2Report { .. } => kind::V2_REPORT,
                    _ => kind::V2_LEAVE,
                };
                out.extend_from_slice(&[code, 0, 0, 0]);
                out.extend_from_slice(&group.octets());
            }
            IgmpMessage::V3Report { records } => {
                out.extend_from_slice(&[kind::V3_REPORT, 0, 0, 0, 0, 0]);
                out.extend_from_slice(&(records.len() as u16).to_be_bytes());
                put_records(records, &mut out);
            }
            IgmpMessage::Other { code, len } => {
                out.push(*code);
                out.resize((*len).max(SHORT_LEN), 0);
            }
        }
        let sum = internet_checksum(&[&out]);
        out[2..4].copy_from_slice(&sum.to_be_bytes());
        out
    }

    /// The group the message is about, if one (a general query has none).
    pub fn group(&self) -> Option<Ipv4Addr> {
        match self {
            IgmpMessage::Query(q) if !q.is_general() => Some(q.group),
            IgmpMessage::V1Report { group }
            | IgmpMessage::V2Report { group }
            | IgmpMessage::V2Leave { group } => Some(*group),
            _ => None,
        }
    }
}

impl fmt::Display for IgmpMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgmpMessage::Query(q) => write!(f, "IGMPv{} {q}", q.version),
            IgmpMessage::V1Report { group } => write!(f, "IGMPv1 report {group}"),
            IgmpMessage::V2Report { group } => write!(f, "IGMPv2 report {group}"),
            IgmpMessage::V2Leave { group } => write!(f, "IGMPv2 leave {group}"),
            IgmpMessage::V3Report { records } => {
                write!(f, "IGMPv3 report, {} record(s)", records.len())?;
                fmt_records(f, records)
            }
            IgmpMessage::Other { code, len } => {
                write!(f, "IGMP type {code:#04x}, {len} bytes (not decoded)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{RecordType, SourceQuery};

    /// Writes the checksum into a message typed out with zero checksum bytes.
    fn with_checksum(mut msg: Vec<u8>) -> Vec<u8> {
        let sum = internet_checksum(&[&msg]);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
        msg
    }

    #[test]
    fn v2_general_query_from_rfc_2236_layout() {
        // type 0x11, max resp 100 (10 s), checksum ee 9b, group 0.0.0.0.
        let bytes = [0x11, 0x64, 0xee, 0x9b, 0, 0, 0, 0];
        assert!(checksum_ok(&bytes));
        let msg = decode(&bytes).unwrap();
        assert_eq!(
            msg,
            IgmpMessage::Query(Query {
                version: 2,
                group: Ipv4Addr::UNSPECIFIED,
                max_resp_ms: 10_000,
                v3: None
            })
        );
        assert_eq!(msg.encode(), bytes);
        assert_eq!(
            msg.to_string(),
            "IGMPv2 general query, max response 10000 ms"
        );
    }

    #[test]
    fn v1_query_has_a_zero_max_resp() {
        let bytes = with_checksum(vec![0x11, 0, 0, 0, 0, 0, 0, 0]);
        let IgmpMessage::Query(q) = decode(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!((q.version, q.max_resp_ms), (1, V1_MAX_RESP_MS));
    }

    #[test]
    fn v2_group_specific_query_report_and_leave() {
        let q = with_checksum(vec![0x11, 0x0a, 0, 0, 239, 1, 2, 3]);
        let msg = decode(&q).unwrap();
        assert_eq!(msg.group(), Some(Ipv4Addr::new(239, 1, 2, 3)));
        assert_eq!(
            msg.to_string(),
            "IGMPv2 query for 239.1.2.3, max response 1000 ms"
        );
        let report = with_checksum(vec![0x16, 0, 0, 0, 239, 1, 2, 3]);
        assert_eq!(
            decode(&report).unwrap(),
            IgmpMessage::V2Report {
                group: Ipv4Addr::new(239, 1, 2, 3)
            }
        );
        // As in the README.
        let leave = [0x17, 0, 0xf7, 0xfa, 239, 1, 2, 3];
        assert!(checksum_ok(&leave));
        assert_eq!(
            decode(&leave).unwrap().to_string(),
            "IGMPv2 leave 239.1.2.3"
        );
        let v1 = with_checksum(vec![0x12, 0, 0, 0, 224, 3, 29, 71]);
        assert_eq!(
            decode(&v1).unwrap(),
            IgmpMessage::V1Report {
                group: Ipv4Addr::new(224, 3, 29, 71)
            }
        );
    }

    #[test]
    fn v3_query_with_sources_per_rfc_3376() {
        let bytes = with_checksum(vec![
            0x11, 0x8c, 0, 0, // type, max resp code 0x8c, checksum
            232, 1, 1, 1,    // group
            0x0a, // resv 0, S=1, QRV=2
            0x7d, // QQIC 125
            0, 2, // two sources
            10, 0, 0, 5, 10, 0, 0, 6,
        ]);
        assert!(checksum_ok(&bytes));
        let msg = decode(&bytes).unwrap();
        let expected = Query {
            version: 3,
            group: Ipv4Addr::new(232, 1, 1, 1),
            // 0x8c: exp 0, mant 12 → (12 | 16) << 3 = 224 tenths.
            max_resp_ms: 22_400,
            v3: Some(SourceQuery {
                suppress: true,
                qrv: 2,
                qqi_s: 125,
                sources: vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)],
            }),
        };
        assert_eq!(msg, IgmpMessage::Query(expected));
        assert_eq!(msg.encode(), bytes);
        assert_eq!(
            msg.to_string(),
            "IGMPv3 query for 232.1.1.1, max response 22400 ms, S=1 QRV=2 QQI=125s {10.0.0.5, 10.0.0.6}"
        );
    }

    #[test]
    fn v3_report_with_records_and_aux_data() {
        let bytes = with_checksum(vec![
            0x22, 0, 0, 0, 0, 0, // type, reserved, checksum, reserved
            0, 2, // two records
            4, 0, 0, 0, 239, 1, 2, 3, // TO_EX 239.1.2.3, no sources: a join
            1, 1, 0, 1, 232, 1, 1, 1, 10, 0, 0, 5, // IS_IN 232.1.1.1 {10.0.0.5}
            0xde, 0xad, 0xbe, 0xef, // one aux word
        ]);
        let msg = decode(&bytes).unwrap();
        let IgmpMessage::V3Report { records } = &msg else {
            panic!("{msg:?}")
        };
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].mode, RecordType::ChangeToExclude);
        assert!(records[0].sources.is_empty());
        assert_eq!(records[1].mode, RecordType::ModeIsInclude);
        assert_eq!(records[1].sources, [Ipv4Addr::new(10, 0, 0, 5)]);
        assert_eq!(records[1].aux_words, 1);
        assert_eq!(
            msg.to_string(),
            "IGMPv3 report, 2 record(s): TO_EX 239.1.2.3; IS_IN 232.1.1.1 {10.0.0.5}"
        );
    }

    #[test]
    fn wrong_checksum_still_decodes_but_is_flagged() {
        let bytes = [0x16, 0, 0x12, 0x34, 239, 1, 2, 3];
        assert!(!checksum_ok(&bytes));
        assert!(matches!(
            decode(&bytes).unwrap(),
            IgmpMessage::V2Report { .. }
        ));
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        assert_eq!(
            decode(&[0x11, 0, 0]),
            Err(DecodeError::TooShort { len: 3, min: 8 })
        );
        assert!(matches!(
            decode(&[0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::QueryLength { len: 10, .. })
        ));
        // A v3 report claiming 65535 records, holding none.
        assert!(matches!(
            decode(&[0x22, 0, 0, 0, 0, 0, 0xff, 0xff]),
            Err(DecodeError::Truncated { .. })
        ));
        // A v3 query claiming 65535 sources with room for one.
        let q = [0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4];
        assert!(matches!(decode(&q), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn unknown_types_are_shown_not_refused() {
        let bytes = with_checksum(vec![0x13, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            decode(&bytes).unwrap(),
            IgmpMessage::Other {
                code: 0x13,
                len: 10
            }
        );
    }

    #[test]
    fn json_names_the_message_type() {
        let msg = IgmpMessage::V2Leave {
            group: Ipv4Addr::new(239, 1, 2, 3),
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(json, r#"{"type":"v2_leave","group":"239.1.2.3"}"#);
        assert_eq!(serde_json::from_str::<IgmpMessage>(&json).unwrap(), msg);
    }
}
