"""`python -m roster_pipeline.cli`: the same as the `roster-pipeline` command."""

from roster_pipeline.cli.main import main

raise SystemExit(main())
