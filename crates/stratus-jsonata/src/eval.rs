//! The evaluator: JSONata's path, sequence, operator and function semantics
//! (<https://docs.jsonata.org/>).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::parser::{BinOp, Kind, LambdaDef, Node, RegexLit};
use crate::value::{Flags, Obj, Value, deep_equal, from_json, to_json, to_string, truthy};
use crate::{Environment, JsonataError, NativeFunction, builtins};

/// Default nesting limit of evaluation (see `Environment::set_depth_limit`).
pub(crate) const DEFAULT_DEPTH_LIMIT: usize = 2000;
/// Largest accepted nesting limit.
pub(crate) const MAX_DEPTH_LIMIT: usize = 5000;
/// Nesting limit on the caller's own stack (expressions that cannot nest
/// deeper, or when no large-stack thread could be started).
pub(crate) const INLINE_DEPTH_LIMIT: usize = 200;
/// Largest sequence the range operator may allocate (D2014).
const MAX_RANGE: f64 = 1e7;

pub(crate) type R<T> = Result<T, JsonataError>;

/// A scope of variable bindings.
pub(crate) struct Frame {
    vars: RefCell<HashMap<String, Value>>,
    parent: Option<Rc<Frame>>,
    /// For path items: the item this one was selected from and that item's
    /// frame (the parent operator `%`).
    parent_item: RefCell<Option<(Value, Rc<Frame>)>>,
}

impl Frame {
    fn parent_item(&self) -> Option<(Value, Rc<Frame>)> {
        if let Some(p) = self.parent_item.borrow().as_ref() {
            return Some(p.clone());
        }
        self.parent.as_ref().and_then(|p| p.parent_item())
    }

    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.vars.borrow().get(name) {
            return Some(v.clone());
        }
        self.parent.as_ref().and_then(|p| p.lookup(name))
    }

    fn set(&self, name: &str, v: Option<Value>) {
        let mut vars = self.vars.borrow_mut();
        match v {
            Some(v) => {
                vars.insert(name.to_string(), v);
            }
            None => {
                vars.remove(name);
            }
        }
    }
}

/// A function value.
pub(crate) enum Func {
    Lambda {
        def: Arc<LambdaDef>,
        frame: Rc<Frame>,
        input: Option<Value>,
    },
    Builtin(&'static str),
    Native(NativeFunction),
    /// Partial application; `None` marks a `?` placeholder.
    Partial {
        func: Value,
        args: Vec<Option<Option<Value>>>,
    },
    /// `f ~> g`: apply `f`, then `g`.
    Compose(Value, Value),
    Regex(Arc<RegexLit>),
    Transform {
        pattern: Arc<Node>,
        update: Arc<Node>,
        delete: Option<Arc<Node>>,
        frame: Rc<Frame>,
    },
}

impl Func {
    /// Number of arguments a higher-order built-in passes to this function.
    pub fn arity(&self) -> usize {
        match self {
            Func::Lambda { def, .. } => def.params.len(),
            Func::Builtin(name) => builtins::arity(name),
            // Host functions declare no arity: higher-order built-ins pass
            // them only the value ($reduce: the accumulator and the value).
            Func::Native(_) => 1,
            Func::Partial { args, .. } => args.iter().filter(|a| a.is_none()).count(),
            Func::Compose(..) | Func::Regex(_) | Func::Transform { .. } => 1,
        }
    }
}

pub(crate) struct Ev<'a> {
    env: &'a Environment,
    root: Option<Value>,
    depth: Cell<usize>,
    depth_limit: usize,
    steps: Cell<u64>,
    deadline: Option<Instant>,
    /// Scope of the innermost function call being made (for `$eval`).
    call_frame: RefCell<Option<Rc<Frame>>>,
    /// Scopes captured by function values (closures and transforms).
    frames: RefCell<Vec<Rc<Frame>>>,
    env_cache: RefCell<HashMap<String, Value>>,
    /// The expression uses the parent operator `%`: paths record where each
    /// item came from.
    track_parent: bool,
    /// Milliseconds since the epoch when evaluation started (`$now`,
    /// `$millis`).
    pub start_ms: i64,
}

