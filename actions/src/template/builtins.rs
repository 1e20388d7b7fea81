//! The filters, functions and tests templates may use, each measured before and after it runs,
//! and the guard functions the rewritten operators call (see `rewrite.rs`).
//!
//! The environment starts empty and gets only what is listed here: a builtin added to MiniJinja by
//! an upgrade is not reachable until someone decides how to bound it. Removed on purpose: the
//! `debug` function (prints the whole scope), includes, imports and `extends` (no loader).

use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, Error, State, filters, functions, tests as builtin_tests};

use super::budget::{MAX_WORK_BYTES, TemplateLimits, VALUE_BYTES, budget, shape, size};
use super::rewrite::{
    GUARD_ADD, GUARD_COMPARE, GUARD_CONCAT, GUARD_CONTAINS, GUARD_ITEM, GUARD_MUL, GUARD_SLICE,
    hand_back,
};

/// What a builtin may be asked to build, checked before it runs: the arguments are as the
/// template passed them (the filtered value first, keyword arguments last).
type Precheck = fn(&TemplateLimits, &str, &[Value]) -> Result<(), Error>;

/// Nothing to check before: the builtin builds at most a small value, or a value no larger than
/// what its result check measures before anything else sees it (lazy sequences).
fn none(_: &TemplateLimits, _: &str, _: &[Value]) -> Result<(), Error> {
    Ok(())
}

/// The result is a bounded multiple (at most 6×: HTML escaping) of the input: the input must be
/// within the cap.
fn input(limits: &TemplateLimits, name: &str, args: &[Value]) -> Result<(), Error> {
    let bytes = args.first().map_or(0, |v| size(v, limits.cap() + 1));
    limits.check(name, bytes)
}

/// Like [`input`], over every argument (`chain`, `zip`, `dict`).
fn all_inputs(limits: &TemplateLimits, name: &str, args: &[Value]) -> Result<(), Error> {
    let bytes = args.iter().fold(0usize, |acc, v| {
        acc.saturating_add(size(v, limits.cap() + 1))
    });
    limits.check(name, bytes.saturating_mul(2))
}

fn positional(args: &[Value], idx: usize) -> Option<&Value> {
    args.get(idx).filter(|v| !v.is_kwargs())
}

fn kwarg(args: &[Value], key: &str) -> Option<Value> {
    let last = args.last().filter(|v| v.is_kwargs())?;
    last.get_attr(key).ok().filter(|v| !v.is_undefined())
}

/// Number of items iterating `value` yields (characters of a string), counted up to `stop`.
fn item_count(value: &Value, stop: usize) -> usize {
    if let Some(s) = value.as_str() {
        return s.chars().take(stop.saturating_add(1)).count();
    }
    match value.len() {
        Some(n) => n,
        None => value
            .try_iter()
            .map_or(0, |iter| iter.take(stop.saturating_add(1)).count()),
    }
}

fn as_count(value: Option<&Value>) -> usize {
    value
        .and_then(|v| v.as_i64())
        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// `batch(n)` / `slice(n)`: n-item lists, the last padded with `fill`.
fn batch(limits: &TemplateLimits, name: &str, args: &[Value]) -> Result<(), Error> {
    let Some(value) = args.first() else {
        return Ok(());
    };
    let cap = limits.cap();
    let items = item_count(value, cap);
    let count = as_count(positional(args, 1));
    let bytes = size(value, cap + 1).saturating_add(
        items
            .saturating_add(count.saturating_mul(2))
            .saturating_mul(VALUE_BYTES),
    );
    limits.check(name, bytes)
}

/// `indent(width)`: every line gains `width` spaces.
fn indent(limits: &TemplateLimits, name: &str, args: &[Value]) -> Result<(), Error> {
    let text = args.first().and_then(Value::as_str).unwrap_or_default();
    let width = positional(args, 1)
        .cloned()
        .or_else(|| kwarg(args, "width"))
        .as_ref()
        .map_or(4, |v| as_count(Some(v)));
    let lines = text.bytes().filter(|b| *b == b'\n').count() + 1;
    limits.check(
        name,
        text.len()
            .saturating_add(lines.saturating_mul(width.saturating_add(1))),
    )
}

/// `replace(from, to, count)`: each replaced occurrence grows the text by `to`.
fn replace(limits: &TemplateLimits, name: &str, args: &[Value]) -> Result<(), Error> {
    let text = args.first().and_then(Value::as_str).unwrap_or_default();
    let from = positional(args, 1)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let to = positional(args, 2)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let mut hits = if from.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(from.as_str()).count()
    };
    if let Some(n) = positional(args, 3).and_then(Value::as_i64)
        && n >= 0
    {
        hits = hits.min(usize::try_from(n).unwrap_or(usize::MAX));
    }
    limits.check(
        name,
        text.len().saturating_add(hits.saturating_mul(to.len())),
    )
}

