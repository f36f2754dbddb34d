"""The one Dagster composition root: assets, jobs, sensors, schedules and resources."""

from __future__ import annotations

import os

import dagster as dg

from assets import ALL_ASSETS, LAKE_ASSETS
from memorose_dagster.lake.resource import LakeResource
from memorose_dagster.models.provider import DEFAULT_PROVIDER
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource
from sensors import (
    audit_job,
    insights_refresh_job,
    lake_job,
    lake_sensor,
    log_sensor,
    memory_decay_job,
    memory_decay_schedule,
    memory_job,
    nightly_audit_schedule,
    nightly_insights_schedule,
    rederive_sensor,
)


def build_definitions() -> dg.Definitions:
    admin_key = dg.EnvVar("MEMOROSE_ADMIN_KEY") if os.environ.get("MEMOROSE_ADMIN_KEY") else ""
    cluster = ClusterResource(urls=os.environ.get("MEMOROSE_URL", "http://127.0.0.1:8000"),
                              admin_key=admin_key)
    model = ModelResource(provider=os.environ.get("MEMOROSE_MODEL_PROVIDER", DEFAULT_PROVIDER))
    return dg.Definitions(
        assets=ALL_ASSETS + LAKE_ASSETS,
        jobs=[memory_job, insights_refresh_job, memory_decay_job, lake_job, audit_job],
        sensors=[log_sensor, rederive_sensor, lake_sensor],
        schedules=[nightly_insights_schedule, memory_decay_schedule, nightly_audit_schedule],
        resources={"cluster": cluster, "model": model,
                   "lake": LakeResource(root=os.environ.get("MEMOROSE_LAKE", ""))},
    )


defs = build_definitions()
