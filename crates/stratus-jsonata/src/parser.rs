//! Pratt parser producing the expression tree. Operator precedences follow
//! the JSONata operator documentation (<https://docs.jsonata.org/>): `.` and
//! `[`/`(`/`@`/`#` bind tightest, then `{` (group), `*`/`/`/`%`,
//! `+`/`-`/`&`, comparisons/`~>`/`^`/`in`/`?:`/`??`, `and`, `or`, `?`/`..`,
//! and `:=` loosest.

use std::sync::Arc;

use crate::JsonataError;
use crate::lexer::{Lexer, Tok, Token};

/// Maximum nesting depth of the expression tree accepted by the parser.
const MAX_PARSE_DEPTH: usize = 500;

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Concat,
    In,
    Elvis,
    Coalesce,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "=",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Concat => "&",
            BinOp::In => "in",
            BinOp::Elvis => "?:",
            BinOp::Coalesce => "??",
        }
    }
}

/// A compiled regular expression literal.
#[derive(Debug)]
pub(crate) struct RegexLit {
    pub regex: regex::Regex,
}

/// A `function($a, $b) { body }` definition.
#[derive(Debug)]
pub(crate) struct LambdaDef {
    pub params: Vec<String>,
    pub body: Node,
    pub signature: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Regex(Arc<RegexLit>),
    /// Field name step.
    Name(String),
    /// `$name`; `""` is the context `$`, `"$"` is the root `$$`.
    Var(String),
    Wildcard,
    Descendant,
    Parent,
    /// Location path: each step is evaluated against every item of the
    /// previous step's result.
    Path {
        steps: Vec<Node>,
        keep_singleton: bool,
    },
    /// `expr[predicate]`
    Filter(Box<Node>, Box<Node>),
    /// `expr[]`
    KeepArray(Box<Node>),
    Neg(Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    ArrayCons(Vec<Node>),
    ObjectCons(Vec<(Node, Node)>),
    /// `expr{key: value, ...}`
    Group(Box<Node>, Vec<(Node, Node)>),
    /// `expr^(<key, >key)`; the bool is `true` for descending.
    Sort(Box<Node>, Vec<(Node, bool)>),
    Block(Vec<Node>),
    Condition(Box<Node>, Box<Node>, Option<Box<Node>>),
    Bind(String, Box<Node>),
    Call {
        func: Box<Node>,
        args: Vec<Node>,
        partial: bool,
    },
    Placeholder,
    Lambda(Arc<LambdaDef>),
    /// `lhs ~> rhs`
    Chain(Box<Node>, Box<Node>),
    Range(Box<Node>, Box<Node>),
    Transform {
        pattern: Arc<Node>,
        update: Arc<Node>,
        delete: Option<Arc<Node>>,
    },
    /// `step@$var`
    Focus(Box<Node>, String),
    /// `step#$var`
    Index(Box<Node>, String),
}

impl Node {
    fn new(kind: Kind, pos: usize) -> Self {
        Node { kind, pos }
    }
}

pub(crate) fn parse(text: &str) -> Result<Node, JsonataError> {
    let mut p = Parser {
        lexer: Lexer::new(text),
        cur: Token {
            tok: Tok::End,
            pos: 0,
        },
        depth: 0,
    };
    p.advance(true)?;
    let node = p.expression(0)?;
    if p.cur.tok != Tok::End {
        return Err(JsonataError::new(
            "S0201",
            format!("Syntax error: {}", describe(&p.cur.tok)),
            Some(p.cur.pos),
        ));
    }
    Ok(node)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Op(o) => format!("\"{o}\""),
        Tok::Name { name, .. } => format!("\"{name}\""),
        Tok::Var(v) => format!("\"${v}\""),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Num(n) => format!("{n}"),
        Tok::Regex { pattern, .. } => format!("/{pattern}/"),
        Tok::End => "(end)".into(),
    }
}

struct Parser {
    lexer: Lexer,
    cur: Token,
    depth: usize,
}

fn lbp(t: &Tok) -> u32 {
    match t {
        Tok::Op(o) => match *o {
            "." => 75,
            "[" | "(" | "@" | "#" => 80,
            "{" => 70,
            "*" | "/" | "%" => 60,
            "+" | "-" | "&" => 50,
            "=" | "!=" | "<" | "<=" | ">" | ">=" | "~>" | "^" | "?:" | "??" => 40,
            "?" | ".." => 20,
            ":=" => 10,
            _ => 0,
        },
        Tok::Name {
            name,
            quoted: false,
        } => match name.as_str() {
            "and" => 30,
            "or" => 25,
            "in" => 40,
            _ => 0,
        },
        _ => 0,
    }
}

