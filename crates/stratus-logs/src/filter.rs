//! CloudWatch Logs filter patterns ("Filter pattern syntax for metric
//! filters, subscription filters, filter log events" in the CloudWatch Logs
//! User Guide), as FilterLogEvents applies them:
//!
//! * an empty pattern matches every event;
//! * unstructured text: every term must appear (`ERROR ARGUMENTS`); a
//!   quoted phrase is one term (`"Failed to process"`); terms prefixed with
//!   `?` are alternatives, at least one of which must appear
//!   (`?ERROR ?WARN`); terms prefixed with `-` must not appear
//!   (`ERROR -Exiting`). Terms are case sensitive;
//! * JSON events: `{ $.field = value }` with `=`, `!=` on strings (quoted,
//!   or bare words; `*` is a wildcard) and `=`, `!=`, `<`, `<=`, `>`, `>=`
//!   on numbers; `IS TRUE`, `IS FALSE`, `IS NULL`, `NOT EXISTS`; selectors
//!   with `.key` and `[index]`; `&&`, `||` and parentheses.
//!
//! Space-delimited patterns (`[ip, user, ...]`) and regular expressions
//! (`%...%`) are not supported: they are refused with
//! `InvalidParameterException`.

use serde_json::Value;
use stratus_core::{AwsError, AwsResult};

use crate::invalid;

/// A compiled filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// The empty pattern.
    All,
    /// Unstructured terms.
    Terms {
        /// Every one must appear.
        all: Vec<String>,
        /// At least one must appear (when not empty).
        any: Vec<String>,
        /// None may appear.
        none: Vec<String>,
    },
    /// A JSON expression; events that are not JSON never match.
    Json(Expr),
}

/// One step of a JSON selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// A string; `*` matches any run of characters.
    Str(String),
    Num(f64),
}

/// A JSON filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Vec<Seg>, Op, Lit),
    IsTrue(Vec<Seg>),
    IsFalse(Vec<Seg>),
    IsNull(Vec<Seg>),
    NotExists(Vec<Seg>),
}

fn bad(pattern: &str, why: &str) -> AwsError {
    invalid(format!("Invalid filter pattern '{pattern}': {why}"))
}

impl Pattern {
    /// Compiles `text`.
    ///
    /// Errors: `InvalidParameterException` naming what is wrong (including
    /// the unsupported space-delimited and regular-expression forms).
    pub fn parse(text: &str) -> AwsResult<Pattern> {
        let t = text.trim();
        if t.is_empty() || t == "\"\"" {
            return Ok(Pattern::All);
        }
        if t.starts_with('{') {
            let inner = t
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .ok_or_else(|| bad(text, "a JSON pattern must end with '}'"))?;
            let tokens = lex(inner).map_err(|e| bad(text, &e))?;
            let mut p = Parser { tokens, at: 0 };
            let e = p.or().map_err(|e| bad(text, &e))?;
            if p.at != p.tokens.len() {
                return Err(bad(text, "unexpected text after the expression"));
            }
            return Ok(Pattern::Json(e));
        }
        if t.starts_with('[') {
            return Err(bad(
                text,
                "space-delimited filter patterns are not supported by stratus",
            ));
        }
        if t.starts_with('%') {
            return Err(bad(
                text,
                "regular expression filter patterns are not supported by stratus",
            ));
        }
        terms(t).map_err(|e| bad(text, &e))
    }

    /// Whether the log event `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Terms { all, any, none } => {
                all.iter().all(|t| message.contains(t.as_str()))
                    && (any.is_empty() || any.iter().any(|t| message.contains(t.as_str())))
                    && !none.iter().any(|t| message.contains(t.as_str()))
            }
            Pattern::Json(e) => match serde_json::from_str::<Value>(message.trim()) {
                Ok(v) => eval(e, &v),
                Err(_) => false,
            },
        }
    }
}

