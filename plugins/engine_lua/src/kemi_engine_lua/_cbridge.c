/* kemi_engine_lua._cbridge: KSR calls from Lua 5.4 (lupa.lua54) to Python without lupa's
 * per-call work (an argument tuple built by concatenation, kwargs dicts, its call wrapper).
 *
 * Each KSR function a script resolves becomes a Lua C closure over the Python callable the
 * engine bound for it (kemi_engine_lua.binding). The closure converts the usual arguments
 * (nil, booleans, numbers, UTF-8 strings: what lupa converts to None, bool, int/float, str)
 * itself, vectorcalls the callable and pushes the usual results (None, bool, int, float, str,
 * bytes, the empty tuple) as lupa pushes them. Everything else goes through lupa, so lupa
 * stays the reference for every value:
 *   - another argument (a table, a function, more than KB_MAX_ARGS, a string that is not
 *     UTF-8): the call is lupa's own (upvalue 2, lupa's wrapper of the same callable), with
 *     its conversions and its errors;
 *   - another result, or a Python exception: the object is kept in ``pending`` and lupa's
 *     ``take`` (upvalue 3, the Python function take() below, called through lupa) hands it to
 *     Lua, converted by lupa; an exception is then raised as the Lua error, so the script's
 *     handler receives lupa's wrapper of the same exception object.
 * Nothing is held (no reference, not the GIL) when Lua may raise (lua_call, lua_error): a Lua
 * error is a longjmp over this C frame.
 *
 * The Lua C API is lupa's: lupa.lua54 is linked with Lua and exports its lua_* functions, but
 * Python loads extensions RTLD_LOCAL, so init() finds them with dlopen(RTLD_NOLOAD) + dlsym.
 * The closures are made in Lua by kemi_lua_make, which the engine loads into each runtime
 * with package.loadlib (the C function receives the runtime's lua_State). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

/* The Lua 5.4 ABI this file uses (lua.h, luaconf.h: the defaults lupa builds with). */
typedef struct lua_State lua_State;
typedef int (*lua_CFunction)(lua_State *L);
typedef long long lua_Integer;
typedef double lua_Number;
typedef intptr_t lua_KContext;
typedef int (*lua_KFunction)(lua_State *L, int status, lua_KContext ctx);
#define LUA_REGISTRYINDEX (-1000000 - 1000)
#define lua_upvalueindex(i) (LUA_REGISTRYINDEX - (i))
#define LUA_MULTRET (-1)
#define LUA_TNIL 0
#define LUA_TBOOLEAN 1
#define LUA_TNUMBER 3
#define LUA_TSTRING 4
#define LUA_TTABLE 5
#define LUA_TFUNCTION 6
#define LUA_TUSERDATA 7
#define LUA_RIDX_GLOBALS 2
#define LUA_OK 0
#define LUA_VERSION_54 504

#define KB_MAX_ARGS 8

static struct {
    int (*gettop)(lua_State *);
    int (*type)(lua_State *, int);
    int (*isinteger)(lua_State *, int);
    lua_Integer (*tointegerx)(lua_State *, int, int *);
    lua_Number (*tonumberx)(lua_State *, int, int *);
    int (*toboolean)(lua_State *, int);
    const char *(*tolstring)(lua_State *, int, size_t *);
    void *(*touserdata)(lua_State *, int);
    unsigned long long (*rawlen)(lua_State *, int);
    lua_Number (*version)(lua_State *);
    void (*pushnil)(lua_State *);
    void (*pushinteger)(lua_State *, lua_Integer);
    void (*pushnumber)(lua_State *, lua_Number);
    void (*pushboolean)(lua_State *, int);
    const char *(*pushlstring)(lua_State *, const char *, size_t);
    void (*pushvalue)(lua_State *, int);
    void (*pushcclosure)(lua_State *, lua_CFunction, int);
    void (*rotate)(lua_State *, int, int);
    void (*callk)(lua_State *, int, int, lua_KContext, lua_KFunction);
    int (*pcallk)(lua_State *, int, int, int, lua_KContext, lua_KFunction);
    int (*error)(lua_State *);
    int (*checkstack)(lua_State *, int);
    void (*settop)(lua_State *, int);
    int (*rawgeti)(lua_State *, int, lua_Integer);
    int (*rawget)(lua_State *, int);
    void (*rawseti)(lua_State *, int, lua_Integer);
    int (*ref)(lua_State *, int);
    void (*unref)(lua_State *, int, int);
} lua;

