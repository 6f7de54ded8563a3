//! This host's multicast memberships, from the kernel's text files
//! `/proc/net/igmp`, `/proc/net/igmp6`, `/proc/net/mcfilter` and
//! `/proc/net/mcfilter6` (the text is read by the caller; this module only
//! parses).
//!
//! The formats (Linux `net/ipv4/igmp.c`, `net/ipv6/mcast.c`):
//!
//! ```text
//! igmp       Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter      (header)
//!            3\tdummy0    :     4      V3                                        (one per interface:
//!                                                                                 index, name, groups, IGMP version in use)
//!            \t\t\t\t030201EF     1 0:00000000\t\t0                             (one per group: the address as the
//!                                                                                 kernel's __be32 printed in host order,
//!                                                                                 users, timer running:ticks, reporter)
//! igmp6      3    dummy0          ff150000000000000000000000001234     1 00000004 0
//!            (index, name, group, users, MAF_* flags, timer in clock ticks)
//! mcfilter   Idx Device        MCA        SRC    INC    EXC                      (header)
//!              3 dummy0 0xe8010101 0x0a090005      1      0
//!            (index, name cut to 6 characters, group and source in network order,
//!             sockets including / excluding the source)
//! mcfilter6  the same with 32-hex-digit addresses and no 0x
//! ```
//!
//! [`host_groups`] joins the four into one list per interface: each group
//! with its users and, for source-filtered joins, the filter mode and sources.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// A line of a `/proc/net` file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: {reason}: {text:?}")]
pub struct ProcError {
    pub file: &'static str,
    pub line: usize,
    pub reason: &'static str,
    pub text: String,
}

/// The byte order of the machine that wrote `/proc/net/igmp` (its group
/// column is a network-order address printed as a host-order integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOrder {
    Little,
    Big,
}

impl HostOrder {
    /// The order of the machine this code runs on.
    pub const NATIVE: HostOrder = if cfg!(target_endian = "big") {
        HostOrder::Big
    } else {
        HostOrder::Little
    };
}

/// One interface of `/proc/net/igmp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgmpInterface {
    pub index: u32,
    pub name: String,
    /// The IGMP version the interface speaks now (3 unless an older querier was heard or it is forced).
    pub version: u8,
    pub groups: Vec<IgmpGroup>,
}

/// One group of an interface in `/proc/net/igmp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgmpGroup {
    pub group: Ipv4Addr,
    pub users: u32,
    /// A report is scheduled.
    pub timer_running: bool,
    /// We sent the last report for the group.
    pub reporter: bool,
}

/// One line of `/proc/net/igmp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Igmp6Entry {
    pub index: u32,
    pub name: String,
    pub group: Ipv6Addr,
    pub users: u32,
    /// `MAF_*` flags: 1 timer running, 2 last reporter, 4 loaded, 8 no report.
    pub flags: u32,
}

/// One line of `/proc/net/mcfilter` or `/proc/net/mcfilter6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterEntry {
    pub index: u32,
    pub group: IpAddr,
    pub source: IpAddr,
    /// Sockets that include this source (an INCLUDE-mode, source-specific join).
    pub include: u64,
    /// Sockets that exclude this source (an EXCLUDE-mode join blocking it).
    pub exclude: u64,
}

/// The source filter of a group (RFC 3376 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterMode {
    /// Only the listed sources (a source-specific join).
    Include,
    /// Every source but the listed ones (an any-source join when the list is empty).
    Exclude,
}

/// One group this host has joined on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostGroup {
    pub group: IpAddr,
    pub users: u32,
    pub mode: FilterMode,
    /// Included sources (mode include) or excluded ones (mode exclude).
    pub sources: Vec<IpAddr>,
}

/// One interface's groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceGroups {
    pub index: u32,
    pub name: String,
    /// IGMP version in use (from `/proc/net/igmp`); `None` when the interface has no IPv4.
    pub igmp_version: Option<u8>,
    pub groups: Vec<HostGroup>,
}

fn err(file: &'static str, line: usize, reason: &'static str, text: &str) -> ProcError {
    ProcError {
        file,
        line,
        reason,
        text: text.to_string(),
    }
}

/// Numbered lines, the header skipped when present (it starts with `Idx`).
fn body(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("Idx"))
}

