# C types for the compiled build of voting.py (Cython's pure-Python mode: this file only
# declares types; the code is voting.py's).
import cython

@cython.locals(v1=Py_ssize_t, v2=Py_ssize_t, c=Py_ssize_t)
cpdef top_two(counts)

@cython.locals(counts=dict)
cpdef majority(answers, among=*)

@cython.locals(values=long[64], counts=Py_ssize_t[64], m=Py_ssize_t, k=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t, a=long, best=Py_ssize_t, v2=Py_ssize_t)
cdef _vote_of_ids(answers, among)

@cython.locals(reached=list, j=Py_ssize_t, s=Py_ssize_t)
cpdef update_streaks(streaks, branches, answers, leader, Py_ssize_t threshold)

@cython.locals(j=Py_ssize_t)
cpdef by_agreement(branches, answers, leader, agree, disagree)
