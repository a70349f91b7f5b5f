//! `feira`: one binary, many targets. See `feira --help`.

/// mimalloc instead of glibc's malloc: the request path allocates small,
/// short-lived buffers on every request, where glibc's arenas cost ~8 % of
/// the gateway's CPU (docs/adr/0020-gateway-hot-path.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    feira::cli::main()
}
