//! What IGMPv3 (RFC 3376) and MLDv2 (RFC 3810) have in common, generic over
//! the address family: queries with source lists, reports made of group
//! records, the floating-point "code" fields, and bounded readers that never
//! size a list by what a count field claims.
//!
//! | piece | IGMPv3 (IPv4) | MLDv2 (IPv6) |
//! |---|---|---|
//! | Max Resp Code | 8 bits, 1/10 s; ≥ 128: 4-bit mantissa, 3-bit exponent | 16 bits, ms; ≥ 32768: 12-bit mantissa, 3-bit exponent |
//! | QQIC | 8 bits, s; ≥ 128 as above | same |
//! | `Resv(4) S(1) QRV(3)` byte | after the group address | same |
//! | group record | type(1) aux-len(1, 32-bit words) N(2) group N×source aux | same, 16-byte addresses |

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// An IP address as it appears in IGMP or MLD: a fixed number of bytes.
pub trait WireAddr: Copy + fmt::Display + PartialEq {
    /// Bytes of one address on the wire (4 or 16).
    const LEN: usize;
    /// The address from exactly [`Self::LEN`] bytes.
    fn from_wire(bytes: &[u8]) -> Self;
    /// Appends the address's bytes.
    fn put(&self, out: &mut Vec<u8>);
    /// The all-zero address: "no group" (a general query).
    fn unspecified() -> Self;
}

impl WireAddr for Ipv4Addr {
    const LEN: usize = 4;
    fn from_wire(bytes: &[u8]) -> Self {
        let mut a = [0u8; 4];
        a.copy_from_slice(&bytes[..4]);
        Ipv4Addr::from(a)
    }
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.octets());
    }
    fn unspecified() -> Self {
        Ipv4Addr::UNSPECIFIED
    }
}

impl WireAddr for Ipv6Addr {
    const LEN: usize = 16;
    fn from_wire(bytes: &[u8]) -> Self {
        let mut a = [0u8; 16];
        a.copy_from_slice(&bytes[..16]);
        Ipv6Addr::from(a)
    }
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.octets());
    }
    fn unspecified() -> Self {
        Ipv6Addr::UNSPECIFIED
    }
}

/// Why an IGMP or MLD message does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{len} bytes is too short for any message (at least {min})")]
    TooShort { len: usize, min: usize },
    #[error(
        "a query of {len} bytes is neither the short form ({short}) nor the long form (≥ {long})"
    )]
    QueryLength {
        len: usize,
        short: usize,
        long: usize,
    },
    #[error("type {0} is not a membership message")]
    UnknownType(u8),
    #[error("{what} needs {need} bytes but only {have} remain")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
}

fn truncated(what: &'static str, need: usize, have: usize) -> DecodeError {
    DecodeError::Truncated { what, need, have }
}

/// A bounded cursor over a message: every read checks what remains first.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(truncated(what, n, self.buf.len()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn addr<A: WireAddr>(&mut self, what: &'static str) -> Result<A, DecodeError> {
        Ok(A::from_wire(self.take(A::LEN, what)?))
    }

    /// `count` addresses, refused before anything is allocated when the
    /// message does not hold them all.
    pub(crate) fn addrs<A: WireAddr>(
        &mut self,
        count: u16,
        what: &'static str,
    ) -> Result<Vec<A>, DecodeError> {
        let bytes = self.take(usize::from(count) * A::LEN, what)?;
        Ok(bytes.chunks_exact(A::LEN).map(A::from_wire).collect())
    }
}

/// The six group record types of RFC 3376 §4.2.12 / RFC 3810 §5.2.12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    /// 1: current state, INCLUDE the listed sources.
    ModeIsInclude,
    /// 2: current state, EXCLUDE the listed sources.
    ModeIsExclude,
    /// 3: filter mode changed to INCLUDE (leaving, when the list is empty).
    ChangeToInclude,
    /// 4: filter mode changed to EXCLUDE (joining, when the list is empty).
    ChangeToExclude,
    /// 5: these sources are now wanted.
    AllowNewSources,
    /// 6: these sources are no longer wanted.
    BlockOldSources,
    /// Any other value (receivers ignore such records; we show them).
    Unknown(u8),
}

impl RecordType {
    /// The type from its wire value.
    pub fn from_u8(v: u8) -> RecordType {
        match v {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNewSources,
            6 => RecordType::BlockOldSources,
            other => RecordType::Unknown(other),
        }
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            RecordType::ModeIsInclude => 1,
            RecordType::ModeIsExclude => 2,
            RecordType::ChangeToInclude => 3,
            RecordType::ChangeToExclude => 4,
            RecordType::AllowNewSources => 5,
            RecordType::BlockOldSources => 6,
            RecordType::Unknown(v) => v,
        }
    }

    /// The RFC's short name (`IS_IN`, `TO_EX`, …).
    pub fn short_name(self) -> String {
        match self {
            RecordType::ModeIsInclude => "IS_IN".into(),
            RecordType::ModeIsExclude => "IS_EX".into(),
            RecordType::ChangeToInclude => "TO_IN".into(),
            RecordType::ChangeToExclude => "TO_EX".into(),
            RecordType::AllowNewSources => "ALLOW".into(),
            RecordType::BlockOldSources => "BLOCK".into(),
            RecordType::Unknown(v) => format!("type {v}"),
        }
    }
}

