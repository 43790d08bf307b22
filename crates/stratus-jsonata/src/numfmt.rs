//! `$formatNumber` (XPath `format-number` pictures,
//! <https://www.w3.org/TR/xpath-functions-31/#syntax-of-picture-string>),
//! `$formatInteger` and `$parseInteger` (XPath `format-integer` pictures:
//! decimal digit patterns, `a`/`A`, `i`/`I`, `w`/`W`/`Ww`).

use crate::builtins::round_half_even;
use crate::eval::{R, err};
use crate::value::{Obj, Value};

struct Symbols {
    decimal: char,
    grouping: char,
    exponent: char,
    minus: char,
    percent: String,
    per_mille: String,
    zero: char,
    digit: char,
    pattern_sep: char,
    infinity: String,
    nan: String,
}

fn symbols(opts: Option<&Obj>) -> Symbols {
    let mut s = Symbols {
        decimal: '.',
        grouping: ',',
        exponent: 'e',
        minus: '-',
        percent: "%".into(),
        per_mille: "\u{2030}".into(),
        zero: '0',
        digit: '#',
        pattern_sep: ';',
        infinity: "Infinity".into(),
        nan: "NaN".into(),
    };
    if let Some(o) = opts {
        for (k, v) in o.iter() {
            let Value::Str(v) = v else { continue };
            let c = v.chars().next();
            match (&**k, c) {
                ("decimal-separator", Some(c)) => s.decimal = c,
                ("grouping-separator", Some(c)) => s.grouping = c,
                ("exponent-separator", Some(c)) => s.exponent = c,
                ("minus-sign", Some(c)) => s.minus = c,
                ("zero-digit", Some(c)) => s.zero = c,
                ("digit", Some(c)) => s.digit = c,
                ("pattern-separator", Some(c)) => s.pattern_sep = c,
                ("percent", _) => s.percent = v.to_string(),
                ("per-mille", _) => s.per_mille = v.to_string(),
                ("infinity", _) => s.infinity = v.to_string(),
                ("NaN", _) => s.nan = v.to_string(),
                _ => {}
            }
        }
    }
    s
}

impl Symbols {
    fn is_digit(&self, c: char) -> bool {
        let z = self.zero as u32;
        (c as u32) >= z && (c as u32) <= z + 9
    }
    fn is_active(&self, c: char) -> bool {
        self.is_digit(c)
            || c == self.digit
            || c == self.decimal
            || c == self.grouping
            || c == self.exponent
    }
    fn digit_char(&self, d: u32) -> char {
        char::from_u32(self.zero as u32 + d).unwrap_or('0')
    }
}

struct SubPicture {
    prefix: String,
    suffix: String,
    integer: Vec<char>,
    fraction: Vec<char>,
    exponent: Option<Vec<char>>,
    percent: bool,
    per_mille: bool,
}

