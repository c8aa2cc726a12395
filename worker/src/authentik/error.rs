use std::collections::BTreeMap;
use std::time::Duration;

/// The `Transport` problem of a request that never reached authentik.
pub(crate) const NOT_CONNECTED: &str = "could not connect to authentik";

/// Field → messages, as authentik's (DRF's) 400 bodies carry them.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// authentik API failures, sorted by what a caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum AuthentikError {
    #[error(
        "{endpoint}: authentik rejected the request: {}",
        render_fields(fields)
    )]
    BadRequest {
        endpoint: String,
        fields: FieldErrors,
    },
    /// authentik answers 403 for every auth failure (bad, expired or missing token, or missing
    /// permission); retrying cannot help.
    #[error("{endpoint}: forbidden ({detail}); check AUTHENTIK_TOKEN and its permissions")]
    Forbidden { endpoint: String, detail: String },
    #[error("{endpoint}: not found")]
    NotFound { endpoint: String },
    #[error("{endpoint}: rate limited{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        endpoint: String,
        retry_after: Option<Duration>,
    },
    #[error("{endpoint}: authentik server error (HTTP {status})")]
    Server { endpoint: String, status: u16 },
    #[error("{endpoint}: unexpected HTTP {status}")]
    Unexpected { endpoint: String, status: u16 },
    #[error("{endpoint}: {problem}")]
    Transport { endpoint: String, problem: String },
    #[error("{endpoint}: unexpected response: {problem}")]
    Decode { endpoint: String, problem: String },
}

impl AuthentikError {
    pub(crate) fn transport(endpoint: &str, error: &reqwest::Error) -> AuthentikError {
        // reqwest's Display names the URL, which may carry an internal host; keep the kind only.
        let problem = if error.is_timeout() {
            "timed out".to_owned()
        } else if error.is_connect() {
            NOT_CONNECTED.to_owned()
        } else if error.is_body() || error.is_decode() {
            "connection broke while reading the response".to_owned()
        } else if error.is_request() {
            "request failed (connection reset or closed)".to_owned()
        } else {
            "transport error".to_owned()
        };
        AuthentikError::Transport {
            endpoint: endpoint.to_owned(),
            problem,
        }
    }

    pub(crate) fn from_status(
        endpoint: String,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> AuthentikError {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let detail = json
            .as_ref()
            .and_then(|v| v.get("detail"))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        match status {
            400 => AuthentikError::BadRequest {
                endpoint,
                fields: json.as_ref().map(field_errors).unwrap_or_default(),
            },
            // authentik never sends 401, but a proxy in front of it might.
            401 | 403 => AuthentikError::Forbidden { endpoint, detail },
            404 => AuthentikError::NotFound { endpoint },
            429 => AuthentikError::RateLimited {
                endpoint,
                retry_after,
            },
            500..=599 => AuthentikError::Server { endpoint, status },
            _ => AuthentikError::Unexpected { endpoint, status },
        }
    }

    /// Worth retrying later: the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AuthentikError::RateLimited { .. }
                | AuthentikError::Server { .. }
                | AuthentikError::Transport { .. }
        )
    }

    /// authentik's view never ran: the connection was never made, or DRF's throttle refused
    /// the request before the view. Sending a create again is then safe.
    pub fn certainly_not_applied(&self) -> bool {
        match self {
            AuthentikError::RateLimited { .. } => true,
            AuthentikError::Transport { problem, .. } => problem == NOT_CONNECTED,
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthentikError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The messages a 400 carries for `field`.
    pub fn field(&self, field: &str) -> Option<&[String]> {
        match self {
            AuthentikError::BadRequest { fields, .. } => fields.get(field).map(Vec::as_slice),
            _ => None,
        }
    }
}

/// Flatten DRF's error body (`{"field": ["msg"]}`, nested lists for list items) into
/// `field` → messages, with nested paths such as `redirect_uris[0].url`.
fn field_errors(value: &serde_json::Value) -> FieldErrors {
    let mut out = FieldErrors::new();
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut FieldErrors) {
        match value {
            serde_json::Value::String(s) => out
                .entry(if prefix.is_empty() {
                    "non_field_errors".into()
                } else {
                    prefix.to_owned()
                })
                .or_default()
                .push(short(s)),
            serde_json::Value::Array(items) => {
                let all_strings = items.iter().all(|i| i.is_string());
                for (i, item) in items.iter().enumerate() {
                    if all_strings {
                        walk(prefix, item, out);
                    } else {
                        walk(&format!("{prefix}[{i}]"), item, out);
                    }
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, item, out);
                }
            }
            other => out
                .entry(prefix.to_owned())
                .or_default()
                .push(short(&other.to_string())),
        }
    }
    walk("", value, &mut out);
    out
}

fn short(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() > MAX {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    } else {
        text.to_owned()
    }
}

fn render_fields(fields: &FieldErrors) -> String {
    if fields.is_empty() {
        return "no details".into();
    }
    fields
        .iter()
        .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drf_bodies_flatten_into_field_paths() {
        let body = br#"{"redirect_uris":[{"url":["This field is required."]},{}],"slug":["application with this slug already exists."]}"#;
        let err = AuthentikError::from_status("POST /x/".into(), 400, body, None);
        assert_eq!(err.field("slug").map(|m| m.len()), Some(1));
        assert!(err.field("redirect_uris[0].url").is_some());
        assert!(!err.is_transient());
    }

    #[test]
    fn statuses_sort_into_kinds() {
        let forbidden = AuthentikError::from_status(
            "GET /a/".into(),
            403,
            br#"{"detail":"Token invalid/expired"}"#,
            None,
        );
        assert!(
            matches!(forbidden, AuthentikError::Forbidden { ref detail, .. } if detail == "Token invalid/expired")
        );
        assert!(!forbidden.is_transient());
        let limited =
            AuthentikError::from_status("GET /a/".into(), 429, b"", Some(Duration::from_secs(7)));
        assert!(limited.is_transient());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
        assert!(AuthentikError::from_status("GET /a/".into(), 502, b"<html>", None).is_transient());
        assert!(matches!(
            AuthentikError::from_status("GET /a/".into(), 404, b"{}", None),
            AuthentikError::NotFound { .. }
        ));
    }
}
