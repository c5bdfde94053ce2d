"""Stable Diffusion XL (docs/design.md §12): every path of the editor on the tiny SDXL pipeline: generation,
edits, words on two tokenizers, attention maps, inversion, artifacts, paste-back and the VAE in float16."""

from __future__ import annotations

import copy
import types

import numpy as np
import pytest
import skimage.data
import torch
from diffusers import StableDiffusionXLPipeline

from inversion.artifact import ArtifactError, Inversion, MismatchError
from inversion.encoding.sdxl import SDXLUNet, TokenizerPair, pack, unpack
from inversion.encoding.vae import decode_latents
from inversion.fingerprint import pipeline_fingerprint
from inversion.invert import invert
from inversion.loops.ddim import ddim_scheduler
from inversion.settings import InversionSettings
from p2p_real import Editor, EditSpec, PromptError
from tests.families import EDITOR_STEPS as STEPS
from tests.families import PHOTO_PROMPT as PROMPT
from tests.families import SDXL_SIZE

SRC, TGT = "a photo of a cat on the wall", "a photo of a dog on the wall"
TARGET = "a photo of a dog sitting on a table"


def z_T(seed=0, h=32, w=32):
    return torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(seed))


def unet_inputs(pipe, run):
    """What `run` passes the pipeline's UNet on its first call: text tokens, pooled embeddings, time ids."""
    seen = []

    def hook(module, args, kwargs):
        if not seen:
            seen.append(
                (
                    kwargs["encoder_hidden_states"].clone(),
                    {k: v.clone() for k, v in kwargs["added_cond_kwargs"].items()},
                )
            )

    handle = pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return seen[0]


# --- generation (§1) ---


def test_row_zero_equals_plain_generation_when_the_empty_prompt_is_encoded_not_zeroed(sdxl_editor, tiny_sdxl_pipe):
    z = z_T(2)
    assert not sdxl_editor.uncond_embedding().any()  # force_zeros_for_empty_prompt, as SDXL base 1.0
    tiny_sdxl_pipe.register_to_config(force_zeros_for_empty_prompt=False)
    try:
        assert sdxl_editor.uncond_embedding().abs().sum() > 0
        res = sdxl_editor.generate([SRC, TGT], latents=z, output_type="latent", progress=False)
        plain = tiny_sdxl_pipe(
            SRC, latents=z, num_inference_steps=STEPS, guidance_scale=7.5, output_type="latent"
        ).images
    finally:
        tiny_sdxl_pipe.register_to_config(force_zeros_for_empty_prompt=True)
    torch.testing.assert_close(res.images[:1], plain, atol=2e-4, rtol=1e-4)


def test_the_unet_gets_the_tokens_pooled_embeddings_and_time_ids_the_sdxl_pipeline_gives_it(
    sdxl_editor, tiny_sdxl_pipe
):
    z = z_T(3, 24, 40)  # 48 x 80 px: the time ids carry the size
    ours = unet_inputs(
        tiny_sdxl_pipe,
        lambda: sdxl_editor.generate(
            [SRC], latents=z, height=48, width=80, num_inference_steps=1, output_type="latent", progress=False
        ),
    )
    plain = unet_inputs(
        tiny_sdxl_pipe,
        lambda: tiny_sdxl_pipe(SRC, latents=z, height=48, width=80, num_inference_steps=1, output_type="latent"),
    )
    torch.testing.assert_close(ours[0], plain[0], rtol=0, atol=0)
    assert ours[1].keys() == plain[1].keys() == {"text_embeds", "time_ids"}
    for key in ("text_embeds", "time_ids"):
        torch.testing.assert_close(ours[1][key], plain[1][key], rtol=0, atol=0)
    assert ours[1]["time_ids"][0].tolist() == [48, 80, 0, 0, 48, 80]  # original size, crop, target size


def test_packing_keeps_token_and_pooled_embeddings_apart(sdxl_editor):
    emb = sdxl_editor.embed([SRC, TGT])
    assert emb.shape == (2, 78, 64)  # 77 tokens of 32 + 32 dims, then the 32-dim pooled embedding
    tokens, pooled = unpack(emb, 32)
    assert tokens.shape == (2, 77, 64) and pooled.shape == (2, 32)
    assert torch.equal(pack(tokens, pooled), emb) and not emb[:, 77, 32:].any()


# --- edits (§2): the edits, local blend and user masks of both families are in tests/test_generate.py ---


def test_replace_refine_and_reweight_with_per_word_windows_run_together(sdxl_editor):
    prompts = [SRC, TGT, "a photo of a fluffy cat on the wall"]
    res = sdxl_editor.generate(
        prompts,
        generator=3,
        equalizer={"fluffy": 2.0},
        blend_words=(["cat"], ["dog"], ["cat"]),
        cross_replace_steps={"default_": 0.8, "dog": 0.4},
        output_type="np",
        progress=False,
    )
    assert res.images.shape == (3, 64, 64, 3) and len(res.masks) == 2 and np.isfinite(res.images).all()