impl Parser {
    /// Moves to the next token. `prefix`: the next token is in operand
    /// position.
    fn advance(&mut self, prefix: bool) -> Result<(), JsonataError> {
        self.cur = self.lexer.next(prefix)?;
        Ok(())
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(&self.cur.tok, Tok::Op(o) if *o == op)
    }

    fn expect(&mut self, op: &str, prefix_after: bool) -> Result<(), JsonataError> {
        if self.is_op(op) {
            return self.advance(prefix_after);
        }
        if self.cur.tok == Tok::End {
            return Err(JsonataError::new(
                "S0203",
                format!("Expected \"{op}\" before end of expression"),
                Some(self.cur.pos),
            ));
        }
        Err(JsonataError::new(
            "S0202",
            format!("Expected \"{op}\", got {}", describe(&self.cur.tok)),
            Some(self.cur.pos),
        ))
    }

    fn expression(&mut self, rbp: u32) -> Result<Node, JsonataError> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return Err(JsonataError::new(
                "D1011",
                "Expression nests too deeply",
                Some(self.cur.pos),
            ));
        }
        let r = self.expression_inner(rbp);
        self.depth -= 1;
        r
    }

    fn expression_inner(&mut self, rbp: u32) -> Result<Node, JsonataError> {
        let t = self.cur.clone();
        self.advance(false)?;
        let mut left = self.nud(t)?;
        while rbp < lbp(&self.cur.tok) {
            let t = self.cur.clone();
            self.advance(true)?;
            left = self.led(t, left)?;
        }
        Ok(left)
    }

    fn nud(&mut self, t: Token) -> Result<Node, JsonataError> {
        let pos = t.pos;
        match t.tok {
            Tok::End => Err(JsonataError::new(
                "S0207",
                "Unexpected end of expression",
                Some(pos),
            )),
            Tok::Num(n) => Ok(Node::new(Kind::Num(n), pos)),
            Tok::Str(s) => Ok(Node::new(Kind::Str(s), pos)),
            Tok::Regex { pattern, flags } => {
                let lit = compile_regex(&pattern, &flags, pos)?;
                Ok(Node::new(Kind::Regex(Arc::new(lit)), pos))
            }
            Tok::Var(v) => Ok(Node::new(Kind::Var(v), pos)),
            Tok::Name { name, quoted } => {
                if !quoted {
                    match name.as_str() {
                        "true" => return Ok(Node::new(Kind::Bool(true), pos)),
                        "false" => return Ok(Node::new(Kind::Bool(false), pos)),
                        "null" => return Ok(Node::new(Kind::Null, pos)),
                        "function" | "λ" if self.is_op("(") => return self.lambda(pos),
                        _ => {}
                    }
                }
                Ok(path_of(Node::new(Kind::Name(name), pos)))
            }
            Tok::Op(op) => match op {
                "-" => {
                    let operand = self.expression(70)?;
                    if let Kind::Num(n) = operand.kind {
                        return Ok(Node::new(Kind::Num(-n), pos));
                    }
                    Ok(Node::new(Kind::Neg(Box::new(operand)), pos))
                }
                "*" => Ok(path_of(Node::new(Kind::Wildcard, pos))),
                "**" => Ok(path_of(Node::new(Kind::Descendant, pos))),
                "%" => Ok(path_of(Node::new(Kind::Parent, pos))),
                "?" => Ok(Node::new(Kind::Placeholder, pos)),
                "(" => {
                    // The lexer already read the token after "(" in
                    // non-prefix mode; re-read it as an operand.
                    self.reread_prefix()?;
                    let mut items = Vec::new();
                    while !self.is_op(")") {
                        items.push(self.expression(0)?);
                        if !self.is_op(";") {
                            break;
                        }
                        self.advance(true)?;
                    }
                    self.expect(")", false)?;
                    Ok(Node::new(Kind::Block(items), pos))
                }
                "[" => {
                    self.reread_prefix()?;
                    let mut items = Vec::new();
                    if !self.is_op("]") {
                        loop {
                            let item = self.expression(0)?;
                            items.push(item);
                            if !self.is_op(",") {
                                break;
                            }
                            self.advance(true)?;
                        }
                    }
                    self.expect("]", false)?;
                    Ok(Node::new(Kind::ArrayCons(items), pos))
                }
                "{" => {
                    self.reread_prefix()?;
                    let pairs = self.pairs()?;
                    Ok(Node::new(Kind::ObjectCons(pairs), pos))
                }
                "|" => {
                    self.reread_prefix()?;
                    let pattern = self.expression(0)?;
                    self.expect("|", true)?;
                    let update = self.expression(0)?;
                    let delete = if self.is_op(",") {
                        self.advance(true)?;
                        Some(Arc::new(self.expression(0)?))
                    } else {
                        None
                    };
                    self.expect("|", false)?;
                    Ok(Node::new(
                        Kind::Transform {
                            pattern: Arc::new(pattern),
                            update: Arc::new(update),
                            delete,
                        },
                        pos,
                    ))
                }
                _ => Err(JsonataError::new(
                    "S0211",
                    format!("The symbol {op} cannot be used as a unary operator"),
                    Some(pos),
                )),
            },
        }
    }

    /// After consuming an opening bracket the current token was read in
    /// non-prefix mode; a `/` there starts a regular expression.
    fn reread_prefix(&mut self) -> Result<(), JsonataError> {
        if self.is_op("/") {
            self.lexer.set_pos(self.cur.pos);
            self.advance(true)?;
        }
        Ok(())
    }

    fn pairs(&mut self) -> Result<Vec<(Node, Node)>, JsonataError> {
        let mut pairs = Vec::new();
        if !self.is_op("}") {
            loop {
                let k = self.expression(0)?;
                self.expect(":", true)?;
                let v = self.expression(0)?;
                pairs.push((k, v));
                if !self.is_op(",") {
                    break;
                }
                self.advance(true)?;
            }
        }
        self.expect("}", false)?;
        Ok(pairs)
    }

    fn lambda(&mut self, pos: usize) -> Result<Node, JsonataError> {
        self.expect("(", true)?;
        let mut params = Vec::new();
        if !self.is_op(")") {
            loop {
                match &self.cur.tok {
                    Tok::Var(v) if !v.is_empty() && v != "$" => params.push(v.clone()),
                    _ => {
                        return Err(JsonataError::new(
                            "S0208",
                            format!(
                                "Parameter {} of function definition must be a variable name (start with $)",
                                params.len() + 1
                            ),
                            Some(self.cur.pos),
                        ));
                    }
                }
                self.advance(false)?;
                if !self.is_op(",") {
                    break;
                }
                self.advance(true)?;
            }
        }
        self.expect(")", false)?;
        let mut signature = None;
        if self.is_op("<") {
            let start = self.cur.pos;
            let sig = self.lexer.read_signature(start)?;
            signature = Some(sig);
            self.advance(false)?;
        }
        self.expect("{", true)?;
        let body = self.expression(0)?;
        self.expect("}", false)?;
        Ok(Node::new(
            Kind::Lambda(Arc::new(LambdaDef {
                params,
                body,
                signature,
            })),
            pos,
        ))
    }

    fn led(&mut self, t: Token, left: Node) -> Result<Node, JsonataError> {
        let pos = t.pos;
        let op = match &t.tok {
            Tok::Op(o) => *o,
            Tok::Name { name, .. } => match name.as_str() {
                "and" => "and",
                "or" => "or",
                "in" => "in",
                _ => unreachable!("lbp is 0 for other names"),
            },
            _ => unreachable!("lbp is 0 for other tokens"),
        };
        let binop = match op {
            "+" => Some((BinOp::Add, 50)),
            "-" => Some((BinOp::Sub, 50)),
            "&" => Some((BinOp::Concat, 50)),
            "*" => Some((BinOp::Mul, 60)),
            "/" => Some((BinOp::Div, 60)),
            "%" => Some((BinOp::Mod, 60)),
            "=" => Some((BinOp::Eq, 40)),
            "!=" => Some((BinOp::Ne, 40)),
            "<" => Some((BinOp::Lt, 40)),
            "<=" => Some((BinOp::Le, 40)),
            ">" => Some((BinOp::Gt, 40)),
            ">=" => Some((BinOp::Ge, 40)),
            "in" => Some((BinOp::In, 40)),
            "?:" => Some((BinOp::Elvis, 40)),
            "??" => Some((BinOp::Coalesce, 40)),
            "and" => Some((BinOp::And, 30)),
            "or" => Some((BinOp::Or, 25)),
            _ => None,
        };
        if let Some((bop, bp)) = binop {
            let right = self.expression(bp)?;
            return Ok(Node::new(
                Kind::Binary(bop, Box::new(left), Box::new(right)),
                pos,
            ));
        }
        match op {
            "." => {
                let right = self.expression(75)?;
                make_path(left, right)
            }
            ".." => {
                let right = self.expression(20)?;
                Ok(Node::new(Kind::Range(Box::new(left), Box::new(right)), pos))
            }
            "~>" => {
                let right = self.expression(40)?;
                Ok(Node::new(Kind::Chain(Box::new(left), Box::new(right)), pos))
            }
            ":=" => {
                let Kind::Var(name) = &left.kind else {
                    return Err(JsonataError::new(
                        "S0212",
                        "The left side of := must be a variable name (start with $)",
                        Some(pos),
                    ));
                };
                let name = name.clone();
                let right = self.expression(9)?;
                Ok(Node::new(Kind::Bind(name, Box::new(right)), pos))
            }
            "?" => {
                let then = self.expression(0)?;
                let otherwise = if self.is_op(":") {
                    self.advance(true)?;
                    Some(Box::new(self.expression(0)?))
                } else {
                    None
                };
                Ok(Node::new(
                    Kind::Condition(Box::new(left), Box::new(then), otherwise),
                    pos,
                ))
            }
            "[" => {
                if self.is_op("]") {
                    self.advance(false)?;
                    return Ok(map_last_step(
                        left,
                        |step| {
                            let p = step.pos;
                            Node::new(Kind::KeepArray(Box::new(step)), p)
                        },
                        true,
                    ));
                }
                let pred = self.expression(0)?;
                self.expect("]", false)?;
                Ok(map_last_step(
                    left,
                    |step| {
                        let p = step.pos;
                        Node::new(Kind::Filter(Box::new(step), Box::new(pred)), p)
                    },
                    false,
                ))
            }
            "{" => {
                let pairs = self.pairs()?;
                Ok(Node::new(Kind::Group(Box::new(left), pairs), pos))
            }
            "^" => {
                self.expect("(", true)?;
                let mut terms = Vec::new();
                loop {
                    let mut desc = false;
                    if self.is_op("<") {
                        self.advance(true)?;
                    } else if self.is_op(">") {
                        desc = true;
                        self.advance(true)?;
                    }
                    terms.push((self.expression(0)?, desc));
                    if !self.is_op(",") {
                        break;
                    }
                    self.advance(true)?;
                }
                self.expect(")", false)?;
                Ok(Node::new(Kind::Sort(Box::new(left), terms), pos))
            }
            "(" => {
                let mut args = Vec::new();
                let mut partial = false;
                if !self.is_op(")") {
                    loop {
                        let a = self.expression(0)?;
                        if matches!(a.kind, Kind::Placeholder) {
                            partial = true;
                        }
                        args.push(a);
                        if !self.is_op(",") {
                            break;
                        }
                        self.advance(true)?;
                    }
                }
                self.expect(")", false)?;
                Ok(Node::new(
                    Kind::Call {
                        func: Box::new(left),
                        args,
                        partial,
                    },
                    pos,
                ))
            }
            "@" | "#" => {
                let Tok::Var(name) = &self.cur.tok else {
                    return Err(JsonataError::new(
                        "S0214",
                        format!("The right side of {op} must be a variable name (start with $)"),
                        Some(self.cur.pos),
                    ));
                };
                let name = name.clone();
                self.advance(false)?;
                let wrap = |step: Node| {
                    let p = step.pos;
                    if op == "@" {
                        Node::new(Kind::Focus(Box::new(step), name.clone()), p)
                    } else {
                        Node::new(Kind::Index(Box::new(step), name.clone()), p)
                    }
                };
                Ok(map_last_step(left, wrap, false))
            }
            _ => Err(JsonataError::new(
                "S0201",
                format!("Syntax error: \"{op}\""),
                Some(pos),
            )),
        }
    }
}

