//! The JSONata function library (<https://docs.jsonata.org/string-functions>,
//! `numeric-functions`, `aggregation-functions`, `boolean-functions`,
//! `array-functions`, `object-functions`, `higher-order-functions`,
//! `date-time-functions`).

use std::cell::Cell;
use std::rc::Rc;

use crate::eval::{Ev, Func, R, cmp_utf16, err};
use crate::value::{Obj, Value, deep_equal, js_number, to_string, truthy};
use crate::{datetime, numfmt};

/// Built-in functions: name, minimum and maximum argument count, and the
/// type of the first parameter when it defaults to the context item (`-` in
/// JSONata's signatures): `s` string, `n` number, `x` any, `o` object.
const TABLE: &[(&str, usize, usize, Option<char>)] = &[
    ("string", 1, 2, Some('x')),
    ("length", 1, 1, Some('s')),
    ("substring", 2, 3, Some('s')),
    ("substringBefore", 2, 2, Some('s')),
    ("substringAfter", 2, 2, Some('s')),
    ("uppercase", 1, 1, Some('s')),
    ("lowercase", 1, 1, Some('s')),
    ("trim", 1, 1, Some('s')),
    ("pad", 2, 3, Some('s')),
    ("contains", 2, 2, Some('s')),
    ("split", 2, 3, Some('s')),
    ("join", 1, 2, None),
    ("match", 2, 3, Some('s')),
    ("replace", 3, 4, Some('s')),
    ("base64encode", 1, 1, Some('s')),
    ("base64decode", 1, 1, Some('s')),
    ("encodeUrlComponent", 1, 1, Some('s')),
    ("encodeUrl", 1, 1, Some('s')),
    ("decodeUrlComponent", 1, 1, Some('s')),
    ("decodeUrl", 1, 1, Some('s')),
    ("formatNumber", 2, 3, Some('n')),
    ("formatBase", 1, 2, Some('n')),
    ("formatInteger", 2, 2, Some('n')),
    ("parseInteger", 2, 2, Some('s')),
    ("eval", 1, 2, None),
    ("number", 1, 1, Some('x')),
    ("abs", 1, 1, Some('n')),
    ("floor", 1, 1, Some('n')),
    ("ceil", 1, 1, Some('n')),
    ("round", 1, 2, Some('n')),
    ("power", 2, 2, Some('n')),
    ("sqrt", 1, 1, Some('n')),
    ("random", 0, 0, None),
    ("sum", 1, 1, None),
    ("max", 1, 1, None),
    ("min", 1, 1, None),
    ("average", 1, 1, None),
    ("boolean", 1, 1, Some('x')),
    ("not", 1, 1, Some('x')),
    ("exists", 1, 1, None),
    ("count", 1, 1, None),
    ("append", 2, 2, None),
    ("sort", 1, 2, None),
    ("reverse", 1, 1, None),
    ("shuffle", 1, 1, None),
    ("distinct", 1, 1, None),
    ("zip", 0, usize::MAX, None),
    ("keys", 1, 1, Some('x')),
    ("lookup", 2, 2, None),
    ("spread", 1, 1, Some('x')),
    ("merge", 1, 1, None),
    ("sift", 2, 2, Some('o')),
    ("each", 2, 2, Some('o')),
    ("error", 0, 1, None),
    ("assert", 2, 2, None),
    ("type", 1, 1, None),
    ("typeOf", 1, 1, None),
    ("clone", 1, 1, None),
    ("map", 2, 2, None),
    ("filter", 2, 2, None),
    ("single", 1, 2, None),
    ("reduce", 2, 3, None),
    ("now", 0, 2, None),
    ("millis", 0, 0, None),
    ("fromMillis", 1, 3, Some('n')),
    ("toMillis", 1, 2, Some('s')),
];

fn entry(name: &str) -> Option<&'static (&'static str, usize, usize, Option<char>)> {
    TABLE.iter().find(|e| e.0 == name)
}

/// The static name of a built-in function, if `name` is one.
pub(crate) fn lookup(name: &str) -> Option<&'static str> {
    entry(name).map(|e| e.0)
}

/// Whether calling `name` with too few arguments supplies the context item
/// (true for names that are not built-ins: they may be bound to anything).
pub(crate) fn defaults_to_context(name: &str) -> bool {
    entry(name).is_none_or(|e| e.3.is_some())
}

/// Arguments a higher-order function passes to this built-in: its required
/// parameters.
pub(crate) fn arity(name: &str) -> usize {
    entry(name).map(|e| e.1.max(1)).unwrap_or(1)
}

fn sig_err(name: &str, i: usize, pos: usize) -> crate::JsonataError {
    err(
        "T0410",
        format!(
            "Argument {} of function \"{name}\" does not match function signature",
            i + 1
        ),
        pos,
    )
}

struct Args<'a> {
    name: &'a str,
    v: Vec<Option<Value>>,
    pos: usize,
}

