"""``clv fit`` / ``clv score`` handlers, driven through the parser of streams/cli/clv.py."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from state.value import BgNbdParams, GammaGammaParams, clv, expected_purchases, p_alive
from streams.cli.clv import add_parser

CDNOW = Path(__file__).resolve().parents[2] / "data" / "cdnow_summary.csv"

PARAMS_DOC = {
    "bgnbd": {"r": 0.2426, "alpha": 4.4135, "a": 0.7929, "b": 2.4258},
    "gamma_gamma": {"p": 6.2488, "q": 3.7446, "v": 15.4477},
    "n_customers": 2357,
    "log_likelihood": -9582.4,
}


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tierstream")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def params_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "params.json", json.dumps(PARAMS_DOC))


# -------------------------------------------------------------------------------- fit


def test_fit_cdnow_prints_published_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["clv", "fit", "--summary", str(CDNOW)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_customers"] == 2357
    bg = doc["bgnbd"]
    assert (bg["r"], bg["alpha"], bg["a"], bg["b"]) == pytest.approx(
        (0.243, 4.414, 0.793, 2.426), abs=6e-4
    )
    gg = doc["gamma_gamma"]
    assert (gg["p"], gg["q"], gg["v"]) == pytest.approx((6.25, 3.74, 15.45), abs=6e-3)
    assert doc["log_likelihood"] == pytest.approx(-9582.4, abs=0.05)


def test_fit_without_monetary_column_accepts_lifetimes_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # lifetimes' own cdnow_customers_summary.csv layout: ID,frequency,recency,T
    with CDNOW.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    lines = ["ID,frequency,recency,T"] + [
        f"{r['customer_id']},{r['frequency']},{r['recency']},{r['T']}" for r in rows
    ]
    summary = _write(tmp_path / "s.csv", "\n".join(lines) + "\n")
    assert _run(["clv", "fit", "--summary", str(summary)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["gamma_gamma"] is None
    assert doc["bgnbd"]["r"] == pytest.approx(0.243, abs=6e-4)


# ------------------------------------------------------------------------------ score


def test_score_writes_one_row_per_customer(
    tmp_path: Path, params_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # First column used as id when neither customer_id nor id is present; header case
    # and column order do not matter.
    summary = _write(
        tmp_path / "s.csv",
        "account,Monetary_Value,t,frequency,recency\nA-1,22.35,38.86,2,30.43\nB-2,0,38.86,0,0\n",
    )
    assert (
        _run(
            [
                "clv", "score", "--params", str(params_file), "--summary", str(summary),
                "--horizon", "52", "--discount-rate", "0.002",
            ]
        )
        == 0
    )  # fmt: skip
    out = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert out[0] == ["customer_id", "p_alive", "expected_purchases", "clv"]
    assert [row[0] for row in out[1:]] == ["A-1", "B-2"]
    bg = BgNbdParams(**PARAMS_DOC["bgnbd"])  # type: ignore[arg-type]
    gg = GammaGammaParams(**PARAMS_DOC["gamma_gamma"])  # type: ignore[arg-type]
    a1 = [float(v) for v in out[1][1:]]
    assert a1 == [
        p_alive(2, 30.43, 38.86, bg),
        expected_purchases(52.0, 2, 30.43, 38.86, bg),
        clv(2, 30.43, 38.86, 22.35, bg, gg, 52, 0.002),
    ]
    b2 = [float(v) for v in out[2][1:]]
    assert b2[0] == 1.0
    assert b2[2] == clv(0, 0.0, 38.86, 0.0, bg, gg, 52, 0.002) > 0


def test_score_to_output_file(tmp_path: Path, params_file: Path) -> None:
    target = tmp_path / "scores.csv"
    argv = ["clv", "score", "--params", str(params_file), "--summary", str(CDNOW)]
    assert _run([*argv, "--horizon", "12", "--output", str(target)]) == 0
    rows = list(csv.DictReader(target.open(newline="")))
    assert len(rows) == 2357
    assert rows[0]["customer_id"] == "1"
    # undiscounted CLV telescopes to E[purchases] x E[spend] for the same horizon
    first = rows[0]
    assert float(first["clv"]) == pytest.approx(
        float(first["expected_purchases"]) * 24.6586, rel=1e-4
    )


# -------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (
            "customer_id,frequency,recency,T\n1,2,30.4,38.9\n2,1,abc,38.9\n",
            ["line 3", "'recency'", "not a number"],
        ),
        (
            "customer_id,frequency,recency,T\n1,2,40,38.9\n",
            ["line 2", "'recency'", "between 0 and T"],
        ),
        ("customer_id,frequency,recency,T\n1,2.5,3,38.9\n", ["line 2", "'frequency'", "whole"]),
        ("customer_id,frequency,recency,T\n1,2,3,0\n", ["line 2", "'T'", "> 0"]),
        ("customer_id,frequency,recency,T\n1,2,3,nan\n", ["line 2", "'T'", "finite"]),
        ("customer_id,frequency,T\n1,2,3\n", ["line 1", "missing required column", "recency"]),
        (
            "customer_id,frequency,recency,T\n1,2,3,9\n1,1,3,9\n",
            ["line 3", "duplicate customer id"],
        ),
        ("customer_id,frequency,recency,T\n1,2,3\n", ["line 2", "expected 4 fields"]),
        (
            "customer_id,frequency,recency,T,monetary_value\n1,2,3,9,0\n",
            ["line 2", "'monetary_value'", "> 0"],
        ),
        ("customer_id,frequency,recency,T\n", ["no customer rows"]),
        ("", ["empty file"]),
    ],
)
def test_fit_bad_csv_names_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, fragments: list[str]
) -> None:
    summary = _write(tmp_path / "bad.csv", body)
    assert _run(["clv", "fit", "--summary", str(summary)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    for fragment in fragments:
        assert fragment in captured.err
    assert str(summary) in captured.err


def test_fit_missing_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["clv", "fit", "--summary", str(tmp_path / "nope.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ("{not json", "invalid JSON"),
        ('{"gamma_gamma": null}', "'bgnbd'"),
        ('{"bgnbd": {"r": 1, "alpha": 1, "a": 1}}', "'b' must be a number"),
        ('{"bgnbd": {"r": -1, "alpha": 1, "a": 1, "b": 1}, "gamma_gamma": null}', "> 0"),
        ('{"bgnbd": {"r": 1, "alpha": 1, "a": 1, "b": 1}, "gamma_gamma": null}', "gamma_gamma"),
    ],
)
def test_score_bad_params_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], params: str, fragment: str
) -> None:
    p = _write(tmp_path / "p.json", params)
    argv = ["clv", "score", "--params", str(p), "--summary", str(CDNOW), "--horizon", "4"]
    assert _run(argv) == 2
    assert fragment in capsys.readouterr().err


def test_score_needs_monetary_column_and_positive_horizon(
    tmp_path: Path, params_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _write(tmp_path / "s.csv", "id,frequency,recency,T\n1,2,3,9\n")
    base = ["clv", "score", "--params", str(params_file), "--summary", str(summary)]
    assert _run([*base, "--horizon", "4"]) == 2
    assert "monetary_value" in capsys.readouterr().err
    assert _run([*base, "--horizon", "0"]) == 2
    assert "--horizon" in capsys.readouterr().err
