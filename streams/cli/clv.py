"""``tierstream clv fit`` / ``tierstream clv score``: offline value-model tooling.

Why a CLI: the streaming core only *scores* customers with parameters it is given
(state.value); the parameters are fitted offline, periodically, from a per-customer
summary exported from the warehouse. ``clv fit`` turns that summary into a small JSON
document and ``clv score`` applies such a document to a summary, which is how an
analyst checks a new fit before it is rolled out.

Summary CSV: one row per customer with a customer id (header ``customer_id`` or ``id``,
otherwise the first column), ``frequency`` (repeat purchases), ``recency`` (age at the
last purchase), ``T`` (age at the end of observation), optionally ``monetary_value``
(mean value of the repeat purchases). Header names are matched case-insensitively.
Times are in whatever unit the user chooses; the fitted parameters, ``--horizon`` and
``--discount-rate`` are then in that same unit (per period).

Exit codes: 0 ok, 2 bad input (message names the file, line and column), 1 the
optimiser failed on otherwise valid data.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from state.value import (
    BgNbdParams,
    GammaGammaParams,
    clv,
    expected_purchases,
    p_alive,
)

__all__ = [
    "CustomerSummary",
    "InputError",
    "add_parser",
    "cmd_clv_fit",
    "cmd_clv_score",
    "params_from_json",
    "read_summary",
]

EXIT_OK = 0
EXIT_FIT_FAILED = 1
EXIT_BAD_INPUT = 2

_ID_NAMES = ("customer_id", "id")
_REQUIRED = ("frequency", "recency", "t")
_MONETARY = "monetary_value"


class InputError(ValueError):
    """Bad user input; the message is meant to be shown as is."""


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    """One validated row of the summary file."""

    customer_id: str
    frequency: float
    recency: float
    T: float
    monetary_value: float | None
    line: int


def _parse_number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}, column {column!r}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{where}, column {column!r}: not a finite number: {text!r}")
    return value


def _locate_columns(header: list[str], source: str) -> tuple[int, dict[str, int], str]:
    """Map the header to column indexes; returns (id index, data indexes, id name)."""
    folded = [h.strip().lower() for h in header]
    index: dict[str, int] = {}
    for i, name in enumerate(folded):
        if name in index:
            raise InputError(f"{source} line 1: duplicate column {header[i].strip()!r}")
        index[name] = i
    missing = [name for name in _REQUIRED if name not in index]
    if missing:
        shown = ", ".join("T" if m == "t" else m for m in missing)
        raise InputError(f"{source} line 1: missing required column(s): {shown}")
    for name in _ID_NAMES:
        if name in index:
            return index[name], index, header[index[name]].strip()
    data_columns = {*_REQUIRED, _MONETARY}
    if folded and folded[0] not in data_columns:
        return 0, index, header[0].strip()
    raise InputError(f"{source} line 1: no customer id column (customer_id, id, or a first column)")


def _rows(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with their 1-based physical line number."""
    line = 1
    for row in reader:
        line += 1
        if not row or all(not cell.strip() for cell in row):
            continue
        yield line, row


