"""The pair-weight profiles of a report's methods, as one PNG for the HTML page.

For each method of the report that is installed here, :func:`profiles_png` measures its
fingerprint (at the settings of the ``locality`` each result stores, so the legend's L
equals the leaderboard's) and draws them all with
:func:`msda_arena.theory.fingerprint.plot_fingerprints`. A method that is not installed, or
whose fingerprint raises (``vanilla`` never mixes), is left out with a note; if nothing
can be drawn (no torch, every method left out, the plot fails) the result holds no
image and says why: the page renders whatever happens here. This is the one part of
``arena report`` that imports torch, and only when it runs (for ``--format html``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from msda_arena.api.record import LOCALITY_SAMPLES, LOCALITY_SEED, LOCALITY_SIZE

__all__ = ["ProfilePlot", "profiles_png"]


@dataclass
class ProfilePlot:
    """The profiles figure of a page.

    Attributes:
        png: the PNG bytes, or ``None`` when nothing could be drawn.
        methods: the methods drawn, in order.
        notes: one line per method left out (and why), or why nothing was drawn.
    """

    png: bytes | None
    methods: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def profiles_png(
    methods: Sequence[str],
    size: tuple[int, int] = LOCALITY_SIZE,
    samples: int = LOCALITY_SAMPLES,
    seed: int = LOCALITY_SEED,
) -> ProfilePlot:
    """Fingerprint each of ``methods`` (canonical specs) and draw their profiles.

    Never raises (a ``KeyboardInterrupt`` excepted): what fails becomes a note.
    """
    notes: list[str] = []
    try:
        # Here, not at the top: drawing imports torch and the plugins, which no other
        # part of `arena report` needs, and a broken install must not stop the page.
        from msda_arena.methods.registry import get_method
        from msda_arena.theory.fingerprint import fingerprint, plot_fingerprints
    except (Exception, SystemExit) as exc:
        return ProfilePlot(None, [], [f"pair-weight profiles not drawn ({_reason(exc)})"])
    fps = []
    for spec in methods:
        try:
            method = get_method(spec)
        except (Exception, SystemExit) as exc:
            notes.append(f"{spec}: not drawn, not installed here ({_reason(exc)})")
            continue
        try:
            fps.append(fingerprint(method, size, samples=samples, seed=seed))
        except (Exception, SystemExit) as exc:
            notes.append(f"{spec}: not drawn ({_reason(exc)})")
    if not fps:
        return ProfilePlot(None, [], [*notes, "no method of this report could be fingerprinted"])
    try:
        with tempfile.TemporaryDirectory(prefix="arena-profiles-") as tmp:
            path = Path(tmp) / "profiles.png"
            plot_fingerprints(fps, path)
            png = path.read_bytes()
    except (Exception, SystemExit) as exc:
        return ProfilePlot(None, [], [*notes, f"pair-weight profiles not drawn ({_reason(exc)})"])
    return ProfilePlot(png, [fp.method for fp in fps], notes)
