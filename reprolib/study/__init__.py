"""Study output: from run records to the ledger, the claims and the tables.

ledger (ledger.csv), compare (two ledgers by metric), tracking (TensorBoard / wandb), claims
(the paper's claims tested), effects and stats (intervals, paired effects), published (the
papers' tables beside ours).
"""
