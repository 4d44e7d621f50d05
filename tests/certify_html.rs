//! `hadr certify --html`: the page of a failing implementation mutant, rendered in headless
//! Chromium, shows the failing step, highlighted, with what the spec allows there (issue 17,
//! item 4). Chromium is required: `apt-get install -y chromium` (scripts/test-all installs it).
#![cfg(feature = "mutants")]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A planted bug of the reference core and a corpus scenario it fails: A (the primary) crashes
/// while B is not SYNCHRONIZED, and the buggy core promotes B all the same.
const MUTANT: &str = "promote-synchronizing";
const SCENARIO: &str = "conformance/corpus/026-mutant-automatic-failover-to-synchronizing.json";
const PAGE: &str = "026-mutant-automatic-failover-to-synchronizing.html";

fn hadr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hadr"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run hadr")
}

fn url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Headless Chromium with a fresh profile in `scratch`, nothing fetched from the network:
/// what it prints on stdout. Fails (never skips) when Chromium is missing.
fn chromium(scratch: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir_in(scratch).unwrap();
    let mut command = None;
    for name in ["chromium", "chromium-browser"] {
        let spawned = Command::new(name)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        if let Ok(child) = spawned {
            command = Some(child);
            break;
        }
    }
    let mut child = command.unwrap_or_else(|| {
        panic!(
            "this test renders the page in headless Chromium, which is not installed: run `apt-get install -y chromium` (scripts/test-all does, as root)"
        )
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} ran for more than 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = reader.join().unwrap().unwrap();
    let errors = errors.join().unwrap();
    assert!(
        status.success() && !text.is_empty(),
        "chromium {args:?}: {status}\n{errors}"
    );
    text
}

/// The element of `dom` that starts with `start`, up to its `end` tag.
fn element<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let from = dom
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in the rendered page:\n{dom}"));
    let to = from + dom[from..].find(end).expect("the element ends");
    &dom[from..to]
}