/// Parses `/proc/net/igmp` written by a machine of byte order `order`.
pub fn parse_igmp(text: &str, order: HostOrder) -> Result<Vec<IgmpInterface>, ProcError> {
    const FILE: &str = "/proc/net/igmp";
    let mut out: Vec<IgmpInterface> = Vec::new();
    for (n, line) in body(text) {
        if line.starts_with('\t') {
            let bad = |reason| err(FILE, n, reason, line);
            let iface = out
                .last_mut()
                .ok_or_else(|| bad("a group before any interface"))?;
            let mut f = line.split_whitespace();
            let raw = f
                .next()
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("group is not 8 hex digits"))?;
            let group = Ipv4Addr::from(match order {
                HostOrder::Little => raw.to_le_bytes(),
                HostOrder::Big => raw.to_be_bytes(),
            });
            let users = f
                .next()
                .and_then(|u| u.parse().ok())
                .ok_or_else(|| bad("users is not a number"))?;
            let timer = f.next().ok_or_else(|| bad("no timer"))?;
            let reporter = f.next().ok_or_else(|| bad("no reporter"))?;
            iface.groups.push(IgmpGroup {
                group,
                users,
                timer_running: !timer.starts_with("0:"),
                reporter: reporter != "0",
            });
        } else {
            let bad = |reason| err(FILE, n, reason, line);
            // Interface names cannot contain ':', and may run into it.
            let (head, tail) = line.split_once(':').ok_or_else(|| bad("no ':'"))?;
            let mut h = head.split_whitespace();
            let index = h
                .next()
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| bad("index is not a number"))?;
            let name = h.next().ok_or_else(|| bad("no device name"))?.to_string();
            let version = tail
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.strip_prefix('V'))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("no version V1, V2 or V3"))?;
            out.push(IgmpInterface {
                index,
                name,
                version,
                groups: Vec::new(),
            });
        }
    }
    Ok(out)
}

fn hex_v6(s: &str) -> Option<Ipv6Addr> {
    if s.len() != 32 {
        return None;
    }
    u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
}

/// Parses each body line of `file` into its whitespace-separated fields
/// and hands them to `parse` with a way to name what is wrong.
fn each_line<T>(
    file: &'static str,
    text: &str,
    parse: impl Fn(&[&str], &dyn Fn(&'static str) -> ProcError) -> Result<T, ProcError>,
) -> Result<Vec<T>, ProcError> {
    body(text)
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            parse(&fields, &|reason| err(file, n, reason, line))
        })
        .collect()
}

/// Parses `/proc/net/igmp6`.
pub fn parse_igmp6(text: &str) -> Result<Vec<Igmp6Entry>, ProcError> {
    each_line("/proc/net/igmp6", text, |f, bad| {
        let [index, name, group, users, flags, ..] = f[..] else {
            return Err(bad("fewer than 5 fields"));
        };
        Ok(Igmp6Entry {
            index: index.parse().map_err(|_| bad("index is not a number"))?,
            name: name.to_string(),
            group: hex_v6(group).ok_or_else(|| bad("group is not 32 hex digits"))?,
            users: users.parse().map_err(|_| bad("users is not a number"))?,
            flags: u32::from_str_radix(flags, 16).map_err(|_| bad("flags are not hex"))?,
        })
    })
}

/// Parses `/proc/net/mcfilter` (IPv4) or `/proc/net/mcfilter6` (IPv6), as
/// the addresses' form tells.
pub fn parse_mcfilter(text: &str) -> Result<Vec<FilterEntry>, ProcError> {
    let addr = |s: &str| -> Option<IpAddr> {
        match s.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16)
                .ok()
                .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            None => hex_v6(s).map(IpAddr::V6),
        }
    };
    each_line("/proc/net/mcfilter", text, |f, bad| {
        let [index, _name, group, source, include, exclude] = f[..] else {
            return Err(bad("not 6 fields"));
        };
        Ok(FilterEntry {
            index: index.parse().map_err(|_| bad("index is not a number"))?,
            group: addr(group).ok_or_else(|| bad("bad group"))?,
            source: addr(source).ok_or_else(|| bad("bad source"))?,
            include: include.parse().map_err(|_| bad("INC is not a number"))?,
            exclude: exclude.parse().map_err(|_| bad("EXC is not a number"))?,
        })
    })
}

