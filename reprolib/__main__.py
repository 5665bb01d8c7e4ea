from reprolib.cli import main

raise SystemExit(main())
