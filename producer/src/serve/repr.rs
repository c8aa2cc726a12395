//! A small, tolerant reader for the Python `repr` of a dict, which is what authentik's default
//! webhook body carries (`model_updated: {'model': {'app': 'authentik_core', …}, …}`).
//!
//! It reads dicts, lists, tuples and sets, strings in either quote with Python's escapes,
//! numbers, `None`/`True`/`False`; anything else it can step over (a call such as
//! `UUID('…')`, a bare name, `<object at 0x…>`) becomes null. Input comes from the network:
//! every failure is an error value, nesting is bounded, and nothing here can panic.

use serde_json::{Map, Number, Value};

/// Deeper than any event context authentik produces; stops stack exhaustion on hostile input.
const MAX_DEPTH: usize = 48;

#[derive(Debug, PartialEq, Eq)]
pub struct ReprError(pub String);

impl std::fmt::Display for ReprError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unreadable Python repr: {}", self.0)
    }
}

/// Parse one value that spans the whole text (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Value, ReprError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
    };
    let value = p.value(0)?;
    p.skip_ws();
    if p.at != p.chars.len() {
        return Err(p.error("unexpected text after the value"));
    }
    Ok(value)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn error(&self, what: &str) -> ReprError {
        ReprError(format!("{what} at character {}", self.at))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ReprError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.skip_ws();
        match self.peek() {
            None => Err(self.error("missing value")),
            Some('{') => {
                self.at += 1;
                self.dict_or_set(depth)
            }
            Some('[') => {
                self.at += 1;
                self.sequence(']', depth).map(Value::Array)
            }
            Some('(') => {
                self.at += 1;
                self.sequence(')', depth).map(Value::Array)
            }
            Some('\'' | '"') => self.string().map(Value::String),
            Some('<') => self.opaque(),
            Some(c) if c == '-' || c == '+' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => self.word(depth),
            Some(c) => Err(self.error(&format!("unexpected `{c}`"))),
        }
    }

    fn dict_or_set(&mut self, depth: usize) -> Result<Value, ReprError> {
        let mut map = Map::new();
        let mut set = Vec::new();
        loop {
            if self.eat('}') {
                break;
            }
            let key = self.value(depth + 1)?;
            if self.eat(':') {
                let value = self.value(depth + 1)?;
                let key = match key {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(key, value);
            } else {
                set.push(key);
            }
            if self.eat(',') {
                continue;
            }
            if self.eat('}') {
                break;
            }
            return Err(self.error("expected `,` or `}`"));
        }
        match (map.is_empty(), set.is_empty()) {
            (_, true) => Ok(Value::Object(map)),
            (true, false) => Ok(Value::Array(set)),
            (false, false) => Err(self.error("a dict with entries that have no value")),
        }
    }

    fn sequence(&mut self, close: char, depth: usize) -> Result<Vec<Value>, ReprError> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
            if self.eat(',') {
                continue;
            }
            if self.eat(close) {
                return Ok(items);
            }
            return Err(self.error(&format!("expected `,` or `{close}`")));
        }
    }

    fn string(&mut self) -> Result<String, ReprError> {
        let quote = self.bump().ok_or_else(|| self.error("missing string"))?;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error("unterminated string")),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => {
                    let escaped = self
                        .bump()
                        .ok_or_else(|| self.error("unterminated string"))?;
                    match escaped {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '0' => out.push('\0'),
                        'x' => out.push(self.hex_char(2)?),
                        'u' => out.push(self.hex_char(4)?),
                        'U' => out.push(self.hex_char(8)?),
                        '\\' | '\'' | '"' => out.push(escaped),
                        other => {
                            out.push('\\');
                            out.push(other);
                        }
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn hex_char(&mut self, digits: usize) -> Result<char, ReprError> {
        let mut code = 0u32;
        for _ in 0..digits {
            let d = self
                .bump()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| self.error("bad escape"))?;
            code = code * 16 + d;
        }
        Ok(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    fn number(&mut self) -> Result<Value, ReprError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.' | '_'))
        {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            // Too big for i64, or `inf`/`nan`: keep the digits as text.
            None => Ok(Value::String(text)),
        }
    }

    /// `None`, `True`, `False`, a string prefix (`b'…'`, `u'…'`, `r'…'`), a bare name, or a
    /// call such as `UUID('…')` / `datetime.datetime(2026, 4, 20, tzinfo=…)`.
    fn word(&mut self, depth: usize) -> Result<Value, ReprError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            self.at += 1;
        }
        let word: String = self.chars[start..self.at].iter().collect();
        if matches!(self.peek(), Some('\'' | '"'))
            && word.len() <= 2
            && word.chars().all(|c| "bBrRuUfF".contains(c))
        {
            return self.string().map(Value::String);
        }
        match word.as_str() {
            "None" => return Ok(Value::Null),
            "True" => return Ok(Value::Bool(true)),
            "False" => return Ok(Value::Bool(false)),
            _ => {}
        }
        if self.peek() == Some('(') {
            self.at += 1;
            // Arguments may be `name=value`: read the name, then the value.
            loop {
                if self.eat(')') {
                    break;
                }
                self.skip_ws();
                let mark = self.at;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.at += 1;
                }
                if !(self.at > mark && self.eat('=')) {
                    self.at = mark;
                }
                self.value(depth + 1)?;
                if self.eat(',') {
                    continue;
                }
                if self.eat(')') {
                    break;
                }
                return Err(self.error("expected `,` or `)`"));
            }
        }
        Ok(Value::Null)
    }

    /// `<object at 0x…>`: skipped to its closing `>`.
    fn opaque(&mut self) -> Result<Value, ReprError> {
        let mut open = 0usize;
        while let Some(c) = self.bump() {
            match c {
                '<' => open += 1,
                '>' => {
                    open -= 1;
                    if open == 0 {
                        return Ok(Value::Null);
                    }
                }
                _ => {}
            }
        }
        Err(self.error("unterminated `<…>`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn authentiks_default_body_context_reads_as_json() {
        let text = "{'model': {'pk': 'e63ddb1436ad497faf55d290db69caf6', 'app': 'authentik_core', 'name': 'Webhook App n1', 'model_name': 'application'}, 'http_request': {'args': {}, 'path': '/api/v3/core/applications/', 'method': 'POST'}}";
        let v = parse(text).expect("parse");
        assert_eq!(v["model"]["pk"], "e63ddb1436ad497faf55d290db69caf6");
        assert_eq!(v["model"]["model_name"], "application");
        assert_eq!(v["http_request"]["args"], json!({}));
    }

    #[test]
    fn python_literals_escapes_and_calls_are_understood() {
        let v = parse(r#"{'a': None, 'b': True, 'c': False, 'd': 12, 'e': -1.5, 'f': "it's", 'g': 'x\'y\n\x41', 'h': [1, (2, 3)], 'i': UUID('abc'), 'j': datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc), 'k': <object at 0x1>, 'l': {1, 2}}"#)
            .expect("parse");
        assert_eq!(
            v,
            json!({"a": null, "b": true, "c": false, "d": 12, "e": -1.5, "f": "it's",
                   "g": "x'y\nA", "h": [1, [2, 3]], "i": null, "j": null, "k": null, "l": [1, 2]})
        );
    }

    #[test]
    fn hostile_input_is_an_error_never_a_panic() {
        for bad in [
            "",
            "{",
            "{'a': }",
            "{'a' 'b'}",
            "'unterminated",
            "{'a': 1} trailing",
            "<<<",
            "{'a': '\\x4'}",
            "f(",
            "{'a': 1, 'b'}",
            "}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
        let deep_calls = "f(".repeat(10_000);
        assert!(parse(&deep_calls).is_err());
    }
}
