//! Paths and payload templates (JSONPath mode).
//!
//! * [`Path`]: a JSONPath as Step Functions evaluates it (Jayway semantics:
//!   a *definite* path selects one value or nothing; an *indefinite* path,
//!   one with `[*]`, `..`, slices, unions or filters, selects an array of
//!   every match, possibly empty). The root is the state's input (`$`), the
//!   context object (`$$`) or a variable (`$name`).
//! * Reference paths (ResultPath, ItemsPath, `*Path` fields): only `.name`,
//!   `['name']` and `[index]` steps ([`Path::is_reference`]).
//! * [`Template`]: a payload template (Parameters, ResultSelector,
//!   ItemSelector, Assign) with `.$` keys, compiled once at definition time.
//! * [`insert_result`]: ResultPath insertion.
//!
//! Rules: "Paths", "Reference Paths" and "Payload Template" in the Amazon
//! States Language specification (<https://states-language.net/spec.html>);
//! "Input and Output Processing" in the Step Functions Developer Guide.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// The deepest nesting of brackets and filters a path may have; deeper
/// paths are rejected rather than parsed recursively without bound.
const MAX_PATH_DEPTH: usize = 32;

/// Where a path starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Root {
    /// `$`: the state's input (or the value being filtered).
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Variable(String),
}

/// One step of a path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// `.name` or `['name']`.
    Field(String),
    /// `[n]` (negative counts from the end, as in Jayway).
    Index(i64),
    /// `.*` or `[*]`.
    Wildcard,
    /// `['a','b']`.
    Fields(Vec<String>),
    /// `[0,2]`.
    Indexes(Vec<i64>),
    /// `[start:end:step]`.
    Slice(Option<i64>, Option<i64>, Option<i64>),
    /// `..` followed by a step: applies the step at every depth.
    Descend(Box<Step>),
    /// `[?(...)]`.
    Filter(Box<Filter>),
    /// `.length()` (Jayway function on arrays, strings and objects).
    Length,
}

impl Step {
    fn definite(&self) -> bool {
        matches!(self, Step::Field(_) | Step::Index(_) | Step::Length)
    }
}

/// A filter expression (`[?(@.price < 10 && @.name)]`).
#[derive(Clone, Debug, PartialEq)]
enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    Not(Box<Filter>),
    Exists(Operand),
    Compare(Operand, CmpOp, Operand),
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    /// `@...` (relative to the item) or `$...` (relative to the root).
    Path {
        relative: bool,
        steps: Vec<Step>,
    },
    Literal(Value),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A compiled JSONPath.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    text: String,
    root: Root,
    steps: Vec<Step>,
    definite: bool,
}