impl Args<'_> {
    fn get(&self, i: usize) -> Option<&Value> {
        self.v.get(i).and_then(|x| x.as_ref())
    }
    fn present(&self, i: usize) -> bool {
        self.get(i).is_some()
    }
    fn str(&self, i: usize) -> R<Option<Rc<str>>> {
        match self.get(i) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(sig_err(self.name, i, self.pos)),
        }
    }
    fn num(&self, i: usize) -> R<Option<f64>> {
        match self.get(i) {
            None => Ok(None),
            Some(Value::Num(n)) => Ok(Some(*n)),
            Some(_) => Err(sig_err(self.name, i, self.pos)),
        }
    }
    fn boolean(&self, i: usize) -> R<Option<bool>> {
        match self.get(i) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(sig_err(self.name, i, self.pos)),
        }
    }
    /// An array argument; a single value counts as a one-item array.
    fn arr(&self, i: usize) -> Option<Rc<Vec<Value>>> {
        match self.get(i) {
            None => None,
            Some(Value::Array(a, _)) => Some(a.clone()),
            Some(v) => Some(Rc::new(vec![v.clone()])),
        }
    }
    fn func(&self, i: usize) -> R<Option<Value>> {
        match self.get(i) {
            None => Ok(None),
            Some(f @ Value::Func(_)) => Ok(Some(f.clone())),
            Some(_) => Err(sig_err(self.name, i, self.pos)),
        }
    }
    fn nums(&self, i: usize) -> R<Option<Vec<f64>>> {
        let Some(a) = self.arr(i) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(a.len());
        for x in a.iter() {
            match x {
                Value::Num(n) => out.push(*n),
                _ => {
                    return Err(err(
                        "T0412",
                        format!(
                            "Argument {} of function \"{}\" must be an array of numbers",
                            i + 1,
                            self.name
                        ),
                        self.pos,
                    ));
                }
            }
        }
        Ok(Some(out))
    }
}

fn matches_type(v: &Value, t: char) -> bool {
    match t {
        's' => matches!(v, Value::Str(_)),
        'n' => matches!(v, Value::Num(_)),
        'o' => matches!(v, Value::Object(_)),
        _ => true,
    }
}

fn num(n: f64) -> R<Option<Value>> {
    Ok(Some(Value::Num(n)))
}