static int lua_found; /* init() found every function */

/* The result or exception the next take() hands to Lua (set only with the GIL held, and
 * taken by the take() call that follows at once). */
static PyObject *pending;

/* A Lua argument as lupa converts it; NULL with a Python error (a string not UTF-8). */
static PyObject *
to_python(lua_State *L, int i)
{
    switch (lua.type(L, i)) {
    case LUA_TNIL:
        Py_RETURN_NONE;
    case LUA_TBOOLEAN:
        return PyBool_FromLong(lua.toboolean(L, i));
    case LUA_TNUMBER:
        if (lua.isinteger(L, i))
            return PyLong_FromLongLong(lua.tointegerx(L, i, NULL));
        return PyFloat_FromDouble(lua.tonumberx(L, i, NULL));
    default: { /* LUA_TSTRING: kb_call and result_value let only these four types through */
        size_t len;
        const char *s = lua.tolstring(L, i, &len);
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, NULL);
    }
    }
}

/* Push ``r`` as lupa would (unpack_returned_tuples: () is no value); the number of values
 * pushed, or -1 for a result left to lupa (nothing pushed, no Python error set). */
static int
push_result(lua_State *L, PyObject *r)
{
    if (r == Py_None) {
        lua.pushnil(L);
        return 1;
    }
    if (r == Py_True || r == Py_False) {
        lua.pushboolean(L, r == Py_True);
        return 1;
    }
    if (PyLong_CheckExact(r)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(r, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        lua.pushinteger(L, v);
        return 1;
    }
    if (PyUnicode_CheckExact(r)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(r, &len);
        if (s == NULL) { /* lone surrogates: lupa's encode fails, with its error */
            PyErr_Clear();
            return -1;
        }
        lua.pushlstring(L, s, (size_t)len);
        return 1;
    }
    if (PyFloat_CheckExact(r)) {
        lua.pushnumber(L, PyFloat_AS_DOUBLE(r));
        return 1;
    }
    if (PyBytes_CheckExact(r)) {
        lua.pushlstring(L, PyBytes_AS_STRING(r), (size_t)PyBytes_GET_SIZE(r));
        return 1;
    }
    if (PyTuple_CheckExact(r) && PyTuple_GET_SIZE(r) == 0)
        return 0;
    return -1;
}

/* The call as lupa makes it: its wrapper of the callable (upvalue 2) with the n arguments. */
static int
lupa_call(lua_State *L, int n)
{
    lua.pushvalue(L, lua_upvalueindex(2));
    lua.rotate(L, 1, 1);
    lua.callk(L, n, LUA_MULTRET, 0, NULL);
    return lua.gettop(L);
}

/* Lua: KSR.<module>.<name>(...) -> the export's result (upvalues: the callable's address,
 * lupa's wrapper of it, which keeps it alive, and lupa's wrapper of take). */
static int
kb_call(lua_State *L)
{
    int n = lua.gettop(L);
    if (n > KB_MAX_ARGS)
        return lupa_call(L, n);
    for (int i = 1; i <= n; i++) {
        int t = lua.type(L, i);
        if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
            return lupa_call(L, n);
    }
    PyObject *target = (PyObject *)(intptr_t)lua.tointegerx(L, lua_upvalueindex(1), NULL);
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *args[KB_MAX_ARGS];
    int made = 0;
    for (; made < n; made++) {
        args[made] = to_python(L, made + 1);
        if (args[made] == NULL)
            break;
    }
    if (made < n) { /* a string that is not UTF-8: lupa's call, with lupa's error */
        PyErr_Clear();
        for (int i = 0; i < made; i++)
            Py_DECREF(args[i]);
        PyGILState_Release(gil);
        return lupa_call(L, n);
    }
    /* an empty frame while Python runs, as lupa leaves it: a lupa call made from inside the
     * export (runtime.eval, a nested run) counts its results from the frame's top */
    lua.settop(L, 0);
    PyObject *r = PyObject_Vectorcall(target, args, (size_t)n, NULL);
    for (int i = 0; i < n; i++)
        Py_DECREF(args[i]);
    int pushed;
    if (r == NULL) {
        /* the exception, normalised with its traceback, becomes the Lua error (below) */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL && value != NULL)
            PyException_SetTraceback(value, tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        Py_XSETREF(pending, value != NULL ? value : Py_NewRef(Py_None));
        pushed = -2;
    } else {
        pushed = push_result(L, r);
        if (pushed < 0)
            Py_XSETREF(pending, r); /* the reference moves to pending */
        else
            Py_DECREF(r);
    }
    PyGILState_Release(gil);
    if (pushed >= 0)
        return pushed;
    lua.pushvalue(L, lua_upvalueindex(3));
    if (pushed == -1) { /* lupa converts the result */
        lua.callk(L, 0, LUA_MULTRET, 0, NULL);
        return lua.gettop(L);
    }
    lua.callk(L, 0, 1, 0, NULL); /* lupa's wrapper of the exception */
    return lua.error(L);
}

/* Lua (loaded with package.loadlib): kemi_lua_make(address, callable, take) -> a C closure
 * calling ``callable`` (lupa's wrapper of the Python object at ``address``); ``callable``
 * itself when it is not that wrapper (lupa's userdata starts with its object's pointer) or
 * this is not Lua 5.4: the call then stays lupa's. */
__attribute__((visibility("default"))) int
kemi_lua_make(lua_State *L)
{
    if (!lua_found || lua.version(L) != LUA_VERSION_54 || lua.gettop(L) != 3
            || lua.type(L, 2) != LUA_TUSERDATA || lua.rawlen(L, 2) < sizeof(PyObject *)) {
        lua.pushvalue(L, 2);
        return 1;
    }
    void *ud = lua.touserdata(L, 2);
    lua_Integer address = lua.tointegerx(L, 1, NULL);
    if (ud == NULL || address == 0 || *(PyObject **)ud != (PyObject *)(intptr_t)address) {
        lua.pushvalue(L, 2);
        return 1;
    }
    lua.pushcclosure(L, kb_call, 3);
    return 1;
}

/* ---- route runs from Python ------------------------------------------------------------
 * A LuaRun calls one of the prelude's runners (runner(name)) as lupa's function object of it
 * does, without lupa's call machinery, and with the GIL kept while Lua runs: a worker is one
 * thread running an event loop, and every KSR call the route makes then finds the GIL held
 * (PyGILState_Ensure without a lock). Arguments: up to LR_MAX_ARGS str/int (an event name);
 * results as lupa gives them: none -> None, one value -> it, several -> a tuple. Results other
 * than nil, booleans, numbers and UTF-8 strings, and any other arguments, are lupa's: the
 * results are stored in a Lua table (``box``) that lupa's table object reads and converts; the
 * call itself is then lupa's function object (``fallback``).
 *
 * The runner's own work (prelude.py's runner: f = _G[name], the facts F saved and cleared,
 * xpcall(f, handler, ...), the facts back, a failure handed to failed(r)) is done here with
 * the Lua C API when _G[name] is a function found by a raw lookup; otherwise (no such
 * global, or _G[name] only through a metamethod, or _G not a table) the runner itself is
 * called, and answers as it does. The facts: F[1] false means F[2..4] are not read, so a
 * run that finds F[1] false (no run around it asked) only sets it false again after; one
 * that finds it true (nested in a run that asked) keeps F[1..4] and gives them back. */
#define LR_MAX_ARGS 4

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    lua_State *L;
    int fn_ref, box_ref; /* the runner and the box in the Lua registry */
    /* the script function's name, the prelude's handler, failed and facts table F, "_G" */
    int name_ref, handler_ref, failed_ref, facts_ref, g_ref;
    PyObject *fallback;  /* lupa's function object of the same runner */
    PyObject *box;       /* lupa's table object of the box */
    PyObject *error;     /* lupa.LuaError: the runner itself failed (not the route) */
    PyObject *owner;     /* the LuaRuntime: lua_State lives as long as it */
} LuaRun;