fn split_sub(pic: &str, sy: &Symbols, pos: usize) -> R<SubPicture> {
    let chars: Vec<char> = pic.chars().collect();
    // Percent and per-mille may be multi-character strings: mark them.
    let contains = |needle: &str| !needle.is_empty() && pic.contains(needle);
    let percent = contains(&sy.percent);
    let per_mille = contains(&sy.per_mille);
    if percent && per_mille {
        return Err(err(
            "D3082",
            "A sub-picture cannot contain both a percent and a per-mille character",
            pos,
        ));
    }
    let first = chars
        .iter()
        .position(|&c| sy.is_active(c) && c != sy.exponent);
    let last = chars
        .iter()
        .rposition(|&c| sy.is_active(c) && c != sy.exponent);
    let (Some(first), Some(last)) = (first, last) else {
        return Err(err(
            "D3085",
            "The picture must contain at least one digit or optional-digit character",
            pos,
        ));
    };
    let prefix: String = chars[..first].iter().collect();
    let suffix: String = chars[last + 1..].iter().collect();
    let body = &chars[first..=last];
    let dec_count = body.iter().filter(|&&c| c == sy.decimal).count();
    if dec_count > 1 {
        return Err(err(
            "D3081",
            "The sub-picture must not contain more than one instance of the 'decimal-separator' character",
            pos,
        ));
    }
    // Exponent: an exponent-separator followed only by digits.
    let mut mantissa: Vec<char> = body.to_vec();
    let mut exponent = None;
    if let Some(e) = body.iter().rposition(|&c| c == sy.exponent) {
        let after = &body[e + 1..];
        if !after.is_empty() && after.iter().all(|&c| sy.is_digit(c)) {
            exponent = Some(after.to_vec());
            mantissa = body[..e].to_vec();
        }
    }
    let (integer, fraction) = match mantissa.iter().position(|&c| c == sy.decimal) {
        Some(d) => (mantissa[..d].to_vec(), mantissa[d + 1..].to_vec()),
        None => (mantissa.clone(), Vec::new()),
    };
    if fraction.contains(&sy.grouping) && integer.is_empty() && fraction.is_empty() {
        return Err(err("D3087", "Invalid grouping separator", pos));
    }
    Ok(SubPicture {
        prefix,
        suffix,
        integer,
        fraction,
        exponent,
        percent,
        per_mille,
    })
}

/// `$formatNumber(number, picture, options)`.
pub(crate) fn format_number(n: f64, picture: &str, opts: Option<&Obj>, pos: usize) -> R<String> {
    let sy = symbols(opts);
    let subs: Vec<&str> = picture.split(sy.pattern_sep).collect();
    if subs.len() > 2 {
        return Err(err(
            "D3080",
            "The picture string must only contain a maximum of two sub-pictures",
            pos,
        ));
    }
    if n.is_nan() {
        return Ok(sy.nan.clone());
    }
    let pos_pic = split_sub(subs[0], &sy, pos)?;
    let neg_pic = match subs.get(1) {
        Some(p) => Some(split_sub(p, &sy, pos)?),
        None => None,
    };
    let negative = n < 0.0;
    let pic = match (&neg_pic, negative) {
        (Some(np), true) => np,
        _ => &pos_pic,
    };
    let (prefix, suffix) = if negative && neg_pic.is_none() {
        (format!("{}{}", sy.minus, pic.prefix), pic.suffix.clone())
    } else {
        (pic.prefix.clone(), pic.suffix.clone())
    };
    if n.is_infinite() {
        return Ok(format!("{prefix}{}{suffix}", sy.infinity));
    }
    let mut v = n.abs();
    if pic.percent {
        v *= 100.0;
    } else if pic.per_mille {
        v *= 1000.0;
    }
    let int_digits = pic.integer.iter().filter(|&&c| sy.is_digit(c)).count();
    let int_all = pic
        .integer
        .iter()
        .filter(|&&c| sy.is_digit(c) || c == sy.digit)
        .count();
    let min_frac = pic.fraction.iter().filter(|&&c| sy.is_digit(c)).count();
    let max_frac = pic
        .fraction
        .iter()
        .filter(|&&c| sy.is_digit(c) || c == sy.digit)
        .count();
    let mut min_int = int_digits;
    if min_int == 0 && max_frac == 0 {
        min_int = if pic.exponent.is_some() { 0 } else { 1 };
        if pic.exponent.is_some() && int_all == 0 {
            min_int = 1;
        }
    }
    let mut exp_value: i32 = 0;
    if let Some(exp) = &pic.exponent {
        let _ = exp;
        if v != 0.0 {
            let mag = v.log10().floor() as i32 + 1;
            let target = if min_int > 0 { min_int as i32 } else { 0 };
            exp_value = mag - target;
            v = shift10(v, -exp_value);
            // Rounding may carry into another integer digit.
            let rounded = round_half_even(v, max_frac as i32);
            if rounded >= 10f64.powi(target.max(1)) && target > 0 {
                exp_value += 1;
                v = shift10(v, -1);
            }
        }
    }
    let rounded = round_half_even(v, max_frac as i32);
    let text = fixed(rounded, max_frac);
    let (ip, fp) = text.split_once('.').unwrap_or((&text, ""));
    let mut ip: String = ip.trim_start_matches('0').to_string();
    while ip.chars().count() < min_int {
        ip.insert(0, '0');
    }
    let mut fp: String = fp.to_string();
    while fp.len() > min_frac && fp.ends_with('0') {
        fp.pop();
    }
    // Grouping positions in the integer part, counted from the right.
    let mut int_groups = Vec::new();
    let mut count = 0;
    for &c in pic.integer.iter().rev() {
        if c == sy.grouping {
            int_groups.push(count);
        } else {
            count += 1;
        }
    }
    let regular = !int_groups.is_empty()
        && int_groups
            .iter()
            .enumerate()
            .all(|(i, &g)| g == int_groups[0] * (i + 1))
        && int_groups[0] > 0;
    let mut frac_groups = Vec::new();
    let mut count = 0;
    for &c in pic.fraction.iter() {
        if c == sy.grouping {
            frac_groups.push(count);
        } else {
            count += 1;
        }
    }
    let map_digits = |s: &str| -> Vec<char> {
        s.chars()
            .map(|c| c.to_digit(10).map(|d| sy.digit_char(d)).unwrap_or(c))
            .collect()
    };
    let idigits = map_digits(&ip);
    let mut int_out: Vec<char> = Vec::new();
    let len = idigits.len();
    for (i, &c) in idigits.iter().enumerate() {
        let from_right = len - i;
        if i > 0 {
            let sep = if regular {
                from_right % int_groups[0] == 0
            } else {
                int_groups.contains(&from_right)
            };
            if sep {
                int_out.push(sy.grouping);
            }
        }
        int_out.push(c);
    }
    let fdigits = map_digits(&fp);
    let mut frac_out: Vec<char> = Vec::new();
    for (i, &c) in fdigits.iter().enumerate() {
        if i > 0 && frac_groups.contains(&i) {
            frac_out.push(sy.grouping);
        }
        frac_out.push(c);
    }
    let mut out = prefix;
    out.extend(int_out);
    if !frac_out.is_empty() {
        out.push(sy.decimal);
        out.extend(frac_out);
    }
    if let Some(exp) = &pic.exponent {
        out.push(sy.exponent);
        if exp_value < 0 {
            out.push(sy.minus);
        }
        let e = exp_value.unsigned_abs().to_string();
        let mut e: String = e;
        while e.len() < exp.len() {
            e.insert(0, '0');
        }
        out.extend(map_digits(&e));
    }
    out.push_str(&suffix);
    Ok(out)
}

