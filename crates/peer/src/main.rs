use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = peer::cli::Cli::parse();
    peer::run(cli)
}
