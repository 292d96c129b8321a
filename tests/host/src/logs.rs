//! Captures what components write to stdout and stderr the way `spin up` does (Spin 4.0.2,
//! `spin-trigger`'s `cli/stdio.rs`): every instance gets a writer of its own that appends to the
//! component's `<id>_stdout.txt` / `<id>_stderr.txt`, and each guest write lands there as one
//! append, as it arrived: nothing gathers a line. So two instances writing a line in two pieces
//! interleave here just as they do in Spin's log file. When following (Spin's default, here
//! `echo`), the same bytes also go to this process's stderr, stdout included, as Spin does.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Which of a component's two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stdio {
    Stdout,
    Stderr,
}

impl Stdio {
    /// The suffix of Spin's log file name: `<component>_<suffix>.txt`.
    pub fn suffix(self) -> &'static str {
        match self {
            Stdio::Stdout => "stdout",
            Stdio::Stderr => "stderr",
        }
    }
}

#[derive(Default)]
struct Pages {
    /// Every write of every component and the host's own lines, in the order they arrived.
    transcript: Vec<u8>,
    /// What Spin's log files would hold, per (component, stream).
    files: BTreeMap<(String, Stdio), Vec<u8>>,
}

#[derive(Clone, Default)]
pub struct LogBook {
    pages: Arc<Mutex<Pages>>,
    echo: bool,
    /// Where the log files go too, as `spin up --log-dir`.
    dir: Option<PathBuf>,
}

impl LogBook {
    pub fn new(echo: bool, dir: Option<PathBuf>) -> std::io::Result<LogBook> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(LogBook { pages: Default::default(), echo, dir })
    }

    /// A line of the host's own (a refused outbound request, a failed instance).
    pub fn line(&self, tag: &str, line: &str) {
        let line = format!("[{tag}] {line}\n");
        if self.echo {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        self.pages.lock().unwrap().transcript.extend_from_slice(line.as_bytes());
    }

    /// One guest write, appended whole: an `O_APPEND` write to Spin's log file.
    fn append(&self, component: &str, stream: Stdio, bytes: &[u8]) {
        if self.echo {
            let _ = std::io::stderr().write_all(bytes);
        }
        let mut pages = self.pages.lock().unwrap();
        if let Some(dir) = &self.dir {
            // One append-mode write per guest write, as Spin's writer does; a failed one is lost.
            let path = dir.join(format!("{}_{}.txt", sanitized(component), stream.suffix()));
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
            let _ = file.and_then(|mut file| file.write_all(bytes));
        }
        pages.transcript.extend_from_slice(bytes);
        pages.files.entry((component.to_owned(), stream)).or_default().extend_from_slice(bytes);
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.pages.lock().unwrap().transcript).into_owned()
    }

    /// What `spin up` would have written to `.spin/logs/<component>_<stream>.txt` so far.
    pub fn file(&self, component: &str, stream: Stdio) -> String {
        let pages = self.pages.lock().unwrap();
        String::from_utf8_lossy(pages.files.get(&(component.to_owned(), stream)).map_or(&[][..], Vec::as_slice))
            .into_owned()
    }

    pub fn sink(&self, component: &str, stream: Stdio) -> LogSink {
        LogSink { book: self.clone(), component: component.to_string(), stream }
    }
}

/// A component id as a file name (Spin uses `sanitize_filename`; ids are `[a-z0-9-]` anyway).
fn sanitized(component: &str) -> String {
    component.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// The stdout or stderr given to one instance.
pub struct LogSink {
    book: LogBook,
    component: String,
    stream: Stdio,
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(AppendWriter { book: self.book.clone(), component: self.component.clone(), stream: self.stream })
    }
}

struct AppendWriter {
    book: LogBook,
    component: String,
    stream: Stdio,
}

impl AsyncWrite for AppendWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.book.append(&self.component, self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn writes_land_whole_and_in_arrival_order_never_gathered_into_lines() {
        let dir = std::env::temp_dir().join(format!("testhost-logs-{}", std::process::id()));
        let book = LogBook::new(false, Some(dir.clone())).unwrap();
        let stream = |component: &str, stream| Pin::from(book.sink(component, stream).async_stream());
        let (mut a, mut b) = (stream("create", Stdio::Stdout), stream("create", Stdio::Stdout));
        a.write_all(b"first half ").await.unwrap();
        b.write_all(b"{\"whole\":1}\n").await.unwrap();
        a.write_all(b"second half\n").await.unwrap();
        stream("create", Stdio::Stderr).write_all(b"oops\n").await.unwrap();
        assert_eq!(book.file("create", Stdio::Stdout), "first half {\"whole\":1}\nsecond half\n");
        assert_eq!(book.file("create", Stdio::Stderr), "oops\n");
        assert_eq!(book.file("patch", Stdio::Stdout), "");
        assert!(book.text().ends_with("second half\noops\n"));
        assert_eq!(std::fs::read_to_string(dir.join("create_stdout.txt")).unwrap(), book.file("create", Stdio::Stdout));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
