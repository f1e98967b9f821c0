mod cli;

/// Large buffers on cache lines, for the vector kernels (see [`petal::CacheAligned`]).
#[global_allocator]
static ALLOCATOR: petal::CacheAligned = petal::CacheAligned;

fn main() -> std::process::ExitCode {
    die_quietly_on_closed_pipes();
    cli::main()
}

/// Rust starts programs with SIGPIPE ignored, so printing into a pipe whose reader has gone
/// (`petal tflite info model.tflite | head`) fails and `println!` panics. Unix tools end
/// quietly there instead, killed by the signal: so does petal.
#[cfg(unix)]
fn die_quietly_on_closed_pipes() {
    // SAFETY: restoring a signal's default disposition, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn die_quietly_on_closed_pipes() {}
