//! The Smithy RPC v2 CBOR protocol's body codec (RFC 8949 CBOR), for
//! clients that pick `smithy-rpc-v2-cbor` from the model's `protocols`.
//!
//! Requests decode to the same json shape the json protocol sends:
//! numbers, strings, lists, maps; timestamps (tag 1, epoch seconds) become
//! their number. Answers encode every number as a double (every number of
//! GetMetricStatistics, GetMetricData and ListMetrics answers is a
//! `DatapointValue` double or a timestamp), and the members `Timestamp` and
//! `Timestamps` as tag 1 timestamps.

use serde_json::{Map, Number, Value};

/// Deepest nesting accepted in a request.
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.data.get(self.pos).ok_or("the CBOR data ends early")?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).ok_or("a CBOR length overflows")?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or("the CBOR data ends early")?;
        self.pos = end;
        Ok(s)
    }

    /// The argument of an initial byte; `None` for indefinite length (31).
    fn arg(&mut self, info: u8) -> Result<Option<u64>, String> {
        Ok(Some(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().map_err(|_| "bad length")?,
            )),
            26 => u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().map_err(|_| "bad length")?,
            )),
            27 => u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| "bad length")?),
            31 => return Ok(None),
            _ => return Err(format!("reserved CBOR additional information {info}")),
        }))
    }

    fn text(&mut self, info: u8) -> Result<String, String> {
        match self.arg(info)? {
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| "a CBOR string is too long")?;
                String::from_utf8(self.take(n)?.to_vec())
                    .map_err(|_| "a CBOR text string is not UTF-8".to_string())
            }
            None => {
                let mut s = String::new();
                loop {
                    let b = self.byte()?;
                    if b == 0xff {
                        return Ok(s);
                    }
                    if b >> 5 != 3 || b & 31 == 31 {
                        return Err(
                            "a chunk of an indefinite text string is not a definite text string"
                                .into(),
                        );
                    }
                    s.push_str(&self.text(b & 31)?);
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Option<Value>, String> {
        if depth > MAX_DEPTH {
            return Err("the CBOR data nests too deep".into());
        }
        let b = self.byte()?;
        let (major, info) = (b >> 5, b & 31);
        Ok(Some(match major {
            0 => Value::from(self.arg(info)?.ok_or("an integer of indefinite length")?),
            1 => {
                let n = self.arg(info)?.ok_or("an integer of indefinite length")?;
                match i64::try_from(n) {
                    Ok(n) => Value::from(-1 - n),
                    Err(_) => Number::from_f64(-1.0 - n as f64)
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                }
            }
            2 => return Err("byte strings are not part of these operations' requests".into()),
            3 => Value::String(self.text(info)?),
            4 => {
                let mut items = Vec::new();
                match self.arg(info)? {
                    Some(n) => {
                        for _ in 0..n {
                            items.push(
                                self.value(depth + 1)?
                                    .ok_or("a break inside a definite list")?,
                            );
                        }
                    }
                    None => {
                        while let Some(v) = self.value(depth + 1)? {
                            items.push(v);
                        }
                    }
                }
                Value::Array(items)
            }
            5 => {
                let mut m = Map::new();
                let n = self.arg(info)?;
                let mut i = 0u64;
                loop {
                    if n.is_some_and(|n| i >= n) {
                        break;
                    }
                    let Some(k) = self.value(depth + 1)? else {
                        if n.is_none() {
                            break;
                        }
                        return Err("a break inside a definite map".into());
                    };
                    let Value::String(k) = k else {
                        return Err("a CBOR map key is not a text string".into());
                    };
                    let v = self.value(depth + 1)?.ok_or("a map key without a value")?;
                    m.insert(k, v);
                    i += 1;
                }
                Value::Object(m)
            }
            6 => {
                self.arg(info)?.ok_or("a tag of indefinite length")?;
                self.value(depth + 1)?.ok_or("a tag without a value")?
            }
            _ => match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 | 23 => Value::Null,
                25 => {
                    let h =
                        u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| "bad half float")?);
                    float(half_to_f64(h))
                }
                26 => float(f64::from(f32::from_be_bytes(
                    self.take(4)?.try_into().map_err(|_| "bad float")?,
                ))),
                27 => float(f64::from_be_bytes(
                    self.take(8)?.try_into().map_err(|_| "bad double")?,
                )),
                31 => return Ok(None),
                _ => return Err(format!("unsupported CBOR simple value {info}")),
            },
        }))
    }
}