impl Path {
    /// Parses a path: `$`, `$.a.b[0]`, `$['a b']`, `$..x`, `$.a[*]`,
    /// `$.a[?(@.x > 1)]`, `$$.Execution.Id`, `$var.field`.
    /// Err: a message naming what is wrong.
    pub fn parse(text: &str) -> Result<Path, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            text,
            i: 0,
            depth: 0,
        };
        let root = p.root()?;
        let steps = p.steps(false)?;
        if p.i != p.s.len() {
            return Err(format!(
                "unexpected character '{}' at position {}",
                p.peek_char(),
                p.i
            ));
        }
        let definite = steps.iter().all(Step::definite);
        Ok(Path {
            text: text.to_string(),
            root,
            steps,
            definite,
        })
    }

    /// The path as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where the path starts.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// `$` alone (or `$$`, `$name` alone).
    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether the path selects at most one value (no wildcards, slices,
    /// unions, filters or `..`).
    pub fn is_definite(&self) -> bool {
        self.definite
    }

    /// Whether this is a *reference path*: only field names and array
    /// indexes (the spec's rule for ResultPath, ItemsPath and `*Path`
    /// fields).
    pub fn is_reference(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s, Step::Field(_) | Step::Index(_)))
    }

    /// Selects from `root` (the value of the path's root: the input, the
    /// context object or the variable). `None` = the path selects nothing
    /// (a definite path with a missing step). Indefinite paths return an
    /// array of every match (possibly empty).
    pub fn select(&self, root: &Value) -> Option<Value> {
        if self.definite {
            select_definite(root, &self.steps)
        } else {
            let mut out = Vec::new();
            collect(root, root, &self.steps, &mut out);
            Some(Value::Array(out.into_iter().cloned().collect()))
        }
    }

    /// Like [`Path::select`] for definite paths without `.length()`, as a
    /// reference into `root`.
    pub fn select_ref<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        let mut cur = root;
        for s in &self.steps {
            cur = match s {
                Step::Field(f) => cur.as_object()?.get(f)?,
                Step::Index(i) => index(cur.as_array()?, *i)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The path's steps in Jayway's normalized form (`$['a'][0]`), as
    /// Step Functions quotes paths in some error causes.
    pub fn normalized(&self) -> String {
        let mut s = match &self.root {
            Root::Input => "$".to_string(),
            Root::Context => "$$".to_string(),
            Root::Variable(v) => format!("${v}"),
        };
        for st in &self.steps {
            match st {
                Step::Field(f) => s.push_str(&format!("['{f}']")),
                Step::Index(i) => s.push_str(&format!("[{i}]")),
                Step::Wildcard => s.push_str("[*]"),
                _ => return self.text.clone(),
            }
        }
        s
    }
}

fn index(a: &[Value], i: i64) -> Option<&Value> {
    let len = a.len() as i64;
    let i = if i < 0 { len + i } else { i };
    if i < 0 || i >= len {
        None
    } else {
        a.get(i as usize)
    }
}

fn select_definite(root: &Value, steps: &[Step]) -> Option<Value> {
    let mut cur = root;
    for (n, s) in steps.iter().enumerate() {
        match s {
            Step::Field(f) => cur = cur.as_object()?.get(f)?,
            Step::Index(i) => cur = index(cur.as_array()?, *i)?,
            Step::Length => {
                let len = match cur {
                    Value::Array(a) => a.len(),
                    Value::Object(o) => o.len(),
                    Value::String(s) => s.chars().count(),
                    _ => return None,
                };
                if n + 1 != steps.len() {
                    return None;
                }
                return Some(Value::from(len));
            }
            _ => return None,
        }
    }
    Some(cur.clone())
}

/// Appends every match of `steps` applied to `cur` (`root` for `$` inside
/// filters).
fn collect<'v>(root: &'v Value, cur: &'v Value, steps: &[Step], out: &mut Vec<&'v Value>) {
    let Some((first, rest)) = steps.split_first() else {
        out.push(cur);
        return;
    };
    match first {
        Step::Field(f) => {
            if let Some(v) = cur.as_object().and_then(|o| o.get(f)) {
                collect(root, v, rest, out);
            }
        }
        Step::Index(i) => {
            if let Some(v) = cur.as_array().and_then(|a| index(a, *i)) {
                collect(root, v, rest, out);
            }
        }
        Step::Wildcard => match cur {
            Value::Array(a) => a.iter().for_each(|v| collect(root, v, rest, out)),
            Value::Object(o) => o.values().for_each(|v| collect(root, v, rest, out)),
            _ => {}
        },
        Step::Fields(fs) => {
            if let Some(o) = cur.as_object() {
                for f in fs {
                    if let Some(v) = o.get(f) {
                        collect(root, v, rest, out);
                    }
                }
            }
        }
        Step::Indexes(is) => {
            if let Some(a) = cur.as_array() {
                for i in is {
                    if let Some(v) = index(a, *i) {
                        collect(root, v, rest, out);
                    }
                }
            }
        }
        Step::Slice(start, end, step) => {
            if let Some(a) = cur.as_array() {
                for i in slice_indexes(a.len(), *start, *end, *step) {
                    collect(root, &a[i], rest, out);
                }
            }
        }
        Step::Descend(inner) => descend(root, cur, inner, rest, out, 0),
        Step::Filter(f) => match cur {
            Value::Array(a) => {
                for v in a {
                    if f.test(root, v) {
                        collect(root, v, rest, out);
                    }
                }
            }
            Value::Object(_) if f.test(root, cur) => collect(root, cur, rest, out),
            _ => {}
        },
        Step::Length => {}
    }
}

/// The deepest level `..` descends to (serde_json parses at most 128
/// levels, so this is never reached by parsed input).
const MAX_DESCEND: usize = 256;

fn descend<'v>(
    root: &'v Value,
    cur: &'v Value,
    step: &Step,
    rest: &[Step],
    out: &mut Vec<&'v Value>,
    depth: usize,
) {
    if depth > MAX_DESCEND {
        return;
    }
    let mut here = Vec::with_capacity(1 + rest.len());
    here.push(step.clone());
    here.extend_from_slice(rest);
    collect(root, cur, &here, out);
    match cur {
        Value::Array(a) => a
            .iter()
            .for_each(|v| descend(root, v, step, rest, out, depth + 1)),
        Value::Object(o) => o
            .values()
            .for_each(|v| descend(root, v, step, rest, out, depth + 1)),
        _ => {}
    }
}

