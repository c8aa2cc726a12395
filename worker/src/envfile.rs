//! The platform's shared `.env` file.
//!
//! Every service's secrets live in one file that several reconcilers update
//! concurrently, so [`update`] serialises writers on a sidecar lock file,
//! re-reads inside the lock, edits in place and replaces the file atomically.
//! Values are secrets: nothing here logs one, and no error carries one.

use std::borrow::Cow;
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const SECRET_MODE: u32 = 0o600;
const BOM: &str = "\u{feff}";

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} line {line}: not valid UTF-8", .path.display())]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("{} line {line}: {problem}", .path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: LineProblem,
    },
    #[error("cannot set {key:?}: not a valid variable name")]
    InvalidKey { key: String },
    #[error("cannot set {key}: the value contains a NUL byte")]
    NulInValue { key: String },
    #[error("cannot lock {}: {source}", .path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the replacement for {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot give the replacement for {} its original owner: {source}", .path.display())]
    KeepOwner {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot replace {}: {source}", .path.display())]
    Replace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("replaced {} but cannot sync its directory: {source}", .path.display())]
    SyncDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the background .env update did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What is wrong with a line; deliberately carries none of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("expected KEY=VALUE but the line has no `=`")]
    MissingEquals,
    #[error(
        "the variable name is invalid (letters, digits, `_`, `.`, `-`; not starting with a digit)"
    )]
    InvalidName,
    #[error("a quoted value is never closed")]
    UnterminatedQuote,
    #[error("unexpected text after the closing quote")]
    TextAfterQuote,
}

/// A parsed `.env` file. Duplicate keys: the last one wins, as in compose.
#[derive(Clone, Default)]
pub struct EnvFile {
    vars: Vec<(String, String)>,
}

impl EnvFile {
    /// Reads and parses `path`; a missing file is an empty `EnvFile`.
    pub fn read(path: &Path) -> Result<EnvFile, EnvError> {
        let text = read_text(path)?.map(|(text, _)| text).unwrap_or_default();
        let entries = parse(&text).map_err(|(line, problem)| EnvError::Malformed {
            path: path.to_owned(),
            line,
            problem,
        })?;
        let mut vars: Vec<(String, String)> = Vec::with_capacity(entries.len());
        // Later assignments win, in the first one's place. An index, not a scan per line: a
        // platform of a thousand services has a `.env` of thousands of lines, read per check.
        let mut at: std::collections::HashMap<String, usize> =
            std::collections::HashMap::with_capacity(entries.len());
        for entry in entries {
            match at.get(&entry.key) {
                Some(&i) => vars[i].1 = entry.value,
                None => {
                    at.insert(entry.key.clone(), vars.len());
                    vars.push((entry.key, entry.value));
                }
            }
        }
        Ok(EnvFile { vars })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Keys in the order they first appear in the file.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|(k, _)| k.as_str())
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

impl fmt::Debug for EnvFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvFile")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What an [`update`] did. Empty `changed_keys` means the file was not written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateReport {
    pub changed_keys: Vec<String>,
}

impl UpdateReport {
    /// True when every change was already in place and nothing was written.
    pub fn is_noop(&self) -> bool {
        self.changed_keys.is_empty()
    }
}

