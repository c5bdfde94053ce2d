"""Prompt alignment: words to token positions, and the token maps of replace and refine edits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from inversion import validation
from inversion.encoding.prompts import check_prompt
from inversion.validation import PromptError
from p2p_real.spec import EDIT_KINDS

_END_OF_WORD = "</w>"
__all__ = ["PromptError", "Tokens", "align", "choose_edit", "token_map", "tokenize", "word_indices"]


@dataclass(frozen=True)
class Tokens:
    """A prompt as the text encoder sees it: ids with BOS/EOS, and the token span of each word."""

    prompt: str
    ids: tuple[int, ...]
    pieces: tuple[str, ...]
    words: tuple[str, ...]
    spans: tuple[range, ...]
    max_length: int

    def __len__(self) -> int:
        return len(self.ids)


def tokenize(tokenizer: PreTrainedTokenizerBase, prompt: str) -> Tokens:
    """Tokenize a prompt and find the tokens of each whitespace-separated word."""
    ids = check_prompt(tokenizer, prompt)
    max_length = int(tokenizer.model_max_length)
    words = tuple(prompt.split())
    spans, pos = [], 1
    for word in words:
        n = len(tokenizer(word, add_special_tokens=False).input_ids)
        spans.append(range(pos, pos + n))
        pos += n
    if pos != len(ids) - 1:  # a tokenizer whose tokens cross spaces cannot be aligned word by word
        raise PromptError(f"cannot split prompt {prompt!r} into words with this tokenizer")
    pieces = tuple(tokenizer.convert_ids_to_tokens(list(ids)))
    return Tokens(prompt, tuple(ids), pieces, words, tuple(spans), max_length)


def _word_starts(tokens: Tokens) -> set[int]:
    """Token positions where a word (or a punctuation-separated part of one) begins."""
    starts = {span.start for span in tokens.spans}
    starts |= {i + 1 for i, piece in enumerate(tokens.pieces[:-1]) if piece.endswith(_END_OF_WORD)}
    return starts


def word_indices(tokenizer: PreTrainedTokenizerBase, tokens: Tokens, word: str, name: str = "") -> list[int]:
    """Token positions of every occurrence of `word` (one or more words) in the prompt.

    Case and surrounding punctuation don't matter, a word split into several tokens gives all of them,
    and a word never matches inside a longer one ("cat" is not found in "tigercat"). Errors start with
    `name` (the setting the word came from, as the caller spells it) when it is given.
    """
    prefix = f"{name}: " if name else ""
    if not isinstance(word, str) or not word.strip():
        raise PromptError(f"{prefix}word must be a non-empty string, got {word!r}")
    query = tokenizer(word.strip(), add_special_tokens=False).input_ids
    if not query:
        raise PromptError(f"{prefix}word {word!r} has no tokens")
    body = tokens.ids[: len(tokens) - 1]
    starts = _word_starts(tokens)
    found: list[int] = []
    for i in range(1, len(body) - len(query) + 1):
        if i in starts and tuple(body[i : i + len(query)]) == tuple(query):
            end = i + len(query)
            if end == len(body) or end in starts:
                found.extend(range(i, end))
    if not found:
        reading = getattr(tokenizer, "reading", None)  # SDXL: which tokenizers were asked
        raise PromptError(
            f"{prefix}word {word!r} is not in prompt {tokens.prompt!r}" + (f" ({reading})" if reading else "")
        )
    return found


def target_word_indices(
    tokenizer: PreTrainedTokenizerBase, targets: Sequence[Tokens], word: str, what: str
) -> list[tuple[int, list[int]]]:
    """(target row, token positions) of `word` in each target prompt that has it; an error naming the
    word and the prompts (`what` names the option) if none has it."""
    found = []
    for j, tokens in enumerate(targets):
        try:
            found.append((j, word_indices(tokenizer, tokens, word)))
        except PromptError:
            continue
    if not found:
        prompts = ", ".join(repr(t.prompt) for t in targets)
        raise PromptError(f"{what} word {word!r} is in no target prompt ({prompts})")
    return found


def _pad_partners(src: Tokens, tgt: Tokens, mapper: torch.Tensor, partner: torch.Tensor) -> None:
    """Padding after the target's end token takes the source column at the same position (j -> j), as the
    reference code does (seq_aligner.get_mapper, get_replacement_mapper_): not shifted by the length difference."""
    for j in range(len(tgt), min(tgt.max_length, src.max_length)):
        mapper[j, j] = 1.0
        partner[j] = 1.0


def replacement_map(src: Tokens, tgt: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
    """Token map of a word swap: (mapper[source token, target token], partner[target token]).

    Words must line up one for one. Unchanged words and swapped words of equal token count map token to
    token; a swapped word of n source and m target tokens maps each source token to each target token
    with weight 1/m. Target tokens with no source partner (partner = 0) keep their own attention.
    """
    if len(src.words) != len(tgt.words):
        raise PromptError(
            f"replace needs prompts with the same number of words: {src.prompt!r} has {len(src.words)}, "
            f"{tgt.prompt!r} has {len(tgt.words)} (use edit='refine' to add or remove words)"
        )
    n = src.max_length
    mapper = torch.zeros(n, n)
    partner = torch.zeros(n)
    start, end = (range(0, 1), range(0, 1)), (range(len(src) - 1, len(src)), range(len(tgt) - 1, len(tgt)))
    pairs = [start, *zip(src.spans, tgt.spans), end]
    for s_span, t_span in pairs:
        if len(s_span) == len(t_span):
            for i, j in zip(s_span, t_span):
                mapper[i, j] = 1.0
        else:
            for i in s_span:
                for j in t_span:
                    mapper[i, j] = 1.0 / len(t_span)
        partner[list(t_span)] = 1.0
    _pad_partners(src, tgt, mapper, partner)
    return mapper, partner


def align(source: tuple[int, ...], target: tuple[int, ...]) -> list[int]:
    """Global alignment of two token sequences (match +1, mismatch -1, gap 0): for each target token the
    index of its source partner, or -1. Only equal tokens are ever paired."""
    n, m = len(source), len(target)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = score[i - 1][j - 1] + (1 if source[i - 1] == target[j - 1] else -1)
            score[i][j] = max(score[i][j - 1], score[i - 1][j], diag)
    partners = [-1] * m
    i, j = n, m
    while i > 0 and j > 0:
        if source[i - 1] == target[j - 1] and score[i][j] == score[i - 1][j - 1] + 1:
            partners[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif score[i][j] == score[i][j - 1]:
            j -= 1
        else:
            i -= 1
    return partners


def refinement_map(src: Tokens, tgt: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
    """Token map of a refinement (words added or removed anywhere): aligned tokens take the source
    token's attention, new tokens keep their own (partner = 0)."""
    n = src.max_length
    mapper = torch.zeros(n, n)
    partner = torch.zeros(n)
    for j, i in enumerate(align(src.ids, tgt.ids)):
        if i >= 0:
            mapper[i, j] = 1.0
            partner[j] = 1.0
    _pad_partners(src, tgt, mapper, partner)
    return mapper, partner


def choose_edit(src: Tokens, tgt: Tokens, edit: str, name: str = "edit") -> str:
    """The edit kind used for one target: "auto" is replace for equal word counts, refine otherwise."""
    validation.choice(edit, EDIT_KINDS, name, error=PromptError)
    if edit == "auto":
        return "replace" if len(src.words) == len(tgt.words) else "refine"
    return edit


def identity_map(src: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
    """Each target token takes the source token at the same position (reweight on its own)."""
    n = src.max_length
    return torch.eye(n), torch.ones(n)


def token_map(src: Tokens, tgt: Tokens, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mapper, partner) for one target row and edit kind ("replace", "refine" or "reweight")."""
    if kind == "replace":
        return replacement_map(src, tgt)
    if kind == "refine":
        return refinement_map(src, tgt)
    return identity_map(src)