/// A single step as a one-step path.
fn path_of(step: Node) -> Node {
    let pos = step.pos;
    Node::new(
        Kind::Path {
            steps: vec![step],
            keep_singleton: false,
        },
        pos,
    )
}

/// Applies `f` to the last step of a path (predicates and bindings attach to
/// the step they follow), or to the whole expression otherwise.
fn map_last_step(node: Node, f: impl FnOnce(Node) -> Node, keep: bool) -> Node {
    match node.kind {
        Kind::Path {
            mut steps,
            keep_singleton,
        } if !steps.is_empty() => {
            let last = steps.pop().expect("non-empty");
            steps.push(f(last));
            Node::new(
                Kind::Path {
                    steps,
                    keep_singleton: keep_singleton || keep,
                },
                node.pos,
            )
        }
        kind => f(Node::new(kind, node.pos)),
    }
}

fn make_path(left: Node, right: Node) -> Result<Node, JsonataError> {
    let pos = left.pos;
    let (mut steps, mut keep) = match left.kind {
        Kind::Path {
            steps,
            keep_singleton,
        } => (steps, keep_singleton),
        kind => (vec![Node::new(kind, left.pos)], false),
    };
    match right.kind {
        Kind::Path {
            steps: rsteps,
            keep_singleton,
        } => {
            keep |= keep_singleton;
            steps.extend(rsteps);
        }
        Kind::Num(_) | Kind::Bool(_) | Kind::Null => {
            return Err(JsonataError::new(
                "S0213",
                "A literal value cannot be used as a step within a path expression",
                Some(right.pos),
            ));
        }
        Kind::Str(s) => steps.push(Node::new(Kind::Name(s), right.pos)),
        kind => steps.push(Node::new(kind, right.pos)),
    }
    Ok(Node::new(
        Kind::Path {
            steps,
            keep_singleton: keep,
        },
        pos,
    ))
}

