//! Bounds MiniJinja's operators by rewriting compiled templates: every operator that can allocate
//! or scan by its operands is preceded by a call to a guard function that measures the operands
//! (and fails past the limits) before the operator runs.
//!
//! Why the bytecode and not the AST or a fork: MiniJinja's operators (`~`, `+`, `*`, slicing,
//! comparisons) are VM instructions that no `Environment` hook reaches, and its only size check
//! (`str * n` up to 100 MB) is far above our cap. The `unstable_machinery` feature exposes the
//! compiled `Instructions` and the `Vm`; rewriting instructions keeps MiniJinja's own parser,
//! code generator and operator semantics (the guard hands its operands back unchanged, through
//! `UnpackList`, and the original instruction then runs), so the only code of ours on the path is
//! the measuring. An AST rewrite would need a full walk of every statement and expression kind,
//! and a fork would have to be kept in step with upstream by hand. The machinery has no semver
//! guarantee: `Cargo.lock` pins 2.24, and the unit tests of `template/` fail if an upgrade
//! changes what this relies on.
//!
//! `EmitRaw` (template text between tags) becomes `LoadConst` + `Emit`, so that all text goes
//! through the environment's formatter, which counts it (see `mod.rs`).

use std::collections::BTreeMap;

use minijinja::machinery::{Instruction, Instructions};
use minijinja::value::Value;
use minijinja::{Error, ErrorKind};

/// Names of the guard functions; templates may not use names with this prefix.
pub(super) const RESERVED_PREFIX: &str = "__switchyard";
pub(super) const GUARD_CONCAT: &str = "__switchyard_concat";
pub(super) const GUARD_ADD: &str = "__switchyard_add";
pub(super) const GUARD_MUL: &str = "__switchyard_mul";
pub(super) const GUARD_SLICE: &str = "__switchyard_slice";
pub(super) const GUARD_COMPARE: &str = "__switchyard_compare";
pub(super) const GUARD_CONTAINS: &str = "__switchyard_contains";
pub(super) const GUARD_ITEM: &str = "__switchyard_item";

/// The guard before `instr`, with how many operands it takes from the stack, if `instr` needs one.
fn guard_for(instr: &Instruction<'_>) -> Option<(&'static str, usize)> {
    Some(match instr {
        Instruction::StringConcat => (GUARD_CONCAT, 2),
        Instruction::Add => (GUARD_ADD, 2),
        Instruction::Mul => (GUARD_MUL, 2),
        Instruction::Slice => (GUARD_SLICE, 4),
        Instruction::Eq
        | Instruction::Ne
        | Instruction::Lt
        | Instruction::Lte
        | Instruction::Gt
        | Instruction::Gte
        | Instruction::CompareAndPreserve(_) => (GUARD_COMPARE, 2),
        Instruction::In => (GUARD_CONTAINS, 2),
        Instruction::GetItem => (GUARD_ITEM, 2),
        _ => return None,
    })
}

/// Rejects a template that names a guard (it could otherwise shadow or call one).
pub(super) fn check_names(instructions: &Instructions<'_>) -> Result<(), Error> {
    for idx in 0..instructions.len() {
        let name = match instructions.get(idx as u32) {
            Some(
                Instruction::Lookup(name)
                | Instruction::StoreLocal(name)
                | Instruction::CallFunction(name, _)
                | Instruction::Enclose(name)
                | Instruction::BuildMacro(name, _, _),
            ) => *name,
            _ => continue,
        };
        if name.starts_with(RESERVED_PREFIX) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("names starting with `{RESERVED_PREFIX}` are reserved"),
            ));
        }
    }
    Ok(())
}

/// The bounded copy of `old`: guards inserted, jump targets moved with the code.
pub(super) fn bound<'s>(old: &Instructions<'s>) -> Result<Instructions<'s>, Error> {
    check_names(old)?;
    let mut new = Instructions::new(old.name(), old.source());
    // `moved[i]` is where old instruction `i` starts in `new` (its guard, if it has one), so a
    // jump back to a guarded instruction runs the guard again. One extra slot: the end.
    let mut moved = Vec::with_capacity(old.len() + 1);
    for idx in 0..old.len() {
        let pc = idx as u32;
        let Some(instr) = old.get(pc) else { break };
        moved.push(new.len() as u32);
        let mut add = |instr: Instruction<'s>| match (old.get_span(pc), old.get_line(pc)) {
            (Some(span), _) => new.add_with_span(instr, span),
            (None, Some(line)) => new.add_with_line(instr, u16::try_from(line).unwrap_or(u16::MAX)),
            (None, None) => new.add(instr),
        };
        if let Some((guard, operands)) = guard_for(instr) {
            let count = u16::try_from(operands).unwrap_or(u16::MAX);
            add(Instruction::CallFunction(guard, Some(count)));
            add(Instruction::UnpackList(operands));
            add(instr.clone());
        } else if let Instruction::EmitRaw(text) = instr {
            add(Instruction::LoadConst(Value::from_safe_string(
                (*text).to_owned(),
            )));
            add(Instruction::Emit);
        } else {
            add(instr.clone());
        }
    }
    moved.push(new.len() as u32);
    let target = |t: &mut u32| -> Result<(), Error> {
        *t = *moved
            .get(*t as usize)
            .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "jump outside the template"))?;
        Ok(())
    };
    for idx in 0..new.len() {
        if let Some(
            Instruction::Jump(t)
            | Instruction::JumpIfFalse(t)
            | Instruction::JumpIfFalseOrPop(t)
            | Instruction::JumpIfTrueOrPop(t)
            | Instruction::Iterate(t)
            | Instruction::BuildMacro(_, t, _),
        ) = new.get_mut(idx as u32)
        {
            target(t)?;
        }
    }
    Ok(new)
}

/// [`bound`] for a template's blocks.
pub(super) fn bound_blocks<'s>(
    blocks: &BTreeMap<&'s str, Instructions<'s>>,
) -> Result<BTreeMap<&'s str, Instructions<'s>>, Error> {
    blocks
        .iter()
        .map(|(name, instructions)| Ok((*name, bound(instructions)?)))
        .collect()
}

/// Hands a guard's operands back in the order `UnpackList` pushes them (first item on top).
pub(super) fn hand_back(args: &[Value]) -> Value {
    Value::from(args.iter().rev().cloned().collect::<Vec<_>>())
}
