//! The stack `lib.rs` draws, checked: every `crate::…` path in this crate's non-test code may
//! name only a module listed before its own in `ORDER` (or its own), and so may every call of a
//! service accessor (`services.flows()`, defined by an `impl Services` in its module), which no
//! import shows. A new upward reach fails here with the file and the module it reaches; a new
//! top-level module fails until it is given its place.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

/// The top-level modules from the bottom of the stack up (see the layers in `lib.rs`).
const ORDER: &[&str] = &[
    // foundation
    "error",
    "crash_points",
    "poll_timer",
    "db",
    "crypto",
    "pagination",
    "rate_limit",
    "egress",
    "memo",
    "event_routes",
    "sender_directory",
    "validation",
    "sandbox",
    "placeholders",
    "events",
    "queue",
    "queue_stats",
    "context",
    // message content and providers
    "content",
    "providers",
    // domains
    "workspaces",
    "api_keys",
    "assistants",
    "senders",
    "templates",
    "ai",
    "webhooks",
    "messaging",
    "contacts",
    "contact_import",
    // automation
    "flows",
    "campaigns",
    // reactions
    "reactions",
    "assembly",
    // processes
    "health",
    "worker",
];

/// Names `lib.rs` re-exports at the crate root, and the module each comes from.
const ROOT_EXPORTS: &[(&str, &str)] = &[
    ("Services", "context"),
    ("RedisSettings", "context"),
    ("SecretBox", "crypto"),
    ("Error", "error"),
    ("FieldError", "error"),
    ("Result", "error"),
    ("Page", "pagination"),
    ("PageRequest", "pagination"),
];

#[test]
fn every_import_runs_down_the_stack() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: Vec<(String, String, String)> = files
        .iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(&src).unwrap().display().to_string();
            let own = top_module(Path::new(&relative))?;
            let code = without_tests(&code_only(&fs::read_to_string(file).unwrap()));
            Some((relative, own, code))
        })
        .collect();
    let accessors: Vec<(String, &str)> = modules
        .iter()
        .flat_map(|(_, own, code)| accessors(code).into_iter().map(move |a| (a, own.as_str())))
        .collect();
    let mut upward = Vec::new();
    for (relative, own, code) in &modules {
        let own_rank =
            rank(own).unwrap_or_else(|| panic!("{relative}: module `{own}` has no place in ORDER"));
        for name in crate_paths(code) {
            let module = ROOT_EXPORTS
                .iter()
                .find(|(export, _)| *export == name)
                .map_or(name.as_str(), |(_, module)| *module);
            let reached = rank(module).unwrap_or_else(|| {
                panic!("{relative}: `crate::{name}` is neither a module in ORDER nor a root export")
            });
            if reached > own_rank {
                upward.push(format!(
                    "{relative}: `{own}` imports `crate::{name}`, above it"
                ));
            }
        }
        for (accessor, module) in &accessors {
            if rank(module).unwrap() > own_rank && calls(code, accessor) {
                upward.push(format!(
                    "{relative}: `{own}` calls `.{accessor}()` of `{module}`, above it"
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "reaches up the stack:\n{}",
        upward.join("\n")
    );
}

/// The service accessors an `impl Services` block of `code` defines (`pub fn flows(&self)`).
fn accessors(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("impl Services {") {
        let body = &rest[at + "impl Services {".len()..];
        let block = &body[..closing_brace(body)];
        for piece in block.split("pub fn ").skip(1) {
            if let Some(name) = leading_ident(piece)
                && piece[name.len()..].starts_with("(&self)")
            {
                names.push(name);
            }
        }
        rest = body;
    }
    names
}

/// Whether `code` calls `.accessor()`, possibly across lines.
fn calls(code: &str, accessor: &str) -> bool {
    let call = format!("{accessor}()");
    code.match_indices(&call)
        .any(|(at, _)| code[..at].trim_end().ends_with('.'))
}

#[test]
fn the_checker_sees_groups_inline_paths_and_skips_tests_and_comments() {
    let code = without_tests(&code_only(
        "use crate::{a::{b, c}, d, e::f as g};\n\
         fn x() { crate::h::i(); let s = \"crate::nope\"; } // crate::nope\n\
         macro_rules! m { () => { $crate::nope } }\n\
         #[cfg(test)]\nmod tests { use crate::nope; }\n",
    ));
    let names: Vec<String> = crate_paths(&code).into_iter().collect();
    assert_eq!(names, ["a", "d", "e", "h"]);
    assert_eq!(
        accessors(
            "impl Services {\n    pub fn flows(&self) -> F<'_> { F { s: self } }\n    pub async fn emit(&self, e: E) {}\n}"
        ),
        ["flows"]
    );
    assert!(calls("self.services\n    .flows()\n    .start()", "flows"));
    assert!(!calls("fn flows() {}", "flows"));
}

fn rank(module: &str) -> Option<usize> {
    ORDER.iter().position(|m| *m == module)
}

/// The top-level module a file belongs to; `None` for the crate root and for test-only files.
fn top_module(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    let test_only = ["lib", "layers", "test_support"].contains(&name)
        || relative.file_name().is_some_and(|f| f == "tests.rs");
    (!test_only).then(|| name.to_string())
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The first segment of every `crate::` path: `crate::a::b` gives `a`; a group
/// `crate::{a::b, c}` gives `a` and `c`. `$crate` (inside macros) is not this file's import.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(found) = code[from..].find("crate::") {
        let at = from + found;
        from = at + "crate::".len();
        if at > 0 && (bytes[at - 1] == b'$' || is_ident(bytes[at - 1])) {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            for item in top_level_items(group) {
                if let Some(name) = leading_ident(item) {
                    names.insert(name);
                }
            }
        } else if let Some(name) = leading_ident(rest) {
            names.insert(name);
        }
    }
    names
}

/// The comma-separated items of a `{…}` group (its text starting after `{`), up to its `}`.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

fn leading_ident(text: &str) -> Option<String> {
    let text = text.trim_start();
    let end = text
        .bytes()
        .position(|b| !is_ident(b))
        .unwrap_or(text.len());
    (end > 0 && !text.as_bytes()[0].is_ascii_digit()).then(|| text[..end].to_string())
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The code with comments and the contents of string and char literals blanked out.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && matches!(next, Some('#') | Some('"')) && !prev_is_ident(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            i += 2 + hashes;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while i < chars.len() && !chars[i..].starts_with(&closing) {
                i += 1;
            }
            i += closing.len();
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && is_char_literal(&chars, i) {
            i += 1;
            while chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// `'x'`, `'\n'`, `'\u{1F600}'` rather than a lifetime `'a`.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    match chars.get(i + 1) {
        Some('\\') => true,
        Some(_) => chars.get(i + 2) == Some(&'\''),
        None => false,
    }
}

/// The code without its `#[cfg(test)]` items (test modules import test helpers freely).
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let end = match (item.find(';'), item.find('{')) {
            (Some(semi), Some(brace)) if semi < brace => semi + 1,
            (_, Some(brace)) => brace + 1 + closing_brace(&item[brace + 1..]),
            (Some(semi), None) => semi + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The length up to and including the `}` that closes a block whose `{` came just before `text`.
fn closing_brace(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i + 1,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}