fn shift10(v: f64, p: i32) -> f64 {
    let s = format!("{:e}", v);
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}", e + p).parse().unwrap_or(v)
}

/// Fixed-point text with exactly `frac` fraction digits.
fn fixed(v: f64, frac: usize) -> String {
    format!("{:.*}", frac.min(100), v)
}

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [(u64, &str); 4] = [
    (1_000_000_000_000_000, "quadrillion"),
    (1_000_000_000_000, "trillion"),
    (1_000_000_000, "billion"),
    (1_000_000, "million"),
];

fn words(n: u64) -> String {
    if n < 20 {
        return ONES[n as usize].into();
    }
    if n < 100 {
        let t = TENS[(n / 10) as usize];
        return if n.is_multiple_of(10) {
            t.into()
        } else {
            format!("{t}-{}", ONES[(n % 10) as usize])
        };
    }
    if n < 1000 {
        let h = format!("{} hundred", ONES[(n / 100) as usize]);
        return if n.is_multiple_of(100) {
            h
        } else {
            format!("{h} and {}", words(n % 100))
        };
    }
    for (scale, name) in SCALES.iter().copied().chain([(1000, "thousand")]) {
        if n >= scale {
            let head = format!("{} {name}", words(n / scale));
            let rest = n % scale;
            return if rest == 0 {
                head
            } else if rest < 100 {
                format!("{head} and {}", words(rest))
            } else {
                format!("{head}, {}", words(rest))
            };
        }
    }
    String::new()
}

