//! The rule book inside the repository, `docs/rules.md`, kept honest:
//!
//! - its cross-reference (between the GENERATED markers) is what this file generates from the
//!   spec's properties and mutants, the reference core's mutants, the repository's files and
//!   the conformance corpus; `HADR_UPDATE_RULES=1 cargo nextest run -p hadr --test rules`
//!   rewrites it;
//! - every rule has a property of the spec, or a row in the table "Rules without a property of
//!   their own" that says which properties check it or why it is not modelled, never both;
//! - no file names a rule id that `docs/rules.md` does not define (a typo, or a rule that
//!   moved).
//!
//! ```text
//!  docs/rules.md ──parse──▶ RuleBook, exemptions ─┐
//!  all_specs(), mutants ──────────────────────────┼─▶ check_modelled   ─▶ problems
//!  repository files, corpus ──▶ Evidence ─────────┼─▶ check_mentions   ─▶ problems
//!                                                 └─▶ render_cross_reference ─▶ docs/rules.md
//! ```
//!
//! The checks are functions of plain data; the tests at the bottom run them on forged input.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The rule book, relative to the repository root.
const RULES_MD: &str = "docs/rules.md";
/// This file: it forges rule books to test the checks, so it is no evidence for any rule.
const THIS_FILE: &str = "tests/rules.rs";
const BEGIN: &str = "<!-- BEGIN GENERATED CROSS-REFERENCE (tests/rules.rs) -->";
const END: &str = "<!-- END GENERATED CROSS-REFERENCE -->";
const EXEMPTIONS_HEADING: &str = "## Rules without a property of their own";
/// "Checked through no other rule" in the exemptions table.
const NO_RULE: &str = "—";
const UPDATE: &str = "HADR_UPDATE_RULES=1 cargo nextest run -p hadr --test rules";

/// The exhaustive checks of pure functions that `hadr check` runs beside the state search and
/// reports as properties (`function_checks` in `model/src/check.rs`); they are not in
/// `all_specs()`. Each `"<rule> <title>"` must appear in that file, so a change there fails
/// [`the_function_checks_are_those_of_the_model`] instead of going stale here.
const FUNCTION_CHECKS: &[(&str, &str)] = &[
    (
        "R-BACKUP-5",
        "exactly one preferred backup replica, never priority 0 (every combination of up to 5 replicas)",
    ),
    (
        "R-READ-3",
        "the listener routes every connection to a replica that takes it (every view of up to 4 replicas)",
    ),
];

/// Something wrong with the rule book or with what names it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum Problem {
    /// A file names a rule that the rule book does not define.
    #[error("{path}:{line}: `{id}` {why}: fix the id, or define the rule in docs/rules.md")]
    Undefined {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// The id as it is written.
        id: String,
        /// What is wrong with it.
        why: String,
    },
    /// A rule is not numbered next in its section, or a hazard not next.
    #[error(
        "docs/rules.md:{line}: found `{found}` where `{expected}` comes next (rules are numbered 1, 2, … in their section, hazards H1, H2, …)"
    )]
    Numbering {
        /// 1-based line.
        line: usize,
        /// The id found.
        found: String,
        /// The id that should be there.
        expected: String,
    },
    /// A rule section defines no rule.
    #[error("docs/rules.md: the section R-{section} defines no rule")]
    EmptySection {
        /// The section's prefix (`COMMIT`).
        section: String,
    },
    /// A rule section heading appears twice.
    #[error("docs/rules.md:{line}: the section R-{section} is defined twice")]
    DuplicateSection {
        /// 1-based line.
        line: usize,
        /// The section's prefix.
        section: String,
    },
    /// A rule or hazard without a statement.
    #[error("docs/rules.md: {id} has no statement")]
    EmptyStatement {
        /// The rule.
        id: String,
    },
    /// A rule that no property names and no row of the exemptions table explains.
    #[error(
        "{id} has no property of the spec and no row in the table \"Rules without a property of their own\" of docs/rules.md: give it a property, or add a row saying which rules' properties check it (or `—`) and why it has none"
    )]
    Unmodelled {
        /// The rule.
        id: String,
    },
    /// A row of the exemptions table for a rule that has a property.
    #[error(
        "docs/rules.md:{line}: {id} has a row in \"Rules without a property of their own\", but the spec has a property for it ({property}): remove the row"
    )]
    StaleExemption {
        /// 1-based line of the row.
        line: usize,
        /// The rule.
        id: String,
        /// One of its properties.
        property: String,
    },
    /// A row of the exemptions table for a rule the book does not define.
    #[error("docs/rules.md:{line}: the exemption of `{id}`, which is not a rule of docs/rules.md")]
    ExemptionOfUnknownRule {
        /// 1-based line of the row.
        line: usize,
        /// The id of the row.
        id: String,
    },
    /// Two rows of the exemptions table for one rule.
    #[error(
        "docs/rules.md:{line}: a second row for {id} in \"Rules without a property of their own\""
    )]
    DuplicateExemption {
        /// 1-based line of the second row.
        line: usize,
        /// The rule.
        id: String,
    },
    /// An exemption says a rule is checked through a rule that has no property.
    #[error(
        "docs/rules.md:{line}: {id} is said to be checked through {through}, which has no property of the spec: name a rule with one, or write `—`"
    )]
    CheckedThroughUnchecked {
        /// 1-based line of the row.
        line: usize,
        /// The exempted rule.
        id: String,
        /// The rule it names.
        through: String,
    },
    /// A row of the exemptions table that cannot be read.
    #[error(
        "docs/rules.md:{line}: a row of \"Rules without a property of their own\" must be `| rule | rules that check it, or — | why |`, found: {text}"
    )]
    BadExemptionRow {
        /// 1-based line.
        line: usize,
        /// The row.
        text: String,
    },
    /// The exemptions table is missing.
    #[error("docs/rules.md has no heading `{}` with its table", EXEMPTIONS_HEADING)]
    NoExemptionsTable,
    /// A property of the spec names a rule the book does not define.
    #[error("the spec's property `{property}` names {id}, which is not a rule of docs/rules.md")]
    PropertyOfUnknownRule {
        /// The property's name.
        property: String,
        /// Its rule.
        id: String,
    },
    /// The markers around the generated section are missing or out of order.
    #[error(
        "docs/rules.md must contain the line `{}` and, after it, the line `{}`",
        BEGIN,
        END
    )]
    Markers,
}