/// Joins the four files into one entry per interface (ordered by index).
///
/// A group's mode is INCLUDE when it has sources and none is excluded by any
/// socket (source-specific joins only); its sources are then the included
/// ones. Otherwise it is EXCLUDE, with the sources some socket blocks (an
/// any-source join has none).
pub fn host_groups(
    igmp: &[IgmpInterface],
    igmp6: &[Igmp6Entry],
    filters: &[FilterEntry],
) -> Vec<InterfaceGroups> {
    let mut out: Vec<InterfaceGroups> = Vec::new();
    let mut joined: Vec<(usize, IpAddr, u32)> = Vec::new();
    for iface in igmp {
        let at = slot(&mut out, iface.index, &iface.name);
        out[at].igmp_version = Some(iface.version);
        for g in &iface.groups {
            joined.push((at, IpAddr::V4(g.group), g.users));
        }
    }
    for e in igmp6 {
        let at = slot(&mut out, e.index, &e.name);
        joined.push((at, IpAddr::V6(e.group), e.users));
    }
    for (at, group, users) in joined {
        let index = out[at].index;
        let mine: Vec<&FilterEntry> = filters
            .iter()
            .filter(|f| f.index == index && f.group == group)
            .collect();
        let include_only = !mine.is_empty() && mine.iter().all(|f| f.exclude == 0);
        let (mode, sources) = if include_only {
            let s = mine.iter().filter(|f| f.include > 0).map(|f| f.source);
            (FilterMode::Include, s.collect())
        } else {
            let s = mine.iter().filter(|f| f.exclude > 0).map(|f| f.source);
            (FilterMode::Exclude, s.collect())
        };
        out[at].groups.push(HostGroup {
            group,
            users,
            mode,
            sources,
        });
    }
    out.sort_by_key(|i| i.index);
    out
}

