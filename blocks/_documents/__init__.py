"""Block documents: save, load and list by name; the store, its tables and crypto."""
