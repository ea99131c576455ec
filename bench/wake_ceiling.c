/* wc_resp: the experimental responders of bench/wake_ceiling.py (compiled there at run time;
 * never part of the server). Each answers a REGISTER with the 200 that bench/register.py's
 * floor cfg sends (sl_send_reply: the request's Via, From, To with sl's To-tag, Call-ID and
 * CSeq lines, Content-Length: 0), any other request but ACK with its 404; an ACK, a reply or
 * a request of another shape (compact or folded headers: C forms only) gets nothing and is
 * counted as dropped (the bench sends only usual REGISTERs).
 *
 *   fast_receiver(state) -> a receiver's on_message(msg, rcv): _fast's pieces called from C
 *       (lines_crc32, build_reply, endpoints.send = udp_out): the worker's own udp_event
 *       parses and hands over, so no Python frame runs per datagram.
 *   c_event(fd) -> None: a reader callback: recvmmsg, the reply built from the bytes,
 *       sendto (one datagram) or sendmmsg (several): no Python object per datagram.
 *   c_loop(fd, ms) -> None: the same in its own epoll loop (GIL released while it waits, as
 *       uvloop does), back to the caller after ms of wall time or on a signal: the
 *       interpreter runs nothing per wake-up.
 *   set_prefix(str), stats() -> (events, datagrams, dropped) */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define BATCH 16   /* datagrams per recvmmsg, as kemi's udp_event */
#define MOST 64    /* datagrams per event at most (kemi's DRAIN_MAX) */
#define IN_SIZE 65536
#define OUT_SIZE 4096
#define VIAS 8

static char prefix[64];
static size_t prefix_len;
static unsigned long long n_events, n_datagrams, n_dropped;

static char in_buf[BATCH][IN_SIZE];
static char out_buf[MOST][OUT_SIZE];
static struct sockaddr_in6 peers[MOST];

typedef struct { const char *p; size_t n; } Span;

static int
name_is(Span line, const char *name)
{
    size_t n = strlen(name);
    if (line.n <= n || strncasecmp(line.p, name, n) != 0)
        return 0;
    const char *q = line.p + n;
    const char *end = line.p + line.n;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    return q < end && *q == ':';
}

/* the floor's 200 to a usual REGISTER (full header names, no folding), else -1 */
static long
reply_of(const char *req, size_t len, char *out, size_t cap)
{
    Span vias[VIAS], from = {0}, to = {0}, callid = {0}, cseq = {0};
    int nvia = 0;
    /* the floor cfg: REGISTER -> 200, any other request but ACK -> 404 */
    int is_register = len > 9 && memcmp(req, "REGISTER ", 9) == 0;
    if (len < 4 || memcmp(req, "ACK ", 4) == 0 || memcmp(req, "SIP/", 4) == 0)
        return -1;
    const char *p = memchr(req, '\n', len), *end = req + len;
    if (p == NULL)
        return -1;
    p++;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL || nl == p || nl[-1] != '\r')
            return -1;
        Span line = {p, (size_t)(nl - 1 - p)};
        if (line.n == 0)
            break;
        if (*p == ' ' || *p == '\t')
            return -1;  /* folded: not the usual shape */
        if (name_is(line, "Via")) {
            if (nvia == VIAS)
                return -1;
            vias[nvia++] = line;
        }
        else if (from.p == NULL && name_is(line, "From"))
            from = line;
        else if (to.p == NULL && name_is(line, "To"))
            to = line;
        else if (callid.p == NULL && name_is(line, "Call-ID"))
            callid = line;
        else if (cseq.p == NULL && name_is(line, "CSeq"))
            cseq = line;
        p = nl + 1;
    }
    if (nvia == 0 || from.p == NULL || to.p == NULL || callid.p == NULL || cseq.p == NULL)
        return -1;
    /* sl's To-tag: prefix "." CRC-32 of the Call-ID, From, CSeq and first Via lines with
     * their CRs, joined by "|" (kemi_core/sip/reply.py, lines_crc32) */
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)callid.p, (uInt)callid.n + 1);
    crc = crc32(crc, (const Bytef *)"|", 1);
    crc = crc32(crc, (const Bytef *)from.p, (uInt)from.n + 1);
    crc = crc32(crc, (const Bytef *)"|", 1);
    crc = crc32(crc, (const Bytef *)cseq.p, (uInt)cseq.n + 1);
    crc = crc32(crc, (const Bytef *)"|", 1);
    crc = crc32(crc, (const Bytef *)vias[0].p, (uInt)vias[0].n + 1);
    size_t need = 22 + 2 * nvia + from.n + to.n + callid.n + cseq.n + 10 + 6 + prefix_len + 9
                  + 23;
    for (int i = 0; i < nvia; i++)
        need += vias[i].n;
    if (need > cap)
        return -1;
    char *o = out;
