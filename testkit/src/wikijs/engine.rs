//! A small GraphQL engine for the stand-in: parses a request, validates it against the vendored
//! Wiki.js schema the way graphql-js does (unknown fields and arguments, missing required
//! arguments, variable types and values, leaf selections), then executes it with a resolver
//! for the namespace types (`Query.authentication`, `AuthenticationMutation.login`, …) and
//! plain property access below them. `@auth(requires: …)` on a field is enforced as Wiki.js's
//! directive does: a caller without one of the permissions gets `Forbidden` at that path and a
//! null, propagated up through non-null fields. Fragments are not supported.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use graphql_parser::query as q;
use graphql_parser::schema as s;
use serde_json::{Map, Value, json};

#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Named(String),
    List(Box<Ty>),
    NonNull(Box<Ty>),
}

impl Ty {
    fn from_schema(ty: &s::Type<'_, String>) -> Ty {
        match ty {
            s::Type::NamedType(n) => Ty::Named(n.clone()),
            s::Type::ListType(inner) => Ty::List(Box::new(Ty::from_schema(inner))),
            s::Type::NonNullType(inner) => Ty::NonNull(Box::new(Ty::from_schema(inner))),
        }
    }

    fn from_query(ty: &q::Type<'_, String>) -> Ty {
        match ty {
            q::Type::NamedType(n) => Ty::Named(n.clone()),
            q::Type::ListType(inner) => Ty::List(Box::new(Ty::from_query(inner))),
            q::Type::NonNullType(inner) => Ty::NonNull(Box::new(Ty::from_query(inner))),
        }
    }

    fn named(&self) -> &str {
        match self {
            Ty::Named(n) => n,
            Ty::List(inner) | Ty::NonNull(inner) => inner.named(),
        }
    }

    /// graphql-js `isTypeSubTypeOf`: may a variable of type `self` be used where `location`
    /// is expected?
    fn fits(&self, location: &Ty) -> bool {
        match (self, location) {
            (Ty::NonNull(v), Ty::NonNull(l)) => v.fits(l),
            (_, Ty::NonNull(_)) => false,
            (Ty::NonNull(v), l) => v.fits(l),
            (Ty::List(v), Ty::List(l)) => v.fits(l),
            (Ty::Named(v), Ty::Named(l)) => v == l,
            _ => false,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Named(n) => f.write_str(n),
            Ty::List(inner) => write!(f, "[{inner}]"),
            Ty::NonNull(inner) => write!(f, "{inner}!"),
        }
    }
}

#[derive(Debug)]
struct Arg {
    name: String,
    ty: Ty,
    has_default: bool,
}

#[derive(Debug)]
struct FieldDef {
    args: Vec<Arg>,
    ty: Ty,
    auth: Option<Vec<String>>,
}

#[derive(Debug, Default)]
pub(crate) struct Schema {
    objects: HashMap<String, HashMap<String, FieldDef>>,
    inputs: HashMap<String, Vec<Arg>>,
}

fn input_args(values: &[s::InputValue<'_, String>]) -> Vec<Arg> {
    values
        .iter()
        .map(|v| Arg {
            name: v.name.clone(),
            ty: Ty::from_schema(&v.value_type),
            has_default: v.default_value.is_some(),
        })
        .collect()
}

/// The vendored Wiki.js schema, parsed once.
pub(crate) fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = include_str!("schema.graphql");
        let doc = match s::parse_schema::<String>(text) {
            Ok(doc) => doc,
            Err(e) => panic!("the vendored Wiki.js schema does not parse: {e}"),
        };
        let mut schema = Schema::default();
        for def in doc.definitions {
            match def {
                s::Definition::TypeDefinition(s::TypeDefinition::Object(o)) => {
                    let fields = o
                        .fields
                        .iter()
                        .map(|f| {
                            let auth = f.directives.iter().find(|d| d.name == "auth").map(|d| {
                                d.arguments
                                    .iter()
                                    .filter(|(n, _)| n == "requires")
                                    .flat_map(|(_, v)| match v {
                                        q::Value::List(items) => items
                                            .iter()
                                            .filter_map(|i| match i {
                                                q::Value::String(s) => Some(s.clone()),
                                                _ => None,
                                            })
                                            .collect(),
                                        _ => Vec::new(),
                                    })
                                    .collect()
                            });
                            (
                                f.name.clone(),
                                FieldDef {
                                    args: input_args(&f.arguments),
                                    ty: Ty::from_schema(&f.field_type),
                                    auth,
                                },
                            )
                        })
                        .collect();
                    schema.objects.insert(o.name.clone(), fields);
                }
                s::Definition::TypeDefinition(s::TypeDefinition::InputObject(i)) => {
                    schema.inputs.insert(i.name.clone(), input_args(&i.fields));
                }
                _ => {}
            }
        }
        schema
    })
}

