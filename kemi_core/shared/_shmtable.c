/* A hash table in shared memory for the workers of one server (usrloc's location records),
 * as Kamailio keeps them in its shm hash: one MAP_SHARED mapping of a sparse file in the shared
 * store's private directory, opened by path in any process (and inherited across fork).
 *
 * Layout (offsets from the mapping's start; 0 is "none"):
 *   header: magic (written last by the creator), sizes, the allocator's bump pointer and free
 *           lists, the allocator's lock and NSTRIPES bucket locks (process-shared, robust);
 *   buckets: nbuckets offsets of the first node of each chain (bucket b is guarded by stripe
 *           b % NSTRIPES);
 *   heap:   blocks of 2^c bytes (c in MIN_CLASS..MAX_CLASS), an 8-byte head (class, in use)
 *           before each payload.
 * A node holds one key and the offset of its value; a value holds its bytes (the caller's
 * pickle), the earliest expiry of what it holds ("due", 0 none) and a dirty mark, so a timer's
 * walk reads no value that has nothing due. Every change is published by one aligned 8-byte
 * store (a bucket head, a node's next, a node's value) after the new block is complete, and
 * freed blocks go back only after that: a process killed anywhere leaves the old or the new
 * record, at worst a leaked block. A lock whose holder died is taken over (EOWNERDEAD, then
 * pthread_mutex_consistent): what it guards is consistent at every store.
 *
 * Readers take the bucket's lock too (copying a value out takes a microsecond; a freed block
 * may be reused at once, so reading without it is not safe). While an update's Python function
 * runs its bucket's lock is held: the function may not use a table of the same map (refused,
 * as it could wait on a lock another process holds while that process waits on this one).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x316d68736b6d656bULL /* "kemkshm1" */
#define NSTRIPES 64
#define MIN_CLASS 5 /* 32-byte blocks */
#define MAX_CLASS 30 /* 1 GiB */
#define MAX_KEY 1024
#define ATTACH_WAIT_MS 2000

typedef struct {
    _Atomic uint64_t magic;
    uint64_t size;
    uint64_t nbuckets;
    uint64_t buckets;     /* offset of the bucket array */
    uint64_t heap;        /* offset of the first block */
    uint64_t top;         /* bump pointer: the first never-used byte (alloc_lock) */
    uint64_t free_head[MAX_CLASS + 1]; /* alloc_lock */
    _Atomic int64_t in_use;   /* bytes of blocks handed out */
    _Atomic int64_t recovered; /* locks taken over from a dead holder */
    pthread_mutex_t alloc_lock;
    pthread_mutex_t stripes[NSTRIPES];
} header_t;

typedef struct {
    uint32_t cls;
    uint32_t used;
} block_t;

typedef struct {
    _Atomic uint64_t next;
    _Atomic uint64_t value;
    uint32_t hash;
    uint32_t klen;
    char key[];
} node_t;

typedef struct {
    double due;
    uint32_t dirty;
    uint32_t len;
    char data[];
} value_t;

/* ---- the map ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    char *base;
    uint64_t size;
    PyObject *path;       /* str, for messages */
    PyObject *full_error; /* raised when the heap has no room */
    int busy;             /* an update's function runs (this process) */
} MapObject;

static PyObject *ShmTableError;

#define AT(m, off) ((void *)((m)->base + (off)))
#define HDR(m) ((header_t *)(m)->base)

static int
lock_gil(MapObject *m, pthread_mutex_t *mu)
{
    int rc = pthread_mutex_trylock(mu);
    if (rc == EBUSY) {
        Py_BEGIN_ALLOW_THREADS
        rc = pthread_mutex_lock(mu);
        Py_END_ALLOW_THREADS
    }
    if (rc == EOWNERDEAD) { /* its holder died: every store it made left the table whole */
        pthread_mutex_consistent(mu);
        atomic_fetch_add(&HDR(m)->recovered, 1);
        rc = 0;
    }
    if (rc != 0) {
        PyErr_Format(ShmTableError, "shared table lock: %s", strerror(rc));
        return -1;
    }
    return 0;
}

