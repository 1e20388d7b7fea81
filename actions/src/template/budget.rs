//! What one render may spend: the size of any value it builds, the text it writes, the bytes its
//! builtins process. Every check happens before the allocation it guards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use minijinja::value::{Object, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

/// `--max-rendered-bytes`: the largest text one template (one step parameter) renders to, and the
/// largest value (string, list, map) any operator, filter, function or test may build on the way.
pub const DEFAULT_MAX_RENDERED_BYTES: usize = 262_144;

/// VM instructions one render may execute (after the bounding rewrite of `rewrite.rs`, which adds
/// two instructions per guarded operator). Measured with `bench/src/bin/hostile.rs`.
pub const FUEL: u64 = 50_000;

/// Bytes the builtins and operators of one render may read and build in total (every guarded
/// call charges the size of its operands and of its result): with [`FUEL`] this bounds the time of
/// one render, since no instruction outside the guards touches more than a constant amount.
pub const MAX_WORK_BYTES: usize = 64 << 20;

/// Text written during one render, into the output or into a capture (`{% set %}` blocks, macro
/// calls, `{% filter %}` blocks), is at most this many times the rendered-size limit: text that
/// passes through a macro is written once per level, so the final output alone could not bound
/// captures.
pub const WRITE_FACTOR: usize = 4;

/// What a list or map item costs beyond its contents: the size of a `Value`.
pub const VALUE_BYTES: usize = std::mem::size_of::<Value>();

/// Nesting deeper than this is counted as if it were at the cap: entity JSON is far shallower.
const MAX_DEPTH: usize = 64;

/// The limits one render runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    pub max_rendered_bytes: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self {
            max_rendered_bytes: DEFAULT_MAX_RENDERED_BYTES,
        }
    }
}

impl TemplateLimits {
    pub(super) fn cap(&self) -> usize {
        self.max_rendered_bytes
    }

    /// Fails when `bytes` is past the cap; `what` names the builtin or operator.
    pub(super) fn check(&self, what: &str, bytes: usize) -> Result<(), Error> {
        if bytes > self.cap() {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "{what} would build about {bytes} bytes, past the rendered-size limit of {} bytes (--max-rendered-bytes)",
                    self.cap()
                ),
            ))
        } else {
            Ok(())
        }
    }
}

/// The shape of a value: about how many bytes it holds (text length, plus [`VALUE_BYTES`] per
/// list or map item), how many items, how deep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Shape {
    pub bytes: usize,
    pub items: usize,
    pub depth: usize,
}

/// Measures `value`, stopping as soon as it is known to hold more than `stop` bytes, so measuring
/// costs at most `stop` (a lazy sequence such as `range(n)` or `a + b` is walked, not built).
pub(super) fn shape(value: &Value, stop: usize) -> Shape {
    let mut acc = Shape::default();
    walk(value, stop, 0, &mut acc);
    acc
}

/// [`shape`]'s byte count.
pub(super) fn size(value: &Value, stop: usize) -> usize {
    shape(value, stop).bytes
}

fn walk(value: &Value, stop: usize, depth: usize, acc: &mut Shape) {
    acc.depth = acc.depth.max(depth);
    if acc.bytes > stop {
        return;
    }
    if depth > MAX_DEPTH {
        acc.bytes = acc.bytes.saturating_add(stop.saturating_add(1));
        return;
    }
    match value.kind() {
        ValueKind::String => acc.bytes += value.as_str().map_or(0, str::len),
        ValueKind::Bytes => acc.bytes += value.as_bytes().map_or(0, <[u8]>::len),
        ValueKind::Seq | ValueKind::Iterable => {
            let Ok(iter) = value.try_iter() else { return };
            for item in iter {
                acc.items += 1;
                acc.bytes += VALUE_BYTES;
                walk(&item, stop, depth + 1, acc);
                if acc.bytes > stop {
                    return;
                }
            }
        }
        ValueKind::Map => {
            let Ok(keys) = value.try_iter() else { return };
            for key in keys {
                acc.items += 1;
                acc.bytes += 2 * VALUE_BYTES;
                walk(&key, stop, depth + 1, acc);
                if let Ok(item) = value.get_item(&key) {
                    walk(&item, stop, depth + 1, acc);
                }
                if acc.bytes > stop {
                    return;
                }
            }
        }
        // Numbers, booleans, none, undefined, callables: held in the `Value` itself (counted
        // with the item that holds it), a few bytes on their own.
        _ if depth == 0 => acc.bytes += 8,
        _ => {}
    }
}

/// The per-render counters, kept in the render's temps so macros share them with their caller.
#[derive(Debug, Default)]
pub(super) struct Budget {
    written: AtomicUsize,
    work: AtomicUsize,
}

impl Object for Budget {}

const BUDGET_TEMP: &str = "__switchyard_budget";

pub(super) fn budget(state: &State) -> Arc<Budget> {
    state.get_or_set_temp_object(BUDGET_TEMP, Budget::default)
}

impl Budget {
    /// Counts bytes a builtin or operator reads or builds.
    pub(super) fn work(&self, bytes: usize) -> Result<(), Error> {
        let total = self
            .work
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if total > MAX_WORK_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "the template processed more than {MAX_WORK_BYTES} bytes, the work limit of one render"
                ),
            ));
        }
        Ok(())
    }

    /// Counts text written into the output or a capture.
    pub(super) fn write(&self, bytes: usize, limits: &TemplateLimits) -> Result<(), Error> {
        let total = self
            .written
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        let allowed = limits.cap().saturating_mul(WRITE_FACTOR);
        if total > allowed {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "the template wrote more than {allowed} bytes ({WRITE_FACTOR} × the rendered-size limit of {} bytes, --max-rendered-bytes), captures included",
                    limits.cap()
                ),
            ));
        }
        Ok(())
    }
}
