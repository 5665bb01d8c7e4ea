"""Study output: from run records to the ledger, the claims and the tables.

ledger (ledger.csv), compare (two ledgers by metric), tracking (TensorBoard / wandb), claims (the
paper's claims tested: their parts and verdicts in verdicts, the three tests in claim_tests,
their null tests at the margin in nulls), effects and stats (two-level intervals over ticket
replicates, paired effects, max-T corrections), power (variance components and what a design
decides; the planner that prices it is reprolib.sweep.planner), headline (the numbers a README
quotes), published (the papers' tables beside ours).
"""
