//! JSONata mode: `{% %}` expressions inside field values, compiled once at
//! definition time and evaluated with `$states` and the workflow's
//! variables bound.
//!
//! Rules: "Transforming data with JSONata in Step Functions" in the Step
//! Functions Developer Guide: a string field value that begins with `{%`
//! and ends with `%}` is an expression; any other value is used as is;
//! objects and arrays (Arguments, Output, Assign) are walked to any depth.

use serde_json::{Map, Value};
use stratus_jsonata::{Environment, Expression};

use crate::path::EvalError;

/// A value in a JSONata-mode field: literal JSON with expressions inside.
#[derive(Clone, Debug)]
pub enum JValue {
    /// No expression anywhere below.
    Static(Value),
    /// `"{% expr %}"`: the expression's text (between the delimiters,
    /// trimmed), where it sits below the field (`/v` for `{"v": ...}`),
    /// and the parsed expression.
    Expr {
        text: String,
        at: String,
        expr: Expression,
    },
    /// An object with an expression somewhere below.
    Object(Vec<(String, JValue)>),
    /// An array with an expression somewhere below.
    Array(Vec<JValue>),
}

/// If `s` is a `{% ... %}` expression, its inner text.
pub fn expression_text(s: &str) -> Option<&str> {
    let t = s.strip_prefix("{%")?.strip_suffix("%}")?;
    Some(t)
}

impl JValue {
    /// Compiles a field value. Err: (JSON pointer suffix, message) for the
    /// first expression that does not parse.
    pub fn compile(v: &Value) -> Result<JValue, (String, String)> {
        Self::compile_at(v, "", 0)
    }

    fn compile_at(v: &Value, at: &str, depth: usize) -> Result<JValue, (String, String)> {
        if depth > 512 {
            return Err((at.to_string(), "The value is nested too deeply".into()));
        }
        match v {
            Value::String(s) if s.trim() != s.as_str() && expression_text(s.trim()).is_some() => {
                Err((
                    at.to_string(),
                    format!(
                        "The JSONata expression '{s}' must begin with '{{%' and end with '%}}' without surrounding whitespace"
                    ),
                ))
            }
            Value::String(s) => match expression_text(s) {
                Some(inner) => {
                    let expr = stratus_jsonata::parse(inner).map_err(|e| {
                        (
                            at.to_string(),
                            format!(
                                "The JSONata expression '{}' is invalid: {}: {}",
                                inner.trim(),
                                e.code,
                                e.message
                            ),
                        )
                    })?;
                    Ok(JValue::Expr {
                        text: inner.trim().to_string(),
                        at: at.to_string(),
                        expr,
                    })
                }
                None => Ok(JValue::Static(v.clone())),
            },
            Value::Object(o) => {
                let mut dynamic = false;
                let mut fields = Vec::with_capacity(o.len());
                for (k, v) in o {
                    let t = Self::compile_at(
                        v,
                        &format!("{at}/{}", crate::path::pointer_escape(k)),
                        depth + 1,
                    )?;
                    dynamic |= !matches!(t, JValue::Static(_));
                    fields.push((k.clone(), t));
                }
                Ok(if dynamic {
                    JValue::Object(fields)
                } else {
                    JValue::Static(v.clone())
                })
            }
            Value::Array(a) => {
                let mut dynamic = false;
                let mut items = Vec::with_capacity(a.len());
                for (i, v) in a.iter().enumerate() {
                    let t = Self::compile_at(v, &format!("{at}/{i}"), depth + 1)?;
                    dynamic |= !matches!(t, JValue::Static(_));
                    items.push(t);
                }
                Ok(if dynamic {
                    JValue::Array(items)
                } else {
                    JValue::Static(v.clone())
                })
            }
            _ => Ok(JValue::Static(v.clone())),
        }
    }

    /// Whether the value is a single expression (or static).
    pub fn is_static(&self) -> bool {
        matches!(self, JValue::Static(_))
    }

    /// Evaluates the value for the field `field` ("Arguments", "Output",
    /// ...). An expression whose result is `undefined` is an error (AWS: "The JSONata
    /// expression '...' specified for the field '...' returned nothing
    /// (undefined).").
    /// Err: States.QueryEvaluationError with AWS's style of cause.
    pub fn evaluate(
        &self,
        field: &str,
        env: &Environment,
        input: &Value,
    ) -> Result<Value, EvalError> {
        match self.eval_opt(field, env, input)? {
            Some(v) => Ok(v),
            None => Err(self.undefined_error(field)),
        }
    }

    fn undefined_error(&self, field: &str) -> EvalError {
        let (text, at) = match self {
            JValue::Expr { text, at, .. } => (text.as_str(), at.as_str()),
            _ => ("", ""),
        };
        EvalError {
            error: "States.QueryEvaluationError".into(),
            cause: format!(
                "The JSONata expression '{text}' specified for the field '{field}{at}' returned nothing (undefined)."
            ),
        }
    }

    /// Like [`JValue::evaluate`], `None` for `undefined`.
    pub fn eval_opt(
        &self,
        field: &str,
        env: &Environment,
        input: &Value,
    ) -> Result<Option<Value>, EvalError> {
        match self {
            JValue::Static(v) => Ok(Some(v.clone())),
            JValue::Expr { text, at, expr } => expr.evaluate(Some(input), env).map_err(|e| EvalError {
                error: "States.QueryEvaluationError".into(),
                cause: format!(
                    "The JSONata expression '{text}' specified for the field '{field}{at}' threw an error during evaluation. {}: {}",
                    e.code, e.message
                ),
            }),
            // An expression inside an object or array that evaluates to
            // `undefined` is an error as well (the specification's rule
            // for JSONata fields).
            JValue::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    m.insert(k.clone(), t.evaluate(field, env, input)?);
                }
                Ok(Some(Value::Object(m)))
            }
            JValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for t in items {
                    out.push(t.evaluate(field, env, input)?);
                }
                Ok(Some(Value::Array(out)))
            }
        }
    }
}
