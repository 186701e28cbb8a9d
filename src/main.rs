use clap::Parser;

/// mimalloc: thread-local free lists for the many small allocations of a
/// guarded statement's analysis (`benches/README.md`, `analysis`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    copyguard::cli::Cli::parse().run()
}
