"""A study's headline numbers in one small generated table (notebook 09 writes it as
`figures/<study>/headline.md/.csv`), so that the numbers a README quotes are taken from it and a
test can compare them.

One row per number, each with its interval, n and how the interval was made
(`reprolib.study.stats`; "one run" where there is none):
- `value`: a cell's mean (accuracy in %, ECE, the public code's legacy "ECE") for the dense
  model, the sparsest ticket and the baselines, at full data and at the largest few-shot n;
- `paired difference`: dense minus the sparsest ticket (accuracy, points) and the ticket minus
  dense (ECE), unit by unit, dense and ticket paired within each (replicate, seed) unit, with the
  two-level interval of those differences (stats.two_level_interval). A difference is read from
  this interval, never from two cells' intervals that overlap or not;
- `upstream`: each ticket's upstream test accuracy (one run per ticket);
- `claim`: each claim's verdict (the claims table has its numbers).
"""

from __future__ import annotations

import pandas as pd

from reprolib.study.effects import UNIT, with_replicate
from reprolib.study.stats import ONE_RUN, Interval, two_level_interval

COLUMNS = ["quantity", "target", "arm", "network", "n_shot", "metric", "mean", "low", "high", "n", "replicates",
           "interval", "text"]
SCALE = {"accuracy": 100.0}          # accuracy in percent; ECE as it is
DIGITS = {"accuracy": 1}             # the digits of a row's text (others: 3)
VALUE_METRICS = ("accuracy", "ece", "legacy_rlt_ece")
DIFFERENCE_METRICS = {"accuracy": "dense - {ticket}", "ece": "{ticket} - dense"}


def _network(kind: str, level: int) -> str:
    return "dense" if kind == "imp" and int(level) == 0 else f"{kind} L{int(level)}"


def _row(quantity: str, key: tuple, metric: str, interval: Interval, network: str) -> dict:
    target, arm, n_shot = key
    digits = DIGITS.get(metric, 3)
    return {"quantity": quantity, "target": target, "arm": arm, "network": network, "n_shot": n_shot, "metric": metric,
            "mean": interval.mean, "low": interval.low, "high": interval.high, "n": interval.n,
            "replicates": interval.replicates, "interval": interval.method, "text": interval.text(digits)}


def _shots(ledger: pd.DataFrame) -> list[int]:
    shots = sorted(ledger["n_shot"].dropna().astype(int).unique())
    few = [s for s in shots if s > 0]
    return ([-1] if -1 in shots else []) + (few[-1:] if few else [])


def _networks(ledger: pd.DataFrame) -> list[tuple[str, int]]:
    """Dense, the sparsest ticket (IMP; else the sparsest other kind) and the baselines at its level."""
    sparse = ledger[ledger["level"] > 0]
    if sparse.empty:
        return [("imp", 0)]
    kind = "imp" if (sparse["ticket_kind"] == "imp").any() else sparse["ticket_kind"].mode().iloc[0]
    level = int(sparse.loc[sparse["ticket_kind"] == kind, "level"].max())
    others = sorted({(k, int(lv)) for k, lv in zip(sparse["ticket_kind"], sparse["level"]) if k != kind and lv == level})
    return [("imp", 0), (kind, level), *others]


def _paired(dense: pd.DataFrame, ticket: pd.DataFrame, metric: str, sign: float) -> Interval:
    """sign x (dense - ticket) per unit, over the units both have, two-level."""
    a = with_replicate(dense).groupby(UNIT)[metric].mean()
    b = with_replicate(ticket).groupby(UNIT)[metric].mean()
    common = a.index.intersection(b.index)
    values = sign * (a[common] - b[common]).to_numpy(dtype=float) * SCALE.get(metric, 1.0)
    return two_level_interval(values, common.get_level_values("replicate").to_numpy())


def headline_table(ledger: pd.DataFrame, tickets: pd.DataFrame | None = None,
                   verdicts: pd.DataFrame | None = None) -> pd.DataFrame:
    """The headline rows (module doc) of a ledger, its tickets table and its claims table."""
    rows = []
    ledger = with_replicate(ledger)
    networks = _networks(ledger)
    for (target, arm, n_shot), cell in ledger[ledger["n_shot"].isin(_shots(ledger))].groupby(["target", "arm", "n_shot"]):
        key = (target, arm, int(n_shot))
        by_network = {(k, int(lv)): g for (k, lv), g in cell.groupby(["ticket_kind", "level"])}
        for network in [n for n in networks if n in by_network]:
            runs = by_network[network]
            for metric in [m for m in VALUE_METRICS if m in runs and runs[m].notna().any()]:
                values = runs[metric].to_numpy(dtype=float) * SCALE.get(metric, 1.0)
                interval = two_level_interval(values, runs["replicate"].to_numpy())
                rows.append(_row("value", key, metric, interval, _network(*network)))
        sparsest = networks[1] if len(networks) > 1 else None
        if sparsest in by_network and networks[0] in by_network:
            name = _network(*sparsest)
            for metric, label in DIFFERENCE_METRICS.items():
                sign = 1.0 if label.startswith("dense") else -1.0
                interval = _paired(by_network[networks[0]], by_network[sparsest], metric, sign)
                rows.append(_row("paired difference", key, metric, interval, label.format(ticket=name)))
    for ticket in ([] if tickets is None else tickets.to_dict("records")):
        value = ticket.get("upstream_accuracy")
        if value is not None and not pd.isna(value):
            replicate = int(ticket.get("replicate") or 1)
            name = _network(ticket["ticket_kind"], ticket["level"]) + ("" if replicate == 1 else f" r{replicate}")
            rows.append({"quantity": "upstream", "network": name, "metric": "upstream_accuracy", "mean": 100 * value,
                         "n": 1, "replicates": 1, "interval": ONE_RUN, "text": f"{100 * value:.1f} ({ONE_RUN})"})
    for claim in ([] if verdicts is None else verdicts.to_dict("records")):
        rows.append({"quantity": "claim", "network": claim["claim"], "metric": "verdict", "text": claim["verdict"]})
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"n_shot": "Int64", "n": "Int64", "replicates": "Int64"})
    table.attrs["footnote"] = ("accuracy in %; value: a cell's mean and 95% interval; paired difference: per (replicate, "
                               "seed) unit, dense and ticket paired, two-level interval; upstream: one run per ticket")
    return table
