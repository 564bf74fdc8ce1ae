"""The word filter: blocked terms found through evasions in one pass, masked or refused."""
