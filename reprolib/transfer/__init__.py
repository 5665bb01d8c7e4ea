"""Transfer methods on a frozen backbone: linear probing, padding VP (ILM/FLM/RLM),
watermark prompts and SMM, trained by one flat loop and recorded one JSON per run.

`run_transfer(TransferConfig(...))` is the entry point (also `python -m reprolib transfer`).
Submodules: config (TransferConfig), train (train_one_epoch / evaluate / fit),
linear_probe, prompting, run, cli.
"""

from reprolib.transfer.config import LABEL_MAPS, METHODS, TransferConfig
from reprolib.transfer.run import record_path, run_transfer

__all__ = ["LABEL_MAPS", "METHODS", "TransferConfig", "record_path", "run_transfer"]