/// What the executor asks of the stand-in's state.
pub(crate) trait Resolver {
    /// Types whose fields are resolved by [`Resolver::resolve`] rather than read from the
    /// parent value.
    fn is_namespace(&self, type_name: &str) -> bool;
    fn resolve(
        &mut self,
        type_name: &str,
        field: &str,
        args: &Map<String, Value>,
    ) -> Result<Value, String>;
    fn permissions(&self) -> &[String];
}

/// The HTTP status and body of one GraphQL answer, and what was wrong with the request when
/// it broke the schema (for the violation log; never a value).
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
    pub violations: Vec<String>,
}

fn invalid(status: u16, code: &str, messages: Vec<(String, String)>) -> Answer {
    let errors: Vec<Value> = messages
        .iter()
        .map(|(m, _)| json!({"message": m, "extensions": {"code": code}}))
        .collect();
    Answer {
        status,
        body: json!({ "errors": errors }),
        violations: messages.into_iter().map(|(_, v)| v).collect(),
    }
}

/// Parse, validate and execute one request body.
pub(crate) fn run(body: &[u8], resolver: &mut dyn Resolver) -> Answer {
    let schema = schema();
    let request: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let m = "POST body missing. Did you forget use body-parser middleware?".to_owned();
            return invalid(400, "BAD_REQUEST", vec![(m.clone(), m)]);
        }
    };
    let Some(text) = request.get("query").and_then(Value::as_str) else {
        let m = "POST body missing, invalid Content-Type, or JSON object has no keys.".to_owned();
        return invalid(400, "BAD_REQUEST", vec![(m.clone(), m)]);
    };
    let variables = match request.get("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            let m = "Variables must be an object".to_owned();
            return invalid(400, "BAD_REQUEST", vec![(m.clone(), m)]);
        }
    };
    let doc = match q::parse_query::<String>(text) {
        Ok(doc) => doc,
        Err(e) => {
            let m = format!("Syntax Error: {}", e.to_string().trim());
            return invalid(400, "GRAPHQL_PARSE_FAILED", vec![(m.clone(), m)]);
        }
    };
    let mut operations = Vec::new();
    for def in &doc.definitions {
        match def {
            q::Definition::Operation(op) => operations.push(op),
            q::Definition::Fragment(_) => {
                let m = "Fragments are not supported by the Wiki.js stand-in".to_owned();
                return invalid(400, "GRAPHQL_VALIDATION_FAILED", vec![(m.clone(), m)]);
            }
        }
    }
    let [op] = operations.as_slice() else {
        let m =
            "Must provide exactly one operation (the stand-in ignores operationName)".to_owned();
        return invalid(400, "GRAPHQL_VALIDATION_FAILED", vec![(m.clone(), m)]);
    };
    let (root, var_defs, selection) = match op {
        q::OperationDefinition::SelectionSet(set) => ("Query", &[][..], set),
        q::OperationDefinition::Query(query) => (
            "Query",
            query.variable_definitions.as_slice(),
            &query.selection_set,
        ),
        q::OperationDefinition::Mutation(m) => (
            "Mutation",
            m.variable_definitions.as_slice(),
            &m.selection_set,
        ),
        q::OperationDefinition::Subscription(_) => {
            let m = "Subscriptions are not served".to_owned();
            return invalid(400, "GRAPHQL_VALIDATION_FAILED", vec![(m.clone(), m)]);
        }
    };

    // Validation, as graphql-js does it before anything runs.
    let declared: HashMap<String, Ty> = var_defs
        .iter()
        .map(|d| (d.name.clone(), Ty::from_query(&d.var_type)))
        .collect();
    let mut v = Validator {
        schema,
        declared: &declared,
        used: HashSet::new(),
        errors: Vec::new(),
    };
    v.selection(root, selection);
    for name in declared.keys() {
        if !v.used.contains(name) {
            let m = format!("Variable \"${name}\" is never used.");
            v.errors.push((m.clone(), m));
        }
    }
    if !v.errors.is_empty() {
        return invalid(400, "GRAPHQL_VALIDATION_FAILED", v.errors);
    }

    // Variable values against their declared types.
    let mut values = Map::new();
    let mut problems = Vec::new();
    for def in var_defs {
        let ty = Ty::from_query(&def.var_type);
        let value = match variables.get(&def.name) {
            Some(value) => value.clone(),
            None => match &def.default_value {
                Some(default) => literal(default, &Map::new()),
                None if matches!(ty, Ty::NonNull(_)) => {
                    let m = format!(
                        "Variable \"${}\" of required type \"{ty}\" was not provided.",
                        def.name
                    );
                    problems.push((m.clone(), m));
                    continue;
                }
                None => continue,
            },
        };
        if let Err(problem) = check_input(schema, &ty, &value) {
            // graphql-js puts the offending value into the message, as here.
            problems.push((
                format!(
                    "Variable \"${}\" got invalid value {value}; {problem}",
                    def.name
                ),
                format!("Variable \"${}\": {problem}", def.name),
            ));
        }
        values.insert(def.name.clone(), value);
    }
    if !problems.is_empty() {
        return invalid(400, "BAD_USER_INPUT", problems);
    }

    let mut exec = Executor {
        schema,
        resolver,
        variables: &values,
        errors: Vec::new(),
    };
    let data = exec
        .selection(root, &Value::Null, selection, &[])
        .map(Value::Object)
        .unwrap_or(Value::Null);
    let mut body = Map::new();
    if !exec.errors.is_empty() {
        body.insert("errors".into(), Value::Array(exec.errors));
    }
    body.insert("data".into(), data);
    Answer {
        status: 200,
        body: Value::Object(body),
        violations: Vec::new(),
    }
}

