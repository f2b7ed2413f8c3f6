# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twin of :meth:`streams.tagging.engine.Tagger.tag` (same rules, same output, in C).

``engine.py`` is the readable reference and the fallback when this extension is not built; this
module runs the same algorithm with C arrays instead of Python objects in the hot loop:

* one character trie of every pack key (``" form "`` / ``" stem"``), walked from each word start of
  the normalised text (keys all begin with a space, so a match can only start at a word start; the
  walk finds exactly the hits an Aho-Corasick scan of ``" " + norm + " "`` finds);
* trigger, actor and place hits, stance cues and context words come out of that one walk; a
  sentence's cues are the doc's cues inside it (the reference scans each trigger sentence again);
* sentence starts, longest-match filtering, the stance window and scoring on C structs; Python
  objects are made only for the result.

``tests/unit/test_tagging_compiled.py`` checks that both give identical results, item by item.
"""

from cpython.unicode cimport Py_UNICODE_ISALNUM, Py_UNICODE_ISALPHA, Py_UNICODE_ISUPPER
from libc.stdint cimport int32_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort, realloc
from libc.string cimport memcpy, memset, strlen, strpbrk

from builtins import round as _round  # Python's correctly rounded round(x, 4), as the reference


cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void *PyUnicode_DATA(object o)
    Py_UCS4 PyUnicode_READ(int kind, void *data, Py_ssize_t index) nogil
    bint PyUnicode_IS_ASCII(object o)


cdef inline Py_UCS4 _read(int kind, void *data, Py_ssize_t i) noexcept nogil:
    """A character of a str's data; one-byte strings (most news text) without the kind switch."""
    return (<const unsigned char *>data)[i] if kind == 1 else PyUnicode_READ(kind, data, i)

# cue classes as bits (same values as engine.py)
cdef enum:
    NEG = 1
    DENIED = 2
    REJECTED = 4
    CONDITIONAL = 8
    AGREED = 16
    PROPOSED = 32
    OPEN = 64
    THREAT = 128
    HEDGE = 256
    BREAKER = 512
    DROPPED = 1 << 30  # a breaker inside a longer cue, while a sentence's cues are read
    NEAREST_MASK = CONDITIONAL | AGREED | PROPOSED | OPEN | HEDGE
    THREATENING = THREAT | HEDGE | CONDITIONAL
    FAR = 1 << 30
    MAX_CATEGORIES = 128

cdef struct Key:
    int32_t klen
    int32_t meta_off
    int32_t meta_cnt
    int32_t actor      # actor id (ids in name order) or -1
    int32_t place      # place id (ids in name order) or -1
    uint32_t bits      # cue bits
    uint64_t ctx       # context group mask
    char prefix
    char has_case

cdef struct Meta:
    int32_t cat
    int32_t stance     # fixed stance index or -1
    int32_t deflt      # default stance index
    double weight
    uint64_t requires
    char escalation

cdef struct Hit:
    int32_t start
    int32_t end
    int32_t key
    int32_t order      # walk order, makes qsort stable

cdef struct Cue:
    int32_t start
    int32_t end
    uint32_t bits

cdef struct Buf:
    Hit *hits
    int32_t n
    int32_t cap

cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL
#: trie nodes up to this depth get a dense table for ASCII characters (most walks end there)
cdef int DENSE_DEPTH = 5
#: columns of the dense table: a-z, 0-9, space (the only ASCII characters of normalised text)
cdef int COLS = 37
#: an empty dense cell; steps in the hash table take the low 21 bits of a slot
cdef uint16_t NO_STEP = 0xFFFF
cdef uint64_t STEP_MASK = 0x1FFFFF
cdef int ASCII_COL[128]
cdef Py_UCS4 ASCII_NORM[128]
cdef Py_UCS4 ASCII_LOWER_NORM[128]
#: ASCII characters a sentence separator turns on: . ! ? ; newline : |
cdef char SEPARATOR_CHAR[128]


cdef void _init_tables() noexcept:
    cdef int c
    for c in range(128):
        ASCII_COL[c] = -1
        ASCII_NORM[c] = 32
        ASCII_LOWER_NORM[c] = 32
        SEPARATOR_CHAR[c] = 0
    for c in range(26):
        ASCII_COL[97 + c] = c
        ASCII_NORM[97 + c] = 97 + c
        ASCII_NORM[65 + c] = 65 + c
        ASCII_LOWER_NORM[97 + c] = 97 + c
        ASCII_LOWER_NORM[65 + c] = 97 + c
    for c in range(10):
        ASCII_COL[48 + c] = 26 + c
        ASCII_NORM[48 + c] = 48 + c
        ASCII_LOWER_NORM[48 + c] = 48 + c
    ASCII_COL[32] = 36
    for c in (46, 33, 63, 59, 10, 58, 124):
        SEPARATOR_CHAR[c] = 1


