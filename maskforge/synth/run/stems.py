"""Output stems for the photos of one folder: distinct, and never another photo's file name.

A photo's outputs are `<stem>_<face>.jpg` (and `<stem>_<face>_neg.jpg`, a hard negative) when
it is cut per face, `<stem>.jpg` and `<stem>_neg.jpg` when it is written whole (framing
`full`). So the stem of photo a.jpg must differ from every other photo's stem, and from
a_neg when a.jpg may be written whole; and when one run writes some photos whole and others
per face, a whole photo named a_0.jpg would take the file of a.jpg's face 0. Stems are
compared case-insensitively, as some file systems compare names.

With `--masks-per-face N`, the k-th mask draw (k >= 1) of a photo writes under the stem
`<stem>_m<k>`, so those stems are claimed for the photo too (a_m1.jpg beside a.jpg gets
another stem).

A rerun that resumes into an output folder gets the stems the folder's recorded photos use
(`RecordedStems`, built by run.journal): a photo added to the input since must keep clear of
them, or it would overwrite a recorded photo's files (a_jpg.jpg added beside a.jpg and a.png,
whose outputs are a_jpg_0.jpg and a_png_0.jpg).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Container
from pathlib import Path

from maskforge.core.paths import printable

# What pipeline.Synthesizer adds to a stem for a hard negative's file.
NEGATIVE_SUFFIX = "_neg"
# A stem <1> with the suffix mask_draw_suffix gives its <2>-th mask draw.
_DRAW = re.compile(r"(.+)_m([1-9]\d*)")
# A name in the space of per-face outputs of stem <1>: <1>_<face>, <1>_<face>_neg.
_PER_FACE = re.compile(r"(.+)_\d+(?:_neg)?")


def mask_draw_suffix(draw: int) -> str:
    """What the stem of a photo's `draw`-th mask draw (--masks-per-face) adds to its own ("" for
    the first)."""
    return f"_m{draw}" if draw else ""


class _Claims:
    """The file names a set of stems may write, for constant-time clash checks."""

    def __init__(self, per_face: bool, draws: int = 1):
        self.per_face, self.draws = per_face, draws
        self.names: set[str] = set()  # each stem and its whole-photo negative
        self.stems: set[str] = set()  # stems whose per-face names are taken (per_face)
        self.inside: set[str] = set()  # stems that hold a per-face name of a stem added

    def add(self, key: str) -> None:
        for draw in range(self.draws):
            self._add(key + mask_draw_suffix(draw))

    def clashes(self, key: str) -> bool:
        """True when a photo with stem `key` could write a file a stem added may write."""
        return any(self._clashes(key + mask_draw_suffix(d)) for d in range(self.draws))

    def _add(self, key: str) -> None:
        self.names.update((key, key + NEGATIVE_SUFFIX))
        if self.per_face:
            self.stems.add(key)
            match = _PER_FACE.fullmatch(key)
            if match:
                self.inside.add(match.group(1))

    def _clashes(self, key: str) -> bool:
        if key in self.names or key + NEGATIVE_SUFFIX in self.names:
            return True
        if not self.per_face:
            return False
        match = _PER_FACE.fullmatch(key)
        return (match is not None and match.group(1) in self.stems) or key in self.inside


def recorded_stem(output: str, face: str, framing: str, draw: int, negative: bool = False) -> str:
    """The stem (folder-prefixed, lowercase) of the photo that wrote `output` (a path relative
    to out/, under its class folder) for `face` with `framing` as its `draw`-th mask draw;
    negative: `output` is the hard negative's file (<name>_neg)."""
    *folders, name = output.split("/")[1:]
    name = name.rsplit(".", 1)[0]
    if negative and name.endswith(NEGATIVE_SUFFIX):
        name = name[: -len(NEGATIVE_SUFFIX)]
    if framing != "full" and face != "" and name.endswith(f"_{face}"):
        name = name[: -len(face) - 1]
    suffix = mask_draw_suffix(draw)
    if suffix and name.endswith(suffix):
        name = name[: -len(suffix)]
    return "/".join([*folders, name]).lower()


def per_face_prefixes(stem: str, draws: int) -> list[str]:
    """The stems whose per-face names include one of the names `stem` writes (a_0 -> a)."""
    found = (_PER_FACE.fullmatch(stem + mask_draw_suffix(d)) for d in range(draws))
    return [m.group(1) for m in found if m]


