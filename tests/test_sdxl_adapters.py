"""Users' own SDXL models: LoRA files and SDXL textual inversions (one vector set per text encoder), made
here offline for the tiny SDXL pipeline (README "Stable Diffusion XL")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from safetensors.torch import save_file

from p2p_real import Editor
from p2p_real.core.alignment import tokenize
from p2p_real.models.loading import ModelLoadError, load_pipeline
from p2p_real.spec import EditSpec
from p2p_real.testing import TEXT_DIM, tiny_sdxl_pipeline
from tests.helpers import make_embedding

SRC, TGT = "a photo of a cat", "a photo of a shinystyle cat"


def _vectors(seed: int) -> torch.Tensor:
    return torch.randn(2, TEXT_DIM, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def sdxl_embedding(tmp_path_factory):
    path = tmp_path_factory.mktemp("emb") / "shinystyle.safetensors"
    save_file({"clip_l": _vectors(1), "clip_g": _vectors(2)}, path)  # as SDXL embeddings are shared
    return path


def test_an_sdxl_embedding_goes_into_both_text_encoders_and_its_word_can_be_edited(tiny_sdxl_dir, sdxl_embedding):
    pipe = load_pipeline(tiny_sdxl_dir, device="cpu", embeddings=[sdxl_embedding])
    for tokenizer, encoder, key in ((pipe.tokenizer, pipe.text_encoder, 1), (pipe.tokenizer_2, pipe.text_encoder_2, 2)):
        ids = tokenizer.convert_tokens_to_ids(["shinystyle", "shinystyle_1"])
        torch.testing.assert_close(encoder.get_input_embeddings().weight[ids], _vectors(key))
    editor = Editor(pipe, num_inference_steps=2)
    tokens = tokenize(editor.tokenizer, TGT)
    assert len(tokens.spans[tokens.words.index("shinystyle")]) == 2  # both vectors, in both tokenizers
    editor.check([SRC, TGT], EditSpec(blend_words=(["cat"], ["shinystyle"])))
    res = editor.generate(
        [SRC, TGT], blend_words=(["cat"], ["shinystyle"]), generator=0, output_type="np", progress=False
    )
    assert np.isfinite(res.images).all() and res.parameters["adapters"][0]["vectors"] == 2


def test_an_sd_embedding_given_to_an_sdxl_model_is_refused_naming_what_it_lacks(tiny_sdxl_dir, tmp_path):
    path = make_embedding(tmp_path / "style.safetensors")
    with pytest.raises(ModelLoadError, match=r"is not an SDXL embedding: it lacks clip_l, clip_g"):
        load_pipeline(tiny_sdxl_dir, device="cpu", embeddings=[path])


def test_an_sdxl_lora_changes_the_output(tiny_sdxl_dir, tiny_sdxl_pipe, tmp_path):
    peft = pytest.importorskip("peft")
    torch.manual_seed(1)
    unet = tiny_sdxl_pipeline().unet
    unet.add_adapter(
        peft.LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    StableDiffusionXLPipeline.save_lora_weights(tmp_path, unet_lora_layers=peft.get_peft_model_state_dict(unet))
    lora = tmp_path / "pytorch_lora_weights.safetensors"

    def run(pipe):
        return (
            Editor(pipe, num_inference_steps=2)
            .generate([SRC, "a photo of a dog"], generator=0, output_type="np", progress=False)
            .images
        )

    with_lora = load_pipeline(tiny_sdxl_dir, device="cpu", loras=[lora])
    assert np.abs(run(with_lora) - run(tiny_sdxl_pipe)).max() > 1e-3
    assert with_lora.p2p_real_adapters[0]["lora"] == lora.name
