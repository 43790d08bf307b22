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
//!   with `.key` and `[index]`; `&&`, `||` and parentheses;
//! * space-delimited events: `[ip, user, username, timestamp, request,
//!   status_code = 4*, bytes > 1000]` names the fields of an event split at
//!   spaces (text in double quotes or square brackets is one field); `...`
//!   stands for any number of fields; a field may carry conditions on its
//!   own value (`=`, `!=` with `*` wildcards, number comparisons, joined by
//!   `&&` / `||`). Without `...` the event must have exactly as many fields
//!   as the pattern.
//!
//! Regular expressions (`%...%`) are not supported: they are refused with
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
    /// A space-delimited pattern.
    Fields(Vec<Field>),
}

/// One field of a space-delimited pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// `...`: any number of fields.
    Ellipsis,
    /// A named field and the condition it carries, if any (conditions use
    /// the field names of the pattern as selectors).
    Named(String, Option<Expr>),
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
            let mut p = Parser::new(tokens);
            let e = p.or().map_err(|e| bad(text, &e))?;
            if p.at != p.tokens.len() {
                return Err(bad(text, "unexpected text after the expression"));
            }
            return Ok(Pattern::Json(e));
        }
        if t.starts_with('[') {
            let inner = t
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .ok_or_else(|| bad(text, "a space-delimited pattern must end with ']'"))?;
            return fields_pattern(inner).map_err(|e| bad(text, &e));
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
            Pattern::Fields(fields) => fields_match(fields, &split_fields(message)),
        }
    }
}

/// Splits a log event into fields at spaces; text in double quotes or in
/// square brackets is one field (without its quotes or brackets).
fn split_fields(message: &str) -> Vec<String> {
    let c: Vec<char> = message.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_whitespace() {
            i += 1;
            continue;
        }
        let close = match c[i] {
            '"' => Some('"'),
            '[' => Some(']'),
            _ => None,
        };
        if let Some(close) = close
            && let Some(end) = c[i + 1..].iter().position(|x| *x == close)
        {
            out.push(c[i + 1..i + 1 + end].iter().collect());
            i += end + 2;
            continue;
        }
        let start = i;
        while i < c.len() && !c[i].is_whitespace() {
            i += 1;
        }
        out.push(c[start..i].iter().collect());
    }
    out
}

/// A field of an event as a condition sees it: whole numbers and numbers
/// as numbers, everything else as text.
fn field_value(token: &str) -> Value {
    if let Ok(n) = token.parse::<i64>() {
        return Value::from(n);
    }
    match token.parse::<f64>() {
        Ok(n) if n.is_finite() => serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(token.to_string())),
        _ => Value::String(token.to_string()),
    }
}

fn field_ok(field: &Field, token: &str) -> bool {
    match field {
        Field::Ellipsis => true,
        Field::Named(_, None) => true,
        Field::Named(name, Some(cond)) => {
            let mut m = serde_json::Map::new();
            m.insert(name.clone(), field_value(token));
            eval(cond, &Value::Object(m))
        }
    }
}

/// Whether the pattern's fields match the event's: without `...` field by
/// field; with it, by dynamic programming over (pattern field, event
/// field), so any number of `...` costs at most fields x tokens steps.
fn fields_match(fields: &[Field], tokens: &[String]) -> bool {
    if !fields.contains(&Field::Ellipsis) {
        return fields.len() == tokens.len()
            && fields.iter().zip(tokens).all(|(f, t)| field_ok(f, t));
    }
    let (nf, nt) = (fields.len(), tokens.len());
    // next[j]: fields[i + 1..] match tokens[j..]; cur[j]: fields[i..] do.
    let mut next: Vec<bool> = (0..=nt).map(|j| j == nt).collect();
    for i in (0..nf).rev() {
        let mut cur = vec![false; nt + 1];
        for j in (0..=nt).rev() {
            cur[j] = match &fields[i] {
                Field::Ellipsis => next[j] || (j < nt && cur[j + 1]),
                f => j < nt && next[j + 1] && field_ok(f, &tokens[j]),
            };
        }
        next = cur;
    }
    next[0]
}

/// The selectors a condition uses.
fn selectors(e: &Expr, out: &mut Vec<Vec<Seg>>) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            selectors(a, out);
            selectors(b, out);
        }
        Expr::Cmp(p, _, _)
        | Expr::IsTrue(p)
        | Expr::IsFalse(p)
        | Expr::IsNull(p)
        | Expr::NotExists(p) => out.push(p.clone()),
    }
}

fn fields_pattern(inner: &str) -> Result<Pattern, String> {
    let mut fields = Vec::new();
    for part in split_top_commas(inner)? {
        let part = part.trim();
        if part.is_empty() {
            return Err("a field is empty".into());
        }
        if part == "..." {
            fields.push(Field::Ellipsis);
            continue;
        }
        let name: String = part
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            return Err(format!("field '{part}' must start with a name"));
        }
        let rest = part[name.len()..].trim();
        let cond = if rest.is_empty() {
            None
        } else {
            // `name OP value [&& name OP value ...]`: the conditions name
            // fields the way JSON selectors name keys.
            let expr_text = prefix_names(part);
            let tokens = lex(&expr_text)?;
            let mut p = Parser::new(tokens);
            let e = p.or()?;
            if p.at != p.tokens.len() {
                return Err(format!("unexpected text in field '{part}'"));
            }
            let mut used = Vec::new();
            selectors(&e, &mut used);
            if used.iter().any(|p| *p != [Seg::Key(name.clone())]) {
                return Err(format!(
                    "the conditions of field '{name}' may only test '{name}'"
                ));
            }
            Some(e)
        };
        fields.push(Field::Named(name, cond));
    }
    Ok(Pattern::Fields(fields))
}