/// Compiles a JSONata regular expression literal (JavaScript syntax; flags
/// `i` and `m`) with the `regex` crate. Constructs that crate does not
/// support (look-around, back-references) are reported as `S0303`.
pub(crate) fn compile_regex(
    pattern: &str,
    flags: &str,
    pos: usize,
) -> Result<RegexLit, JsonataError> {
    let mut prefix = String::new();
    for f in flags.chars() {
        match f {
            'i' => prefix.push('i'),
            'm' => prefix.push('m'),
            'g' | 'u' | 's' => {}
            other => {
                return Err(JsonataError::new(
                    "S0302",
                    format!("Unsupported regular expression flag: {other}"),
                    Some(pos),
                ));
            }
        }
    }
    let translated = translate_js_regex(pattern);
    let full = if prefix.is_empty() {
        translated
    } else {
        format!("(?{prefix}){translated}")
    };
    match regex::RegexBuilder::new(&full).size_limit(1 << 22).build() {
        Ok(regex) => Ok(RegexLit { regex }),
        Err(e) => Err(JsonataError::new(
            "S0303",
            format!("Regular expression /{pattern}/ is not supported: {e}"),
            Some(pos),
        )),
    }
}

/// Maps JavaScript regex syntax to the `regex` crate's: `\d`, `\w`, `\s`
/// and `\b` are ASCII-only in JavaScript; `\/` is a plain `/`.
fn translate_js_regex(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('/') => out.push('/'),
                Some('d') => out.push_str(if in_class { "0-9" } else { "[0-9]" }),
                Some('D') => out.push_str(if in_class { "\\D" } else { "[^0-9]" }),
                Some('w') => out.push_str(if in_class {
                    "A-Za-z0-9_"
                } else {
                    "[A-Za-z0-9_]"
                }),
                Some('b') if !in_class => out.push_str("(?-u:\\b)"),
                Some('B') if !in_class => out.push_str("(?-u:\\B)"),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push_str("\\\\"),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            '[' if in_class => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The direct sub-expressions of a node.
pub(crate) fn children(n: &Node) -> Vec<&Node> {
    match &n.kind {
        Kind::Str(_)
        | Kind::Num(_)
        | Kind::Bool(_)
        | Kind::Null
        | Kind::Regex(_)
        | Kind::Name(_)
        | Kind::Var(_)
        | Kind::Wildcard
        | Kind::Descendant
        | Kind::Parent
        | Kind::Placeholder => Vec::new(),
        Kind::Path { steps, .. } => steps.iter().collect(),
        Kind::Filter(a, b) | Kind::Binary(_, a, b) | Kind::Chain(a, b) | Kind::Range(a, b) => {
            vec![a, b]
        }
        Kind::KeepArray(a)
        | Kind::Neg(a)
        | Kind::Bind(_, a)
        | Kind::Focus(a, _)
        | Kind::Index(a, _) => vec![a],
        Kind::ArrayCons(v) | Kind::Block(v) => v.iter().collect(),
        Kind::ObjectCons(p) => p.iter().flat_map(|(a, b)| [a, b]).collect(),
        Kind::Group(a, p) => std::iter::once(&**a)
            .chain(p.iter().flat_map(|(x, y)| [x, y]))
            .collect(),
        Kind::Sort(a, t) => std::iter::once(&**a)
            .chain(t.iter().map(|(x, _)| x))
            .collect(),
        Kind::Condition(c, t, e) => {
            let mut v: Vec<&Node> = vec![c, t];
            if let Some(e) = e {
                v.push(e);
            }
            v
        }
        Kind::Call { func, args, .. } => std::iter::once(&**func).chain(args.iter()).collect(),
        Kind::Lambda(def) => vec![&def.body],
        Kind::Transform {
            pattern,
            update,
            delete,
        } => {
            let mut v: Vec<&Node> = vec![pattern, update];
            if let Some(d) = delete {
                v.push(d);
            }
            v
        }
    }
}

/// What an expression needs from the evaluator's stack.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shape {
    /// Nesting depth of the tree.
    pub depth: usize,
    /// Contains function definitions, transforms or `$eval` (evaluation
    /// depth then depends on the data, not only on the tree).
    pub open_ended: bool,
    /// Variables it names (without `$`).
    pub vars: Vec<String>,
    /// Reads the input document (the context at the top, or `$$`).
    pub needs_input: bool,
}