# --- attention maps (§3): SDXL has cross-attention at latent/2 and latent/4 only ---


def test_attention_maps_are_at_latent_4_by_default_and_latent_2_at_the_finest(tiny_sdxl_pipe):
    shapes = {}
    for res in (0.25, 0.5, 1.0):
        out = Editor(tiny_sdxl_pipe, num_inference_steps=2, attention_res=res).generate(
            [SRC, TGT], generator=1, height=48, width=80, output_type="latent", progress=False
        )
        shapes[res] = tuple(out.attention.maps.shape)
    assert shapes[0.25] == (2, 6, 10, 77)  # latent 24 x 40 -> latent/4
    assert shapes[0.5] == shapes[1.0] == (2, 12, 20, 77)  # no cross-attention at the latent's own size
    dog = out.attention.word("dog", row=1)
    assert np.isfinite(dog).all() and dog.sum() > 0


# --- words on two tokenizers (§12) ---


def test_the_tiny_tokenizers_pad_as_sdxls_and_agree_once_padding_is_mapped(tiny_sdxl_pipe):
    first, second = tiny_sdxl_pipe.tokenizer, tiny_sdxl_pipe.tokenizer_2
    assert first.pad_token == first.eos_token == "<|endoftext|>" and second.pad_token == "!"
    raw = [tok(SRC, padding="max_length", max_length=77).input_ids for tok in (first, second)]
    assert raw[0] != raw[1] and raw[0][:10] == raw[1][:10]  # only the padding differs
    a, b = TokenizerPair(first, second).padded_ids(SRC)
    assert a == b == raw[0]


def test_a_word_only_one_tokenizer_knows_is_an_error_naming_the_prompt_and_tokenizer(tiny_sdxl_pipe):
    first = copy.deepcopy(tiny_sdxl_pipe.tokenizer)
    first.add_tokens(["<toy>"])
    parts = {**tiny_sdxl_pipe.components, "tokenizer": first}
    odd = StableDiffusionXLPipeline(**parts, add_watermarker=False)
    prompt = "a photo of a <toy> on the wall"
    with pytest.raises(PromptError, match=rf"'{prompt}': tokenizer_2 reads it as .* but tokenizer "):
        Editor(odd).check([prompt, TGT])
    with pytest.raises(PromptError, match="tokenizer_2 reads it"):
        Editor(odd).invert(np.zeros((32, 32, 3), np.uint8), prompt, method="ddim", progress=False)


def test_a_missing_word_is_an_error_naming_the_prompt_and_both_tokenizers(sdxl_editor):
    spec = EditSpec(blend_words=(["cat"], ["lion"]))
    with pytest.raises(
        PromptError,
        match=r"blend_words: word 'lion' is not in prompt 'a photo of a dog on the wall' "
        r"\(as tokenizer and tokenizer_2 read it\)",
    ):
        sdxl_editor.check([SRC, TGT], spec)


# --- inversion (§4): reconstruction, photo edits and artifacts of both families are in tests/test_edit.py ---


def test_null_text_optimises_token_and_pooled_unconditional_embeddings_and_beats_ddim(tiny_sdxl_pipe):
    scheduler = ddim_scheduler(tiny_sdxl_pipe.scheduler.config)
    photo = skimage.data.coffee()[::8, ::8].copy()
    kwargs = {"progress": False, "learning_rate": 0.1}
    nti = invert(
        tiny_sdxl_pipe, scheduler, photo, InversionSettings(PROMPT, "null-text", 6, size=(32, 32)).resolved(), **kwargs
    )
    ddim = invert(
        tiny_sdxl_pipe, scheduler, photo, InversionSettings(PROMPT, "ddim", 6, size=(32, 32)).resolved(), **kwargs
    )
    phis = nti.uncond_embeddings
    assert phis.shape == (6, 78, 64)
    tokens, pooled = unpack(phis, 32)
    assert tokens.abs().amax() > 0 and pooled.abs().amax() > 0  # both moved away from the zeros they start at
    assert not phis[:, 77, 32:].any()  # the packing's padding gets no gradient
    editor = Editor(tiny_sdxl_pipe)
    errors = {inv.method: editor.reconstruct(inv, progress=False).latent_error for inv in (nti, ddim)}
    assert errors["null-text"] < errors["ddim"] / 2, errors


def test_the_pooled_embedding_can_be_held_fixed_while_the_tokens_are_optimised(sdxl_editor, tiny_sdxl_pipe):
    phi = sdxl_editor.uncond_embedding().float().requires_grad_(True)
    for optimise, reaches_pooled in ((False, False), (True, True)):
        phi.grad = None
        unet = SDXLUNet(tiny_sdxl_pipe.unet, 32, 2, optimise_pooled=optimise)
        unet(z_T(1), torch.tensor(500), encoder_hidden_states=phi).sample.square().mean().backward()
        assert phi.grad[:, :77].abs().sum() > 0
        assert bool(phi.grad[:, 77].abs().sum() > 0) == reaches_pooled