fn ordinal_words(n: u64) -> String {
    let w = words(n);
    let (head, last) = match w.rfind([' ', '-']) {
        Some(i) => (w[..=i].to_string(), w[i + 1..].to_string()),
        None => (String::new(), w.clone()),
    };
    let last = match last.as_str() {
        "one" => "first".to_string(),
        "two" => "second".to_string(),
        "three" => "third".to_string(),
        "five" => "fifth".to_string(),
        "eight" => "eighth".to_string(),
        "nine" => "ninth".to_string(),
        "twelve" => "twelfth".to_string(),
        l if l.ends_with('y') => format!("{}ieth", &l[..l.len() - 1]),
        l => format!("{l}th"),
    };
    head + &last
}

fn roman(mut n: u64) -> String {
    const R: [(u64, &str); 13] = [
        (1000, "m"),
        (900, "cm"),
        (500, "d"),
        (400, "cd"),
        (100, "c"),
        (90, "xc"),
        (50, "l"),
        (40, "xl"),
        (10, "x"),
        (9, "ix"),
        (5, "v"),
        (4, "iv"),
        (1, "i"),
    ];
    let mut s = String::new();
    for (v, r) in R {
        while n >= v {
            s.push_str(r);
            n -= v;
        }
    }
    s
}

fn alpha(mut n: u64) -> String {
    let mut s = Vec::new();
    while n > 0 {
        n -= 1;
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    s.iter().rev().collect()
}

fn ordinal_suffix(n: u64) -> &'static str {
    match (n % 10, n % 100) {
        (1, x) if x != 11 => "st",
        (2, x) if x != 12 => "nd",
        (3, x) if x != 13 => "rd",
        _ => "th",
    }
}

