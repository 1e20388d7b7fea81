//! The engine's module dependency rule (ARCHITECTURE.md, "Dependency rule"), checked on the
//! sources: `domain` imports no other engine module, every module imports only the modules the
//! rule's table lists for it, and no two engine modules import each other, directly or through
//! others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules of the engine and the engine modules each one names (`crate::x`).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("engine/src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_owned();
        if ["lib", "main"].contains(&name.as_str()) {
            continue;
        }
        let mut text = String::new();
        read_all(&path, &mut text);
        assert!(
            !text.contains("crate::{"),
            "{name}: grouped `crate::{{…}}` imports hide dependencies from this check"
        );
        let deps: BTreeSet<String> = text
            .match_indices("crate::")
            .map(|(i, m)| {
                text[i + m.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .filter(|d| !d.is_empty() && *d != name)
            .collect();
        graph.insert(name, deps);
    }
    graph
}

fn read_all(path: &Path, into: &mut String) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("dir") {
            read_all(&entry.expect("entry").path(), into);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        into.push_str(&std::fs::read_to_string(path).expect("source"));
    }
}

/// The table of ARCHITECTURE.md's "Dependency rule": each module with the modules it may import,
/// `None` for the assembling modules (`everything above`).
fn documented_rule() -> BTreeMap<String, Option<BTreeSet<String>>> {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"),
    )
    .expect("ARCHITECTURE.md");
    let section = doc
        .split_once("## Dependency rule")
        .expect("a Dependency rule section")
        .1;
    let block = section
        .split("```")
        .nth(1)
        .expect("the rule as a code block");
    let mut rule = BTreeMap::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (modules, allowed) = match line.split_once("->") {
            Some((modules, allowed)) if allowed.contains("everything above") => (modules, None),
            Some((modules, allowed)) => (
                modules,
                Some(
                    allowed
                        .split(',')
                        .map(|m| m.trim().to_owned())
                        .collect::<BTreeSet<_>>(),
                ),
            ),
            // `domain   (pure: …)`: no engine module.
            None => (
                line.split('(').next().unwrap_or(line),
                Some(BTreeSet::new()),
            ),
        };
        for module in modules.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            rule.insert(module.to_owned(), allowed.clone());
        }
    }
    rule
}

#[test]
fn modules_import_only_what_the_documented_rule_allows() {
    let rule = documented_rule();
    for (module, deps) in imports() {
        let Some(allowed) = rule.get(&module) else {
            panic!("`{module}` is not in ARCHITECTURE.md's dependency rule: {rule:?}");
        };
        let Some(allowed) = allowed else { continue };
        let extra: Vec<&String> = deps
            .iter()
            .filter(|d| rule.contains_key(*d) && !allowed.contains(*d))
            .collect();
        assert!(
            extra.is_empty(),
            "`{module}` imports {extra:?}, which ARCHITECTURE.md's dependency rule does not allow \
             (allowed: {allowed:?})"
        );
    }
}

#[test]
fn domain_imports_no_engine_module() {
    let graph = imports();
    assert_eq!(graph.get("domain"), Some(&BTreeSet::new()), "{graph:?}");
}

#[test]
fn engine_modules_have_no_import_cycles() {
    let graph = imports();
    // Depth-first search for a back edge.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| *n == node) {
            panic!("import cycle: {} -> {node}", path[at..].join(" -> "));
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next) {
                visit(next, graph, path, done);
            }
        }
        path.pop();
        done.insert(node);
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}
