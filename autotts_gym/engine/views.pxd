# C types for the compiled build of views.py (Cython's pure-Python mode: this file only
# declares types; the code is views.py's). The state is public so that the isolated
# mirror (a Python subclass) and the engine's Python callers can read and set it.
import cython


cdef class BranchViews:
    cdef public list _depth, _status, _latest, _probed_at, _active, _finals, _finished_order
    cdef public tuple _vote

    @cython.locals(order=list, depth=list, i=Py_ssize_t, j=Py_ssize_t, key=Py_ssize_t, k=Py_ssize_t, before=Py_ssize_t, d=Py_ssize_t)
    cpdef active_by_depth(self, bint deepest_first=*)
