"""Clients for external scanning services, one module per protocol.

Each adapter turns one vendor's documented request/response into an `Answer`
(a decision and the vendor's raw labels) or raises a `ScannerError` saying why
there is none; when and how often they are asked, their timeouts, concurrency
and failure modes live in services/external_scan.py, and what their answers
mean together in domain/scanners.py.
"""

from warden.adapters.scanners.interface import Answer, ExternalScanner, Submission

__all__ = ["Answer", "ExternalScanner", "Submission"]
