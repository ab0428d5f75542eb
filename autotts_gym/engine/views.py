"""The views of an episode's branches, written once for every Episode implementation.

The replay engine (:class:`autotts_gym.engine.Episode`) and the isolated channel's mirror
(:class:`autotts_gym.isolation.client.RemoteEpisode`) keep the same per-branch state under
the same names: ``_depth``, ``_status``, ``_latest``, ``_probed_at`` (lists by branch),
``_active`` (active branches in opening order), ``_finals`` and ``_finished_order``
(finishing order) and ``_vote`` (the cached vote of the finished pool). These views read
it. Compiled with the engine (``views.pxd`` declares the state's C types), or plain Python.
"""

from __future__ import annotations

from autotts_gym.engine.protocol import ACTIVE, FINISHED, NO_ANSWER_ID, PRUNED
from autotts_gym.engine.voting import majority


class BranchViews:
    """Read-only views of the branch state (see the module docstring)."""

    __slots__ = ("_depth", "_status", "_latest", "_probed_at", "_active", "_finals", "_finished_order", "_vote")

    @property
    def num_opened(self) -> int:
        """Branches opened so far (m_t)."""
        return len(self._depth)

    def depth(self, j: int) -> int:
        """Intervals decoded on branch j (``num_probes + 1`` once finished step by step)."""
        return self._depth[j]

    @property
    def depths(self) -> list[int]:
        """Depth of every opened branch, in opening order (read-only copy)."""
        return list(self._depth)

    def status(self, j: int) -> int:
        """``ACTIVE`` (0), ``FINISHED`` (1) or ``PRUNED`` (2)."""
        return self._status[j]

    def is_active(self, j: int) -> bool:
        """True if branch j can still be continued, probed or pruned."""
        return self.status(j) == ACTIVE

    def is_finished(self, j: int) -> bool:
        """True if branch j reached its end."""
        return self.status(j) == FINISHED

    def is_pruned(self, j: int) -> bool:
        """True if branch j was pruned."""
        return self.status(j) == PRUNED

    def is_probed(self, j: int) -> bool:
        """True if branch j was probed at its current depth (or is finished)."""
        return self._probed_at[j] == self._depth[j] or self.status(j) == FINISHED

    def latest_answer(self, j: int) -> int:
        """Latest revealed answer of branch j (its final answer once finished), -1 if none."""
        return self._latest[j]

    def final_answer(self, j: int) -> int:
        """Final answer of branch j if finished, else -1."""
        return self._latest[j] if self.status(j) == FINISHED else NO_ANSWER_ID

    @property
    def latest_answers(self) -> list[int]:
        """Latest revealed answer of every opened branch (read-only copy)."""
        return list(self._latest)

    @property
    def active_branches(self) -> list[int]:
        """Branches that are neither finished nor pruned, in opening order."""
        return list(self._active)

    def active_by_depth(self, deepest_first: bool = True) -> list[int]:
        """Active branches ordered by depth (deepest first, or shallowest first); equal
        depths keep opening order."""
        order, depth = list(self._active), self._depth
        # A stable insertion sort (the active set is small, and mostly in order already).
        for i in range(1, len(order)):
            j = order[i]
            key = depth[j]
            k = i
            while k > 0:
                before = order[k - 1]
                d = depth[before]
                if (d >= key) if deepest_first else (d <= key):
                    break
                order[k] = before
                k -= 1
            order[k] = j
        return order

    @property
    def num_active(self) -> int:
        """Number of active branches."""
        return len(self._active)

    @property
    def num_finished(self) -> int:
        """Number of finished branches (the size of the completed pool)."""
        return len(self._finals)

    def finished_vote(self) -> tuple[int, int, int]:
        """``majority(finished_answers)``: ``(winner, v1, v2)`` of the completed pool, ties
        to the answer that finished first; ``(-1, 0, 0)`` while it is empty. Kept until a
        branch finishes, so reading it every step costs nothing."""
        size, vote = self._vote
        if size != len(self._finals):
            vote = majority(self._finals)
            self._vote = (len(self._finals), vote)
        return vote

    @property
    def finished_answers(self) -> list[int]:
        """Final answers in the order branches finished (the completed pool)."""
        return list(self._finals)

    @property
    def finished_branches(self) -> list[int]:
        """Finished branches in finishing order."""
        return list(self._finished_order)

