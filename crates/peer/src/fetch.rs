//! `peer fetch`: the seed's client/server protocol, client side.

use crate::cli::FetchArgs;

pub async fn run(args: FetchArgs) -> anyhow::Result<()> {
    anyhow::bail!("peer fetch {}: not implemented yet", args.addr)
}