def read_summary(stream: TextIO, source: str) -> tuple[list[CustomerSummary], bool]:
    """Parse and validate a summary CSV; returns (rows, has monetary column).

    Validation mirrors what the models need, so that a bad row is reported here with
    its line and column rather than surfacing as an opaque optimiser failure.
    """
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{source}: empty file, expected a header line") from None
    except csv.Error as exc:
        raise InputError(f"{source} line 1: {exc}") from None
    id_col, index, id_name = _locate_columns(header, source)
    has_money = _MONETARY in index
    seen: dict[str, int] = {}
    out: list[CustomerSummary] = []
    try:
        for line, row in _rows(reader):
            where = f"{source} line {line}"
            if len(row) != len(header):
                raise InputError(f"{where}: expected {len(header)} fields, found {len(row)}")
            customer_id = row[id_col].strip()
            if not customer_id:
                raise InputError(f"{where}, column {id_name!r}: empty customer id")
            if customer_id in seen:
                raise InputError(
                    f"{where}, column {id_name!r}: duplicate customer id {customer_id!r} "
                    f"(first on line {seen[customer_id]})"
                )
            seen[customer_id] = line
            x = _parse_number(row[index["frequency"]], where, "frequency")
            t_x = _parse_number(row[index["recency"]], where, "recency")
            age = _parse_number(row[index["t"]], where, "T")
            if x < 0 or x != math.floor(x):
                raise InputError(f"{where}, column 'frequency': must be a whole number >= 0")
            if age <= 0:
                raise InputError(f"{where}, column 'T': must be > 0")
            if t_x < 0 or t_x > age:
                raise InputError(f"{where}, column 'recency': must be between 0 and T ({age})")
            money: float | None = None
            if has_money:
                text = row[index[_MONETARY]].strip()
                if x == 0 and text == "":
                    money = 0.0  # no repeat purchase: the value is unused anyway
                else:
                    money = _parse_number(text, where, _MONETARY)
                    if money < 0 or (x > 0 and money <= 0):
                        raise InputError(
                            f"{where}, column {_MONETARY!r}: must be > 0 for a customer with "
                            "repeat purchases"
                        )
            out.append(CustomerSummary(customer_id, x, t_x, age, money, line))
    except csv.Error as exc:
        raise InputError(f"{source}: {exc}") from None
    if not out:
        raise InputError(f"{source}: no customer rows after the header")
    return out, has_money


def _load_summary(path: Path) -> tuple[list[CustomerSummary], bool]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return read_summary(fh, str(path))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None


def _fit_document(rows: list[CustomerSummary], has_money: bool) -> dict[str, Any]:
    # scipy.optimize (through state.clv_fit) is imported here, not with this module:
    # streams.cli registers this command's parser for every command, the worker's too.
    from state.clv_fit import bgnbd_log_likelihood, fit_bgnbd, fit_gamma_gamma

    frequency = [r.frequency for r in rows]
    recency = [r.recency for r in rows]
    age = [r.T for r in rows]
    bg = fit_bgnbd(frequency, recency, age)
    gamma_gamma: dict[str, float] | None = None
    if has_money:
        gg = fit_gamma_gamma(frequency, [r.monetary_value or 0.0 for r in rows])
        gamma_gamma = {"p": gg.p, "q": gg.q, "v": gg.v}
    return {
        "bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b},
        "gamma_gamma": gamma_gamma,
        "n_customers": len(rows),
        # BG/NBD total log-likelihood at the optimum (the number FHL 2005 report).
        "log_likelihood": bgnbd_log_likelihood(bg, frequency, recency, age),
    }


