"""The headline table: every number a README quotes, with its interval; differences from their
paired intervals (dense and ticket paired within each (replicate, seed) unit), one run said so."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from reprolib.study.claims import claims_table
from reprolib.study.headline import headline_table
from reprolib.study.ledger import build_ledger, tickets_table
from synthetic_study import write_synthetic_study


def test_headline_numbers_are_paired_and_two_level(tmp_path) -> None:
    write_synthetic_study(tmp_path, arms=("lp", "vp/ilm"), seeds=(1, 2, 3), noise=0.01, replicates=3,
                          replicate_noise=0.02)
    ledger = build_ledger(tmp_path)
    table = headline_table(ledger, tickets_table(tmp_path), claims_table(ledger))
    rows = ledger[(ledger["target"] == "digits") & (ledger["arm"] == "vp/ilm") & (ledger["n_shot"] == -1)
                  & (ledger["ticket_kind"] == "imp")]
    dense = rows[rows["level"] == 0].set_index(["replicate", "seed"])["accuracy"]
    ticket = rows[rows["level"] == 4].set_index(["replicate", "seed"])["accuracy"]
    per_unit = (dense - ticket) * 100
    means = per_unit.groupby(level="replicate").mean()                   # t over the 3 replicate means
    low, high = scipy_stats.t.interval(0.95, 2, loc=means.mean(), scale=scipy_stats.sem(means))
    got = table[(table["quantity"] == "paired difference") & (table["target"] == "digits") & (table["arm"] == "vp/ilm")
                & (table["n_shot"] == -1) & (table["metric"] == "accuracy")].iloc[0]
    assert got["network"] == "dense - imp L4" and (got["n"], got["replicates"]) == (9, 3)
    assert (got["mean"], got["low"], got["high"]) == (pytest.approx(per_unit.mean()), pytest.approx(low),
                                                     pytest.approx(high))
    assert got["text"] == f"{per_unit.mean():.1f} [{low:.1f}, {high:.1f}] (n=9 in 3 replicates, two-level: t over ticket replicates)"
    ece = table[(table["quantity"] == "paired difference") & (table["metric"] == "ece")]
    assert set(ece["network"]) == {"imp L4 - dense"}                     # the tickets' ECE above dense: positive
    value = table[(table["quantity"] == "value") & (table["target"] == "digits") & (table["arm"] == "vp/ilm")
                  & (table["n_shot"] == -1) & (table["network"] == "dense") & (table["metric"] == "accuracy")].iloc[0]
    assert value["mean"] == pytest.approx(100 * dense.mean())
    upstream = table[table["quantity"] == "upstream"]
    assert (upstream["interval"] == "one run").all() and "imp L2 r2" in set(upstream["network"])
    assert table.loc[table["quantity"] == "claim", "text"].tolist() == claims_table(ledger)["verdict"].tolist()
    assert sorted(table["n_shot"].dropna().unique()) == [-1, 5]           # full data and the largest few-shot n
    assert np.isfinite(table.loc[table["quantity"] != "claim", "mean"].astype(float)).all()