// ---------------------------------------------------------------------------------------------
// The rule book

/// The rules and hazards `docs/rules.md` defines.
#[derive(Debug, Default)]
struct RuleBook {
    /// Section prefix (`COMMIT`) → how many rules it has.
    sections: BTreeMap<String, u32>,
    /// Every rule, then every hazard, in the document's order: (id, statement).
    entries: Vec<(String, String)>,
}

impl RuleBook {
    /// Why `R-<section>[-<number>]` is not defined, or `None` when it is.
    fn undefined(&self, section: &str, number: Option<u32>) -> Option<String> {
        match (self.sections.get(section), number) {
            (None, _) => Some("names no section of docs/rules.md".to_owned()),
            (Some(&count), Some(n)) if n == 0 || n > count => Some(format!(
                "is not a rule: the section R-{section} has rules 1 to {count}"
            )),
            _ => None,
        }
    }

    /// The rule ids (`R-…`), in order.
    fn rules(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .map(|(id, _)| id.as_str())
            .filter(|id| id.starts_with("R-"))
    }

    fn defines(&self, id: &str) -> bool {
        self.entries.iter().any(|(i, _)| i == id)
    }
}

/// The section prefix of a heading such as `Roles (R-ROLE)`.
fn section_of_heading(heading: &str) -> Option<&str> {
    let inner = heading.strip_suffix(')')?.rsplit_once("(R-")?.1;
    (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_uppercase())).then_some(inner)
}

/// Reads the rules (`- **R-ROLE-1** …` under `## … (R-ROLE)`) and hazards (`- **H1** …` under
/// `## Hazards …`) of the rule book, up to the generated section.
fn parse_rule_book(doc: &str) -> Result<RuleBook, Vec<Problem>> {
    enum Part {
        Other,
        Section(String),
        Hazards,
    }
    let mut book = RuleBook::default();
    let mut problems = Vec::new();
    let mut part = Part::Other;
    let mut hazards = 0u32;
    // Whether continuation lines belong to the last entry.
    let mut in_entry = false;
    for (i, line) in doc.lines().enumerate() {
        if line == BEGIN {
            break;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            in_entry = false;
            part = if let Some(section) = section_of_heading(heading) {
                if book.sections.insert(section.to_owned(), 0).is_some() {
                    problems.push(Problem::DuplicateSection {
                        line: i + 1,
                        section: section.to_owned(),
                    });
                }
                Part::Section(section.to_owned())
            } else if heading.starts_with("Hazards") {
                Part::Hazards
            } else {
                Part::Other
            };
            continue;
        }
        let expected = match &part {
            Part::Other => continue,
            Part::Section(section) => format!("R-{section}-{}", book.sections[section] + 1),
            Part::Hazards => format!("H{}", hazards + 1),
        };
        if let Some(rest) = line.strip_prefix("- **") {
            let (id, statement) = rest.split_once("**").unwrap_or((rest, ""));
            if id != expected {
                problems.push(Problem::Numbering {
                    line: i + 1,
                    found: id.to_owned(),
                    expected,
                });
                in_entry = false;
                continue;
            }
            match &part {
                Part::Section(section) => *book.sections.entry(section.clone()).or_default() += 1,
                _ => hazards += 1,
            }
            book.entries
                .push((id.to_owned(), statement.trim().to_owned()));
            in_entry = true;
        } else if in_entry && line.starts_with("  ") {
            if let Some((_, statement)) = book.entries.last_mut() {
                statement.push(' ');
                statement.push_str(line.trim());
            }
        } else {
            in_entry = false;
        }
    }
    for (section, &count) in &book.sections {
        if count == 0 {
            problems.push(Problem::EmptySection {
                section: section.clone(),
            });
        }
    }
    for (id, statement) in &book.entries {
        if statement.is_empty() {
            problems.push(Problem::EmptyStatement { id: id.clone() });
        }
    }
    if problems.is_empty() {
        Ok(book)
    } else {
        Err(problems)
    }
}

/// A row of the table "Rules without a property of their own".
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exemption {
    /// 1-based line of the row.
    line: usize,
    /// The rule.
    id: String,
    /// The rules whose properties check it (empty: none). The third column, why it has no
    /// property of its own, must not be empty.
    through: Vec<String>,
}

