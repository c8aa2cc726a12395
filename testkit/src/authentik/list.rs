//! List endpoints: query parameters, django-filter style filters, DRF search and ordering, and
//! authentik's pagination (`{"pagination": {…}, "results": […], "autocomplete": {}}`).

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::api::{ApiError, ApiResponse, ApiResult};

/// `tenant.pagination_default_page_size`.
const DEFAULT_PAGE_SIZE: usize = 20;
/// `tenant.pagination_max_page_size`: larger requests are clamped, silently.
const MAX_PAGE_SIZE: usize = 100;

/// A query string, keeping repeated parameters (`?managed=a&managed=b`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: &str) -> Query {
        Query(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of `name`, like Django's `QueryDict.get`; empty values count as absent
    /// (django-filter skips them).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every non-empty value of a repeatable parameter.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// django-filter's `BooleanWidget`: `true`/`1` and `false`/`0`; anything else is no filter.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)?.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }
}

/// The text a filter compares against: strings as they are, numbers in decimal.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Objects being listed, narrowed step by step.
#[derive(Debug)]
pub(crate) struct Listing<'q> {
    items: Vec<Value>,
    query: &'q Query,
}

impl<'q> Listing<'q> {
    pub(crate) fn new(items: Vec<Value>, query: &'q Query) -> Listing<'q> {
        Listing { items, query }
    }

    /// Keep the items for which `keep(item, value)` holds, when `param` is given.
    pub(crate) fn filter(mut self, param: &str, keep: impl Fn(&Value, &str) -> bool) -> Self {
        if let Some(value) = self.query.get(param) {
            self.items.retain(|item| keep(item, value));
        }
        self
    }

    /// `?param=value`: exact match on the item's `key`.
    pub(crate) fn exact(self, param: &str, key: &str) -> Self {
        self.filter(param, |item, value| {
            item.get(key).and_then(text).as_deref() == Some(value)
        })
    }

    /// `?param__iexact=value`.
    pub(crate) fn iexact(self, param: &str, key: &str) -> Self {
        self.filter(param, |item, value| {
            item.get(key)
                .and_then(text)
                .is_some_and(|t| t.to_lowercase() == value.to_lowercase())
        })
    }

    /// `?param__icontains=value`.
    pub(crate) fn icontains(self, param: &str, key: &str) -> Self {
        self.filter(param, |item, value| {
            item.get(key)
                .and_then(text)
                .is_some_and(|t| t.to_lowercase().contains(&value.to_lowercase()))
        })
    }

    /// A boolean filter on the item's `key`.
    pub(crate) fn boolean(mut self, param: &str, key: &str) -> Self {
        if let Some(wanted) = self.query.bool(param) {
            self.items
                .retain(|item| item.get(key).and_then(Value::as_bool) == Some(wanted));
        }
        self
    }

    /// A boolean filter computed from the item.
    pub(crate) fn boolean_by(mut self, param: &str, test: impl Fn(&Value) -> bool) -> Self {
        if let Some(wanted) = self.query.bool(param) {
            self.items.retain(|item| test(item) == wanted);
        }
        self
    }

    /// A repeatable filter: keep items whose `key` (or any element of it, for lists) equals
    /// one of the given values.
    pub(crate) fn any_of(mut self, param: &str, key: &str) -> Self {
        let wanted = self.query.all(param);
        if !wanted.is_empty() {
            self.items.retain(|item| match item.get(key) {
                Some(Value::Array(values)) => values
                    .iter()
                    .filter_map(text)
                    .any(|t| wanted.contains(&t.as_str())),
                Some(value) => text(value).is_some_and(|t| wanted.contains(&t.as_str())),
                None => false,
            });
        }
        self
    }

    /// Reject malformed filter values the way django-filter does (400 keyed by parameter).
    pub(crate) fn check(
        self,
        param: &str,
        valid: impl Fn(&str) -> bool,
        message: &str,
    ) -> Result<Self, ApiError> {
        let bad = self.query.all(param).into_iter().any(|v| !valid(v));
        if bad {
            let mut errors = serde_json::Map::new();
            errors.insert(param.to_owned(), json!([message]));
            return Err(ApiError::Invalid(errors));
        }
        Ok(self)
    }

    /// DRF `SearchFilter`: every term must appear (case-insensitively) in one of the texts
    /// `fields` gives for an item.
    pub(crate) fn search(mut self, fields: impl Fn(&Value) -> Vec<String>) -> Self {
        if let Some(search) = self.query.get("search") {
            let terms: Vec<String> = search
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|t| !t.is_empty())
                .map(str::to_lowercase)
                .collect();
            self.items.retain(|item| {
                let texts: Vec<String> = fields(item).iter().map(|t| t.to_lowercase()).collect();
                terms
                    .iter()
                    .all(|term| texts.iter().any(|t| t.contains(term)))
            });
        }
        self
    }