/// Sets (`Some`) or removes (`None`) keys in the `.env` file at `path`.
///
/// Serialised against other writers by an exclusive lock on `<path>.lock`;
/// the file is re-read inside the lock, so keys written concurrently by others
/// survive. Existing entries are rewritten where they stand, new keys are
/// appended, every other byte is kept. The replacement is written atomically
/// with mode 0600 and the original owner. A key listed twice takes its last
/// change. Nothing is written when nothing changes.
pub fn update(path: &Path, changes: &[(&str, Option<&str>)]) -> Result<UpdateReport, EnvError> {
    let mut wanted: Vec<(&str, Option<&str>)> = Vec::with_capacity(changes.len());
    for &(key, value) in changes {
        if !is_valid_key(key) {
            return Err(EnvError::InvalidKey {
                key: key.to_owned(),
            });
        }
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(EnvError::NulInValue {
                key: key.to_owned(),
            });
        }
        match wanted.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => wanted.push((key, value)),
        }
    }

    // Renaming over a symlink would replace the link, so edit its target.
    let target = follow_symlink(path);
    let _lock = lock(&target)?;
    let existing = read_text(&target)?;
    let (text, metadata) = match &existing {
        Some((text, metadata)) => (text.as_str(), Some(metadata)),
        None => ("", None),
    };
    let entries = parse(text).map_err(|(line, problem)| EnvError::Malformed {
        path: target.clone(),
        line,
        problem,
    })?;
    let (new_text, changed_keys) = apply(text, &entries, &wanted);
    if changed_keys.is_empty() {
        return Ok(UpdateReport::default());
    }
    let owner = metadata.map(|m| (m.uid(), m.gid()));
    replace_file(&target, new_text.as_bytes(), owner)?;
    tracing::debug!(path = %target.display(), keys = ?changed_keys, "updated .env file");
    Ok(UpdateReport { changed_keys })
}

/// [`update`] on the blocking pool, for async callers.
pub async fn update_async(
    path: PathBuf,
    changes: Vec<(String, Option<String>)>,
) -> Result<UpdateReport, EnvError> {
    tokio::task::spawn_blocking(move || {
        let borrowed: Vec<(&str, Option<&str>)> = changes
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_deref()))
            .collect();
        update(&path, &borrowed)
    })
    .await?
}

fn follow_symlink(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
        }
        _ => path.to_owned(),
    }
}

fn lock(target: &Path) -> Result<File, EnvError> {
    let mut name = target.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let lock_err = |source| EnvError::Lock {
        path: lock_path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(SECRET_MODE)
        .open(&lock_path)
        .map_err(lock_err)?;
    file.lock().map_err(lock_err)?;
    Ok(file)
}

/// The file's text and metadata, or `None` when it does not exist.
fn read_text(path: &Path) -> Result<Option<(String, Metadata)>, EnvError> {
    let read_err = |source| EnvError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let metadata = file.metadata().map_err(read_err)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_err)?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some((text, metadata))),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            Err(EnvError::NotUtf8 {
                path: path.to_owned(),
                line,
            })
        }
    }
}

/// Atomically replace `path` with `contents`, mode 0600, keeping the current owner. For
/// files that may hold secrets (rendered service settings).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), EnvError> {
    let target = follow_symlink(path);
    let owner = fs::metadata(&target).ok().map(|m| (m.uid(), m.gid()));
    replace_file(&target, contents, owner)
}

/// Removes the temp files (`<prefix>XXXXXX.tmp`, as [`replace_file`] names them) that a
/// writer killed between creating its temp file and renaming it left beside the target: copies
/// of secrets that nothing else would ever remove. Writers of one target are serialised (the
/// `.env` lock; the pipeline's per-service lock for delivered files and manifests), so none of
/// these belongs to a live writer; if an unserialised one did, its rename fails and `target`
/// stays whole.
pub(crate) fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(random) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(".tmp"))
        else {
            continue;
        };
        if random.len() == 6 && random.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `contents` to a temp file beside `target` and renames it over
/// `target`. On failure the temp file is removed and `target` is untouched.
fn replace_file(target: &Path, contents: &[u8], owner: Option<(u32, u32)>) -> Result<(), EnvError> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map_or_else(|| ".env".into(), |n| n.to_string_lossy());
    let prefix = format!(".{name}.");
    let write_err = |source| EnvError::Write {
        path: target.to_owned(),
        source,
    };
    remove_stale_temps(dir, &prefix);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(Permissions::from_mode(SECRET_MODE))
        .tempfile_in(dir)
        .map_err(write_err)?;
    if let Some((uid, gid)) = owner {
        let current = tmp.as_file().metadata().map_err(write_err)?;
        if (current.uid(), current.gid()) != (uid, gid) {
            // Another owner may be the one that reads the file (compose).
            std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid)).map_err(|source| {
                EnvError::KeepOwner {
                    path: target.to_owned(),
                    source,
                }
            })?;
        }
    }
    // The umask may have narrowed the creation mode; make it exact before any secret lands.
    tmp.as_file()
        .set_permissions(Permissions::from_mode(SECRET_MODE))
        .map_err(write_err)?;
    tmp.write_all(contents).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(target).map_err(|e| EnvError::Replace {
        path: target.to_owned(),
        source: e.error,
    })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| EnvError::SyncDir {
            path: target.to_owned(),
            source,
        })
}

