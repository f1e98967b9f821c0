//! The tutorial's results: `results.json` and a self-contained HTML report.

pub mod html;
pub mod results;

pub use html::{render_report, Pictures};
pub use results::TutorialResults;