#define PUT(s, n) (memcpy(o, (s), (n)), o += (n))
    if (is_register)
        PUT("SIP/2.0 200 OK\r\n", 16);
    else
        PUT("SIP/2.0 404 Not here\r\n", 22);
    for (int i = 0; i < nvia; i++) {
        PUT(vias[i].p, vias[i].n);
        PUT("\r\n", 2);
    }
    PUT(from.p, from.n);
    PUT("\r\n", 2);
    PUT(to.p, to.n);
    if (memmem(to.p, to.n, ";tag=", 5) == NULL) {
        PUT(";tag=", 5);
        PUT(prefix, prefix_len);
        o += sprintf(o, ".%08lx", (unsigned long)crc);
    }
    PUT("\r\n", 2);
    PUT(callid.p, callid.n);
    PUT("\r\n", 2);
    PUT(cseq.p, cseq.n);
    PUT("\r\n", 2);
    PUT("Content-Length: 0\r\n\r\n", 21);
#undef PUT
    return (long)(o - out);
}

/* one readiness event: every datagram waiting (MOST at most) answered; -1 and errno on a read
 * error other than "nothing more" */
static int
event(int fd)
{
    struct mmsghdr in[BATCH], out[MOST];
    struct iovec in_iov[BATCH], out_iov[MOST];
    int got_total = 0, replies = 0;
    n_events++;
    while (got_total < MOST) {
        int want = MOST - got_total < BATCH ? MOST - got_total : BATCH;
        for (int i = 0; i < want; i++) {
            in_iov[i].iov_base = in_buf[i];
            in_iov[i].iov_len = IN_SIZE;
            memset(&in[i].msg_hdr, 0, sizeof in[i].msg_hdr);
            in[i].msg_hdr.msg_iov = &in_iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
            in[i].msg_hdr.msg_name = &peers[got_total + i];
            in[i].msg_hdr.msg_namelen = sizeof peers[0];
        }
        int got = recvmmsg(fd, in, (unsigned)want, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            return -1;
        }
        for (int i = 0; i < got; i++) {
            n_datagrams++;
            long n = reply_of(in_buf[i], in[i].msg_len, out_buf[replies], OUT_SIZE);
            if (n < 0) {
                n_dropped++;
                continue;
            }
            out_iov[replies].iov_base = out_buf[replies];
            out_iov[replies].iov_len = (size_t)n;
            memset(&out[replies].msg_hdr, 0, sizeof out[replies].msg_hdr);
            out[replies].msg_hdr.msg_iov = &out_iov[replies];
            out[replies].msg_hdr.msg_iovlen = 1;
            out[replies].msg_hdr.msg_name = &peers[got_total + i];
            out[replies].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
            replies++;
        }
        got_total += got;
        if (got < want)
            break;  /* the next read would find nothing (kemi's udp_recv skips it too) */
    }
    if (replies == 1)
        (void)sendto(fd, out_buf[0], out_iov[0].iov_len, 0,
                     out[0].msg_hdr.msg_name, out[0].msg_hdr.msg_namelen);
    else if (replies > 1)
        (void)sendmmsg(fd, out, (unsigned)replies, 0);
    return 0;
}

