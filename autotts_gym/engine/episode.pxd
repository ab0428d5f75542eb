# C types for the compiled build of episode.py (Cython's pure-Python mode: this file only
# declares types; the semantics are episode.py's). The state is public, so Python code
# (the isolation broker, tests) reads it as before. The private helpers are final: a
# backend changes the engine through its hooks (before_step, ...), not by overriding them.
import cython

from autotts_gym.engine.views cimport BranchViews

cdef Py_ssize_t ACTIVE, FINISHED, PRUNED

cdef Py_ssize_t _check_burst(burst, Py_ssize_t j) except -1


cdef class Episode(BranchViews):
    cdef public object question, order, _budget, _kappa, _aggregate, result, trace
    cdef public bint _hooked
    # The question's columns: tuples from a store, lists a live pool grows (collection.live).
    cdef public object _num_probes, _answer_at, _tokens_at, _final_answer, _total_tokens
    cdef public list _pool, _probe_log
    cdef public set _whole
    cdef public Py_ssize_t _whole_depth, _finish_tokens, _finished_stepwise, _n_prunes

    @cython.final
    cdef bint _fits(self, extra) except -1
    @cython.final
    @cython.locals(status=Py_ssize_t)
    cdef inline _require_active(self, Py_ssize_t j, str action)
    @cython.final
    cdef _require_open(self, str action)
    @cython.final
    cdef _require_budget(self, extra, str action)
    @cython.final
    cdef _record(self, str action, Py_ssize_t j, answer)

    @cython.final
    @cython.locals(j=Py_ssize_t)
    cdef inline Py_ssize_t _open(self) except -1
    @cython.final
    @cython.locals(b=Py_ssize_t, d=Py_ssize_t, probes=Py_ssize_t)
    cdef inline Py_ssize_t _step(self, Py_ssize_t j) except -1
    @cython.final
    cdef _finish(self, Py_ssize_t j, answer)
    @cython.final
    @cython.locals(active=list, k=Py_ssize_t, a=Py_ssize_t)
    cdef _leave_active(self, Py_ssize_t j)
    @cython.final
    @cython.locals(b=Py_ssize_t)
    cdef inline _probe(self, Py_ssize_t j, Py_ssize_t d)
    @cython.final
    cdef inline _probe_opened(self, Py_ssize_t j)
    @cython.final
    @cython.locals(d=Py_ssize_t, _=Py_ssize_t)
    cdef inline _continue_and_probe(self, Py_ssize_t j, Py_ssize_t burst)
    @cython.final
    @cython.locals(j=Py_ssize_t, b=Py_ssize_t, steps=Py_ssize_t)
    cdef Py_ssize_t _read_whole(self) except -1

    @cython.locals(j=Py_ssize_t)
    cpdef branch(self)
    @cython.locals(out=list, i=Py_ssize_t, j=Py_ssize_t, burst=Py_ssize_t)
    cpdef continue_and_probe_many(self, branches, bursts=*)
