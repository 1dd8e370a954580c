//! The `hydra` binary: parse the command line, then serve or run a management command.

use clap::Parser;
use hydra::cli::{print_version, run_management, Cli, Command};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve { which } => hydra::server::serve(which.mode(), which.args()),
        Command::Version => {
            print_version(
                hydra::server::VERSION,
                option_env!("GIT_HASH").unwrap_or("unknown"),
                option_env!("BUILD_TIME").unwrap_or("unknown"),
            );
            0
        }
        other => run_management(other),
    };
    std::process::exit(code);
}