/// Whether evaluating `n` can read the input document. `top`: `n` is
/// evaluated with the input as its context (rather than an item derived
/// from a variable or another step).
fn needs_input(n: &Node, top: bool) -> bool {
    let rel = |x: &Node| needs_input(x, false);
    match &n.kind {
        Kind::Var(v) => v == "$" || (top && (v.is_empty() || v == "eval")),
        Kind::Name(_) | Kind::Wildcard | Kind::Descendant | Kind::Parent => top,
        Kind::Path { steps, .. } => match steps.split_first() {
            Some((first, rest)) => needs_input(first, top) || rest.iter().any(rel),
            None => false,
        },
        Kind::Filter(a, p) => needs_input(a, top) || rel(p),
        Kind::Sort(a, terms) => needs_input(a, top) || terms.iter().any(|(t, _)| rel(t)),
        Kind::Group(a, pairs) => needs_input(a, top) || pairs.iter().any(|(k, v)| rel(k) || rel(v)),
        Kind::ObjectCons(pairs) => top || pairs.iter().any(|(k, v)| rel(k) || rel(v)),
        Kind::Focus(a, _) | Kind::Index(a, _) => top || needs_input(a, top),
        Kind::Call { func, args, .. } => {
            let context_default = match &func.kind {
                Kind::Var(name) => crate::builtins::defaults_to_context(name),
                _ => true,
            };
            (top && context_default)
                || needs_input(func, top)
                || args.iter().any(|a| needs_input(a, top))
        }
        Kind::Transform {
            pattern,
            update,
            delete,
        } => rel(pattern) || rel(update) || delete.as_deref().is_some_and(rel),
        _ => children(n).into_iter().any(|c| needs_input(c, top)),
    }
}

pub(crate) fn shape(root: &Node) -> Shape {
    let mut s = Shape {
        needs_input: needs_input(root, true),
        ..Shape::default()
    };
    let mut stack = vec![(root, 1usize)];
    while let Some((n, d)) = stack.pop() {
        s.depth = s.depth.max(d);
        match &n.kind {
            Kind::Lambda(_) | Kind::Transform { .. } => s.open_ended = true,
            Kind::Var(v) => {
                if v == "eval" {
                    s.open_ended = true;
                }
                if !s.vars.contains(v) {
                    s.vars.push(v.clone());
                }
            }
            _ => {}
        }
        for c in children(n) {
            stack.push((c, d + 1));
        }
    }
    s
}
