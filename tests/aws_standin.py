"""Lambda's ``GetLayerVersionByArn`` and SSM's ``GetParameter`` on 127.0.0.1, over HTTPS with a certificate
authority of the tests' own (``AWS_CA_BUNDLE`` points boto3, and the kit's download, at it): an endpoint that can
also misbehave as a hostile or broken one would."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import trustme


@dataclass
class Behaviour:
    """How the stand-in answers: what it says of the layer, and how it serves its bytes."""

    parameter_value: str = ""  # what GetParameter returns (default: the ARN)
    location: str | None = None  # the Location GetLayerVersionByArn gives (default: its own /layer.zip)
    code_sha256: str | None = ""  # "" for the right one, None to leave it out
    code_size: int | None = -1  # -1 for the right one, None to leave it out
    body_bytes: int | None = None  # serve this many zero bytes instead of the layer
    trickle_s: float = 0.0  # between bytes, sent one at a time


class StandInAws:
    def __init__(self, layer_zip: Path, tmp: Path, arn: str, parameter: str) -> None:
        self.data = layer_zip.read_bytes()
        self.arn, self.parameter = arn, parameter
        self.requests: list[str] = []
        self.behaviour = Behaviour()
        authority = trustme.CA()
        self.ca_bundle = tmp / "stand-in-ca.pem"
        authority.cert_pem.write_to_path(str(self.ca_bundle))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # SSM
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.requests.append(self.headers.get("X-Amz-Target", ""))
                value = stand_in.behaviour.parameter_value or stand_in.arn
                self._json({"Parameter": {"Name": stand_in.parameter, "Type": "String", "Value": value,
                                          "Version": 1}})

            def do_GET(self) -> None:
                url = urlparse(self.path)
                stand_in.requests.append(url.path)
                behaviour = stand_in.behaviour
                if url.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(url.query)["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if url.path == "/layer.zip":
                    size = behaviour.body_bytes if behaviour.body_bytes is not None else len(stand_in.data)
                    self.send_response(200)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    try:
                        if behaviour.trickle_s:
                            for _ in range(size):
                                self.wfile.write(b"\0")
                                self.wfile.flush()
                                time.sleep(behaviour.trickle_s)
                        elif behaviour.body_bytes is not None:
                            piece = b"\0" * (1024 * 1024)
                            for offset in range(0, size, len(piece)):
                                self.wfile.write(piece[:size - offset])
                        else:
                            self.wfile.write(stand_in.data)
                    except (ConnectionError, OSError):
                        pass  # the kit stopped reading, as it should
                    return
                content = {"Location": behaviour.location or f"{stand_in.url}/layer.zip"}
                if behaviour.code_sha256 is not None:
                    content["CodeSha256"] = behaviour.code_sha256 or base64.b64encode(
                        hashlib.sha256(stand_in.data).digest()).decode()
                if behaviour.code_size is not None:
                    content["CodeSize"] = len(stand_in.data) if behaviour.code_size == -1 else behaviour.code_size
                self._json({"LayerVersionArn": stand_in.arn, "Version": 7, "CompatibleRuntimes": ["python3.12"],
                            "Content": content})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def environment(self, tmp: Path) -> dict[str, str]:
        """What points boto3 (and the kit) at the stand-in, with stand-in credentials and none of this machine's."""
        return {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "stand-in", "AWS_REGION": "eu-west-1",
                "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
                "AWS_ENDPOINT_URL_LAMBDA": self.url, "AWS_ENDPOINT_URL_SSM": self.url,
                "AWS_CA_BUNDLE": str(self.ca_bundle), "AWS_EC2_METADATA_DISABLED": "true"}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
