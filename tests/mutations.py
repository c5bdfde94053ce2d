"""The mutation audit (issue 27): break the library on purpose, once per listed mutation, and see the tests fail.

Each mutation replaces one exact string in one file of a temporary copy of the repository and runs the tests that
concern it there (the copy's modules first on sys.path). A mutation is caught when those tests fail, survived
when they pass. Before anything runs, every search string must occur exactly once in its file: a list that no
longer matches the code is refused, so it cannot rot silently. The tests are first run unmutated (they must pass).

    python tests/mutations.py            # every mutation; exit status 1 if one survived or could not run
    python tests/mutations.py --list     # the mutations, without running anything
    python tests/mutations.py NAME ...   # only these

Not part of the suite (no test functions; pytest collects test_*.py only); minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORED = shutil.ignore_patterns(
    ".venv", "venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info", ".mypy_cache", "p2p-demo"
)
TIMEOUT = 900  # seconds per test run


@dataclass(frozen=True)
class Mutation:
    """Replace `search` (exactly once in `path`) by `replace`; `tests` (pytest arguments) must then fail."""

    name: str
    what: str
    path: str
    search: str
    replace: str
    tests: tuple[str, ...]


NULL_TEXT = ("tests/test_null_text_schedule.py", "tests/test_null_text_speed.py")
IDENTITY = ("tests/test_inversion_identity.py", "tests/test_artifact.py")
FEATHER = ("tests/test_feather.py", "tests/test_paste.py")

MUTATIONS = (
    # the twelve survivors of the first audit
    Mutation(
        "edits-off",
        "every P2P attention edit switched off: the controller returns plain attention",
        "p2p_real/core/controllers.py",
        "if not (edit_cross or edit_self):",
        "if True:",
        ("tests/test_attention_edits_applied.py", "tests/test_edit.py"),
    ),
    Mutation(
        "fast-never-stops",
        "null-text-fast never stops a step early (the method passes no stall threshold)",
        "inversion/methods.py",
        "return _optimised_embeddings(pivot, FAST_MIN_IMPROVEMENT)",
        "return _optimised_embeddings(pivot, None)",
        NULL_TEXT,
    ),
    Mutation(
        "fast-stops-after-one",
        "null-text-fast stops every step after its first Adam step",
        "inversion/loops/null_text.py",
        "previous - loss < self.min_improvement * previous",
        "previous - loss < 1e30 * previous",
        NULL_TEXT,
    ),
    Mutation(
        "cache-key-no-model",
        "the inversion cache key ignores the model fingerprint",
        "inversion/cache.py",
        "model = [pipeline_fingerprint(pipe), str(pipe.unet.dtype)]",
        "model = [str(pipe.unet.dtype)]",
        ("tests/test_inversion_identity.py",),
    ),
    Mutation(
        "cache-reuse-across-models",
        "the cache reuses an inversion without checking the model",
        "inversion/cache.py",
        "inv.check_matches(settings.resolved(), image, pipe)",
        "inv.check_matches(settings.resolved(), image)",
        ("tests/test_inversion_identity.py",),
    ),
    Mutation(
        "check-matches-no-prompt",
        "check_matches ignores the prompt",
        "inversion/artifact.py",
        '        stored = {\n            "prompt": self.prompt,\n',
        "        stored = {\n",
        IDENTITY,
    ),
    Mutation(
        "check-matches-no-guidance",
        "check_matches ignores the guidance scale",
        "inversion/artifact.py",
        '            "guidance_scale": self.guidance_scale,\n        }',
        "        }",
        IDENTITY,
    ),
    Mutation(
        "to-dict-no-threshold",
        "EditSpec.to_dict drops blend_threshold",
        "p2p_real/spec.py",
        "return {name: json_plain(getattr(self, name)) for name in SETTINGS}",
        'return {name: json_plain(getattr(self, name)) for name in SETTINGS if name != "blend_threshold"}',
        ("tests/test_edit_settings.py", "tests/test_workflow.py"),
    ),
    Mutation(
        "no-lr-decay",
        "null-text's learning-rate decay removed",
        "inversion/loops/null_text.py",
        "step_learning_rate(i, learning_rate)",
        "learning_rate",
        NULL_TEXT,
    ),
    Mutation(
        "no-epsilon-slack",
        "null-text's per-step epsilon slack removed",
        "inversion/loops/null_text.py",
        "epsilon + EPSILON_SLACK * i",
        "epsilon",
        NULL_TEXT,
    ),
    Mutation(
        "feather-no-cell",
        "the default feather ignores the attention-map cell size",
        "p2p_real/editing/photo_edit.py",
        "return max(FEATHER, 1.0 / (3 * min(attention.maps.shape[1:3])))",
        "return FEATHER",
        FEATHER,
    ),
    Mutation(
        "feather-ignored",
        "spec.feather ignored by Editor.edit",
        "p2p_real/editing/photo_edit.py",
        "feather=feather_width(spec.feather, attention)",
        "feather=feather_width(None, attention)",
        FEATHER,
    ),
    Mutation(
        "fingerprint-no-adapters",
        "LoRA and embedding descriptions left out of the model fingerprint",
        "inversion/fingerprint.py",
        "    if adapters:\n",
        "    if False:\n",
        ("tests/test_inversion_identity.py", "tests/test_adapters.py"),
    ),
    # what the three tests that could not fail were meant to see
    Mutation(
        "stall-rule-off",
        "the stall stop never fires (tests/test_null_text_speed.py asserted on a constant)",
        "inversion/loops/null_text.py",
        "return self.min_improvement is not None and previous - loss",
        "return False and previous - loss",
        NULL_TEXT,
    ),
    Mutation(
        "reblend-changes-result",
        "recomputing a mask at another threshold changes the result's own spec "
        "(tests/test_reblend.py checked a frozen default)",
        "p2p_real/editing/reblend.py",
        "spec = spec.replace(blend_threshold=threshold)",
        "spec = result.spec = spec.replace(blend_threshold=threshold)",
        ("tests/test_reblend.py",),
    ),
    Mutation(
        "embeddings-reversed",
        "per-step embeddings handed to sampling in reverse order "
        "(tests/test_artifact.py checked their count and shape)",
        "inversion/artifact.py",
        "return [e[None].to(cond) for e in self.uncond_embeddings]",
        "return [e[None].to(cond) for e in self.uncond_embeddings.flip(0)]",
        ("tests/test_artifact.py",),
    ),
    # untested before issue 27: the CUDA-graph bookkeeping and the processor's parity with diffusers
    Mutation(
        "graph-output-not-copied",
        "a graph replay returns its static output instead of a copy",
        "inversion/loops/graphed_unet.py",
        "return self._out.clone()",
        "return self._out",
        ("tests/test_graphed_unet.py",),
    ),
    Mutation(
        "graph-input-not-copied",
        "a graph replay runs on the latents of the previous call",
        "inversion/loops/graphed_unet.py",
        "self._latents.copy_(latents)",
        "self._latents.copy_(self._latents)",
        ("tests/test_graphed_unet.py",),
    ),
    Mutation(
        "processor-no-rescale",
        "the processor drops AttnProcessor2_0's output rescale",
        "p2p_real/core/processor.py",
        "hidden_states = hidden_states / attn.rescale_output_factor",
        "hidden_states = hidden_states",
        ("tests/test_attention_processor.py",),
    ),
    Mutation(
        "processor-drops-mask",
        "the processor drops the attention mask",
        "p2p_real/core/processor.py",
        "hidden_states = self.controller.attend(query, key, value, attention_mask, is_cross)",
        "hidden_states = self.controller.attend(query, key, value, None, is_cross)",
        ("tests/test_attention_processor.py",),
    ),
)


def check_list(mutations: tuple[Mutation, ...], root: Path) -> list[str]:
    """Why each mutation cannot be applied to `root` (its string missing or ambiguous, a test path missing)."""
    problems = []
    names = [m.name for m in mutations]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{name}: listed twice")
    for m in mutations:
        path = root / m.path
        count = path.read_text().count(m.search) if path.is_file() else -1
        if count != 1:
            where = "file missing" if count < 0 else f"found {count} times, expected once"
            problems.append(f"{m.name}: {m.search!r} in {m.path}: {where}")
        for test in m.tests:
            if not (root / test.split("::")[0]).is_file():
                problems.append(f"{m.name}: test file {test} missing")
    return problems


def environment(copy: Path) -> dict[str, str]:
    """The copy's modules first on sys.path, offline, one thread."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "PYTHONPATH": str(copy), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def check_imports(copy: Path) -> None:
    """Refuse to run unless the copy's packages are the ones a test run imports."""
    code = (
        "import cli, inversion, masks, p2p_real\n"
        "print('\\n'.join(m.__file__ for m in (cli, inversion, masks, p2p_real)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=copy, env=environment(copy), capture_output=True, text=True, check=True
    ).stdout.split()
    outside = [f for f in out if not Path(f).resolve().is_relative_to(copy.resolve())]
    if outside:
        raise SystemExit(f"the tests would import the original, not the copy: {outside}")


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    """(pytest's exit status, seconds, last lines of its output) for `tests` in the copy."""
    start = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-rf", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    try:
        done = subprocess.run(command, cwd=copy, env=environment(copy), capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, time.monotonic() - start, f"timed out after {TIMEOUT} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    failed = [line.split(" - ")[0].removeprefix("FAILED ") for line in lines if line.startswith("FAILED ")]
    return done.returncode, time.monotonic() - start, failed[0] if failed else "\n".join(lines[-3:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in {m.name for m in MUTATIONS}]
    if unknown:
        parser.error(f"unknown mutations {unknown} (see --list)")
    chosen = tuple(m for m in MUTATIONS if not args.names or m.name in args.names)
    problems = check_list(MUTATIONS, ROOT)
    if problems:
        print("refusing to run: the mutation list no longer matches the code:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.name:28} {m.path:28} {m.what}")
        return 0
    with tempfile.TemporaryDirectory(prefix="p2p-mutations-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=IGNORED)
        check_imports(copy)
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            code, seconds, tail = run_tests(copy, tests)
            print(f"baseline: {len(tests)} test files, exit status {code}, {seconds:.0f} s", flush=True)
            if code != 0:
                print(f"refusing to judge mutations: the unmutated tests fail\n{tail}", file=sys.stderr)
                return 2
        results = []
        for m in chosen:
            path = copy / m.path
            original = path.read_text()
            path.write_text(original.replace(m.search, m.replace, 1))
            try:
                code, seconds, tail = run_tests(copy, m.tests)
            finally:
                path.write_text(original)
            verdict = {0: "SURVIVED", 1: "caught"}.get(code, f"ERROR (exit status {code})")
            results.append(verdict)
            print(f"{verdict:9} {m.name:28} {seconds:5.0f} s  {m.what}", flush=True)
            if code != 0:  # the test that failed, or what went wrong
                print("  " + tail.replace("\n", "\n  "), flush=True)
    caught = results.count("caught")
    survived = results.count("SURVIVED")
    errors = len(results) - caught - survived
    errors_note = f", {errors} errors" if errors else ""
    print(f"total: {len(results)} mutations, {caught} caught, {survived} survived{errors_note}")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