fn slice_indexes(
    len: usize,
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
) -> Vec<usize> {
    let len = len as i64;
    let step = step.unwrap_or(1);
    if step <= 0 {
        return Vec::new();
    }
    let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
    let s = norm(start.unwrap_or(0));
    let e = norm(end.unwrap_or(len));
    let mut out = Vec::new();
    let mut i = s;
    while i < e {
        out.push(i as usize);
        i += step;
    }
    out
}

impl Filter {
    fn test(&self, root: &Value, item: &Value) -> bool {
        match self {
            Filter::Or(fs) => fs.iter().any(|f| f.test(root, item)),
            Filter::And(fs) => fs.iter().all(|f| f.test(root, item)),
            Filter::Not(f) => !f.test(root, item),
            Filter::Exists(o) => match o.value(root, item) {
                Some(Value::Bool(b)) => b,
                Some(_) => true,
                None => false,
            },
            Filter::Compare(a, op, b) => {
                let (Some(a), Some(b)) = (a.value(root, item), b.value(root, item)) else {
                    return false;
                };
                compare(&a, *op, &b)
            }
        }
    }
}

impl Operand {
    fn value(&self, root: &Value, item: &Value) -> Option<Value> {
        match self {
            Operand::Literal(v) => Some(v.clone()),
            Operand::Path { relative, steps } => {
                let base = if *relative { item } else { root };
                if steps.iter().all(Step::definite) {
                    select_definite(base, steps)
                } else {
                    let mut out = Vec::new();
                    collect(root, base, steps, &mut out);
                    Some(Value::Array(out.into_iter().cloned().collect()))
                }
            }
        }
    }
}

fn compare(a: &Value, op: CmpOp, b: &Value) -> bool {
    let ord = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => {
            return match op {
                CmpOp::Eq => a == b,
                CmpOp::Ne => a != b,
                _ => false,
            };
        }
    };
    let Some(ord) = ord else { return false };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
}

