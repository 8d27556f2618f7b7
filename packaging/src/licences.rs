//! `OUT_DIR/third-party-licences.txt`: every crate compiled into the
//! packaged binaries, with its declared licence and the licence and notice
//! files it ships (MIT, BSD and Apache-2.0 all ask for their text, or the
//! NOTICE, to travel with binary copies).
//!
//! The list comes from `cargo metadata` for the build host: the normal
//! (not dev, not build) dependencies reachable from `passthru`,
//! `passthru-certs` and `lb-sim`. A crate's licence files are those at the
//! top of its source directory and one level down (bundled C code such as
//! jemalloc keeps its own `COPYING` there).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace packages whose binaries the Debian package installs.
const SHIPPED: [&str; 3] = ["passthru", "passthru-certs", "lb-sim"];

/// The file written under the output directory.
pub(crate) const FILE_NAME: &str = "third-party-licences.txt";

/// Write [`FILE_NAME`] under `out`; returns its path and how many crates
/// it lists.
pub(crate) fn write(out: &Path) -> io::Result<(PathBuf, usize)> {
    let metadata = metadata()?;
    let crates = shipped_crates(&metadata)?;
    let mut text = format!(
        "Third-party software in the passthru package\n\
         =============================================\n\n\
         passthru, passthru-certs and lb-sim (MIT OR Apache-2.0) are built from\n\
         the {} crates below. Each entry gives the crate's declared licence and\n\
         the licence and notice files it ships, as they are.\n",
        crates.len()
    );
    for krate in &crates {
        text.push_str(&krate.render());
    }
    let path = out.join(FILE_NAME);
    fs::create_dir_all(out)?;
    fs::write(&path, text)?;
    Ok((path, crates.len()))
}

/// One third-party crate.
#[derive(Debug)]
struct Crate {
    name: String,
    version: String,
    licence: String,
    repository: Option<String>,
    /// (path relative to the crate, contents)
    files: Vec<(String, String)>,
}

impl Crate {
    fn render(&self) -> String {
        let mut text = format!(
            "\n\n======== {} {}\nlicence: {}\n",
            self.name, self.version, self.licence
        );
        if let Some(repository) = &self.repository {
            text.push_str(&format!("source: {repository}\n"));
        }
        if self.files.is_empty() {
            text.push_str(
                "(the crate ships no licence file; its licence is the one declared above)\n",
            );
        }
        for (name, contents) in &self.files {
            text.push_str(&format!("\n-------- {name}\n\n{}\n", contents.trim_end()));
        }
        text
    }
}

/// `cargo metadata` for this workspace, resolved for the build host.
fn metadata() -> io::Result<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut command = Command::new(&cargo);
    command
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest);
    if let Some(host) = host_triple() {
        command.args(["--filter-platform", &host]);
    }
    let output = command
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {cargo} metadata: {e}")))?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{cargo} metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| io::Error::other(format!("reading cargo metadata: {e}")))
}

/// The host triple from `rustc -vV` (`None`: every platform's crates).
fn host_triple() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(rustc).arg("-vV").output().ok()?;
    String::from_utf8(output.stdout)
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
}

fn bad(what: &str) -> io::Error {
    io::Error::other(format!("unexpected cargo metadata: {what}"))
}

/// The third-party crates reachable from [`SHIPPED`] through normal
/// dependencies, sorted by name and version.
fn shipped_crates(metadata: &Value) -> io::Result<Vec<Crate>> {
    let packages = metadata["packages"]
        .as_array()
        .ok_or_else(|| bad("no packages"))?;
    let by_id: HashMap<&str, &Value> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes = metadata["resolve"]["nodes"]
        .as_array()
        .ok_or_else(|| bad("no resolve graph"))?;
    let deps: HashMap<&str, Vec<&str>> = nodes
        .iter()
        .filter_map(|node| {
            let normal = node["deps"]
                .as_array()?
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|kind| kind["kind"].is_null()))
                })
                .filter_map(|dep| dep["pkg"].as_str())
                .collect();
            Some((node["id"].as_str()?, normal))
        })
        .collect();
    let is_ours = |p: &Value| p["source"].is_null();
    let mut queue: VecDeque<&str> = packages
        .iter()
        .filter(|p| is_ours(p) && p["name"].as_str().is_some_and(|n| SHIPPED.contains(&n)))
        .filter_map(|p| p["id"].as_str())
        .collect();
    if queue.len() != SHIPPED.len() {
        return Err(bad("the shipped packages are not all in the workspace"));
    }
    let mut seen = BTreeSet::new();
    let mut crates = BTreeMap::new();
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        queue.extend(deps.get(id).into_iter().flatten());
        let package = by_id
            .get(id)
            .ok_or_else(|| bad("a dependency without a package"))?;
        if is_ours(package) {
            continue;
        }
        let krate = describe(package)?;
        crates.insert((krate.name.clone(), krate.version.clone()), krate);
    }
    Ok(crates.into_values().collect())
}

