//! The only code that speaks Frappe's REST API (`/api/resource/…`, `/api/method/…`), with
//! `Authorization: token <api_key>:<api_secret>`.
//!
//! Frappe answers errors with a JSON body naming the exception (`exc_type`) and, in
//! `_server_messages`, a JSON-encoded list of JSON-encoded messages. Its status codes: 401
//! `AuthenticationError` (wrong key or secret), 403 `PermissionError` (the key's user lacks a
//! role), 404 `DoesNotExistError`, 409 `DuplicateEntryError`, 417 `ValidationError`.
//!
//! Password fields come back from a plain GET masked as `*` (one per character); only
//! `frappe.client.get_password` (System Manager only) returns the value.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum FrappeError {
    /// 401 or 403: the key, the secret, or the roles of their user. Retrying cannot help.
    #[error("{operation}: Frappe refused the API credentials (HTTP {status} {exc_type}{})", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    AuthFailed {
        operation: String,
        status: u16,
        exc_type: String,
        message: Option<String>,
    },
    #[error("{operation}: not found")]
    NotFound { operation: String },
    /// 400, 409, 417: Frappe understood and said no.
    #[error("{operation}: Frappe rejected it (HTTP {status} {exc_type}): {message}")]
    Rejected {
        operation: String,
        status: u16,
        exc_type: String,
        message: String,
    },
    #[error("{operation}: rate limited{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        operation: String,
        retry_after: Option<Duration>,
    },
    #[error("{operation}: Frappe server error (HTTP {status})")]
    Server { operation: String, status: u16 },
    #[error("{operation}: unexpected HTTP {status}")]
    Unexpected { operation: String, status: u16 },
    #[error("{operation}: {problem}")]
    Transport { operation: String, problem: String },
    #[error("{operation}: unexpected response: {problem}")]
    Decode { operation: String, problem: String },
}

