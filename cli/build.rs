//! Puts the git commit the binaries were built from into `NVR_GIT_COMMIT` (for `--version`), unless
//! the environment already names one (a build from a source tarball, a package builder).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo::rerun-if-env-changed=NVR_GIT_COMMIT");
    let commit = match std::env::var("NVR_GIT_COMMIT") {
        Ok(c) if !c.is_empty() => c,
        _ => {
            // Rebuild when HEAD moves: a commit appends to HEAD's reflog, a checkout rewrites HEAD.
            if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
                println!("cargo::rerun-if-changed={dir}/HEAD");
                println!("cargo::rerun-if-changed={dir}/logs/HEAD");
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo::rustc-env=NVR_GIT_COMMIT={commit}");
}