fn string(s: String) -> R<Option<Value>> {
    Ok(Some(Value::string(s)))
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A pseudo-random number in [0, 1) (xorshift64*, seeded from the clock).
fn random() -> f64 {
    RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            x = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9_7F4A_7C15)
                | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// Rounds half to even at `precision` decimal places (`$round`). The
/// decimal point is moved in the decimal representation, so `2.675` rounds
/// as the decimal it is written as.
pub(crate) fn round_half_even(n: f64, precision: i32) -> f64 {
    if !n.is_finite() {
        return n;
    }
    let shift = |v: f64, p: i32| -> f64 {
        let s = format!("{:e}", v);
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        format!("{m}e{}", e + p).parse().unwrap_or(v)
    };
    let value = shift(n, precision);
    let floor = value.floor();
    let diff = value - floor;
    let odd = floor % 2.0 != 0.0;
    let r = if diff > 0.5 || (diff == 0.5 && odd) {
        floor + 1.0
    } else {
        floor
    };
    let out = shift(r, -precision);
    if out == 0.0 { 0.0 } else { out }
}

pub(crate) fn call(
    ev: &Ev,
    name: &'static str,
    mut args: Vec<Option<Value>>,
    ctx: Option<&Value>,
    pos: usize,
) -> R<Option<Value>> {
    let Some(&(_, min, max, ctxt)) = entry(name) else {
        return Err(err("T1006", "Attempted to invoke a non-function", pos));
    };
    if let Some(t) = ctxt {
        let use_ctx = args.len() < min
            || (args.len() < max
                && t != 'x'
                && args
                    .first()
                    .is_some_and(|a| a.as_ref().is_some_and(|v| !matches_type(v, t))));
        if use_ctx {
            args.insert(0, ctx.cloned());
        }
    }
    if args.len() > max {
        return Err(sig_err(name, max, pos));
    }
    ev.tick(pos)?;
    let a = Args { name, v: args, pos };
    match name {
        "string" => {
            let Some(v) = a.get(0) else { return Ok(None) };
            let pretty = a.boolean(1)?.unwrap_or(false);
            if let Value::Num(n) = v
                && !n.is_finite()
            {
                return Err(err(
                    "D3001",
                    "Attempting to invoke string function on Infinity or NaN",
                    pos,
                ));
            }
            string(to_string(v, pretty))
        }
        "length" => match a.str(0)? {
            None => Ok(None),
            Some(s) => num(s.chars().count() as f64),
        },
        "substring" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            let start = a.num(1)?.ok_or_else(|| sig_err(name, 1, pos))?;
            let len = a.num(2)?;
            string(substring(&s, start, len))
        }
        "substringBefore" | "substringAfter" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            let Some(chars) = a.str(1)? else {
                return Ok(Some(Value::Str(s)));
            };
            match s.find(&*chars) {
                None => Ok(Some(Value::Str(s))),
                Some(i) if name == "substringBefore" => string(s[..i].to_string()),
                Some(i) => string(s[i + chars.len()..].to_string()),
            }
        }
        "uppercase" => Ok(a.str(0)?.map(|s| Value::string(s.to_uppercase()))),
        "lowercase" => Ok(a.str(0)?.map(|s| Value::string(s.to_lowercase()))),
        "trim" => Ok(a.str(0)?.map(|s| {
            let mut out = String::new();
            for w in s.split([' ', '\t', '\n', '\r']).filter(|w| !w.is_empty()) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(w);
            }
            Value::string(out)
        })),
        "pad" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            let width = a.num(1)?.ok_or_else(|| sig_err(name, 1, pos))?.trunc();
            let padc = a
                .str(2)?
                .map(|p| p.to_string())
                .unwrap_or_else(|| " ".into());
            let padc = if padc.is_empty() {
                " ".to_string()
            } else {
                padc
            };
            let len = s.chars().count() as f64;
            let need = (width.abs() - len).max(0.0) as usize;
            if need == 0 {
                return Ok(Some(Value::Str(s)));
            }
            if need > 10_000_000 {
                return Err(err("D1001", "Number out of range", pos));
            }
            let padding: String = padc.chars().cycle().take(need).collect();
            if width > 0.0 {
                string(format!("{s}{padding}"))
            } else {
                string(format!("{padding}{s}"))
            }
        }
        "contains" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            match a.get(1) {
                Some(Value::Str(p)) => Ok(Some(Value::Bool(s.contains(&**p)))),
                Some(Value::Func(f)) => match &**f {
                    Func::Regex(r) => Ok(Some(Value::Bool(r.regex.is_match(&s)))),
                    _ => Err(sig_err(name, 1, pos)),
                },
                _ => Err(sig_err(name, 1, pos)),
            }
        }
        "split" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            let limit = match a.num(2)? {
                None => None,
                Some(l) if l < 0.0 => {
                    return Err(err(
                        "D3020",
                        "Third argument of split function must evaluate to a positive number",
                        pos,
                    ));
                }
                Some(l) => Some(l.floor() as usize),
            };
            let mut parts: Vec<Value> = match a.get(1) {
                Some(Value::Str(sep)) => {
                    if sep.is_empty() {
                        s.chars().map(|c| Value::string(c.to_string())).collect()
                    } else {
                        s.split(&**sep).map(Value::str).collect()
                    }
                }
                Some(Value::Func(f)) => match &**f {
                    Func::Regex(r) => r.regex.split(&s).map(Value::str).collect(),
                    _ => return Err(sig_err(name, 1, pos)),
                },
                _ => return Err(sig_err(name, 1, pos)),
            };
            if let Some(l) = limit {
                parts.truncate(l);
            }
            Ok(Some(Value::array(parts)))
        }
        "join" => {
            let Some(arr) = a.arr(0) else { return Ok(None) };
            let sep = a.str(1)?.map(|s| s.to_string()).unwrap_or_default();
            let mut parts = Vec::with_capacity(arr.len());
            for x in arr.iter() {
                match x {
                    Value::Str(s) => parts.push(s.to_string()),
                    _ => {
                        return Err(err(
                            "T0412",
                            "Argument 1 of function \"join\" must be an array of strings",
                            pos,
                        ));
                    }
                }
            }
            string(parts.join(&sep))
        }
        "match" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            let re = regex_arg(&a, 1)?;
            let limit = match a.num(2)? {
                None => None,
                Some(l) if l < 0.0 => {
                    return Err(err(
                        "D3040",
                        "Third argument of match function must evaluate to a positive number",
                        pos,
                    ));
                }
                Some(l) => Some(l.floor() as usize),
            };
            check_zero_length(&re, &s, pos)?;
            Ok(Some(Value::seq(regex_matches(&re, &s, limit))))
        }
        "replace" => replace(ev, &a, pos),
        "base64encode" => Ok(a
            .str(0)?
            .map(|s| Value::string(base64_encode(s.as_bytes())))),
        "base64decode" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            let bytes =
                base64_decode(&s).ok_or_else(|| err("D3137", "Invalid base64 string", pos))?;
            string(String::from_utf8_lossy(&bytes).into_owned())
        }
        "encodeUrlComponent" | "encodeUrl" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            string(url_encode(&s, name == "encodeUrl"))
        }
        "decodeUrlComponent" | "decodeUrl" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            match url_decode(&s, name == "decodeUrl") {
                Some(d) => string(d),
                None => Err(err(
                    "D3140",
                    format!("Malformed URL passed to ${name}(): \"{s}\""),
                    pos,
                )),
            }
        }
        "formatNumber" => {
            let Some(n) = a.num(0)? else { return Ok(None) };
            let picture = a.str(1)?.ok_or_else(|| sig_err(name, 1, pos))?;
            let opts = match a.get(2) {
                None => None,
                Some(Value::Object(o)) => Some(o.clone()),
                Some(_) => return Err(sig_err(name, 2, pos)),
            };
            numfmt::format_number(n, &picture, opts.as_deref(), pos).map(|s| Some(Value::string(s)))
        }
        "formatBase" => {
            let Some(n) = a.num(0)? else { return Ok(None) };
            let radix = a.num(1)?.unwrap_or(10.0).trunc();
            if !(2.0..=36.0).contains(&radix) {
                return Err(err(
                    "D3100",
                    format!(
                        "The radix of the formatBase function must be between 2 and 36. It was given {}",
                        js_number(radix)
                    ),
                    pos,
                ));
            }
            let n = round_half_even(n, 0);
            string(to_radix(n, radix as u32))
        }
        "formatInteger" => {
            let Some(n) = a.num(0)? else { return Ok(None) };
            let picture = a.str(1)?.ok_or_else(|| sig_err(name, 1, pos))?;
            numfmt::format_integer(n, &picture, pos).map(|s| Some(Value::string(s)))
        }
        "parseInteger" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            let picture = a.str(1)?.ok_or_else(|| sig_err(name, 1, pos))?;
            numfmt::parse_integer(&s, &picture, pos).map(|n| n.map(Value::Num))
        }
        "eval" => {
            let Some(text) = a.str(0)? else {
                return Ok(None);
            };
            let node = crate::parser::parse(&text).map_err(|e| {
                err(
                    "D3120",
                    format!(
                        "Syntax error in expression passed to function eval: {}",
                        e.message
                    ),
                    pos,
                )
            })?;
            let input = if a.v.len() > 1 {
                a.get(1).cloned()
            } else {
                ctx.cloned()
            };
            ev.eval_detached(&node, input.as_ref()).map_err(|e| {
                if crate::eval::is_limit(&e.code) {
                    e
                } else {
                    err(
                        "D3121",
                        format!(
                            "Dynamic error evaluating the expression passed to function eval: {}",
                            e.message
                        ),
                        pos,
                    )
                }
            })
        }
        "number" => match a.get(0) {
            None => Ok(None),
            Some(Value::Num(n)) => num(*n),
            Some(Value::Bool(b)) => num(if *b { 1.0 } else { 0.0 }),
            Some(Value::Str(s)) => match parse_number(s) {
                Some(n) => num(n),
                None => Err(err(
                    "D3030",
                    format!("Unable to cast value to a number: \"{s}\""),
                    pos,
                )),
            },
            Some(v) => Err(err(
                "D3030",
                format!("Unable to cast value to a number: {}", to_string(v, false)),
                pos,
            )),
        },
        "abs" => Ok(a.num(0)?.map(|n| Value::Num(n.abs()))),
        "floor" => Ok(a.num(0)?.map(|n| Value::Num(n.floor()))),
        "ceil" => Ok(a.num(0)?.map(|n| Value::Num(n.ceil()))),
        "round" => {
            let Some(n) = a.num(0)? else { return Ok(None) };
            let p = a.num(1)?.unwrap_or(0.0).trunc().clamp(-400.0, 400.0) as i32;
            num(round_half_even(n, p))
        }
        "power" => {
            let Some(b) = a.num(0)? else { return Ok(None) };
            let e = a.num(1)?.ok_or_else(|| sig_err(name, 1, pos))?;
            let r = b.powf(e);
            if !r.is_finite() {
                return Err(err(
                    "D3061",
                    format!(
                        "The power function has resulted in a value that cannot be represented as a JSON number: base={}, exponent={}",
                        js_number(b),
                        js_number(e)
                    ),
                    pos,
                ));
            }
            num(r)
        }
        "sqrt" => {
            let Some(n) = a.num(0)? else { return Ok(None) };
            if n < 0.0 {
                return Err(err(
                    "D3060",
                    format!(
                        "The sqrt function cannot be applied to a negative number: {}",
                        js_number(n)
                    ),
                    pos,
                ));
            }
            num(n.sqrt())
        }
        "random" => num(random()),
        "sum" => Ok(a.nums(0)?.map(|v| Value::Num(v.iter().sum()))),
        "max" | "min" => {
            let Some(v) = a.nums(0)? else { return Ok(None) };
            if v.is_empty() {
                return Ok(None);
            }
            let r = if name == "max" {
                v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            } else {
                v.iter().cloned().fold(f64::INFINITY, f64::min)
            };
            num(r)
        }
        "average" => {
            let Some(v) = a.nums(0)? else { return Ok(None) };
            if v.is_empty() {
                return Ok(None);
            }
            num(v.iter().sum::<f64>() / v.len() as f64)
        }
        "boolean" => Ok(a.get(0).map(|v| Value::Bool(truthy(Some(v))))),
        "not" => Ok(a.get(0).map(|v| Value::Bool(!truthy(Some(v))))),
        "exists" => Ok(Some(Value::Bool(a.present(0)))),
        "count" => num(a.arr(0).map(|x| x.len()).unwrap_or(0) as f64),
        "append" => {
            let (x, y) = (a.get(0), a.get(1));
            match (x, y) {
                (None, None) => Ok(None),
                (Some(v), None) | (None, Some(v)) => Ok(Some(v.clone())),
                (Some(_), Some(_)) => {
                    let mut out = a.arr(0).map(|v| v.as_ref().clone()).unwrap_or_default();
                    out.extend(a.arr(1).map(|v| v.as_ref().clone()).unwrap_or_default());
                    Ok(Some(Value::array(out)))
                }
            }
        }
        "sort" => sort(ev, &a, pos),
        "reverse" => Ok(a.arr(0).map(|v| {
            let mut out = v.as_ref().clone();
            out.reverse();
            Value::array(out)
        })),
        "shuffle" => Ok(a.arr(0).map(|v| {
            let mut out = v.as_ref().clone();
            for i in (1..out.len()).rev() {
                let j = (random() * (i + 1) as f64) as usize;
                out.swap(i, j.min(i));
            }
            Value::array(out)
        })),
        "distinct" => match a.get(0) {
            None => Ok(None),
            Some(Value::Array(arr, f)) => {
                if arr.len() <= 1 {
                    return Ok(Some(Value::Array(arr.clone(), *f)));
                }
                let mut out: Vec<Value> = Vec::new();
                for x in arr.iter() {
                    ev.tick(pos)?;
                    if !out.iter().any(|y| deep_equal(x, y)) {
                        out.push(x.clone());
                    }
                }
                // A sequence stays a sequence; an array stays an array.
                Ok(Some(if f.seq {
                    Value::seq(out)
                } else {
                    Value::array(out)
                }))
            }
            Some(v) => Ok(Some(v.clone())),
        },
        "zip" => {
            let arrays: Vec<Rc<Vec<Value>>> = (0..a.v.len())
                .map(|i| a.arr(i).unwrap_or_default())
                .collect();
            let n = arrays.iter().map(|x| x.len()).min().unwrap_or(0);
            let out = (0..n)
                .map(|i| Value::array(arrays.iter().map(|x| x[i].clone()).collect()))
                .collect();
            Ok(Some(Value::array(out)))
        }
        "keys" => {
            let mut keys: Vec<Rc<str>> = Vec::new();
            let mut add = |o: &Obj| {
                for k in o.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            };
            match a.get(0) {
                None => return Ok(None),
                Some(Value::Object(o)) => add(o),
                Some(Value::Array(arr, _)) => {
                    for x in arr.iter() {
                        if let Value::Object(o) = x {
                            add(o);
                        }
                    }
                }
                Some(_) => {}
            }
            Ok(Some(Value::seq(keys.into_iter().map(Value::Str).collect())))
        }
        "lookup" => {
            let key = a.str(1)?.ok_or_else(|| sig_err(name, 1, pos))?;
            match a.get(0) {
                None => Ok(None),
                Some(v) => Ok(crate::eval::lookup(v, &key)),
            }
        }
        "spread" => match a.get(0) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Value::seq(spread(o)))),
            Some(Value::Array(arr, _)) => {
                let mut out = Vec::new();
                for x in arr.iter() {
                    match x {
                        Value::Object(o) => out.extend(spread(o)),
                        other => out.push(other.clone()),
                    }
                }
                Ok(Some(Value::seq(out)))
            }
            Some(v) => Ok(Some(v.clone())),
        },
        "merge" => {
            let Some(arr) = a.arr(0) else { return Ok(None) };
            let mut out = Obj::new();
            for x in arr.iter() {
                match x {
                    Value::Object(o) => {
                        for (k, v) in o.iter() {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    _ => {
                        return Err(err(
                            "T0412",
                            "Argument 1 of function \"merge\" must be an array of objects",
                            pos,
                        ));
                    }
                }
            }
            Ok(Some(Value::object(out)))
        }
        "sift" | "each" => {
            let o = match a.get(0) {
                None => return Ok(None),
                Some(Value::Object(o)) => o.clone(),
                Some(_) => return Err(sig_err(name, 0, pos)),
            };
            let f = a.func(1)?.ok_or_else(|| sig_err(name, 1, pos))?;
            let obj_val = Value::Object(o.clone());
            let arity = fn_arity(&f);
            let mut kept = Obj::new();
            let mut results = Vec::new();
            for (k, v) in o.iter() {
                let mut fargs = vec![
                    Some(v.clone()),
                    Some(Value::Str(k.clone())),
                    Some(obj_val.clone()),
                ];
                fargs.truncate(arity.max(1));
                let r = ev.apply(&f, fargs, None, pos)?;
                if name == "sift" {
                    if truthy(r.as_ref()) {
                        kept.insert(k.clone(), v.clone());
                    }
                } else if let Some(r) = r {
                    results.push(r);
                }
            }
            if name == "sift" {
                Ok(if kept.is_empty() {
                    None
                } else {
                    Some(Value::object(kept))
                })
            } else {
                Ok(Some(Value::seq(results)))
            }
        }
        "error" => {
            let msg = a.str(0)?.map(|s| s.to_string());
            Err(err(
                "D3137",
                msg.unwrap_or_else(|| "$error() function evaluated".into()),
                pos,
            ))
        }
        "assert" => {
            let cond = match a.get(0) {
                Some(Value::Bool(b)) => *b,
                _ => return Err(sig_err(name, 0, pos)),
            };
            if !cond {
                let msg = a.str(1)?.map(|s| s.to_string());
                return Err(err(
                    "D3141",
                    msg.unwrap_or_else(|| "$assert() statement failed".into()),
                    pos,
                ));
            }
            Ok(None)
        }
        "type" | "typeOf" => Ok(a.get(0).map(|v| Value::str(v.type_name()))),
        "clone" => Ok(a.get(0).cloned()),
        "map" | "filter" => {
            let Some(arr) = a.arr(0) else { return Ok(None) };
            let f = a.func(1)?.ok_or_else(|| sig_err(name, 1, pos))?;
            let arity = fn_arity(&f);
            let whole = Value::Array(arr.clone(), Default::default());
            let mut out = Vec::new();
            for (i, x) in arr.iter().enumerate() {
                let mut fargs = vec![
                    Some(x.clone()),
                    Some(Value::Num(i as f64)),
                    Some(whole.clone()),
                ];
                fargs.truncate(arity.max(1));
                let r = ev.apply(&f, fargs, None, pos)?;
                ev.check_len(out.len(), pos)?;
                if name == "map" {
                    if let Some(r) = r {
                        out.push(r);
                    }
                } else if truthy(r.as_ref()) {
                    out.push(x.clone());
                }
            }
            Ok(Some(Value::seq(out)))
        }
        "single" => {
            let Some(arr) = a.arr(0) else { return Ok(None) };
            let f = a.func(1)?;
            let whole = Value::Array(arr.clone(), Default::default());
            let mut found: Option<Value> = None;
            for (i, x) in arr.iter().enumerate() {
                let ok = match &f {
                    None => true,
                    Some(f) => {
                        let mut fargs = vec![
                            Some(x.clone()),
                            Some(Value::Num(i as f64)),
                            Some(whole.clone()),
                        ];
                        fargs.truncate(fn_arity(f).max(1));
                        truthy(ev.apply(f, fargs, None, pos)?.as_ref())
                    }
                };
                if ok {
                    if found.is_some() {
                        return Err(err(
                            "D3138",
                            "The $single() function expected exactly 1 matching result.  Instead it matched more.",
                            pos,
                        ));
                    }
                    found = Some(x.clone());
                }
            }
            match found {
                Some(v) => Ok(Some(v)),
                None => Err(err(
                    "D3139",
                    "The $single() function expected exactly 1 matching result.  Instead it matched 0.",
                    pos,
                )),
            }
        }
        "reduce" => {
            let Some(arr) = a.arr(0) else { return Ok(None) };
            let f = a.func(1)?.ok_or_else(|| sig_err(name, 1, pos))?;
            let arity = match &f {
                Value::Func(func) if matches!(**func, Func::Native(_)) => 2,
                f => fn_arity(f),
            };
            if arity < 2 {
                return Err(err(
                    "D3050",
                    "The second argument of reduce function must be a function with at least two arguments",
                    pos,
                ));
            }
            let whole = Value::Array(arr.clone(), Default::default());
            let (mut acc, start) = if a.v.len() > 2 {
                (a.get(2).cloned(), 0)
            } else {
                (arr.first().cloned(), 1)
            };
            for i in start..arr.len() {
                let mut fargs = vec![
                    acc,
                    Some(arr[i].clone()),
                    Some(Value::Num(i as f64)),
                    Some(whole.clone()),
                ];
                fargs.truncate(arity);
                acc = ev.apply(&f, fargs, None, pos)?;
            }
            Ok(acc)
        }
        "now" => {
            let picture = a.str(0)?;
            let tz = a.str(1)?;
            datetime::from_millis(ev.start_ms as f64, picture.as_deref(), tz.as_deref(), pos)
                .map(|s| Some(Value::string(s)))
        }
        "millis" => num(ev.start_ms as f64),
        "fromMillis" => {
            let Some(ms) = a.num(0)? else { return Ok(None) };
            let picture = a.str(1)?;
            let tz = a.str(2)?;
            datetime::from_millis(ms, picture.as_deref(), tz.as_deref(), pos)
                .map(|s| Some(Value::string(s)))
        }
        "toMillis" => {
            let Some(s) = a.str(0)? else { return Ok(None) };
            let picture = a.str(1)?;
            datetime::to_millis(&s, picture.as_deref(), pos).map(|n| n.map(Value::Num))
        }
        _ => Err(err("T1006", "Attempted to invoke a non-function", pos)),
    }
}