    /// DRF `OrderingFilter`: `?ordering=a,-b` on top-level fields; unknown fields are ignored;
    /// without a valid ordering the view's default applies.
    pub(crate) fn order(mut self, default: &[&str]) -> Self {
        let requested: Vec<String> = self
            .query
            .get("ordering")
            .map(|o| {
                o.split(',')
                    .map(str::trim)
                    .filter(|f| {
                        let field = f.trim_start_matches('-');
                        !field.is_empty()
                            && self.items.first().is_none_or(|i| i.get(field).is_some())
                    })
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let keys: Vec<String> = if requested.is_empty() {
            default.iter().map(|k| (*k).to_owned()).collect()
        } else {
            requested
        };
        self.items.sort_by(|a, b| {
            keys.iter()
                .map(|key| {
                    let (field, descending) = match key.strip_prefix('-') {
                        Some(field) => (field, true),
                        None => (key.as_str(), false),
                    };
                    let ord = compare(a.get(field), b.get(field));
                    if descending { ord.reverse() } else { ord }
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
        self
    }

    /// One page, in authentik's pagination envelope.
    pub(crate) fn page(self) -> ApiResult {
        let count = self.items.len();
        let page_size = self
            .query
            .get("page_size")
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .map_or(DEFAULT_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE));
        let total_pages = count.div_ceil(page_size).max(1);
        let current = match self.query.get("page") {
            None => 1,
            Some("last") => total_pages,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|&n| (1..=total_pages).contains(&n))
                .ok_or(ApiError::NotFound("Invalid page."))?,
        };
        let start = (current - 1) * page_size;
        let results: Vec<Value> = self.items.into_iter().skip(start).take(page_size).collect();
        let (start_index, end_index) = if count == 0 {
            (0, 0)
        } else {
            (start + 1, start + results.len())
        };
        Ok(ApiResponse::ok(json!({
            "pagination": {
                "next": if current < total_pages { current + 1 } else { 0 },
                "previous": current.saturating_sub(1),
                "count": count,
                "current": current,
                "total_pages": total_pages,
                "start_index": start_index,
                "end_index": end_index,
            },
            "results": results,
            "autocomplete": {},
        })))
    }
}

fn rank(value: Option<&Value>) -> u8 {
    match value {
        None | Some(Value::Null) => 0,
        Some(Value::Bool(_)) => 1,
        Some(Value::Number(_)) => 2,
        Some(Value::String(_)) => 3,
        Some(_) => 4,
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(n: usize, query: &str) -> Result<Value, ApiError> {
        let items = (0..n).map(|i| json!({"i": i})).collect();
        let query = Query::parse(query);
        Listing::new(items, &query)
            .page()
            .map(|r| r.body.unwrap_or_default())
    }

    #[test]
    fn empty_list_has_one_page() {
        let body = page_of(0, "").expect("a page");
        assert_eq!(
            body["pagination"],
            json!({"next":0,"previous":0,"count":0,"current":1,"total_pages":1,"start_index":0,"end_index":0})
        );
        assert_eq!(
            page_of(0, "page=2"),
            Err(ApiError::NotFound("Invalid page."))
        );
    }

    #[test]
    fn middle_page_points_both_ways() {
        let body = page_of(57, "page=2").expect("a page");
        assert_eq!(
            body["pagination"],
            json!({"next":3,"previous":1,"count":57,"current":2,"total_pages":3,"start_index":21,"end_index":40})
        );
    }

    #[test]
    fn bad_page_size_falls_back_to_default_and_bad_page_is_404() {
        let body = page_of(30, "page_size=abc").expect("a page");
        assert_eq!(body["results"].as_array().map(Vec::len), Some(20));
        assert!(page_of(30, "page=abc").is_err());
        assert!(page_of(30, "page=0").is_err());
        assert_eq!(
            page_of(30, "page=last").expect("a page")["pagination"]["current"],
            2
        );
    }

    #[test]
    fn ordering_ignores_unknown_fields_and_honours_descending() {
        let query = Query::parse("ordering=-i,nope");
        let items = (0..3).map(|i| json!({"i": i})).collect();
        let body = Listing::new(items, &query)
            .order(&["i"])
            .page()
            .expect("a page")
            .body
            .unwrap_or_default();
        assert_eq!(body["results"][0]["i"], 2);
    }
}
