"""Long-running jobs the CLI starts: file scans, rescans, purges."""
