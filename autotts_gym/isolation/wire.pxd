import cython

@cython.locals(values=list, out=list, i=Py_ssize_t, n=Py_ssize_t, k=Py_ssize_t, nstr=Py_ssize_t, end=Py_ssize_t, a=Py_ssize_t, b=Py_ssize_t)
cpdef list unpack_requests(payload)
