#!/usr/bin/env python3
"""Summarise a delivery status notification (RFC 3464 multipart/report) as JSON.

Usage: dsn_check.py FILE    (FILE "-" reads standard input)

The notice is parsed with Python's email package (policy=email.policy.default),
independently of tern's own code, and the summary holds what tests look at:
the content type and report-type, the notice's own header fields, the
per-message and per-recipient fields of the delivery-status part (names in
lower case), the kind of the third part ("full", "headers" or null) and the
Subject of the returned original. Parser defects are listed under "defects".

Exit status: 0 for a multipart/report with a delivery-status part, 1 for
anything else (the JSON still says what was found), 2 for a usage error.
"""

import email
import email.policy
import json
import sys
from email.parser import HeaderParser

POLICY = email.policy.default
NOTICE_HEADERS = ("from", "to", "subject", "date", "message-id", "auto-submitted",
                  "mime-version")
STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
FULL_TYPES = ("message/rfc822", "message/global")
HEADER_TYPES = ("text/rfc822-headers", "message/global-headers")


def field_map(block):
    """The fields of one header block, names lower-cased, values as text."""
    return {name.lower(): str(value) for name, value in block.items()}


def status_blocks(part):
    """The header blocks of a delivery-status part, per-message block first."""
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status":
        return [field_map(block) for block in payload]  # the parser split the blocks
    # message/global-delivery-status is parsed as one message: its header is the
    # per-message block and its body holds the per-recipient blocks.
    first = payload[0] if isinstance(payload, list) and payload else None
    if first is None:
        return []
    rest = str(first.get_payload()).replace("\r\n", "\n").split("\n\n")
    parser = HeaderParser(policy=POLICY)
    return [field_map(first)] + [field_map(parser.parsestr(b)) for b in rest if b.strip()]


def returned_summary(part):
    """Kind and original Subject of the third part."""
    ctype = part.get_content_type()
    kind = "full" if ctype in FULL_TYPES else "headers" if ctype in HEADER_TYPES else None
    subject = None
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        subject = payload[0].get("subject")
    elif ctype == "text/rfc822-headers":
        subject = HeaderParser(policy=POLICY).parsestr(part.get_content()).get("subject")
    has_body = False
    if kind == "full" and isinstance(payload, list) and payload:
        has_body = bool(str(payload[0].get_payload()).strip())
    return {"returned_type": ctype, "returned_kind": kind,
            "original_subject": None if subject is None else str(subject),
            "returned_has_body": has_body}


def summarise(msg):
    parts = msg.get_payload() if msg.is_multipart() else []
    summary = {
        "content_type": msg.get_content_type(),
        "report_type": msg.get_param("report-type"),
        "boundary": msg.get_boundary(),
        "headers": {name: (None if msg.get(name) is None else str(msg.get(name)))
                    for name in NOTICE_HEADERS},
        "parts": [p.get_content_type() for p in parts],
        "human_text": None, "human_charset": None,
        "per_message": {}, "recipients": [],
        "returned_type": None, "returned_kind": None, "original_subject": None,
        "returned_has_body": False,
        "defects": [f"{type(d).__name__}: {d}" for p in msg.walk() for d in p.defects],
    }
    if parts and parts[0].get_content_maintype() == "text":
        summary["human_text"] = parts[0].get_content().replace("\r\n", "\n")
        summary["human_charset"] = parts[0].get_content_charset()
    status = next((p for p in parts if p.get_content_type() in STATUS_TYPES), None)
    if status is not None:
        blocks = status_blocks(status)
        summary["per_message"] = blocks[0] if blocks else {}
        summary["recipients"] = blocks[1:]
    if len(parts) >= 3:
        summary.update(returned_summary(parts[2]))
    ok = summary["content_type"] == "multipart/report" and status is not None
    return summary, ok


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        if argv[1] == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(argv[1], "rb") as f:
                data = f.read()
    except OSError as e:
        print(f"dsn_check: {e}", file=sys.stderr)
        return 2
    summary, ok = summarise(email.message_from_bytes(data, policy=POLICY))
    json.dump(summary, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
