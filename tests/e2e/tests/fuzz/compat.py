"""Our OpenAPI document is compatible with SAP's for SAP's calls: the same paths and methods, the
query parameters SAP declares with the same types, a request form that requires what SAP requires,
and answers (success and error) that hold every property SAP declares, with its type, and require
at least what SAP requires. Usage: compat.py SAP_YAML OUR_OPENAPI_URL. Exit 1 with the mismatches."""

import json
import re
import sys
import urllib.request

import yaml

sap = yaml.safe_load(open(sys.argv[1]))
ours = json.load(urllib.request.urlopen(sys.argv[2]))
problems = []


def deref(doc, node):
    """Follows local $refs; merges allOf."""
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    if isinstance(node, dict) and "allOf" in node:
        merged = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            part = deref(doc, part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        node = merged
    return node


def types(schema):
    t = schema.get("type")
    if t is None and "properties" in schema:
        t = "object"
    return set(t) if isinstance(t, list) else {t}


def compatible(where, theirs, mine, answer):
    """`answer`: we produce it, so we must hold what SAP requires; otherwise we read it, so we must not
    require more than SAP does (in at least one of our alternatives)."""
    theirs, mine = deref(sap, theirs), deref(ours, mine)
    if "oneOf" in mine or "anyOf" in mine:
        branches = mine.get("oneOf") or mine.get("anyOf")
        errors = []
        for branch in branches:
            before = len(problems)
            compatible(where, theirs, branch, answer)
            errors.append(problems[before:])
            del problems[before:]
        if not any(not e for e in errors):
            problems.append(f"{where}: no alternative of ours fits SAP's ({errors})")
        return
    t, m = types(theirs) - {None}, types(mine) - {None}
    if t and m and not t <= m:
        problems.append(f"{where}: SAP's type {sorted(t)}, ours {sorted(m)}")
        return
    if "object" in t:
        mine_props = mine.get("properties", {})
        for name, schema in theirs.get("properties", {}).items():
            if name not in mine_props:
                problems.append(f"{where}.{name}: declared by SAP, not by us")
            else:
                compatible(f"{where}.{name}", schema, mine_props[name], answer)
        theirs_req, mine_req = set(theirs.get("required", [])), set(mine.get("required", []))
        if answer and not theirs_req <= mine_req:
            problems.append(f"{where}: SAP requires {sorted(theirs_req - mine_req)}, we do not promise them")
        if not answer and not mine_req <= theirs_req:
            problems.append(f"{where}: we require {sorted(mine_req - theirs_req)}, SAP does not")
    if "array" in t:
        compatible(f"{where}[]", theirs.get("items", {}), mine.get("items", {}), answer)


def json_schema(doc, response):
    response = deref(doc, response)
    return response.get("content", {}).get("application/json", {}).get("schema")


prefix = "/v2"
error_schema = None
for path, item in sap["paths"].items():
    our_path = prefix + re.sub(r"\{[^}]+\}", "{name}", path)
    our_item = ours["paths"].get(our_path)
    if our_item is None:
        problems.append(f"{our_path}: SAP's path is not in our document")
        continue
    shared_parameters = item.get("parameters", [])
    for method, operation in item.items():
        if method == "parameters":
            continue
        where = f"{method.upper()} {our_path}"
        mine = our_item.get(method)
        if mine is None:
            problems.append(f"{where}: not in our document")
            continue
        our_query = {p["name"]: p for p in mine.get("parameters", []) if p.get("in") == "query"}
        for parameter in shared_parameters + operation.get("parameters", []):
            parameter = deref(sap, parameter)
            if parameter["in"] != "query":
                continue
            if parameter["name"] not in our_query:
                problems.append(f"{where}: query parameter {parameter['name']} missing")
            else:
                compatible(f"{where} ?{parameter['name']}", parameter["schema"], our_query[parameter["name"]]["schema"], False)
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            our_content = mine.get("requestBody", {}).get("content", {}).get(media_type)
            if our_content is None:
                problems.append(f"{where}: we do not take {media_type}")
            else:
                compatible(f"{where} body", content["schema"], our_content["schema"], False)
        our_success = next(r for s, r in mine["responses"].items() if s.startswith("2"))
        for status, response in operation["responses"].items():
            theirs = json_schema(sap, response)
            if theirs is None:
                continue
            if status.startswith("2"):
                compatible(f"{where} {status}", theirs, json_schema(ours, our_success), True)
            else:
                for our_status, our_response in mine["responses"].items():
                    if not our_status.startswith("2"):
                        compatible(f"{where} {status} vs our {our_status}", theirs, json_schema(ours, our_response), True)

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"compatible with SAP's document: {sum(len([m for m in i if m != 'parameters']) for i in sap['paths'].values())} operations")
