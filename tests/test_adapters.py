"""Users' own models: LoRA files, textual-inversion embeddings, variants and revisions (load_pipeline).

The LoRA and embedding files are made here, offline, for the tiny test pipeline: a LoRA on the UNet's
attention layers with random (non-zero) up-projections, saved as diffusers saves LoRAs; embeddings as
diffusers' {word: vectors} safetensors files and as pickled A1111 files.
"""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import p2p_real.models.adapters as adapters
from inversion.fingerprint import pipeline_fingerprint
from p2p_real import Editor
from p2p_real.core.alignment import tokenize
from p2p_real.models.adapters import EmbeddingFile, LoraFile, parse_embedding, parse_lora
from p2p_real.models.loading import ModelLoadError, load_pipeline
from p2p_real.spec import EditSpec
from p2p_real.testing import TEXT_DIM, tiny_pipeline
from tests.helpers import make_embedding, make_lora

SRC, TGT = "a photo of a cat", "a photo of a dog"


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory):
    return make_lora(tmp_path_factory.mktemp("lora"))


@pytest.fixture(scope="module")
def embedding_file(tmp_path_factory):
    return make_embedding(tmp_path_factory.mktemp("emb") / "shinystyle.safetensors")  # "shinystyle": 2 tokens


def _generate(pipe, prompts=(SRC, TGT), **kwargs):
    return Editor(pipe, num_inference_steps=3).generate(
        list(prompts), generator=0, output_type="np", progress=False, **kwargs
    )


@pytest.fixture(scope="module")
def base(tiny_pipe):
    return _generate(tiny_pipe)


def test_a_lora_changes_the_output_and_scale_0_equals_no_lora(tiny_model_dir, lora_file, base):
    with_lora = _generate(load_pipeline(tiny_model_dir, device="cpu", loras=[lora_file]))
    assert np.abs(with_lora.images - base.images).max() > 1e-3
    at_zero = _generate(load_pipeline(tiny_model_dir, device="cpu", loras=[f"{lora_file}:0"]))
    np.testing.assert_array_equal(at_zero.images, base.images)


def test_a_lora_is_part_of_the_models_identity_and_of_the_results_parameters(tiny_model_dir, lora_file, tiny_pipe):
    half = load_pipeline(tiny_model_dir, device="cpu", loras=[(lora_file, 0.5)])
    full = load_pipeline(tiny_model_dir, device="cpu", loras=[LoraFile(lora_file, 1.0)])
    prints = {pipeline_fingerprint(p) for p in (tiny_pipe, half, full)}
    assert len(prints) == 3  # an inversion made with one is refused by the others
    (adapter,) = _generate(half).parameters["adapters"]
    assert adapter["lora"] == lora_file.name and adapter["scale"] == 0.5 and len(adapter["sha256"]) == 64
    assert "lora" not in str(half.unet.state_dict().keys())  # merged: no LoRA layers left to run


def test_an_embeddings_word_works_in_prompts_and_blend_words(tiny_model_dir, embedding_file):
    pipe = load_pipeline(tiny_model_dir, device="cpu", embeddings=[embedding_file])
    editor = Editor(pipe, num_inference_steps=3)
    prompts = [SRC, "a photo of a shinystyle cat"]
    tokens = tokenize(editor.tokenizer, prompts[1])
    assert len(tokens.spans[tokens.words.index("shinystyle")]) == 2  # both vectors, as encode_prompt uses them
    editor.check(prompts, EditSpec(blend_words=(["cat"], ["shinystyle"])))
    res = editor.generate(prompts, blend_words=(["cat"], ["shinystyle"]), generator=0, output_type="np", progress=False)
    assert res.attention.word("shinystyle", row=1).shape == res.attention.word("cat", row=0).shape
    assert res.parameters["adapters"][0] == {**res.parameters["adapters"][0], "word": "shinystyle", "vectors": 2}
    ids = pipe.tokenizer.convert_tokens_to_ids(["shinystyle", "shinystyle_1"])
    vectors = pipe.text_encoder.get_input_embeddings().weight[ids]
    torch.testing.assert_close(vectors, next(iter(load_file(embedding_file).values())))  # what the model reads


def test_an_embedding_takes_the_word_given_after_the_file(tiny_model_dir, embedding_file):
    pipe = load_pipeline(tiny_model_dir, device="cpu", embeddings=[f"{embedding_file}:<my-style>"])
    Editor(pipe).check([SRC, "a photo of a <my-style> cat"])