static int
init_mutex(pthread_mutex_t *mu)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0)
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    if (rc == 0)
        rc = pthread_mutex_init(mu, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

static int
class_of(uint64_t n)
{
    int c = MIN_CLASS;
    while (c <= MAX_CLASS && ((uint64_t)1 << c) < n)
        c++;
    return c;
}

/* A block with room for n bytes: its payload's offset, 0 when the map is full (error set). */
static uint64_t
heap_alloc(MapObject *m, uint64_t n)
{
    header_t *h = HDR(m);
    int c = class_of(n + sizeof(block_t));
    if (c > MAX_CLASS) {
        PyErr_Format(m->full_error, "a value of %llu bytes does not fit the shared table %S",
                     (unsigned long long)n, m->path);
        return 0;
    }
    uint64_t block = 0, bytes = (uint64_t)1 << c;
    if (lock_gil(m, &h->alloc_lock) < 0)
        return 0;
    uint64_t head = h->free_head[c];
    if (head != 0) {
        h->free_head[c] = *(uint64_t *)AT(m, head); /* (one store: killed after it, a leak) */
        block = head - sizeof(block_t);
    } else if (h->top + bytes <= h->size) {
        block = h->top;
        h->top += bytes;
    }
    pthread_mutex_unlock(&h->alloc_lock);
    if (block == 0) {
        PyErr_Format(m->full_error,
                     "the shared table map %S is full (%llu MB): raise $KEMI_SHARED_SIZE_MB",
                     m->path, (unsigned long long)(h->size >> 20));
        return 0;
    }
    block_t *b = AT(m, block);
    b->cls = (uint32_t)c;
    b->used = 1;
    atomic_fetch_add(&h->in_use, (int64_t)bytes);
    return block + sizeof(block_t);
}

/* Give a payload's block back (after nothing published points at it any more). */
static void
heap_free(MapObject *m, uint64_t payload)
{
    header_t *h = HDR(m);
    block_t *b = AT(m, payload - sizeof(block_t));
    int c = (int)b->cls;
    if (c < MIN_CLASS || c > MAX_CLASS || !b->used)
        return; /* (never: a block freed twice would corrupt a free list) */
    b->used = 0;
    atomic_fetch_sub(&h->in_use, (int64_t)((uint64_t)1 << c));
    pthread_mutex_t *mu = &h->alloc_lock;
    int rc = pthread_mutex_lock(mu); /* (held for a few stores only: no GIL release) */
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(mu);
        atomic_fetch_add(&h->recovered, 1);
        rc = 0;
    }
    if (rc != 0)
        return; /* (a leak rather than a corrupt list) */
    *(uint64_t *)AT(m, payload) = h->free_head[c];
    h->free_head[c] = payload; /* (one store publishes it) */
    pthread_mutex_unlock(mu);
}

static uint32_t
hash_key(const char *key, Py_ssize_t n)
{
    uint64_t x = 1469598103934665603ULL; /* FNV-1a, folded */
    for (Py_ssize_t i = 0; i < n; i++) {
        x ^= (unsigned char)key[i];
        x *= 1099511628211ULL;
    }
    return (uint32_t)(x ^ (x >> 32));
}

static void
map_dealloc(MapObject *m)
{
    if (m->base != NULL && m->base != MAP_FAILED)
        munmap(m->base, m->size);
    Py_XDECREF(m->path);
    Py_XDECREF(m->full_error);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static int
map_create(MapObject *m, int fd, uint64_t size, uint64_t nbuckets)
{
    if (ftruncate(fd, (off_t)size) < 0)
        return -1;
    m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m->base == MAP_FAILED)
        return -1;
    m->size = size;
    header_t *h = HDR(m);
    h->size = size;
    h->nbuckets = nbuckets;
    h->buckets = (sizeof(header_t) + 63) & ~(uint64_t)63;
    h->heap = (h->buckets + nbuckets * sizeof(uint64_t) + 4095) & ~(uint64_t)4095;
    h->top = h->heap;
    int rc = init_mutex(&h->alloc_lock);
    for (int i = 0; rc == 0 && i < NSTRIPES; i++)
        rc = init_mutex(&h->stripes[i]);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    if (h->heap >= size) {
        errno = ENOSPC;
        return -1;
    }
    atomic_store(&h->magic, MAGIC); /* (the buckets are the file's zeroes) */
    return 0;
}

static int
map_attach(MapObject *m, int fd)
{
    struct timespec pause = {0, 1000000};
    for (int waited = 0;; waited++) { /* the creator may still be making it */
        struct stat st;
        if (fstat(fd, &st) < 0)
            return -1;
        if ((uint64_t)st.st_size >= sizeof(header_t)) {
            if (m->base == NULL) {
                m->base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                               fd, 0);
                if (m->base == MAP_FAILED)
                    return -1;
                m->size = (uint64_t)st.st_size;
            }
            if (atomic_load(&HDR(m)->magic) == MAGIC && HDR(m)->size == m->size)
                return 0;
        }
        if (waited * 1 >= ATTACH_WAIT_MS) {
            errno = ETIMEDOUT;
            return -1;
        }
        nanosleep(&pause, NULL);
    }
}

