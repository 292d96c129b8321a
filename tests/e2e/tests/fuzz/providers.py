"""Schemathesis hooks for the fuzz of our own document (fuzz_openapi.rs), loaded through
SCHEMATHESIS_HOOKS. The app mints against the test's doubles: moto's server for AWS (IAM checking
every signature), and the token endpoints of minting.rs for Google and Microsoft Entra ID (with an
Azure registry's /oauth2/exchange).

- `before_call`: every other generated (positive) body of a secret that mints gets the identity a
  double accepts, so minting succeeds as well as being refused; the rest keep their fuzzed identity,
  which the double refuses as the provider would (422).
- `after_call`: one JSON line per response in REGSECRETS_FUZZ_LOG: the test counts them, and
  checks every 5xx again by the rules below (should this check not be run).
- `provider_errors_are_justified`: the exception to `not_a_server_error`, which ours.toml allows
  502 and 503 for the calls that mint only, justified: 502 is `ProviderAnswerUnusable` without
  `Retry-After`, from a provider that answered; 503 is `ProviderUnavailable` with `Retry-After`,
  naming a provider that the test stopped (REGSECRETS_FUZZ_PROVIDERS_DOWN), as unreachable.

Test-only keys of the doubles come in REGSECRETS_FUZZ_IDENTITIES (JSON: kind -> fields to set).
"""

import base64
import json
import os

import schemathesis

MINTING = {"exportCredentials", "verifySecret", "resolveCredentials"}
WRITES = {"createSecret", "modifySecret"}
# How our messages name each provider (domain::mint): first word(s) of the message.
PROVIDERS = ("AWS", "Google", "Microsoft Entra ID", "The registry")
IDENTITIES = json.loads(os.environ.get("REGSECRETS_FUZZ_IDENTITIES") or "{}")
DOWN = {p for p in (os.environ.get("REGSECRETS_FUZZ_PROVIDERS_DOWN") or "").split(",") if p}
LOG = os.environ.get("REGSECRETS_FUZZ_LOG")
_seen = {kind: 0 for kind in IDENTITIES}


def _operation(case):
    return case.operation.definition.raw.get("operationId", "")


def _positive(case):
    meta = case.meta
    return meta is None or meta.generation.mode.is_positive


def _json(response):
    try:
        return json.loads(response.content)
    except (ValueError, TypeError):
        return None


@schemathesis.hook
def before_call(context, case, kwargs):
    if _operation(case) not in WRITES or not _positive(case) or not isinstance(case.body, dict):
        return
    for kind, fields in IDENTITIES.items():
        identity = case.body.get(kind)
        if isinstance(identity, dict):
            _seen[kind] += 1
            if _seen[kind] % 2:
                case.body = {**case.body, kind: {**identity, **fields}}


def _minted_by(body):
    """Which provider minted an exported credential (the registries of its Docker config)."""
    try:
        if "regsecrets.dev/expires-at" not in body["metadata"].get("annotations", {}):
            return None
        config = json.loads(base64.b64decode(body["data"][".dockerconfigjson"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    registries = list(config.get("auths", {}))
    if any(".dkr.ecr." in r for r in registries):
        return "AWS"
    if any(r.startswith("localhost:") for r in registries):
        return "Azure"
    return "Google"


@schemathesis.hook
def after_call(context, case, response):
    if not LOG:
        return
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    line = {"operation": _operation(case), "status": response.status_code}
    if isinstance(error, dict):
        line["code"] = error.get("code")
        if response.status_code >= 500:
            line["message"] = error.get("message")
    if response.status_code >= 500:
        line["retryAfter"] = (response.headers.get("retry-after") or [None])[0]
    if _operation(case) in WRITES and isinstance(case.body, dict):
        line["kind"] = next((k for k in ("aws", "google", "azure") if isinstance(case.body.get(k), dict)), None)
    if _operation(case) == "exportCredentials" and response.status_code == 200 and isinstance(body, dict):
        line["minted"] = _minted_by(body)
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")


@schemathesis.check
def provider_errors_are_justified(ctx, response, case):
    """A 5xx from a call that mints must be the truth about its provider."""
    status = response.status_code
    if status < 500:
        return None
    operation = _operation(case)
    if operation not in MINTING:
        raise AssertionError(f"{status} from {operation}, which does not mint")
    if status not in (502, 503):
        raise AssertionError(f"{status} from {operation}: only 502 and 503 are answers about a provider")
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        raise AssertionError(f"{status} without an error body")
    code, message = error.get("code"), str(error.get("message", ""))
    retry_after = response.headers.get("retry-after")
    provider = next((p for p in PROVIDERS if message.startswith(p + " ")), None)
    if provider is None:
        raise AssertionError(f"{status} {code} names no provider: {message!r}")
    if status == 502:
        if code != "ProviderAnswerUnusable" or retry_after:
            raise AssertionError(f"502 must be ProviderAnswerUnusable without Retry-After: {code}, {retry_after}")
        if provider in DOWN:
            raise AssertionError(f"502 says {provider} answered, but the test stopped it: {message!r}")
        return None
    if code != "ProviderUnavailable":
        raise AssertionError(f"503 from a call that mints must be ProviderUnavailable, not {code}")
    if not retry_after or not retry_after[0].isdigit() or int(retry_after[0]) <= 0:
        raise AssertionError(f"503 ProviderUnavailable without a Retry-After in seconds: {retry_after}")
    if provider not in DOWN:
        raise AssertionError(f"503 says {provider} is unavailable, but it is up: {message!r}")
    if "could not be reached" not in message:
        raise AssertionError(f"503 for a stopped {provider} must say it could not be reached: {message!r}")
    return None
