"""The real-photo workflow in the library (docs/design.md §4, §6, §7): edit settings, the pre-flight check,
inversions checked against a photo and reused from a cache, step callbacks and cancellation, saving."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from inversion.artifact import Inversion, MismatchError
from inversion.cache import CachedMismatchError, InversionCache
from inversion.settings import InversionSettings
from p2p_real import Cancelled, Editor, EditSpec, PromptError, load_pipeline
from p2p_real.defaults import TOY_MODEL_DIR
from p2p_real.files.outputs import shareable
from tests.helpers import draw_photo

STEPS = 3
PROMPT, TARGET = "a cat on a wall", "a dog on a wall"


@pytest.fixture(scope="module")
def editor(tiny_pipe):
    return Editor(tiny_pipe, num_inference_steps=STEPS)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return draw_photo(tmp_path_factory.mktemp("photo") / "photo.png")


@pytest.fixture
def unet_calls(tiny_pipe):
    """How many times the UNet runs inside the test."""
    calls = []
    handle = tiny_pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    yield calls
    handle.remove()


def test_the_spec_holds_both_sets_of_defaults_and_round_trips_through_json():
    assert (EditSpec().self_replace_steps, EditSpec().self_replace_max_res) == (0.6, 0.5)  # photos
    synthetic = EditSpec.synthetic()
    assert (synthetic.self_replace_steps, synthetic.self_replace_max_res) == (0.4, 0.25)  # generated images
    spec = EditSpec(
        cross_replace_steps={"default_": (0.1, 0.8), "dog": 0.4},
        blend_words=(["cat"], ["dog"]),
        subtract_words=[["wall"], ["wall"]],
        equalizer={"dog": [2.0]},
        mask_mode="intersect",
        feather=0.02,
    )
    data = json.loads(json.dumps(spec.to_dict()))
    assert EditSpec.from_dict(data) == spec
    assert EditSpec.from_dict({"blend_start": 0.0}, synthetic=True) == EditSpec.synthetic(blend_start=0.0)
    with pytest.raises(ValueError, match="unknown edit setting 'blend'"):
        EditSpec.from_dict({"blend": "cat:dog"})


def test_spec_errors_name_the_setting_as_the_caller_spells_it():
    with pytest.raises(ValueError, match=r"^blend_threshold must be a fraction in \[0, 1\], got 2"):
        EditSpec(blend_threshold=2)
    with pytest.raises(ValueError, match=r"^--blend-threshold must be a fraction"):
        EditSpec(blend_threshold=2, names={"blend_threshold": "--blend-threshold"})
    with pytest.raises(ValueError, match=r"^subtract needs blend"):
        EditSpec(subtract_words=["wall"], names={"subtract_words": "subtract", "blend_words": "blend"})


def test_keyword_arguments_and_a_spec_make_the_same_edit(editor):
    kwargs = {"blend_words": (["cat"], ["dog"]), "equalizer": {"dog": 2.0}, "cross_replace_steps": 0.6}
    by_kwargs = editor.generate([PROMPT, TARGET], generator=1, output_type="latent", progress=False, **kwargs)
    by_spec = editor.generate(
        [PROMPT, TARGET], generator=1, output_type="latent", progress=False, spec=EditSpec.synthetic(**kwargs)
    )
    assert torch.equal(by_kwargs.images, by_spec.images) and by_kwargs.spec == by_spec.spec
    overridden = editor.generate(
        [PROMPT, TARGET],
        generator=1,
        output_type="latent",
        progress=False,
        spec=EditSpec.synthetic(**kwargs),
        blend_words=(["wall"], ["wall"]),
    )
    assert overridden.spec.blend_words == (("wall",), ("wall",))  # a keyword argument overrides the spec


def test_check_finds_a_misspelt_word_before_anything_runs(editor, unet_calls):
    spec = EditSpec(blend_words=(["cow"], ["dog"]), names={"blend_words": "--blend"})
    with pytest.raises(PromptError, match="--blend: word 'cow' is not in prompt 'a cat on a wall'"):
        editor.check([PROMPT, TARGET], spec)
    with pytest.raises(PromptError, match="tokens"):
        editor.check([" ".join(["cat"] * 80), TARGET])
    editor.check([PROMPT, TARGET], EditSpec(blend_words=(["cat"], ["dog"]), equalizer={"dog": 2.0}))
    assert unet_calls == []


def test_an_inversion_names_what_differs_from_the_photo_and_settings(editor, photo, tmp_path):
    inv = editor.invert(photo, PROMPT, method="ddim", progress=False)
    inv.save(tmp_path / "photo.inv.safetensors")
    asked = InversionSettings(PROMPT, "ddim", STEPS, 7.5, None, False)
    inv.check_matches(asked, photo, editor.pipe)  # the photo, settings and model it was made with
    names = {"num_inference_steps": "--steps"}
    with pytest.raises(MismatchError, match=r"photo\.inv\.safetensors was inverted with --steps 3, not 4"):
        inv.check_matches(InversionSettings(num_inference_steps=4, names=names))
    with pytest.raises(MismatchError, match="another photo"):
        inv.check_matches(asked, draw_photo(tmp_path / "other.png", sun=(10, 200, 10)), editor.pipe)
    with pytest.raises(MismatchError, match="another part or size"):
        inv.check_matches(InversionSettings(PROMPT, square=True), photo, editor.pipe)
    inv.check_matches(InversionSettings(PROMPT), photo)  # square=None: the working area is not asked about


def test_the_cache_reuses_an_inversion_that_fits_and_keys_other_settings_apart(editor, photo, tmp_path, unet_calls):
    cache = InversionCache(tmp_path)
    first = editor.invert(photo, PROMPT, method="ddim", progress=False, cache=cache)
    made = len(unet_calls)
    again = editor.invert(photo, PROMPT, method="ddim", progress=False, cache=cache)
    assert len(unet_calls) == made and torch.equal(again.latent_T, first.latent_T)  # loaded, not inverted
    editor.invert(photo, PROMPT, method="negative-prompt", progress=False, cache=cache)
    assert len(list(tmp_path.glob("photo.*.inv.safetensors"))) == 2


def test_a_keyed_cache_finds_its_last_inversion_again_without_reading_the_file_until_it_changes(
    editor, photo, tmp_path, monkeypatch
):
    """A batch edits one photo several times: the cache keeps the inversion it last saved or found (its key names
    the photo's content, the settings and the model), and reads the file again only once it has changed."""
    cache = InversionCache(tmp_path)
    settings = InversionSettings(PROMPT, method="ddim", num_inference_steps=STEPS, guidance_scale=editor.guidance_scale)
    saved = editor.invert(photo, PROMPT, method="ddim", progress=False, cache=cache)
    loads = []
    real_load = Inversion.load
    monkeypatch.setattr(Inversion, "load", staticmethod(lambda path: loads.append(path) or real_load(path)))
    for _ in range(2):
        found, why = cache.find(photo, settings, editor.pipe)
        assert found is saved and why == ""
    assert loads == []
    path = cache.path(photo, settings, editor.pipe)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))  # the file changed meanwhile
    found, _ = cache.find(photo, settings, editor.pipe)
    assert loads == [path] and found is not saved and torch.equal(found.latent_T, saved.latent_T)
    assert InversionCache(tmp_path).find(photo, settings, editor.pipe)[0] is not found  # per cache object