static PyTypeObject LuaRunType;

/* The n values on top of the stack as lupa converts them (through the box); popped. */
static PyObject *
results_by_lupa(LuaRun *r, int n)
{
    lua_State *L = r->L;
    int top = lua.gettop(L) - n;
    lua.rawgeti(L, LUA_REGISTRYINDEX, r->box_ref);
    for (int i = 1; i <= n; i++) {
        lua.pushvalue(L, top + i);
        lua.rawseti(L, -2, i);
    }
    lua.settop(L, top);
    PyObject *items = PyTuple_New(n);
    if (items != NULL) {
        for (int i = 1; i <= n; i++) {
            PyObject *key = PyLong_FromLong(i);
            PyObject *v = key != NULL ? PyObject_GetItem(r->box, key) : NULL;
            Py_XDECREF(key);
            if (v == NULL) {
                Py_CLEAR(items);
                break;
            }
            PyTuple_SET_ITEM(items, i - 1, v);
        }
    }
    /* empty the box (it must not keep the values alive) */
    lua.rawgeti(L, LUA_REGISTRYINDEX, r->box_ref);
    for (int i = 1; i <= n; i++) {
        lua.pushnil(L);
        lua.rawseti(L, -2, i);
    }
    lua.settop(L, top);
    if (items == NULL || n != 1)
        return items;
    PyObject *one = Py_NewRef(PyTuple_GET_ITEM(items, 0));
    Py_DECREF(items);
    return one;
}