/// One group record of an IGMPv3 or MLDv2 report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord<A> {
    /// What the record says about the sources.
    pub mode: RecordType,
    /// The multicast group.
    pub group: A,
    /// The source list.
    pub sources: Vec<A>,
    /// Length of the auxiliary data in 32-bit words (the data is skipped).
    pub aux_words: u8,
}

impl<A: WireAddr> fmt::Display for GroupRecord<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.mode.short_name(), self.group)?;
        fmt_sources(f, &self.sources)
    }
}

fn fmt_sources<A: fmt::Display>(f: &mut fmt::Formatter<'_>, sources: &[A]) -> fmt::Result {
    if sources.is_empty() {
        return Ok(());
    }
    f.write_str(" {")?;
    for (i, s) in sources.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{s}")?;
    }
    f.write_str("}")
}

/// The fields only the long (IGMPv3 / MLDv2) query has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceQuery<A> {
    /// S flag: routers suppress their timer updates.
    pub suppress: bool,
    /// Querier's Robustness Variable (0..=7; 0 means "use the default").
    pub qrv: u8,
    /// Querier's Query Interval in seconds (decoded from QQIC).
    pub qqi_s: u32,
    /// Sources of a group-and-source-specific query.
    pub sources: Vec<A>,
}

/// A membership query of any version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query<A> {
    /// Protocol version: IGMP 1, 2 or 3; MLD 1 or 2.
    pub version: u8,
    /// The group asked about; the unspecified address for a general query.
    pub group: A,
    /// Maximum response time in milliseconds (an IGMPv1 query's zero field
    /// means the fixed 10 s of RFC 1112).
    pub max_resp_ms: u32,
    /// The long form's fields (IGMPv3, MLDv2).
    pub v3: Option<SourceQuery<A>>,
}

impl<A: WireAddr> Query<A> {
    /// A general query asks about every group.
    pub fn is_general(&self) -> bool {
        self.group == A::unspecified()
    }
}

impl<A: WireAddr> fmt::Display for Query<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_general() {
            f.write_str("general query")?;
        } else {
            write!(f, "query for {}", self.group)?;
        }
        write!(f, ", max response {} ms", self.max_resp_ms)?;
        if let Some(v3) = &self.v3 {
            write!(
                f,
                ", S={} QRV={} QQI={}s",
                u8::from(v3.suppress),
                v3.qrv,
                v3.qqi_s
            )?;
            fmt_sources(f, &v3.sources)?;
        }
        Ok(())
    }
}

/// Decodes a floating-point code (RFC 3376 §4.1.1, RFC 3810 §5.1.3): values
/// below `1 << (mant_bits + 3)` are literal; above, a 3-bit exponent follows
/// the `mant_bits`-bit mantissa and the value is `(mant | 1 << mant_bits) << (exp + 3)`.
pub fn decode_code(code: u16, mant_bits: u32) -> u32 {
    let code = u32::from(code);
    if code < 1 << (mant_bits + 3) {
        return code;
    }
    let mant = code & ((1 << mant_bits) - 1);
    let exp = (code >> mant_bits) & 0x7;
    (mant | 1 << mant_bits) << (exp + 3)
}

/// The code for `value` (see [`decode_code`]), rounded down to the nearest
/// value the code can express, and saturating at the largest one.
pub fn encode_code(value: u32, mant_bits: u32) -> u16 {
    let literal_limit = 1u32 << (mant_bits + 3);
    if value < literal_limit {
        return value as u16;
    }
    let top = 1u32 << mant_bits;
    for exp in (0..8u32).rev() {
        let base = top << (exp + 3);
        if value >= base {
            let mant = ((value >> (exp + 3)) - top).min(top - 1);
            return (1 << (mant_bits + 3) | exp << mant_bits | mant) as u16;
        }
    }
    (literal_limit - 1) as u16
}

/// Reads the long query's tail (after the group address): flags, QQIC, N, sources.
pub(crate) fn read_source_query<A: WireAddr>(
    r: &mut Reader<'_>,
) -> Result<SourceQuery<A>, DecodeError> {
    let flags = r.u8("the S/QRV byte")?;
    let qqic = r.u8("QQIC")?;
    let n = r.u16("the number of sources")?;
    let sources = r.addrs(n, "the source list")?;
    Ok(SourceQuery {
        suppress: flags & 0x08 != 0,
        qrv: flags & 0x07,
        qqi_s: decode_code(u16::from(qqic), 4),
        sources,
    })
}

