"""`python -m reprolib COMMAND ...`: the command line (see reprolib.cli)."""

from reprolib.cli import main

raise SystemExit(main())
