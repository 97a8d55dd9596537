//! The only door to the report types. When they move to their own crate
//! (`vpce-probe-report`), this file and Cargo.toml are the only places to change.

pub use vpce_probe::report::{OverallStatus, Report, SCHEMA_VERSION};

/// The CLI's text report, without colour (it goes into an HTML `<pre>`).
pub fn render_text(report: &Report) -> String {
    vpce_probe::render::text::render(report, &vpce_probe::render::text::Style { color: false })
}