static PyObject *
map_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *names[] = {"path", "size", "buckets", "full_error", NULL};
    PyObject *path, *full_error = NULL;
    unsigned long long size, nbuckets = 16384;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&K|KO", names, PyUnicode_FSConverter, &path,
                                     &size, &nbuckets, &full_error))
        return NULL;
    MapObject *m = (MapObject *)type->tp_alloc(type, 0);
    if (m == NULL) {
        Py_DECREF(path);
        return NULL;
    }
    m->path = PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path));
    if (m->path == NULL) {
        Py_DECREF(path);
        Py_DECREF(m);
        return NULL;
    }
    m->full_error = Py_NewRef(full_error != NULL ? full_error : ShmTableError);
    if (nbuckets == 0 || nbuckets % NSTRIPES != 0) {
        PyErr_SetString(PyExc_ValueError, "buckets must be a positive multiple of 64");
        Py_DECREF(path);
        Py_DECREF(m);
        return NULL;
    }
    const char *file = PyBytes_AS_STRING(path);
    int fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600), rc;
    if (fd >= 0) {
        rc = map_create(m, fd, size, nbuckets);
        if (rc < 0) {
            int err = errno;
            unlink(file);
            errno = err;
        }
    } else if (errno == EEXIST && (fd = open(file, O_RDWR | O_CLOEXEC)) >= 0) {
        rc = map_attach(m, fd);
    } else {
        rc = -1;
    }
    if (rc < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, m->path);
        if (fd >= 0)
            close(fd);
        Py_DECREF(path);
        Py_DECREF(m);
        return NULL;
    }
    close(fd); /* (the mapping stays) */
    Py_DECREF(path);
    return (PyObject *)m;
}

static PyObject *
map_stats(MapObject *m, PyObject *unused)
{
    header_t *h = HDR(m);
    return Py_BuildValue("{sKsKsLsKsL}", "size", (unsigned long long)h->size, "buckets",
                         (unsigned long long)h->nbuckets, "in_use", (long long)h->in_use,
                         "top", (unsigned long long)h->top, "recovered",
                         (long long)h->recovered);
}

static PyMethodDef map_methods[] = {
    {"stats", (PyCFunction)map_stats, METH_NOARGS,
     "stats() -> {size, buckets, in_use (bytes of blocks handed out), top (bytes ever "
     "handed out from the heap's start), recovered (locks taken over from a dead holder)}"},
    {NULL},
};

static PyTypeObject MapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kemi_core.shared._shmtable.Map",
    .tp_basicsize = sizeof(MapObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Map(path, size, buckets=16384, full_error=ShmTableError): the shared mapping "
              "at path (made by the first process, opened by the others)",
    .tp_new = map_new,
    .tp_dealloc = (destructor)map_dealloc,
    .tp_methods = map_methods,
};

/* ---- a table: the keys of a map that start with its prefix -------------------------------- */

typedef struct {
    PyObject_HEAD
    MapObject *map;
    PyObject *prefix;    /* bytes: the table's name and a NUL */
    PyObject *loads, *dumps, *protocol;
    PyObject *delete_mark, *unchanged_mark;
    PyObject *decoded;   /* dict key -> (bytes, value), or None */
    Py_ssize_t decoded_size;
    Py_ssize_t due_field, dirty_field; /* -1: none */
    PyObject *clean;
} TableObject;

/* The table's full key of ``key`` (str or bytes) in buf; its length, -1 with an error set. */
static Py_ssize_t
full_key(TableObject *t, PyObject *key, char *buf)
{
    const char *data;
    Py_ssize_t n;
    PyObject *tmp = NULL;
    if (PyUnicode_Check(key)) {
        if (PyUnicode_IS_COMPACT_ASCII(key)) {
            data = (const char *)PyUnicode_DATA(key);
            n = PyUnicode_GET_LENGTH(key);
        } else {
            if ((tmp = PyUnicode_AsEncodedString(key, "utf-8", "surrogateescape")) == NULL)
                return -1;
            data = PyBytes_AS_STRING(tmp);
            n = PyBytes_GET_SIZE(tmp);
        }
    } else if (PyBytes_Check(key)) {
        data = PyBytes_AS_STRING(key);
        n = PyBytes_GET_SIZE(key);
    } else {
        PyErr_SetString(PyExc_TypeError, "a shared table key is str or bytes");
        return -1;
    }
    Py_ssize_t p = PyBytes_GET_SIZE(t->prefix);
    if (n == 0 || p + n > MAX_KEY) {
        Py_XDECREF(tmp);
        PyErr_Format(PyExc_ValueError, "a shared table key must be 1..%d bytes, not %zd",
                     (int)(MAX_KEY - p), n);
        return -1;
    }
    memcpy(buf, PyBytes_AS_STRING(t->prefix), p);
    memcpy(buf + p, data, n);
    Py_XDECREF(tmp);
    return p + n;
}

