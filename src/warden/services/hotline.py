"""What a hotline report holds beside the encrypted file: NCMEC CyberTipline fields.

`warden evidence export` and the console's export write the evidence store's
package (metadata.json in the clear, media.bin under a one-time key); this adds
`cybertipline.json`, the incident, the reported person and the file in the
shape the CyberTipline form asks for them, filled from what Warden recorded.
"""

from __future__ import annotations

from typing import Any


def cybertip_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """The fields a CyberTipline report asks about the incident and the file
    (NCMEC's CyberTipline Reporting API: incidentSummary/incidentDateTime,
    reportedPerson (screen name, IP address) and fileDetails (hashes, original
    file name, IP of upload)), filled from what Warden recorded."""
    return {
        "incidentSummary": {
            "incidentType": "Child Pornography (possession, manufacture, and distribution)",
            "incidentDateTime": meta.get("decided_at") or meta.get("created_at"),
        },
        "reportedPerson": {
            "screenName": meta.get("account") or meta.get("uploader"),
            "userId": meta.get("account_id"),
            "ipCaptureEvent": {
                "ipAddress": meta.get("client_address"),
                "eventName": "Upload",
                "dateTime": meta.get("decided_at") or meta.get("created_at"),
            },
        },
        "fileDetails": {
            "fileName": "media.bin",
            "originalFileHash": [
                {"hashType": "SHA256", "hashValue": meta.get("sha256")},
                {"hashType": "PDQ", "hashValue": meta.get("pdq")},
            ],
            "fileSize": meta.get("size"),
            "mimeType": meta.get("mime"),
            "pictrsAlias": meta.get("alias"),
            "warden": {
                "evidenceId": meta.get("evidence_id"),
                "decisionId": meta.get("decision_id"),
                "reasons": [r.get("code") for r in meta.get("reasons") or []],
            },
        },
        "note": "media.bin is AES-256-GCM (12-byte nonce, then ciphertext and tag) under a "
        "one-time key given separately. Fields Warden did not record are null: "
        "fill them in the CyberTipline form.",
    }