def test_a_cache_without_keys_refuses_or_replaces_an_inversion_that_does_not_fit(editor, photo, tmp_path):
    editor.invert(photo, PROMPT, method="ddim", progress=False, cache=InversionCache(tmp_path, keyed=False))
    saved = tmp_path / "photo.inv.safetensors"
    stamp = saved.stat().st_mtime_ns
    with pytest.raises(CachedMismatchError, match="exists but does not fit"):
        editor.invert(
            photo, PROMPT, method="direct", progress=False, cache=InversionCache(tmp_path, keyed=False, replace=False)
        )
    assert saved.stat().st_mtime_ns == stamp
    inv = editor.invert(
        photo, PROMPT, method="direct", progress=False, cache=InversionCache(tmp_path, keyed=False, replace=True)
    )
    assert inv.method == "direct" and saved.stat().st_mtime_ns != stamp


def test_step_callbacks_see_every_step_and_may_change_the_latents(editor):
    seen = []

    def callback(ed, step, timestep, kwargs):
        seen.append((step, timestep))
        return {"latents": kwargs["latents"] * 0} if step == STEPS - 1 else None

    res = editor.generate(
        [PROMPT, TARGET], generator=0, output_type="latent", progress=False, callback_on_step_end=callback
    )
    assert seen == list(enumerate(editor.scheduler.timesteps.tolist()))
    assert not res.images.any()  # the last step's latents were replaced


