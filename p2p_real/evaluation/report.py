"""The tables, plots and HTML report of an evaluation, written as one output set (OUT/evaluation.*).

Tables are plain text; the PIE-Bench table follows the layout of the PnPInversion README (docs/evaluate.md,
"The PIE-Bench table"), so that its numbers can be read beside the published ones. Plots need matplotlib
(pip install 'p2p-real[evaluate]'); without it the report says so and the rest is written.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inversion.verdict import LEVELS
from p2p_real.evaluation.runner import Evaluation
from p2p_real.files.output_sets import OutputSet

REPORT_NAME = "evaluation"
TOOL = "p2p-real evaluate"
RECON_COLUMNS = (
    "photo",
    "method",
    "caption",
    "psnr",
    "ssim",
    "latent_error",
    "vae_psnr",
    "vae_ssim",
    "lost_db",
    "drift_psnr",
    "verdict",
    "verdict_reason",
    "invert_s",
    "reconstruct_s",
)
PIE_COLUMNS = (
    "target",
    "edit_type",
    "edit_s",
    "bg_psnr",
    "bg_mse",
    "bg_ssim",
    "structure_distance",
    "lpips",
    "clip_whole",
    "clip_edited",
)
# the PnPInversion README's columns: (heading, row key, scale)
PIE_TABLE = (
    ("Structure Distance x10^3", "structure_distance", 1e3),
    ("PSNR", "bg_psnr", 1.0),
    ("LPIPS x10^3", "lpips", 1e3),
    ("MSE x10^4", "bg_mse", 1e4),
    ("SSIM x10^2", "bg_ssim", 1e2),
    ("CLIP Whole", "clip_whole", 1.0),
    ("CLIP Edited", "clip_edited", 1.0),
)


def report_paths(out: Path) -> list[Path]:
    """The report's files, its JSON (the set's sidecar) last."""
    return [out / f"{REPORT_NAME}.{suffix}" for suffix in ("csv", "txt", "png", "html", "json")]


def is_own_report(out: Path) -> bool:
    """Whether OUT/evaluation.json was written by evaluate (so a resumed run may rewrite the report)."""
    try:
        data = json.loads((out / f"{REPORT_NAME}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("tool") == TOOL


def mean(values: Sequence[Any]) -> float | None:
    """The mean of the finite numbers among `values` (None if there are none)."""
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(float(v))]
    return sum(numbers) / len(numbers) if numbers else None


def method_order(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The methods in the order they first appear."""
    return list(dict.fromkeys(str(row["method"]) for row in rows))


def summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: photos, mean figures, the verdicts counted, mean seconds."""
    table = []
    for method in method_order(rows):
        mine = [row for row in rows if row["method"] == method]
        entry: dict[str, Any] = {"method": method, "photos": len(mine)}
        for key in ("psnr", "ssim", "latent_error", "vae_psnr", "lost_db", "drift_psnr"):
            entry[key] = mean([row.get(key) for row in mine])
        entry["seconds"] = mean([(row.get("invert_s") or 0) + (row.get("reconstruct_s") or 0) for row in mine])
        for level in LEVELS:
            entry[level] = sum(1 for row in mine if row.get("verdict") == level)
        if any("bg_psnr" in row for row in mine):
            for _, key, _ in PIE_TABLE:
                entry[key] = mean([row.get(key) for row in mine])
            entry["edit_s"] = mean([row.get("edit_s") for row in mine])
        table.append(entry)
    return table


def _cell(value: Any, digits: int) -> str:
    """A table cell: the number rounded, '-' where there is none."""
    return "-" if value is None else f"{value:.{digits}f}"


def _table(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table with padded columns."""
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) for i, h in enumerate(head)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    return lines


def summary_lines(result: Evaluation) -> list[str]:
    """The summary per method as a table (and the PIE-Bench table in the README's layout)."""
    table = summary(result.rows)
    head = [
        "method",
        "photos",
        "PSNR dB",
        "SSIM",
        "latent MSE",
        "VAE dB",
        "lost dB",
        "drift PSNR",
        "good/fair/poor",
        "seconds",
    ]
    body = [
        [
            e["method"],
            str(e["photos"]),
            _cell(e["psnr"], 2),
            _cell(e["ssim"], 4),
            "-" if e["latent_error"] is None else f"{e['latent_error']:.2e}",
            _cell(e["vae_psnr"], 2),
            _cell(e["lost_db"], 2),
            _cell(e["drift_psnr"], 2),
            f"{e['good']}/{e['fair']}/{e['poor']}",
            _cell(e["seconds"], 2),
        ]
        for e in table
    ]
    lines = ["Reconstruction (mean per method; drift: plain DDIM's PSNR from direct's start)", *_table(head, body)]
    if result.pie:
        lines += ["", *pie_table_lines(table, result.not_computed), "", *edit_type_lines(result.rows)]
    return lines


