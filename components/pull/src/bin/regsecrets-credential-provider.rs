//! The kubelet's image credential provider for regsecrets: see `regsecrets_pull::provider` and
//! docs/pulling.md. Configured by flags (`args` of the `CredentialProviderConfig`) and `env`.

use std::io::{Read, Write};
use std::process::ExitCode;

use regsecrets_pull::{config, provider, Config, Service};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("regsecrets-credential-provider: a kubelet image credential provider (credentialprovider.kubelet.k8s.io/v1)\n\
                  reads a CredentialProviderRequest on stdin, answers a CredentialProviderResponse on stdout.\n\n{}", config::USAGE);
        return ExitCode::SUCCESS;
    }
    let mut input = Vec::new();
    let outcome = std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| regsecrets_pull::Fault::Input(format!("cannot read stdin: {}", e.kind())))
        .and_then(|_| Config::from_process(&args))
        .and_then(Service::new)
        .and_then(|service| provider::run(&service, &input));
    match outcome {
        Ok(response) => {
            let mut stdout = std::io::stdout().lock();
            if writeln!(stdout, "{response}").and_then(|_| stdout.flush()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(fault) => {
            eprintln!("regsecrets-credential-provider: {fault}");
            ExitCode::FAILURE
        }
    }
}