/// A page (the test's own, not hadr's) that loads `page` in a frame once it is laid out and
/// reports, as JSON, how the browser renders the failing step's row against step 0's: the
/// rows marked failing, the row's visible text and height, the computed styles of its action
/// cell, of a value changed by a step (not a difference), and of each marked difference (and
/// the outline of its cell).
fn probe(page: &Path, step: u64) -> String {
    format!(
        r#"<!DOCTYPE html>
<html><body>
<iframe id="page" src="{}" width="1400" height="900"></iframe>
<pre id="report">not loaded</pre>
<script>
window.addEventListener("load", function () {{
  var report = document.getElementById("report");
  try {{
    var frame = document.getElementById("page");
    var d = frame.contentDocument, w = frame.contentWindow;
    var style = function (e) {{
      var s = w.getComputedStyle(e);
      return {{ background: s.backgroundColor, border_top: s.borderTopWidth + " " + s.borderTopStyle, outline: s.outlineStyle, color: s.color }};
    }};
    var row = d.getElementById("step-{step}"), normal = d.getElementById("step-0");
    report.textContent = JSON.stringify({{
      failing_rows: Array.from(d.querySelectorAll("tr.failing")).map(function (r) {{ return r.id; }}),
      text: row.innerText,
      height: row.getBoundingClientRect().height,
      failing_cell: style(row.cells[1]),
      normal_cell: style(normal.cells[1]),
      changed: style(d.querySelector(".changed:not(.diff)")),
      differences: Array.from(row.querySelectorAll("[data-diff]")).map(function (s) {{
        return {{ path: s.getAttribute("data-diff"), style: style(s), cell: style(s.closest("td")), text: s.innerText }};
      }})
    }});
  }} catch (e) {{
    report.textContent = "error: " + e;
  }}
}});
</script>
</body></html>
"#,
        url(page)
    )
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[test]
fn the_page_of_a_failing_mutant_shows_the_failing_step_highlighted_in_chromium() {
    let scratch = tempfile::tempdir().unwrap();
    let pages = scratch.path().join("pages");
    let out = hadr(&[
        "certify",
        "--sut",
        "reference-sim",
        "--mutant",
        MUTANT,
        "--scenario",
        SCENARIO,
        "--html",
        pages.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("1 scenario page written to {}", pages.display())),
        "{stderr}"
    );
    let certificate: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = &certificate["results"][0];
    assert_eq!(result["verdict"], "fail", "{result:#}");
    let step = result["step"].as_u64().unwrap();
    assert_eq!(
        result["actions"][step as usize - 1],
        serde_json::json!({"Crash": {"replica": 0}}),
        "the failing step is A's crash: {result:#}"
    );
    let diff: Vec<&str> = result["diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(!diff.is_empty(), "{result:#}");
    let page = pages.join(PAGE);
    let index = std::fs::read_to_string(pages.join("index.html")).unwrap();
    assert!(index.contains(&format!("href=\"{PAGE}\"")), "{index}");

    // The page as Chromium parses it.
    let dom = chromium(scratch.path(), &["--dump-dom", &url(&page)]);
    assert!(!dom.contains("<script"), "the page needs no script");
    assert_eq!(
        dom.matches("class=\"step failing\"").count(),
        1,
        "one failing step:\n{dom}"
    );
    let row = element(&dom, &format!("<tr id=\"step-{step}\""), "</tr>");
    assert!(row.contains("class=\"step failing\""), "{row}");
    assert!(row.contains("A crashes"), "the step's action: {row}");
    assert!(row.contains("not allowed by the spec"), "{row}");
    for line in &diff {
        let (path, _) = line.split_once(": ").unwrap();
        assert!(
            row.contains(&format!("data-diff=\"{path}\"")),
            "{path} is not marked in the failing row: {row}"
        );
        assert!(dom.contains(line), "the diff line {line} is not shown");
    }

    // The page as Chromium lays it out: the failing row stands out from the others, and
    // each difference from its row.
    let probe_page = scratch.path().join("probe.html");
    std::fs::write(&probe_page, probe(&page, step)).unwrap();
    let dom = chromium(
        scratch.path(),
        &[
            "--allow-file-access-from-files",
            "--dump-dom",
            &url(&probe_page),
        ],
    );
    let start = "<pre id=\"report\">";
    let report = unescape(&element(&dom, start, "</pre>")[start.len()..]);
    let report: serde_json::Value = serde_json::from_str(&report)
        .unwrap_or_else(|e| panic!("the probe did not report ({e}): {report}"));
    assert_eq!(
        report["failing_rows"],
        serde_json::json!([format!("step-{step}")]),
        "{report:#}"
    );
    let text = report["text"].as_str().unwrap();
    assert!(
        text.contains("A crashes") && text.contains("not allowed by the spec"),
        "{report:#}"
    );
    assert!(report["height"].as_f64().unwrap() > 0.0, "{report:#}");
    let failing = &report["failing_cell"];
    assert_ne!(
        failing["background"], report["normal_cell"]["background"],
        "the failing row is not highlighted: {report:#}"
    );
    assert!(
        failing["border_top"].as_str().unwrap().ends_with(" solid")
            && failing["border_top"] != report["normal_cell"]["border_top"],
        "the failing row is not framed: {report:#}"
    );
    let differences = report["differences"].as_array().unwrap();
    for line in &diff {
        let (path, _) = line.split_once(": ").unwrap();
        let marked = differences
            .iter()
            .find(|d| d["path"] == path)
            .unwrap_or_else(|| panic!("{path} not rendered in the failing row: {report:#}"));
        let background = &marked["style"]["background"];
        assert!(
            background != "rgba(0, 0, 0, 0)"
                && *background != failing["background"]
                && *background != report["changed"]["background"],
            "{path} is not highlighted as a difference: {report:#}"
        );
        assert_eq!(
            marked["cell"]["outline"], "solid",
            "{path}'s cell is not marked: {report:#}"
        );
    }
}
