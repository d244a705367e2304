"""One router per resource; each parses, calls a service, shapes the answer."""
