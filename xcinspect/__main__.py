"""`python -m xcinspect`."""
from xcinspect.cli import main

raise SystemExit(main())