/// Reads the table under [`EXEMPTIONS_HEADING`].
fn parse_exemptions(doc: &str) -> Result<Vec<Exemption>, Vec<Problem>> {
    let lines: Vec<&str> = doc.lines().collect();
    let Some(start) = lines.iter().position(|l| *l == EXEMPTIONS_HEADING) else {
        return Err(vec![Problem::NoExemptionsTable]);
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        if line.starts_with("## ") {
            break;
        }
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells
            .first()
            .is_some_and(|c| *c == "rule" || c.starts_with("---"))
        {
            continue;
        }
        let bad = || Problem::BadExemptionRow {
            line: i + 1,
            text: (*line).to_owned(),
        };
        let [id, through, why] = cells[..] else {
            problems.push(bad());
            continue;
        };
        if !id.starts_with("R-") || why.is_empty() || through.is_empty() {
            problems.push(bad());
            continue;
        }
        let through = if through == NO_RULE {
            Vec::new()
        } else {
            through.split(',').map(|r| r.trim().to_owned()).collect()
        };
        rows.push(Exemption {
            line: i + 1,
            id: id.to_owned(),
            through,
        });
    }
    if rows.is_empty() && problems.is_empty() {
        problems.push(Problem::NoExemptionsTable);
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// `doc` with the text between the generated markers replaced by `generated`.
fn replace_generated(doc: &str, generated: &str) -> Result<String, Problem> {
    let begin = doc.find(BEGIN).ok_or(Problem::Markers)?;
    let end = doc.find(END).ok_or(Problem::Markers)?;
    if end < begin {
        return Err(Problem::Markers);
    }
    let head = &doc[..begin + BEGIN.len()];
    let tail = &doc[end..];
    Ok(format!("{head}\n{generated}{tail}"))
}

// ---------------------------------------------------------------------------------------------
// Rule ids in text

/// A rule named in a text: `R-COMMIT-4` (`number` 4) or the whole section `R-COMMIT` (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mention {
    /// 1-based line.
    line: usize,
    /// The section prefix (`COMMIT`).
    section: String,
    /// The rule's number in its section, or `None` for the section.
    number: Option<u32>,
}

impl Mention {
    fn id(&self) -> String {
        match self.number {
            Some(n) => format!("R-{}-{n}", self.section),
            None => format!("R-{}", self.section),
        }
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether the byte before an `R-` keeps it from starting an id (`xR-ROLE-1`, `HADR-R-X`).
fn joins_previous(b: u8) -> bool {
    is_word(b) || b == b'-'
}

/// A decimal number at `bytes[at..]`, and where it ends.
fn number_at(bytes: &[u8], at: usize) -> Option<(u32, usize)> {
    let at = at.min(bytes.len());
    let end = at
        + bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    let n = std::str::from_utf8(&bytes[at..end]).ok()?.parse().ok()?;
    Some((n, end))
}

/// Every rule id in `text`: `R-COMMIT-6`, the lists `R-BACKUP-4/5` and `R-FAIL-1/7/8`, the
/// range `R-DB-1..3` (one mention per rule), and the section `R-READ`.
fn mentions(text: &str) -> Vec<Mention> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        if !(bytes[i] == b'R'
            && bytes.get(i + 1) == Some(&b'-')
            && (i == 0 || !joins_previous(bytes[i - 1])))
        {
            i += 1;
            continue;
        }
        let start = i + 2;
        let mut j = start;
        while j < bytes.len() && bytes[j].is_ascii_uppercase() {
            j += 1;
        }
        if j == start || bytes.get(j).is_some_and(|&b| is_word(b)) {
            i = j.max(i + 1);
            continue;
        }
        let section = text[start..j].to_owned();
        let mut numbers = Vec::new();
        if bytes.get(j) == Some(&b'-') {
            if let Some((n, end)) = number_at(bytes, j + 1) {
                numbers.push(n);
                j = end;
                loop {
                    if bytes.get(j) == Some(&b'/') {
                        if let Some((m, end)) = number_at(bytes, j + 1) {
                            numbers.push(m);
                            j = end;
                            continue;
                        }
                    }
                    if bytes[j..].starts_with(b"..") {
                        if let Some((m, end)) = number_at(bytes, j + 2) {
                            let from = numbers.last().copied().unwrap_or(m);
                            numbers.extend(from + 1..=m);
                            j = end;
                            continue;
                        }
                    }
                    break;
                }
            }
        }
        if numbers.is_empty() {
            found.push(Mention {
                line,
                section,
                number: None,
            });
        } else {
            found.extend(numbers.into_iter().map(|n| Mention {
                line,
                section: section.clone(),
                number: Some(n),
            }));
        }
        i = j;
    }
    found
}

/// The hazards (`H1`…`H9`) named in `text`.
fn hazard_mentions(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(1))
        .filter(|&i| {
            bytes[i] == b'H'
                && bytes[i + 1].is_ascii_digit()
                && bytes[i + 1] != b'0'
                && (i == 0 || !is_word(bytes[i - 1]))
                && bytes.get(i + 2).is_none_or(|&b| !is_word(b))
        })
        .map(|i| text[i..i + 2].to_owned())
        .collect()
}

/// The rule a test is named after: `r_commit_2_sync_commit_waits…` names R-COMMIT-2.
fn rule_of_test_name(name: &str, line: usize) -> Option<Mention> {
    let rest = name.strip_prefix("r_")?;
    let (section, rest) = rest.split_once('_')?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[digits.len()..];
    if section.is_empty()
        || !section.bytes().all(|b| b.is_ascii_lowercase())
        || digits.is_empty()
        || !(after.is_empty() || after.starts_with('_'))
    {
        return None;
    }
    Some(Mention {
        line,
        section: section.to_ascii_uppercase(),
        number: digits.parse().ok(),
    })
}

/// A test function and the rules it names, in its name, doc comment or body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TestFn {
    /// The file.
    path: String,
    /// The function's name.
    name: String,
    /// The rule named by the function's name, if it has one.
    named_after: Option<Mention>,
    /// Rules (`R-…`) and hazards (`H1`) named anywhere in it.
    ids: BTreeSet<String>,
}

/// The `#[test]` and `#[tokio::test]` functions of a Rust file. A function's body ends at the
/// first line that is a `}` indented as its `fn` line (the code is `cargo fmt`ed).
fn test_functions(path: &str, text: &str) -> Vec<TestFn> {
    let lines: Vec<&str> = text.lines().collect();
    let mut tests = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let attribute = line.trim();
        if attribute != "#[test]" && !attribute.starts_with("#[tokio::test") {
            continue;
        }
        let mut start = i;
        while start > 0 {
            let above = lines[start - 1].trim_start();
            if above.starts_with("///") || above.starts_with("#[") {
                start -= 1;
            } else {
                break;
            }
        }
        let mut f = i + 1;
        while f < lines.len() && lines[f].trim_start().starts_with("#[") {
            f += 1;
        }
        let Some(name) = lines.get(f).and_then(|l| {
            let after = l.split_once("fn ")?.1;
            let name: String = after
                .chars()
                .take_while(|&c| c.is_ascii_alphanumeric() || c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        }) else {
            continue;
        };
        let indent = &lines[f][..lines[f].len() - lines[f].trim_start().len()];
        let closing = format!("{indent}}}");
        let end = if lines[f].trim_end().ends_with('}') {
            f
        } else {
            (f + 1..lines.len())
                .find(|&k| lines[k].trim_end() == closing)
                .unwrap_or(lines.len() - 1)
        };
        let body = lines[start..=end].join("\n");
        let named_after = rule_of_test_name(&name, f + 1);
        let mut ids: BTreeSet<String> = mentions(&body)
            .iter()
            .filter(|m| m.number.is_some())
            .map(Mention::id)
            .collect();
        ids.extend(named_after.iter().map(Mention::id));
        ids.extend(hazard_mentions(&body));
        tests.push(TestFn {
            path: path.to_owned(),
            name,
            named_after,
            ids,
        });
    }
    tests
}

// ---------------------------------------------------------------------------------------------
// The evidence: what names each rule

