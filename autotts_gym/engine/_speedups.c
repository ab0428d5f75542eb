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
#include <structmember.h>

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

PyDoc_STRVAR(by_agreement_doc,
             "by_agreement(branches, answers, leader, agree, disagree) -> list\n\n"
             "``agree`` for each j in branches whose answers[j] equals leader, else ``disagree``.");

static PyObject *by_agreement(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "by_agreement takes 5 arguments");
        return NULL;
    }
    PyObject *branches = list_arg(args, 0, "by_agreement"), *answers = list_arg(args, 1, "by_agreement");
    long leader;
    if (branches == NULL || answers == NULL || as_long(args[2], &leader) < 0) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(branches);
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        long j, a;
        if (as_long(PyList_GET_ITEM(branches, i), &j) < 0) goto fail;
        if (j < 0 || j >= PyList_GET_SIZE(answers)) {
            PyErr_Format(PyExc_IndexError, "by_agreement: branch %ld out of range", j);
            goto fail;
        }
        if (as_long(PyList_GET_ITEM(answers, j), &a) < 0) goto fail;
        PyObject *value = a == leader ? args[3] : args[4];
        Py_INCREF(value);
        PyList_SET_ITEM(out, i, value);
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

/* The loop of Episode.continue_and_probe_many without budget or trace: each branch j in
 * turn is decoded one interval and probed, bursts[i] times (1 if bursts is None),
 * stopping early when it finishes. The finishing step does what
 * Episode._finish_stepwise does, except the two counters, whose increments go to
 * *finish_tokens_out and *finished_out. Returns each branch's last revealed answer;
 * *bad_out is -1, or the first branch that is not active (the loop stops there and the
 * caller raises). `state` is Episode._loop_state: (pool, depth, status, latest,
 * probed_at, probe_log, active, finals, finished_order, answer_at, tokens_at, num_probes). */
static PyObject *advance_core(PyObject *branches, PyObject *bursts, PyObject *state, long *bad_out,
                              long *finish_tokens_out, long *finished_out) {
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != 12) {
        PyErr_SetString(PyExc_TypeError, "Episode._loop_state must be a tuple of 12 items");
        return NULL;
    }
    PyObject *answer_at = PyTuple_GET_ITEM(state, 9), *tokens_at = PyTuple_GET_ITEM(state, 10),
             *num_probes = PyTuple_GET_ITEM(state, 11);
    PyObject *lists[9];
    for (Py_ssize_t i = 0; i < 9; i++)
        if ((lists[i] = list_arg(&PyTuple_GET_ITEM(state, 0), i, "Episode._loop_state")) == NULL) return NULL;
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
    *bad_out = bad;
    *finish_tokens_out = finish_tokens;
    *finished_out = finished;
    return out;
fail:
    /* Unfilled slots of `out` are NULL, which list deallocation tolerates. */
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------- Episode hot paths */

/* C versions of Episode's most called methods and views. episode_functions(cls) reads
 * the offsets of the class's __slots__ (as Python's own slot descriptors do), so these
 * functions read the episode's lists directly. Every case they do not cover (a budget,
 * a trace, an ended episode, an invalid branch, other argument types) is handed to the
 * reference Python method, which the caller passes in. */

enum {
    S_POOL, S_DEPTH, S_ACTIVE, S_LATEST, S_FINALS, S_FINISHED_ORDER, S_STATUS, S_VOTE, S_LOOP_STATE,
    S_FINISH_TOKENS, S_FINISHED_STEPWISE, S_N_PRUNES, S_BUDGET, S_TRACE, S_RESULT, S_ORDER, N_SLOTS
};
static const char *slot_names[N_SLOTS] = {
    "_pool", "_depth", "_active", "_latest", "_finals", "_finished_order", "_status", "_vote", "_loop_state",
    "_finish_tokens", "_finished_stepwise", "_n_prunes", "_budget", "trace", "result", "order",
};
static Py_ssize_t slot_offset[N_SLOTS];
static PyTypeObject *episode_type = NULL;
static PyObject *reference_continue_and_probe_many = NULL, *reference_prune = NULL,
                *reference_open_and_probe_many = NULL;

/* The object in slot k of an episode (NULL if unset, which the reference reports). */
#define SLOT(self, k) (*(PyObject **)((char *)(self) + slot_offset[k]))

