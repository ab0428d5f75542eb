/* C loops for the replay engine's hot paths and the shared voting helpers.
 *
 * Optional: autotts_gym/engine.py and autotts_gym/voting.py hold the reference Python
 * of every function here and use it when this module is not built (or when
 * AUTOTTS_PURE_PYTHON=1). tests/test_speedups.py checks both give identical results.
 *
 * The functions work on the engine's own Python lists (no state lives here), so the
 * semantics stay in engine.py: a branch that finishes is handed back to the engine's
 * Python method (a rare event), and an invalid branch stops the loop and is reported
 * to the caller, which raises the engine's usual error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Distinct values kept on the stack; a vote with more distinct answers uses the heap. */
#define SMALL_VOTE 64

/* Read item i of a list or tuple as a C long; -1 with an exception on failure. */
static inline PyObject *seq_item(PyObject *seq, Py_ssize_t i) {
    return PyList_CheckExact(seq) ? PyList_GET_ITEM(seq, i) : PyTuple_GET_ITEM(seq, i);
}

static inline int as_long(PyObject *obj, long *out) {
    /* Answer ids, depths and branch numbers are small ints: read them directly. */
#if PY_VERSION_HEX >= 0x030C0000
    if (PyLong_CheckExact(obj) && PyUnstable_Long_IsCompact((PyLongObject *)obj)) {
        *out = (long)PyUnstable_Long_CompactValue((PyLongObject *)obj);
        return 0;
    }
#else
    if (PyLong_CheckExact(obj)) {
        Py_ssize_t size = Py_SIZE(obj);
        if (size == 0 || size == 1 || size == -1) {
            *out = size * (long)((PyLongObject *)obj)->ob_digit[0];
            return 0;
        }
    }
#endif
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* Argument i of a fast call, which must be a list. */
static PyObject *list_arg(PyObject *const *args, Py_ssize_t i, const char *fn) {
    if (!PyList_Check(args[i])) {
        PyErr_Format(PyExc_TypeError, "%s: argument %zd must be a list", fn, i + 1);
        return NULL;
    }
    return args[i];
}

/* ------------------------------------------------------------------ majority */

typedef struct {
    long *values;
    Py_ssize_t *counts;
    Py_ssize_t n, cap;
    long small_values[SMALL_VOTE];
    Py_ssize_t small_counts[SMALL_VOTE];
} Tally;

static void tally_init(Tally *t) {
    t->values = t->small_values;
    t->counts = t->small_counts;
    t->n = 0;
    t->cap = SMALL_VOTE;
}

static void tally_free(Tally *t) {
    if (t->values != t->small_values) {
        PyMem_Free(t->values);
        PyMem_Free(t->counts);
    }
}

/* Count one vote; values stay in first-seen order. */
static int tally_add(Tally *t, long v) {
    for (Py_ssize_t k = 0; k < t->n; k++) {
        if (t->values[k] == v) {
            t->counts[k]++;
            return 0;
        }
    }
    if (t->n == t->cap) {
        Py_ssize_t cap = t->cap * 4;
        long *values = PyMem_Malloc(cap * sizeof(long));
        Py_ssize_t *counts = PyMem_Malloc(cap * sizeof(Py_ssize_t));
        if (values == NULL || counts == NULL) {
            PyMem_Free(values);
            PyMem_Free(counts);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(values, t->values, t->n * sizeof(long));
        memcpy(counts, t->counts, t->n * sizeof(Py_ssize_t));
        tally_free(t);
        t->values = values;
        t->counts = counts;
        t->cap = cap;
    }
    t->values[t->n] = v;
    t->counts[t->n] = 1;
    t->n++;
    return 0;
}

/* (winner, v1, v2): the first-seen value among the most frequent, its count and the
 * largest count of any other value; (-1, 0, 0) for an empty vote. */
static PyObject *tally_result(const Tally *t) {
    if (t->n == 0) return Py_BuildValue("(inn)", -1, (Py_ssize_t)0, (Py_ssize_t)0);
    Py_ssize_t best = 0;
    for (Py_ssize_t k = 1; k < t->n; k++)
        if (t->counts[k] > t->counts[best]) best = k;
    Py_ssize_t v2 = 0;
    for (Py_ssize_t k = 0; k < t->n; k++)
        if (k != best && t->counts[k] > v2) v2 = t->counts[k];
    return Py_BuildValue("(lnn)", t->values[best], t->counts[best], v2);
}

PyDoc_STRVAR(majority_doc,
             "majority(answers, among=None) -> (winner, v1, v2)\n\n"
             "Majority of a list or tuple of int answer ids, ties to the first seen; with\n"
             "``among``, of ``answers[j] for j in among``. NotImplemented for other input.");

static PyObject *majority(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "majority(answers, among=None)");
        return NULL;
    }
    PyObject *answers = args[0], *among = nargs == 2 ? args[1] : Py_None;
    if (!(PyList_CheckExact(answers) || PyTuple_CheckExact(answers))) Py_RETURN_NOTIMPLEMENTED;
    if (among != Py_None && !(PyList_CheckExact(among) || PyTuple_CheckExact(among))) Py_RETURN_NOTIMPLEMENTED;
    Tally t;
    tally_init(&t);
    Py_ssize_t n = among == Py_None ? Py_SIZE(answers) : Py_SIZE(among);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item;
        if (among == Py_None) {
            item = seq_item(answers, i);
        } else {
            long j;
            if (as_long(seq_item(among, i), &j) < 0) goto fail;
            if (j < 0 || j >= Py_SIZE(answers)) {
                PyErr_Format(PyExc_IndexError, "majority: index %ld out of range", j);
                goto fail;
            }
            item = seq_item(answers, j);
        }
        long v;
        if (!PyLong_CheckExact(item) || as_long(item, &v) < 0) {
            /* Not a plain int that fits a C long: the Python count handles it. */
            PyErr_Clear();
            tally_free(&t);
            Py_RETURN_NOTIMPLEMENTED;
        }
        if (tally_add(&t, v) < 0) goto fail;
    }
    PyObject *result = tally_result(&t);
    tally_free(&t);
    return result;
