"""The caption grammar and its tokenizer: multi-token words split as intended, token groups line up."""

from __future__ import annotations

import numpy as np
import pytest

from p2p_real.toyworld.captions import (
    BACKGROUND,
    NO_GROUP,
    SPLIT_WORDS,
    Caption,
    ObjectPhrase,
    build_tokenizer,
    parse_caption,
    scene_caption,
    token_groups,
    vocabulary,
    word_pieces,
)
from p2p_real.toyworld.scenes import random_scene
from p2p_real.toyworld.world import COLOURS, SHAPES, SIZES


def test_full_and_short_caption_forms():
    scene = random_scene(
        np.random.default_rng(0),
        n_objects=2,
        colours=["red", "blue"],
        shapes=["circle", "square"],
        sizes=["big", "small"],
        background="yellow",
    )
    assert scene_caption(scene) == "a big red circle and a small blue square on a yellow background"
    assert scene_caption(scene, with_size=False) == "a red circle and a blue square on a yellow background"
    assert scene_caption(scene, with_size=False, with_background=False) == "a red circle and a blue square"
    assert Caption((ObjectPhrase("red", "circle"),)).text == "a red circle"


@pytest.mark.parametrize(
    "text",
    [
        "a red circle",
        "a big blue triangle on a purple background",
        "a small red star and a big white square",
        "a purple triangle and a white circle on a green background",
    ],
)
def test_parse_round_trip(text):
    assert parse_caption(text).text == text


def test_parse_reads_the_parts():
    caption = parse_caption("A big red circle and a blue square on a yellow background.")
    assert caption.objects == (ObjectPhrase("red", "circle", "big"), ObjectPhrase("blue", "square", None))
    assert caption.background == "yellow"


@pytest.mark.parametrize("text", ["a red dog", "red circle", "a red circle on yellow", "a huge red circle", ""])
def test_parse_rejects_other_sentences(text):
    with pytest.raises(ValueError):
        parse_caption(text)


def test_multi_token_words_split_as_intended():
    tokenizer = build_tokenizer()
    assert tokenizer.tokenize("purple") == ["pur", "ple</w>"]
    assert tokenizer.tokenize("triangle") == ["tri", "angle</w>"]
    assert len(SPLIT_WORDS) >= 2


def test_every_vocabulary_word_tokenizes_to_its_pieces():
    tokenizer = build_tokenizer()
    words = [w.replace("|", "") for w in vocabulary()]
    assert set(words) >= {*COLOURS, *SHAPES, *SIZES, "a", "and", "on", "background"}
    for word in words:
        assert tokenizer.tokenize(word) == word_pieces(word), word
        assert tokenizer.unk_token_id not in tokenizer.convert_tokens_to_ids(word_pieces(word))


def test_token_groups_line_up_with_the_tokenizer():
    tokenizer = build_tokenizer()
    caption = parse_caption("a big purple triangle and a small red star on a green background")
    ids = tokenizer(caption.text, padding="max_length", max_length=77).input_ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    groups = token_groups(caption)
    assert len(groups) == 77
    named = {g: [t for t, gg in zip(tokens, groups) if gg == g] for g in (0, 1, BACKGROUND)}
    assert named[0] == ["big</w>", "pur", "ple</w>", "tri", "angle</w>"]
    assert named[1] == ["small</w>", "red</w>", "star</w>"]
    assert named[BACKGROUND] == ["green</w>", "background</w>"]
    end = len(caption.text.split()) + 3  # BOS, then two words of two tokens
    assert groups[0] == NO_GROUP and tokens[end] == tokenizer.eos_token != tokens[end - 1]


def test_bad_caption_parts_raise():
    with pytest.raises(ValueError):
        Caption(())
    with pytest.raises(ValueError):
        Caption((ObjectPhrase("red", "blob"),))
