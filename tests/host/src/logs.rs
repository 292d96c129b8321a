//! Captures what components write to stdout and stderr, one line at a time, tagged with the
//! component id, so tests can read it; optionally echoed to the host's stderr.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

#[derive(Clone, Default)]
pub struct LogBook {
    text: Arc<Mutex<String>>,
    echo: bool,
}

impl LogBook {
    pub fn new(echo: bool) -> LogBook {
        LogBook { text: Default::default(), echo }
    }

    pub fn line(&self, tag: &str, line: &str) {
        let line = format!("[{tag}] {line}\n");
        if self.echo {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        self.text.lock().unwrap().push_str(&line);
    }

    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    pub fn sink(&self, component: &str) -> LogSink {
        LogSink { book: self.clone(), component: component.to_string() }
    }
}

/// The stdout or stderr given to one instance.
pub struct LogSink {
    book: LogBook,
    component: String,
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter { book: self.book.clone(), component: self.component.clone(), pending: Vec::new() })
    }
}

struct LineWriter {
    book: LogBook,
    component: String,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit_complete_lines(&mut self) {
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            self.book.line(&self.component, text.trim_end_matches('\r'));
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            self.book.line(&self.component, &text);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        self.emit_complete_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
