import sys

from memorose_dagster.cli import main

sys.exit(main())
