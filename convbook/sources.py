"""convbook.sources — being written; see CONTRIBUTING.md for its API."""
