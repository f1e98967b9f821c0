//! One self-contained HTML page of a tutorial run: pictures inlined as data URIs, no request to
//! the network, readable offline and on a narrow screen.

use super::results::{ModelRun, TutorialResults};
use base64::Engine;
use std::fmt::Write;

/// The PNG pictures a report shows, each optional (a step that did not run has none).
#[derive(Debug, Default)]
pub struct Pictures {
    pub samples: Option<Vec<u8>>,
    pub augmentation: Option<Vec<u8>>,
    /// Training curves of each model run, in `results.models` order.
    pub curves: Vec<Vec<u8>>,
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
img{max-width:100%;height:auto;border:1px solid #eee}
.row{display:flex;flex-wrap:wrap;gap:1em}.row>figure{flex:1 1 420px;margin:0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
pre{overflow-x:auto;font-size:.8em;background:#f7f7f7;padding:.6em}
.bar{background:#eee;height:1.2em;width:100%;max-width:480px}.bar>div{background:#4a8;height:100%}
.note{color:#a50}
";

/// The page for `results`, with `pictures` inlined.
pub fn render_report(results: &TutorialResults, pictures: &Pictures) -> String {
    let mut html = String::with_capacity(1 << 20);
    html.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = write!(
        html,
        "<title>petal tutorial report</title><style>{STYLE}</style></head><body>"
    );
    html.push_str("<h1>Image classification with petal: the Keras tutorial, run end to end</h1>");
    for note in &results.notes {
        let _ = write!(html, "<p class=\"note\">{}</p>", escape(note));
    }
    data_section(&mut html, results, pictures);
    models_section(&mut html, results, pictures);
    if let Some(png) = &pictures.augmentation {
        html.push_str("<h2>Data augmentation</h2><p>One training image through the augmentation layers (RandomFlip, RandomRotation, RandomZoom), nine times.</p>");
        picture(&mut html, png, "augmented versions of one training image");
    }
    evaluation_section(&mut html, results);
    prediction_section(&mut html, results);
    tflite_section(&mut html, results);
    quantization_section(&mut html, results);
    timings_section(&mut html, results);
    html.push_str("</body></html>\n");
    html
}

fn data_section(html: &mut String, results: &TutorialResults, pictures: &Pictures) {
    let Some(data) = &results.data else { return };
    let _ = write!(
        html,
        "<h2>Data</h2><p>{} files belonging to {} classes in <code>{}</code>: {} for training, {} for validation.</p><table><tr><th>class</th><th>images</th></tr>",
        data.files,
        data.class_names.len(),
        escape(&data.directory),
        data.training,
        data.validation
    );
    for (name, count) in data.class_names.iter().zip(&data.class_counts) {
        let _ = write!(html, "<tr><td>{}</td><td>{count}</td></tr>", escape(name));
    }
    html.push_str("</table>");
    if let Some(png) = &pictures.samples {
        picture(
            html,
            png,
            "the first nine training images with their classes",
        );
    }
}

fn models_section(html: &mut String, results: &TutorialResults, pictures: &Pictures) {
    if results.models.is_empty() {
        return;
    }
    html.push_str("<h2>Models</h2>");
    for run in &results.models {
        let _ = write!(
            html,
            "<h3>{}</h3><pre>{}</pre>",
            escape(&run.name),
            escape(&run.summary)
        );
    }
    html.push_str("<h2>Training results</h2><div class=\"row\">");
    for (run, png) in results.models.iter().zip(&pictures.curves) {
        let _ = write!(
            html,
            "<figure><figcaption>{}</figcaption>",
            escape(&run.name)
        );
        picture(
            html,
            png,
            &format!("accuracy and loss curves of {}", run.name),
        );
        html.push_str("</figure>");
    }
    html.push_str("</div><table><tr><th>model</th><th>epochs</th><th>accuracy</th><th>val_accuracy</th><th>best val_accuracy</th><th>seconds</th><th>images/s</th></tr>");
    for run in &results.models {
        model_row(html, run);
    }
    html.push_str("</table>");
}

fn model_row(html: &mut String, run: &ModelRun) {
    let _ = write!(
        html,
        "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.0}</td><td>{:.0}</td></tr>",
        escape(&run.name),
        run.epochs.len(),
        run.final_accuracy,
        run.final_val_accuracy,
        run.best_val_accuracy,
        run.seconds,
        run.images_per_second
    );
}

fn evaluation_section(html: &mut String, results: &TutorialResults) {
    let Some(e) = &results.evaluation else { return };
    let _ = write!(
        html,
        "<h2>Confusion matrix</h2><p>{} on the validation set: loss {:.4}, accuracy {:.4}. Rows: true class; columns: predicted.</p><table><tr><th></th>",
        escape(&e.model),
        e.loss,
        e.accuracy
    );
    for name in &e.class_names {
        let _ = write!(html, "<th>{}</th>", escape(name));
    }
    html.push_str("</tr>");
    for (name, row) in e.class_names.iter().zip(&e.confusion) {
        let _ = write!(html, "<tr><th>{}</th>", escape(name));
        for n in row {
            let _ = write!(html, "<td>{n}</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
}

fn prediction_section(html: &mut String, results: &TutorialResults) {
    let Some(p) = &results.prediction else { return };
    let _ = write!(
        html,
        "<h2>Predict on new data</h2><p><code>{}</code>, with {}: <strong>This image most likely belongs to {} with a {:.2} percent confidence.</strong></p><table><tr><th>class</th><th>probability</th><th></th></tr>",
        escape(&p.photo),
        escape(&p.model),
        escape(&p.class),
        100.0 * p.confidence
    );
    for (name, prob) in p.class_names.iter().zip(&p.probabilities) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:.2}%</td><td style=\"width:50%\"><div class=\"bar\"><div style=\"width:{:.1}%\"></div></div></td></tr>",
            escape(name),
            100.0 * prob,
            100.0 * prob
        );
    }
    html.push_str("</table>");
}

fn tflite_section(html: &mut String, results: &TutorialResults) {
    let Some(t) = &results.tflite else { return };
    let _ = write!(
        html,
        "<h2>TensorFlow Lite</h2><p><code>{}</code> ({} bytes). Signatures: <code>{}</code>.</p><p>The photo through petal's interpreter: {} with a {:.2} percent confidence; the largest difference from the native model's logits is {:.2e}.</p>",
        escape(&t.file),
        t.bytes,
        escape(&t.signatures),
        escape(&t.class),
        100.0 * t.confidence,
        t.max_abs_logit_difference
    );
}

fn quantization_section(html: &mut String, results: &TutorialResults) {
    let Some(float) = results.quantization.first() else {
        return;
    };
    html.push_str(
        "<h2>Quantization</h2><p>The augmented model in the forms TensorFlow's converter writes, each run by petal's interpreter on the validation set one image at a time.</p><table><tr><th>form</th><th>bytes</th><th>size</th><th>validation accuracy</th><th>batch-1 latency (ms)</th></tr>",
    );
    for q in &results.quantization {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.2}×</td><td>{:.4}</td><td>{:.2}</td></tr>",
            escape(&q.form),
            q.bytes,
            q.bytes as f64 / float.bytes.max(1) as f64,
            q.validation_accuracy,
            q.latency_ms
        );
    }
    html.push_str("</table>");
}

fn timings_section(html: &mut String, results: &TutorialResults) {
    if results.steps.is_empty() {
        return;
    }
    html.push_str("<h2>Timings</h2><table><tr><th>step</th><th>seconds</th></tr>");
    for step in &results.steps {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:.1}</td></tr>",
            escape(&step.step),
            step.seconds
        );
    }
    let _ = write!(
        html,
        "<tr><th>total</th><th>{:.1}</th></tr></table>",
        results.total_seconds
    );
}

fn picture(html: &mut String, png: &[u8], alt: &str) {
    let data = base64::engine::general_purpose::STANDARD.encode(png);
    let _ = write!(
        html,
        "<img alt=\"{}\" src=\"data:image/png;base64,{data}\">",
        escape(alt)
    );
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::results::DataFacts;

    #[test]
    fn pages_are_self_contained_and_escape_text() {
        let results = TutorialResults {
            data: Some(DataFacts {
                directory: "<photos> & more".into(),
                files: 3,
                class_names: vec!["a".into()],
                class_counts: vec![3],
                training: 2,
                validation: 1,
            }),
            ..Default::default()
        };
        let pictures = Pictures {
            samples: Some(vec![0x89, b'P', b'N', b'G']),
            ..Default::default()
        };
        let page = render_report(&results, &pictures);
        assert!(page.contains("&lt;photos&gt; &amp; more"));
        assert!(page.contains("src=\"data:image/png;base64,iVBORw==\""));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(
            !page.contains("<h2>Timings"),
            "steps that did not run are left out"
        );
    }
}
