# C types for the compiled build of broker.py (Cython's pure-Python mode: this file only
# declares types; the code is broker.py's).
import cython


cdef class _Slot:
    cdef public object episode, where
    cdef public list labels, inverse
    cdef public Py_ssize_t left, limit
    cdef public bint ended


cdef class Unit:
    cdef public list slots
    cdef public Py_ssize_t open, most

    @cython.locals(slots=list, replies=list, request=list, s=_Slot, slot=Py_ssize_t, op=Py_ssize_t)
    cpdef list apply(self, list requests)


@cython.locals(labels=list, n0=Py_ssize_t, f0=Py_ssize_t, p0=Py_ssize_t, js=list)
cpdef list _act(e, _Slot s, Py_ssize_t op, list request)

@cython.locals(log=list, pool=list, end=Py_ssize_t, k=Py_ssize_t, j=Py_ssize_t, d=Py_ssize_t, js=list, ds=list,
               answers=list, answer_at=tuple, n1=Py_ssize_t)
cdef tuple _revealed(e, list labels, Py_ssize_t n0, Py_ssize_t f0, Py_ssize_t p0, touched)
