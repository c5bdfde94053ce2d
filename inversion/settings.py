"""How a photo is inverted: caption, method, steps, guidance and working area, checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from inversion import validation
from inversion.methods import DEFAULT_METHOD, METHOD_NAMES

DEFAULT_STEPS = 50  # DDIM steps
DEFAULT_GUIDANCE = 7.5  # classifier-free guidance scale


@dataclass(frozen=True)
class InversionSettings:
    """The settings of an inversion. None means "not fixed": a fresh inversion takes the default (see
    `resolved`), a check of a saved inversion (Inversion.check_matches) accepts whatever it has.

    `square=None` leaves the working area unchecked; True or False (with `size` or the model's own
    size) asks for the exact area a fresh inversion of the photo would use. `names` says how the caller
    spells each setting in messages (e.g. {"num_inference_steps": "--steps"}); it is not compared.
    """

    prompt: str | None = None
    method: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    size: tuple[int, int] | None = None  # working (width, height); None: the model's pixel count
    square: bool | None = None
    names: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise validation.PromptError(f"{self.name('prompt')} must be a string, got {self.prompt!r}")
        if self.method is not None:
            validation.choice(self.method, METHOD_NAMES, self.name("method"))
        if self.num_inference_steps is not None:
            validation.steps(self.num_inference_steps, self.name("num_inference_steps"))
        if self.guidance_scale is not None:
            guidance = validation.number(self.guidance_scale, self.name("guidance_scale"), minimum=0)
            object.__setattr__(self, "guidance_scale", guidance)
        if self.size is not None:
            object.__setattr__(
                self, "size", validation.size(self.size, self.name("size"), maximum=validation.MAX_WORKING_SIDE)
            )
        if self.square is not None and not isinstance(self.square, bool):
            raise ValueError(f"{self.name('square')} must be True or False, got {self.square!r}")

    def __eq__(self, other: object) -> bool:
        """Equal to any settings, resolved or not, that hold the same values (`names` is not compared)."""
        if not isinstance(other, InversionSettings):
            return NotImplemented
        return self._compared() == other._compared()

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self) if f.compare)

    def name(self, setting: str) -> str:
        """How the caller spells `setting`."""
        return (self.names or {}).get(setting, setting)

    def resolved(
        self, num_inference_steps: int = DEFAULT_STEPS, guidance_scale: float = DEFAULT_GUIDANCE
    ) -> ResolvedInversionSettings:
        """The settings of a fresh inversion: the defaults (method, steps, guidance, no square crop) filled in;
        a PromptError if there is no prompt (a fresh inversion needs the photo's caption)."""
        if self.prompt is None:
            raise validation.PromptError(f"{self.name('prompt')} must be a string (the photo's caption), got None")
        return ResolvedInversionSettings(
            prompt=self.prompt,
            method=self.method or DEFAULT_METHOD,
            num_inference_steps=self.num_inference_steps or num_inference_steps,
            guidance_scale=guidance_scale if self.guidance_scale is None else self.guidance_scale,
            size=self.size,
            square=bool(self.square),
            names=self.names,
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values."""
        data = asdict(self)
        del data["names"]
        data["size"] = None if self.size is None else list(self.size)
        return data


@dataclass(frozen=True, eq=False)  # eq=False: InversionSettings.__eq__ compares it with unresolved settings
class ResolvedInversionSettings(InversionSettings):
    """The settings of a fresh inversion (InversionSettings.resolved): every setting fixed but `size`."""

    prompt: str
    method: str
    num_inference_steps: int
    guidance_scale: float
    square: bool = False

    def __post_init__(self) -> None:
        for setting in ("prompt", "method", "num_inference_steps", "guidance_scale", "square"):
            if getattr(self, setting) is None:
                raise ValueError(f"{self.name(setting)} must be given: resolved settings fix every setting but size")
        super().__post_init__()