fn is_name_byte(b: u8) -> bool {
    !matches!(
        b,
        b'.' | b'[' | b']' | b' ' | b'(' | b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b','
    ) && b != b'\''
        && b != b'"'
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_char(&self) -> char {
        self.text[self.i..].chars().next().unwrap_or(' ')
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn root(&mut self) -> Result<Root, String> {
        if !self.eat(b'$') {
            return Err("a path must begin with '$'".into());
        }
        if self.eat(b'$') {
            return Ok(Root::Context);
        }
        let start = self.i;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 {
                self.i += 1;
            } else {
                break;
            }
        }
        if self.i > start {
            let name = &self.text[start..self.i];
            if name.as_bytes()[0].is_ascii_digit() {
                return Err(format!("invalid variable name '{name}'"));
            }
            return Ok(Root::Variable(name.to_string()));
        }
        Ok(Root::Input)
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if is_name_byte(b) {
                self.i += 1;
            } else {
                break;
            }
        }
        if self.i == start {
            return Err(format!("expected a field name at position {start}"));
        }
        Ok(self.text[start..self.i].to_string())
    }

    /// Steps until the end of the text, or (inside a filter) until a
    /// character that cannot continue a path.
    fn steps(&mut self, in_filter: bool) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.i += 1;
                    if self.eat(b'.') {
                        let inner = if self.eat(b'*') {
                            Step::Wildcard
                        } else if self.peek() == Some(b'[') {
                            self.bracket()?
                        } else {
                            Step::Field(self.name()?)
                        };
                        steps.push(Step::Descend(Box::new(inner)));
                    } else if self.eat(b'*') {
                        steps.push(Step::Wildcard);
                    } else {
                        let name = self.name()?;
                        if name == "length" && self.s[self.i..].starts_with(b"()") {
                            self.i += 2;
                            steps.push(Step::Length);
                        } else {
                            steps.push(Step::Field(name));
                        }
                    }
                }
                Some(b'[') => steps.push(self.bracket()?),
                None => return Ok(steps),
                Some(_) if in_filter => return Ok(steps),
                Some(_) => {
                    return Err(format!(
                        "unexpected character '{}' at position {}",
                        self.peek_char(),
                        self.i
                    ));
                }
            }
            if steps.len() > 4096 {
                return Err("path too long".into());
            }
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or("unterminated string")?;
        self.i += 1;
        let mut out = String::new();
        loop {
            let c = self.text[self.i..]
                .chars()
                .next()
                .ok_or_else(|| "unterminated string".to_string())?;
            self.i += c.len_utf8();
            if c as u32 == q as u32 {
                return Ok(out);
            }
            if c == '\\' {
                let n = self.text[self.i..]
                    .chars()
                    .next()
                    .ok_or_else(|| "unterminated string".to_string())?;
                self.i += n.len_utf8();
                out.push(n);
            } else {
                out.push(c);
            }
        }
    }

    fn int(&mut self) -> Result<Option<i64>, String> {
        self.skip_ws();
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        let t = &self.text[start..self.i];
        self.skip_ws();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<i64>()
            .map(Some)
            .map_err(|_| format!("invalid index '{t}'"))
    }

    fn bracket(&mut self) -> Result<Step, String> {
        self.depth += 1;
        if self.depth > MAX_PATH_DEPTH {
            return Err("path nested too deeply".into());
        }
        self.i += 1; // '['
        self.skip_ws();
        let step = match self.peek() {
            Some(b'*') => {
                self.i += 1;
                Step::Wildcard
            }
            Some(b'\'') | Some(b'"') => {
                let mut names = vec![self.quoted()?];
                self.skip_ws();
                while self.eat(b',') {
                    self.skip_ws();
                    names.push(self.quoted()?);
                    self.skip_ws();
                }
                if names.len() == 1 {
                    Step::Field(names.pop().unwrap_or_default())
                } else {
                    Step::Fields(names)
                }
            }
            Some(b'?') => {
                self.i += 1;
                self.skip_ws();
                if !self.eat(b'(') {
                    return Err("expected '(' after '?'".into());
                }
                let f = self.or()?;
                self.skip_ws();
                if !self.eat(b')') {
                    return Err("expected ')' closing the filter".into());
                }
                Step::Filter(Box::new(f))
            }
            _ => {
                let first = self.int()?;
                if self.eat(b':') {
                    let end = self.int()?;
                    let step = if self.eat(b':') { self.int()? } else { None };
                    Step::Slice(first, end, step)
                } else {
                    let first =
                        first.ok_or_else(|| format!("invalid bracket at position {}", self.i))?;
                    let mut all = vec![first];
                    while self.eat(b',') {
                        all.push(self.int()?.ok_or("expected an index")?);
                    }
                    if all.len() == 1 {
                        Step::Index(first)
                    } else {
                        Step::Indexes(all)
                    }
                }
            }
        };
        self.skip_ws();
        if !self.eat(b']') {
            return Err(format!("expected ']' at position {}", self.i));
        }
        self.depth -= 1;
        Ok(step)
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut v = vec![self.and()?];
        loop {
            self.skip_ws();
            if self.s[self.i..].starts_with(b"||") {
                self.i += 2;
                v.push(self.and()?);
            } else {
                break;
            }
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap_or(Filter::And(Vec::new()))
        } else {
            Filter::Or(v)
        })
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut v = vec![self.unary()?];
        loop {
            self.skip_ws();
            if self.s[self.i..].starts_with(b"&&") {
                self.i += 2;
                v.push(self.unary()?);
            } else {
                break;
            }
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap_or(Filter::And(Vec::new()))
        } else {
            Filter::And(v)
        })
    }

    fn unary(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_PATH_DEPTH {
            return Err("path nested too deeply".into());
        }
        self.skip_ws();
        let r = if self.peek() == Some(b'!') && self.s.get(self.i + 1) != Some(&b'=') {
            self.i += 1;
            Filter::Not(Box::new(self.unary()?))
        } else if self.eat(b'(') {
            let f = self.or()?;
            self.skip_ws();
            if !self.eat(b')') {
                return Err("expected ')'".into());
            }
            f
        } else {
            let a = self.operand()?;
            self.skip_ws();
            let rest = &self.s[self.i..];
            let op = [
                (&b"=="[..], CmpOp::Eq),
                (b"!=", CmpOp::Ne),
                (b"<=", CmpOp::Le),
                (b">=", CmpOp::Ge),
                (b"<", CmpOp::Lt),
                (b">", CmpOp::Gt),
            ]
            .into_iter()
            .find(|(t, _)| rest.starts_with(t));
            match op {
                Some((t, op)) => {
                    self.i += t.len();
                    let b = self.operand()?;
                    Filter::Compare(a, op, b)
                }
                None => Filter::Exists(a),
            }
        };
        self.depth -= 1;
        Ok(r)
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some(b'@') => {
                self.i += 1;
                Ok(Operand::Path {
                    relative: true,
                    steps: self.steps(true)?,
                })
            }
            Some(b'$') => {
                self.i += 1;
                Ok(Operand::Path {
                    relative: false,
                    steps: self.steps(true)?,
                })
            }
            Some(b'\'') | Some(b'"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            _ => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
                {
                    self.i += 1;
                }
                let t = &self.text[start..self.i];
                match t {
                    "true" => Ok(Operand::Literal(Value::Bool(true))),
                    "false" => Ok(Operand::Literal(Value::Bool(false))),
                    "null" => Ok(Operand::Literal(Value::Null)),
                    _ => serde_json::from_str::<serde_json::Number>(t)
                        .map(|n| Operand::Literal(Value::Number(n)))
                        .map_err(|_| format!("invalid filter operand '{t}'")),
                }
            }
        }
    }
}

