"""The example functions' own tests, through the pytest plugin."""

from __future__ import annotations

import json

import pytest

VALID_ORDER = {"order_id": "A-7", "currency": "USD",
               "lines": [{"sku": "tea", "quantity": 3, "unit_price": "0.10"},
                         {"sku": "cup", "quantity": 1, "unit_price": "0.20"}]}


CASES = {
    "order-total": [
        ("valid", VALID_ORDER, {"ok": True, "order_id": "A-7", "currency": "USD", "lines": 2, "total": "0.50"}),
        ("api-gateway-body", {"body": json.dumps(VALID_ORDER)}, {"ok": True, "total": "0.50"}),
        ("wrong-type", {"order_id": "A-8", "currency": "USD", "lines": "three"},
         ("ValidationError", [{"field": "lines", "problem": "Input should be a valid list"}])),
        ("missing-fields", {"currency": "USD"},
         ("ValidationError", [{"field": "order_id", "problem": "Field required"},
                              {"field": "lines", "problem": "Field required"}])),
        ("not-an-object", [1, 2], ("InvalidEvent", "the event must be a JSON object, not list")),
        ("oversized", {"order_id": "x" * 300_000}, ("PayloadTooLarge", "the event is larger than 262144 bytes")),
        ("non-json-body", {"body": "order=1"}, ("InvalidJson", "the event's 'body' is not JSON")),
        ("body-not-a-string", {"body": {"order_id": 1}}, ("InvalidBody", "the event's 'body' must be a JSON string")),
    ],
    "text-stats": [
        ("valid", {"text": "b a b"}, {"ok": True, "words": 3, "unique": 2,
                                      "top": [{"word": "b", "count": 2}, {"word": "a", "count": 1}]}),
        ("wrong-type", {"text": 42},
         ("ValidationError", [{"field": "text", "problem": "Input should be a valid string"}])),
        ("missing-field", {"top": 2}, ("ValidationError", [{"field": "text", "problem": "Field required"}])),
        ("out-of-range", {"text": "a", "top": 0},
         ("ValidationError", [{"field": "top", "problem": "Input should be greater than or equal to 1"}])),
        ("oversized", {"body": json.dumps({"text": "word " * 60_000})},
         ("PayloadTooLarge", "the body is larger than 262144 bytes")),
        ("non-json-body", {"body": "{not json"}, ("InvalidJson", "the event's 'body' is not JSON")),
    ],
}


@pytest.mark.parametrize(("function", "event", "expected"), [
    pytest.param(function, event, expected, id=f"{function}/{name}")
    for function, cases in CASES.items() for name, event, expected in cases
])
def test_function_answers(layerkit_invoke, function, event, expected):
    result = layerkit_invoke(f"lambda-layers-example-{function}/Function", event)
    assert result.error is None, result.error  # a malformed event is an answer, never a crash
    answer = result.payload
    if isinstance(expected, dict):
        assert expected.items() <= answer.items()
        return
    kind, detail = expected
    assert answer["ok"] is False
    assert answer["error"]["type"] == kind
    if isinstance(detail, list):
        assert answer["error"]["details"] == detail
    else:
        assert answer["error"]["message"].startswith(detail)


def test_one_warm_environment_serves_every_test(layerkit_invoke):
    first = layerkit_invoke("lambda-layers-example-text-stats/Function", {"text": "a"})
    second = layerkit_invoke("lambda-layers-example-text-stats/Function", {"text": "b"})
    assert second.report["init_duration_ms"] is None  # warm: the environment of the earlier tests
    assert first.report["memory_size_mb"] == 256
