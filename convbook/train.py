"""convbook.train — being written; see CONTRIBUTING.md for its API."""