pub(crate) fn evaluate_root(
    ast: &Node,
    input: Option<&serde_json::Value>,
    env: &Environment,
    depth_limit: usize,
) -> R<Option<serde_json::Value>> {
    let root = input.map(|j| match from_json(j) {
        Value::Array(a, f) => Value::Array(
            a,
            Flags {
                seq: true,
                keep: false,
                cons: f.cons,
            }
            .outer(),
        ),
        v => v,
    });
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let depth_limit = if crate::stack::on_large_stack() {
        depth_limit
    } else {
        depth_limit.min(INLINE_DEPTH_LIMIT)
    };
    let ev = Ev {
        env,
        root: root.clone(),
        depth: Cell::new(0),
        depth_limit,
        steps: Cell::new(0),
        deadline: env.time_limit.map(|d| Instant::now() + d),
        call_frame: RefCell::new(None),
        frames: RefCell::new(Vec::new()),
        env_cache: RefCell::new(HashMap::new()),
        track_parent: uses_parent(ast),
        start_ms,
    };
    let frame = ev.new_frame(None);
    let result = ev.eval(ast, root.as_ref(), &frame);
    let out = match result {
        Ok(Some(v)) => to_json(&v),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    // A closure stored in a scope it captured (directly or through an
    // enclosing scope) forms a reference cycle: clear every scope on the
    // captured chains so the cycles are broken.
    let mut seen = std::collections::HashSet::new();
    for f in ev.frames.borrow().iter() {
        let mut cur = Some(f.clone());
        while let Some(fr) = cur {
            if !seen.insert(Rc::as_ptr(&fr)) {
                break;
            }
            fr.vars.borrow_mut().clear();
            fr.parent_item.borrow_mut().take();
            cur = fr.parent.clone();
        }
    }
    out
}

impl Flags {
    /// Marks the outer wrapper of an array input: a path's first step sees
    /// the whole array as one item.
    fn outer(self) -> Flags {
        Flags {
            seq: true,
            keep: true,
            cons: true,
        }
    }
    fn is_outer(self) -> bool {
        self.seq && self.keep && self.cons
    }
}

fn strip_outer(v: &Value) -> Value {
    match v {
        Value::Array(a, f) if f.is_outer() => Value::Array(a.clone(), Flags::default()),
        v => v.clone(),
    }
}

/// Whether an error code is one of the evaluation guardrails
/// (<https://docs.jsonata.org/guardrails>): depth `D1011`, time or step
/// budget `D1012`, sequence length `D2015`.
pub(crate) fn is_limit(code: &str) -> bool {
    matches!(code, "D1011" | "D1012" | "D2015")
}

pub(crate) fn err(code: &str, msg: impl Into<String>, pos: usize) -> JsonataError {
    JsonataError::new(code, msg, Some(pos))
}

fn finite(n: f64, pos: usize) -> R<Option<Value>> {
    if n.is_finite() {
        Ok(Some(Value::Num(n)))
    } else {
        Err(err("D1001", "Number out of range", pos))
    }
}

impl<'a> Ev<'a> {
    fn new_frame(&self, parent: Option<Rc<Frame>>) -> Rc<Frame> {
        Rc::new(Frame {
            vars: RefCell::new(HashMap::new()),
            parent,
            parent_item: RefCell::new(None),
        })
    }

    /// Evaluates a separately parsed expression (`$eval`) in a scope nested
    /// in the one of the call.
    pub fn eval_detached(&self, node: &Node, input: Option<&Value>) -> R<Option<Value>> {
        let parent = self.call_frame.borrow().clone();
        let frame = self.new_frame(parent);
        self.eval(node, input, &frame)
    }

    /// Counts one unit of work against the step and time budgets.
    pub fn tick(&self, pos: usize) -> R<()> {
        let n = self.steps.get() + 1;
        self.steps.set(n);
        if let Some(limit) = self.env.step_limit
            && n > limit
        {
            return Err(err(
                "D1012",
                format!("Evaluation exceeded the step limit of {limit}"),
                pos,
            ));
        }
        if n.is_multiple_of(256)
            && let Some(d) = self.deadline
            && Instant::now() > d
        {
            return Err(err("D1012", "Evaluation exceeded the time limit", pos));
        }
        Ok(())
    }

    /// Fails with `D2015` when a sequence under construction is longer
    /// than the sequence limit.
    pub fn check_len(&self, len: usize, pos: usize) -> R<()> {
        match self.env.sequence_limit {
            Some(limit) if len > limit => Err(err(
                "D2015",
                format!("The sequence length limit of {limit} was exceeded"),
                pos,
            )),
            _ => Ok(()),
        }
    }

    pub fn eval(&self, node: &Node, input: Option<&Value>, frame: &Rc<Frame>) -> R<Option<Value>> {
        self.tick(node.pos)?;
        let d = self.depth.get() + 1;
        if d > self.depth_limit {
            return Err(err(
                "D1011",
                "Stack overflow error: the expression nests or recurses too deeply",
                node.pos,
            ));
        }
        self.depth.set(d);
        let r = self.eval_inner(node, input, frame);
        self.depth.set(d - 1);
        let r = r?;
        if let Some(Value::Array(a, _)) = &r {
            self.check_len(a.len(), node.pos)?;
        }
        Ok(match r {
            Some(Value::Array(a, f)) if f.seq && !f.is_outer() => {
                if a.is_empty() {
                    None
                } else if a.len() == 1 && !f.keep {
                    Some(a[0].clone())
                } else {
                    Some(Value::Array(a, f))
                }
            }
            other => other,
        })
    }

    fn eval_inner(
        &self,
        node: &Node,
        input: Option<&Value>,
        frame: &Rc<Frame>,
    ) -> R<Option<Value>> {
        let pos = node.pos;
        match &node.kind {
            Kind::Str(s) => Ok(Some(Value::str(s))),
            Kind::Num(n) => Ok(Some(Value::Num(*n))),
            Kind::Bool(b) => Ok(Some(Value::Bool(*b))),
            Kind::Null => Ok(Some(Value::Null)),
            Kind::Regex(r) => Ok(Some(Value::Func(Rc::new(Func::Regex(r.clone()))))),
            Kind::Name(name) => Ok(input.and_then(|v| lookup(v, name))),
            Kind::Var(name) => Ok(self.var(name, input, frame)),
            Kind::Wildcard => Ok(input.map(wildcard)),
            Kind::Descendant => Ok(input.map(|v| {
                let mut out = Vec::new();
                descendants(v, &mut out);
                Value::seq(out)
            })),
            Kind::Parent => match frame.parent_item() {
                Some((v, _)) => Ok(Some(v)),
                None => Err(err(
                    "S0217",
                    "The object representing the 'parent' cannot be derived from this expression",
                    pos,
                )),
            },
            Kind::Path {
                steps,
                keep_singleton,
            } => self.eval_path(steps, *keep_singleton, input, frame),
            Kind::Filter(inner, pred) => {
                let v = self.eval(inner, input, frame)?;
                self.filter(v, pred, frame)
            }
            Kind::KeepArray(inner) => {
                let v = self.eval(inner, input, frame)?;
                Ok(v.map(|v| match v {
                    Value::Array(a, f) => Value::Array(
                        a,
                        Flags {
                            seq: true,
                            keep: true,
                            cons: f.cons,
                        },
                    ),
                    v => Value::Array(
                        Rc::new(vec![v]),
                        Flags {
                            seq: true,
                            keep: true,
                            cons: false,
                        },
                    ),
                }))
            }
            Kind::Neg(inner) => match self.eval(inner, input, frame)? {
                None => Ok(None),
                Some(Value::Num(n)) => Ok(Some(Value::Num(-n))),
                Some(_) => Err(err("D1002", "Cannot negate a non-numeric value", pos)),
            },
            Kind::Binary(op, l, r) => self.binary(*op, l, r, input, frame, pos),
            Kind::ArrayCons(items) => {
                let mut out = Vec::new();
                for item in items {
                    let v = self.eval(item, input, frame)?;
                    match v {
                        None => {}
                        Some(v) if matches!(item.kind, Kind::ArrayCons(_)) => out.push(v),
                        Some(Value::Array(a, _)) => out.extend(a.iter().cloned()),
                        Some(v) => out.push(v),
                    }
                    self.check_len(out.len(), pos)?;
                }
                Ok(Some(Value::array(out)))
            }
            Kind::ObjectCons(pairs) => self.group(input.cloned(), pairs, frame),
            Kind::Group(lhs, pairs) => match &lhs.kind {
                Kind::Path { steps, .. } if self.track_parent || steps.iter().any(has_binding) => {
                    let items = self
                        .path_tuples(steps, input, frame)?
                        .into_iter()
                        .map(|(v, f)| (Some(v), f))
                        .collect::<Vec<_>>();
                    if items.is_empty() {
                        return self.group(None, pairs, frame);
                    }
                    self.group_scoped(items, pairs, frame)
                }
                _ => {
                    let v = self.eval(lhs, input, frame)?;
                    self.group(v, pairs, frame)
                }
            },
            Kind::Sort(lhs, terms) => {
                let v = self.eval(lhs, input, frame)?;
                self.sort(v, terms, frame)
            }
            Kind::Block(exprs) => {
                let f = self.new_frame(Some(frame.clone()));
                let mut last = None;
                for e in exprs {
                    last = self.eval(e, input, &f)?;
                }
                Ok(last)
            }
            Kind::Condition(c, t, e) => {
                let cv = self.eval(c, input, frame)?;
                if truthy(cv.as_ref()) {
                    self.eval(t, input, frame)
                } else if let Some(e) = e {
                    self.eval(e, input, frame)
                } else {
                    Ok(None)
                }
            }
            Kind::Bind(name, e) => {
                let v = self.eval(e, input, frame)?;
                frame.set(name, v.clone());
                Ok(v)
            }
            Kind::Call {
                func,
                args,
                partial,
            } => self.call(func, args, *partial, input, frame, None, pos),
            Kind::Placeholder => Err(err(
                "S0201",
                "Syntax error: ? is only allowed as a function argument",
                pos,
            )),
            Kind::Lambda(def) => {
                self.frames.borrow_mut().push(frame.clone());
                Ok(Some(Value::Func(Rc::new(Func::Lambda {
                    def: def.clone(),
                    frame: frame.clone(),
                    input: input.cloned(),
                }))))
            }
            Kind::Chain(l, r) => {
                let lv = self.eval(l, input, frame)?;
                if let Kind::Call {
                    func,
                    args,
                    partial: false,
                } = &r.kind
                {
                    return self.call(func, args, false, input, frame, Some(lv), r.pos);
                }
                let f = self.eval(r, input, frame)?;
                match f {
                    Some(f @ Value::Func(_)) => match lv {
                        Some(g @ Value::Func(_)) => {
                            Ok(Some(Value::Func(Rc::new(Func::Compose(g, f)))))
                        }
                        lv => self.apply(&f, vec![lv], input, pos),
                    },
                    _ => Err(err(
                        "T2006",
                        "The right side of the function application operator ~> must be a function",
                        pos,
                    )),
                }
            }
            Kind::Range(l, r) => {
                let lv = self.eval(l, input, frame)?;
                let rv = self.eval(r, input, frame)?;
                let int = |v: &Option<Value>| match v {
                    None => Ok(None),
                    Some(Value::Num(n)) if n.fract() == 0.0 => Ok(Some(*n)),
                    Some(_) => Err(()),
                };
                let a = int(&lv).map_err(|_| {
                    err(
                        "T2003",
                        "The left side of the range operator (..) must evaluate to an integer",
                        pos,
                    )
                })?;
                let b = int(&rv).map_err(|_| {
                    err(
                        "T2004",
                        "The right side of the range operator (..) must evaluate to an integer",
                        pos,
                    )
                })?;
                let (Some(a), Some(b)) = (a, b) else {
                    return Ok(None);
                };
                if a > b {
                    return Ok(None);
                }
                if b - a >= MAX_RANGE {
                    return Err(err(
                        "D2014",
                        "The size of the sequence allocated by the range operator (..) must not exceed 1e7",
                        pos,
                    ));
                }
                let n = (b - a) as usize + 1;
                let out = (0..n).map(|i| Value::Num(a + i as f64)).collect();
                Ok(Some(Value::array(out)))
            }
            Kind::Transform {
                pattern,
                update,
                delete,
            } => {
                self.frames.borrow_mut().push(frame.clone());
                Ok(Some(Value::Func(Rc::new(Func::Transform {
                    pattern: pattern.clone(),
                    update: update.clone(),
                    delete: delete.clone(),
                    frame: frame.clone(),
                }))))
            }
            Kind::Focus(..) | Kind::Index(..) => {
                self.eval_path_tuples(std::slice::from_ref(node), false, input, frame)
            }
        }
    }

    fn var(&self, name: &str, input: Option<&Value>, frame: &Rc<Frame>) -> Option<Value> {
        if name.is_empty() {
            return input.map(strip_outer);
        }
        if name == "$" {
            return self.root.as_ref().map(strip_outer);
        }
        if let Some(v) = frame.lookup(name) {
            return Some(v);
        }
        if let Some(v) = self.env_cache.borrow().get(name) {
            return Some(v.clone());
        }
        if let Some(j) = self.env.vars.get(name) {
            let v = from_json(j);
            self.env_cache
                .borrow_mut()
                .insert(name.to_string(), v.clone());
            return Some(v);
        }
        if let Some(f) = self.env.functions.get(name) {
            return Some(Value::Func(Rc::new(Func::Native(f.clone()))));
        }
        builtins::lookup(name).map(|n| Value::Func(Rc::new(Func::Builtin(n))))
    }

    fn eval_path(
        &self,
        steps: &[Node],
        keep: bool,
        input: Option<&Value>,
        frame: &Rc<Frame>,
    ) -> R<Option<Value>> {
        let Some(first) = steps.first() else {
            return Ok(None);
        };
        if self.track_parent || steps.iter().any(has_binding) {
            return self.eval_path_tuples(steps, keep, input, frame);
        }
        let mut items: Vec<Option<Value>> = match input {
            None => vec![None],
            Some(Value::Array(a, f)) if !f.is_outer() && !matches!(first.kind, Kind::Var(_)) => {
                a.iter().cloned().map(Some).collect()
            }
            Some(v) => vec![Some(v.clone())],
        };
        let mut result: Option<Value> = None;
        for (i, step) in steps.iter().enumerate() {
            let last = i + 1 == steps.len();
            let cons_step = matches!(step.kind, Kind::ArrayCons(_));
            let mut results = Vec::new();
            if i == 0 && cons_step {
                // A leading array constructor is evaluated once; its items
                // are the sequence the next step maps over.
                let v = self.eval(step, input, frame)?;
                if last {
                    return Ok(v);
                }
                items = match v {
                    Some(Value::Array(a, _)) => a.iter().cloned().map(Some).collect(),
                    Some(v) => vec![Some(v)],
                    None => Vec::new(),
                };
                if items.is_empty() {
                    return Ok(None);
                }
                continue;
            } else {
                let mut total = 0usize;
                for item in &items {
                    if let Some(v) = self.eval(step, item.as_ref(), frame)? {
                        total += match &v {
                            Value::Array(a, _) => a.len(),
                            _ => 1,
                        };
                        self.check_len(total, step.pos)?;
                        results.push(v);
                    }
                }
            }
            let out = if last
                && results.len() == 1
                && matches!(&results[0], Value::Array(_, f) if !f.seq)
            {
                results.pop()
            } else {
                let mut flat = Vec::new();
                for r in results {
                    match r {
                        Value::Array(a, f) if !cons_step && !f.cons => {
                            flat.extend(a.iter().cloned())
                        }
                        Value::Array(a, f) if f.is_outer() => flat.extend(a.iter().cloned()),
                        v => flat.push(v),
                    }
                }
                Some(Value::seq(flat))
            };
            if last {
                result = out;
            } else {
                items = match out {
                    Some(Value::Array(a, _)) => a.iter().cloned().map(Some).collect(),
                    Some(v) => vec![Some(v)],
                    None => Vec::new(),
                };
                if items.is_empty() {
                    return Ok(None);
                }
            }
        }
        if keep {
            result = result.map(|v| match v {
                Value::Array(a, f) => Value::Array(
                    a,
                    Flags {
                        seq: true,
                        keep: true,
                        cons: f.cons,
                    },
                ),
                v => Value::Array(
                    Rc::new(vec![v]),
                    Flags {
                        seq: true,
                        keep: true,
                        cons: false,
                    },
                ),
            });
        }
        Ok(result)
    }

    /// Path evaluation where each item carries its own scope: used for the
    /// positional (`#$i`) and context (`@$v`) bindings and the parent
    /// operator `%` (<https://docs.jsonata.org/path-operators>).
    fn eval_path_tuples(
        &self,
        steps: &[Node],
        keep: bool,
        input: Option<&Value>,
        frame: &Rc<Frame>,
    ) -> R<Option<Value>> {
        let Some(first) = steps.first() else {
            return Ok(None);
        };
        let mut items: Vec<(Option<Value>, Rc<Frame>)> = match input {
            None => vec![(None, frame.clone())],
            Some(Value::Array(a, f)) if !f.is_outer() && !matches!(first.kind, Kind::Var(_)) => {
                a.iter().map(|v| (Some(v.clone()), frame.clone())).collect()
            }
            Some(v) => vec![(Some(v.clone()), frame.clone())],
        };
        let mut result: Option<Value> = None;
        for (i, step) in steps.iter().enumerate() {
            let last = i + 1 == steps.len();
            let mut out: Vec<(Value, Rc<Frame>)> = Vec::new();
            if i == 0 && matches!(step.kind, Kind::ArrayCons(_)) {
                let v = self.eval(step, input, frame)?;
                if last {
                    result = v;
                    break;
                }
                for x in crate::value::items_of(&v) {
                    out.push((x, frame.clone()));
                }
            } else {
                for (item, fr) in &items {
                    out.extend(self.step_tuples(step, item.as_ref(), fr, last)?);
                    self.check_len(out.len(), step.pos)?;
                }
            }
            if last {
                result = if out.len() == 1 {
                    out.pop().map(|(v, _)| v)
                } else {
                    let mut flat = Vec::new();
                    for (v, _) in out {
                        match v {
                            Value::Array(a, f) if !f.cons => flat.extend(a.iter().cloned()),
                            v => flat.push(v),
                        }
                    }
                    Some(Value::seq(flat))
                };
                break;
            }
            items = out.into_iter().map(|(v, f)| (Some(v), f)).collect();
            if items.is_empty() {
                return Ok(None);
            }
        }
        if keep {
            result = result.map(|v| match v {
                Value::Array(a, f) => Value::Array(
                    a,
                    Flags {
                        seq: true,
                        keep: true,
                        cons: f.cons,
                    },
                ),
                v => Value::Array(
                    Rc::new(vec![v]),
                    Flags {
                        seq: true,
                        keep: true,
                        cons: false,
                    },
                ),
            });
        }
        Ok(result)
    }

    /// The items a path selects, each with its scope (arrays flattened).
    fn path_tuples(
        &self,
        steps: &[Node],
        input: Option<&Value>,
        frame: &Rc<Frame>,
    ) -> R<Vec<(Value, Rc<Frame>)>> {
        let Some(first) = steps.first() else {
            return Ok(Vec::new());
        };
        let mut items: Vec<(Option<Value>, Rc<Frame>)> = match input {
            None => vec![(None, frame.clone())],
            Some(Value::Array(a, f)) if !f.is_outer() && !matches!(first.kind, Kind::Var(_)) => {
                a.iter().map(|v| (Some(v.clone()), frame.clone())).collect()
            }
            Some(v) => vec![(Some(v.clone()), frame.clone())],
        };
        for (i, step) in steps.iter().enumerate() {
            let mut out: Vec<(Value, Rc<Frame>)> = Vec::new();
            if i == 0 && matches!(step.kind, Kind::ArrayCons(_)) {
                let v = self.eval(step, input, frame)?;
                for x in crate::value::items_of(&v) {
                    out.push((x, frame.clone()));
                }
            } else {
                for (item, fr) in &items {
                    out.extend(self.step_tuples(step, item.as_ref(), fr, false)?);
                }
            }
            if i + 1 == steps.len() {
                return Ok(out);
            }
            items = out.into_iter().map(|(v, f)| (Some(v), f)).collect();
            if items.is_empty() {
                break;
            }
        }
        Ok(Vec::new())
    }

    /// One path step applied to one item, giving the selected items each
    /// with its scope.
    fn step_tuples(
        &self,
        node: &Node,
        item: Option<&Value>,
        fr: &Rc<Frame>,
        last: bool,
    ) -> R<Vec<(Value, Rc<Frame>)>> {
        self.tick(node.pos)?;
        match &node.kind {
            Kind::Index(inner, var) => {
                let base = self.step_tuples(inner, item, fr, false)?;
                Ok(base
                    .into_iter()
                    .enumerate()
                    .map(|(j, (v, f))| {
                        let nf = self.new_frame(Some(f));
                        nf.set(var, Some(Value::Num(j as f64)));
                        (v, nf)
                    })
                    .collect())
            }
            Kind::Focus(inner, var) => {
                let base = self.step_tuples(inner, item, fr, false)?;
                let mut out = Vec::with_capacity(base.len());
                for (v, f) in base {
                    let nf = self.new_frame(Some(f));
                    nf.set(var, Some(v));
                    // The context item stays where it was.
                    if let Some(ctx) = item {
                        out.push((ctx.clone(), nf));
                    }
                }
                Ok(out)
            }
            Kind::Filter(inner, pred) if has_binding(inner) || self.track_parent => {
                let base = self.step_tuples(inner, item, fr, false)?;
                let len = base.len() as f64;
                if let Kind::Num(n) = pred.kind {
                    let mut idx = n.floor();
                    if idx < 0.0 {
                        idx += len;
                    }
                    return Ok(if idx >= 0.0 && idx < len {
                        base.into_iter().nth(idx as usize).into_iter().collect()
                    } else {
                        Vec::new()
                    });
                }
                let mut out = Vec::new();
                for (j, (v, f)) in base.into_iter().enumerate() {
                    let r = self.eval(pred, Some(&v), &f)?;
                    let keep = match &r {
                        Some(Value::Num(n)) => index_matches(*n, j, len),
                        Some(Value::Array(a, _))
                            if !a.is_empty() && a.iter().all(|x| matches!(x, Value::Num(_))) =>
                        {
                            a.iter()
                                .any(|x| index_matches(x.as_f64().unwrap_or(f64::NAN), j, len))
                        }
                        other => truthy(other.as_ref()),
                    };
                    if keep {
                        out.push((v, f));
                    }
                }
                Ok(out)
            }
            Kind::Sort(inner, terms) => {
                // An order-by stage keeps each item's scope, so `%`, `#` and
                // `@` bindings made before it stay visible after it.
                let base = match &inner.kind {
                    Kind::Path { steps, .. } => self.path_tuples(steps, item, fr)?,
                    _ => crate::value::items_of(&self.eval(inner, item, fr)?)
                        .into_iter()
                        .map(|v| (v, fr.clone()))
                        .collect(),
                };
                self.sort_tuples(base, terms)
            }
            Kind::Parent => match fr.parent_item() {
                Some(p) => Ok(vec![p]),
                None => Err(err(
                    "S0217",
                    "The object representing the 'parent' cannot be derived from this expression",
                    node.pos,
                )),
            },
            _ => {
                let v = self.eval(node, item, fr)?;
                let cons = matches!(node.kind, Kind::ArrayCons(_));
                let vals = match v {
                    None => Vec::new(),
                    Some(Value::Array(a, f)) if !(cons || f.cons || (last && !f.seq)) => {
                        a.as_ref().clone()
                    }
                    Some(v) => vec![v],
                };
                Ok(vals
                    .into_iter()
                    .map(|v| {
                        if self.track_parent {
                            let nf = self.new_frame(Some(fr.clone()));
                            if let Some(p) = item {
                                *nf.parent_item.borrow_mut() = Some((p.clone(), fr.clone()));
                            }
                            (v, nf)
                        } else {
                            (v, fr.clone())
                        }
                    })
                    .collect())
            }
        }
    }

    fn filter(&self, v: Option<Value>, pred: &Node, frame: &Rc<Frame>) -> R<Option<Value>> {
        let Some(v) = v else {
            return Ok(None);
        };
        let items = match &v {
            Value::Array(a, _) => a.clone(),
            other => Rc::new(vec![other.clone()]),
        };
        let len = items.len() as f64;
        if let Kind::Num(n) = pred.kind {
            let mut idx = n.floor();
            if idx < 0.0 {
                idx += len;
            }
            if idx >= 0.0 && idx < len {
                return Ok(Some(Value::seq(vec![items[idx as usize].clone()])));
            }
            return Ok(None);
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            self.tick(pred.pos)?;
            let r = self.eval(pred, Some(item), frame)?;
            let keep = match &r {
                Some(Value::Num(n)) => index_matches(*n, i, len),
                Some(Value::Array(a, _))
                    if !a.is_empty() && a.iter().all(|x| matches!(x, Value::Num(_))) =>
                {
                    a.iter()
                        .any(|x| index_matches(x.as_f64().unwrap_or(f64::NAN), i, len))
                }
                other => truthy(other.as_ref()),
            };
            if keep {
                out.push(item.clone());
            }
        }
        Ok(Some(Value::seq(out)))
    }

    fn binary(
        &self,
        op: BinOp,
        l: &Node,
        r: &Node,
        input: Option<&Value>,
        frame: &Rc<Frame>,
        pos: usize,
    ) -> R<Option<Value>> {
        match op {
            BinOp::And => {
                let lv = self.eval(l, input, frame)?;
                if !truthy(lv.as_ref()) {
                    return Ok(Some(Value::Bool(false)));
                }
                let rv = self.eval(r, input, frame)?;
                return Ok(Some(Value::Bool(truthy(rv.as_ref()))));
            }
            BinOp::Or => {
                let lv = self.eval(l, input, frame)?;
                if truthy(lv.as_ref()) {
                    return Ok(Some(Value::Bool(true)));
                }
                let rv = self.eval(r, input, frame)?;
                return Ok(Some(Value::Bool(truthy(rv.as_ref()))));
            }
            BinOp::Elvis => {
                let lv = self.eval(l, input, frame)?;
                if truthy(lv.as_ref()) {
                    return Ok(lv);
                }
                return self.eval(r, input, frame);
            }
            BinOp::Coalesce => {
                let lv = self.eval(l, input, frame)?;
                if lv.is_some() {
                    return Ok(lv);
                }
                return self.eval(r, input, frame);
            }
            _ => {}
        }
        let lv = self.eval(l, input, frame)?;
        let rv = self.eval(r, input, frame)?;
        let sym = op.symbol();
        match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                let a = match &lv {
                    None => None,
                    Some(Value::Num(n)) => Some(*n),
                    Some(_) => {
                        return Err(err(
                            "T2001",
                            format!(
                                "The left side of the {sym} operator must evaluate to a number"
                            ),
                            pos,
                        ));
                    }
                };
                let b = match &rv {
                    None => None,
                    Some(Value::Num(n)) => Some(*n),
                    Some(_) => {
                        return Err(err(
                            "T2002",
                            format!(
                                "The right side of the {sym} operator must evaluate to a number"
                            ),
                            pos,
                        ));
                    }
                };
                let (Some(a), Some(b)) = (a, b) else {
                    return Ok(None);
                };
                let n = match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    _ => a % b,
                };
                finite(n, pos)
            }
            BinOp::Eq | BinOp::Ne => {
                let (Some(a), Some(b)) = (&lv, &rv) else {
                    return Ok(Some(Value::Bool(false)));
                };
                let eq = deep_equal(a, b);
                Ok(Some(Value::Bool(if op == BinOp::Eq { eq } else { !eq })))
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let comparable = |v: &Option<Value>| {
                    matches!(v, None | Some(Value::Num(_)) | Some(Value::Str(_)))
                };
                if !comparable(&lv) || !comparable(&rv) {
                    return Err(err(
                        "T2010",
                        format!(
                            "The expressions either side of operator \"{sym}\" must evaluate to numeric or string values"
                        ),
                        pos,
                    ));
                }
                let (Some(a), Some(b)) = (&lv, &rv) else {
                    return Ok(None);
                };
                let ord = match (a, b) {
                    (Value::Num(x), Value::Num(y)) => x.partial_cmp(y),
                    (Value::Str(x), Value::Str(y)) => Some(cmp_utf16(x, y)),
                    _ => {
                        return Err(err(
                            "T2009",
                            format!(
                                "The values {} and {} either side of operator \"{sym}\" must be of the same data type",
                                to_string(a, false),
                                to_string(b, false)
                            ),
                            pos,
                        ));
                    }
                };
                use std::cmp::Ordering::*;
                let res = match (op, ord) {
                    (_, None) => false,
                    (BinOp::Lt, Some(o)) => o == Less,
                    (BinOp::Le, Some(o)) => o != Greater,
                    (BinOp::Gt, Some(o)) => o == Greater,
                    (_, Some(o)) => o != Less,
                };
                Ok(Some(Value::Bool(res)))
            }
            BinOp::Concat => {
                let s =
                    |v: &Option<Value>| v.as_ref().map(|v| to_string(v, false)).unwrap_or_default();
                Ok(Some(Value::string(s(&lv) + &s(&rv))))
            }
            BinOp::In => {
                let (Some(a), Some(b)) = (&lv, &rv) else {
                    return Ok(Some(Value::Bool(false)));
                };
                let found = match b {
                    Value::Array(items, _) => items.iter().any(|x| deep_equal(a, x)),
                    other => deep_equal(a, other),
                };
                Ok(Some(Value::Bool(found)))
            }
            BinOp::And | BinOp::Or | BinOp::Elvis | BinOp::Coalesce => {
                unreachable!("handled above")
            }
        }
    }

    fn group(
        &self,
        input: Option<Value>,
        pairs: &[(Node, Node)],
        frame: &Rc<Frame>,
    ) -> R<Option<Value>> {
        let items: Vec<(Option<Value>, Rc<Frame>)> = match input {
            Some(Value::Array(a, _)) => {
                if a.is_empty() {
                    vec![(None, frame.clone())]
                } else {
                    a.iter().map(|v| (Some(v.clone()), frame.clone())).collect()
                }
            }
            Some(v) => vec![(Some(v), frame.clone())],
            None => vec![(None, frame.clone())],
        };
        self.group_scoped(items, pairs, frame)
    }

    /// Grouping over items that each carry their scope: keys see the item's
    /// `%`, `#` and `@` bindings; a value sees each binding as the values
    /// of the group's items appended together.
    fn group_scoped(
        &self,
        items: Vec<(Option<Value>, Rc<Frame>)>,
        pairs: &[(Node, Node)],
        frame: &Rc<Frame>,
    ) -> R<Option<Value>> {
        // key -> (pair index, grouped items, their scopes)
        let mut order: Vec<Rc<str>> = Vec::new();
        let mut groups: HashMap<Rc<str>, Grouped> = HashMap::new();
        for (item, item_frame) in &items {
            for (pi, (k, _)) in pairs.iter().enumerate() {
                let key = self.eval(k, item.as_ref(), item_frame)?;
                let key: Rc<str> = match key {
                    None => continue,
                    Some(Value::Str(s)) => s,
                    Some(other) => {
                        return Err(err(
                            "T1003",
                            format!(
                                "Key in object structure must evaluate to a string; got: {}",
                                to_string(&other, false)
                            ),
                            k.pos,
                        ));
                    }
                };
                match groups.get_mut(&key) {
                    Some((idx, data, scopes)) => {
                        if *idx != pi {
                            return Err(err(
                                "D1009",
                                format!("Multiple key definitions evaluate to same key: {key}"),
                                k.pos,
                            ));
                        }
                        if let Some(v) = item {
                            data.push(v.clone());
                        }
                        scopes.push(item_frame.clone());
                    }
                    None => {
                        order.push(key.clone());
                        groups.insert(
                            key,
                            (pi, item.iter().cloned().collect(), vec![item_frame.clone()]),
                        );
                    }
                }
            }
        }
        let mut out = Obj::new();
        for key in order {
            let Some((pi, data, scopes)) = groups.remove(&key) else {
                continue;
            };
            let ctx = match data.len() {
                0 => None,
                1 => data.into_iter().next(),
                _ => Some(Value::seq(data)),
            };
            let scope = self.merge_scopes(&scopes, frame);
            if let Some(v) = self.eval(&pairs[pi].1, ctx.as_ref(), &scope)? {
                out.insert(key, v);
            }
        }
        Ok(Some(Value::object(out)))
    }

    /// One scope holding the bindings that `scopes` add on top of `base`,
    /// each variable bound to its values across the scopes appended together.
    fn merge_scopes(&self, scopes: &[Rc<Frame>], base: &Rc<Frame>) -> Rc<Frame> {
        if scopes.iter().all(|f| Rc::ptr_eq(f, base)) {
            return base.clone();
        }
        if scopes.len() == 1 {
            return scopes[0].clone();
        }
        let mut names: Vec<String> = Vec::new();
        let mut values: HashMap<String, Vec<Value>> = HashMap::new();
        for f in scopes {
            let mut seen: Vec<String> = Vec::new();
            let mut cur = Some(f.clone());
            while let Some(fr) = cur {
                if Rc::ptr_eq(&fr, base) {
                    break;
                }
                for (k, v) in fr.vars.borrow().iter() {
                    if seen.contains(k) {
                        continue;
                    }
                    seen.push(k.clone());
                    if !values.contains_key(k) {
                        names.push(k.clone());
                    }
                    let slot = values.entry(k.clone()).or_default();
                    match v {
                        Value::Array(a, _) => slot.extend(a.iter().cloned()),
                        v => slot.push(v.clone()),
                    }
                }
                cur = fr.parent.clone();
            }
        }
        let merged = self.new_frame(Some(base.clone()));
        *merged.parent_item.borrow_mut() = scopes[0].parent_item();
        for n in names {
            let vals = values.remove(&n).unwrap_or_default();
            let v = if vals.len() == 1 {
                vals.into_iter().next()
            } else {
                Some(Value::seq(vals))
            };
            merged.set(&n, v);
        }
        merged
    }

    fn sort(
        &self,
        v: Option<Value>,
        terms: &[(Node, bool)],
        frame: &Rc<Frame>,
    ) -> R<Option<Value>> {
        let Some(v) = v else {
            return Ok(None);
        };
        let items = v.items().into_iter().map(|x| (x, frame.clone())).collect();
        let sorted = self.sort_tuples(items, terms)?;
        Ok(Some(Value::seq(
            sorted.into_iter().map(|(v, _)| v).collect(),
        )))
    }

    /// Stable sort of items (each with its scope) by the order-by terms.
    /// Errors: `T2008` (a key is not a number or string), `T2007` (keys of
    /// one term have different types).
    fn sort_tuples(
        &self,
        items: Vec<(Value, Rc<Frame>)>,
        terms: &[(Node, bool)],
    ) -> R<Vec<(Value, Rc<Frame>)>> {
        let mut keyed: Vec<(Vec<Option<Value>>, Scoped)> = Vec::with_capacity(items.len());
        for (item, f) in items {
            let mut keys = Vec::with_capacity(terms.len());
            for (t, _) in terms {
                let k = self.eval(t, Some(&item), &f)?;
                match &k {
                    None | Some(Value::Num(_)) | Some(Value::Str(_)) => {}
                    Some(_) => {
                        return Err(err(
                            "T2008",
                            "The expressions within an order-by clause must evaluate to numeric or string values",
                            t.pos,
                        ));
                    }
                }
                keys.push(k);
            }
            keyed.push((keys, (item, f)));
        }
        // All defined keys of one term must share a type.
        for (ti, (t, _)) in terms.iter().enumerate() {
            let mut seen: Option<&'static str> = None;
            for (keys, _) in &keyed {
                if let Some(k) = &keys[ti] {
                    let ty = k.type_name();
                    match seen {
                        None => seen = Some(ty),
                        Some(s) if s != ty => {
                            return Err(err(
                                "T2007",
                                "Type mismatch when comparing values in order-by clause",
                                t.pos,
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
        keyed.sort_by(|(a, _), (b, _)| {
            use std::cmp::Ordering;
            for (i, (_, desc)) in terms.iter().enumerate() {
                let o = match (&a[i], &b[i]) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => return Ordering::Greater,
                    (Some(_), None) => return Ordering::Less,
                    (Some(Value::Num(x)), Some(Value::Num(y))) => {
                        x.partial_cmp(y).unwrap_or(Ordering::Equal)
                    }
                    (Some(Value::Str(x)), Some(Value::Str(y))) => cmp_utf16(x, y),
                    _ => Ordering::Equal,
                };
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        Ok(keyed.into_iter().map(|(_, t)| t).collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        func: &Node,
        args: &[Node],
        partial: bool,
        input: Option<&Value>,
        frame: &Rc<Frame>,
        first: Option<Option<Value>>,
        pos: usize,
    ) -> R<Option<Value>> {
        let f = self.eval(func, input, frame)?;
        let Some(f @ Value::Func(_)) = f else {
            let hint = match &func.kind {
                Kind::Path { steps, .. } if steps.len() == 1 => match &steps[0].kind {
                    Kind::Name(n) => Some(n.clone()),
                    _ => None,
                },
                _ => None,
            };
            let (code, what) = if partial {
                ("T1007", "partially apply")
            } else {
                ("T1006", "invoke")
            };
            return Err(match hint {
                Some(n) => err(
                    if partial { "T1007" } else { "T1005" },
                    format!("Attempted to {what} a non-function. Did you mean ${n}?"),
                    pos,
                ),
                None => err(
                    if partial { "T1008" } else { code },
                    format!("Attempted to {what} a non-function"),
                    pos,
                ),
            });
        };
        if partial {
            let mut pargs: Vec<Option<Option<Value>>> = Vec::new();
            if let Some(v) = first {
                pargs.push(Some(v));
            }
            for a in args {
                if matches!(a.kind, Kind::Placeholder) {
                    pargs.push(None);
                } else {
                    pargs.push(Some(self.eval(a, input, frame)?));
                }
            }
            return Ok(Some(Value::Func(Rc::new(Func::Partial {
                func: f,
                args: pargs,
            }))));
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        if let Some(v) = first {
            vals.push(v);
        }
        for a in args {
            vals.push(self.eval(a, input, frame)?);
        }
        let saved = self.call_frame.replace(Some(frame.clone()));
        let r = self.apply(&f, vals, input, pos);
        *self.call_frame.borrow_mut() = saved;
        r
    }

    /// Calls a function value with arguments; `ctx` is the context item,
    /// used by built-ins whose first argument defaults to it.
    pub fn apply(
        &self,
        f: &Value,
        args: Vec<Option<Value>>,
        ctx: Option<&Value>,
        pos: usize,
    ) -> R<Option<Value>> {
        let Value::Func(func) = f else {
            return Err(err("T1006", "Attempted to invoke a non-function", pos));
        };
        let d = self.depth.get() + 1;
        if d > self.depth_limit {
            return Err(err(
                "D1011",
                "Stack overflow error: the expression nests or recurses too deeply",
                pos,
            ));
        }
        self.depth.set(d);
        let r = self.apply_inner(func, args, ctx, pos);
        self.depth.set(d - 1);
        r
    }

    fn apply_inner(
        &self,
        func: &Rc<Func>,
        args: Vec<Option<Value>>,
        ctx: Option<&Value>,
        pos: usize,
    ) -> R<Option<Value>> {
        match &**func {
            Func::Lambda { .. } => {
                // Calls in tail position of a lambda body run in this loop
                // instead of nesting (tail call optimisation, as described
                // in https://docs.jsonata.org/programming).
                let mut func = func.clone();
                let mut args = args;
                loop {
                    let Func::Lambda { def, frame, input } = &*func else {
                        return self.apply(&Value::Func(func.clone()), args, ctx, pos);
                    };
                    let f = self.new_frame(Some(frame.clone()));
                    let bound = match def.signature.as_deref() {
                        Some(sig) => check_signature(sig, std::mem::take(&mut args), ctx, pos)?,
                        None => std::mem::take(&mut args),
                    };
                    let mut it = bound.into_iter();
                    for p in &def.params {
                        f.set(p, it.next().flatten());
                    }
                    match self.eval_tail(&def.body, input.as_ref(), &f)? {
                        Tail::Done(v) => return Ok(v),
                        Tail::Call(next, next_args) => {
                            self.tick(pos)?;
                            func = next;
                            args = next_args;
                        }
                    }
                }
            }
            Func::Builtin(name) => builtins::call(self, name, args, ctx, pos),
            Func::Native(nf) => {
                let mut jargs = Vec::with_capacity(args.len());
                for a in &args {
                    jargs.push(match a {
                        Some(v) => to_json(v)?,
                        None => None,
                    });
                }
                let out = nf(&jargs)?;
                Ok(out.as_ref().map(from_json))
            }
            Func::Partial { func, args: pargs } => {
                let mut supplied = args.into_iter();
                let mut full = Vec::with_capacity(pargs.len());
                for p in pargs {
                    match p {
                        Some(v) => full.push(v.clone()),
                        None => full.push(supplied.next().flatten()),
                    }
                }
                self.apply(func, full, ctx, pos)
            }
            Func::Compose(f, g) => {
                let mid = self.apply(f, args, ctx, pos)?;
                self.apply(g, vec![mid], ctx, pos)
            }
            Func::Regex(r) => {
                let Some(Some(Value::Str(s))) = args.into_iter().next() else {
                    return Ok(None);
                };
                Ok(builtins::regex_matcher(&r.regex, &s))
            }
            Func::Transform {
                pattern,
                update,
                delete,
                frame,
            } => {
                let arg = args.into_iter().next().flatten();
                self.transform(arg, pattern, update, delete.as_deref(), frame)
            }
        }
    }

    /// Evaluates a lambda body, returning a call in tail position (to
    /// another lambda) instead of making it.
    fn eval_tail(&self, node: &Node, input: Option<&Value>, frame: &Rc<Frame>) -> R<Tail> {
        match &node.kind {
            Kind::Condition(c, t, e) => {
                self.tick(node.pos)?;
                let cv = self.eval(c, input, frame)?;
                if truthy(cv.as_ref()) {
                    self.eval_tail(t, input, frame)
                } else if let Some(e) = e {
                    self.eval_tail(e, input, frame)
                } else {
                    Ok(Tail::Done(None))
                }
            }
            Kind::Block(exprs) if !exprs.is_empty() => {
                self.tick(node.pos)?;
                let f = self.new_frame(Some(frame.clone()));
                let (last, init) = exprs.split_last().expect("non-empty");
                for e in init {
                    self.eval(e, input, &f)?;
                }
                self.eval_tail(last, input, &f)
            }
            Kind::Call {
                func,
                args,
                partial: false,
            } => {
                self.tick(node.pos)?;
                let fv = self.eval(func, input, frame)?;
                match fv {
                    Some(Value::Func(fr)) if matches!(*fr, Func::Lambda { .. }) => {
                        let mut vals = Vec::with_capacity(args.len());
                        for a in args {
                            vals.push(self.eval(a, input, frame)?);
                        }
                        Ok(Tail::Call(fr, vals))
                    }
                    _ => self.eval(node, input, frame).map(Tail::Done),
                }
            }
            _ => self.eval(node, input, frame).map(Tail::Done),
        }
    }

    fn transform(
        &self,
        arg: Option<Value>,
        pattern: &Node,
        update: &Node,
        delete: Option<&Node>,
        frame: &Rc<Frame>,
    ) -> R<Option<Value>> {
        let Some(arg) = arg else {
            return Ok(None);
        };
        let matched = self.eval(pattern, Some(&arg), frame)?;
        let mut changes: HashMap<*const Obj, (Option<Rc<Obj>>, Vec<String>)> = HashMap::new();
        for m in crate::value::items_of(&matched) {
            let Value::Object(o) = &m else {
                continue;
            };
            let up = self.eval(update, Some(&m), frame)?;
            let up = match up {
                None => None,
                Some(Value::Object(u)) => Some(u),
                Some(_) => {
                    return Err(err(
                        "T2011",
                        "The insert/update clause of the transform expression must evaluate to an object",
                        update.pos,
                    ));
                }
            };
            let mut dels = Vec::new();
            if let Some(d) = delete {
                match self.eval(d, Some(&m), frame)? {
                    None => {}
                    Some(Value::Str(s)) => dels.push(s.to_string()),
                    Some(Value::Array(a, _)) if a.iter().all(|x| matches!(x, Value::Str(_))) => {
                        dels.extend(a.iter().filter_map(|x| x.as_str().map(String::from)))
                    }
                    Some(_) => {
                        return Err(err(
                            "T2012",
                            "The delete clause of the transform expression must evaluate to a string or array of strings",
                            d.pos,
                        ));
                    }
                }
            }
            changes.insert(Rc::as_ptr(o), (up, dels));
        }
        Ok(Some(self.rebuild(&arg, &changes)?))
    }

    fn rebuild(
        &self,
        v: &Value,
        changes: &HashMap<*const Obj, (Option<Rc<Obj>>, Vec<String>)>,
    ) -> R<Value> {
        self.tick(0)?;
        Ok(match v {
            Value::Object(o) => {
                let mut n = Obj::new();
                for (k, child) in o.iter() {
                    n.insert(k.clone(), self.rebuild(child, changes)?);
                }
                let ptr = Rc::as_ptr(o);
                if let Some((up, dels)) = changes.get(&ptr) {
                    if let Some(u) = up {
                        for (k, val) in u.iter() {
                            n.insert(k.clone(), val.clone());
                        }
                    }
                    for d in dels {
                        n.remove(d);
                    }
                }
                Value::object(n)
            }
            Value::Array(a, f) => {
                let mut out = Vec::with_capacity(a.len());
                for x in a.iter() {
                    out.push(self.rebuild(x, changes)?);
                }
                Value::Array(
                    Rc::new(out),
                    Flags {
                        seq: false,
                        keep: false,
                        cons: f.cons && !f.is_outer(),
                    },
                )
            }
            other => other.clone(),
        })
    }
}

/// A path item with its scope.
type Scoped = (Value, Rc<Frame>);

/// A group of a group-by: the index of the key/value pair that made it,
/// its items and their scopes.
type Grouped = (usize, Vec<Value>, Vec<Rc<Frame>>);

/// Result of evaluating a lambda body with tail calls deferred.
enum Tail {
    Done(Option<Value>),
    Call(Rc<Func>, Vec<Option<Value>>),
}

/// One parameter of a function signature (<https://docs.jsonata.org/programming#function-signatures>).
struct SigParam {
    /// Accepted type letters (`b n s l a o f`; `u`, `j`, `x` expanded).
    types: String,
    /// Element type of `a<t>`.
    element: Option<char>,
    /// `?` optional, `-` context default, `+` one or more, ' ' plain.
    option: char,
}

fn expand_types(t: char) -> &'static str {
    match t {
        'b' => "b",
        'n' => "n",
        's' => "s",
        'l' => "l",
        'a' => "a",
        'o' => "o",
        'f' => "f",
        'u' => "bnsl",
        'j' => "bnslao",
        _ => "bnslaof",
    }
}

fn parse_signature(sig: &str) -> Vec<SigParam> {
    let inner = sig.trim_start_matches('<');
    let chars: Vec<char> = inner.chars().collect();
    let mut out: Vec<SigParam> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ':' | '>' => break,
            '?' | '-' | '+' => {
                if let Some(last) = out.last_mut() {
                    last.option = c;
                }
                i += 1;
            }
            '<' => {
                // Parameterised type: `a<n>` or `f<...>`.
                let mut depth = 0;
                let start = i;
                while i < chars.len() {
                    match chars[i] {
                        '<' => depth += 1,
                        '>' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                if let Some(last) = out.last_mut().filter(|l| l.types == "a") {
                    last.element = chars.get(start + 1).copied();
                }
                i += 1;
            }
            '(' => {
                let mut types = String::new();
                i += 1;
                while i < chars.len() && chars[i] != ')' {
                    types.push_str(expand_types(chars[i]));
                    i += 1;
                }
                i += 1;
                out.push(SigParam {
                    types,
                    element: None,
                    option: ' ',
                });
            }
            c => {
                out.push(SigParam {
                    types: expand_types(c).to_string(),
                    element: None,
                    option: ' ',
                });
                i += 1;
            }
        }
    }
    out
}

fn type_letter(v: &Value) -> char {
    match v {
        Value::Null => 'l',
        Value::Bool(_) => 'b',
        Value::Num(_) => 'n',
        Value::Str(_) => 's',
        Value::Array(..) => 'a',
        Value::Object(_) => 'o',
        Value::Func(_) => 'f',
    }
}

/// Whether an argument fits a parameter (arrays accept any single value,
/// which is then wrapped).
fn fits(p: &SigParam, v: &Option<Value>) -> bool {
    match v {
        None => true,
        Some(v) => p.types.contains(type_letter(v)) || p.types.contains('a'),
    }
}

/// Validates arguments against a lambda's signature, wrapping single values
/// passed for array parameters and supplying the context for `-`
/// parameters. Errors: `T0410` (argument does not match), `T0412` (array
/// element of the wrong type).
fn check_signature(
    sig: &str,
    args: Vec<Option<Value>>,
    ctx: Option<&Value>,
    pos: usize,
) -> R<Vec<Option<Value>>> {
    let params = parse_signature(sig);
    let mismatch = |i: usize| {
        err(
            "T0410",
            format!(
                "Argument {} of function does not match function signature",
                i + 1
            ),
            pos,
        )
    };
    let coerce = |p: &SigParam, v: Option<Value>, i: usize| -> R<Option<Value>> {
        let Some(v) = v else { return Ok(None) };
        let v = if p.types.contains('a') && !p.types.contains(type_letter(&v)) {
            Value::array(vec![v])
        } else {
            v
        };
        if let (Some(el), Value::Array(items, _)) = (p.element, &v) {
            let allowed = expand_types(el);
            if items.iter().any(|x| !allowed.contains(type_letter(x))) {
                return Err(err(
                    "T0412",
                    format!("Argument {} of function must be an array of {el}", i + 1),
                    pos,
                ));
            }
        }
        Ok(Some(v))
    };
    let mut out = Vec::with_capacity(params.len());
    let mut i = 0;
    for p in &params {
        let arg = args.get(i).cloned();
        match p.option {
            '-' => match arg {
                Some(a) if a.is_some() && fits(p, &a) => {
                    out.push(coerce(p, a, i)?);
                    i += 1;
                }
                _ => out.push(coerce(p, ctx.cloned(), i)?),
            },
            '?' => match arg {
                Some(a) if fits(p, &a) => {
                    out.push(coerce(p, a, i)?);
                    i += 1;
                }
                _ => out.push(None),
            },
            _ => match arg {
                Some(a) if fits(p, &a) => {
                    out.push(coerce(p, a, i)?);
                    i += 1;
                }
                Some(_) => return Err(mismatch(i)),
                None => out.push(None),
            },
        }
    }
    if i < args.len() {
        return Err(mismatch(i));
    }
    Ok(out)
}

/// Whether a path step binds `#$i` or `@$v` (possibly under predicates).
fn has_binding(n: &Node) -> bool {
    match &n.kind {
        Kind::Focus(..) | Kind::Index(..) => true,
        Kind::Filter(inner, _) | Kind::KeepArray(inner) => has_binding(inner),
        Kind::Sort(inner, _) => match &inner.kind {
            Kind::Path { steps, .. } => steps.iter().any(has_binding),
            _ => has_binding(inner),
        },
        _ => false,
    }
}

/// Whether an expression uses the parent operator `%`.
fn uses_parent(n: &Node) -> bool {
    let any = |v: &[Node]| v.iter().any(uses_parent);
    let pairs = |v: &[(Node, Node)]| v.iter().any(|(a, b)| uses_parent(a) || uses_parent(b));
    match &n.kind {
        Kind::Parent => true,
        Kind::Str(_) | Kind::Num(_) | Kind::Bool(_) | Kind::Null | Kind::Regex(_) => false,
        Kind::Name(_) | Kind::Var(_) | Kind::Wildcard | Kind::Descendant | Kind::Placeholder => {
            false
        }
        Kind::Path { steps, .. } => any(steps),
        Kind::Filter(a, b) | Kind::Binary(_, a, b) | Kind::Chain(a, b) | Kind::Range(a, b) => {
            uses_parent(a) || uses_parent(b)
        }
        Kind::KeepArray(a)
        | Kind::Neg(a)
        | Kind::Bind(_, a)
        | Kind::Focus(a, _)
        | Kind::Index(a, _) => uses_parent(a),
        Kind::ArrayCons(v) | Kind::Block(v) => any(v),
        Kind::ObjectCons(p) => pairs(p),
        Kind::Group(a, p) => uses_parent(a) || pairs(p),
        Kind::Sort(a, t) => uses_parent(a) || t.iter().any(|(x, _)| uses_parent(x)),
        Kind::Condition(c, t, e) => {
            uses_parent(c) || uses_parent(t) || e.as_deref().is_some_and(uses_parent)
        }
        Kind::Call { func, args, .. } => uses_parent(func) || any(args),
        Kind::Lambda(def) => uses_parent(&def.body),
        Kind::Transform {
            pattern,
            update,
            delete,
        } => {
            uses_parent(pattern)
                || uses_parent(update)
                || delete.as_deref().is_some_and(uses_parent)
        }
    }
}

fn index_matches(n: f64, i: usize, len: f64) -> bool {
    let mut idx = n.floor();
    if idx < 0.0 {
        idx += len;
    }
    idx == i as f64
}

/// Compares strings by UTF-16 code units, as JavaScript does.
pub(crate) fn cmp_utf16(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Field lookup; over arrays it maps and flattens one level.
pub(crate) fn lookup(v: &Value, name: &str) -> Option<Value> {
    match v {
        Value::Object(o) => o.get(name).cloned(),
        Value::Array(a, _) => {
            let mut out = Vec::new();
            for item in a.iter() {
                match lookup(item, name) {
                    Some(Value::Array(inner, _)) => out.extend(inner.iter().cloned()),
                    Some(x) => out.push(x),
                    None => {}
                }
            }
            Some(Value::seq(out))
        }
        _ => None,
    }
}

fn flatten_into(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a, _) => {
            for x in a.iter() {
                flatten_into(x, out);
            }
        }
        v => out.push(v.clone()),
    }
}

fn wildcard(v: &Value) -> Value {
    let mut out = Vec::new();
    match v {
        Value::Object(o) => {
            for (_, x) in o.iter() {
                flatten_into(x, &mut out);
            }
        }
        Value::Array(a, _) => {
            for x in a.iter() {
                flatten_into(x, &mut out);
            }
        }
        _ => {}
    }
    Value::seq(out)
}

fn descendants(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a, _) => {
            for x in a.iter() {
                descendants(x, out);
            }
        }
        Value::Object(o) => {
            out.push(v.clone());
            for (_, x) in o.iter() {
                descendants(x, out);
            }
        }
        other => out.push(other.clone()),
    }
}
