"""Edits of edits (docs/design.md, "Edits of edits"): EditResult.as_inversion(k) makes edit k the inversion of
the edited image, so that a second edit starts from the first without inverting again; its row 0 is edit k, the
chain is recorded in the file and in every later sidecar; the command line's --save-inversions and the page's
"edit this result" use it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from safetensors import safe_open

import cli
from inversion.artifact import ArtifactError, Inversion
from inversion.photos.image import pixel_sha256
from p2p_real import Editor
from p2p_real.testing import tiny_pipeline, tiny_sdxl_pipeline
from tests.families import EDITOR_STEPS, PHOTO_PROMPT, family
from tests.helpers import DOG, cli_args, draw_photo
from tests.ui_server import METHOD, STEPS, scene_photo

PROMPT = PHOTO_PROMPT  # the caption of conftest's inversions: "a photo of a cat sitting on a table"
TARGETS = ["a photo of a dog sitting on a table", "a photo of a lion sitting on a table"]
SECOND = "a photo of a dog sitting on a bed"
BLEND = (["cat"], ["dog"])
OLD_FILE = Path(__file__).parent / "data" / "before-chains.inv.safetensors"  # written by p2p-real before chains


@pytest.fixture(scope="module")
def first(editor, inversions):
    """Each method's first edit: two targets, blended from the first step through a mask of the photo's left
    half (so that the blend changes the target rows after every step)."""
    mask = np.zeros(inversions["direct"].original.shape[:2], dtype=np.float32)
    mask[:, : mask.shape[1] // 2] = 1.0
    return {m: editor.edit(inv, TARGETS, mask=mask, blend_start=0.0, progress=False) for m, inv in inversions.items()}


@pytest.mark.parametrize("method", ["direct", "null-text"])
def test_row_0_of_an_edit_of_edit_k_is_edit_k(editor, first, method):
    res = first[method]
    for k in (1, 2):
        chained = res.as_inversion(k)
        assert (chained.method, chained.prompt) == ("chain", TARGETS[k - 1])
        assert not torch.allclose(res.latents[k], res.latents[0])  # the edit changed something to carry
        second = editor.edit(
            chained, SECOND, blend_words=(["dog" if k == 1 else "lion"], ["dog"]), output_type="latent", progress=False
        )
        assert (second.latents[0] - res.latents[k]).abs().max() <= 1e-5
        assert not torch.allclose(second.latents[1], second.latents[0])
        rec = editor.reconstruct(chained, progress=False)
        assert rec.latent_error <= 1e-10


def test_the_chained_inversion_carries_what_row_k_used(editor, inversions, first):
    empty, caption = editor.uncond_embedding(), editor.embed([PROMPT])
    expected = {
        "null-text": inversions["null-text"].uncond_embeddings,
        "negative-prompt": caption.expand(EDITOR_STEPS, -1, -1),
        "ddim": empty.expand(EDITOR_STEPS, -1, -1),
        "direct": empty.expand(EDITOR_STEPS, -1, -1),
    }
    for method, res in first.items():
        inv, chained = inversions[method], res.as_inversion(2)
        assert torch.equal(chained.uncond_embeddings, expected[method].float()), method
        assert torch.equal(chained.latent_T, inv.latent_T) and torch.equal(chained.z0, res.latents[2:3])
        assert chained.pivots.shape == (EDITOR_STEPS, *inv.latent_T.shape[1:])
        assert (chained.size, chained.box, chained.model_id, chained.model_family) == (
            inv.size,
            inv.box,
            inv.model_id,
            inv.model_family,
        )
        assert np.array_equal(chained.original, np.asarray(res.images[2]))  # the pasted-back edit, photo size
        assert chained.original.shape == inv.original.shape and chained.image_sha256 == pixel_sha256(chained.original)
        assert chained.parent == {
            "photo": None,
            "image_sha256": inv.image_sha256,
            "inversion": None,
            "prompt": PROMPT,
            "method": method,
            "target": TARGETS[1],
            "row": 2,
            "spec": res.spec.to_dict(),
            "mask": "<ndarray>",
            "mask_sha256": None,
            "model": res.parameters["model"] and Path(res.parameters["model"]).name,
        }
    row0 = first["direct"].as_inversion(0)  # row 0 too: the reconstruction, pasted back
    assert row0.prompt == PROMPT and torch.equal(row0.pivots, inversions["direct"].pivots)


def test_a_chained_inversion_saves_and_loads_with_its_chain(tmp_path, editor, first):
    chained = first["null-text"].as_inversion(1)
    path = chained.save(tmp_path / "cat.1.inv.safetensors")
    loaded = Inversion.load(path)
    assert (loaded.method, loaded.prompt, loaded.chain) == ("chain", chained.prompt, chained.chain)
    for name in ("latent_T", "z0", "pivots", "uncond_embeddings"):
        assert torch.equal(getattr(loaded, name), getattr(chained, name)), name
    assert np.array_equal(loaded.original, chained.original)
    again = editor.edit(loaded, SECOND, output_type="latent", progress=False)
    assert torch.equal(again.latents[0], first["null-text"].latents[1])

    with safe_open(path, framework="pt") as f:
        header = f.metadata()
    assert json.loads(header["chain"]) == chained.chain
    data = path.read_bytes()
    path.write_bytes(data.replace(b"a photo of a cat sitting", b"a photo of a cow sitting"))  # a link's caption
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Inversion.load(path)


def test_an_inversion_file_from_before_chains_still_loads_and_keeps_its_format(tmp_path):
    old = Inversion.load(OLD_FILE)
    assert (old.method, old.chain, old.parent, old.num_inference_steps) == ("direct", [], None, 3)
    with safe_open(OLD_FILE, framework="pt") as f:
        assert "chain" not in f.metadata()
    with safe_open(old.save(tmp_path / "again.inv.safetensors"), framework="pt") as f:
        assert "chain" not in f.metadata()  # files without a chain are written as before


def test_every_later_sidecar_records_the_chain_oldest_first(tmp_path, editor, first):
    second = editor.edit(first["direct"].as_inversion(1), SECOND, progress=False)
    third = editor.edit(second.as_inversion(1), "a photo of a dog sitting on a sofa", progress=False)
    third.save(tmp_path, "third")
    sidecar = json.loads((tmp_path / "third.json").read_text())["parameters"]
    assert [link["target"] for link in sidecar["chain"]] == [TARGETS[0], SECOND]
    assert [link["method"] for link in sidecar["chain"]] == ["direct", "chain"]
    assert sidecar["chain"][0]["prompt"] == PROMPT and sidecar["method"] == "chain"
    assert sidecar["chain"][1]["image_sha256"] == second.inversion.image_sha256
    first["direct"].save(tmp_path, "first")
    assert "chain" not in json.loads((tmp_path / "first.json").read_text())["parameters"]


def test_a_result_without_a_trajectory_cannot_be_continued(tmp_path, editor, inversions):
    inv = inversions["direct"]
    generated = editor.generate(["a cat", "a dog"], generator=0, height=32, width=32, progress=False)
    latent = editor.edit(inv, TARGETS[0], output_type="latent", progress=False)
    unrecorded = editor.edit(inv, TARGETS[0], keep_trajectory=False, progress=False)
    with pytest.raises(ValueError, match="generated, not made from a photo's inversion"):
        generated.as_inversion(1)
    with pytest.raises(ValueError, match="latents only \\(output_type 'latent'\\)"):
        latent.as_inversion(1)
    with pytest.raises(ValueError, match="recorded no trajectory \\(made with keep_trajectory=False"):
        unrecorded.as_inversion(1)
    with pytest.raises(ValueError, match="recorded no trajectory"):
        unrecorded.save(tmp_path, "x", inversions=True)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
    recorded = editor.edit(inv, TARGETS[0], progress=False)
    with pytest.raises(ValueError, match="k must be a row of the edit, 0 to 1"):
        recorded.as_inversion(2)


def test_a_chained_inversion_used_with_another_model_names_the_model(editor, first):
    chained = first["direct"].as_inversion(1)
    sdxl = family(editor) == "sdxl"
    other = Editor((tiny_sdxl_pipeline if sdxl else tiny_pipeline)(seed=1), num_inference_steps=EDITOR_STEPS)
    made_with = "tiny-sdxl" if sdxl else "tiny-eps"  # the folders conftest saves the models in
    message = rf"model fingerprint .*\(it continues an edit made with the model {made_with}"
    with pytest.raises(ArtifactError, match=message):
        other.edit(chained, SECOND, progress=False)


def test_a_chain_is_no_way_to_invert_a_photo(editor):
    with pytest.raises(ValueError, match="method must be one of"):
        editor.invert(skimage.data.chelsea()[::6, ::6].copy(), PROMPT, method="chain", progress=False)


def test_the_command_line_saves_each_edit_as_an_inversion_and_edits_it_again(
    tmp_path, tiny_model_dir, monkeypatch, capsys
):
    draw_photo(tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    common = ["--model", str(tiny_model_dir), "--device", "cpu", "--out", "out", "-q"]
    targets = [DOG, "a cow on a wall"]
    first = cli_args(
        "edit", "photo.png", "--steps", 2, "--method", "direct", "--save-inversions", *common, targets=targets
    )
    assert cli.main(first) == 0, capsys.readouterr().err
    sidecar = json.loads((tmp_path / "out/photo.json").read_text())
    assert sidecar["outputs"]["inversions"] == ["photo.1.inv.safetensors", "photo.2.inv.safetensors"]
    assert "--save-inversions" in sidecar["argv"]
    chained = Inversion.load(tmp_path / "out/photo.2.inv.safetensors")
    assert (chained.method, chained.prompt, chained.parent["target"]) == ("chain", "a cow on a wall", "a cow on a wall")
    assert chained.parent["photo"] == "photo.png" and chained.parent["method"] == "direct"

    assert cli.main(first) == 1  # the inversions are outputs like the others: not replaced without --overwrite
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert cli.main([*first, "--overwrite"]) == 0

    second = ["edit", "out/photo.1.inv.safetensors", "-t", "a dog on a red wall", *common]
    assert cli.main(second) == 0, capsys.readouterr().err
    again = json.loads((tmp_path / "out/photo.1.json").read_text())
    assert again["parameters"]["method"] == "chain" and again["parameters"]["inversion"] == "photo.1.inv.safetensors"
    assert [link["target"] for link in again["parameters"]["chain"]] == ["a dog on a wall"]
    assert "--method" not in again["argv"]  # a chain is no --method choice; the file fixes it
    other = tmp_path / "other-model"
    tiny_pipeline(seed=1).save_pretrained(other)
    assert (
        cli.main(
            [
                "edit",
                "out/photo.2.inv.safetensors",
                "-t",
                "a cow on a red wall",
                *common[:1],
                str(other),
                "--device",
                "cpu",
                "--out",
                "other",
                "-q",
            ]
        )
        == 1
    )
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "it continues an edit made with the model " in error, error
    assert not (tmp_path / "other").exists()  # nothing written
    assert cli.main([*again["argv"], "--model", str(tiny_model_dir), "--out", "again", "-q"]) == 0  # reproducible
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "again/photo.1.1.png")), np.asarray(Image.open(tmp_path / "out/photo.1.1.png"))
    )


def test_the_page_continues_from_the_current_edit_without_inverting(offline_page, tmp_path, monkeypatch):
    photo, caption = scene_photo(tmp_path / "chain.png", size=(184, 160))  # not test_ui's photo: the page caches
    target, second = caption.replace("circle", "square"), caption.replace("circle", "square").replace("yellow", "blue")
    session = Client(offline_page.url, verbose=False, download_files=str(tmp_path / "downloads"))

    def call(*args, api_name: str):
        """What the page answers to one call."""
        return session.submit(*args, api_name=api_name).result(timeout=300)

    call(handle_file(str(photo)), caption, METHOD, STEPS, api_name="/invert")
    with pytest.raises(AppError, match="edit the photo first"):
        call(api_name="/continue")
    call(caption, target, [], api_name="/words")  # the word pickers offer the prompts' words
    (_, edited), *_ = call(caption, target, ["circle"], ["square"], 0.3, [], 1.0, "auto", 0.8, 0.6, api_name="/edit")
    inverted = []
    monkeypatch.setattr(offline_page.studio.editor, "invert", lambda *a, **k: inverted.append(a))
    _, verdict, _, new_caption, new_target = call(api_name="/continue")
    assert inverted == []  # nothing is inverted: the edit's own trajectory is the inversion
    assert new_caption == new_target == target and "Continues from the last edit" in verdict

    (before, after), _, _, _, files, command = call(
        target, second, [], [], 0.3, [], 1.0, "auto", 0.8, 0.6, api_name="/edit"
    )
    with Image.open(before) as b, Image.open(edited) as e:
        assert np.array_equal(np.asarray(b), np.asarray(e))  # the page now edits the first edit
    sidecar = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())["parameters"]
    assert sidecar["method"] == "chain" and sidecar["prompt"] == target
    assert [(link["prompt"], link["target"]) for link in sidecar["chain"]] == [(caption, target)]
    args = cli.build_parser().parse_args(shlex.split(command)[1:])  # the same edit: of the first edit's inversion
    assert args.input.endswith(".1.inv.safetensors") and args.method is None and args.prompt == target
    assert any(f.endswith(".1.inv.safetensors") for f in files)