fn fn_arity(f: &Value) -> usize {
    match f {
        Value::Func(func) => func.arity(),
        _ => 1,
    }
}

fn spread(o: &Obj) -> Vec<Value> {
    o.iter()
        .map(|(k, v)| {
            let mut single = Obj::new();
            single.insert(k.clone(), v.clone());
            Value::object(single)
        })
        .collect()
}

fn substring(s: &str, start: f64, len: Option<f64>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as f64;
    let mut start = start.trunc();
    if start < 0.0 {
        start = (n + start).max(0.0);
    }
    let start = start.min(n) as usize;
    let end = match len {
        None => chars.len(),
        Some(l) => {
            let l = l.trunc();
            if l <= 0.0 {
                return String::new();
            }
            (start as f64 + l).min(n) as usize
        }
    };
    if start >= end {
        return String::new();
    }
    chars[start..end].iter().collect()
}

fn regex_arg(a: &Args, i: usize) -> R<regex::Regex> {
    match a.get(i) {
        Some(Value::Func(f)) => match &**f {
            Func::Regex(r) => Ok(r.regex.clone()),
            _ => Err(sig_err(a.name, i, a.pos)),
        },
        Some(Value::Str(s)) => {
            regex::Regex::new(&regex::escape(s)).map_err(|_| sig_err(a.name, i, a.pos))
        }
        _ => Err(sig_err(a.name, i, a.pos)),
    }
}

