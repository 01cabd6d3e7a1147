"""convbook.ops — being written; see CONTRIBUTING.md for its API."""
