//! Request bodies are checked against authentik's own request schemas (vendored from its
//! OpenAPI document by `authentik-schema/vendor.py`, with unknown fields forbidden). A failure
//! is answered 400 with DRF-style field messages and recorded as a schema violation.

use std::collections::HashMap;
use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::{Map, Value};

use super::api::{ApiError, canonical_uuid, python_type};

const VENDORED: &str = include_str!("../../authentik-schema/request-schemas.json");

pub(crate) struct RequestSchemas {
    source_version: String,
    schemas: HashMap<String, (Value, Validator)>,
}

static SCHEMAS: LazyLock<RequestSchemas> = LazyLock::new(RequestSchemas::load);

pub(crate) fn schemas() -> &'static RequestSchemas {
    &SCHEMAS
}

/// Django's URLValidator, loosely: blank is allowed (the model fields are `blank=True`),
/// otherwise an http(s)/ftp(s) URL with a host and no whitespace.
fn is_url(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let scheme_ok = ["http", "https", "ftp", "ftps"]
        .iter()
        .any(|known| scheme.eq_ignore_ascii_case(known));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    scheme_ok && !host.is_empty() && !s.chars().any(char::is_whitespace)
}

impl RequestSchemas {
    fn load() -> RequestSchemas {
        let document: Value = serde_json::from_str(VENDORED)
            .unwrap_or_else(|err| panic!("vendored request-schemas.json is not JSON: {err}"));
        let source_version = document
            .pointer("/source/openapi_info_version")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let components = document
            .get("components")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("vendored request-schemas.json has no components"));
        let schemas = components
            .iter()
            .map(|(name, schema)| {
                let validator = jsonschema::options()
                    .with_draft(Draft::Draft202012)
                    .should_validate_formats(true)
                    .with_format("uuid", |s: &str| canonical_uuid(s).is_some())
                    .with_format("uri", is_url)
                    .build(schema)
                    .unwrap_or_else(|err| panic!("vendored schema {name} does not compile: {err}"));
                (name.clone(), (schema.clone(), validator))
            })
            .collect();
        RequestSchemas {
            source_version,
            schemas,
        }
    }

    /// The authentik version the schemas were vendored from.
    pub(crate) fn source_version(&self) -> &str {
        &self.source_version
    }

    /// Check `body` against the named component. On failure: the violations to record and
    /// the DRF-style 400 to answer.
    pub(crate) fn check(
        &self,
        name: &str,
        operation: &str,
        body: &Value,
    ) -> Result<(), (Vec<String>, ApiError)> {
        let Some((schema, validator)) = self.schemas.get(name) else {
            panic!("request schema {name} is not vendored; add it to vendor.py");
        };
        let mut violations = Vec::new();
        let mut tree = ErrorTree::default();
        for error in validator.iter_errors(body) {
            let path: Vec<Segment> = error
                .instance_path()
                .iter()
                .map(|segment| match segment {
                    LocationSegment::Property(p) => Segment::Key(p.to_string()),
                    LocationSegment::Index(i) => Segment::Index(i),
                })
                .collect();
            violations.push(format!(
                "{operation}: {name}: {}: {}",
                pointer(&path),
                describe(&error)
            ));
            for (path, message, placement) in drf_messages(&error, path, schema) {
                tree.insert(&path, message, placement, body, schema);
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err((violations, ApiError::Invalid(tree.into_map())))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn pointer(path: &[Segment]) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.iter()
        .map(|s| match s {
            Segment::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            Segment::Index(i) => format!("/{i}"),
        })
        .collect()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What went wrong, for the violation log. Never the offending value: it may be a secret
/// (`client_secret`), and the log is printed by tests.
fn describe(error: &ValidationError<'_>) -> String {
    let instance = error.instance();
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            format!("missing required property {property}")
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            format!("unknown properties {unexpected:?}")
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!("expected {expected}, got {}", json_type(instance))
        }
        ValidationErrorKind::Enum { options } => format!("value is not one of {options}"),
        ValidationErrorKind::Pattern { pattern } => format!("does not match pattern {pattern}"),
        ValidationErrorKind::MinLength { limit } => format!("shorter than {limit} characters"),
        ValidationErrorKind::MaxLength { limit } => format!("longer than {limit} characters"),
        ValidationErrorKind::Format { format } => format!("not a valid {format}"),
        other => format!("fails the {} keyword", other.keyword()),
    }
}

/// The subschema that describes the value at `path`.
fn schema_at<'s>(schema: &'s Value, path: &[Segment]) -> Option<&'s Value> {
    let mut node = schema;
    for segment in path {
        node = match segment {
            Segment::Key(k) => node.get("properties")?.get(k)?,
            Segment::Index(_) => node.get("items")?,
        };
    }
    Some(node)
}

fn schema_allows(node: &Value, ty: &str) -> bool {
    match node.get("type") {
        Some(Value::String(t)) => t == ty,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == ty),
        _ => false,
    }
}

/// A field holding object pks (a `PrimaryKeyRelatedField`): integers, or UUID strings.
fn is_relation(node: &Value) -> bool {
    schema_allows(node, "integer") || node.get("format").is_some_and(|f| f == "uuid")
}