/// One `KEY=VALUE` statement and where it sits in the text.
struct Entry {
    key: String,
    value: String,
    /// First byte of the line the entry starts on.
    line_start: usize,
    /// The value as written, quotes included.
    value_span: Range<usize>,
    /// Just past the newline that ends the entry's last line.
    end: usize,
}

fn is_valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(is_key_byte)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0b | 0x0c)
}

fn skip_blanks(b: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && is_blank(b[i]) {
        i += 1;
    }
    i
}

/// The end of the line starting at `from`: (index of its `\n` or the text's
/// end, index where its content ends, i.e. before a `\r\n`).
fn line_bounds(b: &[u8], from: usize) -> (usize, usize) {
    let eol = b[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |i| from + i);
    let content_end = if eol > from && b[eol - 1] == b'\r' {
        eol - 1
    } else {
        eol
    };
    (eol, content_end)
}

/// Parses dotenv text as docker compose does, except that `$VAR`
/// interpolation is not performed. Errors are (1-based line, problem).
fn parse(text: &str) -> Result<Vec<Entry>, (usize, LineProblem)> {
    let b = text.as_bytes();
    let mut entries = Vec::new();
    let mut pos = if text.starts_with(BOM) { BOM.len() } else { 0 };
    let mut line = 1;
    while pos < b.len() {
        let line_start = pos;
        let (eol, end) = line_bounds(b, pos);
        let mut i = skip_blanks(b, pos, end);
        if i == end || b[i] == b'#' {
            pos = eol + 1;
            line += 1;
            continue;
        }
        if b[i..end].starts_with(b"export") && i + 6 < end && is_blank(b[i + 6]) {
            let after = skip_blanks(b, i + 6, end);
            // `export = x` assigns a variable named `export`.
            if after < end && b[after] != b'=' {
                i = after;
            }
        }
        let key_start = i;
        while i < end && is_key_byte(b[i]) {
            i += 1;
        }
        let key = &text[key_start..i];
        let eq = skip_blanks(b, i, end);
        if eq == end || b[eq] != b'=' {
            let problem = if b[key_start..end].contains(&b'=') {
                LineProblem::InvalidName
            } else {
                LineProblem::MissingEquals
            };
            return Err((line, problem));
        }
        if !is_valid_key(key) {
            return Err((line, LineProblem::InvalidName));
        }
        let v = skip_blanks(b, eq + 1, end);
        let value = if v < end && matches!(b[v], b'"' | b'\'') {
            quoted_value(text, v, line)?
        } else {
            let raw = &text[v..end];
            let raw = raw.find(" #").map_or(raw, |k| &raw[..k]).trim_end();
            ValueText {
                value: raw.to_owned(),
                span: v..v + raw.len(),
                eol,
                lines: 1,
            }
        };
        let next = (value.eol + 1).min(b.len());
        entries.push(Entry {
            key: key.to_owned(),
            value: value.value,
            line_start,
            value_span: value.span,
            end: next,
        });
        pos = next;
        line += value.lines;
    }
    Ok(entries)
}

/// A value as parsed, and where it sits.
struct ValueText {
    value: String,
    /// As written, quotes included.
    span: Range<usize>,
    /// The `\n` (or end of text) ending the value's last line.
    eol: usize,
    /// How many lines the value spans.
    lines: usize,
}

