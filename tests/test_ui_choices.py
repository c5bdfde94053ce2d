"""What the web page offers and builds without Gradio (p2p_real/ui/choices.py): the words of a prompt, the
suggested blend words, the EditSpec of the page's settings and the equivalent `p2p-real edit` command."""

import shlex

import pytest

import cli
from inversion.settings import InversionSettings
from p2p_real import EditSpec, PromptError
from p2p_real.commands import options
from p2p_real.core.alignment import tokenize, word_indices
from p2p_real.ui.choices import EditChoices, changed_words, edit_command, prompt_words
from p2p_real.ui.editing import word_updates

CAPTION = "A photo of a cat, sitting on a wall."


@pytest.fixture(scope="module")
def tokenizer(tiny_pipe):
    return tiny_pipe.tokenizer


def test_the_words_on_offer_are_the_prompts_words_once_without_punctuation(tokenizer):
    assert prompt_words(tokenizer, CAPTION) == ["A", "photo", "of", "cat", "sitting", "on", "wall"]
    assert prompt_words(tokenizer, "   ") == []


def test_every_word_on_offer_is_one_the_edit_check_finds(tokenizer):
    prompt = "a dog's ball, 3:30 pm (red=blue) on the grass!"
    tokens = tokenize(tokenizer, prompt)
    words = prompt_words(tokenizer, prompt)
    for word in words:
        assert word_indices(tokenizer, tokens, word)
    assert "3:30" not in words and "red=blue" not in words  # no command-line option could name them


def test_a_prompt_too_long_for_the_text_encoder_is_refused(tokenizer):
    with pytest.raises(PromptError, match="at most 77"):
        prompt_words(tokenizer, "cat " * 90)


def test_the_blend_words_suggested_are_what_the_target_changes():
    assert changed_words(["a", "cat", "on", "a", "wall"], ["a", "Dog", "on", "a", "wall"]) == (["cat"], ["Dog"])
    assert changed_words(["a", "cat"], ["a", "fluffy", "cat"]) == ([], ["fluffy"])


def test_the_word_pickers_follow_the_prompts(tokenizer):
    source, target, reweight = word_updates(tokenizer, "a cat on a wall", "a dog on a wall", ["dog", "cat"])
    assert source["choices"] == ["a", "cat", "on", "wall"] and source["value"] == ["cat"]
    assert target["choices"] == ["a", "dog", "on", "wall"] and target["value"] == ["dog"]
    assert reweight["value"] == ["dog"]  # picks kept where the target still has them
    source, target, _ = word_updates(tokenizer, "a cat on a wall", "", None)
    assert source["value"] == target["value"] == []  # no target yet: nothing changes, nothing picked
    source, _, _ = word_updates(tokenizer, "cat " * 90, "a dog", None)
    assert source["choices"] == []  # too long: inverting says so


def test_the_pages_settings_become_an_edit_spec():
    spec = EditChoices("a dog", ("cat",), ("dog",), 0.35000000000000003, ("dog",), 1.5, "auto", 0.7, 0.5).spec()
    assert spec == EditSpec(
        blend_words=(["cat"], ["dog"]),
        blend_threshold=0.35,
        equalizer={"dog": 1.5},
        cross_replace_steps=0.7,
        self_replace_steps=0.5,
    )
    assert EditChoices("a dog").spec() == EditSpec()  # nothing picked: the defaults for photos, no blend
    assert EditChoices("a dog", reweight_words=("dog",)).spec().equalizer is None  # a factor of 1 changes nothing


def test_spec_errors_name_the_pages_labels():
    with pytest.raises(PromptError, match="reweight words"):
        EditChoices("a dog", edit="reweight").spec()
    with pytest.raises(ValueError, match="blend threshold"):
        EditChoices("a dog", ("cat",), threshold=1.5).spec()


@pytest.mark.parametrize(
    "choices",
    [
        EditChoices("a dog on a wall"),
        EditChoices("a dog on a wall", ("cat",), ("dog",), 0.45, ("dog",), -1.25, "replace", 0.65, 0.3),
        EditChoices("a big dog on a wall", (), ("big", "dog"), edit="refine"),
        EditChoices("a dog on a wall", ("cat", "wall"), ("dog",)),
    ],
    ids=["defaults", "every setting", "target words only", "more source words"],
)
def test_the_command_shown_makes_the_same_edit(choices):
    spec = choices.spec()
    settings = InversionSettings("a cat on a wall", "negative-prompt", 20, 5.0)
    command = edit_command("my cat.jpg", settings, choices.target, spec, ["--model", "toy"])
    words = shlex.split(command)
    assert words[0] == "p2p-real"
    args = cli.build_parser().parse_args(words[1:])
    assert args.input == "my cat.jpg" and args.target == [choices.target] and args.model == "toy"
    assert options.spec_from_args(args, 1) == spec
    assert options.settings_from_args(args) == settings
