//! Parsing and validation of state machine definitions.
//!
//! [`StateMachine::parse`] turns definition text into a compiled machine
//! (paths, payload templates, JSONata expressions and Choice rules are all
//! compiled here, once), and [`validate`] lists every problem the way
//! ValidateStateMachineDefinition does: severity, AWS's code
//! (`SCHEMA_VALIDATION_FAILED`, `MISSING_TRANSITION_TARGET`,
//! `MISSING_END_STATE`, `DUPLICATE_STATE_NAME`, `INVALID_RESOURCE`,
//! `INVALID_JSON_DESCRIPTION`, `MISSING_DESCRIPTION`,
//! `TOO_DEEPLY_NESTED`; warnings `NO_DOLLAR`, `NO_PATH`,
//! `PASS_RESULT_IS_STATIC`), a message and a location (a JSON pointer in
//! which array elements are written `Choices[0]`, as Step Functions writes
//! them).
//!
//! Rules: the Amazon States Language specification and the Step Functions
//! API reference (ValidateStateMachineDefinitionDiagnostic).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::path::{Path, Template};
use crate::query::{JValue, expression_text};

/// How bad a diagnostic is (ValidateStateMachineDefinitionSeverity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The definition is refused.
    Error,
    /// Accepted, but probably not what was meant.
    Warning,
}

impl Severity {
    /// "ERROR" | "WARNING", as the API returns it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        }
    }
}

/// One ValidateStateMachineDefinition diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// AWS's code: "SCHEMA_VALIDATION_FAILED", "INVALID_JSON_DESCRIPTION", ...
    pub code: String,
    /// What is wrong, in AWS's wording where known.
    pub message: String,
    /// Where: "/States/Foo/Next"; `None` for the whole definition.
    pub location: Option<String>,
}

impl Diagnostic {
    fn error(code: &str, message: impl Into<String>, location: Option<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: code.into(),
            message: message.into(),
            location,
        }
    }

    /// The text CreateStateMachine puts in its InvalidDefinition message
    /// for this diagnostic: "CODE: message at /location".
    pub fn to_message(&self) -> String {
        match &self.location {
            Some(l) => format!("{}: {} at {}", self.code, self.message, l),
            None => format!("{}: {}", self.code, self.message),
        }
    }
}

/// The query language of a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryLanguage {
    JsonPath,
    Jsonata,
}

impl QueryLanguage {
    /// "JSONPath" | "JSONata".
    pub fn as_str(&self) -> &'static str {
        match self {
            QueryLanguage::JsonPath => "JSONPath",
            QueryLanguage::Jsonata => "JSONata",
        }
    }
}

/// A parsed and validated state machine definition.
#[derive(Debug)]
pub struct StateMachine {
    pub(crate) graph: Graph,
    pub(crate) query_language: QueryLanguage,
    /// Execution-level TimeoutSeconds.
    pub(crate) timeout_seconds: Option<u64>,
}

impl StateMachine {
    /// Parses and validates a definition (JSON text). Err: every ERROR
    /// diagnostic found (warnings are not errors).
    pub fn parse(definition: &str) -> Result<StateMachine, Vec<Diagnostic>> {
        let (m, diags) = parse_all(definition);
        let errors: Vec<Diagnostic> = diags
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        match m {
            Some(m) if errors.is_empty() => Ok(m),
            _ => Err(errors),
        }
    }

    /// "JSONPath" | "JSONata" (the top-level QueryLanguage, default JSONPath).
    pub fn query_language(&self) -> &str {
        self.query_language.as_str()
    }

    /// The execution-level TimeoutSeconds, if set.
    pub fn timeout_seconds(&self) -> Option<u64> {
        self.timeout_seconds
    }

    /// Names of every state, nested ones included (for the service's
    /// DescribeStateMachine / map run bookkeeping).
    pub fn state_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.graph.names_into(&mut out);
        out
    }
}

/// ValidateStateMachineDefinition: all diagnostics, errors and warnings
/// (empty = OK).
pub fn validate(definition: &str) -> Vec<Diagnostic> {
    parse_all(definition).1
}

/// A list of states with a start (the machine, a Parallel branch or a Map's
/// ItemProcessor).
#[derive(Debug)]
pub(crate) struct Graph {
    pub start: usize,
    pub states: Vec<State>,
}

impl Graph {
    fn names_into(&self, out: &mut Vec<String>) {
        for s in &self.states {
            out.push(s.name.clone());
            match &s.kind {
                Kind::Parallel(p) => p.branches.iter().for_each(|b| b.names_into(out)),
                Kind::Map(m) => m.processor.names_into(out),
                _ => {}
            }
        }
    }
}

/// A path-valued field: absent (`$`), `null` (`{}`) or a path.
#[derive(Clone, Debug)]
pub(crate) enum IoPath {
    Default,
    Null,
    Path(Path),
}

/// A whole number given literally, by a reference path, or by a JSONata
/// expression.
#[derive(Clone, Debug)]
pub(crate) enum Num {
    Lit(f64),
    Path(Path),
    Expr(JValue),
}

/// A string given literally, by a path, or by a JSONata expression.
#[derive(Clone, Debug)]
pub(crate) enum Text {
    Lit(String),
    Path(Path),
    /// ErrorPath / CausePath given as an intrinsic function call.
    Intrinsic(String),
    Expr(JValue),
}

/// Assign: a payload template (JSONPath) or JSONata values.
#[derive(Clone, Debug)]
pub(crate) enum Assign {
    Path(Template),
    Jsonata(JValue),
}

#[derive(Debug)]
pub(crate) struct Retrier {
    pub errors: Vec<String>,
    pub interval: f64,
    pub max_attempts: u64,
    pub backoff: f64,
    pub max_delay: Option<f64>,
    pub full_jitter: bool,
}

#[derive(Debug)]
pub(crate) struct Catcher {
    pub errors: Vec<String>,
    pub next: usize,
    pub result_path: IoPath,
    pub assign: Option<Assign>,
    pub output: Option<JValue>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub name: String,
    pub ql: QueryLanguage,
    pub kind: Kind,
    /// None = End.
    pub next: Option<usize>,
    pub input_path: IoPath,
    pub output_path: IoPath,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: IoPath,
    pub arguments: Option<JValue>,
    pub output: Option<JValue>,
    pub assign: Option<Assign>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl State {
    /// AWS's event-type prefix: "Pass", "Task", ...
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Pass { .. } => "Pass",
            Kind::Task(_) => "Task",
            Kind::Choice(_) => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel(_) => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Task {
    pub resource: String,
    pub timeout: Option<Num>,
    pub heartbeat: Option<Num>,
    pub credentials: Option<CredentialsSpec>,
}

#[derive(Debug)]
pub(crate) enum CredentialsSpec {
    Path(Template),
    Jsonata(JValue),
}

#[derive(Debug)]
pub(crate) enum ChoiceCond {
    Path {
        rule: crate::choice::ChoiceRule,
        paths: HashMap<String, Path>,
    },
    Jsonata(JValue),
}

#[derive(Debug)]
pub(crate) struct ChoiceBranch {
    pub cond: ChoiceCond,
    pub next: usize,
    pub assign: Option<Assign>,
    pub output: Option<JValue>,
}

#[derive(Debug)]
pub(crate) struct Choice {
    pub branches: Vec<ChoiceBranch>,
    pub default: Option<usize>,
}

#[derive(Debug)]
pub(crate) enum Wait {
    Seconds(Num),
    Timestamp(Text),
}

#[derive(Debug)]
pub(crate) struct Parallel {
    pub branches: Vec<Graph>,
}

#[derive(Debug)]
pub(crate) struct MapState {
    pub processor: Graph,
    /// The processor's own states are JSONata (inherited from the machine).
    pub items_path: Option<Path>,
    pub items: Option<JValue>,
    pub item_selector: Option<Assign>,
    pub max_concurrency: Option<Num>,
    pub tolerated_percentage: Option<Num>,
    pub tolerated_count: Option<Num>,
    /// ProcessorConfig.Mode == DISTRIBUTED (children run inline here; the
    /// service may run them as child executions instead).
    pub distributed: bool,
    /// ItemReader (Distributed Map): the items come from the host, which
    /// runs the reader's resource (e.g. `arn:aws:states:::s3:listObjectsV2`)
    /// as a task call.
    pub item_reader: Option<IoResource>,
    /// ItemBatcher (Distributed Map): raw fields (MaxItemsPerBatch[Path],
    /// MaxInputBytesPerBatch[Path]) and the compiled BatchInput.
    pub item_batcher: Option<(Value, Option<Assign>)>,
    /// ResultWriter (Distributed Map): the host writes the results (e.g.
    /// `arn:aws:states:::s3:putObject`).
    pub result_writer: Option<IoResource>,
    /// Label (Distributed Map): names the map run.
    pub label: Option<String>,
    /// The ItemProcessor as written (`StartAt`, `States`, `Comment`;
    /// without `ProcessorConfig`): a Distributed Map's host runs it as the
    /// state machine of each child execution.
    pub processor_json: Value,
    /// ProcessorConfig.ExecutionType of a Distributed Map ("STANDARD" or
    /// "EXPRESS").
    pub execution_type: Option<String>,
}

/// An ItemReader or ResultWriter: its resource, its Parameters (JSONPath)
/// or Arguments (JSONata), and its ReaderConfig / WriterConfig as given.
#[derive(Debug)]
pub(crate) struct IoResource {
    pub resource: String,
    pub params: Option<Assign>,
    pub config: Value,
}

/// Parses an ItemReader (`config_field` ReaderConfig) or ResultWriter
/// (WriterConfig) object.
fn io_resource(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    field: &str,
    config_field: &str,
    loc: &str,
    jp: bool,
) -> Option<IoResource> {
    let v = o.get(field)?;
    let floc = format!("{loc}/{field}");
    let Value::Object(r) = v else {
        ctx.schema(
            format!("The value for the field '{field}' must be an OBJECT"),
            &floc,
        );
        return None;
    };
    for k in r.keys() {
        let ok = matches!(k.as_str(), "Resource" | "Parameters" | "Arguments") || k == config_field;
        if !ok {
            ctx.schema(format!("Field '{k}' is not supported"), &floc);
        }
    }
    let resource = match r.get("Resource") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            ctx.schema(
                "The value for the field 'Resource' must be a STRING",
                &format!("{floc}/Resource"),
            );
            return None;
        }
        None => {
            ctx.schema("These fields are required: [Resource]", &floc);
            return None;
        }
    };
    let params = if jp {
        if r.contains_key("Arguments") {
            ctx.schema("Field 'Arguments' is not supported", &floc);
        }
        template(ctx, r, "Parameters", &floc).map(Assign::Path)
    } else {
        if r.contains_key("Parameters") {
            ctx.schema("Field 'Parameters' is not supported", &floc);
        }
        jvalue(ctx, r, "Arguments", &floc).map(Assign::Jsonata)
    };
    let config = r.get(config_field).cloned().unwrap_or(Value::Null);
    if !config.is_null() && !config.is_object() {
        ctx.schema(
            format!("The value for the field '{config_field}' must be an OBJECT"),
            &format!("{floc}/{config_field}"),
        );
    }
    Some(IoResource {
        resource,
        params,
        config,
    })
}