/// Places `result` into `input` at the reference path `path` (ResultPath):
/// `$` replaces the input; otherwise missing fields are created as
/// objects. Err: the cause Step Functions gives when a step of the path
/// exists but is not an object (or a missing/out-of-range array index).
pub fn insert_result(input: Value, path: &Path, result: Value) -> Result<Value, String> {
    if path.steps.is_empty() {
        return Ok(result);
    }
    let mut root = input;
    let fail = |input: &Value| {
        format!(
            "Unable to apply ResultPath '{}' to input '{}'",
            path.text,
            serde_json::to_string(input).unwrap_or_default()
        )
    };
    if !root.is_object() && !matches!(path.steps[0], Step::Index(_)) {
        return Err(fail(&root));
    }
    {
        let mut cur = &mut root;
        let last = path.steps.len() - 1;
        for (n, s) in path.steps.iter().enumerate() {
            let ok = match (s, &*cur) {
                (Step::Field(_), Value::Object(_)) => true,
                (Step::Index(i), Value::Array(a)) => index(a, *i).is_some(),
                _ => false,
            };
            if !ok {
                break;
            }
            match s {
                Step::Field(f) => {
                    let Value::Object(o) = cur else { break };
                    if n == last {
                        o.insert(f.clone(), result);
                        return Ok(root);
                    }
                    cur = o
                        .entry(f.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !cur.is_object() && !cur.is_array() {
                        break;
                    }
                }
                Step::Index(i) => {
                    let Value::Array(a) = cur else { break };
                    let len = a.len() as i64;
                    let idx = if *i < 0 { len + i } else { *i } as usize;
                    let Some(slot) = a.get_mut(idx) else { break };
                    if n == last {
                        *slot = result;
                        return Ok(root);
                    }
                    cur = slot;
                }
                _ => break,
            }
        }
    }
    Err(fail(&root))
}

/// A value built on first use (the context object `$$`, which most
/// states never read).
pub struct Lazy<'f> {
    cell: std::cell::OnceCell<Value>,
    build: &'f dyn Fn(Option<&str>) -> Value,
}

impl<'f> Lazy<'f> {
    /// A value that `build` makes when first asked for: `build(None)` the
    /// whole object, `build(Some(field))` an object with only that
    /// top-level field (so `$$.Map.Item.Index` does not copy
    /// `$$.Execution.Input`).
    pub fn new(build: &'f dyn Fn(Option<&str>) -> Value) -> Lazy<'f> {
        Lazy {
            cell: std::cell::OnceCell::new(),
            build,
        }
    }

    /// The whole value (built now if not yet).
    pub fn get(&self) -> &Value {
        self.cell.get_or_init(|| (self.build)(None))
    }

    /// What `p` selects from the value.
    pub fn select(&self, p: &Path) -> Option<Value> {
        if let Some(whole) = self.cell.get() {
            return p.select(whole);
        }
        match p.steps.first() {
            Some(Step::Field(f)) => p.select(&(self.build)(Some(f))),
            _ => p.select(self.get()),
        }
    }
}

/// What a payload template evaluates against.
pub struct Scope<'a> {
    /// `$`.
    pub input: &'a Value,
    /// `$$`.
    pub context: &'a Lazy<'a>,
    /// `$name` lookups.
    pub variable: &'a dyn Fn(&str) -> Option<Value>,
    /// Randomness for States.MathRandom / States.UUID.
    pub entropy: &'a mut dyn crate::Entropy,
}

