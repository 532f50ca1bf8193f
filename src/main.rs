//! The `snap` command: parses arguments, runs, maps errors to exit codes.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    cli::handle_signals();
    // Deep directory trees recurse on the worker threads: give them room.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(64 << 20)
        .build_global();
    let result = cli::run(args);
    if cli::stopping() {
        // The signal thread reports and exits; what the command made of
        // being interrupted is not the outcome.
        loop {
            std::thread::park();
        }
    }
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let code = cli::exit_code(&e);
            if !cli::is_broken_pipe(&e) {
                eprintln!(
                    "snap: error: {}",
                    cli::escape_message(&cli::error_message(&e))
                );
            }
            if cli::is_broken_pipe(&e) {
                0
            } else {
                code
            }
        }
    };
    std::process::exit(code);
}