#[derive(Debug)]
pub(crate) enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task(Task),
    Choice(Choice),
    Wait(Wait),
    Succeed,
    Fail {
        error: Option<Text>,
        cause: Option<Text>,
    },
    Parallel(Parallel),
    Map(Box<MapState>),
}

// ---------------------------------------------------------------------------

const MAX_NESTING: usize = 32;
const STATE_TYPES: &[&str] = &[
    "Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map",
];

struct Ctx {
    diags: Vec<Diagnostic>,
    top_ql: QueryLanguage,
    all_names: HashSet<String>,
}

impl Ctx {
    fn err(&mut self, code: &str, msg: impl Into<String>, loc: &str) {
        self.diags
            .push(Diagnostic::error(code, msg, Some(loc.to_string())));
    }
    fn schema(&mut self, msg: impl Into<String>, loc: &str) {
        self.err("SCHEMA_VALIDATION_FAILED", msg, loc);
    }
    fn warn(&mut self, code: &str, msg: impl Into<String>, loc: &str) {
        self.diags.push(Diagnostic {
            severity: Severity::Warning,
            code: code.into(),
            message: msg.into(),
            location: Some(loc.to_string()),
        });
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Bool(_) => "BOOLEAN",
        Value::Number(_) => "NUMBER",
        Value::String(_) => "STRING",
        Value::Array(_) => "ARRAY",
        Value::Object(_) => "OBJECT",
    }
}

fn parse_all(text: &str) -> (Option<StateMachine>, Vec<Diagnostic>) {
    if text.trim().is_empty() {
        return (
            None,
            vec![Diagnostic::error(
                "MISSING_DESCRIPTION",
                "The state machine definition is empty",
                None,
            )],
        );
    }
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                None,
                vec![Diagnostic::error(
                    "INVALID_JSON_DESCRIPTION",
                    format!("The definition is not valid JSON: {e}"),
                    None,
                )],
            );
        }
    };
    let Value::Object(top) = &v else {
        return (
            None,
            vec![Diagnostic::error(
                "SCHEMA_VALIDATION_FAILED",
                format!("The definition must be an OBJECT, not {}", type_name(&v)),
                Some("/".into()),
            )],
        );
    };
    let mut ctx = Ctx {
        diags: Vec::new(),
        top_ql: QueryLanguage::JsonPath,
        all_names: HashSet::new(),
    };
    for k in top.keys() {
        if !matches!(
            k.as_str(),
            "Comment" | "StartAt" | "States" | "Version" | "TimeoutSeconds" | "QueryLanguage"
        ) {
            ctx.schema(format!("Field '{k}' is not supported"), "/");
        }
    }
    match top.get("QueryLanguage") {
        None => {}
        Some(Value::String(s)) if s == "JSONPath" => {}
        Some(Value::String(s)) if s == "JSONata" => ctx.top_ql = QueryLanguage::Jsonata,
        Some(_) => {
            ctx.schema(
                "The value for the field 'QueryLanguage' must be one of [JSONPath, JSONata]",
                "/QueryLanguage",
            );
            ctx.top_ql = QueryLanguage::Jsonata;
        }
    }
    check_comment(&mut ctx, top, "");
    if let Some(vv) = top.get("Version")
        && !vv.is_string()
    {
        ctx.schema(
            "The value for the field 'Version' must be a STRING",
            "/Version",
        );
    }
    let timeout_seconds = match top.get("TimeoutSeconds") {
        None => None,
        Some(t) => match t.as_u64() {
            Some(n) if (1..=99_999_999).contains(&n) => Some(n),
            _ => {
                ctx.schema(
                    "The value for the field 'TimeoutSeconds' must be a positive INTEGER",
                    "/TimeoutSeconds",
                );
                None
            }
        },
    };
    let graph = parse_graph(&mut ctx, top, "", 0, true);
    check_scopes(&mut ctx, top, "", &HashSet::new(), 0);
    let m = graph.map(|graph| StateMachine {
        graph,
        query_language: ctx.top_ql,
        timeout_seconds,
    });
    (m, ctx.diags)
}

fn check_comment(ctx: &mut Ctx, o: &Map<String, Value>, loc: &str) {
    if let Some(c) = o.get("Comment")
        && !c.is_string()
    {
        ctx.schema(
            "The value for the field 'Comment' must be a STRING",
            &format!("{loc}/Comment"),
        );
    }
}

/// Parses `StartAt` + `States` of a graph at `loc` ("" for the machine,
/// "/States/P/Branches[0]" for a branch).
fn parse_graph(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    loc: &str,
    depth: usize,
    top: bool,
) -> Option<Graph> {
    if depth > MAX_NESTING {
        ctx.err(
            "TOO_DEEPLY_NESTED",
            format!("States are nested more than {MAX_NESTING} levels deep"),
            loc,
        );
        return None;
    }
    let start_at = match o.get("StartAt") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            ctx.schema(
                "The value for the field 'StartAt' must be a STRING that references a state",
                &format!("{loc}/StartAt"),
            );
            None
        }
        None => None,
    };
    let states = match o.get("States") {
        Some(Value::Object(s)) => Some(s),
        Some(_) => {
            ctx.schema(
                "The value for the field 'States' must be an OBJECT",
                &format!("{loc}/States"),
            );
            None
        }
        None => None,
    };
    let mut missing = Vec::new();
    if o.get("StartAt").is_none() {
        missing.push("StartAt");
    }
    if o.get("States").is_none() {
        missing.push("States");
    }
    if !missing.is_empty() {
        ctx.schema(
            format!("These fields are required: [{}]", missing.join(", ")),
            if loc.is_empty() { "/" } else { loc },
        );
    }
    let states = states?;
    if states.is_empty() {
        ctx.schema(
            "The field 'States' must contain at least one state",
            &format!("{loc}/States"),
        );
        return None;
    }
    let index: HashMap<&str, usize> = states
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut parsed = Vec::with_capacity(states.len());
    let before = ctx.diags.len();
    for (name, sv) in states {
        let sloc = format!("{loc}/States/{}", crate::path::pointer_escape(name));
        if !ctx.all_names.insert(name.clone()) {
            ctx.err(
                "DUPLICATE_STATE_NAME",
                format!("Duplicate State name: {name}"),
                &sloc,
            );
        }
        if name.is_empty() || name.chars().count() > 80 {
            ctx.err(
                "INVALID_STATE_NAME",
                "State names must be 1 to 80 characters long",
                &sloc,
            );
        }
        parsed.push(parse_state(ctx, name, sv, &sloc, &index, depth));
    }
    let mut start = None;
    if let Some(s) = &start_at {
        match index.get(s.as_str()) {
            Some(i) => start = Some(*i),
            None => ctx.err(
                "MISSING_TRANSITION_TARGET",
                format!("Missing 'Next' target: {s}"),
                &format!("{loc}/StartAt"),
            ),
        }
    }
    // Terminal states and reachability, over the transitions parsed so far.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); states.len()];
    let mut terminal = false;
    for (i, (_, sv)) in states.iter().enumerate() {
        let Some(so) = sv.as_object() else { continue };
        let ty = so.get("Type").and_then(Value::as_str).unwrap_or("");
        if matches!(ty, "Succeed" | "Fail") || so.get("End") == Some(&Value::Bool(true)) {
            terminal = true;
        }
        let mut push = |v: Option<&Value>| {
            if let Some(Value::String(n)) = v
                && let Some(j) = index.get(n.as_str())
            {
                edges[i].push(*j);
            }
        };
        push(so.get("Next"));
        push(so.get("Default"));
        for list in ["Choices", "Catch"] {
            if let Some(Value::Array(a)) = so.get(list) {
                for c in a {
                    push(c.get("Next"));
                }
            }
        }
    }
    if !terminal {
        ctx.diags.push(Diagnostic::error(
            "MISSING_END_STATE",
            "Workflow has no terminal state",
            None,
        ));
    } else if let Some(s) = start {
        let mut seen = vec![false; states.len()];
        let mut stack = vec![s];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(edges[i].iter().copied());
        }
        for (i, name) in states.keys().enumerate() {
            if !seen[i] {
                ctx.err(
                    "MISSING_TRANSITION_TARGET",
                    format!("State \"{name}\" is not reachable."),
                    &format!("{loc}/States/{}", crate::path::pointer_escape(name)),
                );
            }
        }
    }
    let _ = top;
    if ctx.diags[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    let states: Option<Vec<State>> = parsed.into_iter().collect();
    Some(Graph {
        start: start?,
        states: states?,
    })
}

