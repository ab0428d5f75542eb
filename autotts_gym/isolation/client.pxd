import cython

@cython.locals(i=Py_ssize_t, j=Py_ssize_t)
cdef void _set_probed(list depth, list latest, list probed_at, list js, list ds, list answers) except *
