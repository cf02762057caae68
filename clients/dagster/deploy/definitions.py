"""The Dagster code location of the StageRunner workspace in ``workspace/`` beside this file.

``dagster dev -f definitions.py`` serves it (``deploy/local.sh`` lays the folder out and runs it).
The path is built from this file's own location, so every process that loads the code location
(the webserver, the daemon, each step process) finds the same workspace.
"""

from pathlib import Path

from stagerunner_dagster import stagerunner_definitions

defs = stagerunner_definitions(Path(__file__).resolve().parent / "workspace")
