"""The router's data plane: every inference a client sends passes through here."""
