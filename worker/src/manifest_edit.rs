//! Flips `sso.configured` in a service manifest without reformatting it.
//!
//! Manifests are hand-written YAML, so this is a line edit rather than a
//! parse-and-reserialise: comments, quoting and layout survive byte-for-byte.
//! Only the block style `sso:` mapping is understood; anything else is refused.

use std::fs::{self, File, Metadata, Permissions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const BOM: &str = "\u{feff}";

#[derive(Debug, thiserror::Error)]
pub enum ManifestEditError {
    #[error("cannot read manifest {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("manifest {} is not valid UTF-8", .path.display())]
    NotUtf8 { path: PathBuf },
    #[error("manifest {} has no top-level `sso:` key", .path.display())]
    NoSsoBlock { path: PathBuf },
    #[error(
        "manifest {} line {line}: `sso:` is not a block mapping (flow style such as `sso: {{type: oauth}}` cannot be edited in place)",
        .path.display()
    )]
    SsoNotBlockMapping { path: PathBuf, line: usize },
    #[error(
        "manifest {} line {line}: `sso.configured` is not a plain value on its own line",
        .path.display()
    )]
    UnsupportedConfiguredValue { path: PathBuf, line: usize },
    #[error("cannot write the replacement for manifest {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot give the replacement for manifest {} its original owner: {source}", .path.display())]
    KeepOwner {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot replace manifest {}: {source}", .path.display())]
    Replace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("replaced manifest {} but cannot sync its directory: {source}", .path.display())]
    SyncDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Sets `configured:` directly under the top-level `sso:` mapping to `value`.
///
/// Rewrites only that value, keeping indentation and any trailing comment;
/// when the key is missing it is inserted after `type:` (or first). Returns
/// whether the file changed; an unchanged file is not written. The write is
/// atomic and keeps the file's permissions and owner.
pub fn set_configured(path: &Path, value: bool) -> Result<bool, ManifestEditError> {
    // Renaming over a symlink would replace the link, so edit its target.
    let target = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
        }
        _ => path.to_owned(),
    };
    let (text, metadata) = read_text(&target)?;
    let edited = edit(&text, value).map_err(|problem| match problem {
        Problem::NoSsoBlock => ManifestEditError::NoSsoBlock {
            path: target.clone(),
        },
        Problem::SsoNotBlockMapping { line } => ManifestEditError::SsoNotBlockMapping {
            path: target.clone(),
            line,
        },
        Problem::UnsupportedConfiguredValue { line } => {
            ManifestEditError::UnsupportedConfiguredValue {
                path: target.clone(),
                line,
            }
        }
    })?;
    let Some(new_text) = edited else {
        return Ok(false);
    };
    replace_file(&target, new_text.as_bytes(), &metadata)?;
    tracing::debug!(path = %target.display(), configured = value, "updated manifest");
    Ok(true)
}

fn read_text(path: &Path) -> Result<(String, Metadata), ManifestEditError> {
    let read_err = |source| ManifestEditError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let metadata = file.metadata().map_err(read_err)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|_| ManifestEditError::NotUtf8 {
        path: path.to_owned(),
    })?;
    Ok((text, metadata))
}

/// Writes `contents` to a temp file beside `target` with `original`'s mode and
/// owner, then renames it over `target`. On failure the temp file is removed.
fn replace_file(
    target: &Path,
    contents: &[u8],
    original: &Metadata,
) -> Result<(), ManifestEditError> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map_or_else(|| "manifest".into(), |n| n.to_string_lossy());
    let prefix = format!(".{name}.");
    let write_err = |source| ManifestEditError::Write {
        path: target.to_owned(),
        source,
    };
    // What a writer killed before its rename left behind.
    crate::envfile::remove_stale_temps(dir, &prefix);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(write_err)?;
    let current = tmp.as_file().metadata().map_err(write_err)?;
    if (current.uid(), current.gid()) != (original.uid(), original.gid()) {
        std::os::unix::fs::fchown(tmp.as_file(), Some(original.uid()), Some(original.gid()))
            .map_err(|source| ManifestEditError::KeepOwner {
                path: target.to_owned(),
                source,
            })?;
    }
    // After the chown, which clears set-id bits; and exact, unlike a umask'd create mode.
    tmp.as_file()
        .set_permissions(Permissions::from_mode(
            original.permissions().mode() & 0o7777,
        ))
        .map_err(write_err)?;
    tmp.write_all(contents).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(target)
        .map_err(|e| ManifestEditError::Replace {
            path: target.to_owned(),
            source: e.error,
        })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ManifestEditError::SyncDir {
            path: target.to_owned(),
            source,
        })
}

/// Why the text cannot be edited; `line` is 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    NoSsoBlock,
    SsoNotBlockMapping { line: usize },
    UnsupportedConfiguredValue { line: usize },
}