/// The variable names a state assigns (its own Assign, its Choice rules'
/// and its catchers'), with the JSON pointer of each Assign.
fn assigned_names(o: &Map<String, Value>, loc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |a: Option<&Value>, at: String| {
        if let Some(Value::Object(m)) = a {
            for k in m.keys() {
                out.push((k.strip_suffix(".$").unwrap_or(k).to_string(), at.clone()));
            }
        }
    };
    add(o.get("Assign"), format!("{loc}/Assign"));
    for list in ["Choices", "Catch"] {
        if let Some(Value::Array(a)) = o.get(list) {
            for (i, c) in a.iter().enumerate() {
                add(c.get("Assign"), format!("{loc}/{list}[{i}]/Assign"));
            }
        }
    }
    out
}

/// Variable scopes ("Passing data between states with variables"): the
/// states of a Parallel branch or Map iteration may read the variables of
/// outer scopes but cannot assign a variable with the name of one assigned
/// in an outer scope.
fn check_scopes(
    ctx: &mut Ctx,
    graph: &Map<String, Value>,
    loc: &str,
    outer: &HashSet<String>,
    depth: usize,
) {
    if depth > MAX_NESTING {
        return;
    }
    let Some(Value::Object(states)) = graph.get("States") else {
        return;
    };
    let mut here: HashSet<String> = outer.clone();
    for (name, sv) in states {
        let Some(so) = sv.as_object() else { continue };
        let sloc = format!("{loc}/States/{}", crate::path::pointer_escape(name));
        for (var, at) in assigned_names(so, &sloc) {
            if outer.contains(&var) {
                ctx.schema(
                    format!("The variable '{var}' is assigned in an outer scope and cannot be assigned in a Parallel branch or Map iteration"),
                    &at,
                );
            }
            here.insert(var);
        }
    }
    for (name, sv) in states {
        let Some(so) = sv.as_object() else { continue };
        let sloc = format!("{loc}/States/{}", crate::path::pointer_escape(name));
        if let Some(Value::Array(branches)) = so.get("Branches") {
            for (i, b) in branches.iter().enumerate() {
                if let Some(bo) = b.as_object() {
                    check_scopes(ctx, bo, &format!("{sloc}/Branches[{i}]"), &here, depth + 1);
                }
            }
        }
        for f in ["ItemProcessor", "Iterator"] {
            if let Some(Value::Object(po)) = so.get(f) {
                check_scopes(ctx, po, &format!("{sloc}/{f}"), &here, depth + 1);
            }
        }
    }
}

/// JSONata: `$states.result` exists only in the Output and Assign of
/// Task, Parallel and Map states, `$states.errorOutput` only in a Catch's
/// Output and Assign ("Transforming data with JSONata").
fn check_states_refs(ctx: &mut Ctx, v: &Value, loc: &str, result: bool, error: bool, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::String(s) if expression_text(s).is_some() => {
            for (name, allowed) in [("$states.result", result), ("$states.errorOutput", error)] {
                if !allowed && s.contains(name) {
                    ctx.schema(
                        format!("The JSONata expression '{s}' references '{name}', which is not available in this field"),
                        loc,
                    );
                }
            }
        }
        Value::Object(o) => {
            for (k, v) in o {
                check_states_refs(
                    ctx,
                    v,
                    &format!("{loc}/{}", crate::path::pointer_escape(k)),
                    result,
                    error,
                    depth + 1,
                );
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                check_states_refs(ctx, v, &format!("{loc}[{i}]"), result, error, depth + 1);
            }
        }
        _ => {}
    }
}

fn check_jsonata_fields(ctx: &mut Ctx, ty: &str, o: &Map<String, Value>, loc: &str) {
    let has_result = matches!(ty, "Task" | "Parallel" | "Map");
    for (k, v) in o {
        let floc = format!("{loc}/{k}");
        match k.as_str() {
            "Output" | "Assign" => check_states_refs(ctx, v, &floc, has_result, false, 0),
            "Catch" => {
                if let Value::Array(a) = v {
                    for (i, c) in a.iter().enumerate() {
                        for f in ["Output", "Assign"] {
                            if let Some(x) = c.get(f) {
                                check_states_refs(
                                    ctx,
                                    x,
                                    &format!("{floc}[{i}]/{f}"),
                                    false,
                                    true,
                                    0,
                                );
                            }
                        }
                    }
                }
            }
            "Choices" => {
                if let Value::Array(a) = v {
                    for (i, c) in a.iter().enumerate() {
                        check_states_refs(ctx, c, &format!("{floc}[{i}]"), false, false, 0);
                    }
                }
            }
            "Branches" | "ItemProcessor" | "Iterator" | "Retry" => {}
            _ => check_states_refs(ctx, v, &floc, false, false, 0),
        }
    }
}

/// Fields every state type may carry, by type; `true` = JSONPath only,
/// checked separately.
fn allowed(ty: &str) -> &'static [&'static str] {
    const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
    let _ = COMMON;
    match ty {
        "Pass" => &[
            "Type",
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "Result",
            "ResultPath",
            "Assign",
            "Output",
        ],
        "Task" => &[
            "Type",
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
            "Arguments",
            "Output",
            "Assign",
        ],
        "Choice" => &[
            "Type",
            "Comment",
            "QueryLanguage",
            "InputPath",
            "OutputPath",
            "Choices",
            "Default",
            "Assign",
            "Output",
        ],
        "Wait" => &[
            "Type",
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
            "Assign",
            "Output",
        ],
        "Succeed" => &[
            "Type",
            "Comment",
            "QueryLanguage",
            "InputPath",
            "OutputPath",
            "Output",
        ],
        "Fail" => &[
            "Type",
            "Comment",
            "QueryLanguage",
            "Error",
            "Cause",
            "ErrorPath",
            "CausePath",
        ],
        "Parallel" => &[
            "Type",
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
            "Branches",
            "Arguments",
            "Output",
            "Assign",
        ],
        "Map" => &[
            "Type",
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
            "Iterator",
            "ItemProcessor",
            "ItemsPath",
            "Items",
            "ItemSelector",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
            "Output",
            "Assign",
        ],
        _ => &[],
    }
}

const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "Result",
    "ItemsPath",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
    "ErrorPath",
    "CausePath",
    "Iterator",
];
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];

