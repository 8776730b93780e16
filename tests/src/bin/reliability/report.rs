//! The report: each phase's figures and checks, logged as they come and written as Markdown.

use anyhow::{Context, Result};
use nvr_tests::procstat::median;
use std::path::Path;

const BEGIN: &str = "<!-- reliability:begin -->";
const END: &str = "<!-- reliability:end -->";

pub fn log(msg: impl AsRef<str>) {
    eprintln!("reliability: {}", msg.as_ref());
}

/// A phase's results: figures to report and checks that pass or fail.
pub struct Section {
    title: String,
    figures: Vec<(String, String)>,
    checks: Vec<(String, bool, String)>,
}

impl Section {
    pub fn new(title: &str) -> Self {
        Section {
            title: title.into(),
            figures: Vec::new(),
            checks: Vec::new(),
        }
    }
    pub fn figure(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        log(format!("{}: {name}: {value}", self.title));
        self.figures.push((name.into(), value));
    }
    pub fn check(&mut self, what: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        log(format!(
            "{}: {} {what}: {detail}",
            self.title,
            if ok { "PASS" } else { "FAIL" }
        ));
        self.checks.push((what.into(), ok, detail));
    }
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.1)
    }
    pub fn markdown(&self) -> String {
        let mut md = format!("### {}\n\n", self.title);
        if !self.figures.is_empty() {
            md.push_str("| figure | value |\n|---|---|\n");
            for (k, v) in &self.figures {
                md.push_str(&format!("| {k} | {v} |\n"));
            }
            md.push('\n');
        }
        md.push_str("| check | result | detail |\n|---|---|---|\n");
        for (what, ok, detail) in &self.checks {
            let detail = detail.replace('|', "\\|").replace('\n', " ");
            let r = if *ok { "pass" } else { "**FAIL**" };
            md.push_str(&format!("| {what} | {r} | {detail} |\n"));
        }
        md.push('\n');
        md
    }
}

pub fn stats_ms(v: &[f64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    format!(
        "p50 {:.0} ms, max {:.0} ms (n = {})",
        median(v),
        max,
        v.len()
    )
}

/// Replaces the part of the file at `path` between the markers with `md` (appends both markers and
/// `md` when the file has none).
pub fn write_between_markers(path: &Path, md: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{BEGIN}\n{md}{}", &old[..b], &old[e..])
        }
        _ => format!("{old}\n{BEGIN}\n{md}{END}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
