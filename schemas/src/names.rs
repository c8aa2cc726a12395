//! Parse, don't validate: names and paths that can only hold valid values.
//!
//! Each type checks its invariant by hand (no regex engine in this crate) and publishes the
//! equivalent ECMA-262 pattern in the generated JSON Schema; the broken-manifest table test
//! holds both to the same verdicts.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $description:expr, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The ECMA-262 pattern published in the JSON Schema.
            pub const PATTERN: &'static str = $pattern;

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                $check(&value)?;
                Ok(Self(value))
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(value: &str) -> Result<Self, String> {
                Self::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $description,
                })
            }
        }
    };
}

string_newtype!(
    /// A service name: a DNS label (lowercase letters, digits, `-`), also the default subdomain
    /// and authentik application slug.
    ServiceName,
    "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$",
    "DNS label: lowercase letters, digits and '-', starting with a letter, at most 63 characters",
    check_service_name
);

string_newtype!(
    /// An authentik application slug (`^[-a-zA-Z0-9_]+$`, minus authentik's reserved slugs).
    Slug,
    "^(?!(authorize|token|device|userinfo|introspect|revoke)$)[-a-zA-Z0-9_]+$",
    "authentik application slug; the reserved words authorize, token, device, userinfo, introspect and revoke are refused",
    check_slug
);

string_newtype!(
    /// An absolute URL path on the service's own host, e.g. `/login/generic_oauth`.
    RedirectPath,
    "^/(?!/)(?!(.*/)?\\.\\.(/|$))[^\\s?#\\\\]*$",
    "absolute path starting with '/', no scheme or host, no '..' segment, no query or fragment",
    check_redirect_path
);

string_newtype!(
    /// A file path relative to the service's package directory; it cannot leave that directory.
    RelPath,
    "^(?![/~])(?!(.*/)?\\.\\.(/|$))[^\\\\\\u0000]+$",
    "path relative to the package directory; no leading '/', no '..' segment, no backslash",
    check_rel_path
);

string_newtype!(
    /// A `.env` key.
    EnvKey,
    "^[A-Za-z_][A-Za-z0-9_]*$",
    "environment variable name",
    check_env_key
);

fn check_service_name(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[bytes.len() - 1] != b'-';
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid service name{}: use lowercase letters, digits and '-', start with a letter, end with a letter or digit, at most 63 characters",
            printable(value),
            non_ascii_named(value)
        ))
    }
}

const RESERVED_SLUGS: [&str; 6] = [
    "authorize",
    "token",
    "device",
    "userinfo",
    "introspect",
    "revoke",
];

fn check_slug(value: &str) -> Result<(), String> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "`{}` is not a valid authentik slug: use letters, digits, '-' and '_'",
            printable(value)
        ));
    }
    if RESERVED_SLUGS.contains(&value) {
        return Err(format!("`{value}` is a slug authentik reserves"));
    }
    Ok(())
}

fn has_dotdot_segment(value: &str) -> bool {
    value.split('/').any(|segment| segment == "..")
}

fn check_redirect_path(value: &str) -> Result<(), String> {
    if value.contains("://") {
        return Err(format!(
            "`{}` has a scheme: give only the path, the host comes from the service's public URL",
            printable(value)
        ));
    }
    if !value.starts_with('/') {
        return Err(format!("`{}` must start with '/'", printable(value)));
    }
    if value.starts_with("//") {
        return Err(format!(
            "`{}` starts with '//', which browsers read as another host",
            printable(value)
        ));
    }
    if has_dotdot_segment(value) {
        return Err(format!("`{}` contains a '..' segment", printable(value)));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '?' | '#' | '\\'))
    {
        return Err(format!(
            "`{}` contains {bad:?}; a redirect path has no whitespace, query, fragment or backslash",
            printable(value)
        ));
    }
    Ok(())
}

