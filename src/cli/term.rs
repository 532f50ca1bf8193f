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
        // An I/O error names its path itself: say the path once.
        let message = message
            .strip_prefix(path)
            .and_then(|m| m.strip_prefix(": "))
            .unwrap_or(message);
        let line = format!(
            "snap: warning: {}: {}",
            escape(path),
            escape_message(message)
        );
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
            Some(b) => b.suspend(|| eprintln!("{}", escape_message(message))),
            None => eprintln!("{}", escape_message(message)),
        }
    }
}

/// A name, host, tag or message made safe for a terminal, losslessly:
/// control characters (C0, DEL, C1), bidirectional overrides and line
/// separators become `\xNN` or `\u{NNNN}`, a backslash becomes `\\`, and
/// everything else is kept. Every string from a repository or a file system
/// goes through this (or [`escape_bytes`]) before it reaches a terminal.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(&mut out, s);
    out
}

/// [`escape`] for bytes that may not be UTF-8: each byte of an invalid
/// sequence becomes `\xNN`, so distinct names stay distinct.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// A message for the terminal: [`escape`] without touching backslashes
/// and line breaks, which messages use as themselves.
pub fn escape_message(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split_inclusive('\n') {
        let (text, nl) = match line.strip_suffix('\n') {
            Some(t) => (t, "\n"),
            None => (line, ""),
        };
        for c in text.chars() {
            push_char(&mut out, c, false);
        }
        out.push_str(nl);
    }
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        push_char(out, c, true);
    }
}

fn push_char(out: &mut String, c: char, lossless: bool) {
    match c {
        '\\' if lossless => out.push_str("\\\\"),
        c if c.is_control() && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
        '\u{200e}'
        | '\u{200f}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        c => out.push(c),
    }
}

/// A snapshot's RFC 3339 time as people read it: in `tz`, to the second,
/// with the zone's abbreviation (`2026-11-30 03:00:12 CET`). A time that
/// does not parse is shown as it is.
pub fn human_time(t: &str, tz: chrono_tz::Tz) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => t
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => escape_message(t),
    }
}

/// Rows as aligned columns, two spaces apart: each column as wide as its
/// widest cell (in characters, cells already escaped), numbers
/// (`right[i]`) aligned right; the last column is not padded.
pub fn table(rows: &[Vec<String>], right: &[bool]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - c.chars().count();
                if i + 1 == r.len() && !right.get(i).copied().unwrap_or(false) {
                    line.push_str(c);
                } else if right.get(i).copied().unwrap_or(false) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.push_str(&" ".repeat(pad));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_whatever_the_cell_widths() {
        let rows = vec![
            vec!["id".into(), "site".into(), "size".into(), "paths".into()],
            vec!["ab".into(), "é-long-site".into(), "1 B".into(), "/x".into()],
            vec!["cd".into(), "s".into(), "10.0 KiB".into(), "/y /z".into()],
        ];
        assert_eq!(
            table(&rows, &[false, false, true, false]),
            [
                "id  site             size  paths",
                "ab  é-long-site       1 B  /x",
                "cd  s            10.0 KiB  /y /z",
            ]
        );
    }

    #[test]
    fn human_times_are_local_to_the_second() {
        let tz: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            human_time("2026-11-30T02:00:12.123456789+00:00", tz),
            "2026-11-30 03:00:12 CET"
        );
        assert_eq!(
            human_time("2026-07-01T00:00:00Z", tz),
            "2026-07-01 02:00:00 CEST"
        );
        assert_eq!(human_time("garbage", tz), "garbage");
    }

    #[test]
    fn escapes_what_a_terminal_would_obey_and_nothing_else() {
        assert_eq!(escape("plain/név.txt"), "plain/név.txt");
        assert_eq!(escape("a\x1b[2Jb\n\t"), "a\\x1b[2Jb\\x0a\\x09");
        assert_eq!(escape("\u{9b}31m"), "\\x9b31m");
        assert_eq!(escape("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(
            escape("a\\x1b"),
            "a\\\\x1b",
            "a literal backslash stays distinct"
        );
        assert_eq!(escape_bytes(b"caf\xe9\x7f/ok"), "caf\\xe9\\x7f/ok");
        assert_ne!(escape_bytes(b"\xe9"), escape_bytes("\\xe9".as_bytes()));
        assert_eq!(
            escape_message("C:\\x \"a\x1b\"\nnext"),
            "C:\\x \"a\\x1b\"\nnext"
        );
    }
}