/// A line's byte offsets: `start..content_end` excludes the `\n` or `\r\n`
/// (and a leading BOM); `end` is past the terminator.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    content_end: usize,
    end: usize,
}

fn split_lines(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = text[start..]
            .find('\n')
            .map_or(text.len(), |i| start + i + 1);
        let mut content_end = if text[..end].ends_with('\n') {
            end - 1
        } else {
            end
        };
        if text[start..content_end].ends_with('\r') {
            content_end -= 1;
        }
        let content_start = if start == 0 && text.starts_with(BOM) {
            BOM.len()
        } else {
            start
        };
        lines.push(Line {
            start: content_start,
            content_end,
            end,
        });
        start = end;
    }
    lines
}

fn indent(content: &str) -> usize {
    content.len() - content.trim_start_matches(' ').len()
}

fn is_blank_or_comment(content: &str) -> bool {
    let trimmed = content.trim_start_matches([' ', '\t']);
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// For a line holding `key: ...` (after its indentation), the key without
/// quotes and the offset just past the `:`.
fn mapping_key(s: &str) -> Option<(&str, usize)> {
    let colon_ok = |at: usize| {
        s[at..].starts_with(':') && matches!(s.as_bytes().get(at + 1), None | Some(b' ' | b'\t'))
    };
    let (key, colon) = if let Some(quote @ ('"' | '\'')) = s.chars().next() {
        let close = 1 + s[1..].find(quote)?;
        let colon = close + 1 + s[close + 1..].len() - s[close + 1..].trim_start_matches(' ').len();
        (&s[1..close], colon)
    } else {
        if s.starts_with(['-', '?', '#', '[', '{']) {
            return None;
        }
        let colon = s.char_indices().map(|(i, _)| i).find(|&i| colon_ok(i))?;
        (s[..colon].trim_end_matches([' ', '\t']), colon)
    };
    colon_ok(colon).then_some((key, colon + 1))
}

/// The span of a plain value within `rest` (the text after `key:`), stopping
/// before a trailing comment.
fn value_span(rest: &str) -> Range<usize> {
    let start = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let body = &rest[start..];
    let comment = body
        .char_indices()
        .find(|&(i, c)| c == '#' && (i == 0 || body[..i].ends_with([' ', '\t'])))
        .map_or(body.len(), |(i, _)| i);
    start..start + body[..comment].trim_end_matches([' ', '\t']).len()
}

fn yaml_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// The edited text, or `None` when `configured` already has `value`.
fn edit(text: &str, value: bool) -> Result<Option<String>, Problem> {
    let lines = split_lines(text);
    let content = |i: usize| &text[lines[i].start..lines[i].content_end];
    let significant = |i: usize| !is_blank_or_comment(content(i));

    let sso = (0..lines.len())
        .find(|&i| {
            significant(i)
                && indent(content(i)) == 0
                && mapping_key(content(i)).is_some_and(|(key, _)| key == "sso")
        })
        .ok_or(Problem::NoSsoBlock)?;
    let not_block = Problem::SsoNotBlockMapping { line: sso + 1 };
    let sso_content = content(sso);
    let (_, after_colon) = mapping_key(sso_content).ok_or(not_block)?;
    if !value_span(&sso_content[after_colon..]).is_empty() {
        return Err(not_block);
    }
    // The block runs to the next significant line at column 0.
    let block_end = (sso + 1..lines.len())
        .find(|&i| significant(i) && indent(content(i)) == 0)
        .unwrap_or(lines.len());
    let first_child = (sso + 1..block_end)
        .find(|&i| significant(i))
        .ok_or(not_block)?;
    let child_indent = indent(content(first_child));
    if mapping_key(&content(first_child)[child_indent..]).is_none() {
        return Err(not_block);
    }
    let children: Vec<(usize, &str, usize)> = (sso + 1..block_end)
        .filter(|&i| significant(i) && indent(content(i)) == child_indent)
        .filter_map(|i| {
            let (key, after) = mapping_key(&content(i)[child_indent..])?;
            Some((i, key, child_indent + after))
        })
        .collect();
    // A value that continues on more-indented lines is not ours to rewrite.
    let continues = |i: usize| {
        (i + 1..block_end)
            .find(|&j| significant(j))
            .is_some_and(|j| indent(content(j)) > child_indent)
    };

    let literal = if value { "true" } else { "false" };
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for &(i, _, after) in children.iter().filter(|(_, key, _)| *key == "configured") {
        let problem = Problem::UnsupportedConfiguredValue { line: i + 1 };
        let rest = &content(i)[after..];
        let span = value_span(rest);
        let current = &rest[span.clone()];
        if continues(i)
            || current.starts_with(['&', '!', '*', '[', '{', '|', '>', '"', '\'', '%', '@', '`'])
        {
            return Err(problem);
        }
        if yaml_bool(current) == Some(value) {
            continue;
        }
        let base = lines[i].start + after;
        if current.is_empty() {
            // `configured:` with no value: keep whatever spacing and comment follow.
            edits.push((base..base, format!(" {literal}")));
        } else {
            edits.push((base + span.start..base + span.end, literal.to_owned()));
        }
    }
    let has_configured = children.iter().any(|(_, key, _)| *key == "configured");

    if !has_configured {
        let after_line = match children.iter().find(|(_, key, _)| *key == "type") {
            Some(&(type_line, _, _)) => {
                // Past the type's value if it spills onto more-indented lines.
                let mut last = type_line;
                for j in type_line + 1..block_end {
                    if content(j).trim_start_matches([' ', '\t']).is_empty() {
                        continue;
                    }
                    if indent(content(j)) <= child_indent {
                        break;
                    }
                    last = j;
                }
                last
            }
            None => sso,
        };
        let newline = match text.find('\n') {
            Some(i) if text[..i].ends_with('\r') => "\r\n",
            _ => "\n",
        };
        let line = lines[after_line];
        let new_line = format!("{}configured: {literal}", " ".repeat(child_indent));
        let insertion = if line.end > line.content_end {
            format!("{new_line}{newline}")
        } else {
            // Keep a missing final newline missing.
            format!("{newline}{new_line}")
        };
        edits.push((line.end..line.end, insertion));
    }

    if edits.is_empty() {
        return Ok(None);
    }
    edits.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(text.len() + 32);
    let mut copied = 0;
    for (range, replacement) in &edits {
        out.push_str(&text[copied..range.start]);
        out.push_str(replacement);
        copied = range.end;
    }
    out.push_str(&text[copied..]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAFANA: &str = "\
# Grafana dashboards
name: grafana
sso:
  type: oidc            # the flow
  redirect_path: /login/generic_oauth
  configured: false     # set by pma-sso
  client:
    scopes: [openid]
";

    fn edited(text: &str, value: bool) -> Option<String> {
        edit(text, value).expect("editable")
    }

    fn manifest(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("grafana.yaml");
        fs::write(&path, text).expect("write fixture");
        path
    }

    fn dir_listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn flipping_configured_changes_only_that_value_and_keeps_its_comment() {
        assert_eq!(
            edited(GRAFANA, true).as_deref(),
            Some(
                GRAFANA
                    .replace("configured: false     #", "configured: true     #")
                    .as_str()
            )
        );
    }

    #[test]
    fn set_configured_rewrites_the_file_and_a_second_call_returns_false() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = manifest(&dir, GRAFANA);
        assert!(set_configured(&path, true).expect("first call"));
        let after_first = fs::read_to_string(&path).expect("read");
        assert_eq!(
            after_first,
            GRAFANA.replace("configured: false ", "configured: true ")
        );
        let inode = fs::metadata(&path).expect("stat").ino();
        assert!(!set_configured(&path, true).expect("second call"));
        assert_eq!(fs::metadata(&path).expect("stat").ino(), inode);
        assert_eq!(fs::read_to_string(&path).expect("read"), after_first);
        assert_eq!(dir_listing(dir.path()), ["grafana.yaml"]);
    }

    #[test]
    fn configured_keys_nested_under_client_or_at_top_level_are_left_alone() {
        let text = "\
configured: false
sso:
  client:
    configured: false
    scopes:
      - openid
  type: oauth
  notes: |
    configured: false
  configured: false
other:
  configured: false
";
        let expected = text.replace(
            "  type: oauth\n  notes: |\n    configured: false\n  configured: false\n",
            "  type: oauth\n  notes: |\n    configured: false\n  configured: true\n",
        );
        assert_ne!(expected, text);
        assert_eq!(edited(text, true), Some(expected));
    }

    #[test]
    fn a_missing_configured_key_is_inserted_after_type_with_its_indentation() {
        let text = "\
name: grafana
sso:
    redirect_path: /login
    type: oidc   # flow
    client:
        configured: false
other: 1
";
        assert_eq!(
            edited(text, true).as_deref(),
            Some(
                "\
name: grafana
sso:
    redirect_path: /login
    type: oidc   # flow
    configured: true
    client:
        configured: false
other: 1
"
            )
        );
    }

    #[test]
    fn an_insertion_skips_a_type_value_that_spans_several_lines() {
        let text = "sso:\n  type: >-\n    oidc\n\n  scopes: x\n";
        assert_eq!(
            edited(text, false).as_deref(),
            Some("sso:\n  type: >-\n    oidc\n  configured: false\n\n  scopes: x\n")
        );
    }

    #[test]
    fn without_a_type_line_configured_becomes_the_first_child() {
        let text = "sso:   # login\n  # comment\n  redirect_path: /x\n";
        assert_eq!(
            edited(text, false).as_deref(),
            Some("sso:   # login\n  configured: false\n  # comment\n  redirect_path: /x\n")
        );
    }

    #[test]
    fn an_empty_configured_value_is_filled_in_before_its_comment() {
        let text = "sso:\n  type: oidc\n  configured:   # unset\n";
        assert_eq!(
            edited(text, true).as_deref(),
            Some("sso:\n  type: oidc\n  configured: true   # unset\n")
        );
    }

    #[test]
    fn other_spellings_of_the_same_boolean_count_as_unchanged() {
        assert_eq!(edited("sso:\n  type: x\n  configured: True\n", true), None);
        assert_eq!(
            edited("sso:\n  type: x\n  configured: FALSE\n", true).as_deref(),
            Some("sso:\n  type: x\n  configured: true\n")
        );
    }

    #[test]
    fn crlf_line_endings_and_a_missing_final_newline_are_kept() {
        let text = "# c\r\nsso:\r\n  type: oidc\r\n  configured: false";
        assert_eq!(
            edited(text, true).as_deref(),
            Some("# c\r\nsso:\r\n  type: oidc\r\n  configured: true")
        );
        let text = "# c\r\nsso:\r\n  type: oidc";
        assert_eq!(
            edited(text, true).as_deref(),
            Some("# c\r\nsso:\r\n  type: oidc\r\n  configured: true")
        );
        let text = "sso:\r\n  type: oidc\r\nname: x\r\n";
        assert_eq!(
            edited(text, false).as_deref(),
            Some("sso:\r\n  type: oidc\r\n  configured: false\r\nname: x\r\n")
        );
    }

    #[test]
    fn a_flow_style_sso_block_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "name: x\nsso: {type: oauth, configured: false}\n";
        let path = manifest(&dir, text);
        let err = set_configured(&path, true).expect_err("flow style");
        assert!(
            matches!(err, ManifestEditError::SsoNotBlockMapping { line: 2, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&path).expect("read"), text);
    }

    #[test]
    fn a_manifest_without_a_usable_sso_block_is_an_error() {
        assert_eq!(
            edit("name: x\n  sso:\n    type: y\n", true),
            Err(Problem::NoSsoBlock)
        );
        assert_eq!(
            edit("sso_extra:\n  type: y\n", true),
            Err(Problem::NoSsoBlock)
        );
        assert_eq!(
            edit("sso:\nname: x\n", true),
            Err(Problem::SsoNotBlockMapping { line: 1 })
        );
        assert_eq!(
            edit("sso:\n  - type\n", true),
            Err(Problem::SsoNotBlockMapping { line: 1 })
        );
        assert_eq!(
            edit("# x\nsso: &anchor\n  type: y\n", true),
            Err(Problem::SsoNotBlockMapping { line: 2 })
        );
    }

    #[test]
    fn a_configured_value_that_is_not_a_plain_scalar_is_refused() {
        for text in [
            "sso:\n  type: x\n  configured: !!bool false\n",
            "sso:\n  type: x\n  configured: \"false\"\n",
            "sso:\n  type: x\n  configured:\n    false\n",
        ] {
            assert_eq!(
                edit(text, true),
                Err(Problem::UnsupportedConfiguredValue { line: 3 }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn quoted_and_non_ascii_keys_are_recognised() {
        assert_eq!(
            edited("\"sso\":\n  'type': x\n  \"configured\": false\n", true).as_deref(),
            Some("\"sso\":\n  'type': x\n  \"configured\": true\n")
        );
        assert_eq!(
            edited("sso:\n  naïve_ключ: ü\n  type: x\n", true).as_deref(),
            Some("sso:\n  naïve_ключ: ü\n  type: x\n  configured: true\n")
        );
    }

    #[test]
    fn the_original_permissions_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = manifest(&dir, GRAFANA);
        fs::set_permissions(&path, Permissions::from_mode(0o664)).expect("chmod");
        assert!(set_configured(&path, true).expect("edit"));
        assert_eq!(
            fs::metadata(&path).expect("stat").permissions().mode() & 0o7777,
            0o664
        );
    }

    #[test]
    fn a_temp_file_left_by_a_killed_edit_is_removed_by_the_next_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = manifest(&dir, GRAFANA);
        let stale = dir.path().join(".grafana.yaml.zWDoFM.tmp");
        fs::write(&stale, "name: half-written\n").expect("write");
        assert!(set_configured(&path, true).expect("edit"));
        assert!(
            !stale.exists(),
            "the killed edit's temp file is still there"
        );
    }

    #[test]
    fn a_missing_manifest_is_a_read_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = set_configured(&dir.path().join("nope.yaml"), true).expect_err("missing");
        assert!(matches!(err, ManifestEditError::Read { .. }), "{err:?}");
    }
}