/* One result value at index i, as lupa converts it; NULL (no Python error) when lupa must:
 * another type, or a string that is not UTF-8. */
static PyObject *
result_value(lua_State *L, int i)
{
    int t = lua.type(L, i);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
        return NULL;
    PyObject *v = to_python(L, i);
    if (v == NULL)
        PyErr_Clear();
    return v;
}

/* The values above ``base`` moved down to top + 1 ... (the rest above top dropped): lupa,
 * converting them, reads the values of the frame from its bottom, as it leaves it. */
static void
results_down(lua_State *L, int top, int base)
{
    if (base == top)
        return;
    int nres = lua.gettop(L) - base;
    lua.rotate(L, top + 1, top - base);
    lua.settop(L, top + nres);
}

static PyObject *
lua_run_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    LuaRun *r = (LuaRun *)self;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL || n > LR_MAX_ARGS || r->fallback == NULL)
        goto by_lupa;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = args[i];
        if (!PyUnicode_CheckExact(a) && !PyLong_CheckExact(a))
            goto by_lupa;
    }
    lua_State *L = r->L;
    if (!lua.checkstack(L, LR_MAX_ARGS + 16))
        goto by_lupa;
    int top = lua.gettop(L);
    /* f = _G[name] (raw lookups: a value found is what _G[name] gives) */
    int fn_at = top + 3;
    lua.rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua.rawgeti(L, LUA_REGISTRYINDEX, r->g_ref);
    if (lua.rawget(L, top + 1) == LUA_TTABLE) {
        lua.rawgeti(L, LUA_REGISTRYINDEX, r->name_ref);
        if (lua.rawget(L, top + 2) != LUA_TFUNCTION)
            fn_at = 0;
    } else {
        fn_at = 0;
    }
    /* facts = top + 4; nested = whether F[1] (facts read) was true: then F[2..4] are kept
     * below (top + 5 ...) and given back after, else F[1] is false, as it is again after */
    int facts = top + 4, nested = 0;
    if (fn_at == 0) { /* the runner: its lookup, its answer */
        lua.settop(L, top);
        lua.rawgeti(L, LUA_REGISTRYINDEX, r->fn_ref);
    } else {
        lua.rawgeti(L, LUA_REGISTRYINDEX, r->facts_ref);
        lua.rawgeti(L, facts, 1);
        nested = lua.toboolean(L, -1);
        if (nested) {
            for (int i = 2; i <= 4; i++)
                lua.rawgeti(L, facts, i);
            lua.pushboolean(L, 0);
            lua.rawseti(L, facts, 1);
        }
        lua.rawgeti(L, LUA_REGISTRYINDEX, r->handler_ref);
        lua.pushvalue(L, fn_at);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = args[i];
        if (PyUnicode_CheckExact(a)) {
            Py_ssize_t len;
            const char *s = PyUnicode_AsUTF8AndSize(a, &len);
            if (s == NULL) {
                PyErr_Clear();
                lua.settop(L, top);
                goto by_lupa;
            }
            lua.pushlstring(L, s, (size_t)len);
        } else {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(a, &overflow);
            if (overflow || (v == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                lua.settop(L, top);
                goto by_lupa;
            }
            lua.pushinteger(L, v);
        }
    }
    /* the GIL stays held: see the comment above */
    int status, base; /* the results are the values above base */
    if (fn_at == 0) {
        base = top;
        status = lua.pcallk(L, (int)n, LUA_MULTRET, 0, 0, NULL);
    } else {
        base = top + (nested ? 8 : 5) + 1; /* the handler */
        status = lua.pcallk(L, (int)n, 1, base, 0, NULL);
        if (nested) { /* the caller's facts back (F[1] true: they were read) */
            for (int i = 1; i <= 4; i++) {
                lua.pushvalue(L, top + 4 + i);
                lua.rawseti(L, facts, i);
            }
        } else {
            lua.pushboolean(L, 0);
            lua.rawseti(L, facts, 1);
        }
        if (status != LUA_OK) { /* failed(error): what the runner returns then */
            lua.rawgeti(L, LUA_REGISTRYINDEX, r->failed_ref);
            lua.rotate(L, base + 1, 1);
            status = lua.pcallk(L, 1, LUA_MULTRET, 0, 0, NULL);
        }
    }
    int nres = lua.gettop(L) - base;
    if (status != LUA_OK) { /* the runner failed (not the route: its xpcall catches that) */
        results_down(L, top, base);
        PyObject *err = results_by_lupa(r, nres);
        lua.settop(L, top);
        if (err == NULL)
            return NULL;
        if (PyExceptionInstance_Check(err))
            PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        else
            PyErr_SetObject(r->error, err);
        Py_DECREF(err);
        return NULL;
    }
    if (nres == 1) {
        PyObject *v = result_value(L, base + 1);
        if (v != NULL) {
            lua.settop(L, top);
            return v;
        }
    }
    if (nres == 0) {
        lua.settop(L, top);
        Py_RETURN_NONE;
    }
    results_down(L, top, base);
    PyObject *out = results_by_lupa(r, nres);
    lua.settop(L, top);
    return out;
by_lupa:
    if (r->fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "LuaRun: not bound");
        return NULL;
    }
    return PyObject_Vectorcall(r->fallback, args, nargsf, kwnames);
}

