//! The engine names no concrete action type (ARCHITECTURE.md, "Invariants"), checked on the
//! sources: no string literal in `engine/src` is the `type` of a built-in action. What an action
//! needs and changes reaches the engine through `Action::needs` and `Effect`s, so a comparison
//! with a kind (`a.kind() == "send_push"`) is never the way. Workflow documents the engine carries
//! as data (OpenAPI examples, test fixtures: `{"type": "webhook", …}`) are not code and are let
//! through.

use std::path::{Path, PathBuf};

use switchyard_actions::builtin::{BuiltinSettings, registry};

/// Where `text` names `kind` as a string literal, other than as the `type` of a workflow
/// document: the byte offsets.
fn named_at(text: &str, kind: &str) -> Vec<usize> {
    let literal = format!("\"{kind}\"");
    text.match_indices(&literal)
        .map(|(i, _)| i)
        .filter(|&i| !text[..i].trim_end().ends_with("\"type\":"))
        .collect()
}

fn sources(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn the_engine_names_no_builtin_action_type() {
    let builtins = registry(&BuiltinSettings::default()).expect("the built-ins with defaults");
    let kinds: Vec<&str> = builtins.kinds().collect();
    assert!(kinds.contains(&"send_push"), "{kinds:?}");
    let mut files = Vec::new();
    sources(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 20, "engine/src not found: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source");
        for kind in &kinds {
            for at in named_at(&text, kind) {
                let line = text[..at].lines().count().max(1);
                found.push(format!("{}:{line}: \"{kind}\"", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the engine names built-in action types; declare what the action needs with \
         `Action::needs` and return `Effect`s instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_a_kind_compared_in_code_and_lets_workflow_documents_through() {
    let code = r#"if a.kind() == "send_push" { load() }"#;
    assert_eq!(named_at(code, "send_push"), vec![15]);
    let document = r#"json!({"type": "send_push", "title": "t"})"#;
    assert!(named_at(document, "send_push").is_empty());
    assert!(named_at(r#"let x = "send_push_later";"#, "send_push").is_empty());
}