class RecordedStems:
    """The stems an output folder's recorded photos wrote under (lowercase, folder-prefixed),
    as containers of strings (run.journal keeps them as 8-byte hashes): what a new photo's
    stem must keep clear of when a run resumes."""

    def __init__(self, stems: Container[str], prefixes: Container[str], draws: int = 1):
        self.stems, self.prefixes, self.draws = stems, prefixes, draws

    def clashes(self, key: str, per_face: bool) -> bool:
        """True when a photo with stem `key` could write a file a recorded photo wrote."""
        return any(self._clashes(key + mask_draw_suffix(d), per_face) for d in range(self.draws))

    def _bases(self, name: str) -> list[str]:
        """The recorded stems that would write `name` as their own whole-photo name."""
        bases = [name]
        drawn = _DRAW.fullmatch(name)
        if drawn and int(drawn.group(2)) < self.draws:
            bases.append(drawn.group(1))
        return bases

    def _clashes(self, key: str, per_face: bool) -> bool:
        names = [key, key + NEGATIVE_SUFFIX]
        if key.endswith(NEGATIVE_SUFFIX):
            names.append(key[: -len(NEGATIVE_SUFFIX)])
        if any(base in self.stems for name in names for base in self._bases(name)):
            return True
        if not per_face:
            return False
        match = _PER_FACE.fullmatch(key)
        if match and any(base in self.stems for base in self._bases(match.group(1))):
            return True
        return key in self.prefixes


def folder_stems(
    paths: list[Path],
    mixed: bool = False,
    draws: int = 1,
    recorded: RecordedStems | None = None,
    done: list[bool] | None = None,
    folder: str = "",
) -> list[str]:
    """The output stem of each photo of one folder, in order.

    A stem is the file name without its extension, unless two photos share one (a.jpg,
    a.png): both keep it (a_jpg, a_png). A stem that still clashes (a.jpg, a.png and
    a_jpg.jpg), or that is another photo's negative name (a_neg.jpg beside a.jpg), gets
    _2, _3, ... (the first free one). mixed: the run writes some photos whole and others per
    face, so a stem must also stay out of the others' per-face names (a_0.jpg beside a.jpg);
    the made-up stems are then _v2, _v3, ..., which no per-face name looks like. draws:
    --masks-per-face, whose later draws' stems (<stem>_m<k>) are the photo's too.
    recorded, done, folder: on resume, the stems the output folder's recorded photos wrote
    under, which photos of `paths` are recorded (they are not written again, so their stems
    here are unused), and the folder's path relative to the input ("" at the top): a photo not
    recorded keeps clear of the recorded stems (made-up stem as above).
    """
    counts = Counter(p.stem.lower() for p in paths)
    names = [p.name.replace(".", "_") if counts[p.stem.lower()] > 1 else p.stem for p in paths]
    own = [counts[p.stem.lower()] == 1 for p in paths]
    keys = [name.lower() for name in names]
    derived = [_derived(key, set(keys), mixed, draws) for key in keys]
    done = done or [False] * len(paths)
    prefix = folder.lower() + "/" if folder else ""

    def taken(key: str) -> bool:
        # printable: synthesis.csv records a name that is not UTF-8 escaped (core.paths)
        return recorded is not None and recorded.clashes(prefix + printable(key), mixed)

    new_taken = any(taken(key) for key, d in zip(keys, done) if not d)
    if len(set(keys)) == len(keys) and not any(derived) and not new_taken:
        return names
    wanted = _Claims(mixed, draws)
    for key in keys:
        wanted.add(key)
    used = _Claims(mixed, draws)
    result = list(names)
    # A photo's own name first, unless it is made from another photo's; then sorted order.
    for i in sorted(range(len(names)), key=lambda i: (not own[i], derived[i], i)):
        key = keys[i]
        if done[i] and recorded is not None:
            continue  # recorded: its files are the recorded stems'
        if used.clashes(key) or taken(key):
            k = 2
            # A made-up name also keeps clear of what the other photos are called.
            while (
                used.clashes(made := f"{key}_{'v' if mixed else ''}{k}")
                or wanted.clashes(made)
                or taken(made)
            ):
                k += 1
            result[i] = names[i] + made[len(key) :]
            key = made
        used.add(key)
    return result


def _derived(key: str, keys: set[str], mixed: bool, draws: int = 1) -> bool:
    """True for a name made from another photo's: its negative, a later mask draw's stem, or
    (mixed) a per-face name."""
    if key.endswith(NEGATIVE_SUFFIX) and key[: -len(NEGATIVE_SUFFIX)] in keys:
        return True
    drawn = _DRAW.fullmatch(key[: -len(NEGATIVE_SUFFIX)] if key.endswith(NEGATIVE_SUFFIX) else key)
    if drawn and int(drawn.group(2)) < draws and drawn.group(1) in keys:
        return True
    match = _PER_FACE.fullmatch(key) if mixed else None
    return match is not None and match.group(1) in keys
