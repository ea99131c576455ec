/* kemi_core.sip._fast: optional compiled forms of four hot helpers of the SIP parser.
 * Each has a pure-Python reference that is used when this module is not built, and
 * tests/sip/test_sip_fast_ext.py checks that both give the same result on any input.
 *
 * All four Python forms are in kemi_core/sip/syntax.py, which also picks the forms in use.
 *
 * index_head(text, names) (index_head_py) splits a decoded SIP head into its lines (on LF,
 * each line keeping its CR) and resolves every header line's name through ``names``, the
 * parser's cache of well-formed names (text before the colon -> canonical key). It returns
 * (lines, keys) with keys[0] == "" for the start line, or None as soon as one line does not
 * end in CR or is not a cached name: the caller then takes the careful Python path, which
 * decides every error. It never raises for any text.
 *
 * Done per line in Python it is about a quarter of the cost of parsing a typical INVITE.
 *
 * line_value(line) (line_value_py) is the value of a header line: the text after the
 * first colon, obsolete line folding (RFC 3261 7.3.1) replaced by one space, surrounding
 * whitespace stripped as str.strip() does. Every typed header read starts with it.
 *
 * single_index(keys, key) (single_index_py) is where the only line of a header is:
 * its index, -1 when there is none, -2 when there are several. It replaces list.index plus
 * list.count, whose rich comparisons of every other key cost more than the lookup itself.
 *
 * single_value(keys, lines, key) (single_value_py) is line_value of that only line, or
 * None when there is none or several: what reading a single-valued header starts with.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *empty_key; /* "" */

static PyObject *
index_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "index_head(text: str, names: dict)");
        return NULL;
    }
    PyObject *text = args[0];
    PyObject *names = args[1];
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *lines = PyList_New(0);
    PyObject *keys = PyList_New(0);
    if (lines == NULL || keys == NULL)
        goto error;

    Py_ssize_t start = 0;
    while (start < n) {
        Py_ssize_t nl = PyUnicode_FindChar(text, '\n', start, n, 1);
        if (nl == -2)
            goto error;
        Py_ssize_t end = nl < 0 ? n : nl;
        /* A line without its CR (bare-LF framing) goes the careful way, which adds it. */
        if (end == start || PyUnicode_READ_CHAR(text, end - 1) != '\r')
            goto careful;
        PyObject *line = PyUnicode_Substring(text, start, end);
        if (line == NULL)
            goto error;
        int rc = PyList_Append(lines, line);
        Py_DECREF(line);
        if (rc < 0)
            goto error;
        if (start == 0) {
            if (PyList_Append(keys, empty_key) < 0)
                goto error;
        }
        else {
            Py_ssize_t colon = PyUnicode_FindChar(text, ':', start, end, 1);
            if (colon == -2)
                goto error;
            if (colon < 0)
                goto careful;
            PyObject *raw = PyUnicode_Substring(text, start, colon);
            if (raw == NULL)
                goto error;
            PyObject *key = PyDict_GetItemWithError(names, raw); /* borrowed */
            Py_DECREF(raw);
            if (key == NULL) {
                if (PyErr_Occurred())
                    goto error;
                goto careful;
            }
            if (PyList_Append(keys, key) < 0)
                goto error;
        }
        if (nl < 0)
            break;
        start = nl + 1;
    }
    if (PyList_GET_SIZE(lines) == 0)
        goto careful;
    PyObject *result = PyTuple_Pack(2, lines, keys);
    Py_DECREF(lines);
    Py_DECREF(keys);
    return result;

careful:
    Py_DECREF(lines);
    Py_DECREF(keys);
    Py_RETURN_NONE;
error:
    Py_XDECREF(lines);
    Py_XDECREF(keys);
    return NULL;
}

/* [s, e) of text without the whitespace str.strip() removes at both ends. */
static void
strip_span(int kind, const void *data, Py_ssize_t *s, Py_ssize_t *e)
{
    while (*s < *e && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, *s)))
        (*s)++;
    while (*e > *s && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, *e - 1)))
        (*e)--;
}