/// `$formatInteger(number, picture)`.
pub(crate) fn format_integer(n: f64, picture: &str, pos: usize) -> R<String> {
    let (pic, modifier) = match picture.rsplit_once(';') {
        Some((p, m)) => (p, m),
        None => (picture, ""),
    };
    let ordinal = modifier.starts_with('o');
    let neg = n < 0.0;
    let v = n.abs().floor();
    if v > 1e18 {
        return Err(err("D3137", "Number too large for $formatInteger", pos));
    }
    let v = v as u64;
    let sign = if neg { "-" } else { "" };
    let body = match pic {
        "a" => alpha(v),
        "A" => alpha(v).to_uppercase(),
        "i" => roman(v),
        "I" => roman(v).to_uppercase(),
        "w" | "W" | "Ww" => {
            let w = if ordinal { ordinal_words(v) } else { words(v) };
            match pic {
                "W" => w.to_uppercase(),
                "Ww" => w
                    .split(' ')
                    .map(|word| {
                        let mut c = word.chars();
                        match c.next() {
                            Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                            None => String::new(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => w,
            }
        }
        _ => {
            let s = decimal_picture(v, pic, pos)?;
            if ordinal {
                format!("{s}{}", ordinal_suffix(v))
            } else {
                s
            }
        }
    };
    Ok(format!("{sign}{body}"))
}

fn decimal_picture(v: u64, pic: &str, pos: usize) -> R<String> {
    let chars: Vec<char> = pic.chars().collect();
    let zero = chars
        .iter()
        .find_map(|&c| c.to_digit(10).map(|d| c as u32 - d))
        .unwrap_or('0' as u32);
    let is_digit = |c: char| (c as u32) >= zero && (c as u32) <= zero + 9;
    if !chars.iter().any(|&c| is_digit(c)) {
        return Err(err(
            "D3130",
            format!(
                "Formatting or parsing an integer as a sequence starting with {pic} is not supported by this implementation"
            ),
            pos,
        ));
    }
    let min = chars.iter().filter(|&&c| is_digit(c)).count();
    let mut seps: Vec<(usize, char)> = Vec::new();
    let mut count = 0;
    for &c in chars.iter().rev() {
        if is_digit(c) || c == '#' {
            count += 1;
        } else {
            seps.push((count, c));
        }
    }
    let regular = !seps.is_empty()
        && seps.iter().all(|&(_, c)| c == seps[0].1)
        && seps
            .iter()
            .enumerate()
            .all(|(i, &(g, _))| g == seps[0].0 * (i + 1));
    let mut digits: String = v.to_string();
    while digits.len() < min {
        digits.insert(0, '0');
    }
    let ds: Vec<char> = digits
        .chars()
        .map(|c| char::from_u32(zero + c.to_digit(10).unwrap_or(0)).unwrap_or(c))
        .collect();
    let mut out = Vec::new();
    let len = ds.len();
    for (i, &c) in ds.iter().enumerate() {
        let from_right = len - i;
        if i > 0 {
            if regular && seps[0].0 > 0 && from_right.is_multiple_of(seps[0].0) {
                out.push(seps[0].1);
            } else if !regular && let Some(&(_, sc)) = seps.iter().find(|&&(g, _)| g == from_right)
            {
                out.push(sc);
            }
        }
        out.push(c);
    }
    Ok(out.into_iter().collect())
}

fn parse_words(s: &str) -> Option<f64> {
    let mut total: u64 = 0;
    let mut current: u64 = 0;
    let cleaned = s.to_lowercase().replace([',', '-'], " ");
    for w in cleaned.split_whitespace() {
        if w == "and" {
            continue;
        }
        if let Some(i) = ONES.iter().position(|&o| o == w) {
            current += i as u64;
        } else if let Some(i) = TENS.iter().position(|&t| t == w && !t.is_empty()) {
            current += 10 * i as u64;
        } else if w == "hundred" {
            current *= 100;
        } else if w == "thousand" {
            total += current * 1000;
            current = 0;
        } else if let Some(&(scale, _)) = SCALES.iter().find(|&&(_, n)| n == w) {
            total += current * scale;
            current = 0;
        } else {
            return None;
        }
    }
    Some((total + current) as f64)
}

fn parse_roman(s: &str) -> Option<f64> {
    let val = |c: char| match c.to_ascii_lowercase() {
        'i' => Some(1),
        'v' => Some(5),
        'x' => Some(10),
        'l' => Some(50),
        'c' => Some(100),
        'd' => Some(500),
        'm' => Some(1000),
        _ => None,
    };
    let vals: Option<Vec<i64>> = s.chars().map(val).collect();
    let vals = vals?;
    let mut total = 0i64;
    for (i, &v) in vals.iter().enumerate() {
        if vals.get(i + 1).is_some_and(|&n| n > v) {
            total -= v;
        } else {
            total += v;
        }
    }
    Some(total as f64)
}

/// `$parseInteger(string, picture)`; `None` when the text does not match.
pub(crate) fn parse_integer(s: &str, picture: &str, pos: usize) -> R<Option<f64>> {
    let pic = picture.split(';').next().unwrap_or(picture);
    let r = match pic {
        "w" | "W" | "Ww" => parse_words(s),
        "i" | "I" => parse_roman(s),
        "a" | "A" => {
            let mut n = 0f64;
            for c in s.to_lowercase().chars() {
                if !c.is_ascii_lowercase() {
                    return Ok(None);
                }
                n = n * 26.0 + (c as u32 - 'a' as u32 + 1) as f64;
            }
            Some(n)
        }
        _ => {
            if !pic.chars().any(|c| c.is_ascii_digit() || c == '#') {
                return Err(err(
                    "D3130",
                    format!(
                        "Parsing an integer with picture {pic} is not supported by this implementation"
                    ),
                    pos,
                ));
            }
            let digits: String = s
                .chars()
                .take_while(|c| c.is_ascii_digit() || !c.is_alphanumeric())
                .filter(|c| c.is_ascii_digit())
                .collect();
            digits.parse::<f64>().ok()
        }
    };
    Ok(r)
}
