"""The five-stage task of the runTask benchmark (task_bench.py) and of the runTask threshold
(thresholds/check.py): template, embedded model, JSON parser, JSON Schema check, artifact write.
Standard library only, so that check.py runs it with any python3."""

import json
import tempfile
from pathlib import Path

ANSWER = 'Here it is:\n```json\n{"title": "Tide pools", "findings": ["zonation", "turnover"], "confidence": 0.7}\n```\n'
TEMPLATE = 'Write a research summary about {{ input.topic }} covering {{ input.keywords | join(", ") }}.\n'
SCHEMA = {
    "type": "object",
    "required": ["title", "findings", "confidence"],
    "properties": {
        "title": {"type": "string", "minLength": 3},
        "findings": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "additionalProperties": False,
}
STAGE_SCRIPT = """import json, sys
request = json.load(sys.stdin)
json.dump({"output": {"topic": request["context"]["output"]["topic"].strip()}, "flags": {}}, sys.stdout)
"""
INPUT = {"topic": "Tide pools", "keywords": ["zonation", "exposure", "waves"]}


def make_workspace(base: Path) -> Path:
    """A new workspace under base: the embedded model's answer, the template, the schema, the
    five-stage task (tasks/summary.yaml) and the one-command task (tasks/command.yaml)."""
    workspace = Path(tempfile.mkdtemp(dir=base, prefix="task-bench-"))
    (workspace / "tasks").mkdir()
    (workspace / "stagerunner.yaml").write_text(
        "embedded:\n  rules:\n    - promptContains: Write a research summary\n      response: "
        + json.dumps(ANSWER) + "\n")
    (workspace / "tasks/prompt.j2").write_text(TEMPLATE)
    (workspace / "tasks/summary.schema.json").write_text(json.dumps(SCHEMA))
    (workspace / "tasks/stage.py").write_text(STAGE_SCRIPT)
    (workspace / "tasks/summary.yaml").write_text(
        "stages:\n"
        "  promptTemplating: { template: prompt.j2 }\n"
        "  inference: { llm: embedded:bench }\n"
        "  parsing: { parse: json }\n"
        "  validateStructure: { schema: summary.schema.json }\n"
        "  integration: { write: summary.json }\n")
    (workspace / "tasks/command.yaml").write_text("stages:\n  ingestion: { command: [python3, stage.py] }\n")
    return workspace