static PyObject *
c_event(PyObject *self, PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (event((int)fd) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static PyObject *
c_loop(PyObject *self, PyObject *args)
{
    int fd, ms;
    if (!PyArg_ParseTuple(args, "ii", &fd, &ms))
        return NULL;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    struct epoll_event want = {.events = EPOLLIN, .data.fd = fd}, ev;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &want) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close(ep);
        return NULL;
    }
    int failed = 0, interrupted = 0;
    double until = now_ms() + ms;
    /* the datagram that woke the caller first, then every wake-up in this loop */
    failed = event(fd) < 0;
    while (!failed) {
        int left = (int)(until - now_ms());
        if (left <= 0)
            break;
        int n;
        Py_BEGIN_ALLOW_THREADS
        n = epoll_wait(ep, &ev, 1, left);
        Py_END_ALLOW_THREADS
        if (n < 0) {
            interrupted = errno == EINTR;
            failed = !interrupted;
            break;
        }
        if (n == 1)
            failed = event(fd) < 0;
    }
    int saved = errno;
    close(ep);
    if (failed) {
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (interrupted && PyErr_CheckSignals() < 0)
        return NULL;
    Py_RETURN_NONE;  /* back to the event loop: its timers, signals and housekeeping */
}

/* ---- the receiver of the worker's own udp_event: _fast's pieces called from C ---- */
static PyObject *s_names, *s_lines, *s_method, *s_src_ip, *s_src_port, *s_dst_ip, *s_dst_port,
    *s_register, *s_udp, *s_ok, *s_status, *s_404, *s_not_here;

/* state = (lines_crc32, build_reply, send, prefix) */
static PyObject *
fast_on_message(PyObject *state, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "on_message(msg, rcv)");
        return NULL;
    }
    PyObject *msg = args[0], *rcv = args[1];
    PyObject *lines_crc32 = PyTuple_GET_ITEM(state, 0), *build = PyTuple_GET_ITEM(state, 1),
        *send = PyTuple_GET_ITEM(state, 2), *tag_prefix = PyTuple_GET_ITEM(state, 3);
    PyObject *method = NULL, *names = NULL, *lines = NULL, *crc = NULL, *tag = NULL,
        *data = NULL, *ip = NULL, *port = NULL, *lip = NULL, *lport = NULL, *local = NULL,
        *sent = NULL, *result = NULL;
    n_datagrams++;
    if ((method = PyObject_GetAttr(msg, s_method)) == NULL)
        goto done;
    int usual = PyUnicode_Check(method) && PyUnicode_Compare(method, s_register) == 0;
    if (!usual && PyUnicode_Check(method) && PyUnicode_CompareWithASCIIString(method, "ACK") == 0) {
        n_dropped++;
        result = Py_NewRef(Py_None);
        goto done;
    }
    if ((names = PyObject_GetAttr(msg, s_names)) == NULL
            || (lines = PyObject_GetAttr(msg, s_lines)) == NULL)
        goto done;
    PyObject *crc_args[2] = {names, lines};
    if ((crc = PyObject_Vectorcall(lines_crc32, crc_args, 2, NULL)) == NULL)
        goto done;
    unsigned long value = PyLong_AsUnsignedLongMask(crc);
    if (value == (unsigned long)-1 && PyErr_Occurred())
        goto done;  /* (None: a header missing; the bench sends none such) */
    char hex[12];
    snprintf(hex, sizeof hex, ".%08lx", value);
    if ((tag = PyUnicode_FromFormat("%U%s", tag_prefix, hex)) == NULL)
        goto done;
    PyObject *build_args[4] = {msg, usual ? s_status : s_404, usual ? s_ok : s_not_here, tag};
    if ((data = PyObject_Vectorcall(build, build_args, 4, NULL)) == NULL)
        goto done;
    if ((ip = PyObject_GetAttr(rcv, s_src_ip)) == NULL
            || (port = PyObject_GetAttr(rcv, s_src_port)) == NULL
            || (lip = PyObject_GetAttr(rcv, s_dst_ip)) == NULL
            || (lport = PyObject_GetAttr(rcv, s_dst_port)) == NULL
            || (local = PyTuple_Pack(2, lip, lport)) == NULL)
        goto done;
    PyObject *send_args[5] = {s_udp, ip, port, data, local};
    if ((sent = PyObject_Vectorcall(send, send_args, 5, NULL)) == NULL)
        goto done;
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(method);
    Py_XDECREF(names);
    Py_XDECREF(lines);
    Py_XDECREF(crc);
    Py_XDECREF(tag);
    Py_XDECREF(data);
    Py_XDECREF(ip);
    Py_XDECREF(port);
    Py_XDECREF(lip);
    Py_XDECREF(lport);
    Py_XDECREF(local);
    Py_XDECREF(sent);
    return result;
}

