"""A certificate's NotAfter, read from its PEM with a few lines of DER instead of a crypto library.

The agent only needs to know when a certificate from Vault's PKI expires, to issue the next one
in time. Loading ``cryptography`` for that would cost about 14 MiB of resident memory in every
pod; the validity field sits at a fixed place in the certificate's structure (RFC 5280):

    Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
                                  validity SEQUENCE { notBefore Time, notAfter Time }, ... }
    Time ::= UTCTime (YYMMDDHHMMSSZ) | GeneralizedTime (YYYYMMDDHHMMSSZ)

Anything unexpected gives None: the caller then treats the answer like a static secret.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re

_PEM = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)
_SEQUENCE = 0x30
_CONTEXT_0 = 0xA0
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18


class _DerError(ValueError):
    pass


def _element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at ``offset``."""
    if offset + 2 > len(data):
        raise _DerError("truncated")
    tag = data[offset]
    length = data[offset + 1]
    position = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or position + count > len(data):
            raise _DerError("bad length")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    end = position + length
    if end > len(data):
        raise _DerError("truncated")
    return tag, position, end


def _time(tag: int, text: str) -> datetime.datetime:
    if tag == _UTC_TIME:
        # RFC 5280: two-digit years 50-99 are 19xx, 00-49 are 20xx.
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise _DerError("not a time")
    if not text.endswith("Z"):
        raise _DerError("not UTC")
    return datetime.datetime.strptime(text[:-1], "%Y%m%d%H%M%S").replace(tzinfo=datetime.UTC)


def not_after_from_der(der: bytes) -> datetime.datetime:
    tag, start, _end = _element(der, 0)
    if tag != _SEQUENCE:
        raise _DerError("not a certificate")
    tag, position, _tbs_end = _element(der, start)
    if tag != _SEQUENCE:
        raise _DerError("no tbsCertificate")
    tag, _content, end = _element(der, position)
    if tag == _CONTEXT_0:  # the optional version
        position = end
    for _field in ("serialNumber", "signature", "issuer"):
        _tag, _content, position = _element(der, position)
    tag, validity, _validity_end = _element(der, position)
    if tag != _SEQUENCE:
        raise _DerError("no validity")
    _tag, _start, not_before_end = _element(der, validity)
    tag, content, content_end = _element(der, not_before_end)
    return _time(tag, der[content:content_end].decode("ascii"))


def certificate_not_after(pem: str) -> datetime.datetime | None:
    """NotAfter of the first certificate in ``pem``, or None when it cannot be read."""
    match = _PEM.search(pem)
    if match is None:
        return None
    try:
        der = base64.b64decode("".join(match.group("body").split()), validate=True)
        return not_after_from_der(der)
    except (_DerError, binascii.Error, UnicodeDecodeError, ValueError):
        return None