def cmd_clv_fit(args: argparse.Namespace) -> int:
    """Fit both models to ``--summary`` and print the parameters as JSON on stdout."""
    from state.clv_fit import FitError

    try:
        rows, has_money = _load_summary(args.summary)
        document = _fit_document(rows, has_money)
    except InputError as exc:
        print(f"tierstream clv fit: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FitError as exc:
        print(f"tierstream clv fit: {exc}", file=sys.stderr)
        return EXIT_FIT_FAILED
    print(json.dumps(document, indent=2))
    return EXIT_OK


def _number_field(obj: dict[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}: {key!r} must be a number, got {value!r}")
    return float(value)


def params_from_json(text: str, source: str) -> tuple[BgNbdParams, GammaGammaParams | None]:
    """Read the document ``clv fit`` prints (extra keys are ignored)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("bgnbd"), dict):
        raise InputError(f"{source}: expected an object with a 'bgnbd' object (clv fit output)")
    bg_doc = doc["bgnbd"]
    try:
        bg = BgNbdParams(
            *(_number_field(bg_doc, k, f"{source} bgnbd") for k in ["r", "alpha", "a", "b"])
        )
        gg_doc = doc.get("gamma_gamma")
        if gg_doc is None:
            return bg, None
        if not isinstance(gg_doc, dict):
            raise InputError(f"{source}: 'gamma_gamma' must be an object or null")
        gg = GammaGammaParams(*(_number_field(gg_doc, k, f"{source} gamma_gamma") for k in "pqv"))
    except InputError:
        raise
    except ValueError as exc:  # parameter range checks in the dataclasses
        raise InputError(f"{source}: {exc}") from None
    return bg, gg


def _score_rows(
    rows: list[CustomerSummary],
    bg: BgNbdParams,
    gg: GammaGammaParams,
    horizon: int,
    discount_rate: float,
    source: str,
) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["customer_id", "p_alive", "expected_purchases", "clv"])
    for r in rows:
        try:
            alive = p_alive(r.frequency, r.recency, r.T, bg)
            purchases = expected_purchases(float(horizon), r.frequency, r.recency, r.T, bg)
            value = clv(
                r.frequency,
                r.recency,
                r.T,
                r.monetary_value or 0.0,
                bg,
                gg,
                horizon,
                discount_rate,
            )
        except (ValueError, ArithmeticError) as exc:
            raise InputError(f"{source} line {r.line}: cannot score customer: {exc}") from None
        writer.writerow([r.customer_id, repr(alive), repr(purchases), repr(value)])
    return buf.getvalue()


def cmd_clv_score(args: argparse.Namespace) -> int:
    """Score every customer of ``--summary`` with the parameters in ``--params``."""
    try:
        if args.horizon < 1:
            raise InputError(f"--horizon must be >= 1 period, got {args.horizon}")
        if not (math.isfinite(args.discount_rate) and args.discount_rate > -1.0):
            raise InputError(f"--discount-rate must be > -1, got {args.discount_rate}")
        try:
            params_text = args.params.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read {args.params}: {exc.strerror or exc}") from None
        bg, gg = params_from_json(params_text, str(args.params))
        if gg is None:
            raise InputError(f"{args.params}: 'gamma_gamma' is null; CLV needs spend parameters")
        rows, has_money = _load_summary(args.summary)
        if not has_money:
            raise InputError(
                f"{args.summary} line 1: missing column 'monetary_value' (CLV needs it)"
            )
        text = _score_rows(rows, bg, gg, args.horizon, args.discount_rate, str(args.summary))
        if args.output is None:
            sys.stdout.write(text)
        else:
            try:
                args.output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise InputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    except InputError as exc:
        print(f"tierstream clv score: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``clv fit`` and ``clv score`` on the main CLI's subparsers."""
    clv_parser = subparsers.add_parser(
        "clv", help="fit / apply the BG/NBD + Gamma-Gamma customer value models"
    )
    clv_sub = clv_parser.add_subparsers(dest="clv_command", required=True)

    fit = clv_sub.add_parser("fit", help="fit the models to a customer summary CSV")
    fit.add_argument(
        "--summary",
        type=Path,
        required=True,
        help="CSV: customer_id|id, frequency, recency, T[, monetary_value]",
    )
    fit.set_defaults(func=cmd_clv_fit)

    score = clv_sub.add_parser("score", help="score customers with fitted parameters")
    score.add_argument("--params", type=Path, required=True, help="JSON printed by `clv fit`")
    score.add_argument("--summary", type=Path, required=True, help="CSV as for `clv fit`")
    score.add_argument(
        "--horizon",
        type=int,
        required=True,
        help="periods ahead, in the time unit the parameters were fitted in",
    )
    score.add_argument(
        "--discount-rate",
        type=float,
        default=0.0,
        help="discount rate per period (default 0: undiscounted)",
    )
    score.add_argument("--output", type=Path, help="write the CSV here instead of stdout")
    score.set_defaults(func=cmd_clv_score)
