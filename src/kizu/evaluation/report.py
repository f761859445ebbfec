"""One self-contained report.html: what to look at first (misses and false alarms), the metrics,
what the threshold means, and the figures — embedded as base64 PNG, so the file can be mailed."""

from __future__ import annotations

import base64
import html
import math

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #eee;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ddd;padding:.3em .7em;text-align:right}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:.6em 1em;margin:1em 0}
.guarantee{background:#e8f5e9;border-left:4px solid #2e7d32;padding:.6em 1em;margin:1em 0}
figure{display:inline-block;margin:.5em;vertical-align:top} img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555;max-width:520px}
.review figure{width:300px} .review img{width:300px}
.kpi{display:inline-block;margin:.3em 1.2em .3em 0}.kpi b{font-size:1.6em;display:block}
.miss figcaption b{color:#b71c1c} .alarm figcaption b{color:#e65100}
"""

_CAPTIONS = {
    "examples": "Example good and defective test images.",
    "loss_curve": "Training and validation loss per epoch.",
    "reconstruction": "Original, reconstruction and squared error for the highest-scoring and typical images "
                      "(one colour scale for all).",
    "confusion_matrix": "Confusion matrix at the calibrated threshold.",
    "roc": "ROC curve; the dot is the operating point at the threshold.",
    "score_histogram": "Scores of good and defective images; the dashed line is the threshold.",
    "threshold_explorer": "False-alarm rate and miss rate for every threshold; dashed: the current one.",
}


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.4g}"
    return html.escape(str(v))


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(png: bytes, alt: str, caption: str, css: str = "") -> str:
    b64 = base64.b64encode(png).decode("ascii")
    cls = f' class="{css}"' if css else ""
    return (f'<figure{cls}><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _review(ev) -> str:
    """The "look at these" section: every miss and false alarm (up to the limit), worst first."""
    m = ev.metrics
    if not ev.review:
        return (f"<p>No missed defects and no false alarms among {m.get('n_test')} test images at this "
                "threshold.</p>")
    counts = {item["kind"]: item["counts"] for item in ev.review}
    lead = []
    for kind, word in (("missed defect", "missed defects (least anomalous first)"),
                       ("false alarm", "false alarms (most anomalous first)")):
        n = counts.get(kind, 0)
        shown = sum(item["kind"] == kind for item in ev.review)
        if n:
            lead.append(f"{n} {word}" + (f", {shown} shown" if shown < n else ""))
    figs = "".join(_img(item["overlay"], item["name"],
                        f"<b>{html.escape(item['kind'])}</b> · {html.escape(item['name'])}<br>score "
                        f"{item['score']:.4g} · p = {item['p_value']:.3g}",
                        "miss" if item["kind"] == "missed defect" else "alarm") for item in ev.review)
    return f"<p>{'; '.join(lead)}. Overlays: heat map on the calibrated scale (orange = threshold).</p>" \
           f'<div class="review">{figs}</div>'


def _reference_note(model) -> str:
    ref = getattr(model, "reference", None)
    if ref is None or ref.weight <= 0:
        return ""
    return f", relative to the most similar good images (weight {ref.weight:.2f}: the good images are not all alike)"


def _model_line(model, m: dict) -> str:
    preset = model.detector_config.get("preset")
    summary = model.summary
    return (f"Detector <b>{html.escape(model.detector_name)}</b>"
            + (f" (preset {html.escape(str(preset))})" if preset else "")
            + f" · trained on {summary.get('n_fit', '?')} good images, calibrated on "
              f"{summary.get('n_calibration', '?')} good images it did not fit · image score: "
              f"{html.escape(model.score_rule.reducer)} of the anomaly map{_reference_note(model)} · "
              f"test set: {m.get('n_good')} good, {m.get('n_defective')} defective.")


def render_report(model, ev, candidates: list[dict], *, title: str = "kizu inspection report") -> str:
    m, cal = ev.metrics, model.calibration
    kpis = [("image AUROC", m.get("image_auroc")), ("false-alarm rate", m.get("fpr")), ("recall", m.get("recall")),
            ("precision", m.get("precision")), ("F1", m.get("f1"))]
    if "pixel_auroc" in m:
        kpis += [("pixel AUROC", m.get("pixel_auroc")), ("AUPRO (FPR≤0.3)", m.get("aupro"))]
    kpi_html = "".join(f'<span class="kpi"><b>{_fmt(v)}</b>{html.escape(k)}</span>' for k, v in kpis)
    metric_rows = [{"metric": k, "value": m.get(k)} for k in
                   ("image_auroc", "image_aupr", "threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1",
                    "fpr", "pixel_auroc", "aupro") if k in m]
    left_out = m.get("pixel_metrics_left_out", [])
    pixel_note = (f'<div class="note">Pixel AUROC and AUPRO leave out {len(left_out)} defective image(s) without '
                  f"a ground-truth mask (first: {html.escape(left_out[0])}).</div>") if left_out else ""
    notes = "".join(f'<div class="note">{html.escape(n)}</div>' for n in cal.notes)
    figs = "".join(_img(png, name, html.escape(_CAPTIONS.get(name, name))) for name, png in ev.figures.items())
    per_type = (_table(ev.per_type, ["type", "n", "detected", "recall", "auroc"]) if ev.per_type
                else "<p>No defective images in the test set.</p>")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{_model_line(model, m)}</p>
<div>{kpi_html}</div>
{pixel_note}
<h2>Look at these</h2>
{_review(ev)}
<h2>What the threshold means</h2>
<div class="guarantee">Threshold rule <b>{html.escape(cal.rule)}</b>, alpha = {cal.alpha:g}:
{html.escape(cal.statement())}</div>
{notes}
<h2>Results at the threshold</h2>
<p>True positives (TP): <b>{m['tp']}</b> · False positives (FP): <b>{m['fp']}</b> ·
False negatives (FN): <b>{m['fn']}</b> · True negatives (TN): <b>{m['tn']}</b></p>
{_table(metric_rows, ["metric", "value"])}
<h2>Per defect type</h2>
{per_type}
<h2>Threshold explorer</h2>
<p>Confusion counts at a few candidate thresholds (on this test set). Change the model's threshold
with <code>kizu threshold</code>; none of these needs retraining.</p>
{_table(candidates, ["name", "threshold", "tp", "fp", "fn", "tn", "fpr", "miss_rate", "precision", "recall", "f1"])}
<h2>Figures</h2>
{figs}
<h2>Model</h2>
<pre>{html.escape(repr(model))}</pre>
<p>kizu writes p-values next to every score: p = (1 + number of calibration good images scoring at
least as high) / (n_cal + 1). An image is flagged when p ≤ alpha.</p>
</body></html>
"""