fn check_zero_length(re: &regex::Regex, s: &str, pos: usize) -> R<()> {
    if re.find_iter(s).any(|m| m.as_str().is_empty()) {
        return Err(err(
            "D1004",
            "Regular expression matches zero length string",
            pos,
        ));
    }
    Ok(())
}

/// Match objects `{match, index, groups}` for up to `limit` matches; `index`
/// counts characters.
pub(crate) fn regex_matches(re: &regex::Regex, s: &str, limit: Option<usize>) -> Vec<Value> {
    let mut out = Vec::new();
    for caps in re.captures_iter(s) {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let Some(m) = caps.get(0) else { continue };
        if m.as_str().is_empty() {
            continue;
        }
        let mut o = Obj::new();
        o.insert(Rc::from("match"), Value::str(m.as_str()));
        o.insert(
            Rc::from("index"),
            Value::Num(s[..m.start()].chars().count() as f64),
        );
        let groups = (1..caps.len())
            .map(|g| Value::str(caps.get(g).map(|x| x.as_str()).unwrap_or("")))
            .collect();
        o.insert(Rc::from("groups"), Value::array(groups));
        out.push(Value::object(o));
    }
    out
}

/// The result of invoking a regex value as a function
/// (<https://docs.jsonata.org/regex>): `{match, start, end, groups}` of the
/// first match (character offsets), or `undefined`.
pub(crate) fn regex_matcher(re: &regex::Regex, s: &str) -> Option<Value> {
    let caps = re.captures(s)?;
    let m = caps.get(0)?;
    let start = s[..m.start()].chars().count();
    let mut o = Obj::new();
    o.insert(Rc::from("match"), Value::str(m.as_str()));
    o.insert(Rc::from("start"), Value::Num(start as f64));
    o.insert(
        Rc::from("end"),
        Value::Num((start + m.as_str().chars().count()) as f64),
    );
    let groups = (1..caps.len())
        .map(|g| Value::str(caps.get(g).map(|x| x.as_str()).unwrap_or("")))
        .collect();
    o.insert(Rc::from("groups"), Value::array(groups));
    Some(Value::object(o))
}

