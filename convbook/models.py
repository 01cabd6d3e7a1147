"""convbook.models — being written; see CONTRIBUTING.md for its API."""
