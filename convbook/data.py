"""convbook.data — being written; see CONTRIBUTING.md for its API."""
