use clap::Parser;

fn main() -> std::process::ExitCode {
    copyguard::cli::Cli::parse().run()
}