struct Validator<'a> {
    schema: &'a Schema,
    declared: &'a HashMap<String, Ty>,
    used: HashSet<String>,
    /// (message, violation log line).
    errors: Vec<(String, String)>,
}

impl Validator<'_> {
    fn error(&mut self, message: String) {
        self.errors.push((message.clone(), message));
    }

    fn selection(&mut self, type_name: &str, set: &q::SelectionSet<'_, String>) {
        let Some(fields) = self.schema.objects.get(type_name) else {
            return;
        };
        for item in &set.items {
            let q::Selection::Field(field) = item else {
                self.error("Fragments are not supported by the Wiki.js stand-in".into());
                continue;
            };
            if field.name == "__typename" {
                continue;
            }
            let Some(def) = fields.get(&field.name) else {
                self.error(format!(
                    "Cannot query field \"{}\" on type \"{type_name}\".",
                    field.name
                ));
                continue;
            };
            for (name, value) in &field.arguments {
                let Some(arg) = def.args.iter().find(|a| a.name == *name) else {
                    self.error(format!(
                        "Unknown argument \"{name}\" on field \"{type_name}.{}\".",
                        field.name
                    ));
                    continue;
                };
                self.argument(arg, value);
            }
            for arg in &def.args {
                if matches!(arg.ty, Ty::NonNull(_))
                    && !arg.has_default
                    && !field.arguments.iter().any(|(n, _)| *n == arg.name)
                {
                    self.error(format!(
                        "Field \"{}\" argument \"{}\" of type \"{}\" is required, but it was not provided.",
                        field.name, arg.name, arg.ty
                    ));
                }
            }
            let inner = def.ty.named();
            let is_object = self.schema.objects.contains_key(inner);
            match (is_object, field.selection_set.items.is_empty()) {
                (true, true) => self.error(format!(
                    "Field \"{}\" of type \"{}\" must have a selection of subfields. Did you mean \"{} {{ ... }}\"?",
                    field.name, def.ty, field.name
                )),
                (false, false) => self.error(format!(
                    "Field \"{}\" must not have a selection since type \"{}\" has no subfields.",
                    field.name, def.ty
                )),
                (true, false) => self.selection(inner, &field.selection_set),
                (false, true) => {}
            }
        }
    }

    fn argument(&mut self, arg: &Arg, value: &q::Value<'_, String>) {
        match value {
            q::Value::Variable(name) => {
                self.used.insert(name.clone());
                match self.declared.get(name) {
                    None => self.error(format!("Variable \"${name}\" is not defined.")),
                    Some(declared) if !declared.fits(&arg.ty) => self.error(format!(
                        "Variable \"${name}\" of type \"{declared}\" used in position expecting type \"{}\".",
                        arg.ty
                    )),
                    Some(_) => {}
                }
            }
            q::Value::List(items) => {
                for item in items {
                    if let q::Value::Variable(name) = item {
                        self.used.insert(name.clone());
                    }
                }
                if let Err(problem) =
                    check_input(self.schema, &arg.ty, &literal(value, &Map::new()))
                {
                    self.error(format!(
                        "Argument \"{}\" has invalid value: {problem}",
                        arg.name
                    ));
                }
            }
            literal_value => {
                if let Err(problem) =
                    check_input(self.schema, &arg.ty, &literal(literal_value, &Map::new()))
                {
                    self.error(format!(
                        "Argument \"{}\" has invalid value: {problem}",
                        arg.name
                    ));
                }
            }
        }
    }
}