static PyObject *
lua_run_bind(LuaRun *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "bind(fallback, box, error, owner)");
        return NULL;
    }
    Py_XSETREF(r->fallback, Py_NewRef(args[0]));
    Py_XSETREF(r->box, Py_NewRef(args[1]));
    Py_XSETREF(r->error, Py_NewRef(args[2]));
    Py_XSETREF(r->owner, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

static int
lua_run_traverse(LuaRun *r, visitproc visit, void *arg)
{
    Py_VISIT(r->fallback);
    Py_VISIT(r->box);
    Py_VISIT(r->error);
    Py_VISIT(r->owner);
    return 0;
}

static int
lua_run_clear(LuaRun *r)
{
    Py_CLEAR(r->fallback);
    Py_CLEAR(r->box);
    Py_CLEAR(r->error);
    Py_CLEAR(r->owner);
    return 0;
}

static void
lua_run_dealloc(LuaRun *r)
{
    PyObject_GC_UnTrack(r);
    /* the registry entries go while the runtime (owner) still holds the state */
    if (r->owner != NULL && r->L != NULL) {
        int refs[] = {r->fn_ref, r->box_ref, r->name_ref, r->handler_ref, r->failed_ref,
                      r->facts_ref, r->g_ref};
        for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
            lua.unref(r->L, LUA_REGISTRYINDEX, refs[i]);
    }
    lua_run_clear(r);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyMethodDef lua_run_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))lua_run_bind, METH_FASTCALL,
     "bind(fallback, box, error, owner): lupa's objects of the runner and the box, "
     "lupa.LuaError, the LuaRuntime"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LuaRunType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kemi_engine_lua._cbridge.LuaRun",
    .tp_basicsize = sizeof(LuaRun),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(LuaRun, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)lua_run_traverse,
    .tp_clear = (inquiry)lua_run_clear,
    .tp_dealloc = (destructor)lua_run_dealloc,
    .tp_methods = lua_run_methods,
    .tp_doc = "A route runner of the prelude called from Python (see _cbridge.c).",
};

/* Lua (loaded with package.loadlib, called through lupa):
 * kemi_lua_runner(runner, box, name, handler, failed, F)
 * leaves a new LuaRun for take() (it has no Python value to return through Lua). */
