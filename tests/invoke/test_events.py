"""Events (layerkit.invoke.events): one that Lambda would refuse stops in one line before anything runs."""

from __future__ import annotations

import pytest

from tests.helpers import write_file
from tests.invoke.apps import cli_layers, cli_probe, fn_id


def test_a_malformed_event_file_stops_before_anything_runs(layers_app, tmp_path):
    bad = write_file(tmp_path / "event.json", '{"action": "probe",}')
    result = cli_layers(layers_app, fn_id(layers_app, "user"), "--event", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (f"layerkit: error: event file {bad} is not valid JSON: Expecting property name "
                             "enclosed in double quotes at line 1 column 20; fix the file (an event is one JSON "
                             'document, e.g. {"key": "value"})\n')


# -- 6. events Lambda would refuse -----------------------------------------------------------------------
@pytest.mark.parametrize(("content", "message"), [
    (b"[" * 5000 + b"]" * 5000, "is nested deeper than a JSON parser can take"),
    (b'{"value": NaN}', "holds NaN, a number JSON does not have; use null or a string"),
    ('{"a": 1}'.encode("utf-16"), "starts with a UTF-16 byte order mark"),
    (b'\xef\xbb\xbf{"a": 1}', "starts with a UTF-8 byte order mark"),
    (b'{"a": "\xff"}', "is not UTF-8 text"),
], ids=["deep", "nan", "utf-16", "utf-8-bom", "latin-1"])
def test_an_event_lambda_would_refuse_stops_in_one_line_before_anything_runs(probe_app, tmp_path, content, message):
    event = tmp_path / "event.json"
    event.write_bytes(content)
    result = cli_probe(probe_app, "S/Probe", "--event", str(event))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"layerkit: error: event file {event} ")
    assert message in result.stderr
