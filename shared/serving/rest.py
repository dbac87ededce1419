"""TF Serving's REST request body, decoded as TF Serving decodes it, for the serving_default signature.

https://www.tensorflow.org/tfx/serving/api_rest: a predict request is JSON, either in the row format
(`{"instances": [...]}`, one value per example) or the columnar one (`{"inputs": ...}`); binary values,
such as an image's bytes, are objects `{"b64": "<base64>"}`. With one named input (`images`), an instance
is that value itself or an object naming the input (`{"images": {"b64": ...}}`).
"""

from __future__ import annotations

import base64
import binascii
import json

from shared.core.errors import UsageError
from shared.serving.export import SIGNATURES

INPUT = SIGNATURES["serving_default"]


def _value(item: object) -> bytes:
    if isinstance(item, dict) and set(item) == {INPUT}:
        item = item[INPUT]
    if not (isinstance(item, dict) and set(item) == {"b64"} and isinstance(item["b64"], str)):
        raise UsageError(f'an image must be {{"b64": "<base64 bytes>"}} (or {{"{INPUT}": {{"b64": ...}}}})')
    try:
        return base64.b64decode(item["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("an image's b64 value is not base64") from None


def images(body: bytes | str | dict) -> list[bytes]:
    """The encoded images of a request body; a UsageError (TF Serving's 400) for anything else."""
    if not isinstance(body, dict):
        try:
            body = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UsageError("the request body is not JSON") from None
    if not isinstance(body, dict) or len({"instances", "inputs"} & set(body)) != 1:
        raise UsageError('the request needs exactly one of "instances" (rows) or "inputs" (columns)')
    rows = body.get("instances", body.get("inputs"))
    if isinstance(rows, dict) and set(rows) == {INPUT}:  # columnar, named
        rows = rows[INPUT]
    if not isinstance(rows, list) or not rows:
        raise UsageError("the request has no images")
    return [_value(item) for item in rows]


def body(encoded: list[bytes]) -> str:
    """A row-format request for encoded images, as a client such as `curl -d @body.json` sends it."""
    return json.dumps({"instances": [{"b64": base64.b64encode(e).decode("ascii")} for e in encoded]})


def main(argv: list[str]) -> int:
    """python -m shared.serving.rest IMAGE... --out body.json: the request body for those images."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m shared.serving.rest", description=main.__doc__)
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.write_text(body([p.read_bytes() for p in args.images]))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
