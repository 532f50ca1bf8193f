//! Terminal progress: a bar on a terminal, silence in cron; warnings always
//! go to stderr with their path.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snap::progress::Progress;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

/// Progress shown on stderr when it is a terminal.
pub struct TermProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
    bytes: AtomicU64,
}

impl TermProgress {
    /// A bar unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool, total_files: Option<u64>) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b =
                ProgressBar::with_draw_target(total_files, ProgressDrawTarget::stderr_with_hz(4));
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {pos} files, {msg}")
                    .expect("valid template"),
            );
            b
        });
        TermProgress {
            bar,
            quiet,
            bytes: AtomicU64::new(0),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for TermProgress {
    fn bytes(&self, n: u64) {
        let total = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(b) = &self.bar {
            b.set_message(super::bytes(total));
        }
    }

    fn file_done(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn warn(&self, path: &str, message: &str) {
        let line = format!("snap: warning: {path}: {message}");
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn note(&self, message: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }
}
