//! `passthru-certs`: parses the command line, calls the library, prints the
//! report (text or JSON) and maps the outcome to the exit code: 0 ok, 1
//! runtime failure or negative verdict, 2 usage or bad input (one sentence
//! on stderr naming the file).

use std::process::ExitCode;

use clap::Parser as _;
use passthru_certs::input::{self, InputError};
use passthru_certs::probe::{self, ProbeOptions};
use passthru_certs::verify::{self, Purpose, TrustAnchors};
use passthru_certs::{LabError, LabPki, clock, inspect, render};

use crate::cli::{Cli, Command, InspectArgs, LabArgs, ProbeArgs, VerifyArgs};

mod cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lab(args) => lab(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Verify(args) => verify(&args),
        Command::Probe(args) => probe(args),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("passthru-certs: {}", failure.message);
            failure.code
        }
    }
}

/// A failure: the exit code and the sentence for stderr.
struct Failure {
    code: ExitCode,
    message: String,
}

// Both take the error by value so they can be passed to `map_err` directly.
#[allow(clippy::needless_pass_by_value)]
impl Failure {
    fn usage(error: impl ToString) -> Self {
        Failure {
            code: ExitCode::from(2),
            message: error.to_string(),
        }
    }

    fn runtime(error: impl ToString) -> Self {
        Failure {
            code: ExitCode::FAILURE,
            message: error.to_string(),
        }
    }
}

impl From<InputError> for Failure {
    fn from(error: InputError) -> Self {
        Failure::usage(error)
    }
}

fn lab(args: &LabArgs) -> Result<ExitCode, Failure> {
    let pki = LabPki::generate(args.now.unwrap_or_else(clock::now)).map_err(Failure::runtime)?;
    pki.write_to(&args.out, args.force).map_err(|e| match e {
        LabError::NotEmpty { .. } => Failure::usage(e),
        other => Failure::runtime(other),
    })?;
    let report = pki.report(&args.out);
    print!(
        "{}",
        if args.json {
            render::json(&report)
        } else {
            render::lab(&report)
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: &InspectArgs) -> Result<ExitCode, Failure> {
    let mut sources = Vec::new();
    for path in &args.files {
        let certs = input::certificates(path)?;
        let ders = certs.into_iter().map(|c| c.to_vec()).collect();
        sources.push((input::display_name(path), ders));
    }
    let at = args.at.unwrap_or_else(clock::now);
    let report =
        inspect::inspect(&sources, at, args.match_value.as_deref()).map_err(Failure::usage)?;
    print!(
        "{}",
        if args.json {
            render::json(&report)
        } else {
            render::inspect(&report)
        }
    );
    Ok(match report.any_match() {
        Some(false) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn verify(args: &VerifyArgs) -> Result<ExitCode, Failure> {
    let ca_certs = input::certificates(&args.ca)?;
    let anchors =
        TrustAnchors::new(&input::display_name(&args.ca), &ca_certs).map_err(Failure::usage)?;
    let chain = input::certificates(&args.chain)?;
    let purpose = match (args.purpose, &args.name) {
        (Some(p), _) => Purpose::from(p),
        (None, Some(_)) => Purpose::Server,
        (None, None) => Purpose::Client,
    };
    let at = args.at.unwrap_or_else(clock::now);
    let mut report = verify::verify(&anchors, &chain, at, purpose, args.name.as_deref())
        .map_err(|e| Failure::usage(format!("{}: {e}", input::display_name(&args.chain))))?;
    report.chain_file = Some(input::display_name(&args.chain));
    report.ca_file = Some(input::display_name(&args.ca));
    print!(
        "{}",
        if args.json {
            render::json(&report)
        } else {
            render::verify(&report)
        }
    );
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn probe(args: ProbeArgs) -> Result<ExitCode, Failure> {
    let client = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some((input::certificates(cert)?, input::private_key(key)?)),
        _ => None,
    };
    let ca = match &args.ca {
        Some(path) => {
            let certs = input::certificates(path)?;
            Some(TrustAnchors::new(&input::display_name(path), &certs).map_err(Failure::usage)?)
        }
        None => None,
    };
    let options = ProbeOptions {
        target: args.target,
        sni: args.sni,
        client,
        ca,
        via: args.via,
        timeout: args.timeout,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))?;
    let report = runtime
        .block_on(probe::probe(&options))
        .map_err(Failure::usage)?;
    print!(
        "{}",
        if args.json {
            render::json(&report)
        } else {
            render::probe(&report)
        }
    );
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