/// `join(sep)`: the items' text plus one separator between each two.
fn join(limits: &TemplateLimits, name: &str, args: &[Value]) -> Result<(), Error> {
    let Some(value) = args.first() else {
        return Ok(());
    };
    let cap = limits.cap();
    let sep = positional(args, 1).map_or(0, |v| v.as_str().map_or(8, str::len));
    let items = item_count(value, cap);
    limits.check(
        name,
        size(value, cap + 1).saturating_add(items.saturating_mul(sep)),
    )
}

/// `split` / `lines` / `list`: one value per piece.
fn pieces(limits: &TemplateLimits, name: &str, args: &[Value]) -> Result<(), Error> {
    let Some(value) = args.first() else {
        return Ok(());
    };
    let cap = limits.cap();
    let Some(text) = value.as_str() else {
        return input(limits, name, args);
    };
    let pieces = match (name, positional(args, 1).and_then(Value::as_str)) {
        ("`lines`", _) => text.bytes().filter(|b| *b == b'\n').count() + 1,
        ("`split`", Some(sep)) if !sep.is_empty() => text.matches(sep).count() + 1,
        ("`split`", None) => text.len() / 2 + 1,
        // `list` and an empty separator: one piece per character.
        _ => item_count(value, cap) + 2,
    };
    limits.check(
        name,
        text.len()
            .saturating_add(pieces.saturating_mul(2 * VALUE_BYTES)),
    )
}

/// `format`: the format string, the arguments' text, and every width and precision it asks for.
fn format(limits: &TemplateLimits, name: &str, args: &[Value]) -> Result<(), Error> {
    let cap = limits.cap();
    let fmt = args.first().and_then(Value::as_str).unwrap_or_default();
    let mut bytes = args
        .iter()
        .fold(0usize, |acc, v| acc.saturating_add(size(v, cap + 1)));
    // Widths written in the format string (`%9999999s`), then `*` widths taken from arguments.
    let mut number = 0usize;
    let mut in_spec = false;
    for c in fmt.chars() {
        if c == '%' {
            in_spec = !in_spec;
        } else if in_spec {
            if let Some(d) = c.to_digit(10) {
                number = number.saturating_mul(10).saturating_add(d as usize);
                continue;
            }
            bytes = bytes.saturating_add(number);
            number = 0;
            if c.is_ascii_alphabetic() {
                in_spec = false;
            }
        }
    }
    bytes = bytes.saturating_add(number);
    if fmt.contains('*') {
        for arg in args.iter().skip(1) {
            if let Some(n) = arg.as_i64() {
                bytes =
                    bytes.saturating_add(usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX));
            }
        }
    }
    limits.check(name, bytes)
}

/// `tojson(indent)` / `pprint`: every item on its own line, indented by its depth.
fn pretty(limits: &TemplateLimits, name: &str, args: &[Value]) -> Result<(), Error> {
    let Some(value) = args.first() else {
        return Ok(());
    };
    let width = match positional(args, 1)
        .cloned()
        .or_else(|| kwarg(args, "indent"))
    {
        _ if name == "`pprint`" => 4,
        Some(v) if v.kind() == ValueKind::Bool => usize::from(v.is_true()) * 2,
        Some(v) => as_count(Some(&v)),
        None => 0,
    };
    let shape = shape(value, limits.cap() + 1);
    let per_line = width.saturating_mul(shape.depth).saturating_add(2);
    limits.check(
        name,
        shape
            .bytes
            .saturating_add(shape.items.saturating_add(1).saturating_mul(per_line)),
    )
}

/// Bytes a call reads: the size of its arguments, measured up to the work limit.
fn read_bytes(args: &[Value]) -> usize {
    args.iter()
        .fold(0usize, |acc, v| acc.saturating_add(size(v, MAX_WORK_BYTES)))
}

/// Runs `builtin` within the limits: the precheck, the work of its arguments, then its result
/// measured against the cap before the template sees it.
fn bounded(
    limits: &TemplateLimits,
    name: &str,
    precheck: Precheck,
    builtin: &Value,
    state: &State,
    args: &[Value],
) -> Result<Value, Error> {
    let budget = budget(state);
    budget.work(read_bytes(args))?;
    precheck(limits, name, args)?;
    let rv = builtin.call(state, args)?;
    let bytes = size(&rv, limits.cap() + 1);
    budget.work(bytes)?;
    limits.check(&format!("the result of {name}"), bytes)?;
    Ok(rv)
}

