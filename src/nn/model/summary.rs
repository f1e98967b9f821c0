//! Keras's `model.summary()` table.

use super::Sequential;

impl Sequential {
    /// Keras's `model.summary()` table.
    pub fn summary(&self, title: &str) -> String {
        let rows: Vec<[String; 3]> = self
            .layers
            .iter()
            .map(|l| {
                let params: usize = l.params().iter().map(|p| p.value.len()).sum();
                [
                    format!("{} ({})", l.name(), l.config().kind()),
                    l.output_shape().to_string(),
                    group(params),
                ]
            })
            .collect();
        // Keras's widths, widened when a name is longer (e.g. "random_translation (…)").
        let widest = |k: usize| {
            rows.iter()
                .map(|r| r[k].chars().count() + 2)
                .max()
                .unwrap_or(0)
        };
        let widths = [widest(0).max(33), widest(1).max(24), widest(2).max(15)];
        let line = |l: &str, m: &str, r: &str, fill: &str| {
            format!(
                "{l}{}{m}{}{m}{}{r}\n",
                fill.repeat(widths[0]),
                fill.repeat(widths[1]),
                fill.repeat(widths[2])
            )
        };
        let cells = |c: &[String; 3], edge: &str| {
            format!(
                "{edge} {:<w0$} {edge} {:<w1$} {edge} {:>w2$} {edge}\n",
                c[0],
                c[1],
                c[2],
                w0 = widths[0] - 2,
                w1 = widths[1] - 2,
                w2 = widths[2] - 2
            )
        };
        let mut out = format!("Model: \"{title}\"\n");
        out += &line("┏", "┳", "┓", "━");
        out += &cells(
            &[
                "Layer (type)".into(),
                "Output Shape".into(),
                "Param #".into(),
            ],
            "┃",
        );
        out += &line("┡", "╇", "┩", "━");
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                out += &line("├", "┼", "┤", "─");
            }
            out += &cells(row, "│");
        }
        out += &line("└", "┴", "┘", "─");
        let total = self.param_count();
        out += &format!(" Total params: {} ({})\n", group(total), bytes(total * 4));
        out += &format!(
            " Trainable params: {} ({})\n",
            group(total),
            bytes(total * 4)
        );
        out += " Non-trainable params: 0 (0.00 B)\n";
        out
    }
}

/// 3989285 → "3,989,285".
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Keras's byte sizes: "15.22 MB".
fn bytes(n: usize) -> String {
    let units = ["B", "KB", "MB", "GB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}
