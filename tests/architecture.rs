//! The structure docs/architecture.md promises, checked on the sources: no import
//! cycle between the modules of the probe's library nor of the diagnosis crate's, and no edge
//! against the flow (configuration → checks → results → diagnosis → report → renderers and
//! sinks). The report contract is its own crate whose only dependencies are serde, serde_json,
//! schemars and tempfile; the diagnosis crate (results, rules, diagnosis) depends on the report
//! crate and light crates only, and never on the probe. No production file of the workspace is
//! over 800 lines, and no function over 120.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The diagnosis crate's modules, which the probe re-exports under its own paths
/// (`pub use vpce_probe_diagnosis::{...}` in src/lib.rs): a probe module naming one of them
/// through `crate::` is an edge to it, held to the same flow.
const REEXPORTED_FROM_DIAGNOSIS: &[&str] = &[
    "classify",
    "diagnose",
    "findings",
    "proxy_rules",
    "results",
    "vpc_rules",
];

/// Every module of the probe library as `a::b` with its source, tests stripped, and the
/// modules it re-exports from the diagnosis crate (no source here: they reach nothing of it).
fn modules() -> BTreeMap<String, String> {
    let mut out = modules_of(&Path::new(ROOT).join("src"));
    for module in REEXPORTED_FROM_DIAGNOSIS {
        out.insert(module.to_string(), String::new());
    }
    out
}

/// Every module of the diagnosis crate as `a::b` with its source, tests stripped.
fn diagnosis_modules() -> BTreeMap<String, String> {
    modules_of(&Path::new(ROOT).join("crates/diagnosis/src"))
}

/// Every module of the library under `src` as `a::b` with its source, tests stripped.
fn modules_of(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut out = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        // lib.rs and main.rs wire everything; a module's `tests.rs` is test code.
        if parts == ["lib"] || parts == ["main"] || parts.last().is_some_and(|p| p == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // A module's unit tests may reach anywhere; only production code is held to the flow.
        let production = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        out.insert(parts.join("::"), production);
    }
    out
}

/// The unit a module belongs to: `checks::dns`, `net::aws`, `agent::spool` and the diagnosis
/// crate's `reading::dns` stay two-level, everything else is its top-level module.
fn unit(module: &str) -> String {
    let parts: Vec<&str> = module.split("::").collect();
    match parts.as_slice() {
        [first, second, ..] if ["checks", "net", "agent", "reading"].contains(first) => {
            format!("{first}::{second}")
        }
        [first, ..] => first.to_string(),
        [] => String::new(),
    }
}

/// `crate::x::y` references of one source, resolved to known modules.
fn references(text: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        // The longest prefix that names a module.
        for n in (1..=segments.len().min(2)).rev() {
            let candidate = segments[..n].join("::");
            if known.contains_key(&candidate) {
                out.insert(candidate);
                break;
            }
        }
    }
    out
}

fn edges() -> BTreeSet<(String, String)> {
    edges_of(&modules())
}

fn edges_of(mods: &BTreeMap<String, String>) -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    for (module, text) in mods {
        for target in references(text, mods) {
            let (from, to) = (unit(module), unit(&target));
            if from != to {
                edges.insert((from, to));
            }
        }
    }
    edges
}

/// Strongly connected components with more than one unit (Tarjan).
fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        graph.entry(a).or_default().push(b);
        graph.entry(b).or_default();
    }
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, graph: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &graph[v] {
            if !s.index.contains_key(w) {
                visit(w, graph, s);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for &v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(v, &graph, &mut state);
        }
    }
    state.found
}