fn replace(ev: &Ev, a: &Args, pos: usize) -> R<Option<Value>> {
    let Some(s) = a.str(0)? else { return Ok(None) };
    if let Some(Value::Str(p)) = a.get(1)
        && p.is_empty()
    {
        return Err(err(
            "D3010",
            "Second argument of replace function cannot be an empty string",
            pos,
        ));
    }
    let re = regex_arg(a, 1)?;
    let limit = match a.num(3)? {
        None => None,
        Some(l) if l < 0.0 => {
            return Err(err(
                "D3011",
                "Fourth argument of replace function must evaluate to a positive number",
                pos,
            ));
        }
        Some(l) => Some(l.floor() as usize),
    };
    let replacement = match a.get(2) {
        Some(r @ (Value::Str(_) | Value::Func(_))) => r.clone(),
        _ => return Err(sig_err(a.name, 2, pos)),
    };
    check_zero_length(&re, &s, pos)?;
    let mut out = String::new();
    let mut last = 0;
    for (count, caps) in re.captures_iter(&s).enumerate() {
        if limit.is_some_and(|l| count >= l) {
            break;
        }
        ev.tick(pos)?;
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        match &replacement {
            Value::Str(r) => expand_replacement(r, &caps, &mut out),
            f => {
                let mo = regex_matches(&re, &s[m.start()..], Some(1))
                    .into_iter()
                    .next()
                    .map(|v| match v {
                        Value::Object(o) => {
                            let mut o = (*o).clone();
                            o.insert(
                                Rc::from("index"),
                                Value::Num(s[..m.start()].chars().count() as f64),
                            );
                            Value::object(o)
                        }
                        v => v,
                    });
                match ev.apply(f, vec![mo], None, pos)? {
                    Some(Value::Str(r)) => out.push_str(&r),
                    _ => {
                        return Err(err(
                            "D3012",
                            "Attempted to replace a matched string with a non-string value",
                            pos,
                        ));
                    }
                }
            }
        }
        last = m.end();
    }
    out.push_str(&s[last..]);
    string(out)
}