fn check_rel_path(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("the path is empty".into());
    }
    if value.starts_with('/') || value.starts_with('~') {
        return Err(format!(
            "`{}` is absolute; give a path relative to the package directory",
            printable(value)
        ));
    }
    if has_dotdot_segment(value) {
        return Err(format!(
            "`{}` contains a '..' segment and could leave the package directory",
            printable(value)
        ));
    }
    if value.contains('\\') || value.contains('\0') {
        return Err(format!(
            "`{}` contains a backslash or NUL",
            printable(value)
        ));
    }
    Ok(())
}

fn check_env_key(value: &str) -> Result<(), String> {
    let mut bytes = value.bytes();
    let valid = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid environment variable name",
            printable(value)
        ))
    }
}

/// Error texts quote the offending value; keep them one short line whatever was given.
/// `value` fit to print inside backticks: control characters escaped, and every non-ASCII
/// character as `\u{…}`, so a look-alike (`grаfana` with a Cyrillic `а`) cannot pass for the
/// name it imitates. [`non_ascii_named`] says which characters they are.
fn printable(value: &str) -> String {
    const MAX: usize = 80;
    let escaped: String = value
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.escape_debug().collect::<String>()
            } else {
                c.escape_unicode().collect()
            }
        })
        .collect();
    if escaped.chars().count() > MAX {
        let cut: String = escaped.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

/// Latin look-alikes an operator may type or paste by accident, with their Unicode names.
const LOOK_ALIKES: [(char, &str); 30] = [
    ('\u{0430}', "CYRILLIC SMALL LETTER A"),
    ('\u{0435}', "CYRILLIC SMALL LETTER IE"),
    ('\u{043E}', "CYRILLIC SMALL LETTER O"),
    ('\u{0440}', "CYRILLIC SMALL LETTER ER"),
    ('\u{0441}', "CYRILLIC SMALL LETTER ES"),
    ('\u{0443}', "CYRILLIC SMALL LETTER U"),
    ('\u{0445}', "CYRILLIC SMALL LETTER HA"),
    ('\u{0456}', "CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I"),
    ('\u{0458}', "CYRILLIC SMALL LETTER JE"),
    ('\u{0455}', "CYRILLIC SMALL LETTER DZE"),
    ('\u{0501}', "CYRILLIC SMALL LETTER KOMI DE"),
    ('\u{0261}', "LATIN SMALL LETTER SCRIPT G"),
    ('\u{0410}', "CYRILLIC CAPITAL LETTER A"),
    ('\u{0415}', "CYRILLIC CAPITAL LETTER IE"),
    ('\u{041E}', "CYRILLIC CAPITAL LETTER O"),
    ('\u{0420}', "CYRILLIC CAPITAL LETTER ER"),
    ('\u{0421}', "CYRILLIC CAPITAL LETTER ES"),
    ('\u{0425}', "CYRILLIC CAPITAL LETTER HA"),
    ('\u{03B1}', "GREEK SMALL LETTER ALPHA"),
    ('\u{03B5}', "GREEK SMALL LETTER EPSILON"),
    ('\u{03B9}', "GREEK SMALL LETTER IOTA"),
    ('\u{03BA}', "GREEK SMALL LETTER KAPPA"),
    ('\u{03BD}', "GREEK SMALL LETTER NU"),
    ('\u{03BF}', "GREEK SMALL LETTER OMICRON"),
    ('\u{03C1}', "GREEK SMALL LETTER RHO"),
    ('\u{03C4}', "GREEK SMALL LETTER TAU"),
    ('\u{03C5}', "GREEK SMALL LETTER UPSILON"),
    ('\u{00A0}', "NO-BREAK SPACE"),
    ('\u{200B}', "ZERO WIDTH SPACE"),
    ('\u{2010}', "HYPHEN"),
];

/// ` (it holds U+0430 CYRILLIC SMALL LETTER A at character 3, …)` for the non-ASCII
/// characters of `value`; empty when it has none.
fn non_ascii_named(value: &str) -> String {
    let found: Vec<String> = value
        .chars()
        .enumerate()
        .filter(|(_, c)| !c.is_ascii())
        .take(5)
        .map(|(i, c)| {
            let name = LOOK_ALIKES
                .iter()
                .find(|(l, _)| *l == c)
                .map_or("a character that is not ASCII", |(_, n)| n);
            format!("U+{:04X} {name} at character {}", c as u32, i + 1)
        })
        .collect();
    if found.is_empty() {
        String::new()
    } else {
        format!(" (it holds {})", found.join(", "))
    }
}

impl ServiceName {
    /// The `.env` key prefix: upper case, `-` mapped to `_`.
    pub fn env_prefix(&self) -> String {
        self.0.to_ascii_uppercase().replace('-', "_")
    }

    pub fn as_slug(&self) -> Slug {
        // A DNS label is always a valid slug unless it is one of authentik's reserved words,
        // which the manifest check reports separately.
        Slug(self.0.clone())
    }
}

impl EnvKey {
    pub fn new_unchecked_from_valid(prefix: &str, suffix: &str) -> EnvKey {
        let key = format!("{prefix}{suffix}");
        debug_assert!(check_env_key(&key).is_ok());
        EnvKey(key)
    }
}

impl RedirectPath {
    pub fn parse(value: &str) -> Result<Self, String> {
        value.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_alike_service_name_is_escaped_and_its_characters_named() {
        let err = "gr\u{0430}fana"
            .parse::<ServiceName>()
            .expect_err("refused");
        assert!(err.starts_with("`gr\\u{430}fana` is not a valid service name (it holds U+0430 CYRILLIC SMALL LETTER A at character 3)"), "{err}");
        assert!(!err.contains('\u{0430}'), "{err}");
        let err = "caf\u{e9}".parse::<ServiceName>().expect_err("refused");
        assert!(
            err.contains("U+00E9 a character that is not ASCII at character 4"),
            "{err}"
        );
    }

    #[test]
    fn redirect_paths_reject_schemes_traversal_and_queries() {
        for bad in [
            "login",
            "https://x.example/cb",
            "//evil.example/cb",
            "/a/../b",
            "/..",
            "/cb?x=1",
            "/cb#f",
            "/c b",
            "",
        ] {
            assert!(RedirectPath::parse(bad).is_err(), "{bad} accepted");
        }
        for good in [
            "/",
            "/oauth2callback",
            "/oidc/callback/",
            "/a..b/c",
            "/x/.../y",
        ] {
            assert!(RedirectPath::parse(good).is_ok(), "{good} rejected");
        }
    }

    #[test]
    fn service_names_are_dns_labels() {
        for bad in ["", "Grafana", "1abc", "abc-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(bad.parse::<ServiceName>().is_err(), "{bad} accepted");
        }
        for good in ["a", "uptime-kuma", "n8n", &"a".repeat(63)] {
            assert!(good.parse::<ServiceName>().is_ok(), "{good} rejected");
        }
    }

    #[test]
    fn env_prefix_maps_dashes_to_underscores() {
        let name: ServiceName = "uptime-kuma".parse().expect("valid");
        assert_eq!(name.env_prefix(), "UPTIME_KUMA");
    }

    #[test]
    fn reserved_slugs_are_refused() {
        assert!("token".parse::<Slug>().is_err());
        assert!("tokens".parse::<Slug>().is_ok());
    }

    #[test]
    fn error_texts_stay_one_short_line() {
        let long = format!("{}\n", "x".repeat(500));
        let err = long.parse::<RelPath>().err();
        assert!(err.is_none(), "a long relative path is fine");
        let err = format!("/{}", "y".repeat(500))
            .parse::<EnvKey>()
            .expect_err("invalid");
        assert!(err.len() < 200 && !err.contains('\n'), "{err}");
    }
}
