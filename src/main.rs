use clap::Parser;

/// mimalloc: a session's many small, short-lived allocations (frames,
/// analysis trees) cost about half of what glibc's allocator charges, and
/// threads that end hand their free pages back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    copyguard::cli::Cli::parse().run()
}