/// Expands `$0`, `$1`... and `$$` in a replacement string.
fn expand_replacement(r: &str, caps: &regex::Captures, out: &mut String) {
    let chars: Vec<char> = r.chars().collect();
    let mut i = 0;
    let ngroups = caps.len() - 1;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let next = chars[i + 1];
        if next == '$' {
            out.push('$');
            i += 2;
            continue;
        }
        if !next.is_ascii_digit() {
            out.push('$');
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        // Use the longest digit prefix that names an existing group.
        let mut end = j;
        let mut group: Option<usize> = None;
        while end > i + 1 {
            let digits: String = chars[i + 1..end].iter().collect();
            if let Ok(g) = digits.parse::<usize>()
                && g <= ngroups
            {
                group = Some(g);
                break;
            }
            end -= 1;
        }
        match group {
            Some(g) => {
                if let Some(m) = caps.get(g) {
                    out.push_str(m.as_str());
                }
                i = end;
            }
            None => {
                // No such group: the `$n` is replaced by nothing.
                i += 2;
            }
        }
    }
}

fn sort(ev: &Ev, a: &Args, pos: usize) -> R<Option<Value>> {
    let Some(arr) = a.arr(0) else { return Ok(None) };
    if arr.len() <= 1 {
        return Ok(Some(Value::array(arr.as_ref().clone())));
    }
    let f = a.func(1)?;
    let mut items = arr.as_ref().clone();
    match f {
        None => {
            let all_num = items.iter().all(|x| matches!(x, Value::Num(_)));
            let all_str = items.iter().all(|x| matches!(x, Value::Str(_)));
            if !all_num && !all_str {
                return Err(err(
                    "D3070",
                    "The single argument form of the sort function can only be applied to an array of strings or an array of numbers.  Use the second argument to specify a comparison function",
                    pos,
                ));
            }
            items.sort_by(|x, y| match (x, y) {
                (Value::Num(p), Value::Num(q)) => {
                    p.partial_cmp(q).unwrap_or(std::cmp::Ordering::Equal)
                }
                (Value::Str(p), Value::Str(q)) => cmp_utf16(p, q),
                _ => std::cmp::Ordering::Equal,
            });
            Ok(Some(Value::array(items)))
        }
        Some(f) => {
            // Stable merge sort; `f(a, b)` true means `a` goes after `b`.
            let sorted = merge_sort(ev, items, &f, pos)?;
            Ok(Some(Value::array(sorted)))
        }
    }
}

