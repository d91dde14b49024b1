"""The threshold index: which entries an update of one key crossed, without looking at the others. Pure: no I/O.

One `ThresholdIndex` per key (`price`, `pct(price,1h)`, `rsi(14)@1h` …). Each entry is (symbol, direction,
threshold, code); the caller's `code` says which rule and why (fire or re-arm). For an update p → c of a symbol:

    UP_STRICT    p <= t < c        UP_INCL    p < t <= c
    DOWN_STRICT  c < t <= p        DOWN_INCL  c <= t < p

Per direction the entries live in one array sorted by (symbol, threshold), with each symbol's segment bounds, so a
whole-market update (every symbol at once) is one numba pass of two binary searches per symbol: O(log n + k) per
symbol, where k is what was crossed. Entries for every symbol ("*") sit in a segment of their own that every row
searches. New entries wait in a small unsorted buffer that is scanned with numpy and merged into the sorted arrays
when it grows (so creating a rule never re-sorts a million entries); removed rules are dropped by the caller's
`alive` mask and compacted at the next merge.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from marketpulse.rules.conditions import DOWN_STRICT, UP_INCL, UP_STRICT

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
WILDCARD = -1  # the symbol of an entry that applies to every symbol
MERGE_AT = 4096  # buffered entries before a merge (plus 1/64 of the sorted ones: merges stay amortized O(1))


@numba.njit(cache=True, nogil=True)
def _scan(thr: F64, code: I64, starts: I64, ends: I64, rows_sym: I32, prev: F64, cur: F64, direction: int,
          wildcard: bool) -> tuple[I64, I64]:  # pragma: no cover (compiled; tested through ThresholdIndex)
    """(codes, rows) of the entries crossed by each row's update; `wildcard`: every row searches all entries."""
    n = len(rows_sym)
    lo_of = np.empty(n, np.int64)
    hi_of = np.empty(n, np.int64)
    total = 0
    for i in range(n):
        p, c = prev[i], cur[i]
        lo_of[i] = 0
        hi_of[i] = 0
        if not (p == p and c == c) or p == c:  # NaN: no value before or now
            continue
        if direction <= 1 and c < p or direction >= 2 and c > p:
            continue
        s = rows_sym[i]
        if wildcard:
            a, b = 0, len(thr)
        elif s < len(starts):
            a, b = starts[s], ends[s]
        else:
            continue
        if a == b:
            continue
        seg = thr[a:b]
        if direction == 0:  # UP_STRICT p <= t < c
            lo, hi = np.searchsorted(seg, p, "left"), np.searchsorted(seg, c, "left")
        elif direction == 1:  # UP_INCL p < t <= c
            lo, hi = np.searchsorted(seg, p, "right"), np.searchsorted(seg, c, "right")
        elif direction == 2:  # DOWN_STRICT c < t <= p
            lo, hi = np.searchsorted(seg, c, "right"), np.searchsorted(seg, p, "right")
        else:  # DOWN_INCL c <= t < p
            lo, hi = np.searchsorted(seg, c, "left"), np.searchsorted(seg, p, "left")
        lo_of[i] = a + lo
        hi_of[i] = a + hi
        total += hi - lo
    codes = np.empty(total, np.int64)
    rows = np.empty(total, np.int64)
    k = 0
    for i in range(n):
        for j in range(lo_of[i], hi_of[i]):
            codes[k] = code[j]
            rows[k] = i
            k += 1
    return codes, rows


def crossed_mask(direction: int, t: F64, p: F64, c: F64) -> npt.NDArray[np.bool_]:
    """The same test as `_scan`, elementwise (the buffer's scan; NaN compares false, so no value: no cross)."""
    if direction == UP_STRICT:
        return (p <= t) & (t < c)
    if direction == UP_INCL:
        return (p < t) & (t <= c)
    if direction == DOWN_STRICT:
        return (c < t) & (t <= p)
    return (c <= t) & (t < p)


class _Sorted:
    """One direction's entries sorted by (symbol, threshold), with segment bounds per symbol."""

    def __init__(self, sym: I32, thr: F64, code: I64) -> None:
        order = np.lexsort((thr, sym))
        self.sym, self.thr, self.code = sym[order], thr[order], code[order]
        own = self.sym >= 0
        self.wild_thr, self.wild_code = self.thr[~own], self.code[~own]  # WILDCARD sorts first: a prefix
        n_sym = int(self.sym.max()) + 1 if own.any() else 0
        self.starts = np.searchsorted(self.sym, np.arange(n_sym), "left").astype(np.int64)
        self.ends = np.searchsorted(self.sym, np.arange(n_sym), "right").astype(np.int64)

    def __len__(self) -> int:
        return len(self.code)


