"""Alert channels: where Warden's alerts are delivered (Matrix, chat webhooks, email,
signed webhooks). Each takes an `Alert` and delivers it or raises NotifyError;
what is sent when, deduplicated and rate-limited, is services/alerts.py's job.
"""

from warden.adapters.notify.message import Alert, Notifier

__all__ = ["Alert", "Notifier"]
