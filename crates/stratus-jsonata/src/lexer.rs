//! Tokenizer for JSONata expression text (<https://docs.jsonata.org/>).
//!
//! Positions are character offsets. The tokenizer is driven by the parser,
//! which says whether a `/` may start a regular expression literal (only
//! where an operand is expected).

use crate::JsonataError;

/// One token of an expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Punctuation or symbolic operator such as `.`, `[`, `:=`, `~>`.
    Op(&'static str),
    /// A field name; `quoted` when written in backquotes.
    Name {
        name: String,
        quoted: bool,
    },
    /// `$name`; `$` alone is the empty name, `$$` is `"$"`.
    Var(String),
    Str(String),
    Num(f64),
    /// `/pattern/flags`
    Regex {
        pattern: String,
        flags: String,
    },
    End,
}

/// A token with its starting character offset.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

const OPS2: [&str; 10] = ["..", ":=", "!=", ">=", "<=", "**", "~>", "?:", "??", "<<"];
const OPS1: &str = ".[]{}(),@#;:?+-*/%|=<>^&!~";

fn op1(c: char) -> Option<&'static str> {
    Some(match c {
        '.' => ".",
        '[' => "[",
        ']' => "]",
        '{' => "{",
        '}' => "}",
        '(' => "(",
        ')' => ")",
        ',' => ",",
        '@' => "@",
        '#' => "#",
        ';' => ";",
        ':' => ":",
        '?' => "?",
        '+' => "+",
        '-' => "-",
        '*' => "*",
        '/' => "/",
        '%' => "%",
        '|' => "|",
        '=' => "=",
        '<' => "<",
        '>' => ">",
        '^' => "^",
        '&' => "&",
        '!' => "!",
        '~' => "~",
        _ => return None,
    })
}

