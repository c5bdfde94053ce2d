"""The reconstruction report: what each method's figure measures, direct inversion's drift, and the verdict
(docs/design.md, "The default method, and the report")."""

import json

import pytest

from inversion.methods import DEFAULT_METHOD
from inversion.verdict import DRIFT_DB, LOST_DB, reconstruction_verdict
from p2p_real import Editor
from tests.families import PHOTO_PROMPT as PROMPT


@pytest.fixture(scope="module")
def recs(sd_editor, sd_inversions):
    return {m: sd_editor.reconstruct(sd_inversions[m], progress=False) for m in ("ddim", "null-text", "direct")}


def test_the_default_method_is_direct_inversion(sd_editor, photo):
    assert DEFAULT_METHOD == "direct"
    assert sd_editor.invert(photo, PROMPT, progress=False).method == "direct"


@pytest.mark.parametrize(
    ("lost", "level"),
    [
        (0.0, "good"),
        (LOST_DB[0], "good"),
        (LOST_DB[0] + 0.01, "fair"),
        (LOST_DB[1], "fair"),
        (LOST_DB[1] + 0.01, "poor"),
    ],
)
def test_the_verdict_follows_the_db_lost_to_inversion(lost, level):
    verdict = reconstruction_verdict(lost)
    assert (verdict.level, verdict.figure) == (level, "lost_db")
    assert f"{lost:.2f} dB lost" in str(verdict)


@pytest.mark.parametrize(
    ("drift", "level"),
    [(DRIFT_DB[0], "good"), (DRIFT_DB[0] + 0.01, "fair"), (DRIFT_DB[1], "fair"), (DRIFT_DB[1] + 0.01, "poor")],
)
def test_a_direct_verdict_follows_the_drift_not_the_exact_reconstruction(drift, level):
    verdict = reconstruction_verdict(0.0, drift)  # 0 dB lost: exact, as direct inversion always is
    assert (verdict.level, verdict.figure) == (level, "drift_db")


def test_direct_inversion_reports_the_drift_plain_ddim_would_have(recs):
    direct, ddim = recs["direct"], recs["ddim"]
    assert direct.lost_db == pytest.approx(0.0, abs=1e-3)  # exact by construction: says nothing alone
    # the drift is plain DDIM sampled from the same start with the same caption: the ddim method's reconstruction
    assert direct.drift_psnr == pytest.approx(ddim.psnr, abs=1e-4)
    assert direct.drift_db == pytest.approx(ddim.lost_db, abs=1e-4)
    assert direct.verdict().figure == "drift_db"
    report = direct.report()
    assert "exact by construction" in report and f"drift           {direct.drift_db:.2f} dB" in report
    assert report.splitlines()[-1] == f"verdict         {direct.verdict()}"


def test_other_methods_report_the_db_lost_and_no_drift(recs):
    for method in ("ddim", "null-text"):
        rec = recs[method]
        assert rec.drift_psnr is None and rec.drift_image is None
        assert rec.verdict().figure == "lost_db" and rec.verdict().value == pytest.approx(rec.lost_db)
        assert f"lost to inversion {rec.lost_db:.2f} dB" in rec.report() and "verdict" in rec.report()


def test_the_saved_reconstruction_shows_the_drift_and_records_the_verdict(recs, tmp_path):
    direct = recs["direct"]
    paths = {p.name: p for p in direct.save(tmp_path, "cat")}
    metrics = json.loads(paths["cat.recon.json"].read_text())["metrics"]
    assert metrics["verdict"] == direct.verdict().level
    assert metrics["drift_psnr"] == pytest.approx(direct.drift_psnr, abs=1e-5)
    plain = {p.name: p for p in recs["ddim"].save(tmp_path, "plain")}
    from PIL import Image

    # photo | VAE only | plain DDIM (drift) | direct: one tile wider than the grid without a drift
    assert Image.open(paths["cat.recon.grid.png"]).width > Image.open(plain["plain.recon.grid.png"]).width


def test_on_the_toy_model_a_wrong_caption_no_longer_reports_perfect():
    """direct inversion reconstructs exactly whatever the caption; its drift tells a wrong one (a scene of the
    drift measurement in docs/design.md: right caption 12.4 dB, wrong background 23.2 dB)."""
    import numpy as np

    from p2p_real import load_pipeline
    from p2p_real.toyworld.edits import make_edit
    from p2p_real.toyworld.model import ATTENTION_RES
    from p2p_real.toyworld.scenes import random_scene, render

    toy = Editor(load_pipeline("toy", device="cpu"), attention_res=ATTENTION_RES)
    rendered = render(random_scene(np.random.default_rng(77), n_objects=1, sizes=["big"]), toy.default_size[0])
    wrong = make_edit("background", rendered, np.random.default_rng(0)).target
    right_rec, wrong_rec = (
        toy.reconstruct(toy.invert(rendered.image, caption, progress=False), progress=False)
        for caption in (rendered.caption, wrong)
    )
    assert right_rec.lost_db == pytest.approx(0.0, abs=1e-3) and wrong_rec.lost_db == pytest.approx(0.0, abs=1e-3)
    assert right_rec.verdict().level == "good" and wrong_rec.verdict().level == "poor", (
        right_rec.report(),
        wrong_rec.report(),
    )