impl FrappeError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FrappeError::RateLimited { .. }
                | FrappeError::Server { .. }
                | FrappeError::Transport { .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FrappeError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    authorization: SecretString,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("frappe::Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `base_url` is the site's address, e.g. `http://erpnext:8000`.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        api_key: &str,
        api_secret: &SecretString,
    ) -> Result<Client, String> {
        let base = url::Url::parse(base_url.trim_end_matches('/'))
            .map_err(|e| format!("`{base_url}` is not a URL: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(format!("`{base_url}` is not an http(s) URL"));
        }
        Ok(Client {
            http,
            base,
            authorization: SecretString::from(format!(
                "token {api_key}:{}",
                api_secret.expose_secret()
            )),
        })
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `GET /api/resource/<doctype>/<name>`: the document (password fields masked), or `None`.
    pub async fn get_doc(&self, doctype: &str, name: &str) -> Result<Option<Value>, FrappeError> {
        let operation = format!("read {doctype} {name}");
        let url = self.url(&["api", "resource", doctype, name]);
        match self
            .send(&operation, reqwest::Method::GET, url, None, &[])
            .await
        {
            Ok(body) => data_of(&operation, body).map(Some),
            Err(FrappeError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A password field's value through `frappe.client.get_password`; `None` when the document
    /// or the stored password does not exist.
    pub async fn get_password(
        &self,
        doctype: &str,
        name: &str,
        fieldname: &str,
    ) -> Result<Option<SecretString>, FrappeError> {
        let operation = format!("read the {fieldname} of {doctype} {name}");
        let mut url = self.url(&["api", "method", "frappe.client.get_password"]);
        url.query_pairs_mut()
            .append_pair("doctype", doctype)
            .append_pair("name", name)
            .append_pair("fieldname", fieldname);
        match self
            .send(&operation, reqwest::Method::GET, url, None, &[])
            .await
        {
            Ok(body) => match body.get("message") {
                Some(Value::String(s)) => Ok(Some(SecretString::from(s.clone()))),
                Some(Value::Null) | None => Ok(None),
                Some(_) => Err(FrappeError::Decode {
                    operation,
                    problem: "`message` is not a string".into(),
                }),
            },
            Err(FrappeError::NotFound { .. }) => Ok(None),
            // get_decrypted_password throws a plain ValidationError when nothing is stored.
            Err(FrappeError::Rejected {
                status: 417,
                message,
                ..
            }) if message.starts_with("Password not found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/resource/<doctype>`; returns the saved document.
    pub async fn insert(
        &self,
        doctype: &str,
        body: &Value,
        secrets: &[&str],
    ) -> Result<Value, FrappeError> {
        let operation = format!("create {doctype}");
        let url = self.url(&["api", "resource", doctype]);
        let answer = self
            .send(&operation, reqwest::Method::POST, url, Some(body), secrets)
            .await?;
        data_of(&operation, answer)
    }

    /// `PUT /api/resource/<doctype>/<name>` with only the fields to change; returns the saved
    /// document.
    pub async fn update(
        &self,
        doctype: &str,
        name: &str,
        body: &Value,
        secrets: &[&str],
    ) -> Result<Value, FrappeError> {
        let operation = format!("update {doctype} {name}");
        let url = self.url(&["api", "resource", doctype, name]);
        let answer = self
            .send(&operation, reqwest::Method::PUT, url, Some(body), secrets)
            .await?;
        data_of(&operation, answer)
    }

    async fn send(
        &self,
        operation: &str,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&Value>,
        secrets: &[&str],
    ) -> Result<Value, FrappeError> {
        let mut request = self
            .http
            .request(method, url)
            .header(
                reqwest::header::AUTHORIZATION,
                self.authorization.expose_secret(),
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| FrappeError::Transport {
            operation: operation.to_owned(),
            problem: transport_problem(&e).to_owned(),
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|e| FrappeError::Transport {
            operation: operation.to_owned(),
            problem: transport_problem(&e).to_owned(),
        })?;
        classify(operation, status, &bytes, retry_after, secrets)
    }
}

fn data_of(operation: &str, mut body: Value) -> Result<Value, FrappeError> {
    match body.get_mut("data").map(Value::take) {
        Some(doc @ Value::Object(_)) => Ok(doc),
        _ => Err(FrappeError::Decode {
            operation: operation.to_owned(),
            problem: "no `data` object in the answer".into(),
        }),
    }
}

fn classify(
    operation: &str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Result<Value, FrappeError> {
    let operation = operation.to_owned();
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        return json.ok_or(FrappeError::Decode {
            operation,
            problem: "the answer is not JSON (is api_url pointing at Frappe?)".into(),
        });
    }
    let exc_type = json
        .as_ref()
        .and_then(|v| v.get("exc_type"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let message = json
        .as_ref()
        .and_then(server_message)
        .map(|m| redact(&m, secrets));
    Err(match status {
        401 | 403 => FrappeError::AuthFailed {
            operation,
            status,
            exc_type,
            message,
        },
        404 => FrappeError::NotFound { operation },
        429 => FrappeError::RateLimited {
            operation,
            retry_after,
        },
        400 | 409 | 417 => FrappeError::Rejected {
            operation,
            status,
            exc_type,
            message: message.unwrap_or_else(|| "no message".into()),
        },
        500..=599 => FrappeError::Server { operation, status },
        _ => FrappeError::Unexpected { operation, status },
    })
}

/// The first user-facing message: `_server_messages` is a JSON list of JSON objects, each
/// encoded as a string; fall back to the last line of `exception`.
fn server_message(body: &Value) -> Option<String> {
    if let Some(raw) = body.get("_server_messages").and_then(Value::as_str)
        && let Ok(list) = serde_json::from_str::<Vec<String>>(raw)
    {
        for item in list {
            if let Ok(message) = serde_json::from_str::<Value>(&item)
                && let Some(text) = message.get("message").and_then(Value::as_str)
            {
                return Some(text.to_owned());
            }
        }
    }
    body.get("exception")
        .and_then(Value::as_str)
        .map(|e| e.rsplit_once(": ").map_or(e, |(_, m)| m).to_owned())
}

fn redact(message: &str, secrets: &[&str]) -> String {
    const MAX: usize = 300;
    let mut out = message.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "<redacted>");
    }
    if out.chars().count() > MAX {
        out = format!("{}…", out.chars().take(MAX).collect::<String>());
    }
    out
}

fn transport_problem(error: &reqwest::Error) -> &'static str {
    // reqwest's Display names the URL; keep the kind only.
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect to Frappe"
    } else if error.is_body() || error.is_decode() {
        "connection broke while reading the response"
    } else {
        "request failed (connection reset or closed)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_sort_into_kinds_with_frappes_message() {
        let body = br#"{"exc_type":"AuthenticationError","_server_messages":"[\"{\\\"message\\\": \\\"Invalid API key or secret\\\"}\"]"}"#;
        let err = classify("op", 401, body, None, &[]).expect_err("refused");
        assert!(matches!(err, FrappeError::AuthFailed { status: 401, .. }));
        assert!(!err.is_transient());
        assert!(
            err.to_string().contains("Invalid API key or secret"),
            "{err}"
        );
        let body = br#"{"exc_type":"ValidationError","exception":"frappe.exceptions.ValidationError: Please enter Client Secret before social login is enabled"}"#;
        let err = classify("op", 417, body, None, &[]).expect_err("rejected");
        assert!(
            err.to_string()
                .ends_with("Please enter Client Secret before social login is enabled"),
            "{err}"
        );
        assert!(classify("op", 502, b"<html>", None, &[]).is_err_and(|e| e.is_transient()));
        assert!(matches!(
            classify("op", 404, b"{}", None, &[]),
            Err(FrappeError::NotFound { .. })
        ));
    }

    #[test]
    fn document_names_with_spaces_are_escaped_in_the_path() {
        let client = Client::new(
            reqwest::Client::new(),
            "http://erp:8000/",
            "k",
            &SecretString::from("s".to_owned()),
        )
        .expect("valid");
        assert_eq!(
            client
                .url(&["api", "resource", "Social Login Key", "authentik"])
                .as_str(),
            "http://erp:8000/api/resource/Social%20Login%20Key/authentik"
        );
        assert!(!format!("{client:?}").contains("token k:s"));
    }
}