/* The node of key (its stripe locked by the caller), and where its offset is kept. */
static node_t *
find(MapObject *m, uint64_t *link_at, const char *key, Py_ssize_t n, uint32_t hash,
     _Atomic uint64_t **link)
{
    _Atomic uint64_t *at = (_Atomic uint64_t *)link_at;
    for (uint64_t off = atomic_load(at); off != 0; off = atomic_load(at)) {
        node_t *node = AT(m, off);
        if (node->hash == hash && node->klen == (uint32_t)n && memcmp(node->key, key, n) == 0) {
            *link = at;
            return node;
        }
        at = &node->next;
    }
    *link = at;
    return NULL;
}

static uint64_t *
bucket_of(MapObject *m, uint32_t hash, pthread_mutex_t **stripe)
{
    header_t *h = HDR(m);
    uint64_t b = hash % h->nbuckets;
    *stripe = &h->stripes[b % NSTRIPES];
    return (uint64_t *)AT(m, h->buckets) + b;
}

static int
enter(TableObject *t)
{
    if (t->map->busy) {
        PyErr_SetString(ShmTableError,
                        "a shared table used inside an update's function (it would deadlock)");
        return -1;
    }
    return 0;
}

/* Where a key is or goes: its full key, hash, bucket, stripe, and its node (NULL: absent)
 * with the link that points at it (or the chain's last link). */
typedef struct {
    char key[MAX_KEY];
    Py_ssize_t n;
    uint32_t hash;
    uint64_t *bucket;
    pthread_mutex_t *stripe;
    _Atomic uint64_t *link;
    node_t *node;
} spot_t;

/* key's spot, its stripe locked (the caller unlocks at->stripe): 0, or -1 with an error set
 * (nothing locked). */
static int
locate(TableObject *t, PyObject *keyobj, spot_t *at)
{
    if ((at->n = full_key(t, keyobj, at->key)) < 0 || enter(t) < 0)
        return -1;
    at->hash = hash_key(at->key, at->n);
    at->bucket = bucket_of(t->map, at->hash, &at->stripe);
    if (lock_gil(t->map, at->stripe) < 0)
        return -1;
    at->node = find(t->map, at->bucket, at->key, at->n, at->hash, &at->link);
    return 0;
}

/* The due and dirty marks of a value: the least positive value[i][due_field], and whether any
 * value[i][dirty_field] differs from clean (a list of tuples; anything else has neither). */
static int
marks_of(TableObject *t, PyObject *value, double *due, uint32_t *dirty)
{
    *due = 0;
    *dirty = 0;
    if (!PyList_Check(value) || (t->due_field < 0 && t->dirty_field < 0))
        return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
        PyObject *item = PyList_GET_ITEM(value, i);
        if (!PyTuple_Check(item))
            continue;
        Py_ssize_t n = PyTuple_GET_SIZE(item);
        if (t->due_field >= 0 && t->due_field < n) {
            PyObject *x = PyTuple_GET_ITEM(item, t->due_field);
            double d = PyLong_Check(x) || PyFloat_Check(x) ? PyFloat_AsDouble(x) : 0;
            if (d == -1 && PyErr_Occurred())
                return -1;
            if (d > 0 && (*due == 0 || d < *due))
                *due = d;
        }
        if (t->dirty_field >= 0 && t->dirty_field < n && !*dirty) {
            int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(item, t->dirty_field),
                                                t->clean, Py_EQ);
            if (same < 0)
                return -1;
            *dirty = !same;
        }
    }
    return 0;
}

/* A new value block holding data (published by the caller): its offset, 0 on error. */
static uint64_t
new_value(MapObject *m, const char *data, Py_ssize_t n, double due, uint32_t dirty)
{
    uint64_t off = heap_alloc(m, sizeof(value_t) + (uint64_t)n);
    if (off == 0)
        return 0;
    value_t *v = AT(m, off);
    v->due = due;
    v->dirty = dirty;
    v->len = (uint32_t)n;
    memcpy(v->data, data, n);
    return off;
}

/* Set key's value (its stripe locked): a new node at the chain's head, or the node's value
 * replaced; the old value freed after. 0, or -1 with an error set (nothing changed). */
