"""One-line logs on stderr, with secrets scrubbed from every record.

Secret values reach the trainer only through its environment (from a Secret); nothing
the trainer logs or reports may contain them, nor the userinfo part of a URL.
"""

from __future__ import annotations

import logging
import os
import re
import sys

# Variables whose values are secrets, wherever they would show up.
SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words


def redact(text: str) -> str:
    """`text` without secret values or URL credentials."""
    for variable in SECRET_VARIABLES:
        value = os.environ.get(variable, "")
        if len(value) >= _MIN_SECRET_LENGTH:
            text = text.replace(value, "***")
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)


class RedactingFormatter(logging.Formatter):
    """Formats a record on one line, secrets removed."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return redact(line).replace("\n", " | ")


def configure_logging(level: int = logging.INFO) -> None:
    """Log one line per record to stderr; library warnings go through the same path."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
