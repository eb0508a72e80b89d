"""The OpenAPI schema, driven against a real ``polpo serve``: 0 server errors.

Two passes, both with the CLI's bearer token so requests reach the routes:

1. boundaries: every integer query parameter at and past its bounds, and at
   ±2**100 (an unbounded ``offset`` overflowed the database: a 500);
2. Schemathesis: every operation gets the same small, seeded
   (``derandomize``) budget of generated requests, ~300 in all, half valid
   by the schema and half not.

A 5xx is a bug: bad input must be a 4xx with a one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.security.conftest import serving

TOTAL_EXAMPLES = 300
#: Streams that never end (the inputs of ``/events`` are covered in test_bad_input.py).
SKIPPED = {("GET", "/api/v1/events"), ("GET", "/api/v1/channels/stream")}


def test_generated_requests_find_no_server_error(tmp_path: Path) -> None:
    with serving(tmp_path / "fuzzed") as s:
        raw = httpx.get(s.url + "/api/v1/openapi.json", headers=s.bearer).json()
        schema = schemathesis.openapi.from_dict(raw)
        # Negative cases of a path-only operation are just odd strings (which positive
        # generation covers) and slow to generate: those get positive cases only.
        runs = [
            (op, mode)
            for op in (result.ok() for result in schema.get_all_operations())
            if (op.method.upper(), op.path) not in SKIPPED
            for mode in GenerationMode
            if mode is GenerationMode.POSITIVE or _has_query_or_body(raw, op.method, op.path)
        ]
        errors = _boundaries(s.url, s.bearer, raw)
        per_run = max(1, TOTAL_EXAMPLES // len(runs))
        sent = 0

        for op, mode in runs:

            @settings(
                max_examples=per_run,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal sent
                sent += 1
                r = case.call(base_url=s.url, headers=s.bearer, timeout=10)
                if r.status_code >= 500:
                    errors.append(f"{case.method} {case.formatted_path} → {r.status_code}")

            try:
                run()
            except Unsatisfiable:  # nothing can be invalid about it (GET /health)
                assert mode is GenerationMode.NEGATIVE, op.path
        assert s.stop() == 0
    assert errors == []
    assert sent >= TOTAL_EXAMPLES // 2  # the run really sent requests


def _boundaries(url: str, headers: dict[str, str], raw: dict[str, Any]) -> list[str]:
    errors = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for path, methods in raw["paths"].items():
            for method, spec in methods.items():
                if (method.upper(), path) in SKIPPED:
                    continue
                concrete = path
                for p in spec.get("parameters", []):
                    if p["in"] == "path":
                        concrete = concrete.replace("{" + p["name"] + "}", "x")
                for p in spec.get("parameters", []):
                    schema = p.get("schema", {})
                    if p["in"] != "query" or schema.get("type") != "integer":
                        continue
                    values = {2**100, -(2**100)}
                    values.update(
                        schema[k] + d for k, d in [("minimum", -1), ("maximum", 1)] if k in schema
                    )
                    for value in sorted(values):
                        what = f"{method.upper()} {concrete}?{p['name']}={value}"
                        try:
                            r = client.request(
                                method.upper(), concrete, params={p["name"]: value}, json={}
                            )
                        except httpx.TransportError as e:  # the server dropped it: as bad
                            errors.append(f"{what} → {type(e).__name__}")
                            continue
                        if r.status_code >= 500:
                            errors.append(f"{what} → {r.status_code}")
    return errors


def _has_query_or_body(raw: dict[str, Any], method: str, path: str) -> bool:
    spec = raw["paths"][path][method.lower()]
    return "requestBody" in spec or any(p["in"] == "query" for p in spec.get("parameters", []))