__attribute__((visibility("default"))) int
kemi_lua_runner(lua_State *L)
{
    if (!lua_found || lua.version(L) != LUA_VERSION_54 || lua.gettop(L) != 6
            || lua.type(L, 1) != LUA_TFUNCTION || lua.type(L, 2) != LUA_TTABLE
            || lua.type(L, 3) != LUA_TSTRING || lua.type(L, 4) != LUA_TFUNCTION
            || lua.type(L, 5) != LUA_TFUNCTION || lua.type(L, 6) != LUA_TTABLE)
        return 0;
    PyGILState_STATE gil = PyGILState_Ensure();
    LuaRun *r = PyObject_GC_New(LuaRun, &LuaRunType);
    if (r == NULL) {
        PyErr_Clear();
        PyGILState_Release(gil);
        return 0;
    }
    r->vectorcall = lua_run_vectorcall;
    r->L = NULL;
    r->fallback = r->box = r->error = r->owner = NULL;
    lua.pushlstring(L, "_G", 2);
    r->g_ref = lua.ref(L, LUA_REGISTRYINDEX);      /* each pops its value */
    r->facts_ref = lua.ref(L, LUA_REGISTRYINDEX);
    r->failed_ref = lua.ref(L, LUA_REGISTRYINDEX);
    r->handler_ref = lua.ref(L, LUA_REGISTRYINDEX);
    r->name_ref = lua.ref(L, LUA_REGISTRYINDEX);
    r->box_ref = lua.ref(L, LUA_REGISTRYINDEX);
    r->fn_ref = lua.ref(L, LUA_REGISTRYINDEX);
    r->L = L;
    PyObject_GC_Track(r);
    Py_XSETREF(pending, (PyObject *)r);
    PyGILState_Release(gil);
    return 0;
}

/* ---- a route run's Python steps without a Python frame (engine.py, resolver.py) -------------
 * engine_runner((engine, pure)) -> run(name, ctx, *args): LuaEngine.run for a loaded state
 * whose runner for ``name`` is made (state.runners[name]): engine.ctx and engine.route set to
 * ctx and name around the runner's call and put back as a finally block does, a failure's tuple given to
 * engine._failed (which raises). No state yet, a name without its runner, keywords: ``pure``
 * (LuaEngine.run bound), which loads or makes them.
 * facts_reader(holder) -> facts(): Resolver.facts (holder.ctx.msg's (is_request, method,
 * method.upper())) with the same answers on errors; an upper-case ASCII method is its own
 * upper(). The Python forms stay the reference (tests/test_lua_cbridge.py runs both). */

static PyObject *er_s_state, *er_s_runners, *er_s_ctx, *er_s_failed, *er_s_msg,
    *er_s_is_request, *er_s_method, *er_s_upper, *er_s_route;

