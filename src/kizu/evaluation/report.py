"""One self-contained report.html: figures embedded as base64 PNG, metrics and what the threshold means."""

from __future__ import annotations

import base64
import html
import math

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #eee;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ddd;padding:.3em .7em;text-align:right}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:.6em 1em;margin:1em 0}
.guarantee{background:#e8f5e9;border-left:4px solid #2e7d32;padding:.6em 1em;margin:1em 0}
figure{display:inline-block;margin:.5em;vertical-align:top} img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555;max-width:520px}
.kpi{display:inline-block;margin:.3em 1.2em .3em 0}.kpi b{font-size:1.6em;display:block}
"""

_CAPTIONS = {
    "examples": "Example good and defective test images.",
    "loss_curve": "Training and validation loss per epoch.",
    "reconstruction": "Original, reconstruction and per-pixel error for the highest-scoring and typical images "
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


def _img(name: str, png: bytes) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    cap = _CAPTIONS.get(name, "Overlay: heat map on a fixed scale (orange = threshold), regions boxed."
                        if name.startswith("overlay") else name)
    return f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(cap)}</figcaption></figure>'


def _reference_note(model) -> str:
    ref = getattr(model, "reference", None)
    if ref is None or ref.weight <= 0:
        return ""
    return f", relative to the most similar good images (weight {ref.weight:.2f}: the good images are not all alike)"


def render_report(model, ev, candidates: list[dict], *, title: str = "kizu inspection report") -> str:
    m, cal = ev.metrics, model.calibration
    rule = cal.rule
    guarantee = cal.statement()
    kpis = [("image AUROC", m.get("image_auroc")), ("false-alarm rate", m.get("fpr")), ("recall", m.get("recall")),
            ("precision", m.get("precision")), ("F1", m.get("f1"))]
    if "pixel_auroc" in m:
        kpis += [("pixel AUROC", m.get("pixel_auroc")), ("AUPRO (FPR≤0.3)", m.get("aupro"))]
    kpi_html = "".join(f'<span class="kpi"><b>{_fmt(v)}</b>{html.escape(k)}</span>' for k, v in kpis)
    metric_rows = [{"metric": k, "value": m.get(k)} for k in
                   ("image_auroc", "image_aupr", "threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1",
                    "fpr", "pixel_auroc", "aupro") if k in m]
    det = model.detector
    left_out = m.get("pixel_metrics_left_out", [])
    left_out_text = (f"Pixel AUROC and AUPRO leave out {len(left_out)} defective image(s) without a ground-truth "
                     f"mask (first: {left_out[0]}).") if left_out else ""
    pixel_note = f'<div class="note">{html.escape(left_out_text)}</div>' if left_out else ""
    notes = "".join(f'<div class="note">{html.escape(n)}</div>' for n in cal.notes)
    figs = "".join(_img(k, v) for k, v in ev.figures.items())
    summary = model.summary
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Detector <b>{html.escape(det.name)}</b> ({html.escape(str(det.config().get('preset', '')))}) ·
trained on {summary.get('n_fit', '?')} good images, calibrated on {summary.get('n_calibration', '?')} held-out good images ·
image score: {html.escape(model.score_rule.reducer)} of the anomaly map{_reference_note(model)} · test set: {m.get('n_good')} good, {m.get('n_defective')} defective.</p>
<div>{kpi_html}</div>
{pixel_note}
<h2>What the threshold means</h2>
<div class="guarantee">Threshold rule <b>{html.escape(rule)}</b>, alpha = {cal.alpha:g}: {html.escape(guarantee)}</div>
{notes}
<h2>Results at the threshold</h2>
<p>True positives (TP): <b>{m['tp']}</b> · False positives (FP): <b>{m['fp']}</b> ·
False negatives (FN): <b>{m['fn']}</b> · True negatives (TN): <b>{m['tn']}</b></p>
{_table(metric_rows, ["metric", "value"])}
<h2>Per defect type</h2>
{_table(ev.per_type, ["type", "n", "detected", "recall", "auroc"]) if ev.per_type else "<p>No defective images in the test set.</p>"}
<h2>Threshold explorer</h2>
<p>Confusion counts at a few candidate thresholds (on this test set). Change the model's threshold
with <code>kizu threshold</code>; none of these needs retraining.</p>
{_table(candidates, ["name", "threshold", "tp", "fp", "fn", "tn", "fpr", "miss_rate", "precision", "recall", "f1"])}
<h2>Figures</h2>
{figs}
<h2>Model</h2>
<pre>{html.escape(repr(model))}</pre>
<p>kizu writes p-values next to every score: p = (1 + number of calibration good images scoring at least as high) / (n_cal + 1).
An image is flagged when p ≤ alpha.</p>
</body></html>
"""