static int
store(MapObject *m, spot_t *at, const char *data, Py_ssize_t len, double due, uint32_t dirty)
{
    if ((uint64_t)len > UINT32_MAX) {
        PyErr_Format(m->full_error, "a value of %zd bytes does not fit a shared table", len);
        return -1;
    }
    uint64_t value = new_value(m, data, len, due, dirty);
    if (value == 0)
        return -1;
    if (at->node != NULL) {
        uint64_t old = atomic_exchange(&at->node->value, value);
        heap_free(m, old);
        return 0;
    }
    uint64_t off = heap_alloc(m, sizeof(node_t) + (uint64_t)at->n);
    if (off == 0) {
        heap_free(m, value);
        return -1;
    }
    node_t *node = AT(m, off);
    node->hash = at->hash;
    node->klen = (uint32_t)at->n;
    memcpy(node->key, at->key, at->n);
    atomic_store(&node->value, value);
    atomic_store(&node->next, atomic_load((_Atomic uint64_t *)at->bucket));
    atomic_store((_Atomic uint64_t *)at->bucket, off); /* (published) */
    return 0;
}

static void
unlink_node(MapObject *m, _Atomic uint64_t *link, node_t *node)
{
    uint64_t off = atomic_load(link);
    atomic_store(link, atomic_load(&node->next)); /* (published) */
    heap_free(m, atomic_load(&node->value));
    heap_free(m, off);
}

/* A value's bytes as stored, for the decoded cache's check: 1 when hit (key's remembered
 * bytes equal them), with its remembered value in *out (new reference). */
static int
cached(TableObject *t, PyObject *key, value_t *v, PyObject **out)
{
    if (t->decoded == Py_None)
        return 0;
    PyObject *hit = PyDict_GetItemWithError(t->decoded, key);
    if (hit == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(hit, 0)))
        return 0;
    PyObject *b = PyTuple_GET_ITEM(hit, 0);
    if (PyBytes_GET_SIZE(b) != (Py_ssize_t)v->len || memcmp(PyBytes_AS_STRING(b), v->data, v->len))
        return 0;
    *out = Py_NewRef(PyTuple_GET_ITEM(hit, 1));
    return 1;
}

static int
remember(TableObject *t, PyObject *key, PyObject *data, PyObject *value)
{
    if (t->decoded == Py_None)
        return 0;
    if (PyDict_GET_SIZE(t->decoded) >= t->decoded_size)
        PyDict_Clear(t->decoded);
    PyObject *kept = PyTuple_Pack(2, data, value);
    int rc = kept == NULL ? -1 : PyDict_SetItem(t->decoded, key, kept);
    Py_XDECREF(kept);
    return rc;
}

static PyObject *
decode(TableObject *t, PyObject *data)
{
    return PyObject_CallOneArg(t->loads, data);
}

/* get(key, default=None): the value of key (unpickled, or the one remembered with the same
 * bytes), default when absent. */
static PyObject *
table_get(TableObject *t, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(key, default=None)");
        return NULL;
    }
    spot_t at;
    if (locate(t, args[0], &at) < 0)
        return NULL;
    PyObject *value = NULL, *data = NULL;
    int hit = 0;
    if (at.node != NULL) {
        value_t *v = AT(t->map, atomic_load(&at.node->value));
        hit = cached(t, args[0], v, &value);
        if (hit == 0)
            data = PyBytes_FromStringAndSize(v->data, v->len);
    }
    pthread_mutex_unlock(at.stripe);
    if (hit < 0)
        return NULL;
    if (at.node == NULL)
        return Py_NewRef(nargs > 1 ? args[1] : Py_None);
    if (hit)
        return value;
    if (data == NULL)
        return NULL;
    value = decode(t, data);
    if (value != NULL && remember(t, args[0], data, value) < 0)
        Py_CLEAR(value);
    Py_DECREF(data);
    return value;
}

/* get_bytes(key) -> the stored bytes, or None */
static PyObject *
table_get_bytes(TableObject *t, PyObject *keyobj)
{
    spot_t at;
    if (locate(t, keyobj, &at) < 0)
        return NULL;
    PyObject *out;
    if (at.node != NULL) {
        value_t *v = AT(t->map, atomic_load(&at.node->value));
        out = PyBytes_FromStringAndSize(v->data, v->len);
    } else {
        out = Py_NewRef(Py_None);
    }
    pthread_mutex_unlock(at.stripe);
    return out;
}

/* The write of an update: new (a value, DELETE or UNCHANGED) in place of node's (stripe
 * locked). 0, or -1 with an error set (nothing changed). */
