//! The two pages: `report.html` (data embedded) and the live web UI's page (data polled).
//!
//! Both are one file: the stylesheet, uPlot (engine/assets/uplot, MIT) and the renderer
//! (engine/assets/chopsticks.js) are compiled into the binary and inlined. A
//! Content-Security-Policy in the page forbids every fetch but the live page's own API.

use super::ReportData;

const UPLOT_JS: &str = include_str!("../../../assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../../assets/uplot/uPlot.min.css");
const STYLE: &str = include_str!("../../../assets/chopsticks.css");
const SCRIPT: &str = include_str!("../../../assets/chopsticks.js");

/// No network: inline scripts and styles only, images only as data URIs.
pub const REPORT_CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";
/// As the report, plus the page's own origin for the API it polls.
pub const LIVE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside a `<script>` element: no `<`, `>` or `&` can end it early.
pub fn script_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn page(title: &str, csp: &str, mode: &str, data: Option<&str>, start: &str) -> String {
    let data = data
        .map(|d| format!("<script id=\"data\" type=\"application/json\">{d}</script>\n"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"generator\" content=\"chopsticks {version}\">\n\
         <title>{title}</title>\n<link rel=\"icon\" href=\"data:,\">\n\
         <style>{UPLOT_CSS}</style>\n<style>{STYLE}</style>\n</head>\n\
         <body data-mode=\"{mode}\">\n<div id=\"app\"></div>\n\
         <noscript><p style=\"padding:2em\">This page draws its charts and tables with JavaScript. \
         The same numbers are in summary.json, stats.csv and stats_history.csv beside it.</p></noscript>\n\
         {data}<script>{UPLOT_JS}</script>\n<script>{SCRIPT}</script>\n<script>{start}</script>\n\
         </body>\n</html>\n",
        version = crate::VERSION,
        title = escape(title),
    )
}

/// `report.html` for a run.
pub fn report_page(data: &ReportData) -> String {
    let title = format!(
        "Chopsticks · {} · {} · {}",
        data.run.run_id, data.run.scenario.name, data.run.state
    );
    page(
        &title,
        REPORT_CSP,
        "report",
        Some(&script_json(data)),
        "Chopsticks.report(JSON.parse(document.getElementById('data').textContent));",
    )
}

/// The live web UI's page.
pub fn live_page() -> String {
    page(
        "Chopsticks · live",
        LIVE_CSP,
        "live",
        None,
        "Chopsticks.live();",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_close_the_script() {
        let s = script_json(&serde_json::json!({"t": "</script><b>&"}));
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["t"], "</script><b>&");
    }

    #[test]
    fn the_live_page_is_one_file_with_no_remote_reference() {
        let p = live_page();
        assert!(p.contains("Chopsticks.live()"));
        assert!(!p.contains("src=\"http"));
        assert!(!p.contains("href=\"http"));
        assert_eq!(p.matches("</script>").count(), 3);
    }
}
