#!/usr/bin/env python3
"""Compiles the OCSF excerpt the schema tests check against.

Usage: extract.py OCSF_SCHEMA_CHECKOUT > ocsf-1.4.0.json

OCSF_SCHEMA_CHECKOUT is a checkout of https://github.com/ocsf/ocsf-schema at
tag 1.4.0. The script resolves what the OCSF server resolves for the classes
and objects listed below: `extends` chains, `$include`d profiles (attributes
keep a `profile` annotation), dictionary types, `is_array` and merged enums.
Descriptions are dropped to keep the file small. Core schema only: no
extensions.
"""
import json
import os
import sys

CLASSES = ["file_activity", "application_lifecycle", "application_error", "software_info"]
OBJECTS = [
    "actor", "attack", "container", "device", "file", "fingerprint", "group",
    "metadata", "object", "package", "process", "process_entity", "product", "sub_technique", "tactic",
    "technique", "user",
]

root = sys.argv[1]


def load(rel):
    with open(os.path.join(root, rel)) as f:
        return json.load(f)


def deep_merge(a, b):
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


dictionary = load("dictionary.json")
categories = load("categories.json")["attributes"]
events = {}
for dirpath, _, files in os.walk(os.path.join(root, "events")):
    for f in files:
        d = json.load(open(os.path.join(dirpath, f)))
        events[d["name"]] = d
objects = {}
for f in os.listdir(os.path.join(root, "objects")):
    d = load(os.path.join("objects", f))
    objects[d["name"]] = d


def own_attributes(defn):
    """The attributes a definition declares, with its includes expanded."""
    attrs = {}
    for inc in defn.get("attributes", {}).get("$include", []):
        prof = load(inc)
        for k, v in prof.get("attributes", {}).items():
            v = dict(v)
            if prof.get("meta") == "profile":
                v.setdefault("profile", prof["name"])
            attrs[k] = deep_merge(attrs.get(k, {}), v)
    for k, v in defn.get("attributes", {}).items():
        if k != "$include":
            attrs[k] = deep_merge(attrs.get(k, {}), v)
    return attrs


def resolved(table, name):
    defn = table[name]
    parent = defn.get("extends")
    base = resolved(table, parent) if parent and parent in table else {}
    return deep_merge(base, own_attributes(defn))


def compile_attrs(attrs):
    out = {}
    for k, v in sorted(attrs.items()):
        d = deep_merge(dictionary["attributes"].get(k, {}), v)
        t = d.get("type")
        a = {"requirement": d.get("requirement") or "optional"}
        if t in dictionary["types"]["attributes"] or t in ("object", None):
            a["type"] = t or "object"
        else:
            a["type"] = "object_t"
            a["object_type"] = t
        if d.get("is_array"):
            a["is_array"] = True
        if d.get("profile"):
            a["profile"] = d["profile"]
        if d.get("sibling"):
            a["sibling"] = d["sibling"]
        if d.get("enum"):
            a["enum"] = {i: e["caption"] for i, e in sorted(d["enum"].items(), key=lambda x: int(x[0]))}
        out[k] = a
    return out


def category_of(name):
    while name:
        d = events[name]
        if "category" in d:
            return d["category"]
        name = d.get("extends")


result = {
    "ocsf_version": load("version.json")["version"],
    "source": "https://github.com/ocsf/ocsf-schema/tree/1.4.0",
    "types": {
        k: {kk: vv for kk, vv in v.items() if kk in ("type", "regex", "values")}
        for k, v in sorted(dictionary["types"]["attributes"].items())
    },
    "classes": {},
    "objects": {},
}
for c in CLASSES:
    cat = categories[category_of(c)]
    class_uid = cat["uid"] * 1000 + events[c]["uid"]
    attrs = compile_attrs(resolved(events, c))
    # As the OCSF server does: the class's own category_uid, class_uid and
    # type_uid values replace the base event's.
    attrs["category_uid"]["enum"] = {str(cat["uid"]): cat["caption"]}
    attrs["class_uid"]["enum"] = {str(class_uid): events[c]["caption"]}
    attrs["type_uid"]["enum"] = {
        str(class_uid * 100 + int(i)): f'{events[c]["caption"]}: {caption}'
        for i, caption in attrs["activity_id"]["enum"].items()
    }
    result["classes"][c] = {
        "caption": events[c]["caption"],
        "category_uid": cat["uid"],
        "category_name": cat["caption"],
        "class_uid": class_uid,
        "attributes": attrs,
    }
for o in OBJECTS:
    result["objects"][o] = {
        "caption": objects[o]["caption"],
        "constraints": objects[o].get("constraints", {}),
        "attributes": compile_attrs(resolved(objects, o)),
    }
json.dump(result, sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
print()
