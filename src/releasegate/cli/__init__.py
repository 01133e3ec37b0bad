"""The command line: thin Click commands over the core; all printing lives here."""
