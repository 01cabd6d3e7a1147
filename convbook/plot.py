"""convbook.plot — being written; see CONTRIBUTING.md for its API."""
