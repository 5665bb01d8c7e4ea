"""The study notebooks: `setup` for their parameter cells, the papermill runner
(`python -m reprolib notebooks`) and the plan (order and staleness from each header).
"""