def test_step_callbacks_see_the_blend_mask_each_step_made(editor):
    """From the step local blend starts, the callback gets that step's mask (the one the latents were blended
    with); before it, None. The last one is the result's mask."""
    masks = []

    def callback(ed, step, timestep, kwargs):
        masks.append(kwargs["blend_mask"])

    res = editor.generate(
        [PROMPT, TARGET],
        generator=0,
        blend_words=(["cat"], ["dog"]),
        blend_start=0.5,
        output_type="latent",
        progress=False,
        callback_on_step_end=callback,
    )
    started = [m is not None for m in masks]
    assert started == sorted(started) and 0 < sum(started) < STEPS  # None before blend_start, then a mask
    assert masks[-1] is res.info["blend_mask"] or torch.equal(masks[-1], res.info["blend_mask"])


def test_cancelling_stops_a_call_and_leaves_the_pipeline_as_it_was(editor, photo, tiny_pipe, unet_calls):
    before = dict(tiny_pipe.unet.attn_processors)

    def cancel_at_second_step(ed, step, timestep, kwargs):
        if step == 1:
            ed.cancel()

    with pytest.raises(Cancelled):
        editor.generate([PROMPT, TARGET], generator=0, progress=False, callback_on_step_end=cancel_at_second_step)
    assert len(unet_calls) == 2 and all(tiny_pipe.unet.attn_processors[k] is v for k, v in before.items())
    stages = []
    with pytest.raises(Cancelled):
        editor.invert(
            photo,
            PROMPT,
            method="null-text",
            progress=False,
            callback_on_step_end=lambda ed, step, t, kw: (
                stages.append(kw["stage"]),
                step == 1 and kw["stage"] == "null-text" and ed.cancel(),
            ),
        )
    assert stages == ["ddim"] * STEPS + ["null-text"] * 2
    assert editor.generate(PROMPT, generator=0, output_type="latent", progress=False).images.shape[0] == 1


def test_save_writes_images_masks_grid_and_the_sidecar_each_atomically(editor, photo, tmp_path, monkeypatch):
    inv = editor.invert(photo, PROMPT, method="ddim", progress=False)
    res = editor.edit(inv, TARGET, blend_words=(["cat"], ["dog"]), progress=False)
    written = res.save(tmp_path, "cat")
    assert [p.name for p in written] == ["cat.0.png", "cat.1.png", "cat.1.mask.png", "cat.grid.png", "cat.json"]
    sidecar = json.loads((tmp_path / "cat.json").read_text())
    assert sidecar["parameters"] == shareable(res.parameters)  # a local model by its name
    assert sidecar["outputs"]["masks"] == ["cat.1.mask.png"]
    assert EditSpec.from_dict(sidecar["parameters"]["spec"]) == res.spec  # the sidecar loads the spec back
    real = {"replace": os.replace, "link": os.link}

    def failing_on_the_grid(name):
        def commit(src, dst):
            if str(dst).endswith(".grid.png"):
                raise OSError("disk full")
            real[name](src, dst)

        return commit

    for name in real:  # a new file is committed by a hard link, a replaced one by a rename
        monkeypatch.setattr(os, name, failing_on_the_grid(name))
    with pytest.raises(OSError, match="disk full"):
        res.save(tmp_path / "again", "cat")
    assert not list((tmp_path / "again").glob("*"))  # all or nothing (docs/reliability.md)
    with pytest.raises(ValueError, match="output_type"):
        editor.edit(inv, TARGET, output_type="latent", progress=False).save(tmp_path, "latent")


def test_load_pipeline_knows_the_shipped_toy_model():
    pipe = load_pipeline("toy", device="cpu")
    assert pipe.name_or_path is not None and os.fspath(pipe.name_or_path) == os.fspath(TOY_MODEL_DIR)
    assert np.isfinite(
        Editor(pipe, num_inference_steps=2)
        .generate("a red circle", generator=0, output_type="np", progress=False)
        .images
    ).all()