pub(crate) struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    pub fn new(text: &str) -> Self {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self, off: usize) -> Option<char> {
        self.chars.get(self.pos + off).copied()
    }

    fn skip_space(&mut self) -> Result<(), JsonataError> {
        loop {
            match self.peek(0) {
                Some(c) if c.is_whitespace() => self.pos += 1,
                Some('/') if self.peek(1) == Some('*') => {
                    let start = self.pos;
                    self.pos += 2;
                    loop {
                        match (self.peek(0), self.peek(1)) {
                            (Some('*'), Some('/')) => {
                                self.pos += 2;
                                break;
                            }
                            (Some(_), _) => self.pos += 1,
                            (None, _) => {
                                return Err(JsonataError::new(
                                    "S0106",
                                    "Comment has no closing tag",
                                    Some(start),
                                ));
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next token; `prefix` is true where an operand is expected (so `/`
    /// starts a regular expression).
    pub fn next(&mut self, prefix: bool) -> Result<Token, JsonataError> {
        self.skip_space()?;
        let start = self.pos;
        let Some(c) = self.peek(0) else {
            return Ok(Token {
                tok: Tok::End,
                pos: start,
            });
        };
        let tok = |tok| Ok(Token { tok, pos: start });
        if prefix && c == '/' {
            return self.regex(start);
        }
        if let Some(c2) = self.peek(1) {
            let two: String = [c, c2].iter().collect();
            if let Some(op) = OPS2.iter().find(|o| **o == two) {
                // `<<` is not a JSONata operator; only the listed pairs are.
                if *op != "<<" {
                    self.pos += 2;
                    return tok(Tok::Op(op));
                }
            }
        }
        if c == '"' || c == '\'' {
            return self.string(c, start);
        }
        if c.is_ascii_digit() {
            return self.number(start);
        }
        if c == '`' {
            self.pos += 1;
            let mut s = String::new();
            loop {
                match self.peek(0) {
                    Some('`') => {
                        self.pos += 1;
                        return tok(Tok::Name {
                            name: s,
                            quoted: true,
                        });
                    }
                    Some(ch) => {
                        s.push(ch);
                        self.pos += 1;
                    }
                    None => {
                        return Err(JsonataError::new(
                            "S0105",
                            "Quoted property name must be terminated with a backquote (`)",
                            Some(start),
                        ));
                    }
                }
            }
        }
        if let Some(op) = op1(c) {
            debug_assert!(OPS1.contains(c));
            self.pos += 1;
            return tok(Tok::Op(op));
        }
        if c == '$' {
            self.pos += 1;
            if self.peek(0) == Some('$') {
                self.pos += 1;
                return tok(Tok::Var("$".into()));
            }
            let name = self.word();
            return tok(Tok::Var(name));
        }
        let name = self.word();
        if name.is_empty() {
            // A character that is neither an operator nor part of a name.
            self.pos += 1;
            return Err(JsonataError::new(
                "S0204",
                format!("Unknown operator: \"{c}\""),
                Some(start),
            ));
        }
        tok(Tok::Name {
            name,
            quoted: false,
        })
    }

    fn word(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_whitespace()
                || op1(c).is_some()
                || c == '"'
                || c == '\''
                || c == '`'
                || c == '$'
            {
                // `$` may appear inside a name only after the first character.
                if c == '$' && !s.is_empty() {
                    s.push(c);
                    self.pos += 1;
                    continue;
                }
                break;
            }
            s.push(c);
            self.pos += 1;
        }
        s
    }

    fn number(&mut self, start: usize) -> Result<Token, JsonataError> {
        let mut s = String::new();
        let digits = |lx: &mut Lexer, s: &mut String| {
            while let Some(c) = lx.peek(0) {
                if c.is_ascii_digit() {
                    s.push(c);
                    lx.pos += 1;
                } else {
                    break;
                }
            }
        };
        if self.peek(0) == Some('0') {
            s.push('0');
            self.pos += 1;
        } else {
            digits(self, &mut s);
        }
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            s.push('.');
            self.pos += 1;
            digits(self, &mut s);
        }
        if matches!(self.peek(0), Some('e') | Some('E')) {
            let save = self.pos;
            let mut e = String::from("e");
            self.pos += 1;
            if let Some(sign @ ('+' | '-')) = self.peek(0) {
                e.push(sign);
                self.pos += 1;
            }
            if self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                s.push_str(&e);
                digits(self, &mut s);
            } else {
                self.pos = save;
            }
        }
        match s.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Token {
                tok: Tok::Num(n),
                pos: start,
            }),
            _ => Err(JsonataError::new(
                "S0102",
                format!("Number out of range: {s}"),
                Some(start),
            )),
        }
    }

    fn string(&mut self, quote: char, start: usize) -> Result<Token, JsonataError> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(JsonataError::new(
                    "S0101",
                    "String literal must be terminated by a matching quote",
                    Some(start),
                ));
            };
            self.pos += 1;
            if c == quote {
                return Ok(Token {
                    tok: Tok::Str(s),
                    pos: start,
                });
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let esc_pos = self.pos - 1;
            let Some(e) = self.peek(0) else {
                return Err(JsonataError::new(
                    "S0101",
                    "String literal must be terminated by a matching quote",
                    Some(start),
                ));
            };
            self.pos += 1;
            match e {
                '"' => s.push('"'),
                '\'' => s.push('\''),
                '\\' => s.push('\\'),
                '/' => s.push('/'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'n' => s.push('\n'),
                'r' => s.push('\r'),
                't' => s.push('\t'),
                'u' => {
                    let hi = self.hex4(esc_pos)?;
                    if (0xD800..0xDC00).contains(&hi)
                        && self.peek(0) == Some('\\')
                        && self.peek(1) == Some('u')
                    {
                        let save = self.pos;
                        self.pos += 2;
                        let lo = self.hex4(esc_pos)?;
                        if (0xDC00..0xE000).contains(&lo) {
                            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            s.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                            continue;
                        }
                        self.pos = save;
                    }
                    s.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
                }
                other => {
                    return Err(JsonataError::new(
                        "S0103",
                        format!("Unsupported escape sequence: \\{other}"),
                        Some(esc_pos),
                    ));
                }
            }
        }
    }

    fn hex4(&mut self, esc_pos: usize) -> Result<u32, JsonataError> {
        let mut v = 0u32;
        for _ in 0..4 {
            match self.peek(0).and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.pos += 1;
                }
                None => {
                    return Err(JsonataError::new(
                        "S0104",
                        "The escape sequence \\u must be followed by 4 hex digits",
                        Some(esc_pos),
                    ));
                }
            }
        }
        Ok(v)
    }

    fn regex(&mut self, start: usize) -> Result<Token, JsonataError> {
        self.pos += 1;
        let body_start = self.pos;
        let mut depth = 0i32;
        loop {
            let Some(c) = self.peek(0) else {
                return Err(JsonataError::new(
                    "S0302",
                    "No terminating / in regular expression",
                    Some(start),
                ));
            };
            if c == '/' && depth == 0 {
                break;
            }
            match c {
                '\\' => {
                    self.pos += 1;
                }
                '[' => depth += 1,
                ']' if depth > 0 => depth -= 1,
                _ => {}
            }
            self.pos += 1;
        }
        let pattern: String = self.chars[body_start..self.pos.min(self.chars.len())]
            .iter()
            .collect();
        self.pos += 1;
        if pattern.is_empty() {
            return Err(JsonataError::new(
                "S0301",
                "Empty regular expressions are not allowed",
                Some(start),
            ));
        }
        let mut flags = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_ascii_alphabetic() {
                flags.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(Token {
            tok: Tok::Regex { pattern, flags },
            pos: start,
        })
    }
}

impl Lexer {
    /// Restarts tokenizing at character offset `pos`.
    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.chars.len());
    }

    /// Reads a function signature `<...>` starting at `start` (the `<`),
    /// with nested angle brackets, and returns it including the brackets.
    pub fn read_signature(&mut self, start: usize) -> Result<String, JsonataError> {
        self.pos = start;
        let mut depth = 0usize;
        let mut s = String::new();
        while let Some(c) = self.peek(0) {
            s.push(c);
            self.pos += 1;
            match c {
                '<' => depth += 1,
                '>' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Ok(s);
                    }
                }
                _ => {}
            }
        }
        Err(JsonataError::new(
            "S0401",
            "Function signature has no closing >",
            Some(start),
        ))
    }
}