def _empty() -> _Sorted:
    return _Sorted(np.empty(0, np.int32), np.empty(0, np.float64), np.empty(0, np.int64))


class ThresholdIndex:
    def __init__(self) -> None:
        self._sorted = [_empty() for _ in range(4)]
        self._buf: list[list[tuple[int, float, int]]] = [[] for _ in range(4)]  # (sym, threshold, code)
        self._buf_arrays: list[tuple[I64, F64, I64] | None] = [None] * 4  # the buffer as arrays, until it changes

    def __len__(self) -> int:
        return sum(len(s) + len(b) for s, b in zip(self._sorted, self._buf, strict=True))

    def add(self, sym: int, direction: int, threshold: float, code: int) -> None:
        buf = self._buf[direction]
        buf.append((sym, threshold, code))
        self._buf_arrays[direction] = None
        if len(buf) > MERGE_AT + len(self._sorted[direction]) // 64:
            self.merge(direction)

    def add_many(self, sym: I32, direction: int, thr: F64, code: I64) -> None:
        """Bulk load (a rebuild from the database, a benchmark): straight into the sorted arrays."""
        s = self._sorted[direction]
        self._sorted[direction] = _Sorted(np.concatenate([s.sym, sym.astype(np.int32)]),
                                          np.concatenate([s.thr, thr.astype(np.float64)]),
                                          np.concatenate([s.code, code.astype(np.int64)]))

    def merge(self, direction: int, alive: npt.NDArray[np.bool_] | None = None) -> None:
        """Sort the buffer into the arrays; with `alive` (indexed by `code // 2`), drop dead entries too."""
        s, buf = self._sorted[direction], self._buf[direction]
        sym, thr, code = s.sym, s.thr, s.code
        if buf:
            bs, bt, bc = zip(*buf, strict=True)
            sym = np.concatenate([sym, np.asarray(bs, np.int32)])
            thr = np.concatenate([thr, np.asarray(bt, np.float64)])
            code = np.concatenate([code, np.asarray(bc, np.int64)])
        if alive is not None:
            keep = alive[code // 2]
            sym, thr, code = sym[keep], thr[keep], code[keep]
        self._sorted[direction] = _Sorted(sym, thr, code)
        self._buf[direction] = []
        self._buf_arrays[direction] = None

    def compact(self, alive: npt.NDArray[np.bool_]) -> None:
        for d in range(4):
            self.merge(d, alive)

    def crossed(self, rows_sym: I32, prev: F64, cur: F64) -> tuple[I64, I64]:
        """(codes, rows): every entry whose threshold row i's update prev[i] → cur[i] crossed in its direction."""
        out_codes: list[I64] = []
        out_rows: list[I64] = []
        for d in range(4):
            s = self._sorted[d]
            if len(s.code):
                codes, rows = _scan(s.thr, s.code, s.starts, s.ends, rows_sym, prev, cur, d, False)
                out_codes.append(codes)
                out_rows.append(rows)
            if len(s.wild_code):
                codes, rows = _scan(s.wild_thr, s.wild_code, s.starts, s.ends, rows_sym, prev, cur, d, True)
                out_codes.append(codes)
                out_rows.append(rows)
            if self._buf[d]:
                codes, rows = self._scan_buffer(d, rows_sym, prev, cur)
                out_codes.append(codes)
                out_rows.append(rows)
        if not out_codes:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(out_codes), np.concatenate(out_rows)

    def _scan_buffer(self, d: int, rows_sym: I32, prev: F64, cur: F64) -> tuple[I64, I64]:
        cached = self._buf_arrays[d]
        if cached is None:
            b_sym, b_thr, b_code = zip(*self._buf[d], strict=True)
            cached = self._buf_arrays[d] = (np.asarray(b_sym, np.int64), np.asarray(b_thr, np.float64),
                                            np.asarray(b_code, np.int64))
        bs, bt, bc = cached
        # Row of each buffered entry's symbol in this update (-1: not in it); wildcard entries meet every row.
        width = int(max(rows_sym.max(initial=-1), bs.max(initial=-1))) + 1
        row_of = np.full(width, -1, np.int64)
        row_of[rows_sym] = np.arange(len(rows_sym))
        own = bs >= 0
        e_own = np.flatnonzero(own)
        r_own = row_of[bs[own]]
        e_own, r_own = e_own[r_own >= 0], r_own[r_own >= 0]
        e_wild = np.flatnonzero(~own)
        e_all = np.concatenate([e_own, np.repeat(e_wild, len(rows_sym))])
        r_all = np.concatenate([r_own, np.tile(np.arange(len(rows_sym)), len(e_wild))])
        hit = crossed_mask(d, bt[e_all], prev[r_all], cur[r_all])
        return bc[e_all[hit]], r_all[hit]
