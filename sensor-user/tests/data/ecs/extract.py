#!/usr/bin/env python3
"""Extracts the ECS field excerpt the schema tests check against.

Usage: extract.py ecs_flat.yml > ecs-8.11.0.json

ecs_flat.yml is generated/ecs/ecs_flat.yml from https://github.com/elastic/ecs
at tag v8.11.0. Keeps, for the field sets Vigil writes, each field's name,
type and normalization, plus the allowed values of the categorization fields
(with expected event types per category). Descriptions are dropped.
"""
import json
import sys

import yaml

FIELD_SETS = {
    "@timestamp", "agent", "container", "ecs", "error", "event", "file",
    "group", "host", "labels", "message", "package", "process", "rule", "service",
    "tags",
    "user",
}
# threat.* is large (indicator and enrichments); keep the ATT&CK parts.
PREFIXES = ("threat.framework", "threat.tactic.", "threat.technique.")

flat = yaml.safe_load(open(sys.argv[1]))
fields = {}
for name, f in sorted(flat.items()):
    if name.split(".")[0] not in FIELD_SETS and not name.startswith(PREFIXES):
        continue
    out = {"type": f["type"]}
    if f.get("normalize"):
        out["normalize"] = f["normalize"]
    if f.get("allowed_values"):
        out["allowed_values"] = {
            a["name"]: a.get("expected_event_types", []) for a in f["allowed_values"]
        }
    if f.get("object_type"):
        out["object_type"] = f["object_type"]
    fields[name] = out
json.dump(
    {
        "ecs_version": "8.11.0",
        "source": "https://github.com/elastic/ecs/blob/v8.11.0/generated/ecs/ecs_flat.yml",
        "fields": fields,
    },
    sys.stdout,
    indent=1,
    sort_keys=True,
)
print()