/// A literal (variables substituted) as JSON.
fn literal(value: &q::Value<'_, String>, variables: &Map<String, Value>) -> Value {
    match value {
        q::Value::Variable(name) => variables.get(name).cloned().unwrap_or(Value::Null),
        q::Value::Int(n) => n.as_i64().map_or(Value::Null, |i| json!(i)),
        q::Value::Float(f) => json!(f),
        q::Value::String(s) => json!(s),
        q::Value::Boolean(b) => json!(b),
        q::Value::Null => Value::Null,
        q::Value::Enum(e) => json!(e),
        q::Value::List(items) => {
            Value::Array(items.iter().map(|i| literal(i, variables)).collect())
        }
        q::Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), literal(v, variables)))
                .collect(),
        ),
    }
}

/// graphql-js input coercion, reduced to its verdict.
fn check_input(schema: &Schema, ty: &Ty, value: &Value) -> Result<(), String> {
    match ty {
        Ty::NonNull(inner) => {
            if value.is_null() {
                Err(format!(
                    "Expected non-nullable type \"{ty}\" not to be null."
                ))
            } else {
                check_input(schema, inner, value)
            }
        }
        _ if value.is_null() => Ok(()),
        Ty::List(inner) => match value {
            Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
                check_input(schema, inner, item).map_err(|p| format!("at index {i}: {p}"))
            }),
            single => check_input(schema, inner, single),
        },
        Ty::Named(name) => match (name.as_str(), value) {
            ("String" | "Date", Value::String(_)) => Ok(()),
            ("String" | "Date", other) => Err(format!(
                "String cannot represent a non string value: {other}"
            )),
            ("Int", Value::Number(n)) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {
                Ok(())
            }
            ("Int", other) => Err(format!("Int cannot represent non-integer value: {other}")),
            ("Boolean", Value::Bool(_)) => Ok(()),
            ("Boolean", other) => Err(format!(
                "Boolean cannot represent a non boolean value: {other}"
            )),
            (input, value) => {
                let Some(fields) = schema.inputs.get(input) else {
                    return Err(format!("Unknown type \"{input}\"."));
                };
                let Value::Object(map) = value else {
                    return Err(format!("Expected type \"{input}\" to be an object."));
                };
                for key in map.keys() {
                    if !fields.iter().any(|f| f.name == *key) {
                        return Err(format!(
                            "Field \"{key}\" is not defined by type \"{input}\"."
                        ));
                    }
                }
                for field in fields {
                    match map.get(&field.name) {
                        None if matches!(field.ty, Ty::NonNull(_)) && !field.has_default => {
                            return Err(format!(
                                "Field \"{}\" of required type \"{}\" was not provided.",
                                field.name, field.ty
                            ));
                        }
                        None => {}
                        Some(v) => check_input(schema, &field.ty, v)
                            .map_err(|p| format!("at \"{}\": {p}", field.name))?,
                    }
                }
                Ok(())
            }
        },
    }
}

struct Executor<'a> {
    schema: &'a Schema,
    resolver: &'a mut dyn Resolver,
    variables: &'a Map<String, Value>,
    errors: Vec<Value>,
}