fn choice_repr(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

/// Where a message goes in DRF's error structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// In the field's list of messages.
    Field,
    /// Under `non_field_errors` of the field: what a nested list serializer does when the
    /// value is not a list at all.
    ListSerializer,
}

/// The messages DRF would give for one schema error, each with the path it belongs under.
fn drf_messages(
    error: &ValidationError<'_>,
    path: Vec<Segment>,
    schema: &Value,
) -> Vec<(Vec<Segment>, String, Placement)> {
    let instance = error.instance();
    let node = schema_at(schema, &path).unwrap_or(&Value::Null);
    let field = path.iter().rev().find_map(|s| match s {
        Segment::Key(k) => Some(k.as_str()),
        Segment::Index(_) => None,
    });
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let mut at = path.clone();
            at.push(Segment::Key(
                property.as_str().unwrap_or_default().to_owned(),
            ));
            return vec![(at, "This field is required.".to_owned(), Placement::Field)];
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let component = schema.get("title").and_then(Value::as_str).unwrap_or("the");
            return unexpected
                .iter()
                .map(|name| {
                    let mut at = path.clone();
                    at.push(Segment::Key(name.clone()));
                    (
                        at,
                        format!("Unknown field: it is not part of the {component} schema."),
                        Placement::Field,
                    )
                })
                .collect();
        }
        ValidationErrorKind::Type { .. } => {
            let got = python_type(instance);
            if instance.is_null() {
                "This field may not be null.".to_owned()
            } else if schema_allows(node, "array") {
                format!("Expected a list of items but got type \"{got}\".")
            } else if schema_allows(node, "object") {
                if node.get("properties").is_some() {
                    format!("Invalid data. Expected a dictionary, but got {got}.")
                } else {
                    format!("Expected a dictionary of items but got type \"{got}\".")
                }
            } else if is_relation(node) {
                format!("Incorrect type. Expected pk value, received {got}.")
            } else if schema_allows(node, "boolean") {
                "Must be a valid boolean.".to_owned()
            } else if schema_allows(node, "integer") {
                "A valid integer is required.".to_owned()
            } else {
                "Not a valid string.".to_owned()
            }
        }
        ValidationErrorKind::Enum { .. } => {
            format!("\"{}\" is not a valid choice.", choice_repr(instance))
        }
        ValidationErrorKind::Pattern { .. } if field == Some("slug") => {
            "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."
                .to_owned()
        }
        ValidationErrorKind::Pattern { .. } => {
            "This value does not match the required pattern.".to_owned()
        }
        ValidationErrorKind::MinLength { limit: 1 } => "This field may not be blank.".to_owned(),
        ValidationErrorKind::MinLength { limit } => {
            format!("Ensure this field has at least {limit} characters.")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("Ensure this field has no more than {limit} characters.")
        }
        ValidationErrorKind::Format { format } if format == "uuid" => {
            format!("“{}” is not a valid UUID.", choice_repr(instance))
        }
        ValidationErrorKind::Format { format } if format == "uri" => {
            "Enter a valid URL.".to_owned()
        }
        _ => "Invalid value.".to_owned(),
    };
    let placement = match error.kind() {
        ValidationErrorKind::Type { .. }
            if node
                .get("items")
                .is_some_and(|items| schema_allows(items, "object")) =>
        {
            Placement::ListSerializer
        }
        _ => Placement::Field,
    };
    vec![(path, message, placement)]
}

/// Nested DRF error structure: a field of a nested list serializer gets a list with one entry
/// per item (`{}` for valid items); a list of pks gets a flat list of messages.
#[derive(Debug, Default)]
struct ErrorTree(Map<String, Value>);

impl ErrorTree {
    fn insert(
        &mut self,
        path: &[Segment],
        message: String,
        placement: Placement,
        body: &Value,
        schema: &Value,
    ) {
        insert_at(&mut self.0, path, message, placement, body, schema, &[]);
    }

    fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

fn push_message(slot: &mut Value, message: String) {
    match slot {
        Value::Array(messages) => {
            if !messages.iter().any(|m| m.as_str() == Some(&message)) {
                messages.push(Value::String(message));
            }
        }
        Value::Object(nested) => push_message(
            nested
                .entry("non_field_errors")
                .or_insert_with(|| Value::Array(Vec::new())),
            message,
        ),
        _ => *slot = Value::Array(vec![Value::String(message)]),
    }
}

fn insert_at(
    map: &mut Map<String, Value>,
    path: &[Segment],
    message: String,
    placement: Placement,
    body: &Value,
    schema: &Value,
    prefix: &[Segment],
) {
    let Some((first, rest)) = path.split_first() else {
        push_message(
            map.entry("non_field_errors")
                .or_insert_with(|| Value::Array(Vec::new())),
            message,
        );
        return;
    };
    let key = match first {
        Segment::Key(k) => k.clone(),
        Segment::Index(i) => i.to_string(),
    };
    let mut here = prefix.to_vec();
    here.push(first.clone());
    let node = schema_at(schema, &here).unwrap_or(&Value::Null);
    let items_are_objects = node
        .get("items")
        .is_some_and(|items| schema_allows(items, "object"));

    match rest.split_first() {
        None if placement == Placement::ListSerializer => {
            // A nested list serializer that got no list reports under non_field_errors.
            let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
            push_message(slot, message);
        }
        None => {
            let slot = map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            push_message(slot, message);
        }
        Some((Segment::Index(index), deeper)) if items_are_objects => {
            let len = pointer_value(body, &here)
                .and_then(Value::as_array)
                .map_or(index + 1, Vec::len);
            let slot = map
                .entry(key)
                .or_insert_with(|| Value::Array(vec![Value::Object(Map::new()); len]));
            if let Value::Array(items) = slot {
                if items.len() <= *index {
                    items.resize(index + 1, Value::Object(Map::new()));
                }
                let mut item_prefix = here.clone();
                item_prefix.push(Segment::Index(*index));
                if let Value::Object(item) = &mut items[*index] {
                    insert_at(item, deeper, message, placement, body, schema, &item_prefix);
                }
            }
        }
        Some((Segment::Index(_), _)) => {
            // Lists of pks (many=True related fields) answer one flat list of messages.
            let slot = map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            push_message(slot, message);
        }
        Some(_) => {
            let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(nested) = slot {
                insert_at(nested, rest, message, placement, body, schema, &here);
            }
        }
    }
}

fn pointer_value<'v>(body: &'v Value, path: &[Segment]) -> Option<&'v Value> {
    let mut node = body;
    for segment in path {
        node = match segment {
            Segment::Key(k) => node.get(k)?,
            Segment::Index(i) => node.get(*i)?,
        };
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(name: &str, body: Value) -> Result<(), (Vec<String>, Value)> {
        schemas()
            .check(name, "POST /test/", &body)
            .map_err(|(violations, err)| (violations, err.body()))
    }

    #[test]
    fn every_vendored_schema_compiles_and_names_its_source() {
        assert_eq!(schemas().source_version(), "2026.2.2");
        assert!(schemas().schemas.len() >= 15);
    }

    #[test]
    fn missing_provider_fields_read_like_sample_21() {
        let (_, body) =
            check("OAuth2ProviderRequest", json!({"name": "x"})).expect_err("schema violation");
        assert_eq!(
            body,
            json!({
                "authorization_flow": ["This field is required."],
                "invalidation_flow": ["This field is required."],
                "redirect_uris": ["This field is required."],
            })
        );
    }

    #[test]
    fn redirect_uris_as_string_reads_like_sample_22() {
        let (_, body) = check(
            "PatchedOAuth2ProviderRequest",
            json!({"redirect_uris": "https://a/cb"}),
        )
        .expect_err("schema violation");
        assert_eq!(
            body,
            json!({"redirect_uris": {"non_field_errors": ["Expected a list of items but got type \"str\"."]}})
        );
    }

    #[test]
    fn nested_redirect_uri_errors_keep_one_entry_per_item() {
        let (_, body) = check(
            "PatchedOAuth2ProviderRequest",
            json!({"redirect_uris": [{"matching_mode": "strict", "url": "https://a/"}, {"matching_mode": "strict"}]}),
        )
        .expect_err("schema violation");
        assert_eq!(
            body,
            json!({"redirect_uris": [{}, {"url": ["This field is required."]}]})
        );
    }

    #[test]
    fn invalid_slug_reads_like_sample_24() {
        let (_, body) = check(
            "ApplicationRequest",
            json!({"name": "A", "slug": "not a slug"}),
        )
        .expect_err("schema violation");
        assert_eq!(
            body,
            json!({"slug": ["Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."]})
        );
    }

    #[test]
    fn violations_never_quote_secret_values() {
        let (violations, body) = check(
            "PatchedOAuth2ProviderRequest",
            json!({"client_secret": 12345678, "clientsecret": "hunter2"}),
        )
        .expect_err("schema violation");
        let text = violations.join("\n");
        assert!(
            !text.contains("12345678") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(body.get("clientsecret").is_some());
        assert!(body.get("client_secret").is_some());
    }

    #[test]
    fn nullable_fields_accept_null_and_uuids_are_checked() {
        assert!(check("PatchedOAuth2ProviderRequest", json!({"signing_key": null})).is_ok());
        let (_, body) = check(
            "PatchedOAuth2ProviderRequest",
            json!({"signing_key": "nope", "name": null}),
        )
        .expect_err("schema violation");
        assert_eq!(
            body,
            json!({"signing_key": ["“nope” is not a valid UUID."], "name": ["This field may not be null."]})
        );
    }

    #[test]
    fn blank_launch_url_is_accepted_and_garbage_is_not() {
        assert!(check("PatchedApplicationRequest", json!({"meta_launch_url": ""})).is_ok());
        assert!(
            check(
                "PatchedApplicationRequest",
                json!({"meta_launch_url": "not a url"})
            )
            .is_err()
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_non_field_error() {
        let (_, body) =
            check("PatchedApplicationRequest", json!([1])).expect_err("schema violation");
        assert_eq!(
            body,
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
        );
    }
}