#[test]
fn the_cycle_finder_finds_cycles() {
    // The check itself must be able to fail.
    let e: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(cycles(&e), vec![vec!["a", "b", "c"]]);
    let known: BTreeMap<String, String> = [("run", ""), ("checks::dns", ""), ("checks", "")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let refs = references(
        "use crate::run::ProbeResults; crate::checks::dns::lookup()",
        &known,
    );
    assert_eq!(
        refs,
        ["checks::dns", "run"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[test]
fn no_import_cycles_between_modules() {
    let found = cycles(&edges());
    assert!(found.is_empty(), "import cycles: {found:?}");
    let found = cycles(&edges_of(&diagnosis_modules()));
    assert!(
        found.is_empty(),
        "import cycles in the diagnosis crate: {found:?}"
    );
}

#[test]
fn the_diagnosis_crate_has_its_modules_and_their_edges() {
    // The measures below must see the crate's sources, or they pass on nothing.
    let mods = diagnosis_modules();
    for module in [
        "diagnose",
        "findings",
        "results",
        "reading",
        "reading::nacl",
        "reading::dns",
        "reading::reachability",
        "classify",
    ] {
        assert!(
            mods.contains_key(module),
            "{module} missing from {:?}",
            mods.keys()
        );
    }
    let edges = edges_of(&mods);
    for edge in [
        ("diagnose", "reading::region"),
        ("diagnose", "reading::tcp"),
        ("reading::nacl", "findings"),
        ("reading::dns", "findings"),
    ] {
        let edge = (edge.0.to_string(), edge.1.to_string());
        assert!(edges.contains(&edge), "{edge:?} not among {edges:?}");
    }
}

#[test]
fn no_edge_against_the_flow_in_the_diagnosis_crate() {
    let edges = edges_of(&diagnosis_modules());
    // Diagnosis spans the checks' results: nothing below it reaches it. A check's pure half
    // (reading/, with a slice's rules) is written in the rules' vocabulary (findings.rs), which
    // sits below both and reaches neither; the results and the plain rules reach no rule set
    // above them.
    let forbidden = |from: &str, to: &str| -> bool {
        (from != "diagnose" && to == "diagnose")
            || (from == "findings" && to.starts_with("reading"))
            || ((from == "classify"
                || from == "vpc_rules"
                || from == "ranges"
                || from == "endpoints")
                && (to.starts_with("reading") || to == "findings" || to == "results"))
    };
    let bad: Vec<&(String, String)> = edges.iter().filter(|(a, b)| forbidden(a, b)).collect();
    assert!(bad.is_empty(), "edges against the flow: {bad:?}");
}

#[test]
fn the_diagnosis_crate_needs_neither_the_probe_nor_its_heavy_crates() {
    let manifest =
        std::fs::read_to_string(Path::new(ROOT).join("crates/diagnosis/Cargo.toml")).unwrap();
    // Every dependency section, dev-dependencies too: `cargo test -p vpce-probe-diagnosis`
    // builds them all, and it must stay a build of seconds.
    let names: BTreeSet<&str> = manifest
        .split("\n[")
        .filter(|section| section.contains("dependencies]"))
        .flat_map(|section| section.lines().skip(1))
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    let allowed: BTreeSet<&str> = [
        "vpce-probe-report",
        "httpdate",
        "ipnet",
        "schemars",
        "serde",
        "serde_json",
        "url",
    ]
    .into();
    assert!(
        names.contains("vpce-probe-report") && names.is_subset(&allowed),
        "the diagnosis crate depends on {names:?}; only {allowed:?} are allowed"
    );
    // Its sources never name the probe (it could not build on its own).
    for (module, text) in diagnosis_modules() {
        assert!(
            !text.contains("vpce_probe::"),
            "diagnosis module {module} names the probe"
        );
    }
}

#[test]
fn no_edge_against_the_flow() {
    let edges = edges();
    // (from, to): the lower layer must never reach up.
    let forbidden = |from: &str, to: &str| -> bool {
        let lower_than_scheduler = from.starts_with("checks")
            || from.starts_with("net")
            || from == "diagnose"
            || from == "findings"
            || from == "results"
            || from == "classify"
            || from == "vpc_rules"
            || from == "proxy_rules"
            || from == "proxy_env"
            || from == "ranges"
            || from == "endpoints";
        (lower_than_scheduler && (to == "run" || to.starts_with("agent")))
            // Checks never reach diagnosis nor schedule. A slice's finding rules are its pure
            // half (the diagnosis crate's reading/, `SliceRules`), written in the rules'
            // vocabulary (findings), which sits below both and reaches neither.
            || (from.starts_with("checks") && to == "diagnose")
            || (from == "findings" && (to.starts_with("checks") || to == "diagnose"))
            || (from.starts_with("net") && (to.starts_with("checks") || to == "diagnose"))
            // Settings are below everything that uses them.
            || (from == "config" && (to.starts_with("agent") || to == "run"))
    };
    let bad: Vec<&(String, String)> = edges.iter().filter(|(a, b)| forbidden(a, b)).collect();
    assert!(bad.is_empty(), "edges against the flow: {bad:?}");
}

#[test]
fn the_report_crate_needs_neither_tokio_nor_the_aws_sdk() {
    let manifest =
        std::fs::read_to_string(Path::new(ROOT).join("crates/report/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] section")
        .split("\n[")
        .next()
        .unwrap_or("");
    let names: BTreeSet<&str> = deps
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    let allowed: BTreeSet<&str> = ["schemars", "serde", "serde_json", "tempfile"].into();
    assert!(
        names.is_subset(&allowed),
        "the report crate depends on {names:?}; only {allowed:?} are allowed"
    );
}

#[test]
fn the_collector_reads_reports_through_the_report_crate_only() {
    let manifest =
        std::fs::read_to_string(Path::new(ROOT).join("crates/collector/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("vpce-probe-report"),
        "the collector depends on the report crate"
    );
    assert!(
        !manifest
            .lines()
            .any(|l| l.trim_start().starts_with("vpce-probe =")),
        "the collector must not depend on the probe (tokio + the AWS SDK come with it)"
    );
}

/// Longest production file, in lines (tests excluded).
const MAX_FILE_LINES: usize = 800;
/// Longest function, from its `fn` line to its closing brace.
const MAX_FUNCTION_LINES: usize = 120;
/// Functions over the limit that are being split elsewhere: (file, function). Remove an entry
/// when its function is split; an entry that no longer applies fails the test.
const LONG_FUNCTIONS_BEING_SPLIT: &[(&str, &str)] = &[];

/// Every production Rust file of the workspace: src/ and crates/*/src/, without the files that
/// are test modules (`tests.rs`, `tests/`).
fn production_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "tests") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_stem().is_some_and(|s| s != "tests")
            {
                out.push(path);
            }
        }
    }
    let root = Path::new(ROOT);
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            walk(&src, &mut files);
        }
    }
    files.sort();
    files
}

