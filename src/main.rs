use clap::Parser;

/// jemalloc: a session's many small, short-lived allocations (frames,
/// analysis trees) cost less than on glibc's allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed pages go back to the system within a second, by jemalloc's own
/// background thread, so memory follows the sessions open.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    copyguard::cli::Cli::parse().run()
}
