"""Models in arrays: columns and constraint rows gathered block by block into one :class:`~geoplan.optimize.solve.MipModel`.

A :class:`Block` is one planned kind's part of a model (its site columns,
demand rows and pairs, and what the reductions did), kept to read the
solution back (:func:`geoplan.optimize.orchestration.decode`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import sparse

from geoplan.optimize.solve import MipModel, SolverStats


@dataclasses.dataclass(frozen=True)
class Block:
    """One kind's part of a model: which columns are its sites, rows, pairs; and what was reduced."""

    kind: str
    family: str  # "cover" (z per demand row), "assign" (a per demand-site pair) or "median" (radius levels)
    x_cols: np.ndarray
    x_sites: np.ndarray
    x_new: np.ndarray
    fixed: np.ndarray
    closable: np.ndarray
    row_of: np.ndarray  # demand position -> model row (-1: not in the model)
    pair_row: np.ndarray | None = None
    pair_site: np.ndarray | None = None
    pair_cols: np.ndarray | None = None
    objective_x: np.ndarray | None = None  # stage-1 cost coefficients of x (target, consolidate)
    second_c: tuple[np.ndarray, np.ndarray] | None = None  # (columns, coefficients) of the refine objective
    limit_s: float | None = None  # p-median: the longest walk a person is assigned
    covered_weight: float = 0.0  # weighted people already covered by the sites that stay open (a constant)
    sizes: dict = dataclasses.field(default_factory=dict)
    cover: sparse.csr_matrix | None = None  # cover blocks: the model's demand rows x its x columns, 0/1
    need: np.ndarray | None = None  # target: the target group's people per model row
    target_rhs: float | None = None  # target: the people the model's rows must reach


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a solve decided: per kind, new sites opened, existing kept and closed; assignments; solver stats."""

    model: str
    opened: dict[str, np.ndarray]
    kept: dict[str, np.ndarray]
    closed: dict[str, np.ndarray]
    assignment: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    stats: tuple[SolverStats, ...]
    reductions: dict[str, dict]
    build_s: float

    @property
    def main(self) -> SolverStats:
        return self.stats[0]


class ModelBuilder:
    """Columns and COO row parts of a model, gathered block by block."""

    def __init__(self):
        self.c, self.lo, self.hi, self.integer, self.blocks = [], [], [], [], []
        self.n = 0
        self.parts, self.row_lo, self.row_hi = [], [], []
        self.m = 0
        self.constant = 0.0

    def cols(self, n: int, prefix: str, *, c=0.0, lo=0.0, hi=1.0, integer=False) -> np.ndarray:
        self.c.append(np.broadcast_to(np.asarray(c, dtype=float), (n,)))
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)))
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)))
        self.integer.append(np.full(n, integer))
        self.blocks.append((prefix, self.n, self.n + n))
        self.n += n
        return np.arange(self.n - n, self.n)

    def rows(self, r: np.ndarray, c: np.ndarray, v, n: int, *, lo=-np.inf, hi=np.inf) -> None:
        r = np.asarray(r, dtype=np.int64)
        self.parts.append((r + self.m, np.asarray(c, dtype=np.int64), np.broadcast_to(np.asarray(v, dtype=float), r.shape)))
        self.row_lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)))
        self.row_hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)))
        self.m += n

    def model(self, name: str, sense: str, start=None) -> MipModel:
        r = np.concatenate([p[0] for p in self.parts]) if self.parts else np.zeros(0, np.int64)
        c = np.concatenate([p[1] for p in self.parts]) if self.parts else np.zeros(0, np.int64)
        v = np.concatenate([p[2] for p in self.parts]) if self.parts else np.zeros(0)
        A = sparse.csr_matrix((v, (r, c)), shape=(self.m, self.n))
        A.sum_duplicates()
        cat = lambda parts, dtype=float: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        return MipModel(
            name=name, sense=sense, c=cat(self.c), A=A, row_lo=cat(self.row_lo), row_hi=cat(self.row_hi),
            col_lo=cat(self.lo), col_hi=cat(self.hi), integer=cat(self.integer, bool), constant=self.constant,
            blocks=tuple(self.blocks), start=start,
        )
