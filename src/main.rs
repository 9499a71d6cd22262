//! The `loa` binary: parses the command line and hands over to [`loa::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    loa::cli::main()
}