static int
er_names(void)
{
    if (er_s_route != NULL)
        return 0;
    static const struct { PyObject **at; const char *text; } names[] = {
        {&er_s_state, "state"}, {&er_s_runners, "runners"}, {&er_s_ctx, "ctx"},
        {&er_s_failed, "_failed"}, {&er_s_msg, "msg"}, {&er_s_is_request, "is_request"},
        {&er_s_method, "method"}, {&er_s_upper, "upper"}, {&er_s_route, "route"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (*names[i].at == NULL
                && (*names[i].at = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return 0;
}

/* engine._failed(state, name, *result): raises; None should it return (as run returns) */
static PyObject *
er_failed(PyObject *engine, PyObject *state, PyObject *name, PyObject *result)
{
    Py_ssize_t n = PyTuple_GET_SIZE(result);
    PyObject *small[8];
    PyObject **argv = n + 3 <= 8 ? small : PyMem_New(PyObject *, (size_t)n + 3);
    if (argv == NULL)
        return PyErr_NoMemory();
    argv[0] = engine;
    argv[1] = state;
    argv[2] = name;
    for (Py_ssize_t i = 0; i < n; i++)
        argv[i + 3] = PyTuple_GET_ITEM(result, i);
    PyObject *out = PyObject_VectorcallMethod(er_s_failed, argv, (size_t)n + 3, NULL);
    if (argv != small)
        PyMem_Free(argv);
    if (out == NULL)
        return NULL;
    Py_DECREF(out);
    Py_RETURN_NONE;
}

static PyObject *
engine_run(PyObject *consts, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *engine = PyTuple_GET_ITEM(consts, 0), *pure = PyTuple_GET_ITEM(consts, 1);
    if (nargs < 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0))
        return PyObject_Vectorcall(pure, args, (size_t)nargs, kwnames);
    PyObject *state = PyObject_GetAttr(engine, er_s_state);
    if (state == NULL)
        return NULL;
    PyObject *runners = state == Py_None ? NULL : PyObject_GetAttr(state, er_s_runners);
    PyObject *runner = NULL;
    if (runners != NULL && PyDict_CheckExact(runners))
        runner = PyDict_GetItemWithError(runners, args[0]);  /* (borrowed) */
    int usual = runner == NULL ? 0 : PyObject_IsTrue(runner);  /* (runners.get(name) or) */
    if (usual <= 0) {
        Py_DECREF(state);
        Py_XDECREF(runners);
        if (usual < 0 || PyErr_Occurred())
            return NULL;
        return PyObject_Vectorcall(pure, args, (size_t)nargs, NULL);
    }
    Py_INCREF(runner);  /* (the run may clear runners) */
    Py_DECREF(runners);
    PyObject *prev = PyObject_GetAttr(engine, er_s_ctx), *out = NULL;
    PyObject *prev_route = prev == NULL ? NULL : PyObject_GetAttr(engine, er_s_route);
    if (prev_route == NULL || PyObject_SetAttr(engine, er_s_ctx, args[1]) < 0
            || PyObject_SetAttr(engine, er_s_route, args[0]) < 0)
        goto done;
    out = PyObject_Vectorcall(runner, args + 2, (size_t)(nargs - 2), NULL);
    /* finally: self.ctx, self.route = prev, prev_route (an error there replaces the run's) */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (PyObject_SetAttr(engine, er_s_ctx, prev) < 0
            || PyObject_SetAttr(engine, er_s_route, prev_route) < 0) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        Py_CLEAR(out);
        goto done;
    }
    PyErr_Restore(type, value, tb);
    if (out != NULL && PyTuple_CheckExact(out)) {  /* a failure: (code, value, trace) */
        PyObject *failed = er_failed(engine, state, args[0], out);
        Py_SETREF(out, failed);
    }
done:
    Py_XDECREF(prev);
    Py_XDECREF(prev_route);
    Py_DECREF(runner);
    Py_DECREF(state);
    return out;
}

static PyMethodDef engine_run_def = {
    "run", (PyCFunction)(void (*)(void))engine_run, METH_FASTCALL | METH_KEYWORDS,
    "run(name, ctx, *args) -> LuaEngine.run (compiled; see engine_runner)."};

static PyObject *
engine_runner(PyObject *Py_UNUSED(module), PyObject *consts)
{
    if (!PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != 2
            || !PyCallable_Check(PyTuple_GET_ITEM(consts, 1))) {
        PyErr_SetString(PyExc_TypeError, "engine_runner((engine, pure))");
        return NULL;
    }
    if (er_names() < 0)
        return NULL;
    return PyCFunction_NewEx(&engine_run_def, consts, NULL);
}

/* the attribute, or NULL with *failed 0 when reading it raised an Exception (cleared, as
 * ``except Exception`` does), *failed 1 for anything else (left set) */
static PyObject *
er_read(PyObject *obj, PyObject *name, int *failed)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) {
        *failed = !PyErr_ExceptionMatches(PyExc_Exception);
        if (!*failed)
            PyErr_Clear();
    }
    return v;
}

static PyObject *
facts_read(PyObject *holder, PyObject *Py_UNUSED(unused))
{
    int failed = 0;
    PyObject *ctx = er_read(holder, er_s_ctx, &failed);
    PyObject *msg = ctx == NULL ? NULL : er_read(ctx, er_s_msg, &failed);
    PyObject *is_request = msg == NULL ? NULL : er_read(msg, er_s_is_request, &failed);
    Py_XDECREF(ctx);
    if (is_request == NULL) {
        Py_XDECREF(msg);
        return failed ? NULL : PyTuple_Pack(3, Py_None, Py_None, Py_None);
    }
    PyObject *method = er_read(msg, er_s_method, &failed), *upper = NULL;
    Py_DECREF(msg);
    if (method != NULL) {
        int same = PyUnicode_CheckExact(method) && PyUnicode_IS_ASCII(method);
        if (same) {
            const Py_UCS1 *c = PyUnicode_1BYTE_DATA(method);
            for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(method); i < n && same; i++)
                same = c[i] < 'a' || c[i] > 'z';
        }
        if (same)
            upper = Py_NewRef(method);
        else if ((upper = PyObject_CallMethodNoArgs(method, er_s_upper)) == NULL) {
            failed = !PyErr_ExceptionMatches(PyExc_Exception);
            if (!failed)
                PyErr_Clear();
        }
    }
    PyObject *out = NULL;
    if (failed)
        ;
    else if (upper != NULL)
        out = PyTuple_Pack(3, is_request, method, upper);
    else
        out = PyTuple_Pack(3, is_request, Py_None, Py_None);
    Py_DECREF(is_request);
    Py_XDECREF(method);
    Py_XDECREF(upper);
    return out;
}