/// Appends the long query's tail.
pub(crate) fn put_source_query<A: WireAddr>(q: &SourceQuery<A>, out: &mut Vec<u8>) {
    out.push(u8::from(q.suppress) << 3 | (q.qrv & 0x07));
    out.push(encode_code(q.qqi_s, 4) as u8);
    put_list(&q.sources, out);
}

/// Reads `count` group records; the list only grows by records actually present.
pub(crate) fn read_records<A: WireAddr>(
    r: &mut Reader<'_>,
    count: u16,
) -> Result<Vec<GroupRecord<A>>, DecodeError> {
    let mut records = Vec::new();
    for _ in 0..count {
        let mode = RecordType::from_u8(r.u8("a group record")?);
        let aux_words = r.u8("a group record")?;
        let n = r.u16("a group record")?;
        let group = r.addr("a group record's group")?;
        let sources = r.addrs(n, "a group record's sources")?;
        r.take(
            usize::from(aux_words) * 4,
            "a group record's auxiliary data",
        )?;
        records.push(GroupRecord {
            mode,
            group,
            sources,
            aux_words,
        });
    }
    Ok(records)
}

/// Appends group records (auxiliary data, if any, as zero words).
pub(crate) fn put_records<A: WireAddr>(records: &[GroupRecord<A>], out: &mut Vec<u8>) {
    for rec in records {
        out.push(rec.mode.to_u8());
        out.push(rec.aux_words);
        out.extend_from_slice(&(rec.sources.len() as u16).to_be_bytes());
        rec.group.put(out);
        for s in &rec.sources {
            s.put(out);
        }
        out.resize(out.len() + usize::from(rec.aux_words) * 4, 0);
    }
}

fn put_list<A: WireAddr>(list: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(&(list.len() as u16).to_be_bytes());
    for a in list {
        a.put(out);
    }
}

/// Writes a report's record list the way both IGMPv3 and MLDv2 do.
pub(crate) fn fmt_records<A: WireAddr>(
    f: &mut fmt::Formatter<'_>,
    records: &[GroupRecord<A>],
) -> fmt::Result {
    for (i, rec) in records.iter().enumerate() {
        f.write_str(if i == 0 { ": " } else { "; " })?;
        write!(f, "{rec}")?;
    }
    Ok(())
}

/// The Internet checksum (RFC 1071) over `parts`, one after the other, as if
/// they were one buffer (each part but the last must have an even length).
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_below_the_threshold_are_literal() {
        assert_eq!(decode_code(0, 4), 0);
        assert_eq!(decode_code(100, 4), 100);
        assert_eq!(decode_code(127, 4), 127);
        assert_eq!(decode_code(32767, 12), 32767);
    }

    #[test]
    fn exponent_form_per_rfc_3376_and_3810() {
        // 0x80: exp 0, mant 0 → 0x10 << 3 = 128.
        assert_eq!(decode_code(0x80, 4), 128);
        // 0xFF: exp 7, mant 15 → 31 << 10 = 31744.
        assert_eq!(decode_code(0xff, 4), 31_744);
        // MLDv2 0x8000 → 0x1000 << 3 = 32768; 0xFFFF → 0x1FFF << 10.
        assert_eq!(decode_code(0x8000, 12), 32_768);
        assert_eq!(decode_code(0xffff, 12), 0x1fff << 10);
    }

    #[test]
    fn encoding_inverts_decoding_and_rounds_down() {
        for code in 0..=255u16 {
            assert_eq!(encode_code(decode_code(code, 4), 4), code, "code {code}");
        }
        for code in (0..=u16::MAX).step_by(97) {
            assert_eq!(encode_code(decode_code(code, 12), 12), code, "code {code}");
        }
        // 130 is between 128 (0x80) and 136 (0x81).
        assert_eq!(decode_code(encode_code(130, 4), 4), 128);
        assert_eq!(encode_code(u32::MAX, 4), 0xff);
    }

    #[test]
    fn checksum_of_rfc_1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2, checksum 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&[&data]), 0x220d);
        assert_eq!(internet_checksum(&[&data[..4], &data[4..]]), 0x220d);
        // An odd tail is padded with a zero byte.
        assert_eq!(internet_checksum(&[&[0xff]]), !0xff00);
    }

    #[test]
    fn a_claimed_count_beyond_the_buffer_allocates_nothing() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5]);
        let err = r
            .addrs::<Ipv4Addr>(u16::MAX, "the source list")
            .unwrap_err();
        assert_eq!(err, truncated("the source list", 65_535 * 4, 5));
    }
}
