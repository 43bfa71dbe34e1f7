//! How the modules stand (README "How it works"): the domain at the bottom, the edges it needs
//! above it, the stores above those, the wire (Kafka, REST, the operators' CLI) above the stores,
//! and start-up on top. A module imports only from its own layer or below, and no two modules
//! import each other, directly or through others. This test reads every `crate::` path in the
//! sources and holds them to it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module's layer: 0 the domain, 1 its plain helpers, 2 the edges and stores,
/// 3 the wire, 4 start-up.
const LAYERS: &[(&str, u8)] = &[
    ("drop", 0),
    ("clock", 1),
    ("shutdown", 1),
    ("telemetry", 1),
    ("trace", 1),
    ("config", 2),
    ("metrics", 2),
    ("equipment", 2),
    ("party", 2),
    ("peer", 2),
    ("configuration", 2),
    ("footholds", 2),
    ("store", 2),
    ("kafka", 3),
    ("rest", 3),
    ("expiry", 3),
    ("cli", 3),
    ("startup", 4),
];

/// The top-level modules each module of `src/` names in a `crate::` path.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).expect("under src");
            let first = relative.components().next().expect("a component");
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if ["lib", "main", "bin", "layers"].contains(&module.as_str()) {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("a source file");
            // Code only: a comment may name any module.
            let text: String = (source.lines())
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let named = found.entry(module.clone()).or_default();
            for (index, _) in text.match_indices("crate::") {
                let rest = &text[index + "crate::".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                if rest[..end] != module {
                    named.insert(rest[..end].to_owned());
                }
            }
        }
    }
    found
}

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .unwrap_or_else(|| panic!("module {module} has no layer in LAYERS"))
        .1
}

#[test]
fn no_module_imports_one_above_its_layer() {
    let upward: Vec<String> = imports()
        .iter()
        .flat_map(|(module, named)| {
            named
                .iter()
                .filter(|target| layer(target) > layer(module))
                .map(move |target| format!("{module} imports {target}"))
        })
        .collect();
    assert!(upward.is_empty(), "imports from a layer above: {upward:?}");
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let imports = imports();
    // A depth-first walk from each module: meeting the module again is a cycle.
    for start in imports.keys() {
        let mut stack: Vec<Vec<&str>> = vec![vec![start.as_str()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = *path.last().expect("a path is never empty");
            for next in imports.get(last).into_iter().flatten() {
                assert_ne!(
                    next,
                    start,
                    "an import cycle: {} -> {next}",
                    path.join(" -> ")
                );
                if seen.insert(next.as_str()) {
                    stack.push([path.clone(), vec![next.as_str()]].concat());
                }
            }
        }
    }
}
