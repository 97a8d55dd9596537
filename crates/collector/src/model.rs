//! The only door to the report types (the `vpce-probe-report` crate).

pub use vpce_probe_report::escape::{line as escaped_line, shown};
pub use vpce_probe_report::report::{OverallStatus, Report, SCHEMA_VERSION};

/// The CLI's text report, without colour (it goes into an HTML `<pre>`).
pub fn render_text(report: &Report) -> String {
    vpce_probe_report::render::text::render(
        report,
        &vpce_probe_report::render::text::Style { color: false },
    )
}