_init_tables()


cdef inline Py_UCS4 _norm_char(Py_UCS4 c) noexcept nogil:
    """``engine.normalize`` for one lower-cased character: punctuation and spacing become a space."""
    if c < 128:
        return ASCII_NORM[c]
    if (c == 0x2019 or c == 0x2018 or c == 0x201C or c == 0x201D or c == 0x201E or c == 0xAB or c == 0xBB
            or c == 0x2014 or c == 0x2013 or c == 0x2026 or c == 0xA0 or c == 0x2032 or c == 0xB7
            or c == 0x2011 or c == 0x2012):
        return 32
    return c


cdef int _cmp_hit(const void *a, const void *b) noexcept nogil:
    """By start, longer (larger end) first, then walk order (stable)."""
    cdef const Hit *x = <const Hit *>a
    cdef const Hit *y = <const Hit *>b
    if x.start != y.start:
        return -1 if x.start < y.start else 1
    if x.end != y.end:
        return -1 if x.end > y.end else 1
    return -1 if x.order < y.order else (1 if x.order > y.order else 0)


cdef int _cmp_cue(const void *a, const void *b) noexcept nogil:
    """Tuple order of ``(start, end, bits)``."""
    cdef const Cue *x = <const Cue *>a
    cdef const Cue *y = <const Cue *>b
    if x.start != y.start:
        return -1 if x.start < y.start else 1
    if x.end != y.end:
        return -1 if x.end < y.end else 1
    return -1 if x.bits < y.bits else (1 if x.bits > y.bits else 0)


cdef int _cmp_pair(const void *a, const void *b) noexcept nogil:
    """``(position, id)`` pairs stored as two int32 values."""
    cdef const int32_t *x = <const int32_t *>a
    cdef const int32_t *y = <const int32_t *>b
    if x[0] != y[0]:
        return -1 if x[0] < y[0] else 1
    return -1 if x[1] < y[1] else (1 if x[1] > y[1] else 0)


cdef inline bint _holds(const Cue *outer, const Cue *breaker) noexcept nogil:
    """``outer`` is a longer non-breaker cue that contains ``breaker`` ("as long as" holds "as")."""
    return (not outer.bits & BREAKER and outer.end - outer.start > 4 and outer.start <= breaker.start
            and breaker.end <= outer.end)


cdef void _sort(void *base, Py_ssize_t n, size_t size,
                int (*cmp)(const void *, const void *) noexcept nogil) noexcept nogil:
    """Stable for the comparators above (they end in a tie-break); insertion sort for the short,
    almost sorted arrays of one item, qsort beyond that."""
    cdef Py_ssize_t i, j
    cdef char *a = <char *>base
    cdef char tmp[16]
    if n > 24 or size > 16:
        qsort(base, n, size, cmp)
        return
    for i in range(1, n):
        memcpy(tmp, a + i * size, size)
        j = i - 1
        while j >= 0 and cmp(a + j * size, tmp) > 0:
            memcpy(a + (j + 1) * size, a + j * size, size)
            j -= 1
        memcpy(a + (j + 1) * size, tmp, size)


cdef inline int32_t _separator_end(int kind, void *data, Py_ssize_t n, Py_ssize_t i) noexcept:
    """Where the next sentence starts if ``doc[i]`` begins a sentence separator, else -1 (the separators
    of ``engine._DOT_SEPS`` and ``engine._OTHER_SEPS``; " | " and dashes are found at their middle)."""
    cdef Py_UCS4 c = _read(kind, data, i), c1, c2, p1, p2
    cdef int32_t cand
    cand = -1
    if c == 46 or c == 33 or c == 63 or c == 59:  # . ! ? ;
        c1 = _read(kind, data, i + 1) if i + 1 < n else 0
        if c1 == 32:
            cand = i + 2
        elif c1 == 34 or c1 == 39 or c1 == 41 or c1 == 0x201D or c1 == 0xBB:
            if i + 2 < n and _read(kind, data, i + 2) == 32:
                cand = i + 3
        if cand >= 0 and i > 0:
            p1 = _read(kind, data, i - 1)
            if Py_UNICODE_ISUPPER(p1):
                if i < 2:
                    cand = -1
                else:
                    p2 = _read(kind, data, i - 2)
                    if p2 == 33 or p2 == 63 or p2 == 59 or not Py_UNICODE_ISALPHA(p2):
                        cand = -1
    elif c == 10:
        cand = i + 1
    elif c == 124 or c == 0x2014 or c == 0x2013:  # " | ", " — ", " – "
        if i >= 1 and i + 1 < n and _read(kind, data, i - 1) == 32 and _read(kind, data, i + 1) == 32:
            cand = i + 2
    elif c == 58:  # ':' before a quotation
        if i + 2 < n and _read(kind, data, i + 1) == 32:
            c2 = _read(kind, data, i + 2)
            if c2 == 34 or c2 == 0x201C or c2 == 0xAB:
                cand = i + 2
    return cand


