"""A plain-language verdict on a reconstruction: good, fair or poor, and why (docs/design.md, "The report").

What a reconstruction's figure measures depends on the method:
- ddim, negative-prompt, null-text, null-text-fast: the photo sampled back from the inversion with the
  method's unconditional embeddings. The dB lost to inversion (VAE ceiling minus reconstruction PSNR) is how far
  the method's row 0 will sit from the photo while editing.
- direct: the source row is set onto the pivot after every step, so the reconstruction is exact by
  construction and its "0.00 dB lost" says nothing. What says something is the drift it corrects: the dB that
  plain DDIM sampling from the same start with the same caption loses. A caption that does not describe the
  photo drifts further, and the edits then start from a source row that the model does not agree with.
"""

from __future__ import annotations

from dataclasses import dataclass

# dB lost to inversion below the VAE's own reconstruction: at most the first is good, at most the second fair
LOST_DB = (1.0, 3.0)
# dB that plain DDIM loses from the same start (direct inversion's drift): at most the first is good, at most the
# second fair. Measured on the toy model (docs/design.md, "The default method, and the report"): right captions
# drift 9.5-16.4 dB, captions with one wrong word or another scene's caption 14.3-33.1 dB (31 of 32 above 17).
DRIFT_DB = (17.0, 20.0)
LEVELS = ("good", "fair", "poor")


@dataclass(frozen=True)
class Verdict:
    """good / fair / poor, the figure it rests on, and a sentence for people."""

    level: str
    figure: str  # "lost_db" or "drift_db"
    value: float
    reason: str

    def __str__(self) -> str:
        return f"{self.level}: {self.reason}"


def _level(value: float, thresholds: tuple[float, float]) -> str:
    """The level of a figure where lower is better."""
    if value <= thresholds[0]:
        return LEVELS[0]
    return LEVELS[1] if value <= thresholds[1] else LEVELS[2]


def reconstruction_verdict(lost_db: float, drift_db: float | None = None) -> Verdict:
    """The verdict on a reconstruction: from the drift a pivot-following method corrects (`drift_db`, direct
    inversion), else from the dB lost to inversion."""
    if drift_db is not None:
        level = _level(drift_db, DRIFT_DB)
        advice = {
            "good": "exact reconstruction, and the caption agrees with the photo",
            "fair": "exact reconstruction, but plain DDIM drifts from this caption: check that it describes the photo",
            "poor": "exact reconstruction, but plain DDIM drifts far from this caption: it may not describe the "
            "photo, and edits may not take",
        }[level]
        return Verdict(level, "drift_db", drift_db, f"{advice} (drift {drift_db:.2f} dB)")
    level = _level(lost_db, LOST_DB)
    advice = {
        "good": "the reconstruction is as close as the VAE allows",
        "fair": "the reconstruction lost some detail: edits keep the photo's layout but not every detail",
        "poor": "the reconstruction drifted from the photo: try `direct` or `null-text`, or check the caption",
    }[level]
    return Verdict(level, "lost_db", lost_db, f"{advice} ({lost_db:.2f} dB lost to inversion)")