fn add_filter(
    env: &mut Environment<'_>,
    limits: TemplateLimits,
    name: &'static str,
    builtin: Value,
    precheck: Precheck,
) {
    let label = format!("`{name}`");
    env.add_filter(name, move |state: &State, args: Rest<Value>| {
        bounded(&limits, &label, precheck, &builtin, state, &args)
    });
}

fn add_function(
    env: &mut Environment<'_>,
    limits: TemplateLimits,
    name: &'static str,
    builtin: Value,
    precheck: Precheck,
) {
    let label = format!("`{name}`");
    env.add_function(name, move |state: &State, args: Rest<Value>| {
        bounded(&limits, &label, precheck, &builtin, state, &args)
    });
}

fn add_test(env: &mut Environment<'_>, name: &'static str, builtin: Value) {
    env.add_test(name, move |state: &State, args: Rest<Value>| {
        // Tests return a boolean: they build nothing, but may scan (`in`, `startingwith`).
        budget(state).work(read_bytes(&args))?;
        builtin.call(state, &args).map(|v| v.is_true())
    });
}

/// Every filter, function and test of MiniJinja's builtins that templates may use.
pub(super) fn register(env: &mut Environment<'_>, limits: TemplateLimits) {
    let filters: Vec<(&'static str, Value, Precheck)> = vec![
        ("safe", Value::from_function(filters::safe), input),
        ("escape", Value::from_function(filters::escape), input),
        ("e", Value::from_function(filters::escape), input),
        ("lower", Value::from_function(filters::lower), input),
        ("upper", Value::from_function(filters::upper), input),
        ("title", Value::from_function(filters::title), input),
        (
            "capitalize",
            Value::from_function(filters::capitalize),
            input,
        ),
        ("replace", Value::from_function(filters::replace), replace),
        ("length", Value::from_function(filters::length), none),
        ("count", Value::from_function(filters::length), none),
        ("dictsort", Value::from_function(filters::dictsort), input),
        ("items", Value::from_function(filters::items), input),
        ("reverse", Value::from_function(filters::reverse), input),
        ("trim", Value::from_function(filters::trim), none),
        ("join", Value::from_function(filters::join), join),
        ("split", Value::from_function(filters::split), pieces),
        ("lines", Value::from_function(filters::lines), pieces),
        ("default", Value::from_function(filters::default), none),
        ("d", Value::from_function(filters::default), none),
        ("round", Value::from_function(filters::round), none),
        ("abs", Value::from_function(filters::abs), none),
        ("int", Value::from_function(filters::int), none),
        ("float", Value::from_function(filters::float), none),
        ("attr", Value::from_function(filters::attr), none),
        ("first", Value::from_function(filters::first), none),
        ("last", Value::from_function(filters::last), none),
        ("min", Value::from_function(filters::min), none),
        ("max", Value::from_function(filters::max), none),
        ("sort", Value::from_function(filters::sort), input),
        ("list", Value::from_function(filters::list), pieces),
        ("string", Value::from_function(filters::string), input),
        ("bool", Value::from_function(filters::bool), none),
        ("batch", Value::from_function(filters::batch), batch),
        ("slice", Value::from_function(filters::slice), batch),
        ("sum", Value::from_function(filters::sum), none),
        ("indent", Value::from_function(filters::indent), indent),
        ("select", Value::from_function(filters::select), input),
        ("reject", Value::from_function(filters::reject), input),
        (
            "selectattr",
            Value::from_function(filters::selectattr),
            input,
        ),
        (
            "rejectattr",
            Value::from_function(filters::rejectattr),
            input,
        ),
        ("map", Value::from_function(filters::map), input),
        ("groupby", Value::from_function(filters::groupby), input),
        ("unique", Value::from_function(filters::unique), input),
        ("chain", Value::from_function(filters::chain), all_inputs),
        ("zip", Value::from_function(filters::zip), all_inputs),
        ("pprint", Value::from_function(filters::pprint), pretty),
        ("format", Value::from_function(filters::format), format),
        ("tojson", Value::from_function(filters::tojson), pretty),
        ("urlencode", Value::from_function(filters::urlencode), input),
    ];
    for (name, builtin, precheck) in filters {
        add_filter(env, limits, name, builtin, precheck);
    }
    add_function(
        env,
        limits,
        "range",
        Value::from_function(functions::range),
        none,
    );
    add_function(
        env,
        limits,
        "dict",
        Value::from_function(functions::dict),
        all_inputs,
    );
    add_function(
        env,
        limits,
        "namespace",
        Value::from_function(functions::namespace),
        all_inputs,
    );

    let tests: Vec<(&'static str, Value)> = vec![
        (
            "undefined",
            Value::from_function(builtin_tests::is_undefined),
        ),
        ("defined", Value::from_function(builtin_tests::is_defined)),
        ("none", Value::from_function(builtin_tests::is_none)),
        ("safe", Value::from_function(builtin_tests::is_safe)),
        ("escaped", Value::from_function(builtin_tests::is_safe)),
        ("boolean", Value::from_function(builtin_tests::is_boolean)),
        ("odd", Value::from_function(builtin_tests::is_odd)),
        ("even", Value::from_function(builtin_tests::is_even)),
        (
            "divisibleby",
            Value::from_function(builtin_tests::is_divisibleby),
        ),
        ("number", Value::from_function(builtin_tests::is_number)),
        ("integer", Value::from_function(builtin_tests::is_integer)),
        ("int", Value::from_function(builtin_tests::is_integer)),
        ("float", Value::from_function(builtin_tests::is_float)),
        ("string", Value::from_function(builtin_tests::is_string)),
        ("sequence", Value::from_function(builtin_tests::is_sequence)),
        ("iterable", Value::from_function(builtin_tests::is_iterable)),
        ("mapping", Value::from_function(builtin_tests::is_mapping)),
        (
            "startingwith",
            Value::from_function(builtin_tests::is_startingwith),
        ),
        (
            "endingwith",
            Value::from_function(builtin_tests::is_endingwith),
        ),
        ("lower", Value::from_function(builtin_tests::is_lower)),
        ("upper", Value::from_function(builtin_tests::is_upper)),
        ("sameas", Value::from_function(builtin_tests::is_sameas)),
        ("eq", Value::from_function(builtin_tests::is_eq)),
        ("equalto", Value::from_function(builtin_tests::is_eq)),
        ("==", Value::from_function(builtin_tests::is_eq)),
        ("ne", Value::from_function(builtin_tests::is_ne)),
        ("!=", Value::from_function(builtin_tests::is_ne)),
        ("lt", Value::from_function(builtin_tests::is_lt)),
        ("lessthan", Value::from_function(builtin_tests::is_lt)),
        ("<", Value::from_function(builtin_tests::is_lt)),
        ("le", Value::from_function(builtin_tests::is_le)),
        ("<=", Value::from_function(builtin_tests::is_le)),
        ("gt", Value::from_function(builtin_tests::is_gt)),
        ("greaterthan", Value::from_function(builtin_tests::is_gt)),
        (">", Value::from_function(builtin_tests::is_gt)),
        ("ge", Value::from_function(builtin_tests::is_ge)),
        (">=", Value::from_function(builtin_tests::is_ge)),
    ];
    for (name, builtin) in tests {
        add_test(env, name, builtin);
    }
    for (name, builtin) in [
        ("in", Value::from_function(builtin_tests::is_in)),
        ("true", Value::from_function(builtin_tests::is_true)),
        ("false", Value::from_function(builtin_tests::is_false)),
        ("filter", Value::from_function(builtin_tests::is_filter)),
        ("test", Value::from_function(builtin_tests::is_test)),
    ] {
        add_test(env, name, builtin);
    }

    register_guards(env, limits);
}