static int is_episode(PyObject *self) {
    if (episode_type == NULL || !PyObject_TypeCheck(self, episode_type)) {
        PyErr_SetString(PyExc_TypeError, "expected an autotts_gym.engine.Episode");
        return 0;
    }
    for (int k = 0; k < N_SLOTS; k++) {
        if (SLOT(self, k) == NULL) {
            PyErr_Format(PyExc_AttributeError, "Episode slot %s is not set", slot_names[k]);
            return 0;
        }
    }
    return 1;
}

/* Replace slot k with `value` (a new reference, stolen). */
static void set_slot(PyObject *self, int k, PyObject *value) {
    PyObject *old = SLOT(self, k);
    SLOT(self, k) = value;
    Py_XDECREF(old);
}

/* slot k += delta for an int slot. */
static int add_to_slot(PyObject *self, int k, long delta) {
    PyObject *d = PyLong_FromLong(delta);
    if (d == NULL) return -1;
    PyObject *sum = PyNumber_Add(SLOT(self, k), d);
    Py_DECREF(d);
    if (sum == NULL) return -1;
    set_slot(self, k, sum);
    return 0;
}

static PyObject *list_slot_copy(PyObject *self, int k) {
    if (!is_episode(self)) return NULL;
    PyObject *list = SLOT(self, k);
    if (!PyList_Check(list)) {
        PyErr_Format(PyExc_TypeError, "Episode.%s must be a list", slot_names[k]);
        return NULL;
    }
    return PyList_GetSlice(list, 0, PyList_GET_SIZE(list));
}

static PyObject *list_slot_size(PyObject *self, int k) {
    if (!is_episode(self)) return NULL;
    return PyLong_FromSsize_t(PyObject_Length(SLOT(self, k)));
}

static PyObject *ep_latest_answers(PyObject *m, PyObject *self) { return list_slot_copy(self, S_LATEST); }
static PyObject *ep_active_branches(PyObject *m, PyObject *self) { return list_slot_copy(self, S_ACTIVE); }
static PyObject *ep_finished_answers(PyObject *m, PyObject *self) { return list_slot_copy(self, S_FINALS); }
static PyObject *ep_finished_branches(PyObject *m, PyObject *self) { return list_slot_copy(self, S_FINISHED_ORDER); }
static PyObject *ep_depths(PyObject *m, PyObject *self) { return list_slot_copy(self, S_DEPTH); }
static PyObject *ep_num_active(PyObject *m, PyObject *self) { return list_slot_size(self, S_ACTIVE); }
static PyObject *ep_num_finished(PyObject *m, PyObject *self) { return list_slot_size(self, S_FINALS); }
static PyObject *ep_num_opened(PyObject *m, PyObject *self) { return list_slot_size(self, S_POOL); }

/* Episode.finished_vote: the vote of the completed pool, cached in _vote as
 * (pool size, (winner, v1, v2)) until a branch finishes. */