/// A failure while evaluating a path or template: `error` is the States.*
/// name, `cause` AWS's wording.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalError {
    pub error: String,
    pub cause: String,
}

impl EvalError {
    pub(crate) fn runtime(cause: String) -> EvalError {
        EvalError {
            error: "States.Runtime".into(),
            cause,
        }
    }
}

impl Scope<'_> {
    /// Resolves a path against this scope. `None` = selects nothing
    /// (or an unknown variable).
    pub fn resolve(&self, p: &Path) -> Option<Value> {
        match &p.root {
            Root::Input => p.select(self.input),
            Root::Context => self.context.select(p),
            Root::Variable(name) => {
                let v = (self.variable)(name)?;
                p.select(&v)
            }
        }
    }

    /// Resolves path text (parsing it first); `None` when it is not a
    /// valid path or selects nothing.
    pub fn resolve_text(&self, text: &str) -> Option<Value> {
        let p = Path::parse(text).ok()?;
        self.resolve(&p)
    }
}

/// A compiled payload template.
#[derive(Clone, Debug)]
pub enum Template {
    /// A subtree without `.$` keys, used as is.
    Static(Value),
    /// An object with at least one dynamic field somewhere below.
    Object(Vec<(String, Template)>),
    /// An array with at least one dynamic element.
    Array(Vec<Template>),
    /// `"name.$": "$.path"`.
    Path { field: String, path: Path },
    /// `"name.$": "States.Format(...)"`.
    Intrinsic {
        field: String,
        call: Box<crate::intrinsics::Call>,
        /// The call's path arguments, compiled.
        paths: std::collections::HashMap<String, Path>,
    },
}

impl Template {
    /// Compiles a payload template. Err: (JSON pointer suffix, message) for
    /// the first `.$` field whose value is not a string holding a valid
    /// path or intrinsic function.
    pub fn compile(v: &Value) -> Result<Template, (String, String)> {
        Self::compile_at(v, "", 0)
    }

    fn compile_at(v: &Value, at: &str, depth: usize) -> Result<Template, (String, String)> {
        if depth > 512 {
            return Err((
                at.to_string(),
                "The payload template is nested too deeply".into(),
            ));
        }
        match v {
            Value::Object(o) => {
                let mut dynamic = false;
                let mut fields = Vec::with_capacity(o.len());
                let mut seen = std::collections::HashSet::new();
                for (k, v) in o {
                    let here = format!("{at}/{}", pointer_escape(k));
                    if !seen.insert(k.strip_suffix(".$").unwrap_or(k)) {
                        return Err((
                            here,
                            format!(
                                "The field '{}' appears more than once in the payload template (with and without '.$')",
                                k.strip_suffix(".$").unwrap_or(k)
                            ),
                        ));
                    }
                    if let Some(name) = k.strip_suffix(".$") {
                        let Value::String(s) = v else {
                            return Err((
                                here,
                                format!(
                                    "The value for the field '{k}' must be a STRING that contains a JSONPath or an intrinsic function"
                                ),
                            ));
                        };
                        dynamic = true;
                        if crate::intrinsics::is_intrinsic(s) {
                            let call =
                                crate::intrinsics::parse(s).map_err(|e| (here.clone(), e.cause))?;
                            let mut paths = std::collections::HashMap::new();
                            call_paths(&call, &mut paths, 0);
                            fields.push((
                                name.to_string(),
                                Template::Intrinsic {
                                    field: k.clone(),
                                    call: Box::new(call),
                                    paths,
                                },
                            ));
                        } else {
                            let path = Path::parse(s).map_err(|e| {
                                (
                                    here.clone(),
                                    format!("The value for the field '{k}' must be a valid JSONPath or a valid intrinsic function call: {e}"),
                                )
                            })?;
                            fields.push((
                                name.to_string(),
                                Template::Path {
                                    field: k.clone(),
                                    path,
                                },
                            ));
                        }
                    } else {
                        let t = Self::compile_at(v, &here, depth + 1)?;
                        if !matches!(t, Template::Static(_)) {
                            dynamic = true;
                        }
                        fields.push((k.clone(), t));
                    }
                }
                if dynamic {
                    Ok(Template::Object(fields))
                } else {
                    Ok(Template::Static(v.clone()))
                }
            }
            Value::Array(a) => {
                let mut dynamic = false;
                let mut items = Vec::with_capacity(a.len());
                for (i, v) in a.iter().enumerate() {
                    let t = Self::compile_at(v, &format!("{at}/{i}"), depth + 1)?;
                    if !matches!(t, Template::Static(_)) {
                        dynamic = true;
                    }
                    items.push(t);
                }
                if dynamic {
                    Ok(Template::Array(items))
                } else {
                    Ok(Template::Static(v.clone()))
                }
            }
            _ => Ok(Template::Static(v.clone())),
        }
    }

