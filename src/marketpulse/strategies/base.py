"""The strategy plug-in seam: declared parameters, vectorized signals, and a registry of built-ins.

Contract (what the backtest engine and paper trading rely on):

* ``Strategy.signals(candles, params)`` returns four boolean arrays of ``len(candles)``. Element ``i`` is decided
  from bars ``0..i`` only (evaluated at bar ``i``'s CLOSE); the engine fills it at bar ``i + 1``'s open. A strategy
  must never look ahead: changing bar ``j`` may only change signals at ``i >= j`` (tested for every built-in).
* Path-dependent strategies (ones that need the engine's position or fills) implement ``on_bar`` instead, which
  makes ``path_dependent`` True (set it explicitly on a class that implements both); the engine then calls
  ``on_bar`` once per closed bar, in order, with a ``BarState`` carrying the position and a scratch ``memo``.
* Parameters are declared as ``Param``s: ``low``/``high`` bound what ``--param`` accepts, ``values()`` is the
  default sweep grid, ``sample(rng)`` a random-search draw; ``check_params`` adds cross-parameter rules.
* ``params`` passed to ``signals``/``on_bar`` are always the output of ``resolve_params`` (complete and validated).
"""

from __future__ import annotations

import math
from abc import ABC
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from marketpulse.marketdata.frame import CandleFrame

BoolArray = npt.NDArray[np.bool_]
Action = Literal["long_entry", "long_exit", "short_entry", "short_exit"]

_TRUE_WORDS = {"1", "true", "yes", "on", "y", "t"}
_FALSE_WORDS = {"0", "false", "no", "off", "n", "f"}


@dataclass(frozen=True)
class Param:
    """One tunable parameter: its default, the range a sweep explores, and how to read it from the CLI.

    ``kind`` is inferred from ``default`` when omitted (so write ``default=2.0`` or ``kind=float`` for floats).
    ``low``/``high`` are inclusive bounds; ``step`` is the grid spacing used by ``values()`` (default 1 for ints).
    ``choices`` restricts the value to a fixed set (and is the grid). ``grid`` lists sweep values explicitly, so
    the valid range (what ``--param`` accepts) can be wider than the range a default sweep explores.
    """

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    kind: type = type(None)  # sentinel: inferred from default in __post_init__
    help: str = ""
    grid: tuple[Any, ...] | None = None  # explicit sweep values when the valid range is wider than worth sweeping

    def __post_init__(self) -> None:
        if self.kind is type(None):
            object.__setattr__(self, "kind", type(self.default))
        if self.kind not in (int, float, bool, str):
            raise TypeError(f"parameter {self.name!r}: kind must be int, float, bool or str, not {self.kind!r}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.grid is not None:
            object.__setattr__(self, "grid", tuple(self.validate(v) for v in self.grid))
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"parameter {self.name!r}: low {self.low} > high {self.high}")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"parameter {self.name!r}: step must be > 0")
        self.validate(self.default)  # a default outside its own range is a declaration bug

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to ``kind``; ValueError naming the parameter if it is invalid."""
        value = self._coerce(value)
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"parameter {self.name!r}: {value!r} is not one of {list(self.choices)}")
        if self.kind in (int, float):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"parameter {self.name!r}: {value!r} is not a finite number")
            if self.low is not None and value < self.low:
                raise ValueError(f"parameter {self.name!r}: {value!r} is below the minimum {self.low}")
            if self.high is not None and value > self.high:
                raise ValueError(f"parameter {self.name!r}: {value!r} is above the maximum {self.high}")
        return value

    def _coerce(self, value: Any) -> Any:
        ok: bool
        if self.kind is bool:
            ok = isinstance(value, bool | np.bool_)
        elif self.kind is int:
            # bool is an int subclass, but `fast=True` is a mistake, not 1; integral floats (2.0) are fine.
            ok = isinstance(value, int | np.integer) and not isinstance(value, bool) or (
                isinstance(value, float | np.floating) and float(value).is_integer()
            )
        elif self.kind is float:
            ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ValueError(f"parameter {self.name!r}: expected {self.kind.__name__}, got {value!r}")
        return self.kind(value)

    def parse(self, text: str) -> Any:
        """Read a value from CLI text (``--param key=value``) and validate it."""
        raw = text.strip()
        value: Any
        if self.kind is bool:
            if raw.lower() in _TRUE_WORDS:
                value = True
            elif raw.lower() in _FALSE_WORDS:
                value = False
            else:
                raise ValueError(f"parameter {self.name!r}: cannot read {text!r} as a boolean (use true/false)")
        elif self.kind in (int, float):
            try:
                value = int(raw) if self.kind is int else float(raw)
            except ValueError:
                raise ValueError(f"parameter {self.name!r}: cannot read {text!r} as {self.kind.__name__}") from None
        else:
            value = raw
        return self.validate(value)

    def values(self) -> tuple[Any, ...]:
        """The grid a sweep enumerates: ``grid``, choices, both booleans, or low..high by step; else the default."""
        if self.grid is not None:
            return self.grid
        if self.choices is not None:
            return self.choices
        if self.kind is bool:
            return (False, True)
        if self.low is None or self.high is None or self.kind is str:
            return (self.default,)
        if self.kind is int:
            return tuple(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            return (self.default,)
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        # Rounding keeps 0.1-step grids printable (0.30000000000000004 -> 0.3) and reproducible.
        return tuple(round(self.low + k * self.step, 12) for k in range(count))

    def sample(self, rng: np.random.Generator) -> Any:
        """One random value for random search: uniform over choices or over [low, high] (on the step grid if set)."""
        if self.grid is not None or self.choices is not None or self.kind is bool or self.kind is int:
            grid = self.values()
            return grid[int(rng.integers(len(grid)))]
        if self.kind is float and self.low is not None and self.high is not None:
            if self.step is not None:
                grid = self.values()
                return grid[int(rng.integers(len(grid)))]
            return float(rng.uniform(self.low, self.high))
        return self.default


@dataclass
class Signals:
    """Boolean signal arrays, one element per candle, each decided at that bar's close (filled at the next open)."""

    long_entries: BoolArray
    long_exits: BoolArray
    short_entries: BoolArray
    short_exits: BoolArray

    def __post_init__(self) -> None:
        n = len(self.long_entries)
        for name in ("long_entries", "long_exits", "short_entries", "short_exits"):
            arr = np.asarray(getattr(self, name), dtype=np.bool_)
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(f"Signals.{name} has shape {arr.shape}, expected ({n},)")
            setattr(self, name, arr)

    def __len__(self) -> int:
        return len(self.long_entries)

    @classmethod
    def none(cls, n: int) -> Signals:
        """No signals at all (a strategy's answer on too-short data)."""
        return cls(*(np.zeros(n, dtype=np.bool_) for _ in range(4)))

    def long_only(self) -> Signals:
        """The same signals with shorts removed (``--long-only``)."""
        empty = np.zeros(len(self), dtype=np.bool_)
        return Signals(self.long_entries, self.long_exits, empty, empty.copy())


