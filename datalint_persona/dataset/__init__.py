"""Reading datasets: file formats, records, validation, and what changed since a git ref."""
