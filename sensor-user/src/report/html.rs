//! The report as one self-contained HTML file: inline CSS, inline SVG
//! charts drawn here, no script and nothing fetched from the network.
//!
//! Paths, process names, messages and reasons are attacker-controlled (a
//! file can be named `<script>...`). maud escapes every interpolated string;
//! nothing here uses `PreEscaped` except the fixed stylesheet.
//!
//! Stable hooks for tests and for styling: sections `#summary`,
//! `#unattributed`, `#alerts`, `#charts`, `#by-action`, `#by-path`,
//! `#by-process`, `#scans`, `#coverage`, `#sensor`, `#accepts`; change rows
//! `tr.change` (plus `.unattributed`, `.alert`) with `data-seq`; charts are
//! `figure.chart` (`#chart-timeline`, `#chart-processes`) holding an `svg`
//! whose bars are `rect.bar` with `data-count`.
use super::{short_time, Bucket, Change, Count, Report};
use maud::{html, Markup, PreEscaped, DOCTYPE};

const CSS: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #1b1f24; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; }
dl.meta dt { color: #57606a; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: .5em 1em; min-width: 8em; }
.card .n { font-size: 1.6em; font-weight: 600; display: block; }
.card.bad { border-color: #cf222e; color: #cf222e; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; }
th, td { text-align: left; padding: .25em .5em; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.path, td.proc { font-family: ui-monospace, monospace; word-break: break-all; }
tr.unattributed td { background: #ffebe9; }
.sev-high, .sev-critical { color: #cf222e; font-weight: 600; }
.sev-medium { color: #9a6700; }
.none { color: #57606a; font-style: italic; }
.warn { color: #cf222e; font-weight: 600; }
figure.chart { margin: 1em 0; }
figure.chart figcaption { font-weight: 600; margin-bottom: .3em; }
svg text { font: 11px system-ui, sans-serif; fill: #57606a; }
rect.bar { fill: #0969da; }
rect.bar.unattributed { fill: #cf222e; }
footer { margin-top: 3em; color: #57606a; font-size: .9em; }
"#;

/// The report as one HTML document.
pub fn render(r: &Report) -> String {
    let t = &r.totals;
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Vigil file-integrity report: " (r.host) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "File-integrity report (PCI DSS 11.5.2)" }
                    dl.meta {
                        dt { "Host" } dd #host { (r.host) }
                        dt { "Period" } dd #period { (short_time(&r.period.since)) " to " (short_time(&r.period.until)) }
                        dt { "Generated" } dd { (short_time(&r.generated)) }
                        dt { "Store" } dd { code { (r.store) } }
                    }
                }
                section #summary {
                    h2 { "Summary" }
                    div.cards {
                        (card("file changes", t.file_changes, false))
                        (card("unattributed", t.unattributed, t.unattributed > 0))
                        (card("alerts", t.alerts, t.alerts > 0))
                        (card("found by scans", t.scan_findings, false))
                        (card("seen in real time", t.realtime_changes, false))
                        (card("sensor gaps", t.gaps, t.gaps > 0))
                        (card("records lost", t.lost, t.lost > 0))
                        (card("comparison scans", r.coverage.comparison_scans_ok, r.coverage.comparison_scans_ok == 0))
                    }
                }
                section #unattributed {
                    h2 { "Unattributed changes (" (r.unattributed.len()) ")" }
                    p { "Changes a scan found that the realtime sensor never reported: the sensor was blind or something bypassed it. Investigate each." }
                    (changes(&r.unattributed, "none: every change a scan found was also reported by the sensor"))
                }
                section #alerts {
                    h2 { "Alerts (" (r.alerts.len()) ")" }
                    (changes(&r.alerts, "no alerts in the period"))
                }
                section #charts {
                    h2 { "Charts" }
                    figure.chart #chart-timeline {
                        figcaption { "Changes over time (per " (r.timeline.bucket) ")" }
                        (timeline_chart(&r.timeline.buckets, r.timeline.bucket))
                    }
                    figure.chart #chart-processes {
                        figcaption { "Top processes by changes" }
                        (bar_chart(&r.by_process, "Top processes by changes"))
                    }
                }
                section #by-action { h2 { "Changes by action" } (counts(&r.by_action, "action")) }
                section #by-path { h2 { "Top paths" } (counts(&r.by_path, "path")) }
                section #by-process { h2 { "Top processes" } (counts(&r.by_process, "process")) }
                section #scans {
                    h2 { "Scans (" (r.scans.len()) ")" }
                    @if r.scans.is_empty() {
                        p.none { "no scan ran in the period: run `vigil scan` at least weekly" }
                    } @else {
                        table {
                            thead { tr { th { "id" } th { "kind" } th { "started" } th { "finished" } th { "files" } th { "changes" } th { "errors" } th { "status" } th { "paths" } } }
                            tbody {
                                @for s in &r.scans {
                                    tr.scan data-id=(s.id) {
                                        td.num { (s.id) }
                                        td { (s.kind) @if s.metadata_only { " (metadata only)" } }
                                        td { (short_time(&s.started)) }
                                        td { (s.finished.as_deref().map_or("-".into(), short_time)) }
                                        td.num { (s.files_seen) }
                                        td.num { (s.changes) }
                                        td.num { (s.errors) }
                                        td { (s.status) @if let Some(m) = &s.message { ": " (m) } }
                                        td.path { (s.paths.join(", ")) }
                                    }
                                }
                            }
                        }
                    }
                }
                section #coverage {
                    h2 { "Coverage" }
                    @let c = &r.coverage;
                    p {
                        (c.baseline_files) " files in the baseline (last baseline "
                        (c.last_baseline.as_deref().map_or("never".into(), short_time)) "); "
                        span #verified { (c.verified_in_period) } " verified as recorded in the period, "
                        span #not-verified { (c.not_verified) } " not verified (not compared, or changed); "
                        span #changed { (c.changed_in_period) } " paths with changes found by scans."
                    }
                    @if c.comparison_scans_ok == 0 {
                        p.warn { "No comparison scan completed in the period: PCI DSS 11.5.2 asks for one at least weekly (vigil scan)." }
                    }
                    @if !c.not_verified_sample.is_empty() {
                        p { "Not verified, first by path:" }
                        ul { @for p in &c.not_verified_sample { li { code { (p) } } } }
                    }
                }
                section #sensor {
                    h2 { "Sensor gaps and downtime" }
                    p { (r.sensor.realtime_events) " events from the realtime sensor in the period." }
                    @if r.sensor.realtime_events == 0 {
                        p.warn { "The realtime sensor recorded nothing in the period: it was not running (or not journaling to this store)." }
                    }
                    h3 { "Gaps" }
                    div #gaps { (changes(&r.sensor.gaps, "no loss or output failure recorded")) }
                    h3 { "Downtime" }
                    div #downtime {
                        @if r.sensor.downtime.is_empty() {
                            p.none { "no downtime recorded" }
                        } @else {
                            table {
                                thead { tr { th { "from" } th { "to" } th { "stop" } } }
                                tbody {
                                    @for d in &r.sensor.downtime {
                                        tr.downtime {
                                            td { (d.from.as_deref().map_or("?".into(), short_time)) }
                                            td { (d.to.as_deref().map_or("end of period".into(), short_time)) }
                                            td { @if d.clean { "clean" } @else { "no stop event (crashed or killed)" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                section #accepts {
                    h2 { "Accepted changes (" (r.accepts.len()) ")" }
                    @if r.accepts.is_empty() {
                        p.none { "none" }
                    } @else {
                        table {
                            thead { tr { th { "time" } th { "path" } th { "change" } th { "who" } th { "reason" } } }
                            tbody {
                                @for a in &r.accepts {
                                    tr.accept {
                                        td { (short_time(&a.time)) }
                                        td.path { (a.path) }
                                        td.num { (a.journal_seq.map(|s| s.to_string()).unwrap_or_default()) }
                                        td { (a.who) }
                                        td { (a.reason) }
                                    }
                                }
                            }
                        }
                    }
                }
                footer { "Vigil " (env!("CARGO_PKG_VERSION")) ", report schema " (super::SCHEMA) "." }
            }
        }
    };
    doc.into_string()
}

fn card(label: &str, n: u64, bad: bool) -> Markup {
    html! {
        div.card.bad[bad] { span.n { (n) } (label) }
    }
}

fn changes(v: &[Change], empty: &str) -> Markup {
    html! {
        @if v.is_empty() {
            p.none { (empty) }
        } @else {
            table.changes {
                thead { tr { th { "#" } th { "time" } th { "action" } th { "severity" } th { "path" } th { "process" } th { "user" } th { "fields changed" } th { "accepted" } } }
                tbody {
                    @for c in v {
                        tr.change.unattributed[c.unattributed].alert[c.alert] data-seq=(c.seq) {
                            td.num { (c.seq) }
                            td { (short_time(&c.time)) }
                            td { (c.action) }
                            td class=(format!("sev-{}", c.severity)) { (c.severity) }
                            td.path {
                                @if c.kind == "sensor" {
                                    "sensor: " (c.message.as_deref().unwrap_or(""))
                                } @else {
                                    (c.path)
                                    @if let Some(t) = &c.target_path { " \u{2192} " (t) }
                                }
                            }
                            td.proc {
                                @if let Some(p) = &c.process { (p) @if let Some(pid) = c.pid { " [" (pid) "]" } }
                                @else if c.tier.as_deref() == Some("scan") { "scan " (c.scan_id.unwrap_or(0)) }
                            }
                            td { (c.user.as_deref().unwrap_or("")) }
                            td { (c.fields_changed.join(", ")) }
                            td {
                                @if let Some(a) = &c.accepted {
                                    (short_time(&a.time)) " by " (a.who) ": " (a.reason)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn counts(v: &[Count], what: &str) -> Markup {
    html! {
        @if v.is_empty() {
            p.none { "no file changes in the period" }
        } @else {
            table.counts {
                thead { tr { th { (what) } th { "changes" } } }
                tbody { @for c in v { tr { td.path { (c.key) } td.num { (c.count) } } } }
            }
        }
    }
}

/// Vertical bars per bucket; the unattributed part of each bar in red.
fn timeline_chart(buckets: &[Bucket], unit: &str) -> Markup {
    const W: f64 = 760.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 30.0;
    let max = buckets.iter().map(|b| b.changes).max().unwrap_or(0).max(1);
    let n = buckets.len().max(1) as f64;
    let slot = (W - LEFT) / n;
    let bar = (slot * 0.8).max(1.0);
    let plot = H - BOTTOM - 10.0;
    let y = |v: u64| plot * v as f64 / max as f64;
    // About a dozen labels at most.
    let every = (buckets.len() / 12).max(1);
    let label = |start: &str| {
        let t = short_time(start);
        match unit {
            "hour" => t.get(5..13).map(|s| format!("{s}h")).unwrap_or(t),
            _ => t.get(5..10).map(str::to_string).unwrap_or(t),
        }
    };
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) width=(W) height=(H) role="img" {
            title { "Changes over time, per " (unit) }
            text x="4" y="16" { (max) }
            text x="4" y=(H - BOTTOM) { "0" }
            line x1=(LEFT) y1=(H - BOTTOM) x2=(W) y2=(H - BOTTOM) stroke="#d0d7de" {}
            @for (i, b) in buckets.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
                @let h = y(b.changes);
                @let hu = y(b.unattributed);
                g.bucket data-start=(b.start) {
                    title { (short_time(&b.start)) ": " (b.changes) " changes, " (b.unattributed) " unattributed, " (b.alerts) " alerts" }
                    rect.bar x=(fmt(x)) y=(fmt(H - BOTTOM - h)) width=(fmt(bar)) height=(fmt(h)) data-count=(b.changes) {}
                    @if b.unattributed > 0 {
                        rect.bar.unattributed x=(fmt(x)) y=(fmt(H - BOTTOM - hu)) width=(fmt(bar)) height=(fmt(hu)) data-count=(b.unattributed) {}
                    }
                    @if i % every == 0 {
                        text x=(fmt(x)) y=(H - BOTTOM + 14.0) { (label(&b.start)) }
                    }
                }
            }
        }
    }
}

/// Horizontal bars, one per key, labelled (escaped) on the left.
fn bar_chart(v: &[Count], title: &str) -> Markup {
    const W: f64 = 760.0;
    const ROW: f64 = 22.0;
    const LABEL: f64 = 300.0;
    let h = ROW * v.len().max(1) as f64 + 10.0;
    let max = v.iter().map(|c| c.count).max().unwrap_or(0).max(1);
    let scale = (W - LABEL - 50.0) / max as f64;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {h}")) width=(W) height=(fmt(h)) role="img" {
            title { (title) }
            @if v.is_empty() {
                text x="4" y="16" { "no file changes in the period" }
            }
            @for (i, c) in v.iter().enumerate() {
                @let y = ROW * i as f64 + 4.0;
                g.row {
                    title { (c.key) ": " (c.count) }
                    text x="4" y=(fmt(y + 14.0)) { (ellipsis(&c.key, 48)) }
                    rect.bar x=(LABEL) y=(fmt(y)) width=(fmt(c.count as f64 * scale)) height=(fmt(ROW - 6.0)) data-count=(c.count) {}
                    text x=(fmt(LABEL + c.count as f64 * scale + 4.0)) y=(fmt(y + 14.0)) { (c.count) }
                }
            }
        }
    }
}

/// The end of a long label (the file name matters most), with a leading `…`.
fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(n - (max - 1)).collect();
        format!("\u{2026}{tail}")
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_their_tail() {
        assert_eq!(ellipsis("/usr/bin/vim", 48), "/usr/bin/vim");
        assert_eq!(ellipsis("/a/very/long/path", 6), "\u{2026}/path");
    }

    #[test]
    fn hostile_strings_are_escaped() {
        let c = Change {
            seq: 1,
            time: "2026-11-26T00:00:00Z".into(),
            kind: "file".into(),
            action: "modified".into(),
            severity: "high".into(),
            alert: true,
            path: "/tmp/<script>alert(1)</script>&\"'".into(),
            target_path: None,
            tier: Some("scan".into()),
            unattributed: true,
            process: None,
            pid: None,
            user: None,
            rules: vec![],
            fields_changed: vec![],
            scan_id: Some(1),
            message: None,
            accepted: None,
        };
        let out = changes(std::slice::from_ref(&c), "").into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        let chart = bar_chart(
            &[Count {
                key: c.path.clone(),
                count: 1,
            }],
            "t",
        )
        .into_string();
        assert!(!chart.contains("<script>"), "{chart}");
    }
}