fn describe(package: &Value) -> io::Result<Crate> {
    let text = |key: &str| package[key].as_str().map(str::to_owned);
    let name = text("name").ok_or_else(|| bad("a package without a name"))?;
    let manifest = text("manifest_path").ok_or_else(|| bad("a package without a manifest"))?;
    let dir = Path::new(&manifest)
        .parent()
        .ok_or_else(|| bad("a manifest without a directory"))?;
    let mut files = licence_files(dir)?;
    if let Some(declared) = text("license_file") {
        let path = dir.join(&declared);
        if !files.iter().any(|(name, _)| dir.join(name) == path) {
            files.push((declared, read_text(&path)?));
        }
    }
    Ok(Crate {
        version: text("version").unwrap_or_default(),
        licence: text("license").unwrap_or_else(|| "see the files below".to_owned()),
        repository: text("repository"),
        files,
        name,
    })
}

/// Licence and notice files at the top of `dir` and one level down.
fn licence_files(dir: &Path) -> io::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for entry in sorted_entries(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_file() && is_licence_name(&name) {
            found.push((name, read_text(&path)?));
        } else if path.is_dir() && !name.starts_with('.') {
            for inner in sorted_entries(&path)? {
                let inner_name = inner.file_name().to_string_lossy().into_owned();
                if inner.path().is_file() && is_licence_name(&inner_name) {
                    found.push((format!("{name}/{inner_name}"), read_text(&inner.path())?));
                }
            }
        }
    }
    Ok(found)
}

fn sorted_entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut entries = fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    Ok(entries)
}

fn is_licence_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "LICENSE",
        "LICENCE",
        "COPYING",
        "COPYRIGHT",
        "NOTICE",
        "UNLICENSE",
    ]
    .iter()
    .any(|prefix| upper.starts_with(prefix))
        && !upper.ends_with(".RS")
}

fn read_text(path: &Path) -> io::Result<String> {
    let bytes =
        fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_crates_and_their_notices_are_listed_and_dev_only_ones_are_not() {
        let dir = std::env::temp_dir().join(format!("passthru-licences-{}", std::process::id()));
        let (path, count) = write(&dir).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(count > 20, "{count} crates");
        for shipped in [
            "======== rustls ",
            "======== tokio ",
            "======== tikv-jemalloc-sys ",
        ] {
            assert!(text.contains(shipped), "{shipped} missing");
        }
        // jemalloc's own BSD-2-Clause notice, bundled one level down.
        let jemalloc = &text[text.find("======== tikv-jemalloc-sys ").unwrap()..];
        let jemalloc = &jemalloc[..jemalloc[1..]
            .find("\n======== ")
            .map_or(jemalloc.len(), |i| i + 1)];
        assert!(jemalloc.contains("Redistribution and use in source and binary forms"));
        // criterion is a benchmark dependency: not in the package.
        assert!(!text.contains("======== criterion "));
        // Our own crates are not third-party.
        assert!(!text.contains("======== passthru-net "));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn licence_file_names() {
        for yes in [
            "LICENSE",
            "LICENSE-MIT",
            "license-apache",
            "COPYING",
            "NOTICE",
            "UNLICENSE",
            "LICENCE.txt",
        ] {
            assert!(is_licence_name(yes), "{yes}");
        }
        for no in ["README.md", "license.rs", "src", "Cargo.toml"] {
            assert!(!is_licence_name(no), "{no}");
        }
    }
}