/// The functions the rewritten operators call before they run; each hands its operands back.
fn register_guards(env: &mut Environment<'_>, limits: TemplateLimits) {
    env.add_function(GUARD_CONCAT, move |state: &State, args: Rest<Value>| {
        guard_sum(&limits, "`~`", state, &args)
    });
    env.add_function(GUARD_ADD, move |state: &State, args: Rest<Value>| {
        guard_sum(&limits, "`+`", state, &args)
    });
    env.add_function(GUARD_MUL, move |state: &State, args: Rest<Value>| {
        guard_mul(&limits, state, &args)
    });
    env.add_function(GUARD_SLICE, move |state: &State, args: Rest<Value>| {
        guard_slice(&limits, state, &args)
    });
    env.add_function(GUARD_COMPARE, |state: &State, args: Rest<Value>| {
        // A comparison reads at most the shorter operand.
        let bytes = args
            .iter()
            .map(|v| size(v, MAX_WORK_BYTES))
            .min()
            .unwrap_or(0);
        budget(state).work(bytes)?;
        Ok(hand_back(&args))
    });
    env.add_function(GUARD_CONTAINS, |state: &State, args: Rest<Value>| {
        // `a in b` scans `b`.
        budget(state).work(args.last().map_or(0, |v| size(v, MAX_WORK_BYTES)))?;
        Ok(hand_back(&args))
    });
    env.add_function(GUARD_ITEM, |state: &State, args: Rest<Value>| {
        // Indexing a string walks its characters; a list or map lookup is constant or logarithmic.
        let bytes = args
            .iter()
            .filter_map(|v| v.as_str().map(str::len))
            .max()
            .unwrap_or(0);
        budget(state).work(bytes)?;
        Ok(hand_back(&args))
    });
}

