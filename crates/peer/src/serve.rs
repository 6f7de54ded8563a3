//! `peer serve`: the seed's client/server protocol, server side.

use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("peer serve {:?}: not implemented yet", args.file)
}
