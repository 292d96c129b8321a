//! Log lines out of a component, each handed to the host in **one** write.
//!
//! Why one write: Spin (`spin up`) gives every instance its own writer appending to the same
//! `.spin/logs/<component>_stdout.txt` (and `_stderr.txt`), and copies it to its own stderr when
//! following; each guest write becomes one append there. Lines of concurrent instances stay whole
//! only if each line is a single write. Rust's `eprintln!` writes its message and its `\n` as
//! separate writes to an unbuffered stderr, and `println!`'s line buffer may flush the text and
//! the newline separately, so other instances' writes land in between (seen under real Spin:
//! `...MissingHeaderrequest 5d01...` on one line). Here the whole line, newline included, goes
//! to WASI's `blocking-write-and-flush` once; that call takes at most 4096 bytes, so a longer
//! line is cut (never the case for audit lines, which the domain bounds below that).

use wasi::cli::{stderr, stdout};
use wasi::io::streams::OutputStream;

/// The most `blocking-write-and-flush` accepts in one call.
const MAX_WRITE: usize = 4096;

/// An audit line (already ending in `\n`) to stdout.
pub fn audit(line: &str) {
    write_line(&stdout::get_stdout(), line);
}

/// An operational line (an error's kind, never a value) to stderr.
pub fn error(line: &str) {
    write_line(&stderr::get_stderr(), line);
}

fn write_line(stream: &OutputStream, line: &str) {
    let text = line.strip_suffix('\n').unwrap_or(line);
    let mut cut = text.len().min(MAX_WRITE - 1);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut bytes = Vec::with_capacity(cut + 1);
    bytes.extend_from_slice(&text.as_bytes()[..cut]);
    bytes.push(b'\n');
    // A log that cannot be written must not fail the request it describes.
    let _ = stream.blocking_write_and_flush(&bytes);
}