/// The part of the repository a file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// `model/`.
    Spec,
    /// `types/`.
    Vocabulary,
    /// `impl/`.
    Implementation,
    /// The `hadr` command, the conformance harness, fuzz targets, scripts, examples.
    Tool,
    /// `tests/` and `*/tests/` (but not their snapshots).
    Test,
    /// Markdown documents other than the rule book.
    Doc,
    /// Named only for the check of ids: the rule book itself, test snapshots, the corpus
    /// (whose scenarios are evidence through their metadata, not their text).
    Unlisted,
}

impl Part {
    fn of(path: &str) -> Part {
        let under = |dir: &str| path.starts_with(dir);
        if path == RULES_MD
            || path == THIS_FILE
            || path.ends_with(".snap")
            || under("conformance/corpus/")
        {
            Part::Unlisted
        } else if path.ends_with(".md") {
            Part::Doc
        } else if under("tests/") || path.contains("/tests/") {
            Part::Test
        } else if under("model/") {
            Part::Spec
        } else if under("types/") {
            Part::Vocabulary
        } else if under("impl/") {
            Part::Implementation
        } else {
            Part::Tool
        }
    }

    fn title(self) -> &'static str {
        match self {
            Part::Spec => "spec",
            Part::Vocabulary => "vocabulary",
            Part::Implementation => "implementation",
            Part::Tool => "tool and harness",
            Part::Test => "tests",
            Part::Doc => "documents",
            Part::Unlisted => "unlisted",
        }
    }
}

/// A text file of the repository.
#[derive(Debug, Clone)]
struct RepoFile {
    /// Relative to the root, with `/`.
    path: String,
    text: String,
}

/// The repository's text files that can name a rule, sorted by path: sources, documents,
/// configurations, scripts, snapshots and the corpus; not `target/`, hidden directories or
/// the fuzzers' generated inputs.
fn repository_files(root: &Path) -> Vec<RepoFile> {
    const EXTENSIONS: &[&str] = &["rs", "md", "toml", "py", "sql", "snap", "json", "sh"];
    const SKIPPED: &[&str] = &["fuzz/corpus", "fuzz/artifacts", "fuzz/coverage"];
    fn walk(root: &Path, dir: &Path, out: &mut Vec<RepoFile>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && !SKIPPED.contains(&&*relative) {
                    walk(root, &path, out);
                }
                continue;
            }
            let listed = path
                .extension()
                .is_some_and(|e| EXTENSIONS.contains(&&*e.to_string_lossy()))
                || relative.starts_with("scripts/");
            if let (true, Ok(text)) = (listed, std::fs::read_to_string(&path)) {
                out.push(RepoFile {
                    path: relative,
                    text,
                });
            }
        }
    }
    let mut files = Vec::new();
    walk(root, root, &mut files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// How a property is checked, as the cross-reference says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    /// An invariant.
    Always,
    /// A goal or hazard that must be reachable.
    Sometimes,
    /// "This step is taken somewhere" (no dead action).
    Coverage,
    /// An exhaustive check of a pure function.
    Function,
}

impl Checked {
    fn words(self) -> &'static str {
        match self {
            Checked::Always => "always",
            Checked::Sometimes => "sometimes",
            Checked::Coverage => "step coverage",
            Checked::Function => "function check",
        }
    }
}

/// A property of the spec.
#[derive(Debug, Clone)]
struct Property {
    rule: String,
    name: String,
    checked: Checked,
}

/// A mutant: its name, the rule whose property refutes it (spec mutants) and the rule its bug
/// breaks.
#[derive(Debug, Clone)]
struct MutantRef {
    name: String,
    refuted_at: String,
    breaks: String,
}

/// A scenario of the conformance corpus, by its metadata.
#[derive(Debug, Clone)]
struct ScenarioRef {
    file: String,
    purpose: String,
    action_kinds: Vec<String>,
    hazards: Vec<String>,
}

/// Everything that names a rule.
#[derive(Debug, Default)]
struct Evidence {
    properties: Vec<Property>,
    spec_mutants: Vec<MutantRef>,
    /// The reference core's mutants (`refuted_at` unused: they are judged by conformance).
    core_mutants: Vec<MutantRef>,
    /// Action kind name → the rule it serves.
    action_rules: BTreeMap<String, String>,
    /// Path → part and the rules and hazards it names.
    files: Vec<(String, Part, BTreeSet<String>)>,
    tests: Vec<TestFn>,
    scenarios: Vec<ScenarioRef>,
}

impl Evidence {
    fn has_property(&self, id: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.rule == id)
    }
}

/// The ids (`R-…` and `H…`) a text names.
fn ids_in(text: &str) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = mentions(text)
        .iter()
        .filter(|m| m.number.is_some())
        .map(Mention::id)
        .collect();
    ids.extend(hazard_mentions(text));
    ids
}

/// The evidence of the real repository.
fn collect_evidence(root: &Path, files: &[RepoFile]) -> Evidence {
    use hadr_model::{PropertyGroup, PropertyKind};
    let mut properties: Vec<Property> = hadr_model::all_specs()
        .iter()
        .map(|p| Property {
            rule: p.rule.to_owned(),
            name: p.name.to_owned(),
            checked: match (p.kind, p.group) {
                (_, PropertyGroup::Coverage) => Checked::Coverage,
                (PropertyKind::Sometimes, _) => Checked::Sometimes,
                _ => Checked::Always,
            },
        })
        .collect();
    properties.extend(FUNCTION_CHECKS.iter().map(|(rule, title)| Property {
        rule: (*rule).to_owned(),
        name: format!("{rule} {title}"),
        checked: Checked::Function,
    }));
    let spec_mutants = hadr_model::Mutant::ALL
        .iter()
        .map(|m| MutantRef {
            name: m.name().to_owned(),
            refuted_at: m.rule().to_owned(),
            breaks: m.breaks().to_owned(),
        })
        .collect();
    let core_mutants = hadr_core::mutants::Mutant::ALL
        .iter()
        .map(|m| MutantRef {
            name: m.name().to_owned(),
            refuted_at: String::new(),
            breaks: m.rule().to_owned(),
        })
        .collect();
    let action_rules = hadr_model::ActionKind::ALL
        .iter()
        .map(|k| (k.name().to_owned(), k.rule().to_owned()))
        .collect();
    let corpus = root.join("conformance/corpus");
    let (scenarios, _) = hadr_conformance::certify::load_corpus(&corpus)
        .unwrap_or_else(|e| panic!("the conformance corpus: {e}"));
    let scenarios = scenarios
        .into_iter()
        .map(|(file, s)| ScenarioRef {
            file,
            purpose: s.purpose,
            action_kinds: s.covers.action_kinds,
            hazards: s.covers.hazards,
        })
        .collect();
    let mut tests = Vec::new();
    let mut named = Vec::new();
    for file in files {
        let part = Part::of(&file.path);
        if part == Part::Unlisted {
            continue;
        }
        if file.path.ends_with(".rs") {
            tests.extend(test_functions(&file.path, &file.text));
        }
        named.push((file.path.clone(), part, ids_in(&file.text)));
    }
    Evidence {
        properties,
        spec_mutants,
        core_mutants,
        action_rules,
        files: named,
        tests,
        scenarios,
    }
}