def test_a_pickled_a1111_embedding_loads_where_torch_loads_pickles_safely(tiny_model_dir, tmp_path):
    path = tmp_path / "oldstyle.pt"
    torch.save({"string_to_param": {"*": torch.randn(1, TEXT_DIM)}, "name": "oldstyle", "step": 100}, path)
    pipe = load_pipeline(tiny_model_dir, device="cpu", embeddings=[path])
    assert "oldstyle" in pipe.tokenizer.get_vocab()


@pytest.mark.parametrize("kind", ["loras", "embeddings"])
def test_pickled_lora_and_embedding_files_are_refused_on_torch_before_2_6(tiny_model_dir, tmp_path, monkeypatch, kind):
    path = tmp_path / "weights.bin"
    torch.save({"x": torch.zeros(1)}, path)
    monkeypatch.setattr(adapters, "torch_loads_pickles_safely", lambda version=None: False)
    with pytest.raises(ModelLoadError, match=r"weights\.bin': pickled weights .* \(CVE-2025-32434\)"):
        load_pipeline(tiny_model_dir, device="cpu", **{kind: [path]})


def test_adapter_files_that_cannot_be_used_are_errors_naming_them(
    tiny_model_dir, tmp_path, embedding_file, monkeypatch
):
    with pytest.raises(ModelLoadError, match=r"LoRA '.*missing\.safetensors' does not exist"):
        load_pipeline(tiny_model_dir, device="cpu", loras=[tmp_path / "missing.safetensors"])
    other = tmp_path / "other.safetensors"
    save_file(
        {
            "unet.no_such_block.to_q.lora_A.weight": torch.zeros(4, 8),
            "unet.no_such_block.to_q.lora_B.weight": torch.zeros(8, 4),
        },
        other,
    )
    with pytest.raises(ModelLoadError, match=r"LoRA '.*other\.safetensors'"):
        load_pipeline(tiny_model_dir, device="cpu", loras=[other])
    with pytest.raises(ModelLoadError, match="the word 'cat' is already in the tokenizer's vocabulary"):
        load_pipeline(tiny_model_dir, device="cpu", embeddings=[(embedding_file, "cat")])
    wide = tmp_path / "wide.safetensors"
    save_file({"wide": torch.zeros(1, 768)}, wide)  # an SD 1.5 embedding on the tiny model
    with pytest.raises(ModelLoadError, match=r"embedding '.*wide\.safetensors' does not fit this model"):
        load_pipeline(tiny_model_dir, device="cpu", embeddings=[wide])
    monkeypatch.setattr("p2p_real.models.adapters.importlib.util.find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"needs peft: pip install 'p2p-real\[lora\]'"):
        load_pipeline(tiny_model_dir, device="cpu", loras=[other])


def test_variant_and_revision_apply_where_they_can(tiny_model_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="revision 'main' applies to hub ids, not to the local folder"):
        load_pipeline(tiny_model_dir, device="cpu", revision="main")
    with pytest.raises(ModelLoadError, match="variant=fp16`, but no such modeling files are available"):
        load_pipeline(tiny_model_dir, device="cpu", variant="fp16")  # saved without one
    folder = tmp_path / "variant"
    tiny_pipeline().save_pretrained(folder, variant="fp16")
    pipe = load_pipeline(folder, device="cpu", variant="fp16")
    assert pipe.unet.dtype == torch.float32  # the variant names files; the dtype stays as asked
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="variant 'fp16' applies to diffusers folders and hub ids"):
        load_pipeline(checkpoint, device="cpu", variant="fp16")


def test_the_text_forms_of_lora_and_embedding_files():
    assert parse_lora("style.safetensors") == LoraFile(parse_lora("style.safetensors").path, 1.0)
    assert parse_lora("style.safetensors:0.6").scale == 0.6
    assert parse_lora("C:/models/style.safetensors").path.name == "style.safetensors"  # a drive, not a scale
    assert parse_lora("style.safetensors:-1").scale == -1.0
    assert parse_embedding("charturner.pt").word == "charturner"
    assert parse_embedding("learned_embeds.bin:<cat-toy>") == EmbeddingFile(
        parse_lora("learned_embeds.bin").path, "<cat-toy>"
    )
    assert parse_embedding("C:/emb/charturner.pt").word == "charturner"
    with pytest.raises(ValueError, match="one word without spaces"):
        parse_embedding("x.pt:two words")
