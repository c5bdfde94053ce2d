"""The caption grammar of the toy world, its vocabulary, and which caption tokens name which object."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
from transformers import CLIPTokenizer

from p2p_real.models.word_tokenizer import END, build_clip_tokenizer
from p2p_real.toyworld.world import COLOURS, SHAPES, SIZES, Scene, check_attributes

# Words that the tokenizer splits into two tokens ("|" marks the split), so multi-token words get exercised.
SPLIT_WORDS: dict[str, str] = {"purple": "pur|ple", "triangle": "tri|angle"}
GRAMMAR_WORDS: tuple[str, ...] = ("a", "and", "on", "background")
BACKGROUND = -1  # token group of the background's words
NO_GROUP = -2  # token group of grammar words, BOS, EOS and padding


def vocabulary() -> list[str]:
    """Every word of the grammar, in build_clip_tokenizer's notation ("pur|ple")."""
    words = [*GRAMMAR_WORDS, *SIZES, *COLOURS, *SHAPES]
    return [SPLIT_WORDS.get(word, word) for word in words]


def word_pieces(word: str) -> list[str]:
    """The tokens a vocabulary word is meant to become ("purple" -> ["pur", "ple</w>"])."""
    pieces = SPLIT_WORDS.get(word, word).split("|")
    return [*pieces[:-1], pieces[-1] + END]


@functools.lru_cache(maxsize=1)
def _cached_tokenizer() -> CLIPTokenizer:
    return build_clip_tokenizer(vocabulary())


def build_tokenizer() -> CLIPTokenizer:
    """The CLIPTokenizer of the toy world (77 tokens, padded with the end token like SD's)."""
    return _cached_tokenizer()


@dataclass(frozen=True)
class ObjectPhrase:
    """One object as a caption names it: "a [size] colour shape" (size may be left out)."""

    colour: str
    shape: str
    size: str | None = None

    def words(self) -> list[str]:
        """The phrase's words, article first."""
        return ["a", *([self.size] if self.size else []), self.colour, self.shape]


@dataclass(frozen=True)
class Caption:
    """A caption: one or two objects joined by "and", then optionally "on a <colour> background"."""

    objects: tuple[ObjectPhrase, ...]
    background: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.objects) <= 2:
            raise ValueError(f"a caption names 1 or 2 objects, got {len(self.objects)}")
        for obj in self.objects:
            check_attributes(colour=obj.colour, shape=obj.shape, size=obj.size)
        check_attributes(colour=self.background)

    def tagged_words(self) -> list[tuple[str, int]]:
        """(word, group) pairs: group k for object k's size/colour/shape, BACKGROUND, or NO_GROUP."""
        tagged: list[tuple[str, int]] = []
        for k, obj in enumerate(self.objects):
            if k:
                tagged.append(("and", NO_GROUP))
            tagged += [(word, NO_GROUP if word == "a" else k) for word in obj.words()]
        if self.background:
            tagged += [("on", NO_GROUP), ("a", NO_GROUP), (self.background, BACKGROUND), ("background", BACKGROUND)]
        return tagged

    @property
    def text(self) -> str:
        """The caption as a sentence."""
        return " ".join(word for word, _ in self.tagged_words())


def caption_of(scene: Scene, with_size: bool = True, with_background: bool = True) -> Caption:
    """The caption of a scene, optionally without the sizes and/or the background."""
    objects = tuple(ObjectPhrase(o.colour, o.shape, o.size if with_size else None) for o in scene.objects)
    return Caption(objects, scene.background if with_background else None)


def scene_caption(scene: Scene, with_size: bool = True, with_background: bool = True) -> str:
    """ "a big red circle and a small blue square on a yellow background" (or a shorter form)."""
    return caption_of(scene, with_size, with_background).text


def random_caption(scene: Scene, rng: np.random.Generator) -> Caption:
    """A caption form drawn for training: sizes said 70% of the time, the background 70%."""
    return caption_of(scene, with_size=bool(rng.uniform() < 0.7), with_background=bool(rng.uniform() < 0.7))


_COLOUR = "|".join(COLOURS)
_OBJECT = rf"a (?:({'|'.join(SIZES)}) )?({_COLOUR}) ({'|'.join(SHAPES)})"
_CAPTION = re.compile(rf"^{_OBJECT}(?: and {_OBJECT})?(?: on a ({_COLOUR}) background)?$")


def parse_caption(text: str) -> Caption:
    """Read a caption of the grammar back into its objects and background; ValueError if it is not one."""
    match = _CAPTION.match(" ".join(text.lower().strip().rstrip(".").split()))
    if match is None:
        raise ValueError(
            f"caption {text!r} is not of the form 'a [small|big] <colour> <shape> [and a ...] "
            "[on a <colour> background]'"
        )
    size1, colour1, shape1, size2, colour2, shape2, background = match.groups()
    objects = [ObjectPhrase(colour1, shape1, size1)]
    if colour2:
        objects.append(ObjectPhrase(colour2, shape2, size2))
    return Caption(tuple(objects), background)


def token_tags(caption: Caption, max_length: int = 77) -> list[tuple[str | None, int]]:
    """(word, group) of each of the max_length token positions, as `Caption.tagged_words` assigns them; BOS
    and the padding are (None, NO_GROUP)."""
    tags: list[tuple[str | None, int]] = [(None, NO_GROUP)]  # BOS
    for word, group in caption.tagged_words():
        tags += [(word, group)] * len(word_pieces(word))
    if len(tags) + 1 > max_length:
        raise ValueError(f"caption {caption.text!r} is longer than {max_length} tokens")
    return tags + [(None, NO_GROUP)] * (max_length - len(tags))


def token_groups(caption: Caption, max_length: int = 77) -> list[int]:
    """Group of each of the max_length token positions (BOS first), as `Caption.tagged_words` assigns them."""
    return [group for _, group in token_tags(caption, max_length)]
