//! Parsing of the `FunctionName` parameter and building of Lambda ARNs.
//!
//! Lambda accepts a function as a name (`my-function`), a name with a
//! qualifier (`my-function:1`), a partial ARN (`123456789012:function:my-function`)
//! or a full ARN (`arn:aws:lambda:us-east-1:123456789012:function:my-function`),
//! each optionally followed by `:qualifier` (botocore shape
//! `NamespacedFunctionName`; names are limited to 64 characters of
//! `[a-zA-Z0-9-_]`).

use crate::AwsError;

/// A parsed reference to a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// The bare function name.
    pub name: String,
    /// The qualifier (`$LATEST`, a version number or an alias), if one was given.
    pub qualifier: Option<String>,
    /// The region named in a full ARN, if any.
    pub region: Option<String>,
    /// The account named in an ARN, if any.
    pub account: Option<String>,
}

/// Maximum length of a bare function name.
pub const MAX_FUNCTION_NAME: usize = 64;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// True if `s` is a valid bare function name (1-64 of `[a-zA-Z0-9-_]`).
pub fn valid_function_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_FUNCTION_NAME && s.chars().all(is_name_char)
}

/// True if `s` is a valid qualifier: `$LATEST`, or 1-128 of `[a-zA-Z0-9-_]`.
pub fn valid_qualifier(s: &str) -> bool {
    s == "$LATEST" || (!s.is_empty() && s.len() <= 128 && s.chars().all(is_name_char))
}

fn pattern_error(value: &str, field: &str) -> AwsError {
    AwsError::validation_errors(&[format!(
        "Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: \
         (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{{2}}(-gov)?-[a-z]+-\\d{{1}}:)?(\\d{{12}}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
    )])
}

/// `[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}` (botocore's region pattern).
fn valid_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let lower = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase());
    let middle_ok = match parts.len() {
        3 => true,
        4 => {
            parts[1] == "gov"
                || (parts[1].starts_with("iso") && parts[1].len() <= 4 && lower(parts[1]))
        }
        _ => false,
    };
    middle_ok
        && parts[0].len() == 2
        && lower(parts[0])
        && lower(parts[parts.len() - 2])
        && parts[parts.len() - 1].len() == 1
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
}

/// `(aws[a-zA-Z-]*)?`: the partition part of a Lambda ARN.
fn valid_partition(s: &str) -> bool {
    s.is_empty()
        || (s.starts_with("aws") && s[3..].chars().all(|c| c.is_ascii_alphabetic() || c == '-'))
}

fn valid_account(s: &str) -> bool {
    s.len() == 12 && s.chars().all(|c| c.is_ascii_digit())
}

impl FunctionRef {
    /// Parses a `FunctionName` parameter. `field` is the parameter's wire name
    /// used in error messages (`functionName`).
    ///
    /// Errors: `ValidationException` (400) when the value does not match
    /// the model's pattern or length.
    pub fn parse(input: &str, field: &str) -> Result<FunctionRef, AwsError> {
        if input.is_empty() || input.len() > 170 {
            return Err(pattern_error(input, field));
        }
        let parts: Vec<&str> = input.split(':').collect();
        let (region, account, rest): (Option<&str>, Option<&str>, &[&str]) = if parts[0] == "arn" {
            // arn:aws:lambda:region:account:function:name[:qualifier]
            if parts.len() < 7
                || parts.len() > 8
                || !valid_partition(parts[1])
                || parts[2] != "lambda"
                || !valid_region(parts[3])
                || !valid_account(parts[4])
                || parts[5] != "function"
            {
                return Err(pattern_error(input, field));
            }
            (Some(parts[3]), Some(parts[4]), &parts[6..])
        } else if parts.len() >= 3 && parts[1] == "function" && valid_account(parts[0]) {
            if parts.len() > 4 {
                return Err(pattern_error(input, field));
            }
            (None, Some(parts[0]), &parts[2..])
        } else if parts.len() >= 3 && parts[1] == "function" {
            return Err(pattern_error(input, field));
        } else {
            if parts.len() > 2 {
                return Err(pattern_error(input, field));
            }
            (None, None, &parts[..])
        };
        let name = rest[0];
        if !valid_function_name(name) {
            return Err(pattern_error(input, field));
        }
        let qualifier = match rest.get(1) {
            Some(q) if valid_qualifier(q) => Some(q.to_string()),
            Some(_) => return Err(pattern_error(input, field)),
            None => None,
        };
        Ok(FunctionRef {
            name: name.to_string(),
            qualifier,
            region: region.map(str::to_string),
            account: account.map(str::to_string),
        })
    }
}

/// `arn:aws:lambda:<region>:<account>:function:<name>`.
pub fn function_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

/// Extracts the region from a SigV4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/aws4_request, ...`).
pub fn region_from_authorization(header: &str) -> Option<String> {
    let cred = header.split("Credential=").nth(1)?;
    let scope = cred.split([',', ' ']).next()?;
    let mut it = scope.split('/');
    let _akid = it.next()?;
    let _date = it.next()?;
    let region = it.next()?;
    if region.is_empty() || region.len() > 32 {
        None
    } else {
        Some(region.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let r = FunctionRef::parse("my-fn", "functionName").unwrap();
        assert_eq!((r.name.as_str(), r.qualifier), ("my-fn", None));
        let r = FunctionRef::parse("my-fn:$LATEST", "functionName").unwrap();
        assert_eq!(r.qualifier.as_deref(), Some("$LATEST"));
        let r = FunctionRef::parse("123456789012:function:f1:prod", "functionName").unwrap();
        assert_eq!(
            (
                r.name.as_str(),
                r.account.as_deref(),
                r.qualifier.as_deref()
            ),
            ("f1", Some("123456789012"), Some("prod"))
        );
        let r = FunctionRef::parse(
            "arn:aws:lambda:eu-west-1:123456789012:function:f2",
            "functionName",
        )
        .unwrap();
        assert_eq!(
            (r.name.as_str(), r.region.as_deref()),
            ("f2", Some("eu-west-1"))
        );
        for bad in [
            "",
            "a b",
            "x:y:z",
            "arn:aws:s3:::bucket",
            "a/b",
            &"x".repeat(65),
            "f:bad!q",
        ] {
            let e = FunctionRef::parse(bad, "functionName").unwrap_err();
            assert_eq!(e.code, "ValidationException", "{bad}");
        }
    }

    #[test]
    fn region_scope() {
        let h = "AWS4-HMAC-SHA256 Credential=test/20240101/eu-west-1/lambda/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(region_from_authorization(h).as_deref(), Some("eu-west-1"));
        assert_eq!(region_from_authorization("Bearer x"), None);
    }
}
