"""Transfer methods on a frozen backbone: linear probing, padding VP (ILM/FLM/RLM),
watermark prompts and SMM, trained by one flat loop and recorded one JSON per run.

`run_transfer(TransferConfig(...))` is the entry point (also `python -m reprolib transfer`).
Submodules: config (TransferConfig), method (the TransferMethod interface and its
MethodContext), registry (the methods by name: build_method / get / names), linear_probe
(LinearProbe), prompting (PromptMethod), train (fit), run, cli.
"""

from reprolib.transfer.config import LABEL_MAPS, METHODS, TransferConfig
from reprolib.transfer.method import MethodContext, TransferMethod
from reprolib.transfer.registry import build_method
from reprolib.transfer.run import record_path, run_transfer

__all__ = ["LABEL_MAPS", "METHODS", "MethodContext", "TransferConfig", "TransferMethod", "build_method",
           "record_path", "run_transfer"]
