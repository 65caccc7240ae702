"""Why the un-mixed baseline leads, when it does: one line under the leaderboard.

Mixing is a regulariser: it pays off once an un-mixed model overfits, that is when
``vanilla`` fits its training set. A grid trained too briefly (the ``quick`` profile)
ranks ``vanilla`` first for that reason alone, and a new user should be told so rather
than left to guess (:func:`vanilla_lead_note`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msda_arena.report.curves import PLATEAU, curve_points, mean_curves, plateau_epoch

if TYPE_CHECKING:
    import pandas

    from msda_arena.report.table import Leaderboard

__all__ = ["FIT_LOSS", "LONGER_PROFILES", "vanilla_lead_note"]

#: The un-mixed model fits its training set when its last epoch's mean training loss
#: (cross-entropy, nats) is below this: about 97% of the training images right.
FIT_LOSS = 0.1
#: Profiles of arena.toml that train longer, from the CPU's real-data check to the
#: paper's grid; the note suggests those the results do not come from.
LONGER_PROFILES = ("fashion", "cifar100")


def vanilla_lead_note(frame: pandas.DataFrame, board: Leaderboard) -> str | None:
    """One line saying why ``vanilla`` ranks first, or ``None`` when it does not.

    ``vanilla`` leads when it is the first complete measured row on a higher-is-better
    metric (accuracy; for calibration the question does not arise). The reason comes
    from its successful records: a mean last-epoch training loss above
    :data:`FIT_LOSS` means it did not fit its training set in the recipe's epochs, so
    there was no overfitting for mixing to reduce; below it, mixing simply did not help
    on this grid. Where the results stored learning curves, the line adds where the
    un-mixed model's mean training loss stopped improving (:func:`_where_it_stopped`).
    """
    if not board.metric.higher_is_better or not board.rows:
        return None
    leader = board.rows[0]
    if leader.method != "vanilla" or not leader.complete:
        return None
    ok = frame[(frame["method"] == "vanilla") & (frame["status"] == "ok")]
    losses = ok["train_loss"].dropna()
    if losses.empty:
        return None
    loss = float(losses.mean())
    epochs = int(ok["epochs"].max())
    stopped = _where_it_stopped(ok)
    if loss > FIT_LOSS:
        here = set(frame["profile"]) if "profile" in frame.columns else set()
        longer = [p for p in LONGER_PROFILES if p not in here]
        return (
            f"vanilla leads because training is too short for mixing to pay off: after "
            f"{epochs} epoch(s) the un-mixed model's training loss is {loss:.2f}, and it takes "
            f"a loss below {FIT_LOSS:g} to fit the training set, so there is no overfitting "
            "for mixing to reduce"
            + (f" ({stopped})" if stopped else "")
            + "; judge methods on a profile that trains longer"
            + (f" ({', '.join(longer)})" if longer else "")
        )
    after = f"{epochs} epochs" + (f"; {stopped}" if stopped else "")
    return (
        f"vanilla leads although it fits its training set (training loss {loss:.3f} after "
        f"{after}): on this grid, mixing did not improve {board.metric.short}"
    )


def _where_it_stopped(ok: pandas.DataFrame) -> str:
    """Where the un-mixed model's training loss, averaged over its cells per epoch,
    stopped improving (:func:`~msda_arena.report.curves.plateau_epoch`), or that it was
    still falling at the end; ``""`` without curves."""
    points = curve_points(ok)
    if points.empty:
        return ""
    means = mean_curves(points).groupby("epoch")["mean"].mean()
    if len(means) < 2:
        return ""
    losses = means.tolist()
    plateau = plateau_epoch(losses)
    if plateau is None:
        return f"its loss was still falling in the last epoch, {losses[-2]:.3g} to {losses[-1]:.3g}"
    return (
        f"its loss stopped improving after epoch {means.index[plateau - 1]} of "
        f"{means.index[-1]}, never falling more than {PLATEAU:.0%} after it"
    )
