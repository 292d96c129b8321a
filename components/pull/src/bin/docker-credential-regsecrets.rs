//! The Docker credential helper for regsecrets: see `regsecrets_pull::helper` and docs/pulling.md.
//! Configured by the environment only (clients run helpers with the command as the one argument).

use std::io::{Read, Write};
use std::process::ExitCode;

use regsecrets_pull::{helper, Config, Service};

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    let mut input = Vec::new();
    if matches!(command.as_str(), "get" | "store" | "erase") && std::io::stdin().read_to_end(&mut input).is_err() {
        input.clear();
    }
    let outcome = helper::run(&command, &input, || Config::from_process(&[]).and_then(Service::new));
    let mut stdout = std::io::stdout().lock();
    // The protocol: the answer, or the error's message, on stdout.
    let (text, code) = match outcome {
        Ok(answer) => (answer, ExitCode::SUCCESS),
        Err(failure) => (failure.to_string(), ExitCode::FAILURE),
    };
    if writeln!(stdout, "{text}").and_then(|_| stdout.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    code
}