static PyObject *ep_finished_vote(PyObject *m, PyObject *self) {
    if (!is_episode(self)) return NULL;
    PyObject *finals = SLOT(self, S_FINALS), *cached = SLOT(self, S_VOTE);
    if (!PyList_Check(finals)) {
        PyErr_SetString(PyExc_TypeError, "Episode._finals must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(finals);
    if (PyTuple_CheckExact(cached) && PyTuple_GET_SIZE(cached) == 2 && PyLong_CheckExact(PyTuple_GET_ITEM(cached, 0)) &&
        PyLong_AsSsize_t(PyTuple_GET_ITEM(cached, 0)) == n) {
        PyObject *vote = PyTuple_GET_ITEM(cached, 1);
        Py_INCREF(vote);
        return vote;
    }
    Tally t;
    tally_init(&t);
    for (Py_ssize_t i = 0; i < n; i++) {
        long v;
        if (as_long(PyList_GET_ITEM(finals, i), &v) < 0 || tally_add(&t, v) < 0) {
            tally_free(&t);
            return NULL;
        }
    }
    PyObject *vote = tally_result(&t);
    tally_free(&t);
    if (vote == NULL) return NULL;
    PyObject *entry = Py_BuildValue("(nO)", n, vote);
    if (entry == NULL) {
        Py_DECREF(vote);
        return NULL;
    }
    set_slot(self, S_VOTE, entry);
    return vote;
}

/* Episode.active_by_depth: active branches by depth, deepest (or shallowest) first,
 * equal depths in opening order (a stable insertion sort; the active set is small). */
static PyObject *ep_active_by_depth(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs < 1 || nargs + nkw > 2 ||
        (nkw == 1 && !PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0))) ||
        (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "deepest_first") != 0)) {
        PyErr_SetString(PyExc_TypeError, "active_by_depth(self, deepest_first=True)");
        return NULL;
    }
    PyObject *self = args[0];
    if (!is_episode(self)) return NULL;
    int deepest_first = 1;
    if (nargs + nkw == 2 && (deepest_first = PyObject_IsTrue(args[1])) < 0) return NULL;
    PyObject *active = SLOT(self, S_ACTIVE), *depth = SLOT(self, S_DEPTH);
    if (!PyList_Check(active) || !PyList_Check(depth)) {
        PyErr_SetString(PyExc_TypeError, "Episode._active and _depth must be lists");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(active);
    PyObject *out = PyList_GetSlice(active, 0, n);
    if (out == NULL) return NULL;
    long small_keys[SMALL_VOTE];
    long *keys = n <= SMALL_VOTE ? small_keys : PyMem_Malloc(n * sizeof(long));
    if (keys == NULL) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long j, d;
        if (as_long(PyList_GET_ITEM(out, i), &j) < 0 || item_long(depth, j, "depth", &d) < 0) goto fail;
        keys[i] = deepest_first ? -d : d;
    }
    PyObject **items = ((PyListObject *)out)->ob_item;
    for (Py_ssize_t i = 1; i < n; i++) {
        long key = keys[i];
        PyObject *item = items[i];
        Py_ssize_t k = i - 1;
        while (k >= 0 && keys[k] > key) {
            keys[k + 1] = keys[k];
            items[k + 1] = items[k];
            k--;
        }
        keys[k + 1] = key;
        items[k + 1] = item;
    }
    if (keys != small_keys) PyMem_Free(keys);
    return out;
fail:
    if (keys != small_keys) PyMem_Free(keys);
    Py_DECREF(out);
    return NULL;
}

/* Episode.continue_and_probe_many without budget or trace: advance_core on the episode's
 * lists; anything else goes to the reference method. */
static PyObject *ep_continue_and_probe_many(PyObject *m, PyObject *const *args, Py_ssize_t nargs,
                                            PyObject *kwnames) {
    if (kwnames != NULL || nargs < 2 || nargs > 3 || !is_episode(args[0]) || SLOT(args[0], S_BUDGET) != Py_None ||
        SLOT(args[0], S_TRACE) != Py_None || SLOT(args[0], S_RESULT) != Py_None || !is_sequence(args[1]) ||
        (nargs == 3 && args[2] != Py_None && !is_sequence(args[2]))) {
        PyErr_Clear();
        return PyObject_Vectorcall(reference_continue_and_probe_many, args, nargs, kwnames);
    }
    PyObject *self = args[0];
    long bad, finish_tokens, finished;
    PyObject *out = advance_core(args[1], nargs == 3 ? args[2] : Py_None, SLOT(self, S_LOOP_STATE), &bad,
                                 &finish_tokens, &finished);
    if (out == NULL) return NULL;
    if (finished &&
        (add_to_slot(self, S_FINISH_TOKENS, finish_tokens) < 0 || add_to_slot(self, S_FINISHED_STEPWISE, finished) < 0)) {
        Py_DECREF(out);
        return NULL;
    }
    if (bad >= 0) {
        /* The engine's own check raises the usual InvalidAction. */
        Py_DECREF(out);
        PyObject *r = PyObject_CallMethod(self, "_require_active", "ls", bad, "CONTINUE");
        if (r == NULL) return NULL;
        Py_DECREF(r);
        PyErr_Format(PyExc_SystemError, "continue_and_probe_many: branch %ld was refused but is active", bad);
        return NULL;
    }
    return out;
}

/* Episode.open_and_probe_many without budget or trace, when every new branch has a probe
 * answer at depth 1 (the rest finish at once: the reference handles them). */
