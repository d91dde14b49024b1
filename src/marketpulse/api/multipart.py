"""multipart/form-data bodies read with the standard library's MIME parser.

The venv has no python-multipart (FastAPI's `UploadFile` needs it) and dependencies are shared, so the one upload
route reads the raw body (size-limited by `read_limited_body`) and takes its file part here.
"""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP


class MultipartError(ValueError):
    pass


def file_part(content_type: str, body: bytes, field: str) -> bytes:
    """The bytes of form field `field` of a multipart/form-data body; MultipartError when there is none."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise MultipartError("send the file as multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
    if not message.is_multipart():
        raise MultipartError("not a multipart body")
    for part in message.iter_parts() if hasattr(message, "iter_parts") else []:
        if _field_name(part) == field:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    raise MultipartError(f"no form field {field!r}")


def _field_name(part: Message) -> str | None:
    name = part.get_param("name", header="content-disposition")
    return name if isinstance(name, str) else None