fn parse_state(
    ctx: &mut Ctx,
    name: &str,
    sv: &Value,
    loc: &str,
    index: &HashMap<&str, usize>,
    depth: usize,
) -> Option<State> {
    let Value::Object(o) = sv else {
        ctx.schema(
            format!("The value for the state '{name}' must be an OBJECT"),
            loc,
        );
        return None;
    };
    let before = ctx.diags.len();
    let ty = match o.get("Type") {
        None => {
            ctx.schema("These fields are required: [Type]", loc);
            return None;
        }
        Some(Value::String(t)) if STATE_TYPES.contains(&t.as_str()) => t.as_str(),
        Some(_) => {
            ctx.schema(
                format!(
                    "The value for the field 'Type' must be one of [{}]",
                    STATE_TYPES.join(", ")
                ),
                &format!("{loc}/Type"),
            );
            return None;
        }
    };
    // Query language: the state's own, else the machine's. A state cannot
    // choose JSONPath under a JSONata machine.
    let ql = match o.get("QueryLanguage") {
        None => ctx.top_ql,
        Some(Value::String(s)) if s == "JSONPath" => {
            if ctx.top_ql == QueryLanguage::Jsonata {
                ctx.schema(
                    "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
                    loc,
                );
            }
            QueryLanguage::JsonPath
        }
        Some(Value::String(s)) if s == "JSONata" => QueryLanguage::Jsonata,
        Some(_) => {
            ctx.schema(
                "The value for the field 'QueryLanguage' must be one of [JSONPath, JSONata]",
                &format!("{loc}/QueryLanguage"),
            );
            QueryLanguage::Jsonata
        }
    };
    let allowed = allowed(ty);
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            ctx.schema(format!("Field '{k}' is not supported"), loc);
        } else if ql == QueryLanguage::Jsonata && JSONPATH_ONLY.contains(&k.as_str()) {
            ctx.schema(
                format!("The QueryLanguage is set to 'JSONata', but field '{k}' is only supported for the 'JSONPath' QueryLanguage"),
                loc,
            );
        } else if ql == QueryLanguage::JsonPath && JSONATA_ONLY.contains(&k.as_str()) {
            ctx.schema(
                format!("The QueryLanguage is set to 'JSONPath', but field '{k}' is only supported for the 'JSONata' QueryLanguage"),
                loc,
            );
        }
    }
    check_comment(ctx, o, loc);
    if ql == QueryLanguage::Jsonata {
        check_jsonata_fields(ctx, ty, o, loc);
    }

    // Transitions.
    let mut next = None;
    let has_transition = !matches!(ty, "Choice" | "Succeed" | "Fail");
    if has_transition {
        let end = o.get("End");
        let nx = o.get("Next");
        if let Some(e) = end
            && !e.is_boolean()
        {
            ctx.schema(
                "The value for the field 'End' must be a BOOLEAN",
                &format!("{loc}/End"),
            );
        }
        let is_end = end == Some(&Value::Bool(true));
        match (nx, is_end) {
            (Some(_), true) => ctx.schema("Only one of 'Next' or 'End' may be set", loc),
            (None, false) => ctx.schema("These fields are required: [Next or End]", loc),
            (Some(n), false) => next = target(ctx, n, &format!("{loc}/Next"), index),
            (None, true) => {}
        }
    } else {
        for f in ["Next", "End"] {
            if o.contains_key(f) && !allowed.contains(&f) {
                // Already reported as unsupported.
            }
        }
    }

    let jp = ql == QueryLanguage::JsonPath;
    let input_path = io_path(ctx, o, "InputPath", loc, false);
    let output_path = io_path(ctx, o, "OutputPath", loc, false);
    let result_path = io_path(ctx, o, "ResultPath", loc, true);
    let parameters = template(ctx, o, "Parameters", loc);
    let result_selector = template(ctx, o, "ResultSelector", loc);
    let arguments = jvalue(ctx, o, "Arguments", loc);
    if let Some(a) = o.get("Arguments")
        && !a.is_object()
        && a.as_str().and_then(expression_text).is_none()
    {
        ctx.schema(
            "The value for the field 'Arguments' must be an OBJECT or a JSONata expression",
            &format!("{loc}/Arguments"),
        );
    }
    let output = jvalue(ctx, o, "Output", loc);
    let assign = assign(ctx, o, loc, jp);
    let retry = if o.contains_key("Retry") {
        retriers(ctx, o.get("Retry"), &format!("{loc}/Retry"))
    } else {
        Vec::new()
    };
    let catch = if o.contains_key("Catch") {
        catchers(ctx, o.get("Catch"), &format!("{loc}/Catch"), index, jp)
    } else {
        Vec::new()
    };

    let kind = match ty {
        "Pass" => {
            let result = o.get("Result").cloned();
            if let Some(Value::Object(r)) = &result {
                for (k, v) in r {
                    if k.ends_with(".$") || v.as_str().is_some_and(|s| s.starts_with("$.")) {
                        ctx.warn(
                            "PASS_RESULT_IS_STATIC",
                            "The 'Result' field of a Pass state is static: paths in it are not evaluated; use 'Parameters' instead",
                            &format!("{loc}/Result"),
                        );
                        break;
                    }
                }
            }
            Some(Kind::Pass { result })
        }
        "Succeed" => Some(Kind::Succeed),
        "Fail" => {
            for f in ["Error", "Cause"] {
                if jp
                    && o.get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.starts_with("$.") || s.starts_with("$$."))
                {
                    ctx.warn(
                        "NO_PATH",
                        format!("The value of the field '{f}' looks like a path, but the field name does not end with 'Path' (use '{f}Path')"),
                        &format!("{loc}/{f}"),
                    );
                }
            }
            let error = text_field(ctx, o, "Error", "ErrorPath", loc, jp);
            let cause = text_field(ctx, o, "Cause", "CausePath", loc, jp);
            Some(Kind::Fail { error, cause })
        }
        "Task" => parse_task(ctx, o, loc, jp).map(Kind::Task),
        "Wait" => parse_wait(ctx, o, loc, jp).map(Kind::Wait),
        "Choice" => parse_choice(ctx, o, loc, index, jp).map(Kind::Choice),
        "Parallel" => {
            let mut branches = Vec::new();
            match o.get("Branches") {
                Some(Value::Array(a)) if !a.is_empty() => {
                    for (i, b) in a.iter().enumerate() {
                        let bloc = format!("{loc}/Branches[{i}]");
                        match b {
                            Value::Object(bo) => {
                                for k in bo.keys() {
                                    if !matches!(k.as_str(), "StartAt" | "States" | "Comment") {
                                        ctx.schema(format!("Field '{k}' is not supported"), &bloc);
                                    }
                                }
                                if let Some(g) = parse_graph(ctx, bo, &bloc, depth + 1, false) {
                                    branches.push(g);
                                }
                            }
                            _ => ctx.schema("Each branch must be an OBJECT", &bloc),
                        }
                    }
                }
                Some(_) => ctx.schema(
                    "The value for the field 'Branches' must be a non-empty ARRAY",
                    &format!("{loc}/Branches"),
                ),
                None => ctx.schema("These fields are required: [Branches]", loc),
            }
            Some(Kind::Parallel(Parallel { branches }))
        }
        "Map" => parse_map(ctx, o, loc, depth, jp).map(|m| Kind::Map(Box::new(m))),
        _ => None,
    };
    if ctx.diags[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    Some(State {
        name: name.to_string(),
        ql,
        kind: kind?,
        next,
        input_path,
        output_path,
        parameters,
        result_selector,
        result_path,
        arguments,
        output,
        assign,
        retry,
        catch,
    })
}

fn target(ctx: &mut Ctx, v: &Value, loc: &str, index: &HashMap<&str, usize>) -> Option<usize> {
    match v {
        Value::String(s) => match index.get(s.as_str()) {
            Some(i) => Some(*i),
            None => {
                ctx.err(
                    "MISSING_TRANSITION_TARGET",
                    format!("Missing 'Next' target: {s}"),
                    loc,
                );
                None
            }
        },
        _ => {
            let field = loc.rsplit('/').next().unwrap_or("Next");
            ctx.schema(
                format!(
                    "The value for the field '{field}' must be a STRING that references a state"
                ),
                loc,
            );
            None
        }
    }
}

/// InputPath / OutputPath / ResultPath.
fn io_path(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    field: &str,
    loc: &str,
    reference: bool,
) -> IoPath {
    match o.get(field) {
        None => IoPath::Default,
        Some(Value::Null) => IoPath::Null,
        Some(Value::String(s)) => match Path::parse(s) {
            Ok(p) => {
                if reference && (!p.is_reference() || *p.root() != crate::path::Root::Input) {
                    ctx.schema(
                        format!("The value for the field '{field}' must be a valid Reference Path"),
                        &format!("{loc}/{field}"),
                    );
                } else if matches!(p.root(), crate::path::Root::Variable(_)) {
                    ctx.schema(
                        format!("The value for the field '{field}' must be a valid JSONPath"),
                        &format!("{loc}/{field}"),
                    );
                }
                IoPath::Path(p)
            }
            Err(_) => {
                ctx.schema(
                    format!(
                        "The value for the field '{field}' must be a valid {}",
                        if reference {
                            "Reference Path"
                        } else {
                            "JSONPath"
                        }
                    ),
                    &format!("{loc}/{field}"),
                );
                IoPath::Default
            }
        },
        Some(_) => {
            ctx.schema(
                format!("The value for the field '{field}' must be a STRING or null"),
                &format!("{loc}/{field}"),
            );
            IoPath::Default
        }
    }
}

fn check_no_dollar(ctx: &mut Ctx, v: &Value, loc: &str, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let here = format!("{loc}/{}", crate::path::pointer_escape(k));
                if !k.ends_with(".$")
                    && let Value::String(s) = v
                    && (s.starts_with("$.")
                        || s.starts_with("$$.")
                        || crate::intrinsics::is_intrinsic(s))
                {
                    ctx.warn(
                        "NO_DOLLAR",
                        format!("The value of the field '{k}' looks like a JSONPath or an intrinsic function, but the field name does not end with '.$'"),
                        &here,
                    );
                }
                check_no_dollar(ctx, v, &here, depth + 1);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                check_no_dollar(ctx, v, &format!("{loc}[{i}]"), depth + 1);
            }
        }
        _ => {}
    }
}

