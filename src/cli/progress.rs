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

/// A download's bar: bytes, rate and ETA (a spinner with bytes when the size is unknown).
pub struct DownloadBar(ProgressBar);

impl DownloadBar {
    pub fn new() -> Self {
        DownloadBar(ProgressBar::hidden())
    }
}

impl petal::data::fetch::Progress for DownloadBar {
    fn start(&mut self, total: Option<u64>) {
        let (bar, template) = match total {
            Some(n) => (
                ProgressBar::new(n),
                "{bar:30} {bytes}/{total_bytes}  {bytes_per_sec}  ETA {eta}",
            ),
            None => (
                ProgressBar::new_spinner(),
                "{spinner} {bytes}  {bytes_per_sec}",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        self.0 = bar;
    }

    fn advance(&mut self, bytes: u64) {
        self.0.set_position(bytes);
    }

    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}