fn float(f: f64) -> Value {
    // NaN and infinities have no json form; a string keeps them visible to
    // the readers, which reject them as "not a number".
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(f.to_string()))
}

fn half_to_f64(h: u16) -> f64 {
    let exp = (h >> 10) & 0x1f;
    let mant = f64::from(h & 0x3ff);
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 => {
            if mant == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        }
        _ => (1.0 + mant / 1024.0) * 2f64.powi(i32::from(exp) - 15),
    };
    if h & 0x8000 != 0 { -v } else { v }
}

/// Decodes one CBOR data item (the whole body). An empty body is `{}`.
///
/// Errors: a message saying what is malformed.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let mut r = Reader { data: body, pos: 0 };
    let v = r.value(0)?.ok_or("a break where a value was expected")?;
    if r.pos != body.len() {
        return Err("extra bytes after the CBOR data item".into());
    }
    Ok(v)
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_into(out: &mut Vec<u8>, v: &Value, timestamp: bool) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => {
            if timestamp {
                out.push(0xc1);
            }
            out.push(0xfb);
            out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
        }
        Value::String(s) => {
            head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            head(out, 4, items.len() as u64);
            for i in items {
                encode_into(out, i, timestamp);
            }
        }
        Value::Object(m) => {
            head(out, 5, m.len() as u64);
            for (k, val) in m {
                head(out, 3, k.len() as u64);
                out.extend_from_slice(k.as_bytes());
                encode_into(out, val, k == "Timestamp" || k == "Timestamps");
            }
        }
    }
}

/// Encodes an operation's json answer (or error body) as CBOR.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, v, false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc_8949_examples() {
        // Appendix A of RFC 8949.
        assert_eq!(decode(&[0x17]).unwrap(), json!(23));
        assert_eq!(decode(&[0x19, 0x03, 0xe8]).unwrap(), json!(1000));
        assert_eq!(decode(&[0x38, 0x63]).unwrap(), json!(-100));
        assert_eq!(decode(&[0xf9, 0x3c, 0x00]).unwrap(), json!(1.0));
        assert_eq!(
            decode(&[0xfa, 0x47, 0xc3, 0x50, 0x00]).unwrap(),
            json!(100000.0)
        );
        assert_eq!(
            decode(&[0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]).unwrap(),
            json!(1.1)
        );
        assert_eq!(
            decode(&[0x64, 0x49, 0x45, 0x54, 0x46]).unwrap(),
            json!("IETF")
        );
        assert_eq!(
            decode(&[0xc1, 0x1a, 0x51, 0x4b, 0x67, 0xb0]).unwrap(),
            json!(1363896240)
        );
        assert_eq!(
            decode(&[
                0xbf, 0x61, 0x61, 0x01, 0x61, 0x62, 0x9f, 0x02, 0x03, 0xff, 0xff
            ])
            .unwrap(),
            json!({"a": 1, "b": [2, 3]})
        );
        assert_eq!(
            decode(&[
                0x7f, 0x65, 0x73, 0x74, 0x72, 0x65, 0x61, 0x64, 0x6d, 0x69, 0x6e, 0x67, 0xff
            ])
            .unwrap(),
            json!("streaming")
        );
        assert!(decode(&[0x18]).is_err());
        assert!(decode(&[0x01, 0x02]).is_err());
        assert!(decode(&[0xa1, 0x01, 0x02]).is_err(), "keys are text");
    }

    #[test]
    fn answers_round_trip() {
        let v =
            json!({"Label": "m", "Datapoints": [{"Timestamp": 60, "Sum": 2.5}], "Messages": []});
        let bytes = encode(&v);
        assert_eq!(
            decode(&bytes).unwrap(),
            json!({"Label": "m", "Datapoints": [{"Timestamp": 60.0, "Sum": 2.5}], "Messages": []})
        );
        // The timestamp carries tag 1.
        let ts = encode(&json!({"Timestamp": 1}));
        assert_eq!(
            &ts[..12],
            &[
                0xa1, 0x69, b'T', b'i', b'm', b'e', b's', b't', b'a', b'm', b'p', 0xc1
            ]
        );
    }
}
