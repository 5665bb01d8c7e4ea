"""The ticket-replicate pilot of the power planner (bench/results.md, "Ticket replicates: the pilot").

After the pilot's tickets and runs exist (the commands in bench/replicate_pilot.yaml), this writes
what the planner reads for the embedded profile (reprolib.sweep.planner: `bench/pilots/<profile>.csv`
beside the profile's own ledger, and `<profile>_tickets.csv` for the price of a replicate):
the pilot's runs of replicates 2 and up, with the columns the claims and the planner read (the
shipped ledger holds replicate 1's), and its tickets table.

    python bench/replicate_pilot.py --artifacts DIR [--profile embedded]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reprolib.study.ledger import build_ledger, finished_runs, tickets_table

COLUMNS = ["id", "profile", "backbone", "target", "arm", "method", "label_map", "network", "ticket_kind", "level",
           "replicate", "density", "upstream_accuracy", "provenance", "n_shot", "seed", "accuracy", "ece",
           "wall_time_s", "status"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", required=True, help="the pilot's artifacts folder (runs/ and tickets/)")
    parser.add_argument("--profile", default="embedded", help="the profile the pilot plans for (the files' names)")
    args = parser.parse_args()
    out = Path(__file__).resolve().parent / "pilots"
    out.mkdir(exist_ok=True)
    ledger = finished_runs(build_ledger(Path(args.artifacts)))
    runs = ledger[ledger["replicate"] > 1][COLUMNS].sort_values(["replicate", "target", "arm", "level", "n_shot", "seed"])
    runs.to_csv(out / f"{args.profile}.csv", index=False)
    tickets = tickets_table(Path(args.artifacts)).drop(columns=["path"])
    tickets.to_csv(out / f"{args.profile}_tickets.csv", index=False)
    print(f"{len(runs)} runs of replicates {sorted(runs['replicate'].unique())} -> {out / (args.profile + '.csv')}; "
          f"{len(tickets)} tickets -> {out / (args.profile + '_tickets.csv')}")


if __name__ == "__main__":
    main()
