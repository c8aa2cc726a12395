//! Responses and errors in the shapes Django REST framework gives them.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

/// A successful answer: status and (except for 204) a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiResponse {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl ApiResponse {
    pub(crate) fn ok(body: Value) -> ApiResponse {
        ApiResponse {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    pub(crate) fn created(body: Value) -> ApiResponse {
        ApiResponse {
            status: StatusCode::CREATED,
            body: Some(body),
        }
    }

    pub(crate) fn no_content() -> ApiResponse {
        ApiResponse {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

/// An error answer, as DRF's default exception handler renders it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiError {
    /// 400 with `serializer.errors` (field name → messages).
    Invalid(Map<String, Value>),
    /// 400 with `{"detail": …}` (e.g. a JSON parse error).
    BadRequest(String),
    /// 403 with `{"detail": …}`.
    Forbidden(&'static str),
    /// 404 with `{"detail": "No <Model> matches the given query."}`.
    NoMatch(&'static str),
    /// 404 with another detail (`Not found.`, `Invalid page.`).
    NotFound(&'static str),
    /// 405 with `{"detail": "Method \"X\" not allowed."}`.
    MethodNotAllowed(String),
    /// 415 with `{"detail": "Unsupported media type \"x\" in request."}`.
    UnsupportedMediaType(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NoMatch(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    pub(crate) fn body(&self) -> Value {
        match self {
            ApiError::Invalid(errors) => Value::Object(errors.clone()),
            ApiError::BadRequest(detail) => json!({ "detail": detail }),
            ApiError::Forbidden(detail) | ApiError::NotFound(detail) => json!({ "detail": detail }),
            ApiError::NoMatch(model) => {
                json!({ "detail": format!("No {model} matches the given query.") })
            }
            ApiError::MethodNotAllowed(method) => {
                json!({ "detail": format!("Method \"{method}\" not allowed.") })
            }
            ApiError::UnsupportedMediaType(media_type) => {
                json!({ "detail": format!("Unsupported media type \"{media_type}\" in request.") })
            }
        }
    }
}

impl From<ApiError> for ApiResponse {
    fn from(err: ApiError) -> ApiResponse {
        ApiResponse {
            status: err.status(),
            body: Some(err.body()),
        }
    }
}

pub(crate) type ApiResult = Result<ApiResponse, ApiError>;

/// Field errors collected the way a DRF serializer collects them: every field is checked, and
/// all messages are answered together.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(Map<String, Value>);

impl FieldErrors {
    pub(crate) fn add(&mut self, field: &str, message: impl Into<String>) {
        let entry = self
            .0
            .entry(field.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(messages) = entry {
            messages.push(Value::String(message.into()));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    pub(crate) fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(self.0))
        }
    }
}

/// DRF's message for a primary key that names no object.
pub(crate) fn does_not_exist(pk: &Value) -> String {
    let shown = match pk {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("Invalid pk \"{shown}\" - object does not exist.")
}

/// Python's name for the type a JSON value parses to (DRF puts it in type errors).
pub(crate) fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The canonical (lowercase, hyphenated) form of a UUID, as Django renders it; `None` if `s`
/// is not a UUID in any form Django accepts.
pub(crate) fn canonical_uuid(s: &str) -> Option<String> {
    uuid::Uuid::parse_str(s).ok().map(|u| u.to_string())
}