fail:
    tally_free(&t);
    return NULL;
}

/* ------------------------------------------------------------------- streaks */

PyDoc_STRVAR(update_streaks_doc,
             "update_streaks(streaks, branches, answers, leader, threshold) -> list\n\n"
             "For each j in branches: streaks[j] += 1 if answers[j] != leader, else 0.\n"
             "Returns the branches whose streak reached threshold, in the given order.");

static PyObject *update_streaks(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "update_streaks takes 5 arguments");
        return NULL;
    }
    PyObject *streaks = list_arg(args, 0, "update_streaks"), *branches = list_arg(args, 1, "update_streaks"),
             *answers = list_arg(args, 2, "update_streaks");
    long leader, threshold;
    if (streaks == NULL || branches == NULL || answers == NULL || as_long(args[3], &leader) < 0 ||
        as_long(args[4], &threshold) < 0)
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(branches); i++) {
        long j, a, s;
        if (as_long(PyList_GET_ITEM(branches, i), &j) < 0) goto fail;
        if (j < 0 || j >= PyList_GET_SIZE(streaks) || j >= PyList_GET_SIZE(answers)) {
            PyErr_Format(PyExc_IndexError, "update_streaks: branch %ld out of range", j);
            goto fail;
        }
        if (as_long(PyList_GET_ITEM(answers, j), &a) < 0) goto fail;
        if (as_long(PyList_GET_ITEM(streaks, j), &s) < 0) goto fail;
        s = a != leader ? s + 1 : 0;
        PyObject *value = PyLong_FromLong(s);
        if (value == NULL) goto fail;
        PyObject *old = PyList_GET_ITEM(streaks, j);
        PyList_SET_ITEM(streaks, j, value);
        Py_DECREF(old);
        if (s >= threshold && PyList_Append(out, PyList_GET_ITEM(branches, i)) < 0) goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------- advance */

/* Replace item j of list `list` with the int v. */
static int set_long(PyObject *list, Py_ssize_t j, long v) {
    PyObject *value = PyLong_FromLong(v);
    if (value == NULL) return -1;
    PyObject *old = PyList_GET_ITEM(list, j);
    PyList_SET_ITEM(list, j, value);
    Py_DECREF(old);
    return 0;
}

/* Append a fresh int to list; -1 on failure. */
static int append_long(PyObject *list, long v) {
    PyObject *value = PyLong_FromLong(v);
    if (value == NULL) return -1;
    int rc = PyList_Append(list, value);
    Py_DECREF(value);
    return rc;
}

/* Item i of a list or tuple `seq` of ints as a C long, with a bounds check. */
static int item_long(PyObject *seq, long i, const char *what, long *out) {
    if (i < 0 || i >= Py_SIZE(seq)) {
        PyErr_Format(PyExc_IndexError, "advance: %s index %ld out of range", what, i);
        return -1;
    }
    return as_long(seq_item(seq, i), out);
}

static int is_sequence(PyObject *obj) { return PyList_CheckExact(obj) || PyTuple_CheckExact(obj); }

/* Remove the first item equal to the int j from list (the engine's active set). */
static int remove_long(PyObject *list, long j) {
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(list); k++) {
        long v;
        if (as_long(PyList_GET_ITEM(list, k), &v) < 0) return -1;
        if (v == j) return PySequence_DelItem(list, k);
    }
    PyErr_Format(PyExc_ValueError, "advance: branch %ld is not in the active set", j);
    return -1;
}