fn template(ctx: &mut Ctx, o: &Map<String, Value>, field: &str, loc: &str) -> Option<Template> {
    let v = o.get(field)?;
    let floc = format!("{loc}/{field}");
    check_no_dollar(ctx, v, &floc, 0);
    match Template::compile(v) {
        Ok(t) => Some(t),
        Err((at, msg)) => {
            ctx.schema(msg, &format!("{floc}{at}"));
            None
        }
    }
}

fn jvalue(ctx: &mut Ctx, o: &Map<String, Value>, field: &str, loc: &str) -> Option<JValue> {
    let v = o.get(field)?;
    match JValue::compile(v) {
        Ok(t) => Some(t),
        Err((at, msg)) => {
            ctx.schema(msg, &format!("{loc}/{field}{at}"));
            None
        }
    }
}

/// Whether `name` is a valid variable name (letters, digits and `_`, not
/// starting with a digit, at most 80 characters; `states` is reserved).
pub(crate) fn valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_alphabetic() || first == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && name.chars().count() <= 80
        && name != "states"
}

fn assign(ctx: &mut Ctx, o: &Map<String, Value>, loc: &str, jp: bool) -> Option<Assign> {
    let v = o.get("Assign")?;
    let floc = format!("{loc}/Assign");
    let Value::Object(m) = v else {
        ctx.schema("The value for the field 'Assign' must be an OBJECT", &floc);
        return None;
    };
    for k in m.keys() {
        let name = if jp {
            k.strip_suffix(".$").unwrap_or(k)
        } else {
            k.as_str()
        };
        if !valid_variable_name(name) {
            ctx.schema(
                format!("The variable name '{name}' is invalid: variable names start with a letter or '_', contain only letters, digits and '_', are at most 80 characters long, and 'states' is reserved"),
                &format!("{floc}/{}", crate::path::pointer_escape(k)),
            );
        }
    }
    if jp {
        match Template::compile(v) {
            Ok(t) => Some(Assign::Path(t)),
            Err((at, msg)) => {
                ctx.schema(msg, &format!("{floc}{at}"));
                None
            }
        }
    } else {
        match JValue::compile(v) {
            Ok(t) => Some(Assign::Jsonata(t)),
            Err((at, msg)) => {
                ctx.schema(msg, &format!("{floc}{at}"));
                None
            }
        }
    }
}

fn ref_path(ctx: &mut Ctx, o: &Map<String, Value>, field: &str, loc: &str) -> Option<Path> {
    let v = o.get(field)?;
    let floc = format!("{loc}/{field}");
    match v.as_str().map(Path::parse) {
        Some(Ok(p)) if p.is_reference() => Some(p),
        _ => {
            ctx.schema(
                format!("The value for the field '{field}' must be a valid Reference Path"),
                &floc,
            );
            None
        }
    }
}

/// A numeric field with its `*Path` alternative (JSONPath) or a JSONata
/// expression. `min`: the least literal value allowed.
fn num_field(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    field: &str,
    path_field: &str,
    loc: &str,
    min: f64,
    integer: bool,
) -> Option<Num> {
    let lit = o.get(field);
    let path = o.get(path_field);
    if lit.is_some() && path.is_some() {
        ctx.schema(
            format!("Only one of '{field}' or '{path_field}' may be set"),
            loc,
        );
        return None;
    }
    if let Some(v) = lit {
        let floc = format!("{loc}/{field}");
        if let Some(s) = v.as_str()
            && expression_text(s).is_some()
        {
            return match JValue::compile(v) {
                Ok(j) => Some(Num::Expr(j)),
                Err((_, m)) => {
                    ctx.schema(m, &floc);
                    None
                }
            };
        }
        let ok = v
            .as_f64()
            .filter(|n| *n >= min && (!integer || (v.is_u64() || v.is_i64())));
        return match ok {
            Some(n) => Some(Num::Lit(n)),
            None => {
                ctx.schema(
                    format!(
                        "The value for the field '{field}' must be {} {}",
                        if integer { "an INTEGER" } else { "a NUMBER" },
                        if min > 0.0 {
                            format!("greater than or equal to {min}")
                        } else {
                            "that is not negative".into()
                        }
                    ),
                    &floc,
                );
                None
            }
        };
    }
    if path.is_some() {
        return ref_path_any_root(ctx, o, path_field, loc).map(Num::Path);
    }
    None
}

/// A reference path that may start at `$`, `$$` or a variable.
fn ref_path_any_root(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    field: &str,
    loc: &str,
) -> Option<Path> {
    ref_path(ctx, o, field, loc)
}

fn text_field(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    field: &str,
    path_field: &str,
    loc: &str,
    jp: bool,
) -> Option<Text> {
    let lit = o.get(field);
    let path = o.get(path_field);
    if lit.is_some() && path.is_some() {
        ctx.schema(
            format!("Only one of '{field}' or '{path_field}' may be set"),
            loc,
        );
        return None;
    }
    if let Some(v) = lit {
        let floc = format!("{loc}/{field}");
        let Some(s) = v.as_str() else {
            ctx.schema(
                format!("The value for the field '{field}' must be a STRING"),
                &floc,
            );
            return None;
        };
        if !jp && expression_text(s).is_some() {
            return match JValue::compile(v) {
                Ok(j) => Some(Text::Expr(j)),
                Err((_, m)) => {
                    ctx.schema(m, &floc);
                    None
                }
            };
        }
        return Some(Text::Lit(s.to_string()));
    }
    if let Some(v) = path {
        let floc = format!("{loc}/{path_field}");
        let Some(s) = v.as_str() else {
            ctx.schema(
                format!("The value for the field '{path_field}' must be a STRING"),
                &floc,
            );
            return None;
        };
        if crate::intrinsics::is_intrinsic(s) {
            // ErrorPath / CausePath accept intrinsic functions too.
            return match crate::intrinsics::parse(s) {
                Ok(_) => Some(Text::Intrinsic(s.to_string())),
                Err(e) => {
                    ctx.schema(e.cause, &floc);
                    None
                }
            };
        }
        return match Path::parse(s) {
            Ok(p) if p.is_reference() => Some(Text::Path(p)),
            _ => {
                ctx.schema(
                    format!("The value for the field '{path_field}' must be a valid Reference Path or intrinsic function"),
                    &floc,
                );
                None
            }
        };
    }
    None
}

const ARN_PREFIX: &str = "arn:";

fn parse_task(ctx: &mut Ctx, o: &Map<String, Value>, loc: &str, jp: bool) -> Option<Task> {
    let resource = match o.get("Resource") {
        None => {
            ctx.schema("These fields are required: [Resource]", loc);
            return None;
        }
        Some(Value::String(r)) => r.clone(),
        Some(_) => {
            ctx.schema(
                "The value for the field 'Resource' must be a STRING",
                &format!("{loc}/Resource"),
            );
            return None;
        }
    };
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    if !resource.starts_with(ARN_PREFIX) || parts.len() < 6 || parts[2].is_empty() {
        ctx.err(
            "INVALID_RESOURCE",
            format!("Value is not a valid resource ARN: {resource}"),
            &format!("{loc}/Resource"),
        );
    }
    let timeout = num_field(
        ctx,
        o,
        "TimeoutSeconds",
        "TimeoutSecondsPath",
        loc,
        1.0,
        true,
    );
    let heartbeat = num_field(
        ctx,
        o,
        "HeartbeatSeconds",
        "HeartbeatSecondsPath",
        loc,
        1.0,
        true,
    );
    if let (Some(Num::Lit(t)), Some(Num::Lit(h))) = (&timeout, &heartbeat)
        && h >= t
    {
        ctx.schema(
            "The value for the field 'HeartbeatSeconds' must be smaller than the value for the field 'TimeoutSeconds'",
            &format!("{loc}/HeartbeatSeconds"),
        );
    }
    let credentials = match o.get("Credentials") {
        None => None,
        Some(v @ Value::Object(_)) => {
            if jp {
                match Template::compile(v) {
                    Ok(t) => Some(CredentialsSpec::Path(t)),
                    Err((at, m)) => {
                        ctx.schema(m, &format!("{loc}/Credentials{at}"));
                        None
                    }
                }
            } else {
                match JValue::compile(v) {
                    Ok(t) => Some(CredentialsSpec::Jsonata(t)),
                    Err((at, m)) => {
                        ctx.schema(m, &format!("{loc}/Credentials{at}"));
                        None
                    }
                }
            }
        }
        Some(_) => {
            ctx.schema(
                "The value for the field 'Credentials' must be an OBJECT",
                &format!("{loc}/Credentials"),
            );
            None
        }
    };
    Some(Task {
        resource,
        timeout,
        heartbeat,
        credentials,
    })
}

