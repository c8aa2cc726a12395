//! `git-hook install`: `post-commit`, `post-merge` and `post-rewrite` hooks that run
//! `pma-sso enqueue --changed <range>`.
//!
//! A hook that was already there is kept: it is renamed to `<hook>.pre-pma-sso` and our hook
//! runs it first, with the same arguments and input, and exits with its status (so a hook that
//! meant to say something still does). Our part never fails: `enqueue` spools what it cannot
//! record and the script ends with the previous hook's status, 0 without one. Re-installing
//! rewrites our hook in place and never renames it onto the kept one.
//!
//! The hooks follow the deploy branch: `PMA_SSO_DEPLOY_BRANCH` (environment or `.env`), else
//! the branch checked out at install time, which the script passes as `--deploy-branch`.
//! `enqueue` queues nothing for a commit on any other branch or on a detached HEAD (so the
//! commits a rebase replays do not count; its `post-rewrite` then covers the whole rebase).
//! An amend runs `post-commit` (which queues) and `post-rewrite amend` (which does not), so
//! it yields one job per service.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Subcommand;

use crate::cli::{Status, fail};

#[derive(Debug, Subcommand)]
pub enum GitHookCommand {
    /// Install (or refresh) the hooks in a repository.
    Install {
        /// The repository (default: the working directory).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// The `pma-sso` the hooks run (default: this executable, by absolute path).
        #[arg(long)]
        bin: Option<PathBuf>,
        /// The branch whose commits reach authentik (default: the branch checked out now;
        /// `PMA_SSO_DEPLOY_BRANCH` overrides it when the hook runs).
        #[arg(long)]
        deploy_branch: Option<String>,
    },
}

/// The hooks we install.
pub const HOOKS: [&str; 3] = ["post-commit", "post-merge", "post-rewrite"];
/// Marks a hook file as ours.
pub const MARKER: &str = "# pma-sso git hook: written by `pma-sso git-hook install`";
/// Suffix of a hook that was there before ours.
pub const KEPT_SUFFIX: &str = ".pre-pma-sso";
/// git's empty tree: the "parent" of a root commit.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

pub fn run(command: &GitHookCommand, out: &mut dyn Write) -> Status {
    match command {
        GitHookCommand::Install {
            repo,
            bin,
            deploy_branch,
        } => {
            let repo = repo.clone().unwrap_or_else(|| PathBuf::from("."));
            let bin = match bin {
                Some(b) => std::path::absolute(b).map_err(|e| e.to_string()),
                None => std::env::current_exe().map_err(|e| e.to_string()),
            };
            let bin = match bin {
                Ok(b) => b,
                Err(e) => return fail(out, &format!("cannot find the pma-sso executable: {e}")),
            };
            match install(&repo, &bin, deploy_branch.as_deref()) {
                Ok(lines) => {
                    for line in lines {
                        let _ = writeln!(out, "{line}");
                    }
                    Status::Green
                }
                Err(e) => fail(out, &e),
            }
        }
    }
}

/// The repository's hooks directory, honouring `core.hooksPath`.
fn hooks_dir(repo: &Path) -> Result<PathBuf, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--path-format=absolute", "--git-path", "hooks"])
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{} is not a git repository: {}",
            repo.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    ))
}

/// The branch checked out in `repo`, or `None` on a detached HEAD.
pub fn current_branch(repo: &Path) -> Result<Option<String>, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["symbolic-ref", "--quiet", "--short", "HEAD"])
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    // Exit 1 with no output: a detached HEAD.
    let name = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok((output.status.success() && !name.is_empty()).then_some(name))
}

/// Install the three hooks; returns one line per hook saying what happened.
pub fn install(
    repo: &Path,
    bin: &Path,
    deploy_branch: Option<&str>,
) -> Result<Vec<String>, String> {
    let dir = hooks_dir(repo)?;
    let branch = match deploy_branch {
        Some(b) if !b.trim().is_empty() => b.trim().to_owned(),
        _ => current_branch(repo)?.ok_or_else(|| {
            "HEAD is detached: check out the deploy branch, or name it with --deploy-branch"
                .to_owned()
        })?,
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut lines = Vec::new();
    for hook in HOOKS {
        let path = dir.join(hook);
        let kept = dir.join(format!("{hook}{KEPT_SUFFIX}"));
        let existing = std::fs::read_to_string(&path).ok();
        let note = match existing {
            Some(text) if text.contains(MARKER) => "refreshed",
            Some(_) if kept.exists() => {
                return Err(format!(
                    "{} exists and so does {}: merge them by hand, then run install again",
                    path.display(),
                    kept.display()
                ));
            }
            Some(_) => {
                std::fs::rename(&path, &kept).map_err(|e| format!("{}: {e}", path.display()))?;
                "installed; the existing hook runs first"
            }
            None => "installed",
        };
        write_executable(&path, &script(hook, bin, &branch))?;
        lines.push(format!("{hook}: {note} ({})", path.display()));
    }
    lines.push(format!(
        "commits on {branch} reach authentik; PMA_SSO_DEPLOY_BRANCH names another branch"
    ));
    Ok(lines)
}

fn write_executable(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("pma-sso-tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Single-quote for sh.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The hook script. post-rewrite gets `<old> <new>` pairs on stdin, which both the kept hook
/// and we need, so the input is saved first.
pub fn script(hook: &str, bin: &Path, deploy_branch: &str) -> String {
    let bin = quote(&bin.display().to_string());
    let branch = quote(deploy_branch);
    let range = match hook {
        "post-commit" => format!(
            "if git rev-parse -q --verify HEAD^ >/dev/null 2>&1; then range=HEAD^..HEAD; else range={EMPTY_TREE}..HEAD; fi"
        ),
        "post-merge" => "range=ORIG_HEAD..HEAD".to_owned(),
        // `amend`: post-commit already queued the amended commit; `rebase`: git sets
        // ORIG_HEAD to the branch before the rebase.
        _ => "if [ \"$1\" = rebase ]; then range=ORIG_HEAD..HEAD; else range=; fi".to_owned(),
    };
    format!(
        r#"#!/bin/sh
{MARKER}
# Re-running the install rewrites this file; a hook that was here before is kept as
# {hook}{KEPT_SUFFIX} and runs first.
input=
{read_input}status=0
kept="$(dirname "$0")/{hook}{KEPT_SUFFIX}"
if [ -x "$kept" ]; then
    {run_kept}
    status=$?
fi
{range}
[ -n "$range" ] && {bin} enqueue --changed "$range" --deploy-branch {branch} </dev/null || true
exit $status
"#,
        read_input = if hook == "post-rewrite" {
            "input=$(cat)\n"
        } else {
            ""
        },
        run_kept = if hook == "post-rewrite" {
            r#"printf '%s\n' "$input" | "$kept" "$@""#
        } else {
            r#""$kept" "$@""#
        },
    )
}
