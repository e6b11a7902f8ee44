"""What every API view shares. Today: the reporting window's query parameters and decimal
strings (queries.py); the request parsing, error shapes and throttling still in config/
move here next (issue 14)."""