fn parse_wait(ctx: &mut Ctx, o: &Map<String, Value>, loc: &str, jp: bool) -> Option<Wait> {
    let present: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
        .into_iter()
        .filter(|f| o.contains_key(*f))
        .collect();
    if present.len() != 1 {
        ctx.schema(
            "A Wait state must contain exactly one of 'Seconds', 'SecondsPath', 'Timestamp' or 'TimestampPath'",
            loc,
        );
        return None;
    }
    match present[0] {
        "Seconds" => num_field(ctx, o, "Seconds", "SecondsPath", loc, 0.0, true).map(Wait::Seconds),
        "SecondsPath" => ref_path(ctx, o, "SecondsPath", loc).map(|p| Wait::Seconds(Num::Path(p))),
        "TimestampPath" => {
            ref_path(ctx, o, "TimestampPath", loc).map(|p| Wait::Timestamp(Text::Path(p)))
        }
        _ => {
            let v = o.get("Timestamp")?;
            let floc = format!("{loc}/Timestamp");
            let Some(s) = v.as_str() else {
                ctx.schema(
                    "The value for the field 'Timestamp' must be a STRING",
                    &floc,
                );
                return None;
            };
            if !jp && expression_text(s).is_some() {
                return match JValue::compile(v) {
                    Ok(j) => Some(Wait::Timestamp(Text::Expr(j))),
                    Err((_, m)) => {
                        ctx.schema(m, &floc);
                        None
                    }
                };
            }
            if crate::interpreter::parse_timestamp(s).is_none() {
                ctx.schema(
                    "The value for the field 'Timestamp' must be a valid ISO-8601 timestamp (RFC3339 profile)",
                    &floc,
                );
                return None;
            }
            Some(Wait::Timestamp(Text::Lit(s.to_string())))
        }
    }
}

/// Every string starting with `$` inside a Choice rule (the paths the rule
/// will resolve), compiled.
fn rule_paths(v: &Value, out: &mut HashMap<String, Path>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::String(s) if s.starts_with('$') => {
            if let Ok(p) = Path::parse(s) {
                out.insert(s.clone(), p);
            }
        }
        Value::Object(o) => o.values().for_each(|v| rule_paths(v, out, depth + 1)),
        Value::Array(a) => a.iter().for_each(|v| rule_paths(v, out, depth + 1)),
        _ => {}
    }
}