/// A null that must propagate to the nearest nullable parent.
struct Propagate;

impl Executor<'_> {
    fn field_error(&mut self, message: &str, field: &q::Field<'_, String>, path: &[Value]) {
        self.errors.push(json!({
            "message": message,
            "locations": [{"line": field.position.line, "column": field.position.column}],
            "path": path,
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }));
    }

    fn selection(
        &mut self,
        type_name: &str,
        parent: &Value,
        set: &q::SelectionSet<'_, String>,
        path: &[Value],
    ) -> Result<Map<String, Value>, Propagate> {
        let schema = self.schema;
        let mut out = Map::new();
        let Some(fields) = schema.objects.get(type_name) else {
            return Ok(out);
        };
        for item in &set.items {
            let q::Selection::Field(field) = item else {
                continue;
            };
            let key = field.alias.clone().unwrap_or_else(|| field.name.clone());
            if field.name == "__typename" {
                out.insert(key, json!(type_name));
                continue;
            }
            let Some(def) = fields.get(&field.name) else {
                continue;
            };
            let mut here = path.to_vec();
            here.push(json!(key));
            let raw = if let Some(required) = &def.auth
                && !self
                    .resolver
                    .permissions()
                    .iter()
                    .any(|p| required.contains(p))
            {
                Err("Forbidden".to_owned())
            } else if self.resolver.is_namespace(type_name) {
                let args: Map<String, Value> = field
                    .arguments
                    .iter()
                    .map(|(n, v)| (n.clone(), literal(v, self.variables)))
                    .collect();
                self.resolver.resolve(type_name, &field.name, &args)
            } else {
                Ok(parent.get(&field.name).cloned().unwrap_or(Value::Null))
            };
            let value = match raw {
                Ok(raw) => self.complete(&def.ty, raw, field, &here),
                Err(message) => {
                    self.field_error(&message, field, &here);
                    if matches!(def.ty, Ty::NonNull(_)) {
                        Err(Propagate)
                    } else {
                        Ok(Value::Null)
                    }
                }
            };
            out.insert(key, value?);
        }
        Ok(out)
    }

    fn complete(
        &mut self,
        ty: &Ty,
        raw: Value,
        field: &q::Field<'_, String>,
        path: &[Value],
    ) -> Result<Value, Propagate> {
        match ty {
            Ty::NonNull(inner) => match self.complete(inner, raw, field, path)? {
                Value::Null => Err(Propagate),
                value => Ok(value),
            },
            _ if raw.is_null() => Ok(Value::Null),
            Ty::List(inner) => {
                let Value::Array(items) = raw else {
                    return Ok(Value::Null);
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let mut here = path.to_vec();
                    here.push(json!(i));
                    match self.complete(inner, item, field, &here) {
                        Ok(v) => out.push(v),
                        Err(Propagate) => return Ok(Value::Null),
                    }
                }
                Ok(Value::Array(out))
            }
            Ty::Named(name) if self.schema.objects.contains_key(name) => {
                match self.selection(name, &raw, &field.selection_set, path) {
                    Ok(map) => Ok(Value::Object(map)),
                    Err(Propagate) => Ok(Value::Null),
                }
            }
            Ty::Named(_) => Ok(raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_schema_parses_with_its_auth_directives() {
        let schema = schema();
        let strategy = &schema.objects["AuthenticationActiveStrategy"];
        assert_eq!(
            strategy["config"].auth.as_deref(),
            Some(&["manage:system".to_owned()][..])
        );
        assert!(strategy["key"].auth.is_none());
        assert_eq!(schema.inputs["AuthenticationStrategyInput"].len(), 9);
    }

    #[test]
    fn variable_types_follow_graphql_js_subtyping() {
        let s = |n: &str| Ty::Named(n.into());
        let nn = |t: Ty| Ty::NonNull(Box::new(t));
        let list = |t: Ty| Ty::List(Box::new(t));
        assert!(nn(s("String")).fits(&s("String")));
        assert!(!s("String").fits(&nn(s("String"))));
        assert!(nn(list(s("X"))).fits(&nn(list(s("X")))));
        assert!(!list(s("X")).fits(&nn(list(s("X")))));
        assert!(!s("Int").fits(&s("String")));
    }
}