/// `#[cfg(test)]` or `#[test]`: code that is not production.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("test")
            || (a.path().is_ident("cfg")
                && a.parse_args::<syn::Meta>()
                    .is_ok_and(|m| m.path().is_ident("test")))
    })
}

/// Lines of one source: its production lines, and each production function's length.
#[derive(Default)]
struct Lengths {
    test_lines: usize,
    /// (name, first line, lines)
    functions: Vec<(String, usize, usize)>,
}

impl<'ast> syn::visit::Visit<'ast> for Lengths {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if is_test_only(&m.attrs) {
            self.test_lines += lines_of(m);
        } else {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if is_test_only(&f.attrs) {
            self.test_lines += lines_of(f);
            return;
        }
        self.function(&f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if is_test_only(&f.attrs) {
            return;
        }
        self.function(&f.sig, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.function(&f.sig, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

impl Lengths {
    fn function(&mut self, sig: &syn::Signature, block: &syn::Block) {
        let first = sig.fn_token.span.start().line;
        let last = block.brace_token.span.close().end().line;
        self.functions
            .push((sig.ident.to_string(), first, last + 1 - first));
    }

    fn of(source: &str) -> Lengths {
        let file = syn::parse_file(source).unwrap();
        let mut lengths = Lengths::default();
        syn::visit::Visit::visit_file(&mut lengths, &file);
        lengths
    }
}

fn lines_of(item: &impl syn::spanned::Spanned) -> usize {
    let span = item.span();
    span.end().line + 1 - span.start().line
}

#[test]
fn the_length_measure_counts_functions_and_leaves_tests_out() {
    let body = "    let x = 1;\n".repeat(5);
    let source = format!(
        "/// Doc.\nfn five() {{\n{body}}}\n\nimpl S {{\n    fn method(&self) {{ }}\n}}\n\n\
         #[cfg(test)]\nmod tests {{\n    #[test]\n    fn t() {{\n{body}    }}\n}}\n"
    );
    let lengths = Lengths::of(&source);
    let names: Vec<(&str, usize, usize)> = lengths
        .functions
        .iter()
        .map(|(n, first, len)| (n.as_str(), *first, *len))
        .collect();
    assert_eq!(names, vec![("five", 2, 7), ("method", 11, 1)]);
    assert_eq!(lengths.test_lines, 11);
}

#[test]
fn no_production_file_over_800_lines_and_no_function_over_120() {
    let root = Path::new(ROOT);
    let mut long_files = Vec::new();
    let mut long_functions = Vec::new();
    let mut allowed_seen = BTreeSet::new();
    let files = production_files();
    assert!(files.len() > 50, "found only {} files", files.len());
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        let lengths = Lengths::of(&source);
        let production_lines = source.lines().count() - lengths.test_lines;
        if production_lines > MAX_FILE_LINES {
            long_files.push(format!("{rel}: {production_lines} lines"));
        }
        for (name, first, len) in &lengths.functions {
            if *len <= MAX_FUNCTION_LINES {
                continue;
            }
            if LONG_FUNCTIONS_BEING_SPLIT.contains(&(rel.as_str(), name.as_str())) {
                allowed_seen.insert((rel.clone(), name.clone()));
            } else {
                long_functions.push(format!("{rel}:{first} {name}: {len} lines"));
            }
        }
    }
    assert!(
        long_files.is_empty(),
        "production files over {MAX_FILE_LINES} lines (split them by concern): {long_files:?}"
    );
    assert!(
        long_functions.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them into steps that say what they do): {long_functions:?}"
    );
    let stale: Vec<&(&str, &str)> = LONG_FUNCTIONS_BEING_SPLIT
        .iter()
        .filter(|(f, n)| !allowed_seen.contains(&(f.to_string(), n.to_string())))
        .collect();
    assert!(
        stale.is_empty(),
        "no longer over {MAX_FUNCTION_LINES} lines, remove from the allow-list: {stale:?}"
    );
}