PyDoc_STRVAR(advance_doc,
             "advance(branches, bursts, pool, depth, status, latest, probed_at, probe_log, active,\n"
             "        finals, finished_order, answer_at, tokens_at, num_probes)\n"
             "    -> (answers, bad, finish_tokens, finished)\n\n"
             "The loop of Episode.continue_and_probe_many without budget or trace: each\n"
             "branch j in turn is decoded one interval and probed, ``bursts[i]`` times\n"
             "(1 if bursts is None), stopping early when it finishes. The finishing step\n"
             "does what Episode._finish_stepwise does, except the two counters, whose\n"
             "increments are returned: ``finish_tokens`` (the finishing charges) and\n"
             "``finished``. ``answers`` holds each branch's last revealed answer. ``bad``\n"
             "is -1, or the first branch that is not active: the loop stops there and the\n"
             "caller raises.");

static PyObject *advance(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "advance takes 14 arguments");
        return NULL;
    }
    PyObject *branches = args[0], *bursts = args[1], *answer_at = args[11], *tokens_at = args[12],
             *num_probes = args[13];
    PyObject *lists[9];
    for (Py_ssize_t i = 0; i < 9; i++)
        if ((lists[i] = list_arg(args, i + 2, "advance")) == NULL) return NULL;
    PyObject *pool = lists[0], *depth = lists[1], *status = lists[2], *latest = lists[3], *probed_at = lists[4],
             *probes = lists[5], *active = lists[6], *finals = lists[7], *finished_order = lists[8];
    if (!is_sequence(branches) || (bursts != Py_None && !is_sequence(bursts)) || !is_sequence(answer_at) ||
        !is_sequence(tokens_at) || !is_sequence(num_probes)) {
        PyErr_SetString(PyExc_TypeError,
                        "advance: branches, bursts, answer_at, tokens_at and num_probes must be lists or tuples");
        return NULL;
    }
    Py_ssize_t n = Py_SIZE(branches);
    if (bursts != Py_None && Py_SIZE(bursts) != n) {
        PyErr_SetString(PyExc_ValueError, "advance: one burst per branch");
        return NULL;
    }
    Py_ssize_t opened = PyList_GET_SIZE(status);
    if (PyList_GET_SIZE(pool) != opened || PyList_GET_SIZE(depth) != opened || PyList_GET_SIZE(latest) != opened ||
        PyList_GET_SIZE(probed_at) != opened) {
        PyErr_SetString(PyExc_ValueError, "advance: the per-branch lists differ in length");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    long bad = -1, finish_tokens = 0, finished = 0;
    Py_ssize_t done = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        long j, st, b, d, burst = 1, last = -1, np;
        if (as_long(seq_item(branches, i), &j) < 0) goto fail;
        if (bursts != Py_None && as_long(seq_item(bursts, i), &burst) < 0) goto fail;
        if (j < 0 || j >= opened) {
            bad = j;
            break;
        }
        if (as_long(PyList_GET_ITEM(status, j), &st) < 0) goto fail;
        if (st != 0) {
            bad = j;
            break;
        }
        if (burst < 1) {
            PyErr_Format(PyExc_ValueError, "continue_and_probe_many: burst %ld for branch %ld; bursts must be >= 1",
                         burst, j);
            goto fail;
        }
        if (as_long(PyList_GET_ITEM(pool, j), &b) < 0 || as_long(PyList_GET_ITEM(depth, j), &d) < 0 ||
            item_long(num_probes, b, "num_probes", &np) < 0)
            goto fail;
        PyObject *row = seq_item(answer_at, b);
        if (!is_sequence(row) || Py_SIZE(row) < np + 2) {
            PyErr_Format(PyExc_TypeError, "advance: answer_at[%ld] must be a list or tuple of %ld answers", b, np + 2);
            goto fail;
        }
        for (long k = 0; k < burst; k++) {
            d += 1;
            if (set_long(depth, j, d) < 0) goto fail;
            if (d > np) {
                /* The finishing step reveals the final answer (Episode._finish_stepwise). */
                PyObject *tokens = b < Py_SIZE(tokens_at) ? seq_item(tokens_at, b) : NULL;
                long t1, t0;
                if (tokens == NULL || !is_sequence(tokens)) {
                    PyErr_Format(PyExc_TypeError, "advance: tokens_at[%ld] must be a list or tuple", b);
                    goto fail;
                }
                if (item_long(tokens, d, "tokens_at", &t1) < 0 || item_long(tokens, d - 1, "tokens_at", &t0) < 0)
                    goto fail;
                finish_tokens += t1 - t0;
                finished += 1;
                PyObject *final = seq_item(row, d);
                if (as_long(final, &last) < 0 || set_long(status, j, 1) < 0 || remove_long(active, j) < 0) goto fail;
                Py_INCREF(final);
                PyObject *old = PyList_GET_ITEM(latest, j);
                PyList_SET_ITEM(latest, j, final);
                Py_DECREF(old);
                if (PyList_Append(finals, final) < 0 || append_long(finished_order, j) < 0) goto fail;
                break;
            }
            PyObject *answer = seq_item(row, d);
            if (as_long(answer, &last) < 0 || set_long(probed_at, j, d) < 0) goto fail;
            Py_INCREF(answer);
            PyObject *old = PyList_GET_ITEM(latest, j);
            PyList_SET_ITEM(latest, j, answer);
            Py_DECREF(old);
            /* The engine's flat probe log: branch, depth. */
            if (append_long(probes, j) < 0 || append_long(probes, d) < 0) goto fail;
        }
        PyObject *value = PyLong_FromLong(last);
        if (value == NULL) goto fail;
        PyList_SET_ITEM(out, i, value);
        done = i + 1;
    }
    if (done < n && PyList_SetSlice(out, done, n, NULL) < 0) goto fail;
    return Py_BuildValue("(Nlll)", out, bad, finish_tokens, finished);
fail:
    /* Unfilled slots of `out` are NULL, which list deallocation tolerates. */
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"majority", (PyCFunction)(void (*)(void))majority, METH_FASTCALL, majority_doc},
    {"update_streaks", (PyCFunction)(void (*)(void))update_streaks, METH_FASTCALL, update_streaks_doc},
    {"advance", (PyCFunction)(void (*)(void))advance, METH_FASTCALL, advance_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "C loops for the replay engine and the voting helpers.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