/// The quoted value opening at `open`; it may span lines.
fn quoted_value(text: &str, open: usize, line: usize) -> Result<ValueText, (usize, LineProblem)> {
    let b = text.as_bytes();
    let quote = b[open];
    let mut newlines = 0;
    let mut j = open + 1;
    // As compose does: a quote right after a backslash never closes.
    let close = loop {
        match b.get(j) {
            None => return Err((line, LineProblem::UnterminatedQuote)),
            Some(&c) if c == quote && b[j - 1] != b'\\' => break j,
            Some(b'\n') => newlines += 1,
            Some(_) => {}
        }
        j += 1;
    };
    let (eol, content_end) = line_bounds(b, close + 1);
    let rest = skip_blanks(b, close + 1, content_end);
    if rest < content_end && b[rest] != b'#' {
        return Err((line + newlines, LineProblem::TextAfterQuote));
    }
    let inner = &text[open + 1..close];
    let value = if quote == b'"' {
        unescape_double_quoted(inner)
    } else {
        inner.to_owned()
    };
    Ok(ValueText {
        value,
        span: open..close + 1,
        eol,
        lines: newlines + 1,
    })
}

/// Compose's double-quote escapes: `\a \b \f \n \r \t \v \$ \" \\` and `\0ddd`
/// octal; any other backslash is kept literally.
fn unescape_double_quoted(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(k) = rest.find('\\') {
        out.push_str(&rest[..k]);
        let esc = &rest[k + 1..];
        let (ch, len) = match esc.as_bytes().first() {
            Some(b'a') => (Some('\x07'), 1),
            Some(b'b') => (Some('\x08'), 1),
            Some(b'f') => (Some('\x0c'), 1),
            Some(b'n') => (Some('\n'), 1),
            Some(b'r') => (Some('\r'), 1),
            Some(b't') => (Some('\t'), 1),
            Some(b'v') => (Some('\x0b'), 1),
            Some(b'$') => (Some('$'), 1),
            Some(b'"') => (Some('"'), 1),
            Some(b'\\') => (Some('\\'), 1),
            Some(b'0') => {
                let digits = esc.as_bytes()[1..]
                    .iter()
                    .take(3)
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                let octal = &esc[1..1 + digits];
                let ch = (digits == 3)
                    .then(|| u8::from_str_radix(octal, 8).ok())
                    .flatten()
                    .map(char::from);
                (ch, 1 + digits)
            }
            _ => (None, 0),
        };
        match ch {
            Some(c) => out.push(c),
            None => {
                out.push('\\');
                out.push_str(&esc[..len]);
            }
        }
        rest = &esc[len..];
    }
    out.push_str(rest);
    out
}

fn is_safe_unquoted(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_./:@,+=-".contains(&b)
}

