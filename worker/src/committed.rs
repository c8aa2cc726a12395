//! The manifest as committed: what a job triggered by a git hook reconciles.
//!
//! A git job names the commit it came from (`trigger_ref` `<from>..<to>`). Its worker reads
//! `packages/<svc>/manifest.yaml` from `<to>` with `git cat-file` in the repository that holds
//! the packages directory, so a feature branch checked out (or edited) in the working tree
//! never reaches authentik. When the working tree's file is the committed one, the job uses it
//! as any other job does (and `add` may mark it `configured: true`); otherwise it reconciles
//! the committed text and leaves the working tree alone.

use std::path::Path;
use std::process::Command;

use schemas::Package;

use crate::error::FlowError;

/// A package as some commit holds it.
pub struct Committed {
    pub package: Package,
    /// The working tree's manifest is byte for byte the committed one.
    pub in_tree: bool,
}

/// The commit a git job's `trigger_ref` (`<from>..<to>`) names: `<to>`.
pub fn commit_of(trigger_ref: &str) -> Option<&str> {
    let (_, to) = trigger_ref.split_once("..")?;
    (!to.is_empty() && to.chars().all(|c| c.is_ascii_hexdigit())).then_some(to)
}

/// `<packages>/<name>/manifest.yaml` as `commit` holds it.
pub fn package_at(packages: &Path, name: &str, commit: &str) -> Result<Committed, FlowError> {
    let manifest_path = packages.join(name).join(schemas::manifest::MANIFEST_FILE);
    let problem = |problem: String| FlowError::PackageFile {
        path: format!("{} at commit {commit}", manifest_path.display()),
        problem,
    };
    if name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(problem(format!("`{name}` is not a service name")));
    }
    // `<rev>:./<path>` is relative to the directory git runs in, wherever the repository's
    // root is.
    let output = Command::new("git")
        .arg("-C")
        .arg(packages)
        .args([
            "cat-file",
            "blob",
            &format!("{commit}:./{name}/{}", schemas::manifest::MANIFEST_FILE),
        ])
        .output()
        .map_err(|e| problem(format!("running git: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(problem(format!(
            "git could not read it ({})",
            first.trim_start_matches("fatal: ")
        )));
    }
    let committed = String::from_utf8(output.stdout)
        .map_err(|_| problem("the committed file is not UTF-8".to_owned()))?;
    let in_tree = std::fs::read(&manifest_path).is_ok_and(|t| t == committed.as_bytes());
    let package = if in_tree {
        schemas::load_package(packages, name)?
    } else {
        Package {
            dir: packages.join(name),
            manifest: schemas::parse_manifest(&manifest_path, &committed)?,
            manifest_path,
        }
    };
    Ok(Committed { package, in_tree })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_git_jobs_commit_is_the_end_of_its_range() {
        assert_eq!(commit_of("0123abcd..89efab01"), Some("89efab01"));
        assert_eq!(commit_of("retry:1234"), None);
        assert_eq!(commit_of("a..HEAD"), None, "only a commit id, never a ref");
        assert_eq!(commit_of("a.."), None);
    }
}
