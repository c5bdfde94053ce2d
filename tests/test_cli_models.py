"""The model options every command that loads a model takes: --lora, --embedding, --variant, --revision,
--offload, --vae-tiling (run in-process through cli.main)."""

import json

import pytest
from PIL import Image

import cli
from tests.helpers import make_embedding, make_lora

PROMPTS = ["a photo of a cat", "a photo of a shinystyle cat"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("model-files")
    return {"lora": make_lora(root), "embedding": make_embedding(root / "shinystyle.safetensors")}


def test_generate_with_a_lora_and_an_embedding_records_them_and_reproduces(
    tiny_model_dir, files, tmp_path, tmp_path_factory, monkeypatch
):
    """The reproduction command names local files relative to the current folder (docs/reliability.md)."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.chdir(base)
    argv = [
        "generate",
        *PROMPTS,
        "--blend",
        "cat:shinystyle",
        "--steps",
        "2",
        "--model",
        str(tiny_model_dir),
        "--lora",
        f"{files['lora']}:0.5",
        "--embedding",
        str(files["embedding"]),
        "-q",
    ]
    assert cli.main([*argv, "--out", str(tmp_path / "a")]) == 0
    sidecar = json.loads((tmp_path / "a" / "a-photo-of-a-cat.json").read_text())
    lora, embedding = sidecar["parameters"]["adapters"]
    assert (lora["lora"], lora["scale"]) == (files["lora"].name, 0.5)
    assert (embedding["word"], embedding["vectors"]) == ("shinystyle", 2)
    reproduce = sidecar["argv"]
    assert reproduce[reproduce.index("--lora") + 1] == f"{files['lora'].resolve().relative_to(base)}:0.5"
    assert reproduce[reproduce.index("--embedding") + 1] == f"{files['embedding'].relative_to(base)}:shinystyle"
    assert cli.main([*reproduce, "--out", str(tmp_path / "b"), "-q"]) == 0
    for k in (0, 1):
        name = f"a-photo-of-a-cat.{k}.png"
        assert Image.open(tmp_path / "a" / name).tobytes() == Image.open(tmp_path / "b" / name).tobytes()


def test_offload_without_a_gpu_is_one_line_naming_the_problem(tiny_model_dir, tmp_path, capsys):
    argv = [
        "generate",
        *PROMPTS[:1],
        "a photo of a dog",
        "--model",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--offload",
        "model",
        "--out",
        str(tmp_path),
        "-q",
    ]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "offload 'model' moves the model between the CPU and a GPU" in err


@pytest.mark.parametrize("option", ["--lora", "--embedding"])
def test_a_missing_lora_or_embedding_file_is_a_usage_error_before_loading(tiny_model_dir, tmp_path, capsys, option):
    argv = ["generate", "a cat", "a dog", "--model", str(tiny_model_dir), option, str(tmp_path / "none.safetensors")]
    assert cli.main(argv) == 2
    assert "none.safetensors' not found" in capsys.readouterr().err