/// The position of interface `index` in `out`, added when missing.
fn slot(out: &mut Vec<InterfaceGroups>, index: u32, name: &str) -> usize {
    match out.iter().position(|i| i.index == index) {
        Some(at) => at,
        None => {
            out.push(InterfaceGroups {
                index,
                name: name.to_string(),
                igmp_version: None,
                groups: Vec::new(),
            });
            out.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on Linux 6.18 (x86-64) in a namespace with two veth
    // interfaces: dummy0 has an any-source join of 239.1.2.3, an SSM join of
    // 232.1.1.1 from 10.9.0.5 and 10.9.0.6, and a join of 239.9.9.9 blocking
    // 10.9.0.7; dummy1 is forced to IGMPv2 and joined 239.1.2.3; IPv6
    // dummy0 joined ff15::1234 and ff35::5 from fd00::9.
    const IGMP: &str = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter
1\tlo        :     1      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
2\tp0        :     1      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
3\tdummy0    :     4      V3
\t\t\t\t090909EF     1 0:00000000\t\t0
\t\t\t\t010101E8     1 0:00000000\t\t0
\t\t\t\t030201EF     1 0:00000000\t\t0
\t\t\t\t010000E0     1 0:00000000\t\t0
4\tp1        :     1      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
5\tdummy1    :     2      V2
\t\t\t\t030201EF     1 1:00000221\t\t1
\t\t\t\t010000E0     1 0:00000000\t\t0
";
    const IGMP6: &str = "\
1    lo              ff020000000000000000000000000001     1 0000000C 0
1    lo              ff010000000000000000000000000001     1 00000008 0
3    dummy0          ff350000000000000000000000000005     1 00000004 0
3    dummy0          ff150000000000000000000000001234     1 00000004 0
3    dummy0          ff0200000000000000000001ff000001     1 00000004 0
3    dummy0          ff020000000000000000000000000001     1 0000000C 0
";
    const MCFILTER: &str = "Idx Device        MCA        SRC    INC    EXC
  3 dummy0 0xef090909 0x0a090007      0      1
  3 dummy0 0xe8010101 0x0a090005      1      0
  3 dummy0 0xe8010101 0x0a090006      1      0
";
    const MCFILTER6: &str =
        "Idx Device                Multicast Address                   Source Address    INC    EXC
  3 dummy0 ff350000000000000000000000000005 fd000000000000000000000000000009      1      0
";
    // A long interface name runs into the ':' (the kernel prints "%-10s:").
    const IGMP_LONG_NAME: &str = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter
7\tveth-long-name:     1      V1
\t\t\t\t010000E0     1 0:00000000\t\t0
";

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn igmp_interfaces_versions_and_groups() {
        let ifs = parse_igmp(IGMP, HostOrder::Little).unwrap();
        assert_eq!(ifs.len(), 5);
        let dummy0 = &ifs[2];
        assert_eq!(
            (dummy0.index, dummy0.name.as_str(), dummy0.version),
            (3, "dummy0", 3)
        );
        let groups: Vec<Ipv4Addr> = dummy0.groups.iter().map(|g| g.group).collect();
        assert_eq!(
            groups,
            [
                Ipv4Addr::new(239, 9, 9, 9),
                Ipv4Addr::new(232, 1, 1, 1),
                Ipv4Addr::new(239, 1, 2, 3),
                Ipv4Addr::new(224, 0, 0, 1)
            ]
        );
        let dummy1 = &ifs[4];
        assert_eq!(dummy1.version, 2);
        assert!(dummy1.groups[0].timer_running && dummy1.groups[0].reporter);
        assert!(!dummy1.groups[1].timer_running);
    }

    #[test]
    fn igmp_from_a_big_endian_machine() {
        let text = "1\teth0      :     1      V3\n\t\t\t\tE0000001     1 0:00000000\t\t0\n";
        let ifs = parse_igmp(text, HostOrder::Big).unwrap();
        assert_eq!(ifs[0].groups[0].group, Ipv4Addr::new(224, 0, 0, 1));
    }

    #[test]
    fn igmp_long_interface_names() {
        let ifs = parse_igmp(IGMP_LONG_NAME, HostOrder::Little).unwrap();
        assert_eq!(
            (ifs[0].name.as_str(), ifs[0].version),
            ("veth-long-name", 1)
        );
    }

    #[test]
    fn igmp6_lines() {
        let e = parse_igmp6(IGMP6).unwrap();
        assert_eq!(e.len(), 6);
        assert_eq!(e[3].group, "ff15::1234".parse::<Ipv6Addr>().unwrap());
        assert_eq!((e[3].index, e[3].users, e[3].flags), (3, 1, 4));
        assert_eq!(e[0].flags, 0x0c);
    }

    #[test]
    fn mcfilter_both_families() {
        let f = parse_mcfilter(MCFILTER).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].group, v4(239, 9, 9, 9));
        assert_eq!(f[0].source, v4(10, 9, 0, 7));
        assert_eq!((f[0].include, f[0].exclude), (0, 1));
        let f6 = parse_mcfilter(MCFILTER6).unwrap();
        assert_eq!(f6[0].source, "fd00::9".parse::<IpAddr>().unwrap());
        assert_eq!(parse_mcfilter("Idx Device MCA SRC INC EXC\n").unwrap(), []);
    }

    #[test]
    fn joined_view_shows_modes_and_sources() {
        let igmp = parse_igmp(IGMP, HostOrder::Little).unwrap();
        let igmp6 = parse_igmp6(IGMP6).unwrap();
        let mut filters = parse_mcfilter(MCFILTER).unwrap();
        filters.extend(parse_mcfilter(MCFILTER6).unwrap());
        let all = host_groups(&igmp, &igmp6, &filters);
        assert_eq!(
            all.iter().map(|i| i.index).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let dummy0 = &all[2];
        assert_eq!(dummy0.igmp_version, Some(3));
        let find = |g: &str| {
            let g: IpAddr = g.parse().unwrap();
            dummy0.groups.iter().find(|h| h.group == g).unwrap().clone()
        };
        assert_eq!(
            find("232.1.1.1"),
            HostGroup {
                group: v4(232, 1, 1, 1),
                users: 1,
                mode: FilterMode::Include,
                sources: vec![v4(10, 9, 0, 5), v4(10, 9, 0, 6)],
            }
        );
        assert_eq!(find("239.9.9.9").mode, FilterMode::Exclude);
        assert_eq!(find("239.9.9.9").sources, [v4(10, 9, 0, 7)]);
        assert_eq!(find("239.1.2.3").mode, FilterMode::Exclude);
        assert!(find("239.1.2.3").sources.is_empty());
        let ssm6 = find("ff35::5");
        assert_eq!(ssm6.mode, FilterMode::Include);
        assert_eq!(ssm6.sources, ["fd00::9".parse::<IpAddr>().unwrap()]);
        assert_eq!(all[4].igmp_version, Some(2));
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        let e = parse_igmp("\t\t\t\t010000E0     1 0:0\t\t0\n", HostOrder::Little).unwrap_err();
        assert_eq!((e.line, e.reason), (1, "a group before any interface"));
        let e = parse_igmp6("1 lo nothex 1 0 0\n").unwrap_err();
        assert_eq!(e.reason, "group is not 32 hex digits");
        let e = parse_mcfilter("  3 dummy0 0xzz 0x0a090007 0 1\n").unwrap_err();
        assert_eq!((e.file, e.reason), ("/proc/net/mcfilter", "bad group"));
    }
}