fn terms(t: &str) -> Result<Pattern, String> {
    let (mut all, mut any, mut none) = (Vec::new(), Vec::new(), Vec::new());
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let kind = match chars[i] {
            '?' => {
                i += 1;
                1
            }
            '-' if i + 1 < chars.len() && !chars[i + 1].is_whitespace() => {
                i += 1;
                2
            }
            _ => 0,
        };
        let term = if chars.get(i) == Some(&'"') {
            let start = i + 1;
            let mut j = start;
            let mut s = String::new();
            loop {
                match chars.get(j) {
                    None => return Err("a quoted term is not closed".into()),
                    Some('\\') if chars.get(j + 1).is_some() => {
                        s.push(chars[j + 1]);
                        j += 2;
                    }
                    Some('"') => break,
                    Some(c) => {
                        s.push(*c);
                        j += 1;
                    }
                }
            }
            i = j + 1;
            s
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            chars[start..i].iter().collect()
        };
        if term.is_empty() {
            return Err("a term is empty".into());
        }
        match kind {
            1 => any.push(term),
            2 => none.push(term),
            _ => all.push(term),
        }
    }
    Ok(Pattern::Terms { all, any, none })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Op(Op),
    Selector(Vec<Seg>),
    Quoted(String),
    Word(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        match ch {
            _ if ch.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '&' if next == Some('&') => {
                out.push(Tok::And);
                i += 2
            }
            '|' if next == Some('|') => {
                out.push(Tok::Or);
                i += 2
            }
            '=' => {
                out.push(Tok::Op(Op::Eq));
                i += if next == Some('=') { 2 } else { 1 }
            }
            '!' if next == Some('=') => {
                out.push(Tok::Op(Op::Ne));
                i += 2
            }
            '<' | '>' => {
                let eq = next == Some('=');
                out.push(Tok::Op(match (ch, eq) {
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    (_, true) => Op::Ge,
                    _ => Op::Gt,
                }));
                i += if eq { 2 } else { 1 }
            }
            '"' => {
                let mut j = i + 1;
                let mut text = String::new();
                loop {
                    match c.get(j) {
                        None => return Err("a quoted value is not closed".into()),
                        Some('\\') if j + 1 < c.len() => {
                            text.push(c[j + 1]);
                            j += 2
                        }
                        Some('"') => break,
                        Some(x) => {
                            text.push(*x);
                            j += 1
                        }
                    }
                }
                out.push(Tok::Quoted(text));
                i = j + 1;
            }
            '$' => {
                let (segs, j) = selector(&c, i)?;
                out.push(Tok::Selector(segs));
                i = j;
            }
            _ => {
                let start = i;
                while i < c.len()
                    && !c[i].is_whitespace()
                    && !matches!(c[i], '(' | ')' | '=' | '!' | '<' | '>' | '&' | '|' | '"')
                {
                    i += 1;
                }
                if i == start {
                    return Err(format!("unexpected '{ch}'"));
                }
                out.push(Tok::Word(c[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

/// `$` followed by `.key` and `[n]` steps; returns the steps and the index
/// after the selector.
fn selector(c: &[char], start: usize) -> Result<(Vec<Seg>, usize), String> {
    let mut i = start + 1;
    let mut segs = Vec::new();
    loop {
        match c.get(i) {
            Some('.') => {
                let s = i + 1;
                let mut j = s;
                while j < c.len()
                    && (c[j].is_alphanumeric() || matches!(c[j], '_' | '-' | '@' | '$'))
                {
                    j += 1;
                }
                if j == s {
                    return Err("a selector step after '.' needs a key".into());
                }
                segs.push(Seg::Key(c[s..j].iter().collect()));
                i = j;
            }
            Some('[') => {
                let s = i + 1;
                let mut j = s;
                while j < c.len() && c[j].is_ascii_digit() {
                    j += 1;
                }
                if j == s || c.get(j) != Some(&']') {
                    return Err("a selector index must be [number]".into());
                }
                let n: String = c[s..j].iter().collect();
                segs.push(Seg::Index(n.parse().map_err(|_| "index too large")?));
                i = j + 1;
            }
            _ => break,
        }
    }
    if segs.is_empty() {
        return Err("a selector must name a field, as in $.field".into());
    }
    Ok((segs, i))
}

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            e = Expr::And(Box::new(e), Box::new(self.primary()?));
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Open) => {
                let e = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(e),
                    _ => Err("a '(' is not closed".into()),
                }
            }
            Some(Tok::Selector(path)) => self.condition(path),
            Some(t) => Err(format!("expected a selector such as $.field, found {t:?}")),
            None => Err("the expression is empty".into()),
        }
    }

    fn condition(&mut self, path: Vec<Seg>) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IS") => match self.next() {
                Some(Tok::Word(v)) if v.eq_ignore_ascii_case("TRUE") => Ok(Expr::IsTrue(path)),
                Some(Tok::Word(v)) if v.eq_ignore_ascii_case("FALSE") => Ok(Expr::IsFalse(path)),
                Some(Tok::Word(v)) if v.eq_ignore_ascii_case("NULL") => Ok(Expr::IsNull(path)),
                _ => Err("IS must be followed by TRUE, FALSE or NULL".into()),
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NOT") => match self.next() {
                Some(Tok::Word(v)) if v.eq_ignore_ascii_case("EXISTS") => Ok(Expr::NotExists(path)),
                _ => Err("NOT must be followed by EXISTS".into()),
            },
            Some(Tok::Op(op)) => {
                let lit = match self.next() {
                    Some(Tok::Quoted(s)) => Lit::Str(s),
                    Some(Tok::Word(w)) => match w.parse::<f64>() {
                        Ok(n) if n.is_finite() => Lit::Num(n),
                        _ => Lit::Str(w),
                    },
                    _ => return Err("a comparison needs a value".into()),
                };
                if matches!(lit, Lit::Str(_)) && !matches!(op, Op::Eq | Op::Ne) {
                    return Err("strings can only be compared with = and !=".into());
                }
                Ok(Expr::Cmp(path, op, lit))
            }
            _ => Err("a selector must be followed by a comparison, IS or NOT EXISTS".into()),
        }
    }
}