@dataclass
class BarState:
    """What the engine tells a path-dependent strategy at each closed bar.

    ``position`` is signed (``> 0`` long, ``< 0`` short, ``0`` flat); ``memo`` is the strategy's own scratch space,
    kept by the engine between bars of one run.
    """

    params: Mapping[str, Any]
    position: float = 0.0
    entry_price: float = math.nan
    equity: float = math.nan
    memo: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """A trading strategy: declared parameters plus either vectorized ``signals`` or a per-bar ``on_bar`` hook."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    description: ClassVar[str] = ""
    path_dependent: ClassVar[bool] = False  # True: the engine calls on_bar per bar instead of signals()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.signals is Strategy.signals and cls.on_bar is Strategy.on_bar:
            raise TypeError(f"{cls.__name__} must implement signals() or on_bar()")
        if cls.on_bar is not Strategy.on_bar and cls.signals is Strategy.signals:
            cls.path_dependent = True

    def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
        """Vectorized signals for every bar; element ``i`` may use bars ``0..i`` only."""
        raise NotImplementedError(f"{type(self).__name__} is path-dependent: the engine must call on_bar()")

    def on_bar(self, i: int, candles: CandleFrame, state: BarState) -> Sequence[Action]:
        """Per-bar hook for path-dependent strategies, called at bar ``i``'s close, in order, for every bar.

        May read ``candles`` up to index ``i`` only. Returns the actions to take at the next bar's open (an
        exit and an opposite entry together flip the position); an empty sequence means do nothing.
        """
        raise NotImplementedError(f"{type(self).__name__} is vectorized: use signals()")

    # --- parameters -------------------------------------------------------------------------------------------
    @classmethod
    def param(cls, name: str) -> Param:
        for p in cls.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in cls.params) or "(none)"
        raise ValueError(f"strategy {cls.name!r} has no parameter {name!r}; known: {known}")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {p.name: p.default for p in cls.params}

    @classmethod
    def resolve_params(cls, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides`` (values or CLI strings), every value validated.

        ValueError names the unknown or invalid parameter.
        """
        resolved = cls.defaults()
        resolved.update(cls._validated(overrides))
        cls.check_params(resolved)
        return resolved

    @classmethod
    def _validated(cls, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """Each value checked against its own Param (CLI strings parsed); no cross-parameter rules."""
        out = {}
        for key, value in (values or {}).items():
            p = cls.param(key)
            out[key] = p.parse(value) if isinstance(value, str) and p.kind is not str else p.validate(value)
        return out

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """Cross-parameter rules (e.g. fast < slow); raise ValueError naming the parameters. Default: none."""
        return None

    @classmethod
    def grid(cls, fixed: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every combination of the declared grids (``fixed`` pins some), skipping ones check_params rejects."""
        # Pinned values are checked one by one: `fixed={"fast": 30}` is valid with slow values > 30 from the grid,
        # even though it conflicts with slow's default.
        pinned = {k: [v] for k, v in cls._validated(fixed).items()}
        names = [p.name for p in cls.params]
        axes = [pinned.get(p.name, p.values()) for p in cls.params]
        for combo in product(*axes):
            params = dict(zip(names, combo, strict=True))
            try:
                cls.check_params(params)
            except ValueError:
                continue
            yield params

    @classmethod
    def sample_params(cls, rng: np.random.Generator, max_tries: int = 1000) -> dict[str, Any]:
        """One random valid combination (random search), retrying ones check_params rejects."""
        for _ in range(max_tries):
            params = {p.name: p.sample(rng) for p in cls.params}
            try:
                cls.check_params(params)
            except ValueError:
                continue
            return params
        raise ValueError(f"strategy {cls.name!r}: no valid parameter combination found in {max_tries} samples")


REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy to REGISTRY under its ``name``."""
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise TypeError(f"{cls.__name__} needs a class attribute `name` (the registry key) to be registered")
    if REGISTRY.get(cls.name, cls) is not cls:
        raise ValueError(f"strategy name {cls.name!r} is already registered by {REGISTRY[cls.name].__name__}")
    REGISTRY[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name``; ValueError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(REGISTRY)) or '(none)'}") from None