/// Rewrites bare field names at the start of each condition (`status = 4*
/// || bytes > 10`) as selectors (`$.status = 4* || $.bytes > 10`).
fn prefix_names(part: &str) -> String {
    let mut out = String::new();
    let mut expect_name = true;
    let mut in_quote = false;
    for c in part.chars() {
        if in_quote {
            out.push(c);
            if c == '"' {
                in_quote = false;
            }
            continue;
        }
        if expect_name && (c.is_alphabetic() || c == '_') {
            out.push_str("$.");
            expect_name = false;
        }
        match c {
            '"' => in_quote = true,
            '&' | '|' | '(' => expect_name = true,
            _ if c.is_whitespace() => {}
            _ => {
                if !c.is_alphanumeric() && c != '_' {
                    expect_name = false;
                }
            }
        }
        out.push(c);
    }
    out
}

fn split_top_commas(s: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    for c in s.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                cur.push(c)
            }
            ',' if !in_quote => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if in_quote {
        return Err("a quoted value is not closed".into());
    }
    parts.push(cur);
    Ok(parts)
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

/// How deep parentheses may nest in a condition. The parser recurses once
/// per level, so an unbounded depth (a 1,024-character pattern holds a
/// thousand `(`) would overflow the thread's stack.
pub const MAX_NESTING: usize = 64;

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
    /// Parentheses open at the current position.
    depth: usize,
}

impl Parser {
    fn new(tokens: Vec<Tok>) -> Parser {
        Parser {
            tokens,
            at: 0,
            depth: 0,
        }
    }

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
                if self.depth >= MAX_NESTING {
                    return Err(format!("parentheses may nest at most {MAX_NESTING} deep"));
                }
                self.depth += 1;
                let e = self.or()?;
                self.depth -= 1;
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

    // The Apache access log example of the filter pattern syntax page.
    #[test]
    fn space_delimited_patterns() {
        let e = r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534"#;
        assert!(m(
            "[ip, user, username, timestamp, request, status_code, bytes]",
            e
        ));
        assert!(m(
            "[ip, user, username, timestamp, request, status_code = 200, bytes > 1000]",
            e
        ));
        assert!(!m(
            "[ip, user, username, timestamp, request, status_code = 200, bytes > 2000]",
            e
        ));
        assert!(m("[..., status_code = 2*, bytes]", e));
        assert!(!m("[..., status_code = 4*, bytes]", e));
        assert!(m("[..., status_code = 4* || status_code = 2*, bytes]", e));
        assert!(m("[ip = 127.0.0.*, ...]", e));
        assert!(m("[ip, user, username = frank, ...]", e));
        assert!(m(
            r#"[..., request = "*apache_pb*", status_code, bytes]"#,
            e
        ));
        assert!(m("[ip, ..., bytes != 0]", e));
        assert!(!m("[ip, user]", e), "field counts differ without ...");
        assert!(m(
            "[..., timestamp = 10/Oct/2000*, request, status_code, bytes]",
            e
        ));
        assert!(m("[..., ip = 127*, ..., bytes = 1534]", e));
        assert!(!m("[..., user = nobody, ...]", e));
        // Many `...` over many fields stays cheap.
        let long = vec!["x"; 5_000].join(" ");
        assert!(!m("[..., ..., ..., ..., y = z, ...]", &long));
        assert!(m("[..., ..., ..., ..., y = x, ...]", &long));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in [
            "{ $.a = }",
            "{ $.a = 1",
            "{ a = 1 }",
            "{ $.a < abc }",
            "\"open",
            "[ip, user",
            "[ip, , user]",
            "[ip = ]",
            "[ip, user = 1 || ip = 2]",
            "%ERR.*%",
            "{ ($.a = 1 }",
        ] {
            let e = Pattern::parse(p).unwrap_err();
            assert_eq!(e.code, "InvalidParameterException", "{p}");
        }
    }

    #[test]
    fn deep_parentheses_are_refused_not_a_stack_overflow() {
        // Within the 1,024-character limit of filterPattern.
        for p in [
            format!("{{ {} }}", "(".repeat(1010)),
            format!("{{ {}$.a = 1{} }}", "(".repeat(500), ")".repeat(500)),
            format!("[a = 1 || {}a = 2{}]", "(".repeat(500), ")".repeat(500)),
        ] {
            let e = Pattern::parse(&p).unwrap_err();
            assert_eq!(e.code, "InvalidParameterException");
            assert!(e.message.contains("nest"), "{}", e.message);
        }
        let ok = format!(
            "{{ {}$.a = 1{} }}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(m(&ok, r#"{"a": 1}"#));
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