fn lookup<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for s in path {
        cur = match s {
            Seg::Key(k) => cur.as_object()?.get(k)?,
            Seg::Index(i) => cur.as_array()?.get(*i)?,
        };
    }
    Some(cur)
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(p) => rest = &rest[p + mid.len()..],
            None => return false,
        }
    }
    true
}

fn eval(e: &Expr, v: &Value) -> bool {
    match e {
        Expr::And(a, b) => eval(a, v) && eval(b, v),
        Expr::Or(a, b) => eval(a, v) || eval(b, v),
        Expr::IsTrue(p) => lookup(v, p) == Some(&Value::Bool(true)),
        Expr::IsFalse(p) => lookup(v, p) == Some(&Value::Bool(false)),
        Expr::IsNull(p) => lookup(v, p) == Some(&Value::Null),
        Expr::NotExists(p) => lookup(v, p).is_none(),
        Expr::Cmp(p, op, lit) => {
            let Some(field) = lookup(v, p) else {
                return false;
            };
            match lit {
                Lit::Num(n) => {
                    let Some(x) = field.as_f64() else {
                        return false;
                    };
                    match op {
                        Op::Eq => x == *n,
                        Op::Ne => x != *n,
                        Op::Lt => x < *n,
                        Op::Le => x <= *n,
                        Op::Gt => x > *n,
                        Op::Ge => x >= *n,
                    }
                }
                Lit::Str(s) => {
                    let text = match field {
                        Value::String(t) => t.clone(),
                        Value::Number(_) | Value::Bool(_) => field.to_string(),
                        _ => return false,
                    };
                    let m = glob(s, &text);
                    if *op == Op::Eq { m } else { !m }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, msg: &str) -> bool {
        Pattern::parse(p).unwrap().matches(msg)
    }

    // Examples from the CloudWatch Logs User Guide's filter pattern syntax.
    #[test]
    fn unstructured_terms() {
        assert!(m("", "anything"));
        assert!(m("ERROR", "[ERROR] A fatal exception has occurred"));
        assert!(!m("ERROR", "[INFO] all good"));
        assert!(!m("error", "[ERROR] case matters"));
        assert!(m("ERROR ARGUMENTS", "[ERROR] Invalid ARGUMENTS given"));
        assert!(!m("ERROR ARGUMENTS", "[ERROR] A fatal exception"));
        assert!(m("?ERROR ?WARN", "[WARN] disk"));
        assert!(m("?ERROR ?WARN", "[ERROR] disk"));
        assert!(!m("?ERROR ?WARN", "[INFO] disk"));
        assert!(m(
            "ERROR -Exiting",
            "[ERROR] Caught IllegalArgumentException"
        ));
        assert!(!m("ERROR -Exiting", "[ERROR] Unhandled exception. Exiting"));
        assert!(m("\"Failed to process\"", "Failed to process the request"));
        assert!(!m(
            "\"Failed to process\"",
            "Failed to parse, process later"
        ));
        assert!(m("?\"not found\" ?timeout", "user not found"));
    }

    #[test]
    fn json_patterns() {
        let e = r#"{"eventType": "UpdateTrail", "sourceIPAddress": "123.123.1.2", "latency": 50,
                    "ok": true, "gone": null, "items": [{"id": "a"}, {"id": "b"}], "user": {"name": "Mary"}}"#;
        assert!(m("{ $.eventType = UpdateTrail }", e));
        assert!(m("{ $.eventType = \"UpdateTrail\" }", e));
        assert!(!m("{ $.eventType = CreateTrail }", e));
        assert!(m("{ $.eventType != CreateTrail }", e));
        assert!(m("{ $.sourceIPAddress = 123.123.* }", e));
        assert!(!m("{ $.sourceIPAddress != 123.123.* }", e));
        assert!(m("{ $.latency > 49 }", e));
        assert!(m("{ $.latency >= 50 && $.latency <= 50 }", e));
        assert!(!m("{ $.latency < 50 }", e));
        assert!(m("{ $.ok IS TRUE }", e));
        assert!(!m("{ $.ok IS FALSE }", e));
        assert!(m("{ $.gone IS NULL }", e));
        assert!(m("{ $.missing NOT EXISTS }", e));
        assert!(!m("{ $.latency NOT EXISTS }", e));
        assert!(m("{ $.items[1].id = b }", e));
        assert!(m("{ $.user.name = M* }", e));
        assert!(m(
            "{ ($.eventType = CreateTrail) || ($.latency = 50 && $.user.name = Mary) }",
            e
        ));
        assert!(!m("{ $.eventType = UpdateTrail }", "not json at all"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in [
            "{ $.a = }",
            "{ $.a = 1",
            "{ a = 1 }",
            "{ $.a < abc }",
            "\"open",
            "[ip, user]",
            "%ERR.*%",
            "{ ($.a = 1 }",
        ] {
            let e = Pattern::parse(p).unwrap_err();
            assert_eq!(e.code, "InvalidParameterException", "{p}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "a1b2c"));
        assert!(!glob("a*b*c", "a1c"));
        assert!(!glob("abc", "abcd"));
    }
}