static PyMethodDef on_message_def = {"on_message", (PyCFunction)(void (*)(void))fast_on_message,
                                     METH_FASTCALL, "on_message(msg, rcv)"};

static PyObject *
fast_receiver(PyObject *self, PyObject *state)
{
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != 4) {
        PyErr_SetString(PyExc_TypeError, "fast_receiver((lines_crc32, build_reply, send, prefix))");
        return NULL;
    }
    return PyCFunction_NewEx(&on_message_def, state, NULL);
}

static PyObject *
set_prefix(PyObject *self, PyObject *arg)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (s == NULL)
        return NULL;
    if ((size_t)n >= sizeof prefix) {
        PyErr_SetString(PyExc_ValueError, "prefix too long");
        return NULL;
    }
    memcpy(prefix, s, (size_t)n);
    prefix_len = (size_t)n;
    Py_RETURN_NONE;
}

static PyObject *
reply(PyObject *self, PyObject *arg)
{
    char *req;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &req, &n) < 0)
        return NULL;
    static char out[OUT_SIZE];
    long len = reply_of(req, (size_t)n, out, sizeof out);
    if (len < 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(out, len);
}

static PyObject *
stats(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("KKK", n_events, n_datagrams, n_dropped);
}

static PyMethodDef methods[] = {
    {"c_event", c_event, METH_O, "c_event(fd): one readiness event answered in C"},
    {"c_loop", c_loop, METH_VARARGS, "c_loop(fd, ms): an epoll loop in C for ms at most"},
    {"fast_receiver", fast_receiver, METH_O, "a receiver's on_message in C over _fast"},
    {"set_prefix", set_prefix, METH_O, "sl's To-tag prefix"},
    {"reply", reply, METH_O, "reply(request bytes) -> the 200 or None (for the check)"},
    {"stats", stats, METH_NOARGS, "(events, datagrams, dropped)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "wc_resp", NULL, -1, methods};

PyMODINIT_FUNC
PyInit_wc_resp(void)
{
    if ((s_names = PyUnicode_InternFromString("_names")) == NULL
            || (s_lines = PyUnicode_InternFromString("_lines")) == NULL
            || (s_method = PyUnicode_InternFromString("method")) == NULL
            || (s_src_ip = PyUnicode_InternFromString("src_ip")) == NULL
            || (s_src_port = PyUnicode_InternFromString("src_port")) == NULL
            || (s_dst_ip = PyUnicode_InternFromString("dst_ip")) == NULL
            || (s_dst_port = PyUnicode_InternFromString("dst_port")) == NULL
            || (s_register = PyUnicode_InternFromString("REGISTER")) == NULL
            || (s_udp = PyUnicode_InternFromString("udp")) == NULL
            || (s_ok = PyUnicode_InternFromString("OK")) == NULL
            || (s_status = PyLong_FromLong(200)) == NULL
            || (s_404 = PyLong_FromLong(404)) == NULL
            || (s_not_here = PyUnicode_InternFromString("Not here")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
