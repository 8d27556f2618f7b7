//! Build script shared by the `passthru`, `passthru-certs`, `lb-sim` and
//! packaging crates: sets `PASSTHRU_BUILD` to the git commit the build comes
//! from, which `--version` prints after the version number. A build outside
//! a git checkout (a source tarball) says so instead of failing.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}

fn main() {
    let build = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => format!("commit {commit}"),
        None => "built outside a git checkout, commit unknown".to_owned(),
    };
    println!("cargo:rustc-env=PASSTHRU_BUILD={build}");
    // Run again when HEAD moves: HEAD itself (branch switch, detached
    // checkout), the branch it points to (commit), and packed refs.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!(
            "cargo:rerun-if-changed={}",
            PathBuf::from(&git_dir).join("HEAD").display()
        );
    }
    if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        let common = PathBuf::from(common);
        println!(
            "cargo:rerun-if-changed={}",
            common.join("packed-refs").display()
        );
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", common.join(branch).display());
        }
    }
    println!("cargo:rerun-if-env-changed=GIT_DIR");
}
