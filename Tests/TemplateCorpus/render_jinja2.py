#!/usr/bin/env python3
"""Render the template corpus with Jinja2, the reference for StageEngine's template engine.

Every case in cases/*.json (a JSON array of {name, template, context, options}) is rendered with
Environment(undefined=StrictUndefined, autoescape=False) and the case's trim_blocks, lstrip_blocks
and keep_trailing_newline. The result is {"output": text} or {"error": exception class name,
"message": str(exception)}.

    render_jinja2.py            rewrite goldens.json
    render_jinja2.py --check    exit 1 if goldens.json differs from what Jinja2 renders now
"""

import argparse
import json
import sys
from pathlib import Path

try:
    import jinja2
except ImportError:
    sys.exit(f"jinja2 is not installed for {sys.executable}; install jinja2==3.1.6 (the goldens' reference)")

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
GOLDENS = HERE / "goldens.json"


def load_cases():
    cases = []
    for path in sorted(CASES.glob("*.json")):
        with path.open(encoding="utf-8") as handle:
            cases.extend(json.load(handle))
    names = [case["name"] for case in cases]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        sys.exit(f"duplicate case names: {sorted(duplicates)}")
    return cases


def render(case):
    options = case.get("options", {})
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=options.get("trim_blocks", False),
        lstrip_blocks=options.get("lstrip_blocks", False),
        keep_trailing_newline=options.get("keep_trailing_newline", False),
    )
    try:
        return {"output": env.from_string(case["template"]).render(case.get("context", {}))}
    except Exception as error:  # every failure is a verdict; RecursionError included
        message = str(error)
        if len(message) > 300:
            message = message[:300] + "…"
        return {"error": type(error).__name__, "message": message}


def render_all():
    cases = load_cases()
    return {
        "jinja2": jinja2.__version__,
        "cases": {case["name"]: render(case) for case in cases},
    }


def dump(goldens):
    return json.dumps(goldens, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with goldens.json instead of writing it")
    arguments = parser.parse_args()

    goldens = render_all()
    if not arguments.check:
        GOLDENS.write_text(dump(goldens), encoding="utf-8")
        print(f"wrote {len(goldens['cases'])} cases to {GOLDENS}")
        return 0

    committed = json.loads(GOLDENS.read_text(encoding="utf-8"))["cases"]
    live = goldens["cases"]
    drift = sorted(name for name in set(committed) | set(live) if committed.get(name) != live.get(name))
    for name in drift:
        print(f"drift in {name}:\n  committed: {committed.get(name)!r}\n  live:      {live.get(name)!r}")
    if drift:
        print(f"{len(drift)} of {len(live)} cases drifted (Jinja2 {jinja2.__version__}); rerun render_jinja2.py")
        return 1
    print(f"{len(live)} cases match goldens.json (Jinja2 {jinja2.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
