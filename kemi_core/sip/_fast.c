/* kemi_core.sip._fast: optional compiled forms of hot helpers of the SIP parser.
 * Each has a pure-Python reference that is used when this module is not built, and
 * tests/sip/test_sip_fast_ext.py checks that both give the same result on any input.
 *
 * The Python forms of the first four are in kemi_core/sip/syntax.py, which also picks the
 * forms in use; the value parsers (via_fields, name_addr_fields, at the end) stand for the
 * regex fast paths of kemi_core/sip/headers.py.
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
#include <structmember.h> /* T_OBJECT_EX, READONLY: the message's slots */

static PyObject *empty_key; /* "" */
static PyObject *empty_tuple;

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

/* ---- value parsers: the usual Via and name-addr shapes ----------------------------------
 * via_fields(value) and name_addr_fields(value) match exactly what headers.py's fast regexes
 * (_VIA_FAST; _NAME_ADDR_FAST, then _ADDR_SPEC_FAST) match, and return the fields of the Via
 * or NameAddr tuple that parse_via / parse_name_addr build from that match, or None when the
 * value has another shape (the caller then takes the regex and strict paths, which decide
 * every error). tests/sip/test_sip_fast_ext.py checks both give the same on generated values. */

static PyObject *s_sip20, *s_udp, *s_tcp, *s_tls, *s_sctp, *s_ws, *s_wss;

/* token (RFC 3261 25.1) as the regexes' TOK: A-Za-z0-9 . ! % * _ + ` ' ~ - */
static inline int
is_tok(Py_UCS4 c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '!' || c == '%' || c == '*' || c == '_' || c == '+' || c == '`' ||
           c == '\'' || c == '~' || c == '-';
}

static inline int
is_alpha(Py_UCS4 c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int
is_scheme(Py_UCS4 c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-';
}

/* PARAMS over [i, n): (;TOK(=VAL)?)* with VAL = TOK plus ':' '[' ']'. Returns 0 when it does
 * not match. Else 1, with [*vs, *ve) the value of the first parameter whose name is ``name``
 * (ASCII, any case), *vs = -1 when that one has no value or there is none (params_trusted's
 * first-wins lookup). */
static int
scan_params(int kind, const void *data, Py_ssize_t i, Py_ssize_t n, const char *name,
            Py_ssize_t *vs, Py_ssize_t *ve)
{
    size_t nlen = strlen(name);
    int found = 0;
    *vs = -1;
    *ve = -1;
    while (i < n) {
        if (PyUnicode_READ(kind, data, i) != ';')
            return 0;
        Py_ssize_t ns = ++i;
        while (i < n && is_tok(PyUnicode_READ(kind, data, i)))
            i++;
        if (i == ns)
            return 0;
        int named = 0;
        if (!found && (size_t)(i - ns) == nlen) {
            named = 1;
            for (size_t k = 0; k < nlen; k++) {
                Py_UCS4 c = PyUnicode_READ(kind, data, ns + (Py_ssize_t)k);
                if (c >= 'A' && c <= 'Z')
                    c += 'a' - 'A';
                if (c != (Py_UCS4)name[k]) {
                    named = 0;
                    break;
                }
            }
            found = named;
        }
        if (i < n && PyUnicode_READ(kind, data, i) == '=') {
            Py_ssize_t s = ++i;
            while (i < n) {
                Py_UCS4 c = PyUnicode_READ(kind, data, i);
                if (!(is_tok(c) || c == ':' || c == '[' || c == ']'))
                    break;
                i++;
            }
            if (i == s)
                return 0;
            if (named) {
                *vs = s;
                *ve = i;
            }
        }
    }
    return 1;
}

/* str of [s, e), or None (new reference) when s < 0. */
static PyObject *
span_or_none(PyObject *text, Py_ssize_t s, Py_ssize_t e)
{
    if (s < 0)
        Py_RETURN_NONE;
    return PyUnicode_Substring(text, s, e);
}

/* The fields of a tuple from new references (consumed; NULL ones make it fail). */
static PyObject *
pack_fields(Py_ssize_t count, PyObject **items)
{
    PyObject *t = NULL;
    for (Py_ssize_t k = 0; k < count; k++)
        if (items[k] == NULL)
            goto done;
    t = PyTuple_New(count);
    if (t != NULL) {
        for (Py_ssize_t k = 0; k < count; k++) {
            PyTuple_SET_ITEM(t, k, items[k]);
            items[k] = NULL;
        }
    }
done:
    for (Py_ssize_t k = 0; k < count; k++)
        Py_XDECREF(items[k]);
    return t;
}

static PyObject *
via_fields(PyObject *module, PyObject *value)
{
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "via_fields(value: str)");
        return NULL;
    }
    int kind = PyUnicode_KIND(value);
    const void *d = PyUnicode_DATA(value);
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    static const char prefix[] = "SIP/2.0/";
    Py_ssize_t i = 0;
    for (; i < 8; i++)
        if (i >= n || PyUnicode_READ(kind, d, i) != (Py_UCS4)prefix[i])
            Py_RETURN_NONE;
    /* transport, then one SP */
    Py_ssize_t ts = i;
    while (i < n && PyUnicode_READ(kind, d, i) >= 'A' && PyUnicode_READ(kind, d, i) <= 'Z')
        i++;
    if (i >= n || PyUnicode_READ(kind, d, i) != ' ')
        Py_RETURN_NONE;
    PyObject *transport = NULL;
    Py_ssize_t tl = i - ts;
    Py_UCS4 t0 = tl > 0 ? PyUnicode_READ(kind, d, ts) : 0;
    Py_UCS4 t1 = tl > 1 ? PyUnicode_READ(kind, d, ts + 1) : 0;
    Py_UCS4 t2 = tl > 2 ? PyUnicode_READ(kind, d, ts + 2) : 0;
    if (tl == 3 && t0 == 'U' && t1 == 'D' && t2 == 'P')
        transport = s_udp;
    else if (tl == 3 && t0 == 'T' && t1 == 'C' && t2 == 'P')
        transport = s_tcp;
    else if (tl == 3 && t0 == 'T' && t1 == 'L' && t2 == 'S')
        transport = s_tls;
    else if (tl == 4 && t0 == 'S' && t1 == 'C' && t2 == 'T' && PyUnicode_READ(kind, d, ts + 3) == 'P')
        transport = s_sctp;
    else if (tl == 2 && t0 == 'W' && t1 == 'S')
        transport = s_ws;
    else if (tl == 3 && t0 == 'W' && t1 == 'S' && t2 == 'S')
        transport = s_wss;
    else
        Py_RETURN_NONE;
    i++;
    /* host: a name / IPv4 address, or an IPv6 reference */
    Py_ssize_t hs = i;
    if (i < n && PyUnicode_READ(kind, d, i) == '[') {
        i++;
        Py_ssize_t in = i;
        while (i < n) {
            Py_UCS4 c = PyUnicode_READ(kind, d, i);
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.'))
                break;
            i++;
        }
        if (i == in || i >= n || PyUnicode_READ(kind, d, i) != ']')
            Py_RETURN_NONE;
        i++;
    }
    else {
        while (i < n) {
            Py_UCS4 c = PyUnicode_READ(kind, d, i);
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-'))
                break;
            i++;
        }
        if (i == hs)
            Py_RETURN_NONE;
    }
    Py_ssize_t he = i;
    /* :port, 1 to 5 digits; above 65535 the regex path raises the 400 */
    long port = -1;
    if (i < n && PyUnicode_READ(kind, d, i) == ':') {
        i++;
        Py_ssize_t ps = i;
        port = 0;
        while (i < n && i - ps < 6 && PyUnicode_READ(kind, d, i) >= '0' &&
               PyUnicode_READ(kind, d, i) <= '9') {
            port = port * 10 + (long)(PyUnicode_READ(kind, d, i) - '0');
            i++;
        }
        if (i == ps || i - ps > 5 || port > 65535)
            Py_RETURN_NONE;
    }
    Py_ssize_t bs, be;
    if (!scan_params(kind, d, i, n, "branch", &bs, &be))
        Py_RETURN_NONE;
    Py_INCREF(s_sip20);
    Py_INCREF(transport);
    Py_INCREF(value);
    PyObject *items[7] = {
        s_sip20,
        transport,
        PyUnicode_Substring(value, hs, he),
        port < 0 ? (Py_INCREF(Py_None), Py_None) : PyLong_FromLong(port),
        value,
        span_or_none(value, bs, be),
        PyUnicode_Substring(value, i, n),
    };
    return pack_fields(7, items);
}

/* End of the URI that starts at i: scheme ":" then at least one character other than
 * < > " and whitespace (and, in an addr-spec, ; , ?), as the fast regexes say; -1 if none. */
static Py_ssize_t
scan_uri(int kind, const void *d, Py_ssize_t i, Py_ssize_t n, int addr_spec)
{
    if (i >= n || !is_alpha(PyUnicode_READ(kind, d, i)))
        return -1;
    while (i < n && is_scheme(PyUnicode_READ(kind, d, i)))
        i++;
    if (i >= n || PyUnicode_READ(kind, d, i) != ':')
        return -1;
    Py_ssize_t rs = ++i;
    while (i < n) {
        Py_UCS4 c = PyUnicode_READ(kind, d, i);
        if (c == '<' || c == '>' || c == '"' || Py_UNICODE_ISSPACE(c) ||
            (addr_spec && (c == ';' || c == ',' || c == '?')))
            break;
        i++;
    }
    return i == rs ? -1 : i;
}

static PyObject *
name_addr_fields(PyObject *module, PyObject *value)
{
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "name_addr_fields(value: str)");
        return NULL;
    }
    int kind = PyUnicode_KIND(value);
    const void *d = PyUnicode_DATA(value);
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    if (n == 0)
        Py_RETURN_NONE;
    Py_ssize_t i = 0, ds = -1, de = -1;
    Py_UCS4 c0 = PyUnicode_READ(kind, d, 0);
    int angle = 0;
    if (c0 == '"') {
        /* "display" then one optional SP, then <: no escapes in the fast shape */
        i = 1;
        while (i < n) {
            Py_UCS4 c = PyUnicode_READ(kind, d, i);
            if (c == '"' || c == '\\' || c == '\r' || c == '\n')
                break;
            i++;
        }
        if (i >= n || PyUnicode_READ(kind, d, i) != '"')
            Py_RETURN_NONE;
        ds = 1;
        de = i;
        i++;
        if (i < n && PyUnicode_READ(kind, d, i) == ' ')
            i++;
        if (i >= n || PyUnicode_READ(kind, d, i) != '<')
            Py_RETURN_NONE;
        angle = 1;
    }
    else if (c0 == '<') {
        angle = 1;
    }
    else if (is_tok(c0)) {
        /* token words separated by single SPs, one optional SP, then <; else an addr-spec */
        while (i < n && is_tok(PyUnicode_READ(kind, d, i)))
            i++;
        while (i + 1 < n && PyUnicode_READ(kind, d, i) == ' ' &&
               is_tok(PyUnicode_READ(kind, d, i + 1))) {
            i++;
            while (i < n && is_tok(PyUnicode_READ(kind, d, i)))
                i++;
        }
        Py_ssize_t we = i;
        if (i < n && PyUnicode_READ(kind, d, i) == ' ')
            i++;
        if (i < n && PyUnicode_READ(kind, d, i) == '<') {
            ds = 0;
            de = we;
            angle = 1;
        }
        else
            i = 0;
    }
    else
        Py_RETURN_NONE;

    Py_ssize_t us, ue;
    if (angle) {
        us = i + 1; /* past '<' */
        ue = scan_uri(kind, d, us, n, 0);
        if (ue < 0 || ue >= n || PyUnicode_READ(kind, d, ue) != '>')
            Py_RETURN_NONE;
        i = ue + 1;
    }
    else {
        /* addr-spec: no ',', '?' or ';' in the URI (RFC 3261 20), params after the first ';' */
        us = 0;
        ue = scan_uri(kind, d, 0, n, 1);
        if (ue < 0)
            Py_RETURN_NONE;
        i = ue;
    }
    Py_ssize_t tgs, tge;
    if (!scan_params(kind, d, i, n, "tag", &tgs, &tge))
        Py_RETURN_NONE;
    Py_INCREF(Py_False);
    Py_INCREF(value);
    PyObject *items[6] = {
        span_or_none(value, ds, de),
        PyUnicode_Substring(value, us, ue),
        Py_False,
        value,
        span_or_none(value, tgs, tge),
        PyUnicode_Substring(value, i, n),
    };
    return pack_fields(6, items);
}

/* ---- the usual sip: URI ------------------------------------------------------------------
 * uri_parser(cls) returns parse(text): the SipUri that kemi_core/sip/uri.py's _parse_uri_py
 * gives for the usual URI, made by calling cls(scheme, user, password, host, port, params,
 * headers), or None for any other text: the Python form then decides, errors included. The
 * usual URI (what phones and SIPp send in From, To, Contact, Route and the Request-URI):
 * ASCII without a character _FORBIDDEN_RE rejects (which leaves nothing for strip()),
 * "sip:" or "sips:" in lower case, an optional user of _USER_OK characters (no password),
 * "@", a host name or IPv4 address ([A-Za-z0-9_.-]+), an optional port of 1 to 5 digits up
 * to 65535, optional ";" parameters (names lower-cased, values as written, a repeated name
 * keeping its last value as the dict assignment does), no "?" headers. As in Python, the user
 * ends at the first "@" of the text, wherever it is. */

static int
uri_user_char(Py_UCS1 c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-_.!~*'()&=+$,;?/%", c) != NULL);
}

static int
uri_host_char(Py_UCS1 c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* The parameters in [s, n) (the text after the first ';') into params; 0 when one has an
 * empty name (not the usual shape), -1 on error. */
static int
uri_params(PyObject *text, const Py_UCS1 *d, Py_ssize_t s, Py_ssize_t n, PyObject *params)
{
    while (1) {
        Py_ssize_t e = s;
        while (e < n && d[e] != ';')
            e++;
        Py_ssize_t eq = s;
        while (eq < e && d[eq] != '=')
            eq++;
        if (eq == s)
            return 0;
        PyObject *name = PyUnicode_New(eq - s, 127);
        if (name == NULL)
            return -1;
        Py_UCS1 *nd = PyUnicode_1BYTE_DATA(name);
        for (Py_ssize_t k = s; k < eq; k++)
            nd[k - s] = (d[k] >= 'A' && d[k] <= 'Z') ? (Py_UCS1)(d[k] + 32) : d[k];
        PyObject *value = eq < e ? PyUnicode_Substring(text, eq + 1, e) : Py_NewRef(Py_None);
        int rc = value == NULL ? -1 : PyDict_SetItem(params, name, value);
        Py_DECREF(name);
        Py_XDECREF(value);
        if (rc < 0)
            return -1;
        if (e >= n)
            return 1;
        s = e + 1;
    }
}

/* Where the parts of the usual URI are (see above): [hs, he) the host, port -1 when none,
 * ps the index of the first ';' (params after it; n when none), at the '@' (-1: no user). */
typedef struct {
    int sips;
    Py_ssize_t n, at, hs, he, ps;
    long port;
} UriSpans;

/* 1 when text is the usual URI (its spans in *u), 0 otherwise. */
static int
uri_usual(PyObject *text, UriSpans *u)
{
    if (!PyUnicode_Check(text) || !PyUnicode_IS_ASCII(text))
        return 0;
    const Py_UCS1 *d = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_ssize_t at = -1, qm = -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_UCS1 c = d[k];
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == '"')
            return 0;
        if (c == '@' && at < 0)
            at = k;
        else if (c == '?')
            qm = k;
    }
    Py_ssize_t i;
    if (n > 4 && memcmp(d, "sip:", 4) == 0) {
        u->sips = 0;
        i = 4;
    }
    else if (n > 5 && memcmp(d, "sips:", 5) == 0) {
        u->sips = 1;
        i = 5;
    }
    else
        return 0;
    Py_ssize_t hs = i;
    if (at >= 0) {
        if (at == i)
            return 0;
        for (Py_ssize_t k = i; k < at; k++)
            if (!uri_user_char(d[k]))
                return 0; /* a password (':'), or a character Python refuses */
        hs = at + 1;
    }
    if (qm >= hs) /* headers after the user: Python's */
        return 0;
    Py_ssize_t he = hs;
    while (he < n && uri_host_char(d[he]))
        he++;
    if (he == hs || (he < n && d[he] != ':' && d[he] != ';'))
        return 0;
    Py_ssize_t j = he;
    long port = -1;
    if (j < n && d[j] == ':') {
        Py_ssize_t ps = ++j;
        port = 0;
        while (j < n && d[j] >= '0' && d[j] <= '9') {
            if (j - ps < 5) /* more digits are refused below: no overflow */
                port = port * 10 + (d[j] - '0');
            j++;
        }
        if (j == ps || j - ps > 5 || port > 65535 || (j < n && d[j] != ';'))
            return 0;
    }
    u->n = n;
    u->at = at;
    u->hs = hs;
    u->he = he;
    u->ps = j;
    u->port = port;
    return 1;
}

static PyObject *
uri_parse(PyObject *cls, PyObject *text)
{
    UriSpans u;
    if (!uri_usual(text, &u))
        Py_RETURN_NONE;
    const Py_UCS1 *d = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = u.n, j = u.ps, at = u.at, hs = u.hs, he = u.he, i = u.sips ? 5 : 4;
    long port = u.port;
    const char *scheme = u.sips ? "sips" : "sip";
    PyObject *params = PyDict_New();
    if (params == NULL)
        return NULL;
    if (j < n) { /* d[j] == ';' */
        int rc = uri_params(text, d, j + 1, n, params);
        if (rc <= 0) {
            Py_DECREF(params);
            if (rc < 0)
                return NULL;
            Py_RETURN_NONE;
        }
    }
    PyObject *args[7] = {
        PyUnicode_FromString(scheme),
        at >= 0 ? PyUnicode_Substring(text, i, at) : Py_NewRef(Py_None),
        Py_NewRef(Py_None),
        PyUnicode_Substring(text, hs, he),
        port >= 0 ? PyLong_FromLong(port) : Py_NewRef(Py_None),
        params,
        PyDict_New(),
    };
    PyObject *result = NULL;
    int ok = 1;
    for (int k = 0; k < 7; k++)
        ok &= args[k] != NULL;
    if (ok)
        result = PyObject_Vectorcall(cls, args, 7, NULL);
    for (int k = 0; k < 7; k++)
        Py_XDECREF(args[k]);
    return result;
}

static PyMethodDef uri_parse_def = {
    "parse", (PyCFunction)uri_parse, METH_O,
    "parse(text) -> the SipUri of the usual sip:/sips: URI, else None (compiled; see "
    "uri_parser)."};

static PyObject *
uri_parser(PyObject *module, PyObject *cls)
{
    if (!PyCallable_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "uri_parser(cls)");
        return NULL;
    }
    return PyCFunction_NewEx(&uri_parse_def, cls, NULL);
}

/* memo_value(key, memo, index, getter): a read-only descriptor for a value a tuple subclass
 * with a __dict__ caches there (NameAddr.uri: "_uri"), parsed from its text item ``index``
 * through a shared memo (uri._SHARED: text -> parsed value, read only): __dict__[key] when
 * there; else memo[text], also put in __dict__[key] as the getter would; else getter(obj)
 * (the pure form: it parses, fills the memo, raises, or answers another shape). Each new
 * message's From, To and Route miss the instance's cache but find the memo (~8 per call). */
typedef struct {
    PyObject_HEAD
    PyObject *key;    /* str */
    PyObject *memo;   /* dict, shared with the Python side */
    Py_ssize_t index; /* the text's tuple item */
    PyObject *getter; /* the pure form */
} MemoValue;

static PyObject *
memo_get(PyObject *self, PyObject *obj, PyObject *type)
{
    MemoValue *mv = (MemoValue *)self;
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(self); /* read on the class */
    PyObject **dictptr = _PyObject_GetDictPtr(obj);
    if (dictptr != NULL && *dictptr != NULL && PyDict_CheckExact(*dictptr)) {
        PyObject *v = PyDict_GetItemWithError(*dictptr, mv->key); /* borrowed */
        if (v != NULL)
            return Py_NewRef(v);
        if (PyErr_Occurred())
            return NULL;
    }
    if (dictptr != NULL && PyTuple_Check(obj) && mv->index < PyTuple_GET_SIZE(obj)) {
        PyObject *text = PyTuple_GET_ITEM(obj, mv->index);
        PyObject *v = PyUnicode_CheckExact(text) ? PyDict_GetItemWithError(mv->memo, text)
                                                 : NULL; /* borrowed */
        if (v != NULL) {
            Py_INCREF(v); /* ours before the dict is made (it may run Python code) */
            PyObject *dict = PyObject_GenericGetDict(obj, NULL); /* made if absent */
            int rc = dict == NULL ? -1 : PyDict_SetItem(dict, mv->key, v);
            Py_XDECREF(dict);
            if (rc < 0)
                Py_CLEAR(v);
            return v;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    return PyObject_CallOneArg(mv->getter, obj);
}

static PyObject *
memo_doc(PyObject *self, void *closure)
{
    return PyObject_GetAttrString(((MemoValue *)self)->getter, "__doc__");
}

static PyGetSetDef memo_getset[] = {
    {"__doc__", memo_doc, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static int
memo_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((MemoValue *)self)->key);
    Py_VISIT(((MemoValue *)self)->memo);
    Py_VISIT(((MemoValue *)self)->getter);
    return 0;
}

static int
memo_clear(PyObject *self)
{
    Py_CLEAR(((MemoValue *)self)->key);
    Py_CLEAR(((MemoValue *)self)->memo);
    Py_CLEAR(((MemoValue *)self)->getter);
    return 0;
}

static void
memo_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    memo_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject MemoValueType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kemi_core.sip._fast.memo_value",
    .tp_basicsize = sizeof(MemoValue),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = memo_dealloc,
    .tp_traverse = memo_traverse,
    .tp_clear = memo_clear,
    .tp_descr_get = memo_get,
    .tp_getset = memo_getset,
};

static PyObject *
memo_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t index = nargs == 4 && PyLong_CheckExact(args[2]) ? PyLong_AsSsize_t(args[2]) : -1;
    if (index < 0 || !PyUnicode_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) ||
        !PyCallable_Check(args[3])) {
        PyErr_Clear(); /* (an index out of range: the same TypeError) */
        PyErr_SetString(PyExc_TypeError,
                        "memo_value(key: str, memo: dict, index: int >= 0, getter)");
        return NULL;
    }
    /* readied here, not in the module's init: this block stays in one place */
    if (!(MemoValueType.tp_flags & Py_TPFLAGS_READY) && PyType_Ready(&MemoValueType) < 0)
        return NULL;
    MemoValue *mv = PyObject_GC_New(MemoValue, &MemoValueType);
    if (mv == NULL)
        return NULL;
    mv->key = Py_NewRef(args[0]);
    mv->memo = Py_NewRef(args[1]);
    mv->index = index;
    mv->getter = Py_NewRef(args[3]);
    PyObject_GC_Track((PyObject *)mv);
    return (PyObject *)mv;
}


/* ---- the whole datagram ------------------------------------------------------------------
 * scan_message(data, names, methods, max_size, max_headers, max_line) does in one pass what
 * parser.parse_datagram does for the usual datagram: an ASCII head ending in CRLF CRLF, every
 * line ending in CR, every header name already in ``names`` (the parser's cache), a request
 * line "METHOD URI SIP/2.0" with a known method or a status line "SIP/2.0 NNN reason", at most
 * one Content-Length made of digits and not past the end. It returns the SipMsg with the very
 * state the Python path gives (lines, keys, is_request, method, ruri, status, reason, body and
 * buf cut at Content-Length (RFC 3261 18.3), version) and the message's first cache of parsed
 * values (parsed_values: its top Via, a reply's CSeq, a request's Max-Forwards), or None for
 * anything else: the Python path then decides, errors included. It never raises for any bytes
 * (once message_type registered the class). */

static PyObject *s_content_length;

/* A compact ASCII str of the n bytes at p (what decoding ASCII bytes gives). */
static PyObject *
ascii_str(const char *p, Py_ssize_t n)
{
    PyObject *o = PyUnicode_New(n, 127);
    if (o != NULL)
        memcpy(PyUnicode_DATA(o), p, (size_t)n);
    return o;
}

/* A small table in front of the names dict, keyed by the raw bytes of a name, so a known name
 * costs a hash of a few bytes instead of a new str and a dict lookup. The dict maps a raw name
 * to its key the same way whenever it has it (a pure function of the name), so an entry never
 * goes stale; the table starts over when another dict is passed. */
#define NT_SLOTS 512
#define NT_NAME 32
typedef struct {
    Py_ssize_t len; /* 0: empty */
    char name[NT_NAME];
    PyObject *key; /* strong */
} nt_entry;
static nt_entry name_table[NT_SLOTS];
static PyObject *name_table_owner; /* strong: its address cannot be reused while we hold it */

static void
name_table_reset(PyObject *owner)
{
    for (int i = 0; i < NT_SLOTS; i++) {
        Py_CLEAR(name_table[i].key);
        name_table[i].len = 0;
    }
    Py_XINCREF(owner);
    Py_XSETREF(name_table_owner, owner);
}

/* The key of the raw name [p, p+n) (borrowed), NULL when the dict has none (error set if any). */
static PyObject *
lookup_name(PyObject *names, const char *p, Py_ssize_t n)
{
    if (names != name_table_owner)
        name_table_reset(names);
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    nt_entry *slot = NULL;
    if (n <= NT_NAME) {
        for (int k = 0; k < 4; k++) {
            nt_entry *e = &name_table[(h + (uint32_t)k) % NT_SLOTS];
            if (e->len == n && memcmp(e->name, p, (size_t)n) == 0)
                return e->key;
            if (e->len == 0 && slot == NULL)
                slot = e;
        }
    }
    PyObject *raw = ascii_str(p, n);
    if (raw == NULL)
        return NULL;
    PyObject *key = PyDict_GetItemWithError(names, raw); /* borrowed */
    Py_DECREF(raw);
    if (key != NULL && slot != NULL) {
        slot->len = n;
        memcpy(slot->name, p, (size_t)n);
        Py_INCREF(key);
        slot->key = key;
    }
    return key;
}

/* Whether the n bytes at p are all ASCII (eight at a time). */
static int
is_ascii(const char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
            return 0;
    }
    for (; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return 0;
    return 1;
}

static int
is_content_length(PyObject *key)
{
    return key == s_content_length ||
           (PyUnicode_CheckExact(key) && PyUnicode_GET_LENGTH(key) == 14 &&
            PyUnicode_KIND(key) == PyUnicode_1BYTE_KIND &&
            memcmp(PyUnicode_DATA(key), "content-length", 14) == 0);
}

static PyObject *s_via, *s_from, *s_to, *s_call_id, *s_cseq, *s_max_forwards;

static int
key_is(PyObject *key, PyObject *want)
{
    if (key == want)
        return 1;
    if (!PyUnicode_CheckExact(key))
        return 0; /* (the parser's keys are str; an odd one is simply not copied) */
    return PyUnicode_GET_LENGTH(key) == PyUnicode_GET_LENGTH(want) &&
           PyUnicode_KIND(key) == PyUnicode_KIND(want) &&
           memcmp(PyUnicode_DATA(key), PyUnicode_DATA(want),
                  (size_t)PyUnicode_GET_LENGTH(want) * PyUnicode_KIND(want)) == 0;
}

/* The fields of the first value of a Via line holding several (a UA or SIPp joining the Vias
 * of a reply on one line), when every value, stripped of spaces and tabs, has the usual shape
 * (via_fields): what msg.via gives then (parse_vias parses, and so checks, each value of the
 * line). None for any other line (an empty value, quotes or brackets, other whitespace around
 * a value, a value of another shape): msg.via parses it, or refuses it, when read.
 * New reference; NULL on error. */
static PyObject *
joined_via_fields(PyObject *module, PyObject *value)
{
    int kind = PyUnicode_KIND(value);
    const void *d = PyUnicode_DATA(value);
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    PyObject *first = NULL;
    Py_ssize_t start = 0;
    while (start <= n) {
        Py_ssize_t end = PyUnicode_FindChar(value, ',', start, n, 1);
        if (end == -2)
            goto error;
        if (end == -1)
            end = n;
        Py_ssize_t s = start, e = end;
        while (s < e && (PyUnicode_READ(kind, d, s) == ' ' || PyUnicode_READ(kind, d, s) == '\t'))
            s++;
        while (e > s &&
               (PyUnicode_READ(kind, d, e - 1) == ' ' || PyUnicode_READ(kind, d, e - 1) == '\t'))
            e--;
        if (s == e) { /* an empty value: split_commas drops it, the Python path decides */
            Py_XDECREF(first);
            Py_RETURN_NONE;
        }
        PyObject *piece = PyUnicode_Substring(value, s, e);
        if (piece == NULL)
            goto error;
        PyObject *fields = via_fields(module, piece);
        Py_DECREF(piece);
        if (fields == NULL)
            goto error;
        if (fields == Py_None) {
            Py_XDECREF(first);
            return fields;
        }
        if (first == NULL)
            first = fields;
        else
            Py_DECREF(fields); /* checked only: msg.vias parses the line when read */
        start = end + 1;
    }
    return first;
error:
    Py_XDECREF(first);
    return NULL;
}

/* The fields of the top Via (via_fields) when the first Via line holds one value of the usual
 * shape, or several each of the usual shape (joined_via_fields), else None: what reading
 * msg.via parses first, parsed here because every message has it read (the gate, tm, the
 * reply path). New reference; NULL on error. */
static PyObject *
top_via_fields(PyObject *module, PyObject *keys, PyObject *lines)
{
    for (Py_ssize_t i = 1; i < PyList_GET_SIZE(keys); i++) {
        if (!key_is(PyList_GET_ITEM(keys, i), s_via))
            continue;
        PyObject *value = line_value(module, PyList_GET_ITEM(lines, i));
        if (value == NULL)
            return NULL;
        Py_ssize_t comma = PyUnicode_FindChar(value, ',', 0, PyUnicode_GET_LENGTH(value), 1);
        PyObject *fields;
        if (comma == -1)
            fields = via_fields(module, value);
        else if (comma == -2)
            fields = NULL;
        else
            fields = joined_via_fields(module, value); /* several values on the line */
        Py_DECREF(value);
        return fields;
    }
    Py_RETURN_NONE;
}

/* The fields (number, method) of a reply's CSeq when it has one CSeq line of the usual shape,
 * as parse_cseq's fast path takes it ("<1-9 ASCII digits> <method in methods>"); else None:
 * what reading msg.cseq parses first (anything else is parsed, or refused, when read).
 * New reference; NULL on error. */
/* The decimal number in value[0:sp] (1-9 digits: it fits a long), or -1 when one of them is
 * not a digit. */
static long
leading_number(PyObject *value, Py_ssize_t sp)
{
    int kind = PyUnicode_KIND(value);
    const void *d = PyUnicode_DATA(value);
    long number = 0;
    for (Py_ssize_t i = 0; i < sp; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, d, i);
        if (c < '0' || c > '9')
            return -1;
        number = number * 10 + (long)(c - '0');
    }
    return number;
}

static PyObject *
cseq_fields(PyObject *module, PyObject *keys, PyObject *lines, PyObject *methods)
{
    Py_ssize_t at = -1;
    for (Py_ssize_t i = 1; i < PyList_GET_SIZE(keys); i++) {
        if (key_is(PyList_GET_ITEM(keys, i), s_cseq)) {
            if (at >= 0)
                Py_RETURN_NONE; /* several: reading it refuses them */
            at = i;
        }
    }
    if (at < 0)
        Py_RETURN_NONE;
    PyObject *value = line_value(module, PyList_GET_ITEM(lines, at));
    if (value == NULL)
        return NULL;
    PyObject *result = NULL, *name = NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    Py_ssize_t sp = PyUnicode_FindChar(value, ' ', 0, n, 1);
    if (sp == -2)
        goto done;
    if (sp < 1 || sp >= 10)
        goto other;
    long number = leading_number(value, sp);
    if (number < 0)
        goto other;
    name = PyUnicode_Substring(value, sp + 1, n);
    if (name == NULL)
        goto done;
    int known = PySet_Contains(methods, name);
    if (known < 0)
        goto done;
    if (!known)
        goto other;
    result = Py_BuildValue("(lO)", number, name);
    goto done;
other:
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(name);
    Py_DECREF(value);
    return result;
}

/* The value of the one line under ``key`` in (keys, lines): a new reference; NULL with
 * *absent set when there is no such single line, NULL with an exception on error. */
static PyObject *
single_line_value(PyObject *module, PyObject *keys, PyObject *lines, PyObject *key, int *absent)
{
    Py_ssize_t at = find_single(keys, key);
    *absent = 0;
    if (at == -3)
        return NULL;
    if (at < 0 || at >= PyList_GET_SIZE(lines)) {
        *absent = 1;
        return NULL;
    }
    return line_value(module, PyList_GET_ITEM(lines, at));
}

/* A request's Max-Forwards when it has one such line whose value is 1 to 3 ASCII digits up to
 * 255, as reading msg.max_forwards gives it (every relayed request has it read, then
 * decremented); else None: anything else is parsed, or refused, when read. New reference;
 * NULL on error. */
static PyObject *
max_forwards_value(PyObject *module, PyObject *keys, PyObject *lines)
{
    int absent;
    PyObject *value = single_line_value(module, keys, lines, s_max_forwards, &absent);
    if (value == NULL) {
        if (absent)
            Py_RETURN_NONE;
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    int kind = PyUnicode_KIND(value);
    const void *d = PyUnicode_DATA(value);
    long number = 0;
    for (Py_ssize_t i = 0; i < n && n <= 3; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, d, i);
        if (c < '0' || c > '9') {
            number = -1;
            break;
        }
        number = number * 10 + (long)(c - '0');
    }
    Py_DECREF(value);
    if (n < 1 || n > 3 || number < 0 || number > 255)
        Py_RETURN_NONE;
    return PyLong_FromLong(number);
}

/* The classes of the values parsed ahead (kemi_core.sip.values Via and CSeq, tuple
 * subclasses), given once by value_types(); unset, nothing is parsed ahead. */
static PyTypeObject *via_type, *cseq_type, *name_addr_type;

static PyObject *
value_types(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int ok = nargs == 2 || nargs == 3;
    for (Py_ssize_t k = 0; ok && k < nargs; k++)
        ok = PyType_Check(args[k]) && PyType_IsSubtype((PyTypeObject *)args[k], &PyTuple_Type);
    if (!ok) {
        PyErr_SetString(PyExc_TypeError,
                        "value_types(Via, CSeq[, NameAddr]): tuple subclasses");
        return NULL;
    }
    Py_INCREF(args[0]);
    Py_XSETREF(via_type, (PyTypeObject *)args[0]);
    Py_INCREF(args[1]);
    Py_XSETREF(cseq_type, (PyTypeObject *)args[1]);
    Py_XINCREF(nargs == 3 ? args[2] : NULL);
    Py_XSETREF(name_addr_type, nargs == 3 ? (PyTypeObject *)args[2] : NULL);
    Py_RETURN_NONE;
}

/* The fields of a request's To (name_addr_fields) when it has one To line of the usual shape,
 * else None: what reading msg.to parses first (the request gate reads every request's To).
 * New reference; NULL on error. */
static PyObject *
to_fields(PyObject *module, PyObject *keys, PyObject *lines)
{
    int absent;
    PyObject *value = single_line_value(module, keys, lines, s_to, &absent);
    if (value == NULL) {
        if (absent)
            Py_RETURN_NONE;
        return NULL;
    }
    PyObject *fields = name_addr_fields(module, value);
    Py_DECREF(value);
    return fields;
}

/* An instance of the tuple subclass ``type`` holding the items of ``fields`` (a tuple,
 * consumed), as tuple.__new__(type, fields) makes it; NULL on error. */
static PyObject *
as_value(PyTypeObject *type, PyObject *fields)
{
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    PyObject *o = type->tp_alloc(type, n);
    if (o != NULL) {
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *item = PyTuple_GET_ITEM(fields, k);
            Py_INCREF(item);
            PyTuple_SET_ITEM(o, k, item);
        }
    }
    Py_DECREF(fields);
    return o;
}

/* Put ``fields`` (consumed; None: nothing) as a ``type`` value under ``key``; -1 on error. */
static int
put_value(PyObject *cache, PyObject *key, PyTypeObject *type, PyObject *fields)
{
    if (fields == NULL)
        return -1;
    if (fields == Py_None) {
        Py_DECREF(fields);
        return 0;
    }
    PyObject *value = as_value(type, fields);
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(cache, key, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *params_trusted(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
static PyObject *s_params; /* "_params" */

/* A request's top Via (in cache) gets its parameters split as reading via.params does
 * (MappingProxyType(params_trusted(ptext, {})), kept in its __dict__ under "_params"), when it
 * has any: received_via, reply_destination and the rport checks read them for every request
 * relayed. 0, or -1 on error. */
static int
via_params_ahead(PyObject *cache)
{
    PyObject *via = PyDict_GetItemWithError(cache, s_via); /* borrowed */
    if (via == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(via) || PyTuple_GET_SIZE(via) != 7 || _PyObject_GetDictPtr(via) == NULL)
        return 0; /* (not a Via with an instance dict: nothing ahead) */
    PyObject *ptext = PyTuple_GET_ITEM(via, 6);
    if (!PyUnicode_Check(ptext) || PyUnicode_GET_LENGTH(ptext) == 0)
        return 0; /* none: the shared empty mapping, when read */
    PyObject *args[2] = {ptext, PyDict_New()};
    if (args[1] == NULL)
        return -1;
    PyObject *params = params_trusted(NULL, args, 2);
    Py_DECREF(args[1]);
    PyObject *proxy = params == NULL ? NULL : PyDictProxy_New(params);
    Py_XDECREF(params);
    PyObject *dict = proxy == NULL ? NULL : PyObject_GenericGetDict(via, NULL);
    int rc = dict == NULL ? -1 : PyDict_SetItem(dict, s_params, proxy);
    Py_XDECREF(dict);
    Py_XDECREF(proxy);
    return rc;
}

/* What msg._cache starts with: the top Via, a reply's CSeq, a request's To and Max-Forwards
 * parsed ahead as reading msg.via, msg.cseq, msg.to and msg.max_forwards would (every message
 * has its Via read, every reply its CSeq, every request its To, every relayed request its
 * Max-Forwards; a request's CSeq is rarely read on the way), when they have the usual shapes
 * (top_via_fields, cseq_fields, to_fields, max_forwards_value); the others are parsed, or
 * refused, when read. New reference; NULL on error. */
static PyObject *
parsed_values(PyObject *module, PyObject *keys, PyObject *lines, PyObject *methods,
              int is_request)
{
    PyObject *cache = PyDict_New();
    if (cache == NULL || via_type == NULL || cseq_type == NULL)
        return cache;
    if (put_value(cache, s_via, via_type, top_via_fields(module, keys, lines)) < 0 ||
        (!is_request &&
         put_value(cache, s_cseq, cseq_type, cseq_fields(module, keys, lines, methods)) < 0))
        goto error;
    if (is_request && via_params_ahead(cache) < 0)
        goto error;
    if (is_request && name_addr_type != NULL &&
        put_value(cache, s_to, name_addr_type, to_fields(module, keys, lines)) < 0)
        goto error;
    if (is_request) {
        PyObject *mf = max_forwards_value(module, keys, lines);
        if (mf == NULL || (mf != Py_None && PyDict_SetItem(cache, s_max_forwards, mf) < 0)) {
            Py_XDECREF(mf);
            goto error;
        }
        Py_DECREF(mf);
    }
    return cache;
error:
    Py_DECREF(cache);
    return NULL;
}

/* The first CRLF CRLF of [d, d + n), NULL when there is none. memchr hops from CR to CR (one
 * per line): glibc's memmem took ~1,500 instructions per message for this 4-byte needle. */
static const char *
find_head_end(const char *d, Py_ssize_t n)
{
    const char *p = d, *end = d + n;
    while (end - p >= 4) {
        /* a match starts at end - 4 at the latest: cr[3] stays inside the data */
        const char *cr = memchr(p, '\r', (size_t)(end - p - 3));
        if (cr == NULL)
            return NULL;
        if (cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n')
            return cr;
        p = cr + 1;
    }
    return NULL;
}

/* The message's fields (SCAN_FIELDS new references in out, in the order of F_LINES ... F_CACHE
 * below) for the usual datagram: 1; 0 for anything else (the careful path decides); -1 on
 * error. */
#define SCAN_FIELDS 10

#define SCAN_LINES 64
static int scan_bytes(PyObject *data, PyObject *names, PyObject *methods, Py_ssize_t max_size,
                      Py_ssize_t max_headers, Py_ssize_t max_line, PyObject **out);

static int
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject **out)
{
    if (nargs != 6 || !PyDict_Check(args[1]) || !PyAnySet_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "scan_message(data: bytes, names: dict, methods: "
                                         "frozenset, max_size, max_headers, max_line: int)");
        return -1;
    }
    if (!PyBytes_CheckExact(args[0]))
        return 0;
    Py_ssize_t max_size = PyLong_AsSsize_t(args[3]);
    Py_ssize_t max_headers = PyLong_AsSsize_t(args[4]);
    Py_ssize_t max_line = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred())
        return -1;
    return scan_bytes(args[0], args[1], args[2], max_size, max_headers, max_line, out);
}

/* scan() with its arguments checked: data an exact bytes, names a dict, methods a set. */
static int
scan_bytes(PyObject *data, PyObject *names, PyObject *methods, Py_ssize_t max_size,
           Py_ssize_t max_headers, Py_ssize_t max_line, PyObject **out)
{
    const char *d = PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (n > max_size || n < 4 || d[0] == '\r' || d[0] == '\n')
        return 0;
    const char *end4 = find_head_end(d, n);
    if (end4 == NULL || end4 == d)
        return 0;
    Py_ssize_t head_len = (end4 - d) + 1; /* through the last header's CR */
    if (!is_ascii(d, head_len))
        return 0;

    /* the lines (new references) and their keys (borrowed) gathered here, then moved into
     * lists of their size: no list growing line by line (a message of more lines than this
     * is left to the careful path, which gives the same message) */
    PyObject *lv[SCAN_LINES], *kv[SCAN_LINES];
    Py_ssize_t count = 0;
    PyObject *lines = NULL, *keys = NULL;
    PyObject *method = NULL, *ruri = NULL, *reason = NULL;
    int result = -1;
    Py_ssize_t cl_line = -1; /* index of the Content-Length line */
    Py_ssize_t start = 0;
    while (start < head_len) {
        const char *nl = memchr(d + start, '\n', (size_t)(head_len - start));
        Py_ssize_t end = nl == NULL ? head_len : nl - d;
        Py_ssize_t len = end - start;
        if (len == 0 || d[end - 1] != '\r' || len > max_line || count == SCAN_LINES ||
            count > max_headers)
            goto careful;
        PyObject *key = empty_key;
        if (start != 0) {
            const char *colon = memchr(d + start, ':', (size_t)len);
            if (colon == NULL)
                goto careful;
            key = lookup_name(names, d + start, colon - (d + start));
            if (key == NULL) {
                if (PyErr_Occurred())
                    goto done;
                goto careful;
            }
            if (is_content_length(key)) {
                if (cl_line >= 0)
                    goto careful; /* several: the Python path's 400 */
                cl_line = count;
            }
        }
        PyObject *line = ascii_str(d + start, len);
        if (line == NULL)
            goto done;
        lv[count] = line;
        kv[count++] = key;
        if (nl == NULL)
            break;
        start = end + 1;
    }
    lines = PyList_New(count);
    keys = PyList_New(count);
    if (lines == NULL || keys == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyList_SET_ITEM(lines, i, lv[i]); /* (moved: the list owns it now) */
        PyList_SET_ITEM(keys, i, Py_NewRef(kv[i]));
    }
    count = 0;

    /* the start line, as parse_head's two usual shapes (anything else: careful) */
    PyObject *first = PyList_GET_ITEM(lines, 0);
    const char *f = (const char *)PyUnicode_DATA(first);
    Py_ssize_t flen = PyUnicode_GET_LENGTH(first);
    const char *sp1 = memchr(f, ' ', (size_t)flen);
    const char *sp2 = sp1 == NULL ? NULL : memchr(sp1 + 1, ' ', (size_t)(f + flen - sp1 - 1));
    int is_request = 0;
    long status = 0;
    if (sp2 != NULL && memchr(sp2 + 1, ' ', (size_t)(f + flen - sp2 - 1)) == NULL &&
        f + flen - (sp2 + 1) == 8 && memcmp(sp2 + 1, "SIP/2.0\r", 8) == 0 && sp2 > sp1 + 1) {
        method = ascii_str(f, sp1 - f);
        if (method == NULL)
            goto done;
        is_request = PySet_Contains(methods, method);
        if (is_request < 0)
            goto done;
        if (!is_request)
            Py_CLEAR(method); /* not a known method: maybe a status line */
    }
    if (is_request) {
        ruri = ascii_str(sp1 + 1, sp2 - sp1 - 1);
        reason = empty_key;
        Py_INCREF(reason);
        if (ruri == NULL)
            goto done;
    }
    else if (flen >= 12 && memcmp(f, "SIP/2.0 ", 8) == 0 && f[8] >= '1' && f[8] <= '9' &&
             f[9] >= '0' && f[9] <= '9' && f[10] >= '0' && f[10] <= '9' && f[11] == ' ') {
        is_request = 0;
        status = (f[8] - '0') * 100 + (f[9] - '0') * 10 + (f[10] - '0');
        method = empty_key;
        Py_INCREF(method);
        ruri = empty_key;
        Py_INCREF(ruri);
        reason = PyUnicode_Substring(first, 12, flen - 1);
        if (reason == NULL)
            goto done;
    }
    else
        goto careful;

    /* the body: the rest of the datagram, cut at Content-Length */
    Py_ssize_t body_start = head_len + 3;
    Py_ssize_t body_len = n - body_start;
    Py_ssize_t buf_len = n;
    if (cl_line >= 0) {
        PyObject *line = PyList_GET_ITEM(lines, cl_line);
        const char *l = (const char *)PyUnicode_DATA(line);
        Py_ssize_t ll = PyUnicode_GET_LENGTH(line);
        const char *v = memchr(l, ':', (size_t)ll) + 1;
        const char *ve = l + ll - 1; /* the CR */
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (ve == v || ve - v > 10)
            goto careful;
        long long cl = 0;
        for (const char *c = v; c < ve; c++) {
            if (*c < '0' || *c > '9')
                goto careful;
            cl = cl * 10 + (*c - '0');
        }
        if (cl > body_len)
            goto careful; /* the Python path's 400 */
        buf_len = n - body_len + (Py_ssize_t)cl;
        body_len = (Py_ssize_t)cl;
    }
    PyObject *body = PyBytes_FromStringAndSize(d + body_start, body_len);
    PyObject *buf;
    if (buf_len == n) {
        buf = data;
        Py_INCREF(buf);
    }
    else
        buf = PyBytes_FromStringAndSize(d, buf_len);
    PyObject *st = PyLong_FromLong(status);
    PyObject *cache = parsed_values(NULL, keys, lines, methods, is_request);
    if (body == NULL || buf == NULL || st == NULL || cache == NULL) {
        Py_XDECREF(body);
        Py_XDECREF(buf);
        Py_XDECREF(st);
        Py_XDECREF(cache);
        goto done;
    }
    out[0] = lines;
    out[1] = keys;
    out[2] = Py_NewRef(is_request ? Py_True : Py_False);
    out[3] = method;
    out[4] = ruri;
    out[5] = st;
    out[6] = reason;
    out[7] = body;
    out[8] = buf;
    out[9] = cache;
    return 1;

careful:
    result = 0;
done:
    for (Py_ssize_t i = 0; i < count; i++)
        Py_DECREF(lv[i]);
    Py_XDECREF(lines);
    Py_XDECREF(keys);
    Py_XDECREF(method);
    Py_XDECREF(ruri);
    Py_XDECREF(reason);
    return result;
}

/* ---- the message object ---------------------------------------------------------------------
 * message_type(SipMsg, list_keys, pure) registers the class of parsed messages, the keys of
 * its cache whose values are lists (message._LIST_KEYS) and the pure forms of the edits below
 * (name -> function), and returns the compiled methods of that class by name (copy_message and
 * the edits). Each state slot is found through its member descriptor (a __slots__ entry that
 * holds an object), so C reads and writes it where Python's slot access does.
 *
 * scan_message(data, names, methods, max_size, max_headers, max_line) returns the message of the
 * usual datagram (see the whole-datagram pass above) or None: one call makes the message,
 * instead of a tuple of its fields unpacked into eleven slot stores in Python.
 *
 * copy_message(msg) (message.SipMsg.copy_py) is an independent copy that shares the immutable
 * state: new lists of lines and keys, a new cache dict without "uri" (a mutable SipUri) whose
 * list values (list_keys) are copied. tm copies every relayed request twice. */
enum { F_LINES, F_NAMES, F_IS_REQUEST, F_METHOD, F_RURI, F_STATUS, F_REASON, F_BODY, F_BUF,
       F_CACHE, F_VERSION, F_COUNT };
/* (the first SCAN_FIELDS in scan's order) */
static const char *const field_names[F_COUNT] = {
    "_lines", "_names", "is_request", "_method", "_ruri", "status", "reason", "_body", "_buf",
    "_cache", "version",
};
static PyTypeObject *msg_type; /* strong; NULL until registered */
static Py_ssize_t field_offset[F_COUNT];
static PyObject *msg_list_keys; /* strong */
static PyObject *s_uri, *s_vias, *s_mf_prefix, *s_via_prefix;

static inline PyObject **
field(PyObject *msg, int f)
{
    return (PyObject **)((char *)msg + field_offset[f]);
}

/* A new message holding fields (F_COUNT new references, consumed); NULL on error. */
static PyObject *
new_message(PyObject **fields)
{
    PyObject *m = msg_type->tp_alloc(msg_type, 0);
    for (int f = 0; f < F_COUNT; f++) {
        if (m == NULL)
            Py_DECREF(fields[f]);
        else
            Py_XSETREF(*field(m, f), fields[f]);
    }
    return m;
}

static PyObject *
scan_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *fields[F_COUNT];
    int rc = scan(module, args, nargs, fields);
    if (rc <= 0)
        return rc < 0 ? NULL : Py_NewRef(Py_None);
    fields[F_VERSION] = Py_NewRef(s_sip20);
    if (msg_type == NULL) {
        for (int f = 0; f < F_COUNT; f++)
            Py_DECREF(fields[f]);
        PyErr_SetString(PyExc_RuntimeError, "scan_message: message_type() was not called");
        return NULL;
    }
    return new_message(fields);
}

/* ---- the compiled entry ---------------------------------------------------------------------
 * datagram_parser(pure, careful, names, methods, default_limits) returns parse_datagram(data,
 * limits=default_limits) compiled (parser.parse_datagram_py is its pure form): the usual datagram
 * made into a message by scan_bytes, anything else given to careful(data, limits) (the rest of
 * the pure form), keywords and require_mandatory to pure itself. Every received datagram goes
 * through it: one C call where the pure form was a Python call around scan_message. A
 * ParseLimits is frozen, so the numbers of the last one seen are kept with it. */
enum { DP_PURE, DP_CAREFUL, DP_NAMES, DP_METHODS, DP_DEFAULT, DP_COUNT };
static PyObject *dp_limits; /* strong: the last limits read */
static Py_ssize_t dp_max_size, dp_max_headers, dp_max_line;
static int dp_mandatory;

static int
read_limits(PyObject *limits)
{
    static const char *const names[4] = {"max_message_size", "max_headers", "max_header_line",
                                         "require_mandatory"};
    Py_ssize_t v[4];
    for (int k = 0; k < 4; k++) {
        PyObject *o = PyObject_GetAttrString(limits, names[k]);
        if (o == NULL)
            return -1;
        v[k] = k == 3 ? PyObject_IsTrue(o) : PyLong_AsSsize_t(o);
        Py_DECREF(o);
        if (v[k] == -1 && PyErr_Occurred())
            return -1;
    }
    dp_max_size = v[0];
    dp_max_headers = v[1];
    dp_max_line = v[2];
    dp_mandatory = (int)v[3];
    Py_XSETREF(dp_limits, Py_NewRef(limits));
    return 0;
}

static PyObject *
parse_datagram(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *pure = PyTuple_GET_ITEM(self, DP_PURE);
    if (kwnames != NULL || nargs < 1 || nargs > 2 || msg_type == NULL)
        return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    PyObject *limits = nargs == 2 ? args[1] : PyTuple_GET_ITEM(self, DP_DEFAULT);
    if (limits != dp_limits && read_limits(limits) < 0)
        return NULL;
    if (dp_mandatory)
        return PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
    PyObject *fields[F_COUNT];
    int rc = PyBytes_CheckExact(args[0])
                 ? scan_bytes(args[0], PyTuple_GET_ITEM(self, DP_NAMES),
                              PyTuple_GET_ITEM(self, DP_METHODS), dp_max_size, dp_max_headers,
                              dp_max_line, fields)
                 : 0;
    if (rc < 0)
        return NULL;
    if (rc == 0) {
        PyObject *call[2] = {args[0], limits};
        return PyObject_Vectorcall(PyTuple_GET_ITEM(self, DP_CAREFUL), call, 2, NULL);
    }
    fields[F_VERSION] = Py_NewRef(s_sip20);
    return new_message(fields);
}

static PyMethodDef parse_datagram_def = {
    "parse_datagram", (PyCFunction)(void (*)(void))parse_datagram,
    METH_FASTCALL | METH_KEYWORDS,
    "parse_datagram(data, limits=DEFAULT_LIMITS): parse one UDP datagram. Raises only SipParseError (compiled form of parse_datagram_py)."};

static PyObject *
datagram_parser(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != DP_COUNT || !PyCallable_Check(args[DP_PURE]) ||
        !PyCallable_Check(args[DP_CAREFUL]) || !PyDict_Check(args[DP_NAMES]) ||
        !PyAnySet_Check(args[DP_METHODS])) {
        PyErr_SetString(PyExc_TypeError, "datagram_parser(pure, careful, names: dict, "
                                         "methods: frozenset, default_limits)");
        return NULL;
    }
    PyObject *state = PyTuple_New(DP_COUNT);
    if (state == NULL)
        return NULL;
    for (int k = 0; k < DP_COUNT; k++)
        PyTuple_SET_ITEM(state, k, Py_NewRef(args[k]));
    PyObject *fn = PyCFunction_NewEx(&parse_datagram_def, state, NULL);
    Py_DECREF(state);
    return fn;
}

/* A copy of a list or dict (anything else: its copy() method's result). */
static PyObject *
copied(PyObject *o)
{
    if (PyList_CheckExact(o))
        return PyList_GetSlice(o, 0, PyList_GET_SIZE(o));
    if (PyDict_CheckExact(o))
        return PyDict_Copy(o);
    return PyObject_CallMethod(o, "copy", NULL);
}

/* The copy's cache: no "uri", the list values copied. New reference; NULL on error. */
static PyObject *
copied_cache(PyObject *cache)
{
    PyObject *d = copied(cache);
    if (d == NULL || !PyDict_Check(d) || PyDict_GET_SIZE(d) == 0)
        return d;
    PyObject *uri = PyDict_GetItemWithError(d, s_uri);
    if ((uri == NULL && PyErr_Occurred()) || (uri != NULL && PyDict_DelItem(d, s_uri) < 0))
        goto error;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(d, &pos, &key, &value)) {
        int listed = PySet_Contains(msg_list_keys, key);
        if (listed < 0)
            goto error;
        if (!listed)
            continue;
        PyObject *own = copied(value);
        /* (replacing the value of a key while walking is allowed: the size stays) */
        int rc = own == NULL ? -1 : PyDict_SetItem(d, key, own);
        Py_XDECREF(own);
        if (rc < 0)
            goto error;
    }
    return d;
error:
    Py_DECREF(d);
    return NULL;
}

static PyObject *
copy_message(PyObject *self, PyObject *unused)
{
    if (msg_type == NULL || !PyObject_TypeCheck(self, msg_type)) {
        PyErr_SetString(PyExc_TypeError, "copy_message(msg): not a registered message");
        return NULL;
    }
    PyObject *fields[F_COUNT];
    for (int f = 0; f < F_COUNT; f++) {
        if (*field(self, f) == NULL) {
            PyErr_SetString(PyExc_AttributeError, field_names[f]);
            return NULL;
        }
    }
    for (int f = 0; f < F_COUNT; f++) {
        PyObject *v = *field(self, f);
        fields[f] = f == F_LINES || f == F_NAMES ? copied(v)
                    : f == F_CACHE               ? copied_cache(v)
                                                 : Py_NewRef(v);
    }
    for (int f = 0; f < F_COUNT; f++) {
        if (fields[f] == NULL) {
            for (int k = 0; k < F_COUNT; k++)
                Py_XDECREF(fields[k]);
            return NULL;
        }
    }
    return new_message(fields);
}

static PyObject *msg_set_max_forwards(PyObject *self, PyObject *n);
static PyObject *msg_prepend_via(PyObject *self, PyObject *value);
static PyObject *msg_bytes_without_top_via(PyObject *self, PyObject *unused);
static PyObject *msg_value_at(PyObject *self, PyObject *index);
static PyObject *msg_bytes_with_via(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
static PyObject *msg_replace_top_via(PyObject *self, PyObject *value);
static int has_crlf(PyObject *text);
static PyObject *pure_set_max_forwards, *pure_prepend_via, *pure_bytes_without_top_via,
    *pure_value_at, *pure_bytes_with_via, *pure_replace_top_via;

/* The compiled methods message_type() puts on the class, and the pure forms they fall back to. */
static PyMethodDef msg_methods[] = {
    {"copy", (PyCFunction)copy_message, METH_NOARGS,
     "An independent copy that shares the immutable state (compiled form of copy_py)."},
    {"set_max_forwards", (PyCFunction)msg_set_max_forwards, METH_O,
     "Set Max-Forwards (0..255), adding the header when missing (compiled form)."},
    {"prepend_via", (PyCFunction)msg_prepend_via, METH_O,
     "Add a Via line above the top-most one (compiled form)."},
    {"bytes_without_top_via", (PyCFunction)msg_bytes_without_top_via, METH_NOARGS,
     "The bytes pop_via() then to_bytes() would give, the message left as it is (compiled "
     "form)."},
    {"value_at", (PyCFunction)msg_value_at, METH_O,
     "The raw value (unfolded, stripped) of the header line at index (compiled form)."},
    {"bytes_with_via", (PyCFunction)(void (*)(void))msg_bytes_with_via, METH_FASTCALL,
     "The bytes a copy would give after pop_via() + prepend_via(top) (when top is given) and "
     "prepend_via(ours), the message left as it is (compiled form)."},
    {"replace_top_via", (PyCFunction)msg_replace_top_via, METH_O,
     "pop_via() then prepend_via(value) (compiled form)."},
    {NULL, NULL, 0, NULL},
};
#define MSG_METHODS 7
static PyObject **msg_pure[MSG_METHODS] = {NULL, &pure_set_max_forwards, &pure_prepend_via,
                                           &pure_bytes_without_top_via, &pure_value_at,
                                           &pure_bytes_with_via, &pure_replace_top_via};

/* ---- cached values -----------------------------------------------------------------------
 * cached_value(key, getter) is a read-only descriptor for a SipMsg property whose getter
 * (the Python property's fget, its pure form) caches what it parses in msg._cache[key]: a value
 * found there is returned as it is, else getter(msg) parses it. key None stands for
 * msg.method: the request's own method, else getter(msg). msg.via, msg.cseq ... are read ~40
 * times per call, most of them cache hits, each through a Python call before. */
typedef struct {
    PyObject_HEAD
    PyObject *key;    /* str, or NULL for the method */
    PyObject *getter; /* the pure form, called on a miss */
    int in_instance;  /* key is looked up in the instance's __dict__ (instance_value) */
    int field;        /* >= 0: a state slot's value (field_value), -1 otherwise */
    PyObject *setter; /* field_value's setter (NULL: read-only) */
} CachedValue;

/* A request's Call-ID or CSeq read the first time (msg.call_id, msg.cseq: the registrar, tm
 * and the dialog read them for every request), parsed here when it has the usual shape, as the
 * pure getter would give it: one Call-ID line with a value without blanks; one CSeq line of
 * "<1-9 ASCII digits> <the request's own method>". The value is put in the cache (the getter's
 * key) and returned (a new reference); NULL without an exception: another shape, or not a
 * request, which the getter parses or refuses; NULL with one on error. */
/* A message's From or To read the first time (scripts read $fd, $fu, $tu ... for every request,
 * tm a relayed request's From, the dialog a reply's To), parsed here when its one line has a
 * shape of name_addr_fields, as the getter's parse_name_addr gives it. The value is put in the
 * cache and returned (a new reference); NULL without an exception: no such single line or
 * another shape, which the getter refuses or parses; NULL with one on error. */
static PyObject *
name_addr_ahead(PyObject *msg, PyObject *key, PyObject *cache)
{
    PyObject *keys = *field(msg, F_NAMES), *lines = *field(msg, F_LINES);
    if (keys == NULL || lines == NULL || !PyList_CheckExact(keys) || !PyList_CheckExact(lines))
        return NULL;
    int absent;
    PyObject *value = single_line_value(NULL, keys, lines, key, &absent);
    if (value == NULL)
        return NULL;
    PyObject *fields = name_addr_fields(NULL, value);
    Py_DECREF(value);
    if (fields == NULL || fields == Py_None) {
        Py_XDECREF(fields);
        return NULL;
    }
    PyObject *result = as_value(name_addr_type, fields);
    if (result != NULL && PyDict_SetItem(cache, key, result) < 0)
        Py_CLEAR(result);
    return result;
}

static PyObject *
request_value_ahead(PyObject *msg, PyObject *key, PyObject *cache)
{
    if (name_addr_type != NULL && (key_is(key, s_from) || key_is(key, s_to)))
        return name_addr_ahead(msg, key, cache);
    int is_call_id = key_is(key, s_call_id);
    if (!is_call_id && (cseq_type == NULL || !key_is(key, s_cseq) ||
                        *field(msg, F_IS_REQUEST) != Py_True))
        return NULL;
    PyObject *keys = *field(msg, F_NAMES), *lines = *field(msg, F_LINES);
    PyObject *method = *field(msg, F_METHOD);
    if (keys == NULL || lines == NULL || !PyList_CheckExact(keys) || !PyList_CheckExact(lines))
        return NULL;
    int absent;
    PyObject *value = single_line_value(NULL, keys, lines, is_call_id ? s_call_id : s_cseq,
                                        &absent);
    if (value == NULL)
        return NULL; /* (absent or several: the getter refuses it; else the error is set) */
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    int kind = PyUnicode_KIND(value);
    const void *d = PyUnicode_DATA(value);
    PyObject *result = NULL;
    if (is_call_id) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, d, i);
            if (c == ' ' || c == '\t')
                goto done;
        }
        if (n > 0)
            result = Py_NewRef(value);
    }
    else if (method != NULL && PyUnicode_CheckExact(method)) {
        Py_ssize_t sp = PyUnicode_FindChar(value, ' ', 0, n, 1);
        if (sp == -2)
            goto done;
        if (sp < 1 || sp >= 10 || n - sp - 1 != PyUnicode_GET_LENGTH(method))
            goto done;
        long number = leading_number(value, sp);
        if (number < 0)
            goto done;
        int same = PyUnicode_Tailmatch(value, method, sp + 1, n, 1);
        if (same < 0)
            goto done;
        if (same) {
            result = cseq_type->tp_alloc(cseq_type, 2);
            PyObject *num = result == NULL ? NULL : PyLong_FromLong(number);
            if (num == NULL)
                Py_CLEAR(result);
            else {
                PyTuple_SET_ITEM(result, 0, num);
                PyTuple_SET_ITEM(result, 1, Py_NewRef(method));
            }
        }
    }
done:
    Py_DECREF(value);
    if (result != NULL && PyDict_SetItem(cache, key, result) < 0)
        Py_CLEAR(result);
    return result;
}

static PyObject *
cached_get(PyObject *self, PyObject *obj, PyObject *type)
{
    CachedValue *cv = (CachedValue *)self;
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(self); /* read on the class */
    if (cv->field >= 0) {
        if (msg_type != NULL && PyObject_TypeCheck(obj, msg_type)) {
            PyObject *v = *field(obj, cv->field);
            if (v != NULL && cv->field != F_LINES)
                return Py_NewRef(v);
            if (v != NULL && PyList_CheckExact(v) && PyList_GET_SIZE(v) > 0 &&
                PyUnicode_CheckExact(PyList_GET_ITEM(v, 0))) {
                /* first_line: the start line without its CR */
                PyObject *line = PyList_GET_ITEM(v, 0);
                Py_ssize_t n = PyUnicode_GET_LENGTH(line);
                if (n == 0 || PyUnicode_READ_CHAR(line, n - 1) != '\r' ||
                    (n > 1 && PyUnicode_READ_CHAR(line, n - 2) == '\r'))
                    return PyObject_CallOneArg(cv->getter, obj);
                return PyUnicode_Substring(line, 0, n - 1);
            }
        }
    }
    else if (cv->in_instance) {
        PyObject **dictptr = _PyObject_GetDictPtr(obj);
        if (dictptr != NULL && *dictptr != NULL && PyDict_CheckExact(*dictptr)) {
            PyObject *v = PyDict_GetItemWithError(*dictptr, cv->key); /* borrowed */
            if (v != NULL)
                return Py_NewRef(v);
            if (PyErr_Occurred())
                return NULL;
        }
    }
    else if (msg_type != NULL && PyObject_TypeCheck(obj, msg_type)) {
        if (cv->key == NULL) {
            PyObject *method = *field(obj, F_METHOD);
            if (*field(obj, F_IS_REQUEST) == Py_True && method != NULL)
                return Py_NewRef(method);
        }
        else {
            PyObject *cache = *field(obj, F_CACHE);
            if (cache != NULL && PyDict_CheckExact(cache)) {
                PyObject *v = PyDict_GetItemWithError(cache, cv->key); /* borrowed */
                if (v != NULL)
                    return Py_NewRef(v);
                if (PyErr_Occurred())
                    return NULL;
                v = request_value_ahead(obj, cv->key, cache);
                if (v != NULL || PyErr_Occurred())
                    return v;
            }
        }
    }
    return PyObject_CallOneArg(cv->getter, obj);
}

static int
cached_set(PyObject *self, PyObject *obj, PyObject *value)
{
    PyObject *setter = ((CachedValue *)self)->setter;
    if (setter != NULL && value != NULL) {
        PyObject *r = PyObject_CallFunctionObjArgs(setter, obj, value, NULL);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    PyErr_SetString(PyExc_AttributeError, "read-only attribute");
    return -1;
}

static PyObject *
cached_doc(PyObject *self, void *closure)
{
    return PyObject_GetAttrString(((CachedValue *)self)->getter, "__doc__");
}

static PyGetSetDef cached_getset[] = {
    {"__doc__", cached_doc, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static int
cached_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((CachedValue *)self)->key);
    Py_VISIT(((CachedValue *)self)->getter);
    Py_VISIT(((CachedValue *)self)->setter);
    return 0;
}

static int
cached_clear(PyObject *self)
{
    Py_CLEAR(((CachedValue *)self)->key);
    Py_CLEAR(((CachedValue *)self)->getter);
    Py_CLEAR(((CachedValue *)self)->setter);
    return 0;
}

static void
cached_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    cached_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject CachedValueType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kemi_core.sip._fast.cached_value",
    .tp_basicsize = sizeof(CachedValue),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = cached_dealloc,
    .tp_traverse = cached_traverse,
    .tp_clear = cached_clear,
    .tp_descr_get = cached_get,
    .tp_descr_set = cached_set,
    .tp_getset = cached_getset,
};

static PyObject *
cached_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !(args[0] == Py_None || PyUnicode_CheckExact(args[0])) ||
        !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "cached_value(key: str | None, getter)");
        return NULL;
    }
    CachedValue *cv = PyObject_GC_New(CachedValue, &CachedValueType);
    if (cv == NULL)
        return NULL;
    cv->key = args[0] == Py_None ? NULL : Py_NewRef(args[0]);
    cv->getter = Py_NewRef(args[1]);
    cv->in_instance = 0;
    cv->field = -1;
    cv->setter = NULL;
    PyObject_GC_Track((PyObject *)cv);
    return (PyObject *)cv;
}

/* instance_value(key, getter): the same for a value cached in the instance's __dict__ (Via's
 * and NameAddr's params, split on first read): __dict__[key] when there, else getter(obj). */
static PyObject *
instance_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "instance_value(key: str, getter)");
        return NULL;
    }
    CachedValue *cv = (CachedValue *)cached_value(module, args, nargs);
    if (cv != NULL)
        cv->in_instance = 1;
    return (PyObject *)cv;
}

/* field_value(slot, getter, setter): the same for a property that reads a state slot of the
 * message (msg.ruri: "_ruri", msg.header_keys: "_names"; "_lines" stands for msg.first_line,
 * the start line without its CR): the value without a Python call, getter(msg) when the slot
 * is not set (or the start line has no CR); setter(msg, value) on assignment, None: read-only.
 * The request gate, tm and the scripts read them several times per message. */
static PyObject *
field_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int f = -1;
    if (nargs == 3 && PyUnicode_Check(args[0]) && PyCallable_Check(args[1]) &&
        (args[2] == Py_None || PyCallable_Check(args[2]))) {
        for (int k = 0; k < F_COUNT; k++)
            if (PyUnicode_CompareWithASCIIString(args[0], field_names[k]) == 0)
                f = k;
    }
    if (f < 0) {
        PyErr_SetString(PyExc_TypeError, "field_value(slot: str, getter, setter | None)");
        return NULL;
    }
    PyObject *getter_args[2] = {Py_None, args[1]};
    CachedValue *cv = (CachedValue *)cached_value(module, getter_args, 2);
    if (cv != NULL) {
        cv->field = f;
        cv->setter = args[2] == Py_None ? NULL : Py_NewRef(args[2]);
    }
    return (PyObject *)cv;
}

static PyObject *
message_type(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0]) || !PyAnySet_Check(args[1]) ||
        !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "message_type(SipMsg, list_keys: frozenset, pure: dict)");
        return NULL;
    }
    /* the pure forms the compiled methods fall back to, by name (all but copy's) */
    PyObject *pure[MSG_METHODS] = {NULL};
    for (int k = 1; k < MSG_METHODS; k++) {
        pure[k] = PyDict_GetItemString(args[2], msg_methods[k].ml_name); /* borrowed */
        if (pure[k] == NULL || !PyCallable_Check(pure[k])) {
            PyErr_Format(PyExc_TypeError, "message_type: no pure form of %s",
                         msg_methods[k].ml_name);
            return NULL;
        }
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    Py_ssize_t offsets[F_COUNT];
    for (int f = 0; f < F_COUNT; f++) {
        PyObject *d = PyObject_GetAttrString(args[0], field_names[f]);
        if (d == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return NULL;
            PyErr_Clear();
            d = Py_NewRef(Py_None); /* (refused below) */
        }
        PyMemberDef *m = Py_IS_TYPE(d, &PyMemberDescr_Type) &&
                                 PyType_IsSubtype(type, ((PyDescrObject *)d)->d_type)
                             ? ((PyMemberDescrObject *)d)->d_member
                             : NULL;
        int ok = m != NULL && m->type == T_OBJECT_EX && !(m->flags & READONLY) &&
                 m->offset >= (Py_ssize_t)sizeof(PyObject) &&
                 m->offset + (Py_ssize_t)sizeof(PyObject *) <= type->tp_basicsize;
        offsets[f] = ok ? m->offset : -1;
        Py_DECREF(d);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "message_type: %s is not an object slot",
                         field_names[f]);
            return NULL;
        }
    }
    if (type->tp_itemsize != 0) {
        PyErr_SetString(PyExc_TypeError, "message_type: a variable-size type");
        return NULL;
    }
    memcpy(field_offset, offsets, sizeof(offsets));
    PyObject *methods = PyDict_New();
    if (methods == NULL)
        return NULL;
    for (int k = 0; msg_methods[k].ml_name != NULL; k++) {
        PyObject *m = PyDescr_NewMethod(type, &msg_methods[k]);
        int rc = m == NULL ? -1 : PyDict_SetItemString(methods, msg_methods[k].ml_name, m);
        Py_XDECREF(m);
        if (rc < 0) {
            Py_DECREF(methods);
            return NULL;
        }
    }
    Py_INCREF(type);
    Py_XSETREF(msg_type, type);
    Py_INCREF(args[1]);
    Py_XSETREF(msg_list_keys, args[1]);
    for (int k = 1; k < MSG_METHODS; k++)
        Py_XSETREF(*msg_pure[k], Py_NewRef(pure[k]));
    return methods;
}


/* ---- parameters ---------------------------------------------------------------------------
 * params_trusted(text, into) (syntax.params_trusted_py): ";a=b;c" parameters (the text after
 * its first character, validated already) added to the dict into, names lower-cased, a name
 * given twice keeping its first value; returns into. Every Via's and name-addr's parameters are
 * split this way when first read (a reply's rport, a tag, a branch not first). */
static PyObject *
lower_name(PyObject *name)
{
    /* the usual lower-case ASCII name as it is; anything else as str.lower() makes it */
    if (PyUnicode_IS_ASCII(name)) {
        const Py_UCS1 *p = PyUnicode_1BYTE_DATA(name);
        Py_ssize_t n = PyUnicode_GET_LENGTH(name), i = 0;
        while (i < n && !(p[i] >= 'A' && p[i] <= 'Z'))
            i++;
        if (i == n) {
            Py_INCREF(name);
            return name;
        }
    }
    return PyObject_CallMethod(name, "lower", NULL);
}

static PyObject *
params_trusted(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "params_trusted(text: str, into: dict)");
        return NULL;
    }
    PyObject *text = args[0], *into = args[1];
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_ssize_t i = n > 0 ? 1 : 0;
    for (;;) {
        Py_ssize_t end = PyUnicode_FindChar(text, ';', i, n, 1);
        if (end == -2)
            return NULL;
        if (end < 0)
            end = n;
        Py_ssize_t eq = PyUnicode_FindChar(text, '=', i, end, 1);
        if (eq == -2)
            return NULL;
        PyObject *raw = PyUnicode_Substring(text, i, eq >= 0 ? eq : end);
        if (raw == NULL)
            return NULL;
        PyObject *name = lower_name(raw);
        Py_DECREF(raw);
        if (name == NULL)
            return NULL;
        PyObject *value = eq >= 0 ? PyUnicode_Substring(text, eq + 1, end) : Py_NewRef(Py_None);
        if (value == NULL || PyDict_SetDefault(into, name, value) == NULL) {
            Py_DECREF(name);
            Py_XDECREF(value);
            return NULL;
        }
        Py_DECREF(name);
        Py_DECREF(value);
        if (end >= n)
            break;
        i = end + 1;
    }
    return Py_NewRef(into);
}

/* ---- Digest credentials ------------------------------------------------------------------
 * digest_fields(value) (kemi_auth.credentials.parse_credentials' pure path stands for it) reads
 * an Authorization / Proxy-Authorization value of the usual shape in one call: printable ASCII
 * without a backslash, the "Digest" scheme, name=value parameters (quoted-string or token)
 * separated by commas, every parameter within its length limit, at most DIGEST_MAX_PARAMS,
 * username/realm/nonce/uri/response not empty, no userhash. It returns (username, realm,
 * nonce, uri, response, algorithm, cnonce, opaque, qop, nc, value) (the first of a repeated
 * name, "" when absent; the items of a Credentials), or None for anything else: the Python
 * parser then decides (and words the error, e.g. overlong credentials that get 400). It never
 * raises for a str. */
enum { D_USERNAME, D_REALM, D_NONCE, D_URI, D_RESPONSE, D_ALGORITHM, D_CNONCE, D_OPAQUE, D_QOP,
       D_NC, D_USERHASH, D_COUNT };
static const struct {
    const char *name;
    Py_ssize_t len, limit;
} digest_names[D_COUNT] = {
    {"username", 8, 256}, {"realm", 5, 256}, {"nonce", 5, 256}, {"uri", 3, 2048},
    {"response", 8, 128}, {"algorithm", 9, 32}, {"cnonce", 6, 256}, {"opaque", 6, 256},
    {"qop", 3, 32}, {"nc", 2, 8}, {"userhash", 8, 8},
};
#define DIGEST_MAX_VALUE 4096
#define DIGEST_MAX_PARAMS 24 /* with no more parameters than this, none is refused for count */
#define DIGEST_OTHER_LIMIT 256

/* The parameter-name characters of credentials.py's _PARAM: [!%'*+.0-9A-Z_`a-z~-] */
static inline int
digest_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '!' || c == '%' || c == '\'' || c == '*' || c == '+' || c == '.' || c == '_' ||
           c == '`' || c == '~' || c == '-';
}

/* Which known name [p, p+n) is (ASCII case-insensitive), D_COUNT when none. */
static int
digest_name(const char *p, Py_ssize_t n)
{
    for (int k = 0; k < D_COUNT; k++) {
        if (digest_names[k].len != n)
            continue;
        Py_ssize_t i = 0;
        while (i < n && (p[i] | 0x20) == digest_names[k].name[i])
            i++;
        if (i == n)
            return k;
    }
    return D_COUNT;
}

static PyObject *
digest_fields(PyObject *module, PyObject *value)
{
    if (!PyUnicode_Check(value) || !PyUnicode_IS_ASCII(value) ||
        PyUnicode_GET_LENGTH(value) > DIGEST_MAX_VALUE)
        Py_RETURN_NONE;
    const char *d = (const char *)PyUnicode_1BYTE_DATA(value);
    Py_ssize_t s = 0, e = PyUnicode_GET_LENGTH(value);
    for (Py_ssize_t i = 0; i < e; i++) {
        unsigned char c = (unsigned char)d[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f || c == '\\')
            Py_RETURN_NONE; /* controls (str.strip and \s see more than space and tab), escapes */
    }
    while (s < e && (d[s] == ' ' || d[s] == '\t'))
        s++;
    while (e > s && (d[e - 1] == ' ' || d[e - 1] == '\t'))
        e--;
    static const char scheme[] = "digest";
    Py_ssize_t i = 0;
    while (s + i < e && i < 6 && (d[s + i] | 0x20) == scheme[i])
        i++;
    if (i != 6 || s + 6 >= e || d[s + 6] != ' ')
        Py_RETURN_NONE; /* another scheme, or no parameters at all */
    Py_ssize_t pos = s + 7;
    while (e > pos && (d[e - 1] == ' ' || d[e - 1] == '\t' || d[e - 1] == ','))
        e--;
    Py_ssize_t at[D_COUNT][2];
    for (int k = 0; k < D_COUNT; k++)
        at[k][0] = -1;
    int count = 0;
    while (pos < e) {
        while (d[pos] == ' ' || d[pos] == '\t' || d[pos] == ',')
            pos++; /* (e is not one of them: the loop stops before it) */
        Py_ssize_t ns = pos;
        while (pos < e && digest_name_char((unsigned char)d[pos]))
            pos++;
        Py_ssize_t ne = pos;
        while (pos < e && (d[pos] == ' ' || d[pos] == '\t'))
            pos++;
        if (ne == ns || pos >= e || d[pos] != '=')
            Py_RETURN_NONE;
        pos++;
        while (pos < e && (d[pos] == ' ' || d[pos] == '\t'))
            pos++;
        Py_ssize_t vs, ve;
        if (pos < e && d[pos] == '"') {
            vs = pos + 1;
            const char *q = memchr(d + vs, '"', (size_t)(e - vs));
            if (q == NULL)
                Py_RETURN_NONE;
            ve = q - d;
            pos = ve + 1;
        }
        else {
            vs = pos;
            while (pos < e && d[pos] != '"' && d[pos] != ',' && d[pos] != ' ' && d[pos] != '\t')
                pos++;
            ve = pos;
        }
        while (pos < e && (d[pos] == ' ' || d[pos] == '\t'))
            pos++;
        if (pos < e) {
            if (d[pos] != ',')
                Py_RETURN_NONE;
            pos++;
        }
        if (++count > DIGEST_MAX_PARAMS)
            Py_RETURN_NONE;
        int k = digest_name(d + ns, ne - ns);
        if (ve - vs > (k < D_COUNT ? digest_names[k].limit : DIGEST_OTHER_LIMIT))
            Py_RETURN_NONE; /* overlong: the Python parser raises */
        if (k < D_COUNT && at[k][0] < 0) {
            at[k][0] = vs;
            at[k][1] = ve;
        }
    }
    for (int k = D_USERNAME; k <= D_RESPONSE; k++) {
        if (at[k][0] < 0 || at[k][1] == at[k][0])
            Py_RETURN_NONE; /* missing: the Python parser says which */
    }
    if (at[D_USERHASH][0] >= 0)
        Py_RETURN_NONE;
    PyObject *out = PyTuple_New(D_USERHASH + 1);
    if (out == NULL)
        return NULL;
    Py_INCREF(value);
    PyTuple_SET_ITEM(out, D_USERHASH, value);
    for (int k = 0; k < D_USERHASH; k++) {
        PyObject *v;
        if (at[k][0] < 0 || at[k][1] == at[k][0]) {
            v = empty_key;
            Py_INCREF(v);
        }
        else if ((v = PyUnicode_Substring(value, at[k][0], at[k][1])) == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, k, v);
    }
    return out;
}

/* ---- Digest nonces -----------------------------------------------------------------------
 * kemi_auth's nonce of the plain shape (not bound to the message): base64url without padding
 * of head + MAC, head being version(1) flags(1) issued(4, big-endian) expires(4) id(8) and
 * the MAC keyed BLAKE2s-128 of head under the nonce key (kemi_auth.nonce's layout; its Python
 * path is the reference these are tested against).
 * nonce_seal(head, key) -> the nonce text for an 18-byte head.
 * nonce_open(text, key) -> for 46 base64url characters: (flags, issued, expires, id, True)
 * when the MAC is right, the version 1 and no auth_checks bit set, else False (not ours);
 * None for any other text (the Python path reads it). */
#define NONCE_HEAD 18
#define NONCE_MAC 16
#define NONCE_RAW (NONCE_HEAD + NONCE_MAC)
#define NONCE_TEXT 46 /* base64 of 34 bytes without its "==" */

/* The MAC is hashlib's keyed BLAKE2s (OpenSSL's or CPython's own, the same function the
 * Python path calls): no hash code of our own. Looked up on first use. */
static PyObject *b2s_new;     /* hashlib.blake2s */
static PyObject *b2s_kwnames; /* ("key", "digest_size") */
static PyObject *b2s_size;    /* NONCE_MAC */
static PyObject *s_digest;

/* The keyed BLAKE2s-128 of data under key into out: 0, or -1 with an exception set. */
static int
nonce_mac(PyObject *key, const uint8_t *data, Py_ssize_t n, uint8_t out[NONCE_MAC])
{
    if (b2s_new == NULL) {
        PyObject *hashlib = PyImport_ImportModule("hashlib");
        if (hashlib == NULL)
            return -1;
        b2s_new = PyObject_GetAttrString(hashlib, "blake2s");
        Py_DECREF(hashlib);
        if (b2s_new == NULL)
            return -1;
    }
    PyObject *data_obj = PyBytes_FromStringAndSize((const char *)data, n);
    if (data_obj == NULL)
        return -1;
    PyObject *args[3] = {data_obj, key, b2s_size};
    PyObject *hash = PyObject_Vectorcall(b2s_new, args, 1, b2s_kwnames);
    Py_DECREF(data_obj);
    if (hash == NULL)
        return -1;
    PyObject *digest = PyObject_CallMethodNoArgs(hash, s_digest);
    Py_DECREF(hash);
    if (digest == NULL)
        return -1;
    if (!PyBytes_Check(digest) || PyBytes_GET_SIZE(digest) != NONCE_MAC) {
        Py_DECREF(digest);
        PyErr_SetString(PyExc_ValueError, "blake2s gave a digest of another size");
        return -1;
    }
    memcpy(out, PyBytes_AS_STRING(digest), NONCE_MAC);
    Py_DECREF(digest);
    return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The nonce key is bytes of 1..32 bytes: 0, else -1 with a ValueError set. */
static int
nonce_key(PyObject *key)
{
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) < 1 || PyBytes_GET_SIZE(key) > 32) {
        PyErr_SetString(PyExc_ValueError, "the nonce key: bytes of 1 to 32");
        return -1;
    }
    return 0;
}

/* The nonce text (NONCE_TEXT base64url characters) of an 18-byte head sealed under key, into
 * out: 0, or -1 with an exception set. */
static int
nonce_text(PyObject *key, const uint8_t *head, Py_UCS1 *out)
{
    uint8_t raw[NONCE_RAW + 2]; /* (two zero bytes: the last group reads past the end) */
    memcpy(raw, head, NONCE_HEAD);
    if (nonce_mac(key, raw, NONCE_HEAD, raw + NONCE_HEAD) < 0)
        return -1;
    raw[NONCE_RAW] = raw[NONCE_RAW + 1] = 0;
    for (int i = 0, j = 0; j < NONCE_TEXT; i += 3) {
        uint32_t g = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 18; k >= 0 && j < NONCE_TEXT; k -= 6)
            out[j++] = (Py_UCS1)b64url[(g >> k) & 63];
    }
    return 0;
}

static PyObject *
nonce_seal(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0]) || PyBytes_GET_SIZE(args[0]) != NONCE_HEAD) {
        PyErr_SetString(PyExc_TypeError, "nonce_seal(head, key): head is 18 bytes");
        return NULL;
    }
    if (nonce_key(args[1]) < 0)
        return NULL;
    PyObject *text = PyUnicode_New(NONCE_TEXT, 127);
    if (text == NULL)
        return NULL;
    if (nonce_text(args[1], (const uint8_t *)PyBytes_AS_STRING(args[0]),
                   PyUnicode_1BYTE_DATA(text)) < 0) {
        Py_DECREF(text);
        return NULL;
    }
    return text;
}

/* The 6-bit value of a base64url character, -1 for any other. */
static inline int
b64url_value(Py_UCS1 c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Opens a nonce text of the plain shape into raw (NONCE_RAW bytes): 1 when ours (the MAC
 * right, version 1, no auth_checks bit), 0 when not ours, 2 when not the plain shape (the
 * Python path reads it), -1 with an exception set. */
static int
nonce_unseal(PyObject *text, PyObject *key, uint8_t raw[NONCE_RAW + 2])
{
    if (!PyUnicode_Check(text) || !PyUnicode_IS_ASCII(text) ||
        PyUnicode_GET_LENGTH(text) != NONCE_TEXT)
        return 2;
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(text);
    int j = 0;
    for (int i = 0; i < NONCE_TEXT; i += 4) {
        uint32_t g = 0;
        int chars = NONCE_TEXT - i < 4 ? NONCE_TEXT - i : 4;
        for (int k = 0; k < 4; k++) {
            int val = k < chars ? b64url_value(p[i + k]) : 0;
            if (val < 0)
                return 2;
            g = g << 6 | (uint32_t)val;
        }
        raw[j] = (uint8_t)(g >> 16);
        raw[j + 1] = (uint8_t)(g >> 8);
        raw[j + 2] = (uint8_t)g;
        j += 3;
    }
    /* (the last 2 characters give 1 byte: the rest of their bits is not part of the nonce,
     * as binascii.a2b_base64 ignores them too) */
    uint8_t want[NONCE_MAC];
    if (nonce_mac(key, raw, NONCE_HEAD, want) < 0)
        return -1;
    uint8_t diff = 0;
    for (int i = 0; i < NONCE_MAC; i++)
        diff |= want[i] ^ raw[NONCE_HEAD + i];
    return diff == 0 && raw[0] == 1 && (raw[1] & 0x0F) == 0;
}

static inline unsigned long
nonce_u32(const uint8_t *b)
{
    return (unsigned long)b[0] << 24 | (unsigned long)b[1] << 16 | (unsigned long)b[2] << 8 | b[3];
}

static PyObject *
nonce_open(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "nonce_open(text, key)");
        return NULL;
    }
    if (nonce_key(args[1]) < 0)
        return NULL;
    uint8_t raw[NONCE_RAW + 2];
    int ours = nonce_unseal(args[0], args[1], raw);
    if (ours < 0)
        return NULL;
    if (ours == 2)
        Py_RETURN_NONE;
    if (ours == 0)
        Py_RETURN_FALSE;
    return Py_BuildValue("(ikky#O)", (int)raw[1], nonce_u32(raw + 2), nonce_u32(raw + 6),
                         (const char *)raw + 10, (Py_ssize_t)8, Py_True);
}

/* ---- Digest verify -----------------------------------------------------------------------
 * kemi_auth's authenticate for the usual shape in two calls around the HA1 lookup (its
 * Python path stays the reference; the tests run both on the same inputs):
 * digest_open(value, realm, now, conf), conf = (nonce key, max_drift, algorithm name, the
 * Credentials class, ...: the caller's) -> a Credentials when value is the usual shape (digest_fields), for this
 * realm and algorithm (its name as such, or none for MD5), qop absent or "auth"
 * with a cnonce and an nc of 8 hex digits, and its nonce ours (nonce_open), without replay
 * flags (nonce_count, one_time_nonce) and good at now; else None: the Python path decides
 * (another realm or algorithm, a stale, forged or bound nonce, replay rules, errors).
 * digest_response(cred, ha1, method, hash) -> whether cred's response is
 * H(ha1 ":" nonce [":" nc ":" cnonce ":" qop] ":" H(method ":" uri)), in hex, compared with
 * the received one case-insensitively in constant time (UTF-8, surrogateescape, as
 * kemi_auth.digest.response_matches; qop=auth-int is its shape alone: ValueError).
 * digest_ha1(hash, username, realm, password) -> H(username ":" realm ":" password) in hex.
 * hash is the algorithm's function in kemi_auth.digest.ALGORITHMS (hashlib.md5 ...): the
 * hashes are the ones the Python path computes, called from here. */
#define DIGEST_NC_FLAGS 0x30 /* kemi_auth.nonce's NC | OTN */
#define DIGEST_HEX_MAX 128   /* SHA-512 */

/* hash(data) as lower-case hex into out (DIGEST_HEX_MAX + 1): its length, or -1. */
static Py_ssize_t
digest_hex(PyObject *hash, PyObject *data, char *out)
{
    PyObject *h = PyObject_CallOneArg(hash, data);
    if (h == NULL)
        return -1;
    PyObject *digest = PyObject_CallMethodNoArgs(h, s_digest);
    Py_DECREF(h);
    if (digest == NULL)
        return -1;
    Py_ssize_t n = PyBytes_Check(digest) ? PyBytes_GET_SIZE(digest) : -1;
    if (n < 0 || 2 * n > DIGEST_HEX_MAX) {
        Py_DECREF(digest);
        PyErr_SetString(PyExc_ValueError, "digest: a hash of an unexpected size");
        return -1;
    }
    static const char hex[] = "0123456789abcdef";
    const uint8_t *b = (const uint8_t *)PyBytes_AS_STRING(digest);
    for (Py_ssize_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    Py_DECREF(digest);
    return 2 * n;
}

/* The bytes of each str of parts (UTF-8, surrogateescape) joined by ':', then tail (ASCII,
 * already bytes) after one more ':' when tail is not NULL: a new bytes object or NULL. */
static PyObject *
digest_joined(PyObject *const *parts, int count, const char *tail, Py_ssize_t tail_len)
{
    PyObject *enc[8];
    const char *data[8];
    Py_ssize_t len[8], total = tail != NULL ? tail_len + 1 : 0;
    int made = 0;
    PyObject *out = NULL;
    for (int i = 0; i < count; i++) {
        PyObject *s = parts[i];
        if (!PyUnicode_Check(s)) {
            PyErr_SetString(PyExc_TypeError, "digest: the parts are str");
            goto done;
        }
        if (PyUnicode_IS_ASCII(s)) {
            data[i] = (const char *)PyUnicode_1BYTE_DATA(s);
            len[i] = PyUnicode_GET_LENGTH(s);
        }
        else {
            PyObject *b = PyUnicode_AsEncodedString(s, "utf-8", "surrogateescape");
            if (b == NULL)
                goto done;
            enc[made++] = b;
            data[i] = PyBytes_AS_STRING(b);
            len[i] = PyBytes_GET_SIZE(b);
        }
        total += len[i] + (i > 0);
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out != NULL) {
        char *o = PyBytes_AS_STRING(out);
        for (int i = 0; i < count; i++) {
            if (i > 0)
                *o++ = ':';
            memcpy(o, data[i], (size_t)len[i]);
            o += len[i];
        }
        if (tail != NULL) {
            *o++ = ':';
            memcpy(o, tail, (size_t)tail_len);
        }
    }
done:
    while (made > 0)
        Py_DECREF(enc[--made]);
    return out;
}

static inline int
is_hex_digit(Py_UCS1 c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Whether the str s, ASCII-lower-cased, is the lower-case ASCII text t. */
static int
ascii_lower_is(PyObject *s, const char *t)
{
    Py_ssize_t n = (Py_ssize_t)strlen(t);
    if (!PyUnicode_IS_ASCII(s) || PyUnicode_GET_LENGTH(s) != n)
        return 0;
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++)
        if ((p[i] >= 'A' && p[i] <= 'Z' ? p[i] | 0x20 : p[i]) != (Py_UCS1)t[i])
            return 0;
    return 1;
}

/* Whether the str s is exactly the ASCII text t. */
static inline int
str_is(PyObject *s, const char *t)
{
    return PyUnicode_CompareWithASCIIString(s, t) == 0;
}

static PyObject *
digest_open(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyUnicode_Check(args[1]) || !PyTuple_Check(args[3]) ||
        PyTuple_GET_SIZE(args[3]) < 4) {
        PyErr_SetString(PyExc_TypeError, "digest_open(value, realm, now, (key, max_drift, "
                                         "algorithm, Credentials))");
        return NULL;
    }
    PyObject *key = PyTuple_GET_ITEM(args[3], 0), *algorithm = PyTuple_GET_ITEM(args[3], 2);
    PyObject *cls = PyTuple_GET_ITEM(args[3], 3);
    if (nonce_key(key) < 0)
        return NULL;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type) ||
        !PyUnicode_Check(algorithm)) {
        PyErr_SetString(PyExc_TypeError, "digest_open: conf's Credentials is a tuple class");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[2]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    double drift = PyFloat_AsDouble(PyTuple_GET_ITEM(args[3], 1));
    if (drift == -1.0 && PyErr_Occurred())
        return NULL;
    PyObject *fields = digest_fields(module, args[0]);
    if (fields == NULL || fields == Py_None)
        return fields;
    PyObject *result = Py_None;
    PyObject *algo = PyTuple_GET_ITEM(fields, D_ALGORITHM);
    PyObject *qop = PyTuple_GET_ITEM(fields, D_QOP);
    int rc = PyUnicode_Compare(PyTuple_GET_ITEM(fields, D_REALM), args[1]);
    if (rc != 0)
        goto decline; /* (a str against a str: no error) another realm */
    if (PyUnicode_Compare(algo, algorithm) != 0 &&
        !(PyUnicode_GET_LENGTH(algo) == 0 && str_is(algorithm, "MD5")))
        goto decline; /* another algorithm, or another spelling of it (str against str) */
    if (PyUnicode_GET_LENGTH(qop) != 0) {
        PyObject *nc = PyTuple_GET_ITEM(fields, D_NC);
        if (!str_is(qop, "auth") || PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(fields, D_CNONCE)) == 0
            || PyUnicode_GET_LENGTH(nc) != 8)
            goto decline;
        const Py_UCS1 *p = PyUnicode_1BYTE_DATA(nc); /* (ASCII: digest_fields reads no other) */
        for (int i = 0; i < 8; i++)
            if (!is_hex_digit(p[i]))
                goto decline;
    }
    uint8_t raw[NONCE_RAW + 2];
    int ours = nonce_unseal(PyTuple_GET_ITEM(fields, D_NONCE), key, raw);
    if (ours < 0) {
        Py_DECREF(fields);
        return NULL;
    }
    if (ours != 1 || raw[1] & DIGEST_NC_FLAGS)
        goto decline;
    double issued = (double)nonce_u32(raw + 2), expires = (double)nonce_u32(raw + 6);
    if (now > expires || issued > now + drift)
        goto decline; /* stale: the Python path sees whether the digest was right */
    PyObject *one = PyTuple_Pack(1, fields);
    Py_DECREF(fields);
    if (one == NULL)
        return NULL;
    result = PyTuple_Type.tp_new((PyTypeObject *)cls, one, NULL);
    Py_DECREF(one);
    return result;
decline:
    Py_DECREF(fields);
    Py_RETURN_NONE;
}

static PyObject *
digest_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) < D_NC + 1) {
        PyErr_SetString(PyExc_TypeError, "digest_response(cred, ha1, method, hash)");
        return NULL;
    }
    PyObject *cred = args[0], *ha1 = args[1], *method = args[2], *hash = args[3];
    PyObject *qop = PyTuple_GET_ITEM(cred, D_QOP), *received = PyTuple_GET_ITEM(cred, D_RESPONSE);
    if (!PyUnicode_Check(qop) || !PyUnicode_Check(received)) {
        PyErr_SetString(PyExc_TypeError, "digest_response: a Credentials of str");
        return NULL;
    }
    int has_qop = PyUnicode_GET_LENGTH(qop) != 0;
    if (has_qop && ascii_lower_is(qop, "auth-int")) {
        PyErr_SetString(PyExc_ValueError, "digest_response: qop=auth-int is response_matches'");
        return NULL;
    }
    char ha2[DIGEST_HEX_MAX + 1], want[DIGEST_HEX_MAX + 1];
    PyObject *a2_parts[2] = {method, PyTuple_GET_ITEM(cred, D_URI)};
    PyObject *data = digest_joined(a2_parts, 2, NULL, 0);
    if (data == NULL)
        return NULL;
    Py_ssize_t ha2_len = digest_hex(hash, data, ha2);
    Py_DECREF(data);
    if (ha2_len < 0)
        return NULL;
    PyObject *parts[5] = {ha1, PyTuple_GET_ITEM(cred, D_NONCE), PyTuple_GET_ITEM(cred, D_NC),
                          PyTuple_GET_ITEM(cred, D_CNONCE), qop};
    data = digest_joined(parts, has_qop ? 5 : 2, ha2, ha2_len);
    if (data == NULL)
        return NULL;
    Py_ssize_t n = digest_hex(hash, data, want);
    Py_DECREF(data);
    if (n < 0)
        return NULL;
    /* (a non-ASCII or other-length response cannot be these hex digits) */
    if (!PyUnicode_IS_ASCII(received) || PyUnicode_GET_LENGTH(received) != n)
        Py_RETURN_FALSE;
    const Py_UCS1 *r = PyUnicode_1BYTE_DATA(received);
    unsigned diff = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS1 c = r[i];
        diff |= (unsigned)((c >= 'A' && c <= 'Z' ? c | 0x20 : c) ^ (Py_UCS1)want[i]);
    }
    return PyBool_FromLong(diff == 0);
}

static PyObject *
digest_ha1(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "digest_ha1(hash, username, realm, password)");
        return NULL;
    }
    char hex[DIGEST_HEX_MAX + 1];
    PyObject *data = digest_joined(args + 1, 3, NULL, 0);
    if (data == NULL)
        return NULL;
    Py_ssize_t n = digest_hex(args[0], data, hex);
    Py_DECREF(data);
    return n < 0 ? NULL : PyUnicode_FromStringAndSize(hex, n);
}

/* ---- a compiled function bound to its constants ------------------------------------------
 * Each compiled form below is a PyMethodDef bound (as self) to what its Python side hands over
 * once: its pure form, or a tuple of constants with the pure form among them. bind_compiled
 * checks that shape once, so the calls need not: ``kinds`` has a letter per item of the tuple
 * (c callable, n callable or None, d exact dict, m any dict, b bool, i exact int, t type,
 * . anything), or is NULL when consts is the pure callable alone; ``usage`` is the TypeError's
 * text. Then it interns the names the calls read (once; kept for the process). */
typedef struct { PyObject **at; const char *text; } InternedName;

static int
intern_names(const InternedName *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (*names[i].at == NULL
                && (*names[i].at = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return 0;
}

static int
consts_fit(PyObject *consts, const char *kinds)
{
    if (kinds == NULL)
        return PyCallable_Check(consts);
    Py_ssize_t n = (Py_ssize_t)strlen(kinds);
    if (!PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != n)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(consts, i);
        int fit;
        switch (kinds[i]) {
        case 'c': fit = PyCallable_Check(item); break;
        case 'n': fit = item == Py_None || PyCallable_Check(item); break;
        case 'd': fit = PyDict_CheckExact(item); break;
        case 'm': fit = PyDict_Check(item); break;
        case 'b': fit = PyBool_Check(item); break;
        case 'i': fit = PyLong_CheckExact(item); break;
        case 't': fit = PyType_Check(item); break;
        default: fit = 1;
        }
        if (!fit)
            return 0;
    }
    return 1;
}

static PyObject *
bind_compiled(PyMethodDef *def, PyObject *consts, const char *kinds, const char *usage,
              const InternedName *names, size_t n_names)
{
    if (!consts_fit(consts, kinds)) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    if (intern_names(names, n_names) < 0)
        return NULL;
    return PyCFunction_NewEx(def, consts, NULL);
}

/* ---- a whole reply -------------------------------------------------------------------------
 * reply_builder(pure) returns reply.build_reply compiled (pure: build_reply_py): the usual
 * reply (no body, no Content-Type; headers, if any, as (str, str) pairs without CR or LF; a
 * valid code and reason; the request's To parsed; no Timestamp to copy into a 100) made here
 * in one pass, the status line kept per code for the last reason given with it; anything else
 * (errors included) by pure. tm's 100 and every stateless reply (sl_send_reply, registrar's
 * 200 with its Contact list) are made this way. */
static PyObject *reply_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
static PyObject *join_message(PyObject *lines, PyObject *body, Py_ssize_t at, Py_ssize_t drop,
                              PyObject *insert);
static PyObject *status_reasons[600], *status_lines[600]; /* strong; by status - 100 */
/* (stateless replies' section) str objects and ASCII texts joined, without a format's parse */
typedef struct {
    PyObject *str;     /* an exact str, or NULL: */
    const char *ascii; /* this ASCII text */
} Piece;
static PyObject *join_pieces(const Piece *pieces, int n);
static PyObject *s_timestamp, *s_content_length_0, *s_top_via_kw;

static int
has_crlf_str(PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    return PyUnicode_FindChar(text, '\r', 0, n, 1) != -1 ||
           PyUnicode_FindChar(text, '\n', 0, n, 1) != -1;
}

/* "SIP/2.0 <status> <reason>\r" (borrowed from the cache); NULL with no error: not usual. */
static PyObject *
status_line(long status, PyObject *reason)
{
    PyObject **cached = &status_lines[status - 100];
    PyObject *known = status_reasons[status - 100];
    if (known != NULL && (known == reason || PyUnicode_Compare(known, reason) == 0))
        return *cached;
    if (has_crlf_str(reason))
        return NULL;
    PyObject *line = PyUnicode_FromFormat("SIP/2.0 %ld %U\r", status, reason);
    if (line == NULL)
        return NULL;
    Py_XSETREF(status_reasons[status - 100], Py_NewRef(reason));
    Py_XSETREF(*cached, line);
    return line;
}

/* Whether headers (a list or tuple) are all (str, str) pairs without CR or LF. */
static int
plain_headers(PyObject *headers)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    PyObject **items = PySequence_Fast_ITEMS(headers);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = items[i];
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            return 0;
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(value) || has_crlf_str(name) ||
            has_crlf_str(value))
            return 0;
    }
    return 1;
}

static PyObject *
build_reply(PyObject *pure, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const kw[8] = {"req", "status", "reason", "to_tag", "headers", "body",
                                      "content_type", "top_via"};
    PyObject *v[8] = {NULL, NULL, NULL, Py_None, NULL, NULL, Py_None, Py_None};
    int usual = nargs >= 3 && nargs <= 7 && msg_type != NULL && name_addr_type != NULL;
    for (Py_ssize_t k = 0; usual && k < nargs; k++)
        v[k] = args[k];
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; usual && k < nkw; k++) {
        int at = -1;
        for (int j = 3; j < 8; j++)
            if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), kw[j]) == 0)
                at = j;
        usual = at >= nargs;
        if (usual)
            v[at] = args[nargs + k];
    }
    PyObject *req = v[0], *reason = v[2], *tag = v[3];
    long status = usual && PyLong_CheckExact(v[1]) ? PyLong_AsLong(v[1]) : 0;
    if (status == -1 && PyErr_Occurred())
        PyErr_Clear(); /* (pure says what is wrong) */
    usual = usual && status >= 100 && status <= 699 && PyObject_TypeCheck(req, msg_type) &&
            *field(req, F_IS_REQUEST) == Py_True && PyUnicode_CheckExact(reason) &&
            (tag == Py_None || PyUnicode_CheckExact(tag)) &&
            (v[4] == NULL ||
             ((PyList_CheckExact(v[4]) || PyTuple_CheckExact(v[4])) && plain_headers(v[4]))) &&
            (v[5] == NULL || (PyBytes_CheckExact(v[5]) && PyBytes_GET_SIZE(v[5]) == 0)) &&
            v[6] == Py_None &&
            (v[7] == Py_None || (PyUnicode_CheckExact(v[7]) && !has_crlf_str(v[7])));
    PyObject *keys = usual ? *field(req, F_NAMES) : NULL;
    PyObject *lines = usual ? *field(req, F_LINES) : NULL;
    PyObject *cache = usual ? *field(req, F_CACHE) : NULL;
    if (keys == NULL || lines == NULL || cache == NULL || !PyList_CheckExact(keys) ||
        !PyList_CheckExact(lines) || !PyDict_CheckExact(cache))
        return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    if (status == 100) {
        int stamped = PySequence_Contains(keys, s_timestamp);
        if (stamped != 0)
            return stamped < 0 ? NULL : PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    }
    PyObject *to_tag = Py_None;
    if (tag != Py_None && PyUnicode_GET_LENGTH(tag) > 0 && status != 100) {
        PyObject *to = PyDict_GetItemWithError(cache, s_to); /* borrowed */
        if (to == NULL && PyErr_Occurred())
            return NULL;
        if (to == NULL || !Py_IS_TYPE(to, name_addr_type) || PyTuple_GET_SIZE(to) != 6 ||
            has_crlf_str(tag))
            return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
        if (PyTuple_GET_ITEM(to, 4) == Py_None)
            to_tag = tag;
    }
    PyObject *first = status_line(status, reason);
    if (first == NULL)
        return PyErr_Occurred() ? NULL : PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    PyObject *rl_args[3] = {keys, lines, to_tag};
    PyObject *copied_lines = reply_lines(NULL, rl_args, 3);
    if (copied_lines == NULL)
        return NULL;
    if (v[7] != Py_None) {
        /* the top Via's value as the reply carries it (its Vias come first); a joined line
           (several values) is pure's */
        int has_via = PySequence_Contains(keys, s_via);
        PyObject *line = has_via > 0 && PyList_GET_SIZE(copied_lines) > 0
                             ? PyList_GET_ITEM(copied_lines, 0)
                             : NULL; /* borrowed */
        Py_ssize_t colon = line == NULL || !PyUnicode_CheckExact(line)
                               ? -1
                               : PyUnicode_FindChar(line, ':', 0, PyUnicode_GET_LENGTH(line), 1);
        Py_ssize_t comma = colon < 0 ? -1
                                     : PyUnicode_FindChar(line, ',', 0, PyUnicode_GET_LENGTH(line), 1);
        PyObject *name = colon < 0 || comma != -1 ? NULL : PyUnicode_Substring(line, 0, colon);
        if (name == NULL) {
            Py_DECREF(copied_lines);
            if (has_via < 0 || colon == -2 || comma == -2 || PyErr_Occurred())
                return NULL;
            return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
        }
        Piece via_line[4] = {{name, NULL}, {NULL, ": "}, {v[7], NULL}, {NULL, "\r"}};
        PyObject *stamped = join_pieces(via_line, 4);
        Py_DECREF(name);
        if (stamped == NULL) {
            Py_DECREF(copied_lines);
            return NULL;
        }
        PyList_SET_ITEM(copied_lines, 0, stamped); /* (takes stamped's reference) */
        Py_DECREF(line);                           /* (and the list's to the old line goes) */
    }
    PyObject *out = NULL;
    Py_ssize_t nheaders = v[4] == NULL ? 0 : Py_SIZE(v[4]);
    int added = 0;
    for (Py_ssize_t i = 0; i < nheaders; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(v[4], i);
        Piece header[4] = {{PyTuple_GET_ITEM(pair, 0), NULL}, {NULL, ": "},
                           {PyTuple_GET_ITEM(pair, 1), NULL}, {NULL, "\r"}};
        PyObject *line = join_pieces(header, 4);
        added = line != NULL && PyList_Append(copied_lines, line) == 0;
        Py_XDECREF(line);
        if (!added)
            break;
    }
    if ((nheaders == 0 || added) && PyList_Insert(copied_lines, 0, first) == 0 &&
        PyList_Append(copied_lines, s_content_length_0) == 0) {
        PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
        if (empty != NULL)
            out = join_message(copied_lines, empty, 0, 0, empty_tuple);
        Py_XDECREF(empty);
    }
    Py_DECREF(copied_lines);
    return out;
}

static PyMethodDef build_reply_def = {
    "build_reply", (PyCFunction)(void (*)(void))build_reply, METH_FASTCALL | METH_KEYWORDS,
    "build_reply(req, status, reason, to_tag=None, headers=(), body=b'', content_type=None, *, "
    "top_via=None): "
    "the reply's bytes (compiled form of build_reply_py)."};

static PyObject *
reply_builder(PyObject *module, PyObject *pure)
{
    return bind_compiled(&build_reply_def, pure, NULL, "reply_builder(pure)", NULL, 0);
}

/* ---- forwarding --------------------------------------------------------------------------
 * via_received(pure) returns forwarding.via.received_via compiled (pure: received_via_py, its
 * pure form): received_via(ctx, msg) is the top Via of msg with ;received and ;rport= where
 * Kamailio writes them (sip.via_stamp.forwarded_via), or None when it needs neither. Done here
 * for the usual request (its Via parsed ahead, no ;received of its own, a bare ;rport or none,
 * a host without brackets, no force_rport): ;received=<source IP> before the first parameter
 * when the host is not that address or the Via has ;rport (filled in place), else None;
 * pure(ctx, msg) does the rest. tm and the stateless
 * forward read it for every request they pass on. */
static PyObject *s_rcv, *s_src_ip, *s_src_port, *s_force_rport, *s_received, *s_rport;

/* The next sep-separated part of s[*pos:n]: its bounds [*start, *end) and, stripped as
 * str.strip() strips ASCII text (\t-\r, \x1c-\x1f, ' '), [*a, *b); *pos moves past it. 0 when
 * no part is left (a text of n characters has n-or-fewer separators plus one parts). */
static int
next_part(const char *s, Py_ssize_t n, char sep, Py_ssize_t *pos, Py_ssize_t *start,
          Py_ssize_t *end, Py_ssize_t *a, Py_ssize_t *b)
{
    if (*pos > n)
        return 0;
    Py_ssize_t e = *pos, x = *pos, y;
    while (e < n && s[e] != sep)
        e++;
    y = e;
#define STRIP_WS(c) (((c) >= 9 && (c) <= 13) || ((c) >= 28 && (c) <= 32))
    while (x < y && STRIP_WS((unsigned char)s[x]))
        x++;
    while (y > x && STRIP_WS((unsigned char)s[y - 1]))
        y--;
#undef STRIP_WS
    *start = *pos;
    *end = e;
    *a = x;
    *b = y;
    *pos = e + 1;
    return 1;
}

/* raw (a Via's text) with its bare ";rport" given "=<port>" (via_stamp's in-place fill), or
 * NULL without an error when the text is not the usual one: the first rport parameter (params,
 * the parsed ones) not bare, not ASCII, a quoted string, a part that only stripped or
 * lower-cased reads "rport" (" rport", "RPort"), several or none; the caller then leaves it to
 * the pure form. */
static PyObject *
via_fill_rport(PyObject *raw, PyObject *params, PyObject *port)
{
    PyObject *value = PyObject_GetItem(params, s_rport); /* (a mappingproxy) */
    if (value == NULL) {
        if (PyErr_ExceptionMatches(PyExc_KeyError))
            PyErr_Clear(); /* (no rport at all: not the usual text) */
        return NULL;
    }
    Py_DECREF(value); /* (only compared with None below) */
    if (value != Py_None || !PyUnicode_IS_ASCII(raw))
        return NULL;
    const char *s = (const char *)PyUnicode_1BYTE_DATA(raw);
    Py_ssize_t n = PyUnicode_GET_LENGTH(raw), pos = 0, start, end, a, b, at = -1;
    if (memchr(s, '"', (size_t)n) != NULL)
        return NULL;
    while (next_part(s, n, ';', &pos, &start, &end, &a, &b)) {
        if (b - a == 5 && PyOS_strnicmp(s + a, "rport", 5) == 0) {
            if (a != start || b != end || memcmp(s + a, "rport", 5) != 0 || at >= 0)
                return NULL;
            at = end;
        }
    }
    if (at < 0)
        return NULL;
    PyObject *head = PyUnicode_Substring(raw, 0, at);
    PyObject *tail = head == NULL ? NULL : PyUnicode_Substring(raw, at, n);
    PyObject *out = tail == NULL ? NULL : PyUnicode_FromFormat("%U=%S%U", head, port, tail);
    Py_XDECREF(head);
    Py_XDECREF(tail);
    return out;
}

static PyObject *
received_via(PyObject *pure, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || msg_type == NULL || via_type == NULL || !PyObject_TypeCheck(args[1], msg_type))
        return PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
    PyObject *ctx = args[0], *cache = *field(args[1], F_CACHE);
    PyObject *via = cache != NULL && PyDict_CheckExact(cache) ? PyDict_GetItemWithError(cache, s_via)
                                                             : NULL; /* borrowed */
    if (via == NULL && PyErr_Occurred())
        return NULL;
    PyObject **dictptr = via != NULL && Py_IS_TYPE(via, via_type) && PyTuple_GET_SIZE(via) == 7
                             ? _PyObject_GetDictPtr(via)
                             : NULL;
    PyObject *params = dictptr != NULL && *dictptr != NULL && PyDict_CheckExact(*dictptr)
                           ? PyDict_GetItemWithError(*dictptr, s_params)
                           : NULL; /* borrowed */
    if (params == NULL && PyErr_Occurred())
        return NULL;
    PyObject *host = params != NULL ? PyTuple_GET_ITEM(via, 2) : NULL;
    PyObject *raw = params != NULL ? PyTuple_GET_ITEM(via, 4) : NULL;
    if (host == NULL || !PyUnicode_CheckExact(host) || !PyUnicode_CheckExact(raw) ||
        PyUnicode_GET_LENGTH(host) == 0 || PyUnicode_READ_CHAR(host, 0) == '[' ||
        PyUnicode_READ_CHAR(host, PyUnicode_GET_LENGTH(host) - 1) == ']')
        return PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
    int has_received = PySequence_Contains(params, s_received);
    int has_rport = has_received < 0 ? -1 : PySequence_Contains(params, s_rport);
    if (has_rport < 0)
        return NULL;
    if (has_received) /* (an old ;received: its place is pure's to keep) */
        return PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
    PyObject *rcv = PyObject_GetAttr(ctx, s_rcv);
    PyObject *src_ip = rcv == NULL ? NULL : PyObject_GetAttr(rcv, s_src_ip);
    PyObject *force = src_ip == NULL ? NULL : PyObject_GetAttr(ctx, s_force_rport);
    PyObject *port = NULL, *filled = NULL, *result = NULL;
    int forced = force == NULL ? -1 : PyObject_IsTrue(force);
    if (forced < 0)
        goto done;
    if (forced || !PyUnicode_CheckExact(src_ip)) {
        result = PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
        goto done;
    }
    if (has_rport) {
        /* a bare ;rport (most UAs send one) filled in place, ;received before the first
           parameter; any other ;rport is pure's */
        port = PyObject_GetAttr(rcv, s_src_port);
        filled = port == NULL || !PyLong_CheckExact(port) ? NULL
                                                           : via_fill_rport(raw, params, port);
        if (filled == NULL) {
            if (!PyErr_Occurred())
                result = PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
            goto done;
        }
        raw = filled; /* (borrowed from here on: filled is released at the end) */
    } else {
        int differs = PyUnicode_Compare(host, src_ip) != 0;
        if (differs && PyErr_Occurred())
            goto done;
        if (!differs) {
            result = Py_NewRef(Py_None);
            goto done;
        }
    }
    /* ;received=<source IP> before the first parameter (where Kamailio puts it) */
    Py_ssize_t n = PyUnicode_GET_LENGTH(raw);
    Py_ssize_t at = PyUnicode_FindChar(raw, ';', 0, n, 1);
    if (at == -2)
        goto done;
    if (at < 0)
        at = n;
    PyObject *head = PyUnicode_Substring(raw, 0, at);
    PyObject *tail = head == NULL ? NULL : PyUnicode_Substring(raw, at, n);
    if (tail != NULL)
        result = PyUnicode_FromFormat("%U;received=%U%U", head, src_ip, tail);
    Py_XDECREF(head);
    Py_XDECREF(tail);
done:
    Py_XDECREF(rcv);
    Py_XDECREF(src_ip);
    Py_XDECREF(force);
    Py_XDECREF(port);
    Py_XDECREF(filled);
    return result;
}

static PyMethodDef received_via_def = {
    "received_via", (PyCFunction)(void (*)(void))received_via, METH_FASTCALL,
    "received_via(ctx, msg): the top Via of msg with ;received and ;rport= filled in, or None "
    "when it needs neither (compiled form of received_via_py)."};

static PyObject *
via_received(PyObject *module, PyObject *pure)
{
    return bind_compiled(&received_via_def, pure, NULL, "via_received(pure)", NULL, 0);
}

/* ---- replies ------------------------------------------------------------------------------
 * reply_lines(keys, lines, tag) (reply.reply_lines_py) is what build_reply copies from a request
 * (RFC 3261 8.2.6.2): its Via, From, To, Call-ID and CSeq lines, grouped in that order, each
 * group in the request's order, each To line given ";tag=<tag>" when tag is not None (as
 * "Name: value;tag=<tag>\r", the value unfolded and stripped); returns the lines. */
static PyObject *
tagged_line(PyObject *line, PyObject *tag)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(line);
    Py_ssize_t colon = PyUnicode_FindChar(line, ':', 0, n, 1);
    if (colon == -2)
        return NULL;
    PyObject *name = PyUnicode_Substring(line, 0, colon >= 0 ? colon : (n > 0 ? n - 1 : 0));
    if (name == NULL)
        return NULL;
    PyObject *value = line_value(NULL, line);
    if (value == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    Piece pieces[6] = {{name, NULL}, {NULL, ": "}, {value, NULL}, {NULL, ";tag="}, {tag, NULL},
                       {NULL, "\r"}};
    PyObject *out = PyUnicode_CheckExact(tag) ? join_pieces(pieces, 6)
                                              : PyUnicode_FromFormat("%U: %U;tag=%U\r", name, value, tag);
    Py_DECREF(name);
    Py_DECREF(value);
    return out;
}

static PyObject *
reply_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyList_Check(args[1]) ||
        (args[2] != Py_None && !PyUnicode_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "reply_lines(keys: list, lines: list, tag: str | None)");
        return NULL;
    }
    PyObject *keys = args[0], *lines = args[1], *tag = args[2];
    Py_ssize_t n = PyList_GET_SIZE(keys);
    if (PyList_GET_SIZE(lines) != n) {
        PyErr_SetString(PyExc_ValueError, "reply_lines: keys and lines differ in length");
        return NULL;
    }
    PyObject *wanted[5] = {s_via, s_from, s_to, s_call_id, s_cseq};
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (int g = 0; g < 5; g++) {
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!key_is(PyList_GET_ITEM(keys, i), wanted[g]))
                continue;
            PyObject *line = PyList_GET_ITEM(lines, i);
            int failed;
            if (g == 2 && tag != Py_None) {
                PyObject *tagged = tagged_line(line, tag);
                failed = tagged == NULL || PyList_Append(out, tagged) < 0;
                Py_XDECREF(tagged);
            } else {
                failed = PyList_Append(out, line) < 0;
            }
            if (failed) {
                Py_DECREF(out);
                return NULL;
            }
        }
    }
    return out;
}

/* ---- tm's usual relayed reply (kemi_tm/service.py's on_reply, proxy.py, client.py, server.py)
 * reply_relayer(consts) returns TmService.on_reply compiled for one service (consts[TR_SVC]):
 * on_reply(ctx) does for the usual reply what the Python forms do, step for step: the branch
 * found from the reply's Via branch (TransactionTable.lookup_reply: the ident after the magic
 * cookie, the index after the last dot, the branch's key (branch, CSeq method) checked), tm's
 * rpl_received counted, the branch marked replied, the branch's client machine moved
 * (InviteClientTransaction / NonInviteClientTransaction.on_response: a 1xx to Proceeding, its
 * timers A/B off and fr armed; a 2xx to Accepted with M, or Completed with K), the proxy's
 * _branch_reply (a 1xx above 100 and a 2xx relayed: ServerTransaction.offer_reply with the
 * reply's bytes without our Via, through TmService.send and Core.send, rpl_relayed and the
 * core's sent counter, the server machine's state and timers L/J), the table's reschedule
 * hook, then _count_final (the class counter; the final handlers, e.g. acc, through Python)
 * and _count_2xx_again. What the reply meets is decided before anything changes; anything
 * else takes the Python form, whole (consts[TR_PURE], TmService.on_reply bound): a reply
 * with no branch of ours (stateless, tm's uac), a CANCEL's reply, the script's onreply or
 * branch-failure route armed, a reply with a final status of 300 and above, a branch already
 * final or canceled, several branches, a machine not in a state that takes it, another class
 * of transaction, branch or timers, a service that holds its sink's records (``_held``) or
 * sends through the onsend route. An error while deciding is left to the Python form too,
 * which meets it again. */
enum { TR_PURE, TR_SVC, TR_TX_TYPE, TR_INVITE_BRANCH, TR_OTHER_BRANCH, TR_SVC_SEND,
       TR_CORE_SEND, TR_LOG, TR_S_TRYING, TR_S_PROCEEDING, TR_S_COMPLETED, TR_S_ACCEPTED,
       TR_S_TERMINATED, TR_C_CALLING, TR_C_TRYING, TR_C_PROCEEDING, TR_C_COMPLETED,
       TR_C_ACCEPTED, TR_C_TERMINATED, TR_FIELDS };
/* The TR_ fields' kinds (bind_compiled's letters): the pure form, the three classes checked. */
#define TR_KINDS "c.ttt.............."
_Static_assert(sizeof(TR_KINDS) - 1 == TR_FIELDS, "a letter per TR_ field");

static PyObject *tr_msg, *tr_held, *tr_send, *tr_via, *tr_branch, *tr_table, *tr_by_ident,
    *tr_branches, *tr_cseq, *tr_method, *tr_key, *tr_callbacks, *tr_reply, *tr_branch_failure,
    *tr_sink, *tr_status, *tr_is_invite, *tr_state, *tr_cancelled, *tr_cancel_wanted,
    *tr_timers, *tr_stats, *tr_rpl_received, *tr_rpl_relayed, *tr_replied, *tr_counted_final,
    *tr_clock, *tr_now, *tr_local_final, *tr_settings, *tr_restart_fr, *tr_fr_inv_timer,
    *tr_life_end, *tr_final_status, *tr_wt_timer, *tr_dest, *tr_reliable, *tr_t4,
    *tr_bytes_wo_via, *tr_deciding, *tr_pass_up, *tr_refile, *tr_on_reschedule, *tr_done,
    *tr_final_handlers, *tr_count_final, *tr_by_class, *tr_count_2xx_again, *tr_last_reply,
    *tr_last_status, *tr_reply_dest, *tr_proto, *tr_host, *tr_port, *tr_local, *tr_core,
    *tr_transport, *tr_sent_counter, *tr_sent_requests, *tr_warning, *tr_relayed,
    *tr_send_failed, *tr_t_a, *tr_t_b, *tr_t_fr, *tr_t_m, *tr_t_k, *tr_t_l, *tr_t_j,
    *tr_zero, *tr_hundred, *tr_get;

static int sl_names(void);
static int sl_count(PyObject *counter);

/* what tr_decide found, for tr_commit (new references) */
typedef struct {
    PyObject *msg, *tx, *b, *status_obj, *bstate, *timers, *index_obj;
    long status;
    int invite;
} TrReply;

static void
tr_clear(TrReply *r)
{
    Py_CLEAR(r->msg);
    Py_CLEAR(r->tx);
    Py_CLEAR(r->b);
    Py_CLEAR(r->status_obj);
    Py_CLEAR(r->bstate);
    Py_CLEAR(r->timers);
    Py_CLEAR(r->index_obj);
}

/* obj.name is what (identity), 1/0, -1 on error */
static int
tr_attr_is(PyObject *obj, PyObject *name, PyObject *what)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    Py_DECREF(v);
    return v == what;
}

/* obj.name is the method ``func`` bound to obj: 1/0, -1 on error */
static int
tr_bound_is(PyObject *obj, PyObject *name, PyObject *func)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    int out = PyMethod_Check(v) && PyMethod_GET_FUNCTION(v) == func && PyMethod_GET_SELF(v) == obj;
    Py_DECREF(v);
    return out;
}

/* 1: the compiled form takes the reply of ctx (r filled); 0: the Python form; -1: an error */
static int
tr_decide(PyObject *c, PyObject *ctx, TrReply *r)
{
    PyObject *svc = PyTuple_GET_ITEM(c, TR_SVC);
    PyObject *via = NULL, *branch = NULL, *table = NULL, *by_ident = NULL, *branches = NULL,
             *cseq = NULL, *method = NULL, *key = NULL, *callbacks = NULL, *ident = NULL,
             *x = NULL;
    int out = -1, k;
    if ((r->msg = PyObject_GetAttr(ctx, tr_msg)) == NULL)
        goto done;
    out = 0;
    if (!PyObject_TypeCheck(r->msg, msg_type) || *field(r->msg, F_IS_REQUEST) != Py_False)
        goto done;
    out = -1;
    if ((k = tr_attr_is(svc, tr_held, Py_None)) <= 0
            || (k = tr_bound_is(svc, tr_send, PyTuple_GET_ITEM(c, TR_SVC_SEND))) <= 0) {
        out = k;
        goto done;
    }
    /* TransactionTable.lookup_reply, for a branch of ours */
    if ((via = PyObject_GetAttr(r->msg, tr_via)) == NULL
            || (branch = PyObject_GetAttr(via, tr_branch)) == NULL)
        goto done;
    out = 0;
    if (!PyUnicode_CheckExact(branch))
        goto done;
    Py_ssize_t n = PyUnicode_GET_LENGTH(branch);
    Py_ssize_t dot = PyUnicode_FindChar(branch, '.', 0, n, -1);
    if (dot < 0) {
        out = dot == -2 ? -1 : 0;
        goto done;
    }
    Py_ssize_t digits = n - dot - 1;
    if (dot < 7 || digits < 1 || digits > 9)
        goto done;
    long index = 0;
    for (Py_ssize_t i = dot + 1; i < n; i++) {
        Py_UCS4 ch = PyUnicode_READ_CHAR(branch, i);
        if (ch < '0' || ch > '9')
            goto done;
        index = index * 10 + (long)(ch - '0');
    }
    out = -1;
    if ((table = PyObject_GetAttr(svc, tr_table)) == NULL
            || (by_ident = PyObject_GetAttr(table, tr_by_ident)) == NULL
            || (ident = PyUnicode_Substring(branch, 7, dot)) == NULL)
        goto done;
    out = 0;
    if (!PyDict_CheckExact(by_ident))
        goto done;
    r->tx = PyDict_GetItemWithError(by_ident, ident);
    if (r->tx == NULL) {
        out = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    Py_INCREF(r->tx);
    if (Py_TYPE(r->tx) != (PyTypeObject *)PyTuple_GET_ITEM(c, TR_TX_TYPE))
        goto done;
    out = -1;
    if ((branches = PyObject_GetAttr(r->tx, tr_branches)) == NULL)
        goto done;
    out = 0;
    if (!PyList_CheckExact(branches) || PyList_GET_SIZE(branches) != 1 || index != 0)
        goto done; /* (a lone branch: the usual relay; several take the Python form) */
    r->b = Py_NewRef(PyList_GET_ITEM(branches, 0));
    PyTypeObject *bt = Py_TYPE(r->b);
    if (bt == (PyTypeObject *)PyTuple_GET_ITEM(c, TR_INVITE_BRANCH))
        r->invite = 1;
    else if (bt == (PyTypeObject *)PyTuple_GET_ITEM(c, TR_OTHER_BRANCH))
        r->invite = 0;
    else
        goto done;
    out = -1;
    if ((cseq = PyObject_GetAttr(r->msg, tr_cseq)) == NULL
            || (method = PyObject_GetAttr(cseq, tr_method)) == NULL
            || (key = PyObject_GetAttr(r->b, tr_key)) == NULL)
        goto done;
    out = 0;
    if (!PyUnicode_CheckExact(method) || PyUnicode_CompareWithASCIIString(method, "CANCEL") == 0
            || !PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2)
        goto done;
    out = -1;
    int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(key, 0), branch, Py_EQ);
    if (same < 0)
        goto done;
    if (same)
        same = PyObject_RichCompareBool(PyTuple_GET_ITEM(key, 1), method, Py_EQ);
    if (same <= 0) {
        out = same;
        goto done;
    }
    /* no script route armed on the transaction; its sink the service; its kind the branch's */
    if ((callbacks = PyObject_GetAttr(r->tx, tr_callbacks)) == NULL)
        goto done;
    if ((k = tr_attr_is(callbacks, tr_reply, Py_None)) <= 0
            || (k = tr_attr_is(callbacks, tr_branch_failure, Py_None)) <= 0
            || (k = tr_attr_is(r->tx, tr_sink, svc)) <= 0
            || (k = tr_attr_is(r->tx, tr_is_invite, r->invite ? Py_True : Py_False)) <= 0) {
        out = k;
        goto done;
    }
    if ((r->status_obj = PyObject_GetAttr(r->msg, tr_status)) == NULL)
        goto done;
    out = 0;
    if (!PyLong_CheckExact(r->status_obj))
        goto done;
    r->status = PyLong_AsLong(r->status_obj);
    if (r->status < 100 || r->status >= 300) {
        out = r->status == -1 && PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    out = -1;
    if ((r->bstate = PyObject_GetAttr(r->b, tr_state)) == NULL
            || (r->timers = PyObject_GetAttr(r->b, tr_timers)) == NULL)
        goto done;
    out = 0;
    if (!PyDict_CheckExact(r->timers))
        goto done;
    PyObject *st = r->bstate;
    if (r->invite ? (st != PyTuple_GET_ITEM(c, TR_C_CALLING)
                     && st != PyTuple_GET_ITEM(c, TR_C_PROCEEDING))
                  : (st != PyTuple_GET_ITEM(c, TR_C_TRYING)
                     && st != PyTuple_GET_ITEM(c, TR_C_PROCEEDING)))
        goto done;
    out = -1;
    if (r->status < 200) {
        /* a 1xx: no CANCEL wanted or sent for the branch */
        if ((k = tr_attr_is(r->b, tr_cancel_wanted, Py_False)) <= 0
                || (r->invite && (k = tr_attr_is(r->b, tr_cancelled, Py_False)) <= 0)) {
            out = k;
            goto done;
        }
    } else {
        /* a 2xx: the branch's first final */
        if ((x = PyObject_GetAttr(r->b, tr_status)) == NULL)
            goto done;
        if (!PyLong_CheckExact(x) || PyLong_AsLong(x) != 0) {
            out = PyErr_Occurred() ? -1 : 0;
            goto done;
        }
    }
    if ((r->index_obj = PyLong_FromLong(index)) == NULL)
        goto done;
    out = 1;
done:
    Py_XDECREF(via);
    Py_XDECREF(branch);
    Py_XDECREF(table);
    Py_XDECREF(by_ident);
    Py_XDECREF(branches);
    Py_XDECREF(cseq);
    Py_XDECREF(method);
    Py_XDECREF(key);
    Py_XDECREF(callbacks);
    Py_XDECREF(ident);
    Py_XDECREF(x);
    return out;
}

/* obj.name = value (borrowed), -1 on error */
static inline int
tr_set(PyObject *obj, PyObject *name, PyObject *value)
{
    return PyObject_SetAttr(obj, name, value);
}

/* timers[name] = now + obj.settings.<which>, -1 on error */
static int
tr_arm(PyObject *timers, PyObject *name, PyObject *now, PyObject *settings, PyObject *which)
{
    PyObject *delay = PyObject_GetAttr(settings, which);
    PyObject *at = delay == NULL ? NULL : PyNumber_Add(now, delay);
    int out = at == NULL ? -1 : PyDict_SetItem(timers, name, at);
    Py_XDECREF(delay);
    Py_XDECREF(at);
    return out;
}

/* EndsAfterTimer._linger(name, 0.0 if dest.reliable else settings.<which>, now) on a machine
 * whose timers are ``timers`` (a dict), TERMINATED_STATE ``ended``; -1 on error */
static int
tr_linger(PyObject *m, PyObject *timers, PyObject *name, PyObject *dest, PyObject *settings,
          PyObject *which, PyObject *now, PyObject *ended)
{
    PyObject *reliable = PyObject_GetAttr(dest, tr_reliable);
    int yes = reliable == NULL ? -1 : PyObject_IsTrue(reliable);
    Py_XDECREF(reliable);
    if (yes < 0)
        return -1;
    PyObject *delay = yes ? PyFloat_FromDouble(0.0) : PyObject_GetAttr(settings, which);
    if (delay == NULL)
        return -1;
    int none = PyObject_RichCompareBool(delay, tr_zero, Py_LE);
    int out = -1;
    if (none > 0) { /* _finish */
        if (tr_set(m, tr_state, ended) == 0) {
            PyDict_Clear(timers);
            out = 0;
        }
    } else if (none == 0) {
        PyObject *at = PyNumber_Add(now, delay);
        out = at == NULL ? -1 : PyDict_SetItem(timers, name, at);
        Py_XDECREF(at);
    }
    Py_DECREF(delay);
    return out;
}

/* Core.send(proto, host, port, data, local) written out when core's send is Core's own
 * (``core_send``, the function) and it has a transport (else the method runs): 1 sent, 0 not,
 * -1 an error. (tm's relayed reply, the ACK's stateless relay.) */
static int
core_send_now(PyObject *core_send, PyObject *core, PyObject *proto, PyObject *host,
              PyObject *port, PyObject *data, PyObject *local)
{
    PyObject *transport = NULL, *ok = NULL, *stats = NULL, *counters = NULL, *head = NULL,
             *other = NULL;
    int out = -1;
    int own = tr_bound_is(core, tr_send, core_send);
    if (own < 0 || (own && (transport = PyObject_GetAttr(core, tr_transport)) == NULL))
        goto done;
    if (!own || transport == Py_None) {
        PyObject *args[6] = {core, proto, host, port, data, local};
        ok = PyObject_VectorcallMethod(tr_send, args, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        out = ok == NULL ? -1 : PyObject_IsTrue(ok);
        goto done;
    }
    PyObject *args[6] = {transport, proto, host, port, data, local};
    ok = PyObject_VectorcallMethod(tr_send, args, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    int sent = ok == NULL ? -1 : PyObject_IsTrue(ok);
    if (sent <= 0) {
        out = sent;
        goto done;
    }
    /* stats.sent_counter.get(data[:9], stats.sent_requests) += 1 */
    if ((stats = PyObject_GetAttr(core, tr_stats)) == NULL)
        goto done;
    if (stats != Py_None) {
        if ((counters = PyObject_GetAttr(stats, tr_sent_counter)) == NULL)
            goto done;
        if (!PyBytes_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "tm: a reply's bytes are not bytes");
            goto done;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(data);
        if ((head = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data), len < 9 ? len : 9))
                == NULL)
            goto done;
        PyObject *counter = PyDict_CheckExact(counters)
            ? Py_XNewRef(PyDict_GetItemWithError(counters, head)) : NULL;
        if (counter == NULL && PyErr_Occurred())
            goto done;
        if (counter == NULL) {
            if ((other = PyObject_GetAttr(stats, tr_sent_requests)) == NULL)
                goto done;
            counter = PyDict_CheckExact(counters) ? Py_NewRef(other)
                : PyObject_CallMethodObjArgs(counters, tr_get, head, other, NULL);
            if (counter == NULL)
                goto done;
        }
        int bad = sl_count(counter);
        Py_DECREF(counter);
        if (bad < 0)
            goto done;
    }
    out = 1;
done:
    Py_XDECREF(transport);
    Py_XDECREF(ok);
    Py_XDECREF(stats);
    Py_XDECREF(counters);
    Py_XDECREF(head);
    Py_XDECREF(other);
    return out;
}

/* core_send_now to a Dest (proto, host, port, local), with Core.send given (``own_send``):
 * tm's relayed reply and relayed request */
static int
tr_core_send_as(PyObject *own_send, PyObject *core, PyObject *dest, PyObject *data)
{
    PyObject *proto = NULL, *host = NULL, *port = NULL, *local = NULL;
    int out = -1;
    if ((proto = PyObject_GetAttr(dest, tr_proto)) != NULL
            && (host = PyObject_GetAttr(dest, tr_host)) != NULL
            && (port = PyObject_GetAttr(dest, tr_port)) != NULL
            && (local = PyObject_GetAttr(dest, tr_local)) != NULL)
        out = core_send_now(own_send, core, proto, host, port, data, local);
    Py_XDECREF(proto);
    Py_XDECREF(host);
    Py_XDECREF(port);
    Py_XDECREF(local);
    return out;
}

/* tr_core_send_as with the reply relayer's Core.send */
static int
tr_core_send(PyObject *c, PyObject *core, PyObject *dest, PyObject *data)
{
    return tr_core_send_as(PyTuple_GET_ITEM(c, TR_CORE_SEND), core, dest, data);
}

/* TmService.send's log.warning("tm: sending to %s:%s:%d failed", dest.proto, dest.host,
 * dest.port) on ``log``; -1 on error */
static int
tr_send_warning(PyObject *log, PyObject *dest)
{
    PyObject *proto = PyObject_GetAttr(dest, tr_proto), *x = NULL;
    PyObject *host = proto == NULL ? NULL : PyObject_GetAttr(dest, tr_host);
    PyObject *port = host == NULL ? NULL : PyObject_GetAttr(dest, tr_port);
    if (port != NULL) {
        PyObject *args[5] = {log, tr_send_failed, proto, host, port};
        x = PyObject_VectorcallMethod(tr_warning, args, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_XDECREF(proto);
    Py_XDECREF(host);
    Py_XDECREF(port);
    if (x == NULL)
        return -1;
    Py_DECREF(x);
    return 0;
}

/* TmService.send(dest, data, "relayed") with nothing held (tr_decide saw ``_held`` None and
 * the class's send; tr_offer reads it again, as the Python form does): rpl_relayed counted,
 * Core.send, the warning when the network refused it. -1 on error. */
static int
tr_svc_send(PyObject *c, PyObject *svc, PyObject *dest, PyObject *data)
{
    PyObject *held = PyObject_GetAttr(svc, tr_held), *x = NULL, *stats = NULL, *counter = NULL,
             *core = NULL;
    int out = -1;
    if (held == NULL)
        return -1;
    if (held != Py_None) {
        PyObject *args[4] = {svc, dest, data, tr_relayed};
        x = PyObject_VectorcallMethod(tr_send, args, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        out = x == NULL ? -1 : 0;
        goto done;
    }
    if ((stats = PyObject_GetAttr(svc, tr_stats)) == NULL
            || (counter = PyObject_GetAttr(stats, tr_rpl_relayed)) == NULL
            || sl_count(counter) < 0
            || (core = PyObject_GetAttr(svc, tr_core)) == NULL)
        goto done;
    int sent = tr_core_send(c, core, dest, data);
    if (sent < 0)
        goto done;
    if (!sent && tr_send_warning(PyTuple_GET_ITEM(c, TR_LOG), dest) < 0)
        goto done;
    out = 0;
done:
    Py_DECREF(held);
    Py_XDECREF(x);
    Py_XDECREF(stats);
    Py_XDECREF(counter);
    Py_XDECREF(core);
    return out;
}

/* ServerTransaction.offer_reply(status, data, now, "relayed") on the transaction: 1 sent, 0
 * refused by its state, -1 an error */
static int
tr_offer(PyObject *c, PyObject *svc, TrReply *r, PyObject *data, PyObject *now)
{
    PyObject *tx = r->tx, *state = PyObject_GetAttr(tx, tr_state), *x = NULL, *dest = NULL,
             *settings = NULL, *timers = NULL;
    long status = r->status;
    int out = -1;
    if (state == NULL)
        return -1;
    if (r->invite) {
        if (state != PyTuple_GET_ITEM(c, TR_S_PROCEEDING)
                && (state != PyTuple_GET_ITEM(c, TR_S_ACCEPTED) || status < 200 || status >= 300)) {
            out = 0;
            goto done;
        }
    } else if (state != PyTuple_GET_ITEM(c, TR_S_TRYING)
               && state != PyTuple_GET_ITEM(c, TR_S_PROCEEDING)) {
        out = 0;
        goto done;
    }
    if (tr_set(tx, tr_last_reply, data) < 0 || tr_set(tx, tr_last_status, r->status_obj) < 0)
        goto done;
    if (status >= 200) {
        if ((x = PyObject_GetAttr(tx, tr_final_status)) == NULL)
            goto done;
        int has = PyObject_IsTrue(x);
        if (has < 0 || (!has && tr_set(tx, tr_final_status, r->status_obj) < 0))
            goto done;
    }
    if ((dest = PyObject_GetAttr(tx, tr_reply_dest)) == NULL
            || tr_svc_send(c, svc, dest, data) < 0)
        goto done;
    if (status < 200) {
        if (!r->invite && tr_set(tx, tr_state, PyTuple_GET_ITEM(c, TR_S_PROCEEDING)) < 0)
            goto done;
    } else {
        if ((settings = PyObject_GetAttr(tx, tr_settings)) == NULL
                || (timers = PyObject_GetAttr(tx, tr_timers)) == NULL)
            goto done;
        if (!PyDict_CheckExact(timers)) {
            PyErr_SetString(PyExc_TypeError, "tm: a transaction's timers are not a dict");
            goto done;
        }
        if (!r->invite) {
            if (tr_set(tx, tr_state, PyTuple_GET_ITEM(c, TR_S_COMPLETED)) < 0
                    || tr_linger(tx, timers, tr_t_j, dest, settings, tr_wt_timer, now,
                                 PyTuple_GET_ITEM(c, TR_S_TERMINATED)) < 0)
                goto done;
        } else if (tr_set(tx, tr_state, PyTuple_GET_ITEM(c, TR_S_ACCEPTED)) < 0
                   || tr_arm(timers, tr_t_l, now, settings, tr_wt_timer) < 0) {
            goto done;
        }
    }
    out = 1;
done:
    Py_DECREF(state);
    Py_XDECREF(x);
    Py_XDECREF(dest);
    Py_XDECREF(settings);
    Py_XDECREF(timers);
    return out;
}

/* the branch's client machine on_response (for the states tr_decide let through) */
static int
tr_client(PyObject *c, TrReply *r, PyObject *now)
{
    PyObject *b = r->b, *timers = r->timers, *settings = PyObject_GetAttr(b, tr_settings),
             *x = NULL, *y = NULL, *at = NULL, *dest = NULL;
    int out = -1;
    if (settings == NULL)
        return -1;
    if (r->invite && r->status < 200) {
        int first = r->bstate == PyTuple_GET_ITEM(c, TR_C_CALLING);
        if (tr_set(b, tr_state, PyTuple_GET_ITEM(c, TR_C_PROCEEDING)) < 0
                || (PyDict_Contains(timers, tr_t_a) == 1 && PyDict_DelItem(timers, tr_t_a) < 0)
                || (PyDict_Contains(timers, tr_t_b) == 1 && PyDict_DelItem(timers, tr_t_b) < 0)
                || PyErr_Occurred())
            goto done;
        if ((x = PyObject_GetAttr(b, tr_local_final)) == NULL)
            goto done;
        int local = PyObject_IsTrue(x);
        if (local < 0)
            goto done;
        int restart = 1;
        if (!local && !first) {
            Py_CLEAR(x);
            if ((x = PyObject_GetAttr(settings, tr_restart_fr)) == NULL
                    || (restart = PyObject_IsTrue(x)) < 0)
                goto done;
        }
        if (!local && restart) {
            /* timers["fr"] = min(now + settings.fr_inv_timer, self._life_end) */
            Py_CLEAR(x);
            if ((x = PyObject_GetAttr(settings, tr_fr_inv_timer)) == NULL
                    || (at = PyNumber_Add(now, x)) == NULL
                    || (y = PyObject_GetAttr(b, tr_life_end)) == NULL)
                goto done;
            int less = PyObject_RichCompareBool(y, at, Py_LT);
            if (less < 0 || PyDict_SetItem(timers, tr_t_fr, less ? y : at) < 0)
                goto done;
        }
    } else if (r->invite) {
        if (tr_set(b, tr_state, PyTuple_GET_ITEM(c, TR_C_ACCEPTED)) < 0
                || tr_set(b, tr_final_status, r->status_obj) < 0)
            goto done;
        PyDict_Clear(timers);
        if (tr_arm(timers, tr_t_m, now, settings, tr_wt_timer) < 0)
            goto done;
    } else if (r->status < 200) {
        if (tr_set(b, tr_state, PyTuple_GET_ITEM(c, TR_C_PROCEEDING)) < 0)
            goto done;
    } else {
        if (tr_set(b, tr_state, PyTuple_GET_ITEM(c, TR_C_COMPLETED)) < 0
                || tr_set(b, tr_final_status, r->status_obj) < 0)
            goto done;
        PyDict_Clear(timers);
        if ((dest = PyObject_GetAttr(b, tr_dest)) == NULL
                || tr_linger(b, timers, tr_t_k, dest, settings, tr_t4, now,
                             PyTuple_GET_ITEM(c, TR_C_TERMINATED)) < 0)
            goto done;
    }
    out = 0;
done:
    Py_DECREF(settings);
    Py_XDECREF(x);
    Py_XDECREF(y);
    Py_XDECREF(at);
    Py_XDECREF(dest);
    return out;
}

/* on_reply's steps once tr_decide took the reply; -1 on error */
static int
tr_commit(PyObject *c, TrReply *r)
{
    PyObject *svc = PyTuple_GET_ITEM(c, TR_SVC), *tx = r->tx, *b = r->b;
    PyObject *stats = NULL, *counter = NULL, *counted = NULL, *clock = NULL, *now = NULL,
             *data = NULL, *x = NULL, *state = NULL, *handlers = NULL, *by_class = NULL;
    int out = -1;
    /* c = self.stats.rpl_received; inc; tx.branches[branch].replied = True */
    if ((stats = PyObject_GetAttr(svc, tr_stats)) == NULL
            || (counter = PyObject_GetAttr(stats, tr_rpl_received)) == NULL
            || sl_count(counter) < 0
            || tr_set(b, tr_replied, Py_True) < 0
            || (counted = PyObject_GetAttr(tx, tr_counted_final)) == NULL
            || (clock = PyObject_GetAttr(svc, tr_clock)) == NULL
            || (now = PyObject_CallMethodNoArgs(clock, tr_now)) == NULL)
        goto done;
    /* ProxyTransaction.on_response: the client machine, then _branch_reply */
    if (tr_client(c, r, now) < 0)
        goto done;
    if (r->status >= 200 && tr_set(b, tr_status, r->status_obj) < 0)
        goto done; /* (branch_final: no branch-failure route armed, nothing held) */
    if (r->status > 100) {
        if ((data = PyObject_CallMethodNoArgs(r->msg, tr_bytes_wo_via)) == NULL)
            goto done;
        int sent = tr_offer(c, svc, r, data, now);
        if (sent < 0)
            goto done;
        if (r->status >= 200) {
            if (sent) {
                if (tr_set(tx, tr_deciding, Py_False) < 0)
                    goto done;
            } else {
                /* too late for the transaction: self.sink.pass_up(reply) */
                PyObject *args[2] = {svc, r->msg};
                if ((x = PyObject_VectorcallMethod(tr_pass_up, args,
                                                   2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL))
                        == NULL)
                    goto done;
                Py_CLEAR(x);
            }
        }
    }
    /* if not self.refile or self.state is TERMINATED: self.on_reschedule(self) */
    if ((x = PyObject_GetAttr(tx, tr_refile)) == NULL)
        goto done;
    int refile = PyObject_IsTrue(x);
    Py_CLEAR(x);
    if (refile < 0 || (state = PyObject_GetAttr(tx, tr_state)) == NULL)
        goto done;
    if (!refile || state == PyTuple_GET_ITEM(c, TR_S_TERMINATED)) {
        PyObject *hook = PyObject_GetAttr(tx, tr_on_reschedule);
        if (hook == NULL)
            goto done;
        x = PyObject_CallOneArg(hook, tx);
        Py_DECREF(hook);
        if (x == NULL)
            goto done;
        Py_CLEAR(x);
    }
    /* if self._held is not None: self.done(tx); elif a final not counted: _count_final */
    if ((x = PyObject_GetAttr(svc, tr_held)) == NULL)
        goto done;
    int held = x != Py_None;
    Py_CLEAR(x);
    if (held) {
        PyObject *args[2] = {svc, tx};
        if ((x = PyObject_VectorcallMethod(tr_done, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                           NULL)) == NULL)
            goto done;
        Py_CLEAR(x);
    } else {
        PyObject *final = PyObject_GetAttr(tx, tr_final_status);
        if (final == NULL)
            goto done;
        int has = PyObject_IsTrue(final), uncounted = 0;
        if (has > 0) {
            if ((x = PyObject_GetAttr(tx, tr_counted_final)) == NULL) {
                Py_DECREF(final);
                goto done;
            }
            uncounted = PyObject_Not(x);
            Py_CLEAR(x);
        }
        if (has < 0 || uncounted < 0 || (has && uncounted
                && (handlers = PyObject_GetAttr(svc, tr_final_handlers)) == NULL)) {
            Py_DECREF(final);
            goto done;
        }
        if (has && uncounted && PyList_CheckExact(handlers) && PyList_GET_SIZE(handlers) == 0
                && PyLong_CheckExact(final)) {
            /* _count_final with no handler: counted_final; stats.by_class[status // 100] */
            long cls = PyLong_AsLong(final) / 100;
            PyObject *key = PyLong_FromLong(cls);
            int bad = key == NULL || tr_set(tx, tr_counted_final, Py_True) < 0
                || (by_class = PyObject_GetAttr(stats, tr_by_class)) == NULL;
            PyObject *cc = NULL;
            if (!bad) {
                cc = PyObject_CallMethodObjArgs(by_class, tr_get, key, NULL);
                bad = cc == NULL || (cc != Py_None && sl_count(cc) < 0);
            }
            Py_XDECREF(cc);
            Py_XDECREF(key);
            if (bad) {
                Py_DECREF(final);
                goto done;
            }
        } else if (has && uncounted) {
            PyObject *args[2] = {svc, tx};
            x = PyObject_VectorcallMethod(tr_count_final, args,
                                          2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (x == NULL) {
                Py_DECREF(final);
                goto done;
            }
            Py_CLEAR(x);
        }
        Py_DECREF(final);
    }
    /* if counted and msg.status < 300: self._count_2xx_again(tx, msg.status) */
    int was = PyObject_IsTrue(counted);
    if (was < 0)
        goto done;
    if (was) {
        PyObject *args[3] = {svc, tx, r->status_obj};
        if ((x = PyObject_VectorcallMethod(tr_count_2xx_again, args,
                                           3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)) == NULL)
            goto done;
        Py_CLEAR(x);
    }
    out = 0;
done:
    Py_XDECREF(stats);
    Py_XDECREF(counter);
    Py_XDECREF(counted);
    Py_XDECREF(clock);
    Py_XDECREF(now);
    Py_XDECREF(data);
    Py_XDECREF(x);
    Py_XDECREF(state);
    Py_XDECREF(handlers);
    Py_XDECREF(by_class);
    return out;
}

static PyObject *
tr_on_reply(PyObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *pure = PyTuple_GET_ITEM(c, TR_PURE);
    if (nargs != 1)
        return PyObject_Vectorcall(pure, args, nargs, NULL);
    TrReply r = {0};
    int usual = tr_decide(c, args[0], &r);
    if (usual <= 0) {
        tr_clear(&r);
        if (usual < 0) {
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                return NULL;
            PyErr_Clear(); /* the Python form meets it again, and raises it */
        }
        return PyObject_Vectorcall(pure, args, nargs, NULL);
    }
    int failed = tr_commit(c, &r);
    tr_clear(&r);
    return failed ? NULL : Py_NewRef(Py_True);
}

static PyMethodDef tr_on_reply_def = {
    "on_reply", (PyCFunction)(void (*)(void))tr_on_reply, METH_FASTCALL,
    "on_reply(ctx) -> TmService.on_reply's answer (compiled for the usual relayed reply; see "
    "reply_relayer)."};

/* the names both tm sections read (the relayed reply and the relayed request) */
static const InternedName tr_interned[] = {
    {&tr_msg, "msg"}, {&tr_held, "_held"}, {&tr_send, "send"}, {&tr_via, "via"},
    {&tr_branch, "branch"}, {&tr_table, "table"}, {&tr_by_ident, "_by_ident"},
    {&tr_branches, "branches"}, {&tr_cseq, "cseq"}, {&tr_method, "method"},
    {&tr_key, "key"}, {&tr_callbacks, "callbacks"}, {&tr_reply, "reply"},
    {&tr_branch_failure, "branch_failure"}, {&tr_sink, "sink"},
    {&tr_status, "status"}, {&tr_is_invite, "is_invite"}, {&tr_state, "state"},
    {&tr_cancelled, "cancelled"}, {&tr_cancel_wanted, "cancel_wanted"},
    {&tr_timers, "timers"}, {&tr_stats, "stats"}, {&tr_rpl_received, "rpl_received"},
    {&tr_rpl_relayed, "rpl_relayed"}, {&tr_replied, "replied"},
    {&tr_counted_final, "counted_final"}, {&tr_clock, "clock"}, {&tr_now, "now"},
    {&tr_local_final, "local_final"}, {&tr_settings, "settings"},
    {&tr_restart_fr, "restart_fr_on_each_reply"}, {&tr_fr_inv_timer, "fr_inv_timer"},
    {&tr_life_end, "_life_end"}, {&tr_final_status, "final_status"},
    {&tr_wt_timer, "wt_timer"}, {&tr_dest, "dest"}, {&tr_reliable, "reliable"},
    {&tr_t4, "t4"}, {&tr_bytes_wo_via, "bytes_without_top_via"},
    {&tr_deciding, "deciding"}, {&tr_pass_up, "pass_up"}, {&tr_refile, "refile"},
    {&tr_on_reschedule, "on_reschedule"}, {&tr_done, "done"},
    {&tr_final_handlers, "final_handlers"}, {&tr_count_final, "_count_final"},
    {&tr_by_class, "by_class"}, {&tr_count_2xx_again, "_count_2xx_again"},
    {&tr_last_reply, "last_reply"}, {&tr_last_status, "last_status"},
    {&tr_reply_dest, "reply_dest"}, {&tr_proto, "proto"}, {&tr_host, "host"},
    {&tr_port, "port"}, {&tr_local, "local"}, {&tr_core, "core"},
    {&tr_transport, "transport"}, {&tr_sent_counter, "sent_counter"},
    {&tr_sent_requests, "sent_requests"}, {&tr_warning, "warning"},
    {&tr_relayed, "relayed"}, {&tr_send_failed, "tm: sending to %s:%s:%d failed"},
    {&tr_t_a, "A"}, {&tr_t_b, "B"}, {&tr_t_fr, "fr"}, {&tr_t_m, "M"}, {&tr_t_k, "K"},
    {&tr_t_l, "L"}, {&tr_t_j, "J"}, {&tr_get, "get"},
};

static PyObject *
reply_relayer(PyObject *module, PyObject *consts)
{
    if (msg_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "reply_relayer: the message type is not set up");
        return NULL;
    }
    if (sl_names() < 0)
        return NULL;
    if ((tr_zero == NULL && (tr_zero = PyLong_FromLong(0)) == NULL)
            || (tr_hundred == NULL && (tr_hundred = PyLong_FromLong(100)) == NULL))
        return NULL;
    return bind_compiled(&tr_on_reply_def, consts, TR_KINDS,
                         "reply_relayer(consts): see _fast.c's TR_ fields", tr_interned,
                         sizeof(tr_interned) / sizeof(tr_interned[0]));
}

/* ---- tm's relayed new request (kemi_tm/relay.py's relay and _send_branches, service.py's
 * open_transaction, transaction.py's TmTransaction, proxy.py's start and add_branch,
 * context.py's BranchFields, client.py's arm, table.py's insert and _reschedule)
 * request_relayer(consts) returns relay.relay(svc, ctx) compiled for one service
 * (consts[RQ_SVC]): relay(ctx) does for the usual new request what the Python forms do, step
 * for step: tm's state on the context (ReqState, made when missing), the server transaction
 * made (its key, its reply destination, the request's copy with ;received/;rport on its Via,
 * the ident and To tag, every field TmTransaction.__init__ sets), filed in the table and
 * counted (uas), the 100 Trying of an INVITE (auto_inv_100: build_reply with the Via our
 * replies carry, offer_reply, TmService.send with rpl_generated, Core.send), then the one
 * branch: the socket it leaves from (send_local), rr's socket edit (for_socket), our Via
 * (via_sent_by, ;rport after add_local_rport, the branch z9hG4bK<ident>.0), the branch's
 * bytes (bytes_with_via), its client machine made and armed (A/B or E/F), the table's
 * reschedule hook, the branch flags, Core.send; ctx.replied. A refused send goes through the
 * Python forms (consts[RQ_REFUSED]: relay._branch_refused). What the request meets is decided
 * before anything changes; anything else takes the Python form whole (consts[RQ_PURE],
 * relay.relay): a reply, an ACK or a CANCEL, a request with a transaction (a retransmission;
 * after t_newtran; in a failure route), the script's per-transaction overrides or branch route
 * armed, appended branches or a Path, a destination that is not UDP or whose address is not
 * known now, the onsend route (or a core that has not asked the engine for one yet: its
 * first relayed request), a service holding its sink's records or sending through
 * another send, another class of table. An error while deciding is left to the Python form
 * too, which meets it again. */
enum { RQ_PURE, RQ_SVC, RQ_TX_TYPE, RQ_INVITE_BRANCH, RQ_OTHER_BRANCH, RQ_TABLE_TYPE,
       RQ_REQSTATE, RQ_CALLBACKS, RQ_SVC_SEND, RQ_CORE_SEND, RQ_LOG, RQ_URI_TARGET,
       RQ_RECEIVED_VIA, RQ_KEY_FOR, RQ_SVC_DEST, RQ_RELAY_DEST, RQ_SEND_LOCAL, RQ_VIA_SENT_BY,
       RQ_SOURCE, RQ_NOT_FILED, RQ_NO_OVERRIDES, RQ_BUILD_REPLY, RQ_REPLY_VIA_OF,
       RQ_REPLY_TOP_VIA, RQ_PARSE_ERROR, RQ_MALFORMED, RQ_REFUSED, RQ_S_PROCEEDING,
       RQ_S_TRYING, RQ_C_CALLING, RQ_C_TRYING, RQ_C_TERMINATED, RQ_S_TERMINATED, RQ_FIELDS };
/* The RQ_ fields' kinds (bind_compiled's letters): the pure form, the classes, the functions. */
#define RQ_KINDS "c.ttttttcc.ccccccc.c.ccctcc......"
_Static_assert(sizeof(RQ_KINDS) - 1 == RQ_FIELDS, "a letter per RQ_ field");

static PyObject *rq_mod_state, *rq_tm, *rq_tx, *rq_script_overrides, *rq_extra, *rq_path_vec,
    *rq_onsend, *rq_dst_uri, *rq_ruri, *rq_resolver, *rq_literals, *rq_known, *rq_rcv,
    *rq_src_ip, *rq_src_port, *rq_dst_ip, *rq_dst_port, *rq_force_rport, *rq_params,
    *rq_rport, *rq_proxy, *rq_copy, *rq_counter, *rq_ident_prefix, *rq_tag_prefix,
    *rq_request, *rq_interval, *rq_retr_timer1, *rq_proxy_settings, *rq_ident, *rq_to_tag,
    *rq_step, *rq_canceled, *rq_got_6xx, *rq_filed_at, *rq_created, *rq_overrides, *rq_flags,
    *rq_avps, *rq_xavps, *rq_drop_replies, *rq_in_failure, *rq_dns_pending, *rq_socket_edit,
    *rq_received_via, *rq_replace_top_via, *rq_by_key, *rq_hook, *rq_uas, *rq_auto_inv_100,
    *rq_auto_inv_100_reason, *rq_send_socket, *rq_add_local_rport, *rq_bytes_with_via,
    *rq_index, *rq_cancel, *rq_request_slot, *rq_data, *rq_start, *rq_ack, *rq_max_inv,
    *rq_fr_timer, *rq_max_noninv, *rq_t_e, *rq_t_f, *rq_marked, *rq_on_refile, *rq_bflags,
    *rq_rpl_generated, *rq_udp, *rq_advertised, *rq_adv_address, *rq_adv_port, *rq_empty,
    *rq_empty_str, *rq_empty_bytes, *rq_rport_param, *rq_reply_kw, *rq_default_port,
    *rq_false_float, *rq_cookie, *rq_lower, *rq_call_id, *rq_number, *rq_3261,
    *rq_local_address;

/* what rq_decide found, for rq_commit (new references; state may stay NULL) */
typedef struct {
    PyObject *msg, *method, *state, *mod_state, *extra, *core, *table, *by_key, *by_ident,
             *via_text, *key, *hop, *ip;
    int invite;
} RqReq;

static void
rq_clear(RqReq *r)
{
    Py_CLEAR(r->msg);
    Py_CLEAR(r->method);
    Py_CLEAR(r->state);
    Py_CLEAR(r->mod_state);
    Py_CLEAR(r->extra);
    Py_CLEAR(r->core);
    Py_CLEAR(r->table);
    Py_CLEAR(r->by_key);
    Py_CLEAR(r->by_ident);
    Py_CLEAR(r->via_text);
    Py_CLEAR(r->key);
    Py_CLEAR(r->hop);
    Py_CLEAR(r->ip);
}

/* dict.get(key) as a new reference (NULL and no error: missing) */
static PyObject *
rq_get(PyObject *dict, PyObject *key)
{
    return Py_XNewRef(PyDict_GetItemWithError(dict, key));
}

/* keys.key_for(msg, method): the RFC 3261 key with the Via's port written out, the Python
 * function for the rest (no port, an RFC 2543 branch) */
static PyObject *
rq_key_for(PyObject *c, PyObject *msg, PyObject *method)
{
    PyObject *via = PyObject_GetAttr(msg, tr_via), *branch = NULL, *port = NULL, *host = NULL,
             *lower = NULL, *call_id = NULL, *cseq = NULL, *number = NULL, *out = NULL;
    if (via == NULL || (branch = PyObject_GetAttr(via, tr_branch)) == NULL)
        goto done;
    if (!PyUnicode_CheckExact(branch) || PyUnicode_Tailmatch(branch, rq_cookie, 0,
                                                             PY_SSIZE_T_MAX, -1) != 1
            || (port = PyObject_GetAttr(via, tr_port)) == NULL || port == Py_None) {
        if (!PyErr_Occurred()) {
            PyObject *args[2] = {msg, method};
            out = PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_KEY_FOR), args, 2, NULL);
        }
        goto done;
    }
    if ((host = PyObject_GetAttr(via, tr_host)) == NULL
            || (lower = PyObject_CallMethodNoArgs(host, rq_lower)) == NULL
            || (call_id = PyObject_GetAttr(msg, rq_call_id)) == NULL
            || (cseq = PyObject_GetAttr(msg, tr_cseq)) == NULL
            || (number = PyObject_GetAttr(cseq, rq_number)) == NULL)
        goto done;
    out = PyTuple_Pack(7, rq_3261, branch, lower, port, method, call_id, number);
done:
    Py_XDECREF(via);
    Py_XDECREF(branch);
    Py_XDECREF(port);
    Py_XDECREF(host);
    Py_XDECREF(lower);
    Py_XDECREF(call_id);
    Py_XDECREF(cseq);
    Py_XDECREF(number);
    return out;
}

/* 1: the compiled form takes the request of ctx (r filled); 0: the Python form; -1: an error */
static int
rq_decide(PyObject *c, PyObject *ctx, RqReq *r)
{
    PyObject *svc = PyTuple_GET_ITEM(c, RQ_SVC);
    PyObject *x = NULL, *branches = NULL, *du = NULL, *uri = NULL, *resolver = NULL,
             *literals = NULL, *callbacks = NULL;
    int out = -1, k;
    if ((r->msg = PyObject_GetAttr(ctx, tr_msg)) == NULL)
        goto done;
    out = 0;
    if (!PyObject_TypeCheck(r->msg, msg_type) || *field(r->msg, F_IS_REQUEST) != Py_True)
        goto done;
    out = -1;
    if ((r->method = PyObject_GetAttr(r->msg, tr_method)) == NULL)
        goto done;
    out = 0;
    if (!PyUnicode_CheckExact(r->method)
            || PyUnicode_CompareWithASCIIString(r->method, "ACK") == 0
            || PyUnicode_CompareWithASCIIString(r->method, "CANCEL") == 0)
        goto done;
    r->invite = PyUnicode_CompareWithASCIIString(r->method, "INVITE") == 0;
    /* tm's state: none yet, or one without a transaction, overrides or a branch route */
    out = -1;
    if ((r->mod_state = PyObject_GetAttr(ctx, rq_mod_state)) == NULL)
        goto done;
    out = 0;
    if (!PyDict_CheckExact(r->mod_state))
        goto done;
    out = -1;
    r->state = rq_get(r->mod_state, rq_tm);
    if (r->state == NULL && PyErr_Occurred())
        goto done;
    if (r->state != NULL) {
        out = 0;
        if ((PyObject *)Py_TYPE(r->state) != PyTuple_GET_ITEM(c, RQ_REQSTATE))
            goto done;
        out = -1;
        if ((k = tr_attr_is(r->state, rq_tx, Py_None)) <= 0
                || (k = tr_attr_is(r->state, rq_script_overrides, Py_None)) <= 0) {
            out = k;
            goto done;
        }
        if ((callbacks = PyObject_GetAttr(r->state, tr_callbacks)) == NULL)
            goto done;
        if ((k = tr_attr_is(callbacks, tr_branch, Py_None)) <= 0) {
            out = k;
            goto done;
        }
    }
    /* one destination: no appended branch, no Path */
    if ((branches = PyObject_GetAttr(ctx, tr_branches)) == NULL
            || (r->extra = PyObject_GetAttr(ctx, rq_extra)) == NULL)
        goto done;
    out = 0;
    if (!PyList_CheckExact(branches) || PyList_GET_SIZE(branches) != 0
            || !PyDict_CheckExact(r->extra))
        goto done;
    out = -1;
    x = rq_get(r->extra, rq_path_vec);
    if (x == NULL && PyErr_Occurred())
        goto done;
    out = 0;
    if (x != NULL && x != Py_None)
        goto done;
    Py_CLEAR(x);
    /* the service as built: its own send, nothing held, no onsend route, its table */
    out = -1;
    if ((k = tr_attr_is(svc, tr_held, Py_None)) <= 0
            || (k = tr_bound_is(svc, tr_send, PyTuple_GET_ITEM(c, RQ_SVC_SEND))) <= 0) {
        out = k;
        goto done;
    }
    if ((r->core = PyObject_GetAttr(svc, tr_core)) == NULL
            || (k = tr_attr_is(r->core, rq_onsend, Py_None)) < 0
            || (k && (r->table = PyObject_GetAttr(svc, tr_table)) == NULL)) {
        goto done;
    }
    out = 0;
    if (!k || (PyObject *)Py_TYPE(r->table) != PyTuple_GET_ITEM(c, RQ_TABLE_TYPE))
        goto done;
    out = -1;
    if ((r->by_key = PyObject_GetAttr(r->table, rq_by_key)) == NULL
            || (r->by_ident = PyObject_GetAttr(r->table, tr_by_ident)) == NULL)
        goto done;
    out = 0;
    if (!PyDict_CheckExact(r->by_key) || !PyDict_CheckExact(r->by_ident))
        goto done;
    /* the next hop: $du or the R-URI, over UDP, its address known now */
    out = -1;
    if ((du = PyObject_GetAttr(ctx, rq_dst_uri)) == NULL)
        goto done;
    k = PyObject_IsTrue(du);
    if (k < 0 || (uri = k ? Py_NewRef(du) : PyObject_GetAttr(r->msg, rq_ruri)) == NULL
            || (r->hop = PyObject_CallOneArg(PyTuple_GET_ITEM(c, RQ_URI_TARGET), uri)) == NULL)
        goto done;
    out = 0;
    if (!PyTuple_CheckExact(r->hop) || PyTuple_GET_SIZE(r->hop) != 3
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(r->hop, 0))
            || PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(r->hop, 0), "udp") != 0
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(r->hop, 1)))
        goto done;
    out = -1;
    PyObject *host = PyTuple_GET_ITEM(r->hop, 1);
    if ((resolver = PyObject_GetAttr(r->core, rq_resolver)) == NULL
            || (literals = PyObject_GetAttr(resolver, rq_literals)) == NULL)
        goto done;
    if (PyDict_CheckExact(literals)) { /* Resolver.known's usual hit, without its call */
        r->ip = rq_get(literals, host);
        if (r->ip == NULL && PyErr_Occurred())
            goto done;
        if (r->ip == Py_None)
            Py_CLEAR(r->ip);
    }
    if (r->ip == NULL
            && (r->ip = PyObject_CallMethodOneArg(resolver, rq_known, host)) == NULL)
        goto done;
    out = 0;
    if (r->ip == Py_None)
        goto done;
    /* the request's Via as passed on, and its server key: no transaction of it yet */
    out = -1;
    PyObject *args[2] = {ctx, r->msg};
    if ((r->via_text = PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_RECEIVED_VIA), args, 2,
                                           NULL)) == NULL)
        goto done;
    if ((r->key = rq_key_for(c, r->msg, r->method)) == NULL)
        goto done;
    x = rq_get(r->by_key, r->key);
    if (x == NULL && PyErr_Occurred())
        goto done;
    out = x == NULL ? 1 : 0; /* (one found: a retransmission, absorbed by the Python form) */
done:
    Py_XDECREF(x);
    Py_XDECREF(branches);
    Py_XDECREF(du);
    Py_XDECREF(uri);
    Py_XDECREF(resolver);
    Py_XDECREF(literals);
    Py_XDECREF(callbacks);
    return out;
}

/* obj.<names[i]> = values[i] for n fields (borrowed), -1 on error */
static int
rq_set_all(PyObject *obj, PyObject **names, PyObject **values, int n)
{
    for (int i = 0; i < n; i++)
        if (PyObject_SetAttr(obj, names[i], values[i]) < 0)
            return -1;
    return 0;
}

/* an instance of ``type`` without its __init__ (the caller sets every field), NULL on error */
static PyObject *
rq_new(PyObject *type)
{
    PyTypeObject *t = (PyTypeObject *)type;
    return t->tp_new(t, rq_empty, NULL);
}

/* timers[name] = now + delay (a float sum, as Python's), -1 on error */
static int
rq_arm_at(PyObject *timers, PyObject *name, PyObject *now, PyObject *delay)
{
    PyObject *at = PyNumber_Add(now, delay);
    int out = at == NULL ? -1 : PyDict_SetItem(timers, name, at);
    Py_XDECREF(at);
    return out;
}

/* ServerTransaction's 100 Trying (ProxyTransaction.start -> _reply -> offer_reply -> the
 * sink's send) for a new INVITE transaction; -2: build_reply raised SipParseError (left set) */
static int
rq_trying(PyObject *c, PyObject *svc, PyObject *core, PyObject *tx, PyObject *request,
          PyObject *proxy, PyObject *top, PyObject *dest)
{
    PyObject *on = PyObject_GetAttr(proxy, rq_auto_inv_100), *reason = NULL, *data = NULL,
             *stats = NULL, *counter = NULL, *x = NULL;
    int out = -1;
    if (on == NULL)
        return -1;
    int yes = PyObject_IsTrue(on);
    if (yes <= 0) {
        out = yes;
        goto done;
    }
    if ((reason = PyObject_GetAttr(proxy, rq_auto_inv_100_reason)) == NULL)
        goto done;
    /* build_reply(request, 100, reason, to_tag=None, headers=[], body=b"",
     * content_type=None, top_via=top) */
    PyObject *headers = PyList_New(0);
    if (headers == NULL)
        goto done;
    PyObject *args[8] = {request, tr_hundred, reason, Py_None, headers, rq_empty_bytes,
                         Py_None, top};
    data = PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_BUILD_REPLY), args, 3, rq_reply_kw);
    Py_DECREF(headers);
    if (data == NULL) {
        if (PyErr_ExceptionMatches(PyTuple_GET_ITEM(c, RQ_PARSE_ERROR)))
            out = -2;
        goto done;
    }
    /* offer_reply(100, data, now, "local"): an INVITE in Proceeding takes it */
    if (tr_set(tx, tr_last_reply, data) < 0 || tr_set(tx, tr_last_status, tr_hundred) < 0)
        goto done;
    /* TmService.send(reply_dest, data, "local"), nothing held (rq_decide saw it) */
    if ((stats = PyObject_GetAttr(svc, tr_stats)) == NULL
            || (counter = PyObject_GetAttr(stats, rq_rpl_generated)) == NULL
            || sl_count(counter) < 0)
        goto done;
    int sent = tr_core_send_as(PyTuple_GET_ITEM(c, RQ_CORE_SEND), core, dest, data);
    if (sent < 0)
        goto done;
    if (!sent && tr_send_warning(PyTuple_GET_ITEM(c, RQ_LOG), dest) < 0)
        goto done;
    out = 0;
done:
    Py_DECREF(on);
    Py_XDECREF(reason);
    Py_XDECREF(data);
    Py_XDECREF(stats);
    Py_XDECREF(counter);
    Py_XDECREF(x);
    return out;
}

static PyObject *rq_sent_by_at(PyObject *c, PyObject *ctx, PyObject *core, PyObject *extra,
                               PyObject *local, PyObject *given);

/* via_sent_by(ctx, "udp", local): the usual answer (a socket, nothing advertised, an IPv4
 * host: "host:port") written out, the Python function for the rest */
static PyObject *
rq_sent_by(PyObject *c, PyObject *ctx, PyObject *core, PyObject *extra, PyObject *given)
{
    PyObject *local = given, *addr = NULL, *out;
    if (given == Py_None) { /* the transport's (or the core's) local_address("udp") */
        PyObject *transport = PyObject_GetAttr(core, tr_transport);
        if (transport == NULL)
            return NULL;
        addr = PyObject_CallMethodOneArg(transport == Py_None ? core : transport,
                                         rq_local_address, rq_udp);
        Py_DECREF(transport);
        if (addr == NULL)
            return NULL;
        local = addr;
    }
    out = rq_sent_by_at(c, ctx, core, extra, local, given);
    Py_XDECREF(addr);
    return out;
}

/* rq_sent_by from the socket ``local`` (host, port) it leaves from */
static PyObject *
rq_sent_by_at(PyObject *c, PyObject *ctx, PyObject *core, PyObject *extra, PyObject *local,
              PyObject *given)
{
    if (local != Py_None && PyTuple_CheckExact(local) && PyTuple_GET_SIZE(local) == 2
            && PyUnicode_CheckExact(PyTuple_GET_ITEM(local, 0))
            && PyLong_CheckExact(PyTuple_GET_ITEM(local, 1))) {
        PyObject *host = PyTuple_GET_ITEM(local, 0);
        PyObject *adv = PyObject_GetAttr(core, rq_advertised);
        if (adv == NULL)
            return NULL;
        Py_DECREF(adv);
        Py_ssize_t len = PyUnicode_GET_LENGTH(host);
        Py_ssize_t colon = PyUnicode_FindChar(host, ':', 0, len, 1);
        if (colon == -2)
            return NULL;
        int plain = adv == Py_None && colon == -1;
        if (plain && PyDict_GET_SIZE(extra)) {
            PyObject *a = PyDict_GetItemWithError(extra, rq_adv_address);
            PyObject *p = a == NULL && !PyErr_Occurred()
                ? PyDict_GetItemWithError(extra, rq_adv_port) : NULL;
            if (PyErr_Occurred())
                return NULL;
            plain = a == NULL && p == NULL;
        }
        if (plain)
            return PyUnicode_FromFormat("%U:%S", host, PyTuple_GET_ITEM(local, 1));
    }
    PyObject *args[3] = {ctx, rq_udp, given};
    return PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_VIA_SENT_BY), args, 3, NULL);
}

/* the branch's client machine (InviteBranch / NonInviteBranch with BranchFields.__init__'s
 * fields) armed (client.py's arm): a new reference, NULL on error */
static PyObject *
rq_branch(PyObject *c, RqReq *r, PyObject *svc, PyObject *wire, PyObject *d,
          PyObject *settings, PyObject *branch, PyObject *now)
{
    PyObject *b = rq_new(PyTuple_GET_ITEM(c, r->invite ? RQ_INVITE_BRANCH : RQ_OTHER_BRANCH));
    PyObject *key = NULL, *timers = NULL, *interval = NULL, *reliable = NULL, *x = NULL,
             *y = NULL, *life = NULL, *at = NULL;
    if (b == NULL)
        return NULL;
    if ((key = PyTuple_Pack(2, branch, r->method)) == NULL || (timers = PyDict_New()) == NULL
            || (interval = PyObject_GetAttr(settings, rq_retr_timer1)) == NULL)
        goto fail;
    PyObject *names[] = {rq_index, rq_step, rq_cancel, tr_status, tr_reply, tr_cancel_wanted,
                         rq_flags, tr_replied, rq_request_slot, rq_data, tr_sink, tr_dest,
                         tr_settings, tr_key, tr_state, tr_timers, tr_final_status,
                         tr_local_final, rq_interval, rq_start, rq_ack, tr_cancelled,
                         tr_life_end};
    PyObject *values[] = {tr_zero, tr_zero, Py_None, tr_zero, Py_None, Py_False, tr_zero,
                          Py_False, Py_None, wire, svc, d, settings, key,
                          PyTuple_GET_ITEM(c, RQ_C_TERMINATED), timers, tr_zero, tr_zero,
                          interval, rq_false_float, Py_None, Py_False, rq_false_float};
    if (rq_set_all(b, names, values, (int)(sizeof(names) / sizeof(names[0]))) < 0)
        goto fail;
    /* arm(now) */
    if ((reliable = PyObject_GetAttr(d, tr_reliable)) == NULL)
        goto fail;
    int rel = PyObject_IsTrue(reliable);
    if (rel < 0 || tr_set(b, tr_state, PyTuple_GET_ITEM(c, r->invite ? RQ_C_CALLING
                                                                     : RQ_C_TRYING)) < 0
            || tr_set(b, rq_start, now) < 0)
        goto fail;
    if (r->invite) {
        if ((x = PyObject_GetAttr(settings, rq_max_inv)) == NULL
                || (life = PyNumber_Add(now, x)) == NULL || tr_set(b, tr_life_end, life) < 0)
            goto fail;
        if (!rel && (tr_set(b, rq_interval, interval) < 0
                     || rq_arm_at(timers, tr_t_a, now, interval) < 0))
            goto fail;
        /* timers["B"] = min(now + s.fr_timer, self._life_end) */
        Py_CLEAR(x);
        if ((x = PyObject_GetAttr(settings, rq_fr_timer)) == NULL
                || (at = PyNumber_Add(now, x)) == NULL)
            goto fail;
        int less = PyObject_RichCompareBool(life, at, Py_LT);
        if (less < 0 || PyDict_SetItem(timers, tr_t_b, less ? life : at) < 0)
            goto fail;
    } else {
        if (!rel && (tr_set(b, rq_interval, interval) < 0
                     || rq_arm_at(timers, rq_t_e, now, interval) < 0))
            goto fail;
        /* timers["F"] = now + min(s.fr_timer, s.max_noninv_lifetime) */
        if ((x = PyObject_GetAttr(settings, rq_fr_timer)) == NULL
                || (y = PyObject_GetAttr(settings, rq_max_noninv)) == NULL)
            goto fail;
        int less = PyObject_RichCompareBool(y, x, Py_LT);
        if (less < 0 || rq_arm_at(timers, rq_t_f, now, less ? y : x) < 0)
            goto fail;
    }
    Py_XDECREF(key);
    Py_XDECREF(timers);
    Py_XDECREF(interval);
    Py_XDECREF(reliable);
    Py_XDECREF(x);
    Py_XDECREF(y);
    Py_XDECREF(life);
    Py_XDECREF(at);
    return b;
fail:
    Py_DECREF(b);
    Py_XDECREF(key);
    Py_XDECREF(timers);
    Py_XDECREF(interval);
    Py_XDECREF(reliable);
    Py_XDECREF(x);
    Py_XDECREF(y);
    Py_XDECREF(life);
    Py_XDECREF(at);
    return NULL;
}

/* table.insert(tx) of a new transaction (no branch, timer or end yet: nothing to file) */
static int
rq_insert(RqReq *r, PyObject *tx, PyObject *ident)
{
    PyObject *had = PyDict_SetDefault(r->by_key, r->key, tx);
    if (had == NULL)
        return -1;
    int dup = had != tx;
    if (!dup) {
        dup = PyDict_Contains(r->by_ident, ident);
        if (dup < 0)
            return -1;
        if (dup && PyDict_DelItem(r->by_key, r->key) < 0)
            return -1;
    }
    if (dup) {
        PyErr_Format(PyExc_KeyError, "transaction already exists: %R", r->key);
        return -1;
    }
    if (PyDict_SetItem(r->by_ident, ident, tx) < 0)
        return -1;
    PyObject *hook = PyObject_GetAttr(r->table, rq_hook);
    int out = hook == NULL ? -1 : tr_set(tx, tr_on_reschedule, hook);
    Py_XDECREF(hook);
    return out;
}

/* TransactionTable._reschedule(tx) after the branch was added (tx not ended, not marked) */
static int
rq_reschedule(RqReq *r, PyObject *tx)
{
    PyObject *marked = PyObject_GetAttr(r->table, rq_marked), *x = NULL;
    int out = -1;
    if (marked == NULL)
        return -1;
    if (!PyList_CheckExact(marked)) {
        PyErr_SetString(PyExc_TypeError, "tm: the table's marked entries are not a list");
        goto done;
    }
    if (tr_set(tx, tr_refile, Py_True) < 0 || PyList_Append(marked, tx) < 0)
        goto done;
    if (PyList_GET_SIZE(marked) == 1) {
        if ((x = PyObject_GetAttr(r->table, rq_on_refile)) == NULL)
            goto done;
        if (x != Py_None) {
            PyObject *y = PyObject_CallNoArgs(x);
            if (y == NULL)
                goto done;
            Py_DECREF(y);
        }
    }
    out = 0;
done:
    Py_DECREF(marked);
    Py_XDECREF(x);
    return out;
}

/* relay's steps once rq_decide took the request: t_relay's answer, NULL on error */
static PyObject *
rq_commit(PyObject *c, PyObject *ctx, RqReq *r)
{
    PyObject *svc = PyTuple_GET_ITEM(c, RQ_SVC), *msg = r->msg;
    PyObject *now = NULL, *clock = NULL, *callbacks = NULL, *settings = NULL, *timers_s = NULL,
             *proxy = NULL, *rcv = NULL, *force = NULL, *rproto = NULL, *src_ip = NULL,
             *src_port = NULL, *via = NULL, *params = NULL, *rport = NULL, *reply_dest = NULL,
             *dst_ip = NULL, *dst_port = NULL, *local_in = NULL, *request = NULL, *n = NULL,
             *ident = NULL, *to_tag = NULL, *tx = NULL, *tx_timers = NULL, *interval = NULL,
             *flags = NULL, *avps = NULL, *xavps = NULL, *stats = NULL, *counter = NULL,
             *edit = NULL, *top = NULL, *forced = NULL, *local = NULL, *d = NULL, *breq = NULL,
             *sent_by = NULL, *vparams = NULL, *branch = NULL, *ours = NULL, *wire = NULL,
             *b = NULL, *tx_branches = NULL, *bflags = NULL, *x = NULL, *result = NULL;
    PyObject *source = PyTuple_GET_ITEM(c, RQ_SOURCE);
    if ((clock = PyObject_GetAttr(svc, tr_clock)) == NULL
            || (now = PyObject_CallMethodNoArgs(clock, tr_now)) == NULL)
        goto done;
    /* req_state: made here when missing */
    if (r->state == NULL) {
        if ((r->state = rq_new(PyTuple_GET_ITEM(c, RQ_REQSTATE))) == NULL
                || (x = PyObject_CallNoArgs(PyTuple_GET_ITEM(c, RQ_CALLBACKS))) == NULL
                || tr_set(r->state, tr_callbacks, x) < 0
                || PyDict_SetItem(r->mod_state, rq_tm, r->state) < 0)
            goto done;
        Py_CLEAR(x);
    }
    /* open_transaction: reply_destination(msg.via, rcv, ctx.force_rport) */
    if ((callbacks = PyObject_GetAttr(r->state, tr_callbacks)) == NULL
            || (settings = PyObject_GetAttr(svc, tr_settings)) == NULL
            || (timers_s = PyObject_GetAttr(settings, tr_timers)) == NULL
            || (proxy = PyObject_GetAttr(settings, rq_proxy)) == NULL
            || (rcv = PyObject_GetAttr(ctx, rq_rcv)) == NULL
            || (force = PyObject_GetAttr(ctx, rq_force_rport)) == NULL
            || (rproto = PyObject_GetAttr(rcv, tr_proto)) == NULL
            || (src_ip = PyObject_GetAttr(rcv, rq_src_ip)) == NULL
            || (src_port = PyObject_GetAttr(rcv, rq_src_port)) == NULL
            || (via = PyObject_GetAttr(msg, tr_via)) == NULL)
        goto done;
    int udp = PyUnicode_Check(rproto) && PyUnicode_CompareWithASCIIString(rproto, "udp") == 0;
    if (!udp) {
        reply_dest = PyTuple_Pack(3, rproto, src_ip, src_port);
    } else {
        int yes = PyObject_IsTrue(force);
        if (yes == 0) {
            if ((params = PyObject_GetAttr(via, rq_params)) == NULL)
                goto done;
            yes = PySequence_Contains(params, rq_rport);
        }
        if (yes < 0)
            goto done;
        if (yes) {
            reply_dest = PyTuple_Pack(3, rq_udp, src_ip, src_port);
        } else {
            if ((rport = PyObject_GetAttr(via, tr_port)) == NULL)
                goto done;
            int has = PyObject_IsTrue(rport);
            if (has < 0)
                goto done;
            reply_dest = PyTuple_Pack(3, rq_udp, src_ip, has ? rport : rq_default_port);
        }
    }
    if (reply_dest == NULL || (dst_ip = PyObject_GetAttr(rcv, rq_dst_ip)) == NULL
            || (dst_port = PyObject_GetAttr(rcv, rq_dst_port)) == NULL
            || (local_in = PyTuple_Pack(2, dst_ip, dst_port)) == NULL)
        goto done;
    PyObject *dargs[4] = {PyTuple_GET_ITEM(reply_dest, 0), PyTuple_GET_ITEM(reply_dest, 1),
                          PyTuple_GET_ITEM(reply_dest, 2), local_in};
    Py_CLEAR(reply_dest);
    if ((reply_dest = PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_SVC_DEST), dargs, 4, NULL))
            == NULL
            || (request = PyObject_CallMethodNoArgs(msg, rq_copy)) == NULL)
        goto done;
    /* new_ident_and_tag() */
    if ((counter = PyObject_GetAttr(source, rq_counter)) == NULL
            || (n = PyIter_Next(counter)) == NULL)
        goto done;
    Py_CLEAR(counter);
    {
        PyObject *ip = PyObject_GetAttr(source, rq_ident_prefix);
        PyObject *tp = ip == NULL ? NULL : PyObject_GetAttr(source, rq_tag_prefix);
        PyObject *hex = tp == NULL ? NULL : PyNumber_ToBase(n, 16);
        PyObject *digits = hex == NULL ? NULL
            : PyUnicode_Substring(hex, 2, PyUnicode_GET_LENGTH(hex));
        if (digits != NULL) {
            ident = PyUnicode_FromFormat("%U%U", ip, digits);
            to_tag = ident == NULL ? NULL : PyUnicode_FromFormat("%U-%U", tp, digits);
        }
        Py_XDECREF(ip);
        Py_XDECREF(tp);
        Py_XDECREF(hex);
        Py_XDECREF(digits);
        if (to_tag == NULL)
            goto done;
    }
    /* TmTransaction(...): every field its __init__ sets */
    if ((tx = rq_new(PyTuple_GET_ITEM(c, RQ_TX_TYPE))) == NULL
            || (tx_timers = PyDict_New()) == NULL
            || (tx_branches = PyList_New(0)) == NULL
            || (interval = PyObject_GetAttr(timers_s, rq_retr_timer1)) == NULL
            || (flags = PyObject_GetAttr(ctx, rq_flags)) == NULL
            || (avps = PyObject_GetAttr(ctx, rq_avps)) == NULL
            || (xavps = PyObject_GetAttr(ctx, rq_xavps)) == NULL)
        goto done;
    if (avps == Py_None) {
        Py_SETREF(avps, PyDict_New());
        if (avps == NULL)
            goto done;
    }
    if (xavps == Py_None) {
        Py_SETREF(xavps, PyDict_New());
        if (xavps == NULL)
            goto done;
    }
    {
        PyObject *names[] = {rq_request, tr_method, tr_is_invite, tr_sink, tr_reply_dest,
                             tr_settings, tr_key, tr_state, tr_timers, tr_last_reply,
                             tr_last_status, tr_final_status, rq_interval, rq_proxy_settings,
                             rq_ident, rq_to_tag, tr_branches, rq_step, rq_canceled,
                             tr_deciding, rq_got_6xx, tr_on_reschedule, rq_filed_at, tr_refile,
                             rq_rcv, rq_created, tr_callbacks, rq_overrides, rq_flags, rq_avps,
                             rq_xavps, rq_force_rport, rq_drop_replies, rq_in_failure,
                             tr_counted_final, rq_dns_pending, rq_socket_edit,
                             rq_received_via};
        PyObject *values[] = {request, r->method, r->invite ? Py_True : Py_False, svc,
                              reply_dest, timers_s, r->key,
                              PyTuple_GET_ITEM(c, r->invite ? RQ_S_PROCEEDING : RQ_S_TRYING),
                              tx_timers, Py_None, tr_zero, tr_zero, interval, proxy, ident,
                              to_tag, tx_branches, tr_zero, Py_False, Py_False, Py_False,
                              PyTuple_GET_ITEM(c, RQ_NOT_FILED), Py_None, Py_False, rcv, now,
                              callbacks, PyTuple_GET_ITEM(c, RQ_NO_OVERRIDES), flags, avps,
                              xavps, force, Py_False, Py_False, Py_False, tr_zero, Py_None,
                              Py_None};
        if (rq_set_all(tx, names, values, (int)(sizeof(names) / sizeof(names[0]))) < 0)
            goto done;
    }
    /* the saved request gets the Via sent on; our replies' is made from the received one */
    if (r->via_text != Py_None) {
        if (tr_set(tx, rq_received_via, via) < 0
                || (x = PyObject_CallMethodOneArg(request, rq_replace_top_via, r->via_text))
                   == NULL)
            goto done;
        Py_CLEAR(x);
    }
    if (rq_insert(r, tx, ident) < 0
            || (stats = PyObject_GetAttr(svc, tr_stats)) == NULL
            || (counter = PyObject_GetAttr(stats, rq_uas)) == NULL
            || sl_count(counter) < 0
            || tr_set(r->state, rq_tx, tx) < 0)
        goto done;
    /* relay: tx.socket_edit, tx.flags (the callbacks are the state's own object) */
    edit = rq_get(r->extra, rq_socket_edit);
    if (edit == NULL && PyErr_Occurred())
        goto done;
    if (tr_set(tx, rq_socket_edit, edit != NULL ? edit : Py_None) < 0
            || tr_set(tx, rq_flags, flags) < 0)
        goto done;
    if (r->invite) { /* tx.start(now): the 100 Trying */
        if (r->via_text != Py_None) {
            PyObject *a[4] = {via, src_ip, src_port, force};
            top = PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_REPLY_VIA_OF), a, 4, NULL);
        } else {
            PyObject *a[4] = {request, src_ip, src_port, force};
            top = PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_REPLY_TOP_VIA), a, 4, NULL);
        }
        int k = top == NULL ? -1 : rq_trying(c, svc, r->core, tx, request, proxy, top,
                                             reply_dest);
        if (k == -2 || (k == -1 && top == NULL
                        && PyErr_ExceptionMatches(PyTuple_GET_ITEM(c, RQ_PARSE_ERROR)))) {
            /* relay's ``except SipParseError``: logged, -1 */
            PyObject *type, *exc, *tb;
            PyErr_Fetch(&type, &exc, &tb);
            PyErr_NormalizeException(&type, &exc, &tb);
            result = PyObject_CallOneArg(PyTuple_GET_ITEM(c, RQ_MALFORMED), exc);
            Py_XDECREF(type);
            Py_XDECREF(exc);
            Py_XDECREF(tb);
            goto done;
        }
        if (k < 0)
            goto done;
    }
    /* _send_branches: the one branch */
    Py_CLEAR(now);
    if ((now = PyObject_CallMethodNoArgs(clock, tr_now)) == NULL
            || (forced = PyObject_GetAttr(ctx, rq_send_socket)) == NULL)
        goto done;
    PyObject *port = PyTuple_GET_ITEM(r->hop, 2);
    {
        PyObject *a[4] = {ctx, rq_udp, forced, r->ip};
        if ((local = PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_SEND_LOCAL), a, 4, NULL))
                == NULL)
            goto done;
        PyObject *da[4] = {rq_udp, r->ip, port, local};
        if ((d = PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_RELAY_DEST), da, 4, NULL)) == NULL)
            goto done;
    }
    /* for_socket: rr's edit per socket (its copy), else the request itself */
    Py_CLEAR(edit);
    edit = rq_get(r->extra, rq_socket_edit);
    if (edit == NULL && PyErr_Occurred())
        goto done;
    if (edit != NULL && edit != Py_None) {
        PyObject *a[5] = {msg, rq_udp, forced, local};
        if ((breq = PyObject_Vectorcall(edit, a, 4, NULL)) == NULL)
            goto done;
        if (breq == Py_None)
            Py_SETREF(breq, Py_NewRef(msg));
    } else {
        breq = Py_NewRef(msg);
    }
    if ((sent_by = rq_sent_by(c, ctx, r->core, r->extra, local)) == NULL)
        goto done;
    {
        int on = 0;
        if (PyDict_GET_SIZE(r->extra)) {
            x = rq_get(r->extra, rq_add_local_rport);
            if (x == NULL && PyErr_Occurred())
                goto done;
            on = x == NULL ? 0 : PyObject_IsTrue(x);
            Py_CLEAR(x);
            if (on < 0)
                goto done;
        }
        vparams = Py_NewRef(on ? rq_rport_param : rq_empty_str);
    }
    /* add_branch(breq, d, now, sent_by=..., via_params=..., owned=False, top_via=via) */
    if ((branch = PyUnicode_FromFormat("z9hG4bK%U.0", ident)) == NULL
            || (ours = PyUnicode_FromFormat("SIP/2.0/UDP %U;branch=%U%U", sent_by, branch,
                                            vparams)) == NULL)
        goto done;
    {
        PyObject *a[3] = {breq, ours, r->via_text};
        if ((wire = PyObject_VectorcallMethod(rq_bytes_with_via, a,
                                              3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)) == NULL)
            goto done;
    }
    if ((b = rq_branch(c, r, svc, wire, d, timers_s, branch, now)) == NULL
            || PyList_Append(tx_branches, b) < 0
            || rq_reschedule(r, tx) < 0
            || (bflags = PyObject_GetAttr(ctx, rq_bflags)) == NULL
            || tr_set(b, rq_flags, bflags) < 0)
        goto done;
    int sent = tr_core_send_as(PyTuple_GET_ITEM(c, RQ_CORE_SEND), r->core, d, wire);
    if (sent < 0)
        goto done;
    if (!sent) { /* the transport refused it: the Python forms (logged, a local 503, -1) */
        PyObject *a[5] = {svc, ctx, tx, r->state, now};
        result = PyObject_Vectorcall(PyTuple_GET_ITEM(c, RQ_REFUSED), a, 5, NULL);
        goto done;
    }
    if (tr_set(ctx, tr_replied, Py_True) < 0)
        goto done;
    result = PyLong_FromLong(1);
done:
    Py_XDECREF(now);
    Py_XDECREF(clock);
    Py_XDECREF(callbacks);
    Py_XDECREF(settings);
    Py_XDECREF(timers_s);
    Py_XDECREF(proxy);
    Py_XDECREF(rcv);
    Py_XDECREF(force);
    Py_XDECREF(rproto);
    Py_XDECREF(src_ip);
    Py_XDECREF(src_port);
    Py_XDECREF(via);
    Py_XDECREF(params);
    Py_XDECREF(rport);
    Py_XDECREF(reply_dest);
    Py_XDECREF(dst_ip);
    Py_XDECREF(dst_port);
    Py_XDECREF(local_in);
    Py_XDECREF(request);
    Py_XDECREF(n);
    Py_XDECREF(ident);
    Py_XDECREF(to_tag);
    Py_XDECREF(tx);
    Py_XDECREF(tx_timers);
    Py_XDECREF(interval);
    Py_XDECREF(flags);
    Py_XDECREF(avps);
    Py_XDECREF(xavps);
    Py_XDECREF(stats);
    Py_XDECREF(counter);
    Py_XDECREF(edit);
    Py_XDECREF(top);
    Py_XDECREF(forced);
    Py_XDECREF(local);
    Py_XDECREF(d);
    Py_XDECREF(breq);
    Py_XDECREF(sent_by);
    Py_XDECREF(vparams);
    Py_XDECREF(branch);
    Py_XDECREF(ours);
    Py_XDECREF(wire);
    Py_XDECREF(b);
    Py_XDECREF(tx_branches);
    Py_XDECREF(bflags);
    Py_XDECREF(x);
    return result;
}

static PyObject *
rq_relay(PyObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *svc = PyTuple_GET_ITEM(c, RQ_SVC), *pure = PyTuple_GET_ITEM(c, RQ_PURE);
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "relay(ctx) takes one argument");
        return NULL;
    }
    RqReq r = {0};
    int usual = rq_decide(c, args[0], &r);
    if (usual <= 0) {
        rq_clear(&r);
        if (usual < 0) {
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                return NULL;
            PyErr_Clear(); /* the Python form meets it again, and raises it */
        }
        PyObject *a[2] = {svc, args[0]};
        return PyObject_Vectorcall(pure, a, 2, NULL);
    }
    PyObject *out = rq_commit(c, args[0], &r);
    rq_clear(&r);
    return out;
}

static PyMethodDef rq_relay_def = {
    "relay", (PyCFunction)(void (*)(void))rq_relay, METH_FASTCALL,
    "relay(ctx) -> relay.relay(svc, ctx)'s answer (compiled for the usual new request; see "
    "request_relayer)."};

static const InternedName rq_interned[] = {
    {&rq_mod_state, "mod_state"}, {&rq_tm, "tm"}, {&rq_tx, "tx"},
    {&rq_script_overrides, "script_overrides"}, {&rq_extra, "extra"},
    {&rq_path_vec, "path_vec"}, {&rq_onsend, "onsend"}, {&rq_dst_uri, "dst_uri"},
    {&rq_ruri, "ruri"}, {&rq_resolver, "resolver"}, {&rq_literals, "_literals"},
    {&rq_known, "known"}, {&rq_rcv, "rcv"}, {&rq_src_ip, "src_ip"},
    {&rq_src_port, "src_port"}, {&rq_dst_ip, "dst_ip"}, {&rq_dst_port, "dst_port"},
    {&rq_force_rport, "force_rport"}, {&rq_params, "params"}, {&rq_rport, "rport"},
    {&rq_proxy, "proxy"}, {&rq_copy, "copy"}, {&rq_counter, "counter"},
    {&rq_ident_prefix, "ident_prefix"}, {&rq_tag_prefix, "tag_prefix"},
    {&rq_request, "request"}, {&rq_interval, "_interval"},
    {&rq_retr_timer1, "retr_timer1"}, {&rq_proxy_settings, "proxy_settings"},
    {&rq_ident, "ident"}, {&rq_to_tag, "to_tag"}, {&rq_step, "step"},
    {&rq_canceled, "canceled"}, {&rq_got_6xx, "got_6xx"}, {&rq_filed_at, "filed_at"},
    {&rq_created, "created"}, {&rq_overrides, "overrides"}, {&rq_flags, "flags"},
    {&rq_avps, "avps"}, {&rq_xavps, "xavps"}, {&rq_drop_replies, "drop_replies"},
    {&rq_in_failure, "in_failure"}, {&rq_dns_pending, "dns_pending"},
    {&rq_socket_edit, "socket_edit"}, {&rq_received_via, "received_via"},
    {&rq_replace_top_via, "replace_top_via"}, {&rq_by_key, "_by_key"},
    {&rq_hook, "_hook"}, {&rq_uas, "uas"}, {&rq_auto_inv_100, "auto_inv_100"},
    {&rq_auto_inv_100_reason, "auto_inv_100_reason"},
    {&rq_send_socket, "send_socket"}, {&rq_add_local_rport, "add_local_rport"},
    {&rq_bytes_with_via, "bytes_with_via"}, {&rq_index, "index"},
    {&rq_cancel, "cancel"}, {&rq_request_slot, "_request"}, {&rq_data, "data"},
    {&rq_start, "_start"}, {&rq_ack, "ack"}, {&rq_max_inv, "max_inv_lifetime"},
    {&rq_fr_timer, "fr_timer"}, {&rq_max_noninv, "max_noninv_lifetime"},
    {&rq_t_e, "E"}, {&rq_t_f, "F"}, {&rq_marked, "_marked"},
    {&rq_on_refile, "on_refile"}, {&rq_bflags, "bflags"},
    {&rq_rpl_generated, "rpl_generated"}, {&rq_udp, "udp"},
    {&rq_advertised, "advertised"}, {&rq_adv_address, "advertised_address"},
    {&rq_adv_port, "advertised_port"}, {&rq_rport_param, ";rport"},
    {&rq_empty_str, ""}, {&rq_cookie, "z9hG4bK"}, {&rq_lower, "lower"},
    {&rq_call_id, "call_id"}, {&rq_number, "number"}, {&rq_3261, "3261"},
    {&rq_local_address, "local_address"},
};

static PyObject *
request_relayer(PyObject *module, PyObject *consts)
{
    if (msg_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "request_relayer: the message type is not set up");
        return NULL;
    }
    if (sl_names() < 0 || intern_names(tr_interned, sizeof(tr_interned) / sizeof(tr_interned[0]))
            < 0)
        return NULL;
    if ((tr_zero == NULL && (tr_zero = PyLong_FromLong(0)) == NULL)
            || (tr_hundred == NULL && (tr_hundred = PyLong_FromLong(100)) == NULL))
        return NULL;
    if (rq_false_float == NULL
            && ((rq_empty = PyTuple_New(0)) == NULL
                || (rq_empty_bytes = PyBytes_FromStringAndSize("", 0)) == NULL
                || (rq_default_port = PyLong_FromLong(5060)) == NULL
                || (rq_reply_kw = Py_BuildValue("(sssss)", "to_tag", "headers", "body",
                                                "content_type", "top_via")) == NULL
                || (rq_false_float = PyFloat_FromDouble(0.0)) == NULL))
        return NULL;
    return bind_compiled(&rq_relay_def, consts, RQ_KINDS,
                         "request_relayer(consts): see _fast.c's RQ_ fields", rq_interned,
                         sizeof(rq_interned) / sizeof(rq_interned[0]));
}

/* ---- serialising ---------------------------------------------------------------------------
 * message_bytes(lines, body[, at, drop, insert]) (edits.message_bytes_py) is the bytes of a
 * message whose head is ``lines`` with ``drop`` lines at ``at`` replaced by the str of
 * ``insert``: "\n".join(head) encoded UTF-8 with surrogateescape, then "\n\r\n", then body
 * (0 <= at <= at + drop <= len(lines), else IndexError). to_bytes of an edited message, a relayed
 * reply without our Via and a stateless forward with ours each make their bytes in this one call,
 * where Python built a list of the lines, joined it, encoded it and joined that with the body. */

/* Piece k of the head: lines[:at], then insert, then lines[at + drop:] (borrowed). */
static PyObject *
head_piece(PyObject *lines, PyObject *insert, Py_ssize_t at, Py_ssize_t drop, Py_ssize_t k)
{
    Py_ssize_t ni = PySequence_Fast_GET_SIZE(insert);
    if (k < at)
        return PyList_GET_ITEM(lines, k);
    if (k < at + ni)
        return PySequence_Fast_GET_ITEM(insert, k - at);
    return PyList_GET_ITEM(lines, k - ni + drop);
}

static PyObject *join_message(PyObject *lines, PyObject *body, Py_ssize_t at, Py_ssize_t drop,
                              PyObject *insert);

static PyObject *
message_bytes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if ((nargs != 2 && nargs != 5) || !PyList_Check(args[0]) || !PyBytes_Check(args[1]) ||
        (nargs == 5 && (!PyLong_Check(args[2]) || !PyLong_Check(args[3]) ||
                        !(PyList_Check(args[4]) || PyTuple_Check(args[4]))))) {
        PyErr_SetString(PyExc_TypeError, "message_bytes(lines: list, body: bytes[, at: int, "
                                         "drop: int, insert: list | tuple])");
        return NULL;
    }
    PyObject *lines = args[0], *body = args[1];
    PyObject *insert = nargs == 5 ? args[4] : empty_tuple;
    Py_ssize_t at = 0, drop = 0;
    if (nargs == 5) {
        at = PyLong_AsSsize_t(args[2]);
        drop = PyLong_AsSsize_t(args[3]);
        if (PyErr_Occurred())
            return NULL;
    }
    return join_message(lines, body, at, drop, insert);
}

/* message_bytes' work, its arguments checked for type (insert a list or tuple). */
static PyObject *
join_message(PyObject *lines, PyObject *body, Py_ssize_t at, Py_ssize_t drop, PyObject *insert)
{
    Py_ssize_t nl = PyList_GET_SIZE(lines);
    if (at < 0 || drop < 0 || at > nl || drop > nl - at) {
        PyErr_SetString(PyExc_IndexError, "message_bytes: at/drop outside the lines");
        return NULL;
    }
    Py_ssize_t count = nl - drop + PySequence_Fast_GET_SIZE(insert);
    /* the pieces' bytes: ASCII str as they are, others encoded (kept in enc until copied) */
    PyObject **enc = PyMem_Calloc((size_t)(count > 0 ? count : 1), sizeof(PyObject *));
    if (enc == NULL)
        return PyErr_NoMemory();
    PyObject *out = NULL;
    Py_ssize_t size = (count > 0 ? count - 1 : 0) + 3 + PyBytes_GET_SIZE(body);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *piece = head_piece(lines, insert, at, drop, k);
        if (!PyUnicode_Check(piece)) {
            PyErr_SetString(PyExc_TypeError, "message_bytes: a line is not a str");
            goto done;
        }
        if (PyUnicode_IS_ASCII(piece)) {
            size += PyUnicode_GET_LENGTH(piece);
            continue;
        }
        enc[k] = PyUnicode_AsEncodedString(piece, "utf-8", "surrogateescape");
        if (enc[k] == NULL)
            goto done;
        size += PyBytes_GET_SIZE(enc[k]);
    }
    out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        goto done;
    char *w = PyBytes_AS_STRING(out);
    for (Py_ssize_t k = 0; k < count; k++) {
        if (k > 0)
            *w++ = '\n';
        const char *p;
        Py_ssize_t n;
        if (enc[k] != NULL) {
            p = PyBytes_AS_STRING(enc[k]);
            n = PyBytes_GET_SIZE(enc[k]);
        }
        else {
            PyObject *piece = head_piece(lines, insert, at, drop, k);
            p = (const char *)PyUnicode_1BYTE_DATA(piece);
            n = PyUnicode_GET_LENGTH(piece);
        }
        memcpy(w, p, (size_t)n);
        w += n;
    }
    memcpy(w, "\n\r\n", 3);
    memcpy(w + 3, PyBytes_AS_STRING(body), (size_t)PyBytes_GET_SIZE(body));
done:
    for (Py_ssize_t k = 0; k < count; k++)
        Py_XDECREF(enc[k]);
    PyMem_Free(enc);
    return out;
}

/* ---- edits -----------------------------------------------------------------------------------
 * Compiled forms of SipMsg methods run for every relayed message: set_max_forwards (the
 * maxfwd module), prepend_via (tm's branch), bytes_without_top_via (a relayed reply), value_at
 * (the request gate, ~3 per request). Each does
 * the usual case here (every list and key of the usual types, the header's usual layout) and
 * hands anything else to its pure form (EditsMixin's, registered by message_type and kept as
 * message.methods_py), so errors and rare layouts are decided in one place. */
static PyObject *mf_lines[256]; /* "Max-Forwards: N\r", made on first use */

/* Whether msg's lines and keys are lists, its cache a dict and its body bytes (as always). */
static int
usual_state(PyObject *msg)
{
    PyObject *lines = *field(msg, F_LINES), *names = *field(msg, F_NAMES);
    PyObject *cache = *field(msg, F_CACHE), *body = *field(msg, F_BODY);
    return lines != NULL && PyList_CheckExact(lines) && names != NULL &&
           PyList_CheckExact(names) && cache != NULL && PyDict_CheckExact(cache) &&
           body != NULL && PyBytes_Check(body) &&
           PyList_GET_SIZE(lines) == PyList_GET_SIZE(names);
}

/* Index of the first key that is want (list.index), -1 when none; -2 when a key that is not
 * an exact str comes first (its == might say yes: the pure form decides). */
static Py_ssize_t
first_index(PyObject *keys, PyObject *want)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyUnicode_CheckExact(key))
            return -2;
        if (key_is(key, want))
            return i;
    }
    return -1;
}

static PyObject *
msg_set_max_forwards(PyObject *self, PyObject *n)
{
    if (!usual_state(self) || !PyLong_CheckExact(n))
        goto pure;
    int overflow;
    long v = PyLong_AsLongAndOverflow(n, &overflow);
    if (overflow || v < 0 || v > 255)
        goto pure; /* (the pure form's ValueError) */
    PyObject *lines = *field(self, F_LINES);
    Py_ssize_t i = first_index(*field(self, F_NAMES), s_max_forwards);
    if (i < 0)
        goto pure; /* none: the pure form adds the header */
    /* only the value changes, in the usual spelling; another keeps its name as written */
    PyObject *line = PyList_GET_ITEM(lines, i);
    if (!PyUnicode_Check(line))
        goto pure;
    int usual = PyUnicode_Tailmatch(line, s_mf_prefix, 0, PY_SSIZE_T_MAX, -1);
    if (usual < 0)
        return NULL;
    if (!usual)
        goto pure;
    if (mf_lines[v] == NULL && (mf_lines[v] = PyUnicode_FromFormat("Max-Forwards: %ld\r", v)) == NULL)
        return NULL;
    if (PyList_SetItem(lines, i, Py_NewRef(mf_lines[v])) < 0 ||
        PyDict_SetItem(*field(self, F_CACHE), s_max_forwards, n) < 0)
        return NULL;
    Py_XSETREF(*field(self, F_BUF), Py_NewRef(Py_None));
    Py_RETURN_NONE;
pure:
    return PyObject_CallFunctionObjArgs(pure_set_max_forwards, self, n, NULL);
}

/* Delete key from the dict when it is there; -1 on error. */
static int
forget(PyObject *cache, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(cache, key);
    if (v == NULL)
        return PyErr_Occurred() ? -1 : 0;
    return PyDict_DelItem(cache, key);
}

static PyObject *
msg_prepend_via(PyObject *self, PyObject *value)
{
    if (!usual_state(self) || !PyUnicode_CheckExact(value))
        goto pure;
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    Py_ssize_t cr = PyUnicode_FindChar(value, '\r', 0, n, 1);
    Py_ssize_t lf = cr == -1 ? PyUnicode_FindChar(value, '\n', 0, n, 1) : cr;
    if (lf != -1)
        goto pure; /* CR/LF: the pure form's ValueError (or an error of FindChar) */
    PyObject *names = *field(self, F_NAMES), *lines = *field(self, F_LINES);
    Py_ssize_t i = first_index(names, s_via);
    if (i == -2)
        goto pure;
    if (i == -1)
        i = 1; /* no Via: after the start line */
    PyObject *line = PyUnicode_FromFormat("Via: %U\r", value);
    if (line == NULL)
        return NULL;
    int rc = PyList_Insert(names, i, s_via) < 0 || PyList_Insert(lines, i, line) < 0;
    Py_DECREF(line);
    if (rc)
        return NULL;
    Py_XSETREF(*field(self, F_BUF), Py_NewRef(Py_None));
    PyObject *cache = *field(self, F_CACHE);
    if (forget(cache, s_via) < 0 || forget(cache, s_vias) < 0)
        return NULL;
    Py_RETURN_NONE;
pure:
    return PyObject_CallFunctionObjArgs(pure_prepend_via, self, value, NULL);
}

/* Whether line is a Via line in the usual spelling, "Via: <value>\r" of one value (no comma,
 * no quote, no other CR or LF, no blank around the value): the value EditsMixin's
 * _first_value_span finds is all between "Via: " and the CR. -1 on an error. */
static int
plain_via_line(PyObject *line)
{
    if (!PyUnicode_CheckExact(line))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(line);
    if (n < 7)
        return 0;
    int prefix = PyUnicode_Tailmatch(line, s_via_prefix, 0, 5, -1);
    if (prefix <= 0)
        return prefix;
    int kind = PyUnicode_KIND(line);
    const void *data = PyUnicode_DATA(line);
    Py_UCS4 first = PyUnicode_READ(kind, data, 5), last = PyUnicode_READ(kind, data, n - 2);
    if (PyUnicode_READ(kind, data, n - 1) != '\r' || first == ' ' || first == '\t' ||
        last == ' ' || last == '\t')
        return 0;
    for (Py_ssize_t k = 5; k < n - 1; k++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, k);
        if (ch == ',' || ch == '"' || ch == '\r' || ch == '\n')
            return 0;
    }
    return 1;
}

/* replace_top_via(value): the top Via's value replaced where it is (tm's transaction request
 * with ;received/;rport, once per relayed request; Kamailio edits that Via in place). The
 * usual case: the top Via line is plain_via_line's; any other (a comma, "v:", blanks, no Via)
 * is the pure form's. */
static PyObject *
msg_replace_top_via(PyObject *self, PyObject *value)
{
    if (!usual_state(self) || !PyUnicode_CheckExact(value))
        goto pure;
    int crlf = has_crlf(value);
    if (crlf < 0)
        return NULL;
    if (crlf)
        goto pure; /* the pure form's ValueError */
    PyObject *names = *field(self, F_NAMES), *lines = *field(self, F_LINES);
    Py_ssize_t i = first_index(names, s_via);
    if (i < 1)
        goto pure;
    int plain = plain_via_line(PyList_GET_ITEM(lines, i));
    if (plain < 0)
        return NULL;
    if (!plain)
        goto pure;
    PyObject *line = PyUnicode_FromFormat("Via: %U\r", value);
    if (line == NULL || PyList_SetItem(lines, i, line) < 0) /* (steals line) */
        return NULL;
    Py_XSETREF(*field(self, F_BUF), Py_NewRef(Py_None));
    PyObject *cache = *field(self, F_CACHE);
    if (forget(cache, s_via) < 0 || forget(cache, s_vias) < 0)
        return NULL;
    Py_RETURN_NONE;
pure:
    return PyObject_CallFunctionObjArgs(pure_replace_top_via, self, value, NULL);
}

/* value_at(index): the request gate reads each usual header's value by its index. */
static PyObject *
msg_value_at(PyObject *self, PyObject *index)
{
    PyObject *lines = *field(self, F_LINES);
    if (lines == NULL || !PyList_CheckExact(lines) || !PyLong_CheckExact(index))
        goto pure;
    Py_ssize_t i = PyLong_AsSsize_t(index);
    if (i < 0 || i >= PyList_GET_SIZE(lines)) {
        PyErr_Clear(); /* (an overflow: the pure form's IndexError) */
        goto pure;
    }
    return line_value(NULL, PyList_GET_ITEM(lines, i));
pure:
    return PyObject_CallFunctionObjArgs(pure_value_at, self, index, NULL);
}

/* Whether the str has a CR or LF (-1: an error). */
static int
has_crlf(PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_ssize_t cr = PyUnicode_FindChar(text, '\r', 0, n, 1);
    if (cr != -1)
        return cr == -2 ? -1 : 1;
    Py_ssize_t lf = PyUnicode_FindChar(text, '\n', 0, n, 1);
    return lf == -2 ? -1 : lf != -1;
}

/* bytes_with_via(ours, top=None): tm's every branch and every stateless forward. The usual
 * layouts: no top (our Via above the first Via line, or after the start line when there is
 * none); a top on a plain_via_line (its value replaced where it is, ours above it). */
static PyObject *
msg_bytes_with_via(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *ours = nargs >= 1 ? args[0] : NULL, *top = nargs == 2 ? args[1] : Py_None;
    if (nargs < 1 || nargs > 2 || !usual_state(self) || !PyUnicode_CheckExact(ours) ||
        !(top == Py_None || PyUnicode_CheckExact(top)))
        goto pure;
    int bad = has_crlf(ours);
    if (bad != 0 || (top != Py_None && (bad = has_crlf(top)) != 0)) {
        if (bad < 0)
            return NULL;
        goto pure; /* the pure form's ValueError */
    }
    PyObject *names = *field(self, F_NAMES), *lines = *field(self, F_LINES);
    Py_ssize_t i = first_index(names, s_via);
    if (i == -2 || (i == -1 && top != Py_None))
        goto pure;
    if (top != Py_None) {
        int plain = plain_via_line(PyList_GET_ITEM(lines, i));
        if (plain < 0)
            return NULL;
        if (!plain)
            goto pure;
    }
    PyObject *out = NULL, *insert = NULL;
    PyObject *our_line = PyUnicode_FromFormat("Via: %U\r", ours);
    if (our_line == NULL)
        return NULL;
    if (top == Py_None)
        insert = PyTuple_Pack(1, our_line);
    else {
        PyObject *top_line = PyUnicode_FromFormat("Via: %U\r", top);
        if (top_line != NULL)
            insert = PyTuple_Pack(2, our_line, top_line);
        Py_XDECREF(top_line);
    }
    if (insert != NULL)
        out = join_message(lines, *field(self, F_BODY), i < 0 ? 1 : i, top == Py_None ? 0 : 1,
                           insert);
    Py_XDECREF(insert);
    Py_DECREF(our_line);
    return out;
pure: {
    /* pure(self, *args) */
    PyObject *call[4] = {self, nargs >= 1 ? args[0] : NULL, nargs >= 2 ? args[1] : NULL,
                         nargs >= 3 ? args[2] : NULL};
    if (nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "bytes_with_via(ours, top=None)");
        return NULL;
    }
    return PyObject_Vectorcall(pure_bytes_with_via, call, (size_t)nargs + 1, NULL);
}
}

/* The Via line bytes_without_top_via keeps when its top line holds several values (a UA that
 * joins the Vias on one line: SIPp's [last_Via:]): "<name>: <the values after the first,
 * ", "-joined>\r", as the pure form writes it (split_commas, not strict, of line_value);
 * Py_None when the line holds one value only. NULL without an error for another shape
 * (folded, quoted, angle brackets, not ASCII, no colon): the pure form does it. */
static PyObject *
via_rest_line(PyObject *line)
{
    if (!PyUnicode_IS_ASCII(line))
        return NULL;
    const char *s = (const char *)PyUnicode_1BYTE_DATA(line);
    Py_ssize_t n = PyUnicode_GET_LENGTH(line), colon = -1;
    for (Py_ssize_t k = 0; k < n; k++)
        if (s[k] == ':') {
            colon = k;
            break;
        }
    if (colon < 0)
        return NULL;
    for (Py_ssize_t k = colon + 1; k < n; k++)
        if (s[k] == '\n' || s[k] == '"' || s[k] == '<')
            return NULL;
    /* two passes over the values: the size (name ": " ... "\r"), then the text */
    Py_ssize_t values = 0, size = colon + 3, pos, start, end, a, b;
    for (pos = colon + 1; next_part(s, n, ',', &pos, &start, &end, &a, &b);)
        if (b > a && values++ > 0)
            size += (b - a) + (values > 2 ? 2 : 0);
    if (values < 2)
        Py_RETURN_NONE;
    PyObject *out = PyUnicode_New(size, 127);
    if (out == NULL)
        return NULL;
    char *w = (char *)PyUnicode_1BYTE_DATA(out);
    memcpy(w, s, (size_t)colon);
    w += colon;
    *w++ = ':';
    *w++ = ' ';
    Py_ssize_t seen = 0;
    for (pos = colon + 1; next_part(s, n, ',', &pos, &start, &end, &a, &b);) {
        if (b <= a || seen++ == 0)
            continue; /* empty, or the first value: popped */
        if (seen > 2) {
            *w++ = ',';
            *w++ = ' ';
        }
        memcpy(w, s + a, (size_t)(b - a));
        w += b - a;
    }
    *w = '\r';
    return out;
}

static PyObject *
msg_bytes_without_top_via(PyObject *self, PyObject *unused)
{
    if (!usual_state(self))
        goto pure;
    PyObject *lines = *field(self, F_LINES);
    Py_ssize_t i = first_index(*field(self, F_NAMES), s_via);
    if (i < 0)
        goto pure; /* none: to_bytes */
    PyObject *line = PyList_GET_ITEM(lines, i);
    if (!PyUnicode_Check(line))
        goto pure;
    Py_ssize_t comma = PyUnicode_FindChar(line, ',', 0, PyUnicode_GET_LENGTH(line), 1);
    if (comma == -2)
        return NULL;
    if (comma != -1) { /* maybe several values on the line: the others stay on it */
        PyObject *rest = via_rest_line(line);
        if (rest == NULL) {
            if (PyErr_Occurred())
                return NULL;
            goto pure;
        }
        if (rest != Py_None) {
            PyObject *insert = PyTuple_Pack(1, rest);
            Py_DECREF(rest);
            if (insert == NULL)
                return NULL;
            PyObject *out = join_message(lines, *field(self, F_BODY), i, 1, insert);
            Py_DECREF(insert);
            return out;
        }
        Py_DECREF(rest);
    }
    return join_message(lines, *field(self, F_BODY), i, 1, empty_tuple);
pure:
    return PyObject_CallOneArg(pure_bytes_without_top_via, self);
}

/* lines_crc32(keys, lines) (reply.lines_crc32_py): zlib's CRC-32 of the first Call-ID, From,
 * CSeq and Via lines joined by '|', UTF-8 with surrogateescape; None when one is missing. The
 * stateless To-tag of every sl reply is made of it. */
static uint32_t crc_table[8][256]; /* slice-by-8: [k][b] is b's CRC followed by k zero bytes */

static void
crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int k = 1; k < 8; k++)
            crc_table[k][n] = crc_table[0][crc_table[k - 1][n] & 0xff] ^ (crc_table[k - 1][n] >> 8);
}

/* Eight bytes per step (the lines are ~60-100 bytes: the bytewise loop took ~1,900
 * instructions per reply); the same CRC as the bytewise table loop. */
static uint32_t
crc_update(uint32_t crc, const char *p, Py_ssize_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                             (uint32_t)b[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][b[4]] ^ crc_table[2][b[5]] ^ crc_table[1][b[6]] ^ crc_table[0][b[7]];
        b += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = crc_table[0][(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return crc;
}

/* crc over the line's UTF-8 (surrogateescape) bytes; 0 on success, -1 on error */
static int
crc_line(uint32_t *crc, PyObject *line)
{
    if (!PyUnicode_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "lines_crc32: a line is not a str");
        return -1;
    }
    if (PyUnicode_IS_ASCII(line)) {
        *crc = crc_update(*crc, (const char *)PyUnicode_1BYTE_DATA(line),
                          PyUnicode_GET_LENGTH(line));
        return 0;
    }
    PyObject *b = PyUnicode_AsEncodedString(line, "utf-8", "surrogateescape");
    if (b == NULL)
        return -1;
    *crc = crc_update(*crc, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return 0;
}

static PyObject *
lines_crc32(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "lines_crc32(keys: list, lines: list)");
        return NULL;
    }
    PyObject *keys = args[0], *lines = args[1];
    PyObject *wanted[4] = {s_call_id, s_from, s_cseq, s_via};
    Py_ssize_t n = PyList_GET_SIZE(keys);
    uint32_t crc = 0xFFFFFFFFu;
    for (int w = 0; w < 4; w++) {
        Py_ssize_t at = -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (key_is(PyList_GET_ITEM(keys, i), wanted[w])) {
                at = i;
                break;
            }
        }
        if (at < 0)
            Py_RETURN_NONE;
        if (at >= PyList_GET_SIZE(lines)) {
            PyErr_SetString(PyExc_IndexError, "lines_crc32: fewer lines than keys");
            return NULL;
        }
        if (w > 0)
            crc = crc_update(crc, "|", 1);
        if (crc_line(&crc, PyList_GET_ITEM(lines, at)) < 0)
            return NULL;
    }
    return PyLong_FromUnsignedLong(crc ^ 0xFFFFFFFFu);
}

/* The request gate's usual request (runtime.request_gate.check_request_headers), judged in
 * one call: no double space in the request line, a header layout the gate already judged usual
 * (layouts[tuple(keys)] a (via_at, to_at, cseq_at, to_once) with to_once true), that Via line
 * the parsed top Via alone (its value equals via.raw, no comma), of protocol SIP/2.0 (ASCII,
 * any case), and a CSeq value of two words. True: the gate has only msg.to left to read;
 * False: anything else (the gate's Python decides, raising its precise error). msg.via is
 * read after the request line as the gate does (its parse error propagates). */
static PyObject *s_lines_attr, *s_names_attr, *s_via_attr, *s_raw_attr, *s_protocol_attr;

static int
two_words(PyObject *value)
{
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    int words = 0, in_word = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int space = Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i));
        if (!space && !in_word)
            words++;
        in_word = !space;
    }
    return words == 2;
}

static PyObject *
usual_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "usual_request(msg, layouts: dict)");
        return NULL;
    }
    PyObject *msg = args[0];
    PyObject *result = Py_False;
    PyObject *lines = NULL, *names = NULL, *layout = NULL, *top = NULL, *raw = NULL;
    PyObject *protocol = NULL, *via = NULL, *cseq = NULL;
    lines = PyObject_GetAttr(msg, s_lines_attr);
    if (lines == NULL)
        goto error;
    names = PyObject_GetAttr(msg, s_names_attr);
    if (names == NULL)
        goto error;
    if (!PyList_Check(lines) || !PyList_Check(names) || PyList_GET_SIZE(lines) < 1 ||
        !PyUnicode_Check(PyList_GET_ITEM(lines, 0)))
        goto done;
    PyObject *first = PyList_GET_ITEM(lines, 0);
    {
        int kind = PyUnicode_KIND(first);
        const void *data = PyUnicode_DATA(first);
        Py_ssize_t n = PyUnicode_GET_LENGTH(first);
        for (Py_ssize_t i = 1; i < n; i++) {
            if (PyUnicode_READ(kind, data, i) == ' ' && PyUnicode_READ(kind, data, i - 1) == ' ')
                goto done;
        }
    }
    top = PyObject_GetAttr(msg, s_via_attr);
    if (top == NULL)
        goto error;
    layout = PyList_AsTuple(names);
    if (layout == NULL)
        goto error;
    PyObject *at = PyDict_GetItemWithError(args[1], layout);
    if (at == NULL) {
        if (PyErr_Occurred())
            goto error;
        goto done;
    }
    if (!PyTuple_Check(at) || PyTuple_GET_SIZE(at) != 4 ||
        !PyLong_Check(PyTuple_GET_ITEM(at, 0)) || !PyLong_Check(PyTuple_GET_ITEM(at, 2)) ||
        PyTuple_GET_ITEM(at, 3) != Py_True)
        goto done;
    Py_ssize_t via_at = PyLong_AsSsize_t(PyTuple_GET_ITEM(at, 0));
    Py_ssize_t cseq_at = PyLong_AsSsize_t(PyTuple_GET_ITEM(at, 2));
    Py_ssize_t count = PyList_GET_SIZE(lines);
    if (via_at < 0 || cseq_at < 0 || via_at >= count || cseq_at >= count) {
        if (PyErr_Occurred())
            goto error;
        goto done;
    }
    raw = PyObject_GetAttr(top, s_raw_attr);
    if (raw == NULL)
        goto error;
    protocol = PyObject_GetAttr(top, s_protocol_attr);
    if (protocol == NULL)
        goto error;
    via = line_value(module, PyList_GET_ITEM(lines, via_at));
    if (via == NULL)
        goto error;
    if (!PyUnicode_Check(raw) || !PyUnicode_Check(protocol))
        goto done;
    int same = PyUnicode_Compare(via, raw);
    if (same == -1 && PyErr_Occurred())
        goto error;
    if (same != 0)
        goto done;
    Py_ssize_t comma = PyUnicode_FindChar(via, ',', 0, PyUnicode_GET_LENGTH(via), 1);
    if (comma == -2)
        goto error;
    if (comma >= 0)
        goto done;
    /* protocol == "SIP/2.0" in any case; a non-ASCII one is left to str.upper() in Python */
    if (PyUnicode_GET_LENGTH(protocol) != 7 || PyUnicode_KIND(protocol) != PyUnicode_1BYTE_KIND)
        goto done;
    {
        const Py_UCS1 *p = PyUnicode_1BYTE_DATA(protocol);
        static const char want[] = "SIP/2.0";
        for (int i = 0; i < 7; i++) {
            Py_UCS1 c = p[i];
            if (c >= 'a' && c <= 'z')
                c = (Py_UCS1)(c - 'a' + 'A');
            if (c != (Py_UCS1)want[i])
                goto done;
        }
    }
    cseq = line_value(module, PyList_GET_ITEM(lines, cseq_at));
    if (cseq == NULL)
        goto error;
    if (two_words(cseq))
        result = Py_True;
done:
    Py_INCREF(result);
    goto cleanup;
error:
    result = NULL;
cleanup:
    Py_XDECREF(lines);
    Py_XDECREF(names);
    Py_XDECREF(layout);
    Py_XDECREF(top);
    Py_XDECREF(raw);
    Py_XDECREF(protocol);
    Py_XDECREF(via);
    Py_XDECREF(cseq);
    return result;
}

/* ---- UDP receive and the flusher's timer (kemi_core/transport/udp.py, outbox.py) ----------
 * A read-ahead UDP socket's readiness event read in one call: recvmmsg takes every datagram
 * waiting (UDP_SLOTS per system call) instead of a recvfrom each, an ioctl and a last read that
 * finds none, and each datagram comes back with its source's RecvInfo (looked up in the
 * socket's dict by the raw address, made by a callback the first time). The flusher's timerfd
 * is set without ctypes. Linux only; elsewhere udp.py and outbox.py keep their Python paths. */

#ifdef __linux__
#include <errno.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#define UDP_SLOTS 16
#define UDP_SLOT_SIZE 65536

static char *udp_slots;  /* UDP_SLOTS buffers of UDP_SLOT_SIZE, made at the first read */
static struct mmsghdr udp_hdrs[UDP_SLOTS];
static struct iovec udp_iov[UDP_SLOTS];
static struct sockaddr_storage udp_names[UDP_SLOTS];

/* udp_recv's work: the datagrams read appended to got as (bytes, rcv); rcv is sources[raw
 * source address], else make(raw) (make NULL: owner._source_raw, looked up at the first source
 * not in sources). -1 with an exception set on a failure. */
static PyObject *udp_s_source_raw;

static int
udp_read_into(long fd, Py_ssize_t most, PyObject *sources, PyObject *make, PyObject *owner,
              PyObject *got, int *error)
{
    if (udp_slots == NULL) {
        udp_slots = PyMem_RawMalloc((size_t)UDP_SLOTS * UDP_SLOT_SIZE);
        if (udp_slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (int i = 0; i < UDP_SLOTS; i++) {
            udp_iov[i].iov_base = udp_slots + (size_t)i * UDP_SLOT_SIZE;
            udp_iov[i].iov_len = UDP_SLOT_SIZE;
        }
    }
    PyObject *made = NULL;  /* owner's _source_raw when make is NULL (a new reference) */
    Py_ssize_t taken = 0;
    while (taken < most) {
        int want = most - taken < UDP_SLOTS ? (int)(most - taken) : UDP_SLOTS;
        for (int i = 0; i < want; i++) {
            struct msghdr *h = &udp_hdrs[i].msg_hdr;
            h->msg_name = &udp_names[i];
            h->msg_namelen = sizeof(udp_names[i]);
            h->msg_iov = &udp_iov[i];
            h->msg_iovlen = 1;
            h->msg_control = NULL;
            h->msg_controllen = 0;
            h->msg_flags = 0;
        }
        int n = recvmmsg((int)fd, udp_hdrs, (unsigned int)want, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            *error = errno;  /* counted as a read, as the Python loop does */
            taken++;
            continue;
        }
        /* every datagram and source copied out first: make() runs Python, where another
         * thread may read (into the same buffers) */
        Py_ssize_t first = PyList_GET_SIZE(got);
        for (int i = 0; i < n; i++) {
            PyObject *item = PyTuple_New(2);
            if (item == NULL)
                goto fail;
            PyObject *data = PyBytes_FromStringAndSize(udp_iov[i].iov_base, udp_hdrs[i].msg_len);
            PyObject *key = PyBytes_FromStringAndSize((const char *)&udp_names[i],
                                                      udp_hdrs[i].msg_hdr.msg_namelen);
            if (data != NULL)
                PyTuple_SET_ITEM(item, 0, data);
            if (key != NULL)
                PyTuple_SET_ITEM(item, 1, key);
            if (data == NULL || key == NULL) {
                Py_DECREF(item);
                goto fail;
            }
            int bad = PyList_Append(got, item);
            Py_DECREF(item);
            if (bad)
                goto fail;
        }
        for (Py_ssize_t at = first; at < PyList_GET_SIZE(got); at++) {
            PyObject *item = PyList_GET_ITEM(got, at);  /* (made here: not shared yet) */
            PyObject *key = PyTuple_GET_ITEM(item, 1);
            PyObject *rcv = PyDict_GetItemWithError(sources, key);
            if (rcv != NULL)
                Py_INCREF(rcv);
            else if (PyErr_Occurred())
                goto fail;
            else {
                if (make == NULL) {
                    if (udp_s_source_raw == NULL
                            && (udp_s_source_raw = PyUnicode_InternFromString("_source_raw"))
                               == NULL)
                        goto fail;
                    if ((made = PyObject_GetAttr(owner, udp_s_source_raw)) == NULL)
                        goto fail;
                    make = made;
                }
                if ((rcv = PyObject_CallOneArg(make, key)) == NULL)
                    goto fail;
            }
            PyTuple_SET_ITEM(item, 1, rcv);
            Py_DECREF(key);
        }
        taken += n;
        if (n < want)  /* nothing more waits: no read that would find none */
            break;
    }
    Py_XDECREF(made);
    return 0;
fail:  /* (got is the caller's to drop: the datagrams read are lost, as in Python) */
    Py_XDECREF(made);
    return -1;
}

/* udp_recv(fd, most, sources, make) -> (datagrams, errno): at most `most` datagrams waiting on
 * the non-blocking socket fd, each (bytes, sources[raw address] or make(raw address)); errno:
 * the last error a read reported (an ICMP error of an earlier send: the read goes on), else 0.
 * The buffers are the module's: the GIL is held from the read until the bytes are copied out
 * (before make runs). */
static PyObject *
udp_recv(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "udp_recv(fd, most, sources, make)");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    Py_ssize_t most = PyLong_AsSsize_t(args[1]);
    if ((fd == -1 || most == -1) && PyErr_Occurred())
        return NULL;
    PyObject *got = PyList_New(0);
    if (got == NULL)
        return NULL;
    int error = 0;
    if (udp_read_into(fd, most, args[2], args[3], NULL, got, &error) < 0) {
        Py_DECREF(got);
        return NULL;
    }
    return Py_BuildValue("(Ni)", got, error);
}

/* udp_source(raw) -> (host, port) of a raw socket address as the socket module gives it
 * (numeric host, "%scope" on a scoped IPv6 one) */
static PyObject *
udp_source(PyObject *self, PyObject *raw)
{
    if (!PyBytes_Check(raw) || PyBytes_GET_SIZE(raw) < (Py_ssize_t)sizeof(sa_family_t)
            || PyBytes_GET_SIZE(raw) > (Py_ssize_t)sizeof(struct sockaddr_storage)) {
        PyErr_SetString(PyExc_ValueError, "udp_source: not a socket address");
        return NULL;
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof(addr));
    memcpy(&addr, PyBytes_AS_STRING(raw), (size_t)PyBytes_GET_SIZE(raw));
    char host[NI_MAXHOST], port[NI_MAXSERV];
    int rc = getnameinfo((struct sockaddr *)&addr, (socklen_t)PyBytes_GET_SIZE(raw), host,
                         sizeof(host), port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0) {
        PyErr_Format(PyExc_ValueError, "udp_source: %s", gai_strerror(rc));
        return NULL;
    }
    return Py_BuildValue("(si)", host, atoi(port));
}

/* timer_set(fd, ns): timerfd_settime of a one-shot timer due in ns nanoseconds (0: cleared) */
static PyObject *
timer_set(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "timer_set(fd, ns)");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    long long ns = PyLong_AsLongLong(args[1]);
    if ((fd == -1 || ns == -1) && PyErr_Occurred())
        return NULL;
    struct itimerspec due = {{0, 0}, {(time_t)(ns / 1000000000), (long)(ns % 1000000000)}};
    if (timerfd_settime((int)fd, 0, &due, NULL) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}
#define UDP_SEND_MAX 64

static struct mmsghdr udp_out_hdrs[UDP_SEND_MAX];
static struct iovec udp_out_iov[UDP_SEND_MAX];
static struct sockaddr_storage udp_out_names[UDP_SEND_MAX];

/* The address (host, port) of a held send as a socket address of family, when it is a numeric
 * host of that family without a scope and the port a plain int; else 0 (sent from Python). */
static socklen_t udp_out_address_of(PyObject *host, PyObject *port, int family,
                                    struct sockaddr_storage *into);

static socklen_t
udp_out_address(PyObject *addr, int family, struct sockaddr_storage *into)
{
    if (!PyTuple_CheckExact(addr) || PyTuple_GET_SIZE(addr) != 2)
        return 0;
    return udp_out_address_of(PyTuple_GET_ITEM(addr, 0), PyTuple_GET_ITEM(addr, 1), family,
                              into);
}

/* udp_out_address of the address (host, port) given as its two parts */
static socklen_t
udp_out_address_of(PyObject *host, PyObject *port, int family, struct sockaddr_storage *into)
{
    if (!PyUnicode_CheckExact(host) || !PyLong_CheckExact(port) || !PyUnicode_IS_ASCII(host))
        return 0;
    long number = PyLong_AsLong(port);
    if (number < 0 || number > 65535) {
        PyErr_Clear();
        return 0;
    }
    const char *text = (const char *)PyUnicode_DATA(host);
    memset(into, 0, sizeof(*into));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)into;
        if (inet_pton(AF_INET, text, &in->sin_addr) != 1)
            return 0;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)number);
        return sizeof(*in);
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)into;
        if (inet_pton(AF_INET6, text, &in6->sin6_addr) != 1)
            return 0;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)number);
        return sizeof(*in6);
    }
    return 0;
}

/* udp_send(held, direct) -> None | [((send, data, addr), errno)]: send the held sends (send,
 * data, addr) in order. A run of sends of one socket found in direct ({send: (fd, family)}: a
 * UDP socket with nothing queued) goes out as one sendmmsg, and one the kernel refused is
 * returned with its errno (not sent, as sock.sendto raising); any other send, and one that
 * finds the send buffer full, is send(data, addr) (which queues it and takes its socket out of
 * direct: the rest of that socket's sends then queue behind it, in order). */
static PyObject *
udp_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "udp_send(held: list, direct: dict)");
        return NULL;
    }
    PyObject *held = args[0], *direct = args[1], *errors = NULL;
    Py_ssize_t i = 0;
    while (i < PyList_GET_SIZE(held)) {
        PyObject *item = PyList_GET_ITEM(held, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3) {
            PyErr_SetString(PyExc_TypeError, "udp_send: a held send is (send, data, addr)");
            goto fail;
        }
        PyObject *send = PyTuple_GET_ITEM(item, 0);
        PyObject *where = PyDict_GetItemWithError(direct, send);
        if (where == NULL && PyErr_Occurred())
            goto fail;
        int count = 0;
        long fd = -1, family = 0;
        if (where != NULL && PyTuple_CheckExact(where) && PyTuple_GET_SIZE(where) == 2) {
            fd = PyLong_AsLong(PyTuple_GET_ITEM(where, 0));
            family = PyLong_AsLong(PyTuple_GET_ITEM(where, 1));
            if (PyErr_Occurred())
                goto fail;
            /* the run: this socket's sends from i on, each a bytes and a numeric address */
            while (count < UDP_SEND_MAX && i + count < PyList_GET_SIZE(held)) {
                PyObject *next = PyList_GET_ITEM(held, i + count);
                if (!PyTuple_CheckExact(next) || PyTuple_GET_SIZE(next) != 3
                        || PyTuple_GET_ITEM(next, 0) != send
                        || !PyBytes_CheckExact(PyTuple_GET_ITEM(next, 1)))
                    break;
                socklen_t size = udp_out_address(PyTuple_GET_ITEM(next, 2), (int)family,
                                                 &udp_out_names[count]);
                if (size == 0)
                    break;
                PyObject *data = PyTuple_GET_ITEM(next, 1);
                udp_out_iov[count].iov_base = PyBytes_AS_STRING(data);
                udp_out_iov[count].iov_len = (size_t)PyBytes_GET_SIZE(data);
                struct msghdr *h = &udp_out_hdrs[count].msg_hdr;
                h->msg_name = &udp_out_names[count];
                h->msg_namelen = size;
                h->msg_iov = &udp_out_iov[count];
                h->msg_iovlen = 1;
                h->msg_control = NULL;
                h->msg_controllen = 0;
                h->msg_flags = 0;
                count++;
            }
        }
        if (count > 0) {
            int sent;
            do
                sent = sendmmsg((int)fd, udp_out_hdrs, (unsigned int)count, MSG_DONTWAIT);
            while (sent < 0 && errno == EINTR);
            if (sent > 0) {  /* (one that failed after them is retried: its error comes then) */
                i += sent;
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {  /* this one is not sent */
                PyObject *failed = Py_BuildValue("(Oi)", item, errno);
                if (failed == NULL)
                    goto fail;
                if (errors == NULL && (errors = PyList_New(0)) == NULL) {
                    Py_DECREF(failed);
                    goto fail;
                }
                int bad = PyList_Append(errors, failed);
                Py_DECREF(failed);
                if (bad)
                    goto fail;
                i++;
                continue;
            }
        }
        /* not a run (or the buffer is full: send() queues it) */
        Py_INCREF(item);
        PyObject *done = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(item, 0),
                                                      PyTuple_GET_ITEM(item, 1),
                                                      PyTuple_GET_ITEM(item, 2), NULL);
        Py_DECREF(item);
        if (done == NULL)
            goto fail;
        Py_DECREF(done);
        i++;
    }
    if (errors != NULL)
        return errors;
    Py_RETURN_NONE;
fail:
    Py_XDECREF(errors);
    return NULL;
}

/* ---- a datagram's way in and out of a worker, one call each (udp.py, endpoints.py) ----------
 * udp_event: UdpSocket._read_ready of a read-ahead socket (the read, the outbox held while
 * several datagrams are routed, receiver.py's deliver_datagram for each, the closed and
 * flush_late checks, the release). udp_out: WorkerEndpoints.send's usual UDP send (a bytes
 * datagram within limits to a numeric address, on a known socket with nothing queued), sent at
 * once or held as Outbox.add holds it. Every other shape goes to the Python forms, which stay
 * the reference (tests/unit/test_udp_cpath.py runs both on the same sequences). */

static PyObject *uo_s_fd, *uo_s_sources, *uo_s_receiver, *uo_s_limits, *uo_s_outbox,
    *uo_s_closed, *uo_s_hold, *uo_s_release, *uo_s_held, *uo_s_since, *uo_s_clock, *uo_s_flush,
    *uo_s_on_message, *uo_s_on_bad_message, *uo_s_read_error, *uo_s_src_ip, *uo_s_src_port,
    *uo_s_udp, *uo_s_own_udp, *uo_s_send_held, *uo_s_direct, *uo_s_lock, *uo_s_acquire,
    *uo_s_armed, *uo_s_flusher, *uo_s_arm, *uo_s_send_failed, *uo_s_hold_max,
    *uo_s_hold_seconds, *uo_s_udp_proto;

static int
uo_names(void)
{
    if (uo_s_udp_proto != NULL)
        return 0;
    static const struct { PyObject **at; const char *text; } names[] = {
        {&uo_s_fd, "fd"}, {&uo_s_sources, "sources"}, {&uo_s_receiver, "receiver"},
        {&uo_s_limits, "limits"}, {&uo_s_outbox, "outbox"}, {&uo_s_closed, "closed"},
        {&uo_s_hold, "hold"}, {&uo_s_release, "release"}, {&uo_s_held, "held"},
        {&uo_s_since, "since"}, {&uo_s_clock, "clock"}, {&uo_s_flush, "flush"},
        {&uo_s_on_message, "on_message"}, {&uo_s_on_bad_message, "on_bad_message"},
        {&uo_s_read_error, "read_error"}, {&uo_s_src_ip, "src_ip"},
        {&uo_s_src_port, "src_port"}, {&uo_s_udp, "udp"}, {&uo_s_own_udp, "own_udp"},
        {&uo_s_send_held, "send_held"}, {&uo_s_direct, "direct"}, {&uo_s_lock, "lock"},
        {&uo_s_acquire, "acquire"}, {&uo_s_armed, "armed"}, {&uo_s_flusher, "flusher"},
        {&uo_s_arm, "arm"}, {&uo_s_send_failed, "send_failed"}, {&uo_s_hold_max, "HOLD_MAX"},
        {&uo_s_hold_seconds, "HOLD_SECONDS"}, {&uo_s_udp_proto, "udp"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].at == NULL
                && (*names[i].at = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return 0;
}

/* the outbox module's constant name (HOLD_MAX, HOLD_SECONDS: read at each use, as the Python
 * forms read them), borrowed */
static PyObject *
uo_constant(PyObject *box_module, PyObject *name)
{
    PyObject *dict = PyModule_GetDict(box_module);  /* (borrowed; NULL: not a module) */
    if (dict == NULL)
        return NULL;
    PyObject *value = PyDict_GetItemWithError(dict, name);
    if (value == NULL && !PyErr_Occurred())
        PyErr_SetObject(PyExc_AttributeError, name);
    return value;
}

/* The exception being raised, normalized with its traceback on it (a new reference), none
 * left set; NULL with a SystemError naming ``where`` when there was none. Shared by the UDP
 * event (udp_event) and the request dispatcher (dq_). */
static PyObject *
caught_error(const char *where)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (value == NULL)
        PyErr_Format(PyExc_SystemError, "%s: an error without its exception", where);
    return value;
}

/* deliver_datagram(receiver, data, rcv, limits): keep-alives dropped, a parse error to
 * on_bad_message, a message to on_message; -1 with the exception of either set */
static int
uo_deliver(PyObject *receiver, PyObject *data, PyObject *rcv, PyObject *limits,
           PyObject *parse, PyObject *parse_error, PyObject *keepalives)
{
    if (PyBytes_GET_SIZE(data) <= 4) {
        int keepalive = PySequence_Contains(keepalives, data);
        if (keepalive != 0)
            return keepalive < 0 ? -1 : 0;
    }
    PyObject *argv[2] = {data, limits};
    PyObject *msg = PyObject_Vectorcall(parse, argv, 2, NULL);
    PyObject *done;
    if (msg == NULL) {
        if (!PyErr_ExceptionMatches(parse_error))
            return -1;
        PyObject *exc = caught_error("udp_event");
        if (exc == NULL)
            return -1;
        done = PyObject_CallMethodObjArgs(receiver, uo_s_on_bad_message, data, rcv, exc, NULL);
        Py_DECREF(exc);
    }
    else {
        done = PyObject_CallMethodObjArgs(receiver, uo_s_on_message, msg, rcv, NULL);
        Py_DECREF(msg);
    }
    if (done == NULL)
        return -1;
    Py_DECREF(done);
    return 0;
}

/* internal_error(exc, f"udp from {rcv.src_ip}:{rcv.src_port}") of the exception being raised */
static int
uo_internal(PyObject *internal, PyObject *rcv)
{
    PyObject *exc = caught_error("udp_event");
    if (exc == NULL)
        return -1;
    PyObject *where = NULL, *done = NULL;
    PyObject *ip = PyObject_GetAttr(rcv, uo_s_src_ip);
    PyObject *port = ip == NULL ? NULL : PyObject_GetAttr(rcv, uo_s_src_port);
    if (port != NULL)
        where = PyUnicode_FromFormat("udp from %S:%S", ip, port);
    if (where != NULL)
        done = PyObject_CallFunctionObjArgs(internal, exc, where, NULL);
    Py_DECREF(exc);
    Py_XDECREF(ip);
    Py_XDECREF(port);
    Py_XDECREF(where);
    if (done == NULL)
        return -1;
    Py_DECREF(done);
    return 0;
}

/* whether outbox holds sends that have waited HOLD_SECONDS (outbox.flush_late's test); -1 on
 * an error */
static int
uo_late(PyObject *outbox, PyObject *box_module)
{
    PyObject *held = PyObject_GetAttr(outbox, uo_s_held);
    if (held == NULL)
        return -1;
    int some = PyObject_IsTrue(held);
    Py_DECREF(held);
    if (some <= 0)
        return some;
    PyObject *now = PyObject_CallMethodNoArgs(outbox, uo_s_clock);
    PyObject *since = now == NULL ? NULL : PyObject_GetAttr(outbox, uo_s_since);
    PyObject *late = since == NULL ? NULL : uo_constant(box_module, uo_s_hold_seconds);
    PyObject *waited = late == NULL ? NULL : PyNumber_Subtract(now, since);
    int over = waited == NULL ? -1 : PyObject_RichCompareBool(waited, late, Py_GE);
    Py_XDECREF(now);
    Py_XDECREF(since);
    Py_XDECREF(waited);
    return over;
}

/* ---- the outbox's steps around a read-ahead event (kemi_core/transport/outbox.py) -----------
 * Outbox.hold and release and Flusher.arm and disarm step for step, for an outbox and flusher
 * of the module's own classes while the module's timer_set and udp_send are the compiled ones
 * (all read at each use, as the methods read them); any other case calls the method. */
static PyObject *uo_s_outbox_type, *uo_s_flusher_type, *uo_s_thread, *uo_s_holding,
    *uo_s_timer_set, *uo_s_udp_send, *uo_s_hold_ns, *uo_s_send_refused, *uo_s_disarm;

static int
uo_box_names(void)
{
    if (uo_s_disarm != NULL)
        return 0;
    static const struct { PyObject **at; const char *text; } names[] = {
        {&uo_s_outbox_type, "Outbox"}, {&uo_s_flusher_type, "Flusher"},
        {&uo_s_thread, "thread"}, {&uo_s_holding, "holding"}, {&uo_s_timer_set, "timer_set"},
        {&uo_s_udp_send, "udp_send"}, {&uo_s_hold_ns, "_HOLD_NS"},
        {&uo_s_send_refused, "send_refused"}, {&uo_s_disarm, "disarm"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].at == NULL
                && (*names[i].at = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return 0;
}

/* 1: obj is of the module's class ``cls`` and the module's timer_set and udp_send are the
 * compiled ones; 0: the method runs; -1: an error */
static int
uo_own(PyObject *obj, PyObject *cls, PyObject *box_module)
{
    PyObject *type = uo_constant(box_module, cls);
    PyObject *set = type == NULL ? NULL : uo_constant(box_module, uo_s_timer_set);
    PyObject *send = set == NULL ? NULL : uo_constant(box_module, uo_s_udp_send);
    if (send == NULL)
        return -1;
    return (PyObject *)Py_TYPE(obj) == type && PyCFunction_Check(set)
        && PyCFunction_GetFunction(set) == (PyCFunction)(void (*)(void))timer_set
        && PyCFunction_Check(send)
        && PyCFunction_GetFunction(send) == (PyCFunction)(void (*)(void))udp_send;
}

/* Flusher.arm (the module's _HOLD_NS) or disarm (0): its timerfd set; 0 done, -1 an error */
static int
uo_timer(PyObject *flusher, PyObject *box_module, int arm)
{
    int own = uo_own(flusher, uo_s_flusher_type, box_module);
    if (own <= 0) {
        PyObject *done = own < 0 ? NULL
            : PyObject_CallMethodNoArgs(flusher, arm ? uo_s_arm : uo_s_disarm);
        Py_XDECREF(done);
        return done == NULL ? -1 : 0;
    }
    long long ns = 0;
    if (arm) {
        PyObject *value = uo_constant(box_module, uo_s_hold_ns);
        if (value == NULL || ((ns = PyLong_AsLongLong(value)) == -1 && PyErr_Occurred()))
            return -1;
    }
    PyObject *fd_obj = PyObject_GetAttr(flusher, uo_s_fd);
    if (fd_obj == NULL)
        return -1;
    long fd = PyLong_AsLong(fd_obj);
    Py_DECREF(fd_obj);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    struct itimerspec due = {{0, 0}, {(time_t)(ns / 1000000000), (long)(ns % 1000000000)}};
    if (timerfd_settime((int)fd, 0, &due, NULL) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* outbox.lock, acquired (a new reference), or NULL */
static PyObject *
uo_lock(PyObject *outbox)
{
    PyObject *lock = PyObject_GetAttr(outbox, uo_s_lock);
    PyObject *taken = lock == NULL ? NULL : PyObject_CallMethodNoArgs(lock, uo_s_acquire);
    if (taken == NULL) {
        Py_XDECREF(lock);
        return NULL;
    }
    Py_DECREF(taken);
    return lock;
}

/* lock released (and its reference): the error being raised kept, unless the release fails
 * (then its error takes the place, as leaving a with block does); -1 when it failed */
static int
uo_unlock(PyObject *lock)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *released = PyObject_CallMethodNoArgs(lock, uo_s_release);
    Py_DECREF(lock);
    if (released == NULL) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    Py_DECREF(released);
    PyErr_Restore(type, value, tb);
    return 0;
}

/* Outbox.hold(): 1 holding, 0 not (no flusher), -1 an error */
static int
uo_begin_hold(PyObject *outbox, PyObject *box_module)
{
    if (uo_box_names() < 0)
        return -1;
    int own = uo_own(outbox, uo_s_outbox_type, box_module);
    if (own < 0)
        return -1;
    PyObject *flusher = own ? PyObject_GetAttr(outbox, uo_s_flusher) : NULL;
    if (own && flusher == NULL)
        return -1;
    if (own && flusher == Py_None) {
        Py_DECREF(flusher);
        return 0;
    }
    PyObject *thread = own ? PyObject_GetAttr(flusher, uo_s_thread) : NULL;
    Py_XDECREF(flusher);
    if (own && thread == NULL)
        return -1;
    int started = own && thread != Py_None;
    Py_XDECREF(thread);
    if (!started) {  /* (the method starts the flusher's thread) */
        PyObject *hold = PyObject_CallMethodNoArgs(outbox, uo_s_hold);
        int holding = hold == NULL ? -1 : PyObject_IsTrue(hold);
        Py_XDECREF(hold);
        return holding;
    }
    /* with self.lock: self.held = []; then the module's holding = self */
    PyObject *lock = uo_lock(outbox);
    if (lock == NULL)
        return -1;
    PyObject *held = PyList_New(0);
    int bad = held == NULL || PyObject_SetAttr(outbox, uo_s_held, held) < 0;
    Py_XDECREF(held);
    if (uo_unlock(lock) < 0 || bad)
        return -1;
    return PyObject_SetAttr(box_module, uo_s_holding, outbox) < 0 ? -1 : 1;
}

/* Outbox.release(): what is held sent in order, the flusher's timer cleared; 0 done, -1 an
 * error */
static int
uo_end_hold(PyObject *outbox, PyObject *box_module)
{
    int own = uo_own(outbox, uo_s_outbox_type, box_module);
    if (own <= 0) {
        PyObject *done = own < 0 ? NULL : PyObject_CallMethodNoArgs(outbox, uo_s_release);
        Py_XDECREF(done);
        return done == NULL ? -1 : 0;
    }
    if (PyObject_SetAttr(box_module, uo_s_holding, Py_None) < 0)
        return -1;
    PyObject *lock = uo_lock(outbox);
    if (lock == NULL)
        return -1;
    int out = -1;
    PyObject *armed = NULL, *flusher = NULL, *direct = NULL, *refused = NULL;
    /* held, self.held = self.held, None */
    PyObject *held = PyObject_GetAttr(outbox, uo_s_held);
    if (held == NULL || PyObject_SetAttr(outbox, uo_s_held, Py_None) < 0
            || (armed = PyObject_GetAttr(outbox, uo_s_armed)) == NULL)
        goto unlock;
    int set = PyObject_IsTrue(armed);
    if (set < 0)
        goto unlock;
    if (set) {  /* self._disarm(): armed = False, flusher.disarm() */
        if (PyObject_SetAttr(outbox, uo_s_armed, Py_False) < 0
                || (flusher = PyObject_GetAttr(outbox, uo_s_flusher)) == NULL
                || uo_timer(flusher, box_module, 0) < 0)
            goto unlock;
    }
    int some = PyObject_IsTrue(held);
    if (some < 0)
        goto unlock;
    if (some) {  /* self._send(held): udp_send, what it refused logged */
        if ((direct = PyObject_GetAttr(outbox, uo_s_direct)) == NULL)
            goto unlock;
        PyObject *sargs[2] = {held, direct};
        if ((refused = udp_send(NULL, sargs, 2)) == NULL)
            goto unlock;
        int any = PyObject_IsTrue(refused);
        if (any < 0)
            goto unlock;
        if (any) {
            PyObject *logged = PyObject_CallMethodOneArg(outbox, uo_s_send_refused, refused);
            if (logged == NULL)
                goto unlock;
            Py_DECREF(logged);
        }
    }
    out = 0;
unlock:
    if (uo_unlock(lock) < 0)
        out = -1;
    Py_XDECREF(held);
    Py_XDECREF(armed);
    Py_XDECREF(flusher);
    Py_XDECREF(direct);
    Py_XDECREF(refused);
    return out;
}

/* udp_event(sock, most, consts): a read-ahead UdpSocket's readiness event (_read_ready), consts
 * = (parse_datagram, SipParseError, internal_error, KEEPALIVES, the outbox module) */
static PyObject *
udp_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyTuple_CheckExact(args[2]) || PyTuple_GET_SIZE(args[2]) != 5) {
        PyErr_SetString(PyExc_TypeError, "udp_event(sock, most, consts)");
        return NULL;
    }
    if (uo_names() < 0)
        return NULL;
    PyObject *sock = args[0], *consts = args[2];
    PyObject *parse = PyTuple_GET_ITEM(consts, 0), *parse_error = PyTuple_GET_ITEM(consts, 1),
        *internal = PyTuple_GET_ITEM(consts, 2), *keepalives = PyTuple_GET_ITEM(consts, 3),
        *box_module = PyTuple_GET_ITEM(consts, 4);
    Py_ssize_t most = PyLong_AsSsize_t(args[1]);
    if (most == -1 && PyErr_Occurred())
        return NULL;
    PyObject *result = NULL, *got = NULL, *sources = NULL, *receiver = NULL, *limits = NULL,
        *outbox = NULL;
    int holding = 0, error = 0;
    PyObject *fd_obj = PyObject_GetAttr(sock, uo_s_fd);
    if (fd_obj == NULL)
        return NULL;
    long fd = PyLong_AsLong(fd_obj);
    Py_DECREF(fd_obj);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if ((sources = PyObject_GetAttr(sock, uo_s_sources)) == NULL)
        return NULL;
    if (!PyDict_Check(sources)) {
        PyErr_SetString(PyExc_TypeError, "udp_event: sock.sources is not a dict");
        goto done;
    }
    if ((got = PyList_New(0)) == NULL
            || udp_read_into(fd, most, sources, NULL, sock, got, &error) < 0)
        goto done;
    if (error) {  /* (logged, as _read_all does; the read went on) */
        PyObject *logged = PyObject_CallMethod(sock, "read_error", "i", error);
        if (logged == NULL)
            goto done;
        Py_DECREF(logged);
    }
    Py_ssize_t count = PyList_GET_SIZE(got);
    if (count == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if ((receiver = PyObject_GetAttr(sock, uo_s_receiver)) == NULL
            || (limits = PyObject_GetAttr(sock, uo_s_limits)) == NULL
            || (outbox = PyObject_GetAttr(sock, uo_s_outbox)) == NULL)
        goto done;
    if (count > 1) {  /* one datagram: nothing to hold sends for */
        holding = uo_begin_hold(outbox, box_module);
        if (holding < 0) {
            holding = 0;
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(got, i);
        PyObject *rcv = PyTuple_GET_ITEM(item, 1);
        if (uo_deliver(receiver, PyTuple_GET_ITEM(item, 0), rcv, limits, parse, parse_error,
                       keepalives) < 0) {
            /* the dispatcher guards; the last line of defence (Exception only, as in Python) */
            if (!PyErr_ExceptionMatches(PyExc_Exception) || uo_internal(internal, rcv) < 0)
                goto done;
        }
        PyObject *closed = PyObject_GetAttr(sock, uo_s_closed);
        if (closed == NULL)
            goto done;
        int gone = PyObject_IsTrue(closed);
        Py_DECREF(closed);
        if (gone != 0) {  /* closed inside the event: what is left is handed back */
            if (gone > 0 && i + 1 < count) {
                PyObject *left = PyObject_CallMethod(sock, "left_unread", "On", got, i + 1);
                if (left == NULL)
                    goto done;
                Py_DECREF(left);
            }
            if (gone > 0)
                result = Py_NewRef(Py_None);
            goto done;
        }
        if (holding) {
            int late = uo_late(outbox, box_module);
            if (late < 0)
                goto done;
            if (late) {
                PyObject *sent = PyObject_CallMethodNoArgs(outbox, uo_s_flush);
                if (sent == NULL)
                    goto done;
                Py_DECREF(sent);
            }
        }
    }
    result = Py_NewRef(Py_None);
done:
    if (holding) {  /* (finally) an error of release() replaces the one being raised */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (uo_end_hold(outbox, box_module) < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            Py_CLEAR(result);
        }
        else
            PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(got);
    Py_XDECREF(sources);
    Py_XDECREF(receiver);
    Py_XDECREF(limits);
    Py_XDECREF(outbox);
    return result;
}

/* Outbox.add(send, data, addr) of a holding outbox (held: its list): appended under its lock,
 * the flusher's timer set by the first send held, everything sent at HOLD_MAX */
static int
uo_hold(PyObject *outbox, PyObject *held, PyObject *send, PyObject *data, PyObject *addr,
        PyObject *box_module)
{
    PyObject *lock = PyObject_GetAttr(outbox, uo_s_lock);
    if (lock == NULL)
        return -1;
    PyObject *taken = PyObject_CallMethodNoArgs(lock, uo_s_acquire);
    if (taken == NULL) {
        Py_DECREF(lock);
        return -1;
    }
    Py_DECREF(taken);
    int ok = -1;
    PyObject *entry = PyTuple_Pack(3, send, data, addr);
    if (entry == NULL || PyList_Append(held, entry) < 0)
        goto unlock;
    PyObject *armed = PyObject_GetAttr(outbox, uo_s_armed);
    if (armed == NULL)
        goto unlock;
    int set = PyObject_IsTrue(armed);
    Py_DECREF(armed);
    if (set < 0)
        goto unlock;
    if (!set) {
        PyObject *now = PyObject_CallMethodNoArgs(outbox, uo_s_clock);
        if (now == NULL)
            goto unlock;
        int bad = PyObject_SetAttr(outbox, uo_s_since, now);
        Py_DECREF(now);
        if (bad || PyObject_SetAttr(outbox, uo_s_armed, Py_True) < 0)
            goto unlock;
        PyObject *flusher = PyObject_GetAttr(outbox, uo_s_flusher);
        if (flusher == NULL)
            goto unlock;
        int armed_now = uo_box_names() < 0 ? -1 : uo_timer(flusher, box_module, 1);
        Py_DECREF(flusher);
        if (armed_now < 0)
            goto unlock;
    }
    ok = 0;
unlock:
    Py_XDECREF(entry);
    if (uo_unlock(lock) < 0)
        return -1;
    if (ok < 0)
        return -1;
    PyObject *most = uo_constant(box_module, uo_s_hold_max);
    if (most == NULL)
        return -1;
    Py_ssize_t limit = PyLong_AsSsize_t(most);
    if (limit == -1 && PyErr_Occurred())
        return -1;
    if (PyList_GET_SIZE(held) >= limit) {
        PyObject *sent = PyObject_CallMethodNoArgs(outbox, uo_s_flush);
        if (sent == NULL)
            return -1;
        Py_DECREF(sent);
    }
    return 0;
}

/* udp_out_address_of, the last answer kept: replies to one source repeat its host (the same
 * str object, its RecvInfo's) and port */
static PyObject *uo_last_host;
static long uo_last_port = -1, uo_last_family;
static struct sockaddr_storage uo_last_to;
static socklen_t uo_last_size;

static socklen_t
uo_address(PyObject *host, PyObject *port, int family, struct sockaddr_storage *into)
{
    if (host == uo_last_host && family == uo_last_family && PyLong_CheckExact(port)) {
        long number = PyLong_AsLong(port);
        if (number == uo_last_port) {
            memcpy(into, &uo_last_to, uo_last_size);
            return uo_last_size;
        }
        if (number == -1)
            PyErr_Clear();
    }
    socklen_t size = udp_out_address_of(host, port, family, into);
    if (size != 0) {
        Py_INCREF(host);
        Py_XSETREF(uo_last_host, host);
        uo_last_port = PyLong_AsLong(port);  /* (a plain int in range: udp_out_address_of) */
        uo_last_family = family;
        memcpy(&uo_last_to, into, size);
        uo_last_size = size;
    }
    return size;
}

/* udp_out(endpoints, send, box_module, proto, host, port, data, local=None) -> bool:
 * WorkerEndpoints.send(proto, host, port, data, local) for the usual UDP send; send (the
 * Python method) takes every other one. */
static PyObject *
udp_out(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 3) {
        PyErr_SetString(PyExc_TypeError, "udp_out(endpoints, send, box_module, ...)");
        return NULL;
    }
    PyObject *endpoints = args[0], *python = args[1], *box_module = args[2];
    PyObject *tr = NULL, *send = NULL, *outbox = NULL, *direct = NULL, *held = NULL,
        *addr = NULL, *result = NULL;
    if (kwnames != NULL || nargs < 7 || nargs > 8)
        goto python;
    PyObject *proto = args[3], *host = args[4], *port = args[5], *data = args[6];
    PyObject *local = nargs == 8 ? args[7] : Py_None;
    if (!PyUnicode_CheckExact(proto) || PyUnicode_GET_LENGTH(proto) != 3
            || !PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) > 65507)
        goto python;
    if (uo_names() < 0)
        return NULL;
    int same = proto == uo_s_udp_proto ? 0 : PyUnicode_Compare(proto, uo_s_udp_proto);
    if (same == -1 && PyErr_Occurred())
        return NULL;
    if (same != 0)
        goto python;
    if (local != Py_None) {  /* the listen socket local names, else the worker's own */
        PyObject *udp = PyObject_GetAttr(endpoints, uo_s_udp);
        if (udp == NULL)
            return NULL;
        if (!PyDict_CheckExact(udp)) {
            Py_DECREF(udp);
            goto python;
        }
        tr = PyDict_GetItemWithError(udp, local);
        Py_XINCREF(tr);
        Py_DECREF(udp);
        if (tr == NULL && PyErr_Occurred())
            return NULL;
    }
    if (tr == NULL) {
        if ((tr = PyObject_GetAttr(endpoints, uo_s_own_udp)) == NULL)
            return NULL;
        if (tr == Py_None)
            goto python;
    }
    /* a socket with nothing queued, not closed: in its outbox's direct, with its fd, family */
    if ((send = PyObject_GetAttr(tr, uo_s_send_held)) == NULL
            || (outbox = PyObject_GetAttr(tr, uo_s_outbox)) == NULL
            || (direct = PyObject_GetAttr(outbox, uo_s_direct)) == NULL)
        goto done;
    if (!PyDict_CheckExact(direct))
        goto python;
    PyObject *where = PyDict_GetItemWithError(direct, send);
    if (where == NULL) {
        if (PyErr_Occurred())
            goto done;
        goto python;
    }
    if (!PyTuple_CheckExact(where) || PyTuple_GET_SIZE(where) != 2)
        goto python;
    long fd = PyLong_AsLong(PyTuple_GET_ITEM(where, 0));
    long family = PyLong_AsLong(PyTuple_GET_ITEM(where, 1));
    if (PyErr_Occurred())
        goto done;
    struct sockaddr_storage to;
    socklen_t size = uo_address(host, port, (int)family, &to);
    if (size == 0)
        goto python;
    if ((held = PyObject_GetAttr(outbox, uo_s_held)) == NULL
            || (addr = PyTuple_Pack(2, host, port)) == NULL)
        goto done;
    if (held == Py_None) {  /* UdpSocket.send_now */
        ssize_t sent;
        do
            sent = sendto((int)fd, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data),
                          MSG_DONTWAIT, (struct sockaddr *)&to, size);
        while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                goto python;  /* the send buffer is full: send_now queues it */
            PyObject *logged = PyObject_CallMethod(tr, "send_failed", "Oi", addr, errno);
            if (logged == NULL)
                goto done;
            Py_DECREF(logged);
        }
    }
    else if (!PyList_CheckExact(held))
        goto python;
    else if (uo_hold(outbox, held, send, data, addr, box_module) < 0)
        goto done;
    result = Py_NewRef(Py_True);
    goto done;
python:
    if (!PyErr_Occurred())
        result = PyObject_Vectorcall(python, args + 3, nargs - 3, kwnames);
done:
    Py_XDECREF(tr);
    Py_XDECREF(send);
    Py_XDECREF(outbox);
    Py_XDECREF(direct);
    Py_XDECREF(held);
    Py_XDECREF(addr);
    return result;
}
#endif /* __linux__ */

/* ---- registrar's usual REGISTER (kemi_usrloc/domain.py, kemi_registrar/update.py, reply.py) --
 * Compiled forms of usrloc's _change_one, registrar's one (with _refreshed) and contact_header:
 * the store's record changed by a REGISTER of one Contact refreshing the AOR's only binding,
 * and the Contact value of the 200. Each does what its Python form does; what they do not
 * cover here (an insert, an instance, another matching_mode) goes to the Python form. */

/* Contact's fields (kemi_usrloc.contact.Contact), Request's and Binding's (registrar) */
enum { C_RUID, C_AOR, C_URI, C_EXPIRES, C_Q, C_CALLID, C_CSEQ, C_FLAGS, C_CFLAGS, C_UA,
       C_RECEIVED, C_PATH, C_SOCKET, C_METHODS, C_INSTANCE, C_REG_ID, C_SERVER_ID,
       C_TCPCONN_ID, C_KEEPALIVE, C_LAST_MODIFIED, C_STATE, C_FIELDS };
enum { R_AOR, R_STAR, R_BINDINGS, R_CALLID, R_CSEQ, R_UA, R_RECEIVED, R_PATH, R_PATH_REPLY,
       R_PATH_UNSUPPORTED, R_SOCKET, R_CFLAGS, R_MAX_CONTACTS, R_FIELDS };
enum { B_URI, B_EXPIRES, B_Q, B_INSTANCE, B_REG_ID, B_METHODS, B_FIELDS };

/* tuple.__new__(ctype, t) of a tuple t (what usrloc's _as_contact does) */
static PyObject *
reg_as_type(PyTypeObject *ctype, PyObject *t)
{
    if (!PyTuple_Check(t)) {
        PyObject *a = PyTuple_Pack(1, t);
        if (a == NULL)
            return NULL;
        PyObject *made = PyTuple_Type.tp_new(ctype, a, NULL);
        Py_DECREF(a);
        return made;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    PyObject *made = ctype->tp_alloc(ctype, n);
    if (made == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(t, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(made, i, item);
    }
    return made;
}

static PyObject *
ul_change_one(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyType_Check(args[1])
            || !PyType_IsSubtype((PyTypeObject *)args[1], &PyTuple_Type)
            || !PyTuple_Check(args[3]) || PyTuple_GET_SIZE(args[3]) != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "ul_change_one(unchanged, contact_type, raw, (fn, arg))");
        return NULL;
    }
    PyObject *unchanged = args[0], *raw = args[2];
    PyObject *old = Py_None;
    if (raw != Py_None) {
        Py_ssize_t n = PyObject_Length(raw);
        if (n < 0)
            return NULL;
        if (n != 1)
            return PyTuple_Pack(2, unchanged, Py_None);
        PyObject *first = PySequence_GetItem(raw, 0);
        if (first == NULL)
            return NULL;
        old = reg_as_type((PyTypeObject *)args[1], first);
        Py_DECREF(first);
        if (old == NULL)
            return NULL;
    } else {
        Py_INCREF(old);
    }
    PyObject *call[2] = {old, PyTuple_GET_ITEM(args[3], 1)};
    PyObject *new = PyObject_Vectorcall(PyTuple_GET_ITEM(args[3], 0), call, 2, NULL);
    PyObject *out = NULL;
    if (new == NULL)
        goto done;
    if (new == Py_None) {
        out = PyTuple_Pack(2, unchanged, Py_None);
        goto done;
    }
    PyObject *plain = PySequence_Tuple(new);
    if (plain == NULL)
        goto done;
    PyObject *record = PyList_New(1);
    if (record == NULL) {
        Py_DECREF(plain);
        goto done;
    }
    PyList_SET_ITEM(record, 0, plain);
    PyObject *result = PyTuple_Pack(2, old, new);
    if (result != NULL) {
        out = PyTuple_Pack(2, record, result);
        Py_DECREF(result);
    }
    Py_DECREF(record);
done:
    Py_DECREF(old);
    Py_XDECREF(new);
    return out;
}

static PyObject *reg_s_matching_mode, *reg_s_server_id;

static int
reg_names(void)
{
    if (reg_s_server_id != NULL)
        return 0;
    reg_s_matching_mode = PyUnicode_InternFromString("matching_mode");
    reg_s_server_id = PyUnicode_InternFromString("server_id");
    return reg_s_matching_mode != NULL && reg_s_server_id != NULL ? 0 : -1;
}

static PyObject *
reg_one(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "reg_one(fallback, fl_mem, memory_only, cur, (req, now, flags, rules))");
        return NULL;
    }
    long fl_mem = PyLong_AsLong(args[1]), memory_only = PyLong_AsLong(args[2]);
    if (PyErr_Occurred() || reg_names() < 0)
        return NULL;
    PyObject *cur = args[3], *arg = args[4];
    if (cur == Py_None || !PyTuple_Check(cur) || PyTuple_GET_SIZE(cur) != C_FIELDS
            || !PyTuple_Check(arg) || PyTuple_GET_SIZE(arg) != 4)
        goto fallback;
    PyObject *req = PyTuple_GET_ITEM(arg, 0), *now = PyTuple_GET_ITEM(arg, 1);
    PyObject *rules = PyTuple_GET_ITEM(arg, 3);
    if (!PyTuple_Check(req) || PyTuple_GET_SIZE(req) != R_FIELDS)
        goto fallback;
    PyObject *bindings = PyTuple_GET_ITEM(req, R_BINDINGS);
    if (!PyTuple_Check(bindings) || PyTuple_GET_SIZE(bindings) < 1)
        goto fallback;
    PyObject *b = PyTuple_GET_ITEM(bindings, 0);
    if (!PyTuple_Check(b) || PyTuple_GET_SIZE(b) != B_FIELDS || PyTuple_GET_ITEM(b, B_INSTANCE) != Py_None)
        goto fallback;
    long cur_flags = PyLong_AsLong(PyTuple_GET_ITEM(cur, C_FLAGS));
    long flags = cur_flags == -1 && PyErr_Occurred() ? -1 : PyLong_AsLong(PyTuple_GET_ITEM(arg, 2));
    if (PyErr_Occurred()) {  /* (not ints a C long holds) */
        PyErr_Clear();
        goto fallback;
    }
    PyObject *mode = PyObject_GetAttr(rules, reg_s_matching_mode);
    if (mode == NULL)
        return NULL;
    int overflow = 0; /* (a mode no C long holds is not 0: the Python path judges it) */
    int plain = PyLong_CheckExact(mode) && PyLong_AsLongAndOverflow(mode, &overflow) == 0 &&
                !overflow;
    Py_DECREF(mode);
    if (!plain)  /* (matched by _matches) */
        goto fallback;
    int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(cur, C_URI), PyTuple_GET_ITEM(b, B_URI), Py_EQ);
    if (same <= 0)
        return same < 0 ? NULL : Py_NewRef(Py_None);
    int in_order = PyObject_RichCompareBool(PyTuple_GET_ITEM(req, R_CSEQ),
                                            PyTuple_GET_ITEM(cur, C_CSEQ), Py_GT);
    if (in_order == 0)
        in_order = PyObject_RichCompareBool(PyTuple_GET_ITEM(cur, C_CALLID),
                                            PyTuple_GET_ITEM(req, R_CALLID), Py_NE);
    if (in_order <= 0)
        return in_order < 0 ? NULL : Py_NewRef(Py_None);
    /* _refreshed(cur, b, req, now, flags, rules) */
    PyObject *expires = PyNumber_Add(now, PyTuple_GET_ITEM(b, B_EXPIRES));
    if (expires == NULL)
        return NULL;
    PyObject *new_flags = PyLong_FromLong((cur_flags & ~fl_mem) | (flags & memory_only ? fl_mem : 0));
    PyObject *server_id = PyObject_GetAttr(rules, reg_s_server_id);
    PyTypeObject *ctype = Py_TYPE(cur);
    PyObject *made = new_flags && server_id ? ctype->tp_alloc(ctype, C_FIELDS) : NULL;
    if (made == NULL) {
        Py_DECREF(expires);
        Py_XDECREF(new_flags);
        Py_XDECREF(server_id);
        return NULL;
    }
    PyObject *items[C_FIELDS] = {
        PyTuple_GET_ITEM(cur, C_RUID), PyTuple_GET_ITEM(cur, C_AOR), PyTuple_GET_ITEM(b, B_URI),
        expires, PyTuple_GET_ITEM(b, B_Q), PyTuple_GET_ITEM(req, R_CALLID),
        PyTuple_GET_ITEM(req, R_CSEQ), new_flags, PyTuple_GET_ITEM(req, R_CFLAGS),
        PyTuple_GET_ITEM(req, R_UA), PyTuple_GET_ITEM(req, R_RECEIVED),
        PyTuple_GET_ITEM(req, R_PATH), PyTuple_GET_ITEM(req, R_SOCKET),
        /* (b has no instance here: the binding keeps its instance and reg-id) */
        PyTuple_GET_ITEM(b, B_METHODS), PyTuple_GET_ITEM(cur, C_INSTANCE),
        PyTuple_GET_ITEM(cur, C_REG_ID), server_id, PyTuple_GET_ITEM(cur, C_TCPCONN_ID),
        PyTuple_GET_ITEM(cur, C_KEEPALIVE), now, PyTuple_GET_ITEM(cur, C_STATE),
    };
    for (int i = 0; i < C_FIELDS; i++) {
        Py_INCREF(items[i]);
        PyTuple_SET_ITEM(made, i, items[i]);
    }
    Py_DECREF(expires);
    Py_DECREF(new_flags);
    Py_DECREF(server_id);
    return made;
fallback:;
    PyObject *call[2] = {cur, arg};
    return PyObject_Vectorcall(args[0], call, 2, NULL);
}

/* append str(x) as an f-string would format it */
static int
reg_put(PyObject *parts, PyObject *x)
{
    PyObject *s = PyObject_Format(x, NULL);
    if (s == NULL)
        return -1;
    int bad = PyList_Append(parts, s);
    Py_DECREF(s);
    return bad;
}

static int
reg_put_text(PyObject *parts, const char *text)
{
    PyObject *s = PyUnicode_FromString(text);
    if (s == NULL)
        return -1;
    int bad = PyList_Append(parts, s);
    Py_DECREF(s);
    return bad;
}

/* contact_header(contacts, now, p) with p.received_param (a list of Contacts) */
static PyObject *
reg_contact_text(PyObject *contacts, PyObject *now, PyObject *received_param, PyObject *q_text)
{
    int with_received = PyObject_IsTrue(received_param);
    if (with_received < 0)
        return NULL;
    PyObject *whole_now = PyNumber_Long(now);
    if (whole_now == NULL)
        return NULL;
    PyObject *parts = PyList_New(0), *out = NULL, *left = NULL, *q_str = NULL, *held = NULL;
    if (parts == NULL)
        goto done;
    int any = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(contacts); i++) {
        /* (held: the comparisons and q_text below run Python code that could drop it) */
        PyObject *c = PyList_GET_ITEM(contacts, i);
        Py_XSETREF(held, Py_NewRef(c));
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) != C_FIELDS) {
            PyErr_SetString(PyExc_TypeError, "reg_contact_value: a contact is not a Contact");
            goto done;
        }
        PyObject *expires = PyTuple_GET_ITEM(c, C_EXPIRES);
        int set = PyObject_IsTrue(expires);
        if (set < 0)
            goto done;
        if (set) {
            int dead = PyObject_RichCompareBool(expires, now, Py_LE);
            if (dead < 0)
                goto done;
            if (dead)
                continue;
            left = PyNumber_Subtract(expires, whole_now);
        } else {
            left = PyLong_FromLong(0);
        }
        if (left == NULL)
            goto done;
        if (any && reg_put_text(parts, ", ") < 0)
            goto done;
        any = 1;
        if (reg_put_text(parts, "<") < 0 || reg_put(parts, PyTuple_GET_ITEM(c, C_URI)) < 0)
            goto done;
        PyObject *q = PyTuple_GET_ITEM(c, C_Q);
        PyObject *minus_one = PyLong_FromLong(-1);  /* Q_UNSPECIFIED (a cached small int) */
        int unspecified = PyObject_RichCompareBool(q, minus_one, Py_EQ);
        Py_DECREF(minus_one);
        if (unspecified < 0)
            goto done;
        if (!unspecified) {
            q_str = PyObject_CallOneArg(q_text, q);
            if (q_str == NULL || reg_put_text(parts, ">;q=") < 0 || reg_put(parts, q_str) < 0
                    || reg_put_text(parts, ";expires=") < 0)
                goto done;
            Py_CLEAR(q_str);
        } else if (reg_put_text(parts, ">;expires=") < 0) {
            goto done;
        }
        if (reg_put(parts, left) < 0)
            goto done;
        Py_CLEAR(left);
        PyObject *received = PyTuple_GET_ITEM(c, C_RECEIVED);
        int has = PyObject_IsTrue(received);
        if (has < 0)
            goto done;
        if (has && with_received
                && (reg_put_text(parts, ";") < 0 || reg_put(parts, received_param) < 0
                    || reg_put_text(parts, "=\"") < 0 || reg_put(parts, received) < 0
                    || reg_put_text(parts, "\"") < 0))
            goto done;
        PyObject *instance = PyTuple_GET_ITEM(c, C_INSTANCE);
        if (instance != Py_None
                && (reg_put_text(parts, ";+sip.instance=\"") < 0 || reg_put(parts, instance) < 0
                    || reg_put_text(parts, "\"") < 0))
            goto done;
        PyObject *reg_id = PyTuple_GET_ITEM(c, C_REG_ID);
        has = PyObject_IsTrue(reg_id);
        if (has < 0)
            goto done;
        if (has && (reg_put_text(parts, ";reg-id=") < 0 || reg_put(parts, reg_id) < 0))
            goto done;
    }
    if (!any) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    out = PyUnicode_Join(empty_key, parts);
done:
    Py_DECREF(whole_now);
    Py_XDECREF(held);
    Py_XDECREF(parts);
    Py_XDECREF(left);
    Py_XDECREF(q_str);
    return out;
}

static PyObject *
reg_contact_value(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "reg_contact_value(contacts, now, received_param, q_text)");
        return NULL;
    }
    return reg_contact_text(args[0], args[1], args[2], args[3]);
}

static PyObject *reg_s_received_param, *reg_s_flow_timer, *reg_s_date_header;

/* append (name, value) to headers; steals value */
static int
reg_add_header(PyObject *headers, const char *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    PyObject *pair = Py_BuildValue("(sN)", name, value);
    if (pair == NULL)
        return -1;
    int bad = PyList_Append(headers, pair);
    Py_DECREF(pair);
    return bad;
}

/* reply.ok_headers(contacts, now, p, path_reply): last_date is its [second, Date text]
 * cache, date_of(second) formats a Date */
static PyObject *
reg_ok_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyList_Check(args[1]) || PyList_GET_SIZE(args[1]) != 2
            || !PyList_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "reg_ok_headers(q_text, last_date, date_of, contacts, "
                        "now, p, path_reply)");
        return NULL;
    }
    if (reg_s_date_header == NULL) {
        reg_s_received_param = PyUnicode_InternFromString("received_param");
        reg_s_flow_timer = PyUnicode_InternFromString("flow_timer");
        reg_s_date_header = PyUnicode_InternFromString("date_header");
        if (!reg_s_received_param || !reg_s_flow_timer || !reg_s_date_header)
            return NULL;
    }
    PyObject *last_date = args[1], *now = args[4], *p = args[5], *path_reply = args[6];
    PyObject *headers = PyList_New(0);
    if (headers == NULL)
        return NULL;
    PyObject *received_param = PyObject_GetAttr(p, reg_s_received_param);
    if (received_param == NULL)
        goto fail;
    PyObject *value = reg_contact_text(args[3], now, received_param, args[0]);
    Py_DECREF(received_param);
    if (value == NULL)
        goto fail;
    int set = PyObject_IsTrue(value);
    if (set < 0) {
        Py_DECREF(value);
        goto fail;
    }
    if (set ? reg_add_header(headers, "Contact", value) < 0 : (Py_DECREF(value), 0))
        goto fail;
    set = PyObject_IsTrue(path_reply);
    if (set < 0 || (set && reg_add_header(headers, "Path", Py_NewRef(path_reply)) < 0))
        goto fail;
    PyObject *flow = PyObject_GetAttr(p, reg_s_flow_timer);
    if (flow == NULL)
        goto fail;
    PyObject *zero = PyLong_FromLong(0);
    set = PyObject_RichCompareBool(flow, zero, Py_GT);
    Py_DECREF(zero);
    if (set < 0 || (set && reg_add_header(headers, "Flow-Timer", PyObject_Str(flow)) < 0)) {
        Py_DECREF(flow);
        goto fail;
    }
    Py_DECREF(flow);
    PyObject *date = PyObject_GetAttr(p, reg_s_date_header);
    if (date == NULL)
        goto fail;
    set = PyObject_IsTrue(date);
    Py_DECREF(date);
    if (set < 0)
        goto fail;
    if (set) {
        PyObject *whole = PyNumber_Long(now);
        if (whole == NULL)
            goto fail;
        int same = PyObject_RichCompareBool(PyList_GET_ITEM(last_date, 0), whole, Py_EQ);
        if (same == 0) {
            PyObject *text = PyObject_CallOneArg(args[2], whole);
            if (text == NULL || PyList_GET_SIZE(last_date) != 2) {
                Py_XDECREF(text);
                Py_DECREF(whole);
                goto fail;
            }
            PyList_SetItem(last_date, 0, Py_NewRef(whole));
            PyList_SetItem(last_date, 1, text);  /* (steals text) */
        }
        Py_DECREF(whole);
        if (same < 0 || reg_add_header(headers, "Date",
                                       PyObject_Str(PyList_GET_ITEM(last_date, 1))) < 0)
            goto fail;
    }
    return headers;
fail:
    Py_DECREF(headers);
    return NULL;
}

static PyObject *reg_s_call_id, *reg_s_cseq, *reg_s_number;

/* getattr(msg, "call_id"), getattr(msg.cseq, "number"); NULL (error cleared) when either
 * raises or the Call-ID is not a str of at most 255 characters (the Python checks then) */
static int
reg_callid_cseq(PyObject *msg, PyObject **callid, PyObject **cseq)
{
    if (reg_s_number == NULL) {
        reg_s_call_id = PyUnicode_InternFromString("call_id");
        reg_s_cseq = PyUnicode_InternFromString("cseq");
        reg_s_number = PyUnicode_InternFromString("number");
        if (reg_s_call_id == NULL || reg_s_cseq == NULL || reg_s_number == NULL)
            return -1;
    }
    *cseq = NULL;
    *callid = PyObject_GetAttr(msg, reg_s_call_id);
    if (*callid == NULL || !PyUnicode_Check(*callid) || PyUnicode_GET_LENGTH(*callid) > 255)
        goto python;
    PyObject *value = PyObject_GetAttr(msg, reg_s_cseq);
    if (value == NULL)
        goto python;
    *cseq = PyObject_GetAttr(value, reg_s_number);
    Py_DECREF(value);
    if (*cseq == NULL)
        goto python;
    return 1;
python:
    PyErr_Clear();
    Py_CLEAR(*callid);
    return 0;
}

static PyObject *
reg_known_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyTuple_Check(args[1]) || !PyDict_Check(args[3])
            || !PyAnySet_Check(args[4]) || !PyType_Check(args[5])
            || !PyType_IsSubtype((PyTypeObject *)args[5], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "reg_known_request(msg, tail, bflags, requests, "
                        "phone_headers, request_type)");
        return NULL;
    }
    PyObject *msg = args[0], *tail = args[1], *bflags = args[2];
    PyObject *lines = PyObject_GetAttr(msg, s_lines_attr);
    if (lines == NULL)
        return NULL;
    PyObject *names = PyObject_GetAttr(msg, s_names_attr);
    PyObject *picked = NULL, *key = NULL, *out = NULL;
    if (names == NULL)
        goto done;
    if (!PyList_Check(lines) || !PyList_Check(names)
            || PyList_GET_SIZE(lines) != PyList_GET_SIZE(names)) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    /* msg.lines_of(phone_headers) */
    if ((picked = PyList_New(0)) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); i++) {
        int in = PySet_Contains(args[4], PyList_GET_ITEM(names, i));
        if (in < 0 || (in && PyList_Append(picked, PyList_GET_ITEM(lines, i)) < 0))
            goto done;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(tail);
    if ((key = PyTuple_New(n + 1)) == NULL)
        goto done;
    PyObject *head_lines = PyList_AsTuple(picked);
    if (head_lines == NULL)
        goto done;
    PyTuple_SET_ITEM(key, 0, head_lines);
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(key, i + 1, Py_NewRef(PyTuple_GET_ITEM(tail, i)));
    PyObject *known = PyDict_GetItemWithError(args[3], key);  /* borrowed */
    if (known == NULL) {
        if (!PyErr_Occurred())
            out = Py_NewRef(Py_None);
        goto done;
    }
    /* (head, middle, last) as parse_request keeps them */
    PyObject *head, *middle;
    if (!PyTuple_Check(known) || PyTuple_GET_SIZE(known) != 3
            || !PyTuple_Check(head = PyTuple_GET_ITEM(known, 0)) || PyTuple_GET_SIZE(head) != 3
            || !PyTuple_Check(middle = PyTuple_GET_ITEM(known, 1))
            || PyTuple_GET_SIZE(middle) != 6) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    Py_INCREF(known);  /* (the dict could lose it while a getter runs Python) */
    PyObject *callid, *cseq;
    int got = reg_callid_cseq(msg, &callid, &cseq);
    if (got <= 0) {
        Py_DECREF(known);
        if (got == 0)
            out = Py_NewRef(Py_None);
        goto done;
    }
    PyTypeObject *rtype = (PyTypeObject *)args[5];
    out = rtype->tp_alloc(rtype, R_FIELDS);
    if (out != NULL) {
        PyObject *items[R_FIELDS] = {
            PyTuple_GET_ITEM(head, 0), PyTuple_GET_ITEM(head, 1), PyTuple_GET_ITEM(head, 2),
            callid, cseq, PyTuple_GET_ITEM(middle, 0), PyTuple_GET_ITEM(middle, 1),
            PyTuple_GET_ITEM(middle, 2), PyTuple_GET_ITEM(middle, 3),
            PyTuple_GET_ITEM(middle, 4), PyTuple_GET_ITEM(middle, 5), bflags,
            PyTuple_GET_ITEM(known, 2),
        };
        for (int i = 0; i < R_FIELDS; i++)
            PyTuple_SET_ITEM(out, i, Py_NewRef(items[i]));
    }
    Py_DECREF(known);
    Py_DECREF(callid);
    Py_DECREF(cseq);
done:
    Py_DECREF(lines);
    Py_XDECREF(names);
    Py_XDECREF(picked);
    Py_XDECREF(key);
    return out;
}
static PyObject *reg_s_get, *reg_s_put, *reg_s_delete, *reg_kw_db;

/* txn.<name>(a[, b], db=db); db None: txn.<name>(a[, b]) (the transaction's default table, what
 * db=None means to lmdb), without the keyword, whose call builds a dict for it */
static PyObject *
reg_txn_call(PyObject *txn, PyObject *name, PyObject *a, PyObject *b, PyObject *db)
{
    PyObject *call[4] = {txn, a, b, db};
    if (db == Py_None)
        return PyObject_VectorcallMethod(name, call, (b == NULL ? 2 : 3)
                                         | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (b == NULL) {
        call[2] = db;
        return PyObject_VectorcallMethod(name, call, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                         reg_kw_db);
    }
    return PyObject_VectorcallMethod(name, call, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, reg_kw_db);
}

/* SharedTable.update_never's change of an entry without expiry, in its write transaction:
 * shared_never_update(consts, txn, db, kb, fn, arg, decoded) with consts = (general, decode,
 * dumps, protocol, DELETE, UNCHANGED, NEVER_PREFIX, DECODED_SIZE) -> fn's result, or
 * ``general`` (nothing done) when the entry has an expiry (the general path's); db None: the
 * transaction's default table (begun with db=). */
static PyObject *
shared_never_update(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != 8
            || !PyBytes_Check(PyTuple_GET_ITEM(args[0], 6))
            || (args[6] != Py_None && !PyDict_Check(args[6]))) {
        PyErr_SetString(PyExc_TypeError,
                        "shared_never_update(consts, txn, db, kb, fn, arg, decoded)");
        return NULL;
    }
    if (reg_kw_db == NULL) {
        reg_s_get = PyUnicode_InternFromString("get");
        reg_s_put = PyUnicode_InternFromString("put");
        reg_s_delete = PyUnicode_InternFromString("delete");
        reg_kw_db = Py_BuildValue("(s)", "db");
        if (!reg_s_get || !reg_s_put || !reg_s_delete || !reg_kw_db)
            return NULL;
    }
    PyObject *consts = args[0], *txn = args[1], *db = args[2], *kb = args[3];
    PyObject *decoded = args[6];
    PyObject *prefix = PyTuple_GET_ITEM(consts, 6);
    Py_ssize_t stamp = PyBytes_GET_SIZE(prefix);
    PyObject *buf = reg_txn_call(txn, reg_s_get, kb, NULL, db);
    if (buf == NULL)
        return NULL;
    PyObject *current = NULL, *pair = NULL, *out = NULL;
    if (buf != Py_None) {
        Py_buffer view;
        if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0)
            goto done;
        int never = view.len >= stamp && memcmp(view.buf, PyBytes_AS_STRING(prefix), stamp) == 0;
        PyBuffer_Release(&view);
        if (!never) {
            out = Py_NewRef(PyTuple_GET_ITEM(consts, 0));
            goto done;
        }
        /* _current(decoded, kb, buf, None) */
        PyObject *hit = decoded != Py_None ? PyDict_GetItemWithError(decoded, kb) : NULL;
        if (hit == NULL && PyErr_Occurred())
            goto done;
        if (hit != NULL && PyTuple_Check(hit) && PyTuple_GET_SIZE(hit) == 2) {
            Py_INCREF(hit);
            int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(hit, 0), buf, Py_EQ);
            if (same > 0)
                current = Py_NewRef(PyTuple_GET_ITEM(hit, 1));
            Py_DECREF(hit);
            if (same < 0)
                goto done;
        }
        if (current == NULL && (current = PyObject_CallOneArg(PyTuple_GET_ITEM(consts, 1), buf)) == NULL)
            goto done;
    } else {
        current = Py_NewRef(Py_None);
    }
    PyObject *call[2] = {current, args[5]};
    pair = PyObject_Vectorcall(args[4], call, 2, NULL);
    if (pair == NULL)
        goto done;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "update_never: fn must return (new, result)");
        goto done;
    }
    PyObject *new = PyTuple_GET_ITEM(pair, 0);
    if (new == PyTuple_GET_ITEM(consts, 4)) {  /* DELETE */
        if (decoded != Py_None) {
            PyObject *gone = PyObject_CallMethod(decoded, "pop", "OO", kb, Py_None);
            if (gone == NULL)
                goto done;
            Py_DECREF(gone);
        }
        if (buf != Py_None) {
            PyObject *r = reg_txn_call(txn, reg_s_delete, kb, NULL, db);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
    } else if (new != PyTuple_GET_ITEM(consts, 5)) {  /* not UNCHANGED */
        PyObject *dcall[2] = {new, PyTuple_GET_ITEM(consts, 3)};
        PyObject *pickled = PyObject_Vectorcall(PyTuple_GET_ITEM(consts, 2), dcall, 2, NULL);
        if (pickled == NULL)
            goto done;
        if (!PyBytes_Check(pickled)) {
            Py_DECREF(pickled);
            PyErr_SetString(PyExc_TypeError, "update_never: dumps must return bytes");
            goto done;
        }
        PyObject *data = PyBytes_FromStringAndSize(NULL, stamp + PyBytes_GET_SIZE(pickled));
        if (data != NULL) {
            memcpy(PyBytes_AS_STRING(data), PyBytes_AS_STRING(prefix), stamp);
            memcpy(PyBytes_AS_STRING(data) + stamp, PyBytes_AS_STRING(pickled),
                   PyBytes_GET_SIZE(pickled));
        }
        Py_DECREF(pickled);
        if (data == NULL)
            goto done;
        PyObject *r = reg_txn_call(txn, reg_s_put, kb, data, db);
        if (r == NULL) {
            Py_DECREF(data);
            goto done;
        }
        Py_DECREF(r);
        if (decoded != Py_None) {  /* (_remember) */
            Py_ssize_t most = PyLong_AsSsize_t(PyTuple_GET_ITEM(consts, 7));
            if (most < 0 && PyErr_Occurred()) {
                Py_DECREF(data);
                goto done;
            }
            if (PyDict_GET_SIZE(decoded) >= most)
                PyDict_Clear(decoded);
            PyObject *kept = PyTuple_Pack(2, data, new);
            int bad = kept == NULL || PyDict_SetItem(decoded, kb, kept) < 0;
            Py_XDECREF(kept);
            if (bad) {
                Py_DECREF(data);
                goto done;
            }
        }
        Py_DECREF(data);
    }
    out = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
done:
    Py_DECREF(buf);
    Py_XDECREF(current);
    Py_XDECREF(pair);
    return out;
}

/* ---- registrar's usual save in one call (kemi_registrar/save.py's save, usual.py) ------------
 * save(ctx, table, flags, uri) of the usual REGISTER: a request parse_request knows
 * (reg_known_request) with one Contact that does not remove its binding, on a table kept in the
 * shared store (usrloc db_mode 0, 1 with its write-through left to usrloc's write_one, or 2
 * with write-back's change, which sets the contact's sync state), its record changed as
 * usrloc's update_one changes it (SharedTable.update_never with the compiled change), then the 200 (reg_ok_headers) through sl's send_reply. Returns save()'s code, or None
 * when anything is not that shape: nothing has been changed then, and save()'s Python path runs
 * from the start. consts (kemi_registrar.usual.consts): */
enum { U_DOMAINS, U_MEM_DOMAIN, U_REQUESTS, U_PHONE_HEADERS, U_REQUEST, U_RULES, U_PARAMS,
       U_ACCEPTED, U_SEND_REPLY, U_Q_TEXT, U_LAST_DATE, U_DATE_OF, U_ONE, U_CHANGE_ONE,
       U_USE_DOMAIN, U_RANGED, U_Q_KEY, U_UL, U_NEVER_CONSTS, U_MAX_KEY, U_OK, U_DB_ERROR,
       U_DB_FAILED, U_CHANGE_ONE_BACK, U_FIELDS };

static PyObject *rs_msg, *rs_is_request, *rs_rcv, *rs_proto, *rs_dst_ip, *rs_dst_port,
    *rs_mod_state, *rs_bflags, *rs_core, *rs_clock, *rs_wall, *rs_table, *rs_db_mode, *rs_store,
    *rs_db, *rs_decoded, *rs_env, *rs_begin, *rs_end, *rs_commit, *rs_writing, *rs_stats,
    *rs_changed, *rs_view, *rs_slot, *rs_write_one, *rs_in_shm, *rs_update_never,
    *rs_surrogateescape, *reg_save_one;

static int
reg_save_names(void)
{
    if (rs_surrogateescape != NULL)
        return 0;
    struct { PyObject **at; const char *text; } names[] = {
        {&rs_msg, "msg"}, {&rs_is_request, "is_request"}, {&rs_rcv, "rcv"},
        {&rs_proto, "proto"}, {&rs_dst_ip, "dst_ip"}, {&rs_dst_port, "dst_port"},
        {&rs_mod_state, "mod_state"}, {&rs_bflags, "bflags"}, {&rs_core, "core"},
        {&rs_clock, "clock"}, {&rs_wall, "wall"}, {&rs_table, "table"},
        {&rs_db_mode, "db_mode"}, {&rs_store, "store"}, {&rs_db, "_db"},
        {&rs_decoded, "_decoded"}, {&rs_env, "_env"}, {&rs_begin, "begin"}, {&rs_end, "_end"},
        {&rs_commit, "commit"}, {&rs_writing, "_writing"}, {&rs_stats, "stats"},
        {&rs_changed, "changed"}, {&rs_view, "view"}, {&rs_slot, "slot"},
        {&rs_write_one, "write_one"}, {&rs_in_shm, "in_shm"},
        {&rs_update_never, "update_never"}, {&rs_surrogateescape, "surrogateescape"},
    };
    if (reg_save_one == NULL && (reg_save_one = PyLong_FromLong(1)) == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].at == NULL
                && (*names[i].at = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return 0;
}

/* SharedTable.update_never(aor, change_one, fn_arg)'s usual case on ``table``: the change in
 * its own write transaction, committed (a ShmTable: its own update_never, in C). Returns the
 * change's result, or a new reference to ``general`` when the store must take its Python path
 * (nothing changed then). */
static PyObject *
reg_save_store(PyObject *table, PyObject *aor, PyObject *change_one, PyObject *fn_arg,
               PyObject *never_consts, Py_ssize_t max_key)
{
    PyObject *general = PyTuple_GET_ITEM(never_consts, 0);
    if (!PyUnicode_Check(aor))
        return Py_NewRef(general);
    PyObject *kb = PyUnicode_AsEncodedString(aor, "utf-8", "surrogateescape");
    if (kb == NULL)
        return NULL;
    PyObject *db = NULL, *store = NULL, *txn = NULL, *decoded = NULL, *out = NULL;
    if (PyBytes_GET_SIZE(kb) == 0 || PyBytes_GET_SIZE(kb) > max_key) {  /* (update_never raises) */
        out = Py_NewRef(general);
        goto done;
    }
    if ((db = PyObject_GetAttr(table, rs_in_shm)) == NULL)
        goto done;
    if (db == Py_True) {  /* (kemi_core/shared/shmtable.py) */
        PyObject *call[4] = {table, aor, change_one, fn_arg};
        out = PyObject_VectorcallMethod(rs_update_never, call,
                                        4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        goto done;
    }
    Py_CLEAR(db);
    if ((db = PyObject_GetAttr(table, rs_db)) == NULL
            || (store = PyObject_GetAttr(table, rs_store)) == NULL
            || (decoded = PyObject_GetAttr(table, rs_decoded)) == NULL)
        goto done;
    if (db == Py_None) {  /* (not opened in this process yet: update_never opens it) */
        out = Py_NewRef(general);
        goto done;
    }
    /* store._begin_write(db): a nested write (update_never raises it) or an environment not
     * open in this process (it opens it) goes to the Python path */
    PyObject *x = PyObject_GetAttr(store, rs_writing);
    if (x == NULL)
        goto done;
    int writing = x != Py_False;
    Py_SETREF(x, writing ? NULL : PyObject_GetAttr(store, rs_env));
    if (writing || (x != NULL && x == Py_None)) {
        Py_XDECREF(x);
        out = Py_NewRef(general);
        goto done;
    }
    if (x == NULL || PyObject_SetAttr(store, rs_writing, Py_True) < 0) {
        Py_XDECREF(x);
        goto done;
    }
    PyObject *bcall[4] = {x, db, Py_None, Py_True};  /* env.begin(db, None, True) */
    txn = PyObject_VectorcallMethod(rs_begin, bcall, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(x);
    if (txn == NULL) {
        PyObject *type, *value, *trace;
        PyErr_Fetch(&type, &value, &trace);
        if (PyObject_SetAttr(store, rs_writing, Py_False) < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(trace);
        } else {
            PyErr_Restore(type, value, trace);
        }
        goto done;
    }
    PyObject *ncall[7] = {never_consts, txn, Py_None, kb, change_one, fn_arg, decoded};
    out = shared_never_update(NULL, ncall, 7);
    if (out != NULL) {
        /* commit (also when general: nothing was written), then _writing off, as
         * update_never does; an error goes to store._end(txn, exc) as there */
        PyObject *ccall[1] = {txn};
        PyObject *r = PyObject_VectorcallMethod(rs_commit, ccall,
                                                1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r != NULL) {
            Py_DECREF(r);
            if (PyObject_SetAttr(store, rs_writing, Py_False) < 0)
                Py_CLEAR(out);
            goto done;
        }
        Py_CLEAR(out);
    }
    {
        PyObject *type, *value, *trace;
        PyErr_Fetch(&type, &value, &trace);
        PyErr_NormalizeException(&type, &value, &trace);
        if (trace != NULL)
            PyException_SetTraceback(value, trace);
        PyObject *ecall[3] = {store, txn, value};
        PyObject *r = PyObject_VectorcallMethod(rs_end, ecall,
                                                3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r == NULL) {  /* (its own error: SharedStoreFull, raised from the first) */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(trace);
        } else {
            Py_DECREF(r);
            PyErr_Restore(type, value, trace);
        }
    }
done:
    Py_DECREF(kb);
    Py_XDECREF(db);
    Py_XDECREF(store);
    Py_XDECREF(txn);
    Py_XDECREF(decoded);
    return out;
}

/* counter.view[counter.slot] += 1 (Counter.inc in place) */
static int
reg_save_count(PyObject *counter)
{
    PyObject *view = PyObject_GetAttr(counter, rs_view);
    if (view == NULL)
        return -1;
    PyObject *slot = PyObject_GetAttr(counter, rs_slot), *value = NULL, *more = NULL;
    int bad = -1;
    if (slot != NULL && (value = PyObject_GetItem(view, slot)) != NULL
            && (more = PyNumber_Add(value, reg_save_one)) != NULL)
        bad = PyObject_SetItem(view, slot, more);
    Py_DECREF(view);
    Py_XDECREF(slot);
    Py_XDECREF(value);
    Py_XDECREF(more);
    return bad;
}

static PyObject *
reg_save_usual(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != U_FIELDS
            || !PyDict_Check(PyTuple_GET_ITEM(args[0], U_DOMAINS))
            || !PyTuple_Check(PyTuple_GET_ITEM(args[0], U_NEVER_CONSTS))
            || PyTuple_GET_SIZE(PyTuple_GET_ITEM(args[0], U_NEVER_CONSTS)) < 1) {
        PyErr_SetString(PyExc_TypeError, "reg_save_usual(consts, ctx, table, flags, uri)");
        return NULL;
    }
    if (reg_save_names() < 0)
        return NULL;
    PyObject *consts = args[0], *ctx = args[1], *flags_obj = args[3], *uri = args[4];
#define U(i) PyTuple_GET_ITEM(consts, (i))
    Py_ssize_t max_key = PyLong_AsSsize_t(U(U_MAX_KEY));
    if (max_key < 0 && PyErr_Occurred())
        return NULL;
    if (!PyLong_CheckExact(flags_obj))
        Py_RETURN_NONE;
    int overflow = 0;
    long flags = PyLong_AsLongAndOverflow(flags_obj, &overflow);
    if (flags == -1 && PyErr_Occurred())
        return NULL;
    /* not: a reply kept for reg_send_reply (0x02), an out-of-range flag word, random ranges */
    if (overflow || flags < 0 || flags & 0x02 || (!(flags & 0x08) && U(U_RANGED) != Py_False))
        Py_RETURN_NONE;
    PyObject *dom = PyDict_GetItemWithError(U(U_DOMAINS), args[2]);  /* borrowed */
    if (dom == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    if ((PyObject *)Py_TYPE(dom) != U(U_MEM_DOMAIN))
        Py_RETURN_NONE;
    Py_INCREF(dom);
    PyObject *msg = NULL, *rcv = NULL, *tail = NULL, *req = NULL, *now = NULL, *got = NULL;
    PyObject *x = NULL, *y = NULL, *out = NULL;
    /* usrloc's mode: the store, with write-through (1) unless memory-only (0x01), or
     * write-back (2: the change marks the sync state, the timer writes the row) */
    if ((x = PyObject_GetAttr(U(U_UL), rs_db_mode)) == NULL)
        goto done;
    long mode = PyLong_Check(x) ? PyLong_AsLong(x) : -1;
    if (mode == -1 && PyErr_Occurred())
        goto done;
    Py_CLEAR(x);
    int db_write = mode == 1 && !(flags & 0x01);
    if (mode != 0 && mode != 1 && mode != 2) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    if ((msg = PyObject_GetAttr(ctx, rs_msg)) == NULL || (x = PyObject_GetAttr(msg, rs_is_request)) == NULL)
        goto done;
    if (x != Py_True) {  /* (the Python path logs it) */
        out = Py_NewRef(Py_None);
        goto done;
    }
    Py_CLEAR(x);
    /* parse_request's memoised request: tail = (uri, use_domain, no_range, q_override,
     * rcv.proto, rcv.dst_ip, rcv.dst_port) */
    if ((x = PyObject_GetAttr(ctx, rs_mod_state)) == NULL)
        goto done;
    if (!PyDict_Check(x)) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *q_override = PyDict_GetItemWithError(x, U(U_Q_KEY));  /* borrowed from x */
    if (q_override == NULL && PyErr_Occurred())
        goto done;
    if ((tail = PyTuple_New(7)) == NULL)
        goto done;
    PyTuple_SET_ITEM(tail, 0, Py_NewRef(uri));
    PyTuple_SET_ITEM(tail, 1, Py_NewRef(U(U_USE_DOMAIN)));
    PyTuple_SET_ITEM(tail, 3, Py_NewRef(q_override != NULL ? q_override : Py_None));
    Py_CLEAR(x);
    if ((x = PyLong_FromLong(flags & 0x08)) == NULL)
        goto done;
    PyTuple_SET_ITEM(tail, 2, x);
    x = NULL;
    if ((rcv = PyObject_GetAttr(ctx, rs_rcv)) == NULL)
        goto done;
    PyObject *const rcv_names[3] = {rs_proto, rs_dst_ip, rs_dst_port};
    for (int i = 0; i < 3; i++) {
        if ((x = PyObject_GetAttr(rcv, rcv_names[i])) == NULL)
            goto done;
        PyTuple_SET_ITEM(tail, 4 + i, x);
        x = NULL;
    }
    if ((y = PyObject_GetAttr(ctx, rs_bflags)) == NULL)
        goto done;
    PyObject *kcall[6] = {msg, tail, y, U(U_REQUESTS), U(U_PHONE_HEADERS), U(U_REQUEST)};
    req = reg_known_request(NULL, kcall, 6);
    Py_CLEAR(y);
    if (req == NULL || req == Py_None) {
        if (req != NULL)
            out = Py_NewRef(Py_None);
        goto done;
    }
    /* save()'s update_one: one Contact that does not remove its binding, nothing to answer 420 */
    PyObject *bindings = PyTuple_GET_ITEM(req, R_BINDINGS), *b;
    if (!PyTuple_Check(bindings) || PyTuple_GET_SIZE(bindings) != 1
            || !PyTuple_Check(b = PyTuple_GET_ITEM(bindings, 0))
            || PyTuple_GET_SIZE(b) != B_FIELDS) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    int keep = PyObject_IsTrue(PyTuple_GET_ITEM(b, B_EXPIRES));
    int unsupported = keep > 0 ? PyObject_IsTrue(PyTuple_GET_ITEM(req, R_PATH_UNSUPPORTED)) : 0;
    if (keep < 0 || unsupported < 0)
        goto done;
    if (!keep || unsupported) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    /* now = int(ctx.core.clock.wall()) */
    if ((x = PyObject_GetAttr(ctx, rs_core)) == NULL || (y = PyObject_GetAttr(x, rs_clock)) == NULL)
        goto done;
    Py_SETREF(x, PyObject_CallMethodNoArgs(y, rs_wall));
    Py_CLEAR(y);
    if (x == NULL || (now = PyNumber_Long(x)) == NULL)
        goto done;
    Py_CLEAR(x);
    /* dom.table.update_never(req.aor, change_one, (one, (req, now, flags, rules))) */
    if ((y = PyTuple_Pack(4, req, now, flags_obj, U(U_RULES))) == NULL)
        goto done;
    Py_SETREF(y, PyTuple_Pack(2, U(U_ONE), y));
    if (y == NULL || (x = PyObject_GetAttr(dom, rs_table)) == NULL)
        goto done;
    got = reg_save_store(x, PyTuple_GET_ITEM(req, R_AOR),
                         U(mode == 2 ? U_CHANGE_ONE_BACK : U_CHANGE_ONE), y,
                         U(U_NEVER_CONSTS), max_key);
    Py_CLEAR(x);
    Py_CLEAR(y);
    if (got == NULL)
        goto done;
    if (got == PyTuple_GET_ITEM(U(U_NEVER_CONSTS), 0) || got == Py_None) {
        out = Py_NewRef(Py_None);  /* (general, or update_one's None: nothing changed) */
        goto done;
    }
    if (!PyTuple_Check(got) || PyTuple_GET_SIZE(got) != 2) {
        PyErr_SetString(PyExc_TypeError, "reg_save_usual: the change must give (old, new)");
        goto done;
    }
    /* the record was changed: from here on, save()'s steps after update_one */
    int inserted = PyTuple_GET_ITEM(got, 0) == Py_None;
    if (inserted) {  /* dom.stats.changed(0, 1) */
        if ((x = PyObject_GetAttr(dom, rs_stats)) == NULL)
            goto done;
        PyObject *zero = PyLong_FromLong(0);  /* (a cached small int) */
        y = zero == NULL ? NULL : PyObject_CallMethodObjArgs(x, rs_changed, zero, reg_save_one,
                                                             NULL);
        Py_XDECREF(zero);
        Py_CLEAR(x);
        if (y == NULL)
            goto done;
        Py_CLEAR(y);
    }
    if (db_write) {  /* dom.write_one(got); its UsrlocDbError answered as save() answers it */
        PyObject *wcall[2] = {dom, got};
        y = PyObject_VectorcallMethod(rs_write_one, wcall, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      NULL);
        if (y == NULL) {
            if (PyErr_ExceptionMatches(U(U_DB_ERROR))) {
                PyErr_Clear();
                PyObject *fcall[2] = {ctx, flags_obj};
                out = PyObject_Vectorcall(U(U_DB_FAILED), fcall, 2, NULL);
            }
            goto done;
        }
        Py_CLEAR(y);
    }
    if (reg_save_count(U(U_ACCEPTED)) < 0)
        goto done;
    /* reply.send(ctx, 200, "OK", reply.ok_headers([new], now, p, req.path_reply)) */
    if ((x = PyList_New(1)) == NULL)
        goto done;
    PyList_SET_ITEM(x, 0, Py_NewRef(PyTuple_GET_ITEM(got, 1)));
    PyObject *hcall[7] = {U(U_Q_TEXT), U(U_LAST_DATE), U(U_DATE_OF), x, now, U(U_PARAMS),
                          PyTuple_GET_ITEM(req, R_PATH_REPLY)};
    y = reg_ok_headers(NULL, hcall, 7);
    Py_CLEAR(x);
    if (y == NULL)
        goto done;
    PyObject *scall[4] = {ctx, PyTuple_GET_ITEM(U(U_OK), 0), PyTuple_GET_ITEM(U(U_OK), 1), y};
    x = PyObject_Vectorcall(U(U_SEND_REPLY), scall, 4, NULL);
    Py_CLEAR(y);
    if (x == NULL)
        goto done;
    Py_CLEAR(x);
    out = PyLong_FromLong(inserted ? 1 : 2);  /* RC_INSERTED, RC_UPDATED */
#undef U
done:
    Py_DECREF(dom);
    Py_XDECREF(msg);
    Py_XDECREF(rcv);
    Py_XDECREF(tail);
    Py_XDECREF(req);
    Py_XDECREF(now);
    Py_XDECREF(got);
    Py_XDECREF(x);
    Py_XDECREF(y);
    return out;
}

/* ---- Digest challenge ------------------------------------------------------------------------
 * kemi_auth's usual challenge value in one call (AuthApi.challenge; its Python path,
 * challenge_value, stays the reference the tests compare with):
 * digest_challenge(realm, key, flags, now, expire, nid, tail) ->
 * 'Digest realm="<realm>", nonce="<nonce>"<tail>', the nonce sealed as nonce_seal does from
 * the head version 1, flags, int(now), int(now) + expire, nid (8 bytes); None when the realm
 * needs quoting ('"' or '\\'), flags has an auth_checks bit (a bound nonce) or is not a
 * byte, or the times do not fit the head's 32 bits: the Python path makes that one. */
static PyObject *
digest_challenge(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyUnicode_Check(args[0]) || !PyLong_Check(args[2]) ||
        !PyFloat_Check(args[3]) || !PyLong_Check(args[4]) || !PyBytes_Check(args[5]) ||
        PyBytes_GET_SIZE(args[5]) != 8 || !PyUnicode_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "digest_challenge(realm: str, key: bytes, flags: int, "
                        "now: float, expire: int, nid: 8 bytes, tail: str)");
        return NULL;
    }
    if (nonce_key(args[1]) < 0)
        return NULL;
    PyObject *realm = args[0];
    Py_ssize_t n = PyUnicode_GET_LENGTH(realm);
    if (PyUnicode_FindChar(realm, '"', 0, n, 1) != -1 ||
        PyUnicode_FindChar(realm, '\\', 0, n, 1) != -1)
        Py_RETURN_NONE;
    int overflow, overflow2;
    long flags = PyLong_AsLongAndOverflow(args[2], &overflow);
    long long expire = PyLong_AsLongLongAndOverflow(args[4], &overflow2);
    if (PyErr_Occurred())
        return NULL;
    double now = PyFloat_AS_DOUBLE(args[3]);
    if (overflow || overflow2 || flags < 0 || flags > 255 || (flags & 0x0F) || expire < 0 ||
        expire > 0xFFFFFFFFLL || !(now >= 0.0 && now < 4294967296.0))
        Py_RETURN_NONE;
    uint64_t issued = (uint64_t)now; /* (int(now): truncated) */
    uint64_t expires = issued + (uint64_t)expire;
    if (expires > 0xFFFFFFFFULL)
        Py_RETURN_NONE;
    uint8_t head[NONCE_HEAD];
    head[0] = 1;
    head[1] = (uint8_t)flags;
    for (int i = 0; i < 4; i++) {
        head[2 + i] = (uint8_t)(issued >> (24 - 8 * i));
        head[6 + i] = (uint8_t)(expires >> (24 - 8 * i));
    }
    memcpy(head + 10, PyBytes_AS_STRING(args[5]), 8);
    Py_UCS1 nonce[NONCE_TEXT + 1];
    if (nonce_text(args[1], head, nonce) < 0)
        return NULL;
    PyObject *tail = args[6];
    if (!PyUnicode_IS_ASCII(realm) || !PyUnicode_IS_ASCII(tail)) {
        nonce[NONCE_TEXT] = 0;
        return PyUnicode_FromFormat("Digest realm=\"%U\", nonce=\"%s\"%U", realm,
                                    (const char *)nonce, tail);
    }
    /* the usual ASCII value copied in place (PyUnicode_FromFormat parses its format each time) */
    static const char before[] = "Digest realm=\"", middle[] = "\", nonce=\"";
    Py_ssize_t nb = sizeof(before) - 1, nm = sizeof(middle) - 1;
    Py_ssize_t nt = PyUnicode_GET_LENGTH(tail);
    PyObject *value = PyUnicode_New(nb + n + nm + NONCE_TEXT + 1 + nt, 127);
    if (value == NULL)
        return NULL;
    Py_UCS1 *o = PyUnicode_1BYTE_DATA(value);
    memcpy(o, before, (size_t)nb);
    o += nb;
    memcpy(o, PyUnicode_1BYTE_DATA(realm), (size_t)n);
    o += n;
    memcpy(o, middle, (size_t)nm);
    o += nm;
    memcpy(o, nonce, NONCE_TEXT);
    o += NONCE_TEXT;
    *o++ = '"';
    memcpy(o, PyUnicode_1BYTE_DATA(tail), (size_t)nt);
    return value;
}

/* KSR crossing (its section is at the end of the file) */
static PyObject *ksr_call_new(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* ---- message contexts (runtime/context.py) ------------------------------------------------
 * context_maker(cls, fields, params) returns message_context compiled: a callable making an
 * instance of the slotted class cls (attrs, no __init__ run) from up to len(params) positional
 * arguments, each stored in the field params[i] names; every other field gets its default.
 * fields: ((name, kind, default), ...) for every field of cls in order; kind 0: the default
 * itself, 1: a fresh list, 2: a fresh dict, 3: default() called, 4: required (no default).
 * Every message received makes one: the Python form stored 18 attributes and built 5
 * containers in bytecode. */
#define CTX_MAX_FIELDS 64

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls; /* strong */
    Py_ssize_t nfields, nparams, nrequired;
    Py_ssize_t offset[CTX_MAX_FIELDS];  /* of each field's slot in an instance */
    int kind[CTX_MAX_FIELDS];
    PyObject *value[CTX_MAX_FIELDS];    /* strong: the default (kinds 0 and 3) */
    Py_ssize_t param[CTX_MAX_FIELDS];   /* the field of each positional argument */
    vectorcallfunc vectorcall;
} ContextMaker;

static void
context_maker_dealloc(ContextMaker *self)
{
    Py_XDECREF(self->cls);
    for (Py_ssize_t i = 0; i < self->nfields; i++)
        Py_XDECREF(self->value[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
context_make(ContextMaker *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_SetString(PyExc_TypeError, "message_context takes positional arguments only");
        return NULL;
    }
    if (nargs < self->nrequired || nargs > self->nparams) {
        PyErr_Format(PyExc_TypeError, "message_context takes %zd to %zd arguments (%zd given)",
                     self->nrequired, self->nparams, nargs);
        return NULL;
    }
    PyTypeObject *cls = self->cls;
    PyObject *obj = cls->tp_alloc(cls, 0); /* slots all NULL */
    if (obj == NULL)
        return NULL;
    char *base = (char *)obj;
    for (Py_ssize_t i = 0; i < nargs; i++)
        *(PyObject **)(base + self->offset[self->param[i]]) = Py_NewRef(args[i]);
    for (Py_ssize_t f = 0; f < self->nfields; f++) {
        PyObject **slot = (PyObject **)(base + self->offset[f]);
        if (*slot != NULL)
            continue;
        PyObject *v;
        switch (self->kind[f]) {
        case 0:
            v = Py_NewRef(self->value[f]);
            break;
        case 1:
            v = PyList_New(0);
            break;
        case 2:
            v = PyDict_New();
            break;
        case 3:
            v = PyObject_CallNoArgs(self->value[f]);
            break;
        default: /* (a required field is a parameter within nrequired) */
            PyErr_SetString(PyExc_TypeError, "message_context: a required field is missing");
            v = NULL;
        }
        if (v == NULL) {
            Py_DECREF(obj);
            return NULL;
        }
        *slot = v;
    }
    return obj;
}

static PyTypeObject ContextMakerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kemi_core.sip._fast.ContextMaker",
    .tp_basicsize = sizeof(ContextMaker),
    .tp_dealloc = (destructor)context_maker_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(ContextMaker, vectorcall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "message_context compiled (context_maker)",
};

static PyObject *
context_maker(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0]) || !PyTuple_Check(args[1]) ||
        !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "context_maker(cls, fields, params)");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)args[0];
    PyObject *fields = args[1], *params = args[2];
    Py_ssize_t nfields = PyTuple_GET_SIZE(fields), nparams = PyTuple_GET_SIZE(params);
    if (nfields > CTX_MAX_FIELDS || nparams > nfields || cls->tp_alloc == NULL) {
        PyErr_SetString(PyExc_ValueError, "context_maker: too many fields");
        return NULL;
    }
    ContextMaker *self = PyObject_New(ContextMaker, &ContextMakerType);
    if (self == NULL)
        return NULL;
    self->cls = (PyTypeObject *)Py_NewRef(cls);
    self->nfields = 0;
    self->nparams = nparams;
    self->nrequired = 0;
    self->vectorcall = (vectorcallfunc)context_make;
    for (Py_ssize_t f = 0; f < nfields; f++) {
        PyObject *entry = PyTuple_GET_ITEM(fields, f);
        long kind = -1;
        if (PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 3 &&
            PyUnicode_Check(PyTuple_GET_ITEM(entry, 0)))
            kind = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
        PyObject *descr = kind >= 0 && kind <= 4
                              ? PyObject_GetAttr((PyObject *)cls, PyTuple_GET_ITEM(entry, 0))
                              : NULL;
        int slot = descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                   ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX &&
                   !(((PyMemberDescrObject *)descr)->d_member->flags & READONLY);
        if (slot)
            self->offset[f] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_XDECREF(descr);
        if (!slot) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "context_maker: a field that is no writable slot");
            Py_DECREF(self);
            return NULL;
        }
        self->kind[f] = (int)kind;
        self->value[f] = Py_NewRef(PyTuple_GET_ITEM(entry, 2));
        self->nfields = f + 1;
    }
    for (Py_ssize_t i = 0; i < nparams; i++) {
        Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(params, i));
        if (at < 0 || at >= nfields) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "context_maker: a parameter out of the fields");
            Py_DECREF(self);
            return NULL;
        }
        self->param[i] = at;
        if (self->kind[at] == 4)
            self->nrequired = i + 1;
    }
    for (Py_ssize_t f = 0; f < nfields; f++) { /* every required field must be a parameter */
        int given = 0;
        for (Py_ssize_t i = 0; i < self->nrequired; i++)
            given |= self->param[i] == f;
        if (self->kind[f] == 4 && !given) {
            PyErr_SetString(PyExc_ValueError, "context_maker: a required field is no parameter");
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}


/* ---- stateless replies (sl's sl_send_reply, runtime/core.py's send_reply) -----------------
 * stateless_replier(pure) returns reply.usual_reply compiled (pure: build_reply_py):
 * usual_reply(ctx, code, reason, tag_prefix, added) is (data, proto, host, port, local) for the
 * usual stateless reply: a request other than ACK, a code 101-699 but 3xx, nothing queued by
 * the script (ctx.extra without reply_headers or reply_body), a request with its Call-ID,
 * From, CSeq and Via; data is build_reply(msg, code, reason, "<tag_prefix>.<crc>", added),
 * sent to (host, port) per RFC 3261 18.2.2 / RFC 3581 (the Via's port, or the source port
 * over a stream, with ;rport or after force_rport) from local, the socket the request came to.
 * None for anything else, and where a step fails (the Via does not parse, ...): the Python
 * form decides then, raising or logging as it does. Every local reply of sl passes here: the
 * tag, the build and the destination were three Python frames and ~190 bytecodes. */
static PyObject *s_ctx_msg, *s_ctx_extra, *s_ctx_rcv, *s_reply_headers, *s_reply_body,
    *s_rcv_proto, *s_rcv_dst_ip, *s_rcv_dst_port, *s_via_params, *s_udp_lower, *s_port_5060;

/* The reply's destination (a new (proto, host, port, local) tuple) and, in *top_via, the top
 * Via's text as the reply carries it (a new str; NULL: the request's own): ;rport filled and
 * ;received=<source IP> after the last parameter for a bare ;rport, ;received alone for a host
 * that is not the source address (sip.via_stamp.reply_via's usual cases). NULL with no error:
 * take the Python way (force_rport, an old ;received, another ;rport, a quoted string...). */
static PyObject *
reply_target(PyObject *ctx, PyObject *msg, PyObject **top_via)
{
    PyObject *result = NULL, *via = NULL, *rcv = NULL, *proto = NULL, *host = NULL,
             *src_port = NULL, *params = NULL, *force = NULL, *dst_ip = NULL, *dst_port = NULL,
             *stamped_via = NULL;
    *top_via = NULL;
    via = PyObject_GetAttr(msg, s_via_attr);
    if (via == NULL || !PyObject_TypeCheck(via, via_type) || PyTuple_GET_SIZE(via) < 5)
        goto done;
    rcv = PyObject_GetAttr(ctx, s_ctx_rcv);
    proto = rcv == NULL ? NULL : PyObject_GetAttr(rcv, s_rcv_proto);
    host = proto == NULL ? NULL : PyObject_GetAttr(rcv, s_src_ip);
    src_port = host == NULL ? NULL : PyObject_GetAttr(rcv, s_src_port);
    dst_ip = src_port == NULL ? NULL : PyObject_GetAttr(rcv, s_rcv_dst_ip);
    dst_port = dst_ip == NULL ? NULL : PyObject_GetAttr(rcv, s_rcv_dst_port);
    force = dst_port == NULL ? NULL : PyObject_GetAttr(ctx, s_force_rport);
    if (force == NULL || !PyUnicode_CheckExact(proto))
        goto done;
    int forced = PyObject_IsTrue(force);
    int udp = PyUnicode_Compare(proto, s_udp_lower) == 0;
    if (forced != 0 || (!udp && PyErr_Occurred()))
        goto done; /* (after force_rport the reply's Via gets ;rport=: the Python way) */
    params = PyObject_GetAttr(via, s_via_params);
    int has_received = params == NULL ? -1 : PySequence_Contains(params, s_received);
    int has_rport = has_received != 0 ? -1 : PySequence_Contains(params, s_rport);
    PyObject *via_host = PyTuple_GET_ITEM(via, 2), *raw = PyTuple_GET_ITEM(via, 4);
    if (has_rport < 0 || !PyUnicode_CheckExact(via_host) || !PyUnicode_CheckExact(host) ||
        !PyUnicode_CheckExact(raw) || !PyLong_CheckExact(src_port))
        goto done;
    if (has_rport) {
        PyObject *filled = via_fill_rport(raw, params, src_port);
        if (filled == NULL)
            goto done;
        stamped_via = PyUnicode_FromFormat("%U;received=%U", filled, host);
        Py_DECREF(filled);
        if (stamped_via == NULL)
            goto done;
    } else if (PyUnicode_Compare(via_host, host) != 0) {
        stamped_via = PyUnicode_FromFormat("%U;received=%U", raw, host);
        if (stamped_via == NULL)
            goto done;
    }
    PyObject *port = src_port; /* borrowed */
    if (udp && !has_rport) {
        PyObject *via_port = PyTuple_GET_ITEM(via, 3);
        int truth = PyObject_IsTrue(via_port); /* via.port or 5060 */
        if (truth < 0)
            goto done;
        port = truth ? via_port : s_port_5060;
    }
    PyObject *local = PyTuple_Pack(2, dst_ip, dst_port);
    result = local == NULL ? NULL : PyTuple_New(4);
    if (result == NULL) {
        Py_XDECREF(local);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, Py_NewRef(proto));
    PyTuple_SET_ITEM(result, 1, Py_NewRef(host));
    PyTuple_SET_ITEM(result, 2, Py_NewRef(port));
    PyTuple_SET_ITEM(result, 3, local);
    *top_via = stamped_via;
    stamped_via = NULL;
done:
    if (result == NULL && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_Exception))
        PyErr_Clear(); /* (KeyboardInterrupt, SystemExit and the like go on up) */
    Py_XDECREF(stamped_via);
    Py_XDECREF(via);
    Py_XDECREF(rcv);
    Py_XDECREF(proto);
    Py_XDECREF(host);
    Py_XDECREF(src_port);
    Py_XDECREF(params);
    Py_XDECREF(force);
    Py_XDECREF(dst_ip);
    Py_XDECREF(dst_port);
    return result;
}

static PyObject *
join_pieces(const Piece *pieces, int n)
{
    Py_ssize_t size = 0;
    Py_UCS4 widest = 127;
    for (int i = 0; i < n; i++) {
        PyObject *str = pieces[i].str;
        if (str == NULL) {
            size += (Py_ssize_t)strlen(pieces[i].ascii);
            continue;
        }
        if (PyUnicode_READY(str) < 0)
            return NULL;
        size += PyUnicode_GET_LENGTH(str);
        if (PyUnicode_MAX_CHAR_VALUE(str) > widest)
            widest = PyUnicode_MAX_CHAR_VALUE(str);
    }
    PyObject *out = PyUnicode_New(size, widest);
    if (out == NULL)
        return NULL;
    int kind = PyUnicode_KIND(out);
    void *data = PyUnicode_DATA(out);
    Py_ssize_t at = 0;
    for (int i = 0; i < n; i++) {
        PyObject *str = pieces[i].str;
        if (str != NULL) {
            Py_ssize_t len = PyUnicode_GET_LENGTH(str);
            /* (the public copy: the private fast one is not exported by libpython 3.13) */
            if (PyUnicode_CopyCharacters(out, at, str, 0, len) < 0) {
                Py_DECREF(out);
                return NULL;
            }
            at += len;
        } else {
            for (const char *c = pieces[i].ascii; *c; c++)
                PyUnicode_WRITE(kind, data, at++, (Py_UCS4)(unsigned char)*c);
        }
    }
    return out;
}

static PyObject *
usual_reply(PyObject *pure, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || msg_type == NULL || via_type == NULL || !PyLong_CheckExact(args[1]) ||
        !PyUnicode_CheckExact(args[2]) || !PyUnicode_CheckExact(args[3]))
        Py_RETURN_NONE;
    PyObject *ctx = args[0], *prefix = args[3];
    int overflow = 0;
    long status = PyLong_AsLongAndOverflow(args[1], &overflow);
    if (overflow || status < 101 || status > 699 || (status >= 300 && status < 400))
        Py_RETURN_NONE;
    PyObject *result = NULL, *msg = NULL, *extra = NULL, *crc = NULL, *tag = NULL, *data = NULL,
             *target = NULL, *top_via = NULL;
    msg = PyObject_GetAttr(ctx, s_ctx_msg);
    extra = msg == NULL ? NULL : PyObject_GetAttr(ctx, s_ctx_extra);
    if (extra == NULL || !PyObject_TypeCheck(msg, msg_type) ||
        *field(msg, F_IS_REQUEST) != Py_True || !PyDict_CheckExact(extra))
        goto done;
    PyObject *method = *field(msg, F_METHOD), *keys = *field(msg, F_NAMES);
    PyObject *lines = *field(msg, F_LINES);
    if (method == NULL || !PyUnicode_CheckExact(method) ||
        PyUnicode_CompareWithASCIIString(method, "ACK") == 0 || keys == NULL ||
        lines == NULL || !PyList_CheckExact(keys) || !PyList_CheckExact(lines))
        goto done;
    int queued = PyDict_Contains(extra, s_reply_headers);
    if (queued == 0)
        queued = PyDict_Contains(extra, s_reply_body);
    if (queued != 0)
        goto done;
    PyObject *crc_args[2] = {keys, lines};
    crc = lines_crc32(NULL, crc_args, 2);
    if (crc == NULL || crc == Py_None)
        goto done;
    unsigned long sum = PyLong_AsUnsignedLong(crc);
    if (sum == (unsigned long)-1 && PyErr_Occurred())
        goto done;
    sum &= 0xFFFFFFFFul;
    char hex[9];
    for (int i = 7; i >= 0; i--, sum >>= 4)
        hex[i] = "0123456789abcdef"[sum & 0xf];
    hex[8] = '\0';
    Piece pieces[3] = {{prefix, NULL}, {NULL, "."}, {NULL, hex}};
    tag = join_pieces(pieces, 3);
    if (tag == NULL)
        goto done;
    target = reply_target(ctx, msg, &top_via);
    if (target == NULL)
        goto done;
    PyObject *build_args[6] = {msg, args[1], args[2], tag, args[4], top_via};
    data = build_reply(pure, build_args, 5, top_via == NULL ? NULL : s_top_via_kw);
    if (data == NULL || !PyBytes_CheckExact(data))
        goto done;
    result = PyTuple_Pack(5, data, PyTuple_GET_ITEM(target, 0), PyTuple_GET_ITEM(target, 1),
                          PyTuple_GET_ITEM(target, 2), PyTuple_GET_ITEM(target, 3));
done:
    /* the Python form decides (and raises what it raises); KeyboardInterrupt, SystemExit and
     * the like are no doubt about the reply: they go on up */
    if (result == NULL && (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_Exception))) {
        PyErr_Clear();
        result = Py_NewRef(Py_None);
    }
    Py_XDECREF(msg);
    Py_XDECREF(extra);
    Py_XDECREF(crc);
    Py_XDECREF(tag);
    Py_XDECREF(data);
    Py_XDECREF(target);
    Py_XDECREF(top_via);
    return result;
}

static PyMethodDef usual_reply_def = {
    "usual_reply", (PyCFunction)(void (*)(void))usual_reply, METH_FASTCALL,
    "usual_reply(ctx, code, reason, tag_prefix, added) -> (data, proto, host, port, local) of "
    "the usual stateless reply, else None (compiled; see stateless_replier)."};

static PyObject *
stateless_replier(PyObject *module, PyObject *pure)
{
    if (s_port_5060 == NULL && (s_port_5060 = PyLong_FromLong(5060)) == NULL)
        return NULL;
    /* s_ctx_msg last: the others' users take it as the sign that all are set */
    static const InternedName names[] = {
        {&s_ctx_extra, "extra"}, {&s_ctx_rcv, "rcv"}, {&s_reply_headers, "reply_headers"},
        {&s_reply_body, "reply_body"}, {&s_rcv_proto, "proto"}, {&s_rcv_dst_ip, "dst_ip"},
        {&s_rcv_dst_port, "dst_port"}, {&s_via_params, "params"}, {&s_udp_lower, "udp"},
        {&s_ctx_msg, "msg"},
    };
    return bind_compiled(&usual_reply_def, pure, NULL, "stateless_replier(pure)", names,
                         sizeof(names) / sizeof(names[0]));
}

/* ---- sl's usual local reply sent (sl_send_reply, send_reply -> Core.send_reply_to) --------
 * stateless_sender(consts) returns kemi_sl's sl_send_reply (consts[SL_TM_PURE] None) or
 * send_reply compiled: sender(ctx, code, reason, added=()) does for the usual reply what the
 * Python forms do, step for step: send_reply's tm check (tm looked up for this core and
 * none bound: the stateless way), usual_reply's bytes and destination, Core.send_reply_to
 * (the transport's send, Core's sent counter of the reply's first 9 bytes, ctx.replied),
 * then sl's per-code counter, or its failures counter when the send did not go. Anything
 * else takes the Python forms, whole: sl's stats not set, usual_reply declining (then
 * SL_PURE), tm not looked up yet for this core or holding the request's transaction
 * (tm.has_transaction(ctx), asked here: SL_TM_PURE), another Core class than SL_CORE_TYPE (its own
 * send_reply_to), no transport (send_reply_to logs it). The transport's send is whatever it
 * is (WorkerEndpoints' compiled udp_out for UDP, which hands other shapes to Python). */
enum { SL_PURE, SL_TM_PURE, SL_STATE, SL_BUILD, SL_CORE_TYPE, SL_FIELDS };
#define SL_KINDS "cn.ct"  /* the SL_ fields' kinds (bind_compiled's letters) */
_Static_assert(sizeof(SL_KINDS) - 1 == SL_FIELDS, "a letter per SL_ field");

static PyObject *sl_tag_prefix, *sl_stats, *sl_tm, *sl_tm_for, *sl_core, *sl_transport,
    *sl_send, *sl_send_reply_to, *sl_sent_counter, *sl_sent_requests, *sl_for_code,
    *sl_failures, *sl_replied, *sl_view, *sl_slot, *sl_get, *sl_has_transaction, *sl_one;

/* counter.view[counter.slot] += 1 (Counter.inc in place): in the memoryview's buffer when it
 * is the usual one-dimensional array of 64-bit counts, else through the view's items */
static int
sl_count(PyObject *counter)
{
    PyObject *view = PyObject_GetAttr(counter, sl_view);
    if (view == NULL)
        return -1;
    PyObject *slot = PyObject_GetAttr(counter, sl_slot), *value = NULL, *more = NULL;
    int bad = -1;
    if (slot == NULL)
        goto done;
    if (PyMemoryView_Check(view) && PyLong_CheckExact(slot)) {
        Py_ssize_t at = PyLong_AsSsize_t(slot);
        if (at == -1 && PyErr_Occurred())
            goto done;
        Py_buffer buf;
        if (PyObject_GetBuffer(view, &buf, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_STRIDES) < 0) {
            PyErr_Clear(); /* (a released view: the items' way raises what Python raises) */
        } else {
            long long *count = NULL;
            if (buf.ndim == 1 && buf.format != NULL && strcmp(buf.format, "q") == 0
                    && buf.itemsize == 8 && buf.strides[0] == 8 && buf.suboffsets == NULL
                    && at >= 0 && at < buf.shape[0])
                count = (long long *)buf.buf + at;
            if (count != NULL && *count < LLONG_MAX) {
                *count += 1;
                bad = 0;
            }
            PyBuffer_Release(&buf);
            if (bad == 0)
                goto done;
        }
    }
    if ((value = PyObject_GetItem(view, slot)) != NULL
            && (more = PyNumber_Add(value, sl_one)) != NULL)
        bad = PyObject_SetItem(view, slot, more);
done:
    Py_DECREF(view);
    Py_XDECREF(slot);
    Py_XDECREF(value);
    Py_XDECREF(more);
    return bad;
}

/* Core.send_reply_to(ctx, data, proto, host, port, local) on a Core of its own class with a
 * transport: 1 sent, 0 not; -1 an error. made: usual_reply's (data, proto, host, port, local). */
static int
sl_send_to(PyObject *core, PyObject *ctx, PyObject *made)
{
    PyObject *transport = NULL, *send = NULL, *r = NULL, *cstats = NULL, *counters = NULL,
             *key = NULL, *counter = NULL;
    int out = -1;
    if ((transport = PyObject_GetAttr(core, sl_transport)) == NULL)
        goto done;
    PyObject *data = PyTuple_GET_ITEM(made, 0);
    if (transport == Py_None) { /* send_reply_to logs it */
        PyObject *call[7] = {core, ctx, data, PyTuple_GET_ITEM(made, 1),
                             PyTuple_GET_ITEM(made, 2), PyTuple_GET_ITEM(made, 3),
                             PyTuple_GET_ITEM(made, 4)};
        r = PyObject_VectorcallMethod(sl_send_reply_to, call,
                                      7 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        out = r == NULL ? -1 : PyObject_IsTrue(r);
        goto done;
    }
    if ((send = PyObject_GetAttr(transport, sl_send)) == NULL)
        goto done;
    PyObject *call[5] = {PyTuple_GET_ITEM(made, 1), PyTuple_GET_ITEM(made, 2),
                         PyTuple_GET_ITEM(made, 3), data, PyTuple_GET_ITEM(made, 4)};
    if ((r = PyObject_Vectorcall(send, call, 5, NULL)) == NULL)
        goto done;
    int truth = PyObject_IsTrue(r);
    if (truth <= 0) {
        out = truth;
        goto done;
    }
    if ((cstats = PyObject_GetAttr(core, sl_stats)) == NULL)
        goto done;
    if (cstats != Py_None) {
        /* stats.sent_counter.get(data[:9], stats.sent_requests) */
        counters = PyObject_GetAttr(cstats, sl_sent_counter);
        PyObject *fallback = counters == NULL ? NULL
                                              : PyObject_GetAttr(cstats, sl_sent_requests);
        if (fallback == NULL)
            goto done;
        key = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data),
                                        Py_MIN(PyBytes_GET_SIZE(data), 9));
        if (key != NULL && PyDict_CheckExact(counters)) {
            counter = PyDict_GetItemWithError(counters, key);
            if (counter == NULL && !PyErr_Occurred())
                counter = fallback;
            Py_XINCREF(counter);
        } else if (key != NULL) {
            counter = PyObject_CallMethodObjArgs(counters, sl_get, key, fallback, NULL);
        }
        Py_DECREF(fallback);
        if (counter == NULL || sl_count(counter) < 0)
            goto done;
    }
    if (PyObject_SetAttr(ctx, sl_replied, Py_True) < 0)
        goto done;
    out = 1;
done:
    Py_XDECREF(transport);
    Py_XDECREF(send);
    Py_XDECREF(r);
    Py_XDECREF(cstats);
    Py_XDECREF(counters);
    Py_XDECREF(key);
    Py_XDECREF(counter);
    return out;
}

static PyObject *
sl_sender(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
#define C(i) PyTuple_GET_ITEM(consts, i)
    if (nargs < 3 || nargs > 4 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0))
        /* added= by name, or the Python form says what is wrong */
        return PyObject_Vectorcall(C(SL_TM_PURE) != Py_None ? C(SL_TM_PURE) : C(SL_PURE), args,
                                   nargs, kwnames);
    PyObject *ctx = args[0], *added = nargs == 4 ? args[3] : empty_tuple;
    PyObject *state = C(SL_STATE), *out = NULL, *core = NULL, *prefix = NULL, *stats = NULL,
             *made = NULL, *counter = NULL;
    if ((core = PyObject_GetAttr(ctx, sl_core)) == NULL)
        return NULL;
    if (C(SL_TM_PURE) != Py_None) {
        /* send_reply: tm = _state.tm if _state.tm_for is ctx.core else _bound_tm(ctx.core) */
        PyObject *tm_for = PyObject_GetAttr(state, sl_tm_for);
        PyObject *tm = tm_for == NULL ? NULL : PyObject_GetAttr(state, sl_tm);
        int stateless = tm != NULL && tm_for == core && tm == Py_None;
        if (tm != NULL && tm_for == core && tm != Py_None) {
            /* tm bound: stateless unless it holds the request's transaction (register-path:
             * the Python form's own frame saved on every reply of a cfg that loads tm) */
            PyObject *has = PyObject_CallMethodOneArg(tm, sl_has_transaction, ctx);
            int held = has == NULL ? -1 : PyObject_IsTrue(has);
            Py_XDECREF(has);
            if (held < 0) {
                Py_DECREF(tm_for);
                Py_DECREF(tm);
                goto done;
            }
            stateless = !held;
        }
        Py_XDECREF(tm_for);
        Py_XDECREF(tm);
        if (tm == NULL)
            goto done;
        if (!stateless) {
            out = PyObject_Vectorcall(C(SL_TM_PURE), args, nargs, NULL);
            goto done;
        }
    }
    if ((prefix = PyObject_GetAttr(state, sl_tag_prefix)) == NULL
            || (stats = PyObject_GetAttr(state, sl_stats)) == NULL)
        goto done;
    if (stats != Py_None && Py_IS_TYPE(core, (PyTypeObject *)C(SL_CORE_TYPE))) {
        PyObject *uargs[5] = {ctx, args[1], args[2], prefix, added};
        made = usual_reply(C(SL_BUILD), uargs, 5);
        if (made == NULL)
            goto done;
    }
    if (made == NULL || made == Py_None) {
        PyObject *pargs[4] = {ctx, args[1], args[2], added};
        out = PyObject_Vectorcall(C(SL_PURE), pargs, 4, NULL);
        goto done;
    }
    int sent = sl_send_to(core, ctx, made);
    if (sent < 0)
        goto done;
    if (!sent) {
        /* stats.failures.inc() */
        counter = PyObject_GetAttr(stats, sl_failures);
        if (counter == NULL || sl_count(counter) < 0)
            goto done;
        out = PyLong_FromLong(-1);
        goto done;
    }
    /* stats.for_code[code] (usual_reply took codes 101-699 only), incremented */
    PyObject *for_code = PyObject_GetAttr(stats, sl_for_code);
    if (for_code == NULL)
        goto done;
    counter = PyObject_GetItem(for_code, args[1]);
    Py_DECREF(for_code);
    if (counter == NULL || sl_count(counter) < 0)
        goto done;
    out = PyLong_FromLong(1);
#undef C
done:
    Py_DECREF(core);
    Py_XDECREF(prefix);
    Py_XDECREF(stats);
    Py_XDECREF(made);
    Py_XDECREF(counter);
    return out;
}

/* the names the sl block reads (sl_count's too), interned once */
static int
sl_names(void)
{
    if (sl_one != NULL)
        return 0;
    struct { PyObject **at; const char *text; } names[] = {
        {&sl_tag_prefix, "tag_prefix"}, {&sl_stats, "stats"}, {&sl_tm, "tm"},
        {&sl_tm_for, "tm_for"}, {&sl_core, "core"}, {&sl_transport, "transport"},
        {&sl_send, "send"}, {&sl_send_reply_to, "send_reply_to"},
        {&sl_sent_counter, "sent_counter"}, {&sl_sent_requests, "sent_requests"},
        {&sl_for_code, "for_code"}, {&sl_failures, "failures"}, {&sl_replied, "replied"},
        {&sl_view, "view"}, {&sl_slot, "slot"}, {&sl_get, "get"},
        {&sl_has_transaction, "has_transaction"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].at == NULL
                && (*names[i].at = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return (sl_one = PyLong_FromLong(1)) == NULL ? -1 : 0;
}

static PyMethodDef sl_sender_def = {
    "sl_sender", (PyCFunction)(void (*)(void))sl_sender, METH_FASTCALL | METH_KEYWORDS,
    "sender(ctx, code, reason, added=()) -> sl_send_reply's (or send_reply's) answer "
    "(compiled; see stateless_sender)."};

static PyObject *
stateless_sender(PyObject *module, PyObject *consts)
{
    if (msg_type == NULL || via_type == NULL || s_ctx_msg == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "stateless_sender: stateless_replier not set up");
        return NULL;
    }
    if (sl_names() < 0)
        return NULL;
    return bind_compiled(&sl_sender_def, consts, SL_KINDS,
                         "stateless_sender((pure, tm_pure or None, state, build_pure, core_type))",
                         NULL, 0);
}

/* ---- a request's way from the parsed message to its route (runtime/dispatch.py) ----------
 * request_dispatcher(dispatcher, pure, names) returns Dispatcher.on_message compiled for
 * ``dispatcher`` (pure: its Python on_message bound; names: dispatch.py's globals, read at
 * each call as the Python form reads them): on_message(msg, rcv) does for the usual request
 * what the Python form does, step for step: the busy cell set and cleared, LOG_CONTEXT.msg
 * set while it is handled, the method's counter, check_request_headers, message_context,
 * the request filters (and the ACK filters for an ACK), the engine's run of the request
 * route (run_route with no engine; an Exception out of it mapped by route_raised), then
 * script_errors and the 500 of a fault (_send_simple_reply), and an Exception out of any step
 * answered by _parse_failed (a SipParseError) or _guard_failed, with the exception handled as
 * an except clause has it. A reply takes the reply half the same way (dq_reply). Another
 * message class, a draining worker, a log_prefix, a reload generation moved on (the Python
 * form follows it) take the Python form, whole. */
static PyObject *dq_draining, *dq_log_prefix, *dq_core, *dq_reload, *dq_cell, *dq_value,
    *dq_seen, *dq_busy, *dq_busy_at, *dq_by_method, *dq_unsupported, *dq_ruri,
    *dq_request_filters, *dq_ack_filters, *dq_request_cb, *dq_engine, *dq_run, *dq_fault,
    *dq_stats, *dq_script_errors, *dq_inc, *dq_replied, *dq_send_simple_reply,
    *dq_parse_failed, *dq_guard_failed, *dq_msg, *dq_prefix, *dq_empty, *dq_zero, *dq_500,
    *dq_500_reason, *dq_g_log_context, *dq_g_check, *dq_g_context, *dq_g_request,
    *dq_g_run_route, *dq_g_route_raised, *dq_g_parse_error, *dq_layouts, *dq_usual_request,
    *dq_to, *dq_g_monotonic;

/* names[key], borrowed; NULL with no error when it is not there */
static PyObject *
dq_global(PyObject *names, PyObject *key)
{
    return PyDict_GetItemWithError(names, key);
}

/* func(args) with exc the handled exception (sys.exc_info() in an except clause) */
static PyObject *
dq_call_handling(PyObject *exc, PyObject *func, PyObject *const *args, size_t nargsf)
{
    PyObject *before = PyErr_GetHandledException();
    PyErr_SetHandledException(exc);
    PyObject *out = PyObject_Vectorcall(func, args, nargsf, NULL);
    PyErr_SetHandledException(before);
    Py_XDECREF(before);
    return out;
}

/* 1: every filter of core.<which> (a live list, iterated as a for loop does) declined; 0: one
 * took the message; -1: an error. */
static int
dq_filters(PyObject *core, PyObject *which, PyObject *ctx)
{
    PyObject *filters = PyObject_GetAttr(core, which);
    PyObject *it = filters == NULL ? NULL : PyObject_GetIter(filters);
    Py_XDECREF(filters);
    if (it == NULL)
        return -1;
    int out = 1;
    PyObject *accept;
    while (out == 1 && (accept = PyIter_Next(it)) != NULL) {
        PyObject *took = PyObject_Vectorcall(accept, &ctx, 1, NULL);
        Py_DECREF(accept);
        int truth = took == NULL ? -1 : PyObject_IsTrue(took);
        Py_XDECREF(took);
        if (truth != 0)
            out = truth < 0 ? -1 : 0;
    }
    Py_DECREF(it);
    return out == 1 && PyErr_Occurred() ? -1 : out;
}

/* check_request_headers(msg)'s usual case in place, when ``check`` is request_gate's own
 * function and its usual_request the compiled one: usual_request(msg, _LAYOUTS) true and msg.to
 * read. 1: checked; 0: the function must run (it decides, raising its precise error); -1:
 * an error (what the function would raise at that step). */
static int
dq_check_usual(PyObject *check, PyObject *names, PyObject *msg)
{
    if (!PyFunction_Check(check))
        return 0;
    PyObject *gate = PyFunction_GetGlobals(check);
    PyObject *own = PyDict_GetItemWithError(gate, dq_g_check);
    PyObject *layouts = own == NULL ? NULL : PyDict_GetItemWithError(gate, dq_layouts);
    PyObject *usual = layouts == NULL ? NULL : PyDict_GetItemWithError(gate, dq_usual_request);
    if (usual == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (own != check || !PyDict_Check(layouts) || !PyCFunction_Check(usual)
            || PyCFunction_GetFunction(usual) != (PyCFunction)(void (*)(void))usual_request)
        return 0;
    PyObject *uargs[2] = {msg, layouts};
    PyObject *yes = usual_request(NULL, uargs, 2);
    if (yes == NULL)
        return -1;
    Py_DECREF(yes);
    if (yes != Py_True)
        return 0;
    PyObject *to = PyObject_GetAttr(msg, dq_to); /* parsed, kept for the script */
    if (to != NULL) {
        Py_DECREF(to);
        return 1;
    }
    PyObject *parse_error = dq_global(names, dq_g_parse_error);
    if (parse_error != NULL && PyErr_ExceptionMatches(parse_error)) {
        PyErr_Clear(); /* the function's checks decide */
        return 0;
    }
    return -1;
}

/* The try block of on_message for a request: 0 done, -1 an exception set. */
static int
dq_request(PyObject *self, PyObject *names, PyObject *core, PyObject *msg, PyObject *rcv)
{
    PyObject *counter = NULL, *by_method = NULL, *x = NULL, *ruri = NULL, *ctx = NULL,
             *cb = NULL, *engine = NULL, *fault = NULL, *stats = NULL;
    int out = -1;
    PyObject *method = *field(msg, F_METHOD); /* (checked a str by the caller) */
    /* counter = self._by_method.get(method, self._unsupported); counter.view[slot] += 1 */
    if ((by_method = PyObject_GetAttr(self, dq_by_method)) == NULL)
        goto done;
    if (PyDict_CheckExact(by_method)) {
        counter = PyDict_GetItemWithError(by_method, method);
        Py_XINCREF(counter);
        if (counter == NULL && !PyErr_Occurred())
            counter = PyObject_GetAttr(self, dq_unsupported);
    } else {
        PyObject *other = PyObject_GetAttr(self, dq_unsupported);
        if (other != NULL)
            counter = PyObject_CallMethodObjArgs(by_method, sl_get, method, other, NULL);
        Py_XDECREF(other);
    }
    if (counter == NULL || sl_count(counter) < 0)
        goto done;
    PyObject *check = dq_global(names, dq_g_check), *make = dq_global(names, dq_g_context),
             *request = dq_global(names, dq_g_request);
    if (check == NULL || make == NULL || request == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_NameError, "dispatch: a global is gone");
        goto done;
    }
    int checked = dq_check_usual(check, names, msg);
    if (checked < 0)
        goto done;
    if (!checked && (x = PyObject_Vectorcall(check, &msg, 1, NULL)) == NULL)
        goto done;
    if ((ruri = PyObject_GetAttr(msg, dq_ruri)) == NULL)
        goto done;
    PyObject *cargs[5] = {msg, rcv, core, request, ruri};
    if ((ctx = PyObject_Vectorcall(make, cargs, 5, NULL)) == NULL)
        goto done;
    int go = dq_filters(core, dq_request_filters, ctx);
    int ack = PyUnicode_CompareWithASCIIString(method, "ACK") == 0;
    if (go == 1 && ack)
        go = dq_filters(core, dq_ack_filters, ctx);
    if (go <= 0) {
        out = go;
        goto done;
    }
    if ((cb = PyObject_GetAttr(self, dq_request_cb)) == NULL
            || (engine = PyObject_GetAttr(core, dq_engine)) == NULL)
        goto done;
    Py_CLEAR(x);
    if (engine == Py_None) {
        PyObject *run_route = dq_global(names, dq_g_run_route);
        if (run_route == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_NameError, "dispatch: run_route is gone");
            goto done;
        }
        PyObject *rargs[3] = {core, cb, ctx};
        x = PyObject_Vectorcall(run_route, rargs, 3, NULL);
    } else {
        PyObject *rargs[3] = {engine, cb, ctx};
        x = PyObject_VectorcallMethod(dq_run, rargs, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (x == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
            /* route_raised(self.request_cb, ctx, exc) in the except clause */
            PyObject *exc = caught_error("dispatch");
            PyObject *raised = exc == NULL ? NULL : dq_global(names, dq_g_route_raised);
            if (exc == NULL) {
                /* (the SystemError is set) */
            } else if (raised == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_NameError, "dispatch: route_raised is gone");
            } else {
                PyObject *eargs[3] = {cb, ctx, exc};
                x = dq_call_handling(exc, raised, eargs, 3);
            }
            Py_XDECREF(exc);
        }
    }
    if (x == NULL)
        goto done;
    if ((fault = PyObject_GetAttr(ctx, dq_fault)) == NULL)
        goto done;
    if (fault != Py_None) {
        /* self.stats.script_errors.inc(); the 500 unless replied or an ACK */
        Py_CLEAR(x);
        stats = PyObject_GetAttr(self, dq_stats);
        PyObject *errors = stats == NULL ? NULL : PyObject_GetAttr(stats, dq_script_errors);
        x = errors == NULL ? NULL : PyObject_CallMethodNoArgs(errors, dq_inc);
        Py_XDECREF(errors);
        if (x == NULL)
            goto done;
        Py_CLEAR(x);
        if ((x = PyObject_GetAttr(ctx, dq_replied)) == NULL)
            goto done;
        int replied = PyObject_IsTrue(x);
        if (replied < 0)
            goto done;
        if (!replied && !ack) {
            Py_CLEAR(x);
            PyObject *sargs[4] = {self, ctx, dq_500, dq_500_reason};
            x = PyObject_VectorcallMethod(dq_send_simple_reply, sargs,
                                          4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (x == NULL)
                goto done;
        }
    }
    out = 0;
done:
    Py_XDECREF(counter);
    Py_XDECREF(by_method);
    Py_XDECREF(x);
    Py_XDECREF(ruri);
    Py_XDECREF(ctx);
    Py_XDECREF(cb);
    Py_XDECREF(engine);
    Py_XDECREF(fault);
    Py_XDECREF(stats);
    return out;
}

/* The try block of on_message for a reply (the reply half, step for step): the steering to
 * another worker (self.steer, several workers), the reply's counters by (status, CSeq
 * method), message_context, the core's reply route when the engine has one (its fault and
 * drop counted), the reply handlers in order (tm's compiled on_reply first), and
 * forward_reply for a reply none took. 0 done, -1 an exception set. */
static PyObject *dq_steer, *dq_handed_over, *dq_status, *dq_cseq, *dq_method,
    *dq_reply_counters, *dq_counters_of_reply, *dq_reply_cb, *dq_has_route, *dq_dropped,
    *dq_drop_replies, *dq_reply_handlers, *dq_g_onreply, *dq_g_forward_reply;

static int
dq_reply(PyObject *self, PyObject *names, PyObject *core, PyObject *msg, PyObject *rcv)
{
    PyObject *steer = NULL, *x = NULL, *stats = NULL, *status = NULL, *cseq = NULL,
             *method = NULL, *key = NULL, *table = NULL, *counters = NULL, *it = NULL,
             *ctx = NULL, *engine = NULL, *cb = NULL, *handlers = NULL;
    int out = -1;
    if ((steer = PyObject_GetAttr(self, dq_steer)) == NULL)
        goto done;
    if (steer != Py_None) {
        PyObject *sargs[2] = {msg, rcv};
        if ((x = PyObject_Vectorcall(steer, sargs, 2, NULL)) == NULL)
            goto done;
        int handed = PyObject_IsTrue(x);
        Py_CLEAR(x);
        if (handed < 0)
            goto done;
        if (handed) {
            stats = PyObject_GetAttr(self, dq_stats);
            PyObject *c = stats == NULL ? NULL : PyObject_GetAttr(stats, dq_handed_over);
            x = c == NULL ? NULL : PyObject_CallMethodNoArgs(c, dq_inc);
            Py_XDECREF(c);
            out = x == NULL ? -1 : 0;
            goto done;
        }
    }
    /* key = (msg.status, msg.cseq.method), the method None when the CSeq does not parse */
    if ((status = PyObject_GetAttr(msg, dq_status)) == NULL)
        goto done;
    cseq = PyObject_GetAttr(msg, dq_cseq);
    if (cseq != NULL)
        method = PyObject_GetAttr(cseq, dq_method);
    if (method == NULL) {
        PyObject *parse_error = dq_global(names, dq_g_parse_error);
        if (parse_error == NULL || !PyErr_ExceptionMatches(parse_error)) {
            if (parse_error == NULL && !PyErr_Occurred())
                PyErr_SetString(PyExc_NameError, "dispatch: SipParseError is gone");
            goto done;
        }
        PyErr_Clear();
        method = Py_NewRef(Py_None);
    }
    if ((key = PyTuple_Pack(2, status, method)) == NULL
            || (table = PyObject_GetAttr(self, dq_reply_counters)) == NULL)
        goto done;
    counters = PyDict_CheckExact(table) ? Py_XNewRef(PyDict_GetItemWithError(table, key))
        : PyObject_CallMethodObjArgs(table, sl_get, key, Py_None, NULL);
    if (counters == Py_None)
        Py_CLEAR(counters);
    if (counters == NULL) {
        if (PyErr_Occurred() || (stats = PyObject_GetAttr(self, dq_stats)) == NULL)
            goto done;
        PyObject *args[3] = {stats, status, method};
        if ((counters = PyObject_VectorcallMethod(dq_counters_of_reply, args,
                                                  3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL))
                == NULL)
            goto done;
    }
    if ((it = PyObject_GetIter(counters)) == NULL)
        goto done;
    PyObject *counter;
    while ((counter = PyIter_Next(it)) != NULL) {
        int bad = sl_count(counter);
        Py_DECREF(counter);
        if (bad < 0)
            goto done;
    }
    if (PyErr_Occurred())
        goto done;
    PyObject *make = dq_global(names, dq_g_context), *onreply = dq_global(names, dq_g_onreply);
    if (make == NULL || onreply == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_NameError, "dispatch: a global is gone");
        goto done;
    }
    PyObject *cargs[4] = {msg, rcv, core, onreply};
    if ((ctx = PyObject_Vectorcall(make, cargs, 4, NULL)) == NULL
            || (engine = PyObject_GetAttr(core, dq_engine)) == NULL)
        goto done;
    if (engine != Py_None) {
        if ((cb = PyObject_GetAttr(self, dq_reply_cb)) == NULL)
            goto done;
        PyObject *hargs[2] = {engine, cb};
        if ((x = PyObject_VectorcallMethod(dq_has_route, hargs,
                                           2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)) == NULL)
            goto done;
        int has = PyObject_IsTrue(x);
        Py_CLEAR(x);
        if (has < 0)
            goto done;
        if (has) {
            /* run_route(core, self.reply_cb, ctx); a fault and a drop counted */
            PyObject *run_route = dq_global(names, dq_g_run_route);
            if (run_route == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_NameError, "dispatch: run_route is gone");
                goto done;
            }
            PyObject *rargs[3] = {core, cb, ctx};
            if ((x = PyObject_Vectorcall(run_route, rargs, 3, NULL)) == NULL)
                goto done;
            Py_CLEAR(x);
            if ((stats = PyObject_GetAttr(self, dq_stats)) == NULL
                    || (x = PyObject_GetAttr(ctx, dq_fault)) == NULL)
                goto done;
            int fault = x != Py_None;
            Py_CLEAR(x);
            if (fault) {
                PyObject *c = PyObject_GetAttr(stats, dq_script_errors);
                x = c == NULL ? NULL : PyObject_CallMethodNoArgs(c, dq_inc);
                Py_XDECREF(c);
                if (x == NULL)
                    goto done;
                Py_CLEAR(x);
            }
            if ((x = PyObject_GetAttr(ctx, dq_dropped)) == NULL)
                goto done;
            int dropped = PyObject_IsTrue(x);
            Py_CLEAR(x);
            if (dropped < 0)
                goto done;
            if (dropped) {
                PyObject *c = PyObject_GetAttr(stats, dq_drop_replies);
                x = c == NULL ? NULL : PyObject_CallMethodNoArgs(c, dq_inc);
                Py_XDECREF(c);
                out = x == NULL ? -1 : 0;
                goto done;
            }
        }
    }
    /* for handler in core.reply_handlers: if handler(ctx): return */
    Py_CLEAR(it);
    if ((handlers = PyObject_GetAttr(core, dq_reply_handlers)) == NULL
            || (it = PyObject_GetIter(handlers)) == NULL)
        goto done;
    PyObject *handler;
    while ((handler = PyIter_Next(it)) != NULL) {
        x = PyObject_Vectorcall(handler, &ctx, 1, NULL);
        Py_DECREF(handler);
        int took = x == NULL ? -1 : PyObject_IsTrue(x);
        Py_CLEAR(x);
        if (took < 0)
            goto done;
        if (took) {
            out = 0;
            goto done;
        }
    }
    if (PyErr_Occurred())
        goto done;
    PyObject *forward = dq_global(names, dq_g_forward_reply);
    if (forward == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_NameError, "dispatch: forward_reply is gone");
        goto done;
    }
    PyObject *fargs[4] = {core, msg, Py_True, ctx};
    if ((x = PyObject_Vectorcall(forward, fargs, 4, NULL)) == NULL)
        goto done;
    out = 0;
done:
    Py_XDECREF(steer);
    Py_XDECREF(x);
    Py_XDECREF(stats);
    Py_XDECREF(status);
    Py_XDECREF(cseq);
    Py_XDECREF(method);
    Py_XDECREF(key);
    Py_XDECREF(table);
    Py_XDECREF(counters);
    Py_XDECREF(it);
    Py_XDECREF(ctx);
    Py_XDECREF(engine);
    Py_XDECREF(cb);
    Py_XDECREF(handlers);
    return out;
}

/* 1: the compiled form takes this message; 0: the Python form does; -1: an error */
static int
dq_usual(PyObject *self, PyObject *core, PyObject *msg)
{
    if (!PyObject_TypeCheck(msg, msg_type))
        return 0;
    if (*field(msg, F_IS_REQUEST) == Py_True) {
        if (*field(msg, F_METHOD) == NULL || !PyUnicode_CheckExact(*field(msg, F_METHOD)))
            return 0;
    } else if (*field(msg, F_IS_REQUEST) != Py_False) {
        return 0;
    }
    /* self._draining[0]: not draining; self.log_prefix None */
    PyObject *draining = PyObject_GetAttr(self, dq_draining);
    if (draining == NULL)
        return -1;
    int drains = PyList_CheckExact(draining) && PyList_GET_SIZE(draining) > 0
        ? PyObject_IsTrue(PyList_GET_ITEM(draining, 0)) : 1;
    Py_DECREF(draining);
    if (drains != 0)
        return drains < 0 ? -1 : 0;
    PyObject *prefix = PyObject_GetAttr(self, dq_log_prefix);
    if (prefix == NULL)
        return -1;
    Py_DECREF(prefix);
    if (prefix != Py_None)
        return 0;
    /* core._reload: None, or its cell's value what it has seen */
    PyObject *reload = PyObject_GetAttr(core, dq_reload);
    if (reload == NULL)
        return -1;
    int usual = 1;
    if (reload != Py_None) {
        PyObject *cell = PyObject_GetAttr(reload, dq_cell);
        PyObject *value = cell == NULL ? NULL : PyObject_GetAttr(cell, dq_value);
        PyObject *seen = value == NULL ? NULL : PyObject_GetAttr(reload, dq_seen);
        int moved = seen == NULL ? -1 : PyObject_RichCompareBool(value, seen, Py_NE);
        Py_XDECREF(cell);
        Py_XDECREF(value);
        Py_XDECREF(seen);
        usual = moved < 0 ? -1 : !moved;
    }
    Py_DECREF(reload);
    return usual;
}

static PyObject *
dispatch_request(PyObject *bound, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *self = PyTuple_GET_ITEM(bound, 0), *pure = PyTuple_GET_ITEM(bound, 1),
             *names = PyTuple_GET_ITEM(bound, 2);
    if (nargs != 2)
        return PyObject_Vectorcall(pure, args, nargs, NULL);
    PyObject *msg = args[0], *rcv = args[1];
    PyObject *core = PyObject_GetAttr(self, dq_core);
    if (core == NULL)
        return NULL;
    PyObject *busy = NULL, *at = NULL, *now = NULL, *log_context = NULL;
    int usual = dq_usual(self, core, msg);
    if (usual <= 0) {
        Py_DECREF(core);
        if (usual < 0) {
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                return NULL;
            PyErr_Clear(); /* the Python form meets it again, and raises it */
        }
        return PyObject_Vectorcall(pure, args, nargs, NULL);
    }
    /* busy[at] = monotonic(); LOG_CONTEXT.msg = msg (before the try, as in Python) */
    PyObject *monotonic = dq_global(names, dq_g_monotonic);
    log_context = monotonic == NULL ? NULL : dq_global(names, dq_g_log_context);
    if (log_context == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_NameError, "dispatch: a global is gone");
        Py_DECREF(core);
        return NULL;
    }
    Py_INCREF(log_context);
    PyObject *out = NULL;
    if ((busy = PyObject_GetAttr(self, dq_busy)) == NULL
            || (at = PyObject_GetAttr(self, dq_busy_at)) == NULL
            || (now = PyObject_CallNoArgs(monotonic)) == NULL
            || PyObject_SetItem(busy, at, now) < 0
            || PyObject_SetAttr(log_context, dq_msg, msg) < 0)
        goto done;
    int failed = *field(msg, F_IS_REQUEST) == Py_True ? dq_request(self, names, core, msg, rcv)
                                                      : dq_reply(self, names, core, msg, rcv);
    if (failed < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, "dispatch: a step failed without its exception");
    if (failed < 0 && PyErr_ExceptionMatches(PyExc_Exception)) {
        /* except SipParseError: self._parse_failed(...); except Exception: _guard_failed */
        PyObject *exc = caught_error("dispatch");
        PyObject *parse_error = dq_global(names, dq_g_parse_error);
        if (parse_error == NULL && !PyErr_Occurred())
            PyErr_SetString(PyExc_NameError, "dispatch: SipParseError is gone");
        int parse = parse_error == NULL || exc == NULL ? -1 : PyObject_IsInstance(exc, parse_error);
        PyObject *handler = parse < 0 ? NULL
            : PyObject_GetAttr(self, parse ? dq_parse_failed : dq_guard_failed);
        if (handler != NULL) {
            PyObject *fargs[3] = {msg, rcv, exc};
            PyObject *x = dq_call_handling(exc, handler, fargs, 3);
            Py_XDECREF(x);
            Py_DECREF(handler);
        }
        Py_XDECREF(exc);
    }
    /* finally: busy[at] = 0.0; LOG_CONTEXT.msg = None; LOG_CONTEXT.prefix = "" (an error
     * there takes the place of the one pending, as in Python) */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (PyObject_SetItem(busy, at, dq_zero) < 0
            || PyObject_SetAttr(log_context, dq_msg, Py_None) < 0
            || PyObject_SetAttr(log_context, dq_prefix, dq_empty) < 0) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        goto done;
    }
    PyErr_Restore(type, value, tb);
    if (!PyErr_Occurred())
        out = Py_NewRef(Py_None);
done:
    Py_DECREF(core);
    Py_XDECREF(busy);
    Py_XDECREF(at);
    Py_XDECREF(now);
    Py_DECREF(log_context);
    return out;
}

static PyMethodDef dispatch_request_def = {
    "on_message", (PyCFunction)(void (*)(void))dispatch_request, METH_FASTCALL,
    "on_message(msg, rcv): Dispatcher.on_message compiled for the usual request (see "
    "request_dispatcher)."};

static PyObject *
request_dispatcher(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyCallable_Check(args[1]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "request_dispatcher(dispatcher, pure, names)");
        return NULL;
    }
    if (msg_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "request_dispatcher: the message type is not set up");
        return NULL;
    }
    if (sl_names() < 0)
        return NULL;
    if (dq_g_monotonic == NULL) {
        struct { PyObject **at; const char *text; } names[] = {
            {&dq_draining, "_draining"}, {&dq_log_prefix, "log_prefix"}, {&dq_core, "core"},
            {&dq_reload, "_reload"}, {&dq_cell, "cell"}, {&dq_value, "value"},
            {&dq_seen, "seen"}, {&dq_busy, "_busy"}, {&dq_busy_at, "_busy_at"},
            {&dq_by_method, "_by_method"}, {&dq_unsupported, "_unsupported"},
            {&dq_ruri, "ruri"}, {&dq_request_filters, "request_filters"},
            {&dq_ack_filters, "ack_filters"}, {&dq_request_cb, "request_cb"},
            {&dq_engine, "engine"}, {&dq_run, "run"}, {&dq_fault, "fault"},
            {&dq_stats, "stats"}, {&dq_script_errors, "script_errors"}, {&dq_inc, "inc"},
            {&dq_replied, "replied"}, {&dq_send_simple_reply, "_send_simple_reply"},
            {&dq_parse_failed, "_parse_failed"}, {&dq_guard_failed, "_guard_failed"},
            {&dq_msg, "msg"}, {&dq_prefix, "prefix"}, {&dq_empty, ""},
            {&dq_500_reason, "Server Internal Error"}, {&dq_g_log_context, "LOG_CONTEXT"},
            {&dq_g_check, "check_request_headers"}, {&dq_g_context, "message_context"},
            {&dq_g_request, "REQUEST"}, {&dq_g_run_route, "run_route"},
            {&dq_g_route_raised, "route_raised"}, {&dq_g_parse_error, "SipParseError"},
            {&dq_layouts, "_LAYOUTS"}, {&dq_usual_request, "usual_request"}, {&dq_to, "to"},
            {&dq_steer, "steer"}, {&dq_handed_over, "replies_handed_over"},
            {&dq_status, "status"}, {&dq_cseq, "cseq"}, {&dq_method, "method"},
            {&dq_reply_counters, "_reply_counters"},
            {&dq_counters_of_reply, "counters_of_reply"}, {&dq_reply_cb, "reply_cb"},
            {&dq_has_route, "has_route"}, {&dq_dropped, "dropped"},
            {&dq_drop_replies, "drop_replies"}, {&dq_reply_handlers, "reply_handlers"},
            {&dq_g_onreply, "CORE_ONREPLY"}, {&dq_g_forward_reply, "forward_reply"},
        };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (*names[i].at == NULL
                    && (*names[i].at = PyUnicode_InternFromString(names[i].text)) == NULL)
                return NULL;
        if ((dq_zero == NULL && (dq_zero = PyFloat_FromDouble(0.0)) == NULL)
                || (dq_500 == NULL && (dq_500 = PyLong_FromLong(500)) == NULL)
                || (dq_g_monotonic = PyUnicode_InternFromString("monotonic")) == NULL)
            return NULL;
    }
    PyObject *bound = PyTuple_Pack(3, args[0], args[1], args[2]);
    if (bound == NULL)
        return NULL;
    PyObject *out = PyCFunction_NewEx(&dispatch_request_def, bound, NULL);
    Py_DECREF(bound);
    return out;
}

/* ---- calls that need no Python frame of their own on the usual native-cfg REGISTER -------
 * Each returns a PyCFunction bound to a consts tuple: the usual shape is done here, any other
 * shape (arguments, state, a replaced global) calls the Python form, which stays the
 * reference (tests/unit/test_dispatch_cpath.py and kemi_registrar's test_registrar_save_usual.py
 * run both on the same inputs). */

/* route_runner((direct, pure)) -> run(name, ctx): NativeEngine.run for a name in ``direct``
 * (the engine's name -> route dict, one object for the engine's life: cleared, never
 * replaced, when its routes change): the route called with ctx. Any other name or call
 * goes to ``pure`` (NativeEngine.run bound). */
static PyObject *
route_run(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs == 2 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0)
            && PyUnicode_CheckExact(args[0])) {
        PyObject *fn = PyDict_GetItemWithError(PyTuple_GET_ITEM(consts, 0), args[0]);
        if (fn != NULL) {
            Py_INCREF(fn); /* (a reload during the route clears the dict) */
            PyObject *out = PyObject_Vectorcall(fn, args + 1, 1, NULL);
            Py_DECREF(fn);
            return out;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    return PyObject_Vectorcall(PyTuple_GET_ITEM(consts, 1), args, nargs, kwnames);
}

static PyMethodDef route_run_def = {
    "run", (PyCFunction)(void (*)(void))route_run, METH_FASTCALL | METH_KEYWORDS,
    "run(name, ctx) -> the native engine's run (compiled; see route_runner)."};

static PyObject *
route_runner(PyObject *module, PyObject *consts)
{
    return bind_compiled(&route_run_def, consts, "dc", "route_runner((direct, pure))", NULL, 0);
}

/* method_tester((sets, pure)) -> is_method(ctx, name): textops' is_method for a name already
 * in ``sets`` (its text -> frozenset of upper-case methods) and a request whose method is
 * ASCII without lower case (its upper() is itself): 1 if the method is in the set, else -1.
 * Anything else goes to ``pure`` (which also fills ``sets``). */
static PyObject *nf_msg;

static PyObject *
method_test(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *pure = PyTuple_GET_ITEM(consts, 1);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)
            || !PyUnicode_CheckExact(args[1]))
        return PyObject_Vectorcall(pure, args, nargs, kwnames);
    PyObject *names = PyDict_GetItemWithError(PyTuple_GET_ITEM(consts, 0), args[1]);
    if (names == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return PyObject_Vectorcall(pure, args, nargs, NULL);
    }
    if (!PyFrozenSet_CheckExact(names))
        return PyObject_Vectorcall(pure, args, nargs, NULL);
    Py_INCREF(names);
    PyObject *msg = PyObject_GetAttr(args[0], nf_msg), *out = NULL;
    if (msg == NULL)
        goto done;
    PyObject *method = Py_IS_TYPE(msg, msg_type) && *field(msg, F_IS_REQUEST) == Py_True
        ? *field(msg, F_METHOD) : NULL;
    int usual = method != NULL && PyUnicode_CheckExact(method) && PyUnicode_IS_ASCII(method);
    if (usual) {
        const Py_UCS1 *c = PyUnicode_1BYTE_DATA(method);
        for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(method); i < n && usual; i++)
            usual = c[i] < 'a' || c[i] > 'z';
    }
    if (!usual) {
        out = PyObject_Vectorcall(pure, args, nargs, NULL);
        goto done;
    }
    int in = PySet_Contains(names, method);
    if (in >= 0)
        out = PyLong_FromLong(in ? 1 : -1);
done:
    Py_DECREF(names);
    Py_XDECREF(msg);
    return out;
}

static PyMethodDef method_test_def = {
    "is_method", (PyCFunction)(void (*)(void))method_test, METH_FASTCALL | METH_KEYWORDS,
    "is_method(ctx, name) -> textops' is_method (compiled; see method_tester)."};

static PyObject *
method_tester(PyObject *module, PyObject *consts)
{
    if (msg_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "method_tester: the message type is not set up");
        return NULL;
    }
    static const InternedName names[] = {{&nf_msg, "msg"}};
    return bind_compiled(&method_test_def, consts, "dc", "method_tester((sets, pure))", names, 1);
}

/* registrar_saver((cfg, held, const_flags, save_globals, pure, rest)) -> registrar's save:
 * cfg true: the native cfg's save(ctx, table[, flags[, uri]]) with flags a text known to
 * ``const_flags`` (its number) and no uri (or ""); cfg false: KEMI's save(ctx, table, flags)
 * with flags an int. Then save()'s usual case: held.current's ``usual`` consts given to
 * reg_save_usual (when save.py's global ``save_usual`` is it), its answer returned; when it
 * declines, rest(ctx, table, flags, None, state), save()'s Python past its usual case. Any
 * other shape, no state yet, no usual consts or a replaced save_usual: ``pure``. */
enum { RS_CFG, RS_HELD, RS_CONST_FLAGS, RS_GLOBALS, RS_PURE, RS_REST, RS_FIELDS };
#define RS_KINDS "b.dmcc"  /* the RS_ fields' kinds (bind_compiled's letters) */
_Static_assert(sizeof(RS_KINDS) - 1 == RS_FIELDS, "a letter per RS_ field");
static PyObject *nf_current, *nf_usual, *nf_save_usual, *nf_zero_text;

static PyObject *
registrar_save(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
#define C(i) PyTuple_GET_ITEM(consts, i)
    PyObject *pure = C(RS_PURE), *number = NULL;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)
        return PyObject_Vectorcall(pure, args, nargs, kwnames);
    if (C(RS_CFG) == Py_True) {
        if (nargs < 2 || nargs > 4)
            return PyObject_Vectorcall(pure, args, nargs, NULL);
        PyObject *text = nargs >= 3 ? args[2] : nf_zero_text;
        if (nargs == 4 && !(PyUnicode_CheckExact(args[3]) && PyUnicode_GET_LENGTH(args[3]) == 0))
            return PyObject_Vectorcall(pure, args, nargs, NULL);
        if (!PyUnicode_CheckExact(text))
            return PyObject_Vectorcall(pure, args, nargs, NULL);
        number = PyDict_GetItemWithError(C(RS_CONST_FLAGS), text);
        if (number == NULL) {
            if (PyErr_Occurred())
                return NULL;
            return PyObject_Vectorcall(pure, args, nargs, NULL);
        }
    } else {
        if (nargs != 3)
            return PyObject_Vectorcall(pure, args, nargs, NULL);
        number = args[2];
    }
    if (!PyLong_CheckExact(number))
        return PyObject_Vectorcall(pure, args, nargs, NULL);
    Py_INCREF(number);
    PyObject *st = NULL, *usual = NULL, *out = NULL;
    PyObject *fn = PyDict_GetItemWithError(C(RS_GLOBALS), nf_save_usual);
    if (fn == NULL && PyErr_Occurred())
        goto done;
    if (fn == NULL || !PyCFunction_Check(fn)
            || PyCFunction_GetFunction(fn) != (PyCFunction)(void (*)(void))reg_save_usual) {
        out = PyObject_Vectorcall(pure, args, nargs, NULL);
        goto done;
    }
    if ((st = PyObject_GetAttr(C(RS_HELD), nf_current)) == NULL)
        goto done;
    if (st != Py_None && (usual = PyObject_GetAttr(st, nf_usual)) == NULL)
        goto done;
    if (st == Py_None || usual == Py_None) {
        out = PyObject_Vectorcall(pure, args, nargs, NULL);
        goto done;
    }
    PyObject *uargs[5] = {usual, args[0], args[1], number, Py_None};
    out = reg_save_usual(NULL, uargs, 5);
    if (out == Py_None) {
        Py_DECREF(out);
        PyObject *rargs[5] = {args[0], args[1], number, Py_None, st};
        out = PyObject_Vectorcall(C(RS_REST), rargs, 5, NULL);
    }
#undef C
done:
    Py_DECREF(number);
    Py_XDECREF(st);
    Py_XDECREF(usual);
    return out;
}

static PyMethodDef registrar_save_def = {
    "save", (PyCFunction)(void (*)(void))registrar_save, METH_FASTCALL | METH_KEYWORDS,
    "save(ctx, table, flags...) -> registrar's save (compiled; see registrar_saver)."};

static PyObject *
registrar_saver(PyObject *module, PyObject *consts)
{
    static const InternedName names[] = {
        {&nf_current, "current"}, {&nf_usual, "usual"}, {&nf_save_usual, "save_usual"},
        {&nf_zero_text, "0"},
    };
    return bind_compiled(&registrar_save_def, consts, RS_KINDS,
                         "registrar_saver((cfg, held, const_flags, save_globals, pure, rest))",
                         names, sizeof(names) / sizeof(names[0]));
}

static PyObject *maxfwd_processor(PyObject *module, PyObject *consts); /* (register-path) */
static PyObject *pv_reader(PyObject *module, PyObject *consts);
static PyObject *pv_msg_getter(PyObject *module, PyObject *consts);
static PyObject *transaction_tester(PyObject *module, PyObject *pure);
static PyObject *loose_router(PyObject *module, PyObject *consts);
static PyObject *ack_relayer(PyObject *module, PyObject *consts);
static PyObject *ack_absorber(PyObject *module, PyObject *consts);
static PyObject *record_router(PyObject *module, PyObject *consts);
static PyObject *per_socket_usual(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

static PyMethodDef methods[] = {
    {"index_head", (PyCFunction)(void (*)(void))index_head, METH_FASTCALL,
     "index_head(text, names) -> (lines, keys) | None"},
    {"line_value", (PyCFunction)line_value, METH_O,
     "line_value(line) -> the header line's value, unfolded and stripped"},
    {"single_index", (PyCFunction)(void (*)(void))single_index, METH_FASTCALL,
     "single_index(keys, key) -> index of the only line of key, -1 if none, -2 if several"},
    {"single_value", (PyCFunction)(void (*)(void))single_value, METH_FASTCALL,
     "single_value(keys, lines, key) -> line_value of the only line of key, else None"},
    {"via_fields", (PyCFunction)via_fields, METH_O,
     "via_fields(value) -> the fields of the Via tuple for the usual shape, else None"},
    {"name_addr_fields", (PyCFunction)name_addr_fields, METH_O,
     "name_addr_fields(value) -> the fields of the NameAddr tuple for the usual shape, else None"},
    {"uri_parser", (PyCFunction)uri_parser, METH_O,
     "uri_parser(cls) -> parse(text): the usual sip:/sips: URI made with cls, else None"},
    {"memo_value", (PyCFunction)(void (*)(void))memo_value, METH_FASTCALL,
     "memo_value(key, memo, index, getter) -> a read-only descriptor: obj.__dict__[key], "
     "else memo[obj[index]] (kept in __dict__), else getter(obj)"},
    {"digest_fields", (PyCFunction)digest_fields, METH_O,
     "digest_fields(value) -> the Digest credentials' fields for the usual shape, else None"},
    {"nonce_seal", (PyCFunction)(void (*)(void))nonce_seal, METH_FASTCALL,
     "nonce_seal(head, key) -> kemi_auth's nonce text of an 18-byte head (no binding)"},
    {"nonce_open", (PyCFunction)(void (*)(void))nonce_open, METH_FASTCALL,
     "nonce_open(text, key) -> (flags, issued, expires, id, True) | False (not ours) | None "
     "(not the plain shape)"},
    /* Digest verify (kemi_auth's usual authenticate) */
    {"digest_open", (PyCFunction)(void (*)(void))digest_open, METH_FASTCALL,
     "digest_open(value, realm, now, (key, max_drift, algorithm, Credentials)) -> the "
     "Credentials of the usual shape with a good nonce of ours, else None"},
    {"digest_response", (PyCFunction)(void (*)(void))digest_response, METH_FASTCALL,
     "digest_response(cred, ha1, method, hash) -> whether cred's response is right (qop "
     "absent or auth)"},
    {"digest_ha1", (PyCFunction)(void (*)(void))digest_ha1, METH_FASTCALL,
     "digest_ha1(hash, username, realm, password) -> the HA1 in hex"},
    {"scan_message", (PyCFunction)(void (*)(void))scan_message, METH_FASTCALL,
     "scan_message(data, names, methods, max_size, max_headers, max_line) -> the SipMsg of the "
     "usual datagram, else None"},
    {"field_value", (PyCFunction)(void (*)(void))field_value, METH_FASTCALL,
     "field_value(slot, getter, setter): a SipMsg property reading a state slot, compiled."},
    {"datagram_parser", (PyCFunction)(void (*)(void))datagram_parser, METH_FASTCALL,
     "datagram_parser(pure, careful, names, methods, default_limits): parse_datagram compiled."},
    {"reply_builder", (PyCFunction)reply_builder, METH_O,
     "reply_builder(pure): reply.build_reply compiled."},
    {"via_received", (PyCFunction)via_received, METH_O,
     "via_received(pure): forwarding's received_via compiled."},
    {"message_type", (PyCFunction)(void (*)(void))message_type, METH_FASTCALL,
     "message_type(SipMsg, list_keys, pure) -> {name: compiled method of SipMsg}"},
    {"cached_value", (PyCFunction)(void (*)(void))cached_value, METH_FASTCALL,
     "cached_value(key, getter) -> a read-only descriptor: msg._cache[key] when there, else "
     "getter(msg) (key None: the request's method, else getter(msg))"},
    {"instance_value", (PyCFunction)(void (*)(void))instance_value, METH_FASTCALL,
     "instance_value(key, getter) -> a read-only descriptor: obj.__dict__[key] when there, "
     "else getter(obj)"},
    {"value_types", (PyCFunction)(void (*)(void))value_types, METH_FASTCALL,
     "value_types(Via, CSeq[, NameAddr]): the classes scan_message makes the values it parses "
     "ahead of"},
    {"params_trusted", (PyCFunction)(void (*)(void))params_trusted, METH_FASTCALL,
     "params_trusted(text, into) -> into with the ;name=value parameters of text added"},
    {"message_bytes", (PyCFunction)(void (*)(void))message_bytes, METH_FASTCALL,
     "message_bytes(lines, body[, at, drop, insert]) -> the message's bytes, the head's lines "
     "[at, at + drop) replaced by insert"},
    {"lines_crc32", (PyCFunction)(void (*)(void))lines_crc32, METH_FASTCALL,
     "lines_crc32(keys, lines) -> CRC-32 of the Call-ID|From|CSeq|Via lines, None if one is missing"},
    {"usual_request", (PyCFunction)(void (*)(void))usual_request, METH_FASTCALL,
     "usual_request(msg, layouts) -> True when the request gate's usual case holds but for "
     "msg.to, else False"},
    {"reply_lines", (PyCFunction)(void (*)(void))reply_lines, METH_FASTCALL,
     "reply_lines(keys, lines, tag) -> the Via, From, To (tagged when tag is not None), "
     "Call-ID and CSeq lines in that order"},
    /* UDP receive and the flusher's timer (udp.py, outbox.py): Linux only */
#ifdef __linux__
    {"udp_recv", (PyCFunction)(void (*)(void))udp_recv, METH_FASTCALL,
     "udp_recv(fd, most, sources, make) -> ([(data, rcv)], errno): the datagrams waiting "
     "(recvmmsg), rcv = sources[raw source address] or make(raw source address)"},
    {"udp_source", (PyCFunction)udp_source, METH_O,
     "udp_source(raw) -> (host, port) of a raw socket address, as the socket module gives it"},
    {"udp_send", (PyCFunction)(void (*)(void))udp_send, METH_FASTCALL,
     "udp_send(held, direct) -> None | [(held send, errno)]: the held sends (send, data, addr) "
     "in order, a run of one socket's (direct: {send: (fd, family)}) as one sendmmsg, any other "
     "through send(data, addr); the ones the kernel refused, with their errno"},
    {"timer_set", (PyCFunction)(void (*)(void))timer_set, METH_FASTCALL,
     "timer_set(fd, ns): set a timerfd to fire once in ns nanoseconds (0: clear it)"},
    {"udp_event", (PyCFunction)(void (*)(void))udp_event, METH_FASTCALL,
     "udp_event(sock, most, consts): a read-ahead UdpSocket's readiness event (_read_ready): "
     "read, each datagram delivered, the outbox held and released; consts = (parse_datagram, "
     "SipParseError, internal_error, KEEPALIVES, the outbox module)"},
    {"udp_out", (PyCFunction)(void (*)(void))udp_out, METH_FASTCALL | METH_KEYWORDS,
     "udp_out(endpoints, send, box_module, proto, host, port, data, local=None) -> bool: "
     "WorkerEndpoints.send's usual UDP send, sent or held; send(...) takes any other"},
#endif
    /* kemi_auth's usual challenge (section "Digest challenge") */
    {"digest_challenge", (PyCFunction)(void (*)(void))digest_challenge, METH_FASTCALL,
     "digest_challenge(realm, key, flags, now, expire, nid, tail) -> 'Digest realm=\"..\", "
     "nonce=\"..\"' + tail with a fresh unbound nonce, or None (the Python path makes it)"},
    /* ---- KSR crossing ---- */
    {"ksr_call", (PyCFunction)(void (*)(void))ksr_call_new, METH_FASTCALL,
     "ksr_call(func, holder, fallback, slow, none_value, kinds, passes, slot): a KEMI export's "
     "script callable (kemi_core.kemi.binding's generated wrapper, compiled)."},
    /* message contexts (runtime/context.py) */
    {"context_maker", (PyCFunction)(void (*)(void))context_maker, METH_FASTCALL,
     "context_maker(cls, ((name, kind, default), ...), (field index, ...)) -> message_context "
     "compiled for the slotted class cls"},
    {"stateless_replier", (PyCFunction)stateless_replier, METH_O,
     "stateless_replier(pure): reply.usual_reply compiled (pure: build_reply_py)."},
    {"stateless_sender", (PyCFunction)stateless_sender, METH_O,
     "stateless_sender((pure, tm_pure, state, build_pure, core_type)): kemi_sl's sl_send_reply "
     "(tm_pure None) or send_reply compiled for the usual reply"},
    /* tm's usual relayed reply (section "tm's usual relayed reply") */
    /* tm's relayed new request (section "tm's relayed new request") */
    {"request_relayer", (PyCFunction)request_relayer, METH_O,
     "request_relayer(consts) -> relay.relay(svc, ctx) compiled for one service (see the RQ_ "
     "fields)."},
    {"reply_relayer", (PyCFunction)reply_relayer, METH_O,
     "reply_relayer(consts) -> TmService.on_reply compiled for one service (see the TR_ "
     "fields)"},
    {"request_dispatcher", (PyCFunction)(void (*)(void))request_dispatcher, METH_FASTCALL,
     "request_dispatcher(dispatcher, pure, names) -> Dispatcher.on_message compiled for the "
     "usual request (pure: the Python form bound; names: dispatch.py's globals)"},
    /* registrar's usual REGISTER (kemi_usrloc/domain.py, kemi_registrar/update.py, reply.py) */
    {"ul_change_one", (PyCFunction)(void (*)(void))ul_change_one, METH_FASTCALL,
     "ul_change_one(unchanged, contact_type, raw, (fn, arg)) -> usrloc's _change_one"},
    {"reg_one", (PyCFunction)(void (*)(void))reg_one, METH_FASTCALL,
     "reg_one(fallback, fl_mem, memory_only, cur, (req, now, flags, rules)) -> registrar's "
     "one(cur, arg): an AOR's only binding refreshed, else fallback(cur, arg)"},
    {"reg_contact_value", (PyCFunction)(void (*)(void))reg_contact_value, METH_FASTCALL,
     "reg_contact_value(contacts, now, received_param, q_text) -> registrar's contact_header"},
    {"reg_ok_headers", (PyCFunction)(void (*)(void))reg_ok_headers, METH_FASTCALL,
     "reg_ok_headers(q_text, last_date, date_of, contacts, now, p, path_reply) -> "
     "registrar's reply.ok_headers"},
    {"reg_known_request", (PyCFunction)(void (*)(void))reg_known_request, METH_FASTCALL,
     "reg_known_request(msg, tail, bflags, requests, phone_headers, request_type) -> the "
     "Request parse_request makes from requests[(msg.lines_of(phone_headers), *tail)] with the "
     "message's Call-ID, CSeq and bflags; None when not known or the Python checks must run"},
    {"shared_never_update", (PyCFunction)(void (*)(void))shared_never_update, METH_FASTCALL,
     "shared_never_update(consts, txn, db, kb, fn, arg, decoded) -> SharedTable.update_never's "
     "change of an entry without expiry: fn's result, or consts[0] when it has an expiry"},
    {"reg_save_usual", (PyCFunction)(void (*)(void))reg_save_usual, METH_FASTCALL,
     "reg_save_usual(consts, ctx, table, flags, uri) -> registrar's save() of the usual "
     "REGISTER in one call (its code), or None: not that shape, nothing changed"},
    /* no frame of their own on the usual native-cfg REGISTER */
    {"route_runner", (PyCFunction)route_runner, METH_O,
     "route_runner((direct, pure)) -> the native engine's run(name, ctx), compiled"},
    {"method_tester", (PyCFunction)method_tester, METH_O,
     "method_tester((sets, pure)) -> textops' is_method(ctx, name), compiled"},
    {"registrar_saver", (PyCFunction)registrar_saver, METH_O,
     "registrar_saver((cfg, held, const_flags, save_globals, pure, rest)) -> registrar's "
     "save (native cfg's or KEMI's), compiled for its usual case"},
    /* maxfwd's usual process_maxfwd, KSR.pv's reads, tm's has_transaction (register-path) */
    {"maxfwd_processor", (PyCFunction)maxfwd_processor, METH_O,
     "maxfwd_processor((settings, pure)) -> maxfwd's process_maxfwd(ctx, limit), compiled"},
    {"pv_reader", (PyCFunction)pv_reader, METH_O,
     "pv_reader((is_null, pure)) -> KSR.pv.get or is_null(ctx, pvname), compiled"},
    {"pv_msg_getter", (PyCFunction)pv_msg_getter, METH_O,
     "pv_msg_getter((which, pure)) -> the getter of $fd (0), $ft (1) or $tt (2), compiled"},
    {"transaction_tester", (PyCFunction)transaction_tester, METH_O,
     "transaction_tester(pure) -> tm's has_transaction(ctx), compiled"},
    {"loose_router", (PyCFunction)loose_router, METH_O,
     "loose_router((pure, nargs, RrState, own, own_names, settings_globals)) -> rr's "
     "loose_route(ctx[, mode]), compiled"},
    {"ack_relayer", (PyCFunction)ack_relayer, METH_O,
     "ack_relayer((pure, tm_globals, TmTable, Resolver, md5, received_via, Core.send, "
     "script_log)) -> tm's t_relay(ctx), an unmatched ACK's stateless relay compiled"},
    {"ack_absorber", (PyCFunction)ack_absorber, METH_O,
     "ack_absorber((state, pure)) -> sl's filter of the ACKs of its own replies, compiled"},
    {"record_router", (PyCFunction)record_router, METH_O,
     "record_router((pure, RrState, PerSocket, _entries, partial, settings_globals, "
     "socket_edit_key, branch_flag)) -> rr's record_route(ctx), compiled"},
    {"per_socket_usual", (PyCFunction)(void (*)(void))per_socket_usual, METH_FASTCALL,
     "per_socket_usual(edit, msg, proto, forced, local) -> rr's PerSocket for the usual "
     "branch, else NotImplemented"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fast", "Compiled forms of SIP parser helpers.", -1, methods,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    crc_init();
    empty_key = PyUnicode_InternFromString("");
    empty_tuple = PyTuple_New(0);
    s_sip20 = PyUnicode_InternFromString("SIP/2.0");
    s_udp = PyUnicode_InternFromString("UDP");
    s_tcp = PyUnicode_InternFromString("TCP");
    s_tls = PyUnicode_InternFromString("TLS");
    s_sctp = PyUnicode_InternFromString("SCTP");
    s_ws = PyUnicode_InternFromString("WS");
    s_wss = PyUnicode_InternFromString("WSS");
    s_content_length = PyUnicode_InternFromString("content-length");
    s_via = PyUnicode_InternFromString("via");
    s_from = PyUnicode_InternFromString("from");
    s_to = PyUnicode_InternFromString("to");
    s_call_id = PyUnicode_InternFromString("call-id");
    s_cseq = PyUnicode_InternFromString("cseq");
    s_max_forwards = PyUnicode_InternFromString("max-forwards");
    s_uri = PyUnicode_InternFromString("uri");
    s_vias = PyUnicode_InternFromString("vias");
    s_params = PyUnicode_InternFromString("_params");
    s_mf_prefix = PyUnicode_InternFromString("Max-Forwards:");
    s_via_prefix = PyUnicode_InternFromString("Via: ");
    s_timestamp = PyUnicode_InternFromString("timestamp");
    s_content_length_0 = PyUnicode_InternFromString("Content-Length: 0\r");
    PyObject *top_via_name = PyUnicode_InternFromString("top_via");
    s_top_via_kw = top_via_name == NULL ? NULL : PyTuple_Pack(1, top_via_name);
    Py_XDECREF(top_via_name);
    if (!s_timestamp || !s_content_length_0 || !s_top_via_kw)
        return NULL;
    s_rcv = PyUnicode_InternFromString("rcv");
    s_src_ip = PyUnicode_InternFromString("src_ip");
    s_src_port = PyUnicode_InternFromString("src_port");
    s_force_rport = PyUnicode_InternFromString("force_rport");
    s_received = PyUnicode_InternFromString("received");
    s_rport = PyUnicode_InternFromString("rport");
    if (!s_rcv || !s_src_ip || !s_src_port || !s_force_rport || !s_received || !s_rport)
        return NULL;
    if (!s_params || !s_vias || !s_mf_prefix || !s_via_prefix || !empty_tuple || !s_uri || !s_max_forwards || !s_via || !s_from || !s_to || !s_call_id || !s_cseq || !s_content_length || !empty_key || !s_sip20 || !s_udp || !s_tcp || !s_tls || !s_sctp || !s_ws || !s_wss)
        return NULL;
    s_lines_attr = PyUnicode_InternFromString("_lines");
    s_names_attr = PyUnicode_InternFromString("_names");
    s_via_attr = PyUnicode_InternFromString("via");
    s_raw_attr = PyUnicode_InternFromString("raw");
    s_protocol_attr = PyUnicode_InternFromString("protocol");
    if (!s_lines_attr || !s_names_attr || !s_via_attr || !s_raw_attr || !s_protocol_attr)
        return NULL;
    s_digest = PyUnicode_InternFromString("digest");
    b2s_kwnames = Py_BuildValue("(ss)", "key", "digest_size");
    b2s_size = PyLong_FromLong(NONCE_MAC);
    if (!s_digest || !b2s_kwnames || !b2s_size)
        return NULL;
    if (PyType_Ready(&CachedValueType) < 0)
        return NULL;
    if (PyType_Ready(&ContextMakerType) < 0)
        return NULL;
    return PyModule_Create(&module_def);
}

/* ---- maxfwd's process_maxfwd (kemi_maxfwd), for scripts and the cfg -------------------------
 * maxfwd_processor((settings, pure)) -> process_maxfwd(ctx, limit): for an int limit of
 * 0..255 and a message whose Max-Forwards reads as an int other than 0, the value lowered by
 * one (and to settings.max_limit) through msg.set_max_forwards, 1; 0 gives -1. Everything else
 * (no header: it is added; a bad header or limit: logged; another type) is ``pure``'s
 * (kemi_maxfwd.process_maxfwd), which stays the reference (kemi_maxfwd's
 * test_maxfwd_process.py runs both on the same messages). Every Lua/KEMI request route of
 * Kamailio's examples starts with it. */

static PyObject *mf_s_msg, *mf_s_max_forwards, *mf_s_max_limit, *mf_s_set_max_forwards;

static PyObject *
maxfwd_process(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *pure = PyTuple_GET_ITEM(consts, 1);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)
            || !PyLong_CheckExact(args[1]))
        return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    int overflow;
    long limit = PyLong_AsLongAndOverflow(args[1], &overflow);
    if (overflow || limit < 0 || limit > 255) {
        if (limit == -1 && PyErr_Occurred())
            return NULL;
        return PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
    }
    PyObject *msg = PyObject_GetAttr(args[0], mf_s_msg);
    if (msg == NULL)
        return NULL;
    PyObject *value = PyObject_GetAttr(msg, mf_s_max_forwards), *out = NULL;
    if (value == NULL || !PyLong_CheckExact(value)) {
        /* a bad header (read again there, logged) or none (added there) */
        if (value == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                goto done;
            PyErr_Clear();
        }
        out = PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
        goto done;
    }
    long n = PyLong_AsLongAndOverflow(value, &overflow);
    if (overflow || n < 0) {
        if (n == -1 && PyErr_Occurred())
            goto done;
        out = PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
        goto done;
    }
    if (n == 0) {
        out = PyLong_FromLong(-1);
        goto done;
    }
    PyObject *bound = PyObject_GetAttr(PyTuple_GET_ITEM(consts, 0), mf_s_max_limit);
    if (bound == NULL)
        goto done;
    PyObject *lowered = PyLong_FromLong(n - 1);
    PyObject *set_to = lowered;
    if (lowered != NULL) {
        int over = PyObject_RichCompareBool(lowered, bound, Py_GT);
        if (over < 0)
            set_to = NULL;
        else if (over)
            set_to = bound;
    }
    if (set_to != NULL) {
        PyObject *argv[2] = {msg, set_to};
        PyObject *r = PyObject_VectorcallMethod(mf_s_set_max_forwards, argv,
                                                2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r != NULL) {
            Py_DECREF(r);
            out = PyLong_FromLong(1);
        }
    }
    Py_XDECREF(lowered);
    Py_DECREF(bound);
done:
    Py_XDECREF(value);
    Py_DECREF(msg);
    return out;
}

static PyMethodDef maxfwd_process_def = {
    "process_maxfwd", (PyCFunction)(void (*)(void))maxfwd_process,
    METH_FASTCALL | METH_KEYWORDS,
    "process_maxfwd(ctx, limit) -> maxfwd's process_maxfwd (compiled; see maxfwd_processor)."};

static PyObject *
maxfwd_processor(PyObject *module, PyObject *consts)
{
    static const InternedName names[] = {
        {&mf_s_msg, "msg"}, {&mf_s_max_forwards, "max_forwards"},
        {&mf_s_max_limit, "max_limit"}, {&mf_s_set_max_forwards, "set_max_forwards"},
    };
    return bind_compiled(&maxfwd_process_def, consts, ".c", "maxfwd_processor((settings, pure))",
                         names, sizeof(names) / sizeof(names[0]));
}

/* ---- KSR.pv.get and KSR.pv.is_null (kemi_core/core_exports/pv.py) --------------------------
 * pv_reader((is_null, pure)) -> get(ctx, pvname) or is_null(ctx, pvname): the spec of a str
 * name from ctx.core.pv.spec (its memo: a dict lookup for a known text), then spec.get(ctx)
 * (is_null: whether that is None). A name whose spec fails (an unknown or malformed one:
 * logged there) or an argument of another shape goes to ``pure``, the Python form and the
 * reference (tests/unit/test_pv_reader.py runs both on the same names and messages). Scripts
 * test $tt and read $fd ... for every request. */

static PyObject *pvr_s_core, *pvr_s_pv, *pvr_s_spec, *pvr_s_get;

static PyObject *
pv_read(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *pure = PyTuple_GET_ITEM(consts, 1);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)
            || !PyUnicode_CheckExact(args[1]))
        return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    PyObject *core = PyObject_GetAttr(args[0], pvr_s_core);
    PyObject *pv = core == NULL ? NULL : PyObject_GetAttr(core, pvr_s_pv);
    PyObject *lookup = pv == NULL ? NULL : PyObject_GetAttr(pv, pvr_s_spec);
    PyObject *spec = lookup == NULL ? NULL : PyObject_CallOneArg(lookup, args[1]);
    PyObject *getter = spec == NULL ? NULL : PyObject_GetAttr(spec, pvr_s_get);
    Py_XDECREF(core);
    Py_XDECREF(pv);
    Py_XDECREF(lookup);
    Py_XDECREF(spec);
    if (getter == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();  /* (the Python form meets it again: logged or raised there) */
        return PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
    }
    PyObject *value = PyObject_CallOneArg(getter, args[0]);
    Py_DECREF(getter);
    if (value == NULL || PyTuple_GET_ITEM(consts, 0) != Py_True)
        return value;
    PyObject *out = PyBool_FromLong(value == Py_None);
    Py_DECREF(value);
    return out;
}

static PyMethodDef pv_read_def = {
    "pv_read", (PyCFunction)(void (*)(void))pv_read, METH_FASTCALL | METH_KEYWORDS,
    "get(ctx, pvname) or is_null(ctx, pvname) -> KSR.pv's (compiled; see pv_reader)."};

static PyObject *
pv_reader(PyObject *module, PyObject *consts)
{
    static const InternedName names[] = {
        {&pvr_s_core, "core"}, {&pvr_s_pv, "pv"}, {&pvr_s_spec, "spec"}, {&pvr_s_get, "get"},
    };
    return bind_compiled(&pv_read_def, consts, "bc", "pv_reader((is_null, pure))", names,
                         sizeof(names) / sizeof(names[0]));
}

/* pv_msg_getter((which, pure)) -> getter(ctx): $fd (which 0: the From URI's host, None when
 * it has none), $ft (1) and $tt (2: the From's or To's tag) read through the message's
 * compiled descriptors; a read that raises goes to ``pure`` (kemi_core/pv/builtin_msg.py's
 * _from_host or _tag), which reads it again and answers as it does (None, and for $fd's bad
 * URI the context's last_error). tests/unit/test_pv_reader.py runs both forms. */
static PyObject *pvm_s_msg, *pvm_s_from, *pvm_s_to, *pvm_s_uri, *pvm_s_host, *pvm_s_tag;

static PyObject *
pv_msg_get(PyObject *consts, PyObject *ctx)
{
    long which = PyLong_AsLong(PyTuple_GET_ITEM(consts, 0));
    PyObject *msg = PyObject_GetAttr(ctx, pvm_s_msg);
    PyObject *na = msg == NULL ? NULL : PyObject_GetAttr(msg, which == 2 ? pvm_s_to : pvm_s_from);
    PyObject *value = na == NULL ? NULL : PyObject_GetAttr(na, which == 0 ? pvm_s_uri : pvm_s_tag);
    Py_XDECREF(msg);
    Py_XDECREF(na);
    if (value != NULL && which == 0 && value != Py_None) {
        PyObject *host = PyObject_GetAttr(value, pvm_s_host);
        int some = host == NULL ? -1 : PyObject_IsTrue(host);
        Py_SETREF(value, some < 0 ? NULL : some ? Py_NewRef(host) : Py_NewRef(Py_None));
        Py_XDECREF(host);
    }
    if (value == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();
        return PyObject_CallOneArg(PyTuple_GET_ITEM(consts, 1), ctx);
    }
    return value;
}

static PyMethodDef pv_msg_get_def = {
    "pv_msg_get", (PyCFunction)pv_msg_get, METH_O,
    "getter(ctx) -> $fd, $ft or $tt (compiled; see pv_msg_getter)."};

static PyObject *
pv_msg_getter(PyObject *module, PyObject *consts)
{
    static const InternedName names[] = {
        {&pvm_s_msg, "msg"}, {&pvm_s_from, "from_"}, {&pvm_s_to, "to"}, {&pvm_s_uri, "uri"},
        {&pvm_s_host, "host"}, {&pvm_s_tag, "tag"},
    };
    PyObject *fn = bind_compiled(&pv_msg_get_def, consts, "ic", "pv_msg_getter((which, pure))",
                                 names, sizeof(names) / sizeof(names[0]));
    long which = fn == NULL ? 0 : PyLong_AsLong(PyTuple_GET_ITEM(consts, 0));
    if (fn != NULL && (which < 0 || which > 2)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "pv_msg_getter: which is 0 ($fd), 1 ($ft), 2 ($tt)");
        Py_CLEAR(fn);
    }
    return fn;
}

/* ---- tm's has_transaction (kemi_tm/service.py) --------------------------------------------
 * transaction_tester(pure) -> has_transaction(ctx): whether ctx.mod_state's "tm" state holds a
 * transaction (its tx is not None), as TmService.has_transaction answers; a mod_state that is
 * not a dict goes to ``pure`` (the method bound), the reference (kemi_tm's
 * test_tm_has_transaction.py runs both). sl asks it for every reply of a cfg that loads tm. */
static PyObject *tt_s_mod_state, *tt_s_tm, *tt_s_tx;

static PyObject *
tx_test(PyObject *pure, PyObject *ctx)
{
    PyObject *states = PyObject_GetAttr(ctx, tt_s_mod_state);
    if (states == NULL)
        return NULL;
    if (!PyDict_CheckExact(states)) {
        Py_DECREF(states);
        return PyObject_CallOneArg(pure, ctx);
    }
    PyObject *state = PyDict_GetItemWithError(states, tt_s_tm);  /* (borrowed) */
    if (state == NULL || state == Py_None) {
        Py_DECREF(states);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_FALSE;
    }
    Py_INCREF(state);
    Py_DECREF(states);
    PyObject *tx = PyObject_GetAttr(state, tt_s_tx);
    Py_DECREF(state);
    if (tx == NULL)
        return NULL;
    int held = tx != Py_None;
    Py_DECREF(tx);
    return PyBool_FromLong(held);
}

static PyMethodDef tx_test_def = {
    "has_transaction", (PyCFunction)tx_test, METH_O,
    "has_transaction(ctx) -> tm's (compiled; see transaction_tester)."};

static PyObject *
transaction_tester(PyObject *module, PyObject *pure)
{
    static const InternedName names[] = {
        {&tt_s_mod_state, "mod_state"}, {&tt_s_tm, "tm"}, {&tt_s_tx, "tx"},
    };
    return bind_compiled(&tx_test_def, pure, NULL, "transaction_tester(pure)", names,
                         sizeof(names) / sizeof(names[0]));
}

/* ---- rr's usual loose_route (kemi_rr/loose.py's loose_route, _only_own_entry) --------------
 * loose_router((pure, nargs, RrState, own, own_names, settings_globals)) -> loose_route(ctx) (nargs 1)
 * or loose_route(ctx, mode) (nargs 2):
 * the usual in-dialog request (one Route line of one <URI> entry: ours, as is_own's memo
 * ``own`` already knows it, without ;r2, in a usual sip: URI whose parameter names are in lower
 * case and not repeated; the R-URI known not ours unless mode 1; rr's settings read and
 * force_send_socket off) routed as _only_own_entry routes it: the rr state (``RrState``, in
 * ctx.extra["rr"]) gets routed, route_uri and route_params (the entry URI's parameter text,
 * which params_text gives for such a URI), the Route line goes (SipMsg.remove_header's one-line
 * case), and 1 (-3 for a request without a To tag) is returned. Everything is decided before
 * anything changes; any other request, argument or a value not known yet (is_own's memo
 * empty for this URI, settings not read for this core) goes to ``pure`` (ki_loose_route or
 * ki_loose_route_mode), the reference: kemi_rr's test_rr_loose_fast.py runs both. */
enum { LR_PURE, LR_NARGS, LR_STATE_CLS, LR_OWN, LR_OWN_NAMES, LR_SETTINGS, LR_COUNT };
#define LR_MAX_PARAMS 16

static PyObject *lr_s_msg, *lr_s_core, *lr_s_extra, *lr_s_route, *lr_s_front, *lr_s_myself,
    *lr_s_param_version, *lr_s_last, *lr_s_force_send_socket, *lr_s_to, *lr_s_tag, *lr_s_rr,
    *lr_s_routed, *lr_s_route_uri, *lr_s_route_params, *lr_s_sip, *lr_s_sips, *lr_s_scheme,
    *lr_s_host, *lr_s_port, *lr_s_params, *lr_s_transport;

/* is_own's memo key (scheme, host, port, ;transport= as written) of the usual URI text:
 * *params_ok 0 when a parameter name has an upper-case letter or comes twice (params_text
 * would not give the text as written), *r2 when one is "r2". NULL without an exception: not the
 * usual URI. */
static PyObject *
lr_uri_key(PyObject *text, int *params_ok, int *r2)
{
    UriSpans u;
    if (!uri_usual(text, &u))
        return NULL;
    const Py_UCS1 *d = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = u.n, names[LR_MAX_PARAMS][2], ts = -1, te = -1;
    int count = 0;
    *params_ok = 1;
    *r2 = 0;
    for (Py_ssize_t s = u.ps + 1; u.ps < n && s <= n;) {
        Py_ssize_t e = s;
        while (e < n && d[e] != ';')
            e++;
        Py_ssize_t eq = s;
        while (eq < e && d[eq] != '=')
            eq++;
        if (eq == s || count == LR_MAX_PARAMS)
            return NULL; /* an empty name (Python's 400), or more than we look at */
        for (Py_ssize_t k = s; k < eq; k++)
            if (d[k] >= 'A' && d[k] <= 'Z')
                *params_ok = 0;
        for (int c = 0; c < count; c++)
            if (names[c][1] - names[c][0] == eq - s && memcmp(d + names[c][0], d + s, eq - s) == 0)
                *params_ok = 0;
        names[count][0] = s;
        names[count][1] = eq;
        count++;
        if (eq - s == 2 && memcmp(d + s, "r2", 2) == 0)
            *r2 = 1;
        if (eq - s == 9 && memcmp(d + s, "transport", 9) == 0 && eq < e) {
            ts = eq + 1;
            te = e;
        }
        s = e + 1;
    }
    if (!*params_ok)
        return NULL;
    PyObject *host = PyUnicode_Substring(text, u.hs, u.he);
    PyObject *port = u.port >= 0 ? PyLong_FromLong(u.port) : Py_NewRef(Py_None);
    PyObject *transport = ts >= 0 ? PyUnicode_Substring(text, ts, te) : Py_NewRef(Py_None);
    PyObject *key = host && port && transport
        ? PyTuple_Pack(4, u.sips ? lr_s_sips : lr_s_sip, host, port, transport) : NULL;
    Py_XDECREF(host);
    Py_XDECREF(port);
    Py_XDECREF(transport);
    return key;
}

/* is_own's memo key of a parsed SipUri (the R-URI the message keeps); NULL on error. */
static PyObject *
lr_parsed_key(PyObject *uri)
{
    PyObject *scheme = PyObject_GetAttr(uri, lr_s_scheme);
    PyObject *host = scheme ? PyObject_GetAttr(uri, lr_s_host) : NULL;
    PyObject *port = host ? PyObject_GetAttr(uri, lr_s_port) : NULL;
    PyObject *params = port ? PyObject_GetAttr(uri, lr_s_params) : NULL;
    PyObject *transport = NULL, *key = NULL;
    if (params != NULL && PyDict_CheckExact(params)) {
        transport = PyDict_GetItemWithError(params, lr_s_transport);
        if (transport != NULL || !PyErr_Occurred())
            key = PyTuple_Pack(4, scheme, host, port, transport ? transport : Py_None);
    }
    else if (params != NULL)
        PyErr_SetString(PyExc_TypeError, "SipUri.params is not a dict");
    Py_XDECREF(scheme);
    Py_XDECREF(host);
    Py_XDECREF(port);
    Py_XDECREF(params);
    return key;
}

/* is_own's memo answer for key: 1 ours, 0 not, -1 not known (the memo is for another set of
 * names, or has no entry), -2 on error. key is consumed. */
static int
lr_own(PyObject *consts, PyObject *key)
{
    if (key == NULL)
        return PyErr_Occurred() ? -2 : -1;
    PyObject *found = PyDict_GetItemWithError(PyTuple_GET_ITEM(consts, LR_OWN), key);
    Py_DECREF(key);
    if (found == NULL)
        return PyErr_Occurred() ? -2 : -1;
    return found == Py_True ? 1 : found == Py_False ? 0 : -1;
}

/* rr's settings of ``core`` when kemi_rr.settings' _last holds them (a new reference), else
 * NULL (with an exception only on error) */
static PyObject *
rr_settings_of(PyObject *globals, PyObject *core)
{
    PyObject *last = PyDict_GetItemWithError(globals, lr_s_last);
    if (last == NULL || !PyTuple_CheckExact(last) || PyTuple_GET_SIZE(last) != 3
            || PyTuple_GET_ITEM(last, 2) == Py_None)
        return NULL;
    Py_INCREF(last);
    PyObject *found = NULL;
    PyObject *who = PyObject_CallNoArgs(PyTuple_GET_ITEM(last, 0));
    PyObject *version = who == NULL ? NULL : PyObject_GetAttr(core, lr_s_param_version);
    if (version != NULL && who == core) {
        int same = PyObject_RichCompareBool(version, PyTuple_GET_ITEM(last, 1), Py_EQ);
        if (same > 0)
            found = Py_NewRef(PyTuple_GET_ITEM(last, 2));
    }
    Py_XDECREF(who);
    Py_XDECREF(version);
    Py_DECREF(last);
    return found;
}

/* Whether rr's settings of ``core`` are read (settings._last) with force_send_socket off:
 * 1 yes, 0 no (or not known), -1 on error. */
static int
lr_settings_plain(PyObject *consts, PyObject *core)
{
    PyObject *found = rr_settings_of(PyTuple_GET_ITEM(consts, LR_SETTINGS), core);
    if (found == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *force = PyObject_GetAttr(found, lr_s_force_send_socket);
    Py_DECREF(found);
    int ok = force == NULL ? -1 : force == Py_False;
    Py_XDECREF(force);
    return ok;
}

/* Whether the message's R-URI is ours (is_own's memo): 1, 0, -1 not known, -2 on error. */
static int
lr_ruri_own(PyObject *consts, PyObject *msg)
{
    PyObject *cache = *field(msg, F_CACHE), *ruri = *field(msg, F_RURI);
    if (cache == NULL || !PyDict_CheckExact(cache) || ruri == NULL)
        return -1;
    PyObject *parsed = PyDict_GetItemWithError(cache, s_uri);
    if (parsed == NULL && PyErr_Occurred())
        return -2;
    int params_ok, r2;
    if (parsed != NULL) {
        Py_INCREF(parsed);
        PyObject *key = lr_parsed_key(parsed);
        Py_DECREF(parsed);
        return lr_own(consts, key);
    }
    return lr_own(consts, lr_uri_key(ruri, &params_ok, &r2));
}

static PyObject *
loose_route_fast(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *pure = PyTuple_GET_ITEM(consts, LR_PURE);
    PyObject *msg = NULL, *core = NULL, *extra = NULL, *value = NULL, *uri_text = NULL;
    PyObject *params = NULL, *out = NULL, *to = NULL, *tag = NULL, *fields = NULL;
    long mode = 0;
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) || msg_type == NULL
            || nargs != PyLong_AsSsize_t(PyTuple_GET_ITEM(consts, LR_NARGS)))
        return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    PyObject *ctx = args[0];
    if (nargs == 2) {
        if (!PyLong_CheckExact(args[1]))
            goto fallback;
        int overflow;
        mode = PyLong_AsLongAndOverflow(args[1], &overflow);
        if (overflow || (mode == -1 && PyErr_Occurred()))
            goto fallback;
    }
    msg = PyObject_GetAttr(ctx, lr_s_msg);
    if (msg == NULL)
        goto error;
    if (Py_TYPE(msg) != msg_type || *field(msg, F_IS_REQUEST) != Py_True)
        goto fallback;
    PyObject *names = *field(msg, F_NAMES), *lines = *field(msg, F_LINES);
    PyObject *cache = *field(msg, F_CACHE);
    if (names == NULL || lines == NULL || cache == NULL || !PyList_CheckExact(names)
            || !PyList_CheckExact(lines) || !PyDict_CheckExact(cache)
            || PyList_GET_SIZE(names) != PyList_GET_SIZE(lines))
        goto fallback;
    Py_ssize_t at = find_single(names, lr_s_route);
    if (at == -3)
        goto error;
    if (at < 0)
        goto fallback;
    value = line_value(NULL, PyList_GET_ITEM(lines, at));
    if (value == NULL)
        goto error;
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    if (n == 0 || PyUnicode_FindChar(value, ',', 0, n, 1) != -1
            || PyUnicode_FindChar(value, '"', 0, n, 1) != -1
            || Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(value, 0))
            || Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(value, n - 1))
            || PyUnicode_READ_CHAR(value, 0) != '<')
        goto fallback; /* (FindChar's -2 leaves an error: fallback clears it) */
    fields = name_addr_fields(NULL, value);
    if (fields == NULL)
        goto error;
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) < 2)
        goto fallback;
    uri_text = Py_NewRef(PyTuple_GET_ITEM(fields, 1));
    int params_ok, r2;
    PyObject *key = lr_uri_key(uri_text, &params_ok, &r2);
    if (key == NULL && PyErr_Occurred())
        goto error;
    if (key == NULL || r2) {
        Py_XDECREF(key);
        goto fallback;
    }
    core = PyObject_GetAttr(ctx, lr_s_core);
    PyObject *myself = core == NULL ? NULL : PyObject_GetAttr(core, lr_s_myself);
    if (myself == NULL) {
        Py_DECREF(key);
        goto error;
    }
    PyObject *own_names = PyTuple_GET_ITEM(consts, LR_OWN_NAMES);
    int same = myself != Py_None && PyList_CheckExact(own_names) && PyList_GET_SIZE(own_names) > 0
               && PyList_GET_ITEM(own_names, 0) == myself;
    Py_DECREF(myself);
    if (!same) {
        Py_DECREF(key);
        goto fallback;
    }
    int own = lr_own(consts, key);
    if (own == -2)
        goto error;
    if (own != 1)
        goto fallback;
    if (!(mode & 1)) {
        own = lr_ruri_own(consts, msg);
        if (own == -2)
            goto error;
        if (own != 0)
            goto fallback;
    }
    int plain = lr_settings_plain(consts, core);
    if (plain < 0)
        goto error;
    if (!plain)
        goto fallback;
    to = PyObject_GetAttr(msg, lr_s_to);
    tag = to == NULL ? NULL : PyObject_GetAttr(to, lr_s_tag);
    if (tag == NULL)
        goto fallback; /* (a To that does not parse: the pure form reads it again) */
    extra = PyObject_GetAttr(ctx, lr_s_extra);
    if (extra == NULL)
        goto error;
    if (!PyDict_CheckExact(extra))
        goto fallback;
    Py_ssize_t ps = PyUnicode_FindChar(uri_text, ';', 0, PyUnicode_GET_LENGTH(uri_text), 1);
    params = ps < 0 ? PyUnicode_New(0, 127)
                    : PyUnicode_Substring(uri_text, ps, PyUnicode_GET_LENGTH(uri_text));
    if (params == NULL)
        goto error;
    /* decided: the changes */
    PyObject *st = PyDict_GetItemWithError(extra, lr_s_rr);
    PyObject *cls = PyTuple_GET_ITEM(consts, LR_STATE_CLS);
    if (st == NULL && PyErr_Occurred())
        goto error;
    if (st == NULL || Py_TYPE(st) != (PyTypeObject *)cls) {
        st = PyObject_CallNoArgs(cls);
        if (st == NULL || PyDict_SetItem(extra, lr_s_rr, st) < 0) {
            Py_XDECREF(st);
            goto error;
        }
    }
    else
        Py_INCREF(st);
    int rc = PyObject_SetAttr(st, lr_s_routed, Py_True) < 0
             || PyObject_SetAttr(st, lr_s_route_uri, uri_text) < 0
             || PyObject_SetAttr(st, lr_s_route_params, params) < 0;
    Py_DECREF(st);
    if (rc)
        goto error;
    PyObject *front = PyDict_GetItemWithError(cache, lr_s_front);
    if (front == NULL && PyErr_Occurred())
        goto error;
    long fr = front == NULL ? 0 : PyLong_AsLong(front);
    if (fr == -1 && PyErr_Occurred())
        goto error;
    if (PySequence_DelItem(names, at) < 0 || PySequence_DelItem(lines, at) < 0)
        goto error;
    if (at <= fr) {
        PyObject *less = PyLong_FromLong(fr - 1);
        rc = less == NULL || PyDict_SetItem(cache, lr_s_front, less) < 0;
        Py_XDECREF(less);
        if (rc)
            goto error;
    }
    Py_XSETREF(*field(msg, F_BUF), Py_NewRef(Py_None));
    if (PyDict_DelItem(cache, lr_s_route) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            goto error;
        PyErr_Clear();
    }
    out = PyLong_FromLong(tag == Py_None ? -3 : 1);
    goto done;
fallback:
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            goto error;
        PyErr_Clear();
    }
    out = PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
    goto done;
error:
done:
    Py_XDECREF(msg);
    Py_XDECREF(core);
    Py_XDECREF(extra);
    Py_XDECREF(value);
    Py_XDECREF(uri_text);
    Py_XDECREF(params);
    Py_XDECREF(to);
    Py_XDECREF(tag);
    Py_XDECREF(fields);
    return out;
}

static PyMethodDef loose_route_fast_def = {
    "loose_route", (PyCFunction)(void (*)(void))loose_route_fast, METH_FASTCALL | METH_KEYWORDS,
    "loose_route(ctx[, mode]) -> rr's loose_route (compiled; see loose_router)."};

static PyObject *
loose_router(PyObject *module, PyObject *consts)
{
    static const InternedName names[] = {
        {&lr_s_msg, "msg"}, {&lr_s_core, "core"}, {&lr_s_extra, "extra"},
        {&lr_s_route, "route"}, {&lr_s_front, " front"}, {&lr_s_myself, "_myself"},
        {&lr_s_param_version, "param_version"}, {&lr_s_last, "_last"},
        {&lr_s_force_send_socket, "force_send_socket"}, {&lr_s_to, "to"}, {&lr_s_tag, "tag"},
        {&lr_s_rr, "rr"}, {&lr_s_routed, "routed"}, {&lr_s_route_uri, "route_uri"},
        {&lr_s_route_params, "route_params"}, {&lr_s_sip, "sip"}, {&lr_s_sips, "sips"},
        {&lr_s_scheme, "scheme"}, {&lr_s_host, "host"}, {&lr_s_port, "port"},
        {&lr_s_params, "params"}, {&lr_s_transport, "transport"},
    };
    return bind_compiled(&loose_route_fast_def, consts, "citd.m",
                         "loose_router((pure, nargs, RrState, own: dict, own_names: list, "
                         "settings_globals: dict))", names, sizeof(names) / sizeof(names[0]));
}

/* ---- tm's t_relay of an ACK that no transaction takes (kemi_tm/relay.py's relay, _relay_ack,
 * _stateless; kemi_core/forwarding/send.py's forward_request, _send_request) ----------------
 * ack_relayer((pure, tm_globals, TmTable, Resolver, md5, received_via, Core.send,
 * script_log)) -> t_relay(ctx): the end-to-end ACK of a 2xx (an ACK request, no tm state for
 * it, no server transaction of its RFC 3261 key: Via branch with the magic cookie) forwarded
 * statelessly as forward_request sends it: to $du or the R-URI (a usual sip: URI over UDP to
 * an address the resolver knows as a literal), from the worker's socket (one UDP listen, no
 * forced socket, nothing advertised, no rr socket edit, no onsend_route), our Via with the
 * stateless branch (MD5 of the top Via's branch, host and port) above the sender's with
 * ;received/;rport (``received_via``), counted as forwarded (fwd_requests, or err_requests and
 * the error logged when the network refuses it): 1, or -1. The tm service is the one t_relay
 * found last (tm_globals' _last_svc, for this core). Everything is decided before anything
 * is sent; any other request, or a value not known yet, goes to ``pure`` (exports.t_relay),
 * the reference: kemi_tm's test_tm_ack_fast.py runs both. */
enum { AR_PURE, AR_TM_GLOBALS, AR_TABLE_CLS, AR_RESOLVER_CLS, AR_MD5, AR_RECEIVED_VIA,
       AR_CORE_SEND, AR_LOG, AR_COUNT };

static PyObject *ar_s_msg, *ar_s_mod_state, *ar_s_tm, *ar_s_last_svc, *ar_s_core,
    *ar_s_table, *ar_s_by_key, *ar_s_via, *ar_s_branch, *ar_s_host, *ar_s_port,
    *ar_s_transport, *ar_s_call_id, *ar_s_cseq, *ar_s_number, *ar_s_3261, *ar_s_invite,
    *ar_s_dst_uri, *ar_s_send_socket, *ar_s_inbound_udp, *ar_s_advertised, *ar_s_extra,
    *ar_s_adv_address, *ar_s_adv_port, *ar_s_local_rport, *ar_s_socket_edit, *ar_s_onsend,
    *ar_s_local_address, *ar_s_udp, *ar_s_resolver, *ar_s_literals, *ar_s_lower,
    *ar_s_hexdigest, *ar_s_bytes_with_via, *ar_s_stats, *ar_s_fwd_requests,
    *ar_s_err_requests, *ar_s_error, *ar_s_send_failed, *ar_s_ack, *ar_s_cookie;

/* The server key keys.key_for(msg, "INVITE") gives an ACK with an RFC 3261 branch; NULL
 * without an exception for another branch (*via and *branch: new references when found). */
static PyObject *
ar_server_key(PyObject *msg, PyObject **via_out)
{
    PyObject *via = PyObject_GetAttr(msg, ar_s_via), *branch = NULL, *host = NULL, *low = NULL;
    PyObject *port = NULL, *call_id = NULL, *cseq = NULL, *number = NULL, *key = NULL;
    if (via == NULL || (branch = PyObject_GetAttr(via, ar_s_branch)) == NULL)
        goto done;
    if (!PyUnicode_Check(branch) || PyUnicode_Tailmatch(branch, ar_s_cookie, 0, PY_SSIZE_T_MAX, -1) != 1)
        goto done;
    if ((host = PyObject_GetAttr(via, ar_s_host)) == NULL
            || (low = PyObject_CallMethodNoArgs(host, ar_s_lower)) == NULL
            || (port = PyObject_GetAttr(via, ar_s_port)) == NULL)
        goto done;
    if (port == Py_None) {
        PyObject *t = PyObject_GetAttr(via, ar_s_transport);
        PyObject *tl = t == NULL ? NULL : PyObject_CallMethodNoArgs(t, ar_s_lower);
        Py_XDECREF(t);
        if (tl == NULL)
            goto done;
        long dflt = PyUnicode_CompareWithASCIIString(tl, "tls") == 0   ? 5061
                    : PyUnicode_CompareWithASCIIString(tl, "wss") == 0 ? 443
                    : PyUnicode_CompareWithASCIIString(tl, "ws") == 0  ? 80
                                                                       : 5060;
        Py_DECREF(tl);
        Py_SETREF(port, PyLong_FromLong(dflt));
        if (port == NULL)
            goto done;
    }
    if ((call_id = PyObject_GetAttr(msg, ar_s_call_id)) == NULL
            || (cseq = PyObject_GetAttr(msg, ar_s_cseq)) == NULL
            || (number = PyObject_GetAttr(cseq, ar_s_number)) == NULL)
        goto done;
    key = PyTuple_Pack(7, ar_s_3261, branch, low, port, ar_s_invite, call_id, number);
done:
    if (key != NULL)
        *via_out = Py_NewRef(via);
    Py_XDECREF(via);
    Py_XDECREF(branch);
    Py_XDECREF(host);
    Py_XDECREF(low);
    Py_XDECREF(port);
    Py_XDECREF(call_id);
    Py_XDECREF(cseq);
    Py_XDECREF(number);
    return key;
}

/* stateless_branch(msg) for a top Via whose branch has the magic cookie: "z9hG4bK" and the
 * first 16 hex digits of the MD5 of "branch|host|port" (port None written "None") */
static PyObject *
ar_stateless_branch(PyObject *consts, PyObject *via)
{
    PyObject *branch = PyObject_GetAttr(via, ar_s_branch);
    PyObject *host = branch == NULL ? NULL : PyObject_GetAttr(via, ar_s_host);
    PyObject *port = host == NULL ? NULL : PyObject_GetAttr(via, ar_s_port);
    PyObject *seed = port == NULL ? NULL : PyUnicode_FromFormat("%S|%S|%S", branch, host, port);
    PyObject *raw = seed == NULL ? NULL : PyUnicode_AsEncodedString(seed, "utf-8",
                                                                    "surrogateescape");
    PyObject *sum = raw == NULL ? NULL : PyObject_CallOneArg(PyTuple_GET_ITEM(consts, AR_MD5),
                                                             raw);
    PyObject *hex = sum == NULL ? NULL : PyObject_CallMethodNoArgs(sum, ar_s_hexdigest);
    PyObject *out = NULL;
    if (hex != NULL && PyUnicode_Check(hex) && PyUnicode_GET_LENGTH(hex) >= 16) {
        PyObject *head = PyUnicode_Substring(hex, 0, 16);
        out = head == NULL ? NULL : PyUnicode_FromFormat("z9hG4bK%U", head);
        Py_XDECREF(head);
    }
    else if (hex != NULL)
        PyErr_SetString(PyExc_ValueError, "md5 hexdigest");
    Py_XDECREF(branch);
    Py_XDECREF(host);
    Py_XDECREF(port);
    Py_XDECREF(seed);
    Py_XDECREF(raw);
    Py_XDECREF(sum);
    Py_XDECREF(hex);
    return out;
}

/* 1 when none of ``extra``'s keys that change a stateless forward is set (advertised address
 * or port, ;rport on our Via, rr's socket edit), 0 otherwise, -1 on error */
static int
ar_extra_plain(PyObject *extra)
{
    if (!PyDict_CheckExact(extra))
        return 0;
    PyObject *const keys[4] = {ar_s_adv_address, ar_s_adv_port, ar_s_local_rport,
                               ar_s_socket_edit};
    for (int k = 0; k < 4; k++) {
        PyObject *v = PyDict_GetItemWithError(extra, keys[k]);
        if (v == NULL) {
            if (PyErr_Occurred())
                return -1;
            continue;
        }
        int set = k == 3 ? v != Py_None : PyObject_IsTrue(v); /* (for_socket: `is None`) */
        if (set != 0)
            return set < 0 ? -1 : 0;
    }
    return 1;
}

static PyObject *
ack_relay(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *pure = PyTuple_GET_ITEM(consts, AR_PURE);
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) || nargs != 1 || msg_type == NULL)
        return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    PyObject *ctx = args[0];
    PyObject *msg = NULL, *states = NULL, *svc = NULL, *core = NULL, *ctx_core = NULL;
    PyObject *table = NULL, *by_key = NULL, *key = NULL, *via = NULL, *uri = NULL, *x = NULL;
    PyObject *transport = NULL, *la = NULL, *sent_by = NULL, *branch = NULL, *ours = NULL;
    PyObject *top = NULL, *data = NULL, *resolver = NULL, *literals = NULL, *host = NULL;
    PyObject *port = NULL, *stats = NULL, *extra = NULL, *out = NULL;
    int rc;
    if ((msg = PyObject_GetAttr(ctx, ar_s_msg)) == NULL)
        goto error;
    if (Py_TYPE(msg) != msg_type || *field(msg, F_IS_REQUEST) != Py_True
            || *field(msg, F_METHOD) == NULL || !PyUnicode_Check(*field(msg, F_METHOD))
            || PyUnicode_Compare(*field(msg, F_METHOD), ar_s_ack) != 0)
        goto fallback;
    /* relay(): no tm state (a failure route's serial fork needs one) */
    if ((states = PyObject_GetAttr(ctx, ar_s_mod_state)) == NULL)
        goto error;
    if (!PyDict_CheckExact(states))
        goto fallback;
    PyObject *b = PyDict_GetItemWithError(states, ar_s_tm); /* (borrowed) */
    if (b != NULL && b != Py_None)
        goto fallback;
    if (b == NULL && PyErr_Occurred())
        goto error;
    /* the service t_relay found last, for this core */
    PyObject *ref = PyDict_GetItemWithError(PyTuple_GET_ITEM(consts, AR_TM_GLOBALS), ar_s_last_svc);
    if (ref == NULL)
        goto fallback;
    if ((svc = PyObject_CallNoArgs(ref)) == NULL || (ctx_core = PyObject_GetAttr(ctx, ar_s_core)) == NULL)
        goto error;
    if (svc == Py_None || (core = PyObject_GetAttr(svc, ar_s_core)) == NULL || core != ctx_core)
        goto fallback;
    /* _relay_ack: no transaction of its key (table.lookup_request) */
    if ((table = PyObject_GetAttr(svc, ar_s_table)) == NULL)
        goto fallback;
    if (Py_TYPE(table) != (PyTypeObject *)PyTuple_GET_ITEM(consts, AR_TABLE_CLS)
            || (by_key = PyObject_GetAttr(table, ar_s_by_key)) == NULL || !PyDict_CheckExact(by_key))
        goto fallback;
    if ((key = ar_server_key(msg, &via)) == NULL)
        goto fallback;
    if (PyDict_GetItemWithError(by_key, key) != NULL)
        goto fallback;
    if (PyErr_Occurred())
        goto error;
    /* _stateless: to $du, else the R-URI, over UDP (uri_target) */
    if ((uri = PyObject_GetAttr(ctx, ar_s_dst_uri)) == NULL)
        goto error;
    if (uri == Py_None || (PyUnicode_Check(uri) && PyUnicode_GET_LENGTH(uri) == 0))
        Py_SETREF(uri, Py_XNewRef(*field(msg, F_RURI)));
    UriSpans u;
    if (uri == NULL || !uri_usual(uri, &u) || u.sips)
        goto fallback;
    int params_ok, r2;
    PyObject *tkey = lr_uri_key(uri, &params_ok, &r2); /* (scheme, host, port, transport) */
    if (tkey == NULL)
        goto fallback;
    PyObject *tr = PyTuple_GET_ITEM(tkey, 3);
    int udp = tr == Py_None || PyUnicode_GET_LENGTH(tr) == 0;
    if (!udp) {
        PyObject *low = PyObject_CallMethodNoArgs(tr, ar_s_lower);
        udp = low != NULL && PyUnicode_Compare(low, ar_s_udp) == 0;
        Py_XDECREF(low);
    }
    host = Py_NewRef(PyTuple_GET_ITEM(tkey, 1));
    Py_DECREF(tkey);
    if (!udp || PyErr_Occurred())
        goto fallback;
    if ((port = PyLong_FromLong(u.port > 0 ? u.port : 5060)) == NULL)
        goto error;
    /* forward_request: the worker's socket, nothing forced, advertised or edited */
    if ((x = PyObject_GetAttr(ctx, ar_s_send_socket)) == NULL)
        goto error;
    if (x != Py_None)
        goto fallback;
    Py_CLEAR(x);
    if ((x = PyObject_GetAttr(core, ar_s_inbound_udp)) == NULL)
        goto error;
    if (x != Py_None)
        goto fallback;
    Py_CLEAR(x);
    if ((x = PyObject_GetAttr(core, ar_s_advertised)) == NULL)
        goto error;
    if (x != Py_None)
        goto fallback;
    Py_CLEAR(x);
    if ((x = PyObject_GetAttr(core, ar_s_onsend)) == NULL)
        goto error;
    if (x != Py_None)
        goto fallback;
    Py_CLEAR(x);
    if ((extra = PyObject_GetAttr(ctx, ar_s_extra)) == NULL || (rc = ar_extra_plain(extra)) < 0)
        goto error;
    if (!rc)
        goto fallback;
    /* the next hop's address: a literal the resolver knows */
    if ((resolver = PyObject_GetAttr(core, ar_s_resolver)) == NULL)
        goto error;
    if (Py_TYPE(resolver) != (PyTypeObject *)PyTuple_GET_ITEM(consts, AR_RESOLVER_CLS)
            || (literals = PyObject_GetAttr(resolver, ar_s_literals)) == NULL
            || !PyDict_CheckExact(literals))
        goto fallback;
    PyObject *ip = PyDict_GetItemWithError(literals, host);
    if (ip == NULL || !PyUnicode_CheckExact(ip))
        goto fallback;
    Py_INCREF(ip);
    Py_SETREF(host, ip); /* (host is the address from here on) */
    /* our Via: the transport's UDP address (via_sent_by) */
    if ((transport = PyObject_GetAttr(core, ar_s_transport)) == NULL)
        goto error;
    if (transport == Py_None)
        goto fallback;
    if ((la = PyObject_CallMethodOneArg(transport, ar_s_local_address, ar_s_udp)) == NULL)
        goto fallback;
    if (!PyTuple_CheckExact(la) || PyTuple_GET_SIZE(la) != 2
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(la, 0))
            || !PyLong_CheckExact(PyTuple_GET_ITEM(la, 1)))
        goto fallback;
    PyObject *lh = PyTuple_GET_ITEM(la, 0);
    int v6 = PyUnicode_FindChar(lh, ':', 0, PyUnicode_GET_LENGTH(lh), 1) >= 0
             && PyUnicode_READ_CHAR(lh, 0) != '[';
    sent_by = PyUnicode_FromFormat(v6 ? "[%U]:%S" : "%U:%S", lh, PyTuple_GET_ITEM(la, 1));
    if (sent_by == NULL || (branch = ar_stateless_branch(consts, via)) == NULL
            || (ours = PyUnicode_FromFormat("SIP/2.0/UDP %U;branch=%U", sent_by, branch)) == NULL)
        goto fallback;
    /* (what raises here, a Via whose ;rport is no port say, is the pure form's to answer: it
     * catches a SipParseError as relay() does; nothing is sent yet) */
    PyObject *rv[2] = {ctx, msg};
    if ((top = PyObject_Vectorcall(PyTuple_GET_ITEM(consts, AR_RECEIVED_VIA), rv, 2, NULL)) == NULL)
        goto fallback;
    PyObject *bv[3] = {msg, ours, top};
    data = PyObject_VectorcallMethod(ar_s_bytes_with_via, bv, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     NULL);
    if (data == NULL)
        goto fallback;
    /* decided: sent (_send_request) */
    rc = core_send_now(PyTuple_GET_ITEM(consts, AR_CORE_SEND), core, ar_s_udp, host, port, data,
                       Py_None);
    if (rc < 0 || (stats = PyObject_GetAttr(core, ar_s_stats)) == NULL)
        goto error;
    if (!rc) {
        PyObject *la5[5] = {PyTuple_GET_ITEM(consts, AR_LOG), ar_s_send_failed, ar_s_udp, host,
                            port};
        x = PyObject_VectorcallMethod(ar_s_error, la5, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (x == NULL)
            goto error;
        Py_CLEAR(x);
    }
    if (stats != Py_None) {
        x = PyObject_GetAttr(stats, rc ? ar_s_fwd_requests : ar_s_err_requests);
        if (x == NULL || sl_count(x) < 0)
            goto error;
        Py_CLEAR(x);
    }
    out = PyLong_FromLong(rc ? 1 : -1);
    goto done;
fallback:
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            goto error;
        PyErr_Clear();
    }
    out = PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
    goto done;
error:
done:
    Py_XDECREF(msg);
    Py_XDECREF(states);
    Py_XDECREF(svc);
    Py_XDECREF(core);
    Py_XDECREF(ctx_core);
    Py_XDECREF(table);
    Py_XDECREF(by_key);
    Py_XDECREF(key);
    Py_XDECREF(via);
    Py_XDECREF(uri);
    Py_XDECREF(transport);
    Py_XDECREF(la);
    Py_XDECREF(sent_by);
    Py_XDECREF(branch);
    Py_XDECREF(ours);
    Py_XDECREF(top);
    Py_XDECREF(data);
    Py_XDECREF(resolver);
    Py_XDECREF(literals);
    Py_XDECREF(host);
    Py_XDECREF(port);
    Py_XDECREF(stats);
    Py_XDECREF(extra);
    Py_XDECREF(x);
    return out;
}

static PyMethodDef ack_relay_def = {
    "t_relay", (PyCFunction)(void (*)(void))ack_relay, METH_FASTCALL | METH_KEYWORDS,
    "t_relay(ctx) -> tm's t_relay, an unmatched ACK's stateless relay compiled (see "
    "ack_relayer)."};

static PyObject *
ack_relayer(PyObject *module, PyObject *consts)
{
    if (sl_names() < 0)
        return NULL;
    static const InternedName names[] = {
        {&ar_s_msg, "msg"}, {&ar_s_mod_state, "mod_state"}, {&ar_s_tm, "tm"},
        {&ar_s_last_svc, "_last_svc"}, {&ar_s_core, "core"}, {&ar_s_table, "table"},
        {&ar_s_by_key, "_by_key"}, {&ar_s_via, "via"}, {&ar_s_branch, "branch"},
        {&ar_s_host, "host"}, {&ar_s_port, "port"}, {&ar_s_transport, "transport"},
        {&ar_s_call_id, "call_id"}, {&ar_s_cseq, "cseq"}, {&ar_s_number, "number"},
        {&ar_s_3261, "3261"}, {&ar_s_invite, "INVITE"}, {&ar_s_dst_uri, "dst_uri"},
        {&ar_s_send_socket, "send_socket"}, {&ar_s_inbound_udp, "inbound_udp"},
        {&ar_s_advertised, "advertised"}, {&ar_s_extra, "extra"},
        {&ar_s_adv_address, "advertised_address"}, {&ar_s_adv_port, "advertised_port"},
        {&ar_s_local_rport, "add_local_rport"}, {&ar_s_socket_edit, "socket_edit"},
        {&ar_s_onsend, "onsend"}, {&ar_s_local_address, "local_address"}, {&ar_s_udp, "udp"},
        {&ar_s_resolver, "resolver"}, {&ar_s_literals, "_literals"}, {&ar_s_lower, "lower"},
        {&ar_s_hexdigest, "hexdigest"}, {&ar_s_bytes_with_via, "bytes_with_via"},
        {&ar_s_stats, "stats"}, {&ar_s_fwd_requests, "fwd_requests"},
        {&ar_s_err_requests, "err_requests"}, {&ar_s_error, "error"},
        {&ar_s_send_failed, "forward: sending to %s:%s:%d failed"}, {&ar_s_ack, "ACK"},
        {&ar_s_cookie, "z9hG4bK"},
        /* lr_uri_key's and core_send_now's */
        {&lr_s_sip, "sip"}, {&lr_s_sips, "sips"}, {&tr_send, "send"}, {&tr_transport, "transport"}, {&tr_stats, "stats"},
        {&tr_sent_counter, "sent_counter"}, {&tr_sent_requests, "sent_requests"},
        {&tr_get, "get"},
    };
    return bind_compiled(&ack_relay_def, consts, "cmttccc.",
                         "ack_relayer((pure, tm_globals, TmTable, Resolver, md5, received_via, "
                         "Core.send, script_log))", names, sizeof(names) / sizeof(names[0]));
}

/* ---- sl's filter of the ACKs of its own replies (kemi_sl's _absorb_own_ack) ---------------
 * ack_absorber((state, pure)) -> absorb(ctx): every ACK passes it before the script. An ACK
 * whose To tag starts with state.tag_prefix and "." (the ACK of a local stateless reply, such
 * as the 407 of a challenge) is ours: state.stats.received_acks counted, True; any other ACK,
 * or none when the prefix is empty, False. A message of another class, a prefix that is not a
 * str, a To or tag that does not read go to ``pure`` (the Python form, the reference:
 * kemi_sl's test_sl_ack_fast.py runs both). */
static PyObject *aa_s_msg, *aa_s_tag_prefix, *aa_s_to, *aa_s_tag, *aa_s_stats,
    *aa_s_received_acks, *aa_s_ack;

static PyObject *
ack_absorb(PyObject *consts, PyObject *ctx)
{
    PyObject *state = PyTuple_GET_ITEM(consts, 0), *pure = PyTuple_GET_ITEM(consts, 1);
    PyObject *msg = NULL, *prefix = NULL, *to = NULL, *tag = NULL, *stats = NULL, *out = NULL;
    if ((msg = PyObject_GetAttr(ctx, aa_s_msg)) == NULL)
        goto error;
    PyObject *method = Py_TYPE(msg) == msg_type ? *field(msg, F_METHOD) : NULL;
    if (method == NULL || !PyUnicode_CheckExact(method)
            || (prefix = PyObject_GetAttr(state, aa_s_tag_prefix)) == NULL
            || !PyUnicode_CheckExact(prefix))
        goto fallback;
    if (PyUnicode_Compare(method, aa_s_ack) != 0 || PyUnicode_GET_LENGTH(prefix) == 0) {
        out = Py_NewRef(Py_False);
        goto done;
    }
    if ((to = PyObject_GetAttr(msg, aa_s_to)) == NULL || (tag = PyObject_GetAttr(to, aa_s_tag))
            == NULL || (tag != Py_None && !PyUnicode_CheckExact(tag)))
        goto fallback;
    Py_ssize_t n = PyUnicode_GET_LENGTH(prefix);
    if (tag == Py_None || PyUnicode_GET_LENGTH(tag) <= n || PyUnicode_READ_CHAR(tag, n) != '.'
            || PyUnicode_Tailmatch(tag, prefix, 0, n, -1) != 1) {
        out = Py_NewRef(Py_False);
        goto done;
    }
    if ((stats = PyObject_GetAttr(state, aa_s_stats)) == NULL)
        goto error;
    if (stats != Py_None) {
        PyObject *counter = PyObject_GetAttr(stats, aa_s_received_acks);
        int bad = counter == NULL ? -1 : sl_count(counter);
        Py_XDECREF(counter);
        if (bad < 0)
            goto error;
    }
    out = Py_NewRef(Py_True);
    goto done;
fallback:
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            goto error;
        PyErr_Clear();
    }
    out = PyObject_CallOneArg(pure, ctx);
error:
done:
    Py_XDECREF(msg);
    Py_XDECREF(prefix);
    Py_XDECREF(to);
    Py_XDECREF(tag);
    Py_XDECREF(stats);
    return out;
}

static PyMethodDef ack_absorb_def = {
    "absorb_own_ack", (PyCFunction)ack_absorb, METH_O,
    "absorb_own_ack(ctx) -> sl's ACK filter (compiled; see ack_absorber)."};

static PyObject *
ack_absorber(PyObject *module, PyObject *consts)
{
    if (sl_names() < 0)
        return NULL;
    static const InternedName names[] = {
        {&aa_s_msg, "msg"}, {&aa_s_tag_prefix, "tag_prefix"}, {&aa_s_to, "to"},
        {&aa_s_tag, "tag"}, {&aa_s_stats, "stats"}, {&aa_s_received_acks, "received_acks"},
        {&aa_s_ack, "ACK"},
    };
    return bind_compiled(&ack_absorb_def, consts, ".c", "ack_absorber((state, pure))", names,
                         sizeof(names) / sizeof(names[0]));
}

/* ---- rr's usual record_route (kemi_rr/record.py's record_route, _keep) ---------------------
 * record_router((pure, RrState, PerSocket, _entries, functools.partial, settings_globals,
 * socket_edit_key, branch_flag)) -> record_route(ctx): a request not record-routed yet (its rr
 * state without entries or add_rr_param params pending, outside a branch route), rr's settings
 * read for this core (enable_double_rr 0 or 1, add_username off), no listen advertising
 * another address: our entry (the scheme of the R-URI unless ignore_sips, the socket the
 * request came in on, ;transport= unless UDP, ;lr or ;lr=on, ;ftag=<From tag>) kept as
 * _keep keeps it (own_rr, own_values, rank) with record_route's send-time edit (a PerSocket
 * whose entries are functools.partial(_entries, ...), as the Python form binds them) in
 * ctx.extra, and 1. Decided before anything changes; anything else goes to ``pure``
 * (ki_record_route), the reference: kemi_rr's test_rr_record_fast.py runs both. */
enum { RC_PURE, RC_STATE_CLS, RC_PER_SOCKET, RC_ENTRIES, RC_PARTIAL, RC_SETTINGS, RC_EDIT_KEY,
       RC_BRANCH, RC_COUNT };

static PyObject *rc_s_own_rr, *rc_s_params, *rc_s_applied, *rc_s_route_type, *rc_s_full_lr,
    *rc_s_fromtag, *rc_s_double_rr, *rc_s_add_username, *rc_s_ignore_sips, *rc_s_from,
    *rc_s_rcv, *rc_s_proto, *rc_s_dst_ip, *rc_s_dst_port, *rc_s_config, *rc_s_listen,
    *rc_s_advertise_host, *rc_s_rank, *rc_s_own_values, *rc_s_mode, *rc_s_inbound,
    *rc_s_entries, *rc_s_state, *rc_s_udp, *rc_s_tls, *rc_s_wss, *rc_s_lower;

/* 1 when the attribute is exactly True, 0 when exactly False, -1 otherwise (or on error) */
static int
rc_flag(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    int out = v == Py_True ? 1 : v == Py_False ? 0 : -1;
    Py_XDECREF(v);
    return out;
}

/* Whether a listen advertises another address (record.py's _advertised would use it): 1, 0,
 * -1 on error */
static int
rc_any_advertised(PyObject *core)
{
    PyObject *config = PyObject_GetAttr(core, rc_s_config);
    PyObject *listens = config == NULL ? NULL : PyObject_GetAttr(config, rc_s_listen);
    Py_XDECREF(config);
    if (listens == NULL)
        return -1;
    int out = 0;
    if (!PyList_CheckExact(listens))
        out = 1;
    for (Py_ssize_t i = 0; out == 0 && i < PyList_GET_SIZE(listens); i++) {
        PyObject *adv = PyObject_GetAttr(PyList_GET_ITEM(listens, i), rc_s_advertise_host);
        out = adv == NULL ? -1 : PyObject_IsTrue(adv);
        Py_XDECREF(adv);
    }
    Py_DECREF(listens);
    return out;
}

static PyObject *
record_route_fast(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *pure = PyTuple_GET_ITEM(consts, RC_PURE);
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) || nargs != 1 || msg_type == NULL)
        return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    PyObject *ctx = args[0], *msg = NULL, *extra = NULL, *st = NULL, *x = NULL, *conf = NULL;
    PyObject *core = NULL, *tail = NULL, *rcv = NULL, *proto = NULL, *ip = NULL, *port = NULL;
    PyObject *hostport = NULL, *head = NULL, *uri = NULL, *inbound = NULL, *entries = NULL;
    PyObject *per = NULL, *own = NULL, *values = NULL, *value = NULL, *out = NULL;
    PyObject *cls = PyTuple_GET_ITEM(consts, RC_STATE_CLS);
    if ((msg = PyObject_GetAttr(ctx, lr_s_msg)) == NULL)
        goto error;
    PyObject *cache = Py_TYPE(msg) == msg_type ? *field(msg, F_CACHE) : NULL;
    if (cache == NULL || !PyDict_CheckExact(cache) || *field(msg, F_IS_REQUEST) != Py_True)
        goto fallback;
    /* the rr state: none yet, or one without entries or pending params */
    if ((extra = PyObject_GetAttr(ctx, lr_s_extra)) == NULL)
        goto error;
    if (!PyDict_CheckExact(extra))
        goto fallback;
    st = Py_XNewRef(PyDict_GetItemWithError(extra, lr_s_rr));
    if (st == NULL && PyErr_Occurred())
        goto error;
    if (st != NULL) {
        if (Py_TYPE(st) != (PyTypeObject *)cls)
            goto fallback;
        int k;
        if ((x = PyObject_GetAttr(st, rc_s_own_rr)) == NULL || (k = PyObject_IsTrue(x)) < 0)
            goto error;
        Py_CLEAR(x);
        if (k)
            goto fallback; /* (a double attempt: logged there) */
        PyObject *params = PyObject_GetAttr(st, rc_s_params);
        PyObject *applied = params == NULL ? NULL : PyObject_GetAttr(st, rc_s_applied);
        Py_ssize_t np = params == NULL ? -1 : PyObject_Length(params);
        Py_ssize_t na = applied == NULL || !PyLong_CheckExact(applied) ? -1
                                                                         : PyLong_AsSsize_t(applied);
        Py_XDECREF(params);
        Py_XDECREF(applied);
        if (np < 0 || na < 0 || np > na)
            goto fallback;
    }
    /* outside a branch route */
    if ((x = PyObject_GetAttr(ctx, rc_s_route_type)) == NULL)
        goto error;
    PyObject *flags = PyNumber_Long(x);
    Py_CLEAR(x);
    if (flags == NULL)
        goto error;
    long rt = PyLong_AsLong(flags);
    Py_DECREF(flags);
    if ((rt == -1 && PyErr_Occurred()) || (rt & PyLong_AsLong(PyTuple_GET_ITEM(consts, RC_BRANCH))))
        goto fallback;
    /* the settings */
    if ((core = PyObject_GetAttr(ctx, lr_s_core)) == NULL)
        goto error;
    if ((conf = rr_settings_of(PyTuple_GET_ITEM(consts, RC_SETTINGS), core)) == NULL)
        goto fallback;
    int full_lr = rc_flag(conf, rc_s_full_lr), fromtag = rc_flag(conf, rc_s_fromtag);
    int username = rc_flag(conf, rc_s_add_username), ignore_sips = rc_flag(conf, rc_s_ignore_sips);
    PyObject *mode = PyObject_GetAttr(conf, rc_s_double_rr);
    long m = mode == NULL || !PyLong_CheckExact(mode) ? -1 : PyLong_AsLong(mode);
    if (full_lr < 0 || fromtag < 0 || username != 0 || ignore_sips < 0 || (m != 0 && m != 1)) {
        Py_XDECREF(mode);
        goto fallback;
    }
    /* ;lr;ftag=<From tag> */
    PyObject *tag = NULL;
    if (fromtag) {
        PyObject *from = PyObject_GetAttr(msg, rc_s_from);
        tag = from == NULL ? NULL : PyObject_GetAttr(from, lr_s_tag);
        Py_XDECREF(from);
        if (tag == NULL || (tag != Py_None && !PyUnicode_CheckExact(tag))) {
            Py_XDECREF(tag);
            Py_DECREF(mode);
            goto fallback;
        }
    }
    const char *lr = full_lr ? ";lr=on" : ";lr";
    tail = tag != NULL && tag != Py_None && PyUnicode_GET_LENGTH(tag) > 0
        ? PyUnicode_FromFormat("%s;ftag=%U", lr, tag) : PyUnicode_FromString(lr);
    Py_XDECREF(tag);
    if (tail == NULL) {
        Py_DECREF(mode);
        goto error;
    }
    /* the scheme: the R-URI's, sip when it does not parse */
    int sips = 0;
    if (!ignore_sips) {
        PyObject *parsed = PyDict_GetItemWithError(cache, s_uri);
        UriSpans u;
        if (parsed != NULL) {
            PyObject *scheme = PyObject_GetAttr(parsed, lr_s_scheme);
            sips = scheme == NULL ? -1 : PyUnicode_Check(scheme)
                                             && PyUnicode_Compare(scheme, lr_s_sips) == 0;
            Py_XDECREF(scheme);
        }
        else if (PyErr_Occurred() || !uri_usual(*field(msg, F_RURI), &u))
            sips = -1;
        else { /* (its parameters checked as lr_uri_key checks them: a bad one does not parse) */
            int params_ok, r2;
            PyObject *key = lr_uri_key(*field(msg, F_RURI), &params_ok, &r2);
            sips = key == NULL ? -1 : u.sips;
            Py_XDECREF(key);
        }
    }
    /* the socket it came in on, as no listen advertises another */
    int adv = sips < 0 ? -1 : rc_any_advertised(core);
    if (adv != 0) {
        Py_DECREF(mode);
        goto fallback;
    }
    if ((rcv = PyObject_GetAttr(ctx, rc_s_rcv)) == NULL
            || (x = PyObject_GetAttr(rcv, rc_s_proto)) == NULL
            || (proto = PyObject_CallMethodNoArgs(x, rc_s_lower)) == NULL
            || (ip = PyObject_GetAttr(rcv, rc_s_dst_ip)) == NULL
            || (port = PyObject_GetAttr(rcv, rc_s_dst_port)) == NULL) {
        Py_DECREF(mode);
        goto fallback;
    }
    Py_CLEAR(x);
    if (!PyUnicode_CheckExact(proto) || !PyUnicode_CheckExact(ip) || !PyLong_CheckExact(port)
            || PyUnicode_GET_LENGTH(ip) == 0) {
        Py_DECREF(mode);
        goto fallback;
    }
    long pn = PyLong_AsLong(port);
    long dflt = PyUnicode_Compare(proto, rc_s_tls) == 0 || PyUnicode_Compare(proto, rc_s_wss) == 0
                    ? 5061 : 5060;
    int v6 = PyUnicode_FindChar(ip, ':', 0, PyUnicode_GET_LENGTH(ip), 1) >= 0
             && PyUnicode_READ_CHAR(ip, 0) != '[';
    hostport = pn == dflt ? PyUnicode_FromFormat(v6 ? "[%U]" : "%U", ip)
                          : PyUnicode_FromFormat(v6 ? "[%U]:%S" : "%U:%S", ip, port);
    head = PyUnicode_FromString(sips ? "sips:" : "sip:");
    int udp = PyUnicode_Compare(proto, rc_s_udp) == 0;
    uri = hostport == NULL || head == NULL ? NULL
          : udp ? PyUnicode_FromFormat("%U%U%U", head, hostport, tail)
                : PyUnicode_FromFormat("%U%U;transport=%U%U", head, hostport, proto, tail);
    inbound = uri == NULL ? NULL : PyTuple_Pack(3, proto, ip, port);
    value = inbound == NULL ? NULL : PyUnicode_FromFormat("<%U>", uri);
    own = value == NULL ? NULL : PyList_New(1);
    values = own == NULL ? NULL : PyList_New(1);
    if (values == NULL) {
        Py_DECREF(mode);
        goto error;
    }
    PyList_SET_ITEM(own, 0, Py_NewRef(uri));
    PyList_SET_ITEM(values, 0, Py_NewRef(value));
    PyObject *pargs[7] = {PyTuple_GET_ITEM(consts, RC_ENTRIES), core, head, inbound, tail,
                          Py_False, empty_key};
    entries = PyObject_Vectorcall(PyTuple_GET_ITEM(consts, RC_PARTIAL), pargs, 7, NULL);
    PyTypeObject *pt = (PyTypeObject *)PyTuple_GET_ITEM(consts, RC_PER_SOCKET);
    per = entries == NULL ? NULL : pt->tp_new(pt, empty_tuple, NULL);
    if (per == NULL) {
        Py_DECREF(mode);
        goto error;
    }
    /* decided: the state and the send-time edit */
    if (st == NULL) {
        if ((st = PyObject_CallNoArgs(cls)) == NULL || PyDict_SetItem(extra, lr_s_rr, st) < 0) {
            Py_DECREF(mode);
            goto error;
        }
    }
    PyObject *front = PyDict_GetItemWithError(cache, lr_s_front);
    if (front == NULL && PyErr_Occurred()) {
        Py_DECREF(mode);
        goto error;
    }
    PyObject *rank = front == NULL ? PyLong_FromLong(0) : Py_NewRef(front);
    int bad = rank == NULL || PyObject_SetAttr(st, rc_s_own_rr, own) < 0
              || PyObject_SetAttr(st, rc_s_rank, rank) < 0
              || PyObject_SetAttr(st, rc_s_own_values, values) < 0
              || PyObject_SetAttr(per, lr_s_core, core) < 0
              || PyObject_SetAttr(per, rc_s_mode, mode) < 0
              || PyObject_SetAttr(per, rc_s_inbound, inbound) < 0
              || PyObject_SetAttr(per, rc_s_entries, entries) < 0
              || PyObject_SetAttr(per, rc_s_state, st) < 0
              || PyDict_SetItem(extra, PyTuple_GET_ITEM(consts, RC_EDIT_KEY), per) < 0;
    Py_DECREF(mode);
    Py_XDECREF(rank);
    if (bad)
        goto error;
    out = PyLong_FromLong(1);
    goto done;
fallback:
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            goto error;
        PyErr_Clear();
    }
    out = PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
error:
done:
    Py_XDECREF(msg);
    Py_XDECREF(extra);
    Py_XDECREF(st);
    Py_XDECREF(x);
    Py_XDECREF(conf);
    Py_XDECREF(core);
    Py_XDECREF(tail);
    Py_XDECREF(rcv);
    Py_XDECREF(proto);
    Py_XDECREF(ip);
    Py_XDECREF(port);
    Py_XDECREF(hostport);
    Py_XDECREF(head);
    Py_XDECREF(uri);
    Py_XDECREF(inbound);
    Py_XDECREF(entries);
    Py_XDECREF(per);
    Py_XDECREF(own);
    Py_XDECREF(values);
    Py_XDECREF(value);
    return out;
}

static PyMethodDef record_route_fast_def = {
    "record_route", (PyCFunction)(void (*)(void))record_route_fast,
    METH_FASTCALL | METH_KEYWORDS,
    "record_route(ctx) -> rr's record_route (compiled; see record_router)."};

static PyObject *
record_router(PyObject *module, PyObject *consts)
{
    static const InternedName names[] = {
        {&rc_s_own_rr, "own_rr"}, {&rc_s_params, "params"}, {&rc_s_applied, "applied"},
        {&rc_s_route_type, "route_type"}, {&rc_s_full_lr, "enable_full_lr"},
        {&rc_s_fromtag, "append_fromtag"}, {&rc_s_double_rr, "enable_double_rr"},
        {&rc_s_add_username, "add_username"}, {&rc_s_ignore_sips, "ignore_sips"},
        {&rc_s_from, "from_"}, {&rc_s_rcv, "rcv"}, {&rc_s_proto, "proto"},
        {&rc_s_dst_ip, "dst_ip"}, {&rc_s_dst_port, "dst_port"}, {&rc_s_config, "config"},
        {&rc_s_listen, "listen"}, {&rc_s_advertise_host, "advertise_host"},
        {&rc_s_rank, "rank"}, {&rc_s_own_values, "own_values"}, {&rc_s_mode, "mode"},
        {&rc_s_inbound, "inbound"}, {&rc_s_entries, "entries"}, {&rc_s_state, "state"},
        {&rc_s_udp, "udp"}, {&rc_s_tls, "tls"}, {&rc_s_wss, "wss"}, {&rc_s_lower, "lower"},
        /* the loose_route section's */
        {&lr_s_msg, "msg"}, {&lr_s_extra, "extra"}, {&lr_s_rr, "rr"}, {&lr_s_core, "core"},
        {&lr_s_last, "_last"}, {&lr_s_param_version, "param_version"}, {&lr_s_tag, "tag"},
        {&lr_s_scheme, "scheme"}, {&lr_s_sips, "sips"}, {&lr_s_front, " front"},
    };
    return bind_compiled(&record_route_fast_def, consts, "cttccm.i",
                         "record_router((pure, RrState, PerSocket, _entries, partial, "
                         "settings_globals, socket_edit_key, branch_flag: int))", names,
                         sizeof(names) / sizeof(names[0]));
}

/* ---- rr's send-time Record-Route of the usual branch (kemi_rr/record.py's PerSocket) -------
 * per_socket_usual(edit, msg, proto, forced, local) -> what PerSocket.__call__ gives for the
 * usual branch (the entries record_route made, as the branch leaves from the socket the
 * request came in on: enable_double_rr 0, or 1 over UDP in and out with nothing forced): None
 * when remove_record_route took them back, else a copy of msg (a registered message) with
 * each entry inserted as insert_header_at_front puts it (below the lines put in front before
 * record_route ran). NotImplemented for any other branch or shape: PerSocket's Python form
 * (``_call_py``, the reference: test_rr_record_fast.py runs both) decides. */
static PyObject *ps_s_state, *ps_s_own_rr, *ps_s_own_values, *ps_s_rank, *ps_s_mode,
    *ps_s_inbound, *ps_s_udp, *ps_s_key, *ps_s_front, *ps_s_prefix;

static PyObject *
per_socket_usual(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "per_socket_usual(edit, msg, proto, forced, local)");
        return NULL;
    }
    if (ps_s_prefix == NULL) {
        static const InternedName names[] = {
            {&ps_s_state, "state"}, {&ps_s_own_rr, "own_rr"}, {&ps_s_own_values, "own_values"},
            {&ps_s_rank, "rank"}, {&ps_s_mode, "mode"}, {&ps_s_inbound, "inbound"},
            {&ps_s_udp, "udp"}, {&ps_s_key, "record-route"}, {&ps_s_front, " front"},
            {&ps_s_prefix, "Record-Route: "},
        };
        if (intern_names(names, sizeof(names) / sizeof(names[0])) < 0)
            return NULL;
    }
    PyObject *edit = args[0], *msg = args[1], *proto = args[2], *forced = args[3];
    PyObject *local = args[4];
    PyObject *st = NULL, *x = NULL, *mode = NULL, *inbound = NULL, *values = NULL, *rank = NULL;
    PyObject *copy = NULL, *out = NULL;
    if ((st = PyObject_GetAttr(edit, ps_s_state)) == NULL
            || (x = PyObject_GetAttr(st, ps_s_own_rr)) == NULL)
        goto done;
    int some = PyObject_IsTrue(x);
    if (some <= 0) {
        out = some < 0 ? NULL : Py_NewRef(Py_None); /* (taken back by remove_record_route) */
        goto done;
    }
    if ((mode = PyObject_GetAttr(edit, ps_s_mode)) == NULL
            || (inbound = PyObject_GetAttr(edit, ps_s_inbound)) == NULL)
        goto done;
    long m = PyLong_CheckExact(mode) ? PyLong_AsLong(mode) : -1;
    int usual = m == 0;
    if (m == 1 && forced == Py_None && PyUnicode_CheckExact(proto)
            && PyUnicode_Compare(proto, ps_s_udp) == 0 && PyTuple_CheckExact(inbound)
            && PyTuple_GET_SIZE(inbound) == 3 && PyUnicode_CheckExact(PyTuple_GET_ITEM(inbound, 0))
            && PyUnicode_Compare(PyTuple_GET_ITEM(inbound, 0), ps_s_udp) == 0) {
        usual = local == Py_None;
        if (!usual && PyTuple_CheckExact(local) && PyTuple_GET_SIZE(local) == 2) {
            int a = PyObject_RichCompareBool(PyTuple_GET_ITEM(local, 0),
                                             PyTuple_GET_ITEM(inbound, 1), Py_EQ);
            int b = a <= 0 ? a : PyObject_RichCompareBool(PyTuple_GET_ITEM(local, 1),
                                                          PyTuple_GET_ITEM(inbound, 2), Py_EQ);
            if (b < 0)
                goto done;
            usual = b;
        }
    }
    if (PyErr_Occurred())
        goto done;
    if ((values = PyObject_GetAttr(st, ps_s_own_values)) == NULL
            || (rank = PyObject_GetAttr(st, ps_s_rank)) == NULL)
        goto done;
    Py_ssize_t r = PyLong_CheckExact(rank) ? PyLong_AsSsize_t(rank) : -1;
    if (!usual || msg_type == NULL || Py_TYPE(msg) != msg_type || !PyList_CheckExact(values)
            || r < 0) {
        PyErr_Clear();
        out = Py_NewRef(Py_NotImplemented);
        goto done;
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(values); k++) {
        PyObject *v = PyList_GET_ITEM(values, k);
        if (!PyUnicode_CheckExact(v) || has_crlf(v) != 0) { /* (Python's ValueError) */
            PyErr_Clear();
            out = Py_NewRef(Py_NotImplemented);
            goto done;
        }
    }
    if ((copy = copy_message(msg, NULL)) == NULL)
        goto done;
    PyObject *names = *field(copy, F_NAMES), *lines = *field(copy, F_LINES);
    PyObject *cache = *field(copy, F_CACHE);
    if (names == NULL || lines == NULL || cache == NULL || !PyList_CheckExact(names)
            || !PyList_CheckExact(lines) || !PyDict_CheckExact(cache)) {
        out = Py_NewRef(Py_NotImplemented);
        goto done;
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(values); k++) {
        PyObject *front = PyDict_GetItemWithError(cache, ps_s_front);
        if (front == NULL && PyErr_Occurred())
            goto done;
        Py_ssize_t f = front == NULL ? 0 : PyLong_AsSsize_t(front);
        if (f == -1 && PyErr_Occurred())
            goto done;
        Py_ssize_t at = 1 + (r + k < f ? r + k : f);
        PyObject *line = PyUnicode_FromFormat("%U%U\r", ps_s_prefix, PyList_GET_ITEM(values, k));
        PyObject *more = line == NULL ? NULL : PyLong_FromSsize_t(f + 1);
        int bad = more == NULL || PyList_Insert(names, at, ps_s_key) < 0
                  || PyList_Insert(lines, at, line) < 0
                  || PyDict_SetItem(cache, ps_s_front, more) < 0;
        Py_XDECREF(line);
        Py_XDECREF(more);
        if (bad || (PyDict_DelItem(cache, ps_s_key) < 0 && !PyErr_ExceptionMatches(PyExc_KeyError)))
            goto done;
        PyErr_Clear();
        Py_XSETREF(*field(copy, F_BUF), Py_NewRef(Py_None));
    }
    out = Py_NewRef(copy);
done:
    Py_XDECREF(st);
    Py_XDECREF(x);
    Py_XDECREF(mode);
    Py_XDECREF(inbound);
    Py_XDECREF(values);
    Py_XDECREF(rank);
    Py_XDECREF(copy);
    return out;
}

/* ---- KSR crossing --------------------------------------------------------------------------
 * ksr_call(func, holder, fallback, slow, none_value, kinds, passes, slot) is the callable a
 * config engine hands its interpreter for one KEMI export (kemi_core.kemi.binding.bind_export):
 * what the generated Python wrapper ``fallback`` does, for the usual call, without its frame:
 * exactly len(kinds) positional arguments, each of its kind's class ('s': str of ASCII only,
 * 'S': str, 'i': int; exact classes), func(ctx, *args) called with ctx = holder.ctx (slot:
 * holder[0]); the result returned when it passes one test of ``passes`` ('I' int, 'J' int of
 * 32 bits, 'B' bool, 'N' None, 'S' str, 'A' str of ASCII only), else slow(result); passes None:
 * the export returns nothing and the script gets none_value. Any other call (keywords, another
 * count, an argument to convert) is fallback's: its conversions, its errors. */
#define KSR_MAX_ARGS 8

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *func, *holder, *fallback, *slow, *none_value;
    Py_ssize_t nargs;
    char kinds[KSR_MAX_ARGS];
    char passes[8];
    int npasses; /* -1: a NONE export */
    int slot;
} KsrCall;

static PyObject *s_ctx_attr;

static int
ksr_passes(KsrCall *k, PyObject *r)
{
    for (int i = 0; i < k->npasses; i++) {
        switch (k->passes[i]) {
        case 'I':
            if (PyLong_CheckExact(r))
                return 1;
            break;
        case 'J':
            if (PyLong_CheckExact(r)) {
                int overflow = 0;
                long long v = PyLong_AsLongLongAndOverflow(r, &overflow);
                if (!overflow && v >= -2147483648LL && v <= 2147483647LL)
                    return 1;
            }
            break;
        case 'B':
            if (r == Py_True || r == Py_False)
                return 1;
            break;
        case 'N':
            if (r == Py_None)
                return 1;
            break;
        case 'S':
            if (PyUnicode_CheckExact(r))
                return 1;
            break;
        case 'A':
            if (PyUnicode_CheckExact(r) && PyUnicode_IS_ASCII(r))
                return 1;
            break;
        }
    }
    return 0;
}

static PyObject *
ksr_call_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    KsrCall *k = (KsrCall *)self;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL || n != k->nargs)
        return PyObject_Vectorcall(k->fallback, args, nargsf, kwnames);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = args[i];
        char kind = k->kinds[i];
        int ok = kind == 'i' ? PyLong_CheckExact(a)
                             : PyUnicode_CheckExact(a) && (kind == 'S' || PyUnicode_IS_ASCII(a));
        if (!ok)
            return PyObject_Vectorcall(k->fallback, args, nargsf, NULL);
    }
    PyObject *ctx = k->slot ? PySequence_GetItem(k->holder, 0) : PyObject_GetAttr(k->holder, s_ctx_attr);
    if (ctx == NULL)
        return NULL;
    PyObject *stack[KSR_MAX_ARGS + 1];
    stack[0] = ctx;
    for (Py_ssize_t i = 0; i < n; i++)
        stack[i + 1] = args[i];
    PyObject *r = PyObject_Vectorcall(k->func, stack, (size_t)n + 1, NULL);
    Py_DECREF(ctx);
    if (r == NULL)
        return NULL;
    if (k->npasses < 0) {
        Py_DECREF(r);
        return Py_NewRef(k->none_value);
    }
    if (ksr_passes(k, r))
        return r;
    PyObject *out = PyObject_CallOneArg(k->slow, r);
    Py_DECREF(r);
    return out;
}

static int
ksr_call_traverse(KsrCall *k, visitproc visit, void *arg)
{
    Py_VISIT(k->func);
    Py_VISIT(k->holder);
    Py_VISIT(k->fallback);
    Py_VISIT(k->slow);
    Py_VISIT(k->none_value);
    return 0;
}

static int
ksr_call_clear(KsrCall *k)
{
    Py_CLEAR(k->func);
    Py_CLEAR(k->holder);
    Py_CLEAR(k->fallback);
    Py_CLEAR(k->slow);
    Py_CLEAR(k->none_value);
    return 0;
}

static void
ksr_call_dealloc(KsrCall *k)
{
    PyObject_GC_UnTrack(k);
    ksr_call_clear(k);
    Py_TYPE(k)->tp_free((PyObject *)k);
}

static PyObject *
ksr_call_repr(KsrCall *k)
{
    return PyUnicode_FromFormat("<ksr_call of %R>", k->fallback);
}

static PyTypeObject KsrCallType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kemi_core.sip._fast.KsrCall",
    .tp_basicsize = sizeof(KsrCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(KsrCall, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)ksr_call_traverse,
    .tp_clear = (inquiry)ksr_call_clear,
    .tp_dealloc = (destructor)ksr_call_dealloc,
    .tp_repr = (reprfunc)ksr_call_repr,
    .tp_doc = "A KEMI export's script callable (see ksr_call).",
};

static PyObject *
ksr_call_new(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyUnicode_Check(args[5]) || !PyUnicode_IS_ASCII(args[5]) ||
        (args[6] != Py_None && (!PyUnicode_Check(args[6]) || !PyUnicode_IS_ASCII(args[6])))) {
        PyErr_SetString(PyExc_TypeError, "ksr_call(func, holder, fallback, slow, none_value, "
                                         "kinds: str, passes: str | None, slot: bool)");
        return NULL;
    }
    if (s_ctx_attr == NULL) {
        if (PyType_Ready(&KsrCallType) < 0)
            return NULL;
        s_ctx_attr = PyUnicode_InternFromString("ctx");
        if (s_ctx_attr == NULL)
            return NULL;
    }
    Py_ssize_t nk = PyUnicode_GET_LENGTH(args[5]);
    Py_ssize_t np = args[6] == Py_None ? -1 : PyUnicode_GET_LENGTH(args[6]);
    const char *kinds = (const char *)PyUnicode_1BYTE_DATA(args[5]);
    if (nk > KSR_MAX_ARGS || np > 8) {
        PyErr_SetString(PyExc_ValueError, "ksr_call: too many kinds or passes");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nk; i++)
        if (kinds[i] != 's' && kinds[i] != 'S' && kinds[i] != 'i') {
            PyErr_SetString(PyExc_ValueError, "ksr_call: a kind is 's', 'S' or 'i'");
            return NULL;
        }
    for (Py_ssize_t i = 0; i < np; i++)
        if (!strchr("IJBNSA", PyUnicode_1BYTE_DATA(args[6])[i])) {
            PyErr_SetString(PyExc_ValueError, "ksr_call: a pass is one of IJBNSA");
            return NULL;
        }
    int slot = PyObject_IsTrue(args[7]);
    if (slot < 0)
        return NULL;
    KsrCall *k = PyObject_GC_New(KsrCall, &KsrCallType);
    if (k == NULL)
        return NULL;
    k->vectorcall = ksr_call_vectorcall;
    k->func = Py_NewRef(args[0]);
    k->holder = Py_NewRef(args[1]);
    k->fallback = Py_NewRef(args[2]);
    k->slow = Py_NewRef(args[3]);
    k->none_value = Py_NewRef(args[4]);
    k->nargs = nk;
    memcpy(k->kinds, kinds, (size_t)nk);
    k->npasses = (int)np;
    if (np > 0)
        memcpy(k->passes, PyUnicode_1BYTE_DATA(args[6]), (size_t)np);
    k->slot = slot;
    PyObject_GC_Track(k);
    return (PyObject *)k;
}