// ---------------------------------------------------------------------------------------------
// The checks

/// Every rule has a property or an exemption, never both; exemptions name rules with
/// properties; every property names a rule of the book.
fn check_modelled(book: &RuleBook, exemptions: &[Exemption], evidence: &Evidence) -> Vec<Problem> {
    let mut problems = Vec::new();
    for p in &evidence.properties {
        if !book.defines(&p.rule) {
            problems.push(Problem::PropertyOfUnknownRule {
                property: p.name.clone(),
                id: p.rule.clone(),
            });
        }
    }
    let mut seen = BTreeSet::new();
    for e in exemptions {
        if !book.defines(&e.id) {
            problems.push(Problem::ExemptionOfUnknownRule {
                line: e.line,
                id: e.id.clone(),
            });
        }
        if !seen.insert(e.id.as_str()) {
            problems.push(Problem::DuplicateExemption {
                line: e.line,
                id: e.id.clone(),
            });
        }
        if let Some(p) = evidence.has_property(&e.id) {
            problems.push(Problem::StaleExemption {
                line: e.line,
                id: e.id.clone(),
                property: p.name.clone(),
            });
        }
        for through in &e.through {
            if evidence.has_property(through).is_none() {
                problems.push(Problem::CheckedThroughUnchecked {
                    line: e.line,
                    id: e.id.clone(),
                    through: through.clone(),
                });
            }
        }
    }
    for id in book.rules() {
        if evidence.has_property(id).is_none() && !seen.contains(id) {
            problems.push(Problem::Unmodelled { id: id.to_owned() });
        }
    }
    problems
}