    /// Evaluates the template. Err: States.Runtime when a path selects
    /// nothing (AWS's cause: "The JSONPath '$.x' specified for the field
    /// 'x.$' could not be found in the input '...'"), or the intrinsic
    /// function's error.
    pub fn evaluate(&self, scope: &mut Scope<'_>) -> Result<Value, EvalError> {
        match self {
            Template::Static(v) => Ok(v.clone()),
            Template::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    m.insert(k.clone(), t.evaluate(scope)?);
                }
                Ok(Value::Object(m))
            }
            Template::Array(items) => items
                .iter()
                .map(|t| t.evaluate(scope))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Template::Path { field, path } => scope.resolve(path).ok_or_else(|| {
                let (what, v) = match path.root() {
                    Root::Context => ("context object", scope.context.get()),
                    _ => ("input", scope.input),
                };
                if let Root::Variable(name) = path.root() {
                    return EvalError::runtime(format!(
                        "The JSONPath '{}' specified for the field '{field}' could not be found: the variable '{name}' is not defined or does not contain the path",
                        path.text()
                    ));
                }
                EvalError::runtime(format!(
                    "The JSONPath '{}' specified for the field '{field}' could not be found in the {what} '{}'",
                    path.text(),
                    serde_json::to_string(v).unwrap_or_default()
                ))
            }),
            Template::Intrinsic { call, paths, .. } => {
                let input = scope.input;
                let context = scope.context;
                let variable = scope.variable;
                let resolve = move |p: &str| -> Option<Value> {
                    let owned;
                    let p = match paths.get(p) {
                        Some(p) => p,
                        None => {
                            owned = Path::parse(p).ok()?;
                            &owned
                        }
                    };
                    match &p.root {
                        Root::Input => p.select(input),
                        Root::Context => context.select(p),
                        Root::Variable(n) => p.select(&variable(n)?),
                    }
                };
                crate::intrinsics::eval_call(call, &resolve, scope.entropy).map_err(|e| EvalError {
                    error: e.error,
                    cause: e.cause,
                })
            }
        }
    }

    /// Every variable name referenced by `.$` paths and intrinsic
    /// arguments (for validation).
    pub fn paths(&self, out: &mut Vec<Path>) {
        match self {
            Template::Static(_) | Template::Intrinsic { .. } => {}
            Template::Object(f) => f.iter().for_each(|(_, t)| t.paths(out)),
            Template::Array(a) => a.iter().for_each(|t| t.paths(out)),
            Template::Path { path, .. } => out.push(path.clone()),
        }
    }
}