cdef double _noisy_or(double *vals, int n) noexcept nogil:
    """``engine._noisy_or`` on a C array (sorted in place, descending)."""
    cdef int i, j
    cdef double v, p
    if n == 0:
        return 0.0
    for i in range(n):
        v = vals[i]
        vals[i] = 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)
    for i in range(1, n):  # insertion sort, descending (n <= number of categories)
        v = vals[i]
        j = i - 1
        while j >= 0 and vals[j] < v:
            vals[j + 1] = vals[j]
            j -= 1
        vals[j + 1] = v
    p = 1.0 - vals[0]
    for i in range(1, n):
        p *= 1.0 - 0.5 * vals[i]
    return 1.0 - p


cdef class CompiledTagger:
    """Built by :class:`streams.tagging.engine.Tagger` from its compiled key table; ``tag`` as there."""

    cdef Key *keys
    cdef int32_t nkeys
    cdef Meta *metas
    cdef int32_t nmetas
    cdef int32_t *meta_ids
    cdef int32_t *node_key      # key id ending at a trie node, or -1
    # A step returns the child as ``child << 1 | (a key ends there)``, so only key ends read node_key.
    cdef uint16_t *dense        # [node * COLS + column] -> step, or NO_STEP; for nodes < ndense
    cdef int32_t ndense
    cdef uint64_t *slots        # transition hash table: (node + 1) << 42 | char << 21 | step
    cdef uint64_t tmask
    cdef int tshift
    cdef int32_t start_node     # the node after the leading space every key starts with
    cdef double *actor_weight
    cdef double factors[16]
    cdef int before, after
    cdef int32_t ncats
    cdef char cat_escalation[MAX_CATEGORIES]
    cdef list case_forms, actor_names, place_names, stance_names, cat_names
    cdef double t_medium, t_high, t_critical
    cdef str version
    cdef dict signal_template
    cdef int32_t max_klen       # the longest key
    cdef int32_t nmark
    cdef object lower

    def __cinit__(self):
        self.max_klen = 0
        self.keys = NULL
        self.metas = NULL
        self.meta_ids = NULL
        self.node_key = NULL
        self.slots = NULL
        self.dense = NULL
        self.actor_weight = NULL

    def __init__(self, list keys, list metas, list actor_names, list actor_weights, list place_names,
                 list stance_names, list factors, list cat_names, list cat_escalation,
                 int before, int after, dict thresholds, str version, lower):
        """``keys``: ``(key, prefix, case_form, meta_ids, actor_id, place_id, cue_bits, ctx_mask)``;
        ``metas``: ``(cat, stance_id, default_id, weight, requires_mask, escalation)``; actor and place
        ids are indices into the name lists, which are sorted; ``thresholds`` are the severity
        thresholds and ``lower`` is the reference lower-casing for the rare texts whose ``str.lower``
        changes length."""
        cdef int32_t i, j, nnodes, node, child, nmeta_ids = 0
        cdef uint64_t tk, h, size
        cdef Py_UCS4 ch
        if len(cat_names) > MAX_CATEGORIES or len(stance_names) > 16:
            raise ValueError("too many categories or stances for the compiled tagger")
        self.nkeys = len(keys)
        self.nmetas = len(metas)
        self.keys = <Key *>malloc(max(1, self.nkeys) * sizeof(Key))
        self.metas = <Meta *>malloc(max(1, self.nmetas) * sizeof(Meta))
        for k in keys:
            nmeta_ids += len(k[3])
        self.meta_ids = <int32_t *>malloc(max(1, nmeta_ids) * sizeof(int32_t))
        self.actor_weight = <double *>malloc(max(1, len(actor_weights)) * sizeof(double))
        if not (self.keys and self.metas and self.meta_ids and self.actor_weight):
            raise MemoryError()
        for i, w in enumerate(actor_weights):
            self.actor_weight[i] = w
        for i in range(16):
            self.factors[i] = 1.0
        for i, f in enumerate(factors):
            self.factors[i] = f
        self.ncats = len(cat_names)
        for i in range(self.ncats):
            self.cat_escalation[i] = 1 if cat_escalation[i] else 0
        for i, m in enumerate(metas):
            self.metas[i].cat = m[0]
            self.metas[i].stance = m[1]
            self.metas[i].deflt = m[2]
            self.metas[i].weight = m[3]
            self.metas[i].requires = m[4]
            self.metas[i].escalation = 1 if m[5] else 0
        self.case_forms = []
        # the trie, first as a dict of transitions
        trans = {}
        terminal = {}
        nnodes = 1
        nmeta_ids = 0
        for i, k in enumerate(keys):
            text, prefix, case_form, mids, actor, place, bits, ctx = k
            node = 0
            for ch in text:
                child = trans.get((node, ch), -1)
                if child < 0:
                    child = nnodes
                    nnodes += 1
                    trans[(node, ch)] = child
                node = child
            if node in terminal:
                raise ValueError(f"duplicate key {text!r}")
            terminal[node] = i
            self.keys[i].klen = len(text)
            self.max_klen = max(self.max_klen, len(text))
            self.keys[i].prefix = 1 if prefix else 0
            self.keys[i].has_case = 1 if case_form is not None else 0
            self.case_forms.append(case_form)
            self.keys[i].meta_off = nmeta_ids
            self.keys[i].meta_cnt = len(mids)
            for j in mids:
                self.meta_ids[nmeta_ids] = j
                nmeta_ids += 1
            self.keys[i].actor = actor
            self.keys[i].place = place
            self.keys[i].bits = bits
            self.keys[i].ctx = ctx
        # number the nodes breadth-first, so the shallow ones (dense table) have the smallest ids
        children = {}
        for (node, ch), child in trans.items():
            children.setdefault(node, []).append((ch, child))
        order = [0]
        depth = {0: 0}
        for node in order:  # grows while iterated
            for ch, child in children.get(node, ()):
                depth[child] = depth[node] + 1
                order.append(child)
        if 2 * nnodes >= STEP_MASK:
            raise ValueError(f"{nnodes} trie nodes: too many for the compiled tagger")
        # the dense table covers depths 0..d, whose children (depth <= d + 1) fit a uint16 step
        d = DENSE_DEPTH
        while d > 0 and 2 * len([x for x in depth.values() if x <= d + 1]) >= NO_STEP:
            d -= 1
        self.ndense = len([x for x in depth.values() if x <= d])
        new_id = {old: i for i, old in enumerate(order)}
        trans = {(new_id[node], ch): new_id[child] for (node, ch), child in trans.items()}
        terminal = {new_id[node]: i for node, i in terminal.items()}
        self.dense = <uint16_t *>malloc(max(1, self.ndense) * COLS * sizeof(uint16_t))
        self.node_key = <int32_t *>malloc(nnodes * sizeof(int32_t))
        size = 1024
        self.tshift = 54
        while size < <uint64_t>(2 * len(trans) + 2):
            size *= 2
            self.tshift -= 1
        self.tmask = size - 1
        self.slots = <uint64_t *>malloc(size * sizeof(uint64_t))
        if not (self.dense and self.node_key and self.slots):
            raise MemoryError()
        for i in range(self.ndense * COLS):
            self.dense[i] = NO_STEP
        memset(self.slots, 0, size * sizeof(uint64_t))
        for i in range(nnodes):
            self.node_key[i] = terminal.get(i, -1)
        for (node, ch), child in trans.items():
            step = 2 * child + (1 if child in terminal else 0)
            if node < self.ndense and ch < 128:
                if ASCII_COL[ch] < 0:
                    raise ValueError(f"key character {ch!r} is not normalised")
                self.dense[node * COLS + ASCII_COL[ch]] = step
                continue
            tk = ((<uint64_t>node + 1) << 42) | (<uint64_t>ch << 21)
            h = (tk * GOLDEN) >> self.tshift
            while self.slots[h] != 0:
                h = (h + 1) & self.tmask
            self.slots[h] = tk | <uint64_t>step
        self.start_node = self._step(0, 32) >> 1
        self.before = before
        self.after = after
        self.actor_names = list(actor_names)
        self.place_names = list(place_names)
        self.stance_names = list(stance_names)
        self.cat_names = list(cat_names)
        self.t_medium = thresholds["medium"]
        self.t_high = thresholds["high"]
        self.t_critical = thresholds["critical"]
        self.version = version
        self.signal_template = dict.fromkeys(("kind", "category", "stance", "text", "start", "end", "actors"))
        self.nmark = max(1, len(actor_names), len(place_names))
        self.lower = lower

    def __dealloc__(self):
        free(self.keys)
        free(self.metas)
        free(self.meta_ids)
        free(self.node_key)
        free(self.slots)
        free(self.dense)
        free(self.actor_weight)

    cdef inline int32_t _step(self, int32_t node, Py_UCS4 ch) noexcept nogil:
        """``child << 1 | (a key ends at child)`` for the edge ``node --ch-->``, or -1."""
        cdef int col
        cdef uint16_t step
        if node < self.ndense and ch < 128:
            col = ASCII_COL[ch]
            if col < 0:
                return -1
            step = self.dense[node * COLS + col]
            return -1 if step == NO_STEP else step
        cdef uint64_t tk = ((<uint64_t>node + 1) << 42) | (<uint64_t>ch << 21)
        cdef uint64_t h = (tk * GOLDEN) >> self.tshift
        cdef uint64_t slot
        while True:
            slot = self.slots[h]
            if slot & ~(<uint64_t>STEP_MASK) == tk:
                return <int32_t>(slot & STEP_MASK)
            if slot == 0:
                return -1
            h = (h + 1) & self.tmask

    cdef int _walk(self, str low, str doc, bint ascii, Buf *buf) except -1:
        """Every key occurrence in the normalised ``low`` (``doc`` itself when ``ascii``, lower-cased
        here), in order of start, shorter keys first."""
        cdef Py_ssize_t n = len(low)
        cdef Py_ssize_t i, j, e
        cdef Py_UCS4 c
        cdef int32_t node, kid, step
        cdef bint prev_space = True
        cdef Key *key
        cdef Hit *grown
        cdef int kind = PyUnicode_KIND(low)
        cdef void *data = PyUnicode_DATA(low)
        cdef const unsigned char *latin1
        # the normalised text once, plus the closing space of " " + norm + " "
        cdef Py_UCS4 *norm = <Py_UCS4 *>malloc((n + 1) * sizeof(Py_UCS4))
        if norm == NULL:
            raise MemoryError()
        if ascii:
            latin1 = <const unsigned char *>data
            for i in range(n):
                norm[i] = ASCII_LOWER_NORM[latin1[i]]
        elif kind == 1:
            latin1 = <const unsigned char *>data
            for i in range(n):
                norm[i] = _norm_char(latin1[i])
        else:
            for i in range(n):
                norm[i] = _norm_char(PyUnicode_READ(kind, data, i))
        norm[n] = 32
        try:
            if self.start_node < 0:
                return 0
            for i in range(n):
                c = norm[i]
                if c == 32:
                    prev_space = True
                    continue
                if not prev_space:
                    continue
                prev_space = False
                node = self.start_node
                j = i
                while True:
                    step = self._step(node, norm[j])
                    if step < 0:
                        break
                    node = step >> 1
                    if step & 1:
                        kid = self.node_key[node]
                        key = &self.keys[kid]
                        if key.prefix:
                            e = j + 1
                            while e < n and Py_UNICODE_ISALNUM(norm[e]):
                                e += 1
                        else:
                            e = j
                        if not key.has_case or doc[i:e] == self.case_forms[kid]:
                            if buf.n == buf.cap:
                                grown = <Hit *>realloc(buf.hits, 2 * buf.cap * sizeof(Hit))
                                if grown == NULL:
                                    raise MemoryError()
                                buf.hits = grown
                                buf.cap *= 2
                            buf.hits[buf.n].start = <int32_t>i
                            buf.hits[buf.n].end = <int32_t>e
                            buf.hits[buf.n].key = kid
                            buf.hits[buf.n].order = buf.n
                            buf.n += 1
                    j += 1
                    if j > n:
                        break
            return 0
        finally:
            free(norm)

    cdef int32_t *_sentence_starts(self, str doc, int32_t *count) except NULL:
        """``engine.Tagger._sentence_starts`` (the ``str.find`` variant, which both variants equal)."""
        cdef Py_ssize_t n = len(doc)
        cdef Py_ssize_t i, k, m = 0, cap = 16
        cdef Py_UCS4 c
        cdef int32_t *cands = <int32_t *>malloc(cap * sizeof(int32_t))
        cdef int32_t *grown
        cdef int32_t cand, last
        cdef int kind = PyUnicode_KIND(doc)
        cdef void *data = PyUnicode_DATA(doc)
        if cands == NULL:
            raise MemoryError()
        cdef const char *text = <const char *>data
        cdef const char *hit
        i = -1
        while True:
            # the next character a separator may turn on
            i += 1
            if kind == 1:  # strpbrk (C) stops at a NUL: step over embedded ones
                while i < n:
                    hit = strpbrk(text + i, ".!?;\n:|")
                    if hit != NULL:
                        i = hit - text
                        break
                    i += <Py_ssize_t>strlen(text + i) + 1
            else:
                while i < n:
                    c = PyUnicode_READ(kind, data, i)
                    if (SEPARATOR_CHAR[c] if c < 128 else (c == 0x2014 or c == 0x2013)):
                        break
                    i += 1
            if i >= n:
                break
            cand = _separator_end(kind, data, n, i)
            if cand >= 0:
                if m == cap:
                    cap *= 2
                    grown = <int32_t *>realloc(cands, cap * sizeof(int32_t))
                    if grown == NULL:
                        free(cands)
                        raise MemoryError()
                    cands = grown
                cands[m] = cand
                m += 1
        # insertion sort (candidates come almost in order), then skip spaces and drop repeats
        for i in range(1, m):
            cand = cands[i]
            k = i - 1
            while k >= 0 and cands[k] > cand:
                cands[k + 1] = cands[k]
                k -= 1
            cands[k + 1] = cand
        grown = <int32_t *>malloc((m + 1) * sizeof(int32_t))
        if grown == NULL:
            free(cands)
            raise MemoryError()
        grown[0] = 0
        count[0] = 1
        last = 0
        for k in range(m):
            i = cands[k]
            while i < n:
                c = _read(kind, data, i)
                if c == 32 or c == 9 or c == 10 or c == 13 or c == 0xA0:
                    i += 1
                else:
                    break
            if last < i < n:
                grown[count[0]] = <int32_t>i
                count[0] += 1
                last = <int32_t>i
        free(cands)
        return grown

    cdef int _stance(self, Meta *meta, int32_t s, int32_t e, Cue *cues, int ncues) noexcept nogil:
        """``engine.Tagger._stance``: a stance index, or -1 to drop the signal."""
        cdef int32_t lo = s - self.before
        cdef int32_t hi = e + self.after
        cdef uint32_t bmask = 0, amask = 0, near_b = 0, near_a = 0, bits
        cdef int32_t neg_d = FAR, rej_d = FAR, near_bd = FAR, near_ad = FAR, d, cs, ce
        cdef int i = 0, top = ncues, mid
        while i < top:  # the first cue of the window (cues are sorted by start)
            mid = (i + top) >> 1
            if cues[mid].start < lo:
                i = mid + 1
            else:
                top = mid
        for i in range(i, ncues):
            cs = cues[i].start
            ce = cues[i].end
            bits = cues[i].bits
            if cs < lo:
                continue
            if cs >= hi:
                break
            if ce <= s:
                if bits & BREAKER:
                    bmask = 0
                    neg_d = FAR
                    rej_d = FAR
                    near_bd = FAR
                    near_b = 0
                    continue
                d = s - ce
                bmask |= bits
                if bits & NEG:
                    neg_d = d
                if bits & REJECTED:
                    rej_d = d
                if bits & NEAREST_MASK and d <= near_bd:
                    near_b = bits
                    near_bd = d
            elif cs >= e:
                if bits & BREAKER:
                    break
                if bits & (DENIED | REJECTED) and cs - e > 15:
                    bits &= ~(<uint32_t>(DENIED | REJECTED))
                amask |= bits
                if bits & NEAREST_MASK and not near_a:
                    near_a = bits
                    near_ad = cs - e + 5
        if not bmask and not amask:
            return meta.stance if meta.stance >= 0 else meta.deflt
        if meta.escalation:
            if bmask & DENIED or neg_d <= 30 or rej_d <= 20:
                return -1
            if meta.stance >= 0:
                return meta.stance
            if bmask & THREATENING:
                return 7  # threatened
            return meta.deflt
        if (bmask | amask) & DENIED:
            return 5  # denied
        if (bmask | amask) & REJECTED:
            return 4  # rejected
        if neg_d <= 30:
            return 4 if bmask & (AGREED | PROPOSED | OPEN) else 5
        if meta.stance >= 0:
            return meta.stance
        bits = near_b if near_bd <= near_ad else near_a
        if bits:
            if bits & CONDITIONAL:
                return 3
            if bits & AGREED:
                return 1 if bmask & (HEDGE | OPEN) else 2
            if bits & PROPOSED:
                return 0
            return 1  # open, hedge
        return meta.deflt

    def tag(self, title, text):
        """Tag one item (see :meth:`streams.tagging.engine.Tagger.tag`)."""
        title = title or ""
        text = text or ""
        cdef str doc = f"{title}\n{text}" if title else f"{text}"
        cdef bint ascii = PyUnicode_IS_ASCII(doc)
        cdef str low = doc  # ASCII text is lower-cased while it is normalised
        if not ascii:
            low = doc.lower()
            if len(low) != len(doc):
                low = self.lower(doc)
        cdef Buf buf
        buf.cap = 64
        buf.n = 0
        buf.hits = <Hit *>malloc(buf.cap * sizeof(Hit))
        if buf.hits == NULL:
            raise MemoryError()
        try:
            self._walk(low, doc, ascii, &buf)
            return self._signals(doc, buf.hits, buf.n)
        finally:
            free(buf.hits)

    cdef dict _result(self, list signals, list actors, list locations, double esc, double neg,
                      bint has_esc, bint has_neg):
        """``engine.Tagger._result``."""
        cdef list labels = []
        cdef double score = esc if esc > neg else neg
        if esc > 0.0 or has_esc:
            labels.append("escalation")
        if neg > 0.0 or has_neg:
            labels.append("negotiation")
        if score >= self.t_critical:
            severity = "critical"
        elif score >= self.t_high:
            severity = "high"
        elif score >= self.t_medium:
            severity = "medium"
        else:
            severity = "low"
        return {"labels": labels, "signals": signals, "actors": actors, "locations": locations,
                "escalation_score": _round(esc, 4), "negotiation_score": _round(neg, 4),
                "severity": severity, "lexicon_version": self.version}

    cdef object _signals(self, str doc, Hit *hits, int32_t nhits):
        cdef int32_t i, j, k, nterms = 0, nkept = 0, nactor = 0, nplace = 0, ncues = 0, si, sent_index
        cdef int32_t nstarts = 0, ss = 0, se = 0, s, e, lo_hit, stance, cover_s, cover_e
        cdef Key *key
        cdef Meta *meta
        cdef Hit *terms = NULL
        cdef int32_t *actors = NULL
        cdef int32_t *places = NULL
        cdef int32_t *starts = NULL
        cdef Cue *cues = NULL
        cdef uint64_t *ctx_mask = NULL
        cdef int32_t *ctx_s = NULL
        cdef int32_t *ctx_e = NULL
        cdef int32_t nctx = 0
        cdef uint64_t sent_ctx = 0  # the context groups present in the sentence
        cdef bint multi, found, has_esc = False, has_neg = False
        cdef double aw, factor, strength, esc, neg
        cdef double best[MAX_CATEGORIES]
        cdef double vals[MAX_CATEGORIES]
        cdef int32_t n
        cdef int32_t ndoc = <int32_t>len(doc)
        cdef list signals = []
        cdef list item_actors = [], locations = [], sent_actors = []
        cdef unsigned char *mark = NULL  # per actor / place id: already listed
        cdef int32_t nmark = 0, a
        try:
            terms = <Hit *>malloc((nhits + 1) * sizeof(Hit))
            actors = <int32_t *>malloc((2 * nhits + 2) * sizeof(int32_t))
            places = <int32_t *>malloc((2 * nhits + 2) * sizeof(int32_t))
            cues = <Cue *>malloc((nhits + 1) * sizeof(Cue))
            ctx_mask = <uint64_t *>malloc((nhits + 1) * sizeof(uint64_t))
            ctx_s = <int32_t *>malloc((nhits + 1) * sizeof(int32_t))
            ctx_e = <int32_t *>malloc((nhits + 1) * sizeof(int32_t))
            mark = <unsigned char *>calloc(self.nmark, 1)
            if not (terms and actors and places and cues and ctx_mask and ctx_s and ctx_e and mark):
                raise MemoryError()
            for i in range(nhits):
                key = &self.keys[hits[i].key]
                if key.meta_cnt:
                    terms[nterms] = hits[i]
                    nterms += 1
                if key.actor >= 0:
                    actors[2 * nactor] = hits[i].start
                    actors[2 * nactor + 1] = key.actor
                    nactor += 1
                if key.place >= 0:
                    places[2 * nplace] = hits[i].start
                    places[2 * nplace + 1] = key.place
                    nplace += 1
            # actors and places in order of first mention (ties by name: ids are in name order)
            if nactor > 1:
                _sort(actors, nactor, 2 * sizeof(int32_t), _cmp_pair)
            if nplace > 1:
                _sort(places, nplace, 2 * sizeof(int32_t), _cmp_pair)
            for i in range(nactor):
                a = actors[2 * i + 1]
                if not mark[a]:
                    mark[a] = 1
                    item_actors.append(self.actor_names[a])
            memset(mark, 0, self.nmark)
            for i in range(nplace):
                a = places[2 * i + 1]
                if not mark[a]:
                    mark[a] = 1
                    locations.append(self.place_names[a])
            memset(mark, 0, self.nmark)
            if not nterms:
                return self._result([], item_actors, locations, 0.0, 0.0, False, False)
            # longest match wins: drop term hits strictly inside a longer one
            if nterms > 1:
                _sort(terms, nterms, sizeof(Hit), _cmp_hit)
                cover_s = -1
                cover_e = -1
                for i in range(nterms):
                    s = terms[i].start
                    e = terms[i].end
                    if e <= cover_e and (s != cover_s or e != cover_e):
                        continue
                    terms[nkept] = terms[i]
                    nkept += 1
                    if e > cover_e:
                        cover_s = s
                        cover_e = e
            else:
                nkept = 1
            starts = self._sentence_starts(doc, &nstarts)
            for i in range(self.ncats):
                best[i] = -1.0
            sent_index = -1
            aw = 0.0
            for i in range(nkept):
                s = terms[i].start
                e = terms[i].end
                # sentence of s: the last start <= s
                lo_hit = 0
                k = nstarts
                while lo_hit < k:
                    j = (lo_hit + k) >> 1
                    if starts[j] <= s:
                        lo_hit = j + 1
                    else:
                        k = j
                si = lo_hit - 1
                if si != sent_index:
                    sent_index = si
                    ss = starts[si]
                    se = starts[si + 1] if si + 1 < nstarts else ndoc
                    # the sentence's cues (inside it) and context words (starting in it)
                    ncues = 0
                    nctx = 0
                    sent_ctx = 0
                    multi = False
                    lo_hit = 0
                    k = nhits
                    while lo_hit < k:  # first hit starting in the sentence (hits are in start order)
                        j = (lo_hit + k) >> 1
                        if hits[j].start < ss:
                            lo_hit = j + 1
                        else:
                            k = j
                    for j in range(lo_hit, nhits):
                        if hits[j].start >= se:
                            break
                        key = &self.keys[hits[j].key]
                        if key.ctx:
                            sent_ctx |= key.ctx
                            ctx_s[nctx] = hits[j].start
                            ctx_e[nctx] = hits[j].end
                            ctx_mask[nctx] = key.ctx
                            nctx += 1
                        if key.bits and hits[j].end <= se:
                            cues[ncues].start = hits[j].start
                            cues[ncues].end = hits[j].end
                            cues[ncues].bits = key.bits
                            ncues += 1
                            if key.klen > 8:
                                multi = True
                    if multi:  # a breaker word inside a longer cue ("as long as") is not a breaker
                        # cues are in start order here; a cue holding the breaker starts at most one
                        # key length before it (the rest of a prefix key's word has no spaces)
                        for j in range(ncues):
                            if cues[j].bits & BREAKER:
                                k = j - 1
                                while k >= 0 and cues[k].start >= cues[j].start - self.max_klen:
                                    if _holds(&cues[k], &cues[j]):
                                        cues[j].bits |= DROPPED
                                        break
                                    k -= 1
                                k = j + 1
                                while not cues[j].bits & DROPPED and k < ncues and cues[k].start == cues[j].start:
                                    if _holds(&cues[k], &cues[j]):
                                        cues[j].bits |= DROPPED
                                    k += 1
                        n = 0
                        for j in range(ncues):
                            if not cues[j].bits & DROPPED:
                                cues[n] = cues[j]
                                n += 1
                        ncues = n
                    if ncues > 1:
                        _sort(cues, ncues, sizeof(Cue), _cmp_cue)
                    sent_actors = []
                    aw = 0.0
                    nmark = 0
                    lo_hit = 0
                    k = nactor
                    while lo_hit < k:  # the first actor mention in the sentence (sorted by position)
                        j = (lo_hit + k) >> 1
                        if actors[2 * j] < ss:
                            lo_hit = j + 1
                        else:
                            k = j
                    for j in range(lo_hit, nactor):
                        if actors[2 * j] >= se:
                            break
                        a = actors[2 * j + 1]
                        if not mark[a]:
                            mark[a] = 1
                            sent_actors.append(self.actor_names[a])
                            if nmark == 0 or self.actor_weight[a] > aw:
                                aw = self.actor_weight[a]
                            nmark += 1
                    if nmark:
                        memset(mark, 0, self.nmark)
                key = &self.keys[terms[i].key]
                for j in range(key.meta_off, key.meta_off + key.meta_cnt):
                    meta = &self.metas[self.meta_ids[j]]
                    if meta.requires:
                        if not sent_ctx & meta.requires:
                            continue  # no word of those groups in the sentence at all
                        found = False
                        for k in range(nctx):
                            if (ctx_s[k] < s or ctx_e[k] > e) and ctx_mask[k] & meta.requires:
                                found = True
                                break
                        if not found:
                            continue
                    if ncues:
                        stance = self._stance(meta, s, e, cues, ncues)
                    else:
                        stance = meta.stance if meta.stance >= 0 else meta.deflt
                    if stance < 0:
                        continue
                    factor = 1.0 if stance == meta.deflt else self.factors[stance]
                    strength = meta.weight * factor * (0.85 + 0.15 * aw)
                    if strength > best[meta.cat]:
                        best[meta.cat] = strength
                    if meta.escalation:
                        has_esc = True
                        kind = "escalation"
                    else:
                        has_neg = True
                        kind = "negotiation"
                    signal = self.signal_template.copy()  # a copy of a dict with these keys is cheap
                    signal["kind"] = kind
                    signal["category"] = self.cat_names[meta.cat]
                    signal["stance"] = self.stance_names[stance]
                    signal["text"] = doc[s:e]
                    signal["start"] = s
                    signal["end"] = e
                    signal["actors"] = sent_actors[:]
                    signals.append(signal)
            n = 0
            for i in range(self.ncats):
                if self.cat_escalation[i] and best[i] > -1.0:
                    vals[n] = best[i]
                    n += 1
            esc = _noisy_or(vals, n)
            n = 0
            for i in range(self.ncats):
                if not self.cat_escalation[i] and best[i] > -1.0:
                    vals[n] = best[i]
                    n += 1
            neg = _noisy_or(vals, n)
            return self._result(signals, item_actors, locations, esc, neg, has_esc, has_neg)
        finally:
            free(terms)
            free(actors)
            free(places)
            free(cues)
            free(ctx_mask)
            free(ctx_s)
            free(ctx_e)
            free(starts)
            free(mark)
