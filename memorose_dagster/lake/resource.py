"""The lake as a Dagster resource: where its files are."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from memorose_dagster.lake.files import default_root


class LakeResource(dg.ConfigurableResource):
    """The parquet lake's root directory; empty means ``$MEMOROSE_LAKE``, else
    ``$MEMOROSE_HOME/lake``."""

    root: str = ""

    def path(self) -> Path:
        return Path(self.root) if self.root else default_root()