def edit_type_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Background PSNR per method and PIE-Bench edit type (editing_type_id), with the cases of each type."""
    types = sorted({str(row.get("edit_type", "")) for row in rows}, key=lambda t: (len(t), t))
    head = ["method", *(f"type {t or '?'}" for t in types)]
    body = [
        [
            method,
            *(
                _cell(
                    mean(
                        [r.get("bg_psnr") for r in rows if r["method"] == method and str(r.get("edit_type", "")) == t]
                    ),
                    2,
                )
                for t in types
            ),
        ]
        for method in method_order(rows)
    ]
    counts = ", ".join(
        f"type {t or '?'}: {len({r['photo'] for r in rows if str(r.get('edit_type', '')) == t})}" for t in types
    )
    return [f"Background PSNR per edit type (cases: {counts})", *_table(head, body)]


def pie_table_lines(table: Sequence[dict[str, Any]], not_computed: dict[str, str]) -> list[str]:
    """The PIE-Bench table in the PnPInversion README's layout (background figures outside the edit mask),
    with a line per figure that was not computed."""
    head = ["Method", *(heading for heading, _, _ in PIE_TABLE)]
    body = [
        [
            f"{e['method']}+P2P",
            *(_cell(None if e.get(key) is None else e[key] * scale, 2) for _, key, scale in PIE_TABLE),
        ]
        for e in table
    ]
    lines = ["PIE-Bench (P2P edits; PSNR, MSE, SSIM and LPIPS of the background outside the mask)", *_table(head, body)]
    lines += [f"not computed: {figure}: {reason}" for figure, reason in sorted(not_computed.items())]
    return lines


def plot_png(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """Two plots as PNG bytes: per method, the distribution of dB lost to inversion, and PSNR against seconds;
    None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    methods = method_order(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    lost = [[r["lost_db"] for r in rows if r["method"] == m and r.get("lost_db") is not None] for m in methods]
    left.boxplot(lost, showmeans=True)
    for i, values in enumerate(lost, start=1):  # every photo as a point beside its box
        left.scatter([i + 0.25] * len(values), values, s=10, color=f"C{i - 1}", alpha=0.7)
    left.set_xticks(range(1, len(methods) + 1), methods, rotation=20)
    left.set_ylabel("dB lost to inversion (VAE ceiling - PSNR)")
    left.set_title("Reconstruction: dB lost per photo")
    left.axhline(0, color="grey", lw=0.8)
    for i, method in enumerate(methods):
        mine = [r for r in rows if r["method"] == method and r.get("psnr") is not None]
        seconds = [(r.get("invert_s") or 0) + (r.get("reconstruct_s") or 0) for r in mine]
        right.scatter(seconds, [r["psnr"] for r in mine], label=method, color=f"C{i}", alpha=0.8)
    right.set_xlabel("seconds (inversion + reconstruction)")
    right.set_ylabel("PSNR dB")
    right.set_title("PSNR against time")
    right.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def html_report(result: Evaluation, png: bytes | None, lines: Sequence[str]) -> str:
    """A self-contained HTML page: the plots (embedded), the summary tables and every row."""
    columns = RECON_COLUMNS + (PIE_COLUMNS if result.pie else ())
    figure = (
        f'<img alt="dB lost per method; PSNR against seconds" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}">'
        if png is not None
        else "<p>No plots: matplotlib is not installed (pip install 'p2p-real[evaluate]').</p>"
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if row.get(c) is None else str(row.get(c)))}</td>" for c in columns)
        + "</tr>"
        for row in result.rows
    )
    failures = "".join(f"<li>{html.escape(f'{c} / {m}: {r}')}</li>" for c, m, r in result.failures)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{TOOL}</title><style>"
        "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px} pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>{TOOL}</h1>{figure}<h2>Summary</h2><pre>{html.escape(chr(10).join(lines))}</pre>"
        + (f"<h2>Failed</h2><ul>{failures}</ul>" if failures else "")
        + f"<h2>Rows</h2><table><tr>{head}</tr>{body}</table></body></html>"
    )


def write_report(
    result: Evaluation, out: str | os.PathLike, overwrite: bool = False, extra: dict[str, Any] | None = None
) -> list[Path]:
    """Write OUT/evaluation.{csv,txt,png,html,json} as one output set; an earlier report of evaluate is
    replaced, any other file only with overwrite. Returns the paths written."""
    folder = Path(os.fspath(out)).expanduser()
    paths = report_paths(folder)
    csv_path, txt_path, png_path, html_path, json_path = paths
    lines = summary_lines(result)
    png = plot_png(result.rows)
    columns = RECON_COLUMNS + (PIE_COLUMNS if result.pie else ())
    data = {
        "tool": TOOL,
        "rows": result.rows,
        "summary": summary(result.rows),
        "not_computed": result.not_computed,
        "failures": [{"photo": c, "method": m, "reason": r} for c, m, r in result.failures],
        **(extra or {}),
    }

    def write_csv(tmp: Path) -> None:
        """The rows, one a line."""
        with tmp.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            for row in result.rows:
                writer.writerow(row)

    written = []
    own = is_own_report(folder)
    with OutputSet(folder, REPORT_NAME, paths, overwrite=overwrite or own) as files:
        written.append(files.write(csv_path, write_csv))
        written.append(files.write(txt_path, lambda tmp: tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")))
        if png is not None:
            written.append(files.write(png_path, lambda tmp: tmp.write_bytes(png)))
        elif png_path.exists() and (overwrite or own):
            png_path.unlink()  # an old plot would not match the new rows
        written.append(
            files.write(html_path, lambda tmp: tmp.write_text(html_report(result, png, lines), encoding="utf-8"))
        )
        written.append(files.write(json_path, lambda tmp: tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")))
    return written


def check_report(out: str | os.PathLike, overwrite: bool) -> None:
    """OutputExistsError before any work if a report file exists that evaluate did not write (without overwrite)."""
    from p2p_real.files.output_sets import OutputExistsError

    folder = Path(os.fspath(out)).expanduser()
    if overwrite or is_own_report(folder):
        return
    for path in report_paths(folder):
        if os.path.lexists(path):
            raise OutputExistsError(path)
