"""Drives regsecrets with SAP's own Python client SDK, unchanged: create, get, query, modify, delete.

Run by tests/sap_sdk.rs with REGSECRETS_URL and REGSECRETS_TOKEN set. Exits non-zero on any mismatch.
"""
import base64
import json
import os

from ai_core_sdk.ai_core_v2_client import AICoreV2Client

client = AICoreV2Client(
    base_url=os.environ["REGSECRETS_URL"] + "/v2",
    token_creator=lambda: "Bearer " + os.environ["REGSECRETS_TOKEN"],
)
secrets = client.docker_registry_secrets
config = {"auths": {"ghcr.io": {"username": "sdk-user", "password": "sdk-pass"}}}
encoded = base64.b64encode(json.dumps(config).encode()).decode()

created = secrets.create(name="sdk-secret", data={".dockerconfigjson": encoded})
assert created.message == "Secret has been created", vars(created)

got = secrets.get(name="sdk-secret")
assert got.name == "sdk-secret", vars(got)

for name in ["sdk-b", "sdk-c"]:
    secrets.create(name=name, data={".dockerconfigjson": json.dumps(config)})
page = secrets.query(top=2, skip=1)
assert [r.name for r in page.resources] == ["sdk-c", "sdk-secret"], [r.name for r in page.resources]
assert page.count == 2, page.count

config["auths"]["ghcr.io"]["password"] = "sdk-pass-2"
modified = secrets.modify(name="sdk-secret", data={".dockerconfigjson": json.dumps(config)})
assert modified.id == "sdk-secret" and modified.message == "Secret has been modified", vars(modified)

deleted = secrets.delete(name="sdk-secret")
assert deleted.id == "sdk-secret", vars(deleted)
assert [r.name for r in secrets.query().resources] == ["sdk-b", "sdk-c"]

try:
    secrets.get(name="sdk-secret")
except Exception as error:  # the SDK raises its own not-found exception on 404
    assert "404" in str(getattr(error, "status_code", "")) or "not found" in str(error).lower(), repr(error)
else:
    raise AssertionError("a deleted secret was still found")
print("SAP SDK: create, get, query, modify, delete all passed")
