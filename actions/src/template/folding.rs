//! Constant folding is bounded too: MiniJinja's code generator evaluates operators whose operands
//! are all literals while it compiles (`'x' * 99999999 ~ 'x' * 99999999` would be built at save
//! time, before any guard of `rewrite.rs` exists). This walk of the parsed template measures every
//! constant expression the way the code generator would fold it, without building it, and refuses
//! the template when one is past the cap.

use minijinja::Error;
use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{WhitespaceConfig, parse};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Value, ValueKind};

use super::budget::{TemplateLimits, VALUE_BYTES, size};

/// What a constant expression folds to, as far as its size goes.
#[derive(Clone, Copy)]
enum Folded {
    /// A number (an integer, when known) or a boolean.
    Number(Option<i64>),
    /// A string, list or map of about this many bytes.
    Sized(usize),
}

impl Folded {
    fn bytes(self) -> usize {
        match self {
            // An integer prints in at most 20 characters.
            Folded::Number(_) => 24,
            Folded::Sized(n) => n,
        }
    }
}

/// Parses `source` and checks every constant expression against the cap.
pub(super) fn check(source: &str, limits: &TemplateLimits) -> Result<(), Error> {
    let ast = parse(
        source,
        "<string>",
        SyntaxConfig,
        WhitespaceConfig::default(),
    )?;
    Walk { limits }.stmt(&ast)
}

struct Walk<'l> {
    limits: &'l TemplateLimits,
}

