use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `len` items of `what`, drawn on stderr only when it is a terminal.
pub fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    let template = format!("{{bar:30}} {{pos}}/{{len}} {what}  {{elapsed}} (ETA {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
