//! `mcast groups`: this host's multicast memberships, per interface: the
//! groups joined, the IGMP version in use, and the sources of
//! source-filtered joins. Read from `/proc/net/igmp`, `/proc/net/igmp6`,
//! `/proc/net/mcfilter` and `/proc/net/mcfilter6` (of the network namespace
//! it runs in), parsed by [`wire::procnet`].

use crate::cli::GroupsArgs;
use crate::events::Event;
use crate::Out;
use anyhow::Context as _;
use std::io;
use wire::procnet::{self, HostOrder, InterfaceGroups, ProcError};

/// The four files' text (empty for a file that does not exist, e.g. the
/// IPv6 ones when IPv6 is off).
#[derive(Debug, Default, Clone)]
pub struct ProcTexts {
    pub igmp: String,
    pub igmp6: String,
    pub mcfilter: String,
    pub mcfilter6: String,
}

impl ProcTexts {
    /// Reads the files of this network namespace.
    pub fn read() -> anyhow::Result<ProcTexts> {
        let read = |path: &str| match std::fs::read_to_string(path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e).with_context(|| format!("reading {path}")),
        };
        Ok(ProcTexts {
            igmp: read("/proc/net/igmp")?,
            igmp6: read("/proc/net/igmp6")?,
            mcfilter: read("/proc/net/mcfilter")?,
            mcfilter6: read("/proc/net/mcfilter6")?,
        })
    }

    /// The memberships, per interface; only `iface`'s when given.
    pub fn groups(&self, iface: Option<&str>) -> Result<Vec<InterfaceGroups>, ProcError> {
        let igmp = procnet::parse_igmp(&self.igmp, HostOrder::NATIVE)?;
        let igmp6 = procnet::parse_igmp6(&self.igmp6)?;
        let mut filters = procnet::parse_mcfilter(&self.mcfilter)?;
        filters.extend(procnet::parse_mcfilter(&self.mcfilter6)?);
        let mut all = procnet::host_groups(&igmp, &igmp6, &filters);
        if let Some(name) = iface {
            all.retain(|i| i.name == name);
        }
        Ok(all)
    }
}

/// Runs `mcast groups`: one `groups` event per interface.
pub async fn run(args: GroupsArgs, out: &Out) -> anyhow::Result<()> {
    let iface = args.common.resolve_iface()?;
    let groups = ProcTexts::read()?
        .groups(iface.as_ref().map(|i| i.name.as_str()))
        .context("reading the kernel's membership tables")?;
    for interface in groups {
        out.emit(&Event::Groups(interface));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use wire::procnet::FilterMode;

    // Captured on Linux 6.18 in a namespace whose eth0 (10.77.0.2) had an
    // any-source join of 224.3.29.71 and an SSM join of 232.1.1.1 from
    // 10.77.0.1, both made by `mcast recv` (see wire::procnet for the formats).
    fn texts() -> ProcTexts {
        ProcTexts {
            igmp: "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter
1\tlo        :     1      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
2\teth0      :     3      V3
\t\t\t\t010101E8     1 0:00000000\t\t0
\t\t\t\t471D03E0     1 0:00000000\t\t0
\t\t\t\t010000E0     1 0:00000000\t\t0
"
            .into(),
            igmp6: "\
1    lo              ff020000000000000000000000000001     1 0000000C 0
1    lo              ff010000000000000000000000000001     1 00000008 0
2    eth0            ff0200000000000000000001ffbc3b3b     1 00000004 0
2    eth0            ff020000000000000000000000000001     1 0000000C 0
2    eth0            ff010000000000000000000000000001     1 00000008 0
"
            .into(),
            mcfilter: "Idx Device        MCA        SRC    INC    EXC
  2   eth0 0xe8010101 0x0a4d0001      1      0
"
            .into(),
            mcfilter6: "Idx Device                Multicast Address                   Source Address    INC    EXC\n"
                .into(),
        }
    }

    #[test]
    fn groups_of_one_interface() {
        let all = texts().groups(Some("eth0")).unwrap();
        assert_eq!(all.len(), 1);
        let eth0 = &all[0];
        assert_eq!(eth0.igmp_version, Some(3));
        let ssm = eth0
            .groups
            .iter()
            .find(|g| g.group == "232.1.1.1".parse::<IpAddr>().unwrap())
            .unwrap();
        assert_eq!(ssm.mode, FilterMode::Include);
        assert_eq!(ssm.sources, ["10.77.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            eth0.groups.len(),
            6,
            "three IPv4 groups and three IPv6 ones"
        );
        let any = &eth0.groups[1];
        assert_eq!(any.group, "224.3.29.71".parse::<IpAddr>().unwrap());
        assert_eq!((any.mode, any.sources.len()), (FilterMode::Exclude, 0));
        assert_eq!(texts().groups(None).unwrap().len(), 2);
        assert!(texts().groups(Some("eth9")).unwrap().is_empty());
    }

    #[test]
    fn a_file_that_does_not_parse_is_an_error() {
        let bad = ProcTexts {
            igmp6: "not a line of igmp6\n".into(),
            ..texts()
        };
        assert!(bad.groups(None).is_err());
    }
}
