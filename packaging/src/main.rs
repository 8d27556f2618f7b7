//! `passthru-packaging OUT_DIR`: writes what the Debian package installs
//! besides the binaries, generated so it cannot drift from its sources:
//!
//! - `OUT_DIR/man/*.1`: a page per command and subcommand of `passthru`,
//!   `passthru-certs` and `lb-sim`, from their clap definitions (the same
//!   `cli.rs` files the binaries compile);
//! - `OUT_DIR/man/passthru.toml.5`: every configuration key, converted from
//!   docs/configuration.md;
//! - `OUT_DIR/completions/{bash,zsh,fish}/…`: shell completions;
//! - `OUT_DIR/third-party-licences.txt`: the licence and notice files of
//!   every crate compiled into the binaries (see `licences.rs`).
//!
//! Only `make package` runs it; the product binaries do not link
//! clap_mangen or clap_complete.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

mod config_page;
mod licences;

#[allow(dead_code)]
#[path = "../../proxy/src/cli.rs"]
mod passthru_cli;

#[allow(dead_code)]
#[path = "../../certs/src/cli.rs"]
mod certs_cli;

#[allow(dead_code)]
#[path = "../../lb-sim/src/cli.rs"]
mod lb_sim_cli;

/// Every command the package installs, as clap sees it.
fn commands() -> [clap::Command; 3] {
    [
        passthru_cli::Cli::command(),
        certs_cli::Cli::command(),
        lb_sim_cli::Cli::command(),
    ]
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: passthru-packaging OUT_DIR");
        return ExitCode::from(2);
    };
    match write_all(Path::new(&out)) {
        Ok(written) => {
            println!(
                "{} files written under {}",
                written.len(),
                Path::new(&out).display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("passthru-packaging: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Writes every man page and completion under `out`; returns their paths.
fn write_all(out: &Path) -> io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    fs::create_dir_all(&man)?;
    let mut written = Vec::new();
    for command in commands() {
        written.extend(man_pages(command, &man)?);
    }
    let config = man.join("passthru.toml.5");
    fs::write(&config, config_page::render(env!("CARGO_PKG_VERSION")))?;
    written.push(config);

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let dir = out.join("completions").join(shell.to_string());
        fs::create_dir_all(&dir)?;
        for mut command in commands() {
            let name = command.get_name().to_owned();
            written.push(clap_complete::generate_to(shell, &mut command, name, &dir)?);
        }
    }
    let (licences, crates) = licences::write(out)?;
    println!("{} lists {crates} third-party crates", licences.display());
    written.push(licences);
    Ok(written)
}

/// `NAME.1` for the command and `NAME-SUB.1` for each subcommand (what
/// `NAME.1` refers to in its SUBCOMMANDS section).
fn man_pages(command: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    fn generate(command: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            generate(sub.clone(), dir, written)?;
        }
        written.push(clap_mangen::Man::new(command).generate_to(dir)?);
        Ok(())
    }
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();
    generate(command, dir, &mut written)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_and_subcommand_gets_a_page_and_completions() {
        let dir = std::env::temp_dir().join(format!("passthru-packaging-{}", std::process::id()));
        let written = write_all(&dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|path| path.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        for expected in [
            "man/passthru.1",
            "man/passthru-run.1",
            "man/passthru-check.1",
            "man/passthru-certs.1",
            "man/lb-sim.1",
            "man/passthru.toml.5",
            "completions/bash/passthru.bash",
            "completions/zsh/_passthru-certs",
            "completions/fish/lb-sim.fish",
        ] {
            assert!(
                names.iter().any(|name| name == expected),
                "{expected} not in {names:?}"
            );
        }
        let passthru = fs::read_to_string(dir.join("man/passthru.1")).unwrap();
        assert!(passthru.contains("passthru.toml(5)"), "{passthru}");
        assert!(passthru.contains("passthru\\-run(1)"), "{passthru}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