/// Collects the path arguments of an intrinsic call (nested calls too).
fn call_paths(
    call: &crate::intrinsics::Call,
    out: &mut std::collections::HashMap<String, Path>,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    for a in &call.args {
        match a {
            crate::intrinsics::Arg::Path(p) => {
                if let Ok(path) = Path::parse(p) {
                    out.insert(p.clone(), path);
                }
            }
            crate::intrinsics::Arg::Call(c) => call_paths(c, out, depth + 1),
            _ => {}
        }
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
pub fn pointer_escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(p: &str, v: &Value) -> Option<Value> {
        Path::parse(p).unwrap().select(v)
    }

    #[test]
    fn definite_paths() {
        let v = json!({"a": {"b": [1, 2, {"c": "x"}]}, "d e": 3});
        assert_eq!(sel("$", &v), Some(v.clone()));
        assert_eq!(sel("$.a.b[0]", &v), Some(json!(1)));
        assert_eq!(sel("$.a.b[2].c", &v), Some(json!("x")));
        assert_eq!(sel("$['d e']", &v), Some(json!(3)));
        assert_eq!(sel("$.a.b[-1].c", &v), Some(json!("x")));
        assert_eq!(sel("$.a.missing", &v), None);
        assert_eq!(sel("$.a.b[7]", &v), None);
        assert_eq!(sel("$.a.b.length()", &v), Some(json!(3)));
        assert!(Path::parse("$.a.b[0]").unwrap().is_reference());
        assert!(!Path::parse("$.a[*]").unwrap().is_reference());
    }

    #[test]
    fn indefinite_paths() {
        // Examples from the Step Functions guide's JSONPath section.
        let v = json!({"items": [{"n": 1, "p": 5}, {"n": 2, "p": 15}, {"n": 3}]});
        assert_eq!(sel("$.items[*].n", &v), Some(json!([1, 2, 3])));
        assert_eq!(sel("$..p", &v), Some(json!([5, 15])));
        assert_eq!(sel("$.items[?(@.p > 10)].n", &v), Some(json!([2])));
        assert_eq!(sel("$.items[?(@.p)].n", &v), Some(json!([1, 2])));
        assert_eq!(sel("$.items[0:2].n", &v), Some(json!([1, 2])));
        assert_eq!(sel("$.items[-1:].n", &v), Some(json!([3])));
        assert_eq!(sel("$.items[0,2].n", &v), Some(json!([1, 3])));
        assert_eq!(sel("$.items[?(@.p > 100)]", &v), Some(json!([])));
        assert_eq!(
            sel("$.items[?(@.n == 1 || @.n == 3)].n", &v),
            Some(json!([1, 3]))
        );
    }

    #[test]
    fn roots() {
        assert_eq!(
            Path::parse("$$.Execution.Id").unwrap().root(),
            &Root::Context
        );
        assert_eq!(
            Path::parse("$myVar.x").unwrap().root(),
            &Root::Variable("myVar".into())
        );
        assert!(Path::parse("a.b").is_err());
        assert!(Path::parse("$.a[").is_err());
        assert!(Path::parse("$.").is_err());
    }

    #[test]
    fn result_path() {
        // The guide's ResultPath example: {"comment": ...} + result at $.taskresult.
        let p = Path::parse("$.taskresult").unwrap();
        let out = insert_result(json!({"comment": "x"}), &p, json!("r")).unwrap();
        assert_eq!(out, json!({"comment": "x", "taskresult": "r"}));
        let p = Path::parse("$.a.b").unwrap();
        assert_eq!(
            insert_result(json!({}), &p, json!(1)).unwrap(),
            json!({"a": {"b": 1}})
        );
        assert!(insert_result(json!({"a": 3}), &p, json!(1)).is_err());
        assert!(insert_result(json!([1]), &Path::parse("$.a").unwrap(), json!(1)).is_err());
        assert_eq!(
            insert_result(json!([1]), &Path::parse("$").unwrap(), json!(2)).unwrap(),
            json!(2)
        );
    }

    #[test]
    fn jayway_forms() {
        // Bracket-quoted names with dots and spaces, double quotes, unions
        // of names, wildcard on objects, length().
        let v = json!({"a.b": 1, "c d": {"e": [1, 2, 3]}, "o": {"x": 1, "y": 2}});
        assert_eq!(sel("$['a.b']", &v), Some(json!(1)));
        assert_eq!(sel("$[\"c d\"].e[1]", &v), Some(json!(2)));
        assert_eq!(sel("$['a.b','o']", &v), Some(json!([1, {"x": 1, "y": 2}])));
        assert_eq!(sel("$.o.*", &v), Some(json!([1, 2])));
        assert_eq!(sel("$['c d'].e.length()", &v), Some(json!(3)));
        assert_eq!(sel("$['c d'].e[::2]", &v), Some(json!([1, 3])));
        assert_eq!(Path::parse("$.a[0]").unwrap().normalized(), "$['a'][0]");
    }

    #[test]
    fn filters_compare_by_type() {
        let v = json!({"xs": [{"n": 1, "s": "a"}, {"n": "1", "s": "b"}, {"n": null, "s": "c"}]});
        assert_eq!(sel("$.xs[?(@.n == 1)].s", &v), Some(json!(["a"])));
        assert_eq!(sel("$.xs[?(@.n == '1')].s", &v), Some(json!(["b"])));
        assert_eq!(sel("$.xs[?(@.n == null)].s", &v), Some(json!(["c"])));
        assert_eq!(sel("$.xs[?(!(@.n == 1))].s", &v), Some(json!(["b", "c"])));
        assert_eq!(
            sel("$.xs[?(@.s >= 'b' && @.s < 'c')].s", &v),
            Some(json!(["b"]))
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = format!("$.a{}", "[?(@.b".repeat(100));
        assert!(Path::parse(&deep).is_err());
    }
}