impl Walk<'_> {
    fn stmts(&self, body: &[Stmt<'_>]) -> Result<(), Error> {
        body.iter().try_for_each(|s| self.stmt(s))
    }

    fn exprs<'a>(&self, exprs: impl IntoIterator<Item = &'a Expr<'a>>) -> Result<(), Error> {
        for e in exprs {
            self.expr(e)?;
        }
        Ok(())
    }

    fn args(&self, args: &[CallArg<'_>]) -> Result<(), Error> {
        for arg in args {
            match arg {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => {
                    self.expr(e)?;
                }
            }
        }
        Ok(())
    }

    fn stmt(&self, stmt: &Stmt<'_>) -> Result<(), Error> {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr).map(drop),
            Stmt::EmitRaw(_) => Ok(()),
            Stmt::ForLoop(f) => {
                self.exprs([&f.target, &f.iter])?;
                self.exprs(f.filter_expr.iter())?;
                self.stmts(&f.body)?;
                self.stmts(&f.else_body)
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr)?;
                self.stmts(&i.true_body)?;
                self.stmts(&i.false_body)
            }
            Stmt::WithBlock(w) => {
                for (target, value) in &w.assignments {
                    self.exprs([target, value])?;
                }
                self.stmts(&w.body)
            }
            Stmt::Set(s) => self.exprs([&s.target, &s.expr]),
            Stmt::SetBlock(s) => {
                self.expr(&s.target)?;
                self.exprs(s.filter.iter())?;
                self.stmts(&s.body)
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled)?;
                self.stmts(&a.body)
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter)?;
                self.stmts(&f.body)
            }
            Stmt::Block(b) => self.stmts(&b.body),
            Stmt::Import(i) => self.exprs([&i.expr, &i.name]),
            Stmt::FromImport(i) => {
                self.expr(&i.expr)?;
                for (name, alias) in &i.names {
                    self.expr(name)?;
                    self.exprs(alias.iter())?;
                }
                Ok(())
            }
            Stmt::Extends(e) => self.expr(&e.name).map(drop),
            Stmt::Include(i) => self.expr(&i.name).map(drop),
            Stmt::Macro(m) => {
                self.exprs(m.args.iter().chain(m.defaults.iter()))?;
                self.stmts(&m.body)
            }
            Stmt::CallBlock(c) => {
                self.expr(&c.call.expr)?;
                self.args(&c.call.args)?;
                self.exprs(c.macro_decl.args.iter().chain(c.macro_decl.defaults.iter()))?;
                self.stmts(&c.macro_decl.body)
            }
            Stmt::Do(d) => {
                self.expr(&d.call.expr)?;
                self.args(&d.call.args)
            }
        }
    }

    /// Walks `expr`; `Some` when the code generator would fold it into a constant.
    fn expr(&self, expr: &Expr<'_>) -> Result<Option<Folded>, Error> {
        Ok(match expr {
            Expr::Const(c) => Some(constant(&c.value)),
            Expr::List(l) => {
                let mut all = Some(0usize);
                for item in &l.items {
                    let folded = self.expr(item)?;
                    all = all
                        .zip(folded)
                        .map(|(acc, f)| acc.saturating_add(VALUE_BYTES + f.bytes()));
                }
                all.map(Folded::Sized)
            }
            Expr::Map(m) => {
                let mut all = Some(0usize);
                for item in m.keys.iter().chain(m.values.iter()) {
                    let folded = self.expr(item)?;
                    all = all
                        .zip(folded)
                        .map(|(acc, f)| acc.saturating_add(VALUE_BYTES + f.bytes()));
                }
                all.map(Folded::Sized)
            }
            Expr::UnaryOp(u) => self.expr(&u.expr)?.map(|_| Folded::Number(None)),
            Expr::BinOp(b) => {
                let left = self.expr(&b.left)?;
                let right = self.expr(&b.right)?;
                let (Some(left), Some(right)) = (left, right) else {
                    return Ok(None);
                };
                let folded = fold(b.op, left, right);
                self.limits.check("a constant expression", folded.bytes())?;
                Some(folded)
            }
            Expr::Compare(c) => {
                let mut all = self.expr(&c.expr)?.is_some();
                for op in &c.ops {
                    all &= self.expr(&op.expr)?.is_some();
                }
                all.then_some(Folded::Number(None))
            }
            Expr::Var(_) => None,
            Expr::Slice(s) => {
                self.expr(&s.expr)?;
                self.exprs(s.start.iter().chain(s.stop.iter()).chain(s.step.iter()))?;
                None
            }
            Expr::IfExpr(i) => {
                self.exprs([&i.test_expr, &i.true_expr])?;
                self.exprs(i.false_expr.iter())?;
                None
            }
            Expr::Filter(f) => {
                self.exprs(f.expr.iter())?;
                self.args(&f.args)?;
                None
            }
            Expr::Test(t) => {
                self.expr(&t.expr)?;
                self.args(&t.args)?;
                None
            }
            Expr::GetAttr(g) => self.expr(&g.expr).map(|_| None)?,
            Expr::GetItem(g) => {
                self.exprs([&g.expr, &g.subscript_expr])?;
                None
            }
            Expr::Call(c) => {
                self.expr(&c.expr)?;
                self.args(&c.args)?;
                None
            }
        })
    }
}

fn constant(value: &Value) -> Folded {
    match value.kind() {
        ValueKind::String
        | ValueKind::Bytes
        | ValueKind::Seq
        | ValueKind::Map
        | ValueKind::Iterable => Folded::Sized(size(value, usize::MAX)),
        _ => Folded::Number(value.as_i64()),
    }
}

/// What MiniJinja's `eval_binop` builds from two constants, at most.
fn fold(op: BinOpKind, left: Folded, right: Folded) -> Folded {
    use Folded::{Number, Sized};
    match (op, left, right) {
        (BinOpKind::Mul, Sized(s), Number(n)) | (BinOpKind::Mul, Number(n), Sized(s)) => {
            Sized(s.saturating_mul(n.map_or(0, |n| usize::try_from(n).unwrap_or(0))))
        }
        (BinOpKind::Concat, l, r)
        | (BinOpKind::Add, l @ Sized(_), r)
        | (BinOpKind::Add, l, r @ Sized(_)) => Sized(l.bytes().saturating_add(r.bytes())),
        (BinOpKind::ScAnd | BinOpKind::ScOr, l, r) => Sized(l.bytes().max(r.bytes())),
        _ => Number(None),
    }
}