/// Every rule id named in a file, and every rule a test is named after, is defined.
fn check_mentions(book: &RuleBook, files: &[RepoFile]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for file in files {
        let mut named: Vec<Mention> = mentions(&file.text);
        if file.path.ends_with(".rs") {
            named.extend(
                test_functions(&file.path, &file.text)
                    .into_iter()
                    .filter_map(|t| t.named_after),
            );
        }
        for m in named {
            if let Some(why) = book.undefined(&m.section, m.number) {
                problems.push(Problem::Undefined {
                    path: file.path.clone(),
                    line: m.line,
                    id: m.id(),
                    why,
                });
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The cross-reference

fn code(s: &str) -> String {
    format!("`{s}`")
}

fn anchor(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// What names one rule or hazard.
struct Entry<'a> {
    properties: Vec<&'a Property>,
    breaking: Vec<&'a MutantRef>,
    refuted: Vec<&'a MutantRef>,
    core: Vec<&'a MutantRef>,
    /// Part → files.
    files: BTreeMap<Part, Vec<&'a str>>,
    /// File → test functions.
    tests: BTreeMap<&'a str, Vec<&'a str>>,
    /// Test files that name it outside any test function that does.
    other_test_files: Vec<&'a str>,
    aimed: Vec<&'a str>,
    taking: usize,
    steps: BTreeSet<&'a str>,
}

impl<'a> Entry<'a> {
    fn new(id: &str, ev: &'a Evidence) -> Self {
        let properties = ev.properties.iter().filter(|p| p.rule == id).collect();
        let breaking: Vec<&MutantRef> = ev.spec_mutants.iter().filter(|m| m.breaks == id).collect();
        let refuted = ev
            .spec_mutants
            .iter()
            .filter(|m| m.refuted_at == id && m.breaks != id)
            .collect();
        let core = ev.core_mutants.iter().filter(|m| m.breaks == id).collect();
        let mut tests: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for t in ev.tests.iter().filter(|t| t.ids.contains(id)) {
            tests.entry(&t.path).or_default().push(&t.name);
        }
        for names in tests.values_mut() {
            names.sort_unstable();
        }
        let mut files: BTreeMap<Part, Vec<&str>> = BTreeMap::new();
        let mut other_test_files = Vec::new();
        for (path, part, ids) in &ev.files {
            if !ids.contains(id) {
                continue;
            }
            if *part == Part::Test {
                if !tests.contains_key(path.as_str()) {
                    other_test_files.push(path.as_str());
                }
            } else {
                files.entry(*part).or_default().push(path);
            }
        }
        let steps: BTreeSet<&str> = ev
            .action_rules
            .iter()
            .filter(|(_, rule)| *rule == id)
            .map(|(kind, _)| kind.as_str())
            .collect();
        let aimed = ev
            .scenarios
            .iter()
            .filter(|s| {
                s.purpose == id
                    || steps.contains(s.purpose.as_str())
                    || s.purpose
                        .strip_prefix("mutant ")
                        .is_some_and(|m| breaking.iter().any(|b| b.name == m))
            })
            .map(|s| s.file.as_str())
            .collect();
        let taking = ev
            .scenarios
            .iter()
            .filter(|s| {
                s.hazards.iter().any(|h| h == id)
                    || s.action_kinds.iter().any(|k| steps.contains(k.as_str()))
            })
            .count();
        Entry {
            properties,
            breaking,
            refuted,
            core,
            files,
            tests,
            other_test_files,
            aimed,
            taking,
            steps,
        }
    }

    fn test_count(&self) -> usize {
        self.tests.values().map(Vec::len).sum()
    }

    fn code_count(&self) -> usize {
        self.files
            .iter()
            .filter(|(part, _)| **part != Part::Doc)
            .map(|(_, f)| f.len())
            .sum()
    }
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// The generated section: a summary table, then every rule and hazard in the book's order.
fn render_cross_reference(book: &RuleBook, exemptions: &[Exemption], ev: &Evidence) -> String {
    let entries: Vec<(&str, Entry)> = book
        .entries
        .iter()
        .map(|(id, _)| (id.as_str(), Entry::new(id, ev)))
        .collect();
    let exemption = |id: &str| exemptions.iter().find(|e| e.id == id);
    let mut out = String::new();
    let scenarios = ev.scenarios.len();
    let _ = writeln!(
        out,
        "\n### Summary\n\nCounts of what names each rule; \"—\" in the properties column: no property of \
         its own (see [the table above](#rules-without-a-property-of-their-own)). The corpus has \
         {scenarios} scenarios.\n"
    );
    out.push_str(
        "| rule | properties | spec mutants | core mutants | code files | test functions | scenarios aimed at it / taking its steps | documents |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (id, e) in &entries {
        let properties = if e.properties.is_empty() {
            match exemption(id) {
                Some(x) if !x.through.is_empty() => format!("— (through {})", x.through.join(", ")),
                _ => "— (not modelled)".to_owned(),
            }
        } else if e.properties.iter().all(|p| p.checked == Checked::Coverage) {
            format!("{} (step coverage only)", e.properties.len())
        } else {
            e.properties.len().to_string()
        };
        let _ = writeln!(
            out,
            "| [{id}](#{}) | {properties} | {} | {} | {} | {} | {} / {} | {} |",
            anchor(id),
            e.breaking.len(),
            e.core.len(),
            e.code_count(),
            e.test_count(),
            e.aimed.len(),
            e.taking,
            e.files.get(&Part::Doc).map_or(0, Vec::len),
        );
    }
    for (id, e) in &entries {
        let _ = writeln!(out, "\n### {id}\n");
        if e.properties.is_empty() {
            let why = match exemption(id) {
                Some(x) if !x.through.is_empty() => {
                    format!("checked through {}", x.through.join(", "))
                }
                _ => "not modelled".to_owned(),
            };
            let _ = writeln!(
                out,
                "- properties: none of its own, {why} (see [the table above](#rules-without-a-property-of-their-own))"
            );
        } else {
            let _ = writeln!(
                out,
                "- properties: {}",
                list(e.properties.iter().map(|p| format!(
                    "{} ({})",
                    code(&p.name),
                    p.checked.words()
                )))
            );
        }
        if !e.breaking.is_empty() {
            let _ = writeln!(
                out,
                "- spec mutants that break it: {}",
                list(e.breaking.iter().map(|m| if m.refuted_at == *id {
                    code(&m.name)
                } else {
                    format!("{} (refuted at {})", code(&m.name), m.refuted_at)
                }))
            );
        }
        if !e.refuted.is_empty() {
            let _ = writeln!(
                out,
                "- spec mutants its properties refute: {}",
                list(
                    e.refuted
                        .iter()
                        .map(|m| format!("{} (breaks {})", code(&m.name), m.breaks))
                )
            );
        }
        if !e.core.is_empty() {
            let _ = writeln!(
                out,
                "- core mutants that break it: {}",
                list(e.core.iter().map(|m| code(&m.name)))
            );
        }
        for (part, files) in &e.files {
            if *part == Part::Doc {
                continue;
            }
            let _ = writeln!(
                out,
                "- {} ({}): {}",
                part.title(),
                files.len(),
                list(files.iter().map(|f| code(f)))
            );
        }
        if !e.tests.is_empty() {
            let _ = writeln!(
                out,
                "- test functions ({}): {}",
                e.test_count(),
                e.tests
                    .iter()
                    .map(|(path, names)| format!(
                        "{}: {}",
                        code(path),
                        list(names.iter().map(|n| code(n)))
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        if !e.other_test_files.is_empty() {
            let _ = writeln!(
                out,
                "- other test files ({}): {}",
                e.other_test_files.len(),
                list(e.other_test_files.iter().map(|f| code(f)))
            );
        }
        if !e.aimed.is_empty() || e.taking > 0 {
            let aimed = if e.aimed.is_empty() {
                "none aimed at it".to_owned()
            } else {
                format!("aimed at it: {}", list(e.aimed.iter().map(|f| code(f))))
            };
            let taking = if id.starts_with('H') {
                format!("{} of {scenarios} reach it", e.taking)
            } else {
                format!(
                    "{} of {scenarios} take one of its steps ({})",
                    e.taking,
                    list(e.steps.iter().map(|s| code(s)))
                )
            };
            let _ = writeln!(out, "- corpus: {aimed}; {taking}");
        }
        if let Some(docs) = e.files.get(&Part::Doc) {
            let _ = writeln!(
                out,
                "- documents ({}): {}",
                docs.len(),
                list(docs.iter().map(|f| code(f)))
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The tests of the repository

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_rules_md() -> String {
    let path = root().join(RULES_MD);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fail_on(problems: Vec<Problem>) {
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        panic!("{} problem(s):\n{}", problems.len(), lines.join("\n"));
    }
}

fn book_and_exemptions(doc: &str) -> (RuleBook, Vec<Exemption>) {
    let book = parse_rule_book(doc).unwrap_or_else(|p| {
        fail_on(p);
        unreachable!()
    });
    let exemptions = parse_exemptions(doc).unwrap_or_else(|p| {
        fail_on(p);
        unreachable!()
    });
    (book, exemptions)
}

/// The cross-reference of `docs/rules.md` is what the repository says today.
#[test]
fn the_cross_reference_of_docs_rules_md_is_current() {
    let doc = read_rules_md();
    let (book, exemptions) = book_and_exemptions(&doc);
    let files = repository_files(&root());
    let evidence = collect_evidence(&root(), &files);
    let generated = render_cross_reference(&book, &exemptions, &evidence);
    let updated = replace_generated(&doc, &generated).unwrap_or_else(|p| panic!("{p}"));
    if updated == doc {
        return;
    }
    if std::env::var("HADR_UPDATE_RULES").is_ok_and(|v| v == "1") {
        // Written beside it and renamed, so that a test reading it meanwhile sees one or the
        // other whole.
        let path = root().join(RULES_MD);
        let temporary = path.with_extension("md.new");
        std::fs::write(&temporary, &updated).expect("write docs/rules.md.new");
        std::fs::rename(&temporary, &path).expect("replace docs/rules.md");
        eprintln!("updated the cross-reference of {RULES_MD}");
        return;
    }
    let first = doc
        .lines()
        .zip(updated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| doc.lines().count().min(updated.lines().count()));
    panic!(
        "the cross-reference of {RULES_MD} is out of date (first difference at line {}):\n  \
         checked in: {}\n  generated:  {}\nrun `{UPDATE}` and commit {RULES_MD}",
        first + 1,
        doc.lines().nth(first).unwrap_or("(end of file)"),
        updated.lines().nth(first).unwrap_or("(end of file)"),
    );
}

/// Every rule is checked by a property of the spec, or says why not.
#[test]
fn every_rule_has_a_property_or_says_why_not() {
    let doc = read_rules_md();
    let (book, exemptions) = book_and_exemptions(&doc);
    let files = repository_files(&root());
    let evidence = collect_evidence(&root(), &files);
    fail_on(check_modelled(&book, &exemptions, &evidence));
}

/// No file names a rule that `docs/rules.md` does not define.
#[test]
fn every_rule_id_in_the_repository_is_defined() {
    let doc = read_rules_md();
    let (book, _) = book_and_exemptions(&doc);
    let files = repository_files(&root());
    assert!(
        files.iter().any(|f| f.path == "model/src/properties.rs"),
        "the walk of the repository missed the spec"
    );
    fail_on(check_mentions(&book, &files));
}

/// The function checks listed here are those `model/src/check.rs` reports.
#[test]
fn the_function_checks_are_those_of_the_model() {
    let check = std::fs::read_to_string(root().join("model/src/check.rs")).expect("check.rs");
    for (rule, title) in FUNCTION_CHECKS {
        let name = format!("\"{rule} {title}\"");
        assert!(
            check.contains(&name),
            "model/src/check.rs no longer reports the function check {name}: update FUNCTION_CHECKS in {THIS_FILE}"
        );
    }
}

/// Where the project's rule book is at hand (`../shared/spec/AG-RULES.md` beside a developer's
/// checkout, or `HADR_RULE_BOOK`), `docs/rules.md` has exactly its rules and hazards. A clone
/// without it skips this check.
#[test]
fn docs_rules_md_has_the_rules_of_the_project_rule_book() {
    let path = std::env::var_os("HADR_RULE_BOOK")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/spec/AG-RULES.md"));
    let Ok(source) = std::fs::read_to_string(&path) else {
        eprintln!("skipped: no rule book at {}", path.display());
        return;
    };
    let theirs = ids_of_source_rule_book(&source);
    assert!(theirs.len() > 50, "{}: read {theirs:?}", path.display());
    let doc = read_rules_md();
    let (book, _) = book_and_exemptions(&doc);
    let ours: BTreeSet<String> = book.entries.iter().map(|(id, _)| id.clone()).collect();
    let missing: Vec<_> = theirs.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{RULES_MD} differs from {}: missing {missing:?}, not in the rule book {extra:?}",
        path.display()
    );
}

/// The ids of the project's rule book: items `1.` … under `## … (R-<SECTION>)`, hazards `- H1:`.
fn ids_of_source_rule_book(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut section: Option<&str> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = section_of_heading(heading);
            continue;
        }
        if let Some(rest) = line.strip_prefix("- H") {
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !n.is_empty() && rest[n.len()..].starts_with(':') {
                ids.insert(format!("H{n}"));
            }
        }
        let Some(section) = section else { continue };
        let n: String = line.chars().take_while(char::is_ascii_digit).collect();
        if !n.is_empty() && line[n.len()..].starts_with(". ") {
            ids.insert(format!("R-{section}-{n}"));
        }
    }
    ids
}

// ---------------------------------------------------------------------------------------------
// The checks on forged input

/// A small rule book: two roles, one hazard, and an exemptions table.
const FORGED: &str = "\
# Forged

## Roles (R-ROLE)

- **R-ROLE-1** One primary.
- **R-ROLE-2** Three roles,
  on two lines.

## Hazards (H1–H1)

- **H1** Something bad can happen.

## Rules without a property of their own

| rule | checked through | why it has no property of its own |
|---|---|---|
| R-ROLE-2 | — | Not modelled, because it is forged. |

## Cross-reference

<!-- BEGIN GENERATED CROSS-REFERENCE (tests/rules.rs) -->
old
<!-- END GENERATED CROSS-REFERENCE -->
";

fn property(rule: &str) -> Property {
    Property {
        rule: rule.to_owned(),
        name: format!("{rule} holds"),
        checked: Checked::Always,
    }
}

fn forged_evidence(rules: &[&str]) -> Evidence {
    Evidence {
        properties: rules.iter().map(|r| property(r)).collect(),
        ..Evidence::default()
    }
}

#[test]
fn the_forged_book_parses_with_its_continuation_lines() {
    let book = parse_rule_book(FORGED).expect("parses");
    assert_eq!(book.sections.get("ROLE"), Some(&2));
    let ids: Vec<&str> = book.entries.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["R-ROLE-1", "R-ROLE-2", "H1"]);
    assert_eq!(book.entries[1].1, "Three roles, on two lines.");
    let exemptions = parse_exemptions(FORGED).expect("parses");
    assert_eq!(exemptions.len(), 1);
    assert_eq!(exemptions[0].id, "R-ROLE-2");
    assert!(exemptions[0].through.is_empty());
    assert!(check_modelled(&book, &exemptions, &forged_evidence(&["R-ROLE-1"])).is_empty());
}

#[test]
fn a_rule_with_neither_a_property_nor_a_row_is_reported() {
    let book = parse_rule_book(FORGED).expect("parses");
    let problems = check_modelled(&book, &[], &forged_evidence(&["R-ROLE-1"]));
    assert_eq!(
        problems,
        [Problem::Unmodelled {
            id: "R-ROLE-2".into()
        }]
    );
    assert!(problems[0].to_string().contains("no property of the spec"));
}

#[test]
fn a_row_for_a_rule_that_has_a_property_is_stale() {
    let book = parse_rule_book(FORGED).expect("parses");
    let exemptions = parse_exemptions(FORGED).expect("parses");
    let problems = check_modelled(
        &book,
        &exemptions,
        &forged_evidence(&["R-ROLE-1", "R-ROLE-2"]),
    );
    assert!(
        matches!(&problems[..], [Problem::StaleExemption { id, .. }] if id == "R-ROLE-2"),
        "{problems:?}"
    );
}

#[test]
fn a_row_must_name_rules_with_properties_and_a_rule_of_the_book() {
    let book = parse_rule_book(FORGED).expect("parses");
    let unknown = concat!("R-", "ROLE-5");
    let exemptions = [
        Exemption {
            line: 1,
            id: "R-ROLE-2".into(),
            through: vec!["R-ROLE-1".into()],
        },
        Exemption {
            line: 2,
            id: unknown.into(),
            through: vec![],
        },
    ];
    let problems = check_modelled(&book, &exemptions, &forged_evidence(&[]));
    assert!(problems.contains(&Problem::CheckedThroughUnchecked {
        line: 1,
        id: "R-ROLE-2".into(),
        through: "R-ROLE-1".into()
    }));
    assert!(problems.contains(&Problem::ExemptionOfUnknownRule {
        line: 2,
        id: unknown.into()
    }));
    assert!(problems.contains(&Problem::Unmodelled {
        id: "R-ROLE-1".into()
    }));
}

#[test]
fn a_property_of_an_unknown_rule_is_reported() {
    let book = parse_rule_book(FORGED).expect("parses");
    let exemptions = parse_exemptions(FORGED).expect("parses");
    let unknown = concat!("R-", "ROLE-3");
    let problems = check_modelled(&book, &exemptions, &forged_evidence(&["R-ROLE-1", unknown]));
    assert_eq!(
        problems,
        [Problem::PropertyOfUnknownRule {
            property: format!("{unknown} holds"),
            id: unknown.into()
        }]
    );
}

#[test]
fn a_gap_in_the_numbering_is_reported() {
    let gap = FORGED.replace("R-ROLE-2**", concat!("R-", "ROLE-3**"));
    let problems = parse_rule_book(&gap).expect_err("a gap");
    assert!(
        matches!(&problems[..], [Problem::Numbering { expected, .. }] if expected == "R-ROLE-2"),
        "{problems:?}"
    );
}

#[test]
fn mentions_expand_lists_and_ranges() {
    let text =
        "R-COMMIT-6; (R-BACKUP-4/5) R-DB-1..3\nR-READ, HADR-R-X R-{x} xR-ROLE-1 R-ROLE-1a R-ROLEs";
    let ids: Vec<String> = mentions(text).iter().map(Mention::id).collect();
    assert_eq!(
        ids,
        [
            "R-COMMIT-6",
            "R-BACKUP-4",
            "R-BACKUP-5",
            "R-DB-1",
            "R-DB-2",
            "R-DB-3",
            "R-READ",
            "R-ROLE-1"
        ]
    );
    assert_eq!(mentions(text)[6].line, 2);
    assert_eq!(
        hazard_mentions("H1, (H6) SHA1 H12 H0"),
        BTreeSet::from(["H1".to_owned(), "H6".to_owned()])
    );
}

#[test]
fn an_undefined_id_is_reported_with_its_file_and_line() {
    let book = parse_rule_book(FORGED).expect("parses");
    let beyond = concat!("R-", "ROLE-3");
    let section = concat!("R-", "ROEL");
    let files = [RepoFile {
        path: "src/x.rs".into(),
        text: format!(
            "// R-ROLE-1/2\n// {beyond}\n/// {section}-1\n#[test]\nfn {}_1_works() {{\n}}\n",
            "r_sync"
        ),
    }];
    let problems = check_mentions(&book, &files);
    let found: Vec<(usize, &str)> = problems
        .iter()
        .map(|p| match p {
            Problem::Undefined { line, id, .. } => (*line, id.as_str()),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(
        found,
        [(2, beyond), (3, concat!("R-", "ROEL-1")), (5, "R-SYNC-1")]
    );
    assert!(problems[0].to_string().starts_with("src/x.rs:2: "));
}

#[test]
fn test_functions_are_found_with_their_names_docs_and_bodies() {
    let text = "\
mod tests {
    /// H2: checked.
    #[test]
    #[ignore]
    fn r_role_1_one_primary() {
        let x = \"R-ROLE-2\";
    }

    #[tokio::test]
    async fn other() {}

    fn not_a_test() { let _ = \"R-ROLE-2\"; }
}
";
    let tests = test_functions("t.rs", text);
    let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["r_role_1_one_primary", "other"]);
    let ids: Vec<&str> = tests[0].ids.iter().map(String::as_str).collect();
    assert_eq!(ids, ["H2", "R-ROLE-1", "R-ROLE-2"]);
    assert!(tests[1].ids.is_empty());
    assert_eq!(
        rule_of_test_name("r_quorum_5_x", 1)
            .map(|m| m.id())
            .as_deref(),
        Some("R-QUORUM-5")
    );
    assert_eq!(rule_of_test_name("r_quorum_x", 1), None);
    assert_eq!(rule_of_test_name("r_quorum_5x", 1), None);
}

#[test]
fn the_generated_section_replaces_what_is_between_the_markers() {
    let book = parse_rule_book(FORGED).expect("parses");
    let exemptions = parse_exemptions(FORGED).expect("parses");
    let evidence = forged_evidence(&["R-ROLE-1"]);
    let generated = render_cross_reference(&book, &exemptions, &evidence);
    assert!(generated.contains("| [R-ROLE-2](#r-role-2) | — (not modelled) |"));
    assert!(generated.contains("- properties: `R-ROLE-1 holds` (always)"));
    let updated = replace_generated(FORGED, &generated).expect("markers");
    assert!(!updated.contains("\nold\n"));
    assert!(updated.ends_with(&format!("{generated}{END}\n")));
    assert_eq!(
        replace_generated(&updated, &generated).as_ref(),
        Ok(&updated)
    );
    assert_eq!(replace_generated("no markers", ""), Err(Problem::Markers));
}