static PyObject *ep_open_and_probe_many(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    long n;
    if (kwnames != NULL || nargs != 2 || !is_episode(args[0]) || SLOT(args[0], S_BUDGET) != Py_None ||
        SLOT(args[0], S_TRACE) != Py_None || SLOT(args[0], S_RESULT) != Py_None || !PyLong_CheckExact(args[1]) ||
        as_long(args[1], &n) < 0 || n < 0 || !is_sequence(SLOT(args[0], S_ORDER))) {
        PyErr_Clear();
        return PyObject_Vectorcall(reference_open_and_probe_many, args, nargs, kwnames);
    }
    PyObject *self = args[0], *order = SLOT(self, S_ORDER), *state = SLOT(self, S_LOOP_STATE);
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != 12) {
        PyErr_SetString(PyExc_TypeError, "Episode._loop_state must be a tuple of 12 items");
        return NULL;
    }
    PyObject *lists[7];
    for (Py_ssize_t i = 0; i < 7; i++)
        if ((lists[i] = list_arg(&PyTuple_GET_ITEM(state, 0), i, "Episode._loop_state")) == NULL) return NULL;
    PyObject *pool = lists[0], *depth = lists[1], *status = lists[2], *latest = lists[3], *probed_at = lists[4],
             *log = lists[5], *active = lists[6];
    PyObject *answer_at = PyTuple_GET_ITEM(state, 9), *num_probes = PyTuple_GET_ITEM(state, 11);
    Py_ssize_t j0 = PyList_GET_SIZE(pool);
    if (!is_sequence(answer_at) || !is_sequence(num_probes) || j0 + n > Py_SIZE(order))
        return PyObject_Vectorcall(reference_open_and_probe_many, args, nargs, kwnames);
    /* Check every new branch before changing anything. */
    for (Py_ssize_t i = 0; i < n; i++) {
        long b, np;
        if (as_long(seq_item(order, j0 + i), &b) < 0 || item_long(num_probes, b, "num_probes", &np) < 0) return NULL;
        PyObject *row = b < Py_SIZE(answer_at) ? seq_item(answer_at, b) : NULL;
        if (row == NULL || !is_sequence(row) || Py_SIZE(row) < 2) {
            PyErr_Format(PyExc_TypeError, "open_and_probe_many: answer_at[%ld] must be a list or tuple", b);
            return NULL;
        }
        if (np < 1) return PyObject_Vectorcall(reference_open_and_probe_many, args, nargs, kwnames);
    }
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = seq_item(order, j0 + i);
        long bi;
        if (as_long(b, &bi) < 0) goto fail;
        PyObject *answer = seq_item(seq_item(answer_at, bi), 1);
        long j = (long)(j0 + i);
        if (PyList_Append(pool, b) < 0 || append_long(depth, 1) < 0 || append_long(status, 0) < 0 ||
            append_long(active, j) < 0 || append_long(probed_at, 1) < 0 || PyList_Append(latest, answer) < 0 ||
            append_long(log, j) < 0 || append_long(log, 1) < 0)
            goto fail;
        Py_INCREF(answer);
        PyList_SET_ITEM(out, i, answer);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* Episode.prune of an active branch without a trace; anything else goes to the reference. */
