"""A small CLIP byte-pair tokenizer written from a word list, so models can be built offline."""

from __future__ import annotations

import itertools
import json
import string
import tempfile
from collections.abc import Iterable
from pathlib import Path

from transformers import CLIPTokenizer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
END = "</w>"
CHARS = string.ascii_lowercase + string.digits
PUNCTUATION = ",.!?;:'-\"()"


def _piece_symbols(piece: str, final: bool) -> list[str]:
    symbols = list(piece)
    if final:
        symbols[-1] += END
    return symbols


def _bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply merges by rank, the way the BPE model does, to check what a word becomes."""
    symbols = list(symbols)
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b), len(ranks) + 1), i) for i, (a, b) in enumerate(itertools.pairwise(symbols))]
        rank, i = min(pairs)
        if rank > len(ranks):
            break
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def _chain(piece: str, final: bool) -> list[tuple[str, str]]:
    """The merges that build one piece from its characters, left to right."""
    symbols = _piece_symbols(piece, final)
    merges, cur = [], symbols[0]
    for s in symbols[1:]:
        merges.append((cur, s))
        cur += s
    return merges


def build_vocab(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges so that each word becomes its pieces ("tiger|cat" -> "tiger", "cat</w>")."""
    targets: list[tuple[list[str], list[str], list[tuple[str, str]]]] = []
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = word.lower().split("|")
        if not all(pieces) or any(c not in CHARS for p in pieces for c in p):
            raise ValueError(f"vocabulary word {word!r} must be lowercase letters/digits, pieces split by '|'")
        last = len(pieces) - 1
        symbols = [s for i, p in enumerate(pieces) for s in _piece_symbols(p, i == last)]
        goal = [p + (END if i == last else "") for i, p in enumerate(pieces)]
        chain = [m for i, p in enumerate(pieces) for m in _chain(p, i == last)]
        targets.append((symbols, goal, chain))
        merges += [m for m in chain if m not in merges]
    # A merge learnt for one word can fire inside another (or across its split); give a broken word's
    # merges priority and check again until every word splits as asked.
    for _ in range(200):
        ranks = {m: r for r, m in enumerate(merges)}
        broken = [chain for symbols, goal, chain in targets if _bpe(symbols, ranks) != goal]
        if not broken:
            break
        merges = broken[0] + [m for m in merges if m not in broken[0]]
    else:
        raise RuntimeError("could not build a consistent set of merges for the vocabulary")
    vocab: dict[str, int] = {BOS: 0, EOS: 1}
    for ch in CHARS + PUNCTUATION:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + END, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab, merges


def write_vocab_files(words: Iterable[str], directory: str | Path) -> Path:
    """Write vocab.json and merges.txt (the files CLIPTokenizer reads) for `words` into `directory`."""
    vocab, merges = build_vocab(words)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, indent=0))
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n")
    return directory


def build_clip_tokenizer(words: Iterable[str], model_max_length: int = 77) -> CLIPTokenizer:
    """A CLIPTokenizer over `words` (letters a-z and digits; "|" marks a split into several tokens)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_vocab_files(words, tmp)
        tokenizer = CLIPTokenizer.from_pretrained(tmp, model_max_length=model_max_length)
    return tokenizer
