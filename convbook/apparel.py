"""convbook.apparel — being written; see CONTRIBUTING.md for its API."""
