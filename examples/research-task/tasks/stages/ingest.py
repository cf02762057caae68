"""Ingestion stage of the research-summary task, written in Python.

StageRunner sends {"stage", "preRefinement", "context"} as JSON on stdin and reads
{"output": ..., "flags": {...}} as JSON from stdout; anything on stderr goes to the run's
logs/stage-ingestion.log, and a non-zero exit fails the stage with stderr's tail.
"""

import json
import sys

request = json.load(sys.stdin)
seed = request["context"]["output"]
topic = str(seed.get("topic", "")).strip()
if not topic:
    print("the input needs a non-empty 'topic'", file=sys.stderr)
    sys.exit(2)
stopwords = {"a", "an", "and", "as", "of", "the", "in", "on", "for"}
keywords = [word for word in topic.lower().split() if word not in stopwords]
print(f"ingested topic {topic!r} with {len(keywords)} keywords", file=sys.stderr)
json.dump({"output": {"topic": topic, "keywords": keywords}, "flags": {"keywordCount": len(keywords)}}, sys.stdout)