fn merge_sort(ev: &Ev, items: Vec<Value>, f: &Value, pos: usize) -> R<Vec<Value>> {
    if items.len() <= 1 {
        return Ok(items);
    }
    let mut items = items;
    let right = items.split_off(items.len() / 2);
    let left = merge_sort(ev, items, f, pos)?;
    let right = merge_sort(ev, right, f, pos)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    while let (Some(x), Some(y)) = (l.peek(), r.peek()) {
        let swap = truthy(
            ev.apply(f, vec![Some(x.clone()), Some(y.clone())], None, pos)?
                .as_ref(),
        );
        if swap {
            out.extend(r.next());
        } else {
            out.extend(l.next());
        }
    }
    out.extend(l);
    out.extend(r);
    Ok(out)
}

/// `$number` string parsing: JSON number syntax plus `0x`, `0o`, `0b`
/// prefixed integers.
fn parse_number(s: &str) -> Option<f64> {
    let t = s;
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            return u64::from_str_radix(rest, radix).ok().map(|v| v as f64);
        }
    }
    let b = t.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == int_start || (b[int_start] == b'0' && i - int_start > 1) {
        return None;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let fs = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == fs {
            return None;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let es = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == es {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn to_radix(n: f64, radix: u32) -> String {
    let neg = n < 0.0;
    let mut v = n.abs();
    if v == 0.0 {
        return "0".into();
    }
    let mut digits = Vec::new();
    let r = radix as f64;
    while v >= 1.0 && digits.len() < 2000 {
        let d = (v % r) as u32;
        digits.push(std::char::from_digit(d, radix).unwrap_or('0'));
        v = (v / r).floor();
    }
    if neg {
        digits.push('-');
    }
    digits.iter().rev().collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' || c.is_ascii_whitespace() {
            continue;
        }
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn url_encode(s: &str, whole_url: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let keep = c.is_ascii_alphanumeric()
            || "-_.!~*'()".contains(c)
            || (whole_url && ";,/?:@&=+$#".contains(c));
        if keep {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{:02X}", b));
            }
        }
    }
    out
}

fn url_decode(s: &str, whole_url: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let hex = s.get(i + 1..i + 3)?;
        let v = u8::from_str_radix(hex, 16).ok()?;
        if whole_url && v < 0x80 && ";,/?:@&=+$#".contains(v as char) {
            out.extend_from_slice(&b[i..i + 3]);
        } else {
            out.push(v);
        }
        i += 3;
    }
    String::from_utf8(out).ok()
}