/// `~` and `+`: the result holds both operands (a number costs a few bytes).
fn guard_sum(
    limits: &TemplateLimits,
    name: &str,
    state: &State,
    args: &[Value],
) -> Result<Value, Error> {
    let bytes = args.iter().fold(0usize, |acc, v| {
        acc.saturating_add(size(v, limits.cap() + 1))
    });
    budget(state).work(bytes)?;
    limits.check(name, bytes)?;
    Ok(hand_back(args))
}

/// `*`: a string or sequence repeated n times.
fn guard_mul(limits: &TemplateLimits, state: &State, args: &[Value]) -> Result<Value, Error> {
    let repeatable = |v: &Value| {
        matches!(
            v.kind(),
            ValueKind::String | ValueKind::Seq | ValueKind::Iterable
        )
    };
    let pair = match args {
        [a, b] if repeatable(a) => Some((a, b)),
        [a, b] if repeatable(b) => Some((b, a)),
        _ => None,
    };
    if let Some((seq, times)) = pair {
        let times = as_count(Some(times));
        let bytes = size(seq, limits.cap() + 1).saturating_mul(times);
        budget(state).work(bytes.min(limits.cap()))?;
        limits.check("`*`", bytes)?;
    }
    Ok(hand_back(args))
}

/// `value[start:stop:step]`: a copy of the selected characters or items.
fn guard_slice(limits: &TemplateLimits, state: &State, args: &[Value]) -> Result<Value, Error> {
    if let [value, start, stop, step] = args {
        let int = |v: &Value| v.as_i64();
        let step = int(step).unwrap_or(1);
        let bytes = if step == 0 {
            0 // MiniJinja refuses it.
        } else if let Some(text) = value.as_str() {
            budget(state).work(text.len())?;
            let len = text.chars().count();
            let (first, count) = slice_range(len, int(start), int(stop), step);
            text.chars()
                .enumerate()
                .filter(|(i, _)| selected(*i, first, count, step))
                .map(|(_, c)| c.len_utf8())
                .sum()
        } else if matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable) {
            let len = item_count(value, usize::MAX);
            slice_range(len, int(start), int(stop), step)
                .1
                .saturating_mul(VALUE_BYTES)
        } else {
            0
        };
        limits.check("slicing", bytes)?;
    }
    Ok(hand_back(args))
}

/// Python's slice arithmetic: the first selected index and how many are selected.
fn slice_range(len: usize, start: Option<i64>, stop: Option<i64>, step: i64) -> (i64, usize) {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |v: Option<i64>, default: i64| match v {
        None => default,
        Some(x) if x < 0 => (x.saturating_add(len)).max(if step < 0 { -1 } else { 0 }),
        Some(x) => x.min(if step < 0 { len - 1 } else { len }),
    };
    if step > 0 {
        let (a, b) = (clamp(start, 0), clamp(stop, len));
        let count = if b > a { (b - a + step - 1) / step } else { 0 };
        (a, usize::try_from(count).unwrap_or(0))
    } else {
        let (a, b) = (clamp(start, len - 1), clamp(stop, -1));
        let step = step.saturating_neg();
        let count = if a > b { (a - b + step - 1) / step } else { 0 };
        (a, usize::try_from(count).unwrap_or(0))
    }
}

fn selected(i: usize, first: i64, count: usize, step: i64) -> bool {
    let Ok(i) = i64::try_from(i) else {
        return false;
    };
    let offset = if step > 0 { i - first } else { first - i };
    let step = step.saturating_abs();
    offset >= 0 && offset % step == 0 && usize::try_from(offset / step).is_ok_and(|k| k < count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_arithmetic_matches_python() {
        assert_eq!(slice_range(10, None, None, 1), (0, 10));
        assert_eq!(slice_range(10, Some(2), Some(5), 1), (2, 3));
        assert_eq!(slice_range(10, Some(-3), None, 1), (7, 3));
        assert_eq!(slice_range(10, None, None, -1), (9, 10));
        assert_eq!(slice_range(10, None, None, 3), (0, 4));
        assert_eq!(slice_range(10, Some(100), None, 1).1, 0);
        assert_eq!(slice_range(0, None, None, -2).1, 0);
    }
}