static PyObject *ep_prune(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    long j, st;
    if (nargs != 2 || !is_episode(args[0]) || SLOT(args[0], S_TRACE) != Py_None || SLOT(args[0], S_RESULT) != Py_None ||
        !PyLong_CheckExact(args[1]) || as_long(args[1], &j) < 0 || !PyList_Check(SLOT(args[0], S_STATUS)) ||
        j < 0 || j >= PyList_GET_SIZE(SLOT(args[0], S_STATUS)) ||
        as_long(PyList_GET_ITEM(SLOT(args[0], S_STATUS), j), &st) < 0 || st != 0 ||
        !PyList_Check(SLOT(args[0], S_ACTIVE))) {
        PyErr_Clear();
        return PyObject_Vectorcall(reference_prune, args, nargs, NULL);
    }
    PyObject *self = args[0];
    if (set_long(SLOT(self, S_STATUS), j, 2) < 0 || remove_long(SLOT(self, S_ACTIVE), j) < 0 ||
        add_to_slot(self, S_N_PRUNES, 1) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef episode_methods[] = {
    {"latest_answers", (PyCFunction)ep_latest_answers, METH_O, NULL},
    {"active_branches", (PyCFunction)ep_active_branches, METH_O, NULL},
    {"finished_answers", (PyCFunction)ep_finished_answers, METH_O, NULL},
    {"finished_branches", (PyCFunction)ep_finished_branches, METH_O, NULL},
    {"depths", (PyCFunction)ep_depths, METH_O, NULL},
    {"num_active", (PyCFunction)ep_num_active, METH_O, NULL},
    {"num_finished", (PyCFunction)ep_num_finished, METH_O, NULL},
    {"num_opened", (PyCFunction)ep_num_opened, METH_O, NULL},
    {"finished_vote", (PyCFunction)ep_finished_vote, METH_O, "finished_vote($self, /)\n--\n\n"},
    {"active_by_depth", (PyCFunction)(void (*)(void))ep_active_by_depth, METH_FASTCALL | METH_KEYWORDS,
     "active_by_depth($self, /, deepest_first=True)\n--\n\n"},
    {"continue_and_probe_many", (PyCFunction)(void (*)(void))ep_continue_and_probe_many, METH_FASTCALL | METH_KEYWORDS,
     "continue_and_probe_many($self, /, branches, bursts=None)\n--\n\n"},
    {"prune", (PyCFunction)(void (*)(void))ep_prune, METH_FASTCALL, "prune($self, /, j)\n--\n\n"},
    {"open_and_probe_many", (PyCFunction)(void (*)(void))ep_open_and_probe_many, METH_FASTCALL | METH_KEYWORDS,
     "open_and_probe_many($self, /, n)\n--\n\n"},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(episode_functions_doc,
             "episode_functions(cls, reference) -> dict\n\n"
             "C versions of Episode's hot methods and views, by name, as plain functions of\n"
             "the episode. ``cls`` is autotts_gym.engine.Episode (its __slots__ give the\n"
             "offsets read here); ``reference`` maps 'continue_and_probe_many', 'prune' and\n"
             "'open_and_probe_many' to the Python methods that handle every other case.");

static PyObject *episode_functions(PyObject *m, PyObject *args) {
    PyObject *cls, *reference;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &cls, &PyDict_Type, &reference)) return NULL;
    for (int k = 0; k < N_SLOTS; k++) {
        PyObject *descr = PyObject_GetAttrString(cls, slot_names[k]);
        if (descr == NULL) return NULL;
        int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (ok) slot_offset[k] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "Episode.%s must be a __slots__ entry", slot_names[k]);
            return NULL;
        }
    }
    PyObject *cpm = PyDict_GetItemString(reference, "continue_and_probe_many"),
             *prune = PyDict_GetItemString(reference, "prune"),
             *opm = PyDict_GetItemString(reference, "open_and_probe_many");
    if (cpm == NULL || prune == NULL || opm == NULL) {
        PyErr_SetString(PyExc_KeyError, "reference must map continue_and_probe_many, prune and open_and_probe_many");
        return NULL;
    }
    Py_INCREF(cpm);
    Py_INCREF(prune);
    Py_INCREF(opm);
    Py_INCREF(cls);
    Py_XSETREF(reference_continue_and_probe_many, cpm);
    Py_XSETREF(reference_prune, prune);
    Py_XSETREF(reference_open_and_probe_many, opm);
    Py_XSETREF(episode_type, (PyTypeObject *)cls);
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    for (PyMethodDef *def = episode_methods; def->ml_name != NULL; def++) {
        PyObject *fn = PyCFunction_NewEx(def, NULL, NULL);
        if (fn == NULL || PyDict_SetItemString(out, def->ml_name, fn) < 0) {
            Py_XDECREF(fn);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(fn);
    }
    return out;
}

PyDoc_STRVAR(method_doc, "method(function) -> a descriptor that binds ``function`` like a Python method.");

static PyObject *as_method(PyObject *m, PyObject *fn) { return PyInstanceMethod_New(fn); }

static PyMethodDef methods[] = {
    {"majority", (PyCFunction)(void (*)(void))majority, METH_FASTCALL, majority_doc},
    {"update_streaks", (PyCFunction)(void (*)(void))update_streaks, METH_FASTCALL, update_streaks_doc},
    {"by_agreement", (PyCFunction)(void (*)(void))by_agreement, METH_FASTCALL, by_agreement_doc},
    {"episode_functions", episode_functions, METH_VARARGS, episode_functions_doc},
    {"method", as_method, METH_O, method_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "C loops for the replay engine and the voting helpers.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
