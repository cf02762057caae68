"""The code location of ``workspace/`` beside this file, its steps run by celery workers.

The broker and the result backend come from the run's config (``execution.config``), as does
the workspace (``resources.stagerunner.config.workspace``): a worker uses what the run says, not
what its own environment says. ``deploy/celery.sh`` lays the folder out and runs a job.
"""

from pathlib import Path

from dagster_celery import celery_executor

from stagerunner_dagster import stagerunner_definitions

defs = stagerunner_definitions(Path(__file__).resolve().parent / "workspace", executor=celery_executor)
