"""Episodes whose data may be missing: a hook before every read, and the recorded-run check.

:class:`HookedEpisode` is the engine's :class:`~autotts_gym.engine.Episode` with three
hooks, which the engine calls before it reads a branch's data:
:meth:`~HookedEpisode.before_step` (the next interval), :meth:`~HookedEpisode.before_probe`
(a probe answer) and :meth:`~HookedEpisode.before_whole` (a whole branch). The accounting
stays the engine's.
The live backend (``collection.live``) decodes the missing piece in these hooks.

:class:`RecordedEpisode` replays a store written by a live run (``autotts run``): only
what that run decoded is in it, the rest holds :data:`NOT_GENERATED`. Its hooks stop the
episode with :class:`NotRecorded` the moment a controller asks for such a piece, instead
of replaying a placeholder as if it were an answer. ``EpisodeOptions.episode`` picks it
for every split whose metadata says it was recorded (:func:`is_recorded`).
"""

from __future__ import annotations

from autotts_gym.engine import Episode
from autotts_gym.engine.protocol import NO_ANSWER_ID

# The answer string a recorded store holds where the live run decoded nothing.
NOT_GENERATED = "<not generated>"
# The key of a split's ``info.extra`` that marks a recorded live run.
RECORDED_KEY = "live_run"


class NotRecorded(RuntimeError):
    """A replayed action asks for data the recorded live run never generated."""


def is_recorded(split: object) -> bool:
    """True if ``split`` (a :class:`~autotts_gym.store.Split`) was recorded by a live run."""
    info = getattr(split, "info", None)
    return RECORDED_KEY in (getattr(info, "extra", None) or {})


class HookedEpisode(Episode):
    """The engine's Episode with hooks before every data read (see the module docstring):
    the engine calls them when its class defines them.

    Takes :class:`~autotts_gym.engine.Episode`'s arguments.
    """

    __slots__ = ()

    def before_step(self, j: int, depth: int) -> None:
        """Called before branch j (opened, in the pool list) is decoded to ``depth``."""

    def before_probe(self, j: int, depth: int) -> None:
        """Called before the probe answer of branch j at ``depth`` is read."""

    def before_whole(self, branch: int) -> None:
        """Called before pool branch ``branch`` is read whole."""


class RecordedEpisode(HookedEpisode):
    """An episode of a store recorded by a live run: asking for what the run never
    generated raises :class:`NotRecorded` (see the module docstring)."""

    __slots__ = ("_missing",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        vocab = self.question.vocab
        self._missing = vocab.index(NOT_GENERATED) if NOT_GENERATED in vocab else NO_ANSWER_ID

    def _refuse(self, what: str) -> None:
        raise NotRecorded(
            f"question {self.question.index}: {what}, which the recorded live run never generated; "
            "a recorded store replays only the controller (method, beta, seeds, budget) that was run live"
        )

    def before_step(self, j: int, depth: int) -> None:
        """Refuse to decode past where the live run cut branch j."""
        b = self._pool[j]
        q = self.question
        # A branch never decoded has 0 tokens (and may carry one placeholder probe that
        # keeps ERR in the vocabulary); a cut one ends where the run stopped decoding it.
        never = q.total_tokens[b] == 0 and q.final_answer[b] == self._missing
        if never or (depth > q.num_probes[b] and q.final_answer[b] == self._missing):
            action = "BRANCH" if depth == 1 else "CONTINUE"
            self._refuse(f"{action} on branch {j} (pool branch {b}) to depth {depth}")

    def before_probe(self, j: int, depth: int) -> None:
        """Refuse a probe the live run did not make."""
        b = self._pool[j]
        if self.question.answer_at[b][depth] == self._missing:
            self._refuse(f"PROBE of branch {j} (pool branch {b}) at depth {depth}")

    def before_whole(self, branch: int) -> None:
        """Refuse to read whole a branch the live run did not decode to its end."""
        if self.question.final_answer[branch] == self._missing:
            self._refuse(f"READ_WHOLE of pool branch {branch}")