fn parse_choice(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    loc: &str,
    index: &HashMap<&str, usize>,
    jp: bool,
) -> Option<Choice> {
    let default = match o.get("Default") {
        Some(d) => Some(target(ctx, d, &format!("{loc}/Default"), index)?),
        None => None,
    };
    let Some(Value::Array(rules)) = o.get("Choices") else {
        if o.contains_key("Choices") {
            ctx.schema(
                "The value for the field 'Choices' must be a non-empty ARRAY",
                &format!("{loc}/Choices"),
            );
        } else {
            ctx.schema("These fields are required: [Choices]", loc);
        }
        return None;
    };
    if rules.is_empty() {
        ctx.schema(
            "The value for the field 'Choices' must be a non-empty ARRAY",
            &format!("{loc}/Choices"),
        );
        return None;
    }
    let mut branches = Vec::with_capacity(rules.len());
    let mut ok = true;
    for (i, r) in rules.iter().enumerate() {
        let rloc = format!("{loc}/Choices[{i}]");
        let Value::Object(ro) = r else {
            ctx.schema("Each choice rule must be an OBJECT", &rloc);
            ok = false;
            continue;
        };
        // In JSONPath mode the rule parser reports a missing or mistyped
        // Next itself.
        let next = match ro.get("Next") {
            Some(n @ Value::String(_)) => target(ctx, n, &format!("{rloc}/Next"), index),
            Some(_) if jp => None,
            Some(n) => target(ctx, n, &format!("{rloc}/Next"), index),
            None if jp => None,
            None => {
                ctx.schema("These fields are required: [Next]", &rloc);
                None
            }
        };
        let assign = assign(ctx, ro, &rloc, jp);
        let output = if jp {
            if ro.contains_key("Output") {
                ctx.schema(
                    "The QueryLanguage is set to 'JSONPath', but field 'Output' is only supported for the 'JSONata' QueryLanguage",
                    &rloc,
                );
            }
            None
        } else {
            jvalue(ctx, ro, "Output", &rloc)
        };
        let cond = if jp {
            if ro.contains_key("Condition") {
                ctx.schema(
                    "The QueryLanguage is set to 'JSONPath', but field 'Condition' is only supported for the 'JSONata' QueryLanguage",
                    &rloc,
                );
                None
            } else {
                let mut stripped = ro.clone();
                stripped.remove("Assign");
                stripped.remove("Output");
                match crate::choice::ChoiceRule::parse(&Value::Object(stripped), true) {
                    Ok(rule) => {
                        let mut paths = HashMap::new();
                        rule_paths(r, &mut paths, 0);
                        Some(ChoiceCond::Path { rule, paths })
                    }
                    Err(m) => {
                        ctx.schema(m, &rloc);
                        None
                    }
                }
            }
        } else {
            for k in ro.keys() {
                if !matches!(
                    k.as_str(),
                    "Condition" | "Next" | "Assign" | "Output" | "Comment"
                ) {
                    ctx.schema(format!("Field '{k}' is not supported"), &rloc);
                }
            }
            match ro.get("Condition") {
                None => {
                    ctx.schema("These fields are required: [Condition]", &rloc);
                    None
                }
                Some(c) => match (c, JValue::compile(c)) {
                    (Value::String(_) | Value::Bool(_), Ok(j)) => Some(ChoiceCond::Jsonata(j)),
                    (_, Err((_, m))) => {
                        ctx.schema(m, &format!("{rloc}/Condition"));
                        None
                    }
                    _ => {
                        ctx.schema(
                            "The value for the field 'Condition' must be a JSONata expression or a BOOLEAN",
                            &format!("{rloc}/Condition"),
                        );
                        None
                    }
                },
            }
        };
        match (cond, next) {
            (Some(cond), Some(next)) => branches.push(ChoiceBranch {
                cond,
                next,
                assign,
                output,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(Choice { branches, default })
}

fn parse_map(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    loc: &str,
    depth: usize,
    jp: bool,
) -> Option<MapState> {
    let proc_v = match (o.get("ItemProcessor"), o.get("Iterator")) {
        (Some(_), Some(_)) => {
            ctx.schema("Only one of 'ItemProcessor' or 'Iterator' may be set", loc);
            return None;
        }
        (None, None) => {
            ctx.schema("These fields are required: [ItemProcessor]", loc);
            return None;
        }
        (Some(p), None) => ("ItemProcessor", p),
        (None, Some(p)) => ("Iterator", p),
    };
    let ploc = format!("{loc}/{}", proc_v.0);
    let Value::Object(po) = proc_v.1 else {
        ctx.schema(
            format!("The value for the field '{}' must be an OBJECT", proc_v.0),
            &ploc,
        );
        return None;
    };
    let mut distributed = false;
    for k in po.keys() {
        let ok = matches!(k.as_str(), "StartAt" | "States" | "Comment")
            || (k == "ProcessorConfig" && proc_v.0 == "ItemProcessor");
        if !ok {
            ctx.schema(format!("Field '{k}' is not supported"), &ploc);
        }
    }
    if let Some(pc) = po.get("ProcessorConfig") {
        let cloc = format!("{ploc}/ProcessorConfig");
        match pc {
            Value::Object(pc) => {
                for (k, v) in pc {
                    match (k.as_str(), v.as_str()) {
                        ("Mode", Some("INLINE")) => {}
                        ("Mode", Some("DISTRIBUTED")) => distributed = true,
                        ("ExecutionType", Some("STANDARD" | "EXPRESS")) => {}
                        ("Mode", _) => ctx.schema(
                            "The value for the field 'Mode' must be one of [INLINE, DISTRIBUTED]",
                            &format!("{cloc}/Mode"),
                        ),
                        ("ExecutionType", _) => ctx.schema(
                            "The value for the field 'ExecutionType' must be one of [STANDARD, EXPRESS]",
                            &format!("{cloc}/ExecutionType"),
                        ),
                        _ => ctx.schema(format!("Field '{k}' is not supported"), &cloc),
                    }
                }
                if distributed && !pc.contains_key("ExecutionType") {
                    ctx.schema("These fields are required: [ExecutionType]", &cloc);
                }
            }
            _ => ctx.schema(
                "The value for the field 'ProcessorConfig' must be an OBJECT",
                &cloc,
            ),
        }
    }
    if !distributed {
        for f in [
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
        ] {
            if o.contains_key(f)
                && matches!(f, "ItemReader" | "ItemBatcher" | "ResultWriter" | "Label")
            {
                ctx.schema(
                    format!("Field '{f}' is only supported for Map states with ProcessorConfig Mode DISTRIBUTED"),
                    loc,
                );
            }
        }
    }
    let processor = parse_graph(ctx, po, &ploc, depth + 1, false);
    let processor_json = Value::Object(
        po.iter()
            .filter(|(k, _)| k.as_str() != "ProcessorConfig")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    let execution_type = po
        .get("ProcessorConfig")
        .and_then(|pc| pc.get("ExecutionType"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let items_path = if jp {
        ref_path(ctx, o, "ItemsPath", loc)
    } else {
        None
    };
    let items = jvalue(ctx, o, "Items", loc);
    let item_selector = match (o.get("ItemSelector"), o.get("Parameters")) {
        (Some(_), Some(_)) => {
            ctx.schema("Only one of 'ItemSelector' or 'Parameters' may be set", loc);
            None
        }
        (Some(v), None) => {
            if jp {
                match Template::compile(v) {
                    Ok(t) => Some(Assign::Path(t)),
                    Err((at, m)) => {
                        ctx.schema(m, &format!("{loc}/ItemSelector{at}"));
                        None
                    }
                }
            } else {
                jvalue(ctx, o, "ItemSelector", loc).map(Assign::Jsonata)
            }
        }
        (None, Some(_)) => template(ctx, o, "Parameters", loc).map(Assign::Path),
        (None, None) => None,
    };
    let max_concurrency = num_field(
        ctx,
        o,
        "MaxConcurrency",
        "MaxConcurrencyPath",
        loc,
        0.0,
        true,
    );
    let tolerated_percentage = num_field(
        ctx,
        o,
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        loc,
        0.0,
        false,
    );
    if let Some(Num::Lit(p)) = tolerated_percentage
        && p > 100.0
    {
        ctx.schema(
            "The value for the field 'ToleratedFailurePercentage' must be between 0 and 100",
            &format!("{loc}/ToleratedFailurePercentage"),
        );
    }
    let tolerated_count = num_field(
        ctx,
        o,
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        loc,
        0.0,
        true,
    );
    Some(MapState {
        processor: processor?,
        items_path,
        items,
        item_selector,
        max_concurrency,
        tolerated_percentage,
        tolerated_count,
        distributed,
        processor_json,
        execution_type,
        item_reader: io_resource(ctx, o, "ItemReader", "ReaderConfig", loc, jp),
        item_batcher: match o.get("ItemBatcher") {
            None => None,
            Some(Value::Object(b)) => {
                let bloc = format!("{loc}/ItemBatcher");
                for k in b.keys() {
                    if !matches!(
                        k.as_str(),
                        "MaxItemsPerBatch"
                            | "MaxItemsPerBatchPath"
                            | "MaxInputBytesPerBatch"
                            | "MaxInputBytesPerBatchPath"
                            | "BatchInput"
                    ) {
                        ctx.schema(format!("Field '{k}' is not supported"), &bloc);
                    }
                }
                let batch_input = match b.get("BatchInput") {
                    None => None,
                    Some(v) if jp => match Template::compile(v) {
                        Ok(t) => Some(Assign::Path(t)),
                        Err((at, m)) => {
                            ctx.schema(m, &format!("{bloc}/BatchInput{at}"));
                            None
                        }
                    },
                    Some(_) => jvalue(ctx, b, "BatchInput", &bloc).map(Assign::Jsonata),
                };
                Some((Value::Object(b.clone()), batch_input))
            }
            Some(_) => {
                ctx.schema(
                    "The value for the field 'ItemBatcher' must be an OBJECT",
                    &format!("{loc}/ItemBatcher"),
                );
                None
            }
        },
        result_writer: io_resource(ctx, o, "ResultWriter", "WriterConfig", loc, jp),
        label: o.get("Label").and_then(Value::as_str).map(str::to_string),
    })
}

fn error_list(ctx: &mut Ctx, o: &Map<String, Value>, loc: &str, last: bool) -> Option<Vec<String>> {
    let eloc = format!("{loc}/ErrorEquals");
    let Some(v) = o.get("ErrorEquals") else {
        ctx.schema("These fields are required: [ErrorEquals]", loc);
        return None;
    };
    let Some(a) = v.as_array().filter(|a| !a.is_empty()) else {
        ctx.schema(
            "The value for the field 'ErrorEquals' must be a non-empty ARRAY of STRING",
            &eloc,
        );
        return None;
    };
    let mut out = Vec::with_capacity(a.len());
    for e in a {
        match e.as_str() {
            Some(s) => out.push(s.to_string()),
            None => {
                ctx.schema(
                    "The value for the field 'ErrorEquals' must be a non-empty ARRAY of STRING",
                    &eloc,
                );
                return None;
            }
        }
    }
    if out.iter().any(|e| e == "States.ALL") {
        if out.len() != 1 {
            ctx.schema("States.ALL must appear alone in ErrorEquals", &eloc);
        } else if !last {
            ctx.schema(
                "States.ALL must appear in the last retrier or catcher",
                &eloc,
            );
        }
    }
    Some(out)
}

fn retriers(ctx: &mut Ctx, v: Option<&Value>, loc: &str) -> Vec<Retrier> {
    let Some(Value::Array(a)) = v else {
        ctx.schema("The value for the field 'Retry' must be an ARRAY", loc);
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, r) in a.iter().enumerate() {
        let rloc = format!("{loc}[{i}]");
        let Value::Object(ro) = r else {
            ctx.schema("Each retrier must be an OBJECT", &rloc);
            continue;
        };
        for k in ro.keys() {
            if !matches!(
                k.as_str(),
                "ErrorEquals"
                    | "IntervalSeconds"
                    | "MaxAttempts"
                    | "BackoffRate"
                    | "MaxDelaySeconds"
                    | "JitterStrategy"
                    | "Comment"
            ) {
                ctx.schema(format!("Field '{k}' is not supported"), &rloc);
            }
        }
        let errors = error_list(ctx, ro, &rloc, i + 1 == a.len());
        let pos_int = |ctx: &mut Ctx, f: &str, min: u64, max: u64| -> Option<u64> {
            let v = ro.get(f)?;
            match v.as_u64() {
                Some(n) if n >= min && n <= max => Some(n),
                _ => {
                    ctx.schema(
                        format!("The value for the field '{f}' must be an INTEGER between {min} and {max}"),
                        &format!("{rloc}/{f}"),
                    );
                    None
                }
            }
        };
        let interval = pos_int(ctx, "IntervalSeconds", 1, 99_999_999).unwrap_or(1);
        let max_attempts = pos_int(ctx, "MaxAttempts", 0, 99_999_999).unwrap_or(3);
        let max_delay = pos_int(ctx, "MaxDelaySeconds", 1, 31_622_400).map(|n| n as f64);
        let backoff = match ro.get("BackoffRate") {
            None => 2.0,
            Some(b) => match b.as_f64() {
                Some(x) if x >= 1.0 => x,
                _ => {
                    ctx.schema(
                        "The value for the field 'BackoffRate' must be a NUMBER greater than or equal to 1.0",
                        &format!("{rloc}/BackoffRate"),
                    );
                    2.0
                }
            },
        };
        let full_jitter = match ro.get("JitterStrategy") {
            None => false,
            Some(Value::String(s)) if s == "FULL" => true,
            Some(Value::String(s)) if s == "NONE" => false,
            Some(_) => {
                ctx.schema(
                    "The value for the field 'JitterStrategy' must be one of [FULL, NONE]",
                    &format!("{rloc}/JitterStrategy"),
                );
                false
            }
        };
        if let Some(errors) = errors {
            out.push(Retrier {
                errors,
                interval: interval as f64,
                max_attempts,
                backoff,
                max_delay,
                full_jitter,
            });
        }
    }
    out
}

fn catchers(
    ctx: &mut Ctx,
    v: Option<&Value>,
    loc: &str,
    index: &HashMap<&str, usize>,
    jp: bool,
) -> Vec<Catcher> {
    let Some(Value::Array(a)) = v else {
        ctx.schema("The value for the field 'Catch' must be an ARRAY", loc);
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, c) in a.iter().enumerate() {
        let cloc = format!("{loc}[{i}]");
        let Value::Object(co) = c else {
            ctx.schema("Each catcher must be an OBJECT", &cloc);
            continue;
        };
        for k in co.keys() {
            let ok = matches!(k.as_str(), "ErrorEquals" | "Next" | "Comment" | "Assign")
                || (jp && k == "ResultPath")
                || (!jp && k == "Output");
            if !ok {
                if matches!(k.as_str(), "ResultPath" | "Output") {
                    ctx.schema(
                        format!(
                            "The QueryLanguage is set to '{}', but field '{k}' is only supported for the '{}' QueryLanguage",
                            if jp { "JSONPath" } else { "JSONata" },
                            if jp { "JSONata" } else { "JSONPath" }
                        ),
                        &cloc,
                    );
                } else {
                    ctx.schema(format!("Field '{k}' is not supported"), &cloc);
                }
            }
        }
        let errors = error_list(ctx, co, &cloc, i + 1 == a.len());
        let next = match co.get("Next") {
            Some(n) => target(ctx, n, &format!("{cloc}/Next"), index),
            None => {
                ctx.schema("These fields are required: [Next]", &cloc);
                None
            }
        };
        let result_path = io_path(ctx, co, "ResultPath", &cloc, true);
        let assign = assign(ctx, co, &cloc, jp);
        let output = if jp {
            None
        } else {
            jvalue(ctx, co, "Output", &cloc)
        };
        if let (Some(errors), Some(next)) = (errors, next) {
            out.push(Catcher {
                errors,
                next,
                result_path,
                assign,
                output,
            });
        }
    }
    out
}

/// Parses a single state definition (TestState): the state is wrapped in a
/// one-state machine whose transitions to other states are allowed.
pub(crate) fn parse_single_state(
    definition: &str,
) -> Result<(StateMachine, String), Vec<Diagnostic>> {
    let v: Value = serde_json::from_str(definition).map_err(|e| {
        vec![Diagnostic::error(
            "INVALID_JSON_DESCRIPTION",
            format!("The definition is not valid JSON: {e}"),
            None,
        )]
    })?;
    let Value::Object(mut state) = v else {
        return Err(vec![Diagnostic::error(
            "SCHEMA_VALIDATION_FAILED",
            "The state definition must be an OBJECT",
            None,
        )]);
    };
    // A whole state machine definition: its StartAt state is tested.
    if state.contains_key("States") && state.contains_key("StartAt") {
        let name = state
            .get("StartAt")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let m = StateMachine::parse(definition)?;
        return Ok((m, name));
    }
    // A state machine definition (StartAt + States) is tested at StartAt.
    let name = "TestState".to_string();
    let mut ql = None;
    if let Some(q) = state.remove("QueryLanguage") {
        ql = Some(q.clone());
        state.insert("QueryLanguage".into(), q);
    }
    // Collect every transition target so that the wrapper has them.
    let mut targets: Vec<String> = Vec::new();
    let mut add = |v: Option<&Value>| {
        if let Some(Value::String(s)) = v {
            targets.push(s.clone());
        }
    };
    add(state.get("Next"));
    add(state.get("Default"));
    for list in ["Choices", "Catch"] {
        if let Some(Value::Array(a)) = state.get(list) {
            for c in a {
                add(c.get("Next"));
            }
        }
    }
    let mut states = Map::new();
    states.insert(name.clone(), Value::Object(state));
    for t in targets {
        if t != name {
            states
                .entry(t)
                .or_insert_with(|| serde_json::json!({"Type": "Succeed"}));
        }
    }
    let mut top = serde_json::json!({"StartAt": name, "States": states});
    if let (Some(q), Some(o)) = (ql, top.as_object_mut())
        && q == "JSONata"
    {
        o.insert("QueryLanguage".into(), q);
    }
    let m = StateMachine::parse(&top.to_string())?;
    Ok((m, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(def: Value) -> Vec<(String, String, Option<String>)> {
        validate(&def.to_string())
            .into_iter()
            .map(|d| (d.code, d.message, d.location))
            .collect()
    }

    #[test]
    fn valid_minimal() {
        let d = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
        assert_eq!(codes(d), vec![]);
    }

    #[test]
    fn missing_next_target_and_end_state() {
        // AWS: MISSING_TRANSITION_TARGET "Missing 'Next' target: NOPE" at
        // /States/A/Next, then MISSING_END_STATE without a location.
        let d = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "NOPE"}}});
        let c = codes(d);
        assert_eq!(c[0].0, "MISSING_TRANSITION_TARGET");
        assert_eq!(c[0].1, "Missing 'Next' target: NOPE");
        assert_eq!(c[0].2.as_deref(), Some("/States/A/Next"));
        assert_eq!(
            c[1],
            (
                "MISSING_END_STATE".into(),
                "Workflow has no terminal state".into(),
                None
            )
        );
    }

    #[test]
    fn unreachable_state() {
        let d = json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "End": true},
            "C": {"Type": "Succeed"}}});
        let c = codes(d);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "MISSING_TRANSITION_TARGET");
        assert_eq!(c[0].1, "State \"C\" is not reachable.");
        assert_eq!(c[0].2.as_deref(), Some("/States/C"));
    }

    #[test]
    fn loop_without_terminal_suppresses_reachability() {
        let d = json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Pass", "Next": "A"},
            "X": {"Type": "Pass", "Next": "A"}}});
        let c = codes(d);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "MISSING_END_STATE");
    }

    #[test]
    fn choice_and_catch_targets_are_located() {
        let d = json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "Z"}], "Default": "T"},
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": true,
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Y"}]}}});
        let locs: Vec<_> = codes(d)
            .into_iter()
            .filter(|c| c.0 == "MISSING_TRANSITION_TARGET")
            .map(|c| c.2.unwrap_or_default())
            .collect();
        assert!(
            locs.contains(&"/States/C/Choices[0]/Next".to_string()),
            "{locs:?}"
        );
        assert!(
            locs.contains(&"/States/T/Catch[0]/Next".to_string()),
            "{locs:?}"
        );
    }

    #[test]
    fn unsupported_fields() {
        let d =
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Retry": []}}});
        let c = codes(d);
        assert_eq!(c[0].0, "SCHEMA_VALIDATION_FAILED");
        assert_eq!(c[0].1, "Field 'Retry' is not supported");
        assert_eq!(c[0].2.as_deref(), Some("/States/A"));
    }

    #[test]
    fn query_language_rules() {
        let d =
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Output": {}}}});
        assert_eq!(
            codes(d)[0].1,
            "The QueryLanguage is set to 'JSONPath', but field 'Output' is only supported for the 'JSONata' QueryLanguage"
        );
        let d = json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "QueryLanguage": "JSONPath"}}});
        assert_eq!(
            codes(d)[0].1,
            "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine"
        );
    }

    #[test]
    fn states_all_must_be_alone_and_last() {
        let d = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}});
        assert!(
            codes(d)
                .iter()
                .any(|c| c.2.as_deref() == Some("/States/T/Retry[0]/ErrorEquals"))
        );
        let d = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL", "X"]}]}}});
        assert_eq!(codes(d).len(), 1);
    }

    #[test]
    fn wait_fields_are_exclusive_and_resource_is_an_arn() {
        let d = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "Timestamp": "2020-01-01T00:00:00Z", "End": true}}});
        assert_eq!(codes(d).len(), 1);
        let d = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "lambda", "End": true}}});
        assert_eq!(codes(d)[0].0, "INVALID_RESOURCE");
    }

    #[test]
    fn warnings_do_not_refuse_the_definition() {
        let d = json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Parameters": {"x": "$.a"}, "Next": "F"},
            "F": {"Type": "Fail", "Error": "$.err"}}});
        let diags = validate(&d.to_string());
        let codes: Vec<&str> = diags.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["NO_DOLLAR", "NO_PATH"]);
        assert!(diags.iter().all(|d| d.severity == Severity::Warning));
        assert!(StateMachine::parse(&d.to_string()).is_ok());
    }

    #[test]
    fn state_machine_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<StateMachine>();
    }

    #[test]
    fn choice_rule_without_next_is_reported_once() {
        let d = json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true}], "Default": "D"},
            "D": {"Type": "Succeed"}}});
        let c = codes(d);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].2.as_deref(), Some("/States/C/Choices[0]"));
    }

    #[test]
    fn map_processor_rules() {
        // ItemProcessor and Iterator are exclusive; QueryLanguage is not an
        // ItemProcessor field; ItemSelector and Parameters are exclusive.
        let proc_ = json!({"StartAt": "I", "States": {"I": {"Type": "Succeed"}}});
        let d = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemProcessor": proc_, "Iterator": proc_}}});
        assert_eq!(
            codes(d)[0].1,
            "Only one of 'ItemProcessor' or 'Iterator' may be set"
        );
        let mut p2 = proc_.clone();
        p2["QueryLanguage"] = json!("JSONata");
        let d = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemProcessor": p2}}});
        let c = codes(d);
        assert_eq!(c[0].1, "Field 'QueryLanguage' is not supported");
        assert_eq!(c[0].2.as_deref(), Some("/States/M/ItemProcessor"));
        let d = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemProcessor": proc_,
            "ItemSelector": {}, "Parameters": {}}}});
        assert_eq!(
            codes(d)[0].1,
            "Only one of 'ItemSelector' or 'Parameters' may be set"
        );
    }

    #[test]
    fn retrier_field_values() {
        let d = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
            "Retry": [{"ErrorEquals": ["E"], "BackoffRate": 0.5, "JitterStrategy": "SOME", "MaxAttempts": -1, "Extra": 1}]}}});
        let locs: Vec<String> = codes(d).into_iter().filter_map(|c| c.2).collect();
        assert!(locs.contains(&"/States/T/Retry[0]".to_string()), "{locs:?}");
        assert!(
            locs.contains(&"/States/T/Retry[0]/BackoffRate".to_string()),
            "{locs:?}"
        );
        assert!(
            locs.contains(&"/States/T/Retry[0]/JitterStrategy".to_string()),
            "{locs:?}"
        );
        assert!(
            locs.contains(&"/States/T/Retry[0]/MaxAttempts".to_string()),
            "{locs:?}"
        );
    }

    #[test]
    fn result_path_must_be_a_reference_path() {
        let d = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": "$.a[*]", "End": true}}});
        let c = codes(d);
        assert_eq!(
            c[0].1,
            "The value for the field 'ResultPath' must be a valid Reference Path"
        );
        assert_eq!(c[0].2.as_deref(), Some("/States/P/ResultPath"));
        let d = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"a.$": "not a path"}, "End": true}}});
        assert_eq!(codes(d)[0].2.as_deref(), Some("/States/P/Parameters/a.$"));
    }

    #[test]
    fn invalid_json_and_empty() {
        assert_eq!(validate("{")[0].code, "INVALID_JSON_DESCRIPTION");
        assert_eq!(validate("")[0].code, "MISSING_DESCRIPTION");
    }

    #[test]
    fn nested_names_must_be_unique() {
        let d = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}}]}}});
        assert_eq!(codes(d)[0].0, "DUPLICATE_STATE_NAME");
    }
}