static int
apply(TableObject *t, PyObject *keyobj, spot_t *at, PyObject *new)
{
    if (new == t->unchanged_mark)
        return 0;
    if (new == t->delete_mark) {
        if (t->decoded != Py_None && PyDict_DelItem(t->decoded, keyobj) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError))
                return -1;
            PyErr_Clear();
        }
        if (at->node != NULL)
            unlink_node(t->map, at->link, at->node);
        return 0;
    }
    double due;
    uint32_t dirty;
    if (marks_of(t, new, &due, &dirty) < 0)
        return -1;
    PyObject *pcall[2] = {new, t->protocol};
    PyObject *data = PyObject_Vectorcall(t->dumps, pcall, 2, NULL);
    if (data == NULL)
        return -1;
    if (!PyBytes_Check(data)) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_TypeError, "shared table: dumps must return bytes");
        return -1;
    }
    int rc = store(t->map, at, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), due, dirty);
    if (rc == 0)
        rc = remember(t, keyobj, data, new);
    Py_DECREF(data);
    return rc;
}

/* change(key, fn, arg, default, pair): under key's lock, fn(current or default[, arg]) (with
 * arg when pair) returns the new value / DELETE / UNCHANGED (pair: a tuple (that, result)).
 * Returns fn's result (pair), else the new value (None when deleted, the current one when
 * unchanged). */
static PyObject *
change(TableObject *t, PyObject *keyobj, PyObject *fn, PyObject *arg, PyObject *dflt, int pair)
{
    spot_t at;
    if (locate(t, keyobj, &at) < 0)
        return NULL;
    PyObject *current = NULL, *got = NULL, *out = NULL;
    if (at.node != NULL) {
        value_t *v = AT(t->map, atomic_load(&at.node->value));
        int hit = cached(t, keyobj, v, &current);
        if (hit < 0)
            goto done;
        if (!hit) {
            PyObject *data = PyBytes_FromStringAndSize(v->data, v->len);
            if (data == NULL)
                goto done;
            current = decode(t, data);
            if (current != NULL && remember(t, keyobj, data, current) < 0)
                Py_CLEAR(current);
            Py_DECREF(data);
            if (current == NULL)
                goto done;
        }
    } else {
        current = Py_NewRef(dflt);
    }
    t->map->busy = 1;
    PyObject *call[2] = {current, arg};
    got = PyObject_Vectorcall(fn, call, pair ? 2 : 1, NULL);
    t->map->busy = 0;
    if (got == NULL)
        goto done;
    PyObject *new = got;
    if (pair) {
        if (!PyTuple_Check(got) || PyTuple_GET_SIZE(got) != 2) {
            PyErr_SetString(PyExc_TypeError, "update_never: fn must return (new, result)");
            goto done;
        }
        new = PyTuple_GET_ITEM(got, 0);
    }
    if (apply(t, keyobj, &at, new) < 0)
        goto done;
    if (pair)
        out = Py_NewRef(PyTuple_GET_ITEM(got, 1));
    else if (new == t->delete_mark)
        out = Py_NewRef(Py_None);
    else if (new == t->unchanged_mark)
        out = Py_NewRef(current);
    else
        out = Py_NewRef(new);
done:
    pthread_mutex_unlock(at.stripe);
    Py_XDECREF(current);
    Py_XDECREF(got);
    return out;
}

static PyObject *
table_update(TableObject *t, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "update(key, fn, default=None)");
        return NULL;
    }
    return change(t, args[0], args[1], NULL, nargs > 2 ? args[2] : Py_None, 0);
}

static PyObject *
table_update_never(TableObject *t, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "update_never(key, fn, arg)");
        return NULL;
    }
    return change(t, args[0], args[1], args[2], Py_None, 1);
}

/* put(key, value) */
static PyObject *
table_put(TableObject *t, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "put(key, value)");
        return NULL;
    }
    spot_t at;
    if (locate(t, args[0], &at) < 0)
        return NULL;
    int rc = apply(t, args[0], &at, args[1]);
    pthread_mutex_unlock(at.stripe);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* delete(key) -> whether it was there */
static PyObject *
table_delete(TableObject *t, PyObject *keyobj)
{
    spot_t at;
    if (locate(t, keyobj, &at) < 0)
        return NULL;
    int rc = apply(t, keyobj, &at, t->delete_mark);
    pthread_mutex_unlock(at.stripe);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(at.node != NULL);
}

/* scan(due_at=None, prefix=b"") -> [(key bytes without the table's prefix, value bytes)]:
 * every entry of the table whose key starts with prefix, in no order; with due_at only those
 * with something due (a due mark at or before due_at, or the dirty mark). One bucket locked
 * at a time: a change made meanwhile may or may not be seen. */