# --- artifacts (§4) ---


def test_an_sdxl_artifact_is_rejected_by_an_sd_editor_and_an_sd_one_by_an_sdxl_editor(
    sdxl_editor, sdxl_inversions, sd_editor, sd_inversions
):
    with pytest.raises(ArtifactError, match=r"a Stable Diffusion XL model, not with Stable Diffusion 1\.x/2\.x"):
        sd_editor.edit(sdxl_inversions["ddim"], TARGET, progress=False)
    sd_inv = sd_inversions["ddim"]
    with pytest.raises(ArtifactError, match=r"a Stable Diffusion 1\.x/2\.x model, not with Stable Diffusion XL"):
        sdxl_editor.edit(sd_inv, TARGET, progress=False)
    with pytest.raises(MismatchError, match="another model"):
        sd_inv.check_matches(InversionSettings(), pipe=sdxl_editor.pipe)


def test_the_model_fingerprint_covers_the_second_text_encoder(tiny_sdxl_pipe):
    other = copy.deepcopy(tiny_sdxl_pipe.text_encoder_2)
    with torch.no_grad():
        next(iter(other.state_dict(keep_vars=True).values())).add_(1.0)  # its first weight is always hashed
    changed = types.SimpleNamespace(**{**tiny_sdxl_pipe.components, "text_encoder_2": other})
    assert pipeline_fingerprint(changed) != pipeline_fingerprint(tiny_sdxl_pipe)


def test_an_artifact_without_a_model_family_is_an_sd_one(tmp_path, sd_inversions):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from inversion.artifact_format import checksum as _checksum

    path = sd_inversions["ddim"].save(tmp_path / "sd.inv.safetensors")
    with safe_open(path, framework="pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    assert meta.pop("model_family") == "sd"
    meta["checksum"] = _checksum(meta, tensors)  # a file written before SDXL support
    save_file(tensors, path, metadata=meta)
    assert Inversion.load(path).model_family == "sd"


# --- the VAE in half precision (§12) ---


def test_a_float16_vae_that_asks_for_upcasting_decodes_in_float32_and_stays_float16(tiny_sdxl_pipe):
    vae = copy.deepcopy(tiny_sdxl_pipe.vae).half()
    seen = []
    vae.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    z = z_T(0) * 0.1
    for upcast, dtype in ((True, torch.float32), (False, torch.float16)):
        vae.register_to_config(force_upcast=upcast)
        seen.clear()
        images = decode_latents(vae, z)
        assert seen == [dtype] and vae.dtype == torch.float16 and torch.isfinite(images).all()


# --- what the editor accepts ---


def test_the_editor_names_what_an_sdxl_like_pipeline_lacks(tiny_sdxl_pipe):
    parts = {
        k: getattr(tiny_sdxl_pipe, k)
        for k in ("unet", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")
    }
    refiner = types.SimpleNamespace(**{**parts, "text_encoder": None, "tokenizer": None})
    with pytest.raises(ValueError, match="refiner"):
        Editor(refiner)
    with pytest.raises(ValueError, match="not an SDXL pipeline: it has no tokenizer_2"):
        Editor(types.SimpleNamespace(**{**parts, "tokenizer_2": None}))
    assert Editor(types.SimpleNamespace(**parts)).is_sdxl  # any object with SDXL's parts


# --- small GPUs: offloaded SDXL computes as the whole one ---


def test_sequentially_offloaded_sdxl_inverts_and_edits_as_the_whole_pipeline(tiny_sdxl_dir, photo):
    from accelerate import cpu_offload

    from p2p_real.models.loading import load_pipeline

    def run(pipe):
        editor = Editor(pipe, num_inference_steps=2)
        inv = editor.invert(photo, PROMPT, method="null-text", num_inner_steps=2, progress=False, size=SDXL_SIZE)
        return inv, editor.edit(inv, TARGET, blend_words=(["cat"], ["dog"]), output_type="np", progress=False)

    ref_inv, ref = run(load_pipeline(tiny_sdxl_dir, device="cpu"))
    pipe = load_pipeline(tiny_sdxl_dir, device="cpu")
    for model in (pipe.text_encoder, pipe.text_encoder_2, pipe.unet, pipe.vae):  # enable_sequential_cpu_offload's
        cpu_offload(model, torch.device("cpu"), offload_buffers=len(model._parameters) > 0)
    assert pipe.unet.device.type == "meta" and pipe.text_encoder_2.device.type == "meta"
    inv, res = run(pipe)
    assert inv.model_id == ref_inv.model_id and torch.equal(inv.uncond_embeddings, ref_inv.uncond_embeddings)
    np.testing.assert_array_equal(res.images, ref.images)
