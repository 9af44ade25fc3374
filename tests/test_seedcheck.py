"""The seed-flip check of the audit (pytest_ntk.seedcheck): a claim whose verdict depends on the seed is caught."""

from __future__ import annotations

import textwrap

from pytest_ntk import seedcheck


def _report(verdicts):
    return {"schema": 1, "claims": [{"id": cid, "verdict": v} for cid, v in verdicts.items()]}


def test_flip_only_between_holds_and_fails():
    runs = {
        0: _report({"a": "HOLDS", "b": "HOLDS", "c": "FAILS", "d": "HOLDS"}),
        1: _report({"a": "FAILS", "b": "INCONCLUSIVE", "c": "INCONCLUSIVE", "d": "HOLDS"}),
        2: _report({"a": "HOLDS", "b": "HOLDS", "c": "FAILS", "d": "ERROR"}),
    }
    table = seedcheck.summarize(runs)
    assert table["a"] == {0: "HOLDS", 1: "FAILS", 2: "HOLDS"}
    assert seedcheck.flips(table) == ["a"]


def test_command_runs_pytest_per_seed_and_flags_a_seed_dependent_claim(tmp_path, capsys, monkeypatch):
    (tmp_path / "test_claims.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.claim("demo.stable", source="none", statement="1 is 1")
        def test_stable(claim):
            claim.close(1.0, 1.0)

        @pytest.mark.claim("demo.coin", source="none", statement="the seed is even")
        def test_coin(claim, ntk_seed):
            claim.close(float(ntk_seed % 2), 0.0, atol=0.5)
    """))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "seedcheck.json"
    code = seedcheck.main([str(tmp_path), "--seeds", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 1
    assert "demo.coin" in text and "FLIPS HOLDS<->FAILS" in text
    assert "2 claims over 2 base seeds: 1 flip" in text
    import json

    data = json.loads(out.read_text())
    assert data["flips"] == ["demo.coin"]
    assert data["verdicts"]["demo.stable"] == {"0": "HOLDS", "1": "HOLDS"}