static PyObject *
table_scan(TableObject *t, PyObject *args)
{
    PyObject *due_obj = Py_None;
    const char *pre = "";
    Py_ssize_t pre_n = 0;
    if (!PyArg_ParseTuple(args, "|Oy#", &due_obj, &pre, &pre_n) || enter(t) < 0)
        return NULL;
    int due_only = due_obj != Py_None;
    double due_at = due_only ? PyFloat_AsDouble(due_obj) : 0;
    if (due_at == -1 && PyErr_Occurred())
        return NULL;
    MapObject *m = t->map;
    header_t *h = HDR(m);
    Py_ssize_t p = PyBytes_GET_SIZE(t->prefix);
    const char *tp = PyBytes_AS_STRING(t->prefix);
    uint64_t *buckets = AT(m, h->buckets);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (uint64_t b = 0; b < h->nbuckets; b++) {
        if (atomic_load((_Atomic uint64_t *)&buckets[b]) == 0)
            continue; /* (an empty bucket: its lock not needed to see that, a race is benign) */
        pthread_mutex_t *stripe = &h->stripes[b % NSTRIPES];
        if (lock_gil(m, stripe) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        int bad = 0;
        for (uint64_t off = atomic_load((_Atomic uint64_t *)&buckets[b]); off != 0 && !bad;) {
            node_t *node = AT(m, off);
            off = atomic_load(&node->next);
            if (node->klen < (uint32_t)(p + pre_n) || memcmp(node->key, tp, p) != 0
                    || memcmp(node->key + p, pre, pre_n) != 0)
                continue;
            value_t *v = AT(m, atomic_load(&node->value));
            if (due_only && !v->dirty && !(v->due > 0 && v->due <= due_at))
                continue;
            PyObject *item = Py_BuildValue("(y#y#)", node->key + p, (Py_ssize_t)node->klen - p,
                                           v->data, (Py_ssize_t)v->len);
            bad = item == NULL || PyList_Append(out, item) < 0;
            Py_XDECREF(item);
        }
        pthread_mutex_unlock(stripe);
        if (bad) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* clear(): every entry of the table removed */
static PyObject *
table_clear(TableObject *t, PyObject *unused)
{
    if (enter(t) < 0)
        return NULL;
    MapObject *m = t->map;
    header_t *h = HDR(m);
    Py_ssize_t p = PyBytes_GET_SIZE(t->prefix);
    uint64_t *buckets = AT(m, h->buckets);
    for (uint64_t b = 0; b < h->nbuckets; b++) {
        if (atomic_load((_Atomic uint64_t *)&buckets[b]) == 0)
            continue;
        pthread_mutex_t *stripe = &h->stripes[b % NSTRIPES];
        if (lock_gil(m, stripe) < 0)
            return NULL;
        _Atomic uint64_t *link = (_Atomic uint64_t *)&buckets[b];
        for (uint64_t off = atomic_load(link); off != 0; off = atomic_load(link)) {
            node_t *node = AT(m, off);
            if (node->klen >= (uint32_t)p && memcmp(node->key, PyBytes_AS_STRING(t->prefix), p) == 0)
                unlink_node(m, link, node);
            else
                link = &node->next;
        }
        pthread_mutex_unlock(stripe);
    }
    if (t->decoded != Py_None)
        PyDict_Clear(t->decoded);
    Py_RETURN_NONE;
}

static int
table_init(TableObject *t, PyObject *args, PyObject *kw)
{
    static char *names[] = {"map", "name", "loads", "dumps", "protocol", "delete_mark",
                            "unchanged_mark", "due_field", "dirty_field", "clean", NULL};
    PyObject *map, *name, *loads, *dumps, *protocol, *del, *unch, *clean = Py_None;
    Py_ssize_t due_field = -1, dirty_field = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!UOOOOO|nnO", names, &MapType, &map, &name,
                                     &loads, &dumps, &protocol, &del, &unch, &due_field,
                                     &dirty_field, &clean))
        return -1;
    Py_ssize_t name_n;
    const char *name_s = PyUnicode_AsUTF8AndSize(name, &name_n);
    if (name_s == NULL)
        return -1;
    PyObject *prefix = PyBytes_FromStringAndSize(NULL, name_n + 1);
    if (prefix == NULL)
        return -1;
    memcpy(PyBytes_AS_STRING(prefix), name_s, name_n);
    PyBytes_AS_STRING(prefix)[name_n] = 0;
    if (PyBytes_GET_SIZE(prefix) > 128) {
        Py_DECREF(prefix);
        PyErr_SetString(PyExc_ValueError, "a shared table name is at most 127 bytes");
        return -1;
    }
    Py_XSETREF(t->map, (MapObject *)Py_NewRef(map));
    Py_XSETREF(t->prefix, prefix);
    Py_XSETREF(t->loads, Py_NewRef(loads));
    Py_XSETREF(t->dumps, Py_NewRef(dumps));
    Py_XSETREF(t->protocol, Py_NewRef(protocol));
    Py_XSETREF(t->delete_mark, Py_NewRef(del));
    Py_XSETREF(t->unchanged_mark, Py_NewRef(unch));
    Py_XSETREF(t->clean, Py_NewRef(clean));
    Py_XSETREF(t->decoded, Py_NewRef(Py_None));
    t->due_field = due_field;
    t->dirty_field = dirty_field;
    t->decoded_size = 16384;
    return 0;
}

/* keep_decoded(size=16384): remember each value read or written with its bytes (as
 * SharedTable.keep_decoded): for values never changed in place */
static PyObject *
table_keep_decoded(TableObject *t, PyObject *args)
{
    Py_ssize_t size = 16384;
    if (!PyArg_ParseTuple(args, "|n", &size))
        return NULL;
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    Py_XSETREF(t->decoded, d);
    t->decoded_size = size > 0 ? size : 1;
    Py_RETURN_NONE;
}

static int
table_traverse(TableObject *t, visitproc visit, void *arg)
{
    Py_VISIT(t->loads);
    Py_VISIT(t->dumps);
    Py_VISIT(t->decoded);
    Py_VISIT(t->delete_mark);
    Py_VISIT(t->unchanged_mark);
    Py_VISIT(t->clean);
    return 0;
}

static int
table_clear_refs(TableObject *t)
{
    Py_CLEAR(t->map);
    Py_CLEAR(t->prefix);
    Py_CLEAR(t->loads);
    Py_CLEAR(t->dumps);
    Py_CLEAR(t->protocol);
    Py_CLEAR(t->delete_mark);
    Py_CLEAR(t->unchanged_mark);
    Py_CLEAR(t->decoded);
    Py_CLEAR(t->clean);
    return 0;
}

static void
table_dealloc(TableObject *t)
{
    PyObject_GC_UnTrack(t);
    table_clear_refs(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyMethodDef table_methods[] = {
    {"get", (PyCFunction)(void (*)(void))table_get, METH_FASTCALL,
     "get(key, default=None): the value of key"},
    {"get_bytes", (PyCFunction)table_get_bytes, METH_O, "get_bytes(key): the stored bytes"},
    {"update", (PyCFunction)(void (*)(void))table_update, METH_FASTCALL,
     "update(key, fn, default=None): fn(current or default) -> new value, DELETE or "
     "UNCHANGED, under the key's lock; returns the new value"},
    {"update_never", (PyCFunction)(void (*)(void))table_update_never, METH_FASTCALL,
     "update_never(key, fn, arg): fn(current or None, arg) -> (new, result); returns result"},
    {"put", (PyCFunction)(void (*)(void))table_put, METH_FASTCALL, "put(key, value)"},
    {"delete", (PyCFunction)table_delete, METH_O, "delete(key) -> whether it was there"},
    {"scan", (PyCFunction)table_scan, METH_VARARGS,
     "scan(due_at=None, prefix=b'') -> [(key, value bytes)] (with due_at: only entries "
     "due by then or dirty)"},
    {"clear", (PyCFunction)table_clear, METH_NOARGS, "clear(): every entry removed"},
    {"keep_decoded", (PyCFunction)table_keep_decoded, METH_VARARGS,
     "keep_decoded(size=16384): remember values with their bytes"},
    {NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kemi_core.shared._shmtable.Table",
    .tp_basicsize = sizeof(TableObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Table(map, name, loads, dumps, protocol, delete_mark, unchanged_mark, "
              "due_field=-1, dirty_field=-1, clean=None): the entries of map keyed by name",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)table_init,
    .tp_dealloc = (destructor)table_dealloc,
    .tp_traverse = (traverseproc)table_traverse,
    .tp_clear = (inquiry)table_clear_refs,
    .tp_methods = table_methods,
};

static PyMethodDef module_methods[] = {
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_shmtable",
    "Hash tables in a shared mapping with robust, process-shared bucket locks", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__shmtable(void)
{
    if (PyType_Ready(&MapType) < 0 || PyType_Ready(&TableType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL)
        return NULL;
    ShmTableError = PyErr_NewException("kemi_core.shared._shmtable.ShmTableError",
                                       PyExc_RuntimeError, NULL);
    if (ShmTableError == NULL || PyModule_AddObjectRef(mod, "ShmTableError", ShmTableError) < 0
            || PyModule_AddObjectRef(mod, "Map", (PyObject *)&MapType) < 0
            || PyModule_AddObjectRef(mod, "Table", (PyObject *)&TableType) < 0
            || PyModule_AddIntConstant(mod, "MAX_KEY", MAX_KEY) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
