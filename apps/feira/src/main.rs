//! `feira`: one binary, many targets. See `feira --help`.

fn main() -> std::process::ExitCode {
    feira::cli::main()
}
