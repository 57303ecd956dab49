"""`python -m rlcomp.verdicts_check`: the re-measured verdict table against the committed one."""

import pandas as pd
import pytest

from rlcomp import verdicts_check
from rlcomp.analysis.verdict_table import VERDICT_COLUMNS


def table(verdicts: list[str], readings: list[str] | None = None) -> pd.DataFrame:
    readings = readings or verdicts
    rows = [{"claim": "quant-storage", "env": env, "measure": "file bytes", "estimate": -74.0,
             "ci_low": -74.0, "ci_high": -74.0, "n_seeds": 5, "margin": 50.0, "verdict": v,
             "reading": r}
            for env, v, r in zip(("LunarLander-v3", "HalfCheetah-v5"), verdicts, readings,
                                 strict=True)]
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


@pytest.fixture
def committed(tmp_path):
    path = tmp_path / "verdicts.csv"
    table(["confirmed", "refuted"]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("measured", "code", "changed"), [
    (["confirmed", "refuted"], 0, 0), (["confirmed", "not resolved"], 1, 1)])
def test_exit_code_and_lines_say_what_changed(committed, monkeypatch, capsys, measured, code,
                                              changed):
    seen = {}

    def fake(profile, store, workers):
        seen.update(profile=profile, store=store)
        return table(measured)

    monkeypatch.setattr(verdicts_check, "measure_verdicts", fake)
    assert verdicts_check.main(["--against", str(committed), "--profile", "smoke"]) == code
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"{changed} of 2 verdicts changed")
    assert sum(line.startswith("CHANGED") for line in out) == changed
    assert seen["profile"] == "smoke" and seen["store"].endswith("results.sqlite")


def test_a_not_judged_rows_reading_is_shown_but_is_no_change(monkeypatch, tmp_path, capsys):
    path = tmp_path / "verdicts.csv"
    table(["not judged", "refuted"], ["refuted", "refuted"]).to_csv(path, index=False)
    monkeypatch.setattr(verdicts_check, "measure_verdicts", lambda profile, store, workers:
                        table(["not judged", "refuted"], ["not resolved", "refuted"]))
    assert verdicts_check.main(["--against", str(path)]) == 0
    lunar, cheetah = sorted(capsys.readouterr().out.splitlines()[:2], key=lambda s: "Half" in s)
    assert "reading refuted -> not resolved" in lunar and lunar.startswith("same")
    assert "reading" not in cheetah


def test_a_row_missing_on_one_side_counts_as_changed():
    diff = verdicts_check.verdict_diff(table(["confirmed", "refuted"]),
                                       table(["confirmed", "refuted"]).iloc[:1])
    assert diff["changed"].tolist().count(True) == 1


@pytest.mark.parametrize("extra", [["--workers", "0"], ["--store", "EXISTING"],
                                   ["--against", "MISSING"]])
def test_mistakes_exit_2_in_one_line(committed, tmp_path, capsys, extra):
    existing = tmp_path / "r.sqlite"
    existing.write_bytes(b"")
    extra = [str(existing) if a == "EXISTING" else str(tmp_path / "no.csv") if a == "MISSING"
             else a for a in extra]
    assert verdicts_check.main(["--against", str(committed), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_repeated_keys_are_refused():
    twice = pd.concat([table(["confirmed", "refuted"])] * 2)
    with pytest.raises(ValueError, match="repeated"):
        verdicts_check.verdict_diff(twice, table(["confirmed", "refuted"]))