static PyMethodDef facts_read_def = {
    "facts", facts_read, METH_NOARGS,
    "facts() -> Resolver.facts (compiled; see facts_reader)."};

static PyObject *
facts_reader(PyObject *Py_UNUSED(module), PyObject *holder)
{
    if (er_names() < 0)
        return NULL;
    return PyCFunction_NewEx(&facts_read_def, holder, NULL);
}

/* ---- Python API ---------------------------------------------------------------------- */

static PyObject *
cb_init(PyObject *Py_UNUSED(module), PyObject *path)
{
    const char *p = PyUnicode_AsUTF8(path);
    if (p == NULL)
        return NULL;
    void *h = dlopen(p, RTLD_NOW | RTLD_NOLOAD);
    if (h == NULL) {
        PyErr_Format(PyExc_OSError, "%s is not loaded", p);
        return NULL;
    }
    struct { void **slot; const char *name; } syms[] = {
        {(void **)&lua.gettop, "lua_gettop"}, {(void **)&lua.type, "lua_type"},
        {(void **)&lua.isinteger, "lua_isinteger"}, {(void **)&lua.tointegerx, "lua_tointegerx"},
        {(void **)&lua.tonumberx, "lua_tonumberx"}, {(void **)&lua.toboolean, "lua_toboolean"},
        {(void **)&lua.tolstring, "lua_tolstring"}, {(void **)&lua.touserdata, "lua_touserdata"},
        {(void **)&lua.rawlen, "lua_rawlen"}, {(void **)&lua.version, "lua_version"},
        {(void **)&lua.pushnil, "lua_pushnil"}, {(void **)&lua.pushinteger, "lua_pushinteger"},
        {(void **)&lua.pushnumber, "lua_pushnumber"},
        {(void **)&lua.pushboolean, "lua_pushboolean"},
        {(void **)&lua.pushlstring, "lua_pushlstring"},
        {(void **)&lua.pushvalue, "lua_pushvalue"},
        {(void **)&lua.pushcclosure, "lua_pushcclosure"}, {(void **)&lua.rotate, "lua_rotate"},
        {(void **)&lua.callk, "lua_callk"}, {(void **)&lua.error, "lua_error"},
        {(void **)&lua.pcallk, "lua_pcallk"}, {(void **)&lua.checkstack, "lua_checkstack"},
        {(void **)&lua.settop, "lua_settop"}, {(void **)&lua.rawgeti, "lua_rawgeti"},
        {(void **)&lua.rawget, "lua_rawget"},
        {(void **)&lua.rawseti, "lua_rawseti"}, {(void **)&lua.ref, "luaL_ref"},
        {(void **)&lua.unref, "luaL_unref"},
    };
    void *found[sizeof(syms) / sizeof(syms[0])];
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        found[i] = dlsym(h, syms[i].name);
        if (found[i] == NULL) {
            dlclose(h);
            PyErr_Format(PyExc_OSError, "%s: no symbol %s", p, syms[i].name);
            return NULL;
        }
    }
    /* all or nothing; the handle stays open (lupa's module is never unloaded anyway) */
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
        *syms[i].slot = found[i];
    lua_found = 1;
    Py_RETURN_NONE;
}

static PyObject *
cb_take(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    PyObject *r = pending;
    pending = NULL;
    if (r == NULL)
        Py_RETURN_NONE;
    return r;
}

static PyMethodDef methods[] = {
    {"init", cb_init, METH_O,
     "init(path): find the Lua C API in the loaded lupa module at path (OSError if not)."},
    {"take", cb_take, METH_NOARGS,
     "take(): the result or exception a KSR closure left for lupa to hand to Lua."},
    {"engine_runner", engine_runner, METH_O,
     "engine_runner((engine, pure)) -> LuaEngine.run(name, ctx, *args), compiled"},
    {"facts_reader", facts_reader, METH_O,
     "facts_reader(holder) -> Resolver.facts() over holder.ctx, compiled"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "kemi_engine_lua._cbridge",
    "KSR calls from Lua 5.4 to Python as Lua C closures (see the source's comment).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__cbridge(void)
{
    if (PyType_Ready(&LuaRunType) < 0)
        return NULL;
    return PyModule_Create(&module_def);
}