/// The value as it is written after `KEY=`; `parse` gives back exactly `value`.
pub fn encode_value(value: &str) -> Cow<'_, str> {
    if value.bytes().all(is_safe_unquoted) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // Compose never treats a quote right after a backslash as closing,
            // so a final backslash is written as an octal escape instead.
            '\\' if chars.peek().is_none() => out.push_str("\\0134"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            // Compose interpolates `$` in double quotes.
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// The edited text and the keys whose bytes changed, in `wanted` order.
fn apply(text: &str, entries: &[Entry], wanted: &[(&str, Option<&str>)]) -> (String, Vec<String>) {
    let mut edits: Vec<(Range<usize>, Cow<'_, str>)> = Vec::new();
    let mut appended = String::new();
    let mut changed = Vec::new();
    let newline = match text.find('\n') {
        Some(i) if text[..i].ends_with('\r') => "\r\n",
        _ => "\n",
    };
    for &(key, new_value) in wanted {
        let mut occurrences = entries.iter().filter(|e| e.key == key).peekable();
        let exists = occurrences.peek().is_some();
        match new_value {
            None if exists => {
                edits.extend(occurrences.map(|e| (e.line_start..e.end, Cow::Borrowed(""))));
            }
            None => continue,
            Some(value) if !exists => {
                appended.push_str(key);
                appended.push('=');
                appended.push_str(&encode_value(value));
                appended.push_str(newline);
            }
            Some(value) => {
                // Every occurrence, so no stale copy of a secret lingers.
                let before = edits.len();
                edits.extend(
                    occurrences
                        .filter(|e| e.value != value)
                        .map(|e| (e.value_span.clone(), encode_value(value))),
                );
                if edits.len() == before {
                    continue;
                }
            }
        }
        changed.push(key.to_owned());
    }

    edits.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(text.len() + appended.len());
    let mut copied = 0;
    for (range, replacement) in &edits {
        out.push_str(&text[copied..range.start]);
        out.push_str(replacement);
        copied = range.end;
    }
    out.push_str(&text[copied..]);
    if !appended.is_empty() {
        if !out.is_empty() && out != BOM && !out.ends_with('\n') {
            out.push_str(newline);
        }
        out.push_str(&appended);
    }
    (out, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::sync::Arc;

    fn env_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join(".env")
    }

    fn write(path: &Path, text: &str) {
        fs::write(path, text).expect("write fixture");
    }

    fn read_string(path: &Path) -> String {
        fs::read_to_string(path).expect("read back")
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
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

    fn parse_ok(text: &str) -> Vec<(String, String)> {
        match parse(text) {
            Ok(entries) => entries.into_iter().map(|e| (e.key, e.value)).collect(),
            Err((line, problem)) => panic!("line {line}: {problem}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn read_parses_dotenv_syntax_the_way_compose_does() {
        let text = concat!(
            "\u{feff}# header\n",
            "\n",
            "PLAIN=abc\n",
            "  export EXPORTED=1\n",
            "SPACED = padded value   \n",
            "INLINE=value # a comment\n",
            "HASH=a#b\n",
            "EMPTY=\n",
            "SINGLE='lit $HOME \\n # kept'\n",
            "DOUBLE=\"tab\\tnl\\nq\\\" bs\\\\ \\$HOME \\q \\0101\" # comment\n",
            "MULTI=\"line one\n",
            "line two\"\n",
            "CRLF=value\r\n",
            "dotted.key-name=x\n",
            "export=is a key\n",
            "PLAIN=last wins\n",
        );
        assert_eq!(
            parse_ok(text),
            pairs(&[
                ("PLAIN", "abc"),
                ("EXPORTED", "1"),
                ("SPACED", "padded value"),
                ("INLINE", "value"),
                ("HASH", "a#b"),
                ("EMPTY", ""),
                ("SINGLE", "lit $HOME \\n # kept"),
                ("DOUBLE", "tab\tnl\nq\" bs\\ $HOME \\q A"),
                ("MULTI", "line one\nline two"),
                ("CRLF", "value"),
                ("dotted.key-name", "x"),
                ("export", "is a key"),
                ("PLAIN", "last wins"),
            ])
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        write(&path, text);
        let env = EnvFile::read(&path).expect("read");
        assert_eq!(env.get("PLAIN"), Some("last wins"));
        assert_eq!(env.keys().next(), Some("PLAIN"));
        assert_eq!(env.len(), 12);
        assert!(env.contains("EMPTY"));
        assert!(!env.contains("MISSING"));
    }

    #[test]
    fn a_missing_file_reads_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = EnvFile::read(&env_path(&dir)).expect("missing file is fine");
        assert!(env.is_empty());
    }

    #[test]
    fn debug_output_shows_keys_but_never_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        write(&path, "API_TOKEN=sk-live-4f9a8b7c\n");
        let shown = format!("{:?}", EnvFile::read(&path).expect("read"));
        assert!(shown.contains("API_TOKEN"), "{shown}");
        assert!(!shown.contains("sk-live"), "{shown}");
    }

    #[test]
    fn a_malformed_line_is_reported_by_number_without_its_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        for (text, problem) in [
            (
                "A=1\n# ok\nDB PASSWORD=sk-live-4f9a8b7c\n",
                LineProblem::InvalidName,
            ),
            ("A=1\n\nsk-live-4f9a8b7c\n", LineProblem::MissingEquals),
            (
                "A=1\n\nTOKEN=\"sk-live-4f9a8b7c\nB=2\n",
                LineProblem::UnterminatedQuote,
            ),
            (
                "A=1\n\nTOKEN='sk-live' 4f9a8b7c\n",
                LineProblem::TextAfterQuote,
            ),
            ("A=1\n\n9TOKEN=sk-live-4f9a8b7c\n", LineProblem::InvalidName),
        ] {
            write(&path, text);
            let err = EnvFile::read(&path).expect_err(text);
            assert!(
                matches!(err, EnvError::Malformed { line: 3, problem: p, .. } if p == problem),
                "{text:?}: {err:?}"
            );
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(
                    shown.contains("line 3") || shown.contains("line: 3"),
                    "{shown}"
                );
                assert!(!shown.contains("sk-live"), "{shown}");
                assert!(!shown.contains("4f9a8b7c"), "{shown}");
            }
        }
    }

    #[test]
    fn a_line_number_counts_the_lines_of_earlier_multiline_values() {
        let err = parse("A=\"one\ntwo\"\nB=\"x\" y\n").err();
        assert_eq!(err, Some((3, LineProblem::TextAfterQuote)));
    }

    #[test]
    fn invalid_utf8_is_reported_by_line_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        fs::write(&path, b"A=1\nB=\xff\xfe\n").expect("write");
        let err = EnvFile::read(&path).expect_err("not utf-8");
        assert!(matches!(err, EnvError::NotUtf8 { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn an_update_preserves_comments_blank_lines_order_and_export_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        write(
            &path,
            concat!(
                "# Platform secrets\n",
                "\n",
                "export GRAFANA_CLIENT_ID=old-id   # from authentik\n",
                "   # indented comment\n",
                "UNTOUCHED='single quoted' \n",
                "GRAFANA_CLIENT_SECRET=\"old secret\"\n",
                "\n",
                "\n",
                "TAIL=kept",
            ),
        );
        let report = update(
            &path,
            &[
                ("GRAFANA_CLIENT_SECRET", Some("new-secret")),
                ("GRAFANA_CLIENT_ID", Some("new id")),
                ("NEW_KEY", Some("fresh")),
            ],
        )
        .expect("update");
        assert_eq!(
            report.changed_keys,
            ["GRAFANA_CLIENT_SECRET", "GRAFANA_CLIENT_ID", "NEW_KEY"]
        );
        assert_eq!(
            read_string(&path),
            concat!(
                "# Platform secrets\n",
                "\n",
                "export GRAFANA_CLIENT_ID=\"new id\"   # from authentik\n",
                "   # indented comment\n",
                "UNTOUCHED='single quoted' \n",
                "GRAFANA_CLIENT_SECRET=new-secret\n",
                "\n",
                "\n",
                "TAIL=kept\n",
                "NEW_KEY=fresh\n",
            )
        );
    }

    #[test]
    fn crlf_files_keep_their_line_endings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        write(&path, "# c\r\nA=1\r\nB=2\r\n");
        update(&path, &[("A", Some("x y")), ("C", Some("3"))]).expect("update");
        assert_eq!(read_string(&path), "# c\r\nA=\"x y\"\r\nB=2\r\nC=3\r\n");
        assert_eq!(EnvFile::read(&path).expect("read").get("A"), Some("x y"));
    }

    #[test]
    fn nasty_values_round_trip_through_write_and_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        let nasty = [
            "",
            " ",
            "with spaces",
            "  leading and trailing  ",
            "hash # inside",
            "#start",
            "ends with #",
            "'single'",
            "\"double\"",
            "mixed ' and \"",
            "$HOME ${VAR} $$ \\$",
            "back\\slash",
            "ends with backslash\\",
            "\\",
            "\\\\",
            "\\\"",
            "line\nbreak\n",
            "\r\n",
            "tab\there",
            "unicode: héllo wörld ✓ 🦀 \u{a0}\u{85}\u{2028}",
            "\\0134 \\n literal escapes",
            "a=b=c",
            "export X=1",
            "control \x07\x1b[0m",
        ];
        // First append each key, then rewrite it in place over a different value.
        for (i, value) in nasty.iter().enumerate() {
            update(&path, &[(format!("K{i}").as_str(), Some(*value))]).expect("append");
        }
        let env = EnvFile::read(&path).expect("read");
        for (i, value) in nasty.iter().enumerate() {
            assert_eq!(env.get(&format!("K{i}")), Some(*value), "K{i}");
        }
        for (i, value) in nasty.iter().rev().enumerate() {
            update(&path, &[(format!("K{i}").as_str(), Some(*value))]).expect("rewrite");
        }
        let env = EnvFile::read(&path).expect("read");
        for (i, value) in nasty.iter().rev().enumerate() {
            assert_eq!(env.get(&format!("K{i}")), Some(*value), "K{i}");
        }
        assert_eq!(env.len(), nasty.len());
    }

    #[test]
    fn any_string_without_nul_round_trips_through_encode_and_parse() {
        const POOL: &[char] = &[
            'a', 'Z', '0', ' ', '\t', '\n', '\r', '#', '"', '\'', '\\', '$', '{', '}', '=', '0',
            '1', '3', '4', 'n', 'é', '✓', '\u{a0}', '\u{85}', '\x0b', '\x0c', '\x07',
        ];
        let mut rng = StdRng::seed_from_u64(0x5eed);
        for _ in 0..5000 {
            let len = rng.random_range(0..12);
            let value: String = (0..len)
                .map(|_| POOL[rng.random_range(0..POOL.len())])
                .collect();
            let line = format!("K={}\nNEXT=1\n", encode_value(&value));
            assert_eq!(
                parse_ok(&line),
                pairs(&[("K", &value), ("NEXT", "1")]),
                "{value:?}"
            );
        }
    }

    #[test]
    fn safe_values_are_written_unquoted_and_others_double_quoted() {
        assert_eq!(encode_value("a-Z_0.9/:@,+=b"), "a-Z_0.9/:@,+=b");
        assert_eq!(encode_value(""), "");
        assert_eq!(encode_value("a b"), "\"a b\"");
        assert_eq!(encode_value("$x\\y\\"), "\"\\$x\\\\y\\0134\"");
    }

    #[test]
    fn removing_a_key_deletes_its_lines_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        write(
            &path,
            "# keep\nA=1\nGONE=\"multi\nline\" # old\nB=2\nGONE=dup\nC=3",
        );
        let report = update(&path, &[("GONE", None), ("NEVER_THERE", None)]).expect("update");
        assert_eq!(report.changed_keys, ["GONE"]);
        assert_eq!(read_string(&path), "# keep\nA=1\nB=2\nC=3");
        assert!(!EnvFile::read(&path).expect("read").contains("GONE"));
    }

    #[test]
    fn setting_a_duplicated_key_rewrites_every_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        write(&path, "K=old\nX=1\nK=older\n");
        update(&path, &[("K", Some("new"))]).expect("update");
        assert_eq!(read_string(&path), "K=new\nX=1\nK=new\n");
    }

    #[test]
    fn the_last_change_to_a_key_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        update(
            &path,
            &[("K", Some("1")), ("J", Some("j")), ("K", Some("2"))],
        )
        .expect("update");
        assert_eq!(read_string(&path), "K=2\nJ=j\n");
    }

    #[test]
    fn updating_a_missing_file_creates_it_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        update(&path, &[("SECRET", Some("s3cret"))]).expect("update");
        assert_eq!(read_string(&path), "SECRET=s3cret\n");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(dir_listing(dir.path()), [".env", ".env.lock"]);
    }

    #[test]
    fn removing_from_a_missing_file_creates_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        let report = update(&path, &[("SECRET", None)]).expect("update");
        assert!(report.is_noop());
        assert!(!path.exists());
    }

    #[test]
    fn an_update_tightens_a_0644_file_to_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        write(&path, "A=1\n");
        fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        update(&path, &[("A", Some("2"))]).expect("update");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_no_op_update_does_not_rewrite_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        write(&path, "A=1\nB='two words'\n");
        let before = fs::metadata(&path).expect("stat");
        let report = update(
            &path,
            &[("A", Some("1")), ("B", Some("two words")), ("C", None)],
        )
        .expect("update");
        assert!(report.is_noop());
        let after = fs::metadata(&path).expect("stat");
        assert_eq!(after.ino(), before.ino());
        assert_eq!(after.modified().ok(), before.modified().ok());
        assert_eq!(read_string(&path), "A=1\nB='two words'\n");
    }

    #[test]
    fn a_temp_file_left_by_a_killed_writer_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        write(&path, "A=1\n");
        // What a writer SIGKILLed before its rename leaves: a secret-holding temp file.
        write(&dir.path().join("..env.Xk3q9Z.tmp"), "A=1\nSECRET=s\n");
        write(&dir.path().join("..sso.env.a1B2c3.tmp"), "SECRET=s\n");
        write(&dir.path().join(".env.bak"), "kept\n");
        write(&dir.path().join("notes.tmp"), "kept\n");
        update(&path, &[("B", Some("2"))]).expect("update");
        assert_eq!(
            dir_listing(dir.path()),
            [
                "..sso.env.a1B2c3.tmp",
                ".env",
                ".env.bak",
                ".env.lock",
                "notes.tmp"
            ]
        );
        write_private(&dir.path().join(".sso.env"), b"X=1\n").expect("write");
        assert_eq!(
            dir_listing(dir.path()),
            [".env", ".env.bak", ".env.lock", ".sso.env", "notes.tmp"]
        );
    }

    #[test]
    fn a_malformed_file_is_never_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        let text = "A=1\nnot a line\n";
        write(&path, text);
        let err = update(&path, &[("B", Some("2"))]).expect_err("malformed");
        assert!(
            matches!(err, EnvError::Malformed { line: 2, .. }),
            "{err:?}"
        );
        assert_eq!(read_string(&path), text);
        assert_eq!(dir_listing(dir.path()), [".env", ".env.lock"]);
    }

    #[test]
    fn invalid_keys_and_nul_values_are_refused_before_touching_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        for key in ["", "1ABC", "HAS SPACE", "A=B", "ÜBER"] {
            let err = update(&path, &[(key, Some("v"))]).expect_err(key);
            assert!(matches!(err, EnvError::InvalidKey { .. }), "{err:?}");
        }
        let err = update(&path, &[("K", Some("a\0secret"))]).expect_err("nul");
        assert!(matches!(err, EnvError::NulInValue { .. }), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(dir_listing(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_replace_leaves_no_temp_file_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Renaming a file over a non-empty directory fails after the temp file is written.
        let target = dir.path().join("occupied");
        fs::create_dir(&target).expect("mkdir");
        write(&target.join("inside"), "x");
        let err = replace_file(&target, b"K=v\n", None).expect_err("rename over a directory");
        assert!(matches!(err, EnvError::Replace { .. }), "{err:?}");
        assert_eq!(dir_listing(dir.path()), ["occupied"]);
        assert_eq!(dir_listing(&target), ["inside"]);
    }

    #[test]
    fn an_update_through_a_symlink_edits_the_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.env");
        let link = env_path(&dir);
        write(&real, "A=1\n");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        update(&link, &[("B", Some("2"))]).expect("update");
        assert!(
            fs::symlink_metadata(&link)
                .expect("lstat")
                .file_type()
                .is_symlink()
        );
        assert_eq!(read_string(&real), "A=1\nB=2\n");
    }

    #[test]
    fn sixteen_threads_writing_their_own_keys_lose_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Arc::new(env_path(&dir));
        write(&path, "# shared\nEXISTING=kept\n");
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let path = Arc::clone(&path);
                std::thread::spawn(move || {
                    let key = format!("SERVICE_{t}_SECRET");
                    for i in 0..20 {
                        let value = format!("value {i} of #{t}");
                        update(&path, &[(key.as_str(), Some(value.as_str()))])
                            .expect("concurrent update");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("writer thread");
        }
        let env = EnvFile::read(&path).expect("file parses");
        for t in 0..16 {
            let expected = format!("value 19 of #{t}");
            assert_eq!(
                env.get(&format!("SERVICE_{t}_SECRET")),
                Some(expected.as_str())
            );
        }
        assert_eq!(env.get("EXISTING"), Some("kept"));
        assert_eq!(env.len(), 17);
        assert!(read_string(&path).starts_with("# shared\nEXISTING=kept\n"));
        assert_eq!(dir_listing(dir.path()), [".env", ".env.lock"]);
    }

    #[tokio::test]
    async fn update_async_applies_changes_on_the_blocking_pool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = env_path(&dir);
        let report = update_async(
            path.clone(),
            vec![("A".into(), Some("1".into())), ("B".into(), None)],
        )
        .await
        .expect("update");
        assert_eq!(report.changed_keys, ["A"]);
        assert_eq!(read_string(&path), "A=1\n");
    }
}
