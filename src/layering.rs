//! The crate's layers, checked: a test reads every file under `src/` and fails when a
//! module imports one from its own layer or a higher one (ARCHITECTURE.md, "Layers").
//!
//! Import circles crept in twice (`daemon::beat` ⇄ `daemon::messaging` through the
//! heartbeat, `config` ⇄ `schedule` through the schedule's input) and nothing noticed;
//! the compiler accepts any circle inside one crate. Reading the text is enough: every
//! path into another module starts with `crate::`, so the test needs no parser, only the
//! table below. Test-only: nothing here is compiled into the binary.

/// The layers, lowest first. A module may use only modules of lower layers; modules of
/// one layer know nothing of each other. `lib.rs` and `main.rs` stand above them all.
const LAYERS: &[&[&str]] = &[
    // Facts every module shares; they depend on nothing else in the crate.
    &["words", "error", "files", "health"],
    // Pure window arithmetic; the operating system around us.
    &["schedule", "system"],
    // Capture and WAV files (asks the schedule's `Planner`).
    &["audio"],
    // The only SQL (reads audio files for the audit).
    &["store"],
    // Detection models over finished recordings (their rows go through the store).
    &["detection"],
    // Delivery from the outbox; the management task.
    &["messaging", "tasks"],
    // The program configuration, made of sections the lower modules own.
    &["config"],
    // The two daemons.
    &["daemon"],
    // The commands, the only place that prints.
    &["cli"],
];

/// The layer of top-level module `module`, if it has one.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level modules `source` reaches through `crate::` paths, comment lines left
/// out (a doc link is not an import). `use crate::{a, b::c}` counts `a` and `b`.
fn crate_uses(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in source.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // Only the first segment of each item names a module.
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    found.push(first_ident(item.trim()));
                }
            } else {
                found.push(first_ident(after));
            }
            rest = after;
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every import in `source` (a file of top-level module `module`) that breaks the
/// layers, as "module -> used".
fn violations(module: &str, source: &str) -> Vec<String> {
    let Some(own) = layer_of(module) else {
        return vec![format!("{module} has no layer in layering::LAYERS")];
    };
    crate_uses(source)
        .into_iter()
        .filter(|used| used != module)
        .filter(|used| layer_of(used).is_none_or(|l| l >= own))
        .map(|used| format!("{module} -> {used}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// Every `.rs` file below `dir`.
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn no_module_imports_its_own_layer_or_a_higher_one() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        let mut broken = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str();
            let module = first.to_str().unwrap().trim_end_matches(".rs");
            if ["lib", "main", "layering"].contains(&module) {
                continue;
            }
            for v in violations(module, &std::fs::read_to_string(file).unwrap()) {
                broken.push(format!("{}: {v}", relative.display()));
            }
        }
        assert!(files.len() > 100, "read only {} files", files.len());
        assert!(
            broken.is_empty(),
            "imports against the layers (ARCHITECTURE.md, \"Layers\"):\n{}",
            broken.join("\n")
        );
    }

    #[test]
    fn the_check_sees_upward_sideways_and_grouped_imports() {
        assert_eq!(
            violations("store", "use crate::cli::run;"),
            ["store -> cli"]
        );
        assert_eq!(
            violations("tasks", "    let x = crate::messaging::thing();"),
            ["tasks -> messaging"],
            "same layer"
        );
        assert_eq!(
            violations("audio", "use crate::{error::chain, store::X};"),
            ["audio -> store"]
        );
        assert_eq!(
            violations("nowhere", ""),
            ["nowhere has no layer in layering::LAYERS"]
        );
        assert!(
            violations("daemon", "use crate::store::{a, b};\nuse crate::daemon::x;").is_empty()
        );
        assert!(
            violations("store", "/// See [`crate::daemon`].").is_empty(),
            "a doc link is not an import"
        );
    }
}
