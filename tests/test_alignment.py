"""Prompt alignment (docs/design.md §2): word lookup, replacement mapper, refinement alignment, edit choice."""

import pytest
import torch

from p2p_real.core.alignment import (
    PromptError,
    align,
    choose_edit,
    refinement_map,
    replacement_map,
    tokenize,
    word_indices,
)
from p2p_real.testing import tiny_components


@pytest.fixture(scope="module")
def tok():
    return tiny_components()["tokenizer"]


def test_word_lookup_survives_punctuation_and_case(tok):
    t = tokenize(tok, "A photo of a Cat, on the wall!")
    assert t.pieces[5] == "cat</w>"
    assert word_indices(tok, t, "cat") == [5]
    assert word_indices(tok, t, "CAT") == [5]
    assert word_indices(tok, t, "wall") == [9]


def test_multi_token_word_gives_all_its_tokens(tok):
    t = tokenize(tok, "a photo of a tigercat on the wall")
    assert [t.pieces[i] for i in word_indices(tok, t, "tigercat")] == ["tiger", "cat</w>"]


def test_word_does_not_match_inside_a_longer_word(tok):
    t = tokenize(tok, "a tigercat and a cat")
    assert word_indices(tok, t, "cat") == [6]


def test_every_occurrence_and_multi_word_phrases_are_found(tok):
    t = tokenize(tok, "a cat and a cat on a red wall")
    assert word_indices(tok, t, "cat") == [2, 5]
    assert word_indices(tok, t, "red wall") == [8, 9]


def test_absent_word_is_an_error_naming_word_and_prompt(tok):
    t = tokenize(tok, "a photo of a cat")
    with pytest.raises(PromptError, match=r"'dog'.*'a photo of a cat'"):
        word_indices(tok, t, "dog")


def test_too_long_prompt_is_an_error_naming_it(tok):
    long = " ".join(["cat"] * 80)
    with pytest.raises(PromptError, match="82 tokens"):
        tokenize(tok, long)


def test_replace_maps_unchanged_tokens_to_themselves(tok):
    src, tgt = tokenize(tok, "a photo of a cat"), tokenize(tok, "a photo of a dog")
    mapper, partner = replacement_map(src, tgt)
    assert torch.equal(mapper, torch.eye(77))
    assert partner.all()


def test_replace_spreads_a_word_over_several_target_tokens(tok):
    src, tgt = tokenize(tok, "a cat on the wall"), tokenize(tok, "a tigercat on the wall")
    mapper, partner = replacement_map(src, tgt)
    # "cat" (source token 2) -> "tiger", "cat</w>" (target tokens 2, 3) with 1/2 each
    assert mapper[2, 2] == 0.5 and mapper[2, 3] == 0.5
    # the words after the swap keep their partners, shifted by one token
    assert mapper[3, 4] == 1 and mapper[4, 5] == 1 and mapper[5, 6] == 1
    assert mapper[6, 7] == 1  # end token
    assert mapper[:, 2:4].sum() == 1.0
    # every target column takes at most one unit of source attention
    assert torch.all(mapper.sum(0) <= 1 + 1e-6)
    assert partner[:8].all()


def test_replace_with_different_word_counts_is_an_error(tok):
    src, tgt = tokenize(tok, "a cat"), tokenize(tok, "a big cat")
    with pytest.raises(PromptError, match="same number of words"):
        replacement_map(src, tgt)


def test_refine_aligns_insertions_anywhere(tok):
    src, tgt = tokenize(tok, "a castle on a field"), tokenize(tok, "a gothic castle on a green field")
    mapper, partner = refinement_map(src, tgt)
    # a gothic castle on a green field: positions 1..7 ; source a castle on a field: 1..5
    assert partner[1] == 1 and mapper[1, 1] == 1  # a
    assert partner[2] == 0  # gothic is new
    assert mapper[2, 3] == 1  # castle
    assert mapper[3, 4] == 1 and mapper[4, 5] == 1  # on a
    assert partner[6] == 0  # green is new
    assert mapper[5, 7] == 1  # field
    assert mapper[6, 8] == 1  # end token


def test_refine_aligns_deletions(tok):
    src, tgt = tokenize(tok, "a big red car on the street"), tokenize(tok, "a car on the street")
    mapper, partner = refinement_map(src, tgt)
    assert mapper[4, 2] == 1  # car
    assert mapper[5, 3] == 1 and mapper[7, 5] == 1
    assert partner[: len(tgt)].all()


def test_alignment_pairs_only_equal_tokens():
    assert align((1, 2, 3, 4), (1, 9, 3, 4)) == [0, -1, 2, 3]
    assert align((1, 2), (5, 1, 7, 2, 8)) == [-1, 0, -1, 1, -1]


def test_auto_picks_replace_for_equal_word_counts_and_refine_otherwise(tok):
    a, b, c = (tokenize(tok, p) for p in ("a cat on a wall", "a dog on a wall", "a fluffy cat on a wall"))
    assert choose_edit(a, b, "auto") == "replace"
    assert choose_edit(a, c, "auto") == "refine"
    with pytest.raises(PromptError, match="edit must be one of"):
        choose_edit(a, b, "swap")


def expected_map(columns: dict[int, int], n: int = 77) -> torch.Tensor:
    """A 0/1 mapper with mapper[i, j] = 1 for each target column j -> source token i."""
    mapper = torch.zeros(n, n)
    for j, i in columns.items():
        mapper[i, j] = 1.0
    return mapper


def test_refine_padding_takes_the_source_column_at_the_same_position(tok):
    # as the reference's seq_aligner.get_mapper: after the target's end token, column j takes source column j
    src, tgt = tokenize(tok, "a castle on a field"), tokenize(tok, "a gothic castle on a field")
    assert (len(src), len(tgt)) == (7, 8)
    mapper, partner = refinement_map(src, tgt)
    body = {0: 0, 1: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6}  # BOS a [gothic] castle on a field EOS
    assert torch.equal(mapper, expected_map({**body, **{j: j for j in range(8, 77)}}))
    assert torch.equal(partner, (torch.arange(77) != 2).float())  # only "gothic" keeps its own map


def test_refine_padding_after_a_deletion_is_not_shifted_either(tok):
    src, tgt = tokenize(tok, "a big red car on the street"), tokenize(tok, "a car on the street")
    assert (len(src), len(tgt)) == (9, 7)
    mapper, partner = refinement_map(src, tgt)
    body = {0: 0, 1: 1, 2: 4, 3: 5, 4: 6, 5: 7, 6: 8}
    assert torch.equal(mapper, expected_map({**body, **{j: j for j in range(7, 77)}}))
    assert partner.all()


def test_replace_padding_takes_the_source_column_at_the_same_position(tok):
    src, tgt = tokenize(tok, "a cat on the wall"), tokenize(tok, "a tigercat on the wall")
    mapper, _ = replacement_map(src, tgt)
    for j in range(len(tgt), 77):
        assert mapper[j, j] == 1 and mapper[:, j].sum() == 1, j
