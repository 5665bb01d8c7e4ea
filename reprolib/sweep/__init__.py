"""The sweep: a profile's grid of transfer runs on local processes, every visible GPU or Slurm.

runner (build_grid, run_sweep), cli (`python -m reprolib sweep`), jobs and slurm (submitit),
scheduling (devices), workers (processes), lock, status, cost (the cost model and dry run).
"""