/* The folded value: each run of [ \t]*\r?\n[ \t]* becomes one space (as FOLD_RE.sub does). */
static PyObject *
unfold(PyObject *line, Py_ssize_t start, Py_ssize_t n)
{
    int kind = PyUnicode_KIND(line);
    const void *data = PyUnicode_DATA(line);
    Py_UCS4 *buf = PyMem_New(Py_UCS4, n - start + 1);
    if (buf == NULL)
        return PyErr_NoMemory();
    Py_ssize_t len = 0;
    Py_ssize_t i = start;
    while (i < n) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            Py_ssize_t j = i;
            while (j < n && (PyUnicode_READ(kind, data, j) == ' ' ||
                             PyUnicode_READ(kind, data, j) == '\t'))
                j++;
            Py_ssize_t k = j;
            if (k < n && PyUnicode_READ(kind, data, k) == '\r' && k + 1 < n &&
                PyUnicode_READ(kind, data, k + 1) == '\n')
                k++;
            if (k < n && PyUnicode_READ(kind, data, k) == '\n') {
                k++;
                while (k < n && (PyUnicode_READ(kind, data, k) == ' ' ||
                                 PyUnicode_READ(kind, data, k) == '\t'))
                    k++;
                buf[len++] = ' ';
                i = k;
                continue;
            }
            if (j == i)
                j = i + 1; /* a CR not followed by LF: an ordinary character */
            for (; i < j; i++)
                buf[len++] = PyUnicode_READ(kind, data, i);
            continue;
        }
        buf[len++] = ch;
        i++;
    }
    Py_ssize_t s = 0, e = len;
    while (s < e && Py_UNICODE_ISSPACE(buf[s]))
        s++;
    while (e > s && Py_UNICODE_ISSPACE(buf[e - 1]))
        e--;
    PyObject *out = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf + s, e - s);
    PyMem_Free(buf);
    return out;
}

static PyObject *
line_value(PyObject *module, PyObject *line)
{
    if (!PyUnicode_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "line_value(line: str)");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(line);
    Py_ssize_t colon = PyUnicode_FindChar(line, ':', 0, n, 1);
    if (colon == -2)
        return NULL;
    Py_ssize_t start = colon < 0 ? n : colon + 1;
    Py_ssize_t nl = PyUnicode_FindChar(line, '\n', start, n, 1);
    if (nl == -2)
        return NULL;
    if (nl >= 0)
        return unfold(line, start, n);
    Py_ssize_t s = start, e = n;
    strip_span(PyUnicode_KIND(line), PyUnicode_DATA(line), &s, &e);
    return PyUnicode_Substring(line, s, e);
}

/* Index of the only item of keys equal to key; -1 when none, -2 when several, -3 on error. */
static Py_ssize_t
find_single(PyObject *keys, PyObject *key)
{
    Py_ssize_t klen = PyUnicode_GET_LENGTH(key);
    int kkind = PyUnicode_KIND(key);
    const void *kdata = PyUnicode_DATA(key);
    Py_ssize_t found = -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *item = PyList_GET_ITEM(keys, i);
        int eq;
        if (item == key)
            eq = 1;
        else if (PyUnicode_CheckExact(item))
            eq = PyUnicode_GET_LENGTH(item) == klen && PyUnicode_KIND(item) == kkind &&
                 memcmp(PyUnicode_DATA(item), kdata, (size_t)klen * kkind) == 0;
        else {
            Py_INCREF(item);
            eq = PyObject_RichCompareBool(item, key, Py_EQ);
            Py_DECREF(item);
            if (eq < 0)
                return -3;
        }
        if (eq) {
            if (found >= 0)
                return -2;
            found = i;
        }
    }
    return found;
}

static PyObject *
single_index(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "single_index(keys: list, key: str)");
        return NULL;
    }
    Py_ssize_t i = find_single(args[0], args[1]);
    return i == -3 ? NULL : PyLong_FromSsize_t(i);
}

static PyObject *
single_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyList_Check(args[1]) ||
        !PyUnicode_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "single_value(keys: list, lines: list, key: str)");
        return NULL;
    }
    Py_ssize_t i = find_single(args[0], args[2]);
    if (i == -3)
        return NULL;
    if (i < 0 || i >= PyList_GET_SIZE(args[1]))
        Py_RETURN_NONE;
    return line_value(module, PyList_GET_ITEM(args[1], i));
}

static PyMethodDef methods[] = {
    {"index_head", (PyCFunction)(void (*)(void))index_head, METH_FASTCALL,
     "index_head(text, names) -> (lines, keys) | None"},
    {"line_value", (PyCFunction)line_value, METH_O,
     "line_value(line) -> the header line's value, unfolded and stripped"},
    {"single_index", (PyCFunction)(void (*)(void))single_index, METH_FASTCALL,
     "single_index(keys, key) -> index of the only line of key, -1 if none, -2 if several"},
    {"single_value", (PyCFunction)(void (*)(void))single_value, METH_FASTCALL,
     "single_value(keys, lines, key) -> line_value of the only line of key, else None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fast", "Compiled forms of four SIP parser helpers.", -1, methods,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    empty_key = PyUnicode_InternFromString("");
    if (empty_key == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
