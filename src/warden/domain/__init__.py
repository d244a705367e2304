"""Pure rules and types: verdicts, media policy. No I/O, no web, no SQL."""
